//! Where asynchronous invocations wait to run: the [`EventQueue`] the dispatcher,
//! the publishers and the schedules share, and its two backends. The database
//! (SQLite with zero setup, or PostgreSQL) keeps events as rows with leases and
//! group-commits its writes; NATS JetStream keeps them as messages in a work-queue
//! stream read by one durable pull consumer, with acks, redelivery and delayed
//! redelivery for backoff ([`jetstream`]). Both promise the same: an event is
//! durable before `enqueue` returns, a claimed event runs again if its node dies
//! before settling it, and settling stores what follows from it before the event
//! leaves the queue.

pub(crate) mod jetstream;
#[cfg(test)]
mod tests;

use std::time::Duration;

use futures::future::BoxFuture;
use updraft_model::FunctionName;
use updraft_model::now_millis;
use updraft_store::{AsyncEvent, EventWrite, EventWriter, Finish, Store, StoreError};

/// Why the queue could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS JetStream failed or refused.
    #[error("the event broker failed: {detail}")]
    Broker { detail: String },
    /// An event the broker holds cannot be read back.
    #[error("an event in the broker is unreadable: {detail}")]
    Unreadable { detail: String },
    /// The server stopped before the events were stored; send them again.
    #[error("the server is stopping; the events were not accepted, send them again")]
    Stopping,
}

/// Which backend keeps the events, from the server's configuration.
#[derive(Debug, Clone, Default)]
pub enum EventQueueConfig {
    /// The control-plane database: nothing to set up.
    #[default]
    Database,
    /// A NATS server with JetStream enabled.
    JetStream {
        /// `nats://host:port`.
        url: String,
        /// The stream's name; its subjects start with it, so servers that must not
        /// share events use different names.
        stream: String,
        /// How long a fetched event stays held without word from its node (renewed
        /// while it runs): how soon a dead node's events run elsewhere.
        ack_wait: Duration,
    },
}

/// An event taken from the queue to run: this node holds it until it is settled (or
/// the node dies, and the event becomes due again).
pub(crate) struct Claimed {
    pub event: AsyncEvent,
    handle: Handle,
}

enum Handle {
    Database,
    // Boxed: a claim is moved around while its function runs.
    JetStream(Box<async_nats::jetstream::Message>),
}

/// How a claimed event's run ended.
pub(crate) enum Settlement {
    /// It ran: it leaves the queue; `follow_ups` (its destination's record) are
    /// stored first.
    Done { follow_ups: Vec<AsyncEvent> },
    /// Out of attempts or too old: kept as `failed`; `follow_ups` (on-failure record,
    /// dead-letter copies) are stored first.
    Failed { attempts: i64, error: String, follow_ups: Vec<AsyncEvent> },
    /// Due again at `next_attempt_at` with `attempts` counted.
    Retry { attempts: i64, next_attempt_at: i64, error: String },
}

/// The durable queue of asynchronous invocations.
pub(crate) trait EventQueue: Send + Sync {
    /// Stores `events`; when the future completes they are durable. The database
    /// stores all or none; JetStream stores each (a failure may leave some stored, and
    /// the caller, told it failed, may send them again).
    fn enqueue(&self, events: Vec<AsyncEvent>) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Stores `events` (as `enqueue` does) already held by `node`, as if `claim` had
    /// handed them out: the node that accepted them runs them without reading them
    /// back. Returns the claims, each to be settled; a node that dies holding them
    /// leaves them to `recover` and to the other nodes' takeover, as any claim. A queue
    /// that cannot hold an event before it is stored (JetStream hands messages out
    /// through its consumer alone) enqueues them and returns no claims.
    fn enqueue_claimed<'a>(
        &'a self,
        node: &'a str,
        events: Vec<AsyncEvent>,
    ) -> BoxFuture<'a, Result<Vec<Claimed>, QueueError>> {
        let _ = node;
        Box::pin(async move {
            self.enqueue(events).await?;
            Ok(Vec::new())
        })
    }

    /// At `node`'s start: what its previous run held is due again. Returns how many.
    fn recover<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<u64, QueueError>>;

    /// Up to `limit` events due now, each held by `node` until settled.
    fn claim<'a>(&'a self, node: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<Claimed>, QueueError>>;

    /// Records how `claimed` ended.
    fn settle(&self, claimed: Claimed, settlement: Settlement) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Keeps `claimed` held while it runs, for as long as the returned guard lives.
    fn hold(&self, claimed: &Claimed) -> Hold;

    /// An event still queued (or running), or failed for good; `None` once it ran.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AsyncEvent>, QueueError>>;

    /// Makes the failed events among `ids` due now, as if newly accepted (attempts
    /// reset, so each gets its function's retries again). Returns the ids it changed;
    /// an event not failed is left as it is. Like `enqueue`, durable on return.
    fn redrive<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, QueueError>>;

    /// Moves schedule `key` from tick `expected` to `next` and stores the `events` of
    /// the ticks that fired, exactly once across restarts and nodes: false, storing
    /// nothing new, when another run moved it first (see [`Store::schedule_advance`]).
    fn advance_schedule<'a>(
        &'a self,
        key: &'a str,
        function: &'a FunctionName,
        expected: Option<i64>,
        next: i64,
        events: Vec<AsyncEvent>,
    ) -> BoxFuture<'a, Result<bool, QueueError>>;
}

