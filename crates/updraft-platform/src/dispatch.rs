//! The dispatcher of asynchronous invocations: takes due events from the durable queue
//! and runs each through the scheduler, at least once. A success removes the event
//! (and sends its record to `on_success`); a throttle puts it back a moment later
//! without counting an attempt (events are never dropped for want of concurrency); a
//! failure retries with backoff, as Lambda does, until the attempts or the event's age
//! run out, and then the event stays, `failed`, its record goes to `on_failure` and
//! its payload to the dead-letter topic.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, watch};
use updraft_model::now_millis;
use updraft_runtime::InvokeError;
use updraft_store::AsyncEvent;

use crate::event_queue::{Claimed, Settlement};
use crate::live::LiveFunction;
use crate::platform::{InvokeContext, InvokeFailure, Platform};
use crate::shapes::{Outcome, event_input};

/// How asynchronous invocations are retried (how often, and for how long, is each
/// function's `retries` and `max_event_age`).
#[derive(Debug, Clone, Copy)]
pub struct AsyncConfig {
    /// The wait before the first retry; each later one waits twice as long
    /// (Lambda: about a minute, then two).
    pub retry_delay: Duration,
    /// Settle an outcome only once its invocation's record is stored (on by default).
    /// Off, a crash may lose the records of runs whose events are gone: only for
    /// measuring what durability costs.
    pub durable_records: bool,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self { retry_delay: Duration::from_secs(60), durable_records: true }
    }
}

/// Events run at once by one node.
const IN_FLIGHT: usize = 64;
/// Events claimed per query.
const BATCH: usize = 64;
/// How long a throttled event waits before it is tried again.
const THROTTLE_DELAY: Duration = Duration::from_secs(1);
/// How often the queue is looked at when nothing wakes the dispatcher (retries fall due).
const POLL: Duration = Duration::from_millis(250);
/// How long an outcome waits for its invocation's record to be stored (the record
/// writer retries a failing database for about this long).
pub(crate) const RECORD_WAIT: Duration = Duration::from_secs(60);

/// The handle that stops the dispatcher and wakes it for new events.
pub(crate) struct Dispatcher {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl Dispatcher {
    /// Starts dispatching for `platform`, first releasing the leases a previous run of
    /// this node left (they died with it).
    pub(crate) async fn start(platform: &Arc<Platform>) -> Result<Dispatcher, updraft_store::StoreError> {
        let released = platform.event_queue().recover(platform.node_id()).await?;
        if released > 0 {
            tracing::info!(released, "asynchronous invocations interrupted by the last stop are due again");
        }
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run(Arc::downgrade(platform), wake.clone(), stopped));
        Ok(Dispatcher { wake, stop })
    }

