//! The scheduler's runtime traits for Lambda functions in sandboxed processes.
//!
//! An *instance* is one jailed runtime process with its own Runtime API server. A
//! cold start is building the sandbox, starting the runtime and waiting for its first
//! `next` (Lambda's init phase). Each instance serves one invocation at a time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{HeaderValue, Response, header};
use updraft_model::RuntimeKind;
use updraft_runtime::{
    BoxFuture, Call, EventOrigin, HttpResponse, Input, Instance, InstanceConfig, InvokeError, Invoked, PrepareError,
    Prepared, Runtime, VersionSource,
};

use crate::api::{Event, Reply, RuntimeApi, Started, xray_trace_header};
use crate::cgroup::{CgroupLimits, Controller, Hierarchy, InstanceCgroup};
use crate::egress::{Egress, EgressError, EgressPlan};
use crate::events::{Delivery, Receiver};
use crate::host::{self, Interpreter, Pipes};
use crate::sandbox::{SandboxIncomplete, SandboxStatus};
use crate::spec::{JailSpec, LayerCheck, RlimitSpec, SandboxLayer};

/// Lambda's limit on the init phase.
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// The Runtime API's port inside an instance's own network namespace (Lambda's).
const RUNTIME_API_PORT: u16 = 9001;
/// Processes one instance may run: enough for a runtime and its helpers, too few for
/// a fork bomb to matter.
const MAX_PROCESSES: u32 = 64;
/// How many rounds of killing an invocation's leftover processes get.
const STRAY_ROUNDS: usize = 50;
/// Users the sandboxed runtimes run as, one per instance, so that per-user limits are
/// per instance: `FIRST_UID .. FIRST_UID + UID_COUNT`.
const FIRST_UID: u32 = 200_000;
const UID_COUNT: u64 = 100_000;

const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python3/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../runtimes/nodejs/bootstrap.mjs");

/// How process instances are started.
#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// The jailer's program and leading arguments (the sandbox spec is appended).
    pub jailer: Vec<OsString>,
    /// Where bundles are unpacked and instance roots are made.
    pub work_dir: PathBuf,
    /// The Python interpreter, if not the one found on this host.
    pub python: Option<PathBuf>,
    /// The Node.js executable, if not the one on PATH.
    pub node: Option<PathBuf>,
    /// The region and account that ARNs and events name.
    pub region: String,
    pub account_id: String,
    /// Where control-group hierarchies are mounted (normally `/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Layers the operator allows to be missing on this host (`--sandbox-allow-missing`):
    /// applied where the host has them, left out where it does not.
    pub allow_missing: Vec<SandboxLayer>,
    /// Layers left out even where the host has them: only for tests that prove a
    /// layer matters, and for debugging a runtime. Never set by the server.
    pub skip_layers: Vec<SandboxLayer>,
    /// Sandboxes kept pre-started per managed runtime (`python3`, `nodejs`), their
    /// interpreter up and waiting for a function: a cold start then skips the
    /// interpreter's start-up. 0 turns them off.
    pub warm_sandboxes: usize,
}

/// Runs Lambda handlers (`python3`, `nodejs`, `provided`) in sandboxed processes.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProcessRuntimeConfig,
    runtime_dir: PathBuf,
    cgroups: Hierarchy,
    /// Which sandbox layers this host applies, found at start.
    status: SandboxStatus,
    python: OnceLock<Result<Interpreter, String>>,
    node: OnceLock<Result<Interpreter, String>>,
    loader: Option<PathBuf>,
    /// Pre-started sandboxes per managed runtime, and how many are being started.
    templates: Mutex<HashMap<RuntimeKind, Vec<Sandbox>>>,
    filling: Mutex<HashMap<RuntimeKind, usize>>,
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

/// Why the process runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the process runtime in {dir}: {source}")]
pub struct ProcessRuntimeError {
    dir: PathBuf,
    source: std::io::Error,
}

impl ProcessRuntime {
    /// How many pre-started sandboxes of `kind` are ready now.
    pub fn warm_sandboxes_ready(&self, kind: RuntimeKind) -> usize {
        self.inner.templates.lock().unwrap().get(&kind).map_or(0, Vec::len)
    }

