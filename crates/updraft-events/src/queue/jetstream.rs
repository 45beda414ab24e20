//! The event queue on NATS JetStream. Events are messages in one work-queue stream
//! (file storage; a message is deleted when it is acknowledged), one subject per event
//! (`<stream>.q.<id>`), so an event's latest state is the last message on its subject.
//! Every node reads through one durable pull consumer with explicit acks:
//!
//! - `enqueue` publishes with the event id as `Nats-Msg-Id` and waits for the
//!   stream's acknowledgement; JetStream drops a repeat of the same id within the
//!   duplicate window, which makes re-publishing after a crash (a schedule's tick,
//!   whose id derives from the tick) harmless.
//! - A claimed message is held for the consumer's ack wait, renewed with progress
//!   acks while the function runs; a node that dies stops renewing and JetStream
//!   redelivers the message to whoever fetches next.
//! - A throttled event is negatively acknowledged with a delay (redelivered then,
//!   no attempt counted); a failed attempt is re-published with its new attempt count
//!   and due time, then the old message acknowledged; a message fetched before it is
//!   due goes back with a delay until then. That is the backoff.
//! - Done: the follow-ups are published, then the message acknowledged (and the ack
//!   confirmed). Failed for good: the follow-ups published, the event kept in the
//!   database as `failed` for inspection, then acknowledged. A crash in between
//!   repeats the run: at least once, never lost.
//!
//! Schedule positions stay in the database, and the database is the outbox: a tick's
//! events are stored with the position's move in one transaction (as on the database
//! backend), then published and deleted there. A failed event redriven is queued again
//! in the database and leaves through the outbox the same way. Whatever a crash left in the outbox
//! (or a switch from the database backend left queued) is published at the next start
//! and before each schedule move; ids travel along, so a repeat is dropped.
//!
//! Every message must fit the server's `max_payload`. An event too large is refused at
//! `enqueue`; a follow-up too large (a destination record carries the response) is kept
//! in the database as `failed` instead of blocking its event; an error message is cut
//! to 4 KiB in the message.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js, Message};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use updraft_model::now_millis;
use updraft_model::{EventSource, FunctionName};
use updraft_store::{AsyncEvent, EventState, EventWrite, Store};

use super::{Claimed, EventQueue, Handle, Hold, QueueError, Settlement};

/// How long a fetch may take before the dispatcher gives up on it and fetches again.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error message an event carries in its message.
const MAX_ERROR: usize = 4096;
/// How long JetStream remembers a message id to drop a repeat of it.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// The durable consumer every node reads through.
const CONSUMER: &str = "dispatch";
/// How long a throttled event waits before it is tried again.
const THROTTLE_DELAY: Duration = Duration::from_secs(1);

pub(crate) struct JetStreamQueue {
    context: js::Context,
    stream: stream::Stream,
    consumer: PullConsumer,
    /// `<stream>.q`: an event's subject is this and its id.
    prefix: String,
    /// How often a running event's hold is renewed (a third of the ack wait).
    progress: Duration,
    /// The server's largest message.
    max_payload: usize,
    /// Failed events and schedule positions.
    store: Store,
}

