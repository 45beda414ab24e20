//! End-to-end tests: the real `updraft` binary, real components, real HTTP.

// End-to-end tests run the real binary and real toolchains as child processes.
#![allow(clippy::disallowed_methods)]

mod async_invoke;
mod bounds;
mod build;
mod canary;
mod cluster;
mod dashboard;
mod deployment;
mod escape;
mod events;
mod execution;
mod fairness;
mod harness;
mod lambda;
mod layers;
mod logs;
mod recursion;
mod sam;
mod secrets;
mod signup;
mod snapshots;
mod templates;
mod terminal;
mod tidy;
mod traces;
mod wasip3;
mod web;

use std::path::Path;
use std::time::Duration;

use harness::{TestServer, app_with_guest, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use updraft_test_programs as programs;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn hello_example_answers_on_both_routes() {
    let server = TestServer::start();
    let out = server.deploy(&repo_root().join("examples/hello"));
    assert!(out.contains("hello") && out.contains("v1") && out.contains("deployed"), "{out}");

    let response = server.get("/hello?name=Ada").await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    assert_eq!(response.text().await.unwrap(), "Hello, Ada!\n");
    assert_eq!(server.get("/hello/Grace%20Hopper").await.text().await.unwrap(), "Hello, Grace Hopper!\n");
    assert_eq!(server.get("/hello").await.text().await.unwrap(), "Hello, world!\n");

    // The function's output is in its logs, under the id the caller was given.
    server.wait_for_function_log("hello", &format!("{request_id} stdout greeting Ada")).await;

    let wrong_method = server.http.post(server.url("/hello")).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "GET");
    assert!(wrong_method.headers().contains_key("x-updraft-request-id"));
    assert_eq!(json(wrong_method).await["error"]["code"], "method_not_allowed");

    let unknown = server.get("/nowhere").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.headers().contains_key("x-updraft-request-id"));
    assert_eq!(json(unknown).await["error"]["code"], "route_not_found");
}

