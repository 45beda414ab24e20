//! The test harness: a process runtime with the `updraft-jail` binary, zipped bundles,
//! instances, events and calls.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use updraft_model::{ArtifactDigest, ByteSize, FunctionConfig, FunctionName, Limits, RuntimeKind as Kind, ServerSpec};
use updraft_runtime::{
    Call, Event, EventOrigin, FunctionResponse, Instance, InstanceConfig, InvokeError, Invoked, Prepared, Runtime,
    VersionSource,
};
pub use updraft_runtime::{HttpResponse, Input};
use updraft_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};

/// A started instance.
pub type Started = Box<dyn Instance<Input, FunctionResponse>>;

pub struct Harness {
    pub runtime: ProcessRuntime,
    pub dir: tempfile::TempDir,
}

pub async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// A harness whose runtime configuration `adjust` changes first (a test that proves a
/// layer matters leaves it out, say).
pub async fn harness_with(adjust: impl FnOnce(&mut ProcessRuntimeConfig)) -> Harness {
    let dir = tempfile::Builder::new().prefix("updraft-process-it-").tempdir().unwrap();
    let mut config =
        ProcessRuntimeConfig::new(vec![env!("CARGO_BIN_EXE_updraft-jail").into()], dir.path().join("work"), 1);
    adjust(&mut config);
    let runtime = ProcessRuntime::start(config).await.unwrap();
    Harness { runtime, dir }
}

