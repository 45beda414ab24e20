//! Preparing a Lambda function's version (its bundle unpacked, its handler checked)
//! and starting its instances: a pre-started sandbox given the function, or one built
//! for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use updraft_model::{RuntimeKind, ServerSpec};
use updraft_runtime::{
    BoxFuture, FunctionResponse, Input, Instance, InstanceConfig, InvokeError, PrepareError, Prepared, Runtime,
    VersionSource,
};

use crate::ProcessRuntime;
use crate::egress::{EgressError, EgressPlan};
use crate::environment::{base_environment, env_value, log_date, runtime_argv, tmp_bytes};
use crate::host;
use crate::instance::ProcessInstance;
use crate::launch::{Sandbox, SandboxPlan};
use crate::runtime::{INIT_LIMIT, Inner, RUNTIME_API_PORT, next_name};
use crate::sandbox::SandboxIncomplete;
use crate::server::{Server, ServerInstance, Servers};

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
    #[error("set `command` for an http function: the command that starts its server on $PORT")]
    NoCommand,
    #[error("the {runtime} runtime is not available on this host: {reason}")]
    NoInterpreter { runtime: RuntimeKind, reason: String },
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Sandbox(#[from] SandboxIncomplete),
    #[error(transparent)]
    Egress(#[from] EgressError),
}

impl Runtime<Input, FunctionResponse> for ProcessRuntime {
    fn prepare(
        &self,
        source: VersionSource,
    ) -> BoxFuture<'_, Result<Arc<dyn Prepared<Input, FunctionResponse>>, PrepareError>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let prepared = tokio::task::spawn_blocking(move || prepare(&inner, source))
                .await
                .map_err(|error| Box::new(error) as PrepareError)??;
            Ok(Arc::new(prepared) as Arc<dyn Prepared<Input, FunctionResponse>>)
        })
    }
}

pub(crate) fn prepare(inner: &Arc<Inner>, source: VersionSource) -> Result<PreparedProcess, PrepareError> {
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
        RuntimeKind::Http => {
            let server = source.config.server.as_ref().ok_or(ProcessPrepareError::NoCommand)?;
            // The server is the function's own program, started by the shell: anything
            // in its bundle may run, and the managed interpreters it names.
            executable_dirs.push(PathBuf::from("/var/task"));
            executables.extend(host::canonical("/bin/sh"));
            for managed in [RuntimeKind::Python3, RuntimeKind::Nodejs] {
                if let Ok(interpreter) = inner.interpreter(managed) {
                    executables.push(interpreter.program);
                    system_paths.extend(interpreter.extra_paths);
                }
            }
            vec!["/bin/sh".into(), "-c".into(), server.command.clone()]
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
        server: source.config.server.clone().map(|server| {
            let servers = Servers::new(server.concurrency_per_instance);
            (server, servers)
        }),
    })
}

/// Host paths every runtime gets, read-only. Their programs are readable but, except
/// for the runtime's own interpreter, not executable (Landlock).
pub(crate) const SYSTEM_PATHS: &[&str] = &[
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

pub(crate) fn check_handler(bundle: &Path, kind: RuntimeKind, handler: &str) -> Result<(), ProcessPrepareError> {
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

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A version ready to start instances.
pub(crate) struct PreparedProcess {
    pub(crate) inner: Arc<Inner>,
    pub(crate) function: String,
    pub(crate) kind: RuntimeKind,
    pub(crate) handler: String,
    pub(crate) bundle: PathBuf,
    pub(crate) argv: Vec<String>,
    pub(crate) system_paths: Vec<PathBuf>,
    pub(crate) executables: Vec<PathBuf>,
    pub(crate) executable_dirs: Vec<PathBuf>,
    /// The hosts the function may reach, if any.
    pub(crate) egress: Option<Arc<EgressPlan>>,
    /// For an `http` function: its server's command and how it takes requests, and
    /// its running servers.
    pub(crate) server: Option<(ServerSpec, Arc<Servers>)>,
}

impl Prepared<Input, FunctionResponse> for PreparedProcess {
    fn create(
        &self,
        config: &Arc<InstanceConfig>,
    ) -> BoxFuture<'_, Result<Box<dyn Instance<Input, FunctionResponse>>, InvokeError>> {
        let config = config.clone();
        Box::pin(async move {
            if let Some((server, servers)) = &self.server {
                let instance = self.start_server(&config, server, servers).await?;
                return Ok(Box::new(instance) as Box<dyn Instance<Input, FunctionResponse>>);
            }
            let instance = crate::instance::LambdaInstance::new(self.start(&config).await?);
            Ok(Box::new(instance) as Box<dyn Instance<Input, FunctionResponse>>)
        })
    }
}

impl PreparedProcess {
    pub(crate) async fn start(&self, config: &InstanceConfig) -> Result<ProcessInstance, InvokeError> {
        let inner = &self.inner;
        let (seq, name) = next_name();
        let version = env_value(config, "UPDRAFT_FUNCTION_VERSION").unwrap_or("$LATEST").to_owned();
        // A managed runtime without a network grant starts from a pre-started sandbox
        // when one is ready: its interpreter is up, only the function is missing.
        if let Some(kind) = self.pooled_kind() {
            inner.note_cold_start(kind);
        }
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
                let plan = self.plan(config, &version, &name);
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

    /// The sandbox built for this version's instance `name` (a server's with the
    /// connector that reaches it).
    fn plan(&self, config: &InstanceConfig, version: &str, name: &str) -> SandboxPlan {
        SandboxPlan {
            task: self.bundle.clone(),
            attach: None,
            system_paths: self.system_paths.clone(),
            executables: self.executables.clone(),
            executable_dirs: self.executable_dirs.clone(),
            argv: self.argv.clone(),
            env: self.environment(config, version, name),
            egress: self.egress.clone(),
            function: self.function.clone(),
            memory: config.memory_limit,
            max_payload: config.max_response_bytes,
            connector: self.server.is_some(),
        }
    }

    /// Starts a server (`http`) in a sandbox of its own and waits until it is ready.
    pub(crate) async fn start_server(
        &self,
        config: &InstanceConfig,
        server: &ServerSpec,
        servers: &Arc<Servers>,
    ) -> Result<ServerInstance, InvokeError> {
        let (seq, name) = next_name();
        let version = env_value(config, "UPDRAFT_FUNCTION_VERSION").unwrap_or("$LATEST").to_owned();
        let plan = self.plan(config, &version, &name);
        let start = async {
            let sandbox = self.inner.launch(seq, name, plan).await?;
            let (sandbox, connector) = crate::server::ready(sandbox, &server.readiness_path).await?;
            let process = sandbox.into_instance(&self.inner, &self.function);
            Ok(Server::supervise(process, connector, config.max_response_bytes))
        };
        servers.instance(start).await
    }

    /// The runtime kind whose pre-started sandboxes this version can use.
    pub(crate) fn pooled_kind(&self) -> Option<RuntimeKind> {
        let managed = matches!(self.kind, RuntimeKind::Python3 | RuntimeKind::Nodejs);
        (managed && self.egress.is_none() && self.inner.pre_starts()).then_some(self.kind)
    }

    /// Gives a pre-started sandbox this version: its bundle, limits and environment.
    pub(crate) async fn assign(
        &self,
        mut sandbox: Sandbox,
        config: &InstanceConfig,
        version: &str,
    ) -> Result<Sandbox, String> {
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
    pub(crate) fn environment(&self, config: &InstanceConfig, version: &str, instance: &str) -> Vec<(String, String)> {
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
