//! The engine, the compiled-code cache and pre-instantiation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::executor::GuestExecutor;
use crate::invoke::GuestState;

/// How often the epoch ticks: the slice a guest that never yields runs before it
/// yields to the next task on the guests' executor (another function's request waits
/// about this long per spinning guest ahead of it), and how late a deadline may fire.
/// The ticker thread waking a thousand times a second costs next to nothing; the
/// epoch checks cost the same at any tick (`isolation.md`: +4.6% at 1 ms, +4.3% at 10).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Whether to use wasmtime's pooling instance allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Use it when the host can reserve its address space, else fall back.
    #[default]
    Auto,
    Enabled,
    Disabled,
}

/// Settings for the engine.
#[derive(Debug, Clone)]
pub struct WasmEngineConfig {
    /// Where compiled code is cached (`<data-dir>/compiled`).
    pub cache_dir: PathBuf,
    pub pooling: Pooling,
    /// The most instances alive at once when pooling.
    pub max_instances: u32,
}

/// Errors creating the runtime.
#[derive(Debug, thiserror::Error)]
pub enum WasmRuntimeError {
    #[error("could not configure the WebAssembly engine")]
    Engine(#[source] wasmtime::Error),
    #[error("could not start the threads that run guest code")]
    Executor(#[source] std::io::Error),
    #[error("could not create the compiled-code cache folder {path}")]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a component cannot be deployed. Each message tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the artifact is empty; point `source` at a built .wasm component")]
    Empty,
    #[error(
        "the artifact is a core WebAssembly module, not a component; build for a component target (e.g. `cargo build --target wasm32-wasip2`) or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("the artifact is not WebAssembly (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error("the component does not compile: {detail}")]
    Invalid { detail: String },
    #[error(
        "the component imports {import}, which Updraft does not provide; functions may import wasi:http, wasi:cli, wasi:clocks, wasi:random, wasi:io, wasi:filesystem and wasi:sockets (0.2.x, and 0.3.0 but for wasi:io)"
    )]
    UnsupportedImport { import: String },
    #[error(
        "the component exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.0; an HTTP function must export one of them ({detail})"
    )]
    MissingHandler { detail: String },
    #[error("could not read or write the compiled-code cache at {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The wasmtime engine with everything shared by all functions. Cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime(Arc<Shared>);

struct Shared {
    /// Loaded code by artifact digest, shared by every version and function with the
    /// same artifact while any instance holds it.
    loaded: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<PreparedComponent>>>,
    engine: Engine,
    linker: Linker<GuestState>,
    cache_dir: PathBuf,
    pooling: bool,
    guests: Arc<GuestExecutor>,
    _epoch_ticker: EpochTicker,
}

