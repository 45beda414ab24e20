//! OTLP export of spans and metrics, each on a thread of its own, never on the request
//! path.
//!
//! Spans are made from invocation records once they are stored and handed over with
//! [`SpanExport::send`], which never waits: when the queue to the exporter is full (the
//! collector is slow or away) the spans are dropped and counted. The exporter thread
//! sends a batch when it holds [`BATCH`] spans or when [`LINGER`] has passed since the
//! first, over OTLP/HTTP with protobuf (`opentelemetry-otlp`, whose own retries apply).
//!
//! Metrics are the same families `/metrics` renders, as OpenTelemetry instruments of a
//! meter provider whose periodic reader collects and sends them every
//! [`OtlpConfig::metric_interval`] ([`MetricExport`]). Recording one is an update in
//! memory; a slow collector only delays the reader's thread, and an export it refuses
//! is counted.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use prometheus_client::metrics::counter::Counter;

use updraft_model::TraceParent;

use crate::trace::{Attribute, Span, SpanKind};

/// Spans in one export request, at most.
pub const BATCH: usize = 512;
/// How long the first span of a batch waits for others.
pub const LINGER: Duration = Duration::from_secs(1);
/// Spans waiting for the exporter, at most; beyond this they are dropped.
pub const QUEUE: usize = 16 * 1024;

/// Where spans and metrics go.
#[derive(Debug, Clone, Default)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://collector:4318`): spans go to its
    /// `/v1/traces`, metrics to its `/v1/metrics`. `None` leaves it to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Whether spans are exported.
    pub traces: bool,
    /// Whether metrics are exported.
    pub metrics: bool,
    /// How often metrics are sent; `None` leaves it to `OTEL_METRIC_EXPORT_INTERVAL`
    /// (milliseconds), or 60 s.
    pub metric_interval: Option<Duration>,
    /// Headers for every request (`OTEL_EXPORTER_OTLP_HEADERS` is also read).
    pub headers: Vec<(String, String)>,
    /// This node's id: the resource's `service.instance.id`.
    pub node: String,
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter: {detail}")]
pub struct ExportSetupError {
    detail: String,
}

/// The exporter's counters, shown in the Prometheus metrics.
#[derive(Debug, Clone, Default)]
pub struct ExportCounters {
    /// Spans sent.
    pub exported: Counter,
    /// Spans dropped because the queue to the exporter was full.
    pub dropped: Counter,
    /// Spans the collector did not take.
    pub failed: Counter,
    /// Metric exports the collector did not take.
    pub metric_exports_failed: Counter,
}

/// How long dropping the exporter waits for it to send what is queued: a collector
/// that is away must not hold up a server's shutdown.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// A running exporter. Dropping it sends what is queued (waiting at most
/// [`FLUSH_LIMIT`]) and stops the thread.
pub struct SpanExport {
    sender: Option<SyncSender<Vec<Span>>>,
    counters: ExportCounters,
    /// Closed by the thread when it has sent everything and stopped (behind a lock
    /// only so that the exporter can be shared).
    finished: Mutex<mpsc::Receiver<()>>,
}

impl SpanExport {
    /// Starts the exporter thread.
    pub fn start(config: &OtlpConfig, counters: ExportCounters) -> Result<Self, ExportSetupError> {
        let builder = http_to(opentelemetry_otlp::SpanExporter::builder().with_http(), config, "traces");
        let mut exporter = builder.build().map_err(|error| ExportSetupError { detail: error.to_string() })?;
        exporter.set_resource(&resource(config));

        let (sender, receiver) = mpsc::sync_channel::<Vec<Span>>(QUEUE / 64);
        let thread_counters = counters.clone();
        let (done, finished) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || {
                export_loop(exporter, receiver, thread_counters);
                drop(done);
            })
            .map_err(|error| ExportSetupError { detail: format!("starting its thread: {error}") })?;
        Ok(Self { sender: Some(sender), counters, finished: Mutex::new(finished) })
    }

    /// Queues `spans` for export, or drops and counts them if the queue is full.
    pub fn send(&self, spans: Vec<Span>) {
        let Some(sender) = &self.sender else { return };
        let count = spans.len() as u64;
        match sender.try_send(spans) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.inc_by(count);
            }
        }
    }
}

