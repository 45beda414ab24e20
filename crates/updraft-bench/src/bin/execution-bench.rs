//! `execution-bench`: the execution model's figures, each next to a baseline measured
//! in the same run and printed as a ratio to it.
//!
//! - cold start (a version deployed but not loaded) against a warm invocation;
//! - a warm invocation through the scheduler against the same runtime call made
//!   directly (the scheduler's overhead);
//! - 1,000 invocations (`--in-flight`) in flight at once, each waiting 100 ms in its own
//!   instance, against the 100 ms wait, and the process's resident memory meanwhile
//!   against before;
//! - a WASIp3 component (`p3.wasm`) against a WASIp2 one (`echo.wasm`), warm with
//!   reuse and fresh per request; and 1,000 of its invocations in flight sharing 100 to
//!   a store (`concurrency_per_instance`) against each in a store of its own;
//! - the server's resident memory with 10,000 functions (`--functions`) deployed and
//!   idle, against the same server with none.
//!
//! Build and run from the repository root:
//!
//!     cargo build --release -p updraft -p updraft-bench && target/release/execution-bench

// The benchmark starts the server it measures as a child process.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use updraft_model::{
    ArtifactDigest, FunctionConfig, InvocationRecord, Limits, RuntimeKind as Kind, TriggerKind, VersionNumber,
};
use updraft_runtime::{
    Body, Call, FunctionResponse, GuestOutput, Input, InstanceConfig, Prepared, Runtime, VersionSource,
};
use updraft_runtime_wasm::{Pooling, WasmEngineConfig, WasmRuntime};
use updraft_scheduler::{InvocationMeta, InvocationSink, PoolSpec, Scheduler, SchedulerConfig};
use updraft_test_programs as programs;

/// Measures cold starts, the scheduler's overhead, instances in flight at once and the
/// memory of idle functions.
#[derive(Debug, Parser)]
#[command(name = "execution-bench", verbatim_doc_comment)]
struct Cli {
    /// Invocations measured for each latency figure.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Functions deployed for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    functions: usize,
    /// Invocations in flight at once, each in its own instance.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Tokio worker-thread counts to run the in-process figures with, comma-separated.
    /// With two workers on a 2-core machine, a lone request pays for waking the idle
    /// worker; under load both are busy and it does not.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
}

/// Keeps the init durations the scheduler reports; drops the rest.
#[derive(Default)]
struct Inits(Mutex<Vec<Duration>>);

impl InvocationSink for Inits {
    fn finished(&self, record: InvocationRecord, _output: GuestOutput) {
        if let Some(init) = record.init_duration {
            self.0.lock().unwrap().push(init);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; the figures mean little. Build with `--release`.");
    }
    for workers in cli.workers {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
        println!("\n-- in process, {workers} tokio worker thread(s) --");
        // Measured from a task on a worker thread, as the server's request handlers
        // run: the scheduler's own task then starts on the same worker.
        runtime.block_on(async move { tokio::spawn(in_process(cli.samples, cli.in_flight)).await })??;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!("\n-- WASIp3, in process, 2 tokio worker threads --");
    runtime.block_on(async move { tokio::spawn(wasip3(cli.samples, cli.in_flight)).await })??;
    println!();
    idle_memory(cli.functions)
}

fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64
}

fn row(name: &str, histogram: &Histogram<u64>, baseline: &Histogram<u64>) {
    println!(
        "{name:<44} p50 {:>9.1} µs  p99 {:>9.1} µs   {:>6.2}× baseline p50",
        micros(histogram, 0.5),
        micros(histogram, 0.99),
        micros(histogram, 0.5) / micros(baseline, 0.5)
    );
}

fn request(path: &str) -> Input {
    Input::Http(
        http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Body::default())
            .expect("a valid request"),
    )
}

fn meta(i: usize) -> InvocationMeta {
    InvocationMeta {
        id: format!("bench-{i}"),
        trigger: TriggerKind::Direct,
        trace_id: format!("{:032x}", i + 1),
        parent_span_id: None,
        queued_since: None,
        links: Vec::new(),
        lineage: Default::default(),
    }
}

