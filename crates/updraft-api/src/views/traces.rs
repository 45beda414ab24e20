//! The views of traces: each invocation a span with its parts, as the OTLP export sends
//! them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use updraft_platform::{Attribute, InvocationRecord, InvocationStatus, Span};
use utoipa::ToSchema;

/// One span of a trace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpanView {
    /// 16 hex digits.
    pub span_id: String,
    /// The span it is part of, or the caller's; absent for a trace's root.
    pub parent_span_id: Option<String>,
    /// An invocation's span is named after its function; its parts are `queued`,
    /// `init` and `run`.
    pub name: String,
    /// `server`, `consumer` or `internal`.
    pub kind: String,
    /// Microseconds since the Unix epoch.
    pub start_us: i64,
    pub duration_us: i64,
    /// Why it failed; absent when it did not.
    pub error: Option<String>,
    /// OpenTelemetry attributes (`faas.*`, `updraft.*`, `messaging.*`, `error.type`).
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Spans in other traces this one is linked to: for a queue batch, the span that
    /// sent each of its messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<SpanLinkView>,
}

/// A span in another trace (or elsewhere in this one).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpanLinkView {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
}

impl SpanView {
    pub fn new(span: &Span) -> Self {
        let attributes = span
            .attributes
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Attribute::Text(text) => serde_json::Value::from(text.as_str()),
                    Attribute::Int(n) => serde_json::Value::from(*n),
                    Attribute::Bool(b) => serde_json::Value::from(*b),
                };
                ((*key).to_owned(), value)
            })
            .collect();
        Self {
            span_id: span.span_id.clone(),
            parent_span_id: span.parent_span_id.clone(),
            name: span.name.clone(),
            kind: span.kind.as_str().to_owned(),
            start_us: span.start_ns / 1000,
            duration_us: (span.end_ns - span.start_ns) / 1000,
            error: span.error.clone(),
            attributes,
            links: span
                .links
                .iter()
                .map(|link| SpanLinkView { trace_id: link.trace_id.clone(), span_id: link.span_id.clone() })
                .collect(),
        }
    }
}

/// A trace: the spans of every invocation kept that took part in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraceView {
    #[serde(flatten)]
    pub summary: TraceSummaryView,
    /// By start time.
    pub spans: Vec<SpanView>,
}

/// What a trace came to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraceSummaryView {
    pub trace_id: String,
    /// The function of its first invocation.
    pub root: String,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// From its first span's start to its last span's end.
    pub duration_ms: f64,
    pub invocations: usize,
    /// Invocations that did not succeed (errors, timeouts, throttles).
    pub failed: usize,
}

impl TraceSummaryView {
    /// `records` in arrival order, with their spans.
    pub fn new(records: &[InvocationRecord], spans: &[Span]) -> Self {
        let start = spans.iter().map(|span| span.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|span| span.end_ns).max().unwrap_or(start);
        Self {
            trace_id: records.first().map(|record| record.trace_id.clone()).unwrap_or_default(),
            root: records.first().map(|record| record.function.to_string()).unwrap_or_default(),
            started_at_ms: start / 1_000_000,
            duration_ms: (end - start) as f64 / 1e6,
            invocations: records.len(),
            failed: records.iter().filter(|record| record.status != InvocationStatus::Success).count(),
        }
    }
}

impl TraceView {
    /// The trace of `records` (in arrival order).
    pub fn new(records: &[InvocationRecord]) -> Self {
        let mut spans: Vec<Span> = records.iter().flat_map(updraft_platform::invocation_spans).collect();
        spans.sort_by_key(|span| span.start_ns);
        Self { summary: TraceSummaryView::new(records, &spans), spans: spans.iter().map(SpanView::new).collect() }
    }
}

/// The latest traces, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraceListView {
    pub traces: Vec<TraceSummaryView>,
}
