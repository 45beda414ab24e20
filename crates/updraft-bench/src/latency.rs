//! Latency distributions: an HDR histogram of request times and its summary.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies, kept in nanoseconds from 1 ns to 60 s with three significant digits:
/// enough for anything from a plain function call to a request that times out.
#[derive(Debug)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("the bounds are valid"))
    }

    /// Records one latency; one above 60 s counts as 60 s.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos.max(1));
    }

    pub fn summary(&self) -> LatencySummary {
        let histogram = &self.0;
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        if histogram.is_empty() {
            return LatencySummary { count: 0, mean_us: 0.0, p50_us: 0.0, p99_us: 0.0, max_us: 0.0 };
        }
        LatencySummary {
            count: histogram.len(),
            mean_us: histogram.mean() / 1000.0,
            p50_us: micros(histogram.value_at_quantile(0.50)),
            p99_us: micros(histogram.value_at_quantile(0.99)),
            max_us: micros(histogram.max()),
        }
    }
}

/// A latency distribution in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}