/// The call a direct (unscheduled) invocation of an instance gets.
fn call(timeout: Duration) -> Call {
    Call {
        request_id: "bench".into(),
        trace_id: "0".repeat(32).into(),
        timeout,
        deadline_ms: i64::MAX,
        lineage: Default::default(),
    }
}

async fn in_process(samples: usize, in_flight_count: usize) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("updraft-execution-bench-").tempdir()?;
    let artifact = dir.path().join("echo.wasm");
    std::fs::write(&artifact, programs::bytes(programs::ECHO))?;
    let wasm = WasmRuntime::new(WasmEngineConfig {
        cache_dir: dir.path().join("compiled"),
        pooling: Pooling::Auto,
        // Room for the in-flight instances and the warm and cold figures' own.
        max_instances: u32::try_from(in_flight_count + 16)?,
    })?;
    let limits = Limits::default();
    let config = FunctionConfig {
        timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        ..FunctionConfig::with_defaults(Kind::Wasm, &limits)
    };
    let source = VersionSource {
        function: "echo".parse()?,
        artifact: ArtifactDigest::parse(&format!("sha256:{}", "ab".repeat(32)))?,
        artifact_path: artifact.clone(),
        config: config.clone(),
    };
    let instance_config = Arc::new(InstanceConfig {
        memory_limit: config.memory.bytes(),
        env: Arc::new([]),
        allowed_outbound_hosts: Arc::new([]),
        max_response_bytes: 6 << 20,
        reuse_state: false,
    });
    let spec = |name: &str| PoolSpec {
        function: name.parse().expect("a valid name"),
        version: VersionNumber(1),
        concurrency: None,
        timeout: config.timeout,
        idle_timeout: config.idle_timeout,
        min_instances: 0,
        recursion_limit: None,
        instance: (*instance_config).clone(),
    };
    // Compiles once into the cache; every later prepare finds it there.
    let prepare = async || -> anyhow::Result<Arc<dyn Prepared<Input, FunctionResponse>>> {
        Runtime::<Input, FunctionResponse>::prepare(&wasm, source.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))
    };
    prepare().await?;

    let inits = Arc::new(Inits::default());
    let scheduler: Scheduler<Input, FunctionResponse> = Scheduler::new(SchedulerConfig::default(), inits.clone());

    // Baseline: the runtime called directly, one warm instance.
    let prepared = prepare().await?;
    let mut instance = prepared.create(&instance_config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // ...and the same call through the scheduler, warm. The two alternate call by
    // call, so that drift in the machine's speed affects both alike.
    let pool = scheduler.register(spec("warm"), prepared.clone());
    let mut direct = Histogram::<u64>::new(3)?;
    let mut scheduled = Histogram::<u64>::new(3)?;
    for i in 0..samples + samples / 10 {
        let started = Instant::now();
        let invoked = instance.invoke(request("/hello"), call(config.timeout)).await;
        invoked.result.map_err(|e| anyhow::anyhow!("{e}"))?;
        let direct_time = started.elapsed();
        let started = Instant::now();
        scheduler.invoke(&pool, request("/hello"), meta(i)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let scheduled_time = started.elapsed();
        if i >= samples / 10 {
            direct.record(direct_time.as_micros() as u64)?;
            scheduled.record(scheduled_time.as_micros() as u64)?;
        }
    }

    // Cold: each time a version whose code is not loaded (prepared, never started).
    // Nothing else may hold the code: the warm instances go first.
    drop(instance);
    pool.retire();
    let mut cold = Histogram::<u64>::new(3)?;
    inits.0.lock().unwrap().clear();
    for i in 0..samples / 4 {
        let pool = scheduler.register(spec(&format!("cold-{i}")), prepare().await?);
        let started = Instant::now();
        let done = scheduler.invoke(&pool, request("/hello"), meta(i)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        cold.record(started.elapsed().as_micros() as u64)?;
        if !done.cold {
            bail!("a first invocation was not cold");
        }
        pool.retire();
        scheduler.remove_function(pool.function());
    }
    let mut init = Histogram::<u64>::new(3)?;
    for duration in inits.0.lock().unwrap().iter() {
        init.record(duration.as_micros() as u64)?;
    }

    println!(
        "execution-bench ({} samples; echo.wasm; {})",
        samples,
        if wasm.pooling() { "pooling" } else { "on-demand allocation" }
    );
    println!("baseline: the runtime's invoke on a warm instance, called directly");
    row("direct runtime call (baseline)", &direct, &direct);
    row("warm invocation through the scheduler", &scheduled, &direct);
    println!(
        "{:<44} p50 {:>9.1} µs  (target ≤ 10 µs)",
        "scheduler overhead (difference of p50s)",
        micros(&scheduled, 0.5) - micros(&direct, 0.5)
    );
    row("cold start: first invocation, code not loaded", &cold, &scheduled);
    row("  of which init (load code, start instance)", &init, &scheduled);
    println!("  (cold rows are ratios to the warm invocation through the scheduler; target ≤ 2 ms p50)");

    // Many at once, each waiting 100 ms in the guest.
    let wait = Duration::from_millis(100);
    let in_flight = scheduler.register(spec("in-flight"), prepare().await?);
    let scheduler = Arc::new(scheduler);
    let Burst { latencies, resident_before, resident_peak, peak_busy, wall } =
        burst(&scheduler, &in_flight, in_flight_count).await?;
    println!(
        "{:<44} p50 {:>9.1} ms  p99 {:>9.1} ms   {:>6.2}× the 100 ms wait; all done in {:.1} ms; peak busy instances {peak_busy}",
        format!("{in_flight_count} in flight at once (sleep 100 ms each)"),
        micros(&latencies, 0.5) / 1000.0,
        micros(&latencies, 0.99) / 1000.0,
        micros(&latencies, 0.5) / wait.as_micros() as f64,
        wall.as_secs_f64() * 1000.0
    );
    println!(
        "{:<44} {:>9} KiB peak, {:.1} KiB per instance over the {} KiB before   {:>5.2}× before",
        "  resident memory meanwhile",
        resident_peak,
        resident_peak.saturating_sub(resident_before) as f64 / in_flight_count as f64,
        resident_before,
        resident_peak as f64 / resident_before as f64
    );
    if (peak_busy as usize) < in_flight_count {
        println!("  (only {peak_busy} of {in_flight_count} were seen busy at once)");
    }
    Ok(())
}

/// One prepared version of a guest for the WASIp3 figures, with reuse and up to
/// `per_instance` requests to a store.
async fn version(
    wasm: &WasmRuntime,
    dir: &std::path::Path,
    name: &str,
    guest: &str,
    reuse: bool,
    per_instance: u32,
) -> anyhow::Result<(Arc<dyn Prepared<Input, FunctionResponse>>, PoolSpec)> {
    let artifact = dir.join(format!("{name}.wasm"));
    std::fs::write(&artifact, programs::bytes(guest))?;
    let config = FunctionConfig {
        timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        instance_reuse: reuse,
        concurrency_per_instance: per_instance,
        ..FunctionConfig::with_defaults(Kind::Wasm, &Limits::default())
    };
    let digest = if guest == programs::P3 { "cd" } else { "ab" };
    let source = VersionSource {
        function: name.parse()?,
        artifact: ArtifactDigest::parse(&format!("sha256:{}", digest.repeat(32)))?,
        artifact_path: artifact,
        config: config.clone(),
    };
    let prepared =
        Runtime::<Input, FunctionResponse>::prepare(wasm, source).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec = PoolSpec {
        function: name.parse()?,
        version: VersionNumber(1),
        concurrency: None,
        timeout: config.timeout,
        idle_timeout: config.idle_timeout,
        min_instances: 0,
        recursion_limit: None,
        instance: InstanceConfig {
            memory_limit: config.memory.bytes(),
            env: Arc::new([]),
            allowed_outbound_hosts: Arc::new([]),
            max_response_bytes: 6 << 20,
            reuse_state: reuse,
        },
    };
    Ok((prepared, spec))
}

/// How `count` invocations waiting 100 ms each went, all at once through the scheduler.
struct Burst {
    latencies: Histogram<u64>,
    resident_before: u64,
    resident_peak: u64,
    /// The most of the pool's instances seen busy at once.
    peak_busy: u32,
    /// From the first invocation's start to the last one's end.
    wall: Duration,
}

async fn burst(
    scheduler: &Arc<Scheduler<Input, FunctionResponse>>,
    pool: &Arc<updraft_scheduler::Pool<Input, FunctionResponse>>,
    count: usize,
) -> anyhow::Result<Burst> {
    let mut latencies = Histogram::<u64>::new(3)?;
    let resident_before = rss_kib(std::process::id())?;
    let mut resident_peak = resident_before;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let (scheduler, pool) = (scheduler.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = scheduler.invoke(&pool, request("/sleep?ms=100"), meta(i)).await;
            (result.map(|_| ()), started.elapsed())
        }));
    }
    let mut peak_busy = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        peak_busy = peak_busy.max(pool.stats().busy);
        resident_peak = resident_peak.max(rss_kib(std::process::id())?);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for task in tasks {
        let (result, latency) = task.await?;
        result.map_err(|e| anyhow::anyhow!("{e}"))?;
        latencies.record(latency.as_micros() as u64)?;
    }
    Ok(Burst { latencies, resident_before, resident_peak, peak_busy, wall: started.elapsed() })
}

