//! Metrics: counters and histograms fed from invocation records and the event layer,
//! and gauges of instances, concurrency and queue depths sampled from the platform.
//!
//! Three sets of names: Updraft's own (`updraft.*`), Lambda's CloudWatch metrics by
//! their names (`updraft.lambda.*` per function and version, `updraft.sqs.*` per queue),
//! and OpenTelemetry's FaaS metrics (`faas.*`, with `faas.name`, `faas.version` and
//! `faas.trigger`), so dashboards made for Lambda or for OpenTelemetry read them
//! unchanged.
//!
//! Every metric is declared once and lives in two forms: a Prometheus family that
//! `/metrics` renders (named as OpenTelemetry's Prometheus exporter names it: dots
//! become underscores, the unit a suffix, counters end in `_total`), and, when metrics
//! are exported over OTLP, an OpenTelemetry instrument with the same name, unit and
//! labels. A collector and a scraper see the same figures.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use updraft_model::{InvocationRecord, InvocationStatus};

use crate::otlp::ExportCounters;

/// A label set in both forms: Prometheus labels and OpenTelemetry attributes, with
/// the same keys (`faas.name` is written `faas_name` in Prometheus).
trait Labels: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static {
    fn attributes(&self) -> Vec<KeyValue>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
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

impl Labels for FunctionLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![KeyValue::new("function", self.function.clone())]
    }
}

impl Labels for StatusLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![KeyValue::new("function", self.function.clone()), KeyValue::new("status", self.status.clone())]
    }
}

impl Labels for VersionLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![KeyValue::new("function", self.function.clone()), KeyValue::new("version", self.version.clone())]
    }
}

impl Labels for FaasLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("faas.name", self.faas_name.clone()),
            KeyValue::new("faas.version", self.faas_version.clone()),
            KeyValue::new("faas.trigger", self.faas_trigger.clone()),
        ]
    }
}

impl Labels for QueueLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![KeyValue::new("queue", self.queue.clone())]
    }
}

impl Labels for InstanceLabels {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![KeyValue::new("function", self.function.clone()), KeyValue::new("state", self.state.clone())]
    }
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

/// What the gauges were last set from.
#[derive(Debug, Default)]
struct Sampled {
    instances: Vec<InstanceCounts>,
    queues: Vec<QueueGauge>,
}

/// A metric's unit: OpenTelemetry's code and the suffix Prometheus names carry.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn code(self) -> &'static str {
        match self {
            Self::Seconds => "s",
            Self::Milliseconds => "ms",
            Self::Bytes => "By",
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Self::Seconds => "seconds",
            Self::Milliseconds => "milliseconds",
            Self::Bytes => "bytes",
        }
    }
}

/// Exponential histogram buckets: the first bound, its factor and how many.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    start: f64,
    factor: f64,
    count: u16,
}

impl Buckets {
    /// 100 µs to ~900 s, doubling.
    const SECONDS: Self = Self { start: 0.000_1, factor: 2.0, count: 24 };
    /// 0.1 ms to ~900 s, doubling.
    const MILLISECONDS: Self = Self { start: 0.1, factor: 2.0, count: 24 };
    /// 1 ms to ~6 h (Lambda's longest event age), quadrupling.
    const AGE: Self = Self { start: 1.0, factor: 4.0, count: 13 };
    /// 1 MiB to 16 GiB, doubling.
    const MEMORY: Self = Self { start: 1_048_576.0, factor: 2.0, count: 15 };

    fn bounds(self) -> impl Iterator<Item = f64> {
        exponential_buckets(self.start, self.factor, self.count)
    }
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.bounds())
    }
}

/// A counter: its Prometheus family and, when exported, its instrument.
struct CounterFamily<L: Labels> {
    prometheus: Family<L, Counter>,
    otel: Option<opentelemetry::metrics::Counter<u64>>,
}

impl<L: Labels> CounterFamily<L> {
    fn add(&self, labels: &L, n: u64) {
        self.prometheus.get_or_create(labels).inc_by(n);
        if let Some(counter) = &self.otel {
            counter.add(n, &labels.attributes());
        }
    }
}

/// A histogram: its Prometheus family and, when exported, its instrument (with the
/// same bucket bounds).
struct HistogramFamily<L: Labels> {
    prometheus: Family<L, Histogram, Buckets>,
    otel: Option<opentelemetry::metrics::Histogram<f64>>,
}

