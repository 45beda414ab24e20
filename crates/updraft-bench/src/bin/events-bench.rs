//! The events benchmark: how fast the durable queue accepts events, how long an
//! accepted event takes to start its function, and how long one message takes to
//! reach 100 subscribers. Each figure is printed next to a baseline measured in the
//! same run, as a ratio.
//!
//! - **Durable enqueue rate** (store level, SQLite with `synchronous = FULL`): events
//!   from 256 concurrent producers through the group-commit writer, against the same
//!   producers committing one event each.
//! - **Over HTTP** against a real `updraft server` (embedded SQLite, and PostgreSQL
//!   when `--postgres-url` is given): `invoke-async` requests per second from 64
//!   connections against sync `invoke` of the same function; accept → function start
//!   latency (p50/p99, one event at a time, to the invocation record's start time,
//!   which has whole-millisecond resolution)
//!   against the sync path's request → start; publish → start of all 100 subscribers
//!   against publish → start of one.
//! - With `--nats-url`: JetStream's own publish-and-acknowledge rate from 256 producers
//!   (what the NATS backend's enqueue waits for) against the embedded group commit, and
//!   the HTTP figures again with the server keeping its events in JetStream.
//!
//! Build with `cargo build --release -p updraft -p updraft-bench`, then run
//! `target/release/events-bench`.

// The benchmark starts the server and the CLI as child processes: that is what it measures.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use processes::{Binaries, ServerProcess, free_loopback_port, psql};
use serde_json::Value;
use updraft_model::{EventSource, FunctionName};
use updraft_store::{AsyncEvent, EventState, EventWriter, Store};

#[path = "../processes.rs"]
#[allow(dead_code)]
mod processes;

#[derive(Debug, Parser)]
#[command(about = "Measure the durable event queue: enqueue rate, event → start latency, fan-out")]
struct Args {
    /// How long each rate is measured.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Events (one at a time) for the latency figures.
    #[arg(long, default_value_t = 200)]
    latency_events: usize,
    /// Events queued at once for the delivery rate with and without durable records.
    #[arg(long, default_value_t = 5000)]
    backlog: usize,
    /// Also measure a server on this PostgreSQL database (it is wiped first).
    #[arg(long)]
    postgres_url: Option<String>,
    /// Also measure a server keeping its events in NATS JetStream here (in a stream of
    /// its own, deleted afterwards), e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    nats_url: Option<String>,
}

/// Where the measured server keeps its state and events.
enum Backend {
    Embedded,
    Postgres(String),
    /// The NATS URL and the stream's name.
    Nats(String, String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("events-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir().context("creating a scratch folder")?;

    println!("durable enqueue rate, store level (SQLite, synchronous = FULL, 256 producers, {}s each)", args.seconds);
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("queue.db"))).await?;
    let single_store = store.clone();
    let single = enqueue_rate(duration, move |event| {
        let store = single_store.clone();
        async move { store.event_enqueue(&event).await }
    })
    .await?;
    let writer = EventWriter::start(store.clone());
    let grouped = enqueue_rate(duration, move |event| {
        let writer = writer.clone();
        async move { writer.enqueue(vec![event]).await }
    })
    .await?;
    println!("  one commit per event (baseline) {single:>10.0} events/s");
    println!("  group commit                    {grouped:>10.0} events/s   ({:.1}× the baseline)", grouped / single);
    store.close().await;

    let stream = format!("EVENTS_BENCH_{}", std::process::id());
    if let Some(url) = &args.nats_url {
        println!("\ndurable enqueue rate, NATS JetStream (file storage, 256 producers, {}s)", args.seconds);
        let published = jetstream_rate(url, &format!("{stream}_RAW"), duration).await?;
        println!(
            "  publish, acknowledged by JetStream {published:>8.0} events/s   ({:.2}× the embedded group commit)",
            published / grouped
        );
    }

