//! A function's figures over time, for charts: invocation records grouped into equal
//! steps of a window.

use updraft_model::{FunctionName, InvocationStatus};
use updraft_store::InvocationSample;

use crate::{ObserveError, Platform};

/// The most records one chart is drawn from (the latest, when a window holds more).
pub const STATS_RECORDS: i64 = 200_000;

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
    /// cut to [`MAX_STEPS`] steps).
    pub async fn function_stats(
        &self,
        function: &FunctionName,
        since: i64,
        until: i64,
        step_ms: i64,
    ) -> Result<Vec<StatsStep>, ObserveError> {
        let step_ms = step_ms.max(1);
        let since = since.max(until - step_ms * MAX_STEPS);
        let samples = self.store.invocation_samples(function, since, until, STATS_RECORDS).await?;
        Ok(steps(&samples, since, until, step_ms))
    }
}

/// `samples` (oldest first) grouped into steps of `step_ms` from `since` to `until`.
pub fn steps(samples: &[InvocationSample], since: i64, until: i64, step_ms: i64) -> Vec<StatsStep> {
    let count = ((until - since).max(0) + step_ms - 1) / step_ms;
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); count as usize];
    let mut steps: Vec<StatsStep> = (0..count)
        .map(|i| StatsStep {
            start: since + i * step_ms,
            invocations: 0,
            errors: 0,
            throttles: 0,
            cold_starts: 0,
            p50_ms: None,
            p99_ms: None,
            concurrency: 0.0,
            max_memory: 0,
        })
        .collect();
    for sample in samples {
        let index = (sample.started_at - since) / step_ms;
        let Some(step) = usize::try_from(index).ok().and_then(|index| steps.get_mut(index)) else { continue };
        if sample.status == InvocationStatus::Throttled {
            step.throttles += 1;
            continue;
        }
        step.invocations += 1;
        if matches!(sample.status, InvocationStatus::Error | InvocationStatus::Timeout) {
            step.errors += 1;
        }
        if sample.cold {
            step.cold_starts += 1;
        }
        step.max_memory = step.max_memory.max(sample.max_memory_used.max(0) as u64);
        step.concurrency += sample.duration_ns as f64 / 1e6 / step_ms as f64;
        durations[index as usize].push(sample.duration_ns);
    }
    for (step, mut durations) in steps.iter_mut().zip(durations) {
        if durations.is_empty() {
            continue;
        }
        durations.sort_unstable();
        let at = |q: f64| {
            // The nearest-rank percentile.
            let rank = ((q * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
            durations[rank - 1] as f64 / 1e6
        };
        step.p50_ms = Some(at(0.5));
        step.p99_ms = Some(at(0.99));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(started_at: i64, duration_ms: i64, status: InvocationStatus) -> InvocationSample {
        InvocationSample {
            started_at,
            duration_ns: duration_ms * 1_000_000,
            init_duration_ns: None,
            cold: started_at == 0,
            max_memory_used: duration_ms * 1024,
            status,
        }
    }

    #[test]
    fn records_fall_into_their_steps() {
        use InvocationStatus::*;
        let mut samples: Vec<_> = (1..=100).map(|ms| sample(10, ms, Success)).collect();
        samples.push(sample(0, 5, Error));
        samples.push(sample(1_500, 0, Throttled));
        samples.push(sample(2_500, 300, Timeout));
        samples.push(sample(99_999, 1, Success));
        samples.sort_by_key(|s| s.started_at);
        let steps = steps(&samples, 0, 3_000, 1_000);
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
        assert_eq!((steps[1].invocations, steps[1].throttles, steps[1].p99_ms), (0, 1, None));
        assert_eq!((steps[2].errors, steps[2].p50_ms), (1, Some(300.0)));
    }
}
