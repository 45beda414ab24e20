//! Prometheus metrics: counters and histograms fed from invocation records and the
//! event layer, and gauges of instances, concurrency and queue depths sampled on every
//! scrape. Three sets of names: Updraft's own (`updraft_*`), Lambda's CloudWatch metrics
//! by their names (`updraft_lambda_*` per function and version, `updraft_sqs_*` per
//! queue), and OpenTelemetry's FaaS metrics as its Prometheus exporter names them
//! (`faas_*`, with `faas_name`, `faas_version` and `faas_trigger`), so dashboards made
//! for Lambda or for OpenTelemetry read them unchanged.

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

/// Lambda's dimensions: the function and the version that ran.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    function: String,
    version: String,
}

/// OpenTelemetry's FaaS attributes, with `.` written `_`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaasLabels {
    faas_name: String,
    faas_version: String,
    faas_trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    function: String,
    state: String,
}

/// One version's instances at a moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    pub function: String,
    pub version: u32,
    pub idle: u32,
    pub busy: u32,
    pub starting: u32,
}

/// A work queue's depth at a moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueGauge {
    pub queue: String,
    /// Messages ready for delivery.
    pub visible: i64,
    /// Messages delivered and not yet handled.
    pub in_flight: i64,
    /// How long the oldest visible message has waited.
    pub oldest_age_seconds: i64,
}

/// Lambda's CloudWatch metrics, by their names.
struct LambdaFamilies {
    invocations: Family<VersionLabels, Counter>,
    errors: Family<VersionLabels, Counter>,
    throttles: Family<VersionLabels, Counter>,
    duration: Family<VersionLabels, Histogram, fn() -> Histogram>,
    concurrent: Family<VersionLabels, Gauge>,
    async_received: Family<FunctionLabels, Counter>,
    async_age: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    async_dropped: Family<FunctionLabels, Counter>,
    dead_letter_errors: Family<FunctionLabels, Counter>,
    destination_failures: Family<FunctionLabels, Counter>,
    queue_visible: Family<QueueLabels, Gauge>,
    queue_in_flight: Family<QueueLabels, Gauge>,
    queue_oldest: Family<QueueLabels, Gauge>,
}

/// OpenTelemetry's FaaS metrics (semantic conventions, `faas.*`).
struct FaasFamilies {
    registry: Registry,
    invocations: Family<FaasLabels, Counter>,
    errors: Family<FaasLabels, Counter>,
    timeouts: Family<FaasLabels, Counter>,
    coldstarts: Family<FaasLabels, Counter>,
    invoke_duration: Family<FaasLabels, Histogram, fn() -> Histogram>,
    init_duration: Family<FaasLabels, Histogram, fn() -> Histogram>,
    mem_usage: Family<FaasLabels, Histogram, fn() -> Histogram>,
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
    lambda: LambdaFamilies,
    faas: FaasFamilies,
    export: ExportCounters,
    /// Scrapes rebuild the gauges; one at a time.
    scrape: Mutex<()>,
}

fn duration_histogram() -> Histogram {
    // 100 µs to ~900 s, doubling.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 24))
}

fn milliseconds_histogram() -> Histogram {
    // 0.1 ms to ~900 s, doubling.
    Histogram::new(exponential_buckets(0.1, 2.0, 24))
}

fn age_histogram() -> Histogram {
    // 1 ms to ~6 h (Lambda's longest event age), quadrupling.
    Histogram::new(exponential_buckets(1.0, 4.0, 13))
}

fn memory_histogram() -> Histogram {
    // 1 MiB to 16 GiB, doubling.
    Histogram::new(exponential_buckets(1_048_576.0, 2.0, 15))
}

fn family<L>(constructor: fn() -> Histogram) -> Family<L, Histogram, fn() -> Histogram>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(constructor)
}

