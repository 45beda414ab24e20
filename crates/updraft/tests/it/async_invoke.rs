//! Asynchronous invocations end to end: accepted only once stored, retried with
//! backoff, kept when they fail for good, and not lost when the server is killed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;
use crate::json;

/// Writes a one-function Python app into a temporary folder.
pub(crate) fn python_app(name: &str, extra: &str, code: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[app]\nname = \"{name}\"\n\n[functions.{name}]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n{extra}\n"
    );
    std::fs::write(dir.path().join("updraft.toml"), manifest).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), code).unwrap();
    dir
}

const FLAKY: &str = r#"
attempts = {}

def handler(event, context):
    n = attempts.get(context.aws_request_id, 0) + 1
    attempts[context.aws_request_id] = n
    print(f"attempt {n}")
    if n < event["succeed_on"]:
        raise RuntimeError(f"attempt {n} fails")
    return {"attempt": n}
"#;

async fn invoke_async(server: &TestServer, function: &str, event: Value) -> String {
    let response =
        server.api(Method::POST, &format!("/v1/functions/{function}/invoke-async")).json(&event).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    json(response).await["id"].as_str().unwrap().to_owned()
}

/// The records of invocation `id`, once `count` of them are written.
async fn records_of(server: &TestServer, function: &str, id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = json(
            server.api(Method::GET, &format!("/v1/invocations?function={function}&limit=1000")).send().await.unwrap(),
        )
        .await;
        let records: Vec<Value> =
            page["invocations"].as_array().unwrap().iter().filter(|r| r["id"] == id).cloned().collect();
        if records.len() >= count {
            return records;
        }
        assert!(Instant::now() < deadline, "{count} records of {id} never appeared: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn async_invocations_are_retried_with_backoff_and_kept_when_they_fail_for_good() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start_with(&["--async-retry-delay", "100ms"]);
    let app = python_app("flaky", "", FLAKY);
    server.deploy(app.path());

    // Fails twice, then succeeds: three attempts under one id, then it is gone.
    let id = invoke_async(&server, "flaky", json!({"succeed_on": 3})).await;
    let records = records_of(&server, "flaky", &id, 3).await;
    let mut statuses: Vec<&str> = records.iter().map(|r| r["status"].as_str().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["error", "error", "success"]);
    assert!(records.iter().all(|r| r["trigger"] == "async"), "{records:?}");
    let log = server.wait_for_function_log("flaky", &format!("{id} stdout attempt 3")).await;
    assert!(log.contains("attempt 2 fails"), "{log}");
    let gone = server.api(Method::GET, &format!("/v1/async/{id}")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "a delivered event leaves the queue");

    // Never succeeds: after three attempts it stays, failed, with the last error.
    let id = invoke_async(&server, "flaky", json!({"succeed_on": 99})).await;
    records_of(&server, "flaky", &id, 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let event = json(server.api(Method::GET, &format!("/v1/async/{id}")).send().await.unwrap()).await;
        if event["state"] == "failed" {
            break event;
        }
        assert!(Instant::now() < deadline, "{event}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["attempts"], 3);
    assert!(event["last_error"].as_str().unwrap().contains("RuntimeError"), "{event}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_of(&server, "flaky", &id, 3).await.len(), 3, "no fourth attempt");

    // `retries = 0`: one attempt only.
    let once = python_app("once", "retries = 0", FLAKY);
    server.deploy(once.path());
    let id = invoke_async(&server, "once", json!({"succeed_on": 2})).await;
    records_of(&server, "once", &id, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = json(server.api(Method::GET, &format!("/v1/async/{id}")).send().await.unwrap()).await;
        if event["state"] == "failed" {
            assert_eq!(event["attempts"], 1, "{event}");
            break;
        }
        assert!(Instant::now() < deadline, "{event}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const DOOMED: &str = r#"
def handler(event, context):
    print(f"run of {context.aws_request_id}")
    raise RuntimeError("doomed")
"#;

/// Waits until event `id` is failed; returns it.
pub(crate) async fn failed(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = json(server.api(Method::GET, &format!("/v1/async/{id}")).send().await.unwrap()).await;
        if event["state"] == "failed" {
            return event;
        }
        assert!(Instant::now() < deadline, "{id} never failed: {event}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failed_async_invocations_are_retried_one_by_one_or_all_at_once() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let app = python_app("doomed", "retries = 0", DOOMED);
    server.deploy(app.path());
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = invoke_async(&server, "doomed", json!({ "n": n })).await;
        failed(&server, &id).await;
        ids.push(id);
    }

    // Listed the latest first, on the API and the CLI.
    let listed = json(server.api(Method::GET, "/v1/async/failed?function=doomed").send().await.unwrap()).await;
    let listed: Vec<&str> = listed["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    let table = server.cli_ok(&["async", "ls", "--function", "doomed"]);
    assert!(ids.iter().all(|id| table.contains(id.as_str())) && table.contains("RuntimeError"), "{table}");

    // One retried: it runs again under its id (a second record) and fails again, its
    // attempts counted afresh; the others stay as they were.
    let out = server.cli_ok(&["async", "retry", &ids[0]]);
    assert!(out.contains("queued again"), "{out}");
    records_of(&server, "doomed", &ids[0], 2).await;
    let again = failed(&server, &ids[0]).await;
    assert_eq!(again["attempts"], 1, "{again}");
    assert_eq!(records_of(&server, "doomed", &ids[1], 1).await.len(), 1);

    // All of them: each runs once more.
    let out = server.cli_ok(&["async", "retry", "--all", "--function", "doomed"]);
    assert!(out.contains("retrying 3 failed"), "{out}");
    for (id, runs) in [(&ids[0], 3), (&ids[1], 2), (&ids[2], 2)] {
        records_of(&server, "doomed", id, runs).await;
        failed(&server, id).await;
    }
    server.wait_for_function_log("doomed", &format!("{} stdout run of {}", ids[2], ids[2])).await;

    // What cannot be retried says why.
    let missing = server.api(Method::POST, "/v1/async/no-such-event/retry").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let out = server.cli(&["async", "retry", "no-such-event"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no-such-event"), "{out:?}");
    let nobody = server.api(Method::POST, "/v1/async/retry?function=nobody").send().await.unwrap();
    assert_eq!(json(nobody).await["retried"], 0);
}

#[tokio::test]
async fn metrics_carry_lambda_s_and_opentelemetry_s_names() {
    use crate::execution::{metric, wait_for_metric};
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let extra = "retries = 0\non_failure = { topic = \"nowhere\" }\ndead_letter_topic = \"lost\"\n\
                 triggers = [{ queue = \"jobs\" }]";
    let app = python_app("doomed", extra, DOOMED);
    server.deploy(app.path());
    for n in 0..2 {
        let id = invoke_async(&server, "doomed", json!({ "n": n })).await;
        failed(&server, &id).await;
    }
    let sync = server.api(Method::POST, "/v1/functions/doomed/invoke").json(&json!({})).send().await.unwrap();
    assert_eq!(sync.status(), StatusCode::BAD_GATEWAY, "the function raised");
    for body in ["a", "b"] {
        server.api(Method::POST, "/v1/queues/jobs-dlq").body(body).send().await.unwrap();
    }

    // Lambda's names, per function and version; its async metrics per function.
    let within = Duration::from_secs(20);
    for (sample, value) in [
        ("updraft_lambda_invocations_total{function=\"doomed\",version=\"1\"}", 3.0),
        ("updraft_lambda_errors_total{function=\"doomed\",version=\"1\"}", 3.0),
        ("updraft_lambda_throttles_total{function=\"doomed\",version=\"1\"}", 0.0),
        ("updraft_lambda_duration_milliseconds_count{function=\"doomed\",version=\"1\"}", 3.0),
        ("updraft_lambda_async_events_received_total{function=\"doomed\"}", 2.0),
        ("updraft_lambda_async_event_age_milliseconds_count{function=\"doomed\"}", 2.0),
        ("updraft_lambda_async_events_dropped_total{function=\"doomed\"}", 2.0),
        ("updraft_lambda_dead_letter_errors_total{function=\"doomed\"}", 2.0),
        ("updraft_lambda_destination_delivery_failures_total{function=\"doomed\"}", 2.0),
        ("updraft_lambda_concurrent_executions{function=\"doomed\",version=\"1\"}", 0.0),
        ("updraft_sqs_approximate_number_of_messages_visible{queue=\"jobs-dlq\"}", 2.0),
        ("updraft_sqs_approximate_number_of_messages_not_visible{queue=\"jobs-dlq\"}", 0.0),
        ("updraft_sqs_approximate_number_of_messages_visible{queue=\"jobs\"}", 0.0),
    ] {
        if value == 0.0 && sample.contains("throttles") {
            assert_eq!(metric(&server, sample).await, None, "no throttle happened, so no series");
            continue;
        }
        wait_for_metric(&server, sample, value, within).await;
    }
    let oldest = metric(&server, "updraft_sqs_approximate_age_of_oldest_message_seconds{queue=\"jobs-dlq\"}").await;
    assert!(oldest.is_some_and(|age| age >= 0.0), "{oldest:?}");

    // OpenTelemetry's FaaS metrics, as its Prometheus exporter names them.
    let other = "faas_name=\"doomed\",faas_version=\"1\",faas_trigger=\"other\"";
    for (sample, value) in [
        (format!("faas_errors_total{{{other}}}"), 3.0),
        (format!("faas_invoke_duration_seconds_count{{{other}}}"), 3.0),
        (format!("faas_mem_usage_bytes_count{{{other}}}"), 3.0),
    ] {
        wait_for_metric(&server, &sample, value, within).await;
    }
    // As the conventions say, faas.invocations counts the successful ones: none here.
    assert_eq!(metric(&server, &format!("faas_invocations_total{{{other}}}")).await, None);
    let cold = metric(&server, &format!("faas_coldstarts_total{{{other}}}")).await.unwrap_or(0.0);
    let inits = metric(&server, &format!("faas_init_duration_seconds_count{{{other}}}")).await.unwrap_or(0.0);
    assert!(cold >= 1.0 && inits >= 1.0, "the first run started an instance: {cold} {inits}");
    let text = server.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(text.matches("# EOF").count(), 1, "one exposition:\n{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

/// A tiny HTTP server counting `GET /seen/ID` requests per id. Connections are kept
/// alive, so that thousands of reports do not use up the machine's ephemeral ports
/// (which would fail unrelated tests running at the same time).
pub(crate) async fn witness() -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    // One request (GET, no body) per blank line.
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let request: Vec<u8> = pending.drain(..end + 4).collect();
                        let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
                        if let Some(id) = line.split(' ').nth(1).and_then(|path| path.strip_prefix("/seen/")) {
                            *counts.lock().unwrap().entry(id.to_owned()).or_insert(0) += 1;
                        }
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (port, seen)
}

const WITNESSED: &str = r#"
import http.client

# One kept-alive connection per instance, reopened when it breaks.
connection = None

def handler(event, context):
    global connection
    for _ in range(3):
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", event["port"], timeout=10)
            connection.request("GET", "/seen/%s" % context.aws_request_id)
            connection.getresponse().read()
            return {}
        except (OSError, http.client.HTTPException):
            connection = None
    raise RuntimeError("cannot reach the witness")
"#;

#[tokio::test]
async fn acknowledged_async_invocations_survive_a_kill_9() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    // A run that fails under the load (its witness call cut, its 3 s timeout) is tried
    // again soon, not a minute later: every event must end with a success record.
    let mut server = TestServer::start_with(&["--async-retry-delay", "100ms"]);
    let (port, seen) = witness().await;
    let grant = format!("allowed_outbound_hosts = [\"127.0.0.1:{port}\"]\nconcurrency = 20");
    let app = python_app("witnessed", &grant, WITNESSED);
    server.deploy(app.path());

    // 10,000 events from 32 concurrent callers; the server is killed right after the
    // last is acknowledged, with most of them still in flight.
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let request = server.api(Method::POST, "/v1/functions/witnessed/invoke-async").json(&json!({"port": port}));
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..10_000 / 32 + 1 {
                    let response = request.try_clone().unwrap().send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                    ids.push(json(response).await["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    server.kill();
    let before_restart = seen.lock().unwrap().len();
    server.restart();

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let missing = accepted.iter().filter(|id| !seen.lock().unwrap().contains_key(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} of {} acknowledged events never ran", accepted.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let duplicates: usize = {
        let counts = seen.lock().unwrap();
        accepted.iter().map(|id| counts[id] - 1).sum()
    };
    eprintln!(
        "kill -9: {} events acknowledged, {before_restart} delivered before the kill, all {} delivered after the restart, {duplicates} delivered twice",
        accepted.len(),
        accepted.len()
    );

    // Every run left its record, those the kill interrupted included: an outcome is
    // settled only once its record is stored. (Records are written in batches; the
    // last ones trail the last run a little.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = crate::execution::records(&server, "witnessed").await;
        let recorded: std::collections::HashSet<&str> = records
            .iter()
            .filter(|record| record["status"] == "success")
            .filter_map(|record| record["id"].as_str())
            .collect();
        let unrecorded: Vec<&String> = accepted.iter().filter(|id| !recorded.contains(id.as_str())).collect();
        if unrecorded.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let others: Vec<(&str, &str)> = records
                .iter()
                .filter(|record| unrecorded.iter().any(|id| record["id"] == id.as_str()))
                .map(|record| (record["id"].as_str().unwrap_or(""), record["status"].as_str().unwrap_or("")))
                .collect();
            panic!(
                "{} of {} acknowledged events ran but have no success record, e.g. {:?}; their other records: {others:?}",
                unrecorded.len(),
                accepted.len(),
                &unrecorded[..unrecorded.len().min(3)]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
