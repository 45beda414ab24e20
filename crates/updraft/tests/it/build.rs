//! `updraft build`: bundles made outside the source, dependencies installed by pip, each
//! step run again only when its inputs change, and the same files making the same bundle.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::TestServer;

/// `updraft build DIR --output json`, as function name to its bundle.
fn build(server: &TestServer, dir: &Path, extra: &[&str]) -> serde_json::Map<String, Value> {
    let mut args = vec!["build", dir.to_str().unwrap(), "--output", "json"];
    args.extend(extra);
    let built: Vec<Value> = serde_json::from_str(&server.cli_ok(&args)).unwrap();
    built.into_iter().map(|bundle| (bundle["name"].as_str().unwrap().to_owned(), bundle)).collect()
}

/// A bundle's steps, as `(step, cached)`.
fn steps(bundle: &Value) -> Vec<(String, bool)> {
    bundle["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["step"].as_str().unwrap().to_owned(), step["cached"].as_bool().unwrap()))
        .collect()
}

fn step(name: &str, cached: bool) -> (String, bool) {
    (name.to_owned(), cached)
}

/// Writes app `name` into `app`: one Python function `function` whose `command`, run in
/// `tool/` (which holds `app.py`), makes its source folder `gen/`.
fn generated_app(app: &Path, name: &str, function: &str, command: &str) {
    let manifest = format!(
        "[app]\nname = \"{name}\"\n\n[functions.{function}]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"gen\"\nbuild = {{ command = \"{command}\", workdir = \"tool\" }}\n"
    );
    std::fs::write(app.join("updraft.toml"), manifest).unwrap();
    std::fs::create_dir_all(app.join("tool")).unwrap();
    std::fs::write(app.join("tool/app.py"), "def handler(event, context):\n    return 1\n").unwrap();
}

#[tokio::test]
async fn builds_install_dependencies_outside_the_source_and_redo_only_what_changed() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    std::fs::write(
        app.join("updraft.toml"),
        r#"
[app]
name = "builds"

[functions.greeter]
runtime = "python3"
handler = "app.handler"
source = "src"

[functions.twin]
runtime = "python3"
handler = "app.handler"
source = "src"

[functions.generated]
runtime = "python3"
handler = "app.handler"
source = "gen"
build = { command = "echo ran >> ../runs.log && mkdir -p ../gen && cp app.py ../gen/app.py", workdir = "tool" }
"#,
    )
    .unwrap();
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(app.join("src/requirements.txt"), "six==1.16.0\n").unwrap();
    let greeter = "import six\n\ndef handler(event, context):\n    return {'six': six.__version__, 'edition': 1}\n";
    std::fs::write(app.join("src/app.py"), greeter).unwrap();
    std::fs::create_dir_all(app.join("tool")).unwrap();
    std::fs::write(app.join("tool/app.py"), "def handler(event, context):\n    return 'generated'\n").unwrap();
    let runs = || std::fs::read_to_string(app.join("runs.log")).unwrap().lines().count();

    // The first build runs every step; pip installs into the build folder, not the source.
    let first = build(&server, app, &[]);
    assert_eq!(steps(&first["greeter"]), [step("pip", false), step("zip", false)]);
    // The manifest's order is the name's; a function listing the same packages shares them.
    assert_eq!(steps(&first["twin"]), [step("pip", true), step("zip", false)]);
    assert_eq!(first["twin"]["digest"], first["greeter"]["digest"]);
    assert_eq!(steps(&first["generated"]), [step("command", false), step("zip", false)]);
    assert_eq!(runs(), 1);
    let packages = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(app.join(".updraft/deps")).unwrap().map(|entry| entry.unwrap().path()).collect()
    };
    assert_eq!(packages().len(), 1, "{:?}", packages());
    assert!(packages()[0].join("six.py").is_file());
    let source: Vec<_> = std::fs::read_dir(app.join("src")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(source.len(), 2, "the source folder holds only its own files: {source:?}");
    let zip = std::fs::read(app.join(first["greeter"]["bundle"].as_str().unwrap())).unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names: Vec<String> = archive.file_names().map(|name| name.unwrap().into_owned()).collect();
    assert!(names.iter().any(|n| n == "six.py") && names.iter().any(|n| n == "app.py"), "{names:?}");

    // Nothing changed: nothing runs, the same bundles.
    let second = build(&server, app, &[]);
    assert_eq!(steps(&second["greeter"]), [step("pip", true), step("zip", true)]);
    assert_eq!(steps(&second["generated"]), [step("command", true), step("zip", true)]);
    assert_eq!(runs(), 1, "an unchanged build command does not run again");
    for name in ["greeter", "generated"] {
        assert_eq!(second[name]["digest"], first[name]["digest"], "{name}");
    }

    // The code changed: a new bundle, the packages kept; a build input changed: it runs.
    std::fs::write(app.join("src/app.py"), greeter.replace("'edition': 1", "'edition': 2")).unwrap();
    std::fs::write(app.join("tool/app.py"), "def handler(event, context):\n    return 'regenerated'\n").unwrap();
    let third = build(&server, app, &[]);
    assert_eq!(steps(&third["greeter"]), [step("pip", true), step("zip", false)]);
    assert_ne!(third["greeter"]["digest"], first["greeter"]["digest"]);
    assert_eq!(steps(&third["generated"]), [step("command", false), step("zip", false)]);
    assert_eq!(runs(), 2);

    // Reproducible: everything built again from nothing makes the same bytes.
    std::fs::remove_dir_all(app.join(".updraft")).unwrap();
    let again = build(&server, app, &[]);
    assert_eq!(steps(&again["greeter"]), [step("pip", false), step("zip", false)]);
    for name in ["greeter", "generated"] {
        assert_eq!(again[name]["digest"], third[name]["digest"], "{name} is not reproducible");
    }
    // --force runs every step, whatever the last build left; the same bytes again.
    let forced = build(&server, app, &["--force"]);
    assert_eq!(steps(&forced["greeter"]), [step("pip", false), step("zip", false)]);
    assert_eq!(steps(&forced["generated"]), [step("command", false), step("zip", false)]);
    assert_eq!(forced["greeter"]["digest"], third["greeter"]["digest"]);

    // New requirements: pip runs again, here in a deploy given the app's folder as a
    // relative path, as people do; the unchanged command does not.
    std::fs::write(app.join("src/requirements.txt"), "# pinned\nsix==1.16.0\n").unwrap();
    let deployed = server.cli_in(app.parent().unwrap(), &["deploy", app.file_name().unwrap().to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let said = String::from_utf8_lossy(&deployed.stderr);
    assert!(said.contains("building greeter: pip install -r requirements.txt"), "{said}");
    assert!(said.contains("twin: requirements.txt unchanged"), "installed once for both: {said}");
    assert_eq!(packages().len(), 1, "the packages no function lists are removed: {:?}", packages());
    assert!(said.contains("generated: build unchanged since it last ran"), "{said}");
    assert_eq!(runs(), 4, "run by the edit, the build from nothing and --force only");
    // The deployed function imports what pip installed.
    assert_eq!(server.invoke("greeter", json!({})).await, json!({ "six": "1.16.0", "edition": 2 }));
    assert_eq!(server.invoke("generated", json!({})).await, json!("regenerated"));

    // A function taken out of the manifest leaves no build behind.
    assert!(app.join(".updraft/build/twin/bundle.zip").is_file());
    let manifest = std::fs::read_to_string(app.join("updraft.toml")).unwrap();
    let without_twin =
        manifest.replace("[functions.twin]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n", "");
    assert_ne!(without_twin, manifest);
    std::fs::write(app.join("updraft.toml"), without_twin).unwrap();
    let built = build(&server, app, &[]);
    assert!(!built.contains_key("twin"));
    assert!(!app.join(".updraft/build/twin").exists());
    assert_eq!(packages().len(), 1, "greeter's packages stay");
}

#[tokio::test]
async fn a_failing_dependency_step_names_the_function_and_deploys_nothing() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    std::fs::write(
        app.join("updraft.toml"),
        "[app]\nname = \"broken\"\n\n[functions.broken]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\ntriggers = [{ http = \"GET /broken\" }]\n",
    )
    .unwrap();
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(app.join("src/app.py"), "def handler(event, context):\n    return 1\n").unwrap();
    // Not a requirement pip can read.
    std::fs::write(app.join("src/requirements.txt"), "this is not == a requirement ==\n").unwrap();
    let refused = server.cli_in(app, &["deploy"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("building function \"broken\" failed"), "{stderr}");
    assert!(stderr.contains("pip install -r requirements.txt"), "{stderr}");
    assert!(stderr.contains("Invalid requirement"), "pip's own words: {stderr}");
    assert_eq!(server.get("/broken").await.status(), reqwest::StatusCode::NOT_FOUND);

    // Mended, the next deploy installs it (a failed step is never taken as done).
    std::fs::write(app.join("src/requirements.txt"), "six==1.16.0\n").unwrap();
    let deployed = server.cli_in(app, &["deploy"]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    assert!(String::from_utf8_lossy(&deployed.stderr).contains("building broken: pip install"));
    assert_eq!(server.get("/broken").await.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn two_builds_of_one_app_take_turns() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    // A build that takes a while, saying when it starts and ends.
    let command =
        "echo start >> ../runs.log && sleep 1 && mkdir -p ../gen && cp app.py ../gen/app.py && echo end >> ../runs.log";
    generated_app(app, "turns", "slow", command);
    let builds: Vec<_> = (0..2).map(|_| server.cli_spawn(&["build", app.to_str().unwrap()])).collect();
    let mut said = String::new();
    for mut build in builds {
        let status = build.0.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(build.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "{stderr}");
        said.push_str(&stderr);
    }
    // One ran the command; the other waited, then found it done.
    assert_eq!(std::fs::read_to_string(app.join("runs.log")).unwrap(), "start\nend\n");
    assert!(said.contains("slow: build unchanged since it last ran"), "{said}");
}

#[tokio::test]
async fn a_build_command_that_failed_runs_again() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    // It fails while `../broken` exists: an input outside its workdir, as a shared
    // library would be.
    let command = "test ! -e ../broken && echo ran >> ../runs.log && mkdir -p ../gen && cp app.py ../gen/app.py";
    generated_app(app, "again", "again", command);
    let runs = || std::fs::read_to_string(app.join("runs.log")).unwrap().lines().count();
    let first = build(&server, app, &[]);
    assert_eq!(steps(&first["again"]), [step("command", false), step("zip", false)]);

    // The outside input changed: `--force` runs the command, which fails. The next
    // build does not take the older output as current: it runs the command again.
    std::fs::write(app.join("broken"), "").unwrap();
    for args in [&["--force"][..], &[]] {
        let mut all = vec!["build", app.to_str().unwrap()];
        all.extend(args);
        let failed = server.cli(&all);
        assert!(!failed.status.success(), "{args:?} took the failed build as done");
        assert!(String::from_utf8_lossy(&failed.stderr).contains("building function \"again\" failed"));
    }
    std::fs::remove_file(app.join("broken")).unwrap();
    let mended = build(&server, app, &[]);
    assert_eq!(steps(&mended["again"]), [step("command", false), step("zip", false)]);
    assert_eq!(mended["again"]["digest"], first["again"]["digest"]);
    assert_eq!(runs(), 2);
}