    /// Writes Updraft's bootstraps under `work_dir`, finds the host's control groups
    /// and checks every sandbox layer with a probing jailer. Missing layers do not
    /// stop this: they stop process functions, which are refused naming them (see
    /// [`ProcessRuntime::sandbox_status`]).
    pub async fn start(config: ProcessRuntimeConfig) -> Result<ProcessRuntime, ProcessRuntimeError> {
        let runtime_dir = config.work_dir.join("runtime");
        let error = |source| ProcessRuntimeError { dir: config.work_dir.clone(), source };
        std::fs::create_dir_all(&runtime_dir).map_err(error)?;
        std::fs::write(runtime_dir.join("bootstrap.py"), PYTHON_BOOTSTRAP).map_err(error)?;
        std::fs::write(runtime_dir.join("bootstrap.mjs"), NODE_BOOTSTRAP).map_err(error)?;
        set_readable(&config.work_dir).map_err(error)?;
        set_readable(&runtime_dir).map_err(error)?;
        let cgroups = Hierarchy::detect(&config.cgroup_root);
        let swept = cgroups.sweep();
        tracing::debug!(?cgroups, swept, "control groups for process instances");
        // Instance folders of earlier runs (empty mount points) go too.
        if let Ok(entries) = std::fs::read_dir(config.work_dir.join("instances")) {
            for entry in entries.flatten() {
                if crate::cgroup::is_stale(&entry.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let mut inner = Inner {
            runtime_dir,
            cgroups,
            status: SandboxStatus { layers: Vec::new() },
            python: OnceLock::new(),
            node: OnceLock::new(),
            loader: host::elf_loader(),
            templates: Mutex::default(),
            filling: Mutex::default(),
            config,
        };
        inner.status = inner.probe().await;
        for layer in &inner.status.layers {
            tracing::debug!(layer = %layer.layer, state = layer.state.as_str(), detail = %layer.detail, "sandbox layer");
        }
        Ok(ProcessRuntime { inner: Arc::new(inner) })
    }

    /// Which sandbox layers instances get on this host.
    pub fn sandbox_status(&self) -> &SandboxStatus {
        &self.inner.status
    }
}

fn set_readable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(dir)?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    std::fs::set_permissions(dir, permissions)
}

impl Inner {
    /// Checks every layer: the control-group controllers here, the rest by building a
    /// whole sandbox with a probing jailer (in a group of its own, which also proves
    /// that instances can join one).
    async fn probe(&self) -> SandboxStatus {
        let mut checks: Vec<LayerCheck> = Vec::new();
        for controller in Controller::ALL {
            let missing = self.cgroups.missing(controller).map(str::to_owned);
            checks.push(LayerCheck { layer: controller.layer(), missing, detail: self.cgroups.version().to_owned() });
        }
        let (_, name) = next_name();
        let limits = CgroupLimits { memory_bytes: 64 << 20, max_processes: MAX_PROCESSES, cpu_share: 1.0 };
        let cgroup = match self.cgroups.create(&format!("{name}-probe"), limits) {
            Ok(cgroup) => Some(cgroup),
            Err((controller, error)) => {
                let check = checks.iter_mut().find(|check| check.layer == controller.layer()).expect("listed above");
                check.missing = Some(format!("cannot configure an instance's group: {error}"));
                None
            }
        };
        let dir = self.config.work_dir.join("instances").join(format!("{name}-probe"));
        let empty = self.config.work_dir.join("empty");
        let report = match std::fs::create_dir_all(dir.join("root")).and_then(|()| std::fs::create_dir_all(&empty)) {
            Ok(()) => {
                let spec = JailSpec {
                    root: dir.join("root"),
                    task: empty,
                    attach: None,
                    runtime_dir: None,
                    system_paths: SYSTEM_PATHS.iter().map(PathBuf::from).collect(),
                    tmp_bytes: 1 << 20,
                    runtime_api_port: RUNTIME_API_PORT,
                    egress: None,
                    cgroups: cgroup.as_ref().map(|group| group.dirs().to_vec()).unwrap_or_default(),
                    limits: RlimitSpec { nofile: 64, fsize: 1 << 20, address_space: 0, nproc: 0 },
                    executables: self.loader.iter().cloned().collect(),
                    executable_dirs: Vec::new(),
                    uid: FIRST_UID,
                    gid: FIRST_UID,
                    skip: self.config.skip_layers.clone(),
                    allow_missing: self.config.allow_missing.clone(),
                    probe: true,
                    argv: Vec::new(),
                    env: Vec::new(),
                };
                host::probe(&self.config.jailer, &spec, INIT_LIMIT).await.map_err(|error| error.to_string())
            }
            Err(error) => Err(format!("cannot make the probe's folder {}: {error}", dir.display())),
        };
        match report {
            Ok(report) => checks.extend(report.layers),
            Err(reason) => {
                // Nothing is known of the jailer's layers: every one is missing.
                for layer in
                    [SandboxLayer::Namespaces, SandboxLayer::NoNewPrivs, SandboxLayer::Landlock, SandboxLayer::Seccomp]
                {
                    checks.push(LayerCheck {
                        layer,
                        missing: Some(format!("the probe failed: {reason}")),
                        detail: String::new(),
                    });
                }
            }
        }
        retire(None, cgroup, Some(dir));
        // A layer skipped on purpose (tests, debugging) is allowed to be missing.
        let mut allowed = self.config.allow_missing.clone();
        allowed.extend(self.config.skip_layers.iter().copied());
        SandboxStatus::from_checks(&checks, &allowed)
    }

    fn interpreter(&self, kind: RuntimeKind) -> Result<Interpreter, String> {
        let found = match kind {
            RuntimeKind::Python3 => self
                .python
                .get_or_init(|| Interpreter::python(self.config.python.as_deref()).map_err(|e| e.to_string())),
            _ => self.node.get_or_init(|| Interpreter::node(self.config.node.as_deref()).map_err(|e| e.to_string())),
        };
        found.clone()
    }
}

/// Why a Lambda function's version cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ProcessPrepareError {
    #[error("runtime {0} does not run in a process")]
    NotAProcessRuntime(RuntimeKind),
    #[error("set `handler` for a {runtime} function, as `module.function` (for example `app.handler`)")]
    NoHandler { runtime: RuntimeKind },
    #[error("handler {handler:?} is not of the form `module.function`")]
    MalformedHandler { handler: String },
    #[error("handler {handler:?}: the bundle has no {expected}")]
    HandlerNotFound { handler: String, expected: String },
    #[error("a `provided` function's bundle needs an executable file named `bootstrap` at its top level")]
    NoBootstrap,
    #[error("the {runtime} runtime is not available on this host: {reason}")]
    NoInterpreter { runtime: RuntimeKind, reason: String },
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Sandbox(#[from] SandboxIncomplete),
    #[error(transparent)]
    Egress(#[from] EgressError),
}

impl Runtime<Input, HttpResponse> for ProcessRuntime {
    fn prepare(
        &self,
        source: VersionSource,
    ) -> BoxFuture<'_, Result<Arc<dyn Prepared<Input, HttpResponse>>, PrepareError>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let prepared = tokio::task::spawn_blocking(move || prepare(&inner, source))
                .await
                .map_err(|error| Box::new(error) as PrepareError)??;
            Ok(Arc::new(prepared) as Arc<dyn Prepared<Input, HttpResponse>>)
        })
    }
}

