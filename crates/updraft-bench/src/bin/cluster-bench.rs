//! The cluster benchmark: three `updraft server` nodes on loopback sharing one
//! PostgreSQL database (a fresh one, dropped afterwards), each figure printed next to
//! its baseline from the same run:
//!
//! - **Forwarding**: a function's requests sent to a node that is not its home (so
//!   they are forwarded) against the same requests sent to its home (p50/p99, and what
//!   forwarding adds).
//! - **Cold starts per 1,000 requests** spread at random over the three nodes: through
//!   the gateway (home-node routing) against the control plane's invoke, which runs a
//!   request where it lands (random placement), on two sets of 20 functions alike.
//! - **Deploy to live on every node**: from the deploy's answer until all three nodes
//!   serve the new version.
//! - **Node death to its events delivered elsewhere**: events accepted by one node,
//!   which is killed (`kill -9`) at once; the time until the survivors have delivered
//!   every one, with the dead-after time it waited out.
//!
//! On a 2-core machine the nodes share the cores, so throughput cannot grow with
//! nodes and none is reported. Build with `cargo build --release -p updraft -p
//! updraft-bench`, then run `target/release/cluster-bench`.

// The benchmark starts the servers, the CLI and psql as child processes.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use processes::{Binaries, ServerProcess, free_loopback_port, psql};
use serde_json::Value;

#[path = "../processes.rs"]
#[allow(dead_code)]
mod processes;

#[derive(Debug, Parser)]
#[command(about = "Measure a three-node cluster on loopback: forwarding, home routing, deploys, node loss")]
struct Args {
    /// A PostgreSQL URL of a database where the benchmark may CREATE DATABASE.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_admin_url: String,
    /// Requests per figure of the forwarding comparison.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// How long a silent node takes to be declared dead.
    #[arg(long, default_value = "2s")]
    dead_after: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cluster-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One node under test.
struct Node {
    addr: SocketAddr,
    data_dir: tempfile::TempDir,
    process: ServerProcess,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let binaries = Binaries::next_to_current_exe()?;
    let database = format!("updraft_cluster_bench_{}", std::process::id());
    psql(&args.postgres_admin_url, &format!("CREATE DATABASE {database}"))?;
    let result = measure(args, &binaries, &database).await;
    let _ = psql(&args.postgres_admin_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
    result
}

async fn measure(args: &Args, binaries: &Binaries, database: &str) -> anyhow::Result<()> {
    let (base, _) = args.postgres_admin_url.rsplit_once('/').context("the admin URL names a database")?;
    let url = format!("{base}/{database}");
    let logs = tempfile::tempdir()?;
    let key = "ab".repeat(32);
    let mut nodes = Vec::new();
    for index in 0..3 {
        let addr = free_loopback_port()?;
        let data_dir = tempfile::tempdir()?;
        if let Some(first) = nodes.first() {
            let first: &Node = first;
            std::fs::copy(first.data_dir.path().join("admin-token"), data_dir.path().join("admin-token"))?;
        }
        let mut command = Command::new(&binaries.updraft);
        command
            .args(["server", "--listen", &addr.to_string(), "--database-url", &url, "--data-dir"])
            .arg(data_dir.path())
            .args(["--heartbeat", "200ms", "--node-dead-after", &args.dead_after, "--async-retry-delay", "100ms"])
            .env("UPDRAFT_CLUSTER_KEY", &key)
            .env("UPDRAFT_LOG", "info")
            .env_remove("UPDRAFT_NATS_URL");
        let process = ServerProcess::spawn("updraft server", command, &logs.path().join(format!("node-{index}.log")))?;
        let node = Node { addr, data_dir, process };
        wait_until_up(&node).await?;
        nodes.push(node);
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let token = std::fs::read_to_string(nodes[0].data_dir.path().join("admin-token"))?.trim().to_owned();

    // Two sets of 20 functions alike: `h*` reached through the gateway (home routing),
    // `r*` through the control plane's invoke (runs where the request lands).
    let app = tempfile::tempdir()?;
    let mut manifest = String::from("[app]\nname = \"bench\"\n\n");
    for set in ["h", "r"] {
        for i in 0..20 {
            manifest.push_str(&format!(
                "[functions.{set}{i}]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\nenv = {{ BUILD = \"1\" }}\n\
                 triggers = [{{ http = \"GET /{set}{i}\" }}]\n\n"
            ));
        }
    }
    std::fs::write(app.path().join("updraft.toml"), &manifest)?;
    std::fs::write(app.path().join("fn.wasm"), updraft_test_programs::bytes(updraft_test_programs::ECHO))?;
    deploy(binaries, &nodes[0], app.path())?;
    for node in &nodes {
        wait_for_version(&client, node, "/h0", "1", Duration::from_secs(60)).await?;
    }
    // Every node knows every other before measuring.
    wait_for(Duration::from_secs(20), || async {
        let mut homes = HashSet::new();
        for node in &nodes {
            homes.insert(served_by(&client, node, "/h0").await?);
        }
        Ok(homes.len() == 1)
    })
    .await?;

    // Forwarding against a local request.
    let home = served_by(&client, &nodes[0], "/h0").await?;
    let node_ids = node_ids(&client, &nodes, &token).await?;
    let home_index = node_ids.iter().position(|id| *id == home).context("the home is one of the nodes")?;
    let other = (home_index + 1) % 3;
    let local = latencies(&client, &nodes[home_index], "/h0", args.requests).await?;
    let forwarded = latencies(&client, &nodes[other], "/h0", args.requests).await?;
    println!("forwarding ({} sequential requests each, GET of a wasm echo function)", args.requests);
    println!("  to the home node:         p50 {:>8.1} µs   p99 {:>8.1} µs", local.0, local.1);
    println!(
        "  forwarded by another one: p50 {:>8.1} µs   p99 {:>8.1} µs   (adds {:.1} µs p50, {:.1} µs p99; {:.2}x p50)",
        forwarded.0,
        forwarded.1,
        forwarded.0 - local.0,
        forwarded.1 - local.1,
        forwarded.0 / local.0
    );

    // Cold starts per 1,000 requests: home routing against random placement.
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: usize| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state % n as u64) as usize
    };
    let picks: Vec<(usize, usize)> = (0..1000).map(|_| (random(3), random(20))).collect();
    for (node, function) in &picks {
        let response = client.get(format!("http://{}/h{function}", nodes[*node].addr)).send().await?;
        if !response.status().is_success() {
            bail!("GET /h{function}: {}", response.status());
        }
    }
    for (node, function) in &picks {
        let response = client
            .post(format!("http://{}/v1/functions/r{function}/invoke", nodes[*node].addr))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("invoke r{function}: {}", response.status());
        }
    }
    let homed = cold_starts(&client, &nodes[0], &token, "h").await?;
    let random_placed = cold_starts(&client, &nodes[0], &token, "r").await?;
    println!("cold starts per 1,000 requests over 3 nodes, 20 functions");
    println!("  home-node routing:  {homed:>4}");
    println!(
        "  random placement:   {random_placed:>4}   (home routing starts {:.2}x as many)",
        homed as f64 / random_placed.max(1) as f64
    );

