//! Updraft's domain: names, limits, the `updraft.toml` manifest and its validation.
//!
//! This crate does no I/O: it knows nothing of HTTP, SQL or wasmtime. Everything that
//! a deploy, the scheduler or the store agrees on about a function is defined here.

#![forbid(unsafe_code)]

mod aws;
mod clock;
mod duration;
mod event;
mod invocation;
mod limits;
mod lineage;
mod log_level;
mod manifest;
mod names;
mod outbound;
#[cfg(test)]
mod properties;
mod route;
mod schedule;
mod trace;
mod workflow;

pub use aws::{ACCOUNT_ID, REGION};
pub use clock::now_millis;
pub use duration::{format_duration, parse_duration};
pub use event::EventSource;
pub use invocation::{InvocationRecord, InvocationStatus, TriggerKind, billed_ms};
pub use limits::{ByteSize, Limits, MAX_ENVIRONMENT_BYTES, environment_size};
pub use lineage::{Lineage, MAX_RECURSION};
pub use log_level::{LogLevel, UnknownLogLevel};
pub use manifest::{
    BuildSpec, Destination, EmailTrigger, FunctionConfig, FunctionSpec, HttpAuth, HttpTrigger, Manifest, ManifestError,
    ManifestProblem, PayloadFormat, QueueTrigger, RecursiveLoop, RuntimeKind, ScheduleTrigger, ServerSpec,
    TopicTrigger, Trigger, WebhookTrigger, WorkflowSpec,
};
pub use names::{
    AliasName, AppName, ArtifactDigest, FunctionName, InvalidName, QueueName, SecretName, TopicName, VersionNumber,
};
pub use outbound::{HostMatch, HostRule, Portless, WEB_PORTS};
pub use route::{MethodSet, RoutePattern, RouteSegment};
pub use schedule::{CatchUp, InvalidSchedule, ScheduleExpression, Timezone};
pub use trace::{InvocationPhase, TraceParent, span_id_of};
pub use workflow::{
    AfterTask, JsonPath, StateKind, StateMachine, Step, TaskError, TaskTarget, TemplateError, apply_template,
};
