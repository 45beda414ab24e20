//! Servers on one PostgreSQL database form a cluster: each lists the others with their
//! address, version, load and heartbeat; a node killed without a word is declared dead
//! after the configured time, one that stops cleanly has left, and a restarted one
//! rejoins.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestServer, app_with_guest};

const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database for one test, dropped afterwards.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new database on the server of `UPDRAFT_TEST_POSTGRES_URL` (an admin URL);
    /// `None` when it is unreachable and `UPDRAFT_SKIP_POSTGRES=1`.
    fn create() -> Option<Self> {
        let admin_url =
            std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into());
        let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("updraft_cluster_{}_{unique}", std::process::id());
        let created = psql(&admin_url, &format!("CREATE DATABASE {name}"));
        if let Err(error) = created {
            if std::env::var("UPDRAFT_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                eprintln!("skipped: PostgreSQL at {admin_url} is unreachable ({error}) and UPDRAFT_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "cannot create a database on PostgreSQL at {admin_url}: {error}\nStart PostgreSQL (user postgres, \
                 trust auth, on 127.0.0.1:5432), set UPDRAFT_TEST_POSTGRES_URL, or UPDRAFT_SKIP_POSTGRES=1 to skip."
            );
        }
        let (base, _) = admin_url.rsplit_once('/').expect("the admin URL names a database");
        Some(Self { url: format!("{base}/{name}"), admin_url, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let output = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|error| format!("psql: {error}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// `GET /v1/nodes` on `server`.
async fn nodes(server: &TestServer) -> Value {
    let response = server.api(Method::GET, "/v1/nodes").send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The node at `address` in a `/v1/nodes` answer.
fn node<'a>(view: &'a Value, address: &str) -> Option<&'a Value> {
    view["nodes"].as_array().unwrap().iter().find(|node| node["address"] == address)
}

/// Waits until `server`'s view of the cluster satisfies `done`; returns that view.
async fn wait_for_nodes(server: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = nodes(server).await;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const CLUSTER_ARGS: [&str; 4] = ["--heartbeat", "200ms", "--node-dead-after", "2s"];

/// One node per entry of `each` on `database`, each with its own data dir, started
/// with `shared` and its own arguments. The later ones get a copy of the first one's
/// admin token, for the test's CLI calls (API keys live in the database, so it works on
/// every node); without a cluster key in `shared`, of its `secrets.key` too, which is
/// then the only way nodes share their secrets.
fn start_nodes(database: &TestDatabase, shared: &[&str], each: &[&[&str]]) -> Vec<TestServer> {
    let args = |own: &[&str]| -> Vec<String> {
        let mut args = vec!["--database-url".to_owned(), database.url.clone()];
        args.extend(CLUSTER_ARGS.iter().chain(shared).chain(own).map(|arg| arg.to_string()));
        args
    };
    let copied: &[&str] =
        if shared.contains(&"--cluster-key-file") { &["admin-token"] } else { &["admin-token", "secrets.key"] };
    let mut nodes: Vec<TestServer> = Vec::new();
    for own in each {
        let args = args(own);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = match nodes.first() {
            None => TestServer::start_with(&args),
            Some(first) => {
                let dir = tempfile::tempdir().unwrap();
                for file in copied {
                    std::fs::copy(first.data_dir.path().join(file), dir.path().join(file)).unwrap();
                }
                TestServer::start_in_with(dir, &args)
            }
        };
        nodes.push(node);
    }
    nodes
}

/// Two nodes on `database`, sharing the first one's `secrets.key`.
fn two_nodes(database: &TestDatabase) -> (TestServer, TestServer) {
    let [a, b]: [TestServer; 2] = start_nodes(database, &[], &[&[], &[]]).try_into().ok().unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_database_form_a_cluster_and_a_silent_node_is_declared_dead() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let (a, mut b) = two_nodes(&database);
    let (a_address, b_address) = (format!("http://{}", a.addr), format!("http://{}", b.addr));

    let view = wait_for_nodes(&a, "both nodes alive", |view| {
        [&a_address, &b_address].iter().all(|address| node(view, address).is_some_and(|n| n["state"] == "alive"))
    })
    .await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 2, "{view:#}");
    assert_eq!(view["dead_after_ms"], 2000);
    let a_node = node(&view, &a_address).unwrap();
    assert_eq!(a_node["this_node"], true);
    assert_eq!(node(&view, &b_address).unwrap()["this_node"], false);
    assert_eq!(a_node["version"], env!("CARGO_PKG_VERSION"));
    // Each node asks the database, so both see the same members.
    let from_b = nodes(&b).await;
    let ids =
        |view: &Value| -> Vec<Value> { view["nodes"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect() };
    assert_eq!(ids(&from_b), ids(&view));
    let listed = a.cli_ok(&["nodes"]);
    assert!(listed.contains(&a_address) && listed.contains(&b_address) && listed.contains("alive"), "{listed}");

    // Killed without a word: heartbeats stop, and after the dead-after time it is dead.
    b.kill();
    let view = wait_for_nodes(&a, "the killed node declared dead", |view| {
        node(view, &b_address).is_some_and(|n| n["state"] == "dead")
    })
    .await;
    let dead = node(&view, &b_address).unwrap();
    assert!(dead["silent_for_ms"].as_u64().unwrap() > 2000, "{dead:#}");
    assert_eq!(node(&view, &a_address).unwrap()["state"], "alive");

    // Restarted on its data dir, it rejoins as the same node.
    b.restart();
    let b_address = format!("http://{}", b.addr);
    let view = wait_for_nodes(&a, "the restarted node alive again", |view| {
        node(view, &b_address).is_some_and(|n| n["state"] == "alive")
    })
    .await;
    assert_eq!(node(&view, &b_address).unwrap()["id"], dead["id"], "it keeps its identity: {view:#}");
    assert_eq!(view["nodes"].as_array().unwrap().len(), 2, "{view:#}");

    // Stopped cleanly, it has left rather than died.
    let status = b.terminate();
    assert!(status.success(), "{status}");
    wait_for_nodes(&a, "the stopped node left", |view| node(view, &b_address).is_some_and(|n| n["state"] == "left"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_server_is_a_cluster_of_one_that_reports_its_load() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start_with(&CLUSTER_ARGS);
    let address = format!("http://{}", server.addr);
    let view = nodes(&server).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 1, "{view:#}");
    let this = node(&view, &address).unwrap_or_else(|| panic!("{view:#}"));
    assert_eq!((this["state"].as_str(), this["this_node"].as_bool()), (Some("alive"), Some(true)));
    assert_eq!(this["warm_functions"], serde_json::json!([]));
    let status: Value = server.api(Method::GET, "/v1/status").send().await.unwrap().json().await.unwrap();
    assert_eq!(this["id"], status["node_id"]);

    // An instance kept warm after an invocation shows in the next heartbeats.
    let app = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"warm\"\n\n[functions.warm]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n";
    app_with_guest(app.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    server.deploy(app.path());
    let response = server.api(Method::POST, "/v1/functions/warm/invoke").body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let view = wait_for_nodes(&server, "the warm function in the heartbeat", |view| {
        node(view, &address).is_some_and(|n| n["warm_functions"] == serde_json::json!(["warm"]))
    })
    .await;
    assert!(node(&view, &address).unwrap()["instances"].as_u64().unwrap() >= 1, "{view:#}");
}

/// Waits until `GET path` on `server` answers `status` (and, for a 200, from `version`);
/// how long that took.
async fn wait_for_route(server: &TestServer, path: &str, status: u16, version: Option<&str>) -> Duration {
    let started = Instant::now();
    loop {
        let response = server.get(path).await;
        let served = response.headers().get("x-updraft-version").map(|v| v.to_str().unwrap().to_owned());
        if response.status() == status && (version.is_none() || served.as_deref() == version) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path} on {} never answered {status} from version {version:?}: {} from {served:?}",
            server.addr,
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An app of one wasm function behind `GET /echo`, its environment saying `build` (and
/// naming the secret `shared-password` with `secret`).
fn echo_app(dir: &std::path::Path, build: &str, secret: bool) {
    let secret = if secret { ", PASSWORD = { secret = \"shared-password\" }" } else { "" };
    let manifest = format!(
        "[app]\nname = \"shared\"\n\n[functions.echo]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
         env = {{ BUILD = \"{build}\"{secret} }}\ntriggers = [{{ http = \"GET,POST /echo\" }}]\n"
    );
    app_with_guest(dir, &manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_rollback_or_delete_on_one_node_is_live_on_every_node() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let (a, mut b) = two_nodes(&database);
    let app = tempfile::tempdir().unwrap();

    // Deployed on A: B serves it without having received the upload (it fetches the
    // code from the database).
    echo_app(app.path(), "1", false);
    a.deploy(app.path());
    wait_for_route(&a, "/echo", 200, Some("1")).await;
    let took = wait_for_route(&b, "/echo", 200, Some("1")).await;
    eprintln!("a deploy on one node was live on the other after {took:?}");
    b.wait_for_server_log("fetched an artifact from the cluster's database").await;

    echo_app(app.path(), "2", false);
    a.deploy(app.path());
    wait_for_route(&b, "/echo", 200, Some("2")).await;

    // Rolled back on B: A serves the old version again.
    b.cli_ok(&["rollback", "echo"]);
    wait_for_route(&a, "/echo", 200, Some("1")).await;

    // A secret set on A is known to B: a deploy on B that names it is accepted.
    set_secret(&a, "shared-password", "hunter2");
    echo_app(app.path(), "3", true);
    deploy_when_known(&b, app.path(), "shared-password").await;
    wait_for_route(&a, "/echo", 200, Some("3")).await;

    // A node that was down catches up when it starts.
    b.kill();
    echo_app(app.path(), "4", true);
    a.deploy(app.path());
    b.restart();
    wait_for_route(&b, "/echo", 200, Some("4")).await;

    // Deleted on A: gone from B.
    a.cli_ok(&["delete", "echo"]);
    wait_for_route(&b, "/echo", 404, None).await;
}

/// A cluster key in a file of `dir`.
fn cluster_key_file(dir: &std::path::Path, key: &str) -> String {
    let path = dir.join("cluster.key");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Sets secret `name` to `value` through `server`.
fn set_secret(server: &TestServer, name: &str, value: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["--endpoint", &server.url(""), "--data-dir"])
        .arg(server.data_dir.path())
        .args(["secrets", "set", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Deploys `dir` through `server`, retrying while it refuses for a secret it has not
/// heard of yet (the change reaches it within a second).
async fn deploy_when_known(server: &TestServer, dir: &std::path::Path, secret: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = server.cli(&["deploy", dir.to_str().unwrap()]);
        if output.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(secret) && Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cluster_key_every_node_opens_secrets_and_access_keys_without_copying_files() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = cluster_key_file(keys.path(), &"ab".repeat(32));
    // B gets no secrets.key: only the CLI's local admin token, for the test's calls.
    let [a, b]: [TestServer; 2] =
        start_nodes(&database, &["--cluster-key-file", &key], &[&[], &[]]).try_into().ok().unwrap();
    assert!(!b.data_dir.path().join("secrets.key").exists(), "the key lives sealed in the database");

    // A secret set on A opens on B: a deploy there that names it goes live.
    set_secret(&a, "shared-password", "hunter2");
    let app = tempfile::tempdir().unwrap();
    echo_app(app.path(), "1", true);
    deploy_when_known(&b, app.path(), "shared-password").await;
    wait_for_route(&a, "/echo", 200, Some("1")).await;

    // An access key made on A signs requests B accepts (B opened its sealed secret).
    let access_key = crate::lambda::access_key(&a);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = crate::lambda::boto3(&b, &access_key, &["status", "echo"]);
        if seen["status"] == 200 {
            break;
        }
        assert!(Instant::now() < deadline && seen["error"] == "UnrecognizedClientException", "{seen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The secrets key rotated on A: what B seals from now on (at once: a node takes the
    // cluster's current key before it seals) opens on A.
    a.cli_ok(&["secrets", "rotate-key"]);
    set_secret(&b, "second-password", "correct horse");
    let second = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"second\"\n\n[functions.second]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    env = { PASSWORD = { secret = \"second-password\" } }\n";
    app_with_guest(second.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    deploy_when_known(&a, second.path(), "second-password").await;
    let seen = crate::lambda::boto3(&a, &access_key, &["status", "second"]);
    assert_eq!(seen["status"], 200, "{seen}");

    // A node with another cluster key refuses to start, saying why.
    let wrong = cluster_key_file(keys.path(), &"cd".repeat(32));
    let c_dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(crate::harness::BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(c_dir.path())
        .args(["--database-url", database.url.as_str(), "--cluster-key-file", wrong.as_str()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = c.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("a node with the wrong cluster key started");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success() && stderr.contains("every node needs the same cluster key"), "{stderr}");
}

/// Reports each run to the witness on port `WITNESS`: an async invocation by its request
/// id, a schedule tick by its time and event id, a workflow task by its input's marker.
const WITNESSED: &str = r#"
import http.client
import os

connection = None

def handler(event, context):
    global connection
    if event.get("source") == "aws.events":
        seen = "tick-%s_%s" % (event["time"], event["id"])
    elif "marker" in event:
        seen = "task-%s" % event["marker"]
    else:
        seen = context.aws_request_id
    for _ in range(3):
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", int(os.environ["WITNESS"]), timeout=10)
            connection.request("GET", "/seen/%s" % seen)
            connection.getresponse().read()
            return {}
        except (OSError, http.client.HTTPException):
            connection = None
    raise RuntimeError("cannot reach the witness")
"#;

/// The manifest's tail: the witnessed function's grant, environment and schedule, the
/// echo function, and a workflow that waits 3 s and then runs the witnessed function.
const NODE_LOSS_APP: &str = r#"
env = { WITNESS = "PORT" }
concurrency = 20
triggers = [{ schedule = "rate(1 second)" }]

[functions.echo]
runtime = "wasm"
source = "fn.wasm"
triggers = [{ http = "GET /echo" }]

[workflows.slow]
definition = '''
{"StartAt": "Pause", "States": {
  "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Work"},
  "Work": {"Type": "Task", "Resource": "witnessed", "End": true,
           "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "MaxAttempts": 20}]}}}
'''
"#;

type Seen = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// Waits until `done` holds for what the witness saw.
async fn wait_for_witness(seen: &Seen, what: &str, done: impl Fn(&std::collections::HashMap<String, usize>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(&seen.lock().unwrap()) {
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The schedule ticks the witness saw: `time_id`.
fn ticks(seen: &std::collections::HashMap<String, usize>) -> Vec<String> {
    seen.keys().filter_map(|key| key.strip_prefix("tick-")).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_under_load_loses_nothing_acknowledged() {
    let _alone = crate::harness::HEAVY_LOAD.write().await;
    node_loss(&[]).await;
}

/// The same with the events in one NATS JetStream stream all three nodes share: the
/// dead node's events come back when their ack wait (3 s here) runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_under_load_loses_nothing_acknowledged_on_nats() {
    let _alone = crate::harness::HEAVY_LOAD.write().await;
    let url = std::env::var("UPDRAFT_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let stream = format!("UPDRAFT_CLUSTER_{}_{unique}", std::process::id());
    node_loss(&["--nats-url", &url, "--nats-stream", &stream, "--nats-ack-wait", "3s"]).await;
    let client = async_nats::connect(url).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(&stream).await;
}

/// Three nodes, async and sync load through all of them, one killed: nothing
/// acknowledged is lost. `queue` chooses where events wait (the database by default).
async fn node_loss(queue: &[&str]) {
    let Some(database) = TestDatabase::create() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = cluster_key_file(keys.path(), &"ef".repeat(32));
    let shared = [&["--cluster-key-file", key.as_str(), "--async-retry-delay", "100ms"], queue].concat();
    let [a, b, mut c]: [TestServer; 3] = start_nodes(&database, &shared, &[&[], &[], &[]]).try_into().ok().unwrap();

    let (port, seen) = crate::async_invoke::witness().await;
    let extra = format!(
        "allowed_outbound_hosts = [\"127.0.0.1:{port}\"]\n{}",
        NODE_LOSS_APP.replace("PORT", &port.to_string())
    );
    let app = crate::async_invoke::python_app("witnessed", &extra, WITNESSED);
    std::fs::write(app.path().join("fn.wasm"), updraft_test_programs::bytes(updraft_test_programs::ECHO)).unwrap();
    a.deploy(app.path());
    for node in [&a, &b, &c] {
        wait_for_route(node, "/echo", 200, None).await;
    }

    // A workflow execution driven by C, waiting when C dies.
    let started = c
        .api(Method::POST, "/v1/workflows/slow/executions")
        .json(&serde_json::json!({"marker": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    let execution = started["execution_id"].as_str().unwrap().to_owned();

    // Async events through all three nodes; C is killed right after the last one is
    // acknowledged, with many of them still leased to it.
    let mut senders = Vec::new();
    for node in [&a, &b, &c] {
        for _ in 0..4 {
            let request = node.api(Method::POST, "/v1/functions/witnessed/invoke-async").json(&serde_json::json!({}));
            senders.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..50 {
                    let response = request.try_clone().unwrap().send().await.unwrap();
                    assert_eq!(response.status(), 202);
                    let accepted: Value = response.json().await.unwrap();
                    ids.push(accepted["id"].as_str().unwrap().to_owned());
                }
                ids
            }));
        }
    }
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    c.kill();
    let killed = Instant::now();

    // Sync requests to the survivors keep succeeding while C is dead.
    for _ in 0..50 {
        for node in [&a, &b] {
            assert_eq!(node.get("/echo").await.status(), 200, "{} answered while C was dead", node.addr);
        }
    }

    // Every acknowledged event runs (C's leases are taken over once it is declared
    // dead) and leaves a success record.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing: Vec<&String> = {
            let seen = seen.lock().unwrap();
            accepted.iter().filter(|id| !seen.contains_key(*id)).collect()
        };
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            // Say where the undelivered events stand, so a failure tells slowness from loss.
            let records = crate::execution::records(&a, "witnessed").await;
            let status = |id: &str| {
                records.iter().find(|r| r["id"] == id).map_or("no record".to_owned(), |r| r["status"].to_string())
            };
            let sample: Vec<String> = missing.iter().take(10).map(|id| format!("{id}: {}", status(id))).collect();
            panic!(
                "{} of {} acknowledged events never reached the witness after {:?}; for instance {sample:#?}",
                missing.len(),
                accepted.len(),
                killed.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("all {} acknowledged events delivered {:?} after the kill", accepted.len(), killed.elapsed());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = crate::execution::records(&a, "witnessed").await;
        let succeeded: std::collections::HashSet<&str> =
            records.iter().filter(|r| r["status"] == "success").filter_map(|r| r["id"].as_str()).collect();
        let missing = accepted.iter().filter(|id| !succeeded.contains(id.as_str())).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} acknowledged events have no success record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // C's workflow execution finishes, resumed by a survivor from its last stored step.
    wait_for_execution_to_succeed(&a, &execution).await;
    assert!(seen.lock().unwrap().contains_key("task-slow"));

    // Schedules keep firing, each tick once for the whole cluster.
    let before = ticks(&seen.lock().unwrap()).len();
    wait_for_witness(&seen, "two more ticks after the kill", |seen| ticks(seen).len() >= before + 2).await;
    let ticks = ticks(&seen.lock().unwrap());
    let mut times: Vec<&str> = ticks.iter().map(|tick| tick.split_once('_').unwrap().0).collect();
    let count = times.len();
    times.sort_unstable();
    times.dedup();
    assert_eq!(times.len(), count, "a tick fired more than once: {ticks:?}");
}

/// Waits until workflow execution `id`, still running meanwhile, has succeeded.
async fn wait_for_execution_to_succeed(server: &TestServer, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report: Value =
            server.api(Method::GET, &format!("/v1/executions/{id}")).send().await.unwrap().json().await.unwrap();
        if report["status"] == "succeeded" {
            return;
        }
        assert!(Instant::now() < deadline && report["status"] == "running", "{report:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three nodes sharing one database and the cluster key in file `key`.
fn three_nodes(database: &TestDatabase, key: &str) -> Vec<TestServer> {
    start_nodes(database, &["--cluster-key-file", key], &[&[], &[], &[]])
}

/// `GET /echo` on `server` with `headers`: the status, the node that ran it, the request
/// id and the echoed request.
async fn echo(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String, String, String) {
    let mut request = server.http.get(server.url("/echo"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (node, id) = (header("x-updraft-node"), header("x-updraft-request-id"));
    (response.status().as_u16(), node, id, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_run_on_their_functions_home_node_and_elsewhere_when_it_dies() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = cluster_key_file(keys.path(), &"12".repeat(32));
    let mut nodes = three_nodes(&database, &key);
    let app = tempfile::tempdir().unwrap();
    echo_app(app.path(), "1", false);
    nodes[0].deploy(app.path());
    for node in &nodes {
        wait_for_route(node, "/echo", 200, None).await;
    }

    // Once every node knows the others, every node sends the function's requests to
    // the same home.
    let deadline = Instant::now() + Duration::from_secs(20);
    let home = loop {
        let mut ran = Vec::new();
        for node in &nodes {
            ran.push(echo(node, &[]).await.1);
        }
        if ran.iter().all(|id| *id == ran[0]) {
            break ran[0].clone();
        }
        assert!(Instant::now() < deadline, "the nodes never agreed on a home: {ran:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Forwarded with the request id and the caller's trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let mut sent = Vec::new();
    for node in &nodes {
        for _ in 0..5 {
            let (status, ran, id, echoed) =
                echo(node, &[("traceparent", &traceparent), ("x-updraft-forwarded", "a;b;1;00")]).await;
            assert_eq!((status, ran.as_str()), (200, home.as_str()), "{echoed}");
            assert!(echoed.contains(&format!("x-updraft-request-id: {id}")), "{echoed}");
            // Updraft's own headers are its word: no proof reaches the function.
            assert!(!echoed.contains("x-updraft-forwarded"), "{echoed}");
            sent.push(id);
        }
    }
    // A body goes along, and comes back from the home.
    let mut is_home = Vec::new();
    for node in &nodes {
        let view: Value = node.api(Method::GET, "/v1/status").send().await.unwrap().json().await.unwrap();
        is_home.push(view["node_id"] == home.as_str());
    }
    let non_home = &nodes[is_home.iter().position(|is_home| !is_home).unwrap()];
    let response = non_home.http.post(non_home.url("/echo")).body("a body for the home").send().await.unwrap();
    assert_eq!(response.headers()["x-updraft-node"], home.as_str());
    assert!(response.text().await.unwrap().contains("a body for the home"));
    // A large one streams there whole, in pieces as it arrives (no length declared).
    let big: Vec<u8> = (0..(3 << 20)).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = non_home
        .http
        .post(non_home.url("/echo"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers()["x-updraft-node"].to_str().unwrap()),
        (200, home.as_str())
    );
    let echoed = response.bytes().await.unwrap();
    assert!(echoed.windows(big.len()).any(|window| window == big.as_slice()), "the body arrived whole");
    // Over the 6 MiB limit it is the client's error, as on the home itself: a 413 (or
    // the connection closed on a client still sending), never the function's answer.
    let oversized = non_home.http.post(non_home.url("/echo")).body(vec![b'x'; 7 << 20]).send().await;
    if let Ok(response) = oversized {
        assert_eq!(response.status(), 413);
    }

    // A forged proof from a client is not believed: the id is this cluster's own.
    let (_, _, id, _) =
        echo(&nodes[1], &[("x-updraft-forwarded", &format!("{home};forged-id;99999999999999;00"))]).await;
    assert_ne!(id, "forged-id");

    // The records say the home ran them, under the caller's trace.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = crate::execution::records(&nodes[0], "echo").await;
        let ours: Vec<&Value> = records.iter().filter(|r| sent.iter().any(|id| r["id"] == id.as_str())).collect();
        if ours.len() == sent.len() {
            assert!(ours.iter().all(|r| r["node"] == home.as_str() && r["trace_id"] == trace), "{ours:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "{} of {} records", ours.len(), sent.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The home dies: the others keep answering, running the requests themselves or on
    // the next home.
    let dead = is_home.iter().position(|is_home| *is_home).unwrap();
    nodes[dead].kill();
    for _ in 0..20 {
        for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != dead) {
            let (status, ran, _, _) = echo(node, &[]).await;
            assert_eq!(status, 200, "node {i} while the home is dead");
            assert_ne!(ran, home);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_in_a_stopped_node_hands_its_workflow_executions_to_the_others() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let (a, mut b) = two_nodes(&database);
    let app = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"pause\"\n\n[functions.echo]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\n\
                    [workflows.pause]\ndefinition = '''\n{\"StartAt\": \"Pause\", \"States\": {\
                    \"Pause\": {\"Type\": \"Wait\", \"Seconds\": 2, \"Next\": \"Done\"},\
                    \"Done\": {\"Type\": \"Succeed\"}}}\n'''\n";
    app_with_guest(app.path(), manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    a.deploy(app.path());
    // B learns of the workflow with the deploy.
    let deadline = Instant::now() + Duration::from_secs(20);
    let execution = loop {
        let response =
            b.api(Method::POST, "/v1/workflows/pause/executions").json(&serde_json::json!({})).send().await.unwrap();
        if response.status() == 202 {
            let started: Value = response.json().await.unwrap();
            break started["execution_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "B never knew the workflow: {}", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // B is scaled in while its execution waits: it leaves, and A finishes the execution.
    let status = b.terminate();
    assert!(status.success(), "{status}");
    let b_address = format!("http://{}", b.addr);
    wait_for_nodes(&a, "B left", |view| node(view, &b_address).is_some_and(|n| n["state"] == "left")).await;
    wait_for_execution_to_succeed(&a, &execution).await;
}

/// Fetches the URL it is given: held at the test's gate for as long as the test wants.
const GATED: &str = r#"
import urllib.request

def handler(event, context):
    with urllib.request.urlopen(event["url"], timeout=60) as response:
        return {"fetched": response.read().decode()}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_times_the_limit_over_three_nodes_admits_exactly_the_limit() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let Some(database) = TestDatabase::create() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = cluster_key_file(keys.path(), &"34".repeat(32));
    let nodes: Vec<std::sync::Arc<TestServer>> = three_nodes(&database, &key).into_iter().map(Into::into).collect();
    let gate = crate::execution::Gate::start().await;
    let extra = format!("timeout = \"60s\"\nallowed_outbound_hosts = [\"127.0.0.1:{}\"]\nconcurrency = 3\n", gate.port);
    let app = crate::async_invoke::python_app("gated", &extra, GATED);
    nodes[0].deploy(app.path());
    for node in &nodes[1..] {
        node.wait_for_server_log("took another node's change function=gated").await;
    }

    // 30 invocations at once, 10 through each node (the control plane's invoke runs
    // where it is received: nothing is forwarded to one home).
    let throttled = std::sync::Arc::new(AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{}/", gate.port);
    let mut calls = Vec::new();
    for i in 0..30 {
        let (node, throttled) = (nodes[i % 3].clone(), throttled.clone());
        let event = serde_json::json!({ "url": url });
        calls.push(tokio::spawn(async move {
            let response = node.api(Method::POST, "/v1/functions/gated/invoke").json(&event).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            if status == 429 {
                assert!(body.contains("concurrency limit of 3"), "{body}");
                throttled.fetch_add(1, Ordering::SeqCst);
            }
            (status, body)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(gate.arrived.load(Ordering::SeqCst) == 3 && throttled.load(Ordering::SeqCst) == 27) {
        assert!(
            Instant::now() < deadline && gate.arrived.load(Ordering::SeqCst) <= 3,
            "{} at the gate, {} throttled",
            gate.arrived.load(Ordering::SeqCst),
            throttled.load(Ordering::SeqCst),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gate.release.add_permits(3);
    let mut ok = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(ok, 3, "exactly the limit ran, across the cluster");
    assert_eq!(gate.arrived.load(Ordering::SeqCst), 3);

    // Given back when idle, the permits serve a node that had none.
    gate.release.add_permits(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = nodes[2]
            .api(Method::POST, "/v1/functions/gated/invoke")
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline && response.status() == 429, "{}", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_home_refuses_forwarded_requests_and_the_sender_runs_them() {
    // Alone: beside the other cluster tests' loads on two cores, its two nodes once went
    // a whole minute without both serving as a cluster (cause not found; the heartbeat
    // declares a node dead after 2 s of silence).
    let _alone = crate::harness::HEAVY_LOAD.write().await;
    let Some(database) = TestDatabase::create() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = cluster_key_file(keys.path(), &"56".repeat(32));
    // The small node runs one invocation at a time: with one running, it is overloaded.
    let [small, big]: [TestServer; 2] =
        start_nodes(&database, &["--cluster-key-file", &key], &[&["--max-instances", "1"], &[]])
            .try_into()
            .ok()
            .unwrap();
    let small_id: Value = small.api(Method::GET, "/v1/status").send().await.unwrap().json().await.unwrap();
    let small_id = small_id["node_id"].as_str().unwrap().to_owned();

    let app = tempfile::tempdir().unwrap();
    let mut manifest = String::from("[app]\nname = \"many\"\n\n");
    for i in 0..8 {
        manifest.push_str(&format!(
            "[functions.f{i}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{{ http = \"GET /f{i}/{{action}}\" }}]\n\n"
        ));
    }
    app_with_guest(app.path(), &manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    small.deploy(app.path());
    let served_by = |server: &TestServer, path: String| {
        let request = server.http.get(server.url(&path));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.headers()["x-updraft-node"].to_str().unwrap().to_owned()
        }
    };
    // A function whose home is the small node, once both nodes know each other (a
    // generous bound: the suite's builds may hold both cores meanwhile).
    let deadline = Instant::now() + Duration::from_secs(60);
    let function = loop {
        let mut found = None;
        for i in 0..8 {
            let path = format!("/f{i}/echo");
            if big.get(&path).await.status() == 200
                && served_by(&big, path.clone()).await == small_id
                && served_by(&small, path).await == small_id
            {
                found = Some(format!("f{i}"));
                break;
            }
        }
        if let Some(function) = found {
            break function;
        }
        assert!(Instant::now() < deadline, "no function is homed on the small node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The small node busy with its one invocation: what the big node forwards to it
    // comes back refused, and the big node runs it.
    let sleeper = tokio::spawn(served_by(&small, format!("/{function}/sleep?ms=2000")));
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = format!("updraft_instances{{function=\"{function}\",state=\"busy\"}} 1");
    while !small.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap().contains(&busy) {
        assert!(Instant::now() < deadline, "the sleeper never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let big_id = served_by(&big, format!("/{function}/echo")).await;
    assert_ne!(big_id, small_id, "the overloaded home ran a forwarded request");
    assert_eq!(sleeper.await.unwrap(), small_id);
    // Free again, the home takes its requests back. The sleeper saw its answer's head;
    // the invocation ends (and stops counting against the home) once the body has gone
    // out whole, a moment later.
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_by(&big, format!("/{function}/echo")).await != small_id {
        assert!(Instant::now() < deadline, "the home never took its requests back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_running_when_another_node_deploys_finishes_on_its_version() {
    let _cluster = crate::harness::HEAVY_LOAD.read().await;
    let Some(database) = TestDatabase::create() else { return };
    let (a, b) = two_nodes(&database);
    let app = tempfile::tempdir().unwrap();
    let manifest = |build: &str| {
        format!(
            "[app]\nname = \"slow\"\n\n[functions.slow]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
             env = {{ BUILD = \"{build}\" }}\ntriggers = [{{ http = \"GET /slow/{{action}}\" }}]\n"
        )
    };
    app_with_guest(app.path(), &manifest("1"), &updraft_test_programs::bytes(updraft_test_programs::ECHO));
    a.deploy(app.path());
    wait_for_route(&b, "/slow/echo", 200, Some("1")).await;

    // A request runs (wherever B sends it) while A deploys version 2.
    let running = tokio::spawn({
        let request = b.http.get(b.url("/slow/sleep?ms=1500"));
        async move { request.send().await.unwrap() }
    });
    let busy = "state=\"busy\"} 1";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut metrics = String::new();
        for node in [&a, &b] {
            metrics.push_str(&node.api(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap());
        }
        if metrics.lines().any(|line| line.starts_with("updraft_instances{function=\"slow\"") && line.ends_with(busy)) {
            break;
        }
        assert!(Instant::now() < deadline, "the slow request never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(app.path().join("updraft.toml"), manifest("2")).unwrap();
    a.deploy(app.path());
    wait_for_route(&a, "/slow/echo", 200, Some("2")).await;
    wait_for_route(&b, "/slow/echo", 200, Some("2")).await;

    // Both nodes serve version 2 now; the request that was running ends on version 1.
    let response = running.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-updraft-version"], "1");
    assert_eq!(response.text().await.unwrap(), "slept 1500");
}