#[tokio::test]
async fn rest_api_example_keeps_notes() {
    let server = TestServer::start();
    server.deploy(&repo_root().join("examples/rest-api"));
    let created = server.http.post(server.url("/notes")).body(r#"{"text":"buy milk"}"#).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let note = json(created).await;
    let id = note["id"].as_u64().unwrap();
    assert_eq!(note["text"], "buy milk");

    let fetched = json(server.get(&format!("/notes/{id}")).await).await;
    assert_eq!(fetched["text"], "buy milk");
    let updated =
        server.http.put(server.url(&format!("/notes/{id}"))).body(r#"{"text":"buy oat milk"}"#).send().await.unwrap();
    assert_eq!(json(updated).await["text"], "buy oat milk");
    let list = json(server.get("/notes").await).await;
    assert_eq!(list["notes"].as_array().unwrap().len(), 1);

    let bad = server.http.post(server.url("/notes")).body("not json").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let deleted = server.http.delete(server.url(&format!("/notes/{id}"))).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.get(&format!("/notes/{id}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_control_plane_needs_the_admin_key() {
    let server = TestServer::start();
    let token_file = server.data_dir.path().join("admin-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let missing = server.get("/v1/functions").await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(missing).await["error"]["code"], "unauthorized");
    let wrong = server.http.get(server.url("/v1/functions")).bearer_auth("upd_nope_0000").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = server.api(Method::GET, "/v1/functions").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);

    // UPDRAFT_TOKEN overrides the token file.
    let output = std::process::Command::new(harness::BIN)
        .args(["--endpoint", &server.url(""), "--data-dir"])
        .arg(server.data_dir.path())
        .arg("ls")
        .env("UPDRAFT_TOKEN", "upd_wrong_1234")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not valid"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The key is stored only as a hash.
    let db = std::fs::read(server.data_dir.path().join("updraft.db")).unwrap();
    let token = server.token();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()), "the plain key is not in the database");
}

#[tokio::test]
async fn versions_are_immutable_and_rollback_serves_an_older_one() {
    let server = TestServer::start();
    let app = tempfile::tempdir().unwrap();
    let manifest = |greeting: &str| {
        format!(
            "[app]\nname = \"greeter\"\n\n[functions.greeter]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\nenv = {{ GREETING = \"{greeting}\" }}\ntriggers = [{{ http = \"GET /greet/{{*rest}}\" }}]\n"
        )
    };
    let echo = programs::bytes(programs::ECHO);
    app_with_guest(app.path(), &manifest("one"), &echo);
    assert!(server.deploy(app.path()).contains("v1     deployed"));
    assert_eq!(server.get("/greet/env?name=GREETING").await.text().await.unwrap(), "one");

    // Same manifest and code: nothing changes.
    assert!(server.deploy(app.path()).contains("v1     unchanged"));

    std::fs::write(app.path().join("updraft.toml"), manifest("two")).unwrap();
    assert!(server.deploy(app.path()).contains("v2     deployed"));
    let response = server.get("/greet/env?name=GREETING").await;
    assert_eq!(response.headers()["x-updraft-version"], "2");
    assert_eq!(response.text().await.unwrap(), "two");

    let versions: Value = serde_json::from_str(&server.cli_ok(&["--output", "json", "versions", "greeter"])).unwrap();
    let numbers: Vec<u64> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2, 1]);

    assert!(server.cli_ok(&["rollback", "greeter"]).contains("now serves version 1"));
    assert_eq!(server.get("/greet/env?name=GREETING").await.text().await.unwrap(), "one");
    assert!(server.cli_ok(&["rollback", "greeter", "--to", "2"]).contains("now serves version 2"));
    assert_eq!(server.get("/greet/env?name=GREETING").await.text().await.unwrap(), "two");

    let missing = server.cli(&["rollback", "greeter", "--to", "9"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no version 9"));

    server.cli_ok(&["delete", "greeter"]);
    assert_eq!(server.get("/greet/env").await.status(), StatusCode::NOT_FOUND);
    let gone = server.cli(&["describe", "greeter"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}

fn guest_manifest(name: &str, extra: &str) -> String {
    format!(
        "[app]\nname = \"{name}\"\n\n[functions.{name}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n{extra}\ntriggers = [{{ http = \"* /{name}/{{*rest}}\" }}]\n"
    )
}

#[tokio::test]
async fn guest_failures_map_to_gateway_errors() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    for (name, guest, extra) in [
        ("spin", programs::SPIN, "timeout = \"300ms\""),
        ("trap", programs::TRAP, ""),
        ("bomb", programs::MEMORY_BOMB, "memory = \"32MiB\""),
        ("echo", programs::ECHO, ""),
    ] {
        let dir = root.path().join(name);
        app_with_guest(&dir, &guest_manifest(name, extra), &programs::bytes(guest));
        server.deploy(&dir);
    }

    let (spun, echoed) = tokio::join!(server.get("/spin/x"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.get("/echo/x").await
    });
    assert_eq!(spun.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(echoed.status(), StatusCode::OK, "other functions answer while one spins");
    let request_id = spun.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    assert_eq!(json(spun).await["error"]["code"], "function_timeout");
    // The request id is in the server's own log too.
    server.wait_for_server_log(&request_id).await;

    let trapped = server.get("/trap/x").await;
    assert_eq!(trapped.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json(trapped).await["error"]["code"], "function_trapped");
    let bombed = server.get("/bomb/x").await;
    assert_eq!(bombed.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json(bombed).await["error"]["code"], "function_out_of_memory");

    // Like curl with a large body: the client announces the size and waits for the
    // go-ahead, so the 413 comes before any of the body is sent.
    let head = raw_head(&server.addr, "POST /echo/x", 6 * 1024 * 1024 + 1, None).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("payload_too_large"), "{head}");
    let at_limit = server.http.post(server.url("/echo/x")).body(vec![b'a'; 1024 * 1024]).send().await.unwrap();
    assert_eq!(at_limit.status(), StatusCode::OK);

    // The server is fine after all of that.
    assert_eq!(server.get("/echo/env?name=HOME").await.text().await.unwrap(), "<unset>");
}

// Multi-threaded: the latch answers the guest while the test reads its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_components_stream_chunked_answers_and_a_trap_mid_stream_cuts_them() {
    let server = TestServer::start();
    let (port, _latch) = crate::lambda::latch().await;
    let dir = tempfile::tempdir().unwrap();
    // One at a time: a client that has read an answer to its end finds the instance free.
    let extra = format!("timeout = \"10s\"\nconcurrency = 1\nallowed_outbound_hosts = [\"127.0.0.1:{port}\"]");
    app_with_guest(dir.path(), &guest_manifest("stream", &extra), &programs::bytes(programs::STREAM));
    server.deploy(dir.path());
    let latch = format!("http://127.0.0.1:{port}/wait");
    let release = format!("http://127.0.0.1:{port}/release");

    // The first chunk reaches the client while the guest waits on the latch, which the
    // client opens only once it has read it: held whole, the guest would wait until its
    // timeout.
    let mut answer = server.get(&format!("/stream/chunks?latch={latch}")).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "text/plain");
    let mut received = Vec::new();
    while !received.ends_with(b"first\n") {
        received.extend_from_slice(&answer.chunk().await.unwrap().expect("the first chunk"));
    }
    reqwest::get(&release).await.unwrap();
    while let Some(chunk) = answer.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, b"first\nlast\n");
    let next = server.get("/stream/many?chunks=1&size=3").await;
    assert_eq!(next.status(), StatusCode::OK, "the instance and its permit are back before the body ends");

    // A trap after the head cuts the body: the client sees an error, not a short
    // answer, and the invocation is recorded as the trap it was.
    let mut trapped = server.get(&format!("/stream/trap?latch={latch}")).await;
    assert_eq!(trapped.status(), StatusCode::OK);
    assert_eq!(trapped.chunk().await.unwrap().expect("the first chunk"), "partial\n");
    reqwest::get(&release).await.unwrap();
    assert!(trapped.chunk().await.is_err(), "a cut body must not read as complete");
    let records = crate::execution::wait_for_records(&server, "stream", 3).await;
    let trap = records.iter().find(|record| record["status"] != "ok").expect("the trap's record");
    assert_eq!(trap["error_type"], "Runtime.Trap", "{trap}");
    server.wait_for_function_log("stream", "trapped mid-stream").await;

    // An answer that is all there at once stays whole, and the function still answers.
    let whole = server.get("/stream/many?chunks=1&size=10").await;
    assert_eq!(whole.headers()["content-length"], "10");
    assert_eq!(whole.text().await.unwrap(), "x".repeat(10));
}

