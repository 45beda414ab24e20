//! The HTTP process contract: web servers started by a command in the sandbox, sent
//! requests as they came and events as CloudEvents.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use updraft_runtime::{Input, InvokeError};

use http_body_util::BodyExt as _;

use crate::harness::{Function, bundle, call, event, harness, instance_config, json, output, whole};

/// A server with Python's standard library only: it answers every request with what it
/// was sent and what it sees of its sandbox.
const ECHO: &str = r#"
import http.server, json, os, sys, threading, time
PORT = int(os.environ["PORT"])
BOOT = os.urandom(8).hex()
hits = 0
released = threading.Event()
print("starting on", PORT, flush=True)
class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self): self.echo()
    def do_POST(self): self.echo()
    def echo(self):
        global hits
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        if self.path == "/slow":
            time.sleep(30)
        if self.path == "/crash":
            os._exit(3)
        if self.path == "/wait":
            released.wait()
        if self.path == "/release":
            released.set()
        if self.path == "/" and os.environ.get("ROOT_BROKEN"):
            self.send_error(500)
            return
        hits += 1
        print("handled", self.command, self.path, flush=True)
        doc = json.dumps({
            "method": self.command, "path": self.path, "body": body,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "hits": hits, "pid": os.getpid(), "boot": BOOT, "uid": os.getuid(),
            "task_writable": os.access("/var/task", os.W_OK),
        }).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(doc)))
        self.send_header("x-served-by", "stdlib")
        self.end_headers()
        self.wfile.write(doc)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Echo).serve_forever()
"#;

fn request(method: &str, uri: &str, body: &'static str) -> Input {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example.com")
        .header("x-updraft-route", "/items/{id}")
        .header("x-updraft-param-id", "7")
        .header("connection", "close")
        .body(updraft_runtime::Body::whole(body.as_bytes()))
        .unwrap();
    Input::Http(request)
}

#[tokio::test]
async fn a_server_gets_requests_as_they_came_and_keeps_its_state_between_them() {
    let h = harness().await;
    let mut instance = h
        .start("echo", Function::http("python3 server.py", "/"), &[("server.py", ECHO, false)])
        .await
        .unwrap_or_else(|error| panic!("the server did not start: {error}"));

    let invoked =
        whole(instance.invoke(request("POST", "/items/7?x=1", "hello"), call("r-1", Duration::from_secs(10))).await)
            .await;
    assert!(invoked.reusable);
    let response = invoked.result.as_ref().unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-served-by"], "stdlib");
    let first = json(&invoked);
    assert_eq!((first["method"].as_str(), first["path"].as_str()), (Some("POST"), Some("/items/7?x=1")));
    assert_eq!(first["body"], "hello");
    assert_eq!(first["headers"]["host"], "api.example.com");
    // The route and its parameters, as a wasm component gets them; hop-by-hop headers stay behind.
    assert_eq!(first["headers"]["x-updraft-route"], "/items/{id}");
    assert_eq!(first["headers"]["x-updraft-param-id"], "7");
    assert!(first["headers"].get("connection").is_none(), "{first}");
    // What it printed while starting and handling comes with the invocation.
    let printed = output(&invoked);
    assert!(printed.contains("starting on 8080") && printed.contains("handled POST /items/7"), "{printed}");

    // The same process serves the next request, over the connection kept alive.
    let invoked =
        whole(instance.invoke(request("GET", "/items/7", ""), call("r-2", Duration::from_secs(10))).await).await;
    let second = json(&invoked);
    assert_eq!(second["hits"], first["hits"].as_u64().unwrap() + 1);
    assert_eq!(second["pid"], first["pid"]);

    // In the sandbox: an unprivileged user, a read-only bundle.
    assert_ne!(second["uid"], 0);
    assert_eq!(second["task_writable"], false);
}

#[tokio::test]
async fn an_event_arrives_as_a_cloudevent_post() {
    let h = harness().await;
    let mut instance =
        h.start("echo-events", Function::http("python3 server.py", "/"), &[("server.py", ECHO, false)]).await.unwrap();
    let invoked =
        whole(instance.invoke(event(json!({ "order": 42 })), call("e-1", Duration::from_secs(10))).await).await;
    let seen = json(&invoked);
    assert_eq!((seen["method"].as_str(), seen["path"].as_str()), (Some("POST"), Some("/")));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(seen["body"].as_str().unwrap()).unwrap(),
        json!({ "order": 42 })
    );
    assert_eq!(seen["headers"]["ce-specversion"], "1.0");
    assert_eq!(seen["headers"]["ce-type"], "dev.updraft.invoke");
    assert_eq!(seen["headers"]["ce-id"], "event");
    assert_eq!(seen["headers"]["traceparent"], "00-5bef4de7ad49b0e87f6ef6c87fc2e700-00000000000000e1-01");
}