/// A WASIp3 component against a WASIp2 one, and WASIp3 instances sharing stores.
async fn wasip3(samples: usize, in_flight_count: usize) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("updraft-execution-bench-p3-").tempdir()?;
    let wasm = WasmRuntime::new(WasmEngineConfig {
        cache_dir: dir.path().join("compiled"),
        pooling: Pooling::Auto,
        max_instances: u32::try_from(in_flight_count + 16)?,
    })?;
    // Direct calls, alternating call by call: warm with reuse, then fresh per request.
    for reuse in [true, false] {
        let (p2, p2_spec) = version(&wasm, dir.path(), "echo", programs::ECHO, reuse, 1).await?;
        let (p3, p3_spec) = version(&wasm, dir.path(), "p3", programs::P3, reuse, 1).await?;
        let create = |prepared: Arc<dyn Prepared<Input, FunctionResponse>>, spec: PoolSpec| async move {
            prepared.create(&Arc::new(spec.instance)).await.map_err(|e| anyhow::anyhow!("{e}"))
        };
        let mut p2_instance = create(p2, p2_spec).await?;
        let mut p3_instance = create(p3, p3_spec).await?;
        let (mut p2_times, mut p3_times) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
        for i in 0..samples + samples / 10 {
            let started = Instant::now();
            p2_instance
                .invoke(request("/hello"), call(Duration::from_secs(5)))
                .await
                .result
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p2_time = started.elapsed();
            let started = Instant::now();
            p3_instance
                .invoke(request("/hello"), call(Duration::from_secs(5)))
                .await
                .result
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p3_time = started.elapsed();
            if i >= samples / 10 {
                p2_times.record(p2_time.as_micros() as u64)?;
                p3_times.record(p3_time.as_micros() as u64)?;
            }
        }
        let mode = if reuse { "reused instance" } else { "fresh instance per request" };
        row(&format!("WASIp2 echo.wasm, {mode} (baseline)"), &p2_times, &p2_times);
        row(&format!("WASIp3 p3.wasm, {mode}"), &p3_times, &p2_times);
    }

    // Many at once: 100 to a store, then (the baseline) each in a store of its own.
    let per_store = 100;
    let mut bursts = Vec::new();
    for (name, per_instance) in [("shared", per_store), ("alone", 1)] {
        // A scheduler each: the first one's permits are not all back the moment its
        // invocations have answered.
        let scheduler = Arc::new(Scheduler::new(SchedulerConfig::default(), Arc::new(Inits::default())));
        let (prepared, spec) = version(&wasm, dir.path(), name, programs::P3, true, per_instance).await?;
        let pool = scheduler.register(spec, prepared);
        bursts.push(burst(&scheduler, &pool, in_flight_count).await?);
        pool.retire();
        scheduler.remove_function(pool.function());
    }
    let (shared, alone) = (&bursts[0], &bursts[1]);
    for (name, burst) in [
        (format!("{in_flight_count} in flight, each in its own store (baseline)"), alone),
        (format!("{in_flight_count} in flight, {per_store} to a store"), shared),
    ] {
        println!(
            "{name:<52} p50 {:>7.1} ms  p99 {:>7.1} ms  {:>5.2}× baseline p50; resident +{} KiB ({:.1} KiB per invocation)",
            micros(&burst.latencies, 0.5) / 1000.0,
            micros(&burst.latencies, 0.99) / 1000.0,
            micros(&burst.latencies, 0.5) / micros(&alone.latencies, 0.5),
            burst.resident_peak.saturating_sub(burst.resident_before),
            burst.resident_peak.saturating_sub(burst.resident_before) as f64 / in_flight_count as f64,
        );
    }
    println!(
        "  (the shared run goes first, so any memory the allocator keeps from it counts against the baseline, not for it)"
    );
    Ok(())
}

