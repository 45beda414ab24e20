//! Log search end to end: `updraft logs` filtered by level, text, request and time,
//! across an app's functions, and followed as lines arrive; the same on the API.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestServer;
use crate::json;

/// Writes each kind of line a user's function writes: plain output, a Lambda-style
/// `[ERROR]` line, a traceback on stderr, and a JSON log line with its own level.
const CHATTY: &str = r#"
import sys

def handler(event, context):
    n = event["n"]
    print(f"serving {n}")
    print(f"[ERROR] order {n} was declined")
    sys.stderr.write(f"Traceback for {n}\n")
    sys.stderr.flush()
    print('{"level": "warn", "msg": "slow disk %d"}' % n)
    return {"ok": n}
"#;

/// Two apps: `shop` with `orders` and `cart`, `blog` with `posts`.
fn apps() -> (tempfile::TempDir, tempfile::TempDir) {
    let write = |app: &str, functions: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = format!("[app]\nname = \"{app}\"\n");
        for function in functions {
            manifest.push_str(&format!(
                "\n[functions.{function}]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n"
            ));
        }
        std::fs::write(dir.path().join("updraft.toml"), manifest).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/app.py"), CHATTY).unwrap();
        dir
    };
    (write("shop", &["orders", "cart"]), write("blog", &["posts"]))
}

/// The request id of `function`'s invocation that answered `{"ok": n}`.
async fn request_id(server: &TestServer, function: &str, n: u64) -> String {
    let page =
        json(server.api(Method::GET, &format!("/v1/invocations?function={function}")).send().await.unwrap()).await;
    let ids: Vec<String> =
        page["invocations"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    for id in ids {
        let logs = json(
            server.api(Method::GET, &format!("/v1/functions/{function}/logs?request_id={id}")).send().await.unwrap(),
        )
        .await;
        if logs["lines"].as_array().unwrap().iter().any(|line| line["line"] == format!("serving {n}")) {
            return id;
        }
    }
    panic!("no invocation of {function} served {n}");
}

/// The function and text of a line `updraft logs` prints for several functions
/// (`FUNCTION REQUEST-ID STREAM TEXT`).
fn function_and_text(line: &str) -> (&str, &str) {
    let mut words = line.splitn(4, ' ');
    let function = words.next().unwrap();
    (function, words.nth(2).unwrap_or_else(|| panic!("{line:?}")))
}

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.api(Method::GET, path).send().await.unwrap()
}

