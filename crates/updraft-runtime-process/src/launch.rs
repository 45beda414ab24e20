//! Building sandboxes: the jailer's plan for one, launching it, waiting for its
//! runtime's init, and the pool of pre-started sandboxes per runtime.

use std::path::PathBuf;
use std::sync::Arc;

use updraft_model::RuntimeKind;
use updraft_runtime::InvokeError;

use crate::api::{RuntimeApi, Started};
use crate::cgroup::{CgroupLimits, InstanceCgroup};
use crate::demand::pool_size;
use crate::egress::{Egress, EgressPlan};
use crate::environment::{MAX_TMP_BYTES, TEMPLATE_MEMORY, base_environment, runtime_argv, tmp_bytes};
use crate::host::{self, Pipes};
use crate::instance::{ProcessInstance, describe, retire};
use crate::prepare::SYSTEM_PATHS;
use crate::runtime::{FIRST_UID, INIT_LIMIT, Inner, MAX_PROCESSES, RUNTIME_API_PORT, UID_COUNT, next_name};
use crate::spec::{JailSpec, RlimitSpec, SandboxLayer};

/// What one sandbox is built from.
pub(crate) struct SandboxPlan {
    /// Mounted at `/var/task` (an empty folder for a pre-started sandbox).
    pub(crate) task: PathBuf,
    /// For a pre-started sandbox: the bundles folder its function will come from.
    pub(crate) attach: Option<PathBuf>,
    pub(crate) system_paths: Vec<PathBuf>,
    pub(crate) executables: Vec<PathBuf>,
    pub(crate) executable_dirs: Vec<PathBuf>,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) egress: Option<Arc<EgressPlan>>,
    /// The function it runs (for log lines), or empty for a pre-started sandbox.
    pub(crate) function: String,
    pub(crate) memory: u64,
    pub(crate) max_payload: usize,
    /// A server's sandbox: its jailer opens sockets in it for the host.
    pub(crate) connector: bool,
}

/// A jailed runtime, started, perhaps not yet initialised.
pub(crate) struct Sandbox {
    pub(crate) name: String,
    pub(crate) api: RuntimeApi,
    pub(crate) child: tokio::process::Child,
    pub(crate) pipes: Pipes,
    /// A pre-started sandbox's line to its init, until it is given a function; a
    /// server's line to its jailer, which opens sockets in it.
    pub(crate) control: Option<std::os::unix::net::UnixStream>,
    /// The way out, served while the instance lives.
    pub(crate) egress: Option<Egress>,
    pub(crate) cleanup: Cleanup,
    pub(crate) memory: u64,
}

impl Inner {
    /// Builds a sandbox and starts its runtime in it.
    pub(crate) async fn launch(&self, seq: u64, name: String, plan: SandboxPlan) -> Result<Sandbox, InvokeError> {
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
            connector: plan.connector,
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
            control: (plan.attach.is_some() || plan.connector).then_some(launched.control),
            egress,
            cleanup,
            memory: plan.memory,
        })
    }

    /// Whether pre-started sandboxes are kept: only where the memory controller limits
    /// them, since their limit is lowered to the function's when they are given one.
    pub(crate) fn pre_starts(&self) -> bool {
        self.config.warm_sandboxes > 0 && self.status.is_ok(SandboxLayer::CgroupMemory)
    }

    /// A pre-started sandbox for `kind`, if one is ready.
    pub(crate) fn take_template(&self, kind: RuntimeKind) -> Option<Sandbox> {
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

    /// Counts a cold start of `kind`, whether a pre-started sandbox was ready for it or
    /// not: the demand its pool follows.
    pub(crate) fn note_cold_start(&self, kind: RuntimeKind) {
        let second = self.started.elapsed().as_secs();
        self.demand.lock().unwrap().entry(kind).or_default().record(second);
    }

    /// How many pre-started sandboxes `kind` keeps now: as many as its busiest second
    /// of cold starts within the demand window, at least `warm_sandboxes`, at most
    /// `warm_sandboxes_max`.
    fn pool_target(&self, kind: RuntimeKind) -> usize {
        let second = self.started.elapsed().as_secs();
        let peak = self.demand.lock().unwrap().entry(kind).or_default().peak(second, self.config.warm_demand_window);
        pool_size(peak, self.config.warm_sandboxes, self.config.warm_sandboxes_max)
    }

    /// Starts pre-started sandboxes for `kind` until its pool's size is ready, or
    /// stops those beyond it.
    pub(crate) fn refill(self: &Arc<Self>, kind: RuntimeKind) {
        let target = self.pool_target(kind);
        let (missing, extra) = {
            let mut pools = self.templates.lock().unwrap();
            let pool = pools.entry(kind).or_default();
            let mut filling = self.filling.lock().unwrap();
            let pending = filling.entry(kind).or_default();
            let extra: Vec<Sandbox> = pool.drain(target.min(pool.len())..).collect();
            let missing = target.saturating_sub(pool.len() + *pending);
            *pending += missing;
            (missing, extra)
        };
        // Stopped outside the lock: each is killed and its folder and group removed.
        drop(extra);
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
    pub(crate) async fn launch_template(&self, kind: RuntimeKind) -> Result<Sandbox, String> {
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
            connector: false,
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
    pub(crate) async fn started(mut self) -> Result<Sandbox, InvokeError> {
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

    pub(crate) fn into_instance(self, inner: &Inner, function: &str) -> ProcessInstance {
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
pub(crate) struct Cleanup {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) cgroup: Option<InstanceCgroup>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.dir.is_none() && self.cgroup.is_none() {
            return;
        }
        retire(None, self.cgroup.take(), self.dir.take());
    }
}

fn internal(error: impl std::fmt::Display) -> InvokeError {
    InvokeError::Internal { message: error.to_string() }
}
