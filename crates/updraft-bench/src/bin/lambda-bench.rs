//! `lambda-bench`: the Lambda runtime's figures, each next to a baseline measured in
//! the same run and printed as a ratio to it.
//!
//! - Python and Node cold start: no idle instance → the first event's answer, sandbox
//!   included, against starting the bare interpreter (`python3 -c pass`, `node -e 0`):
//!   from a pre-started sandbox (the usual case; the benchmark waits for one to be
//!   ready, untimed, before each start) and from nothing (when a burst has used them up);
//! - a burst of six cold starts at once, twice, with a pool of one pre-started sandbox
//!   that grows with demand: the first burst meets one ready, the second six;
//! - warm invocation: a warm instance's round trip through the Runtime API, against
//!   the handler's own time (which it measures and returns).
//!
//! Runs as root (the sandbox needs it, as the server does). From the repository root:
//!
//!     cargo build --release -p updraft-bench && target/release/lambda-bench

// The benchmark starts interpreters as child processes for its baselines.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use updraft_model::{ArtifactDigest, ByteSize, FunctionConfig, FunctionName, Limits, RuntimeKind as Kind};
use updraft_runtime::{
    Call, Event, EventOrigin, FunctionResponse, Input, InstanceConfig, Prepared, Runtime, VersionSource,
};
use updraft_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};

/// Cold starts at once in the burst figure, and the most pre-started sandboxes its pool grows to.
const BURST: usize = 6;

/// The first argument that makes this binary the jailer, as `updraft __jail` is.
const JAIL_ARG: &str = "__jail";

/// Measures Lambda cold starts and warm invocations.
#[derive(Debug, Parser)]
#[command(name = "lambda-bench", verbatim_doc_comment)]
struct Cli {
    /// Cold starts measured per runtime.
    #[arg(long, default_value_t = 200)]
    cold: usize,
    /// Warm invocations measured per runtime.
    #[arg(long, default_value_t = 2000)]
    warm: usize,
    /// Outbound requests measured through the egress path, and on the host.
    #[arg(long, default_value_t = 2000)]
    egress: usize,
}

const PYTHON_HANDLER: &str = "import time\n\ndef handler(event, context):\n    started = time.perf_counter_ns()\n    answer = {\"ok\": True}\n    answer[\"handler_ns\"] = time.perf_counter_ns() - started\n    return answer\n";
const NODE_HANDLER: &str = "exports.handler = async (event) => {\n  const started = process.hrtime.bigint();\n  const answer = { ok: true };\n  answer.handler_ns = Number(process.hrtime.bigint() - started);\n  return answer;\n};\n";

fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|arg| arg == JAIL_ARG) {
        updraft_runtime_process::jail::main();
    }
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("updraft-lambda-bench-").tempdir()?;
    let runtime = ProcessRuntime::start(ProcessRuntimeConfig::new(
        vec![std::env::current_exe()?.into(), JAIL_ARG.into()],
        dir.path().join("work"),
        1,
    ))
    .await?;
    // The same runtime without pre-started sandboxes: every cold start builds one.
    let fresh = ProcessRuntime::start(ProcessRuntimeConfig::new(
        vec![std::env::current_exe()?.into(), JAIL_ARG.into()],
        dir.path().join("fresh"),
        0,
    ))
    .await?;
    // A pool that grows with demand, from one pre-started sandbox to `BURST`.
    let growing = ProcessRuntime::start(ProcessRuntimeConfig {
        warm_sandboxes_max: BURST,
        ..ProcessRuntimeConfig::new(
            vec![std::env::current_exe()?.into(), JAIL_ARG.into()],
            dir.path().join("growing"),
            1,
        )
    })
    .await?;
    println!("lambda-bench: {} cold starts and {} warm invocations per runtime", cli.cold, cli.warm);
    for (kind, file, code, baseline) in [
        (Kind::Python3, "app.py", PYTHON_HANDLER, ["/usr/bin/python3", "-c", "pass"]),
        (Kind::Nodejs, "app.js", NODE_HANDLER, ["/usr/bin/node", "-e", "0"]),
    ] {
        let zip = bundle(dir.path(), file, code)?;
        let prepared = prepare(&runtime, kind, &zip).await?;
        let config = Arc::new(InstanceConfig {
            memory_limit: 256 << 20,
            env: Vec::new().into(),
            allowed_outbound_hosts: Vec::new().into(),
            max_response_bytes: 6 << 20,
            reuse_state: true,
        });

        let mut bare = Histogram::<u64>::new(3)?;
        for _ in 0..cli.cold.min(100) {
            let started = Instant::now();
            // With as clean an environment as the sandbox's (a CA bundle named in
            // NODE_EXTRA_CA_CERTS alone costs Node ~35 ms).
            let status = std::process::Command::new(baseline[0])
                .args(&baseline[1..])
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .status()?;
            anyhow::ensure!(status.success(), "{} failed", baseline.join(" "));
            bare.record(started.elapsed().as_micros() as u64)?;
        }

        let mut cold = Histogram::<u64>::new(3)?;
        for i in 0..cli.cold {
            let waited = Instant::now();
            while runtime.warm_sandboxes_ready(kind) == 0 {
                anyhow::ensure!(waited.elapsed() < Duration::from_secs(30), "no pre-started sandbox within 30 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cold.record(cold_start(&prepared, &config, i).await?)?;
        }
        let from_nothing = prepare(&fresh, kind, &zip).await?;
        let mut fresh_cold = Histogram::<u64>::new(3)?;
        for i in 0..cli.cold {
            fresh_cold.record(cold_start(&from_nothing, &config, i).await?)?;
        }

        // The same burst twice: the first meets the pool at its floor, the second the
        // pool grown to the first's size.
        let bursting = prepare(&growing, kind, &zip).await?;
        let mut first_burst = Histogram::<u64>::new(3)?;
        let mut second_burst = Histogram::<u64>::new(3)?;
        for histogram in [&mut first_burst, &mut second_burst] {
            let waited = Instant::now();
            while growing.warm_sandboxes_ready(kind) < if histogram.is_empty() { 1 } else { BURST } {
                anyhow::ensure!(waited.elapsed() < Duration::from_secs(60), "the pool did not grow within 60 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let mut starts = tokio::task::JoinSet::new();
            for i in 0..BURST {
                let (prepared, config) = (bursting.clone(), config.clone());
                starts.spawn(async move { cold_start(&prepared, &config, i).await });
            }
            while let Some(started) = starts.join_next().await {
                histogram.record(started??)?;
            }
        }

        let mut instance = prepared.create(&config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut round_trip = Histogram::<u64>::new(3)?;
        let mut handler = Histogram::<u64>::new(3)?;
        for i in 0..cli.warm + cli.warm / 10 {
            let started = Instant::now();
            let invoked = instance.invoke(event(Bytes::from_static(b"{}")), call(i)).await;
            let elapsed = started.elapsed();
            let body = invoked.result.map_err(|e| anyhow::anyhow!("{e}"))?.into_body().read_whole().await?;
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            if i >= cli.warm / 10 {
                round_trip.record(elapsed.as_nanos() as u64)?;
                handler.record(answer["handler_ns"].as_u64().unwrap_or(0).max(1))?;
            }
        }
        instance.dispose();

        let name = kind.as_str();
        println!();
        println!("{name} cold start (sandbox + interpreter + handler import + first answer)");
        for (what, histogram) in [("pre-started", &cold), ("from nothing", &fresh_cold)] {
            println!(
                "  {what:<12} p50 {:>8.2} ms  p99 {:>8.2} ms   ({:.2}x the bare interpreter)",
                ms(histogram.value_at_quantile(0.5)),
                ms(histogram.value_at_quantile(0.99)),
                histogram.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5) as f64
            );
        }
        println!(
            "  baseline     p50 {:>8.2} ms  p99 {:>8.2} ms   ({})",
            ms(bare.value_at_quantile(0.5)),
            ms(bare.value_at_quantile(0.99)),
            baseline.join(" ")
        );
        println!("{name}: {BURST} cold starts at once, twice (a pool of one that grows with demand)");
        for (what, histogram) in [("first burst", &first_burst), ("second burst", &second_burst)] {
            println!(
                "  {what:<12} p50 {:>8.2} ms  max {:>8.2} ms   ({:.2}x the bare interpreter)",
                ms(histogram.value_at_quantile(0.5)),
                ms(histogram.max()),
                histogram.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5) as f64
            );
        }
        let overhead = round_trip.value_at_quantile(0.5).saturating_sub(handler.value_at_quantile(0.5));
        println!("{name} warm invocation");
        println!(
            "  round trip  p50 {:>8.1} µs  p99 {:>8.1} µs",
            round_trip.value_at_quantile(0.5) as f64 / 1000.0,
            round_trip.value_at_quantile(0.99) as f64 / 1000.0
        );
        println!(
            "  handler     p50 {:>8.1} µs   (its own time, measured inside)",
            handler.value_at_quantile(0.5) as f64 / 1000.0
        );
        println!(
            "  overhead    p50 {:>8.1} µs   ({:.0}x the handler's time)",
            overhead as f64 / 1000.0,
            round_trip.value_at_quantile(0.5) as f64 / handler.value_at_quantile(0.5) as f64
        );
        std::io::stdout().flush()?;
    }
    egress(&runtime, dir.path(), cli.egress).await?;
    Ok(())
}

/// Requests to a loopback HTTP server, each on a new connection, timed inside the
/// caller: from a Python function granted the server's address (through the egress
/// path: its namespace's listener, the host's accept and connect, and the copying)
/// against the same code run by the same interpreter on the host, outside a sandbox.
const EGRESS_CLIENT: &str = r#"
import http.client, json, sys, time

def requests(port, n):
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/")
        connection.getresponse().read()
        connection.close()
        times.append(time.perf_counter_ns() - started)
    return times

def handler(event, context):
    return {"times": requests(event["port"], event["n"])}

if __name__ == "__main__":
    print(json.dumps(requests(int(sys.argv[1]), int(sys.argv[2]))))
"#;

async fn egress(runtime: &ProcessRuntime, dir: &Path, count: usize) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buffer.len() {
                    match stream.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    let zip = bundle(dir, "app.py", EGRESS_CLIENT)?;
    let script = dir.join("egress_client.py");
    std::fs::write(&script, EGRESS_CLIENT)?;
    let config = FunctionConfig {
        handler: Some("app.handler".into()),
        memory: ByteSize::mib(256),
        timeout: Duration::from_secs(60),
        allowed_outbound_hosts: vec![format!("127.0.0.1:{port}")],
        ..FunctionConfig::with_defaults(Kind::Python3, &Limits::default())
    };
    let source = VersionSource {
        function: FunctionName::new("bench-egress")?,
        artifact: ArtifactDigest::of(&std::fs::read(&zip)?),
        artifact_path: zip.clone(),
        config,
    };
    let prepared =
        Runtime::<Input, FunctionResponse>::prepare(runtime, source).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let instance_config = Arc::new(InstanceConfig {
        memory_limit: 256 << 20,
        env: Vec::new().into(),
        allowed_outbound_hosts: vec![format!("127.0.0.1:{port}")].into(),
        max_response_bytes: 6 << 20,
        reuse_state: true,
    });
    let mut instance = prepared.create(&instance_config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sandboxed = Histogram::<u64>::new(3)?;
    let mut host = Histogram::<u64>::new(3)?;
    // Alternating rounds spread any drift in the machine's load over both.
    for round in 0..4 {
        let payload = serde_json::json!({ "port": port, "n": count / 4 }).to_string();
        let invoked = instance
            .invoke(event(Bytes::from(payload)), Call { timeout: Duration::from_secs(60), ..call(round) })
            .await;
        let body = invoked.result.map_err(|e| anyhow::anyhow!("{e}"))?.into_body().read_whole().await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        for time in answer["times"].as_array().into_iter().flatten() {
            sandboxed.record(time.as_u64().unwrap_or(1).max(1))?;
        }
        let output = std::process::Command::new("/usr/bin/python3")
            .args(["-I", "-B"])
            .arg(&script)
            .args([port.to_string(), (count / 4).to_string()])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "the host's python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let times: Vec<u64> = serde_json::from_slice(&output.stdout)?;
        for time in times {
            host.record(time.max(1))?;
        }
    }
    instance.dispose();
    server.abort();
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!();
    println!("egress: a request to a loopback HTTP server on a new connection, timed by the caller ({count} each)");
    println!("  on the host (baseline)      p50 {:>8.1} µs  p99 {:>8.1} µs", us(&host, 0.5), us(&host, 0.99));
    println!(
        "  granted Lambda function     p50 {:>8.1} µs  p99 {:>8.1} µs   ({:.2}x the baseline at p50)",
        us(&sandboxed, 0.5),
        us(&sandboxed, 0.99),
        us(&sandboxed, 0.5) / us(&host, 0.5)
    );
    Ok(())
}

/// One cold start: a new instance answering its first event, in microseconds.
async fn cold_start(
    prepared: &Arc<dyn Prepared<Input, FunctionResponse>>,
    config: &Arc<InstanceConfig>,
    i: usize,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut instance = prepared.create(config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let invoked = instance.invoke(event(Bytes::from_static(b"{}")), call(i)).await;
    invoked.result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let elapsed = started.elapsed().as_micros() as u64;
    instance.dispose();
    Ok(elapsed)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn bundle(dir: &Path, file: &str, code: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("{file}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path)?);
    zip.start_file(file, zip::write::SimpleFileOptions::default())?;
    zip.write_all(code.as_bytes())?;
    zip.finish()?;
    Ok(path)
}

async fn prepare(
    runtime: &ProcessRuntime,
    kind: Kind,
    zip: &Path,
) -> anyhow::Result<Arc<dyn Prepared<Input, FunctionResponse>>> {
    let config = FunctionConfig {
        handler: Some("app.handler".into()),
        memory: ByteSize::mib(256),
        timeout: Duration::from_secs(10),
        ..FunctionConfig::with_defaults(kind, &Limits::default())
    };
    let source = VersionSource {
        function: FunctionName::new(format!("bench-{}", kind.as_str()))?,
        artifact: ArtifactDigest::of(&std::fs::read(zip)?),
        artifact_path: zip.to_owned(),
        config,
    };
    Runtime::<Input, FunctionResponse>::prepare(runtime, source).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// An event invocation (Lambda's Invoke API) with `payload`.
fn event(payload: Bytes) -> Input {
    Input::Event(Event {
        id: "bench".into(),
        payload,
        origin: EventOrigin::Direct { content_type: None, client_context: None },
    })
}

fn call(i: usize) -> Call {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    Call {
        request_id: format!("bench-{i}").into(),
        trace_id: format!("{:032x}", i + 1).into(),
        timeout: Duration::from_secs(10),
        deadline_ms: now + 10_000,
        lineage: Default::default(),
    }
}
