//! Snapshots of what users and scripts read: the `/v1` views and the CLI's human
//! output, so that a change of wire shape or of wording shows in review. Rewrite them
//! with `UPDATE_EXPECT=1 cargo test -p updraft --test it snapshots`.

use expect_test::{Expect, expect};
use serde_json::Value;
use updraft_test_programs as programs;

use crate::harness::{TestServer, app_with_guest};

const MANIFEST: &str = r#"[app]
name = "shop"

[functions.orders]
runtime = "wasm"
source = "fn.wasm"
memory = "64MiB"
timeout = "5s"
concurrency = 4
env = { GREETING = "hello" }
allowed_outbound_hosts = ["api.example.com:443"]
triggers = [
  { http = "GET /orders/{id}" },
  { topic = "order.placed" },
  { schedule = "rate(1 hour)" },
  { queue = "jobs", batch_size = 5 },
]
retries = 1
max_event_age = "1h"
on_failure = { topic = "order.failed" }
"#;

/// A server with the `shop` app deployed.
fn shop() -> (TestServer, tempfile::TempDir) {
    let server = TestServer::start();
    let app = tempfile::tempdir().unwrap();
    app_with_guest(app.path(), MANIFEST, &programs::bytes(programs::ECHO));
    server.deploy(app.path());
    (server, app)
}