fn prepare(inner: &Arc<Inner>, source: VersionSource) -> Result<PreparedProcess, PrepareError> {
    let kind = source.config.runtime;
    if kind == RuntimeKind::Wasm {
        return Err(Box::new(ProcessPrepareError::NotAProcessRuntime(kind)));
    }
    inner.status.check().map_err(ProcessPrepareError::from)?;
    let egress = EgressPlan::new(&source.config.allowed_outbound_hosts, RUNTIME_API_PORT)
        .map_err(ProcessPrepareError::from)?
        .map(Arc::new);
    let bundle = crate::bundle::unpack(
        &source.artifact_path,
        &inner.config.work_dir.join("bundles").join(source.artifact.as_str()),
    )
    .map_err(ProcessPrepareError::from)?;

    let mut executables: Vec<PathBuf> = inner.loader.iter().cloned().collect();
    let mut system_paths: Vec<PathBuf> = SYSTEM_PATHS.iter().map(PathBuf::from).collect();
    let mut executable_dirs = Vec::new();
    let handler = source.config.handler.clone().unwrap_or_default();
    let argv = match kind {
        RuntimeKind::Python3 | RuntimeKind::Nodejs => {
            if handler.is_empty() {
                return Err(Box::new(ProcessPrepareError::NoHandler { runtime: kind }));
            }
            check_handler(&bundle, kind, &handler)?;
            let interpreter = inner
                .interpreter(kind)
                .map_err(|reason| ProcessPrepareError::NoInterpreter { runtime: kind, reason })?;
            executables.push(interpreter.program.clone());
            system_paths.extend(interpreter.extra_paths.iter().cloned());
            runtime_argv(kind, &interpreter)
        }
        RuntimeKind::Provided | RuntimeKind::Wasm => {
            let bootstrap = bundle.join("bootstrap");
            if !is_executable(&bootstrap) {
                return Err(Box::new(ProcessPrepareError::NoBootstrap));
            }
            // A custom runtime is the function's own: anything in its bundle may run,
            // and the interpreter its bootstrap names (with the managed ones, which
            // bootstrap scripts commonly `exec`).
            executable_dirs.push(PathBuf::from("/var/task"));
            executables.extend(host::shebang(&bootstrap));
            for managed in [RuntimeKind::Python3, RuntimeKind::Nodejs] {
                if let Ok(interpreter) = inner.interpreter(managed) {
                    executables.push(interpreter.program);
                    system_paths.extend(interpreter.extra_paths);
                }
            }
            vec!["/var/task/bootstrap".into()]
        }
    };
    if egress.is_none() && matches!(kind, RuntimeKind::Python3 | RuntimeKind::Nodejs) && inner.pre_starts() {
        // The first function of a runtime starts its pre-started sandboxes.
        inner.refill(kind);
    }
    Ok(PreparedProcess {
        inner: inner.clone(),
        function: source.function.to_string(),
        kind,
        handler,
        bundle,
        argv,
        system_paths,
        executables,
        executable_dirs,
        egress,
    })
}

/// Host paths every runtime gets, read-only. Their programs are readable but, except
/// for the runtime's own interpreter, not executable (Landlock).
const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
];

