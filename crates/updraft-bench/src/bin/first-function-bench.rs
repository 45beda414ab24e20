//! `first-function-bench`: how long a newcomer waits for a first function, per template:
//! `updraft new TEMPLATE DIR`, `updraft deploy DIR` and the first `200` from its route,
//! against the template's build alone (`updraft build` of another fresh copy, run first
//! in the same run, so that both meet the same package caches). The difference is
//! Updraft's own part: uploading, compiling or unpacking, the cold start and the request.
//! Also printed: a second deploy of the unchanged function (every build step cached).
//!
//! The package caches (pip's, npm's) are warm after the first template that uses them; a
//! Rust template compiles its dependencies in each fresh folder. Needs the toolchains the
//! templates name (`rustup target add wasm32-wasip2`, `pip install componentize-py==0.25.1`,
//! Node.js with npm; a missing one skips its templates) and root for the sandbox. From the
//! repository root:
//!
//!     cargo build --release -p updraft -p updraft-bench && target/release/first-function-bench

// The benchmark drives the CLI and the server as child processes.
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

/// Times `updraft new` + `updraft deploy` to a first answer, per template.
#[derive(Debug, Parser)]
#[command(name = "first-function-bench", verbatim_doc_comment)]
struct Cli {
    /// The templates to time (default: all of `updraft new --list`).
    #[arg(long, value_delimiter = ',')]
    templates: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let binaries = Binaries::next_to_current_exe()?;
    let scratch = tempfile::Builder::new().prefix("updraft-first-function-").tempdir()?;
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
    let client = reqwest::Client::new();
    wait_for(&client, &format!("{endpoint}/healthz"), Duration::from_secs(60), &mut server).await?;

    let cli_command = |args: &[&str]| {
        let mut command = Command::new(&binaries.updraft);
        command.args(args).args(["--endpoint", &endpoint, "--data-dir"]).arg(&data_dir).env_remove("UPDRAFT_TOKEN");
        command
    };
    let templates = if cli.templates.is_empty() {
        let listed = run_ok(cli_command(&["new", "--list"]), "updraft new --list")?;
        listed.lines().filter_map(|line| line.split_whitespace().next().map(str::to_owned)).collect()
    } else {
        cli.templates
    };

    println!(
        "{:<14} {:>10} {:>10} {:>8} {:>10} {:>12}",
        "template", "first 200", "build", "ratio", "updraft", "redeploy"
    );
    for template in &templates {
        let name = format!("first-{template}");
        // The baseline: the template's build alone, in a fresh copy of its own.
        let baseline = scratch.path().join("baseline").join(&name);
        run_ok(cli_command(&["new", template, baseline.to_str().unwrap()]), "updraft new")?;
        let started = Instant::now();
        if let Err(error) = run_ok(cli_command(&["build", baseline.to_str().unwrap()]), "updraft build") {
            println!("{template:<14} skipped: its build fails here ({})", first_line(&error.to_string()));
            continue;
        }
        let build = started.elapsed();

        // What a newcomer does: a new folder, a deploy, a first request.
        let dir = scratch.path().join("measured").join(&name);
        let started = Instant::now();
        run_ok(cli_command(&["new", template, dir.to_str().unwrap()]), "updraft new")?;
        run_ok(cli_command(&["deploy", dir.to_str().unwrap()]), "updraft deploy")?;
        let url = format!("{endpoint}/{name}?name=Ada");
        wait_for(&client, &url, Duration::from_secs(60), &mut server).await?;
        let first = started.elapsed();

        let started = Instant::now();
        run_ok(cli_command(&["deploy", dir.to_str().unwrap()]), "updraft deploy (unchanged)")?;
        let redeploy = started.elapsed();
        println!(
            "{template:<14} {:>10} {:>10} {:>7.2}x {:>10} {:>12}",
            seconds(first),
            seconds(build),
            first.as_secs_f64() / build.as_secs_f64(),
            seconds(first.saturating_sub(build)),
            seconds(redeploy),
        );
    }
    println!(
        "\nfirst 200: `updraft new` + `updraft deploy` + the first answer; build: `updraft build` of another \
         fresh copy (the baseline); ratio: first 200 / build; updraft: first 200 - build; redeploy: \
         `updraft deploy` again, unchanged"
    );
    server.terminate(Duration::from_secs(30))
}

/// Runs a CLI command; its stdout, or an error with its stderr.
fn run_ok(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command.output().with_context(|| format!("running `{what}`"))?;
    if !output.status.success() {
        bail!("`{what}` failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Asks `url` every 5 ms until it answers 200.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    server: &mut ServerProcess,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        server.check_alive()?;
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {within:?}:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or(text)
}
