//! Updraft's domain: names, limits, the `updraft.toml` manifest and its validation.
//!
//! This crate does no I/O: it knows nothing of HTTP, SQL or wasmtime. Everything that
//! a deploy, the scheduler or the store agrees on about a function is defined here.

#![forbid(unsafe_code)]

mod invocation;
mod limits;
mod manifest;
mod names;
mod route;

pub use invocation::{EventInput, FunctionError, InvocationRecord, InvocationStatus, TriggerKind, billed_ms};
pub use limits::{ByteSize, Limits};
pub use manifest::{
    BuildSpec, FunctionConfig, FunctionSpec, HttpAuth, HttpTrigger, Manifest, ManifestError, ManifestProblem, Runtime,
    Trigger,
};
pub use names::{AppName, ArtifactDigest, FunctionName, InvalidName, VersionNumber};
pub use route::{MethodSet, RoutePattern, RouteSegment};
