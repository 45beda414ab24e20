//! How many pre-started sandboxes a runtime keeps: as many as its busiest second of
//! cold starts within a recent window, between the operator's floor and ceiling. A
//! burst of cold starts grows the pool to meet the next burst like it; a quiet window
//! shrinks it back to the floor.

use std::collections::VecDeque;
use std::time::Duration;

/// Cold starts of one runtime, counted per second.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    /// (second, cold starts in it), oldest first; seconds counted from any fixed start.
    seconds: VecDeque<(u64, usize)>,
}

impl Demand {
    /// Counts a cold start in `second`.
    pub(crate) fn record(&mut self, second: u64) {
        match self.seconds.back_mut() {
            Some((last, count)) if *last == second => *count += 1,
            _ => self.seconds.push_back((second, 1)),
        }
    }

    /// The most cold starts in one second of the `window` up to `second`; older
    /// seconds are forgotten.
    pub(crate) fn peak(&mut self, second: u64, window: Duration) -> usize {
        let window = window.as_secs().max(1);
        while self.seconds.front().is_some_and(|(first, _)| first + window <= second) {
            self.seconds.pop_front();
        }
        self.seconds.iter().map(|(_, count)| *count).max().unwrap_or(0)
    }
}

/// The pool's size for a runtime whose busiest recent second had `peak` cold starts.
pub(crate) fn pool_size(peak: usize, floor: usize, ceiling: usize) -> usize {
    peak.clamp(floor, ceiling.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_follows_the_busiest_recent_second_between_floor_and_ceiling() {
        let window = Duration::from_secs(60);
        let mut demand = Demand::default();
        assert_eq!(demand.peak(0, window), 0);
        for _ in 0..5 {
            demand.record(10);
        }
        demand.record(11);
        assert_eq!(demand.peak(11, window), 5, "a burst of five in one second");
        assert_eq!(pool_size(demand.peak(11, window), 2, 8), 5);
        assert_eq!(pool_size(demand.peak(12, window), 2, 3), 3, "never above the ceiling");
        // The burst's second leaves the window; the later one stays a while longer.
        assert_eq!(demand.peak(70, window), 1);
        assert_eq!(demand.peak(71, window), 0);
        assert_eq!(pool_size(0, 2, 8), 2, "never below the floor");
        assert_eq!(pool_size(9, 2, 0), 2, "a ceiling under the floor is the floor");
    }
}
