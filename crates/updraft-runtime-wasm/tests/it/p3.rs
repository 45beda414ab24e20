//! WASIp3 components (`wasi:http/handler@0.3.0`): served fresh per request, reused one
//! request at a time, and shared by several requests at once; never reused after a
//! failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use updraft_runtime_wasm::{InvokeError, InvokeOptions, StreamedRun, WasmInstance, Workers};
use updraft_test_programs as programs;

use crate::{Harness, get, options, stdout};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The guest's `served=N in-flight-max=M`, as numbers.
fn counts(body: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(body).unwrap();
    let value = |key: &str| {
        text.split(' ')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
            .parse()
            .unwrap()
    };
    (value("served"), value("in-flight-max"))
}

async fn count(instance: &mut WasmInstance, path: &str) -> (u64, u64) {
    let outcome = instance.run(get(path), TIMEOUT).await;
    counts(outcome.result.unwrap().body())
}

#[tokio::test]
async fn a_wasip3_component_answers_with_a_fresh_instance_per_request() {
    let harness = Harness::new();
    let p3 = harness.prepare(programs::P3);
    assert!(p3.is_p3());
    assert!(!harness.prepare(programs::ECHO).is_p3());

    for _ in 0..3 {
        let outcome = p3.invoke(get("/count"), &options()).await;
        assert_eq!(counts(outcome.result.as_ref().unwrap().body()).0, 1, "every request gets a fresh instance");
        assert_eq!(stdout(&outcome), "p3 request 1 /count\n");
        assert!(outcome.memory_peak > 0, "memory use is measured");
    }
    let request =
        http::Request::post("/echo").header("host", "localhost").body(Bytes::from_static(b"payload")).unwrap();
    assert_eq!(p3.invoke(request, &options()).await.result.unwrap().body(), "payload");
    assert_eq!(p3.invoke(get("/env?name=GREETING"), &options()).await.result.unwrap().body(), "hi");
}

