//! `Platform`: the façade behind every API call: its state, start and shutdown. Each
//! family of operations has its own module with its own error: `deploy.rs`,
//! `artifacts.rs`, `functions.rs`, `invoke.rs`, `observe.rs`, `key_ops.rs`,
//! `secrets.rs`; the event layer is reached through `Platform::events`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use updraft_model::{ACCOUNT_ID, FunctionName, Limits, Manifest, REGION, SecretName, VersionNumber};
use updraft_runtime::{FunctionResponse, Input};
use updraft_runtime_process::{ProcessRuntime, ProcessRuntimeConfig, ProcessRuntimeError, SandboxLayer, SandboxStatus};
use updraft_runtime_wasm::{Pooling, WasmEngineConfig, WasmRuntime, WasmRuntimeError};
use updraft_scheduler::{Scheduler, SchedulerConfig};
use updraft_store::{ArtifactError, ArtifactStore, Store, StoreError};
use updraft_telemetry::{ExportCounters, ExportSetupError, MetricExport, Metrics, OtlpConfig, PriceTable, SpanExport};

use updraft_events::{AsyncConfig, EventConfig, EventLayer, EventQueueConfig, Host, QueueError, Workflow};

use crate::DeployError;
use crate::access::{AccessKeySet, Sealer, TokenSigner, UnsealError};
use crate::cluster::{ClusterConfig, Membership};
use crate::data_dir::{create_private_dir, node_id};
use crate::janitor::RetentionConfig;
use crate::keys::KeySet;
use crate::live::{LiveState, RouteTarget};
use crate::logs::LogWriter;
use crate::recorder::Recorder;
use crate::routes::{RouteConflict, RouteMatch};

/// How to start a platform.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    /// `None`: SQLite at `<data-dir>/updraft.db`.
    pub database_url: Option<String>,
    pub limits: Limits,
    pub pooling: Pooling,
    /// The most instances alive at once on this node (and the size of wasmtime's pool).
    pub max_instances: u32,
    /// The most invocations running at once across all functions.
    pub account_concurrency: u32,
    /// How often idle instances are checked against their idle timeout.
    pub reap_interval: Duration,
    pub prices: PriceTable,
    /// How asynchronous invocations are retried.
    pub async_invocations: AsyncConfig,
    /// Where they wait.
    pub event_queue: EventQueueConfig,
    /// This server's API as its functions reach it (`http://127.0.0.1:7070`), given
    /// to functions with grants (`publishes`, `starts`) as `UPDRAFT_API_URL`; `None`
    /// gives them no token.
    pub api_url: Option<String>,
    /// How to run Lambda functions (`python3`, `nodejs`, `provided`); `None` leaves
    /// them undeployable (the server binary always sets it).
    pub lambda: Option<LambdaConfig>,
    /// How this node takes part in the cluster (heartbeats, when a silent node is dead).
    pub cluster: ClusterConfig,
    /// Where spans are exported over OTLP; `None` keeps traces in the store only.
    pub otlp: Option<OtlpConfig>,
    /// How long records, logs, executions and failed events are kept.
    pub retention: RetentionConfig,
}

/// How long a burst of cold starts keeps a Lambda runtime's pool of pre-started
/// sandboxes grown to its size.
const WARM_DEMAND_WINDOW: Duration = Duration::from_secs(300);

/// The Lambda runtime's settings.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The jailer's program and leading arguments.
    pub jailer: Vec<std::ffi::OsString>,
    pub python: Option<PathBuf>,
    pub node: Option<PathBuf>,
    /// Sandboxes kept pre-started per managed runtime, at least (see `ProcessRuntimeConfig`).
    pub warm_sandboxes: usize,
    /// ...and at most, as demand grows.
    pub warm_sandboxes_max: usize,
    /// Where control-group hierarchies are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Sandbox layers the operator allows to be missing on this host.
    pub allow_missing: Vec<SandboxLayer>,
}