#[tokio::test]
async fn the_v1_views_keep_their_shape() {
    let (server, _app) = shop();
    let view = async |path: &str| {
        let response = server.api(reqwest::Method::GET, path).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let mut body: Value = response.json().await.unwrap();
        redact_json(&mut body);
        serde_json::to_string_pretty(&body).unwrap()
    };
    check(
        &view("/v1/functions").await,
        expect![[r#"
            {
              "functions": [
                {
                  "allowed_outbound_hosts": [
                    "api.example.com:443"
                  ],
                  "app": "shop",
                  "artifact": "sha256:<hex>",
                  "command": null,
                  "concurrency": 4,
                  "concurrency_per_instance": 1,
                  "created_at_ms": "<ms>",
                  "dead_letter_topic": null,
                  "emails": [],
                  "env": {
                    "GREETING": "hello"
                  },
                  "handler": null,
                  "instance_reuse": false,
                  "latest_version": 1,
                  "max_event_age_ms": 3600000,
                  "memory_bytes": 67108864,
                  "name": "orders",
                  "on_failure": "topic order.failed",
                  "on_success": null,
                  "publishes": [],
                  "queues": [
                    {
                      "batch_size": 5,
                      "batch_window_ms": 0,
                      "dead_letter_queue": "jobs-dlq",
                      "max_receives": 5,
                      "queue": "jobs",
                      "visibility_timeout_ms": 30000
                    }
                  ],
                  "readiness_path": null,
                  "retries": 1,
                  "routes": [
                    {
                      "auth": "public",
                      "kind": "http",
                      "methods": "GET",
                      "payload_format": "2.0",
                      "route": "/orders/{id}",
                      "secret": null,
                      "secret_env": null
                    }
                  ],
                  "runtime": "wasm",
                  "schedules": [
                    {
                      "catch_up": "latest",
                      "schedule": "rate(1 hour)",
                      "timezone": "UTC"
                    }
                  ],
                  "secret_env": {},
                  "starts": [],
                  "timeout_ms": 5000,
                  "topics": [
                    "order.placed"
                  ],
                  "updated_at_ms": "<ms>",
                  "version": 1
                }
              ],
              "next_after": null
            }"#]],
    );
    // A function reads the same alone as in the list.
    let list: Value = serde_json::from_str(&view("/v1/functions").await).unwrap();
    let one: Value = serde_json::from_str(&view("/v1/functions/orders").await).unwrap();
    assert_eq!(one, list["functions"][0]);
    check(
        &view("/v1/functions/orders/versions").await,
        expect![[r#"
            {
              "function": "orders",
              "versions": [
                {
                  "allowed_outbound_hosts": [
                    "api.example.com:443"
                  ],
                  "artifact": "sha256:<hex>",
                  "command": null,
                  "concurrency": 4,
                  "concurrency_per_instance": 1,
                  "created_at_ms": "<ms>",
                  "current": true,
                  "dead_letter_topic": null,
                  "emails": [],
                  "env": {
                    "GREETING": "hello"
                  },
                  "handler": null,
                  "instance_reuse": false,
                  "max_event_age_ms": 3600000,
                  "memory_bytes": 67108864,
                  "on_failure": "topic order.failed",
                  "on_success": null,
                  "publishes": [],
                  "queues": [
                    {
                      "batch_size": 5,
                      "batch_window_ms": 0,
                      "dead_letter_queue": "jobs-dlq",
                      "max_receives": 5,
                      "queue": "jobs",
                      "visibility_timeout_ms": 30000
                    }
                  ],
                  "readiness_path": null,
                  "retries": 1,
                  "routes": [
                    {
                      "auth": "public",
                      "kind": "http",
                      "methods": "GET",
                      "payload_format": "2.0",
                      "route": "/orders/{id}",
                      "secret": null,
                      "secret_env": null
                    }
                  ],
                  "runtime": "wasm",
                  "schedules": [
                    {
                      "catch_up": "latest",
                      "schedule": "rate(1 hour)",
                      "timezone": "UTC"
                    }
                  ],
                  "secret_env": {},
                  "starts": [],
                  "timeout_ms": 5000,
                  "topics": [
                    "order.placed"
                  ],
                  "version": 1
                }
              ]
            }"#]],
    );
    check(
        &view("/v1/queues/jobs").await,
        expect![[r#"
        {
          "consumers": [
            "orders"
          ],
          "in_flight": 0,
          "queue": "jobs",
          "visible": 0
        }"#]],
    );
}

#[tokio::test]
async fn the_clis_human_output_keeps_its_shape() {
    let (server, _app) = shop();
    check(
        &redact_text(&server.cli_ok(&["ls"])),
        expect![[r#"
            NAME                     APP              VERSION    MEMORY  TIMEOUT  TRIGGERS
            orders                   shop                   1     64MiB   5000ms  GET /orders/{id}, topic order.placed, queue jobs, schedule rate(1 hour)
        "#]],
    );
    check(
        &redact_text(&server.cli_ok(&["describe", "orders"])),
        expect![[r#"
        name:        orders
        app:         shop
        version:     1 (latest 1)
        runtime:     wasm
        artifact:    sha256:<hex>
        memory:      64 MiB
        timeout:     5000 ms
        concurrency: 4
        reuse:       fresh instance per request
        outbound:    api.example.com:443
        env:         GREETING
        routes:
          GET /orders/{id}
        topics:      order.placed
        queue:       jobs (batches of 5, window 0 ms, visibility 30000 ms, after 5 receives to jobs-dlq)
        schedule:    rate(1 hour) (UTC, catch-up latest)
        async:       1 retries, max age 3600 s
        on failure:  topic order.failed
    "#]],
    );
    check(
        &redact_text(&server.cli_ok(&["versions", "orders"])),
        expect![[r#"
        VERSION  SERVING  CREATED (ms)         ARTIFACT
              1  yes      <ms>        sha256:<hex>
    "#]],
    );
    let unknown = server.cli(&["describe", "nobody"]);
    assert!(!unknown.status.success());
    check(
        &redact_text(&String::from_utf8_lossy(&unknown.stderr)),
        expect![[r#"
        error: function "nobody" not found (404 Not Found, function_not_found)
    "#]],
    );
}

fn check(actual: &str, expected: Expect) {
    expected.assert_eq(actual);
}

/// Values that differ from run to run (times, digests, ids) become placeholders.
fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if (key.ends_with("_at") || key.ends_with("_at_ms")) && value.is_number() {
                    *value = Value::String("<ms>".to_owned());
                } else {
                    redact_json(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(text) => *text = redact_text(text),
        _ => {}
    }
}

/// Runs of 32 or more hex digits become `<hex>`, runs of 13 digits (a time in
/// milliseconds) `<ms>`.
fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("<hex>");
        } else if run.len() == 13 && run.chars().all(|c| c.is_ascii_digit()) {
            out.push_str("<ms>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}
