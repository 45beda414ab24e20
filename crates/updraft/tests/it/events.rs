//! Events end to end: topics fanning out to every subscriber, destinations and the
//! dead-letter topic, webhooks with signatures, schedules that fire each tick once
//! across a kill -9, each delivered in its documented shape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestServer, app_with_guest};
use crate::json;

/// A loopback HTTP server keeping every JSON body POSTed to it: what functions saw.
#[derive(Clone)]
struct Witness {
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Witness {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Witness { port, seen }
    }

    /// What function `name` reported, once `predicate` holds for it.
    async fn wait_for(&self, name: &str, what: &str, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reports = self.reports(name);
            if predicate(&reports) {
                return reports;
            }
            assert!(Instant::now() < deadline, "{name} never reported {what}; it reported {reports:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn reports(&self, name: &str) -> Vec<Value> {
        self.seen.lock().unwrap().iter().filter(|report| report["fn"] == name).cloned().collect()
    }
}

/// A Python handler that reports each event it gets to the witness, and fails while
/// `FAIL_FIRST` attempts of an event have not yet been made.
const REPORTER: &str = r#"
import json, os, urllib.request

attempts = {}

def handler(event, context):
    n = attempts.get(context.aws_request_id, 0) + 1
    attempts[context.aws_request_id] = n
    report = {"fn": os.environ["NAME"], "id": context.aws_request_id, "attempt": n, "event": event}
    request = urllib.request.Request("http://127.0.0.1:%s/" % os.environ["WITNESS"], data=json.dumps(report).encode(),
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    if n <= int(os.environ.get("FAIL_FIRST", "0")) or (isinstance(event, dict) and event.get("fail")):
        raise RuntimeError("attempt %d of %s fails" % (n, context.aws_request_id))
    return {"handled": event}
"#;

/// A `[functions.NAME]` table for a reporter, with `extra` keys.
fn reporter(name: &str, witness: &Witness, env: &str, extra: &str) -> String {
    format!(
        "[functions.{name}]\nruntime = \"python3\"\nhandler = \"reporter.handler\"\nsource = \"src\"\n\
         allowed_outbound_hosts = [\"127.0.0.1:{port}\"]\nenv = {{ NAME = \"{name}\", WITNESS = \"{port}\"{env} }}\n{extra}\n",
        port = witness.port
    )
}

/// An app folder with the reporter's code, `functions` tables and the echo guest.
fn app(name: &str, functions: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!("[app]\nname = \"{name}\"\n\n{}", functions.join("\n"));
    app_with_guest(dir.path(), &manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/reporter.py"), REPORTER).unwrap();
    dir
}

fn wasm_echo(name: &str, triggers: &str) -> String {
    format!("[functions.{name}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{triggers}]\n")
}

/// The records of `function`, once there are `count` with trigger `trigger`.
pub(crate) async fn records(server: &TestServer, function: &str, trigger: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = json(
            server.api(Method::GET, &format!("/v1/invocations?function={function}&limit=1000")).send().await.unwrap(),
        )
        .await;
        let found: Vec<Value> =
            page["invocations"].as_array().unwrap().iter().filter(|r| r["trigger"] == trigger).cloned().collect();
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "{count} {trigger} records of {function} never appeared: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_topic_gives_every_subscriber_its_own_copy_and_retries() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start_with(&["--async-retry-delay", "100ms"]);
    let witness = Witness::start().await;
    let topic = "{ topic = \"user.signed_up\" }";
    let dir = app(
        "fanout",
        &[
            reporter("mailer", &witness, "", &format!("triggers = [{topic}]")),
            reporter("ledger", &witness, ", FAIL_FIRST = \"1\"", &format!("triggers = [{topic}]")),
            wasm_echo("wasmsub", topic),
        ],
    );
    server.deploy(dir.path());

    let published = server
        .api(Method::POST, "/v1/topics/user.signed_up")
        .header("content-type", "application/json")
        .header("x-updraft-subject", "welcome")
        .body(r#"{"email":"ada@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::ACCEPTED);
    let published = json(published).await;
    assert_eq!(published["subscribers"], json!(["ledger", "mailer", "wasmsub"]));
    let message_id = published["message_id"].as_str().unwrap().to_owned();

    // A Lambda subscriber gets SNS's record, the message as its text.
    let mailer = witness.wait_for("mailer", "an SNS record", |reports| !reports.is_empty()).await;
    let record = &mailer[0]["event"]["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    let sns = &record["Sns"];
    assert_eq!(sns["Type"], "Notification");
    assert_eq!(sns["MessageId"], message_id.as_str());
    assert_eq!(sns["Subject"], "welcome");
    assert!(sns["TopicArn"].as_str().unwrap().ends_with(":user.signed_up"), "{sns}");
    assert_eq!(serde_json::from_str::<Value>(sns["Message"].as_str().unwrap()).unwrap()["email"], "ada@example.com");

    // A failing subscriber retries on its own: its first attempt fails, its second
    // succeeds, under one id, while the others ran once.
    let ledger = witness.wait_for("ledger", "a second attempt", |reports| reports.len() >= 2).await;
    assert_eq!(ledger[0]["id"], ledger[1]["id"]);
    assert_eq!((ledger[0]["attempt"].as_i64(), ledger[1]["attempt"].as_i64()), (Some(1), Some(2)));
    let statuses: BTreeSet<String> = records(&server, "ledger", "topic", 2)
        .await
        .iter()
        .map(|record| record["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["error".to_owned(), "success".to_owned()]));

    // A wasm subscriber gets a CloudEvent: the message as the body, ce-* headers.
    let log = server.wait_for_function_log("wasmsub", "ce-type: dev.updraft.topic.message").await;
    for expected in [
        "ce-source: updraft/topics/user.signed_up",
        &format!("ce-id: {message_id}"),
        "ce-subject: welcome",
        "ce-specversion: 1.0",
        r#"{"email":"ada@example.com"}"#,
    ] {
        assert!(log.contains(expected), "{expected:?} missing from {log}");
    }
    assert_eq!(witness.reports("mailer").len(), 1, "a subscriber that succeeded is not called again");

    // Nobody subscribes: refused, not dropped. The CLI publishes too.
    let nobody = server.api(Method::POST, "/v1/topics/nobody.listens").body("{}").send().await.unwrap();
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(nobody).await["error"]["code"], "topic_has_no_subscribers");
    let out = server.cli_ok(&["publish", "user.signed_up", "--data", r#"{"email":"grace@example.com"}"#]);
    assert!(out.contains("for 3 subscribers: ledger, mailer, wasmsub"), "{out}");
    witness
        .wait_for("mailer", "the CLI's message", |reports| {
            reports.iter().any(|r| r["event"]["Records"][0]["Sns"]["Message"].as_str().unwrap().contains("grace"))
        })
        .await;
    let topics = json(server.api(Method::GET, "/v1/topics").send().await.unwrap()).await;
    assert_eq!(topics["topics"][0]["topic"], "user.signed_up");
}

#[tokio::test]
async fn outcomes_go_to_destinations_and_the_dead_letter_topic_as_lambda_sends_them() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start_with(&["--async-retry-delay", "100ms"]);
    let witness = Witness::start().await;
    let dir = app(
        "jobs",
        &[
            reporter(
                "job",
                &witness,
                "",
                "retries = 1\non_success = { function = \"audit\" }\non_failure = { topic = \"jobs.failed\" }\n\
                 dead_letter_topic = \"jobs.dead\"",
            ),
            reporter("audit", &witness, "", ""),
            reporter("failwatch", &witness, "", "triggers = [{ topic = \"jobs.failed\" }]"),
            reporter("deadwatch", &witness, "", "triggers = [{ topic = \"jobs.dead\" }]"),
        ],
    );
    server.deploy(dir.path());

    let invoke_async = |event: Value| {
        let request = server.api(Method::POST, "/v1/functions/job/invoke-async").json(&event);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            json(response).await["id"].as_str().unwrap().to_owned()
        }
    };

    // Success: the invocation record goes to the on_success function.
    let ok = invoke_async(json!({"n": 1})).await;
    let audit = witness.wait_for("audit", "a success record", |reports| !reports.is_empty()).await;
    let record = &audit[0]["event"];
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["requestContext"]["requestId"], ok.as_str());
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert!(record["requestContext"]["functionArn"].as_str().unwrap().ends_with(":function:job:$LATEST"));
    assert_eq!(record["requestPayload"], json!({"n": 1}));
    assert_eq!(record["responseContext"]["statusCode"], 200);
    assert_eq!(record["responsePayload"], json!({"handled": {"n": 1}}));
    assert!(witness.reports("failwatch").is_empty());

    // Failure for good (2 attempts): the record goes to the on_failure topic, the
    // original event with its error to the dead-letter topic.
    let failed = invoke_async(json!({"fail": true})).await;
    let failwatch = witness.wait_for("failwatch", "a failure record", |reports| !reports.is_empty()).await;
    let message = failwatch[0]["event"]["Records"][0]["Sns"]["Message"].as_str().unwrap();
    let record: Value = serde_json::from_str(message).unwrap();
    assert_eq!(record["requestContext"]["requestId"], failed.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["requestPayload"], json!({"fail": true}));
    assert_eq!(record["responseContext"]["functionError"], "Handled");
    assert_eq!(record["responsePayload"]["errorType"], "RuntimeError");
    assert!(record["responsePayload"]["errorMessage"].as_str().unwrap().contains("attempt 2"), "{record}");

    let deadwatch = witness.wait_for("deadwatch", "the dead letter", |reports| !reports.is_empty()).await;
    let sns = &deadwatch[0]["event"]["Records"][0]["Sns"];
    assert_eq!(serde_json::from_str::<Value>(sns["Message"].as_str().unwrap()).unwrap(), json!({"fail": true}));
    assert_eq!(sns["MessageAttributes"]["RequestID"]["Value"], failed.as_str());
    assert!(sns["MessageAttributes"]["ErrorMessage"]["Value"].as_str().unwrap().contains("RuntimeError"), "{sns}");
    let job_attempts = witness.reports("job").iter().filter(|report| report["id"] == failed.as_str()).count();
    assert_eq!(job_attempts, 2, "retries = 1: two attempts");
    let kept = json(server.api(Method::GET, &format!("/v1/async/{failed}")).send().await.unwrap()).await;
    assert_eq!(kept["state"], "failed");
    assert_eq!(witness.reports("audit").len(), 1, "a failure does not go to on_success");
}

/// GitHub's `X-Hub-Signature-256` of `body` under `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn webhooks_answer_202_check_signatures_and_deliver_the_request_later() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let witness = Witness::start().await;
    let dir = app(
        "hooks",
        &[
            reporter(
                "ci",
                &witness,
                ", HOOK_SECRET = \"It's a Secret to Everybody\"",
                "triggers = [{ webhook = \"POST /hooks/{repo}\", secret_env = \"HOOK_SECRET\" }]",
            ),
            wasm_echo("open", "{ webhook = \"PUT /open/{item}\" }"),
        ],
    );
    server.deploy(dir.path());
    let push = br#"{"ref":"refs/heads/main"}"#;
    let hook = |signature: Option<String>, body: &'static [u8]| {
        let mut request = reqwest::Client::new()
            .post(server.url("/hooks/updraft?delivery=7"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send()
    };

    // Fails closed: no signature, a wrong one, a body changed after signing.
    for (signature, body) in [
        (None, &push[..]),
        (Some(signature("wrong secret", push)), &push[..]),
        (Some(signature("It's a Secret to Everybody", push)), &br#"{"ref":"refs/heads/evil"}"#[..]),
    ] {
        let refused = hook(signature, body).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json(refused).await["error"]["code"], "invalid_signature");
    }

    let accepted = hook(Some(signature("It's a Secret to Everybody", push)), push).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = json(accepted).await["id"].as_str().unwrap().to_owned();
    let ci = witness.wait_for("ci", "the webhook", |reports| !reports.is_empty()).await;
    assert_eq!(ci.len(), 1, "only the signed request was delivered: {ci:#?}");
    assert_eq!(ci[0]["id"], id.as_str());
    // The function gets the request as an API Gateway event, as an http trigger would.
    let event = &ci[0]["event"];
    assert_eq!(event["routeKey"], "POST /hooks/{repo}");
    assert_eq!(event["rawPath"], "/hooks/updraft");
    assert_eq!(event["rawQueryString"], "delivery=7");
    assert_eq!(event["pathParameters"]["repo"], "updraft");
    assert_eq!(event["headers"]["x-github-event"], "push");
    assert_eq!(event["body"], std::str::from_utf8(push).unwrap());
    records(&server, "ci", "webhook", 1).await;

    // A webhook without a secret takes anything; a wasm function gets the request
    // with CloudEvents headers. Bodies above the async limit are refused.
    let open = reqwest::Client::new().put(server.url("/open/box")).body("lid up").send().await.unwrap();
    assert_eq!(open.status(), StatusCode::ACCEPTED);
    let log = server.wait_for_function_log("open", "ce-type: dev.updraft.webhook.request").await;
    for expected in ["PUT /open/box", "x-updraft-route: /open/{item}", "x-updraft-param-item: box", "lid up"] {
        assert!(log.contains(expected), "{expected:?} missing from {log}");
    }
    let big =
        reqwest::Client::new().put(server.url("/open/box")).body(vec![b'x'; 1024 * 1024 + 1]).send().await.unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // The secret does not show in the function's description.
    let described = json(server.api(Method::GET, "/v1/functions/ci").send().await.unwrap()).await;
    assert_eq!(described["env"]["HOOK_SECRET"], "(secret)");
    assert_eq!(described["routes"][0]["kind"], "webhook");
}

#[tokio::test]
async fn each_schedule_tick_fires_once_across_a_kill_9_and_missed_ticks_follow_catch_up() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let mut server = TestServer::start();
    let witness = Witness::start().await;
    let dir = app(
        "ticks",
        &[
            // Default catch-up ("latest"): after an outage, only the last missed tick.
            reporter("latest", &witness, "", "triggers = [{ schedule = \"rate(1 second)\" }]"),
            // "all": every missed tick, each its own event.
            reporter("every", &witness, "", "triggers = [{ schedule = \"* * * * * *\", catch_up = \"all\" }]"),
        ],
    );
    server.deploy(dir.path());
    // EventBridge's scheduled event.
    let latest = witness.wait_for("latest", "three ticks", |reports| reports.len() >= 3).await;
    let event = &latest[0]["event"];
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["id"], latest[0]["id"]);
    witness.wait_for("every", "three ticks", |reports| reports.len() >= 3).await;

    server.kill();
    let killed_at = unix_seconds(std::time::SystemTime::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.restart();
    let restarted_at = unix_seconds(std::time::SystemTime::now());
    let after = |reports: &[Value]| reports.iter().filter(|r| tick_second(r) > restarted_at + 2).count() >= 2;
    witness.wait_for("latest", "ticks after the restart", after).await;
    witness.wait_for("every", "ticks after the restart", after).await;

    // Each tick is one event (one id), however often it was delivered.
    for name in ["latest", "every"] {
        let mut ids: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for report in witness.reports(name) {
            ids.entry(tick_second(&report)).or_default().insert(report["id"].as_str().unwrap().to_owned());
        }
        assert!(ids.values().all(|ids| ids.len() == 1), "{name}: a tick became two events: {ids:?}");
        let seconds: Vec<i64> = ids.keys().copied().collect();
        let outage: Vec<i64> = seconds.iter().copied().filter(|s| *s > killed_at && *s < restarted_at).collect();
        eprintln!("{name}: ticks {seconds:?}; killed at {killed_at}, restarted at {restarted_at}");
        if name == "every" {
            // Every second from the first tick to the last, outage included.
            let expected: Vec<i64> = (seconds[0]..=*seconds.last().unwrap()).collect();
            assert_eq!(seconds, expected, "catch_up = \"all\" fires every missed tick");
        } else {
            // "latest": the ticks missed during the outage are skipped but for the last
            // one due when the server came back, fired at once: the first tick after the
            // kill falls in the outage (a regular tick would come after the restart),
            // and seconds before it were skipped.
            assert!(outage.len() <= 1, "catch_up = \"latest\" fires one missed tick, not {outage:?}");
            let last_before = *seconds.iter().filter(|s| **s <= killed_at).max().unwrap();
            let first_after = *seconds.iter().find(|s| **s > killed_at).unwrap();
            assert!(first_after <= restarted_at, "no missed tick fired when the server came back: {seconds:?}");
            assert!(first_after - last_before >= 2, "no tick of the outage was skipped: {seconds:?}");
        }
    }
}

/// The second a schedule event was due, from EventBridge's `time`.
fn tick_second(report: &Value) -> i64 {
    let time = report["event"]["time"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp()
}

fn unix_seconds(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Reports each batch, and fails the messages whose body says "poison".
const QUEUE_WORKER: &str = r#"
import json, os, urllib.request

def handler(event, context):
    report = {"fn": os.environ["NAME"], "id": context.aws_request_id, "event": event}
    request = urllib.request.Request("http://127.0.0.1:%s/" % os.environ["WITNESS"], data=json.dumps(report).encode(),
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if "poison" in r["body"]]
    return {"batchItemFailures": failures}
"#;

#[tokio::test]
async fn queues_deliver_batches_retry_failed_items_and_dead_letter_them() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let witness = Witness::start().await;
    let worker = |name: &str, queue: &str| {
        reporter(name, &witness, "", &format!("triggers = [{queue}]")).replace("reporter.handler", "worker.handler")
    };
    let dir = app(
        "work",
        &[
            worker(
                "worker",
                "{ queue = \"jobs\", batch_size = 5, batch_window = \"2s\", visibility_timeout = \"1s\", max_receives = 2 }",
            ),
            reporter("morgue", &witness, "", "triggers = [{ queue = \"jobs-dlq\" }]"),
        ],
    );
    std::fs::write(dir.path().join("src/worker.py"), QUEUE_WORKER).unwrap();
    server.deploy(dir.path());

    // Five messages within the batch window arrive as one SQS batch.
    let mut sent = Vec::new();
    for body in ["job 1", "job 2", "poison 3", "job 4"] {
        let response = server.api(Method::POST, "/v1/queues/jobs").body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        sent.push(json(response).await["message_id"].as_str().unwrap().to_owned());
    }
    let out = server.cli_ok(&["send", "jobs", "--data", "job 5", "--content-type", "text/plain"]);
    assert!(out.starts_with("sent "), "{out}");
    let first = witness.wait_for("worker", "a batch", |reports| !reports.is_empty()).await;
    let batch = first[0]["event"]["Records"].as_array().unwrap();
    assert_eq!(batch.len(), 5, "{batch:#?}");
    assert_eq!(batch[0]["eventSource"], "aws:sqs");
    assert!(batch[0]["eventSourceARN"].as_str().unwrap().ends_with(":jobs"));
    assert_eq!(batch[0]["messageId"], sent[0].as_str());
    assert_eq!(batch[0]["body"], "job 1");
    assert_eq!(batch[0]["attributes"]["ApproximateReceiveCount"], "1");

    // The poison message comes back after the visibility timeout, fails again, and
    // after its second receive goes to the dead-letter queue, where morgue gets it.
    let morgue = witness.wait_for("morgue", "the dead letter", |reports| !reports.is_empty()).await;
    let dead = &morgue[0]["event"]["Records"][0];
    assert_eq!((dead["messageId"].as_str(), dead["body"].as_str()), (Some(sent[2].as_str()), Some("poison 3")));
    assert!(dead["eventSourceARN"].as_str().unwrap().ends_with(":jobs-dlq"));
    let bodies: Vec<String> = witness
        .reports("worker")
        .iter()
        .flat_map(|report| report["event"]["Records"].as_array().unwrap().clone())
        .map(|record| record["body"].as_str().unwrap().to_owned())
        .collect();
    let count = |body: &str| bodies.iter().filter(|b| *b == body).count();
    assert_eq!(count("poison 3"), 2, "delivered max_receives times: {bodies:?}");
    for good in ["job 1", "job 2", "job 4", "job 5"] {
        assert_eq!(count(good), 1, "{good} was handled once: {bodies:?}");
    }
    records(&server, "worker", "queue", 2).await;

    // Everything handled: both queues are empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = json(server.api(Method::GET, "/v1/queues/jobs").send().await.unwrap()).await;
        let dlq = json(server.api(Method::GET, "/v1/queues/jobs-dlq").send().await.unwrap()).await;
        if jobs["visible"] == 0 && jobs["in_flight"] == 0 && dlq["visible"] == 0 && dlq["in_flight"] == 0 {
            assert_eq!(jobs["consumers"], json!(["worker"]));
            break;
        }
        assert!(Instant::now() < deadline, "{jobs} {dlq}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dead_letter_queue_is_redriven_to_the_queue_it_serves() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let witness = Witness::start().await;
    let trigger = "triggers = [{ queue = \"jobs\", visibility_timeout = \"1s\", max_receives = 1 }]";
    let dir = app("work", &[reporter("worker", &witness, ", FAIL_FIRST = \"99\"", trigger)]);
    server.deploy(dir.path());
    for body in ["job 1", "job 2"] {
        let response = server.api(Method::POST, "/v1/queues/jobs").body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let deliveries = |witness: &Witness| -> Vec<String> {
        let mut bodies: Vec<String> = witness
            .reports("worker")
            .iter()
            .flat_map(|report| report["event"]["Records"].as_array().unwrap().clone())
            .map(|record| record["body"].as_str().unwrap().to_owned())
            .collect();
        bodies.sort_unstable();
        bodies
    };
    let parked = |count: i64| {
        let server = &server;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let dlq = json(server.api(Method::GET, "/v1/queues/jobs-dlq").send().await.unwrap()).await;
                if dlq["visible"] == count {
                    return;
                }
                assert!(Instant::now() < deadline, "{count} never parked in jobs-dlq: {dlq}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Delivered once each, failed, dead-lettered.
    parked(2).await;
    assert_eq!(deliveries(&witness), ["job 1", "job 2"]);

    // Redriven: back in jobs, delivered again, and (failing again) parked again.
    let out = server.cli_ok(&["queue", "redrive", "jobs-dlq"]);
    assert_eq!(out.trim(), "moved 2 messages from jobs-dlq to jobs");
    witness
        .wait_for("worker", "the redriven messages", |reports| reports.len() >= 2 && deliveries(&witness).len() == 4)
        .await;
    assert_eq!(deliveries(&witness), ["job 1", "job 1", "job 2", "job 2"]);
    parked(2).await;

    // A queue no trigger dead-letters into needs a destination; with one, it moves.
    let stray = server.cli(&["queue", "redrive", "stray"]);
    assert!(!stray.status.success());
    assert!(
        String::from_utf8_lossy(&stray.stderr).contains("no queue trigger sends its dead letters to stray"),
        "{stray:?}"
    );
    let itself = server.api(Method::POST, "/v1/queues/jobs-dlq/redrive?to=jobs-dlq").send().await.unwrap();
    assert_eq!(itself.status(), StatusCode::BAD_REQUEST);
    let moved = json(server.api(Method::POST, "/v1/queues/jobs-dlq/redrive?to=later").send().await.unwrap()).await;
    assert_eq!(moved, json!({ "from": "jobs-dlq", "to": "later", "moved": 2 }));
    let later = json(server.api(Method::GET, "/v1/queues/later").send().await.unwrap()).await;
    assert_eq!(later["visible"], 2, "{later}");
}

/// A loopback port nothing listens on now (the server binds it next).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs Python's smtplib against `port`: `script` sees `smtplib`, `port` and the
/// `email` package, and prints a JSON answer.
fn smtp_client(port: u16, script: &str) -> Value {
    let program = format!("import json, smtplib, sys\nfrom email.message import EmailMessage\nport = {port}\n{script}");
    let output = std::process::Command::new("python3").args(["-c", &program]).output().expect("python3");
    assert!(output.status.success(), "smtplib failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

const SEND_SIGNUP: &str = r#"
message = EmailMessage()
message["From"] = "Ada Lovelace <ada@example.com>"
message["To"] = "signup@updraft.test"
message["Subject"] = "Sign me up"
message.set_content("Hello, I would like an account.")
message.add_alternative("<p>Hello, I would like an <b>account</b>.</p>", subtype="html")
message.add_attachment(b"%PDF-1.4 resume", maintype="application", subtype="pdf", filename="resume.pdf")
result = {}
with smtplib.SMTP("127.0.0.1", port) as smtp:
    result["refused"] = smtp.send_message(message, to_addrs=["signup@updraft.test", "hello@wasm.test"])
    try:
        smtp.sendmail("ada@example.com", ["nobody@updraft.test"], "Subject: lost\r\n\r\nhi")
    except smtplib.SMTPRecipientsRefused as error:
        result["unknown"] = error.recipients["nobody@updraft.test"][0]
    try:
        smtp.sendmail("ada@example.com", ["signup@updraft.test"], "Subject: big\r\n\r\n" + "x" * 70000)
    except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as error:
        result["oversize"] = error.smtp_code
print(json.dumps(result))
"#;

#[tokio::test]
async fn mail_for_claimed_addresses_becomes_an_event_and_the_rest_is_refused() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let smtp = free_port();
    let server =
        TestServer::start_with(&["--smtp-listen", &format!("127.0.0.1:{smtp}"), "--smtp-max-message-size", "64KiB"]);
    let witness = Witness::start().await;
    let dir = app(
        "mail",
        &[
            reporter("inbox", &witness, "", "triggers = [{ email = \"signup@updraft.test\" }]"),
            wasm_echo("wasmmail", "{ email = \"*@wasm.test\" }"),
        ],
    );
    server.deploy(dir.path());

    let result = tokio::task::spawn_blocking(move || smtp_client(smtp, SEND_SIGNUP)).await.unwrap();
    assert_eq!(result["refused"], json!({}), "both recipients accepted: {result}");
    assert_eq!(result["unknown"], 550, "{result}");
    assert_eq!(result["oversize"], 552, "{result}");

    let inbox = witness.wait_for("inbox", "the mail", |reports| !reports.is_empty()).await;
    assert_eq!(inbox.len(), 1, "only the accepted message: {inbox:#?}");
    let mail = &inbox[0]["event"];
    assert_eq!(mail["subject"], "Sign me up");
    assert_eq!(mail["from"][0], json!({"name": "Ada Lovelace", "address": "ada@example.com"}));
    assert_eq!(mail["envelope"]["to"], json!(["signup@updraft.test"]));
    assert!(mail["text"].as_str().unwrap().contains("I would like an account"), "{mail}");
    assert!(mail["html"].as_str().unwrap().contains("<b>account</b>"), "{mail}");
    assert_eq!(mail["attachments"], json!([{"filename": "resume.pdf", "contentType": "application/pdf", "size": 15}]));
    assert_eq!(mail["headers"]["Subject"], json!(["Sign me up"]));
    records(&server, "inbox", "email", 1).await;

    // A wasm function gets it as a CloudEvent, for its own recipient only.
    let log = server.wait_for_function_log("wasmmail", "ce-type: dev.updraft.email.received").await;
    assert!(log.contains(r#""to":["hello@wasm.test"]"#), "{log}");
}

#[tokio::test]
async fn mail_acknowledged_with_250_survives_a_kill_9() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let smtp = free_port();
    let mut server = TestServer::start_with(&["--smtp-listen", &format!("127.0.0.1:{smtp}")]);
    let witness = Witness::start().await;
    let dir = app(
        "mailkill",
        &[reporter("inbox", &witness, "", "triggers = [{ email = \"*@updraft.test\" }]\nconcurrency = 4")],
    );
    server.deploy(dir.path());

    // 300 messages over one connection, each acknowledged with 250; then kill -9.
    let sent = tokio::task::spawn_blocking(move || {
        smtp_client(
            smtp,
            r#"
accepted = []
with smtplib.SMTP("127.0.0.1", port) as smtp:
    for n in range(300):
        smtp.sendmail("ada@example.com", ["n%d@updraft.test" % n], "Subject: mail %d\r\n\r\nbody %d" % (n, n))
        accepted.append("mail %d" % n)
print(json.dumps(accepted))
"#,
        )
    })
    .await
    .unwrap();
    let accepted: Vec<String> = sent.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    assert_eq!(accepted.len(), 300);
    server.kill();
    let before = witness.reports("inbox").len();
    server.restart();

    let subjects = |reports: &[Value]| -> Vec<String> {
        reports.iter().map(|report| report["event"]["subject"].as_str().unwrap_or_default().to_owned()).collect()
    };
    let all = witness
        .wait_for("inbox", "every acknowledged message", |reports| {
            let seen = subjects(reports);
            accepted.iter().all(|subject| seen.contains(subject))
        })
        .await;
    let duplicates = all.len() - accepted.len();
    eprintln!(
        "SMTP kill -9: {} messages acknowledged, {before} delivered before the kill, all delivered after the restart, {duplicates} delivered twice",
        accepted.len()
    );
}

const VALIDATE: &str = r#"
def handler(event, context):
    return {"ok": event["amount"] > 0}
"#;

const CHARGE: &str = r#"
attempts = {}

class Busy(Exception):
    pass

def handler(event, context):
    n = attempts.get(event["order"], 0) + 1
    attempts[event["order"]] = n
    # Orders named "flaky..." fail twice (on one warm instance: the test runs them one at a time).
    if event["order"] == "doomed" or (event["order"].startswith("flaky") and n <= 2):
        raise Busy("attempt %d of %s" % (n, event["order"]))
    return {"charged": event["amount"]}
"#;

const FLOW: &str = r#"
[workflows.checkout]
definition = '''
{
  "Comment": "validate, wait, charge with retries (a refund when it keeps failing), notify in parallel",
  "StartAt": "Validate",
  "States": {
    "Validate": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:validate",
                 "ResultPath": "$.validation", "Next": "Valid?"},
    "Valid?": {"Type": "Choice",
               "Choices": [{"Variable": "$.validation.ok", "BooleanEquals": true, "Next": "Pause"}],
               "Default": "Rejected"},
    "Pause": {"Type": "Wait", "SecondsPath": "$.pause", "Next": "Charge"},
    "Charge": {"Type": "Task", "Resource": "charge",
               "Parameters": {"order.$": "$.order", "amount.$": "$.amount"},
               "ResultPath": "$.receipt",
               "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 0.2, "MaxAttempts": 3, "BackoffRate": 1.0}],
               "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Refund"}],
               "Next": "Fanout"},
    "Fanout": {"Type": "Parallel", "ResultPath": "$.parallel", "Next": "Done",
               "Branches": [
                 {"StartAt": "Notify", "States": {"Notify": {"Type": "Task", "Resource": "notify", "End": true}}},
                 {"StartAt": "Note", "States": {"Note": {"Type": "Pass", "Result": "noted", "End": true}}}
               ]},
    "Refund": {"Type": "Task", "Resource": "refund", "Next": "Failed"},
    "Failed": {"Type": "Fail", "Error": "PaymentFailed", "Cause": "the charge kept failing"},
    "Rejected": {"Type": "Fail", "Error": "Invalid", "Cause": "the amount is not positive"},
    "Done": {"Type": "Succeed", "OutputPath": "$.receipt"}
  }
}
'''
"#;

/// The checkout workflow's app: validate, charge, notify and refund functions.
fn checkout_app(witness: &Witness) -> tempfile::TempDir {
    let python = |name: &str, module: &str| {
        format!("[functions.{name}]\nruntime = \"python3\"\nhandler = \"{module}.handler\"\nsource = \"src\"\n")
    };
    let dir = app(
        "shop",
        &[
            python("validate", "validate"),
            python("charge", "charge"),
            reporter("notify", witness, "", ""),
            reporter("refund", witness, "", ""),
            FLOW.to_owned(),
        ],
    );
    std::fs::write(dir.path().join("src/validate.py"), VALIDATE).unwrap();
    std::fs::write(dir.path().join("src/charge.py"), CHARGE).unwrap();
    dir
}

/// The execution once it is no longer running.
pub(crate) async fn finished(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let execution = json(server.api(Method::GET, &format!("/v1/executions/{id}")).send().await.unwrap()).await;
        if execution["status"] != "running" {
            return execution;
        }
        assert!(Instant::now() < deadline, "execution {id} is still running: {execution:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn history_kinds(execution: &Value) -> Vec<(String, String)> {
    execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test]
async fn a_step_functions_workflow_retries_catches_and_branches() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let witness = Witness::start().await;
    let dir = checkout_app(&witness);
    server.deploy(dir.path());

    // Charge fails twice with Busy and is retried; the parallel branch notifies once.
    let id =
        server.cli_ok(&["workflow", "start", "checkout", "--data", r#"{"order": "flaky-1", "amount": 5, "pause": 0}"#]);
    let id = id.trim();
    let execution = finished(&server, id).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    assert_eq!(execution["output"], json!({"charged": 5}));
    let kinds = history_kinds(&execution);
    let entered: Vec<&str> = kinds.iter().filter(|(k, _)| k == "StateEntered").map(|(_, s)| s.as_str()).collect();
    assert_eq!(entered, ["Valid?", "Pause", "Charge", "Fanout", "Done"]);
    assert_eq!(kinds.iter().filter(|(k, s)| k == "TaskRetried" && s == "Charge").count(), 2, "{kinds:?}");
    assert_eq!(kinds.first().unwrap().0, "ExecutionStarted");
    assert_eq!(kinds.last().unwrap().0, "ExecutionSucceeded");
    let notified = witness.wait_for("notify", "the notification", |reports| !reports.is_empty()).await;
    assert_eq!(notified[0]["event"]["receipt"], json!({"charged": 5}));
    let described = server.cli_ok(&["workflow", "describe", id]);
    assert!(described.contains("status:    succeeded") && described.contains("TaskRetried"), "{described}");

    // Retries run out: the catcher's path refunds with the error, then the Fail state.
    let doomed = json(
        server
            .api(Method::POST, "/v1/workflows/checkout/executions")
            .json(&json!({"order": "doomed", "amount": 5, "pause": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let execution = finished(&server, doomed["execution_id"].as_str().unwrap()).await;
    assert_eq!((execution["status"].as_str(), execution["error"].as_str()), (Some("failed"), Some("PaymentFailed")));
    let refund = witness.wait_for("refund", "the refund", |reports| !reports.is_empty()).await;
    assert_eq!(refund[0]["event"]["error"]["Error"], "Busy");
    assert_eq!(history_kinds(&execution).iter().filter(|(k, _)| k == "TaskRetried").count(), 3);

    // A Choice with no match goes to Default.
    let invalid = json(
        server
            .api(Method::POST, "/v1/workflows/checkout/executions")
            .json(&json!({"order": "o3", "amount": -1, "pause": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let execution = finished(&server, invalid["execution_id"].as_str().unwrap()).await;
    assert_eq!(execution["error"], "Invalid");

    let missing = server.api(Method::POST, "/v1/workflows/nope/executions").body("{}").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn running_workflows_resume_after_a_kill_9() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let mut server = TestServer::start();
    let witness = Witness::start().await;
    let dir = checkout_app(&witness);
    server.deploy(dir.path());

    // 20 executions, each waiting 2 s in Pause when the server is killed.
    let mut ids = Vec::new();
    for n in 0..20 {
        let started = json(
            server
                .api(Method::POST, "/v1/workflows/checkout/executions")
                .json(&json!({"order": format!("k{n}"), "amount": n + 1, "pause": 2}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        ids.push(started["execution_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let execution = json(server.api(Method::GET, &format!("/v1/executions/{id}")).send().await.unwrap()).await;
            if history_kinds(&execution).iter().any(|(kind, _)| kind == "WaitStarted") {
                break;
            }
            assert!(Instant::now() < deadline, "{execution:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    server.kill();
    server.restart();

    for id in &ids {
        let execution = finished(&server, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        let kinds = history_kinds(&execution);
        assert_eq!(kinds.iter().filter(|(kind, _)| kind == "ExecutionStarted").count(), 1);
        assert_eq!(kinds.iter().filter(|(kind, _)| kind == "WaitStarted").count(), 1, "the wait resumed: {kinds:?}");
    }
    let notified = witness.reports("notify");
    for n in 0..20 {
        let count = notified.iter().filter(|r| r["event"]["order"] == format!("k{n}")).count();
        assert!(count >= 1, "execution k{n} never notified");
    }
    eprintln!(
        "workflow kill -9: 20 executions waiting, all resumed and succeeded, {} notifications for 20 executions",
        notified.len()
    );
}

#[tokio::test]
async fn the_events_example_does_what_the_readme_shows() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    server.deploy(&crate::harness::repo_root().join("examples/events"));
    // Beside the sign-up chain, as `updraft up examples` deploys them: the demo's topic
    // reaches this example's subscriber only.
    server.deploy(&crate::harness::repo_root().join("examples/signup"));

    let out = server.cli_ok(&["publish", "user.joined", "--data", r#"{"email": "ada@example.com"}"#]);
    assert!(out.contains("for 1 subscriber: welcome"), "{out}");
    server.wait_for_function_log("welcome", "sending the welcome email to ada@example.com").await;

    server.cli_ok(&["send", "jobs", "--data", r#"{"image": "cat.png"}"#]);
    server.wait_for_function_log("resize", "resizing cat.png").await;

    let hook = reqwest::Client::new().post(server.url("/hooks/ci")).body(r#"{"ref": "main"}"#).send().await.unwrap();
    assert_eq!(hook.status(), StatusCode::ACCEPTED);
    server.wait_for_function_log("ci", r#"CI hook: {"ref": "main"}"#).await;

    let id = server.cli_ok(&["workflow", "start", "checkout", "--data", r#"{"order": "o1", "amount": 12}"#]);
    let execution = finished(&server, id.trim()).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    server.wait_for_function_log("receipt", "receipt for order o1: 12").await;
    let refused = server.cli(&["workflow", "start", "checkout", "--data", r#"{"order": "o2", "amount": 0}"#]);
    assert!(refused.status.success());
    let id = String::from_utf8_lossy(&refused.stdout).trim().to_owned();
    assert_eq!(finished(&server, &id).await["error"], "PaymentFailed");

    let described = server.cli_ok(&["describe", "nightly"]);
    assert!(described.contains("schedule:    0 3 * * * (UTC, catch-up latest)"), "{described}");
}
