//! Spans from invocation records.
//!
//! An invocation's record holds everything its spans need (its trace, the span that
//! caused it, when it arrived, how long it waited, started and ran), so spans are made
//! from records after the fact, off the request path: the same spans whether they are
//! read back from the store (`updraft traces`, the API) or exported over OTLP.
//!
//! Each invocation is a span named after its function, following OpenTelemetry's FaaS
//! conventions (kind SERVER, CONSUMER for messages), with a child span for each part:
//! `queued` (waiting in the event queue), `init` (a cold start) and `run`.

use std::time::Duration;

use updraft_model::{InvocationPhase, InvocationRecord, InvocationStatus, TraceParent, TriggerKind, span_id_of};

/// One span, its times in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: i64,
    pub end_ns: i64,
    pub attributes: Vec<(&'static str, Attribute)>,
    /// `Some(message)` when the work it stands for failed.
    pub error: Option<String>,
    /// Spans it is linked to (a queue batch's: each message's sender).
    pub links: Vec<TraceParent>,
}

/// OpenTelemetry's span kinds that Updraft's spans use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// An invocation on a request or event.
    Server,
    /// An invocation on a message from a topic or queue.
    Consumer,
    /// A part of an invocation.
    Internal,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Consumer => "consumer",
            Self::Internal => "internal",
        }
    }
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Attribute {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for Attribute {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// The `faas.trigger` of an invocation set off by `trigger`.
pub fn faas_trigger(trigger: TriggerKind) -> &'static str {
    match trigger {
        TriggerKind::Http => "http",
        TriggerKind::Topic | TriggerKind::Queue => "pubsub",
        TriggerKind::Schedule => "timer",
        TriggerKind::Direct
        | TriggerKind::Async
        | TriggerKind::Webhook
        | TriggerKind::Email
        | TriggerKind::Workflow => "other",
    }
}

/// The spans of one invocation: its own, then its parts'.
pub fn invocation_spans(record: &InvocationRecord) -> Vec<Span> {
    let span_id = span_id_of(&record.id);
    let arrived = record.started_at.saturating_mul(1_000_000);
    let start = record.queued_since.map_or(arrived, |since| since.saturating_mul(1_000_000).min(arrived));
    let init = record.init_duration.unwrap_or(Duration::ZERO);
    let ran_from = arrived.saturating_add(nanos(init));
    let end = ran_from.saturating_add(nanos(record.duration));
    let failed =
        matches!(record.status, InvocationStatus::Error | InvocationStatus::Timeout | InvocationStatus::Throttled);
    let error = failed.then(|| record.error_message.clone().unwrap_or_else(|| record.status.to_string()));

    let mut attributes: Vec<(&'static str, Attribute)> = vec![
        ("faas.trigger", faas_trigger(record.trigger).into()),
        ("faas.invocation_id", record.id.as_str().into()),
        ("faas.coldstart", Attribute::Bool(record.cold)),
        ("faas.name", record.function.as_str().into()),
        ("faas.version", record.version.to_string().into()),
        ("faas.max_memory", Attribute::Int(i64::try_from(record.memory_limit).unwrap_or(i64::MAX))),
        ("faas.instance", record.node.as_str().into()),
        ("updraft.trigger", record.trigger.as_str().into()),
        ("updraft.status", record.status.as_str().into()),
        ("updraft.node", record.node.as_str().into()),
        ("updraft.billed_duration_ms", Attribute::Int(i64::try_from(record.billed_duration_ms()).unwrap_or(i64::MAX))),
        ("updraft.max_memory_used", Attribute::Int(i64::try_from(record.max_memory_used).unwrap_or(i64::MAX))),
    ];
    if let Some(error_type) = &record.error_type {
        attributes.push(("error.type", error_type.as_str().into()));
    }
    if record.trigger == TriggerKind::Queue {
        // A batch of messages, linked to their senders: OpenTelemetry's messaging
        // attributes for processing one.
        attributes.push(("messaging.system", "updraft".into()));
        attributes.push(("messaging.operation.name", "process".into()));
        attributes.push(("messaging.operation.type", "process".into()));
    }
    let kind = match record.trigger {
        TriggerKind::Topic | TriggerKind::Queue => SpanKind::Consumer,
        _ => SpanKind::Server,
    };
    let mut spans = vec![Span {
        trace_id: record.trace_id.clone(),
        span_id: span_id.clone(),
        parent_span_id: record.parent_span_id.clone(),
        name: record.function.to_string(),
        kind,
        start_ns: start,
        end_ns: end,
        attributes,
        error: error.clone(),
        links: record.links.clone(),
    }];
    let mut part = |phase: InvocationPhase, start_ns: i64, end_ns: i64, error: Option<String>| {
        spans.push(Span {
            trace_id: record.trace_id.clone(),
            span_id: phase.span_id(&span_id),
            parent_span_id: Some(span_id.clone()),
            name: phase.name().to_owned(),
            kind: SpanKind::Internal,
            start_ns,
            end_ns,
            attributes: Vec::new(),
            error,
            links: Vec::new(),
        });
    };
    if start < arrived {
        part(InvocationPhase::Queued, start, arrived, None);
    }
    if record.init_duration.is_some() {
        // A start that failed fails the invocation before it ran.
        let init_failed = record.duration.is_zero() && failed && record.status != InvocationStatus::Throttled;
        part(InvocationPhase::Init, arrived, ran_from, if init_failed { error.clone() } else { None });
    }
    if record.status != InvocationStatus::Throttled && !record.duration.is_zero() {
        part(InvocationPhase::Run, ran_from, end, error);
    }
    spans
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use updraft_model::{FunctionName, VersionNumber};

    use super::*;

    fn record() -> InvocationRecord {
        InvocationRecord {
            id: "0190c5a2-7f7e-7cc0-8d3e-9a9197af755a".to_owned(),
            function: FunctionName::new("resize").unwrap(),
            version: VersionNumber(3),
            trigger: TriggerKind::Async,
            started_at: 1_700_000_000_000,
            duration: Duration::from_millis(40),
            init_duration: Some(Duration::from_millis(5)),
            cold: true,
            memory_limit: 128 << 20,
            max_memory_used: 20 << 20,
            status: InvocationStatus::Success,
            error_type: None,
            error_message: None,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            parent_span_id: Some("00f067aa0ba902b7".to_owned()),
            queued_since: Some(1_699_999_999_990),
            links: Vec::new(),
            log_lines_dropped: 0,
            node: "node-a".to_owned(),
        }
    }

    #[test]
    fn an_invocation_spans_its_wait_its_start_and_its_run() {
        let spans = invocation_spans(&record());
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
        assert_eq!(names, ["resize", "queued", "init", "run"]);
        let [invocation, queued, init, run] = &spans[..] else { unreachable!() };
        assert_eq!(invocation.span_id, "8d3e9a9197af755a");
        assert_eq!(invocation.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(invocation.kind, SpanKind::Server);
        for part in [queued, init, run] {
            assert_eq!(part.parent_span_id.as_deref(), Some("8d3e9a9197af755a"));
            assert_eq!(part.trace_id, invocation.trace_id);
        }
        let ms = 1_000_000;
        assert_eq!((invocation.start_ns, invocation.end_ns), (1_699_999_999_990 * ms, 1_700_000_000_045 * ms));
        assert_eq!((queued.start_ns, queued.end_ns), (1_699_999_999_990 * ms, 1_700_000_000_000 * ms));
        assert_eq!((init.start_ns, init.end_ns), (1_700_000_000_000 * ms, 1_700_000_000_005 * ms));
        assert_eq!((run.start_ns, run.end_ns), (1_700_000_000_005 * ms, 1_700_000_000_045 * ms));
        let attribute = |name: &str| invocation.attributes.iter().find(|(key, _)| *key == name).map(|(_, v)| v.clone());
        assert_eq!(attribute("faas.trigger"), Some(Attribute::from("other")));
        assert_eq!(attribute("faas.coldstart"), Some(Attribute::Bool(true)));
        assert_eq!(attribute("faas.max_memory"), Some(Attribute::Int(128 << 20)));
        assert_eq!(attribute("faas.invocation_id"), Some(Attribute::from("0190c5a2-7f7e-7cc0-8d3e-9a9197af755a")));
        assert!(spans.iter().all(|span| span.error.is_none()));
    }

    #[test]
    fn a_throttled_invocation_has_no_run_and_a_failed_one_marks_its_error() {
        let throttled = InvocationRecord {
            status: InvocationStatus::Throttled,
            duration: Duration::ZERO,
            init_duration: None,
            queued_since: None,
            error_message: Some("Rate exceeded".to_owned()),
            ..record()
        };
        let spans = invocation_spans(&throttled);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].error.as_deref(), Some("Rate exceeded"));

        let failed = InvocationRecord {
            status: InvocationStatus::Error,
            trigger: TriggerKind::Topic,
            error_type: Some("Runtime.ExitError".to_owned()),
            error_message: Some("exit status 1".to_owned()),
            ..record()
        };
        let spans = invocation_spans(&failed);
        assert_eq!(spans[0].kind, SpanKind::Consumer);
        assert!(spans[0].links.is_empty());
        assert_eq!(spans.last().unwrap().name, "run");
        assert_eq!(spans.last().unwrap().error.as_deref(), Some("exit status 1"));
        assert!(spans[0].attributes.contains(&("error.type", Attribute::from("Runtime.ExitError"))));
    }

    #[test]
    fn a_queue_batch_links_its_span_to_each_sender_and_says_it_processed_messages() {
        let senders = vec![
            TraceParent::new("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
            TraceParent::new("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        ];
        let batch =
            InvocationRecord { trigger: TriggerKind::Queue, parent_span_id: None, links: senders.clone(), ..record() };
        let spans = invocation_spans(&batch);
        assert_eq!(spans[0].kind, SpanKind::Consumer);
        assert_eq!(spans[0].links, senders);
        assert!(spans[1..].iter().all(|part| part.links.is_empty()), "only the invocation's own span is linked");
        assert!(spans[0].attributes.contains(&("messaging.operation.type", Attribute::from("process"))));
        assert!(spans[0].attributes.contains(&("faas.trigger", Attribute::from("pubsub"))));
    }
}
