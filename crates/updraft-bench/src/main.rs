//! `updraft-bench`: Updraft serving examples/hello, measured next to a raw hyper
//! server (`hyper-hello`) in the same run and printed as a ratio to it.
//!
//! It measures throughput and latency under load, the first response after a deploy
//! and after a restart, and the in-process cost of one instantiate-and-call. It prints
//! figures; it asserts nothing, because times depend on the machine.

// The benchmark starts the servers it measures as child processes.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

mod inprocess;
mod latency;
mod load;
mod probe;
mod processes;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::load::LoadConfig;
use crate::probe::{get_once, poll_until_ok};
use crate::processes::{Binaries, ServerProcess, free_loopback_port};
use crate::report::{FairnessRow, FirstResponses, LoadFigures, LoadRow, Report, RestartFigures};

/// Benchmarks Updraft serving examples/hello against a raw hyper hello-world server.
///
/// Run it from the repository root, in release mode, with the `updraft` binary built
/// next to it:
///
///     cargo build --release -p updraft -p updraft-bench && target/release/updraft-bench
///
/// For each connection count it loads the baseline and then Updraft with `GET /hello`
/// and prints requests/s, p50 and p99, and Updraft's throughput as a ratio to the
/// baseline's. It also times the first response after `updraft deploy` and after
/// restarting the server, and one instantiate-and-call inside this process. All
/// traffic stays on 127.0.0.1; nothing is asserted.
#[derive(Debug, Parser)]
#[command(name = "updraft-bench", verbatim_doc_comment)]
struct Cli {
    /// Seconds of measurement for each connection count and each in-process kind of
    /// call, after the warm-up.
    #[arg(long, default_value_t = 5.0, value_parser = parse_duration_seconds)]
    duration: f64,
    /// Seconds of unmeasured load before each measurement.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds)]
    warmup: f64,
    /// Connection counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32,256")]
    connections: Vec<usize>,
    /// How many times to restart the server to time its first response.
    #[arg(long, default_value_t = 3)]
    restarts: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Also serve the same component with `wasmtime serve` from this `wasmtime`
    /// binary and put it in the load table (`crates/updraft-bench/compare.sh` installs
    /// the wasmtime our runtime links, from crates.io, and passes it here).
    #[arg(long, value_name = "PATH")]
    wasmtime: Option<PathBuf>,
    /// Measure the load table alone: no greedy neighbours, restarts or in-process calls.
    #[arg(long)]
    load_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Human,
    Json,
}

fn parse_duration_seconds(value: &str) -> Result<f64, String> {
    let seconds = parse_seconds(value)?;
    if seconds == 0.0 { Err("the measurement needs a duration above 0 seconds".to_owned()) } else { Ok(seconds) }
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if (0.0..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("{value:?} is not a number of seconds between 0 and 3600")),
    }
}