/// The lines `updraft logs ARGS` prints, without the request id and stream.
fn texts(output: &str) -> Vec<String> {
    output.lines().map(|line| line.splitn(3, ' ').nth(2).unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn logs_are_searched_by_level_text_request_and_time_across_an_app() {
    let server = TestServer::start();
    let (shop, blog) = apps();
    server.deploy(shop.path());
    server.deploy(blog.path());
    for (function, n) in [("orders", 1), ("orders", 2), ("cart", 3), ("posts", 4)] {
        assert_eq!(server.invoke(function, json!({ "n": n })).await, json!({ "ok": n }));
    }
    server.wait_for_function_log("orders", "order 2 was declined").await;
    server.wait_for_function_log("cart", "REPORT").await;
    server.wait_for_function_log("posts", "REPORT").await;

    // Levels: `[ERROR]` lines and undeclared stderr are errors; the JSON line says warn.
    // (A function's stdout and stderr are separate pipes: their lines interleave freely.)
    let mut errors = texts(&server.cli_ok(&["logs", "orders", "--level", "error"]));
    errors.sort_unstable();
    assert_eq!(
        errors,
        ["Traceback for 1", "Traceback for 2", "[ERROR] order 1 was declined", "[ERROR] order 2 was declined"]
    );
    let warnings = texts(&server.cli_ok(&["logs", "orders", "--level", "WARN"]));
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    assert!(warnings.contains(&r#"{"level": "warn", "msg": "slow disk 2"}"#.to_owned()), "{warnings:?}");

    // Text, ignoring case.
    let declined = texts(&server.cli_ok(&["logs", "orders", "--grep", "DECLINED"]));
    assert_eq!(declined, ["[ERROR] order 1 was declined", "[ERROR] order 2 was declined"]);

    // One invocation's lines, Updraft's own among them.
    let first = request_id(&server, "orders", 1).await;
    let own = server.cli_ok(&["logs", "orders", "--request-id", &first]);
    assert!(own.lines().all(|line| line.starts_with(&first)), "{own}");
    let own = texts(&own);
    assert!(own[0].starts_with("START RequestId: "), "{own:?}");
    assert!(own.contains(&"serving 1".to_owned()) && !own.contains(&"serving 2".to_owned()), "{own:?}");
    assert!(own.last().unwrap().starts_with("REPORT RequestId: "), "{own:?}");

    // Time: everything within the last hour, nothing from the future on.
    let recent = server.cli_ok(&["logs", "orders", "--since", "1h"]);
    assert!(recent.contains("serving 1") && recent.contains("serving 2"), "{recent}");
    let later = updraft_model::now_millis() + 3_600_000;
    let future = json(get(&server, &format!("/v1/functions/orders/logs?since={later}")).await).await;
    assert_eq!(future["lines"], json!([]));

    // An app's functions, each line naming its function; not another app's.
    let shop_errors = server.cli_ok(&["logs", "--app", "shop", "--level", "error", "--grep", "traceback"]);
    let mut lines: Vec<(&str, &str)> = shop_errors.lines().map(function_and_text).collect();
    lines.sort_unstable();
    assert_eq!(lines, [("cart", "Traceback for 3"), ("orders", "Traceback for 1"), ("orders", "Traceback for 2")]);

    // The same on the API, with levels and functions in JSON.
    let page = json(get(&server, "/v1/logs?app=blog&level=error&grep=declined").await).await;
    let line = &page["lines"][0];
    assert_eq!(
        (&line["function"], &line["level"], &line["stream"]),
        (&json!("posts"), &json!("error"), &json!("stdout"))
    );
    assert_eq!(page["lines"].as_array().unwrap().len(), 1, "{page}");

    // Mistakes are explained.
    let bad_level = get(&server, "/v1/functions/orders/logs?level=loud").await;
    assert_eq!(bad_level.status(), StatusCode::BAD_REQUEST);
    assert!(bad_level.text().await.unwrap().contains("use trace, debug, info, warn, error or fatal"));
    let both = get(&server, "/v1/logs?app=shop&function=orders").await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&server, "/v1/logs?app=nowhere").await.status(), StatusCode::NOT_FOUND);
    let cli_mistake = server.cli(&["logs", "orders", "--level", "loud"]);
    assert!(!cli_mistake.status.success());
    assert!(String::from_utf8_lossy(&cli_mistake.stderr).contains("unknown log level"), "{cli_mistake:?}");
}

#[tokio::test]
async fn following_an_app_prints_each_new_matching_line_of_every_function() {
    let server = TestServer::start();
    let (shop, blog) = apps();
    server.deploy(shop.path());
    server.deploy(blog.path());

    let mut follow = server.cli_spawn(&["logs", "-f", "--app", "shop", "--grep", "serving"]);
    let stdout = follow.0.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });

    // Each function's line shows up while the command runs; another app's does not.
    let mut seen = Vec::new();
    for (function, n) in [("posts", 7), ("orders", 5), ("cart", 6)] {
        server.invoke(function, json!({ "n": n })).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| panic!("`logs -f` printed only {seen:?}"));
        seen.push(line);
    }
    let mut printed: Vec<(&str, &str)> = seen.iter().map(|line| function_and_text(line)).collect();
    printed.sort_unstable();
    assert_eq!(printed, [("cart", "serving 6"), ("orders", "serving 5")], "{seen:?}");

    // A later line arrives too, and posts never does.
    server.invoke("orders", json!({ "n": 8 })).await;
    let next = lines.recv_timeout(Duration::from_secs(30)).expect("the line of a later invocation");
    assert_eq!(function_and_text(&next), ("orders", "serving 8"));
    assert!(!seen.iter().chain([&next]).any(|line| line.contains("serving 7")), "{seen:?}");
}
