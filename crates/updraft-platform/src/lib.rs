//! The application layer: deploys, the live set of functions, invocation, logs and
//! API keys. The HTTP API calls into this crate and renders what it returns; this
//! crate never sees a socket, and it reads the database only for control-plane
//! operations, never to serve an invocation.

#![forbid(unsafe_code)]

mod keys;
mod live;
mod logs;
mod platform;
mod routes;

pub use keys::{ApiKey, Principal, Role};
pub use live::{LiveFunction, LiveState};
pub use logs::{LogQuery, LogWriter};
pub use platform::{
    DeployError, DeployRequest, FunctionError, Invocation, InvokeFailure, Platform, PlatformConfig, StartError, Trigger,
};
pub use routes::{RouteConflict, RouteMatch, RouteTable};

pub use updraft_runtime_wasm::InvokeError;
pub use updraft_store::{
    ArtifactError, DeployOutcome, DeployedFunction, FunctionRecord, LogLineRecord, StoreError, VersionRecord,
};
