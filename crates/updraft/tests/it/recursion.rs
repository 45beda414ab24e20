//! Recursive loop detection: a chain of invocations that keeps coming back to one
//! function is stopped after 16 of its invocations, as Lambda stops it, and reported
//! in records, metrics and logs; a function may opt out.

use std::process::Command;

use reqwest::Method;
use serde_json::Value;
use updraft_model::{FunctionName, Lineage, MAX_RECURSION};

use crate::harness::TestServer;
use crate::lambda::access_key;

/// Handlers that publish to a topic with the invocation's trace header, as the AWS
/// SDKs pass `_X_AMZN_TRACE_ID` on inside a Lambda function: `ping` always (a loop by
/// mistake), `rally` until its count reaches 20 (a loop on purpose).
const LOOPS: &str = r#"
import json, os, urllib.request

def publish(topic, document):
    headers = {"Authorization": "Bearer " + os.environ["UPDRAFT_TOKEN"], "Content-Type": "application/json",
               "X-Amzn-Trace-Id": os.environ["_X_AMZN_TRACE_ID"]}
    request = urllib.request.Request(os.environ["UPDRAFT_API_URL"] + "/v1/topics/" + topic,
                                     data=json.dumps(document).encode(), method="POST", headers=headers)
    urllib.request.urlopen(request, timeout=10).read()

def ping(event, context):
    publish("ping", {})

def rally(event, context):
    n = json.loads(event["Records"][0]["Sns"]["Message"])["n"]
    if n < 20:
        publish("rally", {"n": n + 1})
"#;

const MANIFEST: &str = r#"[app]
name = "loops"

[functions.ping]
runtime = "python3"
handler = "app.ping"
source = "src"
retries = 0
publishes = ["ping"]
triggers = [{ topic = "ping" }]

[functions.rally]
runtime = "python3"
handler = "app.rally"
source = "src"
recursive_loop = "allow"
publishes = ["rally"]
triggers = [{ topic = "rally" }]
"#;

async fn publish(server: &TestServer, topic: &str, body: &str) {
    let published =
        server.api(Method::POST, &format!("/v1/topics/{topic}")).body(body.to_owned()).send().await.unwrap();
    assert!(published.status().is_success(), "{}", published.text().await.unwrap());
}

#[tokio::test]
async fn a_loop_through_a_topic_is_stopped_after_sixteen_invocations_unless_the_function_allows_it() {
    let server = TestServer::start();
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("updraft.toml"), MANIFEST).unwrap();
    std::fs::create_dir(app.path().join("src")).unwrap();
    std::fs::write(app.path().join("src/app.py"), LOOPS).unwrap();
    server.deploy(app.path());

    // One message starts the loop: ping runs 16 times, the 17th invocation is stopped.
    publish(&server, "ping", "{}").await;
    let records = crate::events::records(&server, "ping", "topic", usize::from(MAX_RECURSION) + 1).await;
    let stopped: Vec<&Value> =
        records.iter().filter(|record| record["error_type"] == "RecursiveInvocationException").collect();
    assert_eq!(stopped.len(), 1, "{records:?}");
    // It failed for good at once (no retries), saying why and what to change.
    let event = crate::async_invoke::failed(&server, stopped[0]["id"].as_str().unwrap()).await;
    let error = event["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("recursive loop") && error.contains("recursive_loop = \"allow\""), "{event}");
    // Nothing ran after it: 16 that succeeded, one stopped, in one trace.
    let records = crate::events::records(&server, "ping", "topic", 17).await;
    assert_eq!(records.len(), 17, "{records:?}");
    assert_eq!(records.iter().filter(|record| record["status"] == "success").count(), 16, "{records:?}");
    assert!(records.iter().all(|record| record["trace_id"] == records[0]["trace_id"]), "{records:?}");
    let dropped = "updraft_recursive_invocations_dropped_total{function=\"ping\"}";
    assert_eq!(crate::execution::metric(&server, dropped).await, Some(1.0));
    // Its log says so too (log lines are written a moment after the record).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let logs = server.cli_ok(&["logs", "ping"]);
        if logs.contains("Updraft stopped this invocation: recursive loop detected") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // rally opted out (describe says so): its loop runs its 20 rounds to the end.
    assert!(server.cli_ok(&["describe", "rally"]).contains("loops:       allowed"));
    assert!(!server.cli_ok(&["describe", "ping"]).contains("loops:"));
    publish(&server, "rally", "{\"n\": 1}").await;
    let records = crate::events::records(&server, "rally", "topic", 20).await;
    assert!(records.iter().all(|record| record["status"] == "success"), "{records:?}");
    let dropped = "updraft_recursive_invocations_dropped_total{function=\"rally\"}";
    assert_eq!(crate::execution::metric(&server, dropped).await, None);
}

/// boto3 invoking `function` from "inside" a Lambda function whose trace header holds
/// `lineage`: botocore copies `_X_AMZN_TRACE_ID` onto its requests by itself.
fn invoke_from_a_chain(server: &TestServer, function: &str, lineage: &Lineage) -> Value {
    let key = access_key(server);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/boto3_client.py");
    let trace = format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage={lineage}");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.url(""))
        .args(["status", function])
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env("AWS_LAMBDA_FUNCTION_NAME", "caller")
        .env("_X_AMZN_TRACE_ID", trace)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_aws_sdk_carries_the_chain_to_invoke_which_refuses_a_loop_and_the_setting_is_lambdas() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "def handler(event, context):\n    return {}\n";
    let app = crate::async_invoke::python_app("echo", "", code);
    server.deploy(app.path());
    let echo: FunctionName = "echo".parse().unwrap();
    let mut lineage = Lineage::default();
    for _ in 1..MAX_RECURSION {
        lineage = lineage.with(&echo);
    }
    assert_eq!(invoke_from_a_chain(&server, "echo", &lineage)["status"], 200);
    lineage = lineage.with(&echo);
    assert_eq!(invoke_from_a_chain(&server, "echo", &lineage)["error"], "RecursiveInvocationException");
    // Another function's count is its own.
    let other: FunctionName = "other".parse().unwrap();
    let others = (0..MAX_RECURSION).fold(Lineage::default(), |lineage, _| lineage.with(&other));
    assert_eq!(invoke_from_a_chain(&server, "echo", &others)["status"], 200);

    // Lambda's PutFunctionRecursionConfig turns the stop off for the function.
    let config = crate::lambda::boto3(&server, &key, &["recursion", "echo", "Allow"]);
    assert_eq!(config["before"], "Terminate", "{config}");
    assert_eq!(config["after"], "Allow", "{config}");
    assert_eq!(invoke_from_a_chain(&server, "echo", &lineage)["status"], 200);
}