impl LambdaFamilies {
    fn register(registry: &mut Registry) -> Self {
        let lambda = Self {
            invocations: Family::default(),
            errors: Family::default(),
            throttles: Family::default(),
            duration: family(milliseconds_histogram),
            concurrent: Family::default(),
            async_received: Family::default(),
            async_age: family(age_histogram),
            async_dropped: Family::default(),
            dead_letter_errors: Family::default(),
            destination_failures: Family::default(),
            queue_visible: Family::default(),
            queue_in_flight: Family::default(),
            queue_oldest: Family::default(),
        };
        let aws = registry.sub_registry_with_prefix("lambda");
        aws.register(
            "invocations",
            "Lambda's Invocations: runs of the function code (throttles excluded)",
            lambda.invocations.clone(),
        );
        aws.register("errors", "Lambda's Errors: invocations that failed (errors and timeouts)", lambda.errors.clone());
        aws.register(
            "throttles",
            "Lambda's Throttles: requests refused at a concurrency limit",
            lambda.throttles.clone(),
        );
        aws.register("duration_milliseconds", "Lambda's Duration: handler start to finish", lambda.duration.clone());
        aws.register(
            "concurrent_executions",
            "Lambda's ConcurrentExecutions: invocations running now",
            lambda.concurrent.clone(),
        );
        aws.register(
            "async_events_received",
            "Lambda's AsyncEventsReceived: events queued for the function",
            lambda.async_received.clone(),
        );
        aws.register(
            "async_event_age_milliseconds",
            "Lambda's AsyncEventAge: from an event's acceptance to each run of it",
            lambda.async_age.clone(),
        );
        aws.register(
            "async_events_dropped",
            "Lambda's AsyncEventsDropped: events failed for good (out of retries or too old)",
            lambda.async_dropped.clone(),
        );
        aws.register(
            "dead_letter_errors",
            "Lambda's DeadLetterErrors: failed events whose dead-letter topic has no subscriber",
            lambda.dead_letter_errors.clone(),
        );
        aws.register(
            "destination_delivery_failures",
            "Lambda's DestinationDeliveryFailures: records for a destination topic with no subscriber",
            lambda.destination_failures.clone(),
        );
        let sqs = registry.sub_registry_with_prefix("sqs");
        sqs.register(
            "approximate_number_of_messages_visible",
            "SQS's ApproximateNumberOfMessagesVisible: messages ready for delivery",
            lambda.queue_visible.clone(),
        );
        sqs.register(
            "approximate_number_of_messages_not_visible",
            "SQS's ApproximateNumberOfMessagesNotVisible: messages delivered and not yet handled",
            lambda.queue_in_flight.clone(),
        );
        sqs.register(
            "approximate_age_of_oldest_message_seconds",
            "SQS's ApproximateAgeOfOldestMessage: how long the oldest visible message has waited",
            lambda.queue_oldest.clone(),
        );
        lambda
    }
}

impl FaasFamilies {
    fn new() -> Self {
        let mut registry = Registry::default();
        let faas = Self {
            invocations: Family::default(),
            errors: Family::default(),
            timeouts: Family::default(),
            coldstarts: Family::default(),
            invoke_duration: family(duration_histogram),
            init_duration: family(duration_histogram),
            mem_usage: family(memory_histogram),
            registry: Registry::default(),
        };
        let otel = registry.sub_registry_with_prefix("faas");
        otel.register("invocations", "faas.invocations: invocations of the function", faas.invocations.clone());
        otel.register("errors", "faas.errors: invocations that failed", faas.errors.clone());
        otel.register("timeouts", "faas.timeouts: invocations that ran out of time", faas.timeouts.clone());
        otel.register("coldstarts", "faas.coldstarts: invocations that started an instance", faas.coldstarts.clone());
        otel.register(
            "invoke_duration_seconds",
            "faas.invoke_duration: the handler's run",
            faas.invoke_duration.clone(),
        );
        otel.register("init_duration_seconds", "faas.init_duration: an instance's start", faas.init_duration.clone());
        otel.register("mem_usage_bytes", "faas.mem_usage: the most memory an invocation used", faas.mem_usage.clone());
        Self { registry, ..faas }
    }
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
        let lambda = LambdaFamilies::register(&mut registry);
        Self {
            registry,
            invocations,
            duration,
            cold_starts,
            throttles,
            concurrent,
            instances,
            lambda,
            faas: FaasFamilies::new(),
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
        let version = VersionLabels { function: function.clone(), version: record.version.to_string() };
        let faas = FaasLabels {
            faas_name: function.clone(),
            faas_version: record.version.to_string(),
            faas_trigger: crate::faas_trigger(record.trigger).to_owned(),
        };
        let labels = FunctionLabels { function };
        if record.status == InvocationStatus::Throttled {
            self.throttles.get_or_create(&labels).inc();
            self.lambda.throttles.get_or_create(&version).inc();
            return;
        }
        if record.cold {
            self.cold_starts.get_or_create(&labels).inc();
            self.faas.coldstarts.get_or_create(&faas).inc();
        }
        self.duration.get_or_create(&labels).observe(record.duration.as_secs_f64());

        self.lambda.invocations.get_or_create(&version).inc();
        self.lambda.duration.get_or_create(&version).observe(record.duration.as_secs_f64() * 1000.0);
        self.faas.invocations.get_or_create(&faas).inc();
        self.faas.invoke_duration.get_or_create(&faas).observe(record.duration.as_secs_f64());
        if let Some(init) = record.init_duration {
            self.faas.init_duration.get_or_create(&faas).observe(init.as_secs_f64());
        }
        if record.max_memory_used > 0 {
            self.faas.mem_usage.get_or_create(&faas).observe(record.max_memory_used as f64);
        }
        match record.status {
            InvocationStatus::Error => {
                self.lambda.errors.get_or_create(&version).inc();
                self.faas.errors.get_or_create(&faas).inc();
            }
            InvocationStatus::Timeout => {
                self.lambda.errors.get_or_create(&version).inc();
                self.faas.errors.get_or_create(&faas).inc();
                self.faas.timeouts.get_or_create(&faas).inc();
            }
            InvocationStatus::Success | InvocationStatus::Throttled => {}
        }
    }

