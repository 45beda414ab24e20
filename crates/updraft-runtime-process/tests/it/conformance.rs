//! Clients nobody here wrote: AWS's own runtime interface clients for Python
//! (`awslambdaric`) and Node.js (`aws-lambda-ric`) run as `provided` bootstraps, in the
//! sandbox, against Updraft's Runtime API. `tests/conformance/setup.sh` installs them
//! (`.ci/run` runs it).

use std::path::{Path, PathBuf};

use serde_json::json;
use updraft_runtime::InvokeError;

use crate::harness::{Function, harness, invoke, json};

fn fixture(name: &str, installed: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance").join(name);
    assert!(
        dir.join(installed).exists(),
        "{} is missing: run crates/updraft-runtime-process/tests/conformance/setup.sh first",
        dir.join(installed).display()
    );
    dir
}

fn with_handler(mut function: Function) -> Function {
    function.handler = Some("app.handler");
    function
}

#[tokio::test]
async fn awslambdaric_runs_as_a_custom_runtime() {
    let h = harness().await;
    let src = fixture("python-ric", "vendor/awslambdaric");
    let mut instance = h.start_dir("python-ric", with_handler(Function::provided()), &src).await.unwrap();
    let body = json(&invoke(&mut instance, "ric-1", json!({"n": 1})).await);
    assert_eq!(body["client"], "awslambdaric");
    assert_eq!(body["context_class"], "awslambdaric.lambda_context.LambdaContext");
    assert_eq!(body["request_id"], "ric-1");
    assert_eq!(body["function_name"], "python-ric");
    assert_eq!(body["event"], json!({"n": 1}));
    assert!(body["remaining_ms"].as_i64().unwrap() > 0);

    let failed = invoke(&mut instance, "ric-2", json!({"fail": "boom"})).await;
    let Err(InvokeError::Function { document, .. }) = &failed.result else { panic!("{:?}", failed.result) };
    let document: serde_json::Value = serde_json::from_slice(document).unwrap();
    assert_eq!(document["errorType"], "ValueError");
    assert_eq!(document["errorMessage"], "boom");
    assert!(document["stackTrace"].is_array());
    // And it keeps serving.
    assert_eq!(json(&invoke(&mut instance, "ric-3", json!(3)).await)["event"], 3);
}

#[tokio::test]
async fn aws_lambda_ric_runs_as_a_custom_runtime() {
    let h = harness().await;
    let src = fixture("node-ric", "node_modules/aws-lambda-ric");
    let mut instance = h.start_dir("node-ric", with_handler(Function::provided()), &src).await.unwrap();
    let body = json(&invoke(&mut instance, "nric-1", json!({"n": 1})).await);
    assert_eq!(body["client"], "aws-lambda-ric");
    assert_eq!(body["streamify"], "function");
    assert_eq!(body["requestId"], "nric-1");
    assert_eq!(body["functionName"], "node-ric");
    assert_eq!(body["event"], json!({"n": 1}));

    let failed = invoke(&mut instance, "nric-2", json!({"fail": "boom"})).await;
    let Err(InvokeError::Function { document, .. }) = &failed.result else { panic!("{:?}", failed.result) };
    let document: serde_json::Value = serde_json::from_slice(document).unwrap();
    assert_eq!(document["errorType"], "Error");
    assert_eq!(document["errorMessage"], "boom");
    assert!(document["trace"].is_array(), "Node's shape: {document}");
    assert_eq!(json(&invoke(&mut instance, "nric-3", json!(3)).await)["event"], 3);
}

/// The binary of `examples/rust-lambda.rs`, which `cargo test` builds with the tests.
fn rust_lambda() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("examples/rust-lambda");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it; with a narrower command, run `cargo build --examples -p updraft-runtime-process` first",
        path.display()
    );
    path
}

#[tokio::test]
async fn a_rust_function_built_with_lambda_runtime_runs_as_a_custom_runtime() {
    let h = harness().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(rust_lambda(), src.path().join("bootstrap")).unwrap();
    let mut instance = h.start_dir("rust-lambda", Function::provided(), src.path()).await.unwrap();
    let body = json(&invoke(&mut instance, "rs-1", json!({"n": 1})).await);
    assert_eq!(body["client"], "lambda_runtime");
    assert_eq!(body["request_id"], "rs-1");
    assert_eq!(body["function_name"], "rust-lambda");
    assert_eq!(body["memory"], 128);
    assert_eq!(body["version"], "3");
    assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:000000000000:function:rust-lambda");
    assert_eq!(body["event"], json!({"n": 1}));

    let failed = invoke(&mut instance, "rs-2", json!({"fail": "no"})).await;
    let Err(InvokeError::Function { document, .. }) = &failed.result else { panic!("{:?}", failed.result) };
    let document: serde_json::Value = serde_json::from_slice(document).unwrap();
    assert_eq!(document["errorMessage"], "no", "{document}");
    assert_eq!(json(&invoke(&mut instance, "rs-3", json!(3)).await)["event"], 3);
}
