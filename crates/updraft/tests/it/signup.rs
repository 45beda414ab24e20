//! `examples/signup` end to end: the seed's chain, against a real PostgreSQL and a
//! local SMTP sink, with a double submission, a busy database and a refused sign-up.
//! Every effect a user can see happens once.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::events::{finished, history_kinds, records};
use crate::harness::{TestServer, repo_root};
use crate::json;

/// A PostgreSQL database of the test's own, dropped at the end.
struct Database {
    name: String,
}

impl Database {
    fn create() -> Self {
        let name = format!("signup_{}", uuid_ish());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn query(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

fn psql(database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql (PostgreSQL's client) runs");
    assert!(output.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn uuid_ish() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{nanos}", std::process::id())
}

/// The SMTP sink (`smtp_sink.py`): every message it got, as JSON.
struct Sink {
    child: Child,
    port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl Sink {
    fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP sink");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the sink says where it listens").unwrap();
        let port = first.strip_prefix("listening ").and_then(|port| port.parse().ok()).expect(&first);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(serde_json::from_str::<Value>(&line).unwrap());
            }
        });
        Self { child, port, messages }
    }

    fn to(&self, address: &str) -> Vec<Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["to"].as_array().unwrap().contains(&json!(address)))
            .cloned()
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `examples/signup` pointed at `database` and the sink.
fn signup_app(database: &Database, sink: &Sink) -> tempfile::TempDir {
    let example = repo_root().join("examples/signup");
    let dir = tempfile::tempdir().unwrap();
    crate::harness::copy_dir(&example, dir.path());
    let manifest = std::fs::read_to_string(example.join("updraft.toml"))
        .unwrap()
        .replace("postgres://postgres@127.0.0.1:5432/postgres", &database.url())
        .replace("127.0.0.1:2525", &format!("127.0.0.1:{}", sink.port));
    std::fs::write(dir.path().join("updraft.toml"), manifest).unwrap();
    dir
}

/// POSTs the sign-up form (answered once `user.signed_up` is stored).
async fn sign_up(server: &TestServer, email: &str, name: &str) {
    let response =
        server.http.post(server.url("/signup")).json(&json!({"email": email, "name": name})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer = json(response).await;
    assert_eq!(answer["email"], email.to_lowercase(), "{answer}");
}

/// The onboarding executions `enroll` started for `email`, once there are `count`.
async fn executions_for(server: &TestServer, email: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = server.cli_ok(&["logs", "enroll"]);
        let suffix = format!(" for {email}");
        let ids: Vec<String> = logs
            .lines()
            .filter_map(|line| line.split("started onboarding execution ").nth(1))
            .filter_map(|rest| rest.strip_suffix(&suffix))
            .map(str::to_owned)
            .collect();
        if ids.len() >= count {
            return ids;
        }
        assert!(Instant::now() < deadline, "enroll never started {count} executions for {email}:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A transaction holding an exclusive lock on `table` until `release`.
struct TableLock(Child, ChildStdin);

impl TableLock {
    fn take(database: &Database, table: &str) -> Self {
        let mut child = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &database.name, "-v", "ON_ERROR_STOP=1", "-qtA"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';").unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child, stdin)
    }

    fn release(mut self) {
        writeln!(self.1, "COMMIT;").unwrap();
        drop(self.1);
        assert!(self.0.wait().unwrap().success());
    }
}

#[tokio::test]
async fn the_signup_example_has_each_effect_once() {
    let database = Database::create();
    let sink = Sink::start();
    let app = signup_app(&database, &sink);
    let server = TestServer::start_with(&["--async-retry-delay", "1s"]);
    server.deploy(app.path());

    // Ada's double click sends the form twice: two messages, two executions, one
    // account, one mail.
    sign_up(&server, "Ada@Example.com", "Ada").await;
    sign_up(&server, "ada@example.com", "Ada").await;
    for id in &executions_for(&server, "ada@example.com", 2).await {
        let execution = finished(&server, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
    }

    // Bob signs up while the users table is locked: the RecordUser step fails as busy and
    // is retried until the lock goes.
    let lock = TableLock::take(&database, "users");
    sign_up(&server, "bob@example.com", "Bob").await;
    let bob = executions_for(&server, "bob@example.com", 1).await.remove(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let execution = json(server.api(Method::GET, &format!("/v1/executions/{bob}")).send().await.unwrap()).await;
        if history_kinds(&execution).contains(&("TaskRetried".to_owned(), "RecordUser".to_owned())) {
            break;
        }
        assert!(Instant::now() < deadline, "RecordUser was never retried: {execution:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.release();
    let execution = finished(&server, &bob).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let failures = execution["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "TaskFailed").count();
    assert!(failures >= 1, "{execution:#}");
    assert!(execution["history"].to_string().contains("DatabaseBusy"), "{execution:#}");

    // Eve is refused: the workflow's failure path writes it down and fails.
    sign_up(&server, "eve@refused.example", "Eve").await;
    let eve = executions_for(&server, "eve@refused.example", 1).await.remove(0);
    let execution = finished(&server, &eve).await;
    assert_eq!((execution["status"].as_str(), execution["error"].as_str()), (Some("failed"), Some("SignupRefused")));
    assert!(history_kinds(&execution).iter().any(|(_, state)| state == "RefuseSignup"), "{execution:#}");

    // Not a sign-up at all: the function's own 400, nothing started.
    let bad = server.http.post(server.url("/signup")).body("name=ada").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Every execution has finished, so every effect is in: count what the users saw.
    assert_eq!(
        database.query("SELECT email || ' ' || name FROM users ORDER BY email"),
        "ada@example.com Ada\nbob@example.com Bob"
    );
    assert_eq!(database.query("SELECT email FROM refused_signups"), "eve@refused.example");
    assert_eq!(database.query("SELECT count(*) FROM welcome_emails WHERE sent_at IS NOT NULL"), "2");
    let (to_ada, to_bob) = (sink.to("ada@example.com"), sink.to("bob@example.com"));
    assert_eq!((to_ada.len(), to_bob.len()), (1, 1), "{:#?}", sink.messages.lock().unwrap());
    assert!(to_ada[0]["data"].as_str().unwrap().contains("Subject: Welcome, Ada!"), "{to_ada:#?}");
    assert!(sink.to("eve@refused.example").is_empty());
}

/// Calls this server's API from inside a function with the token its grants gave it.
const PROBER: &str = r#"
import os, urllib.request, urllib.error

def handler(event, context):
    results = {"has_token": "UPDRAFT_TOKEN" in os.environ}
    for name, method, path, token in event["calls"]:
        token = token or os.environ.get("UPDRAFT_TOKEN", "")
        request = urllib.request.Request(os.environ.get("UPDRAFT_API_URL", "http://127.0.0.1:1") + path,
                                         data=b"{}" if method == "POST" else None, method=method,
                                         headers={"Authorization": "Bearer " + token, "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                results[name] = response.status
        except urllib.error.HTTPError as error:
            results[name] = error.code
        except OSError as error:
            results[name] = str(error)
    return results
"#;

#[tokio::test]
async fn a_function_token_does_what_its_grants_say_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let function = |name: &str, extra: &str| {
        format!("[functions.{name}]\nruntime = \"python3\"\nhandler = \"prober.handler\"\nsource = \"src\"\n{extra}\n")
    };
    let manifest = [
        "[app]\nname = \"grants\"\n".to_owned(),
        function("prober", "publishes = [\"allowed\"]\nstarts = [\"flow\"]"),
        function("plain", ""),
        function("listener", "triggers = [{ topic = \"allowed\" }, { topic = \"other\" }]"),
        "[workflows.flow]\ndefinition = '{\"StartAt\": \"P\", \"States\": {\"P\": {\"Type\": \"Pass\", \"End\": true}}}'\n".to_owned(),
        "[workflows.other-flow]\ndefinition = '{\"StartAt\": \"P\", \"States\": {\"P\": {\"Type\": \"Pass\", \"End\": true}}}'\n".to_owned(),
    ]
    .join("\n");
    std::fs::write(dir.path().join("updraft.toml"), manifest).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/prober.py"), PROBER).unwrap();
    let server = TestServer::start();
    server.deploy(dir.path());

    let calls = json!({"calls": [
        ["publish_granted", "POST", "/v1/topics/allowed", null],
        ["start_granted", "POST", "/v1/workflows/flow/executions", null],
        ["publish_other", "POST", "/v1/topics/other", null],
        ["start_other", "POST", "/v1/workflows/other-flow/executions", null],
        ["list_functions", "GET", "/v1/functions", null],
        ["delete_function", "DELETE", "/v1/functions/listener", null],
        ["forged", "POST", "/v1/topics/allowed", "updf_prober_00"],
    ]});
    let invoke =
        |function: &str| server.api(Method::POST, &format!("/v1/functions/{function}/invoke")).json(&calls).send();
    let probed = json(invoke("prober").await.unwrap()).await;
    assert_eq!(
        probed,
        json!({
            "has_token": true,
            "publish_granted": 202,
            "start_granted": 202,
            "publish_other": 403,
            "start_other": 403,
            "list_functions": 403,
            "delete_function": 403,
            "forged": 401,
        })
    );
    // No grants, no token (and no way to the API).
    let plain = json(invoke("plain").await.unwrap()).await;
    assert_eq!(plain["has_token"], false, "{plain:#}");
    // The granted publish really went out.
    records(&server, "listener", "topic", 1).await;
    assert_eq!(json(server.api(Method::GET, "/v1/functions/listener").send().await.unwrap()).await["name"], "listener");
}
