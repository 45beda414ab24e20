//! Traces and metrics: one trace across hops, kept in the store and exported over OTLP
//! to a real receiver that decodes the protobuf as a collector does; the metrics sent
//! the same way.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestServer, app_with_guest};
use crate::json;

/// An OTLP/HTTP receiver: keeps every span it is sent, with its resource's attributes,
/// and every metric, in the order they came.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    metrics: Arc<Mutex<Vec<(String, Metric)>>>,
}

/// The text of attribute `key`.
fn text_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    let attribute = attributes.iter().find(|attribute| attribute.key == key)?;
    match attribute.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
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
                            .and_then(|resource| text_of(&resource.attributes, "service.name"))
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
        let metrics = Arc::new(Mutex::new(Vec::new()));
        let kept = metrics.clone();
        let app = app.route(
            "/v1/metrics",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP protobuf export request");
                    for resource_metrics in request.resource_metrics {
                        let service = resource_metrics
                            .resource
                            .and_then(|resource| text_of(&resource.attributes, "service.name"))
                            .unwrap_or_default();
                        for scope_metrics in resource_metrics.scope_metrics {
                            for metric in scope_metrics.metrics {
                                kept.lock().unwrap().push((service.clone(), metric));
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, spans, metrics }
    }

    /// The last value received of metric `name` for the data point whose attributes
    /// include `labels`: a counter's or gauge's value, a histogram's count. Waits until
    /// `predicate` holds for it.
    async fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        predicate: impl Fn(f64) -> bool,
    ) -> (String, Metric, f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let matches = |attributes: &[KeyValue]| {
            labels.iter().all(|(key, value)| text_of(attributes, key).as_deref() == Some(*value))
        };
        loop {
            let last = self.metrics.lock().unwrap().iter().rev().filter(|(_, metric)| metric.name == name).find_map(
                |(service, metric)| {
                    let value = match metric.data.as_ref()? {
                        metric::Data::Sum(sum) => {
                            sum.data_points.iter().find(|point| matches(&point.attributes))?.value
                        }
                        metric::Data::Gauge(gauge) => {
                            gauge.data_points.iter().find(|point| matches(&point.attributes))?.value
                        }
                        metric::Data::Histogram(histogram) => {
                            let point = histogram.data_points.iter().find(|point| matches(&point.attributes))?;
                            Some(number_data_point::Value::AsInt(point.count as i64))
                        }
                        _ => None,
                    };
                    let value = match value? {
                        number_data_point::Value::AsInt(n) => n as f64,
                        number_data_point::Value::AsDouble(x) => x,
                    };
                    Some((service.clone(), metric.clone(), value))
                },
            );
            if let Some(found) = last.filter(|(_, _, value)| predicate(*value)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "the collector never got {name} {labels:?} as expected; the last it got: {:?}",
                self.metrics.lock().unwrap().iter().rev().find(|(_, metric)| metric.name == name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

#[tokio::test]
async fn metrics_reach_the_collector_under_the_names_and_labels_that_metrics_serves() {
    let collector = Collector::start().await;
    let server = TestServer::start_with(&["--otlp-endpoint", &collector.url, "--otlp-metric-interval", "200ms"]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"measured\"\n\n[functions.measured]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    triggers = [{ http = \"GET /measured/{action}\" }, { queue = \"jobs\" }]\n";
    app_with_guest(dir.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    server.deploy(dir.path());
    for _ in 0..3 {
        assert_eq!(server.get("/measured/echo").await.status(), 200);
    }

    // OpenTelemetry's FaaS metrics, by their semantic-convention names and attributes.
    let faas = [("faas.name", "measured"), ("faas.version", "1"), ("faas.trigger", "http")];
    let (service, invocations, _) = collector.wait_for_metric("faas.invocations", &faas, |n| n == 3.0).await;
    assert_eq!(service, "updraft");
    assert!(
        matches!(&invocations.data, Some(metric::Data::Sum(sum)) if sum.is_monotonic),
        "a counter: {invocations:?}"
    );
    let (_, duration, _) = collector.wait_for_metric("faas.invoke_duration", &faas, |n| n == 3.0).await;
    assert_eq!(duration.unit, "s");
    collector.wait_for_metric("faas.coldstarts", &faas, |n| n >= 1.0).await;
    // Lambda's, per function and version, and Updraft's own.
    let version = [("function", "measured"), ("version", "1")];
    collector.wait_for_metric("updraft.lambda.invocations", &version, |n| n == 3.0).await;
    let (_, lambda_duration, _) = collector.wait_for_metric("updraft.lambda.duration", &version, |n| n == 3.0).await;
    assert_eq!(lambda_duration.unit, "ms");
    let ok = [("function", "measured"), ("status", "success")];
    collector.wait_for_metric("updraft.invocations", &ok, |n| n == 3.0).await;
    // Gauges, sampled from the running server; the exporter's own counters.
    collector
        .wait_for_metric("updraft.sqs.approximate_number_of_messages_visible", &[("queue", "jobs")], |n| n == 0.0)
        .await;
    collector.wait_for_metric("updraft.metric_exports_failed", &[], |n| n == 0.0).await;

    // What a scrape shows is the same figure under the name the exporter would give it.
    let scraped = server.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    for sample in [
        "faas_invocations_total{faas_name=\"measured\",faas_version=\"1\",faas_trigger=\"http\"} 3",
        "updraft_lambda_invocations_total{function=\"measured\",version=\"1\"} 3",
        "updraft_lambda_duration_milliseconds_count{function=\"measured\",version=\"1\"} 3",
    ] {
        assert!(scraped.lines().any(|line| line == sample), "no `{sample}` in\n{scraped}");
    }
    assert!(scraped.contains("updraft_metric_exports_failed_total 0"), "{scraped}");

    // The dashboard's charts count the same runs, from the records.
    let stats = json(server.api(Method::GET, "/v1/functions/measured/stats").send().await.unwrap()).await;
    let steps = stats["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 60, "an hour in minutes by default: {stats:#}");
    let sum = |key: &str| steps.iter().map(|step| step[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("invocations"), sum("errors"), sum("throttles")), (3, 0, 0), "{stats:#}");
    assert!(sum("cold_starts") >= 1, "{stats:#}");
    let ran: Vec<&Value> = steps.iter().filter(|step| step["invocations"].as_u64() > Some(0)).collect();
    assert!(ran.iter().all(|step| step["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0)), "{stats:#}");
    assert!(ran.iter().all(|step| step["p99_ms"].as_f64() >= step["p50_ms"].as_f64()), "{stats:#}");
}

#[tokio::test]
async fn a_queue_batch_is_linked_to_the_span_that_sent_each_of_its_messages() {
    let collector = Collector::start().await;
    let server = TestServer::start_with(&["--otlp-endpoint", &collector.url]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"batched\"\n\n[functions.batcher]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    triggers = [{ queue = \"jobs\", batch_size = 3, batch_window = \"10s\" }]\n";
    app_with_guest(dir.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    server.deploy(dir.path());

    // Two senders in traces of their own, and one message sent with no trace at all.
    let senders = [
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
    ];
    for (trace_id, span_id) in senders {
        let sent = server
            .api(Method::POST, "/v1/queues/jobs")
            .header("traceparent", format!("00-{trace_id}-{span_id}-01"))
            .body(format!("from {span_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 202);
    }
    let untraced = server.api(Method::POST, "/v1/queues/jobs").body("no trace").send().await.unwrap();
    assert_eq!(untraced.status(), 202);

    // One batch of three: a trace of its own, linked to both senders.
    let record = crate::events::records(&server, "batcher", "queue", 1).await.remove(0);
    let batch_trace = record["trace_id"].as_str().unwrap().to_owned();
    assert!(senders.iter().all(|(trace_id, _)| *trace_id != batch_trace));
    let view = stored_trace(&server, &batch_trace, 1).await;
    let span = &view["spans"][0];
    assert_eq!(span["name"], "batcher", "{view:#}");
    assert_eq!(span["parent_span_id"], Value::Null);
    assert_eq!(span["attributes"]["messaging.operation.type"], "process");
    let links: Vec<(String, String)> = span["links"]
        .as_array()
        .unwrap_or_else(|| panic!("no links in {view:#}"))
        .iter()
        .map(|link| (link["trace_id"].as_str().unwrap().to_owned(), link["span_id"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> =
        senders.iter().map(|(trace, span)| ((*trace).to_owned(), (*span).to_owned())).collect();
    assert_eq!(links, expected, "one link per traced message, in the order they were sent");

    // The collector gets the same links.
    let exported = collector
        .wait_for(&batch_trace, "the batch's span", |spans| spans.iter().any(|span| span.span.name == "batcher"))
        .await;
    let batch = exported.iter().find(|span| span.span.name == "batcher").unwrap();
    assert_eq!(batch.span.kind, SpanKind::Consumer as i32);
    let exported_links: Vec<(String, String)> =
        batch.span.links.iter().map(|link| (Received::hex(&link.trace_id), Received::hex(&link.span_id))).collect();
    assert_eq!(exported_links, expected);

    let waterfall = server.cli_ok(&["traces", &batch_trace]);
    for (trace_id, span_id) in senders {
        assert!(waterfall.contains(&format!("linked: trace {trace_id} span {span_id}")), "{waterfall}");
    }
}
