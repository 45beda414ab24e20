//! One suite, both backends: what the dispatcher, the publishers and the schedules
//! rely on from an event queue, run on the database (SQLite) and on NATS JetStream
//! (`UPDRAFT_TEST_NATS_URL`, default nats://127.0.0.1:4222; `UPDRAFT_SKIP_NATS=1`
//! skips those when it is unreachable).

use std::sync::Arc;
use std::time::{Duration, Instant};

use updraft_model::EventSource;
use updraft_model::now_millis;
use updraft_store::{AsyncEvent, EventState, Store};

use super::jetstream::JetStreamQueue;
use super::{Claimed, DatabaseQueue, EventQueue, Settlement};

/// A queue under test and what to clean up after it.
struct Fixture {
    queue: Arc<dyn EventQueue>,
    jetstream: Option<Arc<JetStreamQueue>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn database() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("store.db"))).await.unwrap();
        Some(Self { queue: Arc::new(DatabaseQueue::new(store)), jetstream: None, _dir: dir })
    }

    async fn jetstream() -> Option<Self> {
        let (queue, dir) = JetStreamQueue::for_test(ACK_WAIT).await?;
        let queue = Arc::new(queue);
        Some(Self { queue: queue.clone(), jetstream: Some(queue), _dir: dir })
    }

    async fn finish(self) {
        if let Some(jetstream) = self.jetstream {
            jetstream.delete().await;
        }
    }
}

/// The ack wait of the test consumers: how long a dead node's events stay held (long
/// enough that a loaded machine finishes a scenario's claims within it).
const ACK_WAIT: Duration = Duration::from_secs(3);

