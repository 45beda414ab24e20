//! The deployment files (`deploy/`, `Dockerfile`) stay true: the Kubernetes manifests
//! pass a schema validator, and every `UPDRAFT_*` variable or flag they and the systemd
//! unit set is one the server takes.

use std::process::Command;

use crate::harness::{BIN, repo_root};

/// `updraft server --help`: the flags and variables the server takes, its lines joined
/// (the text is wrapped to the terminal).
fn server_help() -> String {
    let output = Command::new(BIN).args(["server", "--help"]).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `UPDRAFT_*` names in `text`.
fn variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("UPDRAFT_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_kubernetes_manifests_are_valid() {
    let dir = repo_root().join("deploy/kubernetes");
    let mut manifests: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    manifests.sort();
    assert!(manifests.len() >= 2, "{manifests:?}");
    // Strict: an unknown field (a typo) fails, as the API server would refuse it.
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.33"])
        .args(&manifests)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate==1.37.0; .ci/run installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_deployment_files_set_only_what_the_server_takes() {
    let help = server_help();
    // The variables the server reads itself rather than through a flag.
    let read_directly = ["UPDRAFT_CLUSTER_KEY", "UPDRAFT_LOG"];
    for file in ["deploy/kubernetes/updraft.yaml", "deploy/systemd/updraft.service", "Dockerfile"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for name in variables(&text) {
            assert!(
                read_directly.contains(&name.as_str()) || help.contains(&format!("env: {name}=")),
                "{file} sets {name}, which `updraft server` does not take"
            );
        }
        let code: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with('#')).collect();
        for flag in code.iter().flat_map(|line| line.split_whitespace()).filter(|word| word.starts_with("--")) {
            let flag = flag.trim_matches(|c: char| c == '"' || c == ',' || c == ']' || c == '\\');
            // The Dockerfile's own build and install steps.
            let not_ours = ["--yes", "--no-install-recommends", "--release", "--locked", "--from=build"];
            if flag.len() > 2 && flag != "---" && !not_ours.contains(&flag) {
                assert!(help.contains(flag), "{file} passes {flag}, which `updraft server` does not take");
            }
        }
    }
    // The probes ask the route the server answers.
    let manifest = std::fs::read_to_string(repo_root().join("deploy/kubernetes/updraft.yaml")).unwrap();
    assert_eq!(manifest.matches("path: /healthz").count(), 3, "startup, readiness and liveness probes");
}
