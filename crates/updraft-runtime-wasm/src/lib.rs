//! The WebAssembly runtime: runs `wasi:http` components in wasmtime.
//!
//! This is the only crate that knows wasmtime's API. It compiles a component once,
//! caches the machine code on disk keyed by content hash and engine, and implements the
//! scheduler's runtime traits: an instance maps the cached code (shared by the
//! version's instances) and runs each invocation in a fresh `Store` (or, with reuse,
//! its kept one) with a memory limit, an epoch deadline (so a guest spinning without
//! yielding is still stopped), captured stdout/stderr and an outbound-HTTP policy.

#![deny(unsafe_code)]

mod engine;
mod executor;
mod function;
mod invoke;
mod outbound;
mod output;
mod p3;

pub use engine::{CompileError, Pooling, PreparedComponent, WasmEngineConfig, WasmRuntime, WasmRuntimeError};
pub use function::WasmFunction;
pub use invoke::{
    GuestOutput, InvokeError, InvokeOptions, InvokeOutcome, LogStream, StreamEnd, StreamedRun, WasmInstance,
};
pub use outbound::OutboundPolicy;
pub use p3::Workers;
