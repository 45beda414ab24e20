//! Lambda functions end to end: the examples, HTTP triggers, Lambda's own Invoke API
//! driven by boto3, access keys, logs.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestServer, repo_root};
use crate::json;

/// Creates an access key with the CLI; returns (id, secret).
pub(crate) fn access_key(server: &TestServer) -> (String, String) {
    let out = server.cli_ok(&["--output", "json", "keys", "create"]);
    let key: Value = serde_json::from_str(&out).unwrap();
    (key["access_key_id"].as_str().unwrap().to_owned(), key["secret_access_key"].as_str().unwrap().to_owned())
}

/// Runs the boto3 driver; returns what it printed.
pub(crate) fn boto3(server: &TestServer, key: &(String, String), args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/boto3_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.url(""))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("python3 with boto3 (pip install boto3)");
    assert!(
        output.status.success(),
        "boto3 driver failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn python_api_example_serves_http_through_api_gateway_events() {
    let server = TestServer::start();
    let out = server.deploy(&repo_root().join("examples/python-api"));
    assert!(out.contains("bookmarks") && out.contains("deployed"), "{out}");

    let created = server
        .http
        .post(server.url("/bookmarks"))
        .header("content-type", "application/json")
        .body(r#"{"url":"https://example.com","tags":["web"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/bookmarks/1");
    let request_id = created.headers()["x-updraft-request-id"].to_str().unwrap().to_owned();
    assert_eq!(json(created).await["url"], "https://example.com");

    // Warm: the same instance, so the bookmark is still there.
    let listed = json(server.get("/bookmarks?tag=web").await).await;
    assert_eq!(listed["bookmarks"][0]["id"], "1");
    assert_eq!(listed["service"], "bookmarks");
    assert_eq!(json(server.get("/bookmarks/1").await).await["url"], "https://example.com");
    let missing = server.get("/bookmarks/9").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad = server.http.post(server.url("/bookmarks")).body("nope").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let deleted = server.http.delete(server.url("/bookmarks/1")).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // Lambda's log lines, with the handler's print between them; the first has its
    // init duration.
    let log = server.wait_for_function_log("bookmarks", &format!("REPORT RequestId: {request_id}")).await;
    assert!(log.contains(&format!("START RequestId: {request_id} Version: 1")), "{log}");
    assert!(log.contains(&format!("POST /bookmarks ({request_id})")), "{log}");
    assert!(log.contains(&format!("END RequestId: {request_id}")), "{log}");
    let report = log.lines().find(|l| l.contains(&format!("REPORT RequestId: {request_id}"))).unwrap();
    assert!(report.contains("\tInit Duration: ") && report.contains("\tMax Memory Used: "), "{report}");
}

#[tokio::test]
async fn boto3_invokes_through_lambdas_own_api() {
    let server = TestServer::start();
    server.deploy(&repo_root().join("examples/node-worker"));
    let key = access_key(&server);
    let seen = boto3(&server, &key, &["invoke", "thumbnailer", "1"]);

    let sync = &seen["sync"];
    assert_eq!(sync["status"], 200);
    assert_eq!(sync["version"], "$LATEST");
    assert_eq!(sync["function_error"], Value::Null);
    assert_eq!(sync["payload"]["source"], "cat.png");
    assert_eq!(
        sync["payload"]["thumbnails"][0],
        json!({"key": "thumbnails/64/cat.png", "width": 64, "height": 32, "etag": sync["payload"]["thumbnails"][0]["etag"]})
    );
    assert_eq!(sync["payload"]["requestId"], sync["request_id"], "the handler's request id is the response's");

    let log = seen["tail"]["log"].as_str().unwrap();
    let id = seen["tail"]["request_id"].as_str().unwrap();
    assert!(log.contains(&format!("START RequestId: {id} Version: 1")), "{log}");
    assert!(log.contains("INFO\tmaking thumbnails of cat.png (2048x1024)"), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}\tDuration: ")), "{log}");

    assert_eq!(seen["qualified"]["version"], "1");
    assert_eq!(seen["arn"]["status"], 200);
    assert_eq!(seen["dry_run"], 204);
    assert_eq!(seen["event"], 202);

    let failed = &seen["function_error"];
    assert_eq!(failed["status"], 200);
    assert_eq!(failed["function_error"], "Unhandled");
    assert_eq!(failed["payload"]["errorType"], "TypeError");
    assert_eq!(failed["payload"]["errorMessage"], "the job needs a `key` naming the image");
    assert!(failed["payload"]["trace"].is_array());

    assert_eq!(seen["not_found"]["code"], "ResourceNotFoundException");
    assert_eq!(seen["not_found"]["status"], 404);
    assert_eq!(
        seen["not_found"]["message"],
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function"
    );
    assert_eq!(seen["not_found_is_modeled"], true, "botocore raises its modeled ResourceNotFoundException");
    assert_eq!(seen["old_version"]["code"], "ResourceNotFoundException");
    assert_eq!(seen["bad_json"]["code"], "InvalidRequestContentException");
    assert_eq!(seen["bad_json"]["status"], 400);
    assert_eq!(seen["bad_secret"]["code"], "InvalidSignatureException");
    assert_eq!(seen["bad_secret"]["status"], 403);
    assert_eq!(seen["unknown_key"]["code"], "UnrecognizedClientException");

    // The event invocation ran, in the background.
    server.wait_for_function_log("thumbnailer", "INFO\tmaking thumbnails of cat.png").await;

    // A deleted key stops working.
    server.cli_ok(&["keys", "delete", &key.0]);
    let listed = server.cli_ok(&["keys", "ls"]);
    assert!(!listed.contains(&key.0), "{listed}");
}

const CONTEXT_APP: &str = r#"
[app]
name = "ctx"

[functions.ctx]
runtime = "python3"
handler = "app.handler"
source = "src"
concurrency = 1
"#;

const CONTEXT_HANDLER: &str = r#"
import time

def handler(event, context):
    if "sleep" in event:
        time.sleep(event["sleep"])
        return {"slept": event["sleep"]}
    cc = context.client_context
    return {"custom": cc.custom if cc else None, "env": cc.env if cc else None}
"#;

#[tokio::test]
async fn boto3_sees_client_context_and_throttling_as_lambda_gives_them() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("updraft.toml"), CONTEXT_APP).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), CONTEXT_HANDLER).unwrap();
    server.deploy(dir.path());
    let key = access_key(&server);

    let seen = boto3(&server, &key, &["context", "ctx"]);
    assert_eq!(seen["context"]["payload"], json!({"custom": {"tenant": "acme"}, "env": {"app": "mobile"}}));

    let seen = boto3(&server, &key, &["throttle", "ctx"]);
    let results = seen["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let throttled: Vec<&Value> = results.iter().filter(|r| r.get("throttled").is_some()).collect();
    assert_eq!(throttled.len(), 1, "{results:?}");
    assert_eq!(throttled[0]["throttled"], "TooManyRequestsException");
    assert_eq!(throttled[0]["reason"], "ReservedFunctionConcurrentInvocationLimitExceeded");
    assert_eq!(throttled[0]["retry_after"], "1");
    assert!(results.iter().any(|r| r["payload"]["slept"] == 1.5), "{results:?}");
}

