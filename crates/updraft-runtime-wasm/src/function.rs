//! The scheduler's runtime trait for wasm components.
//!
//! An *instance* is the loaded code of one version (compiled machine code mapped from
//! the cache and pre-instantiated) plus, with `instance_reuse`, one instantiated
//! store. A *cold start* is creating one: loading the code if no other instance of the
//! same artifact holds it (a version whose instances all idled out holds nothing,
//! which is scale to zero), and with reuse, instantiating the component. Without reuse, each
//! invocation instantiates into a fresh store from the loaded code; that is part of
//! its duration. A WASIp3 component's instance with reuse may share its store with
//! others of the same version, up to `concurrency_per_instance` of them (`p3.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use updraft_model::{ArtifactDigest, FunctionName};
use updraft_runtime::{
    Body, BoxFuture, Call, FunctionResponse, GuestOutput, Input, Instance, InstanceConfig, InvokeError, Invoked,
    PrepareError, Prepared, Runtime, VersionSource,
};

use crate::engine::WasmRuntime;
use crate::invoke::{InvokeOptions, StreamEnd, StreamedRun, WasmInstance};
use crate::outbound::OutboundPolicy;
use crate::{CompileError, PreparedComponent, Workers};

impl Runtime<Input, FunctionResponse> for WasmRuntime {
    fn prepare(
        &self,
        source: VersionSource,
    ) -> BoxFuture<'_, Result<Arc<dyn Prepared<Input, FunctionResponse>>, PrepareError>> {
        Box::pin(async move {
            let runtime = self.clone();
            let digest = source.artifact.clone();
            let path = source.artifact_path.clone();
            let compiled = tokio::task::spawn_blocking(move || {
                runtime.ensure_compiled(digest.as_str(), || std::fs::read(&path).map_err(|e| (path.clone(), e)))
            })
            .await
            .map_err(|join| -> PrepareError { format!("compilation panicked: {join}").into() })?;
            let concurrency = source.config.concurrency_per_instance.max(1) as usize;
            match compiled {
                Ok(Ok(())) => {
                    let function = WasmFunction {
                        runtime: self.clone(),
                        function: source.function,
                        digest: source.artifact,
                        artifact_path: source.artifact_path,
                        concurrency: (source.config.instance_reuse && concurrency > 1).then_some(concurrency),
                        workers: Arc::default(),
                    };
                    if function.concurrency.is_some() {
                        // Only an async (WASIp3) handler runs several requests at once.
                        let component =
                            function.load().await.map_err(|error| -> PrepareError { error.to_string().into() })?;
                        if !component.is_p3() {
                            return Err(format!(
                                "concurrency_per_instance = {concurrency} needs a WASIp3 component (one exporting \
                                 wasi:http/handler@0.3.0, whose handler is async); this one exports \
                                 wasi:http/incoming-handler@0.2, which runs one request at a time: remove \
                                 concurrency_per_instance, or build the component with the wasip3 bindings"
                            )
                            .into());
                        }
                    }
                    Ok(Arc::new(function) as Arc<dyn Prepared<Input, FunctionResponse>>)
                }
                Ok(Err(error)) => Err(Box::new(error) as PrepareError),
                Err((path, error)) => Err(format!("could not read the artifact {}: {error}", path.display()).into()),
            }
        })
    }
}

/// A prepared wasm version: its code is in the compiled-code cache, and loaded while
/// any instance of any version with the same artifact lives.
pub struct WasmFunction {
    runtime: WasmRuntime,
    function: FunctionName,
    digest: ArtifactDigest,
    artifact_path: PathBuf,
    /// With `instance_reuse` and `concurrency_per_instance` above 1 (a WASIp3
    /// component): how many requests one instance runs at once.
    concurrency: Option<usize>,
    /// Those instances' workers, which new instances join while they have room.
    workers: Arc<Workers>,
}