#[tokio::test]
async fn readiness_is_asked_of_the_configured_path() {
    let h = harness().await;
    // `/` fails; only `/healthz` says the server is ready.
    let function = Function::http("ROOT_BROKEN=1 python3 server.py", "/healthz");
    let mut instance = h.start("echo-ready", function, &[("server.py", ECHO, false)]).await.unwrap();
    let invoked = whole(instance.invoke(request("GET", "/", ""), call("r-1", Duration::from_secs(10))).await).await;
    assert_eq!(invoked.result.unwrap().status(), 500, "the server's own error comes back as its answer");
    assert!(invoked.reusable);
}

#[tokio::test]
async fn a_server_that_exits_while_starting_fails_init_with_what_it_said() {
    let h = harness().await;
    let function = Function::http("echo 'no module named flask' >&2; exit 3", "/");
    let Err(error) = h.start("gone", function, &[("server.py", ECHO, false)]).await else {
        panic!("a server that exits must not start")
    };
    let message = error.to_string();
    assert!(matches!(error, InvokeError::Init { .. }), "{error:?}");
    assert!(message.contains("exited before it was ready") && message.contains("no module named flask"), "{message}");
}

#[tokio::test]
async fn a_request_past_the_timeout_is_cut_and_the_instance_replaced() {
    let h = harness().await;
    let mut instance =
        h.start("echo-slow", Function::http("python3 server.py", "/"), &[("server.py", ECHO, false)]).await.unwrap();
    let invoked =
        whole(instance.invoke(request("GET", "/slow", ""), call("t-1", Duration::from_millis(300))).await).await;
    assert!(matches!(invoked.result, Err(InvokeError::Timeout { .. })), "{:?}", invoked.result);
    assert!(!invoked.reusable);

    let mut instance =
        h.start("echo-crash", Function::http("python3 server.py", "/"), &[("server.py", ECHO, false)]).await.unwrap();
    let invoked =
        whole(instance.invoke(request("GET", "/crash", ""), call("c-1", Duration::from_secs(10))).await).await;
    assert!(!invoked.reusable, "{:?}", invoked.result);
    assert!(
        matches!(&invoked.result, Err(InvokeError::Exited { .. } | InvokeError::BadResponse { .. })),
        "{:?}",
        invoked.result
    );
}

#[tokio::test]
async fn a_node_server_runs_unchanged() {
    let h = harness().await;
    let server = r#"
const http = require("http");
http.createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ runtime: "node", url: req.url, port: process.env.PORT }));
}).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
"#;
    let mut instance =
        h.start("node-server", Function::http("node server.js", "/"), &[("server.js", server, false)]).await.unwrap();
    let invoked =
        whole(instance.invoke(request("GET", "/items/7?q=a", ""), call("n-1", Duration::from_secs(10))).await).await;
    assert_eq!(json(&invoked), json!({ "runtime": "node", "url": "/items/7?q=a", "port": "8080" }));
}

#[tokio::test]
async fn instances_share_a_server_up_to_its_concurrency_per_instance() {
    let h = harness().await;
    let zip = bundle(h.dir.path(), "shared", &[("server.py", ECHO, false)]);
    let boot = |invoked: &updraft_runtime::Invoked<updraft_runtime::HttpResponse>| json(invoked)["boot"].clone();

    // Two requests at once on one server: the first waits for the second to release it.
    let mut function = Function::http("python3 server.py", "/");
    function.server.as_mut().unwrap().concurrency_per_instance = 2;
    let prepared = h.prepare("shared", &function, &zip).await.unwrap();
    let config = instance_config(function.memory);
    let mut first = prepared.create(&config).await.unwrap();
    let mut second = prepared.create(&config).await.unwrap();
    let waiting = tokio::spawn(async move {
        let invoked =
            whole(first.invoke(request("GET", "/wait", ""), call("w-1", Duration::from_secs(20))).await).await;
        (first, invoked)
    });
    let released =
        whole(second.invoke(request("GET", "/release", ""), call("w-2", Duration::from_secs(20))).await).await;
    let (first, waited) = waiting.await.unwrap();
    assert_eq!(boot(&waited), boot(&released), "both requests went to one server");
    // A third instance would be a third request at once: it gets a server of its own.
    let mut third = prepared.create(&config).await.unwrap();
    let alone = whole(third.invoke(request("GET", "/", ""), call("w-3", Duration::from_secs(10))).await).await;
    assert_ne!(boot(&alone), boot(&released));

    // Once its instances are gone, the server is too: the next one starts afresh.
    drop((first, second));
    let mut fourth = prepared.create(&config).await.unwrap();
    let fresh = whole(fourth.invoke(request("GET", "/", ""), call("w-4", Duration::from_secs(10))).await).await;
    assert_ne!(boot(&fresh), boot(&released));

    // One request per server by default (Lambda's way): two instances, two servers.
    let prepared = h.prepare("single", &Function::http("python3 server.py", "/"), &zip).await.unwrap();
    let mut one = prepared.create(&config).await.unwrap();
    let mut other = prepared.create(&config).await.unwrap();
    let a = whole(one.invoke(request("GET", "/", ""), call("s-1", Duration::from_secs(10))).await).await;
    let b = whole(other.invoke(request("GET", "/", ""), call("s-2", Duration::from_secs(10))).await).await;
    assert_ne!(boot(&a), boot(&b));
}

