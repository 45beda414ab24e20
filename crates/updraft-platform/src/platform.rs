//! `Platform`: the operations behind every API call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use updraft_model::{
    ACCOUNT_ID, AppName, ArtifactDigest, FunctionConfig, FunctionName, Limits, Manifest, ManifestError, REGION,
    RuntimeKind, SecretName, VersionNumber,
};
use updraft_runtime::{
    Event, HttpResponse, Input, InstanceConfig, InvokeContext, InvokeError, LogBudget, PrepareError, Prepared,
    VersionSource, new_trace_id,
};
use updraft_runtime_process::{ProcessRuntime, ProcessRuntimeConfig, ProcessRuntimeError, SandboxLayer, SandboxStatus};
use updraft_runtime_wasm::{Pooling, WasmEngineConfig, WasmRuntime, WasmRuntimeError};
use updraft_scheduler::{Failure, InvocationMeta, PoolSpec, ReservationError, Scheduler, SchedulerConfig, Throttle};
use updraft_store::{
    ArtifactError, ArtifactStore, DeployOutcome, DeployPlan, FunctionRecord, InvocationFilter, LogLineRecord,
    PlannedFunction, Store, StoreError, StoredInvocation, UsageRow, VersionRecord,
};
use updraft_telemetry::{InstanceCounts, Metrics, PriceTable};

use updraft_events::{AsyncConfig, EventConfig, EventLayer, EventQueueConfig, Host, QueueError, Workflow};

use crate::access::{AccessKey, AccessKeyInfo, AccessKeySet, Sealer, TokenSigner, UnsealError};
use crate::keys::{ApiKey, KeySet, Principal, Role, token_hash};
use crate::live::{LiveFunction, LiveState, RouteTarget};
use crate::logs::{LogQuery, LogWriter};
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
}

/// The Lambda runtime's settings.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The jailer's program and leading arguments.
    pub jailer: Vec<std::ffi::OsString>,
    pub python: Option<PathBuf>,
    pub node: Option<PathBuf>,
    /// Sandboxes kept pre-started per managed runtime (see `ProcessRuntimeConfig`).
    pub warm_sandboxes: usize,
    /// Where control-group hierarchies are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Sandbox layers the operator allows to be missing on this host.
    pub allow_missing: Vec<SandboxLayer>,
}

/// This server's API as a function with grants reaches it.
struct GrantApi {
    url: String,
    /// `host:port`, as `allowed_outbound_hosts` names it.
    host: String,
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
    Events(#[from] QueueError),
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

/// What a deploy sends: the manifest text and, per function, the digest of its
/// already uploaded artifact.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub app: AppName,
    pub manifest: String,
    pub artifacts: BTreeMap<FunctionName, ArtifactDigest>,
}

/// Why a deploy was refused. Nothing of a refused deploy is applied.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the manifest is for app {manifest:?} but was deployed as {requested:?}")]
    AppMismatch { requested: AppName, manifest: AppName },
    #[error("function {function:?} has no artifact in the deploy; upload its `source` and name it")]
    MissingArtifact { function: FunctionName },
    #[error("the deploy names an artifact for {function:?}, which the manifest does not declare")]
    UnexpectedArtifact { function: FunctionName },
    #[error("function {function:?}: artifact {digest} is not uploaded; upload it before deploying")]
    ArtifactNotUploaded { function: FunctionName, digest: ArtifactDigest },
    #[error(
        "function {function:?}: runtime {runtime} is not available on this server (it was started without the Lambda runtime)"
    )]
    UnsupportedRuntime { function: FunctionName, runtime: RuntimeKind },
    #[error("function {function:?}: {source}")]
    Component {
        function: FunctionName,
        #[source]
        source: PrepareError,
    },
    #[error(
        "function {function:?} sends its outcomes to function {destination:?}, which is not deployed; deploy it first or fix the name"
    )]
    UnknownDestination { function: FunctionName, destination: FunctionName },
    #[error(
        "function {function:?}: {variable} refers to the secret {secret:?}, which is not set; set it first with `updraft secrets set {secret}`"
    )]
    UnknownSecret { function: FunctionName, variable: String, secret: SecretName },
    #[error(
        "function {function:?}: its environment takes {size} bytes with its secrets' values, over the limit of 4096 (Lambda's); keep large values in files of the bundle"
    )]
    EnvironmentTooLarge { function: FunctionName, size: usize },
    #[error("workflow {workflow:?} belongs to app {owner:?}; rename it here or delete it there")]
    WorkflowOwnedByOtherApp { workflow: FunctionName, owner: AppName },
    #[error(transparent)]
    RouteConflict(#[from] RouteConflict),
    #[error(transparent)]
    Reservation(#[from] ReservationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// Errors of operations on one function.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("function {function:?} not found")]
    NotFound { function: FunctionName },
    #[error("function {function:?} has no version {version}")]
    VersionNotFound { function: FunctionName, version: VersionNumber },
    #[error("function {function:?} has no version before {version} to roll back to")]
    NoEarlierVersion { function: FunctionName, version: VersionNumber },
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for FunctionError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::FunctionNotFound { function } => FunctionError::NotFound { function },
            StoreError::VersionNotFound { function, version } => FunctionError::VersionNotFound { function, version },
            other => FunctionError::Store(other),
        }
    }
}

