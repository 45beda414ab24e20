//! Deploys: an app's manifest checked, its code prepared, and everything committed at
//! once, then made live; what a version needs to go live, and loading the deployed
//! versions at start.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_model::{
    AppName, ArtifactDigest, FunctionConfig, FunctionName, Manifest, ManifestError, RecursiveLoop, RuntimeKind,
    SecretName, VersionNumber,
};
use updraft_runtime::{FunctionResponse, Input, InstanceConfig, PrepareError, Prepared, VersionSource};
use updraft_scheduler::{PoolSpec, ReservationError};
use updraft_store::{ArtifactError, DeployPlan, PlannedFunction, SharedArtifactError, StoreError, VersionRecord};

use updraft_events::Workflow;

use crate::access::TokenSigner;
use crate::live::{LiveFunction, LiveState};
use crate::routes::RouteConflict;
use crate::{Deployed, Platform, StartError};

/// This server's API as a function with grants reaches it.
pub(crate) struct GrantApi {
    url: String,
    /// `host:port`, as `allowed_outbound_hosts` names it.
    host: String,
}

/// What a deploy sends: the manifest text and, per function, the digest of its
/// already uploaded artifact.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub app: AppName,
    pub manifest: String,
    pub artifacts: BTreeMap<FunctionName, ArtifactDigest>,
    /// Start a canary for each function the deploy changes (`crate::canary`).
    pub canary: Option<crate::CanarySpec>,
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
    #[error(
        "function {function:?}: alias {alias:?} names version {version}, which it does not have; `updraft versions {function}` lists them"
    )]
    AliasVersionNotFound { function: FunctionName, alias: updraft_model::AliasName, version: VersionNumber },
    #[error("workflow {workflow:?} belongs to app {owner:?}; rename it here or delete it there")]
    WorkflowOwnedByOtherApp { workflow: FunctionName, owner: AppName },
    #[error("function {function:?} belongs to app {owner:?}; delete it there or pick another name")]
    FunctionOwnedByOtherApp { function: FunctionName, owner: AppName },
    #[error(transparent)]
    RouteConflict(#[from] RouteConflict),
    #[error(transparent)]
    Reservation(#[from] ReservationError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    SharedArtifact(#[from] SharedArtifactError),
}

impl From<StoreError> for DeployError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::FunctionOwnedByOtherApp { function, owner } => {
                DeployError::FunctionOwnedByOtherApp { function, owner }
            }
            other => DeployError::Store(other),
        }
    }
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
pub fn fingerprint(config: &updraft_model::FunctionConfig, artifact: &ArtifactDigest) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(config.fingerprint().as_bytes());
    hasher.update(artifact.as_str().as_bytes());
    hex::encode(hasher.finalize())
}