/// How long a server may take to start answering before the run gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a new deployment may take to answer its route.
const DEPLOY_ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// Passed to `updraft server --shutdown-timeout`; no request is in flight at a restart.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The repository this benchmark was built from (for `examples/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the crate is two folders deep").to_owned()
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli.connections.is_empty() || cli.connections.contains(&0) {
        bail!("--connections needs one or more counts above zero, like 1,32,256");
    }
    let binaries = Binaries::next_to_current_exe()?;
    let repo = repo_root();
    let app_dir = repo.join("examples/hello");
    let wasm_path = repo.join("examples/target/wasm32-wasip2/release/hello.wasm");
    if !app_dir.join("updraft.toml").is_file() {
        bail!("{} has no updraft.toml; run the benchmark from the checkout it was built in", app_dir.display());
    }
    let debug_build = cfg!(debug_assertions);
    if debug_build {
        eprintln!("warning: this is a debug build; the figures mean little. Build with `--release`.");
    }
    let warmup = Duration::from_secs_f64(cli.warmup);
    let duration = Duration::from_secs_f64(cli.duration);
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let work_dir = tempfile::Builder::new().prefix("updraft-bench-").tempdir().context("creating a temporary dir")?;
    let probes =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building the probes' runtime")?;

    let baseline_addr = free_loopback_port()?;
    let mut baseline = {
        let mut command = Command::new(&binaries.hyper_hello);
        command.args(["--listen", &baseline_addr.to_string()]);
        ServerProcess::spawn("hyper-hello", command, &work_dir.path().join("hyper-hello.log"))?
    };
    probes
        .block_on(poll_until_ok(baseline_addr, "/", Instant::now() + START_DEADLINE, || baseline.check_alive()))
        .context("waiting for hyper-hello to answer")?;

    let updraft_addr = free_loopback_port()?;
    let data_dir = work_dir.path().join("data");
    let updraft_server = UpdraftServer { binary: &binaries.updraft, addr: updraft_addr, data_dir: &data_dir };
    let mut updraft = updraft_server.spawn(work_dir.path(), 0)?;
    probes
        .block_on(poll_until_ok(updraft_addr, "/healthz", Instant::now() + START_DEADLINE, || updraft.check_alive()))
        .context("waiting for `updraft server` to answer /healthz")?;

    eprintln!("deploying {} to http://{updraft_addr}", app_dir.display());
    let deploy_started = Instant::now();
    updraft_server.deploy(&app_dir)?;
    let deployed = Instant::now();
    let first_hello = probes
        .block_on(poll_until_ok(updraft_addr, "/hello", deployed + DEPLOY_ANSWER_DEADLINE, || updraft.check_alive()))
        .context("waiting for the deployed /hello route to answer")?;
    // The same component again with instance reuse on, at /hello-reused, so the table
    // shows what the fresh-instance default costs.
    let reuse_dir = work_dir.path().join("hello-reused");
    std::fs::create_dir_all(&reuse_dir).context("creating the reuse app's folder")?;
    std::fs::write(
        reuse_dir.join("updraft.toml"),
        format!(
            "[app]\nname = \"hello-reused\"\n\n[functions.hello-reused]\nruntime = \"wasm\"\nsource = {:?}\nmemory = \"64MiB\"\ntimeout = \"2s\"\nenv = {{ GREETING = \"Hello\" }}\ninstance_reuse = true\ntriggers = [{{ http = \"GET /hello-reused\" }}]\n",
            wasm_path.display().to_string()
        ),
    )
    .context("writing the reuse app's manifest")?;
    updraft_server.deploy(&reuse_dir)?;
    let deploy_command = deployed - deploy_started;
    let after_deploy = first_hello - deployed;
    // The same component under `wasmtime serve`: a fresh instance per request, its
    // env and stdout as Updraft gives them.
    let mut wasmtime = match &cli.wasmtime {
        None => None,
        Some(binary) => {
            let addr = free_loopback_port()?;
            let mut command = Command::new(binary);
            command.args(["serve", "--addr", &addr.to_string(), "-Scli", "--env", "GREETING=Hello"]).arg(&wasm_path);
            let mut server = ServerProcess::spawn("wasmtime serve", command, &work_dir.path().join("wasmtime.log"))?;
            probes
                .block_on(poll_until_ok(addr, "/hello", Instant::now() + START_DEADLINE, || server.check_alive()))
                .context("waiting for `wasmtime serve` to answer GET /hello")?;
            Some((server, addr))
        }
    };
    let mut servers = vec![("hyper-hello", baseline_addr), ("updraft", updraft_addr)];
    servers.extend(wasmtime.as_ref().map(|(_, addr)| ("wasmtime serve", *addr)));
    for (name, addr) in servers {
        let response = probes.block_on(get_once(addr, "/hello", PROBE_TIMEOUT))?;
        if response.body.as_ref() != inprocess::HELLO_BODY {
            bail!("{name} answered GET /hello with {} {:?}, not \"Hello, world!\\n\"", response.status, response.body);
        }
    }

    let mut rows = Vec::new();
    for &connections in &cli.connections {
        let measure = |name: &str, addr: SocketAddr, path: &str| -> anyhow::Result<LoadFigures> {
            eprintln!("measuring {name} at {connections} connections");
            let config = LoadConfig { addr, path: path.into(), connections, warmup, duration };
            let result = load::run(config).with_context(|| format!("load on {name} at {connections} connections"))?;
            Ok(LoadFigures::from(&result))
        };
        // Alternating the two servers at each count spreads any drift in the machine's
        // load (other processes) evenly over both.
        let baseline_figures = measure("baseline", baseline_addr, "/hello")?;
        let updraft_figures = measure("updraft", updraft_addr, "/hello")?;
        let reused_figures = measure("updraft (reuse)", updraft_addr, "/hello-reused")?;
        let wasmtime_figures = match &wasmtime {
            Some((_, addr)) => Some(measure("wasmtime serve", *addr, "/hello")?),
            None => None,
        };
        rows.push(LoadRow::new(connections, baseline_figures, updraft_figures, reused_figures, wasmtime_figures));
    }
    baseline.check_alive()?;
    updraft.check_alive()?;
    if let Some((mut server, _)) = wasmtime.take() {
        server.check_alive()?;
    }
    // The load table alone so far; a full run fills in the rest below.
    let mut report = Report {
        nproc,
        warmup_secs: cli.warmup,
        duration_secs: cli.duration,
        debug_build,
        load: rows,
        fairness: Vec::new(),
        first_response: None,
        in_process: None,
    };
    if cli.load_only {
        return print_report(&report, cli.output);
    }

    // Greedy neighbours: GET /hello (32 connections) with nothing else running, then
    // while 4 × nproc wasm guests spin without yielding, then while as many Lambda
    // functions spin at their CPU quota.
    let spin_dir = work_dir.path().join("spinners");
    write_spinners(&spin_dir)?;
    updraft_server.deploy(&spin_dir)?;
    let spinners = 4 * nproc;
    let fairness_load = |label: &str| -> anyhow::Result<LoadFigures> {
        eprintln!("measuring updraft at 32 connections {label}");
        let config = LoadConfig { addr: updraft_addr, path: "/hello".into(), connections: 32, warmup, duration };
        Ok(LoadFigures::from(&load::run(config).with_context(|| format!("load on updraft {label}"))?))
    };
    let quiet = fairness_load("with nothing spinning")?;
    let mut fairness = Vec::new();
    for (kind, path) in [
        ("wasm guests spinning without yielding", "/spin"),
        ("Lambda functions spinning at their CPU quota", "/pyspin"),
    ] {
        let spinning = Spinners::start(updraft_addr, path, spinners);
        let figures = fairness_load(&format!("while {spinners} {kind}"));
        let served = spinning.stop();
        fairness.push(FairnessRow::new(format!("{spinners} {kind}"), quiet.clone(), figures?, served));
    }
    updraft.check_alive()?;

    let mut restarts = Vec::new();
    for index in 1..=cli.restarts {
        eprintln!("restarting updraft ({index} of {})", cli.restarts);
        updraft.terminate(SHUTDOWN_GRACE + Duration::from_secs(5)).context("stopping `updraft server`")?;
        let spawned = Instant::now();
        updraft = updraft_server.spawn(work_dir.path(), index)?;
        let ready = probes
            .block_on(poll_until_ok(updraft_addr, "/healthz", spawned + START_DEADLINE, || updraft.check_alive()))
            .context("waiting for the restarted `updraft server` to answer /healthz")?;
        let response = probes.block_on(get_once(updraft_addr, "/hello", PROBE_TIMEOUT))?;
        let first = Instant::now();
        if !response.status.is_success() {
            bail!("after a restart, GET /hello answered {} {:?}", response.status, response.body);
        }
        let second_started = Instant::now();
        probes.block_on(get_once(updraft_addr, "/hello", PROBE_TIMEOUT))?;
        let second = second_started.elapsed();
        let baseline_started = Instant::now();
        probes.block_on(get_once(baseline_addr, "/hello", PROBE_TIMEOUT))?;
        let baseline_hello = baseline_started.elapsed();
        restarts.push(RestartFigures {
            spawn_to_ready_us: micros(ready - spawned),
            ready_to_first_hello_us: micros(first - ready),
            spawn_to_first_hello_us: micros(first - spawned),
            second_hello_us: micros(second),
            baseline_hello_us: micros(baseline_hello),
        });
    }
    updraft.terminate(SHUTDOWN_GRACE + Duration::from_secs(5)).context("stopping `updraft server`")?;
    // The in-process measurement runs with no server taking CPU.
    drop(updraft);
    drop(baseline);

    eprintln!("measuring in-process instantiate-and-call");
    let in_process = inprocess::measure(&wasm_path, warmup, duration)?;

    report.fairness = fairness;
    report.first_response = Some(FirstResponses {
        deploy_command_us: micros(deploy_command),
        after_deploy_us: micros(after_deploy),
        restarts,
    });
    report.in_process = Some(in_process);
    print_report(&report, cli.output)
}

