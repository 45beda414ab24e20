//! Web apps as functions (`runtime = "http"`), end to end: real frameworks from PyPI
//! and npm, installed into each function's bundle by `updraft build`'s dependency steps
//! (pip for a requirements.txt, npm for a package.json), unchanged.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::json;

/// Writes `files` (path, contents) under `dir`.
fn write_app(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// Writes a Python web app into `dir`: the manifest's `[app]` table and `functions`,
/// `files` under `app/`, and `requirements` (which the deploy installs); then deploys it.
fn deploy_python_app(
    server: &TestServer,
    dir: &Path,
    app: &str,
    functions: &str,
    files: &[(&str, &str)],
    requirements: &str,
) {
    let manifest = format!("[app]\nname = \"{app}\"\n{functions}");
    let mut all =
        vec![("updraft.toml".to_owned(), manifest), ("app/requirements.txt".to_owned(), requirements.to_owned())];
    all.extend(files.iter().map(|(path, contents)| (format!("app/{path}"), (*contents).to_owned())));
    let all: Vec<(&str, &str)> = all.iter().map(|(path, contents)| (path.as_str(), contents.as_str())).collect();
    write_app(dir, &all);
    server.deploy(dir);
}

/// Publishes `{"id":7}` to `note.added` and returns its message id and what `function`
/// logged of it: the JSON object that ends the log line holding `marker`.
async fn published_event(server: &TestServer, function: &str, marker: &str) -> (String, Value) {
    let published = server
        .api(Method::POST, "/v1/topics/note.added")
        .header("content-type", "application/json")
        .body(r#"{"id":7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::ACCEPTED);
    let message_id = json(published).await["message_id"].as_str().unwrap().to_owned();
    let logs = server.wait_for_function_log(function, marker).await;
    let line = logs.lines().find(|line| line.contains(marker)).unwrap();
    let start = line.find(marker).unwrap() + marker.len() - 1;
    (message_id, serde_json::from_str(&line[start..]).unwrap())
}

const FLASK_APP: &str = r#"
import json, os
from flask import Flask, jsonify, request

app = Flask(__name__)

@app.get("/healthz")
def healthz():
    return "ok"

@app.get("/notes/<int:note>")
def note(note):
    return jsonify(note=note, q=request.args.get("q"), route=request.headers.get("x-updraft-route"),
                   worker=os.getpid(), port=os.environ["PORT"])

@app.post("/notes")
def create():
    return jsonify(created=request.get_json()), 201, {"location": "/notes/1"}

@app.post("/")
def cloudevent():
    # A topic message, as a CloudEvent in binary mode.
    print("event", json.dumps({"type": request.headers["ce-type"], "source": request.headers["ce-source"],
                                "data": request.get_json()}), flush=True)
    return "", 204
"#;

#[tokio::test]
async fn a_flask_app_under_gunicorn_serves_routes_and_receives_topic_messages() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    deploy_python_app(
        &server,
        dir.path(),
        "flaskapp",
        r#"
[functions.notes]
runtime = "http"
source = "app"
command = "python3 -m gunicorn --bind 127.0.0.1:$PORT --workers 2 app:app"
readiness_path = "/healthz"
memory = "256MiB"
timeout = "10s"
triggers = [{ http = "GET /notes/{id}" }, { http = "POST /notes" }, { topic = "note.added" }]
"#,
        &[("app.py", FLASK_APP)],
        "flask==3.1.3\ngunicorn==23.0.0\n",
    );

    let response = server.get("/notes/7?q=fresh").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-updraft-request-id"));
    let note = json(response).await;
    assert_eq!(note["note"], 7);
    assert_eq!(note["q"], "fresh");
    assert_eq!(note["route"], "/notes/{id}");
    assert_eq!(note["port"], "8080");

    let created = server.http.post(server.url("/notes")).json(&json!({ "text": "buy milk" })).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/notes/1");
    assert_eq!(json(created).await["created"]["text"], "buy milk");

    // A topic message reaches the app as a CloudEvent POST.
    let (_, event) = published_event(&server, "notes", "event {").await;
    assert_eq!(
        event,
        json!({ "type": "dev.updraft.topic.message", "source": "updraft/topics/note.added", "data": { "id": 7 } })
    );

    // The CLI sends a request to one of its routes, as a client would.
    let answered = server.cli_ok(&["invoke", "notes", "--http", "GET /notes/9?q=cli"]);
    assert!(answered.starts_with("200 OK") && answered.contains(r#""q":"cli""#), "{answered}");
    let refused = server.cli(&["invoke", "notes", "--http", "DELETE /notes/9"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("notes has no route for DELETE /notes/9"), "{stderr}");

    // It is an ordinary function: listed with its runtime and triggers, its requests recorded.
    let listed = server.cli_ok(&["ls"]);
    assert!(listed.contains("GET /notes/{id}, POST /notes, topic note.added"), "{listed}");
    let described = server.cli_ok(&["describe", "notes"]);
    assert!(described.contains("runtime:     http"), "{described}");
    assert!(described.contains("command:     python3 -m gunicorn --bind 127.0.0.1:$PORT"), "{described}");
    assert!(described.contains("readiness:   GET /healthz"), "{described}");
    // Records are written off the request path: wait for the four.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = json(server.api(Method::GET, "/v1/invocations?function=notes").send().await.unwrap()).await;
        let statuses: Vec<String> = page["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|record| record["status"].as_str().map(str::to_owned))
            .collect();
        if statuses.len() >= 4 {
            assert!(statuses.iter().all(|status| status == "success"), "{page}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "four records never appeared: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

const EXPRESS_APP: &str = r#"
const express = require("express");
const app = express();
app.use(express.json({ type: ["application/json", "application/cloudevents+json"] }));
app.get("/hello/:name", (req, res) => res.json({ hello: req.params.name, framework: "express" }));
app.post("/", (req, res) => {
  console.log("event " + JSON.stringify({ type: req.get("ce-type"), data: req.body }));
  res.json({ doubled: req.body.n * 2 });
});
app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("express listening"));
"#;

#[tokio::test]
async fn an_express_app_runs_unchanged() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let package = json!({ "name": "hello-express", "private": true, "dependencies": { "express": "5.1.0" } });
    write_app(
        dir.path(),
        &[
            (
                "updraft.toml",
                r#"
[app]
name = "expressapp"

[functions.hello]
runtime = "http"
source = "app"
command = "node server.js"
triggers = [{ http = "GET /hello/{name}" }]
"#,
            ),
            ("app/server.js", EXPRESS_APP),
            ("app/package.json", &package.to_string()),
        ],
    );
    server.deploy(dir.path());

    let response = server.get("/hello/ada").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({ "hello": "ada", "framework": "express" }));

    // A direct invocation is an event too: a CloudEvent POST whose answer is the result.
    assert_eq!(server.invoke("hello", json!({ "n": 1 })).await, json!({ "doubled": 2 }));
    let logs = server.wait_for_function_log("hello", "event {").await;
    assert!(logs.contains(r#"event {"type":"dev.updraft.invoke","data":{"n":1}}"#), "{logs}");
}

const FASTAPI_APP: &str = r#"
from fastapi import FastAPI, Request

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q, "framework": "fastapi"}

@app.post("/")
async def event(request: Request):
    return {"type": request.headers["ce-type"], "data": await request.json()}
"#;

#[tokio::test]
async fn a_fastapi_app_runs_under_uvicorn() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    deploy_python_app(
        &server,
        dir.path(),
        "fastapiapp",
        r#"
[functions.items]
runtime = "http"
source = "app"
command = "python3 -m uvicorn app:app --host 127.0.0.1 --port $PORT"
memory = "256MiB"
triggers = [{ http = "GET /items/{id}" }]
"#,
        &[("app.py", FASTAPI_APP)],
        "fastapi==0.115.12\nuvicorn==0.34.2\n",
    );

    let response = server.get("/items/5?q=x").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({ "item_id": 5, "q": "x", "framework": "fastapi" }));
    // FastAPI's own validation answers for the app.
    assert_eq!(server.get("/items/five").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        server.invoke("items", json!({ "n": 1 })).await,
        json!({ "type": "dev.updraft.invoke", "data": { "n": 1 } })
    );
}

/// Code written for Google's Functions Framework: an HTTP function and a CloudEvent
/// function, as they run on Cloud Functions.
const FUNCTIONS_FRAMEWORK: &str = r#"
import json
import functions_framework

@functions_framework.http
def hello(request):
    return {"hello": request.path.rsplit("/", 1)[-1], "framework": "functions-framework"}

@functions_framework.cloud_event
def on_note(cloud_event):
    print("cloudevent", json.dumps({"type": cloud_event["type"], "source": cloud_event["source"],
                                    "id": cloud_event["id"], "data": cloud_event.data}), flush=True)
"#;

#[tokio::test]
async fn functions_framework_code_runs_as_http_and_cloudevent_functions() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    deploy_python_app(
        &server,
        dir.path(),
        "gcf",
        r#"
[functions.hello]
runtime = "http"
source = "app"
command = "python3 -m functions_framework --target hello"
memory = "256MiB"
triggers = [{ http = "GET /ff/{name}" }]

[functions.notes]
runtime = "http"
source = "app"
command = "python3 -m functions_framework --target on_note"
memory = "256MiB"
triggers = [{ topic = "note.added" }]
"#,
        &[("main.py", FUNCTIONS_FRAMEWORK)],
        "functions-framework==3.10.2\n",
    );

    let response = server.get("/ff/ada").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({ "hello": "ada", "framework": "functions-framework" }));

    let (message_id, event) = published_event(&server, "notes", "cloudevent {").await;
    assert_eq!(
        event,
        json!({ "type": "dev.updraft.topic.message", "source": "updraft/topics/note.added", "id": message_id, "data": { "id": 7 } })
    );
}

/// Whether any process on the host has `marker` in its command line.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|line| String::from_utf8_lossy(&line).contains(marker))
    })
}

