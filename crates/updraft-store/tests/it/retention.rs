//! Retention: what the janitor removes, and what it keeps.

use updraft_model::{AppName, LogLevel, VersionNumber};
use updraft_store::{
    AsyncEvent, EventState, Execution, Finish, HistoryEntry, InvocationFilter, Keep, LogFilter, LogLine, Store,
};

use crate::invocations::record;
use crate::support::function;

store_tests! {
    check_old_and_excess_records_go_oldest_first => records_retention_sqlite, records_retention_postgres;
    check_old_log_lines_go => log_retention_sqlite, log_retention_postgres;
    check_finished_executions_and_failed_events_go => execution_retention_sqlite, execution_retention_postgres;
}

/// Calls `prune` with batches of `batch` until one comes back short; returns the total.
async fn drain<F, Fut>(batch: i64, mut prune: F) -> u64
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, updraft_store::StoreError>>,
{
    let mut total = 0;
    loop {
        let removed = prune(batch).await.unwrap();
        total += removed;
        if removed < batch as u64 {
            return total;
        }
    }
}

async fn check_old_and_excess_records_go_oldest_first(store: &Store) {
    let records: Vec<_> = (0..300).map(record).collect();
    store.invocation_append(&records).await.unwrap();
    let listed = |store: &Store| {
        let store = store.clone();
        async move {
            let all = InvocationFilter { limit: 1000, ..InvocationFilter::default() };
            store.invocation_list(&all).await.unwrap()
        }
    };
    // The first hundred started before the second hour: they go, in batches.
    let second_hour = records[100].started_at;
    let removed =
        drain(40, |batch| store.prune_invocations(Keep { newer_than: second_hour, at_most: 1000 }, batch)).await;
    assert_eq!(removed, 100);
    let kept = listed(store).await;
    assert_eq!(kept.len(), 200);
    assert!(kept.iter().all(|stored| stored.record.started_at >= second_hour));
    // Nothing more to remove: a pass finds nothing.
    assert_eq!(store.prune_invocations(Keep { newer_than: second_hour, at_most: 1000 }, 40).await.unwrap(), 0);

    // A size bound keeps the newest.
    let removed = drain(64, |batch| store.prune_invocations(Keep { newer_than: 0, at_most: 50 }, batch)).await;
    assert_eq!(removed, 150);
    let kept = listed(store).await;
    assert_eq!(kept.len(), 50);
    assert_eq!(kept.last().unwrap().record.id, "request-250");
    assert_eq!(kept.first().unwrap().record.id, "request-299");
}

async fn check_old_log_lines_go(store: &Store) {
    let lines: Vec<LogLine> = (0..30)
        .map(|i| LogLine {
            function: function("cart"),
            version: VersionNumber(1),
            request_id: format!("request-{i}"),
            at: 1_000 + i,
            stream: "stdout".to_owned(),
            line: format!("line {i}"),
            level: LogLevel::Info,
        })
        .collect();
    store.log_append(&lines).await.unwrap();
    let removed = drain(8, |batch| store.prune_log_lines(Keep { newer_than: 1_010, at_most: 1000 }, batch)).await;
    assert_eq!(removed, 10);
    let kept = store.log_list(&LogFilter::function(function("cart"), 100)).await.unwrap();
    assert_eq!(kept.len(), 20);
    assert_eq!(kept[0].line.line, "line 10");
}

fn execution(id: &str, status: &str, updated_at: i64) -> Execution {
    Execution {
        id: id.to_owned(),
        workflow: function("flow"),
        app: AppName::new("shop").unwrap(),
        definition: "{}".to_owned(),
        status: status.to_owned(),
        input: "{}".to_owned(),
        output: None,
        error: None,
        cause: None,
        state: "Start".to_owned(),
        state_input: "{}".to_owned(),
        attempt: 0,
        wake_at: None,
        seq: 1,
        started_at: updated_at,
        updated_at,
        trace_id: None,
        parent_span_id: None,
    }
}

async fn check_finished_executions_and_failed_events_go(store: &Store) {
    let first = HistoryEntry { seq: 0, at: 0, kind: "ExecutionStarted".to_owned(), state: None, detail: None };
    for (id, status, at) in
        [("old-running", "running", 100), ("old-done", "succeeded", 100), ("new-done", "failed", 900)]
    {
        store.execution_create(&execution(id, status, at), "node", &first).await.unwrap();
    }
    assert_eq!(store.prune_executions(500, 10).await.unwrap(), 1);
    assert!(store.execution_get("old-done").await.unwrap().is_none());
    assert!(store.execution_history("old-done").await.unwrap().is_empty());
    // A running execution stays however old it is, and so does a recent finished one.
    assert!(store.execution_get("old-running").await.unwrap().is_some());
    assert_eq!(store.execution_history("new-done").await.unwrap().len(), 1);

    let event = |id: &str, enqueued_at: i64| AsyncEvent {
        id: id.to_owned(),
        function: function("worker"),
        payload: b"{}".to_vec(),
        trace_id: "0".repeat(32),
        parent_span_id: None,
        lineage: Default::default(),
        qualifier: None,
        enqueued_at,
        attempts: 0,
        next_attempt_at: enqueued_at,
        state: EventState::Queued,
        last_error: None,
        source: updraft_model::EventSource::Invoke,
    };
    store
        .event_enqueue_all(&[event("old-failed", 100), event("old-queued", 100), event("new-failed", 900)])
        .await
        .unwrap();
    for id in ["old-failed", "new-failed"] {
        store.event_finish(id, Finish::Failed { attempts: 3, error: "boom" }, &[]).await.unwrap();
    }
    assert_eq!(store.prune_failed_events(500, 10).await.unwrap(), 1);
    assert!(store.event_get("old-failed").await.unwrap().is_none());
    // A queued event is never removed: it is still to run.
    assert!(store.event_get("old-queued").await.unwrap().is_some());
    assert!(store.event_get("new-failed").await.unwrap().is_some());
}
