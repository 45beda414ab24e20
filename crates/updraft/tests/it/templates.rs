//! `updraft new`: every template makes a function that deploys and answers as made.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestServer;
use crate::json;

#[tokio::test]
async fn every_template_deploys_and_answers() {
    let server = TestServer::start();
    let listed = server.cli_ok(&["new", "--list"]);
    let dir = tempfile::tempdir().unwrap();
    for (template, function, framework) in [
        ("rust", "rust-hello", Some("rust")),
        ("python-lambda", "py-hello", None),
        ("node-lambda", "node-hello", None),
        ("python", "wasm-hello", Some("python")),
        ("javascript", "js-hello", Some("javascript")),
        ("typescript", "ts-hello", Some("typescript")),
        ("flask", "flask-hello", Some("flask")),
        ("express", "express-hello", Some("express")),
    ] {
        assert!(listed.contains(template), "{listed}");
        let app = dir.path().join(function);
        let made = server.cli_ok(&["new", template, app.to_str().unwrap()]);
        assert!(made.contains(&format!("function {function} from the {template} template")), "{made}");
        assert!(app.join("README.md").is_file());
        server.deploy(&app);

        let response = server.get(&format!("/{function}?name=Ada")).await;
        assert_eq!(response.status(), StatusCode::OK, "{template}");
        let answer = json(response).await;
        assert_eq!(answer["message"], "Hello, Ada!", "{template}: {answer}");
        match framework {
            Some(language @ ("rust" | "python" | "javascript" | "typescript")) => {
                assert_eq!(answer["language"], language)
            }
            Some(framework) => assert_eq!(answer["framework"], framework),
            None => assert_eq!(answer["function"], function),
        }
    }
    // The web apps take events too, as CloudEvents.
    assert_eq!(server.invoke("flask-hello", json!({ "n": 1 })).await, json!({ "received": "dev.updraft.invoke" }));

    let refused = server.cli(&["new", "flask", dir.path().join("py-hello").to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not empty; name a new folder"));
}
