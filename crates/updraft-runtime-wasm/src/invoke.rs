//! One invocation: a fresh store, the guest's handler, a deadline and a memory limit.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::{EPOCH_TICK, Handler, PreparedComponent};
use crate::outbound::{OutboundHooks, OutboundPolicy};
use crate::output::OutputCapture;
use crate::p3::P3Instance;
pub use updraft_runtime::{GuestOutput, InvokeError, LogStream};

/// What an invocation may use.
#[derive(Debug, Clone)]
pub struct InvokeOptions {
    /// Wall-clock and CPU deadline for the whole invocation, body included (used by
    /// `PreparedComponent::invoke`; a `WasmInstance` takes it per call).
    pub timeout: Duration,
    /// The most linear memory, in bytes, that all of the instance's memories may hold.
    pub memory_limit: u64,
    /// The guest's environment variables.
    pub env: Arc<[(String, String)]>,
    pub outbound: OutboundPolicy,
    /// The largest response body; a larger one fails the invocation.
    pub max_response_bytes: usize,
}

/// How an invocation ended: the response or the failure, and what it used.
#[derive(Debug)]
pub struct InvokeOutcome {
    pub result: Result<http::Response<Bytes>, InvokeError>,
    pub output: GuestOutput,
    /// The most linear memory the instance held at once, in bytes.
    pub memory_peak: u64,
}

/// The data of one invocation's store.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) hooks: OutboundHooks,
    pub(crate) limiter: MemoryLimiter,
    /// When the current invocation (or the instance's start) must end.
    pub(crate) deadline: Instant,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Caps the total linear memory of an instance (all its memories together, not each
/// one) and remembers the peak.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: u64,
    total: u64,
    pub(crate) peak: u64,
    pub(crate) denied: bool,
}

