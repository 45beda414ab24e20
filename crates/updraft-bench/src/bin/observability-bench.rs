//! `observability-bench`: what watching costs.
//!
//! 1. The gateway (`GET /hello` on examples/hello) with traces kept only in the store,
//!    which is always on and the baseline, then with spans and metrics exported over
//!    OTLP to a collector that answers at once, then to one that accepts connections
//!    and never answers (spans are dropped with a count; requests must not wait).
//!    Each row prints requests/s, p50 and p99 and its throughput as a ratio to the
//!    baseline's, with the exporter's counters.
//! 2. The dashboard's function page with 100,000 invocation records of that function
//!    in the last hour (the default chart window), against the same page for a function
//!    with 1,000: the API requests the page makes, timed as the browser makes them
//!    (function and versions together, then charts and the invocations table together).
//!
//! Build and run from the repository root:
//!
//!     cargo build --release -p updraft -p updraft-bench && target/release/observability-bench
//!
//! Figures depend on the machine; nothing is asserted.

// The benchmark starts the servers it measures as child processes.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use updraft_model::{FunctionName, InvocationRecord, InvocationStatus, TriggerKind, VersionNumber, now_millis};
use updraft_store::Store;

#[path = "../latency.rs"]
#[allow(dead_code)]
mod latency;
#[path = "../load.rs"]
#[allow(dead_code)]
mod load;
#[path = "../probe.rs"]
#[allow(dead_code)]
mod probe;
#[path = "../processes.rs"]
#[allow(dead_code)]
mod processes;

use latency::LatencyHistogram;
use load::LoadConfig;
use processes::{Binaries, ServerProcess, free_loopback_port};

#[derive(Debug, Parser)]
#[command(
    name = "observability-bench",
    about = "What OTLP export costs the gateway, and the dashboard's function page with 100,000 records"
)]
struct Args {
    /// Seconds of measurement for each gateway row, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of unmeasured load before each measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connection counts for the gateway rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    connections: Vec<usize>,
    /// Invocation records of the busy function for the dashboard's page.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Page loads timed for each function.
    #[arg(long, default_value_t = 20)]
    loads: usize,
}

const START_DEADLINE: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the crate is two folders deep").to_owned()
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs one or more counts above zero, like 1,32");
    }
    if args.records == 0 || args.loads == 0 {
        bail!("--records and --loads must be above zero");
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; the figures mean little. Build with `--release`.");
    }
    let binaries = Binaries::next_to_current_exe()?;
    let app = repo_root().join("examples/hello");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the collectors' runtime")?;
    let collector = runtime.block_on(Collector::start(true))?;
    let stalled = runtime.block_on(Collector::start(false))?;

    let modes: [(&str, Option<SocketAddr>); 3] = [
        ("traces in the store only (baseline)", None),
        ("+ OTLP export, collector answering", Some(collector.addr)),
        ("+ OTLP export, collector never answering", Some(stalled.addr)),
    ];
    let mut rows = Vec::new();
    for (label, otlp) in modes {
        let work = tempfile::Builder::new().prefix("observability-bench-").tempdir()?;
        let server = Server::start(&binaries, work.path(), otlp)?;
        server.deploy(&binaries, &app)?;
        for &connections in &args.connections {
            eprintln!("measuring {label} at {connections} connections");
            let config = LoadConfig {
                addr: server.addr,
                path: "/hello".into(),
                connections,
                warmup: Duration::from_secs_f64(args.warmup),
                duration: Duration::from_secs_f64(args.duration),
            };
            let result = load::run(config)?;
            let metrics = runtime.block_on(server.metrics())?;
            rows.push(GatewayRow {
                label,
                connections,
                rps: result.requests_per_second(),
                latency: result.latency.summary(),
                errors: result.errors + result.non_2xx,
                exported: sample(&metrics, "updraft_trace_spans_exported_total"),
                dropped: sample(&metrics, "updraft_trace_spans_dropped_total"),
                failed: sample(&metrics, "updraft_trace_spans_failed_total"),
            });
        }
        server.stop()?;
    }
    println!("Gateway, GET /hello (examples/hello), {} s per row", args.duration);
    println!(
        "{:<42} {:>5} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "", "conns", "req/s", "p50 µs", "p99 µs", "ratio", "exported", "dropped", "errors"
    );
    for row in &rows {
        let baseline = rows.iter().find(|base| base.connections == row.connections).map_or(row.rps, |base| base.rps);
        println!(
            "{:<42} {:>5} {:>10.0} {:>9.0} {:>9.0} {:>8.3}× {:>10.0} {:>10.0} {:>8}",
            row.label,
            row.connections,
            row.rps,
            row.latency.p50_us,
            row.latency.p99_us,
            row.rps / baseline.max(f64::MIN_POSITIVE),
            row.exported,
            row.dropped + row.failed,
            row.errors
        );
    }
    println!(
        "collector: {} span requests ({} spans bytes), {} metric requests",
        collector.traces.load(Ordering::Relaxed),
        collector.trace_bytes.load(Ordering::Relaxed),
        collector.metrics.load(Ordering::Relaxed)
    );

    dashboard(args, &binaries, &app, &runtime)?;
    drop(stalled);
    Ok(())
}