/// A finished invocation.
#[derive(Debug)]
pub struct Invocation {
    pub response: HttpResponse,
    pub version: VersionNumber,
    pub duration: Duration,
    pub cold: bool,
}

/// A failed invocation.
#[derive(Debug, thiserror::Error)]
pub enum InvokeFailure {
    #[error("function {function:?} not found")]
    NotFound { function: FunctionName },
    #[error("function {function:?} is throttled: {throttle}")]
    Throttled { function: FunctionName, throttle: Throttle },
    #[error("function {function:?} failed")]
    Function {
        function: FunctionName,
        #[source]
        error: InvokeError,
    },
}

/// The running platform.
pub struct Platform {
    config: PlatformConfig,
    store: Store,
    artifacts: ArtifactStore,
    wasm: WasmRuntime,
    process: Option<ProcessRuntime>,
    recorder: Arc<Recorder>,
    /// The event layer: asynchronous events, topics, webhooks, schedules, work queues
    /// and workflows.
    events: Arc<EventLayer>,
    scheduler: Scheduler<Input, HttpResponse>,
    metrics: Arc<Metrics>,
    live: ArcSwap<LiveState>,
    keys: ArcSwap<KeySet>,
    access_keys: ArcSwap<AccessKeySet>,
    /// Seals and opens what the store keeps secret; swapped when the key is rotated.
    sealer: ArcSwap<Sealer>,
    /// Signs function tokens.
    tokens: TokenSigner,
    /// Every secret, in the clear, by name (like access keys: an instance's start
    /// needs no database round trip).
    secrets: ArcSwap<BTreeMap<SecretName, String>>,
    /// Deploys, rollbacks and deletes run one at a time: each computes the next live
    /// state from the current one.
    change_lock: tokio::sync::Mutex<()>,
    logs: LogWriter,
    /// The log and record writers, awaited on shutdown so that nothing is lost.
    writers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
        let sealer = crate::secrets::open_sealer(data_dir, &store).await?;
        let tokens = crate::secrets::token_signer(&store, &sealer).await?;
        let secrets = crate::secrets::load_secrets(&store, &sealer).await?;
        let metrics = Arc::new(Metrics::default());
        let (logs, log_task) = LogWriter::start(store.clone());
        let (recorder, record_task) = Recorder::start(store.clone(), logs.clone(), metrics.clone());
        let scheduler = Scheduler::new(
            SchedulerConfig {
                account_concurrency: config.account_concurrency,
                max_instances: config.max_instances,
                reap_interval: config.reap_interval,
            },
            recorder.clone(),
        );
        let events = EventLayer::open(
            store.clone(),
            EventConfig { queue: config.event_queue.clone(), async_invocations: config.async_invocations, node_id },
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
            keys: ArcSwap::from_pointee(KeySet::default()),
            access_keys: ArcSwap::from_pointee(AccessKeySet::default()),
            sealer: ArcSwap::from_pointee(sealer),
            tokens,
            secrets: ArcSwap::from_pointee(secrets),
            change_lock: tokio::sync::Mutex::new(()),
            logs,
            writers: std::sync::Mutex::new(vec![record_task, log_task]),
        });
        platform.load_keys().await?;
        platform.load_access_keys().await?;
        platform.ensure_admin_key().await?;
        platform.load_functions().await?;
        let workflows = platform.load_workflows().await?;
        let host: Arc<dyn Host> = platform.clone();
        platform.events.start(Arc::downgrade(&host), workflows).await?;
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

    /// What every deploy of Lambda functions says while their sandboxes run without a
    /// layer the operator allowed to be missing.
    pub fn deploy_warnings(&self, outcome: &DeployOutcome) -> Vec<String> {
        let Some(status) = self.sandbox_status() else { return Vec::new() };
        let without = status.running_without();
        let live = self.live();
        let processes: Vec<&str> = outcome
            .functions
            .iter()
            .filter(|f| live.functions.get(&f.name).is_some_and(|f| f.config.runtime != RuntimeKind::Wasm))
            .map(|f| f.name.as_str())
            .collect();
        if without.is_empty() || processes.is_empty() {
            return Vec::new();
        }
        let layers: Vec<&str> = without.iter().map(|layer| layer.as_str()).collect();
        vec![format!(
            "{} run{} in sandboxes without {} (the server was started with --sandbox-allow-missing)",
            processes.join(", "),
            if processes.len() == 1 { "s" } else { "" },
            layers.join(", ")
        )]
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

    // ---- keys ----

    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.keys.load().authenticate(token)
    }

    async fn load_keys(&self) -> Result<(), StoreError> {
        let mut keys = KeySet::default();
        for record in self.store.api_key_list().await? {
            if let Some(role) = Role::parse(&record.role) {
                keys.insert(record.secret_hash, Principal { key_id: record.id, role });
            }
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Creates a key and returns it; its secret is not kept.
    pub async fn api_key_create(&self, role: Role) -> Result<ApiKey, StoreError> {
        let key = ApiKey::generate(role);
        self.store
            .api_key_insert(&updraft_store::ApiKeyRecord {
                id: key.id.clone(),
                secret_hash: token_hash(&key.token),
                role: role.as_str().to_owned(),
                created_at: updraft_model::now_millis(),
            })
            .await?;
        self.load_keys().await?;
        Ok(key)
    }

    /// On first start, creates the admin key and writes it to `<data-dir>/admin-token`
    /// (mode 0600), where the local CLI finds it. The file is written before the key is
    /// stored: a crash in between leaves a file whose key does not work (and the next
    /// start makes another), never a stored key that nobody holds.
    async fn ensure_admin_key(&self) -> Result<(), StartError> {
        let path = self.config.data_dir.join("admin-token");
        if !self.keys.load().is_empty() {
            if !path.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "API keys exist but the admin token file is missing; use a key you kept, or set UPDRAFT_TOKEN"
                );
            }
            return Ok(());
        }
        let key = ApiKey::generate(Role::Admin);
        write_private_file(&path, format!("{}\n", key.token).as_bytes())
            .map_err(|source| StartError::AdminToken { path: path.clone(), source })?;
        let record = updraft_store::ApiKeyRecord {
            id: key.id.clone(),
            secret_hash: token_hash(&key.token),
            role: Role::Admin.as_str().to_owned(),
            created_at: updraft_model::now_millis(),
        };
        if let Err(error) = self.store.api_key_insert(&record).await {
            let _ = std::fs::remove_file(&path);
            return Err(error.into());
        }
        self.load_keys().await?;
        tracing::info!(path = %path.display(), "created the admin API key");
        Ok(())
    }

    // ---- access keys (SigV4) ----

    /// The secret and principal of an access key, for checking a SigV4 signature.
    pub fn access_key_secret(&self, id: &str) -> Option<(String, Principal)> {
        self.access_keys.load().get(id).cloned()
    }

    async fn load_access_keys(&self) -> Result<(), StartError> {
        let mut keys = AccessKeySet::default();
        for record in self.store.access_key_list().await? {
            if let Some(role) = Role::parse(&record.role) {
                let secret = self.sealer.load().open(&record.secret_sealed)?;
                keys.insert(record.id.clone(), secret, Principal { key_id: record.id, role });
            }
        }
        self.access_keys.store(Arc::new(keys));
        Ok(())
    }

    /// Creates an access key; its secret is returned this once.
    pub async fn access_key_create(&self, role: Role) -> Result<AccessKey, StoreError> {
        let _change = self.change_lock.lock().await;
        let key = AccessKey::generate(role);
        self.store
            .access_key_insert(&updraft_store::AccessKeyRecord {
                id: key.id.clone(),
                secret_sealed: self.sealer.load().seal(&key.secret),
                role: role.as_str().to_owned(),
                created_at: updraft_model::now_millis(),
            })
            .await?;
        let mut keys = AccessKeySet::default();
        for (id, entry) in self.access_keys.load().iter() {
            keys.insert(id.clone(), entry.0.clone(), entry.1.clone());
        }
        keys.insert(key.id.clone(), key.secret.clone(), Principal { key_id: key.id.clone(), role });
        self.access_keys.store(Arc::new(keys));
        Ok(key)
    }

    /// Every access key, oldest first, without secrets.
    pub async fn access_key_list(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
        Ok(self
            .store
            .access_key_list()
            .await?
            .into_iter()
            .filter_map(|record| {
                Some(AccessKeyInfo { role: Role::parse(&record.role)?, id: record.id, created_at: record.created_at })
            })
            .collect())
    }

    /// Deletes an access key; false when there was none.
    pub async fn access_key_delete(&self, id: &str) -> Result<bool, StoreError> {
        let _change = self.change_lock.lock().await;
        let deleted = self.store.access_key_delete(id).await?;
        let mut keys = AccessKeySet::default();
        for (key_id, entry) in self.access_keys.load().iter().filter(|(key_id, _)| key_id.as_str() != id) {
            keys.insert(key_id.clone(), entry.0.clone(), entry.1.clone());
        }
        self.access_keys.store(Arc::new(keys));
        Ok(deleted)
    }

    // ---- artifacts ----

    /// Starts storing an uploaded artifact, written to disk and hashed as it arrives.
    pub async fn artifact_writer(&self) -> Result<ArtifactWriter, ArtifactError> {
        let artifacts = self.artifacts.clone();
        let upload = tokio::task::spawn_blocking(move || artifacts.upload()).await.map_err(join_error)??;
        Ok(ArtifactWriter { upload: Some(upload), buffer: Vec::new() })
    }

    pub fn artifact_exists(&self, digest: &ArtifactDigest) -> bool {
        self.artifacts.contains(digest)
    }

    pub fn artifact_path(&self, digest: &ArtifactDigest) -> PathBuf {
        self.artifacts.path(digest)
    }

    // ---- deploy ----

    /// Deploys an app: validates everything, compiles what changed, then commits all
    /// of it in one transaction and swaps the live state. A refused or interrupted
    /// deploy changes nothing: the previous versions keep serving.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeployOutcome, DeployError> {
        let manifest = Manifest::parse(&request.manifest, "updraft.toml", &self.config.limits)?;
        if manifest.app != request.app {
            return Err(DeployError::AppMismatch { requested: request.app, manifest: manifest.app });
        }
        let live = self.live.load();
        for (name, spec) in &manifest.functions {
            for destination in [&spec.config.on_success, &spec.config.on_failure].into_iter().flatten() {
                if let updraft_model::Destination::Function(target) = destination
                    && !manifest.functions.contains_key(target)
                    && !live.functions.contains_key(target)
                {
                    return Err(DeployError::UnknownDestination {
                        function: name.clone(),
                        destination: target.clone(),
                    });
                }
            }
        }
        drop(live);
        for name in manifest.workflows.keys() {
            if let Some(other) = self.events.workflows().get(name).filter(|workflow| workflow.app != manifest.app) {
                return Err(DeployError::WorkflowOwnedByOtherApp { workflow: name.clone(), owner: other.app.clone() });
            }
        }
        if let Some(function) = request.artifacts.keys().find(|f| !manifest.functions.contains_key(*f)) {
            return Err(DeployError::UnexpectedArtifact { function: function.clone() });
        }
        let mut planned = Vec::new();
        for (name, spec) in &manifest.functions {
            if spec.config.runtime != RuntimeKind::Wasm && self.process.is_none() {
                return Err(DeployError::UnsupportedRuntime { function: name.clone(), runtime: spec.config.runtime });
            }
            let Some(digest) = request.artifacts.get(name) else {
                return Err(DeployError::MissingArtifact { function: name.clone() });
            };
            if !self.artifacts.contains(digest) {
                return Err(DeployError::ArtifactNotUploaded { function: name.clone(), digest: digest.clone() });
            }
            planned.push(PlannedFunction {
                name: name.clone(),
                artifact: digest.clone(),
                config: spec.config.clone(),
                fingerprint: fingerprint(&spec.config, digest),
            });
        }

        let _guard = self.change_lock.lock().await;
        let current = self.live.load_full();
        // Under the change lock, which deleting a secret takes too.
        for function in &planned {
            self.check_secrets(&function.name, &function.config)?;
        }

        // The state this deploy would make: other apps' functions as they are, this
        // app's as the manifest says. Check it whole before touching anything.
        let others: BTreeMap<&FunctionName, &Arc<LiveFunction>> =
            current.functions.iter().filter(|(_, function)| function.app != manifest.app).collect();
        if let Some(function) = planned.iter().find(|f| others.contains_key(&f.name)) {
            let owner = others[&function.name].app.clone();
            return Err(StoreError::FunctionOwnedByOtherApp { function: function.name.clone(), owner }.into());
        }
        LiveState::check_routes(
            others
                .iter()
                .map(|(name, function)| (*name, &*function.config))
                .chain(planned.iter().map(|f| (&f.name, &f.config))),
        )?;
        let removed: Vec<FunctionName> = current
            .functions
            .values()
            .filter(|f| f.app == manifest.app && !manifest.functions.contains_key(&f.name))
            .map(|f| f.name.clone())
            .collect();
        let reservations: Vec<_> = planned.iter().map(|f| (f.name.clone(), f.config.concurrency)).collect();
        self.scheduler.check_reservations(&reservations, &removed)?;

        // Compile what changed before touching the database, so a broken component
        // is refused with nothing applied.
        let mut prepared: BTreeMap<FunctionName, Arc<dyn Prepared<Input, HttpResponse>>> = BTreeMap::new();
        for function in &planned {
            let unchanged =
                current.functions.get(&function.name).is_some_and(|live| live.fingerprint == function.fingerprint);
            if !unchanged {
                let code = self.prepare(&function.name, &function.artifact, &function.config).await?;
                prepared.insert(function.name.clone(), code);
            }
        }

        let outcome = self
            .store
            .app_deploy(&DeployPlan {
                app: manifest.app.clone(),
                manifest: request.manifest.clone(),
                functions: planned.clone(),
            })
            .await?;

        let mut next: BTreeMap<FunctionName, Arc<LiveFunction>> =
            others.into_iter().map(|(name, function)| (name.clone(), function.clone())).collect();
        let mut replaced = Vec::new();
        for function in &planned {
            let deployed = outcome.functions.iter().find(|f| f.name == function.name);
            let live = match (prepared.remove(&function.name), deployed) {
                (Some(code), Some(deployed)) => {
                    replaced.extend(current.functions.get(&function.name).cloned());
                    let token = outcome.tokens.get(&function.name).cloned().unwrap_or_default();
                    let version = LiveVersion {
                        name: &function.name,
                        app: &manifest.app,
                        version: deployed.version,
                        config: &function.config,
                        fingerprint: &function.fingerprint,
                        token,
                    };
                    // The secrets were checked before the commit, under the change lock
                    // that deleting a secret takes too.
                    self.live_function(&version, code)?
                }
                _ => current.functions[&function.name].clone(),
            };
            next.insert(function.name.clone(), live);
        }
        let state = LiveState::build(next)?;
        self.live.store(Arc::new(state));
        // The app's workflows are now the manifest's.
        self.events.workflows_replace(&manifest.app, Workflow::declared(&manifest));
        for old in replaced {
            old.pool.retire();
        }
        for name in &outcome.removed {
            if let Some(old) = current.functions.get(name) {
                old.pool.retire();
            }
            self.scheduler.remove_function(name);
        }
        tracing::info!(
            app = %manifest.app,
            generation = outcome.generation,
            changed = outcome.functions.iter().filter(|f| f.changed).count(),
            removed = outcome.removed.len(),
            "deployed"
        );
        Ok(outcome)
    }

    /// Prepares a version's code with the runtime its configuration names.
    async fn prepare(
        &self,
        function: &FunctionName,
        digest: &ArtifactDigest,
        config: &FunctionConfig,
    ) -> Result<Arc<dyn Prepared<Input, HttpResponse>>, DeployError> {
        let runtime: &dyn updraft_runtime::Runtime<Input, HttpResponse> = match config.runtime {
            RuntimeKind::Wasm => &self.wasm,
            other => match &self.process {
                Some(process) => process,
                None => return Err(DeployError::UnsupportedRuntime { function: function.clone(), runtime: other }),
            },
        };
        let mut config = config.clone();
        if let Some(api) = self.grant_api(&config) {
            // A function with grants reaches this server's API, and only that is added.
            config.allowed_outbound_hosts.push(api.host);
        }
        let source = VersionSource {
            function: function.clone(),
            artifact: digest.clone(),
            artifact_path: self.artifacts.path(digest),
            config,
        };
        runtime.prepare(source).await.map_err(|source| DeployError::Component { function: function.clone(), source })
    }

    /// Registers a version with the scheduler and makes its live entry: its environment
    /// is the manifest's, its secrets' values, Updraft's own variables, and for grants
    /// the API's address and the function's token.
    pub(crate) fn live_function(
        &self,
        version: &LiveVersion<'_>,
        code: Arc<dyn Prepared<Input, HttpResponse>>,
    ) -> Result<Arc<LiveFunction>, DeployError> {
        let config = version.config;
        let mut env = self.resolved_env(version.name, config)?;
        env.push(("UPDRAFT_FUNCTION_NAME".into(), version.name.to_string()));
        env.push(("UPDRAFT_FUNCTION_VERSION".into(), version.version.to_string()));
        env.push(("UPDRAFT_FUNCTION_MEMORY_SIZE".into(), (config.memory.bytes() / (1024 * 1024)).to_string()));
        let mut allowed_outbound_hosts = config.allowed_outbound_hosts.clone();
        if let Some(api) = self.grant_api(config) {
            env.push(("UPDRAFT_API_URL".into(), api.url));
            env.push(("UPDRAFT_TOKEN".into(), self.tokens.token(version.name, &version.token)));
            allowed_outbound_hosts.push(api.host);
        }
        let spec = PoolSpec {
            function: version.name.clone(),
            version: version.version,
            concurrency: config.concurrency,
            timeout: config.timeout,
            idle_timeout: config.idle_timeout,
            min_instances: config.min_instances,
            instance: InstanceConfig {
                memory_limit: config.memory.bytes(),
                env: env.into(),
                allowed_outbound_hosts: allowed_outbound_hosts.into(),
                max_response_bytes: self.config.limits.max_sync_payload as usize,
                reuse_state: config.instance_reuse,
            },
        };
        Ok(Arc::new(LiveFunction {
            name: version.name.clone(),
            app: version.app.clone(),
            version: version.version,
            fingerprint: version.fingerprint.to_owned(),
            config: Arc::new(config.clone()),
            token: version.token.clone(),
            pool: self.scheduler.register(spec, code),
        }))
    }

    /// The manifest's environment with each secret's value put in.
    fn resolved_env(
        &self,
        function: &FunctionName,
        config: &FunctionConfig,
    ) -> Result<Vec<(String, String)>, DeployError> {
        let secrets = self.secrets.load();
        let mut env: Vec<(String, String)> = config.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (variable, secret) in &config.secret_env {
            let value = secrets.get(secret).ok_or_else(|| DeployError::UnknownSecret {
                function: function.clone(),
                variable: variable.clone(),
                secret: secret.clone(),
            })?;
            env.push((variable.clone(), value.clone()));
        }
        Ok(env)
    }

    /// Refuses a configuration whose secrets do not exist, or whose environment, with
    /// their values, is over Lambda's limit.
    pub(crate) fn check_secrets(&self, function: &FunctionName, config: &FunctionConfig) -> Result<(), DeployError> {
        let env = self.resolved_env(function, config)?;
        let size = updraft_model::environment_size(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if size > updraft_model::MAX_ENVIRONMENT_BYTES {
            return Err(DeployError::EnvironmentTooLarge { function: function.clone(), size });
        }
        for trigger in &config.triggers {
            if let updraft_model::Trigger::Webhook(updraft_model::WebhookTrigger { secret: Some(secret), .. }) = trigger
                && !self.secrets.load().contains_key(secret)
            {
                return Err(DeployError::UnknownSecret {
                    function: function.clone(),
                    variable: "webhook secret".into(),
                    secret: secret.clone(),
                });
            }
        }
        Ok(())
    }

    /// Where a function with grants reaches this server's API; `None` without grants
    /// (or without a known API address).
    fn grant_api(&self, config: &FunctionConfig) -> Option<GrantApi> {
        if config.publishes.is_empty() && config.starts.is_empty() {
            return None;
        }
        let url = self.config.api_url.clone()?;
        let host = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest).trim_end_matches('/').to_owned();
        Some(GrantApi { url, host })
    }

    /// The live function a function token (`UPDRAFT_TOKEN`) was given to, if the
    /// token is genuine, of the function's current generation and identity (a rotation
    /// or a delete revokes it), and the function is still deployed.
    pub fn token_function(&self, token: &str) -> Option<Arc<LiveFunction>> {
        let claim = TokenSigner::claim(token)?;
        let function = self.live().functions.get(&claim.function).cloned()?;
        self.tokens.verify(&claim, &function.token).then_some(function)
    }

    async fn load_functions(&self) -> Result<(), StartError> {
        let mut functions = BTreeMap::new();
        let records = self.store.function_list().await?;
        let reservations: Vec<_> = records.iter().map(|r| (r.name.clone(), r.current.config.concurrency)).collect();
        if let Err(error) = self.scheduler.check_reservations(&reservations, &[]) {
            tracing::warn!(%error, "deployed functions reserve more than the account limit; unreserved functions will be throttled");
        }
        for record in records {
            let live =
                self.load_version(&record.app, &record.current, record.token.clone()).await.map_err(|source| {
                    StartError::LoadFunction {
                        function: record.name.clone(),
                        version: record.current.version,
                        source: Box::new(source),
                    }
                })?;
            functions.insert(record.name.clone(), live);
        }
        let count = functions.len();
        self.live.store(Arc::new(LiveState::build(functions).map_err(StartError::Routes)?));
        tracing::info!(functions = count, "loaded deployed functions");
        Ok(())
    }

    async fn load_version(
        &self,
        app: &AppName,
        version: &VersionRecord,
        token: updraft_store::TokenIdentity,
    ) -> Result<Arc<LiveFunction>, DeployError> {
        let code = self.prepare(&version.function, &version.artifact, &version.config).await?;
        let live = LiveVersion {
            name: &version.function,
            app,
            version: version.version,
            config: &version.config,
            fingerprint: &version.fingerprint,
            token,
        };
        self.live_function(&live, code)
    }

    // ---- functions ----

    pub async fn function_list(&self) -> Result<Vec<FunctionRecord>, StoreError> {
        self.store.function_list().await
    }

    pub async fn function_get(&self, name: &FunctionName) -> Result<FunctionRecord, FunctionError> {
        self.store.function_get(name).await?.ok_or_else(|| FunctionError::NotFound { function: name.clone() })
    }

    pub async fn version_list(&self, name: &FunctionName) -> Result<Vec<VersionRecord>, FunctionError> {
        let versions = self.store.version_list(name).await?;
        if versions.is_empty() {
            return Err(FunctionError::NotFound { function: name.clone() });
        }
        Ok(versions)
    }

    /// Serves an earlier version again: `to`, or the newest one older than the
    /// version serving now.
    pub async fn function_rollback(
        &self,
        name: &FunctionName,
        to: Option<VersionNumber>,
    ) -> Result<FunctionRecord, FunctionError> {
        let _guard = self.change_lock.lock().await;
        let record = self.function_get(name).await?;
        let versions = self.store.version_list(name).await?;
        let target = match to {
            Some(version) => versions
                .into_iter()
                .find(|v| v.version == version)
                .ok_or(FunctionError::VersionNotFound { function: name.clone(), version })?,
            None => versions
                .into_iter()
                .find(|v| v.version < record.current.version)
                .ok_or(FunctionError::NoEarlierVersion { function: name.clone(), version: record.current.version })?,
        };
        let current = self.live.load_full();
        let mut next = current.functions.clone();
        next.remove(name);
        LiveState::check_routes(next.iter().map(|(name, f)| (name, &*f.config)).chain([(name, &target.config)]))
            .map_err(DeployError::from)?;
        self.scheduler
            .check_reservations(&[(name.clone(), target.config.concurrency)], &[])
            .map_err(DeployError::from)?;
        self.check_secrets(name, &target.config)?;
        let code = self.prepare(name, &target.artifact, &target.config).await?;
        let record = self.store.function_rollback(name, target.version).await?;
        let version = LiveVersion {
            name,
            app: &record.app,
            version: target.version,
            config: &target.config,
            fingerprint: &target.fingerprint,
            token: record.token.clone(),
        };
        next.insert(name.clone(), self.live_function(&version, code)?);
        let state = LiveState::build(next).map_err(DeployError::from)?;
        self.live.store(Arc::new(state));
        if let Some(old) = current.functions.get(name) {
            old.pool.retire();
        }
        tracing::info!(function = %name, version = %target.version, "rolled back");
        Ok(record)
    }

    pub async fn function_delete(&self, name: &FunctionName) -> Result<(), FunctionError> {
        let _guard = self.change_lock.lock().await;
        if !self.store.function_delete(name).await? {
            return Err(FunctionError::NotFound { function: name.clone() });
        }
        let current = self.live.load_full();
        let mut next = current.functions.clone();
        let old = next.remove(name);
        let state = LiveState::build(next).map_err(DeployError::from)?;
        self.live.store(Arc::new(state));
        if let Some(old) = old {
            old.pool.retire();
        }
        self.scheduler.remove_function(name);
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    // ---- invoke ----

    /// Invokes a live function by name.
    pub async fn invoke_by_name(
        &self,
        name: &FunctionName,
        input: Input,
        context: InvokeContext,
    ) -> Result<Invocation, InvokeFailure> {
        let function = self
            .live
            .load()
            .functions
            .get(name)
            .cloned()
            .ok_or_else(|| InvokeFailure::NotFound { function: name.clone() })?;
        self.invoke(&function, input, context).await
    }

    /// Runs one invocation of `function` through the scheduler. Its record, log lines
    /// and metrics are written off this path.
    pub async fn invoke(
        &self,
        function: &LiveFunction,
        input: Input,
        context: InvokeContext,
    ) -> Result<Invocation, InvokeFailure> {
        let request_id = context.request_id.clone();
        let meta = InvocationMeta {
            id: context.request_id,
            trigger: context.trigger,
            trace_id: context.trace_id.unwrap_or_else(new_trace_id),
        };
        match self.scheduler.invoke(&function.pool, input, meta).await {
            Ok(done) => Ok(Invocation {
                response: done.output,
                version: done.version,
                duration: done.duration,
                cold: done.cold,
            }),
            Err(Failure::Throttled(throttle)) => {
                tracing::debug!(function = %function.name, request_id, %throttle, "throttled");
                Err(InvokeFailure::Throttled { function: function.name.clone(), throttle })
            }
            Err(Failure::Function(error)) => {
                static FAILED: LogBudget = LogBudget::new(20, Duration::from_secs(1));
                if let Some(suppressed) = FAILED.admit() {
                    tracing::info!(function = %function.name, request_id, %error, suppressed, "invocation failed");
                }
                Err(InvokeFailure::Function { function: function.name.clone(), error })
            }
        }
    }

    /// Invokes `function` with an event (Lambda's Invoke API), optionally collecting the
    /// invocation's log text (`LogType: Tail`).
    pub async fn invoke_event(
        &self,
        function: &LiveFunction,
        event: Event,
        context: InvokeContext,
        tail: bool,
    ) -> (Result<Invocation, InvokeFailure>, Option<String>) {
        let waiter = tail.then(|| self.recorder.tail(&context.request_id));
        let result = self.invoke(function, Input::Event(event), context).await;
        (result, waiter.and_then(|waiter| waiter.take()))
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
    async fn load_workflows(&self) -> Result<Vec<Arc<Workflow>>, StoreError> {
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

    /// The live function `name` if `qualifier` names what it serves: nothing,
    /// `$LATEST`, or its version number. Earlier versions do not serve invocations.
    pub fn qualified_function(&self, name: &FunctionName, qualifier: Option<&str>) -> Option<Arc<LiveFunction>> {
        let function = self.live.load().functions.get(name).cloned()?;
        match qualifier {
            None | Some("$LATEST") => Some(function),
            Some(version) if version == function.version.to_string() => Some(function),
            Some(_) => None,
        }
    }

    // ---- records, usage, metrics ----

    /// Invocation records, newest first.
    pub async fn invocations(&self, filter: &InvocationFilter) -> Result<Vec<StoredInvocation>, StoreError> {
        self.store.invocation_list(filter).await
    }

    /// Hourly usage since `since` (ms since the epoch).
    pub async fn usage(&self, since: i64, function: Option<&FunctionName>) -> Result<Vec<UsageRow>, StoreError> {
        self.store.usage(since, function).await
    }

    pub fn prices(&self) -> &PriceTable {
        &self.config.prices
    }

    /// Every metric in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let mut counts: BTreeMap<String, InstanceCounts> = BTreeMap::new();
        for pool in self.scheduler.stats() {
            let function = pool.function.to_string();
            let entry =
                counts.entry(function.clone()).or_insert_with(|| InstanceCounts { function, ..Default::default() });
            entry.idle += pool.idle;
            entry.busy += pool.busy;
            entry.starting += pool.starting;
        }
        let counts: Vec<_> = counts.into_values().collect();
        self.metrics.render(&counts)
    }

    /// The scheduler's pools, for tests and diagnostics.
    pub fn scheduler_stats(&self) -> Vec<updraft_scheduler::PoolStats> {
        self.scheduler.stats()
    }

    // ---- logs ----

    /// A function's log lines; with `wait`, blocks until one arrives or the wait ends.
    pub async fn logs(&self, query: &LogQuery) -> Result<Vec<LogLineRecord>, StoreError> {
        let deadline = query.wait.map(|wait| tokio::time::Instant::now() + wait);
        loop {
            // Register interest before reading, so a batch landing in between still
            // wakes us.
            let appended = self.logs.appended.notified();
            let lines = self.store.log_list(&query.function, query.after, query.limit, query.tail).await?;
            let Some(deadline) = deadline.filter(|_| lines.is_empty()) else {
                return Ok(lines);
            };
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
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

/// An artifact being uploaded: bytes are gathered a megabyte at a time and written
/// (and hashed) on a blocking thread, so an upload holds at most that much memory.
pub struct ArtifactWriter {
    upload: Option<updraft_store::ArtifactUpload>,
    buffer: Vec<u8>,
}

/// How much of an upload is gathered before it is written.
const UPLOAD_BUFFER: usize = 1 << 20;

impl ArtifactWriter {
    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.upload.as_ref().map_or(0, |upload| upload.size()) + self.buffer.len() as u64
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ArtifactError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= UPLOAD_BUFFER { self.flush().await } else { Ok(()) }
    }

    async fn flush(&mut self) -> Result<(), ArtifactError> {
        let mut upload = self.upload.take().expect("a writer holds its upload until finished");
        let buffer = std::mem::take(&mut self.buffer);
        let (upload, written) = tokio::task::spawn_blocking(move || {
            let written = upload.write(&buffer);
            (upload, written)
        })
        .await
        .map_err(join_error)?;
        self.upload = Some(upload);
        written
    }

    /// Checks the bytes against `expected` and stores them under it.
    pub async fn finish(mut self, expected: ArtifactDigest) -> Result<ArtifactDigest, ArtifactError> {
        self.flush().await?;
        let upload = self.upload.take().expect("a writer holds its upload until finished");
        tokio::task::spawn_blocking(move || upload.finish(&expected)).await.map_err(join_error)?
    }
}

fn join_error(join: tokio::task::JoinError) -> ArtifactError {
    ArtifactError::Io { path: PathBuf::new(), source: std::io::Error::other(join) }
}

/// A version about to go live: what `Platform::live_function` builds from.
pub(crate) struct LiveVersion<'a> {
    pub(crate) name: &'a FunctionName,
    pub(crate) app: &'a AppName,
    pub(crate) version: VersionNumber,
    pub(crate) config: &'a FunctionConfig,
    pub(crate) fingerprint: &'a str,
    pub(crate) token: updraft_store::TokenIdentity,
}

/// A version's identity: its configuration plus its code.
fn fingerprint(config: &updraft_model::FunctionConfig, artifact: &ArtifactDigest) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(config.fingerprint().as_bytes());
    hasher.update(artifact.as_str().as_bytes());
    hex::encode(hasher.finalize())
}

/// This node's id, kept in `<data-dir>/node-id` (created on first start).
fn node_id(data_dir: &Path) -> Result<String, StartError> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            write_private_file(&path, id.as_bytes()).map_err(|source| StartError::DataDir { path, source })?;
            Ok(id)
        }
    }
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::DataDir { path: path.to_owned(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| StartError::DataDir { path: path.to_owned(), source })?;
    }
    Ok(())
}

pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
