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

/// Two servers on `database`, each with its own data dir.
fn two_nodes(database: &TestDatabase) -> (TestServer, TestServer) {
    let mut args = vec!["--database-url", database.url.as_str()];
    args.extend(CLUSTER_ARGS);
    let a = TestServer::start_with(&args);
    // Until the cluster shares its secrets key (one of the cluster issue's points), a
    // second node needs a copy of the first one's. API keys live in the database, so
    // the admin key the first node made works on both.
    let b_dir = tempfile::tempdir().unwrap();
    for file in ["secrets.key", "admin-token"] {
        std::fs::copy(a.data_dir.path().join(file), b_dir.path().join(file)).unwrap();
    }
    let b = TestServer::start_in_with(b_dir, &args);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_database_form_a_cluster_and_a_silent_node_is_declared_dead() {
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
         env = {{ BUILD = \"{build}\"{secret} }}\ntriggers = [{{ http = \"GET /echo\" }}]\n"
    );
    app_with_guest(dir, &manifest, &updraft_test_programs::bytes(updraft_test_programs::ECHO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_rollback_or_delete_on_one_node_is_live_on_every_node() {
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
    let output = std::process::Command::new(crate::harness::BIN)
        .args(["--endpoint", &a.url(""), "--data-dir"])
        .arg(a.data_dir.path())
        .args(["secrets", "set", "shared-password"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"hunter2")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    echo_app(app.path(), "3", true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = b.cli(&["deploy", app.path().to_str().unwrap()]);
        if output.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("shared-password") && Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
