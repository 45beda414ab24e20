//! The runtime against real guest components: limits, deadlines, output, reuse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use updraft_runtime_wasm::{
    CompileError, InvokeError, InvokeOptions, LogStream, OutboundPolicy, Pooling, PreparedComponent, WasmEngineConfig,
    WasmRuntime,
};
use updraft_test_programs as programs;

mod p3;

struct Harness {
    runtime: WasmRuntime,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = WasmRuntime::new(WasmEngineConfig {
            cache_dir: dir.path().join("compiled"),
            pooling: Pooling::Auto,
            max_instances: 64,
        })
        .unwrap();
        Self { runtime, _dir: dir }
    }

    fn prepare(&self, path: &str) -> PreparedComponent {
        let bytes = programs::bytes(path);
        let digest = format!("{:x}", md5ish(&bytes));
        self.runtime.prepare(&digest, &bytes).unwrap()
    }
}

/// A cheap content key for the test cache (the platform uses sha256).
fn md5ish(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn options() -> InvokeOptions {
    InvokeOptions {
        timeout: Duration::from_secs(5),
        memory_limit: 64 << 20,
        env: Arc::from(vec![("GREETING".to_owned(), "hi".to_owned())]),
        outbound: OutboundPolicy::default(),
        max_response_bytes: 6 << 20,
    }
}

fn get(path: &str) -> http::Request<Bytes> {
    http::Request::get(path).header("host", "localhost").body(Bytes::new()).unwrap()
}

fn stdout(outcome: &updraft_runtime_wasm::InvokeOutcome) -> String {
    outcome
        .output
        .chunks
        .iter()
        .filter(|(stream, _)| *stream == LogStream::Stdout)
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .collect()
}

#[tokio::test]
async fn echoes_a_request_with_env_and_captured_output() {
    let harness = Harness::new();
    let echo = harness.prepare(programs::ECHO);
    let request = http::Request::post("/echo/x?y=1")
        .header("host", "localhost")
        .header("x-updraft-route", "/echo/{*rest}")
        .body(Bytes::from_static(b"payload"))
        .unwrap();
    let outcome = echo.invoke(request, &options()).await;
    let response = outcome.result.unwrap();
    assert_eq!(response.status(), 200);
    let body = String::from_utf8_lossy(response.body());
    assert!(body.starts_with("POST /echo/x?y=1\n"), "{body}");
    assert!(body.contains("x-updraft-route: /echo/{*rest}"), "{body}");
    assert!(body.ends_with("payload"), "{body}");

    let outcome = echo.invoke(get("/env?name=GREETING"), &options()).await;
    assert_eq!(outcome.result.unwrap().body(), "hi");

    let outcome = echo.invoke(get("/log?lines=3"), &options()).await;
    assert!(outcome.result.is_ok());
    assert_eq!(stdout(&outcome), "line 0\nline 1\nline 2\n");
    assert!(outcome.output.chunks.iter().any(|(s, b)| *s == LogStream::Stderr && b == b"to stderr\n"));
    assert!(outcome.memory_peak > 0, "memory use is measured");
}

#[tokio::test]
async fn a_guest_spinning_without_yielding_times_out() {
    let harness = Harness::new();
    let spin = harness.prepare(programs::SPIN);
    let options = InvokeOptions { timeout: Duration::from_millis(300), ..options() };
    let outcome = spin.invoke(get("/"), &options).await;
    assert_eq!(outcome.result.unwrap_err(), InvokeError::Timeout { timeout: Duration::from_millis(300) });
}

/// Four spinning guests per core, each invoked from a task of the caller's runtime, as
/// the gateway does. Were guests run on the caller's threads, or did they never yield,
/// the other function's request would wait behind them until they time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_hold_neither_the_callers_threads_nor_each_other() {
    let harness = Harness::new();
    let spin = harness.prepare(programs::SPIN);
    let echo = harness.prepare(programs::ECHO);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let timeout = Duration::from_secs(3);
    let spin_options = InvokeOptions { timeout, ..options() };
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let spinners: Vec<_> = (0..4 * cores)
        .map(|_| {
            let (spin, options, finished) = (spin.clone(), spin_options.clone(), finished.clone());
            tokio::spawn(async move {
                let outcome = spin.invoke(get("/"), &options).await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (outcome, Instant::now())
            })
        })
        .collect();
    // Let every spinner get going (a timer on the caller's runtime must fire too).
    tokio::time::sleep(Duration::from_millis(300)).await;

    for round in 0..5 {
        let echo = echo.clone();
        let answered =
            tokio::spawn(async move { echo.invoke(get("/env?name=GREETING"), &options()).await }).await.unwrap();
        assert_eq!(answered.result.unwrap().body(), "hi");
        assert_eq!(
            finished.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "request {round} of another function was answered only after spinning guests ended"
        );
    }

    let mut ends = Vec::new();
    for spinner in spinners {
        let (outcome, ended) = spinner.await.unwrap();
        assert_eq!(outcome.result.unwrap_err(), InvokeError::Timeout { timeout });
        ends.push(ended);
    }
    // They took turns rather than queueing: all of them ran into their deadline at
    // about the same time, not one pair per timeout.
    let spread = *ends.iter().max().unwrap() - *ends.iter().min().unwrap();
    assert!(spread < timeout, "spinners ended {spread:?} apart: they ran one after another");
}

#[tokio::test]
async fn a_waiting_guest_times_out_too() {
    let harness = Harness::new();
    let echo = harness.prepare(programs::ECHO);
    let options = InvokeOptions { timeout: Duration::from_millis(200), ..options() };
    let outcome = echo.invoke(get("/sleep?ms=10000"), &options).await;
    assert!(matches!(outcome.result, Err(InvokeError::Timeout { .. })), "{:?}", outcome.result);
}

