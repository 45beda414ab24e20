//! OTLP export of spans: batched on a thread of its own, never on the request path.
//!
//! Spans are made from invocation records once they are stored and handed over with
//! [`SpanExport::send`], which never waits: when the queue to the exporter is full (the
//! collector is slow or away) the spans are dropped and counted. The exporter thread
//! sends a batch when it holds [`BATCH`] spans or when [`LINGER`] has passed since the
//! first, over OTLP/HTTP with protobuf (`opentelemetry-otlp`, whose own retries apply).

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use prometheus_client::metrics::counter::Counter;

use crate::trace::{Attribute, Span, SpanKind};

/// Spans in one export request, at most.
pub const BATCH: usize = 512;
/// How long the first span of a batch waits for others.
pub const LINGER: Duration = Duration::from_secs(1);
/// Spans waiting for the exporter, at most; beyond this they are dropped.
pub const QUEUE: usize = 16 * 1024;

/// Where spans go.
#[derive(Debug, Clone, Default)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://collector:4318`): spans go to its
    /// `/v1/traces`. `None` leaves it to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Headers for every request (`OTEL_EXPORTER_OTLP_HEADERS` is also read).
    pub headers: Vec<(String, String)>,
    /// This node's id: the resource's `service.instance.id`.
    pub node: String,
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP span exporter: {detail}")]
pub struct ExportSetupError {
    detail: String,
}

/// The exporter's counters, shown in the Prometheus metrics.
#[derive(Debug, Clone, Default)]
pub struct ExportCounters {
    pub exported: Counter,
    pub dropped: Counter,
    pub failed: Counter,
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
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(Duration::from_secs(10));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
        }
        if !config.headers.is_empty() {
            builder = builder.with_headers(config.headers.iter().cloned().collect());
        }
        let mut exporter = builder.build().map_err(|error| ExportSetupError { detail: error.to_string() })?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("updraft");
        }
        let resource = resource.with_attribute(KeyValue::new("service.instance.id", config.node.clone())).build();
        exporter.set_resource(&resource);

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

fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    receiver: mpsc::Receiver<Vec<Span>>,
    counters: ExportCounters,
) {
    let scope = InstrumentationScope::builder("updraft").with_version(env!("CARGO_PKG_VERSION")).build();
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
        links: SpanLinks::default(),
        status: match &span.error {
            Some(message) => Status::error(message.clone()),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
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
        let config = OtlpConfig { endpoint: Some(endpoint), headers: Vec::new(), node: "n".to_owned() };
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
    }
}
