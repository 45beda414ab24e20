//! Style and architecture checks as ordinary tests (see ARCHITECTURE.md, "Architecture
//! invariants"). Dependencies are read from the real graph (`cargo metadata`), not from
//! the text of each `Cargo.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::harness::repo_root;

/// Each workspace crate's direct dependencies of the normal kind (what its library and
/// binaries may use), by package name.
fn dependency_graph() -> &'static BTreeMap<String, BTreeSet<String>> {
    static GRAPH: OnceLock<BTreeMap<String, BTreeSet<String>>> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // The graph on this machine's platform: offline, cargo has only the crates a build
        // here downloaded, not those of other platforms' dependencies.
        #[expect(clippy::disallowed_methods, reason = "the test asks rustc for the host platform")]
        let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("rustc runs");
        let host = String::from_utf8_lossy(&rustc.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc -vV names the host");
        #[expect(clippy::disallowed_methods, reason = "the test reads the workspace's dependency graph from cargo")]
        let output = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
            .current_dir(repo_root())
            .output()
            .expect("cargo metadata runs");
        assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let names: BTreeMap<&str, &str> = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|package| (package["id"].as_str().unwrap(), package["name"].as_str().unwrap()))
            .collect();
        let members: BTreeSet<&str> =
            metadata["workspace_members"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
        let mut graph = BTreeMap::new();
        for node in metadata["resolve"]["nodes"].as_array().unwrap() {
            let id = node["id"].as_str().unwrap();
            if !members.contains(id) {
                continue;
            }
            let normal = node["deps"].as_array().unwrap().iter().filter(|dependency| {
                dependency["dep_kinds"].as_array().unwrap().iter().any(|kind| kind["kind"].is_null())
            });
            let dependencies = normal.map(|dependency| names[dependency["pkg"].as_str().unwrap()].to_owned()).collect();
            graph.insert(names[id].to_owned(), dependencies);
        }
        graph
    })
}

fn dependencies(krate: &str) -> &'static BTreeSet<String> {
    dependency_graph().get(krate).unwrap_or_else(|| panic!("{krate} is not a workspace crate"))
}

/// The crates a dependency is allowed in (ARCHITECTURE.md, "One crate per big dependency").
const HOMES: [(&str, &[&str]); 9] = [
    ("wasmtime", &["updraft-runtime-wasm"]),
    ("sqlx", &["updraft-store"]),
    ("axum", &["updraft-api", "updraft"]),
    // The benchmarks drive a NATS server of their own for the event layer's figures.
    ("async-nats", &["updraft-events", "updraft-bench"]),
    ("nix", &["updraft-runtime-process"]),
    ("landlock", &["updraft-runtime-process"]),
    ("seccompiler", &["updraft-runtime-process"]),
    ("hickory-proto", &["updraft-runtime-process"]),
    ("prometheus-client", &["updraft-telemetry"]),
];

#[test]
fn big_dependencies_stay_in_their_crate() {
    let mut strays = Vec::new();
    for (krate, dependencies) in dependency_graph() {
        for dependency in dependencies {
            for (big, allowed) in HOMES {
                let family = dependency == big || dependency.starts_with(&format!("{big}-"));
                if family && !allowed.contains(&krate.as_str()) {
                    strays.push(format!("{krate} depends on {dependency}; only {allowed:?} may"));
                }
            }
        }
    }
    assert!(strays.is_empty(), "{strays:#?}");
}

#[test]
fn model_is_pure() {
    // The list ARCHITECTURE.md gives: "Its dependencies are exactly a, b, c (checked ...".
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let architecture = architecture.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, list) = architecture
        .split_once("Its dependencies are exactly ")
        .expect("ARCHITECTURE.md lists the model's dependencies: \"Its dependencies are exactly ...\"");
    let (list, _) = list.split_once(" (").expect("the list ends before its parenthesis");
    let documented: BTreeSet<String> = list.split(", ").map(|name| name.trim_matches('`').to_owned()).collect();
    let actual = dependencies("updraft-model");
    assert_eq!(
        &documented, actual,
        "updraft-model's dependencies and the list in ARCHITECTURE.md differ; the model does no I/O and knows \
         nothing of HTTP, SQL or wasmtime"
    );
}

