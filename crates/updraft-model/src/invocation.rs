//! Invocation records: what the platform keeps about every invocation, including the
//! ones it refused.

use std::fmt;
use std::time::Duration;

use crate::{FunctionName, VersionNumber};

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvocationStatus {
    Success,
    /// The function failed: trapped, crashed, ran out of memory or sent a bad response.
    Error,
    Timeout,
    /// Refused at a concurrency limit; the function did not run.
    Throttled,
}

impl InvocationStatus {
    pub const ALL: [InvocationStatus; 4] = [Self::Success, Self::Error, Self::Timeout, Self::Throttled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What set an invocation off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// An HTTP trigger's route.
    Http,
    /// `updraft invoke` / `POST /v1/functions/{name}/invoke`, Lambda's `RequestResponse`.
    Direct,
    /// An event from the durable queue: `invoke-async`, Lambda's `Event`, a destination.
    Async,
    /// A message published to a topic the function subscribes to.
    Topic,
    /// A tick of a schedule.
    Schedule,
    /// A request to a webhook route, delivered after it was answered.
    Webhook,
    /// A batch of messages from a work queue.
    Queue,
    /// Mail accepted by the SMTP listener.
    Email,
    /// A Task state of a workflow execution.
    Workflow,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 9] = [
        Self::Http,
        Self::Direct,
        Self::Async,
        Self::Topic,
        Self::Schedule,
        Self::Webhook,
        Self::Queue,
        Self::Email,
        Self::Workflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Direct => "direct",
            Self::Async => "async",
            Self::Topic => "topic",
            Self::Schedule => "schedule",
            Self::Webhook => "webhook",
            Self::Queue => "queue",
            Self::Email => "email",
            Self::Workflow => "workflow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One invocation, as measured by the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRecord {
    /// The request id (`x-updraft-request-id`), which also tags the invocation's logs.
    pub id: String,
    pub function: FunctionName,
    pub version: VersionNumber,
    pub trigger: TriggerKind,
    /// Milliseconds since the Unix epoch when the invocation arrived.
    pub started_at: i64,
    /// Handler start to handler finish; zero for a throttled invocation.
    pub duration: Duration,
    /// Time spent creating the instance, for a cold start.
    pub init_duration: Option<Duration>,
    pub cold: bool,
    /// The function's memory limit, in bytes.
    pub memory_limit: u64,
    /// The most memory the instance held during the invocation, in bytes.
    pub max_memory_used: u64,
    pub status: InvocationStatus,
    /// A Lambda-style error type (`Sandbox.Timedout`, `Runtime.OutOfMemory`, ...).
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// The W3C trace id (32 hex digits) the invocation ran under.
    pub trace_id: String,
    /// The span that caused it (16 hex digits); `None` for a trace's root. Its own
    /// span id is [`span_id_of`](crate::span_id_of) its id.
    pub parent_span_id: Option<String>,
    /// When the event behind it was accepted (ms since the epoch), for an invocation
    /// that waited in a queue.
    pub queued_since: Option<i64>,
    /// The spans that sent the messages it handled (a queue batch: one per message
    /// sent with a trace context), as OpenTelemetry links a batch to its messages.
    pub links: Vec<crate::TraceParent>,
    /// Lines of the function's output that were not kept: over its log budget, or
    /// while the log writer was behind.
    pub log_lines_dropped: u64,
    /// The node that ran it (empty in records from before nodes were recorded).
    pub node: String,
}

impl InvocationRecord {
    /// Duration rounded up to the millisecond, as billed; zero when throttled.
    pub fn billed_duration_ms(&self) -> u64 {
        billed_ms(self.duration)
    }

    /// Billed milliseconds times the memory limit in MiB: the unit usage is summed in
    /// (1024 × 1000 of them make one GB-second).
    pub fn billed_mib_ms(&self) -> u64 {
        self.billed_duration_ms() * self.memory_limit.div_ceil(1024 * 1024)
    }
}

/// `duration` rounded up to a whole millisecond.
pub fn billed_ms(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::ZERO), 0);
        assert_eq!(billed_ms(Duration::from_nanos(1)), 1);
        assert_eq!(billed_ms(Duration::from_micros(26_730)), 27);
        assert_eq!(billed_ms(Duration::from_millis(3000)), 3000);
    }

    #[test]
    fn statuses_and_triggers_round_trip_through_text() {
        for status in InvocationStatus::ALL {
            assert_eq!(InvocationStatus::parse(status.as_str()), Some(status));
        }
        for kind in TriggerKind::ALL {
            assert_eq!(TriggerKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(InvocationStatus::parse("ok"), None);
    }
}