impl<L: Labels> HistogramFamily<L> {
    fn observe(&self, labels: &L, value: f64) {
        self.prometheus.get_or_create(labels).observe(value);
        if let Some(histogram) = &self.otel {
            histogram.record(value, &labels.attributes());
        }
    }
}

/// How a gauge's values are read from a sample.
type GaugeReading<L> = fn(&Sampled) -> Vec<(L, i64)>;

/// A gauge: set from the last sample, in Prometheus on render and in OpenTelemetry
/// when the exporter collects.
struct GaugeFamily<L: Labels> {
    prometheus: Family<L, Gauge>,
    read: GaugeReading<L>,
    _otel: Option<ObservableGauge<i64>>,
}

impl<L: Labels> GaugeFamily<L> {
    fn set_from(&self, sampled: &Sampled) {
        self.prometheus.clear();
        for (labels, value) in (self.read)(sampled) {
            self.prometheus.get_or_create(&labels).set(value);
        }
    }
}

/// Declares metrics in both forms under one prefix.
struct Declare<'a> {
    registry: &'a mut Registry,
    /// The OpenTelemetry name's prefix (`updraft.lambda`); the registry carries the
    /// Prometheus one.
    prefix: &'static str,
    meter: Option<&'a Meter>,
    sampled: &'a Arc<Mutex<Sampled>>,
}

impl Declare<'_> {
    fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn counter<L: Labels>(&mut self, name: &'static str, help: &'static str) -> CounterFamily<L> {
        let prometheus = Family::<L, Counter>::default();
        self.registry.register(name, help, prometheus.clone());
        let otel = self.meter.map(|meter| meter.u64_counter(self.name(name)).with_description(help).build());
        CounterFamily { prometheus, otel }
    }

    fn histogram<L: Labels>(
        &mut self,
        name: &'static str,
        unit: Unit,
        buckets: Buckets,
        help: &'static str,
    ) -> HistogramFamily<L> {
        let prometheus = Family::<L, Histogram, Buckets>::new_with_constructor(buckets);
        self.registry.register(format!("{name}_{}", unit.suffix()), help, prometheus.clone());
        let otel = self.meter.map(|meter| {
            meter
                .f64_histogram(self.name(name))
                .with_description(help)
                .with_unit(unit.code())
                .with_boundaries(buckets.bounds().collect())
                .build()
        });
        HistogramFamily { prometheus, otel }
    }

    fn gauge<L: Labels>(
        &mut self,
        name: &'static str,
        unit: Option<Unit>,
        help: &'static str,
        read: GaugeReading<L>,
    ) -> GaugeFamily<L> {
        let prometheus = Family::<L, Gauge>::default();
        let registered = match unit {
            Some(unit) => format!("{name}_{}", unit.suffix()),
            None => name.to_owned(),
        };
        self.registry.register(registered, help, prometheus.clone());
        let otel = self.meter.map(|meter| {
            let sampled = self.sampled.clone();
            let mut gauge = meter.i64_observable_gauge(self.name(name)).with_description(help);
            if let Some(unit) = unit {
                gauge = gauge.with_unit(unit.code());
            }
            gauge
                .with_callback(move |observer| {
                    let sampled = sampled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    for (labels, value) in read(&sampled) {
                        observer.observe(value, &labels.attributes());
                    }
                })
                .build()
        });
        GaugeFamily { prometheus, read, _otel: otel }
    }

    /// A counter kept elsewhere (the exporter's), exported as it stands.
    fn observed_counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        counter: Counter,
    ) -> Option<ObservableCounter<u64>> {
        self.registry.register(name, help, counter.clone());
        self.meter.map(|meter| {
            meter
                .u64_observable_counter(self.name(name))
                .with_description(help)
                .with_callback(move |observer| observer.observe(counter.get(), &[]))
                .build()
        })
    }
}

/// Lambda's CloudWatch metrics, by their names.
struct LambdaFamilies {
    invocations: CounterFamily<VersionLabels>,
    errors: CounterFamily<VersionLabels>,
    throttles: CounterFamily<VersionLabels>,
    duration: HistogramFamily<VersionLabels>,
    concurrent: GaugeFamily<VersionLabels>,
    async_received: CounterFamily<FunctionLabels>,
    async_age: HistogramFamily<FunctionLabels>,
    async_dropped: CounterFamily<FunctionLabels>,
    dead_letter_errors: CounterFamily<FunctionLabels>,
    destination_failures: CounterFamily<FunctionLabels>,
}