#[tokio::test]
async fn a_reused_wasip3_instance_keeps_its_state_and_a_failure_ends_it() {
    let harness = Harness::new();
    let mut reused = harness.prepare(programs::P3).instance(options(), true).await.unwrap();
    for expected in 1..=3 {
        assert_eq!(count(&mut reused, "/count").await.0, expected);
    }
    // A trap: the instance is never used again; the next request starts over.
    let trapped = reused.run(get("/trap"), TIMEOUT).await;
    assert!(matches!(trapped.result, Err(InvokeError::Trap { .. })), "{:?}", trapped.result.err());
    assert_eq!(count(&mut reused, "/count").await.0, 1);
    assert_eq!(count(&mut reused, "/count").await.0, 2);
    // A request past its timeout: the same.
    let slow = reused.run(get("/sleep?ms=5000"), Duration::from_millis(200)).await;
    assert!(matches!(slow.result, Err(InvokeError::Timeout { .. })), "{:?}", slow.result.err());
    assert_eq!(count(&mut reused, "/count").await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasip3_instances_share_one_store_up_to_their_concurrency() {
    let harness = Harness::new();
    let p3 = harness.prepare(programs::P3);
    let workers = Arc::new(Workers::default());
    // Four instances started together, at most four to a store: one store.
    let starts = (0..4).map(|_| p3.instance_sharing(options(), true, Some((workers.clone(), 4))));
    let mut four: Vec<WasmInstance> = futures::future::try_join_all(starts).await.unwrap();
    let sleeps = four.iter_mut().map(|instance| instance.run(get("/sleep?ms=300"), TIMEOUT));
    let answers = futures::future::join_all(sleeps).await;
    let mut served: Vec<u64> = Vec::new();
    let mut most = 0;
    for outcome in answers {
        let (n, in_flight) = counts(outcome.result.unwrap().body());
        served.push(n);
        most = most.max(in_flight);
    }
    // Each answer counts what its store had taken by then: all four, in each.
    assert_eq!(served, [4, 4, 4, 4], "one instance took all four requests");
    assert_eq!(most, 4, "and ran them at once");

    // A fifth instance finds that store full and gets its own.
    let mut fifth = p3.instance_sharing(options(), true, Some((workers.clone(), 4))).await.unwrap();
    assert_eq!(count(&mut fifth, "/count").await.0, 1);
    assert_eq!(count(&mut four[0], "/count").await.0, 5);

    drop(fifth);

    // One of them traps: the store is never used again, by any of its instances.
    let trapped = four[1].run(get("/trap"), TIMEOUT).await;
    assert!(matches!(trapped.result, Err(InvokeError::Trap { .. })), "{:?}", trapped.result.err());
    assert_eq!(count(&mut four[2], "/count").await.0, 1, "a new store");
    // The others still on the dead one move to a store with room: the new one.
    assert_eq!(count(&mut four[3], "/count").await.0, 2);
}

#[tokio::test]
async fn without_sharing_reused_wasip3_instances_run_one_request_at_a_time() {
    let harness = Harness::new();
    let p3 = harness.prepare(programs::P3);
    let mut first = p3.instance(options(), true).await.unwrap();
    let mut second = p3.instance(options(), true).await.unwrap();
    let (a, b) = tokio::join!(first.run(get("/sleep?ms=200"), TIMEOUT), second.run(get("/sleep?ms=200"), TIMEOUT));
    assert_eq!(counts(a.result.unwrap().body()), (1, 1));
    assert_eq!(counts(b.result.unwrap().body()), (1, 1));
}

#[tokio::test]
async fn a_wasip3_body_written_after_the_answer_streams_in_whole() {
    let harness = Harness::new();
    let mut fresh = harness.prepare(programs::P3).instance(options(), false).await.unwrap();
    // Read whole: every chunk, although the guest writes them after it answered.
    let outcome = fresh.run(get("/stream?chunks=3"), TIMEOUT).await;
    assert_eq!(outcome.result.unwrap().body(), "chunk 0\nchunk 1\nchunk 2\n");
    // Streamed: the head comes first and the chunks as they are written.
    let body = match fresh.run_streaming(get("/stream?chunks=3"), TIMEOUT).await {
        StreamedRun::Streaming { response, rest } => {
            // The end of the body is sent once the invocation has ended, as the
            // scheduler does when it takes the instance back.
            let ended = async {
                let end = rest.await;
                assert!(end.outcome.result.is_ok(), "{:?}", end.outcome.result.err());
                end.finish.expect("a complete body").finish().await.unwrap();
            };
            let (body, ()) = tokio::join!(response.into_body().read_whole(), ended);
            body.unwrap()
        }
        StreamedRun::Whole(outcome) => outcome.result.unwrap().into_body(),
    };
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\n");
}

#[tokio::test]
async fn a_wasip3_guest_that_waits_past_its_timeout_is_stopped() {
    let harness = Harness::new();
    let p3 = harness.prepare(programs::P3);
    let options = InvokeOptions { timeout: Duration::from_millis(200), ..options() };
    let outcome = p3.invoke(get("/sleep?ms=10000"), &options).await;
    assert!(matches!(outcome.result, Err(InvokeError::Timeout { .. })), "{:?}", outcome.result.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasip3_guest_that_computes_past_its_timeout_is_stopped_and_others_run() {
    let harness = Harness::new();
    let p3 = harness.prepare(programs::P3);
    let mut spinning = p3.instance(options(), true).await.unwrap();
    let mut other = p3.instance(options(), true).await.unwrap();
    let (spun, answered) = tokio::join!(spinning.run(get("/spin"), Duration::from_millis(300)), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        count(&mut other, "/count").await
    });
    assert!(matches!(spun.result, Err(InvokeError::Timeout { .. })), "{:?}", spun.result.err());
    assert_eq!(answered.0, 1, "another instance answers while one spins");
    assert_eq!(count(&mut spinning, "/count").await.0, 1, "the spinning one starts over");
}

#[tokio::test]
async fn a_wasip3_instance_is_held_to_its_memory_limit() {
    let harness = Harness::new();
    let mut reused = harness.prepare(programs::P3).instance(options(), true).await.unwrap();
    let held = reused.run(get("/grow?mib=16"), TIMEOUT).await;
    assert_eq!(held.result.unwrap().body(), "held 16 MiB");
    assert!(held.memory_peak >= 16 << 20, "{}", held.memory_peak);
    // Past the 64 MiB limit: out of memory, and the instance starts over.
    let bombed = reused.run(get("/grow?mib=100"), TIMEOUT).await;
    assert!(matches!(bombed.result, Err(InvokeError::OutOfMemory { .. })), "{:?}", bombed.result.err());
    assert_eq!(count(&mut reused, "/count").await.0, 1);
}