fn broker(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> QueueError {
    move |error| QueueError::Broker { detail: format!("{what}: {error}") }
}

impl JetStreamQueue {
    /// Connects to the NATS server at `url` and makes sure stream `name` and its
    /// consumer exist; a new consumer holds fetched messages for `ack_wait`.
    pub(crate) async fn connect(url: &str, name: &str, store: Store, ack_wait: Duration) -> Result<Self, QueueError> {
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\')) {
            return Err(QueueError::Broker {
                detail: format!(
                    "{name:?} is not a JetStream stream name; use letters, digits, '-' and '_' (no spaces, '.', '*', '>')"
                ),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .name("updraft")
            .connect(url)
            .await
            .map_err(|error| broker("cannot connect to NATS")(&format_args!("{url}: {error}")))?;
        let context = js::new(client);
        let stream = context
            .get_or_create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![format!("{name}.q.*")],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|error| {
                broker("cannot create the JetStream stream (is JetStream enabled? nats-server -js)")(&error)
            })?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    // Attempts are counted in the event itself: throttles do not count.
                    max_deliver: -1,
                    // Events waiting out a retry's delay are pending too.
                    max_ack_pending: 1_000_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| broker("cannot create the JetStream consumer")(&error))?;
        let max_payload = context.client().server_info().max_payload;
        Ok(Self { context, stream, consumer, prefix: format!("{name}.q"), progress: ack_wait / 3, max_payload, store })
    }

    fn subject(&self, id: &str) -> String {
        format!("{}.{id}", self.prefix)
    }

    /// Publishes every event (each under its `message_id`), then waits for the
    /// stream to have stored them all.
    async fn publish(&self, events: impl IntoIterator<Item = (AsyncEvent, String)>) -> Result<(), QueueError> {
        let mut acks = Vec::new();
        for (event, message_id) in events {
            let message = encode(&event)?;
            if message.len() > self.max_payload {
                return Err(QueueError::Broker {
                    detail: format!(
                        "event {} is {} bytes; the NATS server takes at most {} (its max_payload): send less, or raise max_payload",
                        event.id,
                        message.len(),
                        self.max_payload
                    ),
                });
            }
            let publish = PublishMessage::build().payload(message).message_id(message_id);
            let ack = self
                .context
                .send_publish(self.subject(&event.id), publish)
                .await
                .map_err(|error| broker("cannot publish an event")(&format_args!("{}: {error}", event.id)))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|error| broker("JetStream did not store an event")(&error))?;
        }
        Ok(())
    }

    fn enqueue_all(&self, events: Vec<AsyncEvent>) -> impl Future<Output = Result<(), QueueError>> + Send + '_ {
        self.publish(events.into_iter().map(|event| {
            let id = event.id.clone();
            (event, id)
        }))
    }

    /// Publishes `follow_ups`, keeping in the database (as `failed`, with the reason)
    /// those too large to ever be a message, so that they cannot hold up their event.
    async fn follow(&self, follow_ups: Vec<AsyncEvent>) -> Result<(), QueueError> {
        let (fit, too_large): (Vec<_>, Vec<_>) = follow_ups
            .into_iter()
            .partition(|event| encode(event).is_ok_and(|message| message.len() <= self.max_payload));
        if !too_large.is_empty() {
            let kept: Vec<EventWrite> = too_large
                .into_iter()
                .map(|event| {
                    tracing::warn!(id = %event.id, function = %event.function, "a follow-up event is larger than the NATS server's max_payload; it is kept as failed in the database");
                    EventWrite::Enqueue(AsyncEvent {
                        state: EventState::Failed,
                        last_error: Some(format!(
                            "larger than the NATS server's max_payload ({} bytes); not delivered",
                            self.max_payload
                        )),
                        ..event
                    })
                })
                .collect();
            self.store.event_write(&kept).await?;
        }
        self.enqueue_all(fit).await
    }

    /// Publishes what waits in the database's queue (tick events a crash left there, or
    /// events queued before the switch to JetStream), then deletes it there. Returns
    /// how many.
    async fn flush_outbox(&self) -> Result<u64, QueueError> {
        let mut moved = 0;
        loop {
            // Claimed (under an unreachable lease) so that two nodes do not both move a row.
            let events = self.store.event_claim(OUTBOX, i64::MAX - 1, i64::MAX, 256).await?;
            if events.is_empty() {
                return Ok(moved);
            }
            let done: Vec<EventWrite> = events.iter().map(|event| EventWrite::Done { id: event.id.clone() }).collect();
            moved += events.len() as u64;
            // The event's id is the message id, so a tick's event published before a
            // crash (and again from here) is dropped as a repeat. A redriven event
            // (queued again after failing: it has an error) is a new acceptance, so its
            // id names that, or JetStream would drop it as a repeat of its first
            // publication within the duplicate window.
            let events = events.into_iter().map(|event| {
                let message_id = match event.last_error {
                    Some(_) => format!("{}@{}", event.id, event.enqueued_at),
                    None => event.id.clone(),
                };
                let event = AsyncEvent {
                    next_attempt_at: event.enqueued_at.max(event.next_attempt_at.min(now_millis())),
                    ..event
                };
                (event, message_id)
            });
            self.publish(events).await?;
            self.store.event_write(&done).await?;
        }
    }
}

/// The claimant of rows being moved from the database's queue to JetStream.
const OUTBOX: &str = "jetstream-outbox";

impl EventQueue for JetStreamQueue {
    fn enqueue(&self, events: Vec<AsyncEvent>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(self.enqueue_all(events))
    }

    fn recover<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<u64, QueueError>> {
        // What the last run held in JetStream comes back by itself once its ack wait
        // runs out; what it left in the outbox (or in the database's queue, if this
        // server kept its events there before) moves now, leases included.
        Box::pin(async move {
            self.store.event_release_all(node, now_millis()).await?;
            self.store.event_release_all(OUTBOX, now_millis()).await?;
            self.flush_outbox().await
        })
    }

