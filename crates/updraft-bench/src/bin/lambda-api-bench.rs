//! `lambda-api-bench`: Lambda's control plane and aliases, driven with boto3 as a deploy
//! script for AWS would, each figure next to a baseline measured in the same run:
//!
//! - `CreateFunction` of a Python zip to its first answer, against `updraft deploy` of the
//!   same code (the CLI, as a user runs it) to its first answer;
//! - an alias sending a share of its invocations to a second version: the share each
//!   version got over many invocations, and the time per invocation through the alias
//!   against invoking the version by number;
//! - an answer that streams (a first line at once, the rest a moment later), from a web
//!   app and from a Node handler written with `awslambda.streamifyResponse`: the first
//!   byte through `InvokeWithResponseStream` against the first byte of `Invoke`, which
//!   has the answer only whole.
//!
//! Needs python3 with boto3 (`pip install boto3==1.43.11`) and root for the sandbox. From
//! the repository root:
//!
//!     cargo build --release -p updraft -p updraft-bench && target/release/lambda-api-bench

// The benchmark drives the server, the CLI and the boto3 driver as child processes.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

#[path = "../processes.rs"]
#[allow(dead_code)]
mod processes;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use processes::{Binaries, ServerProcess, free_loopback_port};
use serde_json::Value;

/// Times CreateFunction against `updraft deploy`, and an alias's weighted routing.
#[derive(Debug, Parser)]
#[command(name = "lambda-api-bench", verbatim_doc_comment)]
struct Cli {
    /// Functions made each way.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Invocations through the alias (and as many by version number).
    #[arg(long, default_value_t = 10_000)]
    invocations: usize,
    /// The share of the alias's invocations its second version takes.
    #[arg(long, default_value_t = 0.1)]
    weight: f64,
    /// Streamed invocations (and as many buffered).
    #[arg(long, default_value_t = 50)]
    streams: usize,
    /// How long the streaming app holds the rest of its answer after its first line.
    #[arg(long, default_value_t = 200)]
    hold_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let binaries = Binaries::next_to_current_exe()?;
    let scratch = tempfile::Builder::new().prefix("updraft-lambda-api-").tempdir()?;
    let data_dir = scratch.path().join("data");
    let addr = free_loopback_port()?;
    let mut command = Command::new(&binaries.updraft);
    command
        .args(["server", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data_dir)
        .env("UPDRAFT_LOG", "warn")
        .env_remove("UPDRAFT_DATABASE_URL")
        .env_remove("UPDRAFT_NATS_URL");
    let mut server = ServerProcess::spawn("updraft server", command, &scratch.path().join("server.log"))?;
    let endpoint = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{endpoint}/healthz")).await.is_err() {
        server.check_alive()?;
        if Instant::now() > deadline {
            bail!("the server did not start:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut keys = Command::new(&binaries.updraft);
    keys.args(["--output", "json", "keys", "create", "--endpoint", &endpoint, "--data-dir"]).arg(&data_dir);
    let key: Value = serde_json::from_slice(&run_ok(keys, "updraft keys create")?)?;
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lambda_api_driver.py");
    let mut python = Command::new("python3");
    python
        .arg(driver)
        .args([&endpoint, binaries.updraft.to_str().context("the updraft binary's path is not UTF-8")?])
        .arg(&data_dir)
        .args([cli.rounds.to_string(), cli.invocations.to_string(), cli.weight.to_string()])
        .args([cli.streams.to_string(), cli.hold_ms.to_string()])
        .env("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().context("no access key id")?)
        .env("AWS_SECRET_ACCESS_KEY", key["secret_access_key"].as_str().context("no secret")?)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let figures: Value = serde_json::from_slice(&run_ok(python, "the boto3 driver")?)?;
    server.terminate(Duration::from_secs(30))?;

    let millis = |key: &str| -> Vec<f64> {
        figures[key].as_array().map(|values| values.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
    };
    let (create, deploy) = (median(millis("create_ms")), median(millis("deploy_ms")));
    println!("CreateFunction of a Python zip to its first answer, median of {} each:", cli.rounds);
    println!("  CreateFunction (boto3)  {create:>8.1} ms");
    println!("  updraft deploy (CLI)    {deploy:>8.1} ms  (baseline)");
    println!("  ratio                   {:>8.2}x", create / deploy);

    let counts = &figures["alias_counts"];
    let count = |version: &str| counts[version].as_u64().unwrap_or(0);
    let total = (count("1") + count("2")).max(1);
    println!(
        "\nAn alias on version 1 sending {:.0}% to version 2, {} invocations:",
        cli.weight * 100.0,
        cli.invocations
    );
    println!("  version 1  {:>6}  ({:.2}%)", count("1"), 100.0 * count("1") as f64 / total as f64);
    println!(
        "  version 2  {:>6}  ({:.2}%, asked {:.2}%)",
        count("2"),
        100.0 * count("2") as f64 / total as f64,
        cli.weight * 100.0
    );
    let per = |key: &str| figures[key].as_f64().unwrap_or(0.0) * 1e6 / cli.invocations as f64;
    let (alias, version) = (per("alias_s"), per("version_s"));
    println!("  per invocation through the alias  {alias:>8.0} µs");
    println!("  per invocation by version number  {version:>8.0} µs  (baseline)");
    println!("  ratio                             {:>8.2}x", alias / version);

    for (prefix, what) in
        [("stream", "A web app (runtime = \"http\")"), ("handler", "A Node handler (streamifyResponse)")]
    {
        let (first, whole) =
            (median(millis(&format!("{prefix}_first_ms"))), median(millis(&format!("{prefix}_whole_ms"))));
        let buffered = median(millis(&format!("{prefix}_buffered_first_ms")));
        println!(
            "\n{what} answering a first line at once and the rest {} ms later, median of {}:",
            cli.hold_ms, cli.streams
        );
        println!("  first byte, InvokeWithResponseStream  {first:>8.1} ms  (whole answer {whole:.1} ms)");
        println!("  first byte, Invoke                    {buffered:>8.1} ms  (baseline)");
        println!("  ratio                                 {:>8.2}x", first / buffered);
    }
    Ok(())
}

fn run_ok(mut command: Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let output = command.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output.stdout)
}

fn median(values: Vec<f64>) -> f64 {
    let mut values = values;
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
