//! Canary deploys: a share of invocations on the new version, rolled back by itself when
//! it fails, promoted when its time is up, or ended by hand.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::json;

const GOOD: &str = "def handler(event, context):\n    return {\"version\": context.function_version}\n";
const BROKEN: &str = "def handler(event, context):\n    raise RuntimeError(\"broken\")\n";

/// Invokes `shop` once: the version that answered, or `None` when it failed.
async fn invoke(server: &TestServer) -> Option<String> {
    let response = server.api(Method::POST, "/v1/functions/shop/invoke").json(&json!({})).send().await.unwrap();
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    body["version"].as_str().map(str::to_owned)
}

async fn function(server: &TestServer) -> Value {
    json(server.api(Method::GET, "/v1/functions/shop").send().await.unwrap()).await
}

/// Invokes `shop` until `done` holds for its description (at most 60 s); returns what
/// the invocations got.
async fn invoke_until(server: &TestServer, done: impl Fn(&Value) -> bool) -> Vec<Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        seen.push(invoke(server).await);
        let described = function(server).await;
        if done(&described) {
            return seen;
        }
        assert!(Instant::now() < deadline, "still {described:#} after {seen:?}");
    }
}

#[tokio::test]
async fn a_failing_canary_rolls_back_by_itself_and_a_sound_one_is_promoted() {
    let server = TestServer::start();
    let app = crate::async_invoke::python_app("shop", "", GOOD);
    let dir = app.path().to_str().unwrap();
    server.deploy(app.path());
    let write = |code: &str| std::fs::write(app.path().join("src/app.py"), code).unwrap();

    // Version 2 fails every time: once it has failed clearly more often than version 1,
    // the canary is rolled back, without anyone watching.
    write(BROKEN);
    let out = server.cli_ok(&["deploy", dir, "--canary", "50%", "--for", "1h"]);
    assert!(out.contains("v2") && out.contains("canary: 50% for 1h"), "{out}");
    let canary = &function(&server).await["canary"];
    assert_eq!((&canary["previous_version"], &canary["percent"]), (&json!(1), &json!(50.0)), "{canary}");
    let seen = invoke_until(&server, |f| f["version"] == 1 && f["canary"].is_null()).await;
    assert!(seen.contains(&None) && seen.contains(&Some("1".into())), "both versions ran: {seen:?}");
    for _ in 0..10 {
        assert_eq!(invoke(&server).await.as_deref(), Some("1"), "after the rollback only version 1 runs");
    }

    // Version 3 holds: its canary is promoted when its time is up.
    write(&GOOD.replace("return", "return  "));
    server.cli_ok(&["deploy", dir, "--canary", "50%", "--for", "2s"]);
    let seen = invoke_until(&server, |f| f["canary"].is_null()).await;
    assert!(seen.iter().all(|v| v.as_deref() == Some("1") || v.as_deref() == Some("3")), "{seen:?}");
    assert_eq!(function(&server).await["version"], 3);
    for _ in 0..10 {
        assert_eq!(invoke(&server).await.as_deref(), Some("3"));
    }

    // By hand: promoted at once, or rolled back to the version before the canary.
    write(&GOOD.replace("return", "return   "));
    server.cli_ok(&["deploy", dir, "--canary", "10%", "--for", "1h"]);
    let out = server.cli_ok(&["promote", "shop"]);
    assert!(out.contains("canary ended"), "{out}");
    assert!(function(&server).await["canary"].is_null());
    assert_eq!(invoke(&server).await.as_deref(), Some("4"));
    let again = server.cli(&["promote", "shop"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("no canary"));

    write(&GOOD.replace("return", "return    "));
    server.cli_ok(&["deploy", dir, "--canary", "10%", "--for", "1h"]);
    server.cli_ok(&["rollback", "shop"]);
    let described = function(&server).await;
    assert_eq!((&described["version"], &described["canary"]), (&json!(4), &Value::Null), "{described:#}");

    let refused = server.cli(&["deploy", dir, "--canary", "100%", "--for", "1h"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("above 0 and below 100"));
}
