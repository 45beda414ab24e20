//! The CLI in a terminal: `updraft top`, progress on builds and uploads, shell
//! completions.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{BIN, TestServer, app_with_guest};
use crate::{guest_manifest, programs};

#[tokio::test]
async fn top_shows_each_function_s_rate_errors_p99_and_concurrency() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app_with_guest(dir.path(), &guest_manifest("echo", ""), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());

    // Requests keep coming while `top` reads its two samples, so its window has some.
    let mut top = server.cli_spawn(&["--output", "json", "top", "--once", "--interval", "2s"]);
    let mut served = 0;
    let status = loop {
        if let Some(status) = top.0.try_wait().unwrap() {
            break status;
        }
        let response = server.get("/echo/hello").await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut out = String::new();
    top.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "{out}");
    let frame: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let echo = frame["functions"].as_array().unwrap().iter().find(|row| row["function"] == "echo").cloned();
    let echo = echo.unwrap_or_else(|| panic!("no echo row: {frame}"));
    let rate = echo["requests_per_second"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= f64::from(served), "{echo} after {served} requests");
    assert_eq!(echo["errors_per_second"], json!(0.0));
    assert!(echo["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{echo}");

    // The human table has the same row.
    let table = server.cli_ok(&["top", "--once", "--interval", "200ms"]);
    assert!(table.starts_with("FUNCTION") && table.contains("REQ/S") && table.contains("P99"), "{table}");
    assert!(table.lines().any(|line| line.starts_with("echo ")), "{table}");
}

#[tokio::test]
async fn a_deploy_in_a_terminal_shows_build_and_upload_progress() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = guest_manifest("echo", "build = { command = \"cp echo.wasm fn.wasm && cat chatter.txt\" }");
    std::fs::write(dir.path().join("chatter.txt"), "compiler-chatter").unwrap();
    app_with_guest(dir.path(), &manifest, b"");
    std::fs::write(dir.path().join("echo.wasm"), programs::bytes(programs::ECHO)).unwrap();

    // `script` gives the command a terminal, as a user's shell would.
    let command = format!(
        "{BIN} --endpoint {} --data-dir {} deploy {}",
        server.url(""),
        server.data_dir.path().display(),
        dir.path().display()
    );
    let output = Command::new("script").args(["-qec", &command, "/dev/null"]).output().unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{seen}");
    assert!(seen.contains("building echo:") && seen.contains("done in"), "{seen}");
    assert!(seen.contains("echo: uploaded sha256:"), "{seen}");
    assert!(!seen.contains("compiler-chatter"), "a build that succeeds keeps its output to itself: {seen}");
    assert!(seen.contains("deployed"), "{seen}");
    assert_eq!(server.get("/echo/hi").await.status(), reqwest::StatusCode::OK);

    // A failing build shows what it printed.
    let broken = guest_manifest("echo", "build = { command = \"echo missing-toolchain >&2; exit 3\" }");
    std::fs::write(dir.path().join("updraft.toml"), broken).unwrap();
    let output = Command::new("script").args(["-qec", &command, "/dev/null"]).output().unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{seen}");
    assert!(seen.contains("missing-toolchain") && seen.contains("exited with exit status: 3"), "{seen}");
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef updraft"), ("fish", "complete -c updraft")] {
        let output = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}: {}", String::from_utf8_lossy(&output.stderr));
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["deploy", "logs", "traces", "top", "redrive", "completions"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let unknown = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("possible values"), "{unknown:?}");
}
