//! Prometheus metrics: counters and a histogram fed from invocation records, and gauges
//! of instances and concurrency sampled from the scheduler on every scrape.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use updraft_model::{InvocationRecord, InvocationStatus};

use crate::otlp::ExportCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    function: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    function: String,
    state: String,
}

/// One function's instances at a moment, summed over its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    pub function: String,
    pub idle: u32,
    pub busy: u32,
    pub starting: u32,
}

/// The metric families and their registry.
pub struct Metrics {
    registry: Registry,
    invocations: Family<StatusLabels, Counter>,
    duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    cold_starts: Family<FunctionLabels, Counter>,
    throttles: Family<FunctionLabels, Counter>,
    concurrent: Family<FunctionLabels, Gauge>,
    instances: Family<InstanceLabels, Gauge>,
    export: ExportCounters,
    /// Scrapes rebuild the gauges; one at a time.
    scrape: Mutex<()>,
}

fn duration_histogram() -> Histogram {
    // 100 µs to ~900 s, doubling.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 24))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("updraft");
        let invocations = Family::<StatusLabels, Counter>::default();
        let duration = Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        let throttles = Family::<FunctionLabels, Counter>::default();
        let concurrent = Family::<FunctionLabels, Gauge>::default();
        let instances = Family::<InstanceLabels, Gauge>::default();
        registry.register("invocations", "Invocations by function and status", invocations.clone());
        registry.register(
            "invocation_duration_seconds",
            "Invocation duration (handler start to finish), throttles excluded",
            duration.clone(),
        );
        registry.register("cold_starts", "Invocations that started a new instance", cold_starts.clone());
        registry.register("throttles", "Invocations refused at a concurrency limit", throttles.clone());
        registry.register("concurrent_executions", "Invocations running now", concurrent.clone());
        registry.register("instances", "Instances by state (idle, busy, starting)", instances.clone());
        let export = ExportCounters::default();
        registry.register("trace_spans_exported", "Spans sent to the OTLP collector", export.exported.clone());
        registry.register(
            "trace_spans_dropped",
            "Spans dropped because the OTLP exporter's queue was full (the collector is slow or away)",
            export.dropped.clone(),
        );
        registry.register("trace_spans_failed", "Spans the OTLP collector did not take", export.failed.clone());
        Self {
            registry,
            invocations,
            duration,
            cold_starts,
            throttles,
            concurrent,
            instances,
            export,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// The OTLP exporter's counters, rendered with the rest.
    pub fn export_counters(&self) -> ExportCounters {
        self.export.clone()
    }

    /// Counts one finished invocation.
    pub fn record(&self, record: &InvocationRecord) {
        let function = record.function.to_string();
        self.invocations
            .get_or_create(&StatusLabels { function: function.clone(), status: record.status.as_str().to_owned() })
            .inc();
        let labels = FunctionLabels { function };
        if record.status == InvocationStatus::Throttled {
            self.throttles.get_or_create(&labels).inc();
            return;
        }
        if record.cold {
            self.cold_starts.get_or_create(&labels).inc();
        }
        self.duration.get_or_create(&labels).observe(record.duration.as_secs_f64());
    }

    /// Renders every metric in the Prometheus text format, with the gauges set from
    /// `instances`.
    pub fn render(&self, instances: &[InstanceCounts]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.instances.clear();
        self.concurrent.clear();
        for counts in instances {
            for (state, n) in [("idle", counts.idle), ("busy", counts.busy), ("starting", counts.starting)] {
                let labels = InstanceLabels { function: counts.function.clone(), state: state.to_owned() };
                self.instances.get_or_create(&labels).set(i64::from(n));
            }
            self.concurrent
                .get_or_create(&FunctionLabels { function: counts.function.clone() })
                .set(i64::from(counts.busy));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