impl WasmRuntime {
    pub fn new(config: WasmEngineConfig) -> Result<Self, WasmRuntimeError> {
        let (engine, pooling) = match config.pooling {
            Pooling::Disabled => (build_engine(None)?, false),
            Pooling::Enabled => (build_engine(Some(config.max_instances))?, true),
            Pooling::Auto => match build_engine(Some(config.max_instances)) {
                Ok(engine) => (engine, true),
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        "pooling allocator unavailable (the host cannot reserve its address space); falling back to on-demand allocation"
                    );
                    (build_engine(None)?, false)
                }
            },
        };

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(WasmRuntimeError::Engine)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(WasmRuntimeError::Engine)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(WasmRuntimeError::Engine)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(WasmRuntimeError::Engine)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache_dir = config.cache_dir.join(format!("{:016x}", hasher.finish()));
        std::fs::create_dir_all(&cache_dir)
            .map_err(|source| WasmRuntimeError::CacheDir { path: cache_dir.clone(), source })?;

        let guests = GuestExecutor::start().map_err(WasmRuntimeError::Executor)?;
        let epoch_ticker = EpochTicker::start(engine.clone());
        Ok(Self(Arc::new(Shared {
            loaded: Default::default(),
            engine,
            linker,
            cache_dir,
            pooling,
            guests,
            _epoch_ticker: epoch_ticker,
        })))
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.0.pooling
    }

    /// Makes sure the component with this digest is compiled into the cache, checking
    /// its imports and exports the first time; `bytes` is called only on a cache miss.
    /// Nothing stays loaded: `prepare_cached` loads it when an instance needs it.
    ///
    /// This is CPU-heavy on a cache miss: call it from a blocking thread.
    pub fn ensure_compiled<E>(
        &self,
        digest: &str,
        bytes: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Result<(), CompileError>, E> {
        if self.cache_path(digest).exists() {
            return Ok(Ok(()));
        }
        let bytes = bytes()?;
        Ok(self.prepare(digest, &bytes).map(drop))
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        self.0.cache_dir.join(format!("{digest}.cwasm"))
    }

    /// Compiles (or loads from the cache) the component with this digest and
    /// pre-instantiates it, checking its imports and exports.
    ///
    /// This is CPU-heavy on a cache miss: call it from a blocking thread.
    pub fn prepare(&self, digest: &str, bytes: &[u8]) -> Result<PreparedComponent, CompileError> {
        let cached = self.cache_path(digest);
        let component = match self.load_cached(&cached) {
            Some(component) => component,
            None => {
                check_header(bytes)?;
                let component = Component::new(&self.0.engine, bytes)
                    .map_err(|error| CompileError::Invalid { detail: format!("{error:#}") })?;
                self.store_cached(&cached, &component)?;
                component
            }
        };
        self.pre_instantiate(component)
    }

    /// Loads a component that an earlier `prepare` compiled, without its bytes.
    /// Returns `None` when it is not cached (then call `prepare`).
    pub fn prepare_cached(&self, digest: &str) -> Option<Result<PreparedComponent, CompileError>> {
        let cached = self.cache_path(digest);
        self.load_cached(&cached).map(|component| self.pre_instantiate(component))
    }

    /// The loaded code of `digest` if an instance holds it.
    pub(crate) fn loaded(&self, digest: &str) -> Option<Arc<PreparedComponent>> {
        self.0.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(digest).and_then(|weak| weak.upgrade())
    }

    /// Shares newly loaded code, or returns what another start loaded meanwhile.
    pub(crate) fn share_loaded(&self, digest: &str, component: PreparedComponent) -> Arc<PreparedComponent> {
        let mut loaded = self.0.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(theirs) = loaded.get(digest).and_then(|weak| weak.upgrade()) {
            return theirs;
        }
        loaded.retain(|_, weak| weak.strong_count() > 0);
        let component = Arc::new(component);
        loaded.insert(digest.to_owned(), Arc::downgrade(&component));
        component
    }

    fn pre_instantiate(&self, component: Component) -> Result<PreparedComponent, CompileError> {
        let instance_pre = self.0.linker.instantiate_pre(&component).map_err(|error| {
            let detail = format!("{error:#}");
            CompileError::UnsupportedImport { import: missing_import_name(&detail).unwrap_or(detail) }
        })?;
        // A WASIp2 handler if it has one, else a WASIp3 one; the error names the first.
        let handler = match ProxyPre::new(instance_pre.clone()) {
            Ok(proxy) => Handler::P2(proxy),
            Err(p2) => match ServicePre::new(instance_pre) {
                Ok(service) => Handler::P3(service),
                Err(_) => return Err(CompileError::MissingHandler { detail: format!("{p2:#}") }),
            },
        };
        Ok(PreparedComponent { handler, engine: self.0.engine.clone(), guests: self.0.guests.clone() })
    }

    #[allow(unsafe_code)]
    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output. This
        // one was written by `store_cached` below with `Component::serialize` from the
        // same engine configuration (the folder is keyed by the engine's compatibility
        // hash), into the server's private data directory, and is only ever replaced
        // whole by an atomic rename. wasmtime also checks the header's version and
        // flags and refuses a mismatch, which we treat as a cache miss.
        match unsafe { Component::deserialize_file(&self.0.engine, path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "discarding unusable compiled-code cache entry");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn store_cached(&self, path: &Path, component: &Component) -> Result<(), CompileError> {
        let cache_error = |source| CompileError::Cache { path: path.to_owned(), source };
        let bytes = component.serialize().map_err(|error| cache_error(std::io::Error::other(format!("{error:#}"))))?;
        let tmp = path.with_extension(format!("cwasm.tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(cache_error)?;
        std::fs::rename(&tmp, path).map_err(cache_error)
    }
}

fn build_engine(pooling_instances: Option<u32>) -> Result<Engine, WasmRuntimeError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // WASIp3 components: async exports, streams and futures.
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    // Guests get a fixed stack; deep recursion traps instead of exhausting the host.
    config.max_wasm_stack(1 << 20);
    if let Some(instances) = pooling_instances {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances);
        pool.total_memories(instances);
        pool.total_tables(instances * 2);
        pool.total_stacks(instances);
        pool.total_core_instances(instances * 4);
        pool.max_component_instance_size(10 << 20);
        pool.max_core_instance_size(10 << 20);
        pool.max_core_instances_per_component(200);
        pool.max_memories_per_component(32);
        pool.max_tables_per_component(64);
        pool.max_memory_size(4 << 30);
        // Resetting a slot's memory by writing back only its dirty pages (found with
        // Linux's PAGEMAP_SCAN where the kernel has it) keeps those pages mapped:
        // no page faults on the next request and no madvise, whose TLB shootdowns
        // cost every core of a multi-threaded server.
        pool.linear_memory_keep_resident(2 << 20);
        pool.table_keep_resident(512 << 10);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(WasmRuntimeError::Engine)
}

fn check_header(bytes: &[u8]) -> Result<(), CompileError> {
    if bytes.is_empty() {
        return Err(CompileError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(CompileError::NotWasm);
    }
    // Bytes 4..8 are the version and layer: 1,0,0,0 is a core module; components
    // use layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(CompileError::CoreModule);
    }
    Ok(())
}

/// Pulls the interface name out of wasmtime's "import `x` has the wrong type" or
/// "matching implementation was not found" messages.
fn missing_import_name(detail: &str) -> Option<String> {
    let start = detail.find('`')? + 1;
    let end = start + detail[start..].find('`')?;
    Some(detail[start..end].to_owned())
}

/// A component loaded and ready to run: compiled code mapped in, imports resolved.
/// Clones share the code, which is unmapped when the last one goes.
#[derive(Clone)]
pub struct PreparedComponent {
    pub(crate) handler: Handler,
    pub(crate) engine: Engine,
    /// Where its invocations run (kept alive while any instance of it lives).
    pub(crate) guests: Arc<GuestExecutor>,
}

/// The HTTP handler a component exports, pre-instantiated.
#[derive(Clone)]
pub(crate) enum Handler {
    /// `wasi:http/incoming-handler@0.2.x`: one request per call, the answer through an
    /// out-parameter.
    P2(ProxyPre<GuestState>),
    /// `wasi:http/handler@0.3.0`: an async export that returns its answer and may run
    /// for several requests at once in one instance (`p3.rs`).
    P3(ServicePre<GuestState>),
}

impl PreparedComponent {
    /// Whether the component exports `wasi:http/handler@0.3.0` (WASIp3).
    pub fn is_p3(&self) -> bool {
        matches!(self.handler, Handler::P3(_))
    }
}

/// Advances the engine's epoch every `EPOCH_TICK` so deadlines fire.
struct EpochTicker {
    running: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let weak = engine.weak();
        drop(engine);
        std::thread::Builder::new()
            .name("updraft-epoch".into())
            .spawn(move || {
                while flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self { running }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}