/// A Node.js server whose answers stream: `/stream` sends a first line and holds the
/// response open until `/release`; `/forever` never ends its answer; `/big` sends 64
/// KiB a KiB at a time; `/die` exits after its first line.
const STREAMING: &str = r#"
const http = require("http");
let release = null;
http.createServer((req, res) => {
  if (req.url === "/ready") return res.end("ok");
  if (req.url === "/release") {
    release();
    return res.end("released");
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.write("first\n");
  console.log("streaming", req.url);
  if (req.url === "/stream") release = () => res.end("last\n");
  if (req.url === "/big") {
    for (let i = 0; i < 64; i++) res.write("x".repeat(1024));
    res.end();
  }
  if (req.url === "/die") setImmediate(() => process.exit(3));
}).listen(Number(process.env.PORT), "127.0.0.1");
"#;

/// The next chunk of `body`, failing the test rather than waiting forever.
async fn next_chunk(body: &mut updraft_runtime::Body) -> Option<Result<Bytes, updraft_runtime::BodyCut>> {
    let frame = tokio::time::timeout(Duration::from_secs(15), body.frame()).await.expect("no chunk within 15 s");
    frame.map(|frame| frame.map(|frame| frame.into_data().unwrap()))
}

#[tokio::test]
async fn a_servers_answer_streams_and_a_cut_stream_ends_in_an_error() {
    let h = harness().await;
    let zip = bundle(h.dir.path(), "streaming", &[("server.js", STREAMING, false)]);
    let mut function = Function::http("node server.js", "/ready");
    function.server.as_mut().unwrap().concurrency_per_instance = 2;
    let prepared = h.prepare("streaming", &function, &zip).await.unwrap();
    let config = instance_config(function.memory);
    let mut streaming = prepared.create(&config).await.unwrap();
    let mut releasing = prepared.create(&config).await.unwrap();

    // The head and the first line arrive while the server still holds the answer open.
    let invoked = streaming.invoke(request("GET", "/stream", ""), call("s-1", Duration::from_secs(20))).await;
    let rest = tokio::spawn(invoked.rest.expect("a server's answer streams"));
    let response = invoked.result.unwrap();
    assert_eq!(response.headers()["content-type"], "text/plain");
    let mut body = response.into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap().unwrap(), "first\n");
    assert!(!rest.is_finished(), "the invocation goes on while its answer streams");
    let released =
        whole(releasing.invoke(request("GET", "/release", ""), call("s-2", Duration::from_secs(10))).await).await;
    assert_eq!(released.result.unwrap().body(), "released");
    assert_eq!(next_chunk(&mut body).await.unwrap().unwrap(), "last\n");
    let mut ended = rest.await.unwrap();
    assert!(ended.result.is_ok() && ended.reusable, "{:?}", ended.result);
    // Its end goes out once the scheduler has the instance back.
    let early = tokio::time::timeout(Duration::ZERO, body.frame()).await;
    assert!(early.is_err(), "the end waits for the instance to be handed back");
    (ended.settled.take().expect("a streamed answer's end waits"))();
    assert!(next_chunk(&mut body).await.is_none(), "a complete answer ends cleanly");
    assert!(output(&ended).contains("streaming /stream"), "the output while streaming is the invocation's");

    // An answer still streaming at the deadline is cut: the caller's body ends in an
    // error, never cleanly, and the server is replaced.
    let invoked = streaming.invoke(request("GET", "/forever", ""), call("s-3", Duration::from_millis(1500))).await;
    let rest = tokio::spawn(invoked.rest.expect("a server's answer streams"));
    let mut body = invoked.result.unwrap().into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap().unwrap(), "first\n");
    assert!(matches!(next_chunk(&mut body).await, Some(Err(_))), "a cut answer must not end cleanly");
    let ended = rest.await.unwrap();
    assert!(matches!(ended.result, Err(InvokeError::Timeout { .. })) && !ended.reusable, "{:?}", ended.result);

    // Past the response limit, and when the server dies mid-answer, the same.
    let mut small = (*config).clone();
    small.max_response_bytes = 10_000;
    let mut instance = prepared.create(&std::sync::Arc::new(small)).await.unwrap();
    let invoked = whole(instance.invoke(request("GET", "/big", ""), call("s-4", Duration::from_secs(10))).await).await;
    assert!(matches!(invoked.result, Err(InvokeError::ResponseTooLarge { limit: 10_000 })), "{:?}", invoked.result);
    drop(instance);
    let mut instance = prepared.create(&config).await.unwrap();
    let invoked = whole(instance.invoke(request("GET", "/die", ""), call("s-5", Duration::from_secs(10))).await).await;
    assert!(
        matches!(&invoked.result, Err(InvokeError::Exited { .. } | InvokeError::BadResponse { .. }))
            && !invoked.reusable,
        "{:?}",
        invoked.result
    );
}
