//! The sandbox fails closed: a layer the host lacks stops Lambda functions, naming the
//! layer and its fix, until the operator names it in `--sandbox-allow-missing`; then
//! every deploy says so, and `updraft doctor` and `/v1/status` show each layer.

use reqwest::Method;
use serde_json::Value;

use crate::harness::TestServer;
use crate::json;

/// A Python function, in an app folder.
fn python_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("updraft.toml"),
        "[app]\nname = \"layered\"\n\n[functions.layered]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), "def handler(event, context):\n    return {'ok': True}\n").unwrap();
    dir
}

#[tokio::test]
async fn a_missing_layer_stops_lambda_functions_until_the_operator_allows_it_by_name() {
    // No control groups where the server looks for them.
    let empty = tempfile::tempdir().unwrap();
    let cgroup_root = empty.path().to_str().unwrap().to_owned();
    let mut server = TestServer::start_with(&["--cgroup-root", &cgroup_root]);
    let app = python_app();

    let refused = server.cli(&["deploy", app.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "deployed without control groups: {text}");
    for expected in
        ["cgroup-memory", "cgroup-pids", "cgroup-cpu", "fix: give the server a writable control-group hierarchy"]
    {
        assert!(text.contains(expected), "{expected:?} is not in: {text}");
    }
    assert!(text.contains("--sandbox-allow-missing cgroup-memory,cgroup-pids,cgroup-cpu"), "{text}");

    let doctor = server.cli(&["doctor"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{report}");
    assert!(report.contains("cannot run: a sandbox layer is missing"), "{report}");
    assert!(report.contains("landlock") && report.contains("seccomp") && report.contains("namespaces"), "{report}");
    let status = json(server.api(Method::GET, "/v1/status").send().await.unwrap()).await;
    let layer = |status: &Value, name: &str| -> String {
        let layers = status["sandbox"]["layers"].as_array().unwrap();
        layers.iter().find(|l| l["layer"] == name).unwrap()["state"].as_str().unwrap().to_owned()
    };
    assert_eq!(status["sandbox"]["ready"], false);
    assert_eq!(layer(&status, "cgroup-memory"), "missing");
    assert_eq!(layer(&status, "landlock"), "ok");
    assert_eq!(layer(&status, "seccomp"), "ok");

    // The operator names the layers to do without: functions run, and every deploy
    // and the status say what they run without.
    server.terminate();
    let mut allowed = TestServer::start_with(&[
        "--cgroup-root",
        &cgroup_root,
        "--sandbox-allow-missing",
        "cgroup-memory,cgroup-pids,cgroup-cpu",
    ]);
    let deployed = allowed.cli(&["deploy", app.path().to_str().unwrap()]);
    let warning = String::from_utf8_lossy(&deployed.stderr);
    assert!(deployed.status.success(), "{warning}");
    assert!(
        warning.contains("warning: layered runs in sandboxes without cgroup-memory, cgroup-pids, cgroup-cpu"),
        "{warning}"
    );
    let answer = allowed.api(Method::POST, "/v1/functions/layered/invoke").json(&serde_json::json!({})).send().await;
    let answer = json(answer.unwrap()).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let status = json(allowed.api(Method::GET, "/v1/status").send().await.unwrap()).await;
    assert_eq!(status["sandbox"]["ready"], true);
    assert_eq!(layer(&status, "cgroup-memory"), "allowed-missing");
    assert_eq!(allowed.cli(&["doctor"]).status.code(), Some(0));

    // Namespaces cannot be done without, and an unknown layer is named.
    let bad = std::process::Command::new(crate::harness::BIN)
        .args(["server", "--sandbox-allow-missing", "namespaces"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("namespaces cannot be done without"));
    let unknown = std::process::Command::new(crate::harness::BIN)
        .args(["server", "--sandbox-allow-missing", "landlok"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"landlok\" is not a sandbox layer"));
    allowed.terminate();
}