impl PlatformConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let scheduler = SchedulerConfig::default();
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            limits: Limits::default(),
            pooling: Pooling::Auto,
            max_instances: scheduler.max_instances,
            account_concurrency: scheduler.account_concurrency,
            reap_interval: scheduler.reap_interval,
            prices: PriceTable::default(),
            async_invocations: AsyncConfig::default(),
            event_queue: EventQueueConfig::Database,
            api_url: None,
            lambda: None,
            cluster: ClusterConfig::default(),
            otlp: None,
            retention: RetentionConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not create the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    #[error(transparent)]
    Runtime(#[from] WasmRuntimeError),
    #[error(transparent)]
    LambdaRuntime(#[from] ProcessRuntimeError),
    #[error("cannot read or create the secrets key {path}")]
    SecretsKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    #[error(transparent)]
    ClusterKey(#[from] crate::secrets::ClusterKeyError),
    #[error(transparent)]
    Events(#[from] QueueError),
    #[error(transparent)]
    Otlp(#[from] ExportSetupError),
    #[error("could not write the admin token to {path}")]
    AdminToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("function {function:?} version {version} cannot be loaded")]
    LoadFunction {
        function: FunctionName,
        version: VersionNumber,
        #[source]
        source: Box<DeployError>,
    },
    #[error("the stored functions' routes conflict")]
    Routes(#[source] RouteConflict),
}

/// The running platform.
pub struct Platform {
    pub(crate) config: PlatformConfig,
    pub(crate) store: Store,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) wasm: WasmRuntime,
    pub(crate) process: Option<ProcessRuntime>,
    pub(crate) recorder: Arc<Recorder>,
    /// The event layer: asynchronous events, topics, webhooks, schedules, work queues
    /// and workflows.
    pub(crate) events: Arc<EventLayer>,
    pub(crate) scheduler: Scheduler<Input, FunctionResponse>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) live: ArcSwap<LiveState>,
    /// Earlier versions invoked by number, beside the live ones.
    pub(crate) earlier: crate::versions::EarlierVersions,
    /// Every function's aliases (`crate::aliases`).
    pub(crate) aliases: ArcSwap<crate::aliases::AliasMap>,
    /// The canaries running (`crate::canary`).
    pub(crate) canaries: ArcSwap<crate::canary::CanaryMap>,
    pub(crate) keys: ArcSwap<KeySet>,
    pub(crate) access_keys: ArcSwap<AccessKeySet>,
    /// Seals and opens what the store keeps secret; swapped when the key is rotated.
    pub(crate) sealer: ArcSwap<Sealer>,
    /// Signs function tokens.
    pub(crate) tokens: TokenSigner,
    /// Every secret, in the clear, by name (like access keys: an instance's start
    /// needs no database round trip).
    pub(crate) secrets: ArcSwap<BTreeMap<SecretName, String>>,
    /// Deploys, rollbacks and deletes run one at a time: each computes the next live
    /// state from the current one.
    pub(crate) change_lock: tokio::sync::Mutex<()>,
    pub(crate) logs: LogWriter,
    /// The log and record writers, awaited on shutdown so that nothing is lost.
    pub(crate) writers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// This node's place in the cluster (its epoch and heartbeat).
    pub(crate) membership: Membership,
    /// The cluster's live nodes, this one included, as the last heartbeat saw them.
    pub(crate) peers: ArcSwap<Vec<crate::forward::Peer>>,
    /// Nodes a forward could not reach lately.
    pub(crate) suspects: crate::forward::Suspects,
    /// In a cluster: this node's shares of the limits.
    pub(crate) ledger: Option<Arc<crate::cluster::Ledger>>,
    /// Sends the metrics over OTLP while it lives (declared last: it is dropped after
    /// everything that records into it, and its drop sends a last collection).
    metric_export: Option<MetricExport>,
}

impl Platform {
    /// Opens the data directory and database, makes sure an admin key exists, and
    /// registers every deployed function with the scheduler (compiling only what the
    /// compiled-code cache lacks; code is loaded when an instance first needs it).
    pub async fn start(config: PlatformConfig) -> Result<Arc<Self>, StartError> {
        let data_dir = &config.data_dir;
        create_private_dir(data_dir)?;
        let node_id = node_id(data_dir)?;
        let database_url =
            config.database_url.clone().unwrap_or_else(|| Store::sqlite_url(&data_dir.join("updraft.db")));
        let store = Store::connect(&database_url).await?;
        let address = config.cluster.advertise_url.clone().or_else(|| config.api_url.clone()).unwrap_or_default();
        let membership = Membership::join(&store, &node_id, &address).await?;
        let artifacts = ArtifactStore::open(data_dir.join("artifacts"))?;
        let wasm = WasmRuntime::new(WasmEngineConfig {
            cache_dir: data_dir.join("compiled"),
            pooling: config.pooling,
            max_instances: config.max_instances,
        })?;
        let process = match &config.lambda {
            Some(lambda) => {
                let process = ProcessRuntime::start(ProcessRuntimeConfig {
                    jailer: lambda.jailer.clone(),
                    work_dir: data_dir.join("lambda"),
                    python: lambda.python.clone(),
                    node: lambda.node.clone(),
                    region: REGION.to_owned(),
                    account_id: ACCOUNT_ID.to_owned(),
                    cgroup_root: lambda.cgroup_root.clone(),
                    allow_missing: lambda.allow_missing.clone(),
                    skip_layers: Vec::new(),
                    warm_sandboxes: lambda.warm_sandboxes,
                    warm_sandboxes_max: lambda.warm_sandboxes_max,
                    warm_demand_window: WARM_DEMAND_WINDOW,
                })
                .await?;
                let status = process.sandbox_status();
                if let Err(incomplete) = status.check() {
                    tracing::error!("{incomplete}");
                }
                let without = status.running_without();
                if !without.is_empty() {
                    let names: Vec<&str> = without.iter().map(|layer| layer.as_str()).collect();
                    tracing::warn!(
                        layers = names.join(","),
                        "Lambda sandboxes run without these layers, as --sandbox-allow-missing allows"
                    );
                }
                Some(process)
            }
            None => None,
        };
        let sealer = crate::secrets::open_sealer(data_dir, &store, config.cluster.key.as_ref()).await?;
        let tokens = crate::secrets::token_signer(&store, &sealer).await?;
        let secrets = crate::secrets::load_secrets(&store, &sealer).await?;
        let otlp = config.otlp.as_ref().map(|otlp| OtlpConfig { node: node_id.clone(), ..otlp.clone() });
        let export_counters = ExportCounters::default();
        let metric_export = match &otlp {
            Some(otlp) if otlp.metrics => Some(MetricExport::start(otlp, &export_counters)?),
            _ => None,
        };
        let metrics = Arc::new(Metrics::new(metric_export.as_ref().map(MetricExport::meter), export_counters.clone()));
        let (logs, log_task) = LogWriter::start(store.clone());
        let export = match &otlp {
            Some(otlp) if otlp.traces => Some(SpanExport::start(otlp, export_counters)?),
            _ => None,
        };
        let (recorder, record_task) =
            Recorder::start(store.clone(), logs.clone(), metrics.clone(), node_id.clone(), export);
        let scheduler = Scheduler::new(
            SchedulerConfig {
                account_concurrency: config.account_concurrency,
                max_instances: config.max_instances,
                reap_interval: config.reap_interval,
            },
            recorder.clone(),
        );
        // Every server on a PostgreSQL database shares the limits: this node admits
        // only what the ledger grants it.
        let ledger = (store.backend() == updraft_store::Backend::Postgres)
            .then(|| Arc::new(crate::cluster::Ledger::new(store.clone(), node_id.clone(), config.cluster.dead_after)));
        if let Some(ledger) = &ledger {
            scheduler.set_lender(ledger.clone());
        }
        let events = EventLayer::open(
            store.clone(),
            EventConfig {
                queue: config.event_queue.clone(),
                async_invocations: config.async_invocations,
                node_id,
                dead_after: config.cluster.dead_after,
            },
        )
        .await?;
        let platform = Arc::new(Self {
            recorder,
            events,
            config,
            store,
            artifacts,
            wasm,
            process,
            scheduler,
            metrics,
            live: ArcSwap::from_pointee(LiveState::empty()),
            earlier: crate::versions::EarlierVersions::default(),
            aliases: ArcSwap::from_pointee(crate::aliases::AliasMap::new()),
            canaries: ArcSwap::from_pointee(crate::canary::CanaryMap::new()),
            keys: ArcSwap::from_pointee(KeySet::default()),
            access_keys: ArcSwap::from_pointee(AccessKeySet::default()),
            sealer: ArcSwap::from_pointee(sealer),
            tokens,
            secrets: ArcSwap::from_pointee(secrets),
            change_lock: tokio::sync::Mutex::new(()),
            logs,
            writers: std::sync::Mutex::new(vec![record_task, log_task]),
            membership,
            peers: ArcSwap::from_pointee(Vec::new()),
            suspects: crate::forward::Suspects::default(),
            ledger,
            metric_export,
        });
        // Read before loading: a change another node makes from here on is taken by
        // `follow_changes`.
        let seen = platform.store.control_seq().await?;
        platform.load_keys().await?;
        platform.load_access_keys().await?;
        platform.ensure_admin_key().await?;
        platform.load_functions().await?;
        platform.load_aliases().await?;
        platform.load_canaries().await?;
        crate::canary::watch(Arc::downgrade(&platform));
        let workflows = platform.load_workflows().await?;
        let host: Arc<dyn Host> = platform.clone();
        platform.events.start(Arc::downgrade(&host), workflows).await?;
        platform.membership.start(Arc::downgrade(&platform), platform.config.cluster.heartbeat);
        crate::janitor::start(Arc::downgrade(&platform), platform.store.clone(), platform.config.retention.clone());
        if platform.metric_export.is_some() {
            crate::observe::sample_gauges(Arc::downgrade(&platform));
        }
        platform.follow_changes(seen).await?;
        Ok(platform)
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Whether wasmtime's pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.wasm.pooling()
    }

    /// The process sandbox's layers on this host; `None` without the Lambda runtime.
    pub fn sandbox_status(&self) -> Option<&SandboxStatus> {
        self.process.as_ref().map(ProcessRuntime::sandbox_status)
    }

    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// The current live state (routes and functions); cheap, lock-free.
    pub fn live(&self) -> Arc<LiveState> {
        self.live.load_full()
    }

    /// Matches a request to a live function.
    pub fn route<R>(&self, method: &str, path: &str, found: impl FnOnce(RouteMatch<'_, RouteTarget>) -> R) -> R {
        let live = self.live.load();
        found(live.routes.lookup(method, path))
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub(crate) fn change_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.change_lock
    }

    pub(crate) fn sealer(&self) -> Arc<Sealer> {
        self.sealer.load_full()
    }

    pub(crate) fn set_sealer(&self, sealer: Sealer) {
        self.sealer.store(Arc::new(sealer));
    }

    pub(crate) fn secret_values(&self) -> &ArcSwap<BTreeMap<SecretName, String>> {
        &self.secrets
    }

    pub(crate) fn set_live(&self, state: LiveState) {
        self.live.store(Arc::new(state));
    }

    /// The event layer: asynchronous invocations, topics, webhooks, mail, work queues
    /// and workflows.
    pub fn events(&self) -> &Arc<EventLayer> {
        &self.events
    }

    /// This node's lasting identity (`<data-dir>/node-id`): the owner of its event
    /// leases and workflow executions, released and resumed by its next start.
    pub fn node_id(&self) -> &str {
        self.events.node_id()
    }

    /// Reads the workflows of every deployed app from their stored manifests.
    pub(crate) async fn load_workflows(&self) -> Result<Vec<Arc<Workflow>>, StoreError> {
        let mut workflows = Vec::new();
        for (app, text) in self.store.app_manifests().await? {
            match Manifest::parse(&text, "updraft.toml", &self.config.limits) {
                Ok(manifest) => workflows.extend(Workflow::declared(&manifest)),
                Err(error) => {
                    tracing::warn!(%app, %error, "the stored manifest no longer parses; its workflows are not loaded")
                }
            }
        }
        Ok(workflows)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Waits for running invocations (up to `within`), stops every instance, flushes
    /// records and logs, and closes the database. Call after the listener has drained.
    pub async fn shutdown(self: Arc<Self>, within: Duration) {
        // Queued events stay in the queue for the next start; running ones finish, and
        // workflow executions stop where they are (the next start resumes them).
        self.events.stop();
        if !self.scheduler.drain(within).await {
            tracing::warn!(running = self.scheduler.in_flight(), "invocations still running at shutdown");
        }
        self.scheduler.shutdown();
        self.membership.leave(&self.store, self.node_id()).await;
        let writers = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|p| p.into_inner()));
        let store = self.store.clone();
        // The writers end when the last sender is gone: the scheduler (through its
        // sink) and this platform hold them.
        drop(self);
        for writer in writers {
            if tokio::time::timeout(Duration::from_secs(10), writer).await.is_err() {
                tracing::error!("records or logs did not flush within 10s");
            }
        }
        store.close().await;
    }
}
