//! The dispatcher of asynchronous invocations: takes due events from the durable queue
//! and runs each through the scheduler, at least once. A success removes the event
//! (and sends its record to `on_success`); a throttle puts it back a moment later
//! without counting an attempt (events are never dropped for want of concurrency); a
//! failure retries with backoff, as Lambda does, until the attempts or the event's age
//! run out, and then the event stays, `failed`, its record goes to `on_failure` and
//! its payload to the dead-letter topic.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use updraft_model::{AliasName, EventSource, FunctionConfig, Trigger, now_millis};
use updraft_runtime::{InvokeContext, InvokeError};
use updraft_store::AsyncEvent;

use crate::host::{AsyncEventMetric, Ran};
use crate::layer::EventLayer;
use crate::queue::{Claimed, QueueError, Settlement};
use crate::record::{Failure, Outcome, event_input};

/// Events claimed per query.
const BATCH: usize = 128;
/// How long a throttled event waits before it is tried again.
const THROTTLE_DELAY: Duration = Duration::from_secs(1);
/// How often the queue is looked at when nothing wakes the dispatcher (retries fall due).
const POLL: Duration = Duration::from_millis(250);

/// Slots for `count` events accepted on this node, to run them at once without a
/// round through the queue; `None` while the dispatcher does not run or has no room for
/// them all (they wait in the queue then, as any event).
pub(crate) fn slots_for(layer: &EventLayer, count: usize) -> Option<(Arc<EventLayer>, Vec<OwnedSemaphorePermit>)> {
    let dispatcher = layer.dispatcher();
    let running = dispatcher.running.get()?.upgrade()?;
    if layer.is_stopping() {
        return None;
    }
    let mut all = dispatcher.slots.clone().try_acquire_many_owned(u32::try_from(count).ok()?).ok()?;
    Some((running, std::iter::from_fn(|| all.split(1)).collect()))
}

/// Runs `claimed` in `slot`, waking the dispatcher when it ends if it went short of slots.
pub(crate) fn deliver_in(layer: Arc<EventLayer>, claimed: Claimed, slot: OwnedSemaphorePermit) {
    tokio::spawn(async move {
        deliver(&layer, claimed).await;
        drop(slot);
        let dispatcher = layer.dispatcher();
        if dispatcher.starved.swap(false, Ordering::AcqRel) {
            dispatcher.wake.notify_one();
        }
    });
}

/// Starts dispatching for `layer` until it stops, first releasing the leases a previous
/// run of this node left (they died with it). `layer.wake_dispatcher()` wakes it for
/// new events.
pub(crate) async fn start(layer: &Arc<EventLayer>) -> Result<(), QueueError> {
    let released = layer.event_queue().recover(layer.node_id()).await?;
    if released > 0 {
        tracing::info!(released, "asynchronous invocations interrupted by the last stop are due again");
    }
    let _ = layer.dispatcher().running.set(Arc::downgrade(layer));
    tokio::spawn(run(Arc::downgrade(layer), layer.dispatcher().wake.clone(), layer.stopping()));
    Ok(())
}

async fn run(layer: Weak<EventLayer>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let Some(strong) = layer.upgrade() else { return };
        let dispatcher = strong.dispatcher();
        // Set before the slots are counted: an event that ends after the count wakes us.
        dispatcher.starved.store(true, Ordering::Release);
        let free = dispatcher.slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match strong.event_queue().claim(strong.node_id(), free.min(BATCH)).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot read the queue of asynchronous invocations");
                    Vec::new()
                }
            }
        };
        let full = claimed.len() == free.min(BATCH) && free > 0;
        if free > claimed.len() {
            // Slots are left over: ending events need not wake anyone.
            dispatcher.starved.store(false, Ordering::Release);
        }
        for event in claimed {
            // Events accepted here may have taken slots since they were counted.
            let Ok(slot) = dispatcher.slots.clone().acquire_owned().await else { return };
            deliver_in(strong.clone(), event, slot);
        }
        if full {
            continue;
        }
        // Not held while waiting: the layer goes when its owner drops it.
        drop(strong);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Runs one attempt of `claimed` and settles it, the events that follow from it
