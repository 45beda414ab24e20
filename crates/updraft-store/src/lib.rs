//! Control-plane persistence: apps, functions, versions, API keys, function logs,
//! invocation records, hourly usage, the cluster's nodes and the queue of asynchronous
//! invocations in SQL (SQLite embedded, PostgreSQL for a cluster), and the
//! content-addressed artifact store.
//!
//! This is the only crate that knows sqlx. Both databases are reached through sqlx's
//! `Any` driver with one set of queries written in the SQL both understand; only the
//! migrations differ (auto-increment columns), so the same code and the same tests
//! cover both.

#![forbid(unsafe_code)]

mod aliases;
mod artifacts;
mod canaries;
mod changes;
mod events;
mod group;
mod invocations;
mod logs;
mod migrations;
mod nodes;
mod queues;
mod records;
mod retention;
mod secrets;
mod shared_artifacts;
mod sql;
mod workflows;

pub use aliases::AliasRecord;
pub use artifacts::{ArtifactError, ArtifactStore, ArtifactUpload};
pub use canaries::{CanaryRecord, Outcomes};
pub use changes::ChangeListener;
pub use events::{AsyncEvent, EventState, EventWrite, Finish};
pub use group::EventWriter;
pub use invocations::{InvocationFilter, StepFigures, StoredInvocation, UsageCounts, UsageRow};
pub use logs::{LogFilter, LogScope};
pub use nodes::{NodeLoad, NodeRecord};
pub use queues::{QueueDepth, QueueMessage};
pub use records::{
    AccessKeyRecord, ApiKeyRecord, CanaryPlan, DeployOutcome, DeployPlan, DeployedFunction, FunctionRecord, LogLine,
    LogLineRecord, PlannedFunction, SealedKind, SealedValue, SecretRecord, TokenIdentity, VersionRecord,
};
pub use retention::Keep;
pub use shared_artifacts::SharedArtifactError;
pub use sql::{Backend, Store, StoreError};
pub use workflows::{Execution, HistoryEntry};
