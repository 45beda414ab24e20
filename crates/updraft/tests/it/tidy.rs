//! Style and architecture checks as ordinary tests (see ARCHITECTURE.md, "Architecture
//! invariants").

use std::path::{Path, PathBuf};

use crate::harness::repo_root;

fn dependencies(krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("crates"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn model_is_pure() {
    // chrono, chrono-tz and croner compute schedule ticks: pure functions of time.
    let allowed =
        ["serde", "serde_json", "thiserror", "toml", "strsim", "sha2", "hex", "chrono", "chrono-tz", "croner"];
    for dependency in dependencies("updraft-model") {
        assert!(
            allowed.contains(&dependency.as_str()),
            "updraft-model must not do I/O or know HTTP/SQL/wasmtime, but depends on {dependency}"
        );
    }
}

#[test]
fn big_dependencies_stay_in_their_crate() {
    let homes: [(&str, &[&str]); 4] = [
        ("wasmtime", &["updraft-runtime-wasm"]),
        ("sqlx", &["updraft-store"]),
        ("axum", &["updraft-api", "updraft"]),
        ("async-nats", &["updraft-platform", "updraft-bench"]),
    ];
    for krate in crates() {
        for dependency in dependencies(&krate) {
            for (big, allowed) in homes {
                if dependency == big || dependency.starts_with(&format!("{big}-")) {
                    assert!(allowed.contains(&krate.as_str()), "{krate} depends on {dependency}; only {allowed:?} may");
                }
            }
        }
    }
}

#[test]
fn every_file_says_what_it_is_for() {
    let mut missing = Vec::new();
    for root in ["crates", "examples"] {
        for file in rust_files(&repo_root().join(root)) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(file.strip_prefix(repo_root()).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "these files need a `//!` line saying what they are for: {missing:?}");
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn scheduler_is_runtime_agnostic() {
    let allowed = ["updraft-model", "futures", "thiserror", "tokio", "tracing"];
    for dependency in dependencies("updraft-scheduler") {
        assert!(
            allowed.contains(&dependency.as_str()),
            "updraft-scheduler must know nothing of HTTP, SQL or wasmtime, but depends on {dependency}"
        );
    }
    // It calls runtimes through its traits only: it never names a kind of runtime.
    for file in rust_files(&repo_root().join("crates/updraft-scheduler/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
        for kind in ["Runtime::Wasm", "Runtime::Python3", "Runtime::Nodejs", "Runtime::Provided", "wasmtime", "http::"]
        {
            assert!(!code.contains(kind), "{} mentions {kind}", file.display());
        }
    }
}