#[tokio::test]
async fn a_memory_bomb_is_contained() {
    let harness = Harness::new();
    let bomb = harness.prepare(programs::MEMORY_BOMB);
    let options = InvokeOptions { memory_limit: 32 << 20, ..options() };
    let outcome = bomb.invoke(get("/"), &options).await;
    assert_eq!(outcome.result.unwrap_err(), InvokeError::OutOfMemory { limit: 32 << 20 });
    assert!(outcome.memory_peak <= 32 << 20);
    // The next invocation gets a fresh instance and fails the same way, not worse.
    let again = bomb.invoke(get("/"), &options).await;
    assert!(matches!(again.result, Err(InvokeError::OutOfMemory { .. })));
}

#[tokio::test]
async fn traps_and_silence_are_failures_with_their_output() {
    let harness = Harness::new();
    let trap = harness.prepare(programs::TRAP);
    let outcome = trap.invoke(get("/"), &options()).await;
    match outcome.result {
        Err(InvokeError::Trap { message }) => {
            assert!(message.contains("unreachable") || message.contains("wasm"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    let stderr: String = outcome.output.chunks.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(stderr.contains("this function always fails"), "the panic message is captured: {stderr}");

    let silent = harness.prepare(programs::SILENT);
    let outcome = silent.invoke(get("/"), &options()).await;
    assert_eq!(stdout(&outcome), "not answering\n");
    assert_eq!(outcome.result.unwrap_err(), InvokeError::NoResponse);
}

#[tokio::test]
async fn response_size_is_limited() {
    let harness = Harness::new();
    let echo = harness.prepare(programs::ECHO);
    let options = InvokeOptions { max_response_bytes: 1000, ..options() };
    let ok = echo.invoke(get("/big?bytes=1000"), &options).await;
    assert_eq!(ok.result.unwrap().body().len(), 1000);
    let too_big = echo.invoke(get("/big?bytes=1001"), &options).await;
    assert_eq!(too_big.result.unwrap_err(), InvokeError::ResponseTooLarge { limit: 1000 });
}

#[tokio::test]
async fn outbound_http_needs_a_grant() {
    // A loopback server the guest may or may not reach.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                // The whole head, then the answer; then whatever else the client sends
                // (a chunked body's last chunk) is read before closing, since closing
                // with bytes unread resets the connection under the client.
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ =
                    socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong").await;
                let _ = socket.shutdown().await;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                    while let Ok(1..) = socket.read(&mut buffer).await {}
                })
                .await;
            });
        }
    });
    let harness = Harness::new();
    let echo = harness.prepare(programs::ECHO);
    let url = format!("/fetch?url=http://127.0.0.1:{port}/ping");

    let denied = echo.invoke(get(&url), &options()).await;
    let response = denied.result.unwrap();
    assert_eq!(response.status(), 502, "{:?}", response.body());
    assert!(response.body().starts_with(b"fetch failed"), "{:?}", response.body());
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "a denied request never connects");

    let granted = InvokeOptions { outbound: OutboundPolicy::new(&[format!("127.0.0.1:{port}")]), ..options() };
    let allowed = echo.invoke(get(&url), &granted).await;
    assert_eq!(allowed.result.unwrap().body(), "fetched 200: pong");
}

#[tokio::test]
async fn instances_are_fresh_unless_reuse_is_on() {
    let harness = Harness::new();
    let fresh = harness.prepare(programs::ECHO);
    for _ in 0..3 {
        assert_eq!(fresh.invoke(get("/count"), &options()).await.result.unwrap().body(), "1");
    }
    let mut reused = harness.prepare(programs::ECHO).instance(options(), true).await.unwrap();
    let timeout = Duration::from_secs(5);
    for expected in ["1", "2", "3"] {
        assert_eq!(reused.run(get("/count"), timeout).await.result.unwrap().body(), expected);
    }
    // A failed invocation discards its store: the next one starts over.
    assert!(reused.run(get("/sleep?ms=5000"), Duration::from_millis(100)).await.result.is_err());
    assert_eq!(reused.run(get("/count"), timeout).await.result.unwrap().body(), "1");
}

#[test]
fn broken_artifacts_are_refused_with_the_reason() {
    let harness = Harness::new();
    let prepare = |bytes: &[u8]| harness.runtime.prepare(&format!("{:x}", md5ish(bytes)), bytes).err().unwrap();
    assert!(matches!(prepare(b""), CompileError::Empty));
    assert!(matches!(prepare(b"#!/bin/sh\necho hi\n"), CompileError::NotWasm));
    assert!(matches!(prepare(&programs::core_module()), CompileError::CoreModule));
    match prepare(&programs::imports_unknown_interface()) {
        CompileError::UnsupportedImport { import } => assert!(import.contains("acme:teleport/beam"), "{import}"),
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(prepare(&programs::exports_nothing()), CompileError::MissingHandler { .. }));
    let mut truncated = programs::bytes(programs::ECHO);
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(prepare(&truncated), CompileError::Invalid { .. }));
}

#[test]
fn compiled_code_is_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = WasmEngineConfig { cache_dir: dir.path().to_owned(), pooling: Pooling::Disabled, max_instances: 8 };
    let bytes = programs::bytes(programs::ECHO);
    let first = WasmRuntime::new(config.clone()).unwrap();
    assert!(first.prepare_cached("echo").is_none());
    first.prepare("echo", &bytes).unwrap();
    // A new runtime (a restart) finds the compiled code without the source bytes.
    let second = WasmRuntime::new(config).unwrap();
    assert!(second.prepare_cached("echo").unwrap().is_ok());
}
