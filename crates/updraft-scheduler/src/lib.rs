//! The scheduler: runs invocations on instances of function versions.
//!
//! It keeps, per version, a pool of idle, busy and starting instances; admits each
//! invocation against the function's and the account's concurrency limits (or
//! throttles it); starts instances on demand (a cold start, timed apart as init
//! duration) and stops them after their idle timeout (scale to zero), keeping
//! `min_instances` started; enforces each invocation's deadline; and hands one record
//! per invocation to a sink.
//!
//! It knows nothing of HTTP, SQL or wasmtime: runtimes implement the traits of
//! `updraft-runtime`, and the input and output types are the caller's.

#![forbid(unsafe_code)]

mod concurrency;
mod scheduler;

pub use concurrency::{Lender, ReservationError, Scope, ShareStats, Throttle};
pub use scheduler::{
    AccountStats, Done, Failure, InvocationMeta, InvocationSink, Pool, PoolSpec, PoolStats, Scheduler, SchedulerConfig,
};