impl Drop for SpanExport {
    fn drop(&mut self) {
        self.sender.take();
        // Disconnected when the thread is done; a timeout leaves it to finish alone.
        let finished = self.finished.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = finished.recv_timeout(FLUSH_LIMIT);
    }
}

/// An OTLP/HTTP exporter's builder set up alike for every signal: protobuf, a 10 s
/// timeout, the collector's `/v1/{signal}` when an endpoint is given (else the
/// exporter's own variables decide), and the configured headers.
fn http_to<B: WithExportConfig + WithHttpConfig>(builder: B, config: &OtlpConfig, signal: &str) -> B {
    let mut builder =
        builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary).with_timeout(Duration::from_secs(10));
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(format!("{}/v1/{signal}", endpoint.trim_end_matches('/')));
    }
    if !config.headers.is_empty() {
        builder = builder.with_headers(config.headers.iter().cloned().collect());
    }
    builder
}

/// The resource every span and metric is sent with: the service (`updraft` unless
/// `OTEL_SERVICE_NAME` says otherwise) and this node.
fn resource(config: &OtlpConfig) -> Resource {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("updraft");
    }
    resource.with_attribute(KeyValue::new("service.instance.id", config.node.clone())).build()
}

/// The instrumentation scope of everything Updraft exports.
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("updraft").with_version(env!("CARGO_PKG_VERSION")).build()
}

/// A running metric export: a meter provider whose periodic reader sends every
/// instrument made from [`MetricExport::meter`] to the collector. Dropping it sends a
/// last collection (waiting at most [`FLUSH_LIMIT`]).
pub struct MetricExport {
    provider: Option<SdkMeterProvider>,
    meter: Meter,
}

impl MetricExport {
    /// Starts the reader's thread; `counters.metric_exports_failed` counts the exports
    /// the collector refused.
    pub fn start(config: &OtlpConfig, counters: &ExportCounters) -> Result<Self, ExportSetupError> {
        let builder = http_to(opentelemetry_otlp::MetricExporter::builder().with_http(), config, "metrics");
        let exporter = builder.build().map_err(|error| ExportSetupError { detail: error.to_string() })?;
        let exporter = CountingExporter { inner: exporter, failed: counters.metric_exports_failed.clone() };
        let mut reader = PeriodicReader::builder(exporter);
        if let Some(interval) = config.metric_interval {
            reader = reader.with_interval(interval);
        }
        let provider = SdkMeterProvider::builder().with_resource(resource(config)).with_reader(reader.build()).build();
        let meter = provider.meter_with_scope(scope());
        Ok(Self { provider: Some(provider), meter })
    }

    /// The meter to make instruments from.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }
}

impl Drop for MetricExport {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else { return };
        // Shutting down collects and sends once more, which blocks on the collector:
        // on a thread of its own, so that one that is away holds up nothing for long.
        let (done, finished) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new().name("otlp-metrics-stop".to_owned()).spawn(move || {
            let _ = provider.shutdown();
            drop(done);
        });
        if spawned.is_ok() {
            let _ = finished.recv_timeout(FLUSH_LIMIT);
        }
    }
}

/// The OTLP exporter, counting the exports that fail.
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::MetricExporter,
    failed: Counter,
}