    let mut backends = vec![("embedded SQLite", Backend::Embedded)];
    if let Some(url) = &args.postgres_url {
        backends.push(("PostgreSQL", Backend::Postgres(url.clone())));
    }
    if let Some(url) = &args.nats_url {
        backends.push(("embedded SQLite, events in NATS JetStream", Backend::Nats(url.clone(), stream)));
    }
    for (label, backend) in backends {
        println!("\nover HTTP, `updraft server` on {label}");
        server_figures(args, duration, dir.path(), &backend).await?;
        if let Backend::Nats(url, stream) = &backend {
            let jetstream = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
            jetstream.delete_stream(stream).await.context("deleting the bench's stream")?;
        }
    }
    durable_records_cost(dir.path(), args.backlog).await?;
    Ok(())
}

/// Messages the size of a stored event per second, each published to a work-queue
/// stream on file storage and awaited until JetStream acknowledged it, from 256
/// concurrent producers.
async fn jetstream_rate(url: &str, stream: &str, duration: Duration) -> anyhow::Result<f64> {
    use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
    let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.context("connecting to NATS")?);
    jetstream
        .get_or_create_stream(Config {
            name: stream.to_owned(),
            subjects: vec![format!("{stream}.>")],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            ..Default::default()
        })
        .await
        .context("creating the bench stream")?;
    let body = bytes::Bytes::from(serde_json::to_vec(&serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(), "function": "sink", "trace_id": uuid::Uuid::new_v4().simple().to_string(),
        "enqueued_at": 0, "attempts": 0, "next_attempt_at": 0, "last_error": null, "source": "Invoke",
        "payload": r#"{"order":42,"items":["a","b"]}"#,
    }))?);
    let stored = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut producers = Vec::new();
    for producer in 0..256 {
        let (jetstream, stored, body) = (jetstream.clone(), stored.clone(), body.clone());
        let subject = format!("{stream}.q.{producer}");
        producers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                jetstream.publish(subject.clone(), body.clone()).await?.await?;
                stored.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for producer in producers {
        producer.await??;
    }
    let rate = stored.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    jetstream.delete_stream(stream).await.context("deleting the bench stream")?;
    Ok(rate)
}

