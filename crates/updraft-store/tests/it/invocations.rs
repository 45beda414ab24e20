//! Invocation records and hourly usage.

use std::time::Duration;

use updraft_model::{InvocationRecord, InvocationStatus, TraceParent, TriggerKind, VersionNumber};
use updraft_store::{InvocationFilter, Store, UsageCounts};

use crate::support::function;

store_tests! {
    check_invocation_records => invocation_records_sqlite, invocation_records_postgres;
    check_usage_sums => usage_sums_sqlite, usage_sums_postgres;
    check_invocation_steps => invocation_steps_sqlite, invocation_steps_postgres;
}

/// A record of `function` that started `at` ms into the window and ran `ms`.
fn run(function_name: &str, at: i64, ms: u64, status: InvocationStatus) -> InvocationRecord {
    let throttled = status == InvocationStatus::Throttled;
    InvocationRecord {
        id: uuid::Uuid::now_v7().to_string(),
        function: function(function_name),
        started_at: T0 + at,
        duration: if throttled { Duration::ZERO } else { Duration::from_millis(ms) },
        init_duration: None,
        cold: false,
        max_memory_used: ms * 1024,
        status,
        ..record(0)
    }
}

async fn check_invocation_steps(store: &Store) {
    use InvocationStatus::*;
    let mut records: Vec<_> = (1..=100).map(|ms| run("charted", 10, ms, Success)).collect();
    records.push(InvocationRecord { cold: true, ..run("charted", 0, 5, Error) });
    records.push(run("charted", 1_500, 0, Throttled));
    records.push(run("charted", 2_500, 300, Timeout));
    // Outside the window, and another function's: not counted.
    records.push(run("charted", 3_000, 7, Success));
    records.push(run("other", 10, 7, Success));
    store.invocation_append(&records).await.unwrap();

    let steps = store.invocation_steps(&function("charted"), T0, T0 + 3_000, 1_000).await.unwrap();
    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 1, 2], "{steps:#?}");
    let first = steps[0];
    assert_eq!((first.invocations, first.errors, first.throttles, first.cold_starts), (101, 1, 0, 1), "{first:?}");
    // 101 runs: the 51st smallest is 50 ms, the 100th 99 ms (nearest rank).
    assert_eq!((first.p50_ns, first.p99_ns), (Some(50_000_000), Some(99_000_000)));
    assert_eq!(first.run_ns, 5_055_000_000);
    assert_eq!(first.max_memory, 100 * 1024);
    assert_eq!((steps[1].invocations, steps[1].throttles, steps[1].p50_ns), (0, 1, None));
    assert_eq!((steps[2].errors, steps[2].p50_ns, steps[2].p99_ns), (1, Some(300_000_000), Some(300_000_000)));
}

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR;

pub(crate) fn record(i: u32) -> InvocationRecord {
    let status = InvocationStatus::ALL[i as usize % 4];
    let throttled = status == InvocationStatus::Throttled;
    InvocationRecord {
        id: format!("request-{i}"),
        function: function(if i.is_multiple_of(2) { "cart" } else { "checkout" }),
        version: VersionNumber(1),
        trigger: if i.is_multiple_of(3) { TriggerKind::Direct } else { TriggerKind::Http },
        // 300 records, 100 per hour.
        started_at: T0 + i64::from(i / 100) * HOUR + i64::from(i),
        duration: if throttled { Duration::ZERO } else { Duration::from_micros(1_500 + u64::from(i)) },
        init_duration: (i % 10 == 1).then(|| Duration::from_micros(800)),
        cold: i % 10 == 1,
        memory_limit: 128 << 20,
        max_memory_used: 3 << 20,
        status,
        error_type: (status != InvocationStatus::Success).then(|| "Runtime.Trap".to_owned()),
        error_message: (status != InvocationStatus::Success).then(|| format!("failure {i}")),
        trace_id: format!("{i:032x}"),
        parent_span_id: None,
        queued_since: None,
        // Every seventh handled a batch of two traced messages.
        links: if i.is_multiple_of(7) {
            (1..=2u32).map(|n| TraceParent::new(format!("{:032x}", 1000 + n), format!("{:016x}", i + n))).collect()
        } else {
            Vec::new()
        },
        log_lines_dropped: u64::from(i % 3),
        node: format!("node-{}", i % 2),
    }
}

async fn check_invocation_records(store: &Store) {
    let records: Vec<_> = (0..300).map(record).collect();
    store.invocation_append(&records[..150]).await.unwrap();
    store.invocation_append(&records[150..]).await.unwrap();

    let all = InvocationFilter { limit: 1000, ..InvocationFilter::default() };
    let listed = store.invocation_list(&all).await.unwrap();
    let newest_first: Vec<_> = records.iter().rev().cloned().collect();
    assert_eq!(listed.iter().map(|s| s.record.clone()).collect::<Vec<_>>(), newest_first, "records round-trip whole");

    // Pages of 40 of one function's errors, following the cursor, cover them exactly once.
    let mut filter = InvocationFilter {
        function: Some(function("checkout")),
        status: Some(InvocationStatus::Error),
        limit: 40,
        ..InvocationFilter::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = store.invocation_list(&filter).await.unwrap();
        let Some(last) = page.last() else { break };
        filter.before = Some(last.seq);
        paged.extend(page.into_iter().map(|s| s.record.id));
    }
    let expected: Vec<_> = newest_first
        .iter()
        .filter(|r| r.function.as_str() == "checkout" && r.status == InvocationStatus::Error)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(paged, expected);
    assert_eq!(paged.len(), 75);

    let second_hour = InvocationFilter { since: Some(T0 + HOUR), until: Some(T0 + 2 * HOUR), ..all.clone() };
    let listed = store.invocation_list(&second_hour).await.unwrap();
    assert_eq!(listed.len(), 100);
    assert!(listed.iter().all(|s| (100..200).contains(&s.record.id[8..].parse::<u32>().unwrap())));
}

async fn check_usage_sums(store: &Store) {
    let records: Vec<_> = (0..300).map(record).collect();
    for chunk in records.chunks(70) {
        store.invocation_append(chunk).await.unwrap();
    }
    let usage = store.usage(T0, None).await.unwrap();
    assert_eq!(usage.len(), 6, "two functions over three hours");
    let mut total = UsageCounts::default();
    for row in &usage {
        total.requests += row.counts.requests;
        total.billed_mib_ms += row.counts.billed_mib_ms;
        total.cold_starts += row.counts.cold_starts;
        total.throttles += row.counts.throttles;
        total.errors += row.counts.errors;
    }
    let ran: Vec<_> = records.iter().filter(|r| r.status != InvocationStatus::Throttled).collect();
    assert_eq!(total.requests, ran.len() as i64);
    assert_eq!(total.throttles, 75);
    assert_eq!(total.errors, 150);
    assert_eq!(total.cold_starts, ran.iter().filter(|r| r.cold).count() as i64);
    assert_eq!(total.billed_mib_ms, ran.iter().map(|r| r.billed_mib_ms() as i64).sum::<i64>());

    let later = store.usage(T0 + 2 * HOUR + 5, Some(&function("cart"))).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].hour, later[0].function.as_str()), (T0 + 2 * HOUR, "cart"));
}