    fn claim<'a>(&'a self, _node: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<Claimed>, QueueError>> {
        Box::pin(async move {
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(limit)
                .messages()
                .await
                .map_err(|error| broker("cannot fetch events")(&error))?;
            let now = now_millis();
            let mut claimed = Vec::new();
            let deadline = tokio::time::Instant::now() + FETCH_TIMEOUT;
            // A lost answer to the fetch must not stall the dispatcher: what arrived by
            // the deadline is handed out, the rest comes back after the ack wait.
            while let Ok(Some(message)) = tokio::time::timeout_at(deadline, batch.next()).await {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        // What was fetched and not handed out comes back after the ack wait.
                        tracing::warn!(%error, "fetching events from JetStream stopped early");
                        break;
                    }
                };
                let event = match decode(&message.payload) {
                    Ok(event) => event,
                    Err(detail) => {
                        tracing::error!(subject = %message.subject, %detail, "a message in the event stream is not an event; it is dropped");
                        ack(&message, AckKind::Term).await;
                        continue;
                    }
                };
                if event.next_attempt_at > now {
                    let delay = Duration::from_millis((event.next_attempt_at - now) as u64);
                    ack(&message, AckKind::Nak(Some(delay))).await;
                    continue;
                }
                claimed.push(Claimed { event, handle: Handle::JetStream(Box::new(message)) });
            }
            Ok(claimed)
        })
    }

    fn settle(&self, claimed: Claimed, settlement: Settlement) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let Handle::JetStream(message) = claimed.handle else {
                return Err(QueueError::Broker {
                    detail: "a database claim settled on the JetStream queue".to_owned(),
                });
            };
            let event = claimed.event;
            match settlement {
                Settlement::Done { follow_ups } => {
                    self.follow(follow_ups).await?;
                }
                Settlement::Failed { attempts, error, follow_ups } => {
                    self.follow(follow_ups).await?;
                    let failed = AsyncEvent { attempts, last_error: Some(error), state: EventState::Failed, ..event };
                    self.store.event_write(&[EventWrite::Enqueue(failed)]).await?;
                }
                Settlement::Retry { attempts, next_attempt_at, .. } if attempts == event.attempts => {
                    // Throttled: redelivered after the delay, nothing counted.
                    let delay = Duration::from_millis((next_attempt_at - now_millis()).max(0) as u64);
                    return message
                        .ack_with(AckKind::Nak(Some(delay.max(THROTTLE_DELAY))))
                        .await
                        .map_err(|error| broker("cannot put an event back")(&error));
                }
                Settlement::Retry { attempts, next_attempt_at, error } => {
                    let message_id = format!("{}.{attempts}", event.id);
                    let mut retry = AsyncEvent { attempts, next_attempt_at, last_error: Some(error), ..event };
                    if encode(&retry).is_ok_and(|message| message.len() > self.max_payload) {
                        // The event fitted without its error; it must fit again.
                        retry.last_error = None;
                    }
                    self.publish([(retry, message_id)]).await?;
                }
            }
            message.double_ack().await.map_err(|error| broker("cannot acknowledge an event")(&error))
        })
    }

    fn hold(&self, claimed: &Claimed) -> Hold {
        let Handle::JetStream(message) = &claimed.handle else { return Hold(None) };
        let message = Message::clone(message);
        let progress = self.progress;
        Hold(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(progress).await;
                ack(&message, AckKind::Progress).await;
            }
        })))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AsyncEvent>, QueueError>> {
        Box::pin(async move {
            // Not a subject token: no such event here.
            if id.is_empty() || id.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>')) {
                return Ok(None);
            }
            match self.stream.get_last_raw_message_by_subject(&self.subject(id)).await {
                Ok(message) => decode(&message.payload).map(Some).map_err(|detail| QueueError::Unreadable { detail }),
                Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    Ok(self.store.event_get(id).await?)
                }
                Err(error) => Err(broker("cannot read an event")(&error)),
            }
        })
    }

    fn redrive<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, QueueError>> {
        Box::pin(async move {
            // Failed events are kept in the database; queued again there, they are in
            // the outbox, and moving it publishes them.
            let redriven = self.store.event_redrive(ids, now_millis()).await?;
            self.flush_outbox().await?;
            Ok(redriven)
        })
    }

    fn advance_schedule<'a>(
        &'a self,
        key: &'a str,
        function: &'a FunctionName,
        expected: Option<i64>,
        next: i64,
        events: Vec<AsyncEvent>,
    ) -> BoxFuture<'a, Result<bool, QueueError>> {
        Box::pin(async move {
            // The database is the outbox: the move and the tick's events commit together.
            let moved = self.store.schedule_advance(key, function, expected, next, &events).await?;
            if let Err(error) = self.flush_outbox().await {
                // They stay in the outbox, published at the next move or start.
                tracing::warn!(%error, "cannot move schedule ticks to JetStream yet");
            }
            Ok(moved)
        })
    }
}

