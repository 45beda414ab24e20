//! `updraft server`: the platform behind one HTTP listener, with graceful shutdown.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use updraft_platform::{EventQueueConfig, Platform, PlatformConfig};
use updraft_runtime_wasm::Pooling;

use crate::cli::{Global, PoolingArg, ServerArgs};

pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("UPDRAFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub platform: Arc<Platform>,
    shutdown: watch::Sender<bool>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start(global: &Global, args: &ServerArgs) -> anyhow::Result<Running> {
    let data_dir = global.data_dir();
    let mut config = PlatformConfig::new(&data_dir);
    config.database_url = args.database_url.clone();
    config.pooling = match args.pooling {
        PoolingArg::Auto => Pooling::Auto,
        PoolingArg::On => Pooling::Enabled,
        PoolingArg::Off => Pooling::Disabled,
    };
    if args.default_timeout > args.max_timeout {
        anyhow::bail!(
            "--default-timeout {:?} is above --max-timeout {:?}; lower one or raise the other",
            args.default_timeout,
            args.max_timeout
        );
    }
    config.limits.default_timeout = args.default_timeout;
    config.limits.max_timeout = args.max_timeout;
    config.limits.max_concurrency = args.account_concurrency;
    config.account_concurrency = args.account_concurrency;
    config.max_instances = args.max_instances;
    config.async_invocations.retry_delay = args.async_retry_delay;
    config.async_invocations.durable_records = !args.no_durable_async_records;
    if let Some(url) = &args.nats_url {
        config.event_queue = EventQueueConfig::JetStream {
            url: url.clone(),
            stream: args.nats_stream.clone(),
            ack_wait: args.nats_ack_wait,
        };
    }
    if args.janitor_interval.is_zero() {
        anyhow::bail!("--janitor-interval must be above zero (e.g. 1m)");
    }
    config.retention = updraft_platform::RetentionConfig {
        records: args.retain_records,
        max_records: args.max_records,
        logs: args.retain_logs,
        max_log_lines: args.max_log_lines,
        executions: args.retain_executions,
        failed_events: args.retain_failed_events,
        interval: args.janitor_interval,
    };
    config.otlp = otlp_config(args)?;
    config.prices = updraft_platform::PriceTable {
        per_million_requests: args.price_per_million_requests,
        per_gb_second: args.price_per_gb_second,
    };
    // Lambda functions run in sandboxes built by this same binary, re-executed as the
    // jailer (see `JAIL_ARG`).
    let program = std::env::current_exe().context("cannot find this program's own path to start sandboxes")?;
    config.lambda = Some(updraft_platform::LambdaConfig {
        jailer: vec![program.into(), crate::JAIL_ARG.into()],
        python: args.python.clone(),
        node: args.node.clone(),
        warm_sandboxes: args.warm_sandboxes,
        warm_sandboxes_max: args.warm_sandboxes_max,
        cgroup_root: args.cgroup_root.clone(),
        allow_missing: args.sandbox_allow_missing.clone(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("cannot listen on {}; is another server running there? pick another with --listen", args.listen)
    })?;
    let addr = listener.local_addr()?;
    // Functions with grants call back here; a wildcard address is reached on loopback.
    let callback =
        if addr.ip().is_unspecified() { SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()) } else { addr };
    config.api_url = Some(format!("http://{callback}"));
    if args.heartbeat >= args.node_dead_after {
        anyhow::bail!(
            "--heartbeat {:?} is not shorter than --node-dead-after {:?}; a node would be declared dead between \
             its heartbeats",
            args.heartbeat,
            args.node_dead_after
        );
    }
    config.cluster = updraft_platform::ClusterConfig {
        advertise_url: args.advertise_url.clone(),
        heartbeat: args.heartbeat,
        dead_after: args.node_dead_after,
        key: cluster_key(args)?,
    };
    let platform = Platform::start(config)
        .await
        .with_context(|| format!("starting the platform with data dir {}", data_dir.display()))?;
    let api_config = updraft_api::ApiConfig { max_artifact_bytes: args.max_artifact_size.bytes() as usize };
    let router = updraft_api::router(platform.clone(), api_config);
    let (shutdown, stop) = watch::channel(false);
    if let Some(smtp_addr) = args.smtp_listen {
        let smtp = tokio::net::TcpListener::bind(smtp_addr).await.with_context(|| {
            format!("cannot listen for SMTP on {smtp_addr}; is something else there? pick another with --smtp-listen")
        })?;
        let smtp_config = updraft_smtp::SmtpConfig {
            hostname: args.smtp_hostname.clone(),
            max_message_bytes: args.smtp_max_message_size.bytes() as usize,
            idle_timeout: args.smtp_idle_timeout,
            session_timeout: args.smtp_session_timeout,
            max_sessions_per_client: args.smtp_sessions_per_client as usize,
            ..updraft_smtp::SmtpConfig::default()
        };
        tracing::info!(addr = %smtp.local_addr()?, "accepting mail over SMTP");
        let mailbox = Arc::new(PlatformMailbox(platform.clone()));
        tokio::spawn(updraft_smtp::serve(smtp, mailbox, smtp_config, shutdown.subscribe()));
    }
    let limits = http_limits(args);
    let serve = tokio::spawn(updraft_api::serve(listener, router, limits, stop));
    tracing::info!(
        %addr,
        data_dir = %data_dir.display(),
        pooling = platform.pooling(),
        "updraft listening on http://{addr}"
    );
    Ok(Running { addr, platform, shutdown, serve })
}

/// The cluster key from `--cluster-key-file` or `UPDRAFT_CLUSTER_KEY` (not a flag, so
/// that it never shows in a process list).
/// What goes over OTLP, and where: both spans and metrics to `--otlp-endpoint`;
/// otherwise each signal whose own endpoint variable is set (the exporter reads it).
fn otlp_config(args: &ServerArgs) -> anyhow::Result<Option<updraft_platform::OtlpConfig>> {
    let signal = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    let (traces, metrics) = match &args.otlp_endpoint {
        Some(_) => (true, true),
        None => (signal("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), signal("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")),
    };
    if !traces && !metrics {
        return Ok(None);
    }
    if args.otlp_metric_interval.is_some_and(|interval| interval.is_zero()) {
        anyhow::bail!("--otlp-metric-interval must be above zero (e.g. 10s)");
    }
    Ok(Some(updraft_platform::OtlpConfig {
        endpoint: args.otlp_endpoint.clone(),
        traces,
        metrics,
        metric_interval: args.otlp_metric_interval,
        ..Default::default()
    }))
}

fn cluster_key(args: &ServerArgs) -> anyhow::Result<Option<updraft_platform::ClusterKey>> {
    let from_env = std::env::var("UPDRAFT_CLUSTER_KEY").ok().filter(|key| !key.trim().is_empty());
    let (text, source) = match (&args.cluster_key_file, from_env) {
        (Some(_), Some(_)) => {
            anyhow::bail!("both --cluster-key-file and UPDRAFT_CLUSTER_KEY are set; give the cluster key once")
        }
        (Some(path), None) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the cluster key from {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(key)) => (key, "UPDRAFT_CLUSTER_KEY".to_owned()),
        (None, None) => return Ok(None),
    };
    let key = updraft_platform::ClusterKey::parse(&text).map_err(|error| anyhow::anyhow!("{source}: {error}"))?;
    Ok(Some(key))
}

impl Running {
    /// Stops accepting, lets in-flight requests finish for up to `grace`, then flushes
    /// records and logs and closes the database.
    pub async fn stop(self, grace: Duration) -> anyhow::Result<()> {
        tracing::info!(grace = ?grace, "shutting down: draining in-flight requests");
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(grace, self.serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(error = %error, "listener failed while draining"),
            Ok(Err(join)) => tracing::warn!(error = %join, "listener task failed"),
            Err(_) => tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway"),
        }
        // Invocations whose callers left still finish and are recorded.
        self.platform.shutdown(grace).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The platform as the SMTP listener's mailbox: recipients are the addresses `email`
/// triggers claim, and delivering stores an event per claiming function.
struct PlatformMailbox(Arc<Platform>);

impl updraft_smtp::Mailbox for PlatformMailbox {
    fn accepts(&self, address: &str) -> bool {
        !self.0.events().email_recipients(address).is_empty()
    }

    fn deliver<'a>(
        &'a self,
        from: &'a str,
        recipients: &'a [String],
        payload: &'a (dyn Fn(&[String]) -> Vec<u8> + Sync),
    ) -> updraft_smtp::BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            self.0.events().accept_email(from, recipients, payload).await.map_err(|error| error.to_string())
        })
    }
}

/// The listener's limits: the flags', with connections capped at half of what this
/// process may hold open (raised to its hard limit first), so that descriptors remain
/// for the database, sandboxes and logs.
fn http_limits(args: &ServerArgs) -> updraft_api::HttpLimits {
    let open_files = updraft_runtime_process::raise_open_files_limit()
        .inspect_err(|error| tracing::warn!(%error, "cannot read or raise the open-files limit"))
        .unwrap_or(1024);
    let ceiling = usize::try_from(open_files / 2).unwrap_or(usize::MAX).max(1);
    let wanted = args.max_connections as usize;
    if wanted > ceiling {
        tracing::warn!(
            wanted,
            ceiling,
            open_files,
            "--max-connections is over half the open-files limit; using the ceiling"
        );
    }
    updraft_api::HttpLimits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_connections: wanted.min(ceiling),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

pub async fn run(global: &Global, args: &ServerArgs) -> anyhow::Result<()> {
    let running = start(global, args).await?;
    shutdown_signal().await;
    running.stop(args.shutdown_timeout).await
}
