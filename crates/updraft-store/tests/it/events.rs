//! The durable queue of asynchronous invocations: enqueue, claim with a lease,
//! retry, fail, release after a crash; follow-up events stored with an outcome;
//! schedule ticks advanced exactly once.

use updraft_model::{EventSource, QueueName, TopicName, TraceParent};
use updraft_store::{AsyncEvent, EventState, EventWrite, Finish, Store};

use crate::support::function;

store_tests! {
    check_event_lifecycle => event_lifecycle_sqlite, event_lifecycle_postgres;
    check_outcomes_and_follow_ups => outcomes_and_follow_ups_sqlite, outcomes_and_follow_ups_postgres;
    check_schedule_ticks => schedule_ticks_sqlite, schedule_ticks_postgres;
    check_group_commit => group_commit_sqlite, group_commit_postgres;
    check_queue_messages => queue_messages_sqlite, queue_messages_postgres;
    check_failed_events_redrive => failed_events_redrive_sqlite, failed_events_redrive_postgres;
    check_dead_letters_redrive => dead_letters_redrive_sqlite, dead_letters_redrive_postgres;
    check_claims_by_two_nodes => claims_by_two_nodes_sqlite, claims_by_two_nodes_postgres;
    check_mixed_write_groups => mixed_write_groups_sqlite, mixed_write_groups_postgres;
}

fn event(id: &str, due: i64) -> AsyncEvent {
    AsyncEvent {
        id: id.to_owned(),
        function: function("worker"),
        payload: vec![0, 159, b'{', b'}'],
        trace_id: "0".repeat(32),
        parent_span_id: None,
        lineage: Default::default(),
        qualifier: None,
        enqueued_at: due,
        attempts: 0,
        next_attempt_at: due,
        state: EventState::Queued,
        last_error: None,
        source: EventSource::Invoke,
    }
}