impl Platform {
    /// What every deploy of Lambda functions says while their sandboxes run without a
    /// layer the operator allowed to be missing.
    pub fn deploy_warnings(&self, outcome: &Deployed) -> Vec<String> {
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

    /// Deploys an app: validates everything, compiles what changed, then commits all
    /// of it in one transaction and swaps the live state. A refused or interrupted
    /// deploy changes nothing: the previous versions keep serving.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Deployed, DeployError> {
        let manifest = Manifest::parse(&request.manifest, "updraft.toml", &self.config.limits)?;
        if manifest.app != request.app {
            return Err(DeployError::AppMismatch { requested: request.app, manifest: manifest.app });
        }
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
            let Some(digest) = request.artifacts.get(name) else {
                return Err(DeployError::MissingArtifact { function: name.clone() });
            };
            planned.push(PlannedFunction {
                name: name.clone(),
                artifact: digest.clone(),
                config: spec.config.clone(),
                fingerprint: fingerprint(&spec.config, digest),
                aliases: spec.aliases.clone(),
            });
        }
        let _guard = self.change_lock.lock().await;
        let canary = request.canary.map(|canary| updraft_store::CanaryPlan {
            share_ppm: (canary.share.clamp(0.0, 1.0) * 1e6).round() as u32,
            duration_ms: u64::try_from(canary.duration.as_millis()).unwrap_or(u64::MAX),
        });
        let plan = DeployPlan { app: manifest.app.clone(), manifest: request.manifest, functions: planned, canary };
        self.apply(plan, Some(Workflow::declared(&manifest))).await
    }

    /// Makes `plan` the app's state: checks it whole, compiles what changed, commits
    /// it in one transaction and swaps the live state. `workflows`, when given, become
    /// the app's. The caller holds the change lock. A refused or interrupted plan
    /// changes nothing: the previous versions keep serving.
    pub(crate) async fn apply(
        &self,
        plan: DeployPlan,
        workflows: Option<Vec<Arc<Workflow>>>,
    ) -> Result<Deployed, DeployError> {
        let current = self.live.load_full();
        for function in &plan.functions {
            for destination in [&function.config.on_success, &function.config.on_failure].into_iter().flatten() {
                if let updraft_model::Destination::Function(target) = destination
                    && !plan.functions.iter().any(|f| f.name == *target)
                    && !current.functions.contains_key(target)
                {
                    return Err(DeployError::UnknownDestination {
                        function: function.name.clone(),
                        destination: target.clone(),
                    });
                }
            }
        }
        for function in &plan.functions {
            if function.config.runtime != RuntimeKind::Wasm && self.process.is_none() {
                return Err(DeployError::UnsupportedRuntime {
                    function: function.name.clone(),
                    runtime: function.config.runtime,
                });
            }
            if !self.artifact_available(&function.artifact).await? {
                return Err(DeployError::ArtifactNotUploaded {
                    function: function.name.clone(),
                    digest: function.artifact.clone(),
                });
            }
            self.check_secrets(&function.name, &function.config)?;
            let pinned: Vec<_> = function.aliases.iter().filter_map(|(alias, v)| Some((alias, (*v)?))).collect();
            if !pinned.is_empty() {
                let versions = self.store.version_list(&function.name).await?;
                if let Some((alias, version)) =
                    pinned.into_iter().find(|(_, v)| !versions.iter().any(|r| r.version == *v))
                {
                    return Err(DeployError::AliasVersionNotFound {
                        function: function.name.clone(),
                        alias: alias.clone(),
                        version,
                    });
                }
            }
        }

        // The state this deploy would make: other apps' functions as they are, this
        // app's as the plan says. Check it whole before touching anything.
        let others: BTreeMap<&FunctionName, &Arc<LiveFunction>> =
            current.functions.iter().filter(|(_, function)| function.app != plan.app).collect();
        if let Some(function) = plan.functions.iter().find(|f| others.contains_key(&f.name)) {
            let owner = others[&function.name].app.clone();
            return Err(StoreError::FunctionOwnedByOtherApp { function: function.name.clone(), owner }.into());
        }
        LiveState::check_routes(
            others
                .iter()
                .map(|(name, function)| (*name, &*function.config))
                .chain(plan.functions.iter().map(|f| (&f.name, &f.config))),
        )?;
        let removed: Vec<FunctionName> = current
            .functions
            .values()
            .filter(|f| f.app == plan.app && !plan.functions.iter().any(|p| p.name == f.name))
            .map(|f| f.name.clone())
            .collect();
        let reservations: Vec<_> = plan.functions.iter().map(|f| (f.name.clone(), f.config.concurrency)).collect();
        self.scheduler.check_reservations(&reservations, &removed)?;

        // Compile what changed before touching the database, so a broken component
        // is refused with nothing applied.
        let mut prepared: BTreeMap<FunctionName, Arc<dyn Prepared<Input, FunctionResponse>>> = BTreeMap::new();
        for function in &plan.functions {
            let unchanged =
                current.functions.get(&function.name).is_some_and(|live| live.fingerprint == function.fingerprint);
            if !unchanged {
                let code = self.prepare(&function.name, &function.artifact, &function.config).await?;
                prepared.insert(function.name.clone(), code);
            }
        }

        let outcome = self.store.app_deploy(&plan).await?;
        // The canaries this deploy started split invocations from the moment its
        // versions serve.
        self.load_canaries().await?;
        if plan.functions.iter().any(|f| !f.aliases.is_empty()) {
            self.load_aliases().await?;
        }

        let mut next: BTreeMap<FunctionName, Arc<LiveFunction>> =
            others.into_iter().map(|(name, function)| (name.clone(), function.clone())).collect();
        let mut replaced = Vec::new();
        for function in &plan.functions {
            let deployed = outcome.functions.iter().find(|f| f.name == function.name);
            let live = match (prepared.remove(&function.name), deployed) {
                (Some(code), Some(deployed)) => {
                    replaced.extend(current.functions.get(&function.name).cloned());
                    let token = outcome.tokens.get(&function.name).cloned().unwrap_or_default();
                    let version = LiveVersion {
                        name: &function.name,
                        app: &plan.app,
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
        if let Some(workflows) = workflows {
            self.events.workflows_replace(&plan.app, workflows);
        }
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
            app = %plan.app,
            generation = outcome.generation,
            changed = outcome.functions.iter().filter(|f| f.changed).count(),
            removed = outcome.removed.len(),
            "deployed"
        );
        Ok(outcome.into())
    }

    /// Prepares a version's code with the runtime its configuration names.
    pub(crate) async fn prepare(
        &self,
        function: &FunctionName,
        digest: &ArtifactDigest,
        config: &FunctionConfig,
    ) -> Result<Arc<dyn Prepared<Input, FunctionResponse>>, DeployError> {
        let runtime: &dyn updraft_runtime::Runtime<Input, FunctionResponse> = match config.runtime {
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
            artifact_path: self.artifact_local(digest).await?,
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
        code: Arc<dyn Prepared<Input, FunctionResponse>>,
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
            recursion_limit: match config.recursive_loop {
                RecursiveLoop::Terminate => Some(updraft_model::MAX_RECURSION),
                RecursiveLoop::Allow => None,
            },
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
    pub(crate) fn resolved_env(
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
    pub(crate) fn grant_api(&self, config: &FunctionConfig) -> Option<GrantApi> {
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

    pub(crate) async fn load_functions(&self) -> Result<(), StartError> {
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

    pub(crate) async fn load_version(
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
}
