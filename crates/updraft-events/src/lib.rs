//! The event layer: everything that turns something other than a synchronous request
//! into invocations. The durable queue of asynchronous events with its database and
//! NATS JetStream backends (`queue`), the dispatcher that runs them at least once with
//! retries (`dispatch`), topics, webhooks, mail and destinations (`publish`, with the
//! invocation record in `record`), the schedule ticker (`schedules`), the work-queue
//! poller (`work_queues`) and workflow executions (`workflows`).
//!
//! It runs functions only through the [`Host`] the platform implements, and is the
//! only crate that knows NATS.

#![forbid(unsafe_code)]

mod definitions;
mod dispatch;
mod host;
mod layer;
mod publish;
mod queue;
mod record;
mod schedules;
mod start;
mod takeover;
mod work_queues;
mod workflows;

pub use definitions::Workflow;
pub use host::{AsyncEventMetric, Host, Ran};
pub use layer::{AsyncConfig, EventConfig, EventLayer, PendingEvent};
pub use publish::{Message, PublishError, Published, WebhookError, WebhookRequest};
pub use queue::{EventQueueConfig, QueueError};
pub use work_queues::{QueueDepth, sqs_batch};
pub use workflows::{ExecutionReport, ExecutionSummary, HistoryStep, WorkflowError};
