//! A function's figures over time, for charts: invocation records grouped into equal
//! steps of a window.

use updraft_model::FunctionName;
use updraft_store::StepFigures;

use crate::{ObserveError, Platform};

/// The most steps in one window.
pub const MAX_STEPS: i64 = 1_000;

/// One step of a window.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsStep {
    /// When the step starts (ms since the epoch).
    pub start: i64,
    /// Invocations that ran (throttles excluded, as Lambda counts).
    pub invocations: u64,
    /// Errors and timeouts.
    pub errors: u64,
    pub throttles: u64,
    pub cold_starts: u64,
    /// Duration percentiles of the runs (ms); `None` without runs.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Average invocations running at once: run time in the step over its length.
    pub concurrency: f64,
    /// The most memory a run used (bytes).
    pub max_memory: u64,
}

impl Platform {
    /// `function`'s figures in `[since, until)` in steps of `step_ms` (the window is
    /// cut to [`MAX_STEPS`] steps), from all of its records in the window.
    pub async fn function_stats(
        &self,
        function: &FunctionName,
        since: i64,
        until: i64,
        step_ms: i64,
    ) -> Result<Vec<StatsStep>, ObserveError> {
        let step_ms = step_ms.max(1);
        let since = since.max(until - step_ms * MAX_STEPS);
        let figures = self.store.invocation_steps(function, since, until, step_ms).await?;
        Ok(steps(&figures, since, until, step_ms))
    }
}

/// Every step of `step_ms` from `since` to `until`, with the `figures` of those that
/// saw invocations.
pub fn steps(figures: &[StepFigures], since: i64, until: i64, step_ms: i64) -> Vec<StatsStep> {
    let count = ((until - since).max(0) + step_ms - 1) / step_ms;
    let count_of = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut figures = figures.iter().peekable();
    (0..count)
        .map(|index| {
            let mut step = StatsStep {
                start: since + index * step_ms,
                invocations: 0,
                errors: 0,
                throttles: 0,
                cold_starts: 0,
                p50_ms: None,
                p99_ms: None,
                concurrency: 0.0,
                max_memory: 0,
            };
            while figures.peek().is_some_and(|f| f.step < index) {
                figures.next();
            }
            if let Some(f) = figures.next_if(|f| f.step == index) {
                step.invocations = count_of(f.invocations);
                step.errors = count_of(f.errors);
                step.throttles = count_of(f.throttles);
                step.cold_starts = count_of(f.cold_starts);
                step.p50_ms = f.p50_ns.map(|ns| ns as f64 / 1e6);
                step.p99_ms = f.p99_ns.map(|ns| ns as f64 / 1e6);
                // Average running at once: run time in the step over its length.
                step.concurrency = f.run_ns as f64 / 1e6 / step_ms as f64;
                step.max_memory = count_of(f.max_memory);
            }
            step
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_of_the_window_is_drawn_with_the_figures_of_those_that_had_any() {
        let busy = StepFigures {
            step: 0,
            invocations: 101,
            errors: 1,
            throttles: 0,
            cold_starts: 1,
            run_ns: 5_055_000_000,
            max_memory: 100 * 1024,
            p50_ns: Some(50_000_000),
            p99_ns: Some(99_000_000),
        };
        let throttled = StepFigures { step: 1, throttles: 1, ..StepFigures::default() };
        let steps = steps(&[busy, throttled], 0, 3_000, 1_000);
        assert_eq!(steps.len(), 3);
        let first = &steps[0];
        assert_eq!(
            (first.start, first.invocations, first.errors, first.throttles, first.cold_starts),
            (0, 101, 1, 0, 1)
        );
        assert_eq!((first.p50_ms, first.p99_ms), (Some(50.0), Some(99.0)));
        assert_eq!(first.max_memory, 100 * 1024);
        // 5,055 ms of runs in a one-second step: five running at once on average.
        assert!((first.concurrency - 5.055).abs() < 1e-9, "{}", first.concurrency);
        assert_eq!((steps[1].start, steps[1].invocations, steps[1].throttles, steps[1].p99_ms), (1_000, 0, 1, None));
        assert_eq!((steps[2].start, steps[2].invocations, steps[2].p50_ms), (2_000, 0, None));
    }
}