fn check_handler(bundle: &Path, kind: RuntimeKind, handler: &str) -> Result<(), ProcessPrepareError> {
    let malformed = || ProcessPrepareError::MalformedHandler { handler: handler.to_owned() };
    let (module, function) = handler.rsplit_once('.').ok_or_else(malformed)?;
    if module.is_empty() || function.is_empty() {
        return Err(malformed());
    }
    let candidates: Vec<String> = match kind {
        RuntimeKind::Python3 => {
            let path = module.replace('.', "/");
            vec![format!("{path}.py"), format!("{path}/__init__.py")]
        }
        _ => ["js", "mjs", "cjs"].iter().map(|ext| format!("{module}.{ext}")).collect(),
    };
    if candidates.iter().any(|candidate| bundle.join(candidate).is_file()) {
        Ok(())
    } else {
        Err(ProcessPrepareError::HandlerNotFound { handler: handler.to_owned(), expected: candidates.join(" or ") })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A version ready to start instances.
struct PreparedProcess {
    inner: Arc<Inner>,
    function: String,
    kind: RuntimeKind,
    handler: String,
    bundle: PathBuf,
    argv: Vec<String>,
    system_paths: Vec<PathBuf>,
    executables: Vec<PathBuf>,
    executable_dirs: Vec<PathBuf>,
    /// The hosts the function may reach, if any.
    egress: Option<Arc<EgressPlan>>,
}

impl Prepared<Input, HttpResponse> for PreparedProcess {
    fn create(
        &self,
        config: &Arc<InstanceConfig>,
    ) -> BoxFuture<'_, Result<Box<dyn Instance<Input, HttpResponse>>, InvokeError>> {
        let config = config.clone();
        Box::pin(async move {
            let instance = self.start(&config).await?;
            Ok(Box::new(instance) as Box<dyn Instance<Input, HttpResponse>>)
        })
    }
}

impl PreparedProcess {
    async fn start(&self, config: &InstanceConfig) -> Result<ProcessInstance, InvokeError> {
        let inner = &self.inner;
        let memory = config.memory_limit;
        let (seq, name) = next_name();
        let version = env_value(config, "UPDRAFT_FUNCTION_VERSION").unwrap_or("$LATEST").to_owned();
        // A managed runtime without a network grant starts from a pre-started sandbox
        // when one is ready: its interpreter is up, only the function is missing.
        let sandbox = match self.pooled_kind().and_then(|kind| inner.take_template(kind)) {
            Some(template) => match self.assign(template, config, &version).await {
                Ok(sandbox) => Some(sandbox),
                Err(error) => {
                    static FAILED: updraft_runtime::LogBudget =
                        updraft_runtime::LogBudget::new(5, Duration::from_secs(1));
                    if let Some(suppressed) = FAILED.admit() {
                        tracing::warn!(%error, suppressed, "a pre-started sandbox could not take its function; starting a new one");
                    }
                    None
                }
            },
            None => None,
        };
        let sandbox = match sandbox {
            Some(sandbox) => sandbox,
            None => {
                let plan = SandboxPlan {
                    task: self.bundle.clone(),
                    attach: None,
                    system_paths: self.system_paths.clone(),
                    executables: self.executables.clone(),
                    executable_dirs: self.executable_dirs.clone(),
                    argv: self.argv.clone(),
                    env: self.environment(config, &version, &name),
                    egress: self.egress.clone(),
                    function: self.function.clone(),
                    memory,
                    max_payload: config.max_response_bytes,
                };
                inner.launch(seq, name, plan).await?
            }
        };
        let started = sandbox.started().await;
        // Another takes the used one's place, started now rather than when it was taken
        // so that the two do not compete for the CPU.
        if let Some(kind) = self.pooled_kind() {
            inner.refill(kind);
        }
        Ok(started?.into_instance(inner, &self.function))
    }

    /// The runtime kind whose pre-started sandboxes this version can use.
    fn pooled_kind(&self) -> Option<RuntimeKind> {
        let managed = matches!(self.kind, RuntimeKind::Python3 | RuntimeKind::Nodejs);
        (managed && self.egress.is_none() && self.inner.pre_starts()).then_some(self.kind)
    }

    /// Gives a pre-started sandbox this version: its bundle, limits and environment.
    async fn assign(&self, mut sandbox: Sandbox, config: &InstanceConfig, version: &str) -> Result<Sandbox, String> {
        let bundle = self.bundle.file_name().and_then(|n| n.to_str()).ok_or("the bundle has no name")?;
        let control = sandbox.control.take().ok_or("the sandbox has no control socket")?;
        let line = format!("{bundle} {}\n", tmp_bytes(config.memory_limit));
        let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            use std::io::{Read as _, Write as _};
            let mut control = control;
            control.set_read_timeout(Some(INIT_LIMIT))?;
            control.write_all(line.as_bytes())?;
            // One line back: `ok`, or what went wrong.
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            while control.read(&mut byte)? == 1 && byte[0] != b'\n' && answer.len() < 4096 {
                answer.push(byte[0]);
            }
            Ok(String::from_utf8_lossy(&answer).into_owned())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("talking to the sandbox's init: {e}"))?;
        if answer.trim() != "ok" {
            return Err(format!("the sandbox's init could not mount the bundle: {}", answer.trim()));
        }
        // Pre-started sandboxes exist only where the memory controller does (see
        // `pre_starts`): the function's limit holds from here on.
        let cgroup = sandbox.cleanup.cgroup.as_ref().ok_or("the sandbox has no control group")?;
        cgroup.set_memory_limit(config.memory_limit).map_err(|e| format!("setting the memory limit: {e}"))?;
        sandbox.api.set_max_payload(config.max_response_bytes);
        let env: serde_json::Map<String, serde_json::Value> = self
            .environment(config, version, &sandbox.name)
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::String(value)))
            .collect();
        let document = serde_json::json!({ "env": env }).to_string();
        if !sandbox.api.assign(document.into()) {
            return Err("the sandbox's runtime was not waiting for a function".into());
        }
        sandbox.memory = config.memory_limit;
        Ok(sandbox)
    }

    /// The runtime's environment: Lambda's reserved variables, then the function's own.
    fn environment(&self, config: &InstanceConfig, version: &str, instance: &str) -> Vec<(String, String)> {
        let inner = &self.inner.config;
        let memory_mb = (config.memory_limit / (1024 * 1024)).to_string();
        let stream = format!("{}/[{version}]{instance}", log_date());
        let mut env = base_environment(self.kind);
        env.extend([
            ("_HANDLER".into(), self.handler.clone()),
            ("AWS_REGION".into(), inner.region.clone()),
            ("AWS_DEFAULT_REGION".into(), inner.region.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), self.function.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), memory_mb),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), version.to_owned()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{}", self.function)),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream),
        ]);
        // The function's own variables may not replace the reserved ones.
        let reserved: Vec<String> = env.iter().map(|(key, _)| key.clone()).collect();
        env.extend(
            config.env.iter().filter(|(key, _)| !reserved.contains(key) && key != "AWS_LAMBDA_RUNTIME_API").cloned(),
        );
        env
    }
}