    /// Counts what the event layer saw happen to `function`'s asynchronous events.
    pub fn async_event(&self, function: &str, what: AsyncEventMetric) {
        let labels = FunctionLabels { function: function.to_owned() };
        match what {
            AsyncEventMetric::Received(count) => {
                self.lambda.async_received.get_or_create(&labels).inc_by(count);
            }
            AsyncEventMetric::Taken { age } => {
                self.lambda.async_age.get_or_create(&labels).observe(age.as_secs_f64() * 1000.0);
            }
            AsyncEventMetric::Dropped => {
                self.lambda.async_dropped.get_or_create(&labels).inc();
            }
            AsyncEventMetric::DeadLetterError => {
                self.lambda.dead_letter_errors.get_or_create(&labels).inc();
            }
            AsyncEventMetric::DestinationFailure => {
                self.lambda.destination_failures.get_or_create(&labels).inc();
            }
        }
    }

    /// Renders every metric in the Prometheus text format, with the gauges set from
    /// `instances` (per version) and `queues`.
    pub fn render(&self, instances: &[InstanceCounts], queues: &[QueueGauge]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.instances.clear();
        self.concurrent.clear();
        self.lambda.concurrent.clear();
        for counts in instances {
            for (state, n) in [("idle", counts.idle), ("busy", counts.busy), ("starting", counts.starting)] {
                let labels = InstanceLabels { function: counts.function.clone(), state: state.to_owned() };
                self.instances.get_or_create(&labels).inc_by(i64::from(n));
            }
            self.concurrent
                .get_or_create(&FunctionLabels { function: counts.function.clone() })
                .inc_by(i64::from(counts.busy));
            let version = VersionLabels { function: counts.function.clone(), version: counts.version.to_string() };
            self.lambda.concurrent.get_or_create(&version).inc_by(i64::from(counts.busy));
        }
        self.lambda.queue_visible.clear();
        self.lambda.queue_in_flight.clear();
        self.lambda.queue_oldest.clear();
        for queue in queues {
            let labels = QueueLabels { queue: queue.queue.clone() };
            self.lambda.queue_visible.get_or_create(&labels).set(queue.visible);
            self.lambda.queue_in_flight.get_or_create(&labels).set(queue.in_flight);
            self.lambda.queue_oldest.get_or_create(&labels).set(queue.oldest_age_seconds);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.faas.registry);
        let _ = prometheus_client::encoding::text::encode_eof(&mut text);
        text
    }
}

/// What happened to an asynchronous event, for Lambda's async metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncEventMetric {
    /// This many events were queued (AsyncEventsReceived).
    Received(u64),
    /// An event was taken to run, `age` after its acceptance (AsyncEventAge).
    Taken { age: std::time::Duration },
    /// An event failed for good (AsyncEventsDropped).
    Dropped,
    /// A failed event's dead-letter topic has no subscriber (DeadLetterErrors).
    DeadLetterError,
    /// A destination topic has no subscriber for a record (DestinationDeliveryFailures).
    DestinationFailure,
}