/// SQS's queue metrics, by their names.
struct SqsFamilies {
    visible: GaugeFamily<QueueLabels>,
    in_flight: GaugeFamily<QueueLabels>,
    oldest: GaugeFamily<QueueLabels>,
}

/// OpenTelemetry's FaaS metrics (semantic conventions, `faas.*`).
struct FaasFamilies {
    invocations: CounterFamily<FaasLabels>,
    errors: CounterFamily<FaasLabels>,
    timeouts: CounterFamily<FaasLabels>,
    coldstarts: CounterFamily<FaasLabels>,
    invoke_duration: HistogramFamily<FaasLabels>,
    init_duration: HistogramFamily<FaasLabels>,
    mem_usage: HistogramFamily<FaasLabels>,
}

/// The error type of an invocation stopped as a recursive loop.
const RECURSIVE_INVOCATION: &str = "RecursiveInvocationException";

/// The metric families, their registries and, when metrics are exported, their
/// instruments.
pub struct Metrics {
    registry: Registry,
    faas_registry: Registry,
    invocations: CounterFamily<StatusLabels>,
    duration: HistogramFamily<FunctionLabels>,
    cold_starts: CounterFamily<FunctionLabels>,
    throttles: CounterFamily<FunctionLabels>,
    recursion_stopped: CounterFamily<FunctionLabels>,
    concurrent: GaugeFamily<FunctionLabels>,
    instances: GaugeFamily<InstanceLabels>,
    lambda: LambdaFamilies,
    sqs: SqsFamilies,
    faas: FaasFamilies,
    _exported: Vec<ObservableCounter<u64>>,
    /// The last sample of the gauges; a render sets the Prometheus ones from it while
    /// holding it, so renders take turns.
    sampled: Arc<Mutex<Sampled>>,
}

fn busy_by_function(sampled: &Sampled) -> Vec<(FunctionLabels, i64)> {
    let mut busy: BTreeMap<FunctionLabels, i64> = BTreeMap::new();
    for counts in &sampled.instances {
        *busy.entry(FunctionLabels { function: counts.function.clone() }).or_default() += i64::from(counts.busy);
    }
    busy.into_iter().collect()
}

fn instances_by_state(sampled: &Sampled) -> Vec<(InstanceLabels, i64)> {
    let mut states: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
    for counts in &sampled.instances {
        for (state, n) in [("idle", counts.idle), ("busy", counts.busy), ("starting", counts.starting)] {
            *states.entry((counts.function.clone(), state)).or_default() += i64::from(n);
        }
    }
    states.into_iter().map(|((function, state), n)| (InstanceLabels { function, state: state.to_owned() }, n)).collect()
}

fn busy_by_version(sampled: &Sampled) -> Vec<(VersionLabels, i64)> {
    sampled
        .instances
        .iter()
        .map(|counts| {
            let labels = VersionLabels { function: counts.function.clone(), version: counts.version.to_string() };
            (labels, i64::from(counts.busy))
        })
        .collect()
}

fn queue_reading(sampled: &Sampled, value: fn(&QueueGauge) -> i64) -> Vec<(QueueLabels, i64)> {
    sampled.queues.iter().map(|queue| (QueueLabels { queue: queue.queue.clone() }, value(queue))).collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None, ExportCounters::default())
    }
}