/// Events per second stored by 256 concurrent producers calling `enqueue`.
async fn enqueue_rate<F, Fut>(duration: Duration, enqueue: F) -> anyhow::Result<f64>
where
    F: Fn(AsyncEvent) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), updraft_store::StoreError>> + Send,
{
    let stored = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut producers = Vec::new();
    for _ in 0..256 {
        let (enqueue, stored) = (enqueue.clone(), stored.clone());
        producers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                enqueue(event()).await?;
                stored.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for producer in producers {
        producer.await??;
    }
    Ok(stored.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn event() -> AsyncEvent {
    let now = updraft_model::now_millis();
    AsyncEvent {
        id: uuid::Uuid::now_v7().to_string(),
        function: FunctionName::new("sink").expect("a valid name"),
        payload: br#"{"order":42,"items":["a","b"]}"#.to_vec(),
        trace_id: uuid::Uuid::new_v4().simple().to_string(),
        parent_span_id: None,
        lineage: Default::default(),
        qualifier: None,
        enqueued_at: now,
        attempts: 0,
        // Far in the future: nothing claims them while the rate is measured.
        next_attempt_at: now + 86_400_000,
        state: EventState::Queued,
        last_error: None,
        source: EventSource::Invoke,
    }
}

/// Starts a server, deploys the bench app and measures it over HTTP.
async fn server_figures(args: &Args, duration: Duration, scratch: &Path, backend: &Backend) -> anyhow::Result<()> {
    let (mut server, api, _data_dir, _app) = start_server(scratch, backend, &[]).await?;
    let sync_rate = api.rate(duration, 64, "/v1/functions/sink/invoke").await?;
    let async_rate = api.rate(duration, 64, "/v1/functions/sink/invoke-async").await?;
    println!("  sync invoke (baseline)    {sync_rate:>8.0} requests/s (64 connections)");
    println!("  invoke-async, durable     {async_rate:>8.0} events/s   ({:.2}× the baseline)", async_rate / sync_rate);
    // Let the queue drain before timing single events.
    api.wait_for_drain("sink").await?;

    let sync_start = api.start_latency("/v1/functions/sink/invoke", "direct", args.latency_events).await?;
    let async_start = api.start_latency("/v1/functions/sink/invoke-async", "async", args.latency_events).await?;
    println!("  (start times are whole milliseconds: each latency is an upper bound, at most 1 ms over)");
    println!(
        "  request → start, sync (baseline)  p50 {:>6.1} ms  p99 {:>6.1} ms",
        percentile(&sync_start, 50.0),
        percentile(&sync_start, 99.0)
    );
    println!(
        "  202 → start, async               p50 {:>6.1} ms  p99 {:>6.1} ms   (p50 {:+.1} ms over the baseline)",
        percentile(&async_start, 50.0),
        percentile(&async_start, 99.0),
        percentile(&async_start, 50.0) - percentile(&sync_start, 50.0)
    );

    let one = api.fan_out("bench.one", "sink", 1, 5).await?;
    let hundred = api.fan_out("bench.fanout", "sub", 100, 5).await?;
    println!("  publish → start of 1 subscriber (baseline)  p50 {:>7.1} ms", percentile(&one, 50.0));
    println!(
        "  publish → start of all 100 subscribers      p50 {:>7.1} ms   ({:.1}× the baseline)",
        percentile(&hundred, 50.0),
        percentile(&hundred, 50.0) / percentile(&one, 50.0).max(0.001)
    );
    server.terminate(Duration::from_secs(10))?;
    Ok(())
}

/// Starts `updraft server` on `backend` with `extra` flags and the bench app deployed.
async fn start_server(
    scratch: &Path,
    backend: &Backend,
    extra: &[&str],
) -> anyhow::Result<(ServerProcess, Api, tempfile::TempDir, tempfile::TempDir)> {
    let binaries = Binaries::next_to_current_exe()?;
    let addr = free_loopback_port()?;
    let data_dir = tempfile::tempdir_in(scratch).context("creating a data folder")?;
    if let Backend::Postgres(url) = backend {
        wipe_postgres(url)?;
    }
    let mut command = Command::new(&binaries.updraft);
    command
        .args(["server", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir.path())
        .args(extra)
        .env("UPDRAFT_LOG", "warn")
        .env("NO_COLOR", "1");
    command.env_remove("UPDRAFT_DATABASE_URL").env_remove("UPDRAFT_NATS_URL");
    match backend {
        Backend::Embedded => &mut command,
        Backend::Postgres(url) => command.args(["--database-url", url]),
        Backend::Nats(url, stream) => command.args(["--nats-url", url, "--nats-stream", stream]),
    };
    let mut server = ServerProcess::spawn("updraft server", command, &scratch.join("events-bench-server.log"))?;
    let endpoint = format!("http://{addr}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build()?;
    wait_until_up(&client, &endpoint, &mut server).await?;
    let app = bench_app(scratch)?;
    let deployed = Command::new(&binaries.updraft)
        .arg("deploy")
        .arg(app.path())
        .args(["--endpoint", &endpoint, "--data-dir"])
        .arg(data_dir.path())
        .env_remove("UPDRAFT_TOKEN")
        .output()
        .context("running `updraft deploy`")?;
    if !deployed.status.success() {
        bail!("`updraft deploy` failed: {}", String::from_utf8_lossy(&deployed.stderr));
    }
    let token = std::fs::read_to_string(data_dir.path().join("admin-token")).context("reading the admin token")?;
    let api = Api { client, endpoint, token: token.trim().to_owned() };

    Ok((server, api, data_dir, app))
}

/// What durable records cost: events delivered per second from a backlog, on a server
/// that settles each outcome only once its record is stored (the default) against one
/// that does not wait (`--no-durable-async-records`).
async fn durable_records_cost(scratch: &Path, events: usize) -> anyhow::Result<()> {
    let mut rates = Vec::new();
    for extra in [&["--no-durable-async-records"][..], &[][..]] {
        let (mut server, api, _data_dir, _app) = start_server(scratch, &Backend::Embedded, extra).await?;
        rates.push(api.delivery_rate("sink", events).await?);
        server.terminate(Duration::from_secs(10))?;
    }
    println!(
        "
async delivery of a backlog of {events} events (embedded SQLite): the cost of durable records"
    );
    println!("  outcome settled without waiting for its record (baseline) {:>8.0} events/s", rates[0]);
    println!(
        "  outcome settled once its record is stored (the default)   {:>8.0} events/s   ({:.2}x the baseline)",
        rates[1],
        rates[1] / rates[0]
    );
    Ok(())
}

/// The bench app: `sink` (subscribed to `bench.one`) and 100 subscribers of
/// `bench.fanout`, all the echo test component.
fn bench_app(scratch: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir_in(scratch)?;
    std::fs::copy(updraft_test_programs::ECHO, dir.path().join("echo.wasm"))
        .with_context(|| format!("copying {}", updraft_test_programs::ECHO))?;
    let mut manifest = String::from(
        "[app]\nname = \"bench\"\n\n[functions.sink]\nruntime = \"wasm\"\nsource = \"echo.wasm\"\n\
         instance_reuse = true\ntriggers = [{ topic = \"bench.one\" }]\n",
    );
    for index in 0..100 {
        manifest.push_str(&format!(
            "\n[functions.sub{index:03}]\nruntime = \"wasm\"\nsource = \"echo.wasm\"\ntriggers = [{{ topic = \"bench.fanout\" }}]\n"
        ));
    }
    std::fs::write(dir.path().join("updraft.toml"), manifest)?;
    Ok(dir)
}

/// Empties the benchmark's database, creating it first (through the server's
/// `postgres` database) if it does not exist yet.
fn wipe_postgres(url: &str) -> anyhow::Result<()> {
    if psql(url, "SELECT 1").is_err() {
        let mut admin = reqwest::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        let name = admin.path().trim_start_matches('/').to_owned();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "--postgres-url must name its database (letters, digits and _), like postgres://postgres@127.0.0.1/updraft_bench"
            );
        }
        admin.set_path("/postgres");
        psql(admin.as_str(), &format!("CREATE DATABASE {name}"))
            .with_context(|| format!("creating the benchmark's database {name}"))?;
    }
    psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;").with_context(|| format!("wiping {url}"))
}

async fn wait_until_up(client: &reqwest::Client, endpoint: &str, server: &mut ServerProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{endpoint}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        server.check_alive()?;
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within a minute:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Api {
    client: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: &'static str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .client
            .post(format!("{}{path}", self.endpoint))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("POST {path} answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(response)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.client.get(format!("{}{path}", self.endpoint)).bearer_auth(&self.token).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Successful POSTs to `path` per second from `connections` loops.
    async fn rate(self: &Api, duration: Duration, connections: usize, path: &str) -> anyhow::Result<f64> {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + duration;
        let started = Instant::now();
        let mut loops = Vec::new();
        for _ in 0..connections {
            let (client, url, token, done) =
                (self.client.clone(), format!("{}{path}", self.endpoint), self.token.clone(), done.clone());
            loops.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(r#"{"order":42}"#)
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("{url} answered {}", response.status());
                    }
                    response.bytes().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        for handle in loops {
            handle.await??;
        }
        Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
    }

    /// Invocations of `function` that ran, from its usage.
    async fn requests(&self, function: &str) -> anyhow::Result<u64> {
        let usage = self.get(&format!("/v1/usage?function={function}")).await?;
        Ok(usage["total"]["requests"].as_u64().unwrap_or(0))
    }

    /// Queues `events` events for `function` at once (from 64 loops) and returns how
    /// many ran per second, from the first request to the last one's record.
    async fn delivery_rate(&self, function: &str, events: usize) -> anyhow::Result<f64> {
        let before = self.requests(function).await?;
        let started = Instant::now();
        let path = format!("/v1/functions/{function}/invoke-async");
        let per_loop = events.div_ceil(64);
        let mut loops = Vec::new();
        for index in 0..64 {
            let count = per_loop.min(events.saturating_sub(index * per_loop));
            let (client, url, token) = (self.client.clone(), format!("{}{path}", self.endpoint), self.token.clone());
            loops.push(tokio::spawn(async move {
                for _ in 0..count {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("{url} answered {}", response.status());
                    }
                }
                Ok(())
            }));
        }
        for handle in loops {
            handle.await??;
        }
        while self.requests(function).await? < before + events as u64 {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the backlog did not drain in 10 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(events as f64 / started.elapsed().as_secs_f64())
    }

    /// Waits until `function` has had no new invocation for a second: the queue is empty.
    async fn wait_for_drain(&self, function: &str) -> anyhow::Result<()> {
        let mut last = None;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let page = self.get(&format!("/v1/invocations?function={function}&limit=1")).await?;
            let newest = page["invocations"][0]["id"].as_str().map(str::to_owned);
            if newest == last {
                return Ok(());
            }
            last = newest;
        }
    }

    /// Milliseconds from sending each request to its invocation's start, one at a time.
    async fn start_latency(&self, path: &str, trigger: &str, count: usize) -> anyhow::Result<Vec<f64>> {
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let sent = now_ms();
            let response = self.post(path, r#"{"order":42}"#).await?;
            let id = match response.headers().get("x-updraft-request-id") {
                Some(id) if trigger == "direct" => id.to_str()?.to_owned(),
                _ => response.json::<Value>().await?["id"].as_str().context("an id")?.to_owned(),
            };
            let started = self.record_start(&id, trigger).await?;
            // Records keep whole milliseconds: against the send time rounded down, the
            // figure is an upper bound, at most 1 ms over.
            latencies.push(started - sent.floor());
        }
        Ok(latencies)
    }

    /// The start time (ms since the epoch) of invocation `id`, once recorded.
    async fn record_start(&self, id: &str, trigger: &str) -> anyhow::Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = self.get("/v1/invocations?function=sink&limit=50").await?;
            let found = page["invocations"].as_array().and_then(|records| {
                records.iter().find(|record| record["id"] == id && record["trigger"] == trigger).cloned()
            });
            if let Some(record) = found {
                return record["started_at_ms"].as_f64().context("a record without a start time");
            }
            if Instant::now() > deadline {
                bail!("invocation {id} was never recorded");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Milliseconds from publishing to `topic` until all `subscribers` (functions
    /// whose names start with `prefix`) started, `runs` times.
    async fn fan_out(&self, topic: &str, prefix: &str, subscribers: usize, runs: usize) -> anyhow::Result<Vec<f64>> {
        let mut latencies = Vec::new();
        for _ in 0..runs {
            let sent = now_ms();
            let published: Value = self.post(&format!("/v1/topics/{topic}"), r#"{"user":"ada"}"#).await?.json().await?;
            let message = published["message_id"].as_str().context("a message id")?.to_owned();
            let deadline = Instant::now() + Duration::from_secs(60);
            let last_start = loop {
                let page = self.get("/v1/invocations?limit=1000").await?;
                let starts: Vec<f64> = page["invocations"]
                    .as_array()
                    .map(|records| {
                        records
                            .iter()
                            .filter(|record| {
                                record["trigger"] == "topic"
                                    && record["function"].as_str().is_some_and(|name| name.starts_with(prefix))
                            })
                            .filter_map(|record| record["started_at_ms"].as_f64())
                            .filter(|start| *start >= sent.floor())
                            .collect()
                    })
                    .unwrap_or_default();
                if starts.len() >= subscribers {
                    break starts.into_iter().fold(sent, f64::max);
                }
                if Instant::now() > deadline {
                    bail!("message {message} reached {} of {subscribers} subscribers", starts.len());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            latencies.push(last_start - sent.floor());
            // The next run starts on a quiet queue.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(latencies)
    }
}

/// Now, in fractional ms since the epoch (records keep whole ms).
fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