/// A server from Python's standard library answering `up` (and saying which process it
/// is), its command line carrying a marker that finds it among the host's processes.
fn marked_app(marker: &str, app: &str, extra: &str) -> (String, &'static str) {
    let server = "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.end_headers()\n        self.wfile.write(b'up %d' % os.getpid())\nhttp.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";
    let manifest = format!(
        "[app]\nname = \"{app}\"\n\n[functions.{app}]\nruntime = \"http\"\nsource = \"app\"\ncommand = \"python3 server.py {marker}\"\ntriggers = [{{ http = \"GET /{app}\" }}]\n{extra}"
    );
    (manifest, server)
}

fn marker() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("marker-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn a_web_app_with_min_instances_is_serving_before_its_first_request() {
    use crate::execution::{wait_for_metric, wait_for_records};
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = marker();
    let (manifest, app) = marked_app(&marker, "provisioned", "min_instances = 1\nidle_timeout = \"100ms\"\n");
    write_app(dir.path(), &[("updraft.toml", &manifest), ("app/server.py", app)]);
    server.deploy(dir.path());
    // Started by the deploy, before any request, and ready: its instance is idle.
    let idle = "updraft_instances{function=\"provisioned\",state=\"idle\"}";
    wait_for_metric(&server, idle, 1.0, std::time::Duration::from_secs(20)).await;
    assert!(running(&marker), "the provisioned server is not running");

    // Well past the idle timeout it still serves, warm, from the same process.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let first = server.get("/provisioned").await.text().await.unwrap();
    let second = server.get("/provisioned").await.text().await.unwrap();
    assert!(first.starts_with("up "), "{first}");
    assert_eq!(first, second, "one server serves both");
    let records = wait_for_records(&server, "provisioned", 2).await;
    assert!(records.iter().all(|record| record["cold"] == false), "{records:?}");
}