impl Metrics {
    /// The metric families, with the OTLP exporters' `export` counters; with a
    /// `meter`, each also as an OpenTelemetry instrument that meter's provider exports.
    pub fn new(meter: Option<&Meter>, export: ExportCounters) -> Self {
        let sampled = Arc::new(Mutex::new(Sampled::default()));
        let mut registry = Registry::with_prefix("updraft");
        let mut own = Declare { registry: &mut registry, prefix: "updraft", meter, sampled: &sampled };
        let invocations = own.counter("invocations", "Invocations by function and status");
        let duration = own.histogram(
            "invocation_duration",
            Unit::Seconds,
            Buckets::SECONDS,
            "Invocation duration (handler start to finish), throttles excluded",
        );
        let cold_starts = own.counter("cold_starts", "Invocations that started a new instance");
        let throttles = own.counter("throttles", "Invocations refused at a concurrency limit");
        let recursion_stopped = own.counter(
            "recursive_invocations_dropped",
            "Invocations stopped as a recursive loop (Lambda's RecursiveInvocationsDropped)",
        );
        let concurrent = own.gauge("concurrent_executions", None, "Invocations running now", busy_by_function);
        let instances = own.gauge("instances", None, "Instances by state (idle, busy, starting)", instances_by_state);
        let exported = [
            own.observed_counter("trace_spans_exported", "Spans sent to the OTLP collector", export.exported.clone()),
            own.observed_counter(
                "trace_spans_dropped",
                "Spans dropped because the OTLP exporter's queue was full (the collector is slow or away)",
                export.dropped.clone(),
            ),
            own.observed_counter("trace_spans_failed", "Spans the OTLP collector did not take", export.failed.clone()),
            own.observed_counter(
                "metric_exports_failed",
                "Metric exports the OTLP collector did not take",
                export.metric_exports_failed.clone(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();

        let mut aws = Declare {
            registry: registry.sub_registry_with_prefix("lambda"),
            prefix: "updraft.lambda",
            meter,
            sampled: &sampled,
        };
        let lambda = LambdaFamilies {
            invocations: aws
                .counter("invocations", "Lambda's Invocations: runs of the function code (throttles excluded)"),
            errors: aws.counter("errors", "Lambda's Errors: invocations that failed (errors and timeouts)"),
            throttles: aws.counter("throttles", "Lambda's Throttles: requests refused at a concurrency limit"),
            duration: aws.histogram(
                "duration",
                Unit::Milliseconds,
                Buckets::MILLISECONDS,
                "Lambda's Duration: handler start to finish",
            ),
            concurrent: aws.gauge(
                "concurrent_executions",
                None,
                "Lambda's ConcurrentExecutions: invocations running now",
                busy_by_version,
            ),
            async_received: aws
                .counter("async_events_received", "Lambda's AsyncEventsReceived: events queued for the function"),
            async_age: aws.histogram(
                "async_event_age",
                Unit::Milliseconds,
                Buckets::AGE,
                "Lambda's AsyncEventAge: from an event's acceptance to each run of it",
            ),
            async_dropped: aws.counter(
                "async_events_dropped",
                "Lambda's AsyncEventsDropped: events failed for good (out of retries or too old)",
            ),
            dead_letter_errors: aws.counter(
                "dead_letter_errors",
                "Lambda's DeadLetterErrors: failed events whose dead-letter topic has no subscriber",
            ),
            destination_failures: aws.counter(
                "destination_delivery_failures",
                "Lambda's DestinationDeliveryFailures: records for a destination topic with no subscriber",
            ),
        };
        let mut sqs = Declare {
            registry: registry.sub_registry_with_prefix("sqs"),
            prefix: "updraft.sqs",
            meter,
            sampled: &sampled,
        };
        let sqs = SqsFamilies {
            visible: sqs.gauge(
                "approximate_number_of_messages_visible",
                None,
                "SQS's ApproximateNumberOfMessagesVisible: messages ready for delivery",
                |sampled| queue_reading(sampled, |queue| queue.visible),
            ),
            in_flight: sqs.gauge(
                "approximate_number_of_messages_not_visible",
                None,
                "SQS's ApproximateNumberOfMessagesNotVisible: messages delivered and not yet handled",
                |sampled| queue_reading(sampled, |queue| queue.in_flight),
            ),
            oldest: sqs.gauge(
                "approximate_age_of_oldest_message",
                Some(Unit::Seconds),
                "SQS's ApproximateAgeOfOldestMessage: how long the oldest visible message has waited",
                |sampled| queue_reading(sampled, |queue| queue.oldest_age_seconds),
            ),
        };

        let mut faas_registry = Registry::default();
        let mut otel = Declare {
            registry: faas_registry.sub_registry_with_prefix("faas"),
            prefix: "faas",
            meter,
            sampled: &sampled,
        };
        let faas = FaasFamilies {
            invocations: otel.counter("invocations", "faas.invocations: invocations that succeeded"),
            errors: otel.counter("errors", "faas.errors: invocations that failed"),
            timeouts: otel.counter("timeouts", "faas.timeouts: invocations that ran out of time"),
            coldstarts: otel.counter("coldstarts", "faas.coldstarts: invocations that started an instance"),
            invoke_duration: otel.histogram(
                "invoke_duration",
                Unit::Seconds,
                Buckets::SECONDS,
                "faas.invoke_duration: the handler's run",
            ),
            init_duration: otel.histogram(
                "init_duration",
                Unit::Seconds,
                Buckets::SECONDS,
                "faas.init_duration: an instance's start",
            ),
            mem_usage: otel.histogram(
                "mem_usage",
                Unit::Bytes,
                Buckets::MEMORY,
                "faas.mem_usage: the most memory an invocation used",
            ),
        };
        Self {
            registry,
            faas_registry,
            invocations,
            duration,
            cold_starts,
            throttles,
            recursion_stopped,
            concurrent,
            instances,
            lambda,
            sqs,
            faas,
            _exported: exported,
            sampled,
        }
    }

    /// Counts one finished invocation.
    pub fn record(&self, record: &InvocationRecord) {
        let function = record.function.to_string();
        let version = record.version.to_string();
        self.invocations
            .add(&StatusLabels { function: function.clone(), status: record.status.as_str().to_owned() }, 1);
        let by_version = VersionLabels { function: function.clone(), version: version.clone() };
        if record.status == InvocationStatus::Throttled {
            self.lambda.throttles.add(&by_version, 1);
            self.throttles.add(&FunctionLabels { function }, 1);
            return;
        }
        // Stopped before it ran: not an invocation of the code, as a throttle is not.
        if record.error_type.as_deref() == Some(RECURSIVE_INVOCATION) {
            self.recursion_stopped.add(&FunctionLabels { function }, 1);
            return;
        }
        let faas = FaasLabels {
            faas_name: function.clone(),
            faas_version: version,
            faas_trigger: crate::faas_trigger(record.trigger).to_owned(),
        };
        let by_function = FunctionLabels { function };
        let seconds = record.duration.as_secs_f64();
        if record.cold {
            self.cold_starts.add(&by_function, 1);
            self.faas.coldstarts.add(&faas, 1);
        }
        self.duration.observe(&by_function, seconds);
        self.lambda.invocations.add(&by_version, 1);
        self.lambda.duration.observe(&by_version, seconds * 1000.0);
        self.faas.invoke_duration.observe(&faas, seconds);
        if let Some(init) = record.init_duration {
            self.faas.init_duration.observe(&faas, init.as_secs_f64());
        }
        if record.max_memory_used > 0 {
            self.faas.mem_usage.observe(&faas, record.max_memory_used as f64);
        }
        match record.status {
            InvocationStatus::Success => self.faas.invocations.add(&faas, 1),
            InvocationStatus::Error => {
                self.lambda.errors.add(&by_version, 1);
                self.faas.errors.add(&faas, 1);
            }
            InvocationStatus::Timeout => {
                self.lambda.errors.add(&by_version, 1);
                self.faas.errors.add(&faas, 1);
                self.faas.timeouts.add(&faas, 1);
            }
            InvocationStatus::Throttled => {}
        }
    }

    /// Counts what the event layer saw happen to `function`'s asynchronous events.
    pub fn async_event(&self, function: &str, what: AsyncEventMetric) {
        let labels = FunctionLabels { function: function.to_owned() };
        match what {
            AsyncEventMetric::Received(count) => self.lambda.async_received.add(&labels, count),
            AsyncEventMetric::Taken { age } => self.lambda.async_age.observe(&labels, age.as_secs_f64() * 1000.0),
            AsyncEventMetric::Dropped => self.lambda.async_dropped.add(&labels, 1),
            AsyncEventMetric::DeadLetterError => self.lambda.dead_letter_errors.add(&labels, 1),
            AsyncEventMetric::DestinationFailure => self.lambda.destination_failures.add(&labels, 1),
        }
    }

    /// Keeps `instances` (per version) and `queues` as the gauges' values, for the
    /// next export.
    pub fn sample(&self, instances: Vec<InstanceCounts>, queues: Vec<QueueGauge>) {
        *self.sampled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Sampled { instances, queues };
    }

    /// Renders every metric in the Prometheus text format, with the gauges set from
    /// `instances` (per version) and `queues`.
    pub fn render(&self, instances: Vec<InstanceCounts>, queues: Vec<QueueGauge>) -> String {
        let mut sampled = self.sampled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *sampled = Sampled { instances, queues };
        self.concurrent.set_from(&sampled);
        self.instances.set_from(&sampled);
        self.lambda.concurrent.set_from(&sampled);
        self.sqs.visible.set_from(&sampled);
        self.sqs.in_flight.set_from(&sampled);
        self.sqs.oldest.set_from(&sampled);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.faas_registry);
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