async fn check_event_lifecycle(store: &Store) {
    for (id, due) in [("a", 1_000), ("b", 2_000), ("c", 9_000)] {
        store.event_enqueue(&event(id, due)).await.unwrap();
    }
    assert_eq!(store.event_get("a").await.unwrap(), Some(event("a", 1_000)), "bytes come back as they went in");

    // Due at 5,000: a and b, oldest first, leased until 60,000.
    let claimed = store.event_claim("n1", 5_000, 60_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(claimed.iter().all(|e| e.next_attempt_at == 60_000));
    // Leased events are not claimed again before the lease lapses.
    assert!(store.event_claim("n1", 5_000, 60_000, 10).await.unwrap().is_empty());

    store.event_finish("a", Finish::Done, &[]).await.unwrap();
    assert_eq!(store.event_get("a").await.unwrap(), None);
    store.event_retry("b", 1, 7_000, Some("boom")).await.unwrap();
    let b = store.event_get("b").await.unwrap().unwrap();
    assert_eq!((b.attempts, b.next_attempt_at, b.last_error.as_deref()), (1, 7_000, Some("boom")));

    // A crash while c is leased: the next start makes it due at once.
    let claimed = store.event_claim("n1", 10_000, 70_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(store.event_release_all("n2", 11_000).await.unwrap(), 0, "another node's leases stay");
    assert_eq!(store.event_release_all("n1", 11_000).await.unwrap(), 2);
    let claimed = store.event_claim("n1", 11_000, 80_000, 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "the limit holds");

    store.event_finish("c", Finish::Failed { attempts: 3, error: "out of attempts" }, &[]).await.unwrap();
    let c = store.event_get("c").await.unwrap().unwrap();
    assert_eq!((c.state, c.attempts), (EventState::Failed, 3));
    assert_eq!(store.event_release_all("n1", 12_000).await.unwrap(), 1, "failed events stay failed");
    // An event waiting out a retry's delay is not released by a restart.
    store.event_enqueue(&event("d", 1_000)).await.unwrap();
    let claimed = store.event_claim("n1", 13_000, 90_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["d", "b"]);
    store.event_retry("d", 1, 70_000, Some("later")).await.unwrap();
    assert_eq!(store.event_release_all("n1", 14_000).await.unwrap(), 1, "b, still leased; not d");
    assert_eq!(store.event_get("d").await.unwrap().unwrap().next_attempt_at, 70_000);
}

async fn check_outcomes_and_follow_ups(store: &Store) {
    // A topic message's copies are stored together, sources and all.
    let topic = TopicName::new("user.signed_up").unwrap();
    let copies: Vec<AsyncEvent> = ["s1", "s2", "s3"]
        .into_iter()
        .map(|id| AsyncEvent {
            source: EventSource::Topic {
                topic: topic.clone(),
                message_id: "m1".to_owned(),
                content_type: Some("application/json".to_owned()),
                subject: None,
                published_at: 1_000,
                attributes: vec![("RequestID".to_owned(), "r1".to_owned())],
            },
            ..event(id, 1_000)
        })
        .collect();
    store.event_enqueue_all(&copies).await.unwrap();
    assert_eq!(store.event_get("s2").await.unwrap().as_ref(), Some(&copies[1]));
    // Storing the same ids again changes nothing (a schedule's tick stored twice).
    store.event_enqueue_all(&copies[..1]).await.unwrap();

    // Failing for good stores the destination's event in the same step.
    let record = AsyncEvent {
        source: EventSource::Destination { condition: "RetriesExhausted".to_owned() },
        ..event("s1-failure", 2_000)
    };
    store
        .event_finish("s1", Finish::Failed { attempts: 3, error: "boom" }, std::slice::from_ref(&record))
        .await
        .unwrap();
    assert_eq!(store.event_get("s1").await.unwrap().unwrap().state, EventState::Failed);
    assert_eq!(store.event_get("s1-failure").await.unwrap(), Some(record));
    store.event_finish("s2", Finish::Done, &[]).await.unwrap();
    let due: Vec<String> = store.event_claim("n1", 5_000, 9_000, 10).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(due, ["s3", "s1-failure"]);
}

async fn check_schedule_ticks(store: &Store) {
    let key = "worker#0123";
    let tick = |id: &str| AsyncEvent {
        source: EventSource::Schedule { schedule: "rate(1 minute)".to_owned(), tick_at: 60_000 },
        ..event(id, 60_000)
    };
    assert_eq!(store.schedule_next_tick(key).await.unwrap(), None);
    assert!(store.schedule_advance(key, &function("worker"), None, 60_000, &[]).await.unwrap());
    assert!(!store.schedule_advance(key, &function("worker"), None, 60_000, &[]).await.unwrap(), "stored once");
    assert_eq!(store.schedule_next_tick(key).await.unwrap(), Some(60_000));

    // Two nodes (or a restarted one) firing the same tick: one wins, one event.
    assert!(store.schedule_advance(key, &function("worker"), Some(60_000), 120_000, &[tick("t1")]).await.unwrap());
    assert!(!store.schedule_advance(key, &function("worker"), Some(60_000), 120_000, &[tick("t2")]).await.unwrap());
    assert_eq!(store.schedule_next_tick(key).await.unwrap(), Some(120_000));
    assert!(store.event_get("t1").await.unwrap().is_some());
    assert_eq!(store.event_get("t2").await.unwrap(), None, "the losing node's event is not stored");
}

async fn check_group_commit(store: &Store) {
    // Concurrent callers share transactions; each hears back once its events are in.
    let writer = updraft_store::EventWriter::start(store.clone());
    let callers: Vec<_> = (0..50)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.enqueue(vec![event(&format!("g{i}"), 1_000)]).await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    for i in 0..50 {
        assert!(store.event_get(&format!("g{i}")).await.unwrap().is_some(), "g{i} was acknowledged but not stored");
    }
}

fn message(id: &str, sent_at: i64) -> updraft_store::QueueMessage {
    updraft_store::QueueMessage {
        id: id.to_owned(),
        queue: QueueName::new("jobs").unwrap(),
        body: vec![1, 2, 255],
        content_type: Some("application/octet-stream".to_owned()),
        sent_at,
        receive_count: 0,
        first_received_at: None,
        visible_at: sent_at,
        trace: None,
    }
}

async fn check_queue_messages(store: &Store) {
    let jobs = QueueName::new("jobs").unwrap();
    // m2 was sent under a trace, which it keeps wherever it goes.
    let sender = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let traced = updraft_store::QueueMessage { trace: sender.clone(), ..message("m2", 2_000) };
    store.queue_send(&[message("m1", 1_000), traced, message("m3", 3_000)]).await.unwrap();
    let depth = store.queue_depth(&jobs, 5_000).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.oldest_visible_at), (3, 0, Some(1_000)));

    // A batch of two, oldest first, invisible until 35,000.
    let batch = store.queue_receive(&jobs, 5_000, 35_000, 2).await.unwrap();
    assert_eq!(batch.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
    assert!(batch.iter().all(|m| m.receive_count == 1 && m.first_received_at == Some(5_000)));
    assert_eq!(batch[0].body, [1, 2, 255]);
    assert_eq!((&batch[0].trace, &batch[1].trace), (&None, &sender));
    let depth = store.queue_depth(&jobs, 6_000).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 2));

    // m1 handled; m2 failed: it comes back when its visibility timeout ends.
    store.queue_settle(&["m1".to_owned()], &["m2".to_owned()], None, false).await.unwrap();
    let next = store.queue_receive(&jobs, 6_000, 36_000, 10).await.unwrap();
    assert_eq!(next.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m3"]);
    // A throttled batch goes back at once, its receive not counted.
    store.queue_settle(&[], &["m3".to_owned()], Some(6_000), true).await.unwrap();
    let again = store.queue_receive(&jobs, 40_000, 70_000, 10).await.unwrap();
    assert_eq!(again.iter().map(|m| (m.id.as_str(), m.receive_count)).collect::<Vec<_>>(), [("m2", 2), ("m3", 1)]);

    // Too many receives: moved to the dead-letter queue, visible there at once.
    let dead = QueueName::new("jobs-dlq").unwrap();
    store.queue_move(&["m2".to_owned()], &dead, 41_000).await.unwrap();
    let parked = store.queue_peek(&dead, 10).await.unwrap();
    assert_eq!((parked[0].id.as_str(), parked[0].receive_count, parked[0].visible_at), ("m2", 0, 41_000));
    assert_eq!(parked[0].trace, sender);
    assert_eq!(store.queue_depth(&jobs, 41_000).await.unwrap().in_flight, 1);
}