/// What every runtime of `kind` gets, whatever its function.
fn base_environment(kind: RuntimeKind) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        (
            "LD_LIBRARY_PATH".into(),
            "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into(),
        ),
        ("LAMBDA_TASK_ROOT".into(), "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
    ];
    match kind {
        RuntimeKind::Python3 => env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3".into())),
        RuntimeKind::Nodejs => {
            env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_nodejs".into()));
            env.push((
                "NODE_PATH".into(),
                "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/task/node_modules".into(),
            ));
        }
        // Lambda sets no AWS_EXECUTION_ENV for custom runtimes.
        RuntimeKind::Provided | RuntimeKind::Wasm => {}
    }
    env
}

/// The command line of a managed runtime.
fn runtime_argv(kind: RuntimeKind, interpreter: &Interpreter) -> Vec<String> {
    let program = interpreter.program.to_string_lossy().into_owned();
    match kind {
        // -I: isolated (no user site, no PYTHON* variables, no cwd on the path);
        // -B: never try to write .pyc files into the read-only bundle.
        RuntimeKind::Python3 => vec![program, "-I".into(), "-B".into(), "/var/runtime/bootstrap.py".into()],
        _ => vec![program, "/var/runtime/bootstrap.mjs".into()],
    }
}

/// The memory limit of a pre-started sandbox until it is given a function (whose limit
/// it then takes): Lambda's largest classic size.
const TEMPLATE_MEMORY: u64 = 10 * 1024 * 1024 * 1024;

/// The largest private `/tmp` (Lambda's default ephemeral storage). It is a tmpfs, so
/// what it holds counts toward the instance's memory: it gets half the memory limit,
/// up to this, and a full `/tmp` fails with ENOSPC rather than running out of memory.
const MAX_TMP_BYTES: u64 = 512 * 1024 * 1024;

fn tmp_bytes(memory: u64) -> u64 {
    (memory / 2).min(MAX_TMP_BYTES)
}

fn env_value<'a>(config: &'a InstanceConfig, key: &str) -> Option<&'a str> {
    config.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn log_date() -> String {
    chrono::Utc::now().format("%Y/%m/%d").to_string()
}

fn internal(error: impl std::fmt::Display) -> InvokeError {
    InvokeError::Internal { message: error.to_string() }
}

/// The next instance's number and name. Numbered across the whole process: control
/// groups and users are host-wide.
fn next_name() -> (u64, String) {
    let seq = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
    (seq, format!("{}-{seq}", std::process::id()))
}

/// What one sandbox is built from.
struct SandboxPlan {
    /// Mounted at `/var/task` (an empty folder for a pre-started sandbox).
    task: PathBuf,
    /// For a pre-started sandbox: the bundles folder its function will come from.
    attach: Option<PathBuf>,
    system_paths: Vec<PathBuf>,
    executables: Vec<PathBuf>,
    executable_dirs: Vec<PathBuf>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    egress: Option<Arc<EgressPlan>>,
    /// The function it runs (for log lines), or empty for a pre-started sandbox.
    function: String,
    memory: u64,
    max_payload: usize,
}

/// A jailed runtime, started, perhaps not yet initialised.
struct Sandbox {
    name: String,
    api: RuntimeApi,
    child: tokio::process::Child,
    pipes: Pipes,
    /// A pre-started sandbox's line to its init, until it is given a function.
    control: Option<std::os::unix::net::UnixStream>,
    /// The way out, served while the instance lives.
    egress: Option<Egress>,
    cleanup: Cleanup,
    memory: u64,
}