#[tokio::test]
async fn a_web_apps_servers_end_with_the_server_that_started_them() {
    let mut server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = marker();
    let (manifest, app) = marked_app(&marker, "lingering", "");
    write_app(dir.path(), &[("updraft.toml", &manifest), ("app/server.py", app)]);
    server.deploy(dir.path());
    assert!(server.get("/lingering").await.text().await.unwrap().starts_with("up "));
    assert!(running(&marker), "the app's server is not running");

    // Killed without a chance to stop its instances: their servers still end.
    server.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running(&marker) {
        assert!(std::time::Instant::now() < deadline, "the app's server outlived the server that started it");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A plain Node.js server whose answers stream: `/stream` sends a first line, then holds
/// the answer open until `/release`; `/forever` never ends its answer; `/upload` answers
/// the first piece of its request's body before the rest has come; `/count` counts it.
const STREAMING_SERVER: &str = r#"
const http = require("http");
let release = () => {};
http.createServer((req, res) => {
  if (req.url === "/") return res.end("ready");
  if (req.url === "/release") {
    release();
    return res.end("released");
  }
  if (req.url === "/upload") {
    // Answers the first piece of the upload at once, and the whole at its end.
    let total = 0;
    req.on("data", (piece) => {
      if (total === 0) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write(`got ${piece.length}\n`);
      }
      total += piece.length;
    });
    req.on("end", () => res.end(`total ${total}\n`));
    return;
  }
  if (req.url === "/count") {
    let total = 0;
    req.on("data", (piece) => (total += piece.length));
    req.on("end", () => res.end(`total ${total}\n`));
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.write("first\n");
  if (req.url === "/stream") release = () => res.end("last\n");
}).listen(Number(process.env.PORT), "127.0.0.1");
"#;

/// The next chunk of `response`'s body, failing the test rather than waiting forever.
async fn next_chunk(response: &mut reqwest::Response) -> reqwest::Result<Option<bytes::Bytes>> {
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), response.chunk());
    chunk.await.expect("no chunk within 20 s")
}