impl WasmFunction {
    /// The loaded code, shared with every other instance of the same artifact.
    async fn load(&self) -> Result<Arc<PreparedComponent>, InvokeError> {
        if let Some(loaded) = self.runtime.loaded(self.digest.as_str()) {
            return Ok(loaded);
        }
        // Mapping cached code is quick; recompiling (the cache was cleared) is not.
        let component = match self.runtime.prepare_cached(self.digest.as_str()) {
            Some(loaded) => loaded,
            None => {
                let runtime = self.runtime.clone();
                let (digest, path) = (self.digest.clone(), self.artifact_path.clone());
                tokio::task::spawn_blocking(move || match std::fs::read(&path) {
                    Ok(bytes) => runtime.prepare(digest.as_str(), &bytes),
                    Err(source) => Err(CompileError::Cache { path, source }),
                })
                .await
                .unwrap_or_else(|join| Err(CompileError::Invalid { detail: join.to_string() }))
            }
        }
        .map_err(|error| InvokeError::Init { message: error.to_string() })?;
        // Another start may have loaded it meanwhile; then this shares theirs.
        Ok(self.runtime.share_loaded(self.digest.as_str(), component))
    }
}

impl Prepared<Input, FunctionResponse> for WasmFunction {
    fn create(
        &self,
        config: &Arc<InstanceConfig>,
    ) -> BoxFuture<'_, Result<Box<dyn Instance<Input, FunctionResponse>>, InvokeError>> {
        let config = config.clone();
        Box::pin(async move {
            let component = self.load().await?;
            let options = InvokeOptions {
                timeout: Duration::ZERO,
                memory_limit: config.memory_limit,
                env: config.env.clone(),
                outbound: OutboundPolicy::new(&config.allowed_outbound_hosts),
                max_response_bytes: config.max_response_bytes,
            };
            let sharing = self.concurrency.map(|concurrency| (self.workers.clone(), concurrency));
            let instance = component.instance_sharing(options, config.reuse_state, sharing).await?;
            Ok(Box::new(Loaded { instance, function: self.function.clone(), _code: component })
                as Box<dyn Instance<Input, FunctionResponse>>)
        })
    }
}

/// An instance holding a reference to its version's loaded code.
struct Loaded {
    instance: WasmInstance,
    function: FunctionName,
    _code: Arc<PreparedComponent>,
}

impl Instance<Input, FunctionResponse> for Loaded {
    fn invoke(&mut self, input: Input, call: Call) -> BoxFuture<'_, Invoked<FunctionResponse>> {
        Box::pin(async move {
            // Only an HTTP request's answer streams: an event's, a workflow task's or an
            // Invoke's is read whole by its caller, which must see the guest's own error.
            let http = matches!(input, Input::Http(_));
            let request = updraft_runtime::cloudevents::request(input, self.function.as_str(), &call);
            // A guest gets its request whole; the gateway reads it so before it invokes.
            let (parts, body) = request.into_parts();
            let Ok(body) = body.read_whole().await else {
                return Invoked::ended(Err(InvokeError::RequestCut), GuestOutput::default(), 0, true);
            };
            let request = http::Request::from_parts(parts, body);
            if !http {
                let outcome = self.instance.run(request, call.timeout).await;
                let reusable = outcome.result.is_ok();
                let result = outcome.result.map(|response| response.map(Body::whole));
                return Invoked::ended(result, outcome.output, outcome.memory_peak, reusable);
            }
            match self.instance.run_streaming(request, call.timeout).await {
                StreamedRun::Whole(outcome) => {
                    let reusable = outcome.result.is_ok();
                    let result = outcome.result.map(|response| response.map(Body::whole));
                    Invoked::ended(result, outcome.output, outcome.memory_peak, reusable)
                }
                // The body streams from the guest's task; the rest of the invocation is
                // its end (a trap or a timeout after the head cuts the body).
                StreamedRun::Streaming { response, rest } => {
                    let rest = async move {
                        let StreamEnd { outcome, finish } = rest.await;
                        let reusable = outcome.result.is_ok();
                        let mut ended =
                            Invoked::ended(outcome.result.map(drop), outcome.output, outcome.memory_peak, reusable);
                        if let Some(finish) = finish {
                            ended.finish_when_settled(finish);
                        }
                        ended
                    };
                    Invoked::streaming(response, rest)
                }
            }
        })
    }
}
