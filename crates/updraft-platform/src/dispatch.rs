//! The dispatcher of asynchronous invocations: takes due events from the durable queue
//! and runs each through the scheduler, at least once. A success removes the event; a
//! throttle puts it back a moment later without counting an attempt (events are never
//! dropped for want of concurrency); a failure retries with backoff, as Lambda does,
//! until the attempts or the event's age run out, and then the event stays, `failed`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, watch};
use updraft_model::TriggerKind;
use updraft_store::{AsyncEvent, Store, now_millis};

use crate::platform::{InvokeContext, InvokeFailure, Platform, event_request};

/// How asynchronous invocations are retried (how often, and for how long, is each
/// function's `retries` and `max_event_age`).
#[derive(Debug, Clone, Copy)]
pub struct AsyncConfig {
    /// The wait before the first retry; each later one waits twice as long
    /// (Lambda: about a minute, then two).
    pub retry_delay: Duration,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self { retry_delay: Duration::from_secs(60) }
    }
}

/// Events run at once by one node.
const IN_FLIGHT: usize = 64;
/// Events claimed per query.
const BATCH: i64 = 64;
/// How long a claimed event is held by this node before another may take it.
const LEASE: Duration = Duration::from_secs(20 * 60);
/// How long a throttled event waits before it is tried again.
const THROTTLE_DELAY: Duration = Duration::from_secs(1);
/// How often the queue is looked at when nothing wakes the dispatcher (retries fall due).
const POLL: Duration = Duration::from_millis(250);

/// The handle that stops the dispatcher and wakes it for new events.
pub(crate) struct Dispatcher {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl Dispatcher {
    /// Starts dispatching for `platform`, first releasing the leases a previous run of
    /// this node left (they died with it).
    pub(crate) async fn start(platform: &Arc<Platform>, store: Store) -> Result<Dispatcher, updraft_store::StoreError> {
        let released = store.event_release_all(now_millis()).await?;
        if released > 0 {
            tracing::info!(released, "asynchronous invocations interrupted by the last stop are due again");
        }
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run(Arc::downgrade(platform), store, wake.clone(), stopped));
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

async fn run(platform: Weak<Platform>, store: Store, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        if *stopped.borrow() {
            return;
        }
        let free = slots.available_permits() as i64;
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let now = now_millis();
            match store.event_claim(now, now + LEASE.as_millis() as i64, free.min(BATCH)).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot read the queue of asynchronous invocations");
                    Vec::new()
                }
            }
        };
        let full = claimed.len() as i64 == free.min(BATCH) && free > 0;
        for event in claimed {
            let Some(platform) = platform.upgrade() else { return };
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                deliver(&platform, &store, event).await;
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

/// Runs one attempt of `event` and records what comes of it.
async fn deliver(platform: &Platform, store: &Store, event: AsyncEvent) {
    let config = platform.async_config();
    // The function's own policy, as deployed now (Lambda's defaults if it is gone).
    let (retries, max_age) = platform
        .live()
        .functions
        .get(&event.function)
        .map(|function| (function.config.retries, function.config.max_event_age))
        .unwrap_or((2, Duration::from_secs(6 * 3600)));
    let outcome = attempt(platform, &event).await;
    let now = now_millis();
    let written = match outcome {
        Ok(()) => store.event_done(&event.id).await,
        Err(Retry::Throttled) => {
            store
                .event_retry(&event.id, event.attempts, now + THROTTLE_DELAY.as_millis() as i64, Some("throttled"))
                .await
        }
        Err(Retry::Never(error)) => store.event_fail(&event.id, event.attempts, &error).await,
        Err(Retry::Failed(error)) => {
            let attempts = event.attempts + 1;
            let age = Duration::from_millis((now - event.enqueued_at).max(0) as u64);
            if attempts > i64::from(retries) || age >= max_age {
                tracing::info!(id = %event.id, function = %event.function, attempts, %error, "asynchronous invocation failed for good");
                store.event_fail(&event.id, attempts, &error).await
            } else {
                let delay = config.retry_delay.saturating_mul(1 << (attempts - 1).clamp(0, 16));
                store.event_retry(&event.id, attempts, now + delay.as_millis() as i64, Some(&error)).await
            }
        }
    };
    if let Err(error) = written {
        // The lease runs out and the event is tried again: at least once, not lost.
        tracing::error!(id = %event.id, %error, "cannot record the outcome of an asynchronous invocation");
    }
}

enum Retry {
    Throttled,
    Failed(String),
    Never(String),
}

async fn attempt(platform: &Platform, event: &AsyncEvent) -> Result<(), Retry> {
    let Some(function) = platform.live().functions.get(&event.function).cloned() else {
        return Err(Retry::Never(format!("function {} no longer exists", event.function)));
    };
    let json = http::HeaderValue::from_static("application/json");
    let payload = Bytes::from(event.payload.clone());
    let mut request = event_request(&event.id, "updraft/async", "dev.updraft.invoke.async", json, payload);
    let traceparent = format!("00-{}-{:016x}-01", event.trace_id, rand::random::<u64>() | 1);
    if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert("traceparent", value);
    }
    let context = InvokeContext {
        request_id: event.id.clone(),
        trigger: TriggerKind::Async,
        trace_id: Some(event.trace_id.clone()),
    };
    match platform.invoke(&function, request, context).await {
        Ok(invocation) if invocation.response.status().is_success() => Ok(()),
        Ok(invocation) => Err(Retry::Failed(format!("the function answered {}", invocation.response.status()))),
        Err(InvokeFailure::Throttled { .. }) => Err(Retry::Throttled),
        Err(InvokeFailure::NotFound { function }) => Err(Retry::Never(format!("function {function} no longer exists"))),
        Err(InvokeFailure::Function { error, .. }) => Err(Retry::Failed(error.to_string())),
    }
}