    /// A new event is in the queue.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims no more events (running ones finish).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

async fn run(platform: Weak<Platform>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        if *stopped.borrow() {
            return;
        }
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let Some(platform) = platform.upgrade() else { return };
            match platform.event_queue().claim(platform.node_id(), free.min(BATCH)).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot read the queue of asynchronous invocations");
                    Vec::new()
                }
            }
        };
        let full = claimed.len() == free.min(BATCH) && free > 0;
        for event in claimed {
            let Some(platform) = platform.upgrade() else { return };
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            tokio::spawn(async move {
                deliver(&platform, event).await;
                drop(slot);
            });
        }
        if full {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Runs one attempt of `claimed` and settles it, the events that follow from it
/// (destinations, dead-letter topic) stored before it leaves the queue.
async fn deliver(platform: &Platform, claimed: Claimed) {
    let queue = platform.event_queue();
    let hold = queue.hold(&claimed);
    let event = &claimed.event;
    let config = platform.async_config();
    // The function's own policy, as deployed now (Lambda's defaults if it is gone).
    let function = platform.live().functions.get(&event.function).cloned();
    let (retries, max_age) = function
        .as_ref()
        .map(|function| (function.config.retries, function.config.max_event_age))
        .unwrap_or((2, Duration::from_secs(6 * 3600)));
    // The invocation's record is stored before its outcome: a crash in between runs
    // the event again rather than losing the record of a run.
    let recorded = function.as_ref().filter(|_| config.durable_records).map(|_| platform.recorder().durable(&event.id));
    let outcome = match &function {
        Some(function) => attempt(platform, function, event).await,
        None => Err(Retry::Never(format!("function {} no longer exists", event.function))),
    };
    let now = now_millis();
    let settlement = match outcome {
        Ok(answer) => {
            let follow_ups = function
                .as_ref()
                .and_then(|function| function.config.on_success.as_ref())
                .map(|destination| {
                    let outcome = Outcome {
                        condition: "Success",
                        response: &answer.body,
                        status: answer.status,
                        function_error: None,
                    };
                    platform.destination_events(destination, event, &outcome)
                })
                .unwrap_or_default();
            Settlement::Done { follow_ups }
        }
        Err(Retry::Throttled) => Settlement::Retry {
            attempts: event.attempts,
            next_attempt_at: now + THROTTLE_DELAY.as_millis() as i64,
            error: "throttled".to_owned(),
        },
        Err(Retry::Never(error)) => Settlement::Failed { attempts: event.attempts, error, follow_ups: Vec::new() },
        Err(Retry::Failed(failure)) => {
            let attempts = event.attempts + 1;
            let age = Duration::from_millis((now - event.enqueued_at).max(0) as u64);
            let exhausted = attempts > i64::from(retries);
            if exhausted || age >= max_age {
                static FAILED: updraft_runtime::LogBudget = updraft_runtime::LogBudget::new(20, Duration::from_secs(1));
                if let Some(suppressed) = FAILED.admit() {
                    tracing::info!(id = %event.id, function = %event.function, attempts, error = %failure.error, suppressed, "asynchronous invocation failed for good");
                }
                let condition = if exhausted { "RetriesExhausted" } else { "EventAgeExceeded" };
                let follow_ups = function
                    .as_ref()
                    .map(|function| platform.failure_events(&function.config, event, condition, &failure))
                    .unwrap_or_default();
                Settlement::Failed { attempts, error: failure.error, follow_ups }
            } else {
                let delay = config.retry_delay.saturating_mul(1 << (attempts - 1).clamp(0, 16));
                Settlement::Retry { attempts, next_attempt_at: now + delay.as_millis() as i64, error: failure.error }
            }
        }
    };
    if let Some(recorded) = recorded
        && !recorded.stored(RECORD_WAIT).await
    {
        // Its claim runs out and it runs again, recorded then.
        tracing::error!(id = %event.id, "the record of an asynchronous invocation was not stored; it will run again");
        return;
    }
    drop(hold);
    let id = event.id.clone();
    if let Err(error) = queue.settle(claimed, settlement).await {
        // The claim runs out and the event is tried again: at least once, not lost.
        tracing::error!(%id, %error, "cannot record the outcome of an asynchronous invocation");
    }
}

/// What a successful attempt answered.
struct Answer {
    status: u16,
    body: Bytes,
}

/// Why an attempt did not succeed.
pub(crate) struct Failure {
    /// The error in a line, as `last_error` keeps it.
    pub error: String,
    /// What went back: the function's error document or its non-2xx answer.
    pub document: Vec<u8>,
    pub status: u16,
    /// The error was the function's own report (Lambda's `Handled`), not a crash.
    pub handled: bool,
}

enum Retry {
    Throttled,
    Failed(Failure),
    Never(String),
}

async fn attempt(platform: &Platform, function: &Arc<LiveFunction>, event: &AsyncEvent) -> Result<Answer, Retry> {
    let request = event_input(event);
    let context = InvokeContext {
        request_id: event.id.clone(),
        trigger: event.source.trigger(),
        trace_id: Some(event.trace_id.clone()),
    };
    match platform.invoke(function, request, context).await {
        Ok(invocation) => {
            let status = invocation.response.status();
            let body = invocation.response.into_body();
            if status.is_success() {
                Ok(Answer { status: status.as_u16(), body })
            } else {
                Err(Retry::Failed(Failure {
                    error: format!("the function answered {status}"),
                    document: body.to_vec(),
                    status: status.as_u16(),
                    handled: true,
                }))
            }
        }
        Err(InvokeFailure::Throttled { .. }) => Err(Retry::Throttled),
        Err(InvokeFailure::NotFound { function }) => Err(Retry::Never(format!("function {function} no longer exists"))),
        Err(InvokeFailure::Function { error, .. }) => {
            let (document, handled) = match &error {
                InvokeError::Function { document, .. } => (document.clone(), true),
                other => {
                    let document =
                        serde_json::json!({ "errorType": other.error_type(), "errorMessage": other.to_string() });
                    (document.to_string().into_bytes(), false)
                }
            };
            Err(Retry::Failed(Failure { error: error.to_string(), document, status: 200, handled }))
        }
    }
}