/// Keeps a claim alive while its event runs; dropping it stops.
pub(crate) struct Hold(Option<tokio::task::JoinHandle<()>>);

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// How long a database claim holds an event before another node may take it: longer
/// than any function may run.
const LEASE: Duration = Duration::from_secs(20 * 60);

/// The queue in the control-plane database, its writes group-committed.
pub(crate) struct DatabaseQueue {
    store: Store,
    writer: EventWriter,
}

impl DatabaseQueue {
    /// Must be called inside a Tokio runtime (it starts the group writer).
    pub(crate) fn new(store: Store) -> Self {
        Self { writer: EventWriter::start(store.clone()), store }
    }
}

impl EventQueue for DatabaseQueue {
    fn enqueue(&self, events: Vec<AsyncEvent>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { Ok(self.writer.enqueue(events).await?) })
    }

    fn enqueue_claimed<'a>(
        &'a self,
        node: &'a str,
        events: Vec<AsyncEvent>,
    ) -> BoxFuture<'a, Result<Vec<Claimed>, QueueError>> {
        Box::pin(async move {
            let lease_until = now_millis() + LEASE.as_millis() as i64;
            let events: Vec<AsyncEvent> =
                events.into_iter().map(|event| AsyncEvent { next_attempt_at: lease_until, ..event }).collect();
            let writes = events
                .iter()
                .map(|event| EventWrite::EnqueueClaimed { event: event.clone(), node: node.to_owned() })
                .collect();
            self.writer.write(writes).await?;
            Ok(events.into_iter().map(|event| Claimed { event, handle: Handle::Database }).collect())
        })
    }

    fn recover<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<u64, QueueError>> {
        Box::pin(async move { Ok(self.store.event_release_all(node, now_millis()).await?) })
    }

    fn claim<'a>(&'a self, node: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<Claimed>, QueueError>> {
        Box::pin(async move {
            let now = now_millis();
            let lease_until = now + LEASE.as_millis() as i64;
            let events = self.store.event_claim(node, now, lease_until, limit as i64).await?;
            Ok(events.into_iter().map(|event| Claimed { event, handle: Handle::Database }).collect())
        })
    }

    fn settle(&self, claimed: Claimed, settlement: Settlement) -> BoxFuture<'_, Result<(), QueueError>> {
        let id = claimed.event.id;
        // Outcomes go through the group writer too: many events finishing at once
        // share a commit, and each outcome commits with its follow-ups.
        let writes = match settlement {
            Settlement::Done { follow_ups } => with_follow_ups(Finish::Done.write(&id), follow_ups),
            Settlement::Failed { attempts, error, follow_ups } => {
                with_follow_ups(Finish::Failed { attempts, error: &error }.write(&id), follow_ups)
            }
            Settlement::Retry { attempts, next_attempt_at, error } => {
                vec![EventWrite::Retry { id, attempts, next_attempt_at, error: Some(error) }]
            }
        };
        Box::pin(async move { Ok(self.writer.write(writes).await?) })
    }

    fn hold(&self, _claimed: &Claimed) -> Hold {
        // The lease outlasts any run.
        Hold(None)
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AsyncEvent>, QueueError>> {
        Box::pin(async move { Ok(self.store.event_get(id).await?) })
    }

    fn redrive<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, QueueError>> {
        Box::pin(async move { Ok(self.store.event_redrive(ids, now_millis()).await?) })
    }

    fn advance_schedule<'a>(
        &'a self,
        key: &'a str,
        function: &'a FunctionName,
        expected: Option<i64>,
        next: i64,
        events: Vec<AsyncEvent>,
    ) -> BoxFuture<'a, Result<bool, QueueError>> {
        Box::pin(async move { Ok(self.store.schedule_advance(key, function, expected, next, &events).await?) })
    }
}

fn with_follow_ups(first: EventWrite, follow_ups: Vec<AsyncEvent>) -> Vec<EventWrite> {
    let mut writes = vec![first];
    writes.extend(follow_ups.into_iter().map(EventWrite::Enqueue));
    writes
}
