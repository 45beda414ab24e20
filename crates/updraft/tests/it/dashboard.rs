//! The dashboard at `/ui` in a real browser: Debian's headless Chromium, driven over
//! WebDriver (chromedriver) the way a user clicks through it.
//!
//! Set `UPDRAFT_SCREENSHOTS=DIR` to keep a PNG of each main page in DIR (how the
//! screenshots in `docs/ui/` are made).

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

use crate::async_invoke::python_app;
use crate::harness::{ChildGuard, TestServer, app_with_guest};
use crate::{guest_manifest, json, programs};

/// A headless Chromium session, and the chromedriver serving it.
struct Browser {
    client: Client,
    _driver: ChildGuard,
}

impl Browser {
    async fn start() -> Browser {
        let driver_path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("chromedriver is missing: install Debian's chromium and chromium-driver (.ci/run does)");
        let port = crate::events::free_port();
        let child = std::process::Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let driver = ChildGuard(child);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver never answered on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                // As root, Chromium runs only without its own sandbox.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"],
            }),
        );
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector).capabilities(capabilities).connect(&url).await.unwrap();
        Browser { client, _driver: driver }
    }

    /// The element `css` matches, once there is one.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => panic!("{css} never appeared ({error}); the page shows:\n{}", self.page_text().await),
        }
    }

    /// What the page shows, and the script errors it had.
    async fn page_text(&self) -> String {
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(error) => error.to_string(),
        };
        let errors = self.client.execute("return window.updraftErrors || []", vec![]).await;
        format!("{text}\nscript errors: {errors:?}")
    }

    /// Waits until the text of `css` contains `needle`; returns it.
    async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{css} never showed {needle:?}; it shows {text:?}; the page:\n{}", self.page_text().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("UPDRAFT_SCREENSHOTS") {
            // Charts draw on the next frame.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }
}

/// A workflow of two states that needs no function.
const GREET: &str = r#"
[workflows.greet]
definition = '''
{
  "StartAt": "Greet",
  "States": {
    "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "$.name"}, "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}
'''
"#;

const DOOMED: &str = r#"
def handler(event, context):
    raise RuntimeError("doomed")
"#;

#[tokio::test]
async fn the_dashboard_signs_in_shows_invocations_live_opens_a_trace_and_retries_a_failed_event() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!("{}\n{GREET}", guest_manifest("echo", ""));
    app_with_guest(dir.path(), &manifest, &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let started =
        server.api(Method::POST, "/v1/workflows/greet/executions").json(&json!({"name": "Ada"})).send().await.unwrap();
    let execution_id = json(started).await["execution_id"].as_str().unwrap().to_owned();
    let doomed = python_app("doomed", "retries = 0", DOOMED);
    server.deploy(doomed.path());
    for _ in 0..28 {
        assert_eq!(server.get("/echo/warm").await.status(), reqwest::StatusCode::OK);
    }
    let accepted = server.api(Method::POST, "/v1/functions/doomed/invoke-async").json(&json!({})).send().await.unwrap();
    let event_id = json(accepted).await["id"].as_str().unwrap().to_owned();

    let browser = Browser::start().await;
    let client = &browser.client;

    // The assets come with a content security policy and validators.
    let page = reqwest::get(server.url("/ui/")).await.unwrap();
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    assert!(page.headers().contains_key("etag"));

    // Signing in: a wrong key is refused, the admin key lets one in.
    client.goto(&server.url("/ui/")).await.unwrap();
    browser.wait_for("#api-key").await.send_keys("updk_wrong").await.unwrap();
    client.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("#sign-in-error", "sign in again").await;
    let key = client.find(Locator::Css("#api-key")).await.unwrap();
    key.clear().await.unwrap();
    key.send_keys(&server.token()).await.unwrap();
    client.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    browser.wait_for("tr[data-function='echo']").await;
    browser.wait_for("tr[data-function='doomed']").await;
    browser.wait_for("tr[data-function='echo'] .spark canvas").await;
    browser.screenshot("functions").await;

    // A function's page: its invocations appear while it is open, and its live log.
    client.find(Locator::Css("tr[data-function='echo'] a")).await.unwrap().click().await.unwrap();
    browser.wait_for("#charts canvas").await;
    browser.wait_for_text("#versions", "serving").await;
    let rows = move || async move { client.find_all(Locator::Css("#invocations tr")).await.unwrap().len() };
    assert_eq!(rows().await, 25, "the newest page of the 28 warm-up requests");
    // Older pages, and back.
    client.find(Locator::Css("#older")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("#page", "page 2").await;
    assert_eq!(rows().await, 3, "the three oldest");
    assert!(client.find(Locator::Css("#older")).await.unwrap().attr("disabled").await.unwrap().is_some());
    client.find(Locator::Css("#newer")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("#page", "newest").await;
    assert_eq!(rows().await, 25);
    let response = server.get("/echo/live").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let live = server.api(Method::GET, "/v1/invocations?function=echo&limit=1").send().await.unwrap();
    let live_id = json(live).await["invocations"][0]["id"].as_str().unwrap().to_owned();
    browser.wait_for(&format!("tr[data-invocation='{live_id}']")).await;
    browser.wait_for_text("#log-tail", &format!("START RequestId: {live_id}")).await;
    browser.screenshot("function").await;

    // Its trace: the invocation's span and its phases in a waterfall.
    client.find(Locator::Css(&format!("tr[data-invocation='{live_id}'] a"))).await.unwrap().click().await.unwrap();
    let waterfall = browser.wait_for_text("#waterfall", "echo").await;
    assert!(waterfall.contains("run"), "{waterfall}");
    let bars = client.find_all(Locator::Css("#waterfall .bar")).await.unwrap();
    assert!(bars.len() >= 2, "the invocation and its run: {waterfall}");
    browser.wait_for_text("#invocation-logs", "REPORT RequestId").await;
    browser.screenshot("invocation").await;

    // A failed event, retried from the events page: it runs again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = json(server.api(Method::GET, &format!("/v1/async/{event_id}")).send().await.unwrap()).await;
        if event["state"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "{event}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.find(Locator::Css("a[data-nav='events']")).await.unwrap().click().await.unwrap();
    browser.screenshot("events").await;
    browser.wait_for(&format!("button[data-retry='{event_id}']")).await.click().await.unwrap();
    browser.wait_for_text("#events-message", "queued again").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = json(server.api(Method::GET, "/v1/invocations?function=doomed").send().await.unwrap()).await;
        let runs = records["invocations"].as_array().unwrap().iter().filter(|r| r["id"] == event_id.as_str()).count();
        if runs == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the retried event ran {runs} times");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Workflows: the states drawn, an execution with the states it went through.
    client.find(Locator::Css("a[data-nav='workflows']")).await.unwrap().click().await.unwrap();
    browser.wait_for("div[data-workflow='greet'] .state[data-state='Greet']").await;
    browser.wait_for(&format!("tr[data-execution='{execution_id}'] a")).await.click().await.unwrap();
    browser.wait_for_text("#execution-status", "succeeded").await;
    browser.wait_for(".state.visited[data-state='Greet']").await;
    browser.wait_for_text("#history", "ExecutionSucceeded").await;
    browser.screenshot("execution").await;

    // Usage, then signing out returns to the sign-in form.
    client.find(Locator::Css("a[data-nav='usage']")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("#usage", "echo").await;
    browser.screenshot("usage").await;
    client.find(Locator::Css("#sign-out")).await.unwrap().click().await.unwrap();
    browser.wait_for("#api-key").await;
    browser.client.clone().close().await.unwrap();
}
