//! The process runtime: its configuration, the host's sandbox layers found at start,
//! the runtimes' interpreters, and what every part of it shares (`Inner`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use updraft_model::RuntimeKind;

use crate::cgroup::{CgroupLimits, Controller, Hierarchy};
use crate::demand::Demand;
use crate::host::{self, Interpreter};
use crate::instance::retire;
use crate::launch::Sandbox;
use crate::prepare::SYSTEM_PATHS;
use crate::sandbox::SandboxStatus;
use crate::spec::{JailSpec, LayerCheck, RlimitSpec, SandboxLayer};

/// Lambda's limit on the init phase.
pub(crate) const INIT_LIMIT: Duration = Duration::from_secs(10);
/// The Runtime API's port inside an instance's own network namespace (Lambda's).
pub(crate) const RUNTIME_API_PORT: u16 = 9001;
/// Processes one instance may run: enough for a runtime and its helpers, too few for
/// a fork bomb to matter.
pub(crate) const MAX_PROCESSES: u32 = 64;
/// How many rounds of killing an invocation's leftover processes get.
pub(crate) const STRAY_ROUNDS: usize = 50;
/// Users the sandboxed runtimes run as, one per instance, so that per-user limits are
/// per instance: `FIRST_UID .. FIRST_UID + UID_COUNT`.
pub(crate) const FIRST_UID: u32 = 200_000;
pub(crate) const UID_COUNT: u64 = 100_000;

pub(crate) const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python3/bootstrap.py");
pub(crate) const NODE_BOOTSTRAP: &str = include_str!("../runtimes/nodejs/bootstrap.mjs");

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
    /// interpreter's start-up. 0 turns them off. This is the floor: a runtime keeps as
    /// many as its busiest second of cold starts within `warm_demand_window`, up to
    /// `warm_sandboxes_max`.
    pub warm_sandboxes: usize,
    /// The most sandboxes kept pre-started per runtime, however busy it gets.
    pub warm_sandboxes_max: usize,
    /// How long a burst of cold starts keeps the pool grown to its size.
    pub warm_demand_window: Duration,
}

impl ProcessRuntimeConfig {
    /// A configuration with the host's interpreters and control groups, every sandbox
    /// layer required, Lambda's account and region, and `warm_sandboxes` pre-started
    /// per runtime (a fixed number: the ceiling is the floor): what tools and tests
    /// start from.
    pub fn new(jailer: Vec<OsString>, work_dir: PathBuf, warm_sandboxes: usize) -> ProcessRuntimeConfig {
        ProcessRuntimeConfig {
            jailer,
            work_dir,
            python: None,
            node: None,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            cgroup_root: "/sys/fs/cgroup".into(),
            allow_missing: Vec::new(),
            skip_layers: Vec::new(),
            warm_sandboxes,
            warm_sandboxes_max: warm_sandboxes,
            warm_demand_window: Duration::from_secs(300),
        }
    }
}

/// Runs Lambda handlers (`python3`, `nodejs`, `provided`) in sandboxed processes.
#[derive(Clone)]
pub struct ProcessRuntime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ProcessRuntimeConfig,
    pub(crate) runtime_dir: PathBuf,
    pub(crate) cgroups: Hierarchy,
    /// Which sandbox layers this host applies, found at start.
    pub(crate) status: SandboxStatus,
    pub(crate) python: OnceLock<Result<Interpreter, String>>,
    pub(crate) node: OnceLock<Result<Interpreter, String>>,
    pub(crate) loader: Option<PathBuf>,
    /// Pre-started sandboxes per managed runtime, and how many are being started.
    pub(crate) templates: Mutex<HashMap<RuntimeKind, Vec<Sandbox>>>,
    pub(crate) filling: Mutex<HashMap<RuntimeKind, usize>>,
    /// Cold starts per managed runtime, which size its pool.
    pub(crate) demand: Mutex<HashMap<RuntimeKind, Demand>>,
    /// When this runtime started: the demand's seconds count from it.
    pub(crate) started: Instant,
}

pub(crate) static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

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
            demand: Mutex::default(),
            started: Instant::now(),
            config,
        };
        inner.status = inner.probe().await;
        for layer in &inner.status.layers {
            tracing::debug!(layer = %layer.layer, state = layer.state.as_str(), detail = %layer.detail, "sandbox layer");
        }
        let inner = Arc::new(inner);
        if inner.pre_starts() && inner.config.warm_sandboxes_max > inner.config.warm_sandboxes {
            tokio::spawn(shrink_pools(Arc::downgrade(&inner)));
        }
        Ok(ProcessRuntime { inner })
    }

    /// Which sandbox layers instances get on this host.
    pub fn sandbox_status(&self) -> &SandboxStatus {
        &self.inner.status
    }
}

/// Brings every runtime's pool back toward its size as demand falls (a pool only
/// grows when a cold start takes from it), until the runtime is gone.
async fn shrink_pools(inner: Weak<Inner>) {
    loop {
        let Some(every) =
            inner.upgrade().map(|inner| (inner.config.warm_demand_window / 4).max(Duration::from_millis(250)))
        else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        let kinds: Vec<RuntimeKind> = inner.templates.lock().unwrap().keys().copied().collect();
        for kind in kinds {
            inner.refill(kind);
        }
    }
}

pub(crate) fn set_readable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(dir)?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    std::fs::set_permissions(dir, permissions)
}

impl Inner {
    /// Checks every layer: the control-group controllers here, the rest by building a
    /// whole sandbox with a probing jailer (in a group of its own, which also proves
    /// that instances can join one).
    pub(crate) async fn probe(&self) -> SandboxStatus {
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
                    connector: false,
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

    pub(crate) fn interpreter(&self, kind: RuntimeKind) -> Result<Interpreter, String> {
        let found = match kind {
            RuntimeKind::Python3 => self
                .python
                .get_or_init(|| Interpreter::python(self.config.python.as_deref()).map_err(|e| e.to_string())),
            _ => self.node.get_or_init(|| Interpreter::node(self.config.node.as_deref()).map_err(|e| e.to_string())),
        };
        found.clone()
    }
}

/// The next instance's number and name. Numbered across the whole process: control
/// groups and users are host-wide.
pub(crate) fn next_name() -> (u64, String) {
    let seq = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
    (seq, format!("{}-{seq}", std::process::id()))
}