/// (destinations, dead-letter topic) stored before it leaves the queue.
async fn deliver(layer: &EventLayer, claimed: Claimed) {
    let queue = layer.event_queue();
    let hold = queue.hold(&claimed);
    let event = &claimed.event;
    let config = layer.async_config();
    // The function's own policy, as deployed now (Lambda's defaults if it is gone).
    let function: Option<Arc<FunctionConfig>> = layer.host().and_then(|host| host.function(&event.function));
    let (retries, max_age) = function
        .as_ref()
        .map(|function| (function.retries, function.max_event_age))
        .unwrap_or((2, Duration::from_secs(6 * 3600)));
    // The invocation's record is stored before its outcome: a crash in between runs
    // the event again rather than losing the record of a run.
    let recorded = function.as_ref().and_then(|_| layer.record_wait(&event.id));
    let age = Duration::from_millis((now_millis() - event.enqueued_at).max(0) as u64);
    layer.count(&event.function, AsyncEventMetric::Taken { age });
    let outcome = match &function {
        Some(_) => attempt(layer, event).await,
        None => Err(Retry::Never(format!("function {} no longer exists", event.function))),
    };
    let now = now_millis();
    // Only an invocation that ran (or was throttled) leaves a record to wait for.
    let ran = !matches!(outcome, Err(Retry::NotRun(_) | Retry::Never(_)));
    let settlement = match outcome {
        Ok(answer) => {
            let follow_ups = function
                .as_ref()
                .and_then(|function| function.on_success.as_ref())
                .map(|destination| {
                    let outcome = Outcome {
                        condition: "Success",
                        response: &answer.body,
                        status: answer.status,
                        function_error: None,
                    };
                    layer.destination_events(destination, event, &outcome)
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
        Err(Retry::Stopped(failure)) => {
            // Its failure goes on, but never back to the function itself (a dead-letter
            // topic it subscribes to would otherwise stop and resend it without end).
            let follow_ups = function
                .as_ref()
                .map(|function| layer.failure_events(function, event, "RecursiveInvocationException", &failure))
                .unwrap_or_default()
                .into_iter()
                .filter(|follow_up| follow_up.function != event.function)
                .collect();
            Settlement::Failed { attempts: event.attempts + 1, error: failure.error, follow_ups }
        }
        Err(Retry::Failed(failure) | Retry::NotRun(failure)) => {
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
                    .map(|function| layer.failure_events(function, event, condition, &failure))
                    .unwrap_or_default();
                Settlement::Failed { attempts, error: failure.error, follow_ups }
            } else {
                let delay = config.retry_delay.saturating_mul(1 << (attempts - 1).clamp(0, 16));
                Settlement::Retry { attempts, next_attempt_at: now + delay.as_millis() as i64, error: failure.error }
            }
        }
    };
    if let Some(recorded) = recorded.filter(|_| ran)
        && !recorded.await
    {
        // Its claim runs out and it runs again, recorded then.
        tracing::error!(id = %event.id, "the record of an asynchronous invocation was not stored; it will run again");
        return;
    }
    drop(hold);
    let id = event.id.clone();
    let name = event.function.clone();
    let (dropped, received) = match &settlement {
        Settlement::Done { follow_ups } => (false, EventLayer::received(follow_ups)),
        Settlement::Failed { follow_ups, .. } => (true, EventLayer::received(follow_ups)),
        Settlement::Retry { .. } => (false, Default::default()),
    };
    if let Err(error) = queue.settle(claimed, settlement).await {
        // The claim runs out and the event is tried again: at least once, not lost.
        tracing::error!(%id, %error, "cannot record the outcome of an asynchronous invocation");
        return;
    }
    if dropped {
        layer.count(&name, AsyncEventMetric::Dropped);
    }
    layer.count_received(received);
}

/// What a successful attempt answered.
struct Answer {
    status: u16,
    body: Bytes,
}

enum Retry {
    Throttled,
    Failed(Failure),
    Never(String),
    /// Stopped as a recursive loop: failed for good at once, its failure sent on.
    Stopped(Failure),
    /// The function never ran (its version or alias is missing): retried as a failure,
    /// with no record to wait for.
    NotRun(Failure),
}

async fn attempt(layer: &EventLayer, event: &AsyncEvent) -> Result<Answer, Retry> {
    let context = InvokeContext {
        request_id: event.id.clone(),
        trigger: event.source.trigger(),
        trace_id: Some(event.trace_id.clone()),
        parent_span_id: event.parent_span_id.clone(),
        queued_since: Some(event.enqueued_at),
        links: Vec::new(),
        lineage: event.lineage.clone(),
    };
    // Asked for when it was accepted (Lambda's `Event` with a `Qualifier`), or named by
    // the topic trigger that delivers it.
    let qualifier = event.qualifier.clone().or_else(|| topic_alias(layer, event).map(|alias| alias.to_string()));
    match layer.invoke(&event.function, qualifier.as_deref(), event_input(event), context).await {
        Ran::Answered(response) => {
            let status = response.status();
            let body = response.into_body();
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
        Ran::Throttled { .. } => Err(Retry::Throttled),
        Ran::NotDeployed => Err(Retry::Never(format!("function {} no longer exists", event.function))),
        // Retried like a failure: the alias may be made before the event runs out of time.
        Ran::NotRun { message } => Err(Retry::NotRun(Failure {
            document: serde_json::json!({ "errorType": "ResourceNotFoundException", "errorMessage": message })
                .to_string()
                .into_bytes(),
            error: message,
            status: 404,
            handled: false,
        })),
        Ran::Failed(error @ InvokeError::RecursiveLoop { .. }) => {
            let document = serde_json::json!({ "errorType": error.error_type(), "errorMessage": error.to_string() });
            Err(Retry::Stopped(Failure {
                error: error.to_string(),
                document: document.to_string().into_bytes(),
                status: 400,
                handled: false,
            }))
        }
        Ran::Failed(error) => {
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

/// The alias a topic message is delivered through: the one the function's trigger for
/// that topic names, read when it runs (as an HTTP route's is).
fn topic_alias(layer: &EventLayer, event: &AsyncEvent) -> Option<AliasName> {
    let EventSource::Topic { topic, .. } = &event.source else { return None };
    let config = layer.host()?.function(&event.function)?;
    config.triggers.iter().find_map(|trigger| match trigger {
        Trigger::Topic(trigger) if trigger.topic == *topic => trigger.alias.clone(),
        _ => None,
    })
}