#[tokio::test]
async fn a_web_apps_answer_streams_through_the_gateway_and_a_cut_one_ends_in_an_error() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"
[app]
name = "streaming"

[functions.ticker]
runtime = "http"
source = "app"
command = "node server.js"
concurrency_per_instance = 2
timeout = "3s"
triggers = [
  { http = "GET /stream" }, { http = "GET /release" }, { http = "GET /forever" },
  { http = "POST /upload" }, { http = "POST /count" },
]
"#;
    write_app(dir.path(), &[("updraft.toml", manifest), ("app/server.js", STREAMING_SERVER)]);
    server.deploy(dir.path());

    // The first line reaches the client while the function still runs: no record yet.
    let mut streaming = server.get("/stream").await;
    assert_eq!(streaming.status(), StatusCode::OK);
    let id = streaming.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    assert_eq!(next_chunk(&mut streaming).await.unwrap().unwrap(), "first\n");
    let records = crate::execution::records(&server, "ticker").await;
    assert!(records.iter().all(|record| record["id"] != id.as_str()), "recorded while streaming: {records:?}");

    // Released by a second request on the same server, it ends cleanly, and its record
    // counts the time the body streamed.
    assert_eq!(server.get("/release").await.text().await.unwrap(), "released");
    assert_eq!(next_chunk(&mut streaming).await.unwrap().unwrap(), "last\n");
    assert_eq!(next_chunk(&mut streaming).await.unwrap(), None);
    let record = wait_for_record(&server, "ticker", &id).await;
    assert_eq!(record["status"], "success", "{record}");

    // An answer still streaming at the function's timeout is cut: the client sees an
    // error, never a clean end, and the record says why.
    let mut forever = server.get("/forever").await;
    let id = forever.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    assert_eq!(next_chunk(&mut forever).await.unwrap().unwrap(), "first\n");
    assert!(next_chunk(&mut forever).await.is_err(), "a cut answer must not end cleanly");
    let record = wait_for_record(&server, "ticker", &id).await;
    assert_eq!(record["status"], "timeout", "{record}");
}