/// Resident memory of the real server with `count` functions deployed, idle and never
/// loaded, and again after each served one request and scaled back to zero.
fn idle_memory(count: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let updraft = exe.parent().context("no folder")?.join("updraft");
    if !updraft.is_file() {
        bail!("{} not found; build it with `cargo build --release -p updraft -p updraft-bench`", updraft.display());
    }
    let data = tempfile::Builder::new().prefix("updraft-execution-bench-data-").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Server(
        Command::new(&updraft)
            .args(["server", "--listen", &addr, "--data-dir"])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_until(|| get(&addr, "/healthz").is_ok_and(|(status, _)| status == 200))?;
    std::thread::sleep(Duration::from_millis(500));
    let empty = rss_kib(server.0.id())?;

    let app = tempfile::Builder::new().prefix("updraft-execution-bench-app-").tempdir()?;
    std::fs::write(app.path().join("fn.wasm"), programs::bytes(programs::ECHO))?;
    let mut manifest = String::from("[app]\nname = \"many\"\n");
    for i in 0..count {
        manifest.push_str(&format!(
            "\n[functions.f{i}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\nidle_timeout = \"1s\"\ntriggers = [{{ http = \"GET /f{i}\" }}]\n"
        ));
    }
    std::fs::write(app.path().join("updraft.toml"), manifest)?;
    let deployed = Command::new(&updraft)
        .arg("deploy")
        .arg(app.path())
        .args(["--endpoint", &format!("http://{addr}"), "--data-dir"])
        .arg(data.path())
        .output()?;
    if !deployed.status.success() {
        bail!("deploying {count} functions failed: {}", String::from_utf8_lossy(&deployed.stderr));
    }
    std::thread::sleep(Duration::from_millis(500));
    let deployed_rss = rss_kib(server.0.id())?;
    for i in 0..count {
        let (status, _) = get(&addr, &format!("/f{i}"))?;
        if status != 200 {
            bail!("GET /f{i} answered {status}");
        }
    }
    let served_rss = rss_kib(server.0.id())?;
    // Every instance idles out after 1 s; wait for the reaper, then measure.
    std::thread::sleep(Duration::from_secs(3));
    let scaled_rss = rss_kib(server.0.id())?;
    server.0.kill()?;
    let per = |rss: u64| (rss.saturating_sub(empty)) as f64 / count as f64;
    println!("resident memory (baseline: the server with no functions, {empty} KiB)");
    println!(
        "{:<44} {:>8} KiB  {:>6.1} KiB per function   {:>5.2}× baseline  (target: 10,000 functions in ≤ 1 GiB)",
        format!("{count} functions deployed, never invoked"),
        deployed_rss,
        per(deployed_rss),
        deployed_rss as f64 / empty as f64
    );
    println!(
        "{:<44} {:>8} KiB  {:>6.1} KiB per function   {:>5.2}× baseline",
        format!("right after one request to each"),
        served_rss,
        per(served_rss),
        served_rss as f64 / empty as f64
    );
    println!(
        "{:<44} {:>8} KiB  {:>6.1} KiB per function   {:>5.2}× baseline",
        "after all scaled to zero",
        scaled_rss,
        per(scaled_rss),
        scaled_rss as f64 / empty as f64
    );
    Ok(())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn wait_until(mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            bail!("the server did not become ready within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One HTTP/1.1 GET on a fresh connection: status and body.
fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).context("no status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}
