//! Invocation: a live function run through the scheduler, by name, with an event, or
//! at a qualified version.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use updraft_model::{AliasName, FunctionName, VersionNumber};
use updraft_runtime::{Body, Event, Input, InvokeContext, InvokeError, LogBudget, new_trace_id};
use updraft_scheduler::{Failure, InvocationMeta, Throttle};

use crate::Platform;
use crate::live::LiveFunction;

/// An invocation's result. Its body (`Body`) may still be streaming from the
/// running instance; `read_whole` waits for all of it.
#[derive(Debug)]
pub struct Invocation<B = Body> {
    pub response: http::Response<B>,
    pub version: VersionNumber,
    /// Until the head of the response, for a body that streams.
    pub duration: Duration,
    pub cold: bool,
}

impl Invocation {
    /// The invocation with its body read whole, for callers that need all of it (an
    /// event's answer, Lambda's `Invoke`). A body cut off (the function timed out or
    /// failed while it streamed) fails the invocation; its record says why.
    pub async fn read_whole(self) -> Result<Invocation<Bytes>, InvokeError> {
        let (parts, body) = self.response.into_parts();
        let body = body.read_whole().await.map_err(|cut| InvokeError::BadResponse { message: cut.to_string() })?;
        Ok(Invocation {
            response: http::Response::from_parts(parts, body),
            version: self.version,
            duration: self.duration,
            cold: self.cold,
        })
    }
}

/// A failed invocation.
#[derive(Debug, thiserror::Error)]
pub enum InvokeFailure {
    #[error("function {function:?} not found")]
    NotFound { function: FunctionName },
    #[error("function {function:?} is throttled: {throttle}")]
    Throttled { function: FunctionName, throttle: Throttle },
    #[error("function {function:?} failed")]
    Function {
        function: FunctionName,
        #[source]
        error: InvokeError,
    },
}

impl Platform {
    /// Invokes a live function by name.
    pub async fn invoke_by_name(
        &self,
        name: &FunctionName,
        input: Input,
        context: InvokeContext,
    ) -> Result<Invocation, InvokeFailure> {
        let function = self
            .live
            .load()
            .functions
            .get(name)
            .cloned()
            .ok_or_else(|| InvokeFailure::NotFound { function: name.clone() })?;
        self.invoke(&function, input, context).await
    }

    /// Runs one invocation of `function` through the scheduler. Its record, log lines
    /// and metrics are written off this path.
    pub async fn invoke(
        &self,
        function: &LiveFunction,
        input: Input,
        context: InvokeContext,
    ) -> Result<Invocation, InvokeFailure> {
        // During a canary, the invocations outside the new version's share run the
        // version that served before it.
        let previous = self.held_back(function).await;
        let function = previous.as_deref().unwrap_or(function);
        let request_id = context.request_id.clone();
        let meta = InvocationMeta {
            id: context.request_id,
            trigger: context.trigger,
            trace_id: context.trace_id.unwrap_or_else(new_trace_id),
            parent_span_id: context.parent_span_id,
            queued_since: context.queued_since,
            links: context.links,
            lineage: context.lineage,
        };
        match self.scheduler.invoke(&function.pool, input, meta).await {
            Ok(done) => Ok(Invocation {
                response: done.output,
                version: done.version,
                duration: done.duration,
                cold: done.cold,
            }),
            Err(Failure::Throttled(throttle)) => {
                tracing::debug!(function = %function.name, request_id, %throttle, "throttled");
                Err(InvokeFailure::Throttled { function: function.name.clone(), throttle })
            }
            Err(Failure::Function(error)) => {
                static FAILED: LogBudget = LogBudget::new(20, Duration::from_secs(1));
                if let Some(suppressed) = FAILED.admit() {
                    tracing::info!(function = %function.name, request_id, %error, suppressed, "invocation failed");
                }
                Err(InvokeFailure::Function { function: function.name.clone(), error })
            }
        }
    }

    /// Invokes `function` with an event (Lambda's Invoke API) and reads its answer
    /// whole, optionally collecting the invocation's log text (`LogType: Tail`).
    pub async fn invoke_event(
        &self,
        function: &LiveFunction,
        event: Event,
        context: InvokeContext,
        tail: bool,
    ) -> (Result<Invocation<Bytes>, InvokeFailure>, Option<String>) {
        let waiter = tail.then(|| self.recorder.tail(&context.request_id));
        let name = function.name.clone();
        let result = match self.invoke(function, Input::Event(event), context).await {
            Ok(invocation) => {
                invocation.read_whole().await.map_err(|error| InvokeFailure::Function { function: name, error })
            }
            Err(failure) => Err(failure),
        };
        let log = match waiter {
            Some(waiter) if result.is_ok() => waiter.wait().await,
            Some(waiter) => waiter.take(),
            None => None,
        };
        (result, log)
    }

    /// Waits for the log of the invocation `request_id` (to be started after this), for
    /// Lambda's `LogType: Tail` on an answer that streams.
    pub fn log_tail(&self, request_id: &str) -> crate::TailWaiter {
        self.recorder.tail(request_id)
    }

    /// The function `name` at `qualifier`: the live version for nothing, `$LATEST` or
    /// its number; an earlier version by its number, prepared beside the live one on
    /// its first invocation here (`crate::versions`). `None` when there is no such
    /// function or version.
    pub async fn qualified_function(
        &self,
        name: &FunctionName,
        qualifier: Option<&str>,
    ) -> Result<Option<Arc<LiveFunction>>, crate::DeployError> {
        let Some(function) = self.live.load().functions.get(name).cloned() else { return Ok(None) };
        let version = match qualifier {
            None | Some("$LATEST") => return Ok(Some(function)),
            Some(number) => match number.parse::<u32>() {
                Ok(number) => VersionNumber(number),
                // An alias: the version it names, or the one its routing picks this time.
                Err(_) => {
                    let alias = AliasName::new(number).ok().and_then(|alias| self.alias(name, &alias));
                    match alias.map(|alias| alias.pick()) {
                        None => return Ok(None),
                        Some(None) => return Ok(Some(function)),
                        Some(Some(version)) => version,
                    }
                }
            },
        };
        if version == function.version {
            return Ok(Some(function));
        }
        self.earlier.function(self, &function, version).await
    }

    /// The live version of function `name`.
    pub fn live_version(&self, name: &FunctionName) -> Option<Arc<LiveFunction>> {
        self.live.load().functions.get(name).cloned()
    }
}