/// The AWS CLI, installed by the conformance setup (`setup.sh`) in its own virtualenv.
fn aws_cli() -> std::path::PathBuf {
    let path = repo_root().join("crates/updraft-runtime-process/tests/conformance/awscli/bin/aws");
    assert!(
        path.exists(),
        "{} is missing: run crates/updraft-runtime-process/tests/conformance/setup.sh first",
        path.display()
    );
    path
}

/// Runs `aws lambda ARGS` against `server` with `key`, nothing from the user's files.
fn aws_lambda(server: &TestServer, key: &(String, String), args: &[&str]) -> std::process::Output {
    Command::new(aws_cli())
        .args(["--endpoint-url", &server.url(""), "--region", "us-east-1", "lambda"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_aws_cli_invokes_with_an_endpoint_url() {
    let server = TestServer::start();
    server.deploy(&repo_root().join("examples/node-worker"));
    let key = access_key(&server);
    let out = tempfile::tempdir().unwrap();
    let aws = |args: &[&str]| aws_lambda(&server, &key, args);
    let result = out.path().join("out.json");
    let invoked = aws(&[
        "invoke",
        "--function-name",
        "thumbnailer",
        "--payload",
        r#"{"key":"dog.png"}"#,
        "--log-type",
        "Tail",
        result.to_str().unwrap(),
    ]);
    assert!(invoked.status.success(), "{}", String::from_utf8_lossy(&invoked.stderr));
    let meta: Value = serde_json::from_slice(&invoked.stdout).unwrap();
    assert_eq!(meta["StatusCode"], 200);
    assert_eq!(meta["ExecutedVersion"], "$LATEST");
    let log = base64_decode(meta["LogResult"].as_str().unwrap());
    assert!(log.contains("making thumbnails of dog.png") && log.contains("REPORT RequestId: "), "{log}");
    let payload: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert_eq!(payload["source"], "dog.png");

    let missing = aws(&["invoke", "--function-name", "nope", result.to_str().unwrap()]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("(ResourceNotFoundException)") && stderr.contains("Function not found"), "{stderr}");
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
}

#[tokio::test]
async fn a_sample_event_from_the_cli_is_what_the_handler_gets() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), "def handler(event, context):\n    return event\n").unwrap();
    std::fs::write(
        dir.path().join("updraft.toml"),
        "[app]\nname = \"samples\"\n\n[functions.echo]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n",
    )
    .unwrap();
    server.deploy(dir.path());

    // As with SAM: generate an event, save it, invoke with it.
    let sample = server.cli_ok(&[
        "events",
        "sample",
        "sns",
        "--function",
        "echo",
        "--source",
        "orders",
        "--data",
        r#"{"id":7}"#,
    ]);
    let file = dir.path().join("event.json");
    std::fs::write(&file, &sample).unwrap();
    let answer: Value =
        serde_json::from_str(&server.cli_ok(&["invoke", "echo", "--event", file.to_str().unwrap()])).unwrap();
    assert_eq!(answer, serde_json::from_str::<Value>(&sample).unwrap());
    assert_eq!(answer["Records"][0]["Sns"]["TopicArn"], "arn:aws:sns:us-east-1:000000000000:orders");
    assert_eq!(answer["Records"][0]["Sns"]["Message"], r#"{"id":7}"#);

    let unknown = server.cli(&["events", "sample", "kinesis"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success() && stderr.contains("possible values: sns, sqs, schedule, http"), "{stderr}");
}

#[tokio::test]
async fn every_published_version_is_invocable_by_its_number_beside_the_live_one() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "import os\ndef handler(event, context):\n    return {\"greeting\": os.environ[\"GREETING\"], \"version\": context.function_version}\n";
    let app = crate::async_invoke::python_app("greeter", "env = { GREETING = \"one\" }", code);
    server.deploy(app.path());
    let manifest = std::fs::read_to_string(app.path().join("updraft.toml")).unwrap();
    std::fs::write(app.path().join("updraft.toml"), manifest.replace("\"one\"", "\"two\"")).unwrap();
    server.deploy(app.path());

    // Version 1 answers as it was deployed, while version 2 is live; both run at once.
    let seen = boto3(&server, &key, &["versions", "greeter", "1", "2", "$LATEST", "1", "3", "x"]);
    for qualifier in ["1", "greeter:1"] {
        assert_eq!(seen[qualifier]["payload"], json!({"greeting": "one", "version": "1"}), "{seen:#}");
        assert_eq!(seen[qualifier]["version"], "1");
    }
    for qualifier in ["2", "greeter:2"] {
        assert_eq!(seen[qualifier]["payload"], json!({"greeting": "two", "version": "2"}), "{seen:#}");
        assert_eq!(seen[qualifier]["version"], "2");
    }
    assert_eq!(seen["$LATEST"]["payload"]["greeting"], "two");
    assert_eq!(seen["$LATEST"]["version"], "$LATEST");
    for missing in ["3", "greeter:3", "x"] {
        assert_eq!(seen[missing]["code"], "ResourceNotFoundException", "{missing}: {seen:#}");
    }
    // An Event for an earlier version is queued and runs that version.
    assert_eq!(seen["event"], 202, "{seen:#}");
    let queued = crate::events::records(&server, "greeter", "async", 1).await;
    assert_eq!(queued[0]["version"], 1, "{queued:?}");

    // Records say which version ran; the earlier version's instance stayed warm beside
    // the live one's (its later invocations were not cold starts).
    let records = crate::execution::wait_for_records(&server, "greeter", 9).await;
    let ran = |version: u64| records.iter().filter(|r| r["version"] == version).collect::<Vec<_>>();
    assert_eq!(ran(1).len(), 5, "{records:#?}");
    assert_eq!(ran(2).len(), 4, "{records:#?}");
    assert_eq!(ran(1).iter().filter(|r| r["cold"] == true).count(), 1, "{records:#?}");
}

#[tokio::test]
async fn a_deploy_script_for_aws_makes_changes_publishes_and_deletes_functions_through_lambdas_api() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "def handler(event, context):\n    return {\"from\": \"manifest\"}\n";
    let app = crate::async_invoke::python_app("greeter", "memory = \"64MiB\"", code);
    server.deploy(app.path());

    let seen = boto3(&server, &key, &["control", "greeter"]);
    let created = &seen["created"];
    assert_eq!(created["FunctionName"], "made", "{seen:#}");
    assert_eq!(created["FunctionArn"], "arn:aws:lambda:us-east-1:000000000000:function:made");
    assert_eq!(created["Runtime"], "python3.12");
    assert_eq!(
        (&created["Handler"], &created["MemorySize"], &created["Timeout"]),
        (&json!("app.handler"), &json!(256), &json!(5))
    );
    assert_eq!(created["Description"], "made by boto3");
    assert_eq!(created["Environment"], json!({"GREETING": "one"}));
    assert_eq!((&created["State"], &created["LastUpdateStatus"]), (&json!("Active"), &json!("Successful")));
    assert_eq!(created["Version"], "$LATEST");
    // The package's own digest and size, as the client computes them.
    assert_eq!(created["CodeSha256"], seen["first_sha256"]);
    assert_eq!(created["CodeSize"], seen["first_size"]);
    assert_eq!(seen["invoked"]["payload"], json!({"greeting": "one", "version": "1", "memory": "256"}), "{seen:#}");
    assert_eq!(seen["got"]["RevisionId"], created["RevisionId"]);

    // A configuration change keeps the code and makes the next version, live at once.
    assert_eq!(seen["updated"]["MemorySize"], 512);
    assert_eq!(seen["updated"]["CodeSha256"], seen["first_sha256"]);
    assert_ne!(seen["updated"]["RevisionId"], created["RevisionId"]);
    assert_eq!(seen["invoked_updated"]["payload"], json!({"greeting": "two", "version": "2", "memory": "512"}));
    assert_eq!(seen["stale_revision"]["code"], "PreconditionFailedException", "{seen:#}");
    assert_eq!(seen["stale_revision"]["status"], 412);

    // New code, published: the version that serves, by number.
    assert_eq!(seen["coded"]["Version"], "3", "{seen:#}");
    assert_eq!(seen["coded"]["CodeSha256"], seen["second_sha256"]);
    assert_eq!(seen["coded"]["Environment"], json!({"GREETING": "two"}));
    assert_eq!(seen["published"]["Version"], "3");
    assert_eq!(seen["publish_wrong_sha"]["code"], "InvalidParameterValueException");
    assert_eq!(seen["versions"], json!(["$LATEST", "1", "2", "3"]));
    assert_eq!(seen["version_1"]["Environment"], json!({"GREETING": "one"}));
    assert_eq!(seen["version_1"]["FunctionArn"], "arn:aws:lambda:us-east-1:000000000000:function:made:1");
    assert_eq!(seen["invoked_1"]["payload"], json!({"greeting": "one", "version": "1", "memory": "256"}));
    assert_eq!(seen["invoked_latest"]["payload"]["version"], "3");

    assert_eq!(seen["concurrency"], 5);
    assert_eq!(seen["concurrency_in_get"], json!({"ReservedConcurrentExecutions": 5}));
    assert_eq!(seen["concurrency_deleted"], Value::Null);

    assert_eq!(seen["no_invoke_config"]["code"], "ResourceNotFoundException");
    assert_eq!(
        seen["invoke_config"],
        json!({
            "MaximumRetryAttempts": 1,
            "MaximumEventAgeInSeconds": 120,
            "DestinationConfig": {
                "OnSuccess": {},
                "OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:made-failures"},
            },
        }),
        "{seen:#}"
    );
    assert_eq!(seen["bad_invoke_config"]["code"], "InvalidParameterValueException");
    assert_eq!(seen["invoke_config_deleted"]["code"], "ResourceNotFoundException");

    // Listed a page at a time (the paginator follows NextMarker), the manifest's too.
    assert_eq!(seen["listed"], json!([["greeter"], ["made"]]), "{seen:#}");
    let manifest_made = &seen["manifest_made"];
    assert_eq!((&manifest_made["Runtime"], &manifest_made["MemorySize"]), (&json!("python3.12"), &json!(64)));
    assert_eq!(manifest_made["State"], "Active");

    assert_eq!(seen["exists"]["code"], "ResourceConflictException", "{seen:#}");
    assert_eq!(seen["java"]["code"], "InvalidParameterValueException");
    assert!(seen["java"]["message"].as_str().unwrap().contains("java21"), "{seen:#}");
    assert_eq!(seen["not_a_zip"]["code"], "InvalidParameterValueException");
    assert!(seen["not_a_zip"]["message"].as_str().unwrap().contains("zip"), "{seen:#}");
    assert_eq!(seen["broken_listed"], false, "a refused function is not made");
    assert_eq!(seen["capitals"]["code"], "InvalidParameterValueException");
    assert!(seen["capitals"]["message"].as_str().unwrap().contains("lowercase"), "{seen:#}");
    assert_eq!(seen["s3"]["code"], "InvalidParameterValueException");
    assert!(seen["s3"]["message"].as_str().unwrap().contains("ZipFile"), "{seen:#}");
    assert_eq!(seen["too_much_memory"]["code"], "InvalidParameterValueException");
    assert_eq!(seen["missing"]["code"], "ResourceNotFoundException");

    // An ordinary Updraft function: listed, and its versions roll back.
    assert!(server.cli_ok(&["ls"]).contains("made"));
    server.cli_ok(&["rollback", "made", "--to", "1"]);
    let out = server.cli_ok(&["invoke", "made", "--data", "{}"]);
    assert!(out.contains("\"greeting\"") && out.contains("one"), "{out}");

    let seen = boto3(&server, &key, &["delete", "made"]);
    assert_eq!(seen["deleted"]["code"], "ResourceNotFoundException", "{seen:#}");
    assert_eq!(seen["invoke_deleted"]["code"], "ResourceNotFoundException");
    assert!(!server.cli_ok(&["ls"]).contains("made"));
}