fn event(id: &str) -> AsyncEvent {
    let now = now_millis();
    AsyncEvent {
        id: id.to_owned(),
        function: "worker".parse().unwrap(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
        parent_span_id: None,
        lineage: Default::default(),
        qualifier: None,
        enqueued_at: now,
        attempts: 0,
        next_attempt_at: now,
        state: EventState::Queued,
        last_error: None,
        source: EventSource::Invoke,
    }
}

/// Claims until `count` events are in hand or ten seconds pass.
async fn claim(queue: &dyn EventQueue, count: usize) -> Vec<Claimed> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.len() < count && Instant::now() < deadline {
        claimed.extend(queue.claim("node-a", 64).await.unwrap());
        if claimed.len() < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    claimed
}

fn ids(claimed: &[Claimed]) -> Vec<&str> {
    claimed.iter().map(|claimed| claimed.event.id.as_str()).collect()
}

async fn done(queue: &dyn EventQueue, claimed: Vec<Claimed>) {
    for claimed in claimed {
        queue.settle(claimed, Settlement::Done { follow_ups: Vec::new() }).await.unwrap();
    }
}

async fn an_event_runs_and_its_follow_ups_after_it(queue: &dyn EventQueue) {
    queue.enqueue(vec![event("a")]).await.unwrap();
    let claimed = claim(queue, 1).await;
    assert_eq!(ids(&claimed), ["a"]);
    assert_eq!(queue.get("a").await.unwrap().unwrap().payload, br#"{"id":"a"}"#, "a running event is still there");
    assert!(queue.claim("node-a", 64).await.unwrap().is_empty(), "a held event is not handed out twice");
    let claimed = claimed.into_iter().next().unwrap();
    queue.settle(claimed, Settlement::Done { follow_ups: vec![event("b")] }).await.unwrap();
    assert_eq!(queue.get("a").await.unwrap(), None, "a finished event is gone");
    let follow_ups = claim(queue, 1).await;
    assert_eq!(ids(&follow_ups), ["b"]);
    done(queue, follow_ups).await;
    assert!(queue.claim("node-a", 64).await.unwrap().is_empty());
}

async fn a_retry_waits_until_due_and_keeps_its_count(queue: &dyn EventQueue) {
    queue.enqueue(vec![event("a")]).await.unwrap();
    let claimed = claim(queue, 1).await.into_iter().next().unwrap();
    let due = now_millis() + 700;
    let retry = Settlement::Retry { attempts: 1, next_attempt_at: due, error: "boom\nline two".to_owned() };
    queue.settle(claimed, retry).await.unwrap();
    let waiting = queue.get("a").await.unwrap().unwrap();
    assert_eq!((waiting.attempts, waiting.last_error.as_deref()), (1, Some("boom\nline two")));
    assert!(queue.claim("node-a", 64).await.unwrap().is_empty(), "not due yet");
    let again = claim(queue, 1).await;
    assert!(now_millis() >= due, "handed out before it was due");
    assert_eq!(ids(&again), ["a"]);
    assert_eq!(again[0].event.attempts, 1);
    done(queue, again).await;
}

async fn a_throttled_event_comes_back_without_an_attempt(queue: &dyn EventQueue) {
    queue.enqueue(vec![event("a")]).await.unwrap();
    let claimed = claim(queue, 1).await.into_iter().next().unwrap();
    let throttled = Settlement::Retry { attempts: 0, next_attempt_at: now_millis() + 100, error: "throttled".into() };
    queue.settle(claimed, throttled).await.unwrap();
    let again = claim(queue, 1).await;
    assert_eq!(ids(&again), ["a"]);
    assert_eq!(again[0].event.attempts, 0);
    done(queue, again).await;
}

async fn a_failed_event_is_kept_and_not_run_again(queue: &dyn EventQueue) {
    queue.enqueue(vec![event("a")]).await.unwrap();
    let claimed = claim(queue, 1).await.into_iter().next().unwrap();
    let failed = Settlement::Failed { attempts: 3, error: "gave up".to_owned(), follow_ups: vec![event("dlq-copy")] };
    queue.settle(claimed, failed).await.unwrap();
    let kept = queue.get("a").await.unwrap().unwrap();
    assert_eq!((kept.state, kept.attempts, kept.last_error.as_deref()), (EventState::Failed, 3, Some("gave up")));
    let next = claim(queue, 1).await;
    assert_eq!(ids(&next), ["dlq-copy"], "only the follow-up runs");
    done(queue, next).await;
    assert!(queue.claim("node-a", 64).await.unwrap().is_empty());
}

async fn an_event_held_by_a_dead_node_runs_again(queue: &dyn EventQueue) {
    queue.enqueue(vec![event("a"), event("b")]).await.unwrap();
    let claimed = claim(queue, 2).await;
    assert_eq!(claimed.len(), 2);
    // The node dies holding them: nothing settles them. Its next start recovers.
    drop(claimed);
    queue.recover("node-a").await.unwrap();
    let mut again = claim(queue, 2).await;
    again.sort_by(|a, b| a.event.id.cmp(&b.event.id));
    assert_eq!(ids(&again), ["a", "b"]);
    done(queue, again).await;
}

async fn a_schedule_tick_is_stored_once(queue: &dyn EventQueue) {
    let worker = "worker".parse().unwrap();
    assert!(queue.advance_schedule("worker#1", &worker, None, 1_000, Vec::new()).await.unwrap());
    // A run that stored the tick's event and died before moving the schedule on...
    queue.enqueue(vec![event("tick-1000")]).await.unwrap();
    // ...and the next run, firing the same tick.
    assert!(queue.advance_schedule("worker#1", &worker, Some(1_000), 2_000, vec![event("tick-1000")]).await.unwrap());
    // Another node that read the same position is too late.
    assert!(!queue.advance_schedule("worker#1", &worker, Some(1_000), 2_000, vec![event("tick-1000")]).await.unwrap());
    let claimed = claim(queue, 1).await;
    assert_eq!(ids(&claimed), ["tick-1000"]);
    done(queue, claimed).await;
    assert!(queue.claim("node-a", 64).await.unwrap().is_empty(), "the tick ran once");
}

async fn many_events_all_arrive(queue: &dyn EventQueue) {
    let events: Vec<AsyncEvent> = (0..500).map(|n| event(&format!("e{n:03}"))).collect();
    queue.enqueue(events).await.unwrap();
    let mut claimed = claim(queue, 500).await;
    assert_eq!(claimed.len(), 500);
    claimed.sort_by(|a, b| a.event.id.cmp(&b.event.id));
    claimed.dedup_by(|a, b| a.event.id == b.event.id);
    assert_eq!(claimed.len(), 500, "no event handed out twice");
    done(queue, claimed).await;
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod database {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(fixture) = super::Fixture::database().await else { return };
                    super::$scenario(fixture.queue.as_ref()).await;
                    fixture.finish().await;
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(fixture) = super::Fixture::jetstream().await else { return };
                    super::$scenario(fixture.queue.as_ref()).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(
    an_event_runs_and_its_follow_ups_after_it,
    a_retry_waits_until_due_and_keeps_its_count,
    a_throttled_event_comes_back_without_an_attempt,
    a_failed_event_is_kept_and_not_run_again,
    an_event_held_by_a_dead_node_runs_again,
    a_schedule_tick_is_stored_once,
    many_events_all_arrive,
);

/// Events accepted on a node and run there at once: stored held by that node, so no
/// other node is handed them, and due again if it dies before settling them.
#[tokio::test]
async fn events_stored_claimed_are_held_by_their_node_until_settled_or_recovered() {
    let fixture = Fixture::database().await.unwrap();
    let queue = fixture.queue.as_ref();
    let mut claimed = queue.enqueue_claimed("node-a", vec![event("a"), event("b")]).await.unwrap();
    assert_eq!(ids(&claimed), ["a", "b"]);
    assert!(queue.get("a").await.unwrap().is_some(), "stored before it runs");
    assert!(queue.claim("node-b", 64).await.unwrap().is_empty(), "nobody else is handed a held event");
    let held = claimed.pop().unwrap();
    done(queue, claimed).await;
    assert_eq!(queue.get("a").await.unwrap(), None, "a settled event is gone");
    // Node A dies holding "b": another node's own recovery leaves it, A's (its next
    // start, or a live node's takeover) makes it due.
    drop(held);
    assert_eq!(queue.recover("node-b").await.unwrap(), 0);
    assert!(queue.claim("node-b", 64).await.unwrap().is_empty());
    assert_eq!(queue.recover("node-a").await.unwrap(), 1);
    let again = claim(queue, 1).await;
    assert_eq!(ids(&again), ["b"]);
    done(queue, again).await;
}

/// JetStream hands messages out through its consumer alone: events stored "claimed"
/// are enqueued, and the dispatcher's fetch gets them.
#[tokio::test]
async fn events_stored_claimed_on_jetstream_come_through_the_consumer() {
    let Some(fixture) = Fixture::jetstream().await else { return };
    let queue = fixture.queue.as_ref();
    assert!(queue.enqueue_claimed("node-a", vec![event("a")]).await.unwrap().is_empty());
    let claimed = claim(queue, 1).await;
    assert_eq!(ids(&claimed), ["a"]);
    done(queue, claimed).await;
    fixture.finish().await;
}