impl PushMetricExporter for CountingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            let failures = self.failed.inc();
            // One warning, then one in a hundred: a collector that is away stays away.
            if failures.is_multiple_of(100) {
                tracing::warn!(%error, "exporting metrics over OTLP failed; this collection is dropped");
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    receiver: mpsc::Receiver<Vec<Span>>,
    counters: ExportCounters,
) {
    let scope = scope();
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut first_at: Option<Instant> = None;
    let mut open = true;
    while open {
        let wait = first_at.map_or(Duration::from_secs(3600), |first| LINGER.saturating_sub(first.elapsed()));
        match receiver.recv_timeout(wait) {
            Ok(spans) => {
                first_at.get_or_insert_with(Instant::now);
                batch.extend(spans.iter().map(|span| span_data(span, &scope)));
                if batch.len() < BATCH {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let sent = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        first_at = None;
        match futures::executor::block_on(exporter.export(sent)) {
            Ok(()) => {
                counters.exported.inc_by(count);
            }
            Err(error) => {
                counters.failed.inc_by(count);
                static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                // One warning, then one in a hundred: a collector that is away stays away.
                if FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(100) {
                    tracing::warn!(%error, spans = count, "exporting spans over OTLP failed; they are dropped");
                }
            }
        }
    }
    let _ = exporter.shutdown();
}

/// The SDK's form of one of Updraft's spans.
fn span_data(span: &Span, scope: &InstrumentationScope) -> SpanData {
    let trace_id = TraceId::from_hex(&span.trace_id).unwrap_or(TraceId::INVALID);
    let span_id = SpanId::from_hex(&span.span_id).unwrap_or(SpanId::INVALID);
    let parent = span.parent_span_id.as_deref().and_then(|id| SpanId::from_hex(id).ok()).unwrap_or(SpanId::INVALID);
    SpanData {
        span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::NONE),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: match span.kind {
            SpanKind::Server => OtelKind::Server,
            SpanKind::Consumer => OtelKind::Consumer,
            SpanKind::Internal => OtelKind::Internal,
        },
        name: Cow::Owned(span.name.clone()),
        start_time: time(span.start_ns),
        end_time: time(span.end_ns),
        attributes: span
            .attributes
            .iter()
            .map(|(key, value)| match value {
                Attribute::Text(text) => KeyValue::new(*key, text.clone()),
                Attribute::Int(n) => KeyValue::new(*key, *n),
                Attribute::Bool(b) => KeyValue::new(*key, *b),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: links(&span.links),
        status: match &span.error {
            Some(message) => Status::error(message.clone()),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The SDK's form of a span's links: each to a sampled remote span.
fn links(linked: &[TraceParent]) -> SpanLinks {
    let mut links = SpanLinks::default();
    links.links = linked
        .iter()
        .filter_map(|link| {
            let trace_id = TraceId::from_hex(&link.trace_id).ok()?;
            let span_id = SpanId::from_hex(&link.span_id).ok()?;
            let context = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, TraceState::NONE);
            Some(Link::with_context(context))
        })
        .collect();
    links
}

fn time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(i: usize) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: format!("{:016x}", i + 1),
            parent_span_id: None,
            name: "f".to_owned(),
            kind: SpanKind::Server,
            start_ns: 1,
            end_ns: 2,
            attributes: vec![("faas.coldstart", Attribute::Bool(true))],
            error: None,
            links: Vec::new(),
        }
    }

    #[test]
    fn a_collector_that_does_not_answer_costs_dropped_spans_not_a_blocked_caller() {
        // Accepts connections and never answers them.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let counters = ExportCounters::default();
        let config = OtlpConfig { endpoint: Some(endpoint), node: "n".to_owned(), ..OtlpConfig::default() };
        let export = SpanExport::start(&config, counters.clone()).unwrap();
        let sends = 4 * QUEUE / 64 + BATCH;
        let started = Instant::now();
        for i in 0..sends {
            export.send(vec![span(i)]);
        }
        let sending = started.elapsed();
        // The exporter holds one batch while it waits on the collector and the queue
        // holds its bound; everything beyond was dropped and counted, at once.
        assert!(counters.dropped.get() >= (sends - BATCH - QUEUE / 64) as u64, "dropped {}", counters.dropped.get());
        assert!(sending < FLUSH_LIMIT, "sending took {sending:?}");
        assert_eq!(counters.exported.get(), 0);
        drop(export);
    }

    #[test]
    fn a_span_keeps_its_ids_times_kind_and_error_in_the_sdks_form() {
        let scope = InstrumentationScope::builder("updraft").build();
        let mut failed = span(0);
        failed.parent_span_id = Some("00f067aa0ba902b7".to_owned());
        failed.error = Some("exit status 1".to_owned());
        failed.kind = SpanKind::Consumer;
        let data = span_data(&failed, &scope);
        assert_eq!(data.span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(data.span_context.span_id().to_string(), "0000000000000001");
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(data.span_kind, OtelKind::Consumer);
        assert_eq!(data.status, Status::error("exit status 1"));
        assert_eq!(data.start_time, UNIX_EPOCH + Duration::from_nanos(1));
        assert_eq!(data.attributes, vec![KeyValue::new("faas.coldstart", true)]);
        let root = span_data(&span(1), &scope);
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_eq!(root.status, Status::Unset);
        assert!(root.links.links.is_empty());

        let mut batch = span(2);
        batch.links = vec![TraceParent::new("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")];
        let linked = span_data(&batch, &scope).links.links;
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].span_context.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(linked[0].span_context.span_id().to_string(), "b7ad6b7169203331");
    }
}
