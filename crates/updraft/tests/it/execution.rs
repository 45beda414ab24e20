//! The execution model end to end: concurrency limits, cold and warm starts, scale to
//! zero, provisioned instances, invocation records, usage and metrics, against the
//! real binary and real guests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;
use updraft_test_programs as programs;

use crate::harness::{TestServer, app_with_guest};
use crate::{guest_manifest, json};

fn deploy_echo(server: &TestServer, name: &str, extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest(name, extra), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
}

/// Every record of `function`, newest first, following the pages.
pub(crate) async fn records(server: &TestServer, function: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before = String::new();
    loop {
        let page = json(
            server
                .api(Method::GET, &format!("/v1/invocations?function={function}&limit=1000{before}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        all.extend(page["invocations"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(next) => before = format!("&before={next}"),
            None => return all,
        }
    }
}

/// Waits until `function` has `count` records (they are written in batches, off the
/// request path), and checks no more arrive with them.
pub(crate) async fn wait_for_records(server: &TestServer, function: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = records(server, function).await;
        assert!(found.len() <= count, "{} records for {function}, expected {count}", found.len());
        if found.len() == count {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "only {} of {count} records for {function}", found.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn record_for<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    records.iter().find(|r| r["id"] == request_id).unwrap_or_else(|| panic!("no record {request_id}"))
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-updraft-request-id"].to_str().unwrap().to_owned()
}

/// The value of one sample in `/metrics`, e.g. `updraft_instances{function="a",state="idle"}`.
pub(crate) async fn metric(server: &TestServer, sample: &str) -> Option<f64> {
    let text = server.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

pub(crate) async fn wait_for_metric(server: &TestServer, sample: &str, value: f64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let found = metric(server, sample).await;
        if found == Some(value) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{sample} is {found:?}, never {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn instances(function: &str, state: &str) -> String {
    format!("updraft_instances{{function=\"{function}\",state=\"{state}\"}}")
}

/// A loopback HTTP server that holds every request until released: a guest that
/// fetches from it stays in flight for as long as the test wants. It is a real HTTP
/// server (axum), so connection handling (a request body left unread, keep-alive, the
/// close after the answer) is hyper's, not the test's.
pub(crate) struct Gate {
    pub(crate) port: u16,
    pub(crate) arrived: Arc<AtomicUsize>,
    pub(crate) release: Arc<Semaphore>,
}

impl Gate {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let (counter, gate) = (arrived.clone(), release.clone());
        let app = axum::Router::new().fallback(move || {
            let (counter, gate) = (counter.clone(), gate.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                "pong"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, arrived, release }
    }

    fn manifest_extra(&self, more: &str) -> String {
        format!("timeout = \"60s\"\nallowed_outbound_hosts = [\"127.0.0.1:{}\"]\n{more}", self.port)
    }
}

/// Fires `count` requests at `/NAME/fetch` (held by the gate) and waits until exactly
/// `admitted` reach the gate and every other one has come back 429; then releases the
/// admitted ones and returns every response's status and body.
async fn burst_through_gate(
    server: &Arc<TestServer>,
    gate: &Gate,
    name: &str,
    count: usize,
    admitted: usize,
    limit: &str,
) {
    let throttled = Arc::new(AtomicUsize::new(0));
    let url = server.url(&format!("/{name}/fetch?url=http://127.0.0.1:{}/", gate.port));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (server, url, throttled) = (server.clone(), url.clone(), throttled.clone());
            tokio::spawn(async move {
                let response = server.http.get(&url).send().await.unwrap();
                let status = response.status();
                let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body = response.text().await.unwrap();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    throttled.fetch_add(1, Ordering::SeqCst);
                }
                (status, retry_after, body)
            })
        })
        .collect();
    let before = gate.arrived.load(Ordering::SeqCst);
    // Generous: on a loaded 2-core machine (a release build of the examples running
    // beside it) an instance's first start can take many seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !(gate.arrived.load(Ordering::SeqCst) - before == admitted
        && throttled.load(Ordering::SeqCst) == count - admitted)
    {
        if std::time::Instant::now() >= deadline {
            let finished = tasks.iter().filter(|task| task.is_finished()).count();
            panic!(
                "{name}: {} at the gate, {} throttled, {finished} of {count} requests answered",
                gate.arrived.load(Ordering::SeqCst) - before,
                throttled.load(Ordering::SeqCst),
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gate.release.add_permits(admitted);
    let mut ok = 0;
    for task in tasks {
        let (status, retry_after, body) = task.await.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(body, "fetched 200: pong");
                ok += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                let error: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(error["error"]["code"], "too_many_requests");
                assert_eq!(error["error"]["limit"], limit, "{body}");
            }
            other => panic!("{name}: unexpected {other}: {body}\nthe server's log:\n{}", server.log_text()),
        }
    }
    assert_eq!(ok, admitted, "{name}: exactly the limit is admitted");
    assert_eq!(gate.arrived.load(Ordering::SeqCst) - before, admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_ten_times_the_limit_admits_exactly_the_limit() {
    let _alone = crate::harness::HEAVY_LOAD.write().await;
    let server = Arc::new(TestServer::start_with(&["--account-concurrency", "8"]));
    let gate = Gate::start().await;
    deploy_echo(&server, "reserved", &gate.manifest_extra("concurrency = 3"));
    deploy_echo(&server, "shared", &gate.manifest_extra(""));

    // A reservation caps its function...
    burst_through_gate(&server, &gate, "reserved", 30, 3, "function").await;
    // ...and is carved out of the account: the others share 8 - 3.
    burst_through_gate(&server, &gate, "shared", 50, 5, "account").await;

    let reserved = wait_for_records(&server, "reserved", 30).await;
    let throttles: Vec<_> = reserved.iter().filter(|r| r["status"] == "throttled").collect();
    assert_eq!(throttles.len(), 27);
    assert_eq!(throttles[0]["error_type"], "ReservedFunctionConcurrentInvocationLimitExceeded");
    let shared = wait_for_records(&server, "shared", 50).await;
    assert_eq!(shared.iter().filter(|r| r["status"] == "success").count(), 5);
    assert_eq!(metric(&server, "updraft_throttles_total{function=\"shared\"}").await, Some(45.0));

    // concurrency = 0 disables a function; over the account limit is refused at deploy.
    deploy_echo(&server, "off", "concurrency = 0");
    let off = server.get("/off/x").await;
    assert_eq!(off.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(json(off).await["error"]["message"].as_str().unwrap().contains("disabled"));
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("greedy", "concurrency = 6"), &programs::bytes(programs::ECHO));
    let refused = server.cli(&["deploy", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("above the account limit of 8"), "{stderr}");
}

#[tokio::test]
async fn cold_starts_are_timed_apart_and_idle_instances_scale_to_zero() {
    let server = TestServer::start();
    deploy_echo(&server, "sleepy", "idle_timeout = \"300ms\"\nmemory = \"64MiB\"");
    let first = server.get("/sleepy/log").await;
    let second = server.get("/sleepy/log").await;
    let (first_id, second_id) = (request_id(&first), request_id(&second));
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));

    wait_for_metric(&server, &instances("sleepy", "idle"), 1.0, Duration::from_secs(20)).await;
    // After the idle timeout the instance is stopped: nothing of the function stays loaded.
    wait_for_metric(&server, &instances("sleepy", "idle"), 0.0, Duration::from_secs(20)).await;
    let third_id = request_id(&server.get("/sleepy/log").await);

    let records = wait_for_records(&server, "sleepy", 3).await;
    let (first, second, third) =
        (record_for(&records, &first_id), record_for(&records, &second_id), record_for(&records, &third_id));
    assert_eq!(
        (first["cold"].as_bool(), second["cold"].as_bool(), third["cold"].as_bool()),
        (Some(true), Some(false), Some(true))
    );
    assert!(first["init_duration_ms"].as_f64().unwrap() > 0.0);
    assert!(second["init_duration_ms"].is_null());
    for record in [first, second, third] {
        assert_eq!(record["status"], "success");
        assert_eq!(record["memory_limit_mb"], 64);
        assert!(record["max_memory_used_mb"].as_u64().unwrap() >= 1);
        assert_eq!(record["billed_duration_ms"].as_f64().unwrap(), record["duration_ms"].as_f64().unwrap().ceil());
        assert_eq!(record["trace_id"].as_str().unwrap().len(), 32);
    }

    // The logs frame each invocation the way Lambda's do.
    let logs = server.wait_for_function_log("sleepy", &format!("REPORT RequestId: {third_id}")).await;
    assert!(logs.contains(&format!("START RequestId: {first_id} Version: 1")), "{logs}");
    assert!(logs.contains(&format!("END RequestId: {first_id}")), "{logs}");
    let report = logs.lines().find(|l| l.contains(&format!("REPORT RequestId: {first_id}"))).unwrap();
    assert!(report.contains("\tBilled Duration: ") && report.contains("\tMemory Size: 64 MB\t"), "{report}");
    assert!(report.contains("\tInit Duration: "), "a cold start reports its init duration: {report}");
    let warm = logs.lines().find(|l| l.contains(&format!("REPORT RequestId: {second_id}"))).unwrap();
    assert!(!warm.contains("Init Duration"), "{warm}");
    assert_eq!(metric(&server, "updraft_cold_starts_total{function=\"sleepy\"}").await, Some(2.0));
}

#[tokio::test]
async fn min_instances_are_kept_warm() {
    let server = TestServer::start();
    deploy_echo(&server, "warm", "min_instances = 2\nidle_timeout = \"100ms\"");
    wait_for_metric(&server, &instances("warm", "idle"), 2.0, Duration::from_secs(20)).await;
    // Well past the idle timeout they are still there (the reaper runs every 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&server, &instances("warm", "idle")).await, Some(2.0));
    let id = request_id(&server.get("/warm/count").await);
    let records = wait_for_records(&server, "warm", 1).await;
    assert_eq!(record_for(&records, &id)["cold"], false, "a provisioned instance serves warm");
    // A timed-out instance is discarded and replaced.
    deploy_echo(&server, "warm", "min_instances = 1\ntimeout = \"100ms\"");
    wait_for_metric(&server, &instances("warm", "idle"), 1.0, Duration::from_secs(20)).await;
    assert_eq!(server.get("/warm/sleep?ms=2000").await.status(), StatusCode::GATEWAY_TIMEOUT);
    wait_for_metric(&server, &instances("warm", "idle"), 1.0, Duration::from_secs(20)).await;
    let records = wait_for_records(&server, "warm", 2).await;
    assert_eq!(records[0]["status"], "timeout");
    assert_eq!(records[0]["error_type"], "Sandbox.Timedout");
    assert_eq!(records[0]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_get_one_record_each_and_usage_adds_up() {
    let server = Arc::new(TestServer::start());
    deploy_echo(&server, "busy", "memory = \"32MiB\"");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let response = server.get("/busy/sleep?ms=200").await;
                (response.status(), request_id(&response))
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (status, id) = task.await.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        ids.push((status, id));
    }
    let records = wait_for_records(&server, "busy", 1000).await;
    for (status, id) in &ids {
        let record = record_for(&records, id);
        let expected = if *status == StatusCode::OK { "success" } else { "throttled" };
        assert_eq!(record["status"], expected);
    }

    let usage = json(server.api(Method::GET, "/v1/usage?function=busy").send().await.unwrap()).await;
    let total = &usage["total"];
    let ran: Vec<_> = records.iter().filter(|r| r["status"] != "throttled").collect();
    assert_eq!(total["requests"], ran.len());
    assert_eq!(total["throttles"], records.len() - ran.len());
    assert_eq!(total["cold_starts"], ran.iter().filter(|r| r["cold"] == true).count());
    let mib_ms: u64 = ran.iter().map(|r| r["billed_duration_ms"].as_u64().unwrap() * 32).sum();
    let gb_seconds = mib_ms as f64 / 1024.0 / 1000.0;
    assert!((total["gb_seconds"].as_f64().unwrap() - gb_seconds).abs() < 1e-9, "{total} vs {gb_seconds}");
    let cost = ran.len() as f64 / 1e6 * 0.20 + gb_seconds * 0.000_016_666_7;
    assert!((total["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12, "{total} vs {cost}");
    assert_eq!(
        metric(&server, "updraft_invocations_total{function=\"busy\",status=\"success\"}").await,
        Some(ran.len() as f64)
    );

    let printed = server.cli_ok(&["usage", "--function", "busy"]);
    assert!(printed.contains(&format!("{:>10}", ran.len())), "{printed}");
    let listed = server.cli_ok(&["invocations", "busy", "--limit", "5"]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_running_at_a_graceful_shutdown_are_recorded() {
    let server = TestServer::start();
    deploy_echo(&server, "slow", "");
    assert_eq!(server.get("/slow/count").await.status(), StatusCode::OK);
    let tasks: Vec<_> =
        (0..20).map(|_| tokio::spawn(server.http.get(server.url("/slow/sleep?ms=1000")).send())).collect();
    wait_for_metric(&server, "updraft_concurrent_executions{function=\"slow\"}", 20.0, Duration::from_secs(20)).await;
    let mut server = server;
    let stopped = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (status, mut server) = stopped.await.unwrap();
    assert!(status.success());
    server.restart();
    let records = wait_for_records(&server, "slow", 21).await;
    assert!(records.iter().all(|r| r["status"] == "success"));
}

#[tokio::test]
async fn failures_are_recorded_with_their_type_and_metrics_need_a_key() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("bomb", "memory = \"32MiB\""), &programs::bytes(programs::MEMORY_BOMB));
    server.deploy(dir.path());
    deploy_echo(&server, "spin", "timeout = \"200ms\"");
    let bombed = server.get("/bomb/x").await;
    assert_eq!(bombed.status(), StatusCode::BAD_GATEWAY);
    let timed_out = server.get("/spin/sleep?ms=5000").await;
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    let (bomb_id, spin_id) = (request_id(&bombed), request_id(&timed_out));

    let bomb = wait_for_records(&server, "bomb", 1).await;
    assert_eq!(
        (&bomb[0]["id"], &bomb[0]["status"], &bomb[0]["error_type"]),
        (&Value::from(bomb_id), &Value::from("error"), &Value::from("Runtime.OutOfMemory"))
    );
    let spin = wait_for_records(&server, "spin", 1).await;
    assert_eq!(spin[0]["id"], spin_id);
    assert_eq!(spin[0]["status"], "timeout");
    assert!(spin[0]["duration_ms"].as_f64().unwrap() >= 200.0);
    let logs = server.wait_for_function_log("spin", "Task timed out after").await;
    assert!(logs.contains("Status: timeout\tError Type: Sandbox.Timedout"), "{logs}");

    let filtered = json(server.api(Method::GET, "/v1/invocations?status=timeout").send().await.unwrap()).await;
    assert_eq!(filtered["invocations"].as_array().unwrap().len(), 1);

    let anonymous = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let text = server.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    for family in ["updraft_invocation_duration_seconds_bucket", "updraft_concurrent_executions", "updraft_instances"] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}