/// Acknowledges `message` as `kind`, logging (not failing) when NATS does not take
/// it: the message then comes back after the ack wait.
async fn ack(message: &Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        tracing::warn!(subject = %message.subject, %error, "cannot acknowledge an event message");
    }
}

/// Everything of an event but its payload, which follows it in the message as is.
#[derive(Serialize, Deserialize)]
struct Envelope {
    id: String,
    function: String,
    trace_id: String,
    /// Absent in messages from before traces kept their parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    /// The chain's lineage (`Lineage`'s text form); absent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    lineage: String,
    /// The version or alias it runs; absent for the version serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qualifier: Option<String>,
    enqueued_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    source: EventSource,
}

/// A message: the envelope's JSON length (4 bytes, big-endian), the envelope, the
/// payload.
fn encode(event: &AsyncEvent) -> Result<Bytes, QueueError> {
    let envelope = Envelope {
        id: event.id.clone(),
        function: event.function.to_string(),
        trace_id: event.trace_id.clone(),
        parent_span_id: event.parent_span_id.clone(),
        lineage: event.lineage.to_string(),
        qualifier: event.qualifier.clone(),
        enqueued_at: event.enqueued_at,
        attempts: event.attempts,
        next_attempt_at: event.next_attempt_at,
        last_error: event.last_error.as_deref().map(|error| cut(error, MAX_ERROR).to_owned()),
        source: event.source.clone(),
    };
    let json = serde_json::to_vec(&envelope).map_err(|error| QueueError::Unreadable { detail: error.to_string() })?;
    let length = u32::try_from(json.len()).map_err(|_| QueueError::Unreadable {
        detail: format!("event {} has a {} byte envelope", event.id, json.len()),
    })?;
    let mut message = BytesMut::with_capacity(4 + json.len() + event.payload.len());
    message.put_u32(length);
    message.put_slice(&json);
    message.put_slice(&event.payload);
    Ok(message.freeze())
}

/// The longest prefix of `text` within `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn decode(message: &[u8]) -> Result<AsyncEvent, String> {
    let (length, rest) = message.split_first_chunk::<4>().ok_or("shorter than its envelope's length")?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return Err(format!("its envelope is {length} bytes but only {} follow", rest.len()));
    }
    let (json, payload) = rest.split_at(length);
    let envelope: Envelope = serde_json::from_slice(json).map_err(|error| format!("its envelope: {error}"))?;
    let function = envelope.function.parse().map_err(|error| format!("its function: {error}"))?;
    Ok(AsyncEvent {
        id: envelope.id,
        function,
        payload: payload.to_vec(),
        trace_id: envelope.trace_id,
        parent_span_id: envelope.parent_span_id,
        // A lineage that does not parse is dropped, as a caller's bad header is.
        lineage: updraft_model::Lineage::parse(&envelope.lineage).unwrap_or_default(),
        qualifier: envelope.qualifier,
        enqueued_at: envelope.enqueued_at,
        attempts: envelope.attempts,
        next_attempt_at: envelope.next_attempt_at,
        state: EventState::Queued,
        last_error: envelope.last_error,
        source: envelope.source,
    })
}

