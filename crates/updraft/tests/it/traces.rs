//! Traces: one trace across hops, kept in the store and exported over OTLP to a real
//! receiver that decodes the protobuf as a collector does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestServer, app_with_guest};
use crate::json;

/// An OTLP/HTTP receiver: keeps every span it is sent, with its resource's attributes.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Received {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    fn trace_id(&self) -> String {
        Self::hex(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        Self::hex(&self.span.span_id)
    }
    fn parent(&self) -> String {
        Self::hex(&self.span.parent_span_id)
    }
    fn attribute(&self, key: &str) -> Option<any_value::Value> {
        let attribute = self.span.attributes.iter().find(|attribute| attribute.key == key)?;
        attribute.value.as_ref()?.value.clone()
    }
    fn text(&self, key: &str) -> Option<String> {
        match self.attribute(key)? {
            any_value::Value::StringValue(text) => Some(text),
            _ => None,
        }
    }
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
                    for resource_spans in request.resource_spans {
                        let service = resource_spans
                            .resource
                            .iter()
                            .flat_map(|resource| resource.attributes.iter())
                            .find(|attribute| attribute.key == "service.name")
                            .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                                any_value::Value::StringValue(name) => Some(name.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for scope_spans in resource_spans.scope_spans {
                            for span in scope_spans.spans {
                                kept.lock().unwrap().push(Received { service: service.clone(), span });
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, spans }
    }

    /// The spans of `trace_id`, once `predicate` holds for them.
    async fn wait_for(&self, trace_id: &str, what: &str, predicate: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let spans: Vec<Received> =
                self.spans.lock().unwrap().iter().filter(|span| span.trace_id() == trace_id).cloned().collect();
            if predicate(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "the collector never got {what}; it got {spans:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `worker` runs asynchronously and starts the `flow` workflow with its token, passing
/// its trace on as the AWS SDKs do from inside Lambda (`X-Amzn-Trace-Id`); `flow`'s one
/// step runs `step`.
const APP: &str = r#"
[app]
name = "traced"

[functions.worker]
runtime = "python3"
handler = "chain.worker"
source = "src"
starts = ["flow"]

[functions.step]
runtime = "python3"
handler = "chain.step"
source = "src"

[workflows.flow]
definition = '''
{"StartAt": "Step", "States": {"Step": {"Type": "Task", "Resource": "step", "End": true}}}
'''
"#;

const CHAIN: &str = r#"
import json, os, urllib.request

def worker(event, context):
    request = urllib.request.Request(
        os.environ["UPDRAFT_API_URL"] + "/v1/workflows/flow/executions",
        data=json.dumps(event).encode(),
        method="POST",
        headers={
            "Authorization": "Bearer " + os.environ["UPDRAFT_TOKEN"],
            "Content-Type": "application/json",
            "X-Amzn-Trace-Id": os.environ["_X_AMZN_TRACE_ID"],
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)

def step(event, context):
    return {"stepped": event}
"#;

/// Trace `trace_id` as the server keeps it, once `invocations` of it are recorded.
async fn stored_trace(server: &TestServer, trace_id: &str, invocations: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = server.api(Method::GET, &format!("/v1/traces/{trace_id}")).send().await.unwrap();
        if response.status() == 200 {
            let view = json(response).await;
            if view["invocations"].as_u64() >= Some(invocations) {
                return view;
            }
        }
        assert!(Instant::now() < deadline, "trace {trace_id} never had {invocations} invocations recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_trace_runs_from_an_http_request_through_invoke_async_to_a_workflow_step() {
    let collector = Collector::start().await;
    let server = TestServer::start_with(&["--otlp-endpoint", &collector.url]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("updraft.toml"), APP).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/chain.py"), CHAIN).unwrap();
    server.deploy(dir.path());

    // The caller's trace: its span is the parent of everything Updraft does for it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let accepted = server
        .api(Method::POST, "/v1/functions/worker/invoke-async")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(r#"{"order": 7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    let spans = collector
        .wait_for(trace_id, "the worker's and the step's runs", |spans| {
            spans.iter().filter(|span| span.span.name == "run").count() == 2
        })
        .await;
    let named = |name: &str| {
        spans.iter().find(|span| span.span.name == name).unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };
    let worker = named("worker");
    let step = named("step");
    assert_eq!(worker.service, "updraft");
    // The chain: caller → worker (async, after waiting in the queue) → step (workflow).
    assert_eq!(worker.parent(), caller_span);
    assert_eq!(step.parent(), worker.span_id(), "the step's span is a child of the worker that started it");
    assert_eq!(worker.span.kind, SpanKind::Server as i32);
    assert_eq!(worker.text("updraft.trigger").as_deref(), Some("async"));
    assert_eq!(step.text("updraft.trigger").as_deref(), Some("workflow"));
    assert_eq!(worker.text("faas.trigger").as_deref(), Some("other"));
    assert_eq!(worker.text("faas.name").as_deref(), Some("worker"));
    assert_eq!(worker.text("faas.version").as_deref(), Some("1"));
    assert!(worker.text("faas.invocation_id").is_some_and(|id| !id.is_empty()));
    assert!(matches!(worker.attribute("faas.coldstart"), Some(any_value::Value::BoolValue(_))));
    assert!(matches!(worker.attribute("faas.max_memory"), Some(any_value::Value::IntValue(bytes)) if bytes > 0));
    // Each invocation's parts are its children: its wait in the queue, its start, its run.
    for invocation in [worker, step] {
        let parts: Vec<&str> = spans
            .iter()
            .filter(|span| span.parent() == invocation.span_id())
            .filter(|span| span.span.kind == SpanKind::Internal as i32)
            .map(|span| span.span.name.as_str())
            .collect();
        assert!(parts.contains(&"run"), "{} has parts {parts:?}", invocation.span.name);
        let run = spans.iter().find(|span| span.parent() == invocation.span_id() && span.span.name == "run").unwrap();
        assert!(run.span.start_time_unix_nano >= invocation.span.start_time_unix_nano);
        assert!(run.span.end_time_unix_nano <= invocation.span.end_time_unix_nano);
    }
    assert!(spans.iter().any(|span| span.parent() == worker.span_id() && span.span.name == "queued"));

    // The same trace, read back from the server's own records.
    let view = json(server.api(Method::GET, &format!("/v1/traces/{trace_id}")).send().await.unwrap()).await;
    assert_eq!(view["invocations"], 2, "{view:#}");
    assert_eq!(view["failed"], 0);
    assert_eq!(view["root"], "worker");
    let local: Vec<(String, String)> = view["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| (span["name"].as_str().unwrap().to_owned(), span["span_id"].as_str().unwrap().to_owned()))
        .collect();
    for exported in &spans {
        assert!(
            local.contains(&(exported.span.name.clone(), exported.span_id())),
            "{} {} was exported but is not in the stored trace {view:#}",
            exported.span.name,
            exported.span_id()
        );
    }
    let listed = json(server.api(Method::GET, "/v1/traces?function=step").send().await.unwrap()).await;
    assert_eq!(listed["traces"][0]["trace_id"], trace_id, "{listed:#}");
    let waterfall = server.cli_ok(&["traces", trace_id]);
    assert!(
        waterfall.contains("worker") && waterfall.contains("  step") && waterfall.contains("queued"),
        "{waterfall}"
    );

    let metrics = server.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|line| line.starts_with("updraft_trace_spans_exported_total ")), "{metrics}");
}

#[tokio::test]
async fn a_wasm_function_sees_its_own_span_and_passes_the_trace_on() {
    let server = TestServer::start();
    let witness = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let witness_port = witness.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let kept = kept.clone();
            async move {
                let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                kept.lock().unwrap().push(traceparent);
                "seen"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(witness, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[app]\nname = \"tracing\"\n\n[functions.caller]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
         triggers = [{{ http = \"GET /caller/{{action}}\" }}]\nallowed_outbound_hosts = [\"127.0.0.1:{witness_port}\"]\n"
    );
    app_with_guest(dir.path(), &manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    server.deploy(dir.path());

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let response = reqwest::Client::new()
        .get(server.url(&format!("/caller/fetch?url=http://127.0.0.1:{witness_port}/")))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    assert!(body.contains("fetched 200: seen"), "{body}");

    // The outbound request carries the trace with the invocation's own span as parent.
    let outbound = seen.lock().unwrap().clone();
    let view = stored_trace(&server, trace_id, 1).await;
    let invocation = view["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["attributes"]["faas.invocation_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no span for {request_id} in {view:#}"))
        .clone();
    assert_eq!(invocation["parent_span_id"], "b7ad6b7169203331");
    assert_eq!(invocation["kind"], "server");
    assert_eq!(invocation["attributes"]["faas.trigger"], "http");
    let span_id = invocation["span_id"].as_str().unwrap();
    assert_eq!(outbound, [format!("00-{trace_id}-{span_id}-01")]);

    // Without a caller's context the invocation starts a trace of its own.
    let response = server.get("/caller/echo").await;
    assert_eq!(response.status(), 200);
    let records = crate::events::records(&server, "caller", "http", 2).await;
    let new_trace = records[0]["trace_id"].as_str().unwrap().to_owned();
    assert_ne!(new_trace, trace_id);
    let view = stored_trace(&server, &new_trace, 1).await;
    assert_eq!(view["spans"][0]["parent_span_id"], Value::Null, "{view:#}");
}

#[tokio::test]
async fn records_traces_and_logs_past_their_retention_are_removed() {
    let server =
        TestServer::start_with(&["--retain-records", "2s", "--retain-logs", "2s", "--janitor-interval", "200ms"]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"brief\"\n\n[functions.brief]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    triggers = [{ http = \"GET /brief/{action}\" }]\n";
    app_with_guest(dir.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    server.deploy(dir.path());
    let response = server.get("/brief/log?lines=3").await;
    assert_eq!(response.status(), 200);
    let record = crate::events::records(&server, "brief", "http", 1).await.remove(0);
    let trace_id = record["trace_id"].as_str().unwrap().to_owned();
    stored_trace(&server, &trace_id, 1).await;
    let logs = json(server.api(Method::GET, "/v1/functions/brief/logs").send().await.unwrap()).await;
    assert!(logs["lines"].as_array().unwrap().iter().any(|line| line["line"] == "line 2"), "{logs:#}");

    // Once older than two seconds, the janitor removes them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = json(server.api(Method::GET, "/v1/invocations?function=brief").send().await.unwrap()).await;
        let logs = json(server.api(Method::GET, "/v1/functions/brief/logs").send().await.unwrap()).await;
        let trace = server.api(Method::GET, &format!("/v1/traces/{trace_id}")).send().await.unwrap().status();
        let gone = records["invocations"].as_array().unwrap().is_empty()
            && logs["lines"].as_array().unwrap().is_empty()
            && trace == 404;
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "still kept after 30s: {records:#} {logs:#} trace {trace}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Usage is a sum per hour, not a record: it stays.
    let usage = json(server.api(Method::GET, "/v1/usage?function=brief").send().await.unwrap()).await;
    assert_eq!(usage["total"]["requests"], 1, "{usage:#}");
}