struct GatewayRow {
    label: &'static str,
    connections: usize,
    rps: f64,
    latency: latency::LatencySummary,
    errors: u64,
    exported: f64,
    dropped: f64,
    failed: f64,
}

/// The value of an unlabelled sample in a Prometheus exposition; 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The dashboard's function page for a function with `--records` records and for one
/// with 1,000.
fn dashboard(args: &Args, binaries: &Binaries, app: &Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("observability-bench-ui-").tempdir()?;
    let server = Server::start(binaries, work.path(), None)?;
    server.deploy(binaries, app)?;
    let quiet_app = work.path().join("quiet");
    std::fs::create_dir_all(&quiet_app)?;
    let wasm = repo_root().join("examples/target/wasm32-wasip2/release/hello.wasm");
    std::fs::write(
        quiet_app.join("updraft.toml"),
        format!(
            "[app]\nname = \"quiet\"\n\n[functions.quiet]\nruntime = \"wasm\"\nsource = {:?}\ntriggers = [{{ http = \"GET /quiet\" }}]\n",
            wasm.display().to_string()
        ),
    )?;
    server.deploy(binaries, &quiet_app)?;
    // The records go straight into the stopped server's database.
    server.stop()?;
    let database = Store::sqlite_url(&work.path().join("data/updraft.db"));
    eprintln!("writing {} + 1,000 invocation records", args.records);
    let written = Instant::now();
    runtime.block_on(async {
        let store = Store::connect(&database).await?;
        fill(&store, "hello", args.records).await?;
        fill(&store, "quiet", 1_000).await?;
        anyhow::Ok(())
    })?;
    eprintln!("written in {:.1} s", written.elapsed().as_secs_f64());
    let server = Server::start(binaries, work.path(), None)?;
    let token = std::fs::read_to_string(work.path().join("data/admin-token")).context("reading the admin token")?;
    let client = reqwest::Client::new();
    let mut loads = Vec::new();
    for function in ["quiet", "hello"] {
        let page = PageLoad { client: &client, addr: server.addr, token: token.trim(), function };
        runtime.block_on(page.once())?; // warm
        let mut total = LatencyHistogram::new();
        let mut parts =
            [LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new()];
        for _ in 0..args.loads {
            let (elapsed, each) = runtime.block_on(page.once())?;
            total.record(elapsed);
            for (histogram, took) in parts.iter_mut().zip(each) {
                histogram.record(took);
            }
        }
        loads.push((function, total.summary(), parts.map(|part| part.summary())));
    }
    server.stop()?;
    println!();
    println!("Dashboard function page (its API requests), {} loads each", args.loads);
    println!(
        "{:<26} {:>10} {:>10} {:>9} {:>12} {:>10} {:>12}",
        "", "page p50", "page p99", "ratio", "stats p50", "list p50", "function p50"
    );
    let baseline = loads[0].1.p50_us;
    for (function, total, parts) in &loads {
        let records = if *function == "hello" { args.records } else { 1_000 };
        println!(
            "{:<26} {:>8.1}ms {:>8.1}ms {:>8.2}× {:>10.1}ms {:>8.1}ms {:>10.1}ms",
            format!("{records} records ({function})"),
            total.p50_us / 1000.0,
            total.p99_us / 1000.0,
            total.p50_us / baseline.max(f64::MIN_POSITIVE),
            parts[2].p50_us / 1000.0,
            parts[3].p50_us / 1000.0,
            parts[0].p50_us / 1000.0,
        );
    }
    Ok(())
}

