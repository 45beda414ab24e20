//! WASIp3 components (`wasi:http/handler@0.3.0`) deployed and served: reused and shared
//! by several requests at once when the manifest says so, never after a failure.

use reqwest::{Method, StatusCode};
use updraft_test_programs as programs;

use crate::execution::wait_for_records;
use crate::harness::{TestServer, app_with_guest};
use crate::{guest_manifest, json};

/// The guest's `served=N in-flight-max=M`, as numbers.
async fn counts(response: reqwest::Response) -> (u64, u64) {
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let value = |key: &str| -> u64 {
        let pair = text.split(' ').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='));
        pair.unwrap_or_else(|| panic!("no {key} in {text:?}")).parse().unwrap()
    };
    (value("served"), value("in-flight-max"))
}

// Multi-threaded: four requests in flight at once from the test's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasip3_instances_run_requests_at_once_up_to_concurrency_per_instance() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    for (name, extra) in
        [("fresh", ""), ("shared", "instance_reuse = true\nconcurrency_per_instance = 4\nconcurrency = 4")]
    {
        let dir = root.path().join(name);
        app_with_guest(&dir, &guest_manifest(name, extra), &programs::bytes(programs::P3));
        server.deploy(&dir);
    }
    // The default: a fresh instance for every request, as for any component.
    for _ in 0..2 {
        assert_eq!(counts(server.get("/fresh/count").await).await, (1, 0));
    }

    let view = json(server.api(Method::GET, "/v1/functions/shared").send().await.unwrap()).await;
    assert_eq!(view["concurrency_per_instance"], 4);
    let sleeps = (0..4).map(|_| server.get("/shared/sleep?ms=300"));
    let mut served = Vec::new();
    let mut most = 0;
    for response in futures::future::join_all(sleeps).await {
        let (n, in_flight) = counts(response).await;
        served.push(n);
        most = most.max(in_flight);
    }
    // Each answer counts what its store had taken by then: all four, in each.
    assert_eq!(served, [4, 4, 4, 4], "one instance took all four requests");
    assert_eq!(most, 4, "and ran them at once");
    assert_eq!(counts(server.get("/shared/count").await).await.0, 5, "it is kept for the next");

    // A trap ends it: the next request finds a new one.
    let trapped = server.get("/shared/trap").await;
    assert_eq!(trapped.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json(trapped).await["error"]["code"], "function_trapped");
    assert_eq!(counts(server.get("/shared/count").await).await.0, 1);

    // Each invocation has its own record, with its own output.
    let records = wait_for_records(&server, "shared", 7).await;
    assert_eq!(records.iter().filter(|record| record["status"] == "success").count(), 6);
    let logs = server.wait_for_function_log("shared", "p3 request 1 /shared/count").await;
    assert!(logs.contains("p3 request 5 /shared/count"), "{logs}");
}

#[tokio::test]
async fn concurrency_per_instance_needs_reuse_and_a_wasip3_component() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let deploy = |name: &str, extra: &str, guest: &str| {
        let dir = root.path().join(name);
        app_with_guest(&dir, &guest_manifest(name, extra), &programs::bytes(guest));
        let output = server.cli(&["deploy", dir.to_str().unwrap()]);
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, error) = deploy("unreused", "concurrency_per_instance = 4", programs::P3);
    assert!(!ok && error.contains("add instance_reuse = true"), "{error}");
    let (ok, error) = deploy("p2", "instance_reuse = true\nconcurrency_per_instance = 4", programs::ECHO);
    assert!(!ok && error.contains("needs a WASIp3 component"), "{error}");
    let (ok, error) = deploy("one", "instance_reuse = true\nconcurrency_per_instance = 1", programs::ECHO);
    assert!(ok, "one at a time is any component's: {error}");
}