/// A zip holding one file.
fn zip_of(path: &Path, file: &str, text: &str) {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file(file, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(text.as_bytes()).unwrap();
    zip.finish().unwrap();
}

#[tokio::test]
async fn the_aws_cli_creates_updates_publishes_and_invokes_a_function() {
    let server = TestServer::start();
    let key = access_key(&server);
    let dir = tempfile::tempdir().unwrap();
    let handler = |code: &str| {
        format!(
            "exports.handler = async (event, context) => ({{ code: {code:?}, version: context.functionVersion }});\n"
        )
    };
    let (one, two) = (dir.path().join("one.zip"), dir.path().join("two.zip"));
    zip_of(&one, "index.js", &handler("one"));
    zip_of(&two, "index.js", &handler("two"));
    let aws = |args: &[&str]| {
        let out = aws_lambda(&server, &key, args);
        assert!(out.status.success(), "aws lambda {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let fileb = |path: &Path| format!("fileb://{}", path.display());

    let created: Value = serde_json::from_str(&aws(&[
        "create-function",
        "--function-name",
        "cli-made",
        "--runtime",
        "nodejs20.x",
        "--handler",
        "index.handler",
        "--zip-file",
        &fileb(&one),
        "--role",
        "arn:aws:iam::000000000000:role/lambda-basic",
    ]))
    .unwrap();
    assert_eq!((&created["FunctionName"], &created["Runtime"]), (&json!("cli-made"), &json!("nodejs20.x")));
    aws(&["wait", "function-active-v2", "--function-name", "cli-made"]);

    let updated: Value = serde_json::from_str(&aws(&[
        "update-function-code",
        "--function-name",
        "cli-made",
        "--zip-file",
        &fileb(&two),
    ]))
    .unwrap();
    assert_ne!(updated["CodeSha256"], created["CodeSha256"]);
    aws(&["wait", "function-updated-v2", "--function-name", "cli-made"]);
    let published: Value = serde_json::from_str(&aws(&["publish-version", "--function-name", "cli-made"])).unwrap();
    assert_eq!(published["Version"], "2", "{published:#}");
    assert_eq!(published["CodeSha256"], updated["CodeSha256"]);

    let result = dir.path().join("out.json");
    let invoke = |qualifier: Option<&str>| {
        let mut args = vec!["invoke", "--function-name", "cli-made"];
        args.extend(qualifier.map(|q| ["--qualifier", q]).into_iter().flatten());
        args.push(result.to_str().unwrap());
        let meta: Value = serde_json::from_str(&aws(&args)).unwrap();
        let payload: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
        (meta["ExecutedVersion"].clone(), payload)
    };
    assert_eq!(invoke(None), (json!("$LATEST"), json!({"code": "two", "version": "2"})));
    assert_eq!(invoke(Some("1")), (json!("1"), json!({"code": "one", "version": "1"})));

    // An alias on version 1 that sends half of its invocations to version 2.
    let alias: Value = serde_json::from_str(&aws(&[
        "create-alias",
        "--function-name",
        "cli-made",
        "--name",
        "live",
        "--function-version",
        "1",
        "--routing-config",
        r#"{"AdditionalVersionWeights": {"2": 0.5}}"#,
    ]))
    .unwrap();
    assert_eq!(alias["RoutingConfig"], json!({"AdditionalVersionWeights": {"2": 0.5}}), "{alias:#}");
    let (version, payload) = invoke(Some("live"));
    assert!(version == payload["version"] && (version == "1" || version == "2"), "{version} {payload}");
    let runtime =
        aws(&["get-function", "--function-name", "cli-made", "--query", "Configuration.Runtime", "--output", "text"]);
    assert_eq!(runtime.trim(), "nodejs20.x");
    aws(&["delete-function", "--function-name", "cli-made"]);
    let gone = aws_lambda(&server, &key, &["get-function", "--function-name", "cli-made"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("ResourceNotFoundException"));
}

#[tokio::test]
async fn an_alias_names_a_version_and_sends_a_weighted_share_to_a_second() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "def handler(event, context):\n    return {\"version\": context.function_version}\n";
    let app = crate::async_invoke::python_app("greeter", "timeout = \"5s\"", code);
    server.deploy(app.path());
    let manifest = std::fs::read_to_string(app.path().join("updraft.toml")).unwrap();
    std::fs::write(app.path().join("updraft.toml"), manifest.replace("\"5s\"", "\"6s\"")).unwrap();
    server.deploy(app.path());

    let seen = boto3(&server, &key, &["aliases", "greeter"]);
    assert_eq!(
        seen["created"],
        json!({
            "AliasArn": "arn:aws:lambda:us-east-1:000000000000:function:greeter:live",
            "Name": "live",
            "FunctionVersion": "1",
            "Description": "what users get",
            "RoutingConfig": null,
        }),
        "{seen:#}"
    );
    for invoked in [&seen["invoked"], &seen["invoked_by_name"]] {
        assert_eq!((&invoked["payload"]["version"], &invoked["version"]), (&json!("1"), &json!("1")), "{seen:#}");
    }
    assert_eq!(seen["function_by_alias"], "1");
    assert_eq!(seen["exists"]["code"], "ResourceConflictException", "{seen:#}");
    assert_eq!(seen["no_version"]["code"], "ResourceNotFoundException");
    assert_eq!(seen["numeric"]["code"], "InvalidParameterValueException");

    assert_eq!(seen["updated"]["FunctionVersion"], "1");
    assert_eq!(seen["updated"]["RoutingConfig"], json!({"AdditionalVersionWeights": {"2": 0.5}}));
    assert_eq!(seen["stale"]["code"], "PreconditionFailedException");
    // Both versions take a share of 200 invocations (each below 40 by chance: ~1e-19).
    let split = &seen["split"];
    let (one, two) = (split["1"].as_u64().unwrap_or(0), split["2"].as_u64().unwrap_or(0));
    assert_eq!(one + two, 200, "{split}");
    assert!(one > 40 && two > 40, "{split}");
    assert_eq!(seen["got"]["RoutingConfig"], seen["updated"]["RoutingConfig"]);

    assert_eq!(seen["latest"]["payload"]["version"], "2");
    assert_eq!(seen["listed"], json!(["latest", "live"]));
    assert_eq!(seen["listed_v1"], json!(["live"]));
    assert_eq!(seen["deleted"]["code"], "ResourceNotFoundException");
    assert_eq!(seen["invoke_deleted"]["code"], "ResourceNotFoundException");

    // Records say which version ran each invocation through the alias.
    let records = crate::execution::wait_for_records(&server, "greeter", 203).await;
    let ran = |version: u64| records.iter().filter(|r| r["version"] == version).count() as u64;
    assert_eq!(ran(1), 2 + one, "{split}");
    assert_eq!(ran(2), 1 + two, "{split}");
}

#[tokio::test]
async fn an_http_trigger_can_serve_an_aliases_version_instead_of_the_live_one() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "def handler(event, context):\n    return {\"version\": context.function_version}\n";
    let triggers = "triggers = [{ http = \"GET /stable\", alias = \"stable\" }, { http = \"GET /latest\" }]";
    let app = crate::async_invoke::python_app("greeter", &format!("timeout = \"5s\"\n{triggers}"), code);
    server.deploy(app.path());
    let manifest = std::fs::read_to_string(app.path().join("updraft.toml")).unwrap();
    std::fs::write(app.path().join("updraft.toml"), manifest.replace("\"5s\"", "\"6s\"")).unwrap();
    server.deploy(app.path());

    // Before the alias exists, its route says so rather than serving another version.
    let missing = reqwest::get(server.url("/stable")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("alias stable"), "{body}");

    boto3(&server, &key, &["create-alias", "greeter", "stable", "1"]);
    let stable: Value = reqwest::get(server.url("/stable")).await.unwrap().json().await.unwrap();
    assert_eq!(stable, json!({"version": "1"}));
    let latest: Value = reqwest::get(server.url("/latest")).await.unwrap().json().await.unwrap();
    assert_eq!(latest, json!({"version": "2"}));
}

#[tokio::test]
async fn aliases_declared_in_the_manifest_serve_topics_and_queues_that_name_them() {
    let server = TestServer::start();
    let key = access_key(&server);
    let code = "def handler(event, context):\n    return {\"version\": context.function_version}\n";
    let triggers = "triggers = [{ topic = \"greet\", alias = \"stable\" }, { queue = \"jobs\", alias = \"stable\" }]";
    let app = crate::async_invoke::python_app("greeter", &format!("timeout = \"5s\"\n{triggers}"), code);
    let manifest_path = app.path().join("updraft.toml");
    let first = std::fs::read_to_string(&manifest_path).unwrap();
    server.deploy(app.path());

    // The second deploy makes version 2 and declares the aliases: `stable` pinned to 1,
    // `live` following the version serving.
    let second = first.replace("\"5s\"", "\"6s\"") + "aliases = { stable = 1, live = \"$LATEST\" }\n";
    std::fs::write(&manifest_path, &second).unwrap();
    server.deploy(app.path());
    assert_eq!(boto3(&server, &key, &["get-alias", "greeter", "stable"])["version"], "1");
    assert_eq!(boto3(&server, &key, &["get-alias", "greeter", "live"])["version"], "$LATEST");
    let described = server.cli_ok(&["describe", "greeter"]);
    assert!(described.contains("topics:      greet (alias stable)"), "{described}");
    assert!(described.contains("receives to jobs-dlq, alias stable)"), "{described}");
    let through = boto3(&server, &key, &["versions", "greeter", "stable", "live"]);
    assert_eq!(through["stable"]["payload"], json!({"version": "1"}), "{through}");
    assert_eq!(through["live"]["payload"], json!({"version": "2"}), "{through}");
    // An Event through the alias runs the version the alias names when it runs.
    assert_eq!(through["event"], 202, "{through}");
    let queued = crate::events::records(&server, "greeter", "async", 1).await;
    assert_eq!(queued[0]["version"], 1, "{queued:?}");

    // A message published to the topic and one sent to the queue both run version 1.
    let sent = server.api(reqwest::Method::POST, "/v1/queues/jobs").body("{\"n\": 1}").send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().await.unwrap());
    let published = server.api(reqwest::Method::POST, "/v1/topics/greet").body("{}").send().await.unwrap();
    assert!(published.status().is_success(), "{}", published.text().await.unwrap());
    for trigger in ["topic", "queue"] {
        let records = crate::events::records(&server, "greeter", trigger, 1).await;
        assert!(records.iter().all(|record| record["version"] == 1), "{trigger}: {records:?}");
    }

    // Moving the alias in the manifest moves the triggers with it.
    std::fs::write(&manifest_path, second.replace("stable = 1", "stable = 2")).unwrap();
    server.deploy(app.path());
    let published = server.api(reqwest::Method::POST, "/v1/topics/greet").body("{}").send().await.unwrap();
    assert!(published.status().is_success());
    let records = crate::events::records(&server, "greeter", "topic", 2).await;
    assert_eq!(records.iter().filter(|record| record["version"] == 2).count(), 1, "{records:?}");

    // An alias naming a version the function does not have is refused, nothing applied.
    std::fs::write(&manifest_path, second.replace("stable = 1", "stable = 9")).unwrap();
    let refused = server.cli(&["deploy", app.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("alias \"stable\" names version 9"), "{stderr}");
    assert_eq!(boto3(&server, &key, &["get-alias", "greeter", "stable"])["version"], "2");
}

/// A web server (`runtime = "http"`) whose answer to an event streams: a first line at
/// once, the last when `GET /release` comes.
const HELD_ANSWER: &str = r#"
const http = require("http");
let release = () => {};
http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/") return res.end("ready");
  if (req.url === "/release") {
    release();
    return res.end("released");
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.write("first\n");
  release = () => res.end("last\n");
}).listen(Number(process.env.PORT), "127.0.0.1");
"#;

#[tokio::test]
async fn invoke_with_response_stream_sends_the_answer_as_it_comes() {
    let server = TestServer::start();
    let key = access_key(&server);

    // A streaming function: boto3 gets the first chunk while the function still runs
    // (it ends only when the client, having read that chunk, asks it to).
    let app = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"ticker\"\n\n[functions.ticker]\nruntime = \"http\"\nsource = \"app\"\n\
                    command = \"node server.js\"\nconcurrency_per_instance = 2\ntimeout = \"10s\"\n\
                    triggers = [{ http = \"GET /release\" }]\n";
    std::fs::write(app.path().join("updraft.toml"), manifest).unwrap();
    std::fs::create_dir(app.path().join("app")).unwrap();
    std::fs::write(app.path().join("app/server.js"), HELD_ANSWER).unwrap();
    server.deploy(app.path());
    let streamed = boto3(&server, &key, &["stream", "ticker", "{}", &server.url("/release")]);
    assert_eq!(streamed["chunks"], json!(["first\n", "last\n"]), "{streamed}");
    assert_eq!(streamed["content_type"], "text/plain", "{streamed}");
    assert!(streamed["complete"].get("ErrorCode").is_none(), "{streamed}");

    // A handler whose answer is whole sends it as one chunk; one that fails says so in
    // InvokeComplete.
    let code = "def handler(event, context):\n    if event.get(\"fail\"):\n        raise ValueError(\"no\")\n    \
                return {\"hello\": event[\"hello\"]}\n";
    let app = crate::async_invoke::python_app("whole", "", code);
    server.deploy(app.path());
    let whole = boto3(&server, &key, &["stream", "whole", "{\"hello\": \"stream\"}"]);
    assert_eq!(whole["chunks"], json!(["{\"hello\": \"stream\"}"]), "{whole}");
    assert_eq!(whole["version"], "$LATEST", "{whole}");
    let failed = boto3(&server, &key, &["stream", "whole", "{\"fail\": true}"]);
    assert_eq!(failed["chunks"], json!([]), "{failed}");
    // As Invoke's X-Amz-Function-Error: the runtime's kind of error, and its document.
    assert_eq!(failed["complete"]["ErrorCode"], "Unhandled", "{failed}");
    let details: Value = serde_json::from_str(failed["complete"]["ErrorDetails"].as_str().unwrap()).unwrap();
    assert_eq!((details["errorType"].as_str(), details["errorMessage"].as_str()), (Some("ValueError"), Some("no")));
}

/// A latch on loopback: `GET /wait` answers once `GET /release` has come (or after 20 s).
pub(crate) async fn latch() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let released = std::sync::Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let released = released.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"GET /release") {
                    released.notify_one();
                } else {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), released.notified()).await;
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    (port, task)
}

