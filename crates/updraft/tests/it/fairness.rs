//! Greedy functions cannot starve the node: with four spinning invocations per core,
//! wasm ones that never yield and Lambda ones at their CPU quota, the server's health
//! check, its control plane and another function keep answering, long before the
//! spinners run into their timeout; and spinners time out at their timeout, counted
//! from their own start, not one after another.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use updraft_test_programs as programs;

use crate::execution::wait_for_metric;
use crate::harness::{TestServer, app_with_guest};

const SPIN_TIMEOUT: &str = "10s";

const PYTHON_SPIN: &str = "def handler(event, context):\n    while True:\n        pass\n";

fn spinners() -> usize {
    4 * std::thread::available_parallelism().map_or(2, usize::from)
}

/// Deploys `hello` (the echo guest) next to the spinners.
fn deploy(server: &TestServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[app]\nname = \"fair\"\n\n\
         [functions.spin]\nruntime = \"wasm\"\nsource = \"spin.wasm\"\ntimeout = \"{SPIN_TIMEOUT}\"\n\
         triggers = [{{ http = \"GET /spin\" }}]\n\n\
         [functions.pyspin]\nruntime = \"python3\"\nhandler = \"spin.handler\"\nsource = \"src\"\ntimeout = \"{SPIN_TIMEOUT}\"\n\
         triggers = [{{ http = \"GET /pyspin\" }}]\n\n\
         [functions.hello]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{{ http = \"GET /hello/{{*rest}}\" }}]\n"
    );
    app_with_guest(dir.path(), &manifest, &programs::bytes(programs::ECHO));
    std::fs::write(dir.path().join("spin.wasm"), programs::bytes(programs::SPIN)).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/spin.py"), PYTHON_SPIN).unwrap();
    server.deploy(dir.path());
    dir
}

/// Starts the spinners on `path` and waits until every one is running.
async fn spin(server: &TestServer, function: &str) -> Vec<tokio::task::JoinHandle<(StatusCode, Duration)>> {
    let handles = (0..spinners())
        .map(|_| {
            let request = server.http.get(server.url(&format!("/{function}")));
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = request.send().await.unwrap();
                (response.status(), sent.elapsed())
            })
        })
        .collect();
    // Starting eight Lambda sandboxes at once takes a loaded 2-core machine a while.
    let busy = format!("updraft_instances{{function=\"{function}\",state=\"busy\"}}");
    wait_for_metric(server, &busy, spinners() as f64, Duration::from_secs(60)).await;
    handles
}

/// `/healthz`, `/v1/functions` and another function answer while every spinner still
/// runs; returns how long each took.
async fn others_answer(
    server: &TestServer,
    spinners: &[tokio::task::JoinHandle<(StatusCode, Duration)>],
) -> Vec<Duration> {
    let mut took = Vec::new();
    for round in 0..5 {
        let started = Instant::now();
        assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
        took.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(server.api(Method::GET, "/v1/functions").send().await.unwrap().status(), StatusCode::OK);
        took.push(started.elapsed());
        let started = Instant::now();
        let hello = server.get(&format!("/hello/{round}")).await;
        assert_eq!(hello.status(), StatusCode::OK);
        took.push(started.elapsed());
        assert!(
            spinners.iter().all(|spinner| !spinner.is_finished()),
            "round {round}: the server answered only once a spinner had ended"
        );
    }
    took
}

async fn all_time_out(spinners: Vec<tokio::task::JoinHandle<(StatusCode, Duration)>>) {
    let timeout = Duration::from_secs(10);
    for spinner in spinners {
        let (status, took) = spinner.await.unwrap();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        // All of them ran at once: each answered about one timeout after it was sent,
        // not one timeout per spinner ahead of it in a queue.
        assert!(took < 2 * timeout, "a spinner's 504 came {took:?} after it was sent; its timeout is {timeout:?}");
    }
}

/// One test, one server, one kind of spinner after the other: two sets at once would
/// also be testing how fast a 2-core machine starts sixteen instances.
#[tokio::test]
async fn spinning_functions_leave_the_node_answering() {
    let server = TestServer::start();
    let _app = deploy(&server);
    // wasm guests that never yield.
    let spinners = spin(&server, "spin").await;
    let took = others_answer(&server, &spinners).await;
    eprintln!("with {} wasm spinners: answers took {took:?}", spinners.len());
    all_time_out(spinners).await;
    // Lambda functions at their CPU quota.
    let spinners = spin(&server, "pyspin").await;
    let took = others_answer(&server, &spinners).await;
    eprintln!("with {} Lambda spinners: answers took {took:?}", spinners.len());
    all_time_out(spinners).await;
}