#[cfg(test)]
impl JetStreamQueue {
    /// A queue on a stream of its own at `UPDRAFT_TEST_NATS_URL` (default
    /// nats://127.0.0.1:4222), with its database's folder; `None`, skipping, when NATS
    /// is unreachable and `UPDRAFT_SKIP_NATS=1`.
    pub(crate) async fn for_test(ack_wait: Duration) -> Option<(JetStreamQueue, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("store.db"))).await.unwrap();
        let url = std::env::var("UPDRAFT_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let stream = format!("UPDRAFT_QUEUE_TEST_{}", uuid::Uuid::new_v4().simple());
        match JetStreamQueue::connect(&url, &stream, store, ack_wait).await {
            Ok(queue) => Some((queue, dir)),
            Err(error) if std::env::var("UPDRAFT_SKIP_NATS").is_ok_and(|value| value == "1") => {
                eprintln!("skipped: NATS at {url} is unreachable ({error}) and UPDRAFT_SKIP_NATS=1");
                None
            }
            Err(error) => {
                panic!("NATS JetStream at {url}: {error} (start nats-server -js, or set UPDRAFT_SKIP_NATS=1)")
            }
        }
    }

    /// Deletes the stream (a test's own).
    pub(crate) async fn delete(&self) {
        let _ = self.context.delete_stream(self.stream.cached_info().config.name.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_its_message_form() {
        let event = AsyncEvent {
            id: "0190-abc".to_owned(),
            function: "thumbnail".parse().unwrap(),
            payload: b"\0binary\xff payload".to_vec(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            parent_span_id: None,
            lineage: updraft_model::Lineage::default().with(&"thumbnail".parse().unwrap()),
            qualifier: Some("live".to_owned()),
            enqueued_at: 1,
            attempts: 2,
            next_attempt_at: 3,
            state: EventState::Queued,
            last_error: Some("line one\nline two".to_owned()),
            source: EventSource::Email { from: "a@b.c".to_owned(), to: vec!["d@e.f".to_owned()] },
        };
        assert_eq!(decode(&encode(&event).unwrap()).unwrap(), event);
    }

    async fn queue() -> Option<(JetStreamQueue, tempfile::TempDir)> {
        JetStreamQueue::for_test(Duration::from_secs(3)).await
    }

    fn event(id: &str, payload: Vec<u8>) -> AsyncEvent {
        AsyncEvent {
            id: id.to_owned(),
            function: "worker".parse().unwrap(),
            payload,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            parent_span_id: None,
            lineage: Default::default(),
            qualifier: None,
            enqueued_at: now_millis(),
            attempts: 0,
            next_attempt_at: now_millis(),
            state: EventState::Queued,
            last_error: None,
            source: EventSource::Invoke,
        }
    }

    async fn claim_one(queue: &JetStreamQueue) -> Claimed {
        for _ in 0..200 {
            if let Some(claimed) = queue.claim("node-a", 8).await.unwrap().into_iter().next() {
                return claimed;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("nothing to claim");
    }

    #[tokio::test]
    async fn events_left_in_the_database_move_to_jetstream_at_start() {
        let Some((queue, _dir)) = queue().await else { return };
        // Queued in the database: before a switch to JetStream, or a tick a crash left.
        queue.store.event_write(&[EventWrite::Enqueue(event("left", b"{}".to_vec()))]).await.unwrap();
        assert_eq!(queue.recover("node-a").await.unwrap(), 1);
        let claimed = claim_one(&queue).await;
        assert_eq!(claimed.event.id, "left");
        assert_eq!(queue.store.event_get("left").await.unwrap(), None, "moved, not copied");
        queue.settle(claimed, Settlement::Done { follow_ups: Vec::new() }).await.unwrap();
        queue.delete().await;
    }

    #[tokio::test]
    async fn a_follow_up_too_large_for_a_message_is_kept_and_does_not_hold_its_event() {
        let Some((queue, _dir)) = queue().await else { return };
        let too_large = vec![b'x'; queue.max_payload + 1];
        let refused = queue.enqueue(vec![event("huge", too_large.clone())]).await.unwrap_err();
        assert!(refused.to_string().contains("max_payload"), "{refused}");
        queue.enqueue(vec![event("small", b"{}".to_vec())]).await.unwrap();
        let claimed = claim_one(&queue).await;
        let follow_up = event("record", too_large);
        queue.settle(claimed, Settlement::Done { follow_ups: vec![follow_up] }).await.unwrap();
        assert_eq!(queue.get("small").await.unwrap(), None, "the event settled");
        let kept = queue.get("record").await.unwrap().unwrap();
        assert_eq!(kept.state, EventState::Failed);
        assert!(kept.last_error.unwrap().contains("max_payload"));
        queue.delete().await;
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let error = "é".repeat(3000);
        let mut failing = event("e", Vec::new());
        failing.last_error = Some(error);
        let carried = decode(&encode(&failing).unwrap()).unwrap().last_error.unwrap();
        assert!(carried.len() <= MAX_ERROR && carried.len() >= MAX_ERROR - 1, "{}", carried.len());
        assert!(carried.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_message_that_is_not_an_event_is_named_as_such() {
        assert!(decode(b"ab").unwrap_err().contains("shorter"));
        assert!(decode(&[0, 0, 0, 9, b'{']).unwrap_err().contains("only 1 follow"));
        assert!(decode(&[0, 0, 0, 1, b'{']).unwrap_err().contains("envelope"));
    }
}
