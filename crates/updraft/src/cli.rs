//! Command-line parsing and dispatch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use updraft_model::parse_duration;

use crate::client::Client;
use crate::output::Output;

/// Updraft: run functions on your own machines.
///
/// Functions are WebAssembly components (wasi:http) or AWS Lambda handlers (Python,
/// Node.js, or a `provided` bootstrap) run in sandboxes; `updraft.toml` declares them
/// and what sets them off: HTTP routes, webhooks, topics, queues, schedules, email and
/// workflows. Start a server with `updraft server` (or `updraft up DIR` for a server
/// plus the app in DIR, redeployed on change), then `updraft deploy`. The dashboard is
/// at /ui on the server.
#[derive(Debug, Parser)]
#[command(name = "updraft", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The server to talk to.
    #[arg(long, global = true, env = "UPDRAFT_ENDPOINT", default_value = "http://127.0.0.1:7070")]
    pub endpoint: String,
    /// API key; by default the local admin key from <data-dir>/admin-token.
    #[arg(long, global = true, env = "UPDRAFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where the server keeps its state (and the CLI finds the local admin key).
    #[arg(long, global = true, env = "UPDRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

impl Global {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("updraft");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/updraft"),
        None => PathBuf::from(".updraft"),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (gateway, control plane, runtime).
    Server(ServerArgs),
    /// Run a server with the app(s) in DIR deployed, redeploying when files change.
    Up(UpArgs),
    /// Build each function of the app in DIR into a bundle, as deploy would, and print
    /// where each bundle is.
    ///
    /// A function's `build` command runs in its workdir; a function folder with a
    /// requirements.txt gets its packages installed by pip, one with a package.json by
    /// npm (`npm ci` with a package-lock.json), into .updraft/ beside the manifest, never
    /// into the source. A step whose inputs have not changed since it last ran is
    /// skipped; the same files always make the same bundle.
    Build {
        /// The folder holding updraft.toml (or a SAM template.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Run every step again, whatever the last build left.
        #[arg(long)]
        force: bool,
    },
    /// Build and deploy the app in DIR (building as `updraft build` does first). A
    /// folder with a SAM template.yaml and no updraft.toml is deployed as `updraft
    /// import` maps it, with its DeploymentPreference as the canary.
    Deploy {
        /// The folder holding updraft.toml or a SAM template.yaml, or the template file.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// A canary deploy: each function the deploy changes sends this share of its
        /// invocations (`10%`) to its new version and the rest to the version it had;
        /// the new version is rolled back as soon as it fails noticeably more often than
        /// the old one (5 points, over at least 10 invocations), else promoted after
        /// `--for`. `updraft promote` or `updraft rollback` end it by hand.
        #[arg(long, value_name = "PERCENT", value_parser = parse_percent, requires = "canary_for")]
        canary: Option<f64>,
        /// How long a canary runs before its new versions serve everything (`10m`).
        #[arg(long = "for", value_name = "DURATION", requires = "canary")]
        canary_for: Option<String>,
    },
    /// Turn a SAM template into an updraft.toml beside it: functions, their events as
    /// triggers, state machines as workflows, topics and queues. What only matters in
    /// AWS (IAM policies, tracing, architectures) is left out and noted in the file;
    /// anything else that cannot be mapped is an error naming the resource and the
    /// property.
    Import {
        /// The SAM template, or the folder holding template.yaml.
        #[arg(default_value = ".")]
        template: PathBuf,
        /// Print the manifest instead of writing updraft.toml.
        #[arg(long)]
        stdout: bool,
        /// Replace an updraft.toml that is already there.
        #[arg(long)]
        force: bool,
    },
    /// End a function's canary now: its new version serves every invocation.
    Promote { name: String },
    /// Invoke a function with an event and print its response.
    Invoke {
        name: String,
        /// The event, as JSON text.
        #[arg(long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the event from a file (`-` for standard input); `--event` as in SAM
        /// (`updraft events sample` prints one for each trigger).
        #[arg(long, visible_alias = "event")]
        data_file: Option<PathBuf>,
        /// Queue the event and return its id at once; it runs at least once, retried
        /// on failure (`GET /v1/async/ID` shows one not yet delivered).
        #[arg(long = "async", conflicts_with = "http")]
        run_async: bool,
        /// Send an HTTP request to one of the function's routes instead of an event
        /// (`'GET /items/7?q=1'`), --data or --data-file as its body; prints the answer's
        /// status, headers and body.
        #[arg(long, value_name = "'METHOD /PATH'")]
        http: Option<String>,
    },
    /// Publish a message to a topic: every function subscribed to it gets a copy,
    /// delivered asynchronously with its own retries.
    Publish {
        topic: String,
        /// The message (JSON unless --content-type says otherwise).
        #[arg(long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the message from a file (`-` for standard input).
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// A subject line, passed on as SNS's Subject (and CloudEvents' subject).
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
    /// Send a message to a work queue; a function consuming it gets it in a batch.
    Send {
        queue: String,
        /// The message (JSON unless --content-type says otherwise).
        #[arg(long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the message from a file (`-` for standard input).
        #[arg(long)]
        data_file: Option<PathBuf>,
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
    /// List functions.
    Ls,
    /// Show a function: its version, limits and routes.
    Describe { name: String },
    /// List a function's versions.
    Versions { name: String },
    /// Print and search logs: a function's, an app's (--app) or every function's.
    ///
    /// A line's level is the one it declares (a JSON `level`, or a leading `ERROR`,
    /// `[WARN]`, `WARNING:`, ...); one that declares none is info on stdout and error
    /// on stderr.
    Logs {
        /// Only this function's lines.
        name: Option<String>,
        /// Only the lines of this app's functions.
        #[arg(long, conflicts_with = "name")]
        app: Option<String>,
        /// Keep printing new lines as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// How many of the latest matching lines to print first (without --since).
        #[arg(long, default_value_t = 100)]
        tail: i64,
        /// Every matching line written within this long ago (e.g. 15m, 1h, 2d).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// Only lines containing this text (ASCII case ignored).
        #[arg(long)]
        grep: Option<String>,
        /// Only one invocation's lines.
        #[arg(long)]
        request_id: Option<String>,
        /// Only lines at this level or above: trace, debug, info, warn, error, fatal.
        #[arg(long, value_parser = parse_level)]
        level: Option<updraft_model::LogLevel>,
    },
    /// Serve an earlier version of a function again.
    Rollback {
        name: String,
        /// The version to serve (default: the one before the current).
        #[arg(long)]
        to: Option<u32>,
    },
    /// Delete a function and all its versions.
    Delete { name: String },
    /// List invocation records (newest first): duration, cold start, memory, status.
    Invocations {
        /// Only this function's (default: all).
        name: Option<String>,
        /// Only with this status: success, error, timeout or throttled.
        #[arg(long)]
        status: Option<String>,
        /// Only those that started within this long ago (e.g. 15m, 2h).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// How many to print.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// List the latest traces, or show one as a waterfall: every invocation that took
    /// part (across HTTP requests, async invocations, topics, destinations and workflow
    /// steps) with its queueing, cold start and run.
    Traces {
        /// The trace to show (32 hex digits); without it, list the latest.
        trace_id: Option<String>,
        /// Only traces this function took part in.
        #[arg(long, conflicts_with = "trace_id")]
        function: Option<String>,
        /// How many to list.
        #[arg(long, default_value_t = 20, conflicts_with = "trace_id")]
        limit: usize,
    },
    /// Print usage per function (requests, GB-seconds, cold starts, throttles) and its
    /// cost under the server's price table.
    Usage {
        /// From this long ago, rounded down to the hour (e.g. 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        since: Duration,
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
    },
    /// Manage access keys for the Lambda-compatible API (boto3, the AWS CLI).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Start workflow executions and see how they went.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// See and retry failed asynchronous invocations (out of retries or too old).
    #[command(subcommand)]
    Async(AsyncCommand),
    /// Start a function from a template: `updraft new flask hello` makes `hello/`, ready
    /// for `updraft up hello` (`--list` names the templates).
    New {
        /// The template (`updraft new --list`).
        #[arg(required_unless_present = "list")]
        template: Option<String>,
        /// The folder to make; the function is named after it.
        #[arg(required_unless_present = "list")]
        dir: Option<PathBuf>,
        /// List the templates.
        #[arg(long, conflicts_with_all = ["template", "dir"])]
        list: bool,
    },
    /// Events for local testing: samples of what each trigger delivers.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Work queues: redrive a dead-letter queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Print the control plane's OpenAPI document.
    Openapi,
    /// Live per-function figures in the terminal: requests, errors and throttles per
    /// second, p99 duration, cold starts and concurrency, refreshed every --interval.
    Top {
        /// How often to refresh (the rates are over this window).
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        interval: Duration,
        /// Print one table (over one interval) and exit, instead of refreshing.
        #[arg(long)]
        once: bool,
    },
    /// Print a shell completion script: `updraft completions bash > /etc/bash_completion.d/updraft`,
    /// `updraft completions zsh > "${fpath[1]}/_updraft"`, `updraft completions fish >
    /// ~/.config/fish/completions/updraft.fish`.
    Completions { shell: clap_complete::Shell },
    /// Manage secrets: values sealed at rest, which functions name in their manifest
    /// (`env = { KEY = { secret = "NAME" } }`) and which are never shown again.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Manage functions' tokens (`UPDRAFT_TOKEN`, given to functions with grants).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Check the server: each layer of the Lambda sandbox on its host (exits 1 when
    /// one is missing that the server was not told to do without).
    Doctor,
    /// List the cluster's nodes: address, version, state (alive, dead or left), load,
    /// warm functions and last heartbeat.
    Nodes,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Start an execution of a workflow and print its id.
    Start {
        name: String,
        /// The execution's input, as JSON.
        #[arg(long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the input from a file (`-` for standard input).
        #[arg(long)]
        data_file: Option<PathBuf>,
    },
    /// Show an execution: its status, current state, output or error, and step history.
    Describe { execution: String },
}

#[derive(Debug, Subcommand)]
pub enum AsyncCommand {
    /// List failed asynchronous invocations, the latest first.
    Ls {
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
        /// How many to print.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run a failed asynchronous invocation again, as if newly accepted (its retries
    /// and maximum age start over); with --all, every failed one (of --function).
    /// Give its id or --all.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        /// The failed invocation's id (`updraft async ls` lists them).
        id: Option<String>,
        /// Every failed invocation (of --function, if given).
        #[arg(long)]
        all: bool,
        /// With --all: only this function's.
        #[arg(long, conflicts_with = "id")]
        function: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the event a Lambda handler receives from a trigger, made by the code that
    /// delivers it: save it, edit it and run `updraft invoke NAME --event FILE` (as
    /// SAM's `local generate-event` and `local invoke -e`).
    Sample {
        kind: crate::samples::SampleKind,
        /// The function receiving it (its name shows in ARNs).
        #[arg(long, default_value = "my-function")]
        function: String,
        /// The topic, queue, schedule expression or request (`'POST /items'`).
        #[arg(long)]
        source: Option<String>,
        /// The message or request body.
        #[arg(long, default_value = r#"{"hello": "world"}"#)]
        data: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Move every message of a dead-letter queue back to the queue it came from (or
    /// --to), deliverable again.
    Redrive {
        /// The dead-letter queue.
        dead_letter: String,
        /// Where the messages go (default: the queue whose trigger sends its dead
        /// letters here).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set a secret; its value is read from standard input (a final newline is dropped),
    /// never from the command line.
    Set { name: String },
    /// List secrets with the functions using them (never their values).
    Ls,
    /// Delete a secret no deployed function uses.
    Rm { name: String },
    /// Make a new secrets key and seal every secret, access key and server key again
    /// with it.
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Revoke a function's tokens: earlier ones are refused, and its instances are
    /// replaced by ones holding a new token.
    Rotate { function: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an access key and print it with its secret (shown this once), as
    /// environment variables for AWS clients.
    Create,
    /// List access keys (without secrets).
    Ls,
    /// Delete an access key.
    Delete { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "UPDRAFT_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Control-plane database: sqlite://PATH or postgres://USER@HOST/DB
    /// (default: SQLite in the data dir).
    #[arg(long, env = "UPDRAFT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// wasmtime's pooling allocator: auto uses it when the host can reserve its
    /// address space.
    #[arg(long, value_enum, default_value_t = PoolingArg::Auto)]
    pub pooling: PoolingArg,
    /// The largest artifact (compiled component) an upload may carry.
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    pub max_artifact_size: updraft_model::ByteSize,
    /// How long a client has to send a request's headers; an idle keep-alive
    /// connection is closed after it too.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a client has to send a request's body (artifact uploads included);
    /// past it the answer is 408.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Connections open at once (capped at half the open-files limit); past it, a new
    /// connection gets a 503 and is closed.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// On SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// The most invocations running at once across all functions (the account
    /// limit); functions' reserved `concurrency` is carved out of it.
    #[arg(long, env = "UPDRAFT_ACCOUNT_CONCURRENCY", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub account_concurrency: u32,
    /// The most instances alive at once on this node; the longest-idle one is stopped
    /// to make room.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instances: u32,
    /// The timeout of a function whose manifest names none.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub default_timeout: Duration,
    /// The longest timeout a manifest may ask for.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    pub max_timeout: Duration,
    /// Price of a million requests, in US dollars, for `updraft usage` (default:
    /// AWS Lambda's x86 price).
    #[arg(long, default_value_t = 0.20, value_parser = parse_price)]
    pub price_per_million_requests: f64,
    /// Price of a GB-second of billed duration × memory, in US dollars.
    #[arg(long, default_value_t = 0.000_016_666_7, value_parser = parse_price)]
    pub price_per_gb_second: f64,
    /// The Python interpreter for `python3` functions (default: /usr/bin/python3 if
    /// present, else the real interpreter behind `python3` on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// The Node.js executable for `nodejs` functions (default: `node` on PATH).
    #[arg(long, value_name = "PATH")]
    pub node: Option<PathBuf>,
    /// The wait before an asynchronous invocation's first retry; each later retry
    /// waits twice as long (Lambda: about a minute).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub async_retry_delay: Duration,
    /// Settle asynchronous outcomes without waiting for their invocation records to be
    /// stored (a crash may then lose the records of runs): only for measuring what
    /// durable records cost.
    #[arg(long, hide = true)]
    pub no_durable_async_records: bool,
    /// Keep asynchronous invocations (async invokes, topic copies, webhooks, mail,
    /// schedule ticks, destination records) in NATS JetStream at this URL, e.g.
    /// nats://127.0.0.1:4222, instead of the database. The server needs JetStream on
    /// (nats-server -js).
    #[arg(long, env = "UPDRAFT_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// The JetStream stream that holds them (created if missing). Servers that share
    /// a stream share its events: give separate deployments separate streams.
    #[arg(long, env = "UPDRAFT_NATS_STREAM", default_value = "UPDRAFT_EVENTS", requires = "nats_url")]
    pub nats_stream: String,
    /// How long JetStream holds a fetched event without word from its node (renewed
    /// while the function runs): how soon a dead node's events run elsewhere. Applies
    /// when the stream's consumer is created.
    #[arg(long, env = "UPDRAFT_NATS_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub nats_ack_wait: Duration,
    /// How long invocation records (and the traces read from them) are kept; a janitor
    /// removes older ones in small batches.
    #[arg(long, env = "UPDRAFT_RETAIN_RECORDS", default_value = "7d", value_parser = parse_duration)]
    pub retain_records: Duration,
    /// The most invocation records kept: beyond it the oldest go first.
    #[arg(long, env = "UPDRAFT_MAX_RECORDS", default_value_t = 1_000_000)]
    pub max_records: u64,
    /// How long functions' log lines are kept.
    #[arg(long, env = "UPDRAFT_RETAIN_LOGS", default_value = "7d", value_parser = parse_duration)]
    pub retain_logs: Duration,
    /// The most log lines kept (all functions together): beyond it the oldest go first.
    #[arg(long, env = "UPDRAFT_MAX_LOG_LINES", default_value_t = 1_000_000)]
    pub max_log_lines: u64,
    /// How long a finished workflow execution (and its history) is kept.
    #[arg(long, env = "UPDRAFT_RETAIN_EXECUTIONS", default_value = "30d", value_parser = parse_duration)]
    pub retain_executions: Duration,
    /// How long an asynchronous event that failed for good is kept (from when it was
    /// accepted).
    #[arg(long, env = "UPDRAFT_RETAIN_FAILED_EVENTS", default_value = "14d", value_parser = parse_duration)]
    pub retain_failed_events: Duration,
    /// How often the janitor removes what is past its retention.
    #[arg(long, env = "UPDRAFT_JANITOR_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub janitor_interval: Duration,
    /// Export every invocation's spans and every metric over OTLP/HTTP (protobuf) to
    /// this collector (e.g. http://127.0.0.1:4318; spans go to its /v1/traces, metrics
    /// to its /v1/metrics). Spans are batched off the request path and dropped with a
    /// count when it falls behind; metrics are the ones /metrics serves, sent every
    /// --otlp-metric-interval. Without it, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
    /// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT turn on one signal each; with none, traces
    /// are only kept in the store (`updraft traces`). OTEL_EXPORTER_OTLP_HEADERS,
    /// OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE apply.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// How often metrics are sent over OTLP (default: OTEL_METRIC_EXPORT_INTERVAL in
    /// milliseconds, or 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub otlp_metric_interval: Option<Duration>,
    /// Accept mail over SMTP on this address (e.g. 127.0.0.1:2525) for the addresses
    /// that `email` triggers claim; off unless given.
    #[arg(long, env = "UPDRAFT_SMTP_LISTEN")]
    pub smtp_listen: Option<SocketAddr>,
    /// The largest message the SMTP listener accepts (larger ones get 552).
    #[arg(long, default_value = "10MiB", value_parser = parse_size)]
    pub smtp_max_message_size: updraft_model::ByteSize,
    /// The name the SMTP listener greets with.
    #[arg(long, default_value = "updraft")]
    pub smtp_hostname: String,
    /// An SMTP session idle this long is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub smtp_idle_timeout: Duration,
    /// An SMTP session is closed this long after it began.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub smtp_session_timeout: Duration,
    /// SMTP sessions at once from one client address (256 from all).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub smtp_sessions_per_client: u32,
    /// Sandboxes kept started per Lambda runtime (python3, nodejs) with the
    /// interpreter up, waiting for a function: a cold start takes one instead of
    /// starting an interpreter. 0 turns them off. This is the least kept: a runtime
    /// keeps as many as its busiest second of cold starts in the last five minutes, up
    /// to --warm-sandboxes-max.
    #[arg(long, default_value_t = 2)]
    pub warm_sandboxes: usize,
    /// The most sandboxes kept started per Lambda runtime as cold starts grow.
    #[arg(long, default_value_t = 8)]
    pub warm_sandboxes_max: usize,
    /// Run Lambda functions even though these sandbox layers are missing on this host
    /// (comma-separated: cgroup-memory, cgroup-pids, cgroup-cpu, landlock, seccomp).
    /// Without it, a missing layer stops Lambda functions from running, naming the
    /// layer and its fix; `updraft doctor` shows each layer.
    #[arg(long, value_name = "LAYERS", value_delimiter = ',', value_parser = parse_layer)]
    pub sandbox_allow_missing: Vec<updraft_runtime_process::SandboxLayer>,
    /// Where the host's control-group hierarchies are mounted; with systemd, a
    /// delegated cgroup v2 folder works too.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// The URL other nodes of the cluster (and `updraft nodes`) reach this server at,
    /// e.g. http://10.0.0.5:7070 (default: the listen address, loopback for 0.0.0.0).
    #[arg(long, env = "UPDRAFT_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,
    /// How often this node tells the cluster it is alive, with its load.
    #[arg(long, env = "UPDRAFT_HEARTBEAT", default_value = "1s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// A node silent this long is dead (`updraft nodes` says so).
    #[arg(long, env = "UPDRAFT_NODE_DEAD_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub node_dead_after: Duration,
    /// A file holding the cluster key (64 hex digits, `openssl rand -hex 32`), the same
    /// on every node: it seals the cluster's secrets key in the database, so secrets,
    /// access keys and function tokens work on every node without copying
    /// `secrets.key`. The key itself may be given in UPDRAFT_CLUSTER_KEY instead.
    #[arg(long, env = "UPDRAFT_CLUSTER_KEY_FILE", value_name = "PATH")]
    pub cluster_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// A folder with updraft.toml, or whose subfolders have one each.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Deploy once; do not watch for changes.
    #[arg(long)]
    pub no_watch: bool,
}

fn parse_layer(value: &str) -> Result<updraft_runtime_process::SandboxLayer, String> {
    let layer: updraft_runtime_process::SandboxLayer =
        value.parse().map_err(|e: updraft_runtime_process::UnknownLayer| e.to_string())?;
    if !layer.may_be_missing() {
        return Err(format!("{layer} cannot be done without: Lambda functions need it to run at all"));
    }
    Ok(layer)
}

fn parse_size(value: &str) -> Result<updraft_model::ByteSize, String> {
    updraft_model::ByteSize::parse(value)
}

/// A canary's share: `10%` or `10`, above 0 and below 100.
fn parse_percent(value: &str) -> Result<f64, String> {
    match value.trim_end_matches('%').trim().parse::<f64>() {
        Ok(percent) if percent > 0.0 && percent < 100.0 => Ok(percent),
        _ => Err(format!("{value:?} is not a share; write a percentage above 0 and below 100, like 10%")),
    }
}

fn parse_level(value: &str) -> Result<updraft_model::LogLevel, String> {
    value.parse().map_err(|e: updraft_model::UnknownLogLevel| e.to_string())
}

fn parse_price(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(price) if price.is_finite() && price >= 0.0 => Ok(price),
        _ => Err(format!("{value:?} is not a price; write a number of US dollars, 0 or more, like 0.20")),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Server(args) => {
            crate::server::init_tracing();
            crate::server::run(&global, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(args) => crate::up::run(&global, &args).await,
        Command::Build { dir, force } => {
            crate::build::print(&dir, force, global.output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { template, stdout, force } => {
            crate::sam::import(&template, stdout, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { dir, canary, canary_for } => {
            let client = Client::new(&global)?;
            let canary = canary
                .zip(canary_for)
                .map(|(percent, duration)| updraft_api::params::CanaryParams { percent, duration });
            crate::deploy::deploy_dir_with(&client, &dir, canary, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote { name } => {
            let client = Client::new(&global)?;
            let view: updraft_api::views::CanaryView =
                client.post_json(&format!("/v1/functions/{name}/promote"), &serde_json::json!({})).await?;
            match global.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                Output::Human => println!(
                    "{name}: canary ended; the new version serves everything (v{} served {:.0}% before)",
                    view.previous_version,
                    100.0 - view.percent
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { topic, data, data_file, subject, content_type } => {
            let client = Client::new(&global)?;
            let body = read_data(data, data_file, "message")?;
            let mut request = client
                .request(reqwest::Method::POST, &format!("/v1/topics/{topic}"))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
            if let Some(subject) = subject {
                request = request.header("x-updraft-subject", subject);
            }
            let published: updraft_api::views::PublishedView =
                client.send(request).await?.json().await.context("reading the answer to publish")?;
            match global.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&published)?),
                Output::Human => println!(
                    "published {} to {} for {} subscriber{}: {}",
                    published.message_id,
                    published.topic,
                    published.subscribers.len(),
                    if published.subscribers.len() == 1 { "" } else { "s" },
                    published.subscribers.join(", ")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send { queue, data, data_file, content_type } => {
            let client = Client::new(&global)?;
            let body = read_data(data, data_file, "message")?;
            let request = client
                .request(reqwest::Method::POST, &format!("/v1/queues/{queue}"))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
            let sent: updraft_api::views::QueueSentView =
                client.send(request).await?.json().await.context("reading the answer to send")?;
            match global.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&sent)?),
                Output::Human => println!("sent {} to queue {}", sent.message_id, sent.queue),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { name, data, data_file, run_async, http } => {
            let client = Client::new(&global)?;
            if let Some(line) = http {
                let body = if data.is_some() || data_file.is_some() {
                    read_data(data, data_file, "request body")?
                } else {
                    Vec::new()
                };
                return crate::output::invoke_http(&client, &name, &line, body, global.output).await;
            }
            let body = json_event(read_data(data, data_file, "event")?)?;
            if run_async {
                let accepted: updraft_api::views::AsyncAcceptedView = client
                    .send(
                        client
                            .request(reqwest::Method::POST, &format!("/v1/functions/{name}/invoke-async"))
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(body),
                    )
                    .await?
                    .json()
                    .await
                    .context("reading the answer to invoke-async")?;
                match global.output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&accepted)?),
                    Output::Human => println!("queued {} (its logs and records carry this id)", accepted.id),
                }
                return Ok(ExitCode::SUCCESS);
            }
            crate::output::invoke(&client, &name, body, global.output).await
        }
        Command::Ls => {
            let client = Client::new(&global)?;
            crate::output::list(&client, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { name } => {
            let client = Client::new(&global)?;
            crate::output::describe(&client, &name, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Versions { name } => {
            let client = Client::new(&global)?;
            crate::output::versions(&client, &name, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { name, app, follow, tail, since, grep, request_id, level } => {
            let client = Client::new(&global)?;
            let search = crate::output::LogSearch { function: name, app, tail, since, grep, request_id, level };
            crate::output::logs(&client, &search, follow, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { name, to } => {
            let client = Client::new(&global)?;
            crate::output::rollback(&client, &name, to, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { name } => {
            let client = Client::new(&global)?;
            client.delete(&format!("/v1/functions/{name}")).await?;
            if global.output == Output::Json {
                println!("{}", serde_json::json!({ "deleted": name }));
            } else {
                println!("deleted {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invocations { name, status, since, limit } => {
            let client = Client::new(&global)?;
            let query = crate::output::InvocationQuery { function: name, status, since, limit };
            crate::output::invocations(&client, &query, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Traces { trace_id, function, limit } => {
            let client = Client::new(&global)?;
            match trace_id {
                Some(trace_id) => crate::output::trace(&client, &trace_id, global.output).await?,
                None => crate::output::traces(&client, function.as_deref(), limit, global.output).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage { since, function } => {
            let client = Client::new(&global)?;
            crate::output::usage(&client, since, function.as_deref(), global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::Start { name, data, data_file }) => {
            let client = Client::new(&global)?;
            let body = read_data(data, data_file, "input")?;
            let request = client
                .request(reqwest::Method::POST, &format!("/v1/workflows/{name}/executions"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            let started: updraft_api::views::ExecutionStartedView =
                client.send(request).await?.json().await.context("reading the answer to workflow start")?;
            match global.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&started)?),
                Output::Human => println!("{}", started.execution_id),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::Describe { execution }) => {
            let client = Client::new(&global)?;
            crate::output::execution(&client, &execution, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => {
            let client = Client::new(&global)?;
            crate::output::keys(&client, command, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Async(command) => {
            let client = Client::new(&global)?;
            crate::output::async_events(&client, command, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::New { template, dir, list } => {
            if list {
                print!("{}", crate::new::list());
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(template), Some(dir)) = (template, dir) else { unreachable!("clap requires both") };
            let name = crate::new::create(&template, &dir)?;
            let shown = dir.display();
            println!("made {shown}: function {name} from the {template} template");
            println!("  updraft up {shown}                          # run it locally, redeployed on change");
            println!("  curl localhost:7070/{name}                  # try it (see {shown}/README.md)");
            println!("  updraft deploy {shown} --endpoint URL       # deploy it to a server");
            Ok(ExitCode::SUCCESS)
        }
        Command::Events(EventsCommand::Sample { kind, function, source, data }) => {
            let sample = crate::samples::Sample { function: &function, source: source.as_deref(), body: data.into() };
            println!("{}", crate::samples::sample(kind, sample)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue(QueueCommand::Redrive { dead_letter, to }) => {
            let client = Client::new(&global)?;
            let query: Vec<(&str, String)> = to.into_iter().map(|to| ("to", to)).collect();
            let path = format!("/v1/queues/{dead_letter}/redrive");
            let moved: updraft_api::views::QueueRedriveView = client.post_query(&path, query).await?;
            match global.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&moved)?),
                Output::Human => println!("moved {} messages from {} to {}", moved.moved, moved.from, moved.to),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Top { interval, once } => {
            let client = Client::new(&global)?;
            crate::top::run(&client, interval, once, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "updraft", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            print!("{}", updraft_api::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(command) => {
            let client = Client::new(&global)?;
            crate::output::secrets(&client, command, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens(TokensCommand::Rotate { function }) => {
            let client = Client::new(&global)?;
            crate::output::tokens_rotate(&client, &function, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => {
            let client = Client::new(&global)?;
            crate::output::doctor(&client, global.output).await
        }
        Command::Nodes => {
            let client = Client::new(&global)?;
            crate::output::nodes(&client, global.output).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The body given by `--data`, `--data-file` (`-` for standard input), or `{}`.
/// `body` if it is JSON, as an event must be (Lambda's `Invoke` refuses anything else);
/// otherwise an error that says where it stops being JSON.
fn json_event(body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        Ok(_) => Ok(body),
        Err(error) => anyhow::bail!(
            "the event is not JSON ({error}); write JSON, like --data '{{\"name\": \"Ada\"}}', \
             or a JSON string, like --data '\"text\"'"
        ),
    }
}

fn read_data(data: Option<String>, data_file: Option<PathBuf>, what: &str) -> anyhow::Result<Vec<u8>> {
    Ok(match (data, data_file) {
        (Some(data), _) => data.into_bytes(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            use std::io::Read;
            let mut buffer = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buffer)
                .with_context(|| format!("reading the {what} from standard input"))?;
            buffer
        }
        (None, Some(path)) => {
            std::fs::read(&path).with_context(|| format!("reading the {what} from {}", path.display()))?
        }
        (None, None) => b"{}".to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::Cli;

    #[test]
    fn an_event_that_is_not_json_is_refused_before_it_is_sent() {
        assert_eq!(super::json_event(br#"{"name": "Ada"}"#.to_vec()).unwrap(), br#"{"name": "Ada"}"#);
        assert!(super::json_event(b"\"text\"".to_vec()).is_ok());
        let error = super::json_event(b"{name: Ada}".to_vec()).unwrap_err().to_string();
        assert!(error.contains("not JSON") && error.contains("line 1 column 2"), "{error}");
    }

    #[test]
    fn async_retry_asks_for_an_id_or_all_and_not_both() {
        let missing = Cli::try_parse_from(["updraft", "async", "retry"]).unwrap_err().to_string();
        assert!(missing.contains("<ID|--all>"), "{missing}");
        let both = Cli::try_parse_from(["updraft", "async", "retry", "abc", "--all"]).unwrap_err().to_string();
        assert!(both.contains("cannot be used with"), "{both}");
        assert!(Cli::try_parse_from(["updraft", "async", "retry", "abc"]).is_ok());
        assert!(Cli::try_parse_from(["updraft", "async", "retry", "--all", "--function", "f"]).is_ok());
        let stray = Cli::try_parse_from(["updraft", "async", "retry", "abc", "--function", "f"]).unwrap_err();
        assert!(stray.to_string().contains("--function"), "{stray}");
    }
}