impl Inner {
    /// Builds a sandbox and starts its runtime in it.
    async fn launch(&self, seq: u64, name: String, plan: SandboxPlan) -> Result<Sandbox, InvokeError> {
        let dir = self.config.work_dir.join("instances").join(&name);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).map_err(internal)?;
        // One core at most; the kernel shares it out by demand below that.
        let limits = CgroupLimits { memory_bytes: plan.memory, max_processes: MAX_PROCESSES, cpu_share: 1.0 };
        let cgroup = self.cgroups.create(&name, limits).map_err(|(controller, error)| InvokeError::Init {
            message: format!("cannot create the instance's control group ({}): {error}", controller.layer()),
        })?;
        let uid = FIRST_UID + (seq % UID_COUNT) as u32;
        let spec = JailSpec {
            root,
            task: plan.task,
            attach: plan.attach.clone(),
            runtime_dir: Some(self.runtime_dir.clone()),
            system_paths: plan.system_paths,
            tmp_bytes: tmp_bytes(plan.memory),
            runtime_api_port: RUNTIME_API_PORT,
            egress: plan.egress.as_ref().map(|egress| egress.spec().clone()),
            cgroups: cgroup.dirs().to_vec(),
            limits: RlimitSpec {
                nofile: 1024,
                // Per file; `/tmp`'s own size is the real bound.
                fsize: MAX_TMP_BYTES + 1,
                // Without a memory control group (the operator allowed it to be
                // missing), bound the address space instead (generously: runtimes
                // reserve far more than they touch).
                address_space: if cgroup.limits_memory() { 0 } else { plan.memory.saturating_mul(4).max(1 << 30) },
                nproc: if self.status.is_ok(SandboxLayer::CgroupPids) { 0 } else { u64::from(MAX_PROCESSES) },
            },
            executables: plan.executables,
            executable_dirs: plan.executable_dirs,
            uid,
            gid: uid,
            skip: self.config.skip_layers.clone(),
            allow_missing: self.config.allow_missing.clone(),
            probe: false,
            argv: plan.argv,
            env: plan.env,
        };
        let cleanup = Cleanup { dir: Some(dir), cgroup: Some(cgroup) };
        let launched = host::launch(&self.config.jailer, &spec, INIT_LIMIT)
            .await
            .map_err(|error| InvokeError::Init { message: error.to_string() })?;
        let sockets = launched.sockets;
        let listener = tokio::net::TcpListener::from_std(sockets.runtime_api).map_err(internal)?;
        let egress = match &plan.egress {
            Some(egress) => {
                Some(Egress::serve(egress.clone(), &plan.function, sockets.dns, sockets.egress).map_err(internal)?)
            }
            None => None,
        };
        Ok(Sandbox {
            name,
            api: RuntimeApi::serve(listener, plan.max_payload),
            child: launched.child,
            pipes: launched.pipes,
            control: plan.attach.is_some().then_some(launched.control),
            egress,
            cleanup,
            memory: plan.memory,
        })
    }

    /// Whether pre-started sandboxes are kept: only where the memory controller limits
    /// them, since their limit is lowered to the function's when they are given one.
    fn pre_starts(&self) -> bool {
        self.config.warm_sandboxes > 0 && self.status.is_ok(SandboxLayer::CgroupMemory)
    }

    /// A pre-started sandbox for `kind`, if one is ready.
    fn take_template(&self, kind: RuntimeKind) -> Option<Sandbox> {
        let mut pools = self.templates.lock().unwrap();
        let pool = pools.entry(kind).or_default();
        loop {
            let mut sandbox = pool.pop()?;
            // One whose runtime died while waiting is of no use.
            if sandbox.child.try_wait().ok().flatten().is_none() {
                return Some(sandbox);
            }
        }
    }

    /// Starts pre-started sandboxes for `kind` until `warm_sandboxes` are ready.
    fn refill(self: &Arc<Self>, kind: RuntimeKind) {
        let target = self.config.warm_sandboxes;
        let missing = {
            let mut pools = self.templates.lock().unwrap();
            let ready = pools.entry(kind).or_default().len();
            let mut filling = self.filling.lock().unwrap();
            let pending = filling.entry(kind).or_default();
            let missing = target.saturating_sub(ready + *pending);
            *pending += missing;
            missing
        };
        for _ in 0..missing {
            let inner = self.clone();
            tokio::spawn(async move {
                let started = inner.launch_template(kind).await;
                *inner.filling.lock().unwrap().entry(kind).or_default() -= 1;
                match started {
                    Ok(sandbox) => inner.templates.lock().unwrap().entry(kind).or_default().push(sandbox),
                    Err(error) => tracing::warn!(runtime = %kind, %error, "cannot pre-start a sandbox"),
                }
            });
        }
    }

    /// A sandbox with `kind`'s interpreter started and waiting to be told its function.
    async fn launch_template(&self, kind: RuntimeKind) -> Result<Sandbox, String> {
        let interpreter = self.interpreter(kind)?;
        let empty = self.config.work_dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
        let mut system_paths: Vec<PathBuf> = SYSTEM_PATHS.iter().map(PathBuf::from).collect();
        system_paths.extend(interpreter.extra_paths.iter().cloned());
        let mut executables: Vec<PathBuf> = self.loader.iter().cloned().collect();
        executables.push(interpreter.program.clone());
        let mut env = base_environment(kind);
        env.push(("UPDRAFT_DEFERRED".into(), "1".into()));
        let plan = SandboxPlan {
            task: empty,
            attach: Some(self.config.work_dir.join("bundles")),
            system_paths,
            executables,
            executable_dirs: Vec::new(),
            argv: runtime_argv(kind, &interpreter),
            env,
            egress: None,
            function: String::new(),
            memory: TEMPLATE_MEMORY,
            max_payload: 6 << 20,
        };
        let (seq, name) = next_name();
        let mut sandbox = self.launch(seq, name, plan).await.map_err(|error| error.to_string())?;
        // Ready when its runtime, fully loaded, asks which function it is for.
        tokio::select! {
            () = sandbox.api.awaiting_assignment() => Ok(sandbox),
            status = sandbox.child.wait() => Err(format!("its runtime exited while starting ({})", describe(status))),
            () = tokio::time::sleep(INIT_LIMIT) => Err(format!("its runtime did not start within {}s", INIT_LIMIT.as_secs())),
            () = sandbox.pipes.pump() => unreachable!("pump never completes"),
        }
    }
}