#[tokio::test]
async fn cli_invoke_delivers_an_event() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("echo", ""), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let out = server.cli_ok(&["invoke", "echo", "--data", r#"{"hello":"event"}"#]);
    assert!(out.starts_with("POST /?"), "{out}");
    assert!(out.contains("ce-specversion: 1.0"), "{out}");
    assert!(out.contains(r#"{"hello":"event"}"#), "{out}");

    let missing = server.cli(&["invoke", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

/// Sends a request head announcing a body of `length` bytes with
/// `Expect: 100-continue`, and returns what the server answers before any body is sent.
async fn raw_head(addr: &str, request_line: &str, length: usize, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{request_line} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n{auth}connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Uploads bytes as an artifact and deploys them as function `f` of app `bad`.
async fn deploy_raw(server: &TestServer, bytes: &[u8]) -> reqwest::Response {
    let digest = updraft_model_digest(bytes);
    let upload = server.api(Method::PUT, &format!("/v1/artifacts/{digest}")).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED, "{}", upload.text().await.unwrap());
    let manifest = "[app]\nname = \"bad\"\n\n[functions.f]\nruntime = \"wasm\"\nsource = \"f.wasm\"\ntriggers = [{ http = \"GET /bad\" }]\n";
    server
        .api(Method::POST, "/v1/apps/bad/deploy")
        .json(&serde_json::json!({ "manifest": manifest, "artifacts": { "f": format!("sha256:{digest}") } }))
        .send()
        .await
        .unwrap()
}

fn updraft_model_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let server = TestServer::start_with(&["--max-artifact-size", "4MiB"]);

    // Broken manifests: every problem at once, nothing deployed.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("updraft.toml"), "[app\nname = 1").unwrap();
    let malformed = server.cli(&["deploy", dir.path().to_str().unwrap()]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("updraft.toml"));

    let manifest = "[app]\nname = \"bad\"\n\n[functions.f]\nruntime = \"wasm\"\nsource = \"f.wasm\"\ntimout = \"5s\"\nmemory = 12\ntriggers = [{ http = \"GET nope\" }]\n";
    let response = server
        .api(Method::POST, "/v1/apps/bad/deploy")
        .json(&serde_json::json!({ "manifest": manifest, "artifacts": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "invalid_manifest");
    let problems = body["error"]["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems.iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"functions.f.timout"), "{fields:?}");
    assert!(fields.contains(&"functions.f.memory"), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("functions.f.triggers")), "{fields:?}");
    assert!(
        problems.iter().any(|p| p["message"].as_str().unwrap().contains("did you mean \"timeout\"")),
        "{problems:?}"
    );

    // Artifacts that are not what they claim.
    let not_component = deploy_raw(&server, &programs::core_module()).await;
    assert_eq!(not_component.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(not_component).await;
    assert_eq!(body["error"]["code"], "invalid_component");
    assert!(body["error"]["message"].as_str().unwrap().contains("not a component"));

    let no_handler = json(deploy_raw(&server, &programs::exports_nothing()).await).await;
    assert!(
        no_handler["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.0")
    );

    let unknown_import = json(deploy_raw(&server, &programs::imports_unknown_interface()).await).await;
    assert!(
        unknown_import["error"]["message"].as_str().unwrap().contains("acme:teleport/beam@1.0.0"),
        "{unknown_import}"
    );

    let garbage = json(deploy_raw(&server, b"definitely not wasm").await).await;
    assert!(garbage["error"]["message"].as_str().unwrap().contains("not WebAssembly"));

    // Uploads: empty, wrong digest, too large.
    let empty_digest = updraft_model_digest(b"");
    let empty = server.api(Method::PUT, &format!("/v1/artifacts/{empty_digest}")).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert!(json(empty).await["error"]["message"].as_str().unwrap().contains("empty"));
    let mismatch = server.api(Method::PUT, &format!("/v1/artifacts/{empty_digest}")).body("x").send().await.unwrap();
    assert_eq!(json(mismatch).await["error"]["code"], "digest_mismatch");
    let path = format!("PUT /v1/artifacts/{}", "cd".repeat(32));
    let oversized = raw_head(&server.addr, &path, 5 * 1024 * 1024, Some(&server.token())).await;
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");

    // A deploy naming an artifact never uploaded.
    let missing = server
        .api(Method::POST, "/v1/apps/bad/deploy")
        .json(&serde_json::json!({
            "manifest": "[app]\nname = \"bad\"\n\n[functions.f]\nruntime = \"wasm\"\nsource = \"f.wasm\"\n",
            "artifacts": { "f": format!("sha256:{}", "ab".repeat(32)) }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(json(missing).await["error"]["code"], "artifact_missing");

    // None of it left anything behind.
    let functions = json(server.api(Method::GET, "/v1/functions").send().await.unwrap()).await;
    assert_eq!(functions["functions"].as_array().unwrap().len(), 0);
    assert_eq!(server.get("/bad").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_route_taken_by_another_app_is_a_conflict_naming_both() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let echo = programs::bytes(programs::ECHO);
    let manifest = |app: &str| {
        format!(
            "[app]\nname = \"{app}\"\n\n[functions.{app}-fn]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{{ http = \"GET /shared/{{id}}\" }}]\n"
        )
    };
    app_with_guest(&root.path().join("a"), &manifest("a"), &echo);
    app_with_guest(&root.path().join("b"), &manifest("b"), &echo);
    server.deploy(&root.path().join("a"));
    let conflict = server.cli(&["deploy", root.path().join("b").to_str().unwrap()]);
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("\"a-fn\"") && stderr.contains("\"b-fn\"") && stderr.contains("route_conflict"),
        "{stderr}"
    );
    // The first app still serves.
    assert_eq!(server.get("/shared/1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn racing_deploys_of_one_app_apply_whole_one_after_the_other() {
    let server = TestServer::start();
    let echo = programs::bytes(programs::ECHO);
    let digest = updraft_model_digest(&echo);
    let upload = server.api(Method::PUT, &format!("/v1/artifacts/{digest}")).body(echo).send().await.unwrap();
    assert!(upload.status().is_success());
    let deploy = |greeting: String| {
        let manifest = format!(
            "[app]\nname = \"race\"\n\n[functions.left]\nruntime = \"wasm\"\nsource = \"f.wasm\"\nenv = {{ G = \"{greeting}\" }}\ntriggers = [{{ http = \"GET /left/{{*r}}\" }}]\n\n[functions.right]\nruntime = \"wasm\"\nsource = \"f.wasm\"\nenv = {{ G = \"{greeting}\" }}\ntriggers = [{{ http = \"GET /right/{{*r}}\" }}]\n"
        );
        server
            .api(Method::POST, "/v1/apps/race/deploy")
            .json(&serde_json::json!({ "manifest": manifest, "artifacts": { "left": format!("sha256:{digest}"), "right": format!("sha256:{digest}") } }))
            .send()
    };
    let results = futures::future::join_all((0..6).map(|i| deploy(format!("g{i}")))).await;
    let mut generations = Vec::new();
    for result in results {
        let response = result.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        generations.push(json(response).await["generation"].as_i64().unwrap());
    }
    generations.sort();
    assert_eq!(generations, [1, 2, 3, 4, 5, 6], "each deploy applied once, in turn");
    // Both functions always come from the same deploy.
    let left = server.get("/left/env?name=G").await.text().await.unwrap();
    let right = server.get("/right/env?name=G").await.text().await.unwrap();
    assert_eq!(left, right);
    let versions = json(server.api(Method::GET, "/v1/functions/left/versions").send().await.unwrap()).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("echo", ""), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    // Open the connection first, so the slow request rides one the server has accepted.
    assert_eq!(server.get("/echo/count").await.status(), StatusCode::OK);
    let slow = tokio::spawn(server.http.get(server.url("/echo/sleep?ms=1500")).send());
    execution::wait_for_metric(
        &server,
        "updraft_concurrent_executions{function=\"echo\"}",
        1.0,
        Duration::from_secs(20),
    )
    .await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "slept 1500");
    let (status, server) = status.await.unwrap();
    assert!(status.success(), "exit status {status}");
    server.wait_for_server_log("draining").await;
}

#[tokio::test]
async fn a_restart_serves_deployed_functions_without_recompiling() {
    let mut server = TestServer::start();
    server.deploy(&repo_root().join("examples/hello"));
    let compiled = compiled_files(server.data_dir.path());
    assert_eq!(compiled.len(), 1);
    server.restart();
    assert_eq!(server.get("/hello/again").await.text().await.unwrap(), "Hello, again!\n");
    assert_eq!(compiled_files(server.data_dir.path()), compiled, "the compiled code was reused, not rewritten");
}

fn compiled_files(data_dir: &Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut files = Vec::new();
    for engine in std::fs::read_dir(data_dir.join("compiled")).unwrap() {
        for file in std::fs::read_dir(engine.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            files.push((path, modified));
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn a_crash_during_deploys_leaves_whole_versions() {
    let mut server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let echo = programs::bytes(programs::ECHO);
    let manifest = |n: usize| guest_manifest("echo", &format!("env = {{ N = \"{n}\" }}"));
    app_with_guest(dir.path(), &manifest(0), &echo);
    server.deploy(dir.path());
    // Deploy in a loop from another process and kill the server in the middle.
    let digest = updraft_model_digest(&echo);
    let endpoint = server.url("");
    let token = server.token();
    let deployer = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for n in 1..200 {
            let result = http
                .post(format!("{endpoint}/v1/apps/echo/deploy"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "manifest": manifest(n), "artifacts": { "echo": format!("sha256:{digest}") } }))
                .send()
                .await;
            if result.is_err() {
                return n;
            }
        }
        200
    });
    // Let some deploys land, then crash.
    let started = std::time::Instant::now();
    loop {
        let versions = json(server.api(Method::GET, "/v1/functions/echo").send().await.unwrap()).await;
        if versions["version"].as_u64().unwrap_or(0) >= 3 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    server.kill();
    let attempted = deployer.await.unwrap();
    assert!(attempted < 200, "the server died while deploys were still coming");

    server.restart();
    let function = json(server.api(Method::GET, "/v1/functions/echo").send().await.unwrap()).await;
    let current = function["version"].as_u64().unwrap();
    let versions = json(server.api(Method::GET, "/v1/functions/echo/versions").send().await.unwrap()).await;
    let numbers: Vec<u64> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    // No gaps, no half versions: 1..=current, and the served env matches the version.
    assert_eq!(numbers, (1..=current).rev().collect::<Vec<_>>());
    let served = server.get("/echo/env?name=N").await.text().await.unwrap();
    assert_eq!(served, (current - 1).to_string());
}

#[tokio::test]
async fn up_redeploys_when_the_manifest_changes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |greeting: &str| guest_manifest("watched", &format!("env = {{ G = \"{greeting}\" }}"));
    app_with_guest(dir.path(), &manifest("before"), &programs::bytes(programs::ECHO));
    let server = TestServer::up(dir.path());
    // `up` deploys before it prints the routes; wait for the first answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let answer = |server: &TestServer| {
        let url = server.url("/watched/env?name=G");
        let http = server.http.clone();
        async move {
            match http.get(url).send().await {
                Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
                _ => String::new(),
            }
        }
    };
    while answer(&server).await != "before" {
        assert!(std::time::Instant::now() < deadline, "never deployed:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(dir.path().join("updraft.toml"), manifest("after")).unwrap();
    while answer(&server).await != "after" {
        assert!(std::time::Instant::now() < deadline, "never redeployed:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_trigger_can_require_an_api_key() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"private\"\n\n[functions.private]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{ http = \"GET /private/{*rest}\", auth = \"key\" }, { http = \"GET /public/{*rest}\" }]\n";
    app_with_guest(dir.path(), manifest, &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    assert_eq!(server.get("/public/x").await.status(), StatusCode::OK);
    let anonymous = server.get("/private/x").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(anonymous).await["error"]["code"], "unauthorized");
    let with_key = server.api(Method::GET, "/private/echo").send().await.unwrap();
    assert_eq!(with_key.status(), StatusCode::OK);
    let body = with_key.text().await.unwrap();
    assert!(!body.contains(&server.token()), "the key is not passed on to the function");
}

/// The wasi:http WIT that the host links against, from wasmtime-wasi-http's sources.
fn wasi_http_wit() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wasmtime-wasi-http")
        .expect("wasmtime-wasi-http is a dependency");
    Path::new(package["manifest_path"].as_str().unwrap()).parent().unwrap().join("wit")
}

#[tokio::test]
async fn a_python_component_from_componentize_py_serves_requests() {
    let work = tempfile::tempdir().unwrap();
    let app = repo_root().join("crates/updraft-test-programs/python/app.py");
    std::fs::copy(&app, work.path().join("app.py")).unwrap();
    let built = std::process::Command::new("componentize-py")
        .arg("-d")
        .arg(wasi_http_wit())
        .args(["-w", "wasi:http/proxy@0.2.12", "componentize", "app", "-o", "fn.wasm"])
        .current_dir(work.path())
        .output()
        .expect("componentize-py is needed for this test: `pip install componentize-py==0.25.1` (.ci/run installs it)");
    assert!(built.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&built.stderr));
    deploy_and_greet(work.path(), "py", "Hello from Python", "python saw").await;
}

/// Deploys the component `fn.wasm` in `dir` as function `name` at `/NAME/...`, calls
/// it and checks its answer and its log line (the test guests greet and log alike).
async fn deploy_and_greet(dir: &Path, name: &str, greeting: &str, logged: &str) {
    std::fs::write(
        dir.join("updraft.toml"),
        format!("[app]\nname = \"{name}\"\n\n[functions.{name}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{{ http = \"GET /{name}/{{*rest}}\" }}]\n"),
    )
    .unwrap();
    let server = TestServer::start();
    server.deploy(dir);
    let response = server.get(&format!("/{name}/hi?x=1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), format!("{greeting} at /{name}/hi?x=1\n"));
    server.wait_for_function_log(name, &format!("{logged} /{name}/hi?x=1")).await;
}

#[tokio::test]
async fn without_room_for_the_instance_pool_the_server_falls_back_and_serves() {
    // 64 GiB of address space: plenty for on-demand instances, far too little for a
    // pool of 1,000 reserved 4 GiB memories.
    let server = TestServer::start_with_address_space_limit(64 << 30);
    assert!(server.log_text().contains("falling back to on-demand allocation"), "{}", server.log_text());
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("echo", ""), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let response = server.get("/echo/env?name=GREETING").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_javascript_component_from_componentize_js_serves_requests() {
    let programs_dir = repo_root().join("crates/updraft-test-programs/js");
    let componentize = programs_dir.join("node_modules/.bin/componentize-js");
    assert!(
        componentize.is_file(),
        "componentize-js is needed for this test: `npm ci --prefix crates/updraft-test-programs/js` (.ci/run runs it)"
    );
    // StarlingMonkey (inside componentize-js) exports wasi:http 0.2.10. The host links
    // any 0.2.x guest (semver-compatible names), so the guest is built against the
    // host's own 0.2.12 WIT relabelled as the 0.2.10 it expects.
    let work = tempfile::tempdir().unwrap();
    relabel_wit(&wasi_http_wit(), &work.path().join("wit"), "0.2.12", "0.2.10");
    // componentize-js resolves the script relative to the working directory.
    let built = std::process::Command::new(&componentize)
        .current_dir(&programs_dir)
        .arg("app.js")
        .arg("--wit")
        .arg(work.path().join("wit"))
        .args(["--world-name", "wasi:http/proxy@0.2.10", "-o"])
        .arg(work.path().join("fn.wasm"))
        .output()
        .unwrap();
    assert!(built.status.success(), "componentize-js failed: {}", String::from_utf8_lossy(&built.stderr));
    deploy_and_greet(work.path(), "js", "Hello from JavaScript", "javascript saw").await;
}

/// Copies a WIT folder, replacing one version number with another in every file.
fn relabel_wit(from: &Path, to: &Path, old: &str, new: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            relabel_wit(&path, &target, old, new);
        } else {
            std::fs::write(&target, std::fs::read_to_string(&path).unwrap().replace(old, new)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_function_name_belongs_to_the_app_that_deployed_it_first() {
    let server = TestServer::start();
    let root = tempfile::tempdir().unwrap();
    let echo = programs::bytes(programs::ECHO);
    for app in ["first", "second"] {
        let manifest = format!(
            "[app]\nname = \"{app}\"\n\n[functions.shared]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{{ http = \"GET /{app}\" }}]\n"
        );
        app_with_guest(&root.path().join(app), &manifest, &echo);
    }
    server.deploy(&root.path().join("first"));
    let refused = server.cli(&["deploy", root.path().join("second").to_str().unwrap()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("function \"shared\" belongs to app \"first\""), "{stderr}");
    assert!(stderr.contains("409 Conflict, function_name_taken"), "{stderr}");
    assert_eq!(server.get("/first").await.status(), StatusCode::OK, "the first app still serves");
    assert_eq!(server.get("/second").await.status(), StatusCode::NOT_FOUND, "nothing of the refused deploy is live");
}