impl MemoryLimiter {
    /// Starts a new invocation's accounting; the memory an instance already holds
    /// still counts against the limit.
    pub(crate) fn reset(&mut self, limit: u64) {
        self.limit = limit;
        self.peak = self.total;
        self.denied = false;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total + (desired as u64).saturating_sub(current as u64);
        if total > self.limit {
            self.denied = true;
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A store with its instantiated component, kept between invocations when state is
/// reused.
struct Kept {
    store: Store<GuestState>,
    proxy: Proxy,
    capture: OutputCapture,
}

/// One instance in the scheduler's sense: the loaded code of a version plus, when
/// state is reused, one instantiated store. Without reuse every invocation gets a
/// fresh store from the loaded code, so nothing leaks between requests.
pub struct WasmInstance {
    component: PreparedComponent,
    options: InvokeOptions,
    reuse: bool,
    /// The kept store, in a slot an invocation whose answer streams fills when it ends
    /// (after its head went back); the scheduler gives the instance no other invocation
    /// meanwhile.
    kept: Arc<std::sync::Mutex<Option<Kept>>>,
    /// A WASIp3 component's instance (`p3.rs`), which runs apart from all the above.
    p3: Option<P3Instance>,
}

/// An invocation's answer as the guest's task hands it over.
pub(crate) enum Answer {
    /// The body read to its end.
    Whole(http::Response<Bytes>),
    /// The head went out on the `head` channel and the body was forwarded as it came,
    /// all of it; the sender (gone if the client left) is finished only once the guest
    /// has returned, so a guest that traps after writing its body still cuts it.
    Streamed(Option<updraft_runtime::BodySender>),
}

/// How an invocation run with [`WasmInstance::run_streaming`] answered.
pub enum StreamedRun {
    /// The guest finished its body before it had to wait: as from [`WasmInstance::run`].
    Whole(InvokeOutcome),
    /// The guest waited while writing its body (on a full pipe, a timer, an outbound
    /// request): its head and a body that streams on from the guest's task, and the
    /// rest of the invocation, which ends with the guest (a trap, a timeout or a size
    /// limit after the head cuts the body and is the invocation's error).
    Streaming { response: http::Response<updraft_runtime::Body>, rest: futures::future::BoxFuture<'static, StreamEnd> },
}

/// How a streamed invocation ended.
pub struct StreamEnd {
    pub outcome: InvokeOutcome,
    /// For a body that is complete: the sender to finish it with once the instance is
    /// handed back (`Invoked::settled`), so that a client that has seen the whole
    /// answer finds the instance free; dropped unfinished, it cuts the body.
    pub finish: Option<updraft_runtime::BodySender>,
}

/// How long an instance's start (its component's initialisation) may run.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(10);

impl PreparedComponent {
    /// Runs the component's `wasi:http/incoming-handler` on `request` in a fresh store.
    pub async fn invoke(&self, request: http::Request<Bytes>, options: &InvokeOptions) -> InvokeOutcome {
        let mut instance = WasmInstance::new(self.clone(), options.clone(), false);
        instance.run(request, options.timeout).await
    }

    /// Starts an instance. With `reuse`, instantiates the component now (the cold part,
    /// on a guest thread: a component's start code is guest code too) and keeps that
    /// store for every invocation while they succeed.
    pub async fn instance(&self, options: InvokeOptions, reuse: bool) -> Result<WasmInstance, InvokeError> {
        self.instance_sharing(options, reuse, None).await
    }

    /// Starts an instance as [`PreparedComponent::instance`] does; a WASIp3 component's,
    /// with reuse and `sharing` = `(workers, n)`, joins one of `workers` that runs fewer
    /// than `n` instances, or starts one (`concurrency_per_instance`).
    pub async fn instance_sharing(
        &self,
        options: InvokeOptions,
        reuse: bool,
        sharing: Option<(Arc<crate::Workers>, usize)>,
    ) -> Result<WasmInstance, InvokeError> {
        let mut instance = WasmInstance::new(self.clone(), options, reuse);
        let proxy_pre = match &self.handler {
            Handler::P2(proxy_pre) => proxy_pre.clone(),
            Handler::P3(service) => {
                if reuse {
                    instance.p3 = Some(P3Instance::kept(self, service.clone(), &instance.options, sharing).await?);
                }
                return Ok(instance);
            }
        };
        if reuse {
            let component = self.clone();
            let options = instance.options.clone();
            let start = async move {
                let (mut store, capture) = component.new_store(&options);
                store.data_mut().deadline = Instant::now() + START_LIMIT;
                store.set_epoch_deadline(1);
                let proxy = proxy_pre.instantiate_async(&mut store).await?;
                Ok::<_, wasmtime::Error>(Kept { store, proxy, capture })
            };
            let kept = self
                .guests
                .run(start)
                .await
                .map_err(|join| InvokeError::Internal { message: format!("the guest's task ended: {join}") })?
                .map_err(|error| InvokeError::Init { message: format!("{error:#}") })?;
            *instance.slot() = Some(kept);
        }
        Ok(instance)
    }
}

impl WasmInstance {
    fn new(component: PreparedComponent, options: InvokeOptions, reuse: bool) -> Self {
        // A WASIp3 component's instance runs apart; one with reuse gets its seat from
        // `instance_sharing`.
        let p3 = match &component.handler {
            Handler::P3(service) => Some(P3Instance::fresh(service.clone())),
            Handler::P2(_) => None,
        };
        Self { component, options, reuse, kept: Arc::default(), p3 }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // A panic while the slot was held left at worst no store: a fresh one is made.
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn job(&self) -> Job {
        Job {
            component: self.component.clone(),
            options: self.options.clone(),
            reuse: self.reuse,
            kept: self.slot().take(),
        }
    }

    /// Runs the component's `wasi:http/incoming-handler` on `request`, on a guest
    /// thread (see `executor.rs`).
    ///
    /// The response body is read whole (up to `max_response_bytes`) before this returns,
    /// so a guest that traps half way through its body is a failed invocation, not a
    /// truncated success. A kept store is kept only if the invocation succeeded.
    pub async fn run(&mut self, request: http::Request<Bytes>, timeout: Duration) -> InvokeOutcome {
        if let Some(p3) = &mut self.p3 {
            return match crate::p3::run(p3, &self.component, &self.options, request, timeout, false).await {
                StreamedRun::Whole(outcome) => outcome,
                StreamedRun::Streaming { rest, .. } => rest.await.outcome,
            };
        }
        // The deadline counts from now, not from when a guest thread takes the job: a
        // wait for one (behind spinning guests, say) is part of the invocation's time.
        let deadline = Instant::now() + timeout;
        let job = self.job().run(request, timeout, deadline, None);
        match self.component.guests.run(job).await {
            Ok((ran, kept)) => {
                *self.slot() = kept;
                ran.whole()
            }
            Err(join) => InvokeOutcome { result: Err(lost(&join)), output: GuestOutput::default(), memory_peak: 0 },
        }
    }

    /// Runs the component on `request` as [`WasmInstance::run`] does, except that a
    /// guest that has to wait while it writes its body (a chunked answer written as it
    /// is made) has its head returned at once and its body passed on as it comes,
    /// never held whole. A body that ends before the guest waits is read whole, so an
    /// ordinary answer (and a guest that traps before it finishes one) is unchanged.
    pub async fn run_streaming(&mut self, request: http::Request<Bytes>, timeout: Duration) -> StreamedRun {
        if let Some(p3) = &mut self.p3 {
            return crate::p3::run(p3, &self.component, &self.options, request, timeout, true).await;
        }
        let deadline = Instant::now() + timeout;
        let (head_sender, head) = tokio::sync::oneshot::channel();
        let job = self.job().run(request, timeout, deadline, Some(head_sender));
        let task = self.component.guests.spawn(job);
        let slot = self.kept.clone();
        let finish = async move {
            match task.await {
                Ok((ran, kept)) => {
                    *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = kept;
                    ran
                }
                Err(join) => {
                    Ran { result: Err(lost(&join)), output: GuestOutput::default(), memory_peak: 0, finish: None }
                }
            }
        };
        match head.await {
            Ok(response) => StreamedRun::Streaming {
                response,
                rest: Box::pin(async move {
                    let mut ran = finish.await;
                    let end = ran.finish.take();
                    StreamEnd { outcome: ran.whole(), finish: end }
                }),
            },
            // The job ended (or answered whole) without streaming.
            Err(_) => StreamedRun::Whole(finish.await.whole()),
        }
    }
}

/// The error of an invocation whose guest task ended in `join`.
fn lost(join: &tokio::task::JoinError) -> InvokeError {
    InvokeError::Internal { message: format!("the guest's task ended: {join}") }
}

/// How a job ended, as its task hands it back.
struct Ran {
    result: Result<Answer, InvokeError>,
    output: GuestOutput,
    memory_peak: u64,
    /// A streamed body that is complete, to be ended by whoever hands the instance back.
    finish: Option<updraft_runtime::BodySender>,
}

impl Ran {
    /// As an outcome. A streamed answer's response went out already, so its result here
    /// is an empty `200`, which the streaming caller does not use.
    fn whole(self) -> InvokeOutcome {
        let result = self.result.map(|answer| match answer {
            Answer::Whole(response) => response,
            Answer::Streamed(_) => http::Response::default(),
        });
        InvokeOutcome { result, output: self.output, memory_peak: self.memory_peak }
    }
}

/// One invocation, owning everything it needs, so that it can run on a guest thread.
struct Job {
    component: PreparedComponent,
    options: InvokeOptions,
    reuse: bool,
    kept: Option<Kept>,
}

impl Job {
    /// Runs the invocation; returns how it ended and the store to keep, if any. With
    /// `head`, an answer whose body is not all there when its head is (the guest waits
    /// while writing it) is streamed: the head goes on `head` with a body that is
    /// forwarded as it comes.
    async fn run(
        self,
        request: http::Request<Bytes>,
        timeout: Duration,
        deadline: Instant,
        head: Option<HeadSender>,
    ) -> (Ran, Option<Kept>) {
        let Job { component, options, reuse, kept } = self;
        let (mut store, proxy, capture) = match kept {
            Some(kept) => (kept.store, Some(kept.proxy), kept.capture),
            None => {
                let (store, capture) = component.new_store(&options);
                (store, None, capture)
            }
        };
        store.data_mut().limiter.reset(options.memory_limit);
        // What the guest calls joins the invocation's trace, as a child of its span.
        store.data_mut().hooks.traceparent = request.headers().get("traceparent").cloned();
        store.data_mut().hooks.tracestate = request.headers().get("tracestate").cloned();
        // The epoch callback checks this deadline at every tick and yields otherwise.
        store.data_mut().deadline = deadline;
        store.set_epoch_deadline(1);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = request
            .map(|body| Full::new(body).map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} }));
        let setup = (|| -> wasmtime::Result<_> {
            let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let outparam = store.data_mut().http().new_response_outparam(sender)?;
            Ok((incoming, outparam))
        })();
        let (incoming, outparam) = match setup {
            Ok(resources) => resources,
            Err(error) => {
                let ran = Ran {
                    result: Err(InvokeError::Internal { message: format!("{error:#}") }),
                    output: GuestOutput::default(),
                    memory_peak: 0,
                    finish: None,
                };
                return (ran, None);
            }
        };

        let Handler::P2(proxy_pre) = component.handler.clone() else {
            let message = "a WASIp3 component's invocation ran as a WASIp2 one".to_owned();
            let ran = Ran {
                result: Err(InvokeError::Internal { message }),
                output: GuestOutput::default(),
                memory_peak: 0,
                finish: None,
            };
            return (ran, None);
        };
        // The guest runs in this task, next to the reader of its response body: the
        // body is a bounded pipe, so the guest can only finish writing it while it is
        // being read. A store that will not be kept is dropped as soon as the guest is
        // done, which closes the response channel if the guest never answered.
        let guest = async move {
            let result = async {
                let proxy = match proxy {
                    Some(proxy) => proxy,
                    None => proxy_pre.instantiate_async(&mut store).await?,
                };
                proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await?;
                Ok::<_, wasmtime::Error>(proxy)
            }
            .await;
            let limiter = &store.data().limiter;
            let usage = (limiter.peak, limiter.denied);
            let kept = match result {
                Ok(proxy) if reuse => Ok(Some((store, proxy))),
                Ok(_) => Ok(None),
                Err(error) => Err(error),
            };
            (kept, usage)
        };
        let limit = options.max_response_bytes;
        let response = async move {
            let response = match receiver.await {
                Ok(Ok(response)) => response,
                Ok(Err(code)) => return Err(InvokeError::BadResponse { message: format!("{code:?}") }),
                Err(_) => return Err(InvokeError::NoResponse),
            };
            let (parts, body) = response.into_parts();
            read_answer(parts, body, limit, head).await
        };

        // The epoch deadline stops a guest that computes; this one stops a guest that
        // waits (on an outbound request, say). A tick of slack lets the epoch fire first.
        let waits_until = tokio::time::Instant::from_std(deadline) + EPOCH_TICK;
        let both = async {
            tokio::pin!(guest, response);
            tokio::select! {
                ran = &mut guest => {
                    // A guest that failed ends its answer too: a reader waiting on a slow
                    // client is dropped, which cuts a streamed body now.
                    let read = if ran.0.is_err() { Err(InvokeError::NoResponse) } else { response.await };
                    (ran, read)
                }
                read = &mut response => (guest.await, read),
            }
        };
        let joined = tokio::time::timeout_at(waits_until, both).await;
        let timed_out = InvokeError::Timeout { timeout };
        let memory_limit = options.memory_limit;
        let mut keep = None;
        let (result, memory_peak): (Result<Answer, InvokeError>, u64) = match joined {
            Err(_elapsed) => (Err(timed_out), 0),
            Ok(((guest_result, (memory_peak, memory_denied)), response_result)) => {
                let result = match guest_result {
                    Err(error) => Err(classify_guest_error(&error, memory_denied, memory_limit, timed_out)),
                    Ok(_) if memory_denied && response_result.is_err() => {
                        Err(InvokeError::OutOfMemory { limit: memory_limit })
                    }
                    Ok(kept) => {
                        if let (Some((store, proxy)), Ok(_)) = (kept, &response_result) {
                            keep = Some(Kept { store, proxy, capture: capture.clone() });
                        }
                        response_result
                    }
                };
                (result, memory_peak)
            }
        };
        // A streamed body ends cleanly only once the guest has returned, and not here:
        // the caller sends the end once the instance is free again.
        let (result, finish) = match result {
            Ok(Answer::Streamed(sender)) => (Ok(Answer::Streamed(None)), sender),
            other => (other, None),
        };
        let captured = capture.take();
        let output = GuestOutput { chunks: captured.chunks, truncated: captured.truncated };
        (Ran { result, output, memory_peak, finish }, keep)
    }
}

/// Where a streamed answer's head goes.
pub(crate) type HeadSender = tokio::sync::oneshot::Sender<http::Response<updraft_runtime::Body>>;

/// Reads a guest's answer body: whole, or, when `head` is given and the body is not
/// all there yet, streamed from the first point where the guest has to wait. A body
/// over `limit` is an error: before the head, a `ResponseTooLarge` failure; after it, a
/// cut body (the sender dropped unfinished) and the same error for the invocation.
pub(crate) async fn read_answer<B>(
    parts: http::response::Parts,
    mut body: B,
    limit: usize,
    head: Option<HeadSender>,
) -> Result<Answer, InvokeError>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    use futures::FutureExt as _;
    let too_large = InvokeError::ResponseTooLarge { limit };
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large);
    }
    let bad = |error: wasmtime_wasi_http::Error| InvokeError::BadResponse { message: error.to_string() };
    let mut collected = bytes::BytesMut::new();
    // Read whole: to its end, waiting as long as it takes. Streaming: what is there
    // already, and whole if it ends before the guest has to wait.
    loop {
        let next = match &head {
            None => body.frame().await,
            Some(_) => match body.frame().now_or_never() {
                Some(next) => next,
                None => break,
            },
        };
        match next {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data);
                }
                if collected.len() > limit {
                    return Err(too_large);
                }
            }
            Some(Err(error)) => return Err(bad(error)),
            None => return Ok(Answer::Whole(http::Response::from_parts(parts, collected.freeze()))),
        }
    }
    let Some(head) = head else { return Err(InvokeError::NoResponse) };
    let (sender, streamed) = updraft_runtime::Body::channel();
    if head.send(http::Response::from_parts(parts, streamed)).is_err() {
        return Err(InvokeError::Internal { message: "the invocation stopped waiting for its answer".into() });
    }
    // From here the body is passed on as it comes; a client gone leaves it read and
    // dropped so that the guest can finish.
    let mut sender = Some(sender);
    let mut sent = collected.len();
    if !collected.is_empty()
        && let Some(to) = &sender
        && to.send(collected.freeze()).await.is_err()
    {
        sender = None;
    }
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                sent += data.len();
                if sent > limit {
                    return Err(too_large);
                }
                if let Some(to) = &sender
                    && to.send(data).await.is_err()
                {
                    sender = None;
                }
            }
            Some(Err(error)) => return Err(bad(error)),
            None => return Ok(Answer::Streamed(sender)),
        }
    }
}

