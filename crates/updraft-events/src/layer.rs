//! [`EventLayer`]: the event layer's state, shared by its loops (dispatcher, schedule
//! ticker, work-queue poller, workflow runners; started in `start.rs`), which hold it
//! weakly and end when it stops.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use tokio::sync::{Notify, Semaphore, watch};
use updraft_model::{AppName, FunctionName, TriggerKind};
use updraft_runtime::{Input, InvokeContext};
use updraft_store::{AsyncEvent, EventState, Store};

use crate::definitions::Workflow;
use crate::host::{Host, Ran};
use crate::queue::jetstream::JetStreamQueue;
use crate::queue::{DatabaseQueue, EventQueue, EventQueueConfig, QueueError};

/// Events run at once by one node (each until its outcome is settled). Enough that a
/// message to a hundred subscribers is claimed and started in one go; the scheduler's
/// limits still decide how many of them run at once.
const IN_FLIGHT: usize = 256;

/// The dispatcher's state, shared with the publishers that hand it events directly.
pub(crate) struct Dispatcher {
    /// One permit per event this node runs at once.
    pub(crate) slots: Arc<Semaphore>,
    /// Set while every slot may be taken: the next event to finish wakes the
    /// dispatcher, so that what is still due is claimed at once, not at the next poll.
    pub(crate) starved: AtomicBool,
    /// Wakes the dispatcher for new events.
    pub(crate) wake: Arc<Notify>,
    /// The layer, once its dispatcher runs.
    pub(crate) running: OnceLock<Weak<EventLayer>>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            starved: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            running: OnceLock::new(),
        }
    }
}

/// How many failed events one step of [`EventLayer::redrive_all`] retries.
const REDRIVE_BATCH: i64 = 256;

/// An asynchronous invocation not yet delivered: waiting, running, or failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// Also the request id of each of its attempts.
    pub id: String,
    pub function: FunctionName,
    /// What sent it.
    pub trigger: TriggerKind,
    /// Out of attempts or too old: kept for inspection, never run again.
    pub failed: bool,
    /// Attempts that ran and failed.
    pub attempts: i64,
    /// When it was accepted (ms since the epoch).
    pub enqueued_at: i64,
    pub last_error: Option<String>,
}

impl From<AsyncEvent> for PendingEvent {
    fn from(event: AsyncEvent) -> Self {
        Self {
            trigger: event.source.trigger(),
            failed: event.state == EventState::Failed,
            id: event.id,
            function: event.function,
            attempts: event.attempts,
            enqueued_at: event.enqueued_at,
            last_error: event.last_error,
        }
    }
}

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

/// How the event layer runs.
#[derive(Debug, Clone)]
pub struct EventConfig {
    /// Where asynchronous events wait.
    pub queue: EventQueueConfig,
    /// How asynchronous invocations are retried.
    pub async_invocations: AsyncConfig,
    /// This node's lasting identity: the owner of its event leases and workflow
    /// executions, released and resumed by its next start.
    pub node_id: String,
    /// Another node silent this long (or gone) is dead: its leases and workflow
    /// executions are taken over.
    pub dead_after: Duration,
}

/// The event layer of one node.
pub struct EventLayer {
    config: EventConfig,
    store: Store,
    queue: Box<dyn EventQueue>,
    /// The platform that runs functions; set by [`EventLayer::start`].
    host: OnceLock<Weak<dyn Host>>,
    /// The deployed workflows, from every app's manifest.
    workflows: ArcSwap<BTreeMap<FunctionName, Arc<Workflow>>>,
    /// The dispatcher's slots and wake-up.
    dispatcher: Dispatcher,
    /// Wakes the work-queue poller for new messages.
    queues_wake: Arc<Notify>,
    /// Turns true when the layer stops (every loop watches it).
    stopping: watch::Sender<bool>,
}

impl EventLayer {
    /// Opens the event queue (connecting to NATS when configured). Nothing runs until
    /// [`EventLayer::start`].
    pub async fn open(store: Store, config: EventConfig) -> Result<Arc<Self>, QueueError> {
        let queue: Box<dyn EventQueue> = match &config.queue {
            EventQueueConfig::Database => Box::new(DatabaseQueue::new(store.clone())),
            EventQueueConfig::JetStream { url, stream, ack_wait } => {
                let queue = JetStreamQueue::connect(url, stream, store.clone(), *ack_wait).await?;
                tracing::info!(%url, %stream, "asynchronous events wait in NATS JetStream");
                Box::new(queue)
            }
        };
        Ok(Arc::new(Self {
            config,
            store,
            queue,
            host: OnceLock::new(),
            workflows: ArcSwap::from_pointee(BTreeMap::new()),
            dispatcher: Dispatcher::default(),
            queues_wake: Arc::new(Notify::new()),
            stopping: watch::channel(false).0,
        }))
    }

    /// Claims no more events and fires no more ticks; running deliveries finish, and
    /// workflow executions stop where they are (the next start resumes them).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// How long another node may be silent before its work is taken over.
    pub(crate) fn dead_after(&self) -> Duration {
        self.config.dead_after
    }

    pub fn async_config(&self) -> AsyncConfig {
        self.config.async_invocations
    }

    /// The deployed workflows, by name.
    pub fn workflows(&self) -> Arc<BTreeMap<FunctionName, Arc<Workflow>>> {
        self.workflows.load_full()
    }

