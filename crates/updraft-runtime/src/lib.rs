//! The runtime interface: what every kind of function code (a wasm component, a
//! sandboxed process) provides to the scheduler, and the typed input an invocation
//! hands it.
//!
//! The scheduler calls runtimes only through these traits; `updraft-runtime-wasm` and
//! `updraft-runtime-process` implement them. An invocation's input keeps its type from
//! the edge to the runtime: an HTTP request stays a request, an event stays an event,
//! and each runtime turns an event into the wire shape it speaks.

#![forbid(unsafe_code)]

mod body;
pub mod cloudevents;
mod input;
mod log_budget;
mod traits;

pub use body::{Body, BodyCut, BodySender, FunctionResponse, ReaderGone};
pub use input::{Event, EventOrigin, HttpRequest, HttpResponse, Input, InvokeContext, new_trace_id, replay_webhook};
pub use log_budget::LogBudget;
pub use traits::{
    BoxFuture, Call, GuestOutput, Instance, InstanceConfig, InvokeError, Invoked, LogStream, PrepareError, Prepared,
    Runtime, VersionSource,
};