impl PreparedComponent {
    pub(crate) fn new_store(&self, options: &InvokeOptions) -> (Store<GuestState>, OutputCapture) {
        let capture = OutputCapture::default();
        let wasi = WasiCtx::builder()
            .envs(&options.env)
            .stdout(capture.stream(LogStream::Stdout))
            .stderr(capture.stream(LogStream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi,
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: OutboundHooks { policy: options.outbound.clone(), traceparent: None, tracestate: None },
                limiter: MemoryLimiter { limit: options.memory_limit, total: 0, peak: 0, denied: false },
                deadline: Instant::now(),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(at_epoch_tick);
        (store, capture)
    }
}

/// Runs at every epoch tick while guest code runs: past the invocation's deadline the
/// guest traps (`Trap::Interrupt`, reported as a timeout, and the store is never used
/// again); before it, the guest yields its thread to the next task and resumes at the
/// back of the queue, so guests that never yield by themselves still take turns.
fn at_epoch_tick(store: StoreContextMut<'_, GuestState>) -> wasmtime::Result<UpdateDeadline> {
    if Instant::now() >= store.data().deadline {
        return Ok(UpdateDeadline::Interrupt);
    }
    // `yield_now` rather than wasmtime's own `Yield`: Tokio polls a task that yields
    // through its waker again at once, ahead of every other task (wasmtime#10667).
    Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
}

fn classify_guest_error(
    error: &wasmtime::Error,
    memory_denied: bool,
    memory_limit: u64,
    timeout: InvokeError,
) -> InvokeError {
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return timeout;
    }
    if memory_denied {
        return InvokeError::OutOfMemory { limit: memory_limit };
    }
    InvokeError::Trap { message: format!("{error:#}") }
}