    /// Makes `workflows` the deployed workflows of `app`, replacing the ones it had.
    pub fn workflows_replace(&self, app: &AppName, workflows: Vec<Arc<Workflow>>) {
        let mut all: BTreeMap<_, _> =
            self.workflows.load().iter().filter(|(_, w)| w.app != *app).map(|(n, w)| (n.clone(), w.clone())).collect();
        all.extend(workflows.into_iter().map(|workflow| (workflow.name.clone(), workflow)));
        self.workflows.store(Arc::new(all));
    }

    /// An asynchronous invocation still queued or failed (a delivered one is gone).
    pub async fn async_event(&self, id: &str) -> Result<Option<PendingEvent>, QueueError> {
        Ok(self.queue.get(id).await?.map(PendingEvent::from))
    }

    /// Failed asynchronous invocations, the latest accepted first: `function`'s (or
    /// every function's), accepted before `before` (ms since the epoch) when given.
    pub async fn failed_events(
        &self,
        function: Option<&FunctionName>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PendingEvent>, QueueError> {
        let events = self.store.event_failed_list(function, before, limit).await?;
        Ok(events.into_iter().map(PendingEvent::from).collect())
    }

    /// Runs failed asynchronous invocations again, each as if newly accepted: its
    /// function's retries and maximum age start over; its id, payload and trace stay.
    /// Returns the ids retried; one not failed (queued, running, delivered) is not.
    pub async fn redrive(&self, ids: &[String]) -> Result<Vec<String>, QueueError> {
        let redriven = self.queue.redrive(ids).await?;
        if !redriven.is_empty() {
            self.wake_dispatcher();
        }
        Ok(redriven)
    }

    /// Retries every failed asynchronous invocation of `function` (or of every
    /// function) that failed before this call; returns how many. One that fails again
    /// while this runs is not retried twice.
    pub async fn redrive_all(&self, function: Option<&FunctionName>) -> Result<u64, QueueError> {
        // Retried events count as accepted now, so they drop out of this listing.
        let started = updraft_model::now_millis();
        let mut retried = 0;
        loop {
            let failed = self.store.event_failed_list(function, Some(started), REDRIVE_BATCH).await?;
            if failed.is_empty() {
                return Ok(retried);
            }
            let ids: Vec<String> = failed.into_iter().map(|event| event.id).collect();
            retried += self.redrive(&ids).await?.len() as u64;
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn event_queue(&self) -> &dyn EventQueue {
        self.queue.as_ref()
    }

    pub(crate) fn host(&self) -> Option<Arc<dyn Host>> {
        self.host.get().and_then(Weak::upgrade)
    }

    /// Runs an invocation on the host (none left: the function is not deployed), of the
    /// version `qualifier` names (a number or an alias) when one is asked for.
    pub(crate) async fn invoke(
        &self,
        function: &FunctionName,
        qualifier: Option<&str>,
        input: Input,
        context: InvokeContext,
    ) -> Ran {
        match self.host() {
            Some(host) => host.invoke(function, qualifier, input, context).await,
            None => Ran::NotDeployed,
        }
    }

    /// Waits for the record of `request_id`, when records must be durable before an
    /// outcome settles; `None` when they need not be.
    pub(crate) fn record_wait(&self, request_id: &str) -> Option<BoxFuture<'static, bool>> {
        let durable = self.config.async_invocations.durable_records;
        durable.then(|| self.host().map(|host| host.record_stored(request_id))).flatten()
    }

    /// Whether the layer has been told to stop.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// A receiver that turns true when the layer stops.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Counts what happened to `function`'s asynchronous events in the host's metrics.
    pub(crate) fn count(&self, function: &FunctionName, what: crate::host::AsyncEventMetric) {
        if let Some(host) = self.host() {
            host.count(function, what);
        }
    }

    /// How many of `events` each function receives.
    pub(crate) fn received(events: &[AsyncEvent]) -> BTreeMap<FunctionName, u64> {
        let mut per_function: BTreeMap<FunctionName, u64> = BTreeMap::new();
        for event in events {
            *per_function.entry(event.function.clone()).or_default() += 1;
        }
        per_function
    }

    /// Counts events stored for their functions (see [`EventLayer::received`]).
    pub(crate) fn count_received(&self, received: BTreeMap<FunctionName, u64>) {
        for (function, count) in received {
            self.count(&function, crate::host::AsyncEventMetric::Received(count));
        }
    }

    /// Tells the queue poller that new messages are waiting.
    pub(crate) fn wake_queues(&self) {
        self.queues_wake.notify_one();
    }

    /// Tells the dispatcher that new events are due.
    pub(crate) fn wake_dispatcher(&self) {
        self.dispatcher.wake.notify_one();
    }

    pub(crate) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub(crate) fn queues_wake(&self) -> Arc<Notify> {
        self.queues_wake.clone()
    }

    /// Sets the host, once.
    pub(crate) fn set_host(&self, host: Weak<dyn Host>) {
        let _ = self.host.set(host);
    }

    /// Makes `workflows` the deployed ones (at start, and when another node of the
    /// cluster deployed).
    pub fn workflows_set(&self, workflows: Vec<Arc<Workflow>>) {
        self.workflows.store(Arc::new(workflows.into_iter().map(|w| (w.name.clone(), w)).collect()));
    }
}