/// A Node handler streaming with `awslambda.streamifyResponse`: a first line, then
/// (once the latch opens) the last; `HttpResponseStream.from` for HTTP routes, the same
/// way, or failing after its first chunk.
const NODE_STREAMING: &str = r#"
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.log) {
    console.log(`logging ${event.log}`);
    responseStream.end("logged");
    return;
  }
  if (event.fail) {
    responseStream.write("partial\n");
    throw new TypeError("broke mid-stream");
  }
  if (event.rawPath === "/page") {
    const stream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201,
      headers: { "content-type": "text/html", "x-streamed": "yes" },
    });
    stream.write("<p>one</p>");
    await fetch(`http://127.0.0.1:${process.env.LATCH}/wait`).then((r) => r.text());
    stream.end("<p>two</p>");
    return;
  }
  if (event.rawPath === "/broken") {
    const stream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 200 });
    stream.write("<p>partial");
    await fetch(`http://127.0.0.1:${process.env.LATCH}/wait`).then((r) => r.text());
    throw new TypeError("broke behind a route");
  }
  responseStream.setContentType("text/plain");
  responseStream.write("first\n");
  await fetch(`http://127.0.0.1:${process.env.LATCH}/wait`).then((r) => r.text());
  responseStream.write("last\n");
  responseStream.end();
});
"#;