fn print_report(report: &Report, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Human => print!("{}", report.render()),
        Output::Json => println!("{}", serde_json::to_string_pretty(report).context("serializing the report")?),
    }
    Ok(())
}

/// The spinners' app: the spinning test guest and a Python handler that loops, each
/// with a 2 s timeout.
fn write_spinners(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("src")).context("creating the spinners' app")?;
    std::fs::copy(updraft_test_programs::SPIN, dir.join("spin.wasm"))
        .with_context(|| format!("copying {}", updraft_test_programs::SPIN))?;
    std::fs::write(dir.join("src/spin.py"), "def handler(event, context):\n    while True:\n        pass\n")?;
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"spinners\"\n\n\
         [functions.spin]\nruntime = \"wasm\"\nsource = \"spin.wasm\"\ntimeout = \"2s\"\ntriggers = [{ http = \"GET /spin\" }]\n\n\
         [functions.pyspin]\nruntime = \"python3\"\nhandler = \"spin.handler\"\nsource = \"src\"\ntimeout = \"2s\"\n\
         triggers = [{ http = \"GET /pyspin\" }]\n",
    )?;
    Ok(())
}

/// `count` clients each asking `path` again as soon as its answer (a timeout) comes:
/// that many invocations spin all the time.
struct Spinners {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Spinners {
    fn start(addr: SocketAddr, path: &'static str, count: usize) -> Spinners {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..count)
                    .map(|_| {
                        let flag = flag.clone();
                        tokio::spawn(async move {
                            let mut answered = 0;
                            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                                if get_once(addr, path, Duration::from_secs(30)).await.is_ok() {
                                    answered += 1;
                                }
                            }
                            answered
                        })
                    })
                    .collect();
                let mut answered = 0;
                for task in tasks {
                    answered += task.await.unwrap_or(0);
                }
                answered
            })
        });
        Spinners { stop, thread }
    }

    /// Stops asking; returns how many spinning invocations ended (each at its timeout).
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// How to start and talk to the Updraft server under test.
struct UpdraftServer<'a> {
    binary: &'a Path,
    addr: SocketAddr,
    data_dir: &'a Path,
}

impl UpdraftServer<'_> {
    /// Starts `updraft server`; `index` numbers its log file, one per start.
    fn spawn(&self, log_dir: &Path, index: u32) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(self.binary);
        command
            .args(["server", "--listen", &self.addr.to_string(), "--data-dir"])
            .arg(self.data_dir)
            .args(["--shutdown-timeout", &format!("{}s", SHUTDOWN_GRACE.as_secs())])
            // The server's defaults, whatever this shell has set.
            .env("UPDRAFT_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("UPDRAFT_DATABASE_URL");
        ServerProcess::spawn("updraft server", command, &log_dir.join(format!("updraft-server-{index}.log")))
    }

    /// Runs `updraft deploy` on `app_dir` and waits for it to finish.
    fn deploy(&self, app_dir: &Path) -> anyhow::Result<()> {
        let output = Command::new(self.binary)
            .arg("deploy")
            .arg(app_dir)
            .args(["--endpoint", &format!("http://{}", self.addr), "--data-dir"])
            .arg(self.data_dir)
            .env_remove("UPDRAFT_TOKEN")
            .output()
            .context("running `updraft deploy`")?;
        if !output.status.success() {
            bail!(
                "`updraft deploy {}` failed with {}:\n{}{}",
                app_dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}
