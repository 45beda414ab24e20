//! The WebAssembly runtime: runs `wasi:http` components in wasmtime.
//!
//! This is the only crate that knows wasmtime's API. It compiles a component once,
//! caches the machine code on disk keyed by content hash and engine, pre-instantiates
//! it, and runs every invocation in a fresh `Store` with a memory limit, an epoch
//! deadline (so a guest spinning without yielding is still stopped), captured
//! stdout/stderr and an outbound-HTTP policy.

#![deny(unsafe_code)]

mod engine;
mod function;
mod invoke;
mod outbound;
mod output;

pub use engine::{Pooling, PrepareError, PreparedComponent, WasmEngineConfig, WasmRuntime, WasmRuntimeError};
pub use function::{HttpRequest, HttpResponse, WasmFunction};
pub use invoke::{GuestOutput, InvokeError, InvokeOptions, InvokeOutcome, LogStream, WasmInstance};
pub use outbound::OutboundPolicy;
