//! Lambda handlers run unchanged: the bootstraps, the context, the error shapes, the
//! reserved environment, HTTP events.

use std::time::Duration;

use serde_json::json;
use updraft_runtime::InvokeError;

use crate::harness::{Function, Input, call, harness, invoke, json, output};

const PY_ECHO: &str = r#"
import os
print("loading")

def handler(event, context):
    if "fail" in event:
        raise ValueError(event["fail"])
    print("got", event)
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name,
        "greeting": os.environ.get("GREETING"),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "env": {k: os.environ.get(k) for k in ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_REGION", "TZ"]},
    }
"#;

#[tokio::test]
async fn a_python_handler_gets_its_event_and_context() {
    let h = harness().await;
    let mut instance =
        h.start("py-echo", Function::python("app.handler"), &[("app.py", PY_ECHO, false)]).await.unwrap();
    let first = invoke(&mut instance, "req-1", json!({"n": 1})).await;
    let body = json(&first);
    assert_eq!(body["event"], json!({"n": 1}));
    assert_eq!(body["request_id"], "req-1");
    assert_eq!(body["function_name"], "py-echo");
    assert_eq!(body["version"], "3");
    assert_eq!(body["memory"], "128");
    assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:000000000000:function:py-echo");
    let remaining = body["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 10_000, "remaining {remaining}");
    assert_eq!(body["log_group"], "/aws/lambda/py-echo");
    assert_eq!(body["greeting"], "hi");
    let trace = body["trace"].as_str().unwrap();
    assert!(
        trace.starts_with("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=") && trace.ends_with(";Sampled=1"),
        "{trace}"
    );
    let env = &body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "py-echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
    assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(env["_HANDLER"], "app.handler");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["TZ"], ":UTC");
    let log = output(&first);
    assert!(log.contains("loading") && log.contains("got {'n': 1}"), "{log}");
    assert!(first.reusable);

    // Warm: the same process answers the next event, and module state survives.
    let second = invoke(&mut instance, "req-2", json!({"n": 2})).await;
    assert_eq!(json(&second)["request_id"], "req-2");
    assert!(!output(&second).contains("loading"));
}

#[tokio::test]
async fn a_python_exception_comes_back_in_pythons_shape() {
    let h = harness().await;
    let mut instance =
        h.start("py-fail", Function::python("app.handler"), &[("app.py", PY_ECHO, false)]).await.unwrap();
    let invoked = invoke(&mut instance, "req-f", json!({"fail": "no good"})).await;
    let Err(InvokeError::Function { error_type, document, .. }) = &invoked.result else {
        panic!("expected a function error, got {:?}", invoked.result);
    };
    let document: serde_json::Value = serde_json::from_slice(document).unwrap();
    assert_eq!(document["errorType"], "ValueError");
    assert_eq!(document["errorMessage"], "no good");
    assert_eq!(document["requestId"], "req-f");
    assert!(document["stackTrace"].as_array().is_some_and(|t| !t.is_empty()), "{document}");
    assert!(!error_type.is_empty());
    let error = invoked.result.as_ref().unwrap_err();
    assert_eq!(error.to_string(), "the function failed: ValueError: no good", "the report, in a line");
    assert!(invoked.reusable, "a handler's exception leaves the runtime usable");
    // ...and it is.
    assert_eq!(json(&invoke(&mut instance, "req-g", json!({})).await)["request_id"], "req-g");
}

#[tokio::test]
async fn a_handler_that_cannot_import_fails_init_with_the_runtimes_error() {
    let h = harness().await;
    let broken = "import does_not_exist\ndef handler(e, c):\n    return 1\n";
    let Err(error) = h.start("py-broken", Function::python("app.handler"), &[("app.py", broken, false)]).await else {
        panic!("the instance started");
    };
    let InvokeError::Init { message } = error else { panic!("{error:?}") };
    assert!(message.contains("Runtime.ImportModuleError"), "{message}");
    assert!(message.contains("does_not_exist"), "{message}");
}

