//! Views of asynchronous invocations, topics, queues and workflow executions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An accepted asynchronous invocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncAcceptedView {
    /// Its id: the request id of each attempt, in its records and logs.
    pub id: String,
    pub function: String,
}

/// An asynchronous invocation not yet delivered, or failed for good.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncEventView {
    pub id: String,
    pub function: String,
    /// What it came from: `async` (invoke-async, Lambda's Event, a destination),
    /// `topic`, `schedule` or `webhook`.
    pub trigger: String,
    /// `queued` or `failed`.
    pub state: String,
    /// Attempts that ran and failed.
    pub attempts: i64,
    /// Milliseconds since the Unix epoch.
    pub enqueued_at: i64,
    pub last_error: Option<String>,
}

impl AsyncEventView {
    pub fn new(event: &updraft_platform::PendingEvent) -> Self {
        Self {
            id: event.id.clone(),
            function: event.function.to_string(),
            trigger: event.trigger.as_str().to_owned(),
            state: if event.failed { "failed" } else { "queued" }.to_owned(),
            attempts: event.attempts,
            enqueued_at: event.enqueued_at,
            last_error: event.last_error.clone(),
        }
    }
}

/// Failed asynchronous invocations, the latest accepted first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncEventListView {
    pub events: Vec<AsyncEventView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<i64>,
}

/// What a retry of failed asynchronous invocations did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncRetriedView {
    /// How many were queued again.
    pub retried: u64,
}

/// What a dead-letter queue's redrive moved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueRedriveView {
    /// The dead-letter queue.
    pub from: String,
    /// The queue the messages went back to.
    pub to: String,
    pub moved: u64,
}

/// A message accepted by a topic: a copy for each subscriber is stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedView {
    pub message_id: String,
    pub topic: String,
    /// The functions that will each get a copy, with their own retries.
    pub subscribers: Vec<String>,
}

/// A topic that live functions subscribe to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicView {
    pub topic: String,
    pub subscribers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicListView {
    pub topics: Vec<TopicView>,
}

/// A message stored in a work queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueSentView {
    pub message_id: String,
    pub queue: String,
}

/// A work queue's depth.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub queue: String,
    /// Messages waiting for delivery.
    pub visible: i64,
    /// Messages delivered and not yet handled (invisible until their visibility timeout).
    pub in_flight: i64,
    /// The functions consuming it.
    pub consumers: Vec<String>,
}

/// Every queue a trigger consumes or dead-letters into, with its depth.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueListView {
    pub queues: Vec<QueueSummaryView>,
}

/// A queue in the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueSummaryView {
    pub queue: String,
    pub visible: i64,
    pub in_flight: i64,
    /// How long the oldest visible message has waited, in milliseconds.
    pub oldest_age_ms: Option<i64>,
    /// The functions consuming it.
    pub consumers: Vec<String>,
    /// The queues whose dead letters land here (a redrive sends them back).
    pub dead_letters_of: Vec<String>,
}

/// The deployed workflows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkflowListView {
    pub workflows: Vec<WorkflowView>,
}

/// A deployed workflow and its definition (Amazon States Language).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkflowView {
    pub name: String,
    pub app: String,
    pub start_at: String,
    /// The definition as deployed (`StartAt`, `States`, ...).
    pub definition: serde_json::Value,
}

/// A workflow's latest executions, the latest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionListView {
    pub workflow: String,
    pub executions: Vec<ExecutionSummaryView>,
}

/// An execution as listed (`GET /v1/executions/{id}` has its history).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionSummaryView {
    pub id: String,
    /// `running`, `succeeded`, `failed` or `timed_out`.
    pub status: String,
    /// The state it is in, or ended in.
    pub state: String,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A workflow execution just started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionStartedView {
    pub execution_id: String,
    pub workflow: String,
}

/// One entry of an execution's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryView {
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `ExecutionStarted`, `StateEntered`, `TaskSucceeded`, `TaskFailed`, `TaskRetried`,
    /// `WaitStarted`, `ExecutionSucceeded` or `ExecutionFailed`.
    pub kind: String,
    pub state: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
}

/// A workflow execution: where it stands and how it got there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    pub id: String,
    pub workflow: String,
    pub app: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The state it is in, or ended in.
    pub state: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    #[schema(value_type = Object)]
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub history: Vec<HistoryEntryView>,
}

impl ExecutionView {
    pub fn new(report: &updraft_platform::ExecutionReport) -> Self {
        let json =
            |text: &str| serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
        Self {
            id: report.id.clone(),
            workflow: report.workflow.to_string(),
            app: report.app.to_string(),
            status: report.status.clone(),
            state: report.state.clone(),
            input: json(&report.input),
            output: report.output.as_deref().map(json),
            error: report.error.clone(),
            cause: report.cause.clone(),
            started_at_ms: report.started_at,
            updated_at_ms: report.updated_at,
            history: report
                .history
                .iter()
                .map(|entry| HistoryEntryView {
                    seq: entry.seq,
                    at_ms: entry.at,
                    kind: entry.kind.clone(),
                    state: entry.state.clone(),
                    detail: entry.detail.as_deref().map(json),
                })
                .collect(),
        }
    }
}
