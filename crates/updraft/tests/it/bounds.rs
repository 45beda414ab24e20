//! Bounded input everywhere: what a client or a function sends is held for a bounded
//! time and in bounded memory, refused with an answer that says why, and never spills
//! into anything else's share (found by an outside attack on a running server).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use updraft_test_programs as programs;

use crate::harness::{TestServer, app_with_guest};
use crate::json;

/// Reads what the server sends until it closes the connection; fails the test if it
/// keeps it open longer than `patience` (far longer than the limit under test).
async fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&received));
    String::from_utf8_lossy(&received).into_owned()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(&server.addr).await.unwrap()
}

#[tokio::test]
async fn http_connections_that_stall_are_closed_and_past_the_cap_refused() {
    let server = TestServer::start_with(&["--header-timeout", "1s", "--body-timeout", "2s", "--max-connections", "16"]);
    let patience = Duration::from_secs(30);

    // Nothing sent at all, headers cut off, and a keep-alive connection left idle.
    let mut silent = connect(&server).await;
    let mut partial = connect(&server).await;
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for stream in [&mut silent, &mut partial] {
        read_until_closed(stream, patience).await;
    }
    let answered = read_until_closed(&mut idle, patience).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A chunked body that never ends: 408, in the JSON error shape.
    let mut endless = connect(&server).await;
    let head = format!(
        "PUT /v1/secrets/endless HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n",
        server.token()
    );
    endless.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut endless, patience).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // Past the connection cap: a clear refusal, at once, and service again after.
    let mut held = Vec::new();
    for _ in 0..16 {
        let mut stream = connect(&server).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        held.push(stream);
    }
    // Wait until the server holds all sixteen: the next one is refused.
    let refused = loop {
        let mut extra = connect(&server).await;
        extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let answer = read_until_closed(&mut extra, patience).await;
        if answer.starts_with("HTTP/1.1 503") {
            break answer;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    };
    assert!(refused.contains("\"code\":\"too_many_connections\"") && refused.contains("limit of 16"), "{refused}");
    drop(held);
    let deadline = std::time::Instant::now() + patience;
    while server.get("/healthz").await.status() != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "no service after the held connections went");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn framework_rejections_come_in_the_json_error_shape_and_functions_come_in_pages() {
    let server = TestServer::start();
    for (request, status, code) in [
        (
            server.api(Method::POST, "/v1/apps/x/deploy").header("content-type", "application/json").body("{not json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            server.api(Method::POST, "/v1/apps/x/deploy").body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (server.api(Method::GET, "/v1/invocations?limit=many"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            // On a connection of its own: the server closes it rather than read the rest.
            reqwest::Client::new()
                .post(server.url("/v1/apps/x/deploy"))
                .bearer_auth(server.token())
                .header("content-type", "application/json")
                .body(vec![b' '; 17 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{body}");
    }

    // Three functions, two to a page.
    let dir = tempfile::tempdir().unwrap();
    let manifest: String = ["a", "b", "c"]
        .iter()
        .map(|name| format!("[functions.{name}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n"))
        .collect();
    app_with_guest(dir.path(), &format!("[app]\nname = \"paged\"\n\n{manifest}"), &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let first = json(server.api(Method::GET, "/v1/functions?limit=2").send().await.unwrap()).await;
    let names = |page: &Value| -> Vec<String> {
        page["functions"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["next_after"], "b");
    let second = json(server.api(Method::GET, "/v1/functions?limit=2&after=b").send().await.unwrap()).await;
    assert_eq!(names(&second), ["c"]);
    assert_eq!(second["next_after"], Value::Null);
    assert!(server.cli_ok(&["ls"]).contains("paged"));
}

#[tokio::test]
async fn a_client_cannot_forge_what_updraft_tells_a_function() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"echo\"\n\n[functions.echo]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    triggers = [{ http = \"GET /echo/{name}\" }]\n";
    app_with_guest(dir.path(), manifest, &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let echoed = server
        .http
        .get(server.url("/echo/ada"))
        .header("x-updraft-param-name", "forged")
        .header("x-updraft-param-admin", "true")
        .header("x-updraft-route", "/admin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(echoed.contains("x-updraft-param-name: ada"), "{echoed}");
    assert!(echoed.contains("x-updraft-route: /echo/{name}"), "{echoed}");
    for forged in ["forged", "x-updraft-param-admin", "/admin"] {
        assert!(!echoed.contains(forged), "{forged} reached the function: {echoed}");
    }
}

#[tokio::test]
async fn the_lambda_api_refuses_an_unsigned_request_before_reading_its_body() {
    let server = TestServer::start();
    for authorization in [
        "",
        "Authorization: Bearer nothing\r\n",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKUPNOSUCHKEY000000/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00\r\n",
    ] {
        let mut stream = connect(&server).await;
        // Five megabytes announced, none sent: the answer must not wait for them.
        let head = format!(
            "POST /2015-03-31/functions/any/invocations HTTP/1.1\r\nHost: x\r\n{authorization}Content-Length: 5000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut status))
            .await
            .expect("the server waited for the body before refusing")
            .unwrap();
        assert!(status.starts_with("HTTP/1.1 403") || status.starts_with("HTTP/1.1 400"), "{authorization}: {status}");
    }
}

/// One SMTP exchange on a raw connection: sends `command` (if any) and reads one reply.
async fn smtp(stream: &mut BufReader<TcpStream>, command: &str) -> String {
    if !command.is_empty() {
        stream.get_mut().write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
    }
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_line(&mut line)).await.unwrap().unwrap();
        reply.push_str(&line);
        // A multi-line reply has '-' after the code on all lines but the last.
        if read == 0 || line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

#[tokio::test]
async fn smtp_sessions_are_bounded_in_time_number_and_what_they_may_send() {
    let port = crate::events::free_port();
    let server = TestServer::start_with(&[
        "--smtp-listen",
        &format!("127.0.0.1:{port}"),
        "--smtp-idle-timeout",
        "1s",
        "--smtp-sessions-per-client",
        "4",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"inbox\"\n\n[functions.inbox]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\n\
                    triggers = [{ email = \"in@updraft.test\" }]\n";
    app_with_guest(dir.path(), manifest, &programs::bytes(programs::ECHO));
    server.deploy(dir.path());
    let open = || async { BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()) };

    let mut session = open().await;
    assert!(smtp(&mut session, "").await.starts_with("220"));
    assert!(smtp(&mut session, "MAIL FROM:<ada@example.com>").await.starts_with("503 5.5.1 say EHLO"));
    assert!(smtp(&mut session, "EHLO client").await.starts_with("250"));
    let overflow = smtp(&mut session, "MAIL FROM:<ada@example.com> SIZE=99999999999999999999999999").await;
    assert!(overflow.starts_with("552"), "{overflow}");
    assert!(smtp(&mut session, "MAIL FROM:<ada@example.com>").await.starts_with("250"));
    assert!(smtp(&mut session, "RCPT TO:<in@updraft.test>").await.starts_with("250"));
    assert!(smtp(&mut session, "DATA").await.starts_with("354"));
    // Two megabytes of headers: within the 10 MiB message limit, but no event can hold
    // them even with the text cut.
    let padding: String = (0..2_000).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(1000))).collect();
    session.get_mut().write_all(format!("Subject: padded\r\n{padding}\r\nhello\r\n.\r\n").as_bytes()).await.unwrap();
    let refused = smtp(&mut session, "").await;
    assert!(refused.starts_with("552 5.3.4") && refused.contains("even with its text cut"), "{refused}");
    let pending = json(server.api(Method::GET, "/v1/invocations?function=inbox").send().await.unwrap()).await;
    assert_eq!(pending["invocations"].as_array().unwrap().len(), 0, "nothing was delivered: {pending}");

    // Idle: closed after the idle timeout, saying so.
    let goodbye = smtp(&mut session, "").await;
    assert!(goodbye.starts_with("421 4.4.2"), "{goodbye}");

    // One client holds four sessions at most; the fifth is refused at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut session = open().await;
        assert!(smtp(&mut session, "").await.starts_with("220"));
        held.push(session);
    }
    let mut fifth = open().await;
    assert!(smtp(&mut fifth, "").await.starts_with("421 4.7.0"));
}

#[tokio::test]
async fn a_flooding_function_spends_its_own_log_budget_not_anothers() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[app]\nname = \"logs\"\n\n\
                    [functions.flood]\nruntime = \"wasm\"\nsource = \"hostile.wasm\"\ntriggers = [{ http = \"GET /flood/{*x}\" }]\n\n\
                    [functions.quiet]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\ntriggers = [{ http = \"GET /quiet/{*x}\" }]\n";
    app_with_guest(dir.path(), manifest, &programs::bytes(programs::ECHO));
    std::fs::write(dir.path().join("hostile.wasm"), programs::bytes(programs::HOSTILE)).unwrap();
    server.deploy(dir.path());

    // 40 invocations of 4,000 lines each, 160,000 lines in all, beside 20 quiet ones.
    let floods: Vec<_> = (0..40)
        .map(|_| {
            let request = server.http.get(server.url("/flood/flood?lines=4000"));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut quiet_ids = Vec::new();
    for n in 0..20 {
        let response = server.get(&format!("/quiet/log?lines={n}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        quiet_ids.push(response.headers()["x-updraft-request-id"].to_str().unwrap().to_owned());
    }
    for flood in floods {
        assert_eq!(flood.await.unwrap(), StatusCode::OK);
    }

    // Every quiet invocation has its START, END and REPORT lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs = server.cli_ok(&["logs", "quiet", "--tail", "1000"]);
        let complete = quiet_ids.iter().all(|id| {
            ["START RequestId: ", "END RequestId: ", "REPORT RequestId: "]
                .iter()
                .all(|line| logs.contains(&format!("{line}{id}")))
        });
        if complete {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "quiet's platform lines are missing:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The flood's records say how much of its output was dropped.
    let records = crate::execution::wait_for_records(&server, "flood", 40).await;
    let dropped: u64 = records.iter().map(|record| record["log_lines_dropped"].as_u64().unwrap()).sum();
    assert!(dropped > 0, "160,000 lines in a moment fit the budget: {records:?}");
    let quiet = crate::execution::records(&server, "quiet").await;
    assert!(quiet.iter().all(|record| record["log_lines_dropped"] == 0), "{quiet:?}");
}

/// The server's peak resident memory, in bytes.
fn peak_resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn artifact_uploads_stream_to_disk_instead_of_memory() {
    let server = TestServer::start();
    let before = peak_resident(server.pid());
    let body = bytes::Bytes::from(vec![7u8; 100 << 20]);
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let uploads: Vec<_> = (0..4)
        .map(|_| {
            let request = server.api(Method::PUT, &format!("/v1/artifacts/{digest}")).body(body.clone());
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), StatusCode::CREATED);
    }
    let grew = peak_resident(server.pid()).saturating_sub(before);
    eprintln!("four concurrent 100 MiB uploads raised the server's peak resident memory by {} MiB", grew >> 20);
    assert!(grew < 100 << 20, "the server held an upload in memory: its peak grew {} MiB", grew >> 20);
    let stored = server.data_dir.path().join("artifacts/sha256").join(&digest[..2]).join(&digest);
    assert_eq!(std::fs::metadata(stored).unwrap().len(), 100 << 20);
}