/// Waits for the record of invocation `id` of `function`.
async fn wait_for_record(server: &TestServer, function: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let records = crate::execution::records(server, function).await;
        if let Some(record) = records.into_iter().find(|record| record["id"] == id) {
            return record;
        }
        assert!(std::time::Instant::now() < deadline, "no record of {id}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A request body fed piece by piece through `pieces`.
fn piecewise() -> (tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>, reqwest::Body) {
    let (pieces, received) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|piece| (piece, received))
    });
    (pieces, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn a_web_app_reads_an_upload_as_it_arrives_and_answers_before_it_ends() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"uploads\"\n\n[functions.uploads]\nruntime = \"http\"\nsource = \"app\"\n\
                    command = \"node server.js\"\ntriggers = [{ http = \"POST /upload\" }, { http = \"POST /count\" }]\n";
    write_app(dir.path(), &[("updraft.toml", manifest), ("app/server.js", STREAMING_SERVER)]);
    server.deploy(dir.path());

    // The server answers the first piece while the client still holds the rest: the
    // request streams in and the answer streams out at once.
    let (pieces, body) = piecewise();
    pieces.send(Ok(bytes::Bytes::from_static(b"hello"))).await.unwrap();
    let sent = server.http.post(server.url("/upload")).body(body).send();
    let mut response = tokio::time::timeout(std::time::Duration::from_secs(20), sent)
        .await
        .expect("no answer while the upload was still open")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(next_chunk(&mut response).await.unwrap().unwrap(), "got 5\n");
    pieces.send(Ok(bytes::Bytes::from_static(b" world!"))).await.unwrap();
    drop(pieces);
    assert_eq!(next_chunk(&mut response).await.unwrap().unwrap(), "total 12\n");
    assert_eq!(next_chunk(&mut response).await.unwrap(), None);

    // An upload the client cuts off reaches the server cut, never as a clean end: the
    // server does not answer a count of what it got, and the record says why.
    let (pieces, body) = piecewise();
    pieces.send(Ok(bytes::Bytes::from_static(b"partial"))).await.unwrap();
    let sent = tokio::spawn(server.http.post(server.url("/count")).body(body).send());
    let busy = "updraft_instances{function=\"uploads\",state=\"busy\"}";
    crate::execution::wait_for_metric(&server, busy, 1.0, std::time::Duration::from_secs(20)).await;
    pieces.send(Err(std::io::Error::other("the client gives up"))).await.unwrap();
    assert!(sent.await.unwrap().is_err(), "the client's own request failed");
    let records = crate::execution::wait_for_records(&server, "uploads", 2).await;
    let cut = records.iter().find(|record| record["status"] != "success").expect("a failed record");
    assert_eq!(cut["error_type"], "Request.BodyCut", "{cut}");

    // An upload past the sync payload limit (6 MiB) is cut at the limit, and the client
    // is told why, as for a body read whole.
    let (pieces, body) = piecewise();
    let sent = tokio::spawn(server.http.post(server.url("/count")).body(body).send());
    for _ in 0..7 {
        if pieces.send(Ok(bytes::Bytes::from(vec![b'x'; 1 << 20]))).await.is_err() {
            break;
        }
    }
    drop(pieces);
    let refused = sent.await.unwrap().unwrap();
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let records = crate::execution::wait_for_records(&server, "uploads", 3).await;
    assert_eq!(records.iter().filter(|record| record["error_type"] == "Request.BodyCut").count(), 2);
}