impl Sandbox {
    /// Waits until the runtime asks for its first event (Lambda's init), or fails.
    async fn started(mut self) -> Result<Sandbox, InvokeError> {
        let started = tokio::select! {
            started = self.api.started() => started,
            _ = self.child.wait() => None,
            _ = tokio::time::sleep(INIT_LIMIT) => {
                return Err(InvokeError::Init { message: format!("the runtime did not start within {}s", INIT_LIMIT.as_secs()) });
            }
            () = self.pipes.pump() => unreachable!("pump never completes"),
        };
        match started {
            Some(Started::Ready) => {
                // What the runtime printed while starting goes with its first invocation.
                self.pipes.drain();
                Ok(self)
            }
            Some(Started::InitError { error_type, body }) => {
                let message = String::from_utf8_lossy(&body);
                Err(InvokeError::Init { message: format!("{error_type}: {message}") })
            }
            None => {
                let _ = self.child.start_kill();
                let status = self.child.wait().await.map(|s| s.to_string()).unwrap_or_default();
                self.pipes.drain();
                let output = self.pipes.take_text();
                let output = output.trim();
                let message = if output.is_empty() {
                    format!("the runtime exited before asking for an event ({status})")
                } else {
                    format!("the runtime exited before asking for an event ({status}): {output}")
                };
                Err(InvokeError::Init { message })
            }
        }
    }

    fn into_instance(self, inner: &Inner, function: &str) -> ProcessInstance {
        let Sandbox { api, child, pipes, mut cleanup, memory, egress, .. } = self;
        ProcessInstance {
            api,
            child: Some(child),
            pipes,
            _egress: egress,
            cgroup: cleanup.cgroup.take(),
            dir: cleanup.dir.take(),
            function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{function}",
                inner.config.region, inner.config.account_id
            )
            .into(),
            function: function.into(),
            region: inner.config.region.clone(),
            account_id: inner.config.account_id.clone(),
            memory_limit: memory,
        }
    }
}

/// Removes a failed start's folder and control group.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<InstanceCgroup>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.dir.is_none() && self.cgroup.is_none() {
            return;
        }
        retire(None, self.cgroup.take(), self.dir.take());
    }
}

/// One running, jailed runtime.
struct ProcessInstance {
    api: RuntimeApi,
    child: Option<tokio::process::Child>,
    pipes: Pipes,
    /// Dropped with the instance, which stops its egress.
    _egress: Option<Egress>,
    cgroup: Option<InstanceCgroup>,
    dir: Option<PathBuf>,
    function_arn: Arc<str>,
    function: Arc<str>,
    region: String,
    account_id: String,
    memory_limit: u64,
}

enum Outcome {
    Reply(Reply),
    Exited(String),
    TimedOut,
}

impl Instance<Input, HttpResponse> for ProcessInstance {
    fn invoke(&mut self, input: Input, call: Call) -> BoxFuture<'_, Invoked<HttpResponse>> {
        Box::pin(async move {
            // An HTTP request (a route's, or a webhook's replayed) goes as an API Gateway
            // event and its answer comes back as one; an event's payload goes as it is.
            let (request, client_context) = match input {
                Input::Http(request) => (Ok(request), None),
                Input::Event(event) => {
                    let receiver =
                        Receiver { function: &self.function, region: &self.region, account_id: &self.account_id };
                    let client_context = match &event.origin {
                        EventOrigin::Direct { client_context, .. } => client_context.clone(),
                        _ => None,
                    };
                    match crate::events::delivery(&event, &receiver) {
                        Delivery::Request(request) => (Ok(*request), client_context),
                        Delivery::Payload(payload) => (Err(payload), client_context),
                    }
                }
            };
            let http = request.is_ok();
            let payload = match request {
                Ok(request) => crate::apigw::request_event(
                    &request,
                    &crate::apigw::EventContext {
                        account_id: &self.account_id,
                        request_id: &call.request_id,
                        now_ms: call.deadline_ms - i64::try_from(call.timeout.as_millis()).unwrap_or(0),
                    },
                ),
                Err(payload) => payload,
            };
            if let Some(cgroup) = &self.cgroup {
                cgroup.reset_peak();
            }
            let event = Event {
                request_id: call.request_id.clone(),
                deadline_ms: call.deadline_ms,
                function_arn: self.function_arn.clone(),
                trace_header: xray_trace_header(&call.trace_id, &call.span_id()),
                client_context,
                payload,
            };
            let outcome = self.run(event, call.timeout).await;
            self.pipes.drain();
            let output = self.pipes.take();
            let max_memory_used = self.cgroup.as_ref().and_then(InstanceCgroup::peak_memory).unwrap_or(0);
            let (result, reusable) = match outcome {
                Outcome::Reply(Reply::Response { body, content_type }) => {
                    self.end_strays().await;
                    let result = if http {
                        crate::apigw::response(&body)
                            .map_err(|error| InvokeError::BadResponse { message: error.to_string() })
                    } else {
                        let mut response = Response::new(body);
                        let content_type = content_type.unwrap_or(HeaderValue::from_static("application/json"));
                        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                        Ok(response)
                    };
                    (result, true)
                }
                Outcome::Reply(Reply::Error { error_type, body }) => {
                    self.end_strays().await;
                    let message = report_line(&body).unwrap_or_else(|| error_type.clone());
                    (Err(InvokeError::Function { error_type, message, document: body.to_vec() }), true)
                }
                Outcome::Reply(Reply::TooLarge { limit }) => {
                    self.end_strays().await;
                    (Err(InvokeError::ResponseTooLarge { limit }), true)
                }
                Outcome::Exited(status) => {
                    let oom = self.cgroup.as_ref().is_some_and(|cgroup| cgroup.oom_kills() > 0);
                    let error = if oom {
                        InvokeError::OutOfMemory { limit: self.memory_limit }
                    } else {
                        InvokeError::Exited { status }
                    };
                    (Err(error), false)
                }
                Outcome::TimedOut => {
                    self.kill();
                    (Err(InvokeError::Timeout { timeout: call.timeout }), false)
                }
            };
            Invoked { result, output, max_memory_used, reusable }
        })
    }

    fn dispose(mut self: Box<Self>) {
        self.kill();
    }
}