    // Deploy to live on every node.
    let mut times = Vec::new();
    for build in 2..=6 {
        std::fs::write(
            app.path().join("updraft.toml"),
            manifest.replace("BUILD = \"1\"", &format!("BUILD = \"{build}\"")),
        )?;
        deploy(binaries, &nodes[0], app.path())?;
        let deployed = Instant::now();
        for node in &nodes {
            wait_for_version(&client, node, "/h0", &build.to_string(), Duration::from_secs(30)).await?;
        }
        times.push(deployed.elapsed());
    }
    times.sort();
    println!(
        "deploy to live on all 3 nodes (40 functions, 5 deploys): p50 {:.0} ms, max {:.0} ms (the deploying node's own \
         answer comes first; the others compile the changed components themselves)",
        times[2].as_secs_f64() * 1000.0,
        times[4].as_secs_f64() * 1000.0
    );

    // A node's death to its events delivered elsewhere: a Python function that takes
    // half a second, so the dying node holds leases on events it has not finished.
    let slow = tempfile::tempdir()?;
    std::fs::write(
        slow.path().join("updraft.toml"),
        "[app]\nname = \"slow\"\n\n[functions.slow]\nruntime = \"python3\"\nhandler = \"app.handler\"\n\
         source = \"src\"\nconcurrency = 10\n",
    )?;
    std::fs::create_dir(slow.path().join("src"))?;
    std::fs::write(
        slow.path().join("src/app.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(0.5)\n    return {}\n",
    )?;
    deploy(binaries, &nodes[0], slow.path())?;
    let victim = 2;
    wait_for(Duration::from_secs(30), || async {
        let response =
            client.get(format!("http://{}/v1/functions/slow", nodes[victim].addr)).bearer_auth(&token).send().await?;
        Ok(response.status().is_success())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut accepted = Vec::new();
    for _ in 0..100 {
        let response = client
            .post(format!("http://{}/v1/functions/slow/invoke-async", nodes[victim].addr))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await?;
        let body: Value = response.json().await?;
        accepted.push(body["id"].as_str().context("an accepted event has an id")?.to_owned());
    }
    let victim_id = node_ids[victim].clone();
    nodes[victim].process.kill();
    let killed = Instant::now();
    let survivor = &nodes[0];
    let deadline = Instant::now() + Duration::from_secs(120);
    let delivered_elsewhere = loop {
        let records = records(&client, survivor, &token, "slow").await?;
        let succeeded: Vec<&Value> = records
            .iter()
            .filter(|r| r["status"] == "success")
            .filter(|r| r["id"].as_str().is_some_and(|id| accepted.iter().any(|a| a == id)))
            .collect();
        let ids: HashSet<&str> = succeeded.iter().filter_map(|r| r["id"].as_str()).collect();
        if ids.len() == accepted.len() {
            break succeeded.iter().filter(|r| r["node"] != victim_id.as_str()).count();
        }
        if Instant::now() > deadline {
            bail!("{} of {} accepted events were never delivered", accepted.len() - ids.len(), accepted.len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "node killed right after accepting 100 events of a 0.5 s function (concurrency 10): all delivered {:.2} s \
         after the kill, {delivered_elsewhere} of them by the survivors (the dead-after time is {})",
        killed.elapsed().as_secs_f64(),
        args.dead_after
    );
    println!("(2 cores shared by 3 nodes, PostgreSQL and the client: no throughput figures)");
    Ok(())
}

fn deploy(binaries: &Binaries, node: &Node, app: &Path) -> anyhow::Result<()> {
    let output = Command::new(&binaries.updraft)
        .arg("deploy")
        .arg(app)
        .args(["--endpoint", &format!("http://{}", node.addr), "--data-dir"])
        .arg(node.data_dir.path())
        .env_remove("UPDRAFT_TOKEN")
        .output()?;
    if !output.status.success() {
        bail!("updraft deploy: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

async fn wait_until_up(node: &Node) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("http://{}/healthz", node.addr)).send().await.is_err() {
        if Instant::now() > deadline {
            bail!("a node did not start: {}", node.process.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Polls `check` until it says done, or fails after `within`.
async fn wait_for<F, Fut>(within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    while !check().await? {
        if Instant::now() > deadline {
            bail!("gave up waiting after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn wait_for_version(
    client: &reqwest::Client,
    node: &Node,
    path: &str,
    build: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let url = format!("http://{}{path}", node.addr);
    wait_for(within, || async {
        let response = client.get(&url).send().await?;
        let version = response.headers().get("x-updraft-version").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(response.status().is_success() && version.as_deref() == Some(build))
    })
    .await
    .with_context(|| format!("{path} on {} never served version {build}", node.addr))
}

async fn served_by(client: &reqwest::Client, node: &Node, path: &str) -> anyhow::Result<String> {
    let response = client.get(format!("http://{}{path}", node.addr)).send().await?;
    Ok(response.headers().get("x-updraft-node").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
}

async fn node_ids(client: &reqwest::Client, nodes: &[Node], token: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for node in nodes {
        let status: Value =
            client.get(format!("http://{}/v1/status", node.addr)).bearer_auth(token).send().await?.json().await?;
        ids.push(status["node_id"].as_str().unwrap_or_default().to_owned());
    }
    Ok(ids)
}

/// p50 and p99 in µs of `count` sequential `GET path` requests to `node`.
async fn latencies(client: &reqwest::Client, node: &Node, path: &str, count: usize) -> anyhow::Result<(f64, f64)> {
    let url = format!("http://{}{path}", node.addr);
    let mut micros = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        response.bytes().await?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    Ok((micros[count / 2], micros[count * 99 / 100]))
}

async fn records(client: &reqwest::Client, node: &Node, token: &str, function: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut before = String::new();
    loop {
        let page: Value = client
            .get(format!("http://{}/v1/invocations?function={function}&limit=1000{before}", node.addr))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        all.extend(page["invocations"].as_array().cloned().unwrap_or_default());
        match page["next_before"].as_i64() {
            Some(next) => before = format!("&before={next}"),
            None => return Ok(all),
        }
    }
}

/// Cold starts recorded for the functions named `prefix0`..`prefix19`.
async fn cold_starts(client: &reqwest::Client, node: &Node, token: &str, prefix: &str) -> anyhow::Result<usize> {
    // Records are written in batches: wait until all 1,000 of the set are there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (mut total, mut cold) = (0, 0);
        for i in 0..20 {
            let records = records(client, node, token, &format!("{prefix}{i}")).await?;
            total += records.len();
            cold += records.iter().filter(|r| r["cold"] == true).count();
        }
        if total >= 1000 {
            return Ok(cold);
        }
        if Instant::now() > deadline {
            bail!("only {total} of 1,000 records of the {prefix}* functions were stored");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
