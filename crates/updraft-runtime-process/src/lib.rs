//! The process runtime: AWS Lambda handlers (`python3`, `nodejs`, `provided`) in
//! sandboxed processes, reached through Lambda's Runtime API, and web servers
//! (`http`) in the same sandbox, reached over HTTP on `$PORT` ([`server`]).
//!
//! Each instance is one runtime process in its own sandbox, built by the jailer
//! ([`jail`]): namespaces, a read-only bundle at `/var/task`, a private `/tmp`,
//! control-group limits, Landlock, no new privileges and a seccomp filter, each checked
//! at start and failing closed ([`SandboxStatus`]). The host serves the Runtime API
//! 2018-06-01 ([`api`]) to each instance on a listener opened inside the instance's
//! network namespace, forwards what its grants allow to the hosts they name (`egress`),
//! and maps HTTP triggers to API Gateway events ([`apigw`]). [`ProcessRuntime`]
//! implements the scheduler's runtime traits.

#![deny(unsafe_code)]

pub mod api;
pub mod apigw;
mod bundle;
mod cgroup;
mod demand;
mod egress;
mod environment;
mod events;
mod host;
mod instance;
pub mod invoke_api;
pub mod jail;
mod launch;
mod prepare;
#[cfg(test)]
mod properties;
mod rest_api;
mod runtime;
mod sandbox;
mod seccomp;
mod server;
pub mod spec;

pub use bundle::unpack as unpack_bundle;
pub use bundle::{BundleError, MAX_UNPACKED_BYTES};
pub use egress::EgressError;
pub use events::lambda_event;
pub use prepare::ProcessPrepareError;
pub use runtime::{ProcessRuntime, ProcessRuntimeConfig, ProcessRuntimeError};
pub use sandbox::{LayerState, LayerStatus, SandboxIncomplete, SandboxStatus};
pub use spec::{SandboxLayer, UnknownLayer};

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime
/// does), so that connections, the database and sandboxes' descriptors have room;
/// returns the limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}