async fn check_failed_events_redrive(store: &Store) {
    let other = AsyncEvent { function: function("other"), ..event("o", 2_500) };
    for event in [event("a", 1_000), event("b", 2_000), event("c", 3_000), other, event("q", 4_000)] {
        store.event_enqueue(&event).await.unwrap();
    }
    for id in ["a", "b", "c", "o"] {
        store.event_finish(id, Finish::Failed { attempts: 3, error: "boom" }, &[]).await.unwrap();
    }
    let ids = |events: Vec<AsyncEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();

    // Listed the latest first; by function, before a time, at most a limit.
    assert_eq!(ids(store.event_failed_list(None, None, 10).await.unwrap()), ["c", "o", "b", "a"]);
    let worker = function("worker");
    assert_eq!(ids(store.event_failed_list(Some(&worker), None, 10).await.unwrap()), ["c", "b", "a"]);
    assert_eq!(ids(store.event_failed_list(Some(&worker), Some(3_000), 10).await.unwrap()), ["b", "a"]);
    assert_eq!(ids(store.event_failed_list(None, None, 1).await.unwrap()), ["c"]);

    // Redriven: queued again, due now, attempts reset, accepted now, error kept. A
    // queued event and an unknown id are left alone.
    let ids_in = ["a", "q", "missing"].map(str::to_owned);
    assert_eq!(store.event_redrive(&ids_in, 50_000).await.unwrap(), ["a"]);
    let a = store.event_get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.state, a.attempts, a.enqueued_at, a.next_attempt_at, a.last_error.as_deref()),
        (EventState::Queued, 0, 50_000, 50_000, Some("boom"))
    );
    assert_eq!(store.event_get("q").await.unwrap().unwrap(), event("q", 4_000));
    assert_eq!(ids(store.event_failed_list(Some(&worker), None, 10).await.unwrap()), ["c", "b"]);
    let due = store.event_claim("n1", 50_000, 60_000, 10).await.unwrap();
    assert_eq!(ids(due), ["q", "a"], "due again, in acceptance order");
    assert_eq!(store.event_redrive(&["a".to_owned()], 51_000).await.unwrap(), Vec::<String>::new(), "running");
}

async fn check_dead_letters_redrive(store: &Store) {
    let jobs = QueueName::new("jobs").unwrap();
    let dead = QueueName::new("jobs-dlq").unwrap();
    let dead_message = |id: &str, sent_at| updraft_store::QueueMessage { queue: dead.clone(), ..message(id, sent_at) };
    store.queue_send(&[dead_message("d1", 1_000), dead_message("d2", 2_000), dead_message("d3", 3_000)]).await.unwrap();
    // d3 is being received from the dead-letter queue: it stays.
    store.queue_receive(&dead, 3_000, 90_000, 10).await.unwrap();
    store.queue_settle(&[], &["d1".to_owned(), "d2".to_owned()], Some(3_000), false).await.unwrap();

    assert_eq!(store.queue_redrive(&dead, &jobs, 10_000, 1).await.unwrap(), 1, "the limit holds");
    assert_eq!(store.queue_redrive(&dead, &jobs, 10_000, 10).await.unwrap(), 1);
    assert_eq!(store.queue_redrive(&dead, &jobs, 10_000, 10).await.unwrap(), 0);
    let back = store.queue_receive(&jobs, 10_000, 40_000, 10).await.unwrap();
    assert_eq!(
        back.iter().map(|m| (m.id.as_str(), m.receive_count)).collect::<Vec<_>>(),
        [("d1", 1), ("d2", 1)],
        "oldest first, receives counted afresh"
    );
    let left = store.queue_peek(&dead, 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["d3"]);
}