#[tokio::test]
async fn a_missing_handler_module_is_refused_at_deploy() {
    let h = harness().await;
    let zip = crate::harness::bundle(h.dir.path(), "nomod", &[("other.py", "x = 1\n", false)]);
    let error = h.prepare("nomod", &Function::python("app.handler"), &zip).await.err().unwrap();
    assert!(error.contains("app.py"), "{error}");
    let error = h.prepare("nomod", &Function::python("nodot"), &zip).await.err().unwrap();
    assert!(error.contains("module.function"), "{error}");
}

const NODE_ECHO: &str = r#"
exports.handler = async (event, context) => {
  if (event.fail) throw new TypeError(event.fail);
  console.log("got", JSON.stringify(event));
  return { event, requestId: context.awsRequestId, name: context.functionName,
           memory: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis() };
};
"#;

const NODE_ESM: &str = r#"
export const handler = async (event) => ({ esm: true, event });
"#;

#[tokio::test]
async fn node_handlers_run_as_commonjs_and_as_modules() {
    let h = harness().await;
    let mut cjs =
        h.start("node-cjs", Function::node("index.handler"), &[("index.js", NODE_ECHO, false)]).await.unwrap();
    let invoked = invoke(&mut cjs, "n-1", json!({"a": 1})).await;
    let body = json(&invoked);
    assert_eq!(body["event"], json!({"a": 1}));
    assert_eq!(body["requestId"], "n-1");
    assert_eq!(body["name"], "node-cjs");
    assert!(output(&invoked).contains("n-1\tINFO\tgot {\"a\":1}"), "{}", output(&invoked));

    let failed = invoke(&mut cjs, "n-2", json!({"fail": "bad type"})).await;
    let Err(InvokeError::Function { document, .. }) = &failed.result else { panic!("{:?}", failed.result) };
    let document: serde_json::Value = serde_json::from_slice(document).unwrap();
    assert_eq!(document["errorType"], "TypeError");
    assert_eq!(document["errorMessage"], "bad type");
    assert!(document["trace"].is_array(), "Node reports `trace`, not `stackTrace`: {document}");

    let mut esm = h.start("node-esm", Function::node("app.handler"), &[("app.mjs", NODE_ESM, false)]).await.unwrap();
    assert_eq!(json(&invoke(&mut esm, "n-3", json!(7)).await), json!({"esm": true, "event": 7}));
}

#[tokio::test]
async fn http_requests_arrive_as_api_gateway_events_and_answers_map_back() {
    let h = harness().await;
    let code = r#"
import json
def handler(event, context):
    return {"statusCode": 201, "headers": {"x-route": event["routeKey"]}, "cookies": ["a=1"],
            "body": json.dumps({"path": event["rawPath"], "q": event.get("queryStringParameters"), "body": event.get("body")})}
"#;
    let mut instance = h.start("py-http", Function::python("app.handler"), &[("app.py", code, false)]).await.unwrap();
    let request = http::Request::post("/things?x=1")
        .header("content-type", "text/plain")
        .header("x-updraft-route", "/things")
        .body(updraft_runtime::Body::whole(&b"hello"[..]))
        .unwrap();
    let invoked =
        crate::harness::whole(instance.invoke(Input::Http(request), call("h-1", Duration::from_secs(10))).await).await;
    let response = invoked.result.as_ref().unwrap_or_else(|e| panic!("{e}: {}", output(&invoked)));
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-route"], "POST /things");
    assert_eq!(response.headers()["set-cookie"], "a=1");
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body, json!({"path": "/things", "q": {"x": "1"}, "body": "hello"}));
}

#[tokio::test]
async fn a_handler_past_its_timeout_is_killed_and_not_reused() {
    let h = harness().await;
    let code = "import time\ndef handler(event, context):\n    time.sleep(30)\n";
    let mut instance = h.start("py-slow", Function::python("app.handler"), &[("app.py", code, false)]).await.unwrap();
    let invoked = crate::harness::whole(
        instance.invoke(crate::harness::event(json!({})), call("t-1", Duration::from_millis(300))).await,
    )
    .await;
    assert!(matches!(invoked.result, Err(InvokeError::Timeout { .. })), "{:?}", invoked.result);
    assert!(!invoked.reusable);
}