// Multi-threaded: the latch answers while the test's thread waits on the boto3 driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_handler_streams_its_answer_with_streamify_response() {
    let server = TestServer::start();
    let key = access_key(&server);
    let (port, _latch) = latch().await;
    let app = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[app]\nname = \"streamer\"\n\n[functions.streamer]\nruntime = \"nodejs\"\nhandler = \"index.handler\"\n\
         source = \"src\"\ntimeout = \"10s\"\nallowed_outbound_hosts = [\"127.0.0.1:{port}\"]\n\
         env = {{ LATCH = \"{port}\" }}\ntriggers = [{{ http = \"GET /page\" }}, {{ http = \"GET /broken\" }}]\n"
    );
    std::fs::write(app.path().join("updraft.toml"), manifest).unwrap();
    std::fs::create_dir(app.path().join("src")).unwrap();
    std::fs::write(app.path().join("src/index.mjs"), NODE_STREAMING).unwrap();
    server.deploy(app.path());

    // The first line arrives while the handler still waits: the client opens the latch
    // only once it has read it.
    let release = format!("http://127.0.0.1:{port}/release");
    let streamed = boto3(&server, &key, &["stream", "streamer", "{}", &release]);
    assert_eq!(streamed["chunks"], json!(["first\n", "last\n"]), "{streamed}");
    assert_eq!(streamed["content_type"], "text/plain", "{streamed}");
    assert!(streamed["complete"].get("ErrorCode").is_none(), "{streamed}");

    // LogType Tail: the end of the invocation's log comes in InvokeComplete.
    let tailed = boto3(&server, &key, &["stream-tail", "streamer", "{\"log\": \"tail me\"}"]);
    assert!(tailed["log"].as_str().unwrap_or_default().contains("logging tail me"), "{tailed}");
    assert!(tailed["log"].as_str().unwrap_or_default().contains("REPORT RequestId"), "{tailed}");

    // An error thrown mid-stream cuts the answer and says what it was.
    let failed = boto3(&server, &key, &["stream", "streamer", "{\"fail\": true}"]);
    assert_eq!(failed["chunks"], json!(["partial\n"]), "{failed}");
    assert_eq!(failed["complete"]["ErrorCode"], "Runtime.StreamError", "{failed}");
    let records = crate::execution::wait_for_records(&server, "streamer", 3).await;
    let broke = records.iter().find(|r| r["status"] == "error").expect("the failed stream's record");
    assert!(broke["error_message"].as_str().unwrap_or_default().contains("broke mid-stream"), "{broke}");

    // Behind an HTTP route, the prelude HttpResponseStream.from wrote is the head, and
    // the body streams: the first chunk arrives while the handler waits on the latch,
    // which the client opens only once it has read it (buffered, the handler would
    // wait past its timeout).
    let mut page = reqwest::get(server.url("/page")).await.unwrap();
    assert_eq!(page.status(), StatusCode::CREATED);
    assert_eq!(page.headers()["x-streamed"], "yes");
    assert_eq!(page.headers()["content-type"], "text/html");
    let mut received = Vec::new();
    while !received.ends_with(b"<p>one</p>") {
        received.extend_from_slice(&page.chunk().await.unwrap().expect("the first chunk"));
    }
    reqwest::get(format!("http://127.0.0.1:{port}/release")).await.unwrap();
    while let Some(chunk) = page.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8(received).unwrap(), "<p>one</p><p>two</p>");

    // A handler that fails after its head cuts the body: the client sees an error, not
    // a short page, and the record says why.
    let mut broken = reqwest::get(server.url("/broken")).await.unwrap();
    assert_eq!(broken.status(), StatusCode::OK);
    assert_eq!(broken.chunk().await.unwrap().expect("the first chunk"), "<p>partial");
    reqwest::get(format!("http://127.0.0.1:{port}/release")).await.unwrap();
    assert!(broken.chunk().await.is_err(), "a cut body must not read as complete");
    let records = crate::execution::wait_for_records(&server, "streamer", 5).await;
    assert!(
        records.iter().any(|r| r["error_message"].as_str().unwrap_or_default().contains("broke behind a route")),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_topic_message_for_an_alias_that_does_not_exist_fails_after_its_retries() {
    let server = TestServer::start_with(&["--async-retry-delay", "100ms"]);
    let code = "def handler(event, context):\n    return {}\n";
    let extra = "retries = 1\ntriggers = [{ topic = \"haunt\", alias = \"ghost\" }]";
    let app = crate::async_invoke::python_app("ghostly", extra, code);
    server.deploy(app.path());
    let published = server.api(reqwest::Method::POST, "/v1/topics/haunt").body("{}").send().await.unwrap();
    assert!(published.status().is_success());
    // Tried twice (nothing ran, nothing to wait for), then failed for good, saying why.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let failed = loop {
        let listed =
            crate::json(server.api(reqwest::Method::GET, "/v1/async/failed?function=ghostly").send().await.unwrap())
                .await;
        if let Some(event) = listed["events"].as_array().and_then(|events| events.first()).cloned() {
            break event;
        }
        assert!(std::time::Instant::now() < deadline, "the event never failed: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed["attempts"], 2, "{failed}");
    assert!(failed["last_error"].as_str().unwrap_or_default().contains("no version or alias ghost"), "{failed}");
}