impl ProcessInstance {
    async fn run(&mut self, event: Event, timeout: Duration) -> Outcome {
        let Some(child) = self.child.as_mut() else { return Outcome::Exited("the instance was stopped".into()) };
        let deadline = tokio::time::sleep(timeout);
        let reply = tokio::select! {
            reply = self.api.send(event) => reply,
            status = child.wait() => return Outcome::Exited(describe(status)),
        };
        let Some(reply) = reply else { return Outcome::Exited("the Runtime API stopped".into()) };
        tokio::select! {
            reply = reply => match reply {
                Ok(reply) => Outcome::Reply(reply),
                Err(_) => Outcome::Exited("the Runtime API stopped".into()),
            },
            status = child.wait() => {
                // Output written just before exiting is still in the pipes.
                Outcome::Exited(describe(status))
            }
            () = deadline => Outcome::TimedOut,
            () = self.pipes.pump() => unreachable!("pump never completes"),
        }
    }

    /// Ends every process the invocation left behind in the instance: only the
    /// jailer, the namespace's init and the runtime itself stay between invocations.
    /// Strays may still be forking, so it kills in rounds until none is left.
    async fn end_strays(&self) {
        let (Some(cgroup), Some(child)) = (&self.cgroup, &self.child) else { return };
        let Some(jailer) = child.id().and_then(|id| i32::try_from(id).ok()) else { return };
        for _ in 0..STRAY_ROUNDS {
            let processes = cgroup.processes();
            if processes.len() <= 3 {
                return;
            }
            let stats: Vec<(i32, i32, u64)> = processes
                .iter()
                .filter_map(|&pid| host::parent_and_start(pid).map(|(parent, start)| (pid, parent, start)))
                .collect();
            let init = stats.iter().find(|(_, parent, _)| *parent == jailer).map(|(pid, ..)| *pid);
            let runtime = init.and_then(|init| {
                let children = stats.iter().filter(|(_, parent, _)| *parent == init);
                children.min_by_key(|(_, _, start)| *start).map(|(pid, ..)| *pid)
            });
            for (pid, ..) in stats {
                if pid != jailer && Some(pid) != init && Some(pid) != runtime {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        static STAYED: updraft_runtime::LogBudget = updraft_runtime::LogBudget::new(5, Duration::from_secs(1));
        if let Some(suppressed) = STAYED.admit() {
            tracing::warn!(
                suppressed,
                "processes an invocation left behind would not end; they stay until the instance stops"
            );
        }
    }

    fn kill(&mut self) {
        retire(self.child.take(), self.cgroup.take(), self.dir.take());
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ends an instance: kills its jailer (init follows, taking the namespace's other
/// processes with it), then removes its control group and folder once empty.
fn retire(child: Option<tokio::process::Child>, cgroup: Option<InstanceCgroup>, dir: Option<PathBuf>) {
    let cleanup = async move {
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if let Some(cgroup) = cgroup {
            // The namespace's processes die just after the jailer; wait for them.
            for _ in 0..100 {
                if cgroup.remove().is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(cleanup);
        }
        Err(_) => tracing::debug!("no runtime to clean an instance up on"),
    }
}

/// `ErrorType: message` from a runtime's error document (every runtime's shape has
/// both fields), for records and error messages.
fn report_line(document: &[u8]) -> Option<String> {
    let report: serde_json::Value = serde_json::from_slice(document).ok()?;
    let kind = report["errorType"].as_str()?;
    let message = report["errorMessage"].as_str().unwrap_or_default();
    Some(format!("{kind}: {message}"))
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => error.to_string(),
    }
}