async fn check_claims_by_two_nodes(store: &Store) {
    let events: Vec<AsyncEvent> = (0..300).map(|i| event(&format!("e{i:03}"), 1_000 + i)).collect();
    store.event_enqueue_all(&events).await.unwrap();
    // Two nodes claim side by side, then each again: every event is claimed exactly
    // once, each batch oldest first.
    let (a, b) = tokio::join!(store.event_claim("n1", 5_000, 60_000, 120), store.event_claim("n2", 5_000, 60_000, 120));
    let (c, d) = tokio::join!(store.event_claim("n1", 5_000, 60_000, 120), store.event_claim("n2", 5_000, 60_000, 120));
    let mut ids = Vec::new();
    for batch in [a, b, c, d] {
        let batch: Vec<String> = batch.unwrap().into_iter().map(|event| event.id).collect();
        assert!(batch.is_sorted(), "a batch comes oldest first: {batch:?}");
        ids.extend(batch);
    }
    let rest = store.event_claim("n1", 5_000, 60_000, 300).await.unwrap();
    ids.extend(rest.into_iter().map(|event| event.id));
    ids.sort();
    let expected: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    assert_eq!(ids, expected, "each event claimed once");
    assert!(store.event_claim("n2", 5_000, 60_000, 300).await.unwrap().is_empty(), "all are leased");
}

/// A group of writes from many callers (the group writer's transaction): writes to
/// different events share statements, and writes that touch one event twice apply in
/// order.
async fn check_mixed_write_groups(store: &Store) {
    let started: Vec<AsyncEvent> = (0..250).map(|i| event(&format!("s{i:03}"), 1_000)).collect();
    store.event_enqueue_all(&started).await.unwrap();
    // 250 new events (every other one held by node n1 from the start), and of the
    // started ones 150 done, 50 retried, 50 failed.
    let mut writes: Vec<EventWrite> = Vec::new();
    for i in 0..250 {
        let new = event(&format!("n{i:03}"), 2_000);
        writes.push(match i % 2 {
            0 => EventWrite::Enqueue(new),
            _ => EventWrite::EnqueueClaimed { event: AsyncEvent { next_attempt_at: 90_000, ..new }, node: "n1".into() },
        });
        let id = format!("s{i:03}");
        writes.push(match i {
            0..150 => EventWrite::Done { id },
            150..200 => EventWrite::Retry { id, attempts: 1, next_attempt_at: 3_000, error: Some("boom".into()) },
            _ => EventWrite::Failed { id, attempts: 3, error: "gave up".into() },
        });
    }
    store.event_write(&writes).await.unwrap();

    assert_eq!(store.event_get("s149").await.unwrap(), None, "done");
    let retried = store.event_get("s150").await.unwrap().unwrap();
    assert_eq!((retried.attempts, retried.next_attempt_at, retried.last_error.as_deref()), (1, 3_000, Some("boom")));
    let failed = store.event_get("s249").await.unwrap().unwrap();
    assert_eq!((failed.state, failed.last_error.as_deref()), (EventState::Failed, Some("gave up")));
    assert_eq!(store.event_get("n001").await.unwrap().unwrap().payload, event("n001", 0).payload);
    // Due: the unheld new events and the retries; the held ones only once n1 is gone.
    let mut due: Vec<String> =
        store.event_claim("n2", 5_000, 60_000, 1_000).await.unwrap().into_iter().map(|e| e.id).collect();
    due.sort();
    let mut expected: Vec<String> = (150..200).map(|i| format!("s{i:03}")).collect();
    expected.extend((0..250).step_by(2).map(|i| format!("n{i:03}")));
    expected.sort();
    assert_eq!(due, expected);
    assert_eq!(store.event_release_all("n1", 6_000).await.unwrap(), 125, "the held events are n1's");

    // One event written twice in a group: in the order given. "y" is done before it
    // exists, then stored; "x" is stored, then done.
    let writes = [
        EventWrite::Done { id: "y".into() },
        EventWrite::Enqueue(event("y", 1_000)),
        EventWrite::Enqueue(event("x", 1_000)),
        EventWrite::Done { id: "x".into() },
    ];
    store.event_write(&writes).await.unwrap();
    assert!(store.event_get("y").await.unwrap().is_some());
    assert_eq!(store.event_get("x").await.unwrap(), None);
}