/// Writes `count` records of `function`, spread over the last hour, in batches.
async fn fill(store: &Store, function: &str, count: usize) -> anyhow::Result<()> {
    let name = FunctionName::new(function).context("a function name")?;
    let now = now_millis();
    let statuses = [InvocationStatus::Success; 19].into_iter().chain([InvocationStatus::Error]).collect::<Vec<_>>();
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..count {
        let at = now - 3_600_000 + (i as i64 * 3_600_000 / count as i64);
        batch.push(InvocationRecord {
            id: uuid::Uuid::now_v7().to_string(),
            function: name.clone(),
            version: VersionNumber(1),
            trigger: TriggerKind::Http,
            started_at: at,
            duration: Duration::from_micros(200 + (i as u64 * 7919) % 5_000),
            init_duration: (i % 50 == 0).then(|| Duration::from_micros(400)),
            cold: i % 50 == 0,
            memory_limit: 128 << 20,
            max_memory_used: (2 << 20) + (i as u64 % 1024) * 1024,
            status: statuses[i % statuses.len()],
            error_type: None,
            error_message: None,
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            parent_span_id: None,
            queued_since: None,
            links: Vec::new(),
            log_lines_dropped: 0,
            node: "bench".to_owned(),
        });
        if batch.len() == 1_000 {
            store.invocation_append(&batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.invocation_append(&batch).await?;
    }
    Ok(())
}

/// The requests of one load of the function page, as the browser sends them: the
/// function and its versions together, then the last hour's charts and the newest 25
/// invocations together.
struct PageLoad<'a> {
    client: &'a reqwest::Client,
    addr: SocketAddr,
    token: &'a str,
    function: &'a str,
}

impl PageLoad<'_> {
    /// The whole load and each request's time: function, versions, stats, invocations.
    async fn once(&self) -> anyhow::Result<(Duration, [Duration; 4])> {
        let until = now_millis();
        let since = until - 3_600_000;
        let f = self.function;
        let started = Instant::now();
        let (function, versions) =
            tokio::join!(self.get(format!("/v1/functions/{f}")), self.get(format!("/v1/functions/{f}/versions")));
        let (stats, list) = tokio::join!(
            self.get(format!("/v1/functions/{f}/stats?since={since}&until={until}")),
            self.get(format!("/v1/invocations?function={f}&limit=25"))
        );
        Ok((started.elapsed(), [function?, versions?, stats?, list?]))
    }

    async fn get(&self, path: String) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = self.client.get(format!("http://{}{path}", self.addr)).bearer_auth(self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(started.elapsed())
    }
}

/// `updraft server` on a data dir of its own.
struct Server {
    process: ServerProcess,
    addr: SocketAddr,
    data_dir: PathBuf,
}

impl Server {
    fn start(binaries: &Binaries, work: &Path, otlp: Option<SocketAddr>) -> anyhow::Result<Self> {
        let addr = free_loopback_port()?;
        let data_dir = work.join("data");
        let mut command = Command::new(&binaries.updraft);
        command
            .args(["server", "--listen", &addr.to_string(), "--data-dir"])
            .arg(&data_dir)
            .env("UPDRAFT_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("UPDRAFT_DATABASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        if let Some(collector) = otlp {
            command.args(["--otlp-endpoint", &format!("http://{collector}"), "--otlp-metric-interval", "1s"]);
        }
        let mut process = ServerProcess::spawn("updraft server", command, &work.join("server.log"))?;
        let probes = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        probes
            .block_on(probe::poll_until_ok(addr, "/healthz", Instant::now() + START_DEADLINE, || process.check_alive()))
            .context("waiting for `updraft server` to answer /healthz")?;
        Ok(Self { process, addr, data_dir })
    }

    fn deploy(&self, binaries: &Binaries, app: &Path) -> anyhow::Result<()> {
        let output = Command::new(&binaries.updraft)
            .arg("deploy")
            .arg(app)
            .args(["--endpoint", &format!("http://{}", self.addr), "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("UPDRAFT_TOKEN")
            .output()
            .context("running `updraft deploy`")?;
        if !output.status.success() {
            bail!("`updraft deploy {}` failed: {}", app.display(), String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        let token = std::fs::read_to_string(self.data_dir.join("admin-token"))?;
        let response = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(token.trim())
            .send()
            .await?;
        Ok(response.text().await?)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.process.terminate(GRACE).context("stopping `updraft server`")
    }
}

/// An OTLP/HTTP endpoint that takes every export and counts it, answering with an
/// empty (valid) protobuf response; or, when `answering` is false, one that accepts
/// connections and never answers.
struct Collector {
    addr: SocketAddr,
    traces: Arc<AtomicU64>,
    trace_bytes: Arc<AtomicU64>,
    metrics: Arc<AtomicU64>,
}

impl Collector {
    async fn start(answering: bool) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let traces = Arc::new(AtomicU64::new(0));
        let trace_bytes = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(AtomicU64::new(0));
        let counters = (traces.clone(), trace_bytes.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                if !answering {
                    held.push(stream);
                    continue;
                }
                let (traces, trace_bytes, metrics) = counters.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (traces, trace_bytes, metrics) = (traces.clone(), trace_bytes.clone(), metrics.clone());
                        async move {
                            let path = request.uri().path().to_owned();
                            let body =
                                request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
                            if path == "/v1/traces" {
                                traces.fetch_add(1, Ordering::Relaxed);
                                trace_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                            } else {
                                metrics.fetch_add(1, Ordering::Relaxed);
                            }
                            let response = hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .expect("a static response is valid");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Self { addr, traces, trace_bytes, metrics })
    }
}
