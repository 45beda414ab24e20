//! The durable queue of asynchronous invocations: enqueue, claim with a lease,
//! retry, fail, release after a crash.

use updraft_store::{AsyncEvent, EventState, Store};

use crate::support::function;

store_tests! {
    check_event_lifecycle => event_lifecycle_sqlite, event_lifecycle_postgres;
}

fn event(id: &str, due: i64) -> AsyncEvent {
    AsyncEvent {
        id: id.to_owned(),
        function: function("worker"),
        payload: vec![0, 159, b'{', b'}'],
        trace_id: "0".repeat(32),
        enqueued_at: due,
        attempts: 0,
        next_attempt_at: due,
        state: EventState::Queued,
        last_error: None,
    }
}

async fn check_event_lifecycle(store: &Store) {
    for (id, due) in [("a", 1_000), ("b", 2_000), ("c", 9_000)] {
        store.event_enqueue(&event(id, due)).await.unwrap();
    }
    assert_eq!(store.event_get("a").await.unwrap(), Some(event("a", 1_000)), "bytes come back as they went in");

    // Due at 5,000: a and b, oldest first, leased until 60,000.
    let claimed = store.event_claim(5_000, 60_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(claimed.iter().all(|e| e.next_attempt_at == 60_000));
    // Leased events are not claimed again before the lease lapses.
    assert!(store.event_claim(5_000, 60_000, 10).await.unwrap().is_empty());

    store.event_done("a").await.unwrap();
    assert_eq!(store.event_get("a").await.unwrap(), None);
    store.event_retry("b", 1, 7_000, Some("boom")).await.unwrap();
    let b = store.event_get("b").await.unwrap().unwrap();
    assert_eq!((b.attempts, b.next_attempt_at, b.last_error.as_deref()), (1, 7_000, Some("boom")));

    // A crash while c is leased: the next start makes it due at once.
    let claimed = store.event_claim(10_000, 70_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(store.event_release_all(11_000).await.unwrap(), 2);
    let claimed = store.event_claim(11_000, 80_000, 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "the limit holds");

    store.event_fail("c", 3, "out of attempts").await.unwrap();
    let c = store.event_get("c").await.unwrap().unwrap();
    assert_eq!((c.state, c.attempts), (EventState::Failed, 3));
    assert_eq!(store.event_release_all(12_000).await.unwrap(), 1, "failed events stay failed");
}
