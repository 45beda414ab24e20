//! The application layer: deploys, the live set of functions, invocation, logs and
//! API keys, and the host of the event layer (`updraft-events`). The HTTP API calls
//! into this crate and renders what it returns; this crate never sees a socket, and it
//! reads the database only for control-plane operations, never to serve an invocation.

#![forbid(unsafe_code)]

mod access;
mod aliases;
mod artifacts;
mod batch;
mod canary;
mod cluster;
mod data_dir;
mod deploy;
mod event_host;
mod forward;
mod function_edit;
mod functions;
mod info;
mod invoke;
mod janitor;
mod key_ops;
mod keys;
mod live;
mod logs;
mod observe;
mod platform;
mod recorder;
pub use recorder::TailWaiter;
mod routes;
mod secrets;
mod stats;
mod sync;
mod versions;

pub use access::{AccessKey, AccessKeyInfo};
pub use aliases::{AliasError, AliasInfo, AliasSpec};
pub use artifacts::ArtifactWriter;
pub use canary::{CanaryInfo, CanarySpec};
pub use cluster::{ClusterConfig, ClusterKey, NodeInfo, NodeState};
pub use deploy::{DeployError, DeployRequest, fingerprint as version_fingerprint};
pub use forward::{FORWARDED_HEADER, Home};
pub use function_edit::{FunctionDraft, MADE_THROUGH_LAMBDA, revision_id};
pub use functions::FunctionError;
pub use info::{
    Deployed, DeployedVersion, FunctionInfo, HourlyUsage, InvocationEntry, InvocationQuery, LogEntry, UploadError,
    VersionInfo,
};
pub use invoke::{Invocation, InvokeFailure};
pub use janitor::RetentionConfig;
pub use key_ops::KeyError;
pub use keys::{ApiKey, Principal, Role};
pub use live::{LiveFunction, LiveState, RouteTarget};
pub use logs::{LogQuery, LogScope, LogWriter};
pub use observe::{ObserveError, TRACE_INVOCATIONS};
pub use platform::{LambdaConfig, Platform, PlatformConfig, StartError};
pub use routes::{RouteConflict, RouteMatch, RouteTable};
pub use secrets::{ClusterKeyError, MAX_SECRET_BYTES, Rotated, SecretError, SecretInfo, SecretSet};
pub use stats::{MAX_STEPS, StatsStep};
pub use updraft_events::{
    AsyncConfig, EventLayer, EventQueueConfig, ExecutionReport, ExecutionSummary, HistoryStep, Message, PendingEvent,
    PublishError, Published, QueueError, WebhookError, WebhookRequest, Workflow, WorkflowError,
};

pub use updraft_model::{ACCOUNT_ID, InvocationRecord, InvocationStatus, REGION, TriggerKind};
pub use updraft_runtime::{Body, Event, EventOrigin, Input, InvokeContext, InvokeError, new_trace_id};
pub use updraft_runtime_process::{LayerState, SandboxLayer, SandboxStatus, invoke_api};
pub use updraft_scheduler::{PoolStats, Throttle};
pub use updraft_telemetry::{Attribute, OtlpConfig, PriceTable, Span, SpanKind, Usage, invocation_spans};
