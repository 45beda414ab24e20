//! `web-bench`: web apps as functions (`runtime = "http"`), each figure next to the same
//! app started bare on the host, outside any sandbox, in the same run.
//!
//! - cold start: from no instance to the first answer of `GET /hello` (sandbox, server
//!   start-up, readiness, the request), against starting the same command on the host
//!   and asking until it answers, at the same interval;
//! - warm request: `GET /hello` to a started instance, against the same request to the
//!   bare server over a kept-alive connection (a new one per request where the server
//!   closes them, as gunicorn's sync workers do, on both sides).
//!
//! The apps are Flask under gunicorn and Express, their packages installed from PyPI and
//! npm into a temporary folder first (untimed). Runs as root (the sandbox needs it, as
//! the server does). From the repository root:
//!
//!     cargo build --release -p updraft-bench && target/release/web-bench

// The benchmark installs packages and starts the bare servers as child processes.
#![allow(clippy::disallowed_methods)]
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use updraft_model::{ArtifactDigest, ByteSize, FunctionConfig, FunctionName, Limits, RuntimeKind, ServerSpec};
use updraft_runtime::{Body, Call, FunctionResponse, Input, InstanceConfig, Invoked, Prepared, Runtime, VersionSource};
use updraft_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};

/// The first argument that makes this binary the jailer, as `updraft __jail` is.
const JAIL_ARG: &str = "__jail";

/// How often a starting server is asked whether it answers: the sandbox's readiness
/// interval, so that both sides wait alike.
const POLL: Duration = Duration::from_millis(5);

/// Measures web apps' cold starts and warm requests, sandboxed and bare.
#[derive(Debug, Parser)]
#[command(name = "web-bench", verbatim_doc_comment)]
struct Cli {
    /// Cold starts measured per app, each way.
    #[arg(long, default_value_t = 20)]
    cold: usize,
    /// Warm requests measured per app, each way.
    #[arg(long, default_value_t = 2000)]
    warm: usize,
}

const FLASK_APP: &str =
    "from flask import Flask\napp = Flask(__name__)\n\n@app.get(\"/hello\")\ndef hello():\n    return {\"ok\": True}\n";
const EXPRESS_APP: &str = "const express = require(\"express\");\nconst app = express();\napp.get(\"/hello\", (req, res) => res.json({ ok: true }));\napp.listen(Number(process.env.PORT), \"127.0.0.1\");\n";

