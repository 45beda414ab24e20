//! A budget for log lines that guests can trigger (a failing invocation, an instance
//! that will not stop): a function failing a thousand times a second must not flood
//! the server's own log. Each call site lets a few lines a second through and counts
//! the rest, reporting the count with the next line it lets through.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines let through per window at one call site; declare one as a `static`.
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

struct Window {
    started: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    pub const fn new(per_window: u32, window: Duration) -> LogBudget {
        LogBudget { per_window, window, state: Mutex::new(Window { started: None, used: 0, suppressed: 0 }) }
    }

    /// `Some(lines suppressed since the last one let through)` when this line may be
    /// logged; `None` when it is over the budget (and counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.started.is_none_or(|started| now.duration_since(started) >= self.window) {
            state.started = Some(now);
            state.used = 0;
        }
        if state.used < self.per_window {
            state.used += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_to_the_budget_and_the_rest_is_counted() {
        let budget = LogBudget::new(10, Duration::from_secs(1));
        let start = Instant::now();
        let admitted: Vec<u64> = (0..1000).filter_map(|_| budget.admit_at(start)).collect();
        assert_eq!(admitted, vec![0; 10]);
        // The next window's first line says how many were dropped.
        assert_eq!(budget.admit_at(start + Duration::from_secs(1)), Some(990));
        assert_eq!(budget.admit_at(start + Duration::from_secs(1)), Some(0));
    }
}
