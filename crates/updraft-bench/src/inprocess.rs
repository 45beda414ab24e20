//! The in-process cost of one invocation: `updraft-runtime-wasm` instantiating
//! hello.wasm and calling its handler, with no network or platform in between.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use updraft_runtime_wasm::{InvokeOptions, InvokeOutcome, OutboundPolicy, Pooling, WasmEngineConfig, WasmRuntime};

use crate::report::{InProcessFigures, LatencyHistogram};

/// The answer examples/hello gives to `GET /hello`.
pub const HELLO_BODY: &[u8] = b"Hello, world!\n";

/// Measures each kind of call for `warmup` and then `duration`, one call at a time,
/// on a current-thread runtime.
pub fn measure(wasm_path: &Path, warmup: Duration, duration: Duration) -> anyhow::Result<InProcessFigures> {
    let bytes = std::fs::read(wasm_path).with_context(|| {
        format!(
            "reading {}; build it with `cargo build --release --target wasm32-wasip2 -p hello` in examples/",
            wasm_path.display()
        )
    })?;
    let cache = tempfile::Builder::new().prefix("updraft-bench-cache-").tempdir().context("creating a cache dir")?;
    let runtime = WasmRuntime::new(WasmEngineConfig {
        cache_dir: cache.path().to_owned(),
        pooling: Pooling::Auto,
        max_instances: 16,
    })
    .context("creating the WebAssembly runtime")?;

    let compiling = Instant::now();
    let component = runtime.prepare("hello-bench", &bytes).context("compiling hello.wasm")?;
    let compile = compiling.elapsed();
    let loading = Instant::now();
    runtime
        .prepare_cached("hello-bench")
        .context("hello.wasm is missing from the compiled-code cache right after compiling it")?
        .context("loading hello.wasm from the compiled-code cache")?;
    let load_cached = loading.elapsed();

    // The options the platform derives from examples/hello/updraft.toml.
    let options = InvokeOptions {
        timeout: Duration::from_secs(2),
        memory_limit: 64 << 20,
        env: Arc::from(vec![("GREETING".to_owned(), "Hello".to_owned())]),
        outbound: OutboundPolicy::default(),
        max_response_bytes: 6 << 20,
    };
    let tokio_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the in-process runtime")?;
    tokio_runtime.block_on(async {
        let mut reused = component.instance(options.clone(), true).await.context("instantiating hello.wasm")?;
        let fresh = component;
        let instantiate_and_call =
            time_calls(warmup, duration, async || check_hello(fresh.invoke(hello_request()?, &options).await)).await?;
        let call_reused_instance =
            time_calls(warmup, duration, async || check_hello(reused.run(hello_request()?, options.timeout).await))
                .await?;
        let plain_rust_fn = time_calls(warmup, duration, async || {
            let response = plain_hello(std::hint::black_box(hello_request()?)).await?;
            std::hint::black_box(response);
            Ok(())
        })
        .await?;
        Ok(InProcessFigures {
            pooling: runtime.pooling(),
            compile_us: compile.as_secs_f64() * 1e6,
            load_cached_us: load_cached.as_secs_f64() * 1e6,
            instantiate_and_call: instantiate_and_call.summary(),
            call_reused_instance: call_reused_instance.summary(),
            plain_rust_fn: plain_rust_fn.summary(),
        })
    })
}

/// Calls `call` back to back for `warmup`, then records each call's duration for
/// `duration`.
async fn time_calls(
    warmup: Duration,
    duration: Duration,
    mut call: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<LatencyHistogram> {
    let warmup_end = Instant::now() + warmup;
    while Instant::now() < warmup_end {
        call().await?;
    }
    let mut histogram = LatencyHistogram::new();
    let end = Instant::now() + duration;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        call().await?;
        histogram.record(started.elapsed());
    }
    Ok(histogram)
}

/// `GET /hello` as the gateway hands it to a guest: origin-form path and a Host header.
fn hello_request() -> anyhow::Result<http::Request<Bytes>> {
    http::Request::get("/hello")
        .header(http::header::HOST, "localhost")
        .body(Bytes::new())
        .context("building a request")
}

fn check_hello(outcome: InvokeOutcome) -> anyhow::Result<()> {
    let response = outcome.result.context("invoking hello.wasm")?;
    if !response.status().is_success() || response.body().as_ref() != HELLO_BODY {
        bail!("hello.wasm answered {} {:?}, not 200 {:?}", response.status(), response.body(), HELLO_BODY);
    }
    Ok(())
}

/// What hello.wasm does, as an ordinary async Rust function: the reference for what
/// the work itself costs without a sandbox.
async fn plain_hello(request: http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let name = request.uri().path().strip_prefix("/hello/").filter(|name| !name.is_empty()).unwrap_or("world");
    http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from(format!("{greeting}, {name}!\n")))
        .context("building the response")
}