/// A custom runtime speaking the Runtime API by hand, checking what the official
/// clients rely on: the headers of `next`, request-id checks, state transitions.
const PROVIDED: &str = r#"#!/usr/bin/python3
import http.client, json, os
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.split(":")
conn = http.client.HTTPConnection(host, int(port))
def call(method, path, body=None, headers={}):
    conn.request(method, "/2018-06-01/runtime/" + path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()
while True:
    status, headers, body = call("GET", "invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    checks = {
        "deadline": headers.get("Lambda-Runtime-Deadline-Ms", "").isdigit(),
        "arn": headers.get("Lambda-Runtime-Invoked-Function-Arn"),
        "trace": headers.get("Lambda-Runtime-Trace-Id", "").startswith("Root=1-"),
        "content_type": headers.get("Content-Type"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
    }
    s, _, b = call("GET", "invocation/next")
    checks["next_again"] = [s, json.loads(b)["errorType"]]
    s, _, b = call("POST", "invocation/not-" + rid + "/response", body=b"{}")
    checks["wrong_id"] = [s, json.loads(b)["errorType"]]
    s, _, b = call("POST", "init/error", body=b"{}")
    checks["late_init_error"] = [s, json.loads(b)["errorType"]]
    event = json.loads(body)
    if event.get("big"):
        s, _, b = call("POST", "invocation/" + rid + "/response", body=b"x" * (7 * 1024 * 1024))
        assert s == 413 and json.loads(b)["errorType"] == "RequestEntityTooLarge", (s, b)
        continue
    if event.get("error"):
        s, _, b = call("POST", "invocation/" + rid + "/error", body=json.dumps({"errorMessage": "custom", "errorType": "X"}),
                       headers={"Lambda-Runtime-Function-Error-Type": event["error"]})
    else:
        s, _, b = call("POST", "invocation/" + rid + "/response", body=json.dumps(checks))
    assert s == 202, (s, b)
"#;

#[tokio::test]
async fn a_custom_runtime_sees_the_runtime_api_as_lambda_serves_it() {
    let h = harness().await;
    let mut instance = h.start("custom", Function::provided(), &[("bootstrap", PROVIDED, true)]).await.unwrap();
    let invoked = invoke(&mut instance, "c-1", json!({})).await;
    let checks = json(&invoked);
    assert_eq!(checks["deadline"], true);
    assert_eq!(checks["arn"], "arn:aws:lambda:us-east-1:000000000000:function:custom");
    assert_eq!(checks["trace"], true);
    assert_eq!(checks["content_type"], "application/json");
    assert_eq!(checks["execution_env"], serde_json::Value::Null, "custom runtimes get no AWS_EXECUTION_ENV");
    assert_eq!(checks["next_again"], json!([403, "InvalidStateTransition"]));
    assert_eq!(checks["wrong_id"], json!([400, "InvalidRequestID"]));
    assert_eq!(checks["late_init_error"], json!([403, "InvalidStateTransition"]));

    // A response over the limit fails the invocation, not the runtime.
    let big = invoke(&mut instance, "c-big", json!({"big": true})).await;
    assert!(matches!(big.result, Err(InvokeError::ResponseTooLarge { .. })), "{:?}", big.result);
    assert!(big.reusable);

    // Error types are normalised as Lambda does.
    for (sent, kept) in
        [("Function.Custom", "Function.Custom"), ("Function.bad!", "Function.Unknown"), ("Whatever", "Runtime.Unknown")]
    {
        let invoked = invoke(&mut instance, "c-2", json!({"error": sent})).await;
        let Err(InvokeError::Function { error_type, .. }) = &invoked.result else { panic!("{:?}", invoked.result) };
        assert_eq!(error_type, kept);
    }
}
