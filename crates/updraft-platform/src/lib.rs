//! The application layer: deploys, the live set of functions, invocation, logs and
//! API keys. The HTTP API calls into this crate and renders what it returns; this
//! crate never sees a socket, and it reads the database only for control-plane
//! operations, never to serve an invocation.

#![forbid(unsafe_code)]

mod access;
mod batch;
mod dispatch;
mod event_queue;
mod events;
mod keys;
mod live;
mod logs;
mod platform;
mod queues;
mod recorder;
mod routes;
mod schedules;
mod secrets;
mod shapes;
mod workflows;

pub use access::{AccessKey, AccessKeyInfo};
pub use dispatch::AsyncConfig;
pub use event_queue::EventQueueConfig;
pub use events::{Message, PublishError, Published, WebhookError, WebhookRequest};
pub use keys::{ApiKey, Principal, Role};
pub use live::{LiveFunction, LiveState, RouteTarget};
pub use logs::{LogQuery, LogWriter};
pub use platform::{
    ACCOUNT_ID, ArtifactWriter, DeployError, DeployRequest, FunctionError, Invocation, InvokeContext, InvokeFailure,
    LambdaConfig, Platform, PlatformConfig, REGION, StartError,
};
pub use routes::{RouteConflict, RouteMatch, RouteTable};
pub use secrets::{MAX_SECRET_BYTES, Rotated, SecretError, SecretInfo, SecretSet};
pub use updraft_store::{AsyncEvent, EventState};
pub use updraft_store::{Execution, HistoryEntry};
pub use workflows::{ExecutionReport, Workflow, WorkflowError};

pub use updraft_model::{InvocationRecord, InvocationStatus, TriggerKind};
pub use updraft_runtime::{Event, EventOrigin, Input, InvokeError};
pub use updraft_runtime_process::{LayerState, SandboxLayer, SandboxStatus, invoke_api};
pub use updraft_scheduler::{PoolStats, Throttle};
pub use updraft_store::{
    ArtifactError, DeployOutcome, DeployedFunction, FunctionRecord, InvocationFilter, LogLineRecord, StoreError,
    StoredInvocation, UsageRow, VersionRecord,
};
pub use updraft_telemetry::{PriceTable, Usage};