struct App {
    name: &'static str,
    command: &'static str,
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|arg| arg == JAIL_ARG) {
        updraft_runtime_process::jail::main();
    }
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("updraft-web-bench-").tempdir()?;
    let apps = install(dir.path())?;
    let runtime = ProcessRuntime::start(ProcessRuntimeConfig::new(
        vec![std::env::current_exe()?.into(), JAIL_ARG.into()],
        dir.path().join("work"),
        0,
    ))
    .await?;
    let config = Arc::new(InstanceConfig {
        memory_limit: 256 << 20,
        env: Vec::new().into(),
        allowed_outbound_hosts: Vec::new().into(),
        max_response_bytes: 6 << 20,
        reuse_state: true,
    });
    println!("web-bench: {} cold starts and {} warm requests per app, sandboxed and bare", cli.cold, cli.warm);
    for app in &apps {
        let zip = zip_dir(&app.dir, &dir.path().join(format!("{}.zip", app.name)))?;
        let prepared = prepare(&runtime, app, &zip).await?;

        let (mut bare_cold, mut cold) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
        // Alternating, so that drift in the machine's load falls on both.
        for i in 0..cli.cold {
            bare_cold.record(bare_cold_start(app).await?)?;
            let started = Instant::now();
            let mut instance = prepared.create(&config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let invoked = instance.invoke(hello(), call(i)).await;
            anyhow::ensure!(finish(invoked).await? == 200, "not a 200");
            cold.record(started.elapsed().as_micros() as u64)?;
            instance.dispose();
        }

        let (bare_warm, warm) = {
            let mut bare = BareServer::start(app).await?;
            let mut bare_warm = Histogram::<u64>::new(3)?;
            for i in 0..cli.warm + cli.warm / 10 {
                let started = Instant::now();
                bare.get_hello().await?;
                if i >= cli.warm / 10 {
                    bare_warm.record(started.elapsed().as_nanos() as u64)?;
                }
            }
            let mut instance = prepared.create(&config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut warm = Histogram::<u64>::new(3)?;
            for i in 0..cli.warm + cli.warm / 10 {
                let started = Instant::now();
                let invoked = instance.invoke(hello(), call(i)).await;
                anyhow::ensure!(finish(invoked).await? == 200, "not a 200");
                if i >= cli.warm / 10 {
                    warm.record(started.elapsed().as_nanos() as u64)?;
                }
            }
            instance.dispose();
            (bare_warm, warm)
        };

        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!();
        println!("{} ({})", app.name, app.command);
        println!(
            "  cold start, from nothing  p50 {:>8.1} ms  p99 {:>8.1} ms   ({:.2}x bare)",
            ms(&cold, 0.5),
            ms(&cold, 0.99),
            ms(&cold, 0.5) / ms(&bare_cold, 0.5)
        );
        println!(
            "  cold start, bare          p50 {:>8.1} ms  p99 {:>8.1} ms   (baseline)",
            ms(&bare_cold, 0.5),
            ms(&bare_cold, 0.99)
        );
        println!("  cold start, pre-started   n/a: servers are not pre-started (docs/lambda.md, \"Web apps\")");
        println!(
            "  warm request              p50 {:>8.1} µs  p99 {:>8.1} µs   ({:.2}x bare)",
            us(&warm, 0.5),
            us(&warm, 0.99),
            us(&warm, 0.5) / us(&bare_warm, 0.5)
        );
        println!(
            "  warm request, bare        p50 {:>8.1} µs  p99 {:>8.1} µs   (baseline)",
            us(&bare_warm, 0.5),
            us(&bare_warm, 0.99)
        );
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// Installs Flask and gunicorn, and Express, each into a folder with its app.
fn install(dir: &Path) -> anyhow::Result<Vec<App>> {
    let flask = dir.join("flask");
    std::fs::create_dir_all(&flask)?;
    std::fs::write(flask.join("app.py"), FLASK_APP)?;
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", "--target", "."])
        .args(["flask==3.1.3", "gunicorn==23.0.0"])
        .current_dir(&flask)
        .status()?;
    anyhow::ensure!(status.success(), "pip install failed");
    let express = dir.join("express");
    std::fs::create_dir_all(&express)?;
    std::fs::write(express.join("server.js"), EXPRESS_APP)?;
    std::fs::write(
        express.join("package.json"),
        r#"{"name":"bench","private":true,"dependencies":{"express":"5.1.0"}}"#,
    )?;
    let status = std::process::Command::new("npm")
        .args(["install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&express)
        .status()?;
    anyhow::ensure!(status.success(), "npm install failed");
    Ok(vec![
        App { name: "flask", command: "python3 -m gunicorn --bind 127.0.0.1:$PORT --workers 1 app:app", dir: flask },
        App { name: "express", command: "node server.js", dir: express },
    ])
}

/// The same app started on the host, outside any sandbox, on a port of its own.
struct BareServer {
    child: std::process::Child,
    port: u16,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl BareServer {
    async fn start(app: &App) -> anyhow::Result<BareServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", app.command])
            .current_dir(&app.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("PYTHONPATH", &app.dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut server = BareServer { child, port, sender: None };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.get_hello().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the bare {} never answered", app.name);
            tokio::time::sleep(POLL).await;
        }
        Ok(server)
    }

    async fn get_hello(&mut self) -> anyhow::Result<()> {
        let kept = match self.sender.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match kept {
            Some(sender) => sender,
            None => {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                sender
            }
        };
        let request = http::Request::get("/hello").header("host", "localhost").body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        anyhow::ensure!(response.status() == 200, "{}", response.status());
        response.into_body().collect().await?;
        if !sender.is_closed() {
            self.sender = Some(sender);
        }
        Ok(())
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One bare cold start: the command started, asked until it answers, in microseconds.
async fn bare_cold_start(app: &App) -> anyhow::Result<u64> {
    let started = Instant::now();
    let server = BareServer::start(app).await?;
    let elapsed = started.elapsed().as_micros() as u64;
    drop(server);
    Ok(elapsed)
}

fn zip_dir(src: &Path, path: &Path) -> anyhow::Result<PathBuf> {
    fn add(zip: &mut zip::ZipWriter<std::fs::File>, root: &Path, dir: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                add(zip, root, &path)?;
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                let name = path.strip_prefix(root)?.to_string_lossy().into_owned();
                zip.start_file(name, zip::write::SimpleFileOptions::default().unix_permissions(mode))?;
                zip.write_all(&std::fs::read(&path)?)?;
            }
        }
        Ok(())
    }
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    add(&mut zip, src, src)?;
    zip.finish()?;
    Ok(path.to_owned())
}

/// Runs an invocation to its end, as the scheduler does: its body, which streams, is
/// read whole while the rest of the invocation runs. Returns the status.
async fn finish(invoked: Invoked<FunctionResponse>) -> anyhow::Result<u16> {
    let Invoked { result, rest, .. } = invoked;
    let response = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let status = response.status().as_u16();
    let ended = async {
        let Some(rest) = rest else { return Ok(()) };
        let mut ended = rest.await;
        if let Some(settled) = ended.settled.take() {
            settled();
        }
        ended.result
    };
    let (body, ended) = tokio::join!(response.into_body().read_whole(), ended);
    body?;
    ended.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(status)
}

async fn prepare(
    runtime: &ProcessRuntime,
    app: &App,
    zip: &Path,
) -> anyhow::Result<Arc<dyn Prepared<Input, FunctionResponse>>> {
    let server = ServerSpec {
        command: app.command.to_owned(),
        readiness_path: "/hello".to_owned(),
        concurrency_per_instance: 1,
    };
    let config = FunctionConfig {
        server: Some(server),
        memory: ByteSize::mib(256),
        timeout: Duration::from_secs(10),
        ..FunctionConfig::with_defaults(RuntimeKind::Http, &Limits::default())
    };
    let source = VersionSource {
        function: FunctionName::new(format!("bench-{}", app.name))?,
        artifact: ArtifactDigest::of(&std::fs::read(zip)?),
        artifact_path: zip.to_owned(),
        config,
    };
    Runtime::<Input, FunctionResponse>::prepare(runtime, source).await.map_err(|e| anyhow::anyhow!("{e}"))
}

fn hello() -> Input {
    let request =
        http::Request::get("/hello").header("host", "localhost").body(Body::default()).expect("a valid request");
    Input::Http(request)
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