#[test]
fn scheduler_is_runtime_agnostic() {
    let allowed: BTreeSet<String> =
        ["updraft-model", "updraft-runtime", "futures", "thiserror", "tokio", "tracing"].map(String::from).into();
    let extra: Vec<_> = dependencies("updraft-scheduler").difference(&allowed).collect();
    assert!(extra.is_empty(), "updraft-scheduler must know nothing of HTTP, SQL or wasmtime, but depends on {extra:?}");
    // It calls runtimes through their traits only: it never names a kind of runtime.
    for file in rust_files(&repo_root().join("crates/updraft-scheduler/src")) {
        for kind in ["RuntimeKind", "wasmtime", "http::"] {
            assert!(!code(&file).contains(kind), "{} mentions {kind}", file.display());
        }
    }
}

#[test]
fn the_runtimes_know_nothing_of_each_other_or_of_the_scheduler() {
    for runtime in ["updraft-runtime-wasm", "updraft-runtime-process"] {
        let known: Vec<_> = dependencies(runtime)
            .iter()
            .filter(|dependency| dependency.starts_with("updraft-"))
            .filter(|dependency| !["updraft-model", "updraft-runtime"].contains(&dependency.as_str()))
            .collect();
        assert!(known.is_empty(), "{runtime} may know only the model and the runtime interface, but knows {known:?}");
    }
}

#[test]
fn processes_are_spawned_only_by_the_sandbox_and_the_build_step() {
    // The sandbox crate starts the jailer; the CLI's build runs each function's `build`
    // command, pip and npm;
    // the benchmarks drive servers and load generators; the test programs' build script
    // builds the guests.
    let allowed = [
        "crates/updraft-runtime-process/src",
        "crates/updraft/src/build.rs",
        "crates/updraft-bench/src",
        "crates/updraft-test-programs/build.rs",
    ];
    let mut spawners = Vec::new();
    for file in rust_files(&repo_root().join("crates")) {
        let relative = file.strip_prefix(repo_root()).unwrap().to_string_lossy().into_owned();
        let test_code = relative.contains("/tests/") || relative.ends_with("/tests.rs");
        if test_code || allowed.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        if code(&file).contains("Command::new") {
            spawners.push(relative);
        }
    }
    assert!(spawners.is_empty(), "these files start processes outside the sandbox crate: {spawners:?}");
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

/// A file's code without its comment lines.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" && name != "node_modules" {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_event_layers_files_import_each_other_without_circles() {
    let src = repo_root().join("crates/updraft-events/src");
    // Each top-level module and the modules it imports (`use crate::...`).
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap().with_extension("");
        let module = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        if module == "lib" {
            continue;
        }
        let used = imports.entry(module.clone()).or_default();
        for line in code(&file).lines().map(str::trim) {
            let Some(path) = line.strip_prefix("use crate::") else { continue };
            let names: Vec<&str> = match path.strip_prefix('{') {
                Some(group) => group.split(',').map(|name| name.trim().split("::").next().unwrap()).collect(),
                None => vec![path.split("::").next().unwrap()],
            };
            for name in names {
                let name: String = name.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module && name != "self" {
                    used.insert(name);
                }
            }
        }
    }
    // Depth-first search for a path that comes back to where it started.
    fn circle(
        imports: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == module) {
            let mut found = path[start..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in imports.get(module).into_iter().flatten() {
            if let Some(found) = circle(imports, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    assert!(imports.len() > 5, "the event layer's modules are found: {imports:?}");
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        if let Some(found) = circle(&imports, module, &mut Vec::new(), &mut done) {
            panic!("updraft-events' files import each other in a circle: {}", found.join(" -> "));
        }
    }
}

#[test]
fn the_api_sees_the_platform_not_the_store() {
    let api = dependencies("updraft-api");
    for store in ["updraft-store", "sqlx"] {
        assert!(!api.contains(store), "updraft-api depends on {store}; it may know only the platform's own types");
    }
    // Nor through the back door: the platform and the event layer re-export none of the
    // store's types (its rows and its error), so a handler cannot name them.
    for lib in ["crates/updraft-platform/src/lib.rs", "crates/updraft-events/src/lib.rs"] {
        let code = code(&repo_root().join(lib));
        assert!(!code.contains("updraft_store"), "{lib} re-exports the store's types; give callers the crate's own");
    }
    for file in rust_files(&repo_root().join("crates/updraft-api/src")) {
        assert!(!code(&file).contains("StoreError"), "{} names the store's error", file.display());
    }
}