/// A zip of `files` (path, contents, executable).
pub fn bundle(dir: &Path, name: &str, files: &[(&str, &str, bool)]) -> PathBuf {
    let path = dir.join(format!("{name}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (file, contents, executable) in files {
        let options =
            zip::write::SimpleFileOptions::default().unix_permissions(if *executable { 0o755 } else { 0o644 });
        zip.start_file(*file, options).unwrap();
        zip.write_all(contents.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// A zip of the folder `src`, every file with its executable bit.
pub fn bundle_dir(dir: &Path, name: &str, src: &Path) -> PathBuf {
    fn add(zip: &mut zip::ZipWriter<std::fs::File>, root: &Path, dir: &Path) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                add(zip, root, &path);
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
                zip.start_file(path.strip_prefix(root).unwrap().to_str().unwrap(), options).unwrap();
                zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    let path = dir.join(format!("{name}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    add(&mut zip, src, src);
    zip.finish().unwrap();
    path
}

pub struct Function {
    pub kind: Kind,
    pub handler: Option<&'static str>,
    pub memory: u64,
    pub network: bool,
    /// `allowed_outbound_hosts`, when `network` is not enough to say it.
    pub hosts: Vec<String>,
    /// An `http` function's server.
    pub server: Option<ServerSpec>,
}

impl Function {
    pub fn python(handler: &'static str) -> Function {
        Function {
            kind: Kind::Python3,
            handler: Some(handler),
            memory: 128 << 20,
            network: false,
            hosts: Vec::new(),
            server: None,
        }
    }
    pub fn node(handler: &'static str) -> Function {
        Function {
            kind: Kind::Nodejs,
            handler: Some(handler),
            memory: 128 << 20,
            network: false,
            hosts: Vec::new(),
            server: None,
        }
    }
    /// A server started by `command`, ready when `readiness_path` answers.
    pub fn http(command: &str, readiness_path: &str) -> Function {
        let server = ServerSpec {
            command: command.to_owned(),
            readiness_path: readiness_path.to_owned(),
            concurrency_per_instance: 1,
        };
        Function {
            kind: Kind::Http,
            handler: None,
            memory: 128 << 20,
            network: false,
            hosts: Vec::new(),
            server: Some(server),
        }
    }
    pub fn provided() -> Function {
        Function {
            kind: Kind::Provided,
            handler: None,
            memory: 128 << 20,
            network: false,
            hosts: Vec::new(),
            server: None,
        }
    }
}

impl Harness {
    pub async fn prepare(
        &self,
        name: &str,
        function: &Function,
        zip: &Path,
    ) -> Result<Arc<dyn Prepared<Input, FunctionResponse>>, String> {
        let config = FunctionConfig {
            handler: function.handler.map(str::to_owned),
            server: function.server.clone(),
            memory: ByteSize::mib(function.memory >> 20),
            timeout: Duration::from_secs(10),
            allowed_outbound_hosts: match (function.network, function.hosts.is_empty()) {
                (_, false) => function.hosts.clone(),
                (true, true) => vec!["*".into()],
                (false, true) => Vec::new(),
            },
            ..FunctionConfig::with_defaults(function.kind, &Limits::default())
        };
        let digest = ArtifactDigest::of(&std::fs::read(zip).unwrap());
        let source = VersionSource {
            function: FunctionName::new(name).unwrap(),
            artifact: digest,
            artifact_path: zip.to_owned(),
            config,
        };
        Runtime::<Input, FunctionResponse>::prepare(&self.runtime, source).await.map_err(|e| e.to_string())
    }

    /// Starts an instance of the function whose bundle is the folder `src`.
    pub async fn start_dir(
        &self,
        name: &str,
        function: Function,
        src: &Path,
    ) -> Result<Box<dyn Instance<Input, FunctionResponse>>, InvokeError> {
        let zip = bundle_dir(self.dir.path(), name, src);
        let prepared = self.prepare(name, &function, &zip).await.expect("the function prepares");
        prepared.create(&instance_config(function.memory)).await
    }

    pub async fn start(
        &self,
        name: &str,
        function: Function,
        files: &[(&str, &str, bool)],
    ) -> Result<Box<dyn Instance<Input, FunctionResponse>>, InvokeError> {
        let zip = bundle(self.dir.path(), name, files);
        let prepared = self.prepare(name, &function, &zip).await.expect("the function prepares");
        prepared.create(&instance_config(function.memory)).await
    }
}

pub fn instance_config(memory: u64) -> Arc<InstanceConfig> {
    Arc::new(InstanceConfig {
        memory_limit: memory,
        env: vec![("UPDRAFT_FUNCTION_VERSION".to_owned(), "3".to_owned()), ("GREETING".to_owned(), "hi".to_owned())]
            .into(),
        allowed_outbound_hosts: Vec::new().into(),
        max_response_bytes: 6 << 20,
        reuse_state: true,
    })
}

pub fn call(id: &str, timeout: Duration) -> Call {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    Call {
        request_id: id.into(),
        trace_id: "5bef4de7ad49b0e87f6ef6c87fc2e700".into(),
        timeout,
        deadline_ms: now + timeout.as_millis() as i64,
        lineage: Default::default(),
    }
}

/// An event invocation (Lambda's Invoke API) with `payload`.
pub fn event(payload: serde_json::Value) -> Input {
    Input::Event(Event {
        id: "event".into(),
        payload: Bytes::from(payload.to_string()),
        origin: EventOrigin::Direct { content_type: None, client_context: None },
    })
}

pub async fn invoke(
    instance: &mut Box<dyn Instance<Input, FunctionResponse>>,
    id: &str,
    payload: serde_json::Value,
) -> Invoked<HttpResponse> {
    whole(instance.invoke(event(payload), call(id, Duration::from_secs(10))).await).await
}

/// Runs an invocation to its end as the scheduler does: a body that streams is read
/// whole while the rest of the invocation runs, and how the rest ended is the
/// invocation's last word.
pub async fn whole(invoked: Invoked<FunctionResponse>) -> Invoked<HttpResponse> {
    let Invoked { result, mut output, mut max_memory_used, mut reusable, rest, .. } = invoked;
    let response = match result {
        Ok(response) => response,
        Err(error) => return Invoked::ended(Err(error), output, max_memory_used, reusable),
    };
    let (parts, body) = response.into_parts();
    let (read, ended) = tokio::join!(body.read_whole(), async {
        let mut ended = rest?.await;
        // The instance would be handed back here; then the body's end goes out.
        if let Some(settled) = ended.settled.take() {
            settled();
        }
        Some(ended)
    });
    let mut result = read
        .map(|body| http::Response::from_parts(parts, body))
        .map_err(|cut| InvokeError::BadResponse { message: cut.to_string() });
    if let Some(ended) = ended {
        output.chunks.extend(ended.output.chunks);
        max_memory_used = max_memory_used.max(ended.max_memory_used);
        reusable = ended.reusable;
        if let Err(error) = ended.result {
            result = Err(error);
        }
    }
    Invoked::ended(result, output, max_memory_used, reusable)
}

/// The JSON body of a successful invocation.
pub fn json(invoked: &Invoked<HttpResponse>) -> serde_json::Value {
    match &invoked.result {
        Ok(response) => {
            serde_json::from_slice(response.body()).unwrap_or_else(|e| panic!("{e}: {:?}", response.body()))
        }
        Err(error) => panic!("the invocation failed: {error}; output: {}", output(invoked)),
    }
}

pub fn output<O>(invoked: &Invoked<O>) -> String {
    invoked.output.chunks.iter().map(|(_, b)| String::from_utf8_lossy(b)).collect()
}
