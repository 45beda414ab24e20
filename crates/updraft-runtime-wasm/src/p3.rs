//! WASIp3 components: `wasi:http/handler@0.3.0`, an async export that returns its
//! answer (whose body the guest may go on writing from a task of its own) and that one
//! instance may run for several requests at once.
//!
//! A *worker* owns one instantiated store and runs wasmtime's concurrent event loop
//! (`Store::run_concurrent`) on a guest thread: it takes requests from a channel, calls
//! the handler for each as its own component-model task, and hands each answer back;
//! the bodies those tasks write flow while the loop runs. Instances in the scheduler's
//! sense are *seats* on a worker:
//!
//! - without reuse, every invocation starts a worker of its own for one request, which
//!   ends once the guest's tasks have (a fresh instance per request, as for WASIp2);
//! - with `instance_reuse`, a seat keeps its worker between invocations, one request at
//!   a time;
//! - with `instance_concurrency = N` as well, up to N seats share a worker, so one
//!   instance runs up to N requests at once.
//!
//! A worker whose guest traps, runs out of memory or overruns a deadline is *retired*:
//! it takes nothing more, and its store is dropped once what it runs has ended (a trap
//! ends it at once). A seat on a retired worker is never used again: the scheduler
//! drops an instance whose invocation failed, and a seat that finds its worker retired
//! gets a new one. wasmtime cannot cancel one task of a store (wasmtime#11833), so a
//! request that overruns its timeout retires its whole worker, and the worker is
//! stopped at the latest deadline of the requests it took.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use tokio::sync::{mpsc, oneshot, watch};
use wasmtime::component::Accessor;
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

use crate::engine::{EPOCH_TICK, PreparedComponent};
use crate::invoke::{
    Answer, GuestState, HeadSender, InvokeOptions, InvokeOutcome, START_LIMIT, StreamEnd, StreamedRun, read_answer,
};
use crate::output::OutputCapture;
use updraft_runtime::{GuestOutput, InvokeError};

/// A WASIp3 guest's response body, produced while its worker's event loop runs.
type GuestBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// One request handed to a worker.
struct Job {
    request: http::Request<Bytes>,
    /// When the invocation must end; the worker runs at least until then.
    deadline: Instant,
    answer: oneshot::Sender<Answered>,
}

/// A worker's answer to one request.
struct Answered {
    response: Result<http::Response<GuestBody>, InvokeError>,
    /// The most linear memory the instance held by then, in bytes.
    memory_peak: u64,
}

/// How a worker's store ended: when its guest failed, enough for every invocation
/// still waiting on it to report why.
#[derive(Clone, Debug)]
enum Ended {
    Cleanly,
    /// Past the latest deadline: the epoch interrupted the guest, or the worker stopped
    /// waiting for it.
    TimedOut,
    OutOfMemory,
    Trapped(String),
}

/// What a worker shares with its seats.
struct Shared {
    /// Set once the worker takes no more requests.
    retired: AtomicBool,
    /// How the worker ended; `None` while it runs.
    ended: watch::Sender<Option<Ended>>,
    /// Seats on this worker.
    seated: AtomicUsize,
    capture: OutputCapture,
}

impl Shared {
    fn new(capture: OutputCapture) -> Self {
        Shared {
            retired: AtomicBool::new(false),
            ended: watch::Sender::new(None),
            seated: AtomicUsize::new(0),
            capture,
        }
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// How the worker ended, waiting for it until `until`; `None` if it still runs then.
    async fn ended(&self, until: tokio::time::Instant) -> Option<Ended> {
        let mut ended = self.ended.subscribe();
        let waited = tokio::time::timeout_at(until, async { ended.wait_for(Option::is_some).await.ok()?.clone() });
        waited.await.ok().flatten()
    }

    /// The error of an invocation that this worker did not answer, or whose answer was
    /// cut: the guest's failure if the worker ends (by `until`) because of one.
    async fn failure(
        &self,
        error: InvokeError,
        until: tokio::time::Instant,
        timeout: Duration,
        memory_limit: u64,
    ) -> InvokeError {
        match self.ended(until).await {
            Some(Ended::TimedOut) => InvokeError::Timeout { timeout },
            Some(Ended::OutOfMemory) => InvokeError::OutOfMemory { limit: memory_limit },
            Some(Ended::Trapped(message)) => InvokeError::Trap { message },
            Some(Ended::Cleanly) | None => error,
        }
    }
}

/// A running worker: its request channel (closed when the last seat goes, which lets
/// the worker finish) and what it shares.
pub(crate) struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl Worker {
    /// Instantiates the component in a new store on a guest thread and starts the
    /// worker's loop there; returns once the instance is ready, or its start failed.
    async fn start(
        component: &PreparedComponent,
        service: &ServicePre<GuestState>,
        options: &InvokeOptions,
    ) -> Result<Self, InvokeError> {
        let (mut store, capture) = component.new_store(options);
        let shared = Arc::new(Shared::new(capture));
        let (jobs, receiver) = mpsc::unbounded_channel();
        let (ready, started) = oneshot::channel();
        let service = service.clone();
        let worker = shared.clone();
        component.guests.spawn(async move {
            store.data_mut().deadline = Instant::now() + START_LIMIT;
            store.set_epoch_deadline(1);
            let instance = match service.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                Err(error) => {
                    let _ = ready.send(Err(InvokeError::Init { message: format!("{error:#}") }));
                    return;
                }
            };
            // The first request sets the deadline the epoch checks.
            store.data_mut().deadline = Instant::now();
            if ready.send(Ok(())).is_ok() {
                serve(store, instance, receiver, worker).await;
            }
        });
        match started.await {
            Ok(Ok(())) => Ok(Worker { jobs, shared }),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                Err(InvokeError::Internal { message: "the guest's task ended while the instance started".into() })
            }
        }
    }

    fn usable(&self) -> bool {
        !self.shared.retired() && !self.jobs.is_closed()
    }
}

/// Runs the worker's event loop until it is retired or its last seat is gone, and
/// until what it took has ended; then drops the store.
async fn serve(
    mut store: Store<GuestState>,
    service: Service,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
) {
    let worker = shared.clone();
    let ran = store
        .run_concurrent(async |accessor| -> wasmtime::Result<()> {
            let mut running = FuturesUnordered::new();
            // The latest deadline of the requests taken: past it, whatever still runs
            // for them (or after them) is stopped.
            let mut latest: Option<Instant> = None;
            let mut open = true;
            loop {
                let overrun = async {
                    match latest {
                        Some(latest) => tokio::time::sleep_until((latest + EPOCH_TICK).into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    Some(done) = running.next(), if !running.is_empty() => done?,
                    job = jobs.recv(), if open && !worker.retired() => match job {
                        Some(job) => {
                            let job: Job = job;
                            latest = Some(latest.map_or(job.deadline, |latest| latest.max(job.deadline)));
                            let first = running.is_empty();
                            running.push(handle(accessor, &service, job, first));
                        }
                        None => open = false,
                    },
                    () = overrun, if !running.is_empty() || !open || worker.retired() => {
                        return Err(Trap::Interrupt.into());
                    }
                    else => break,
                }
                if running.is_empty() && (!open || worker.retired()) {
                    break;
                }
            }
            // Nothing more to take: the guest's own tasks (a body it is still writing)
            // may finish, until the latest deadline.
            let quiet = std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx));
            match latest {
                Some(latest) => tokio::time::timeout_at((latest + EPOCH_TICK).into(), quiet)
                    .await
                    .map_err(|_| wasmtime::Error::from(Trap::Interrupt)),
                None => {
                    quiet.await;
                    Ok(())
                }
            }
        })
        .await
        .and_then(|ran| ran);
    shared.retire();
    let ended = match ran {
        Ok(()) => Ended::Cleanly,
        Err(error) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => Ended::TimedOut,
        Err(_) if store.data().limiter.denied => Ended::OutOfMemory,
        Err(error) => Ended::Trapped(format!("{error:#}")),
    };
    shared.ended.send_replace(Some(ended));
}

/// Calls the guest's handler for one request, as a task of its own in the worker's
/// store, and hands back its answer. An error is the guest's (a trap): it ends the
/// worker.
async fn handle(accessor: &Accessor<GuestState>, service: &Service, job: Job, first: bool) -> wasmtime::Result<()> {
    let Job { request, deadline, answer } = job;
    let (parts, body) = request.into_parts();
    let body = Full::new(body).map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} });
    let headers = accessor.with(|mut access| {
        let state = access.get();
        state.deadline = state.deadline.max(deadline);
        if first {
            // Alone in the store: this invocation's memory is what it holds from now.
            let limit = state.limiter.limit;
            state.limiter.reset(limit);
        }
        // What the guest calls joins this request's trace (with several at once, the
        // one taken last).
        state.hooks.traceparent = parts.headers.get("traceparent").cloned();
        state.hooks.tracestate = parts.headers.get("tracestate").cloned();
        // Forbidden headers never reach the guest.
        wasmtime_wasi_http::FieldMap::new_immutable(&mut state.hooks, parts.headers)
    });
    let uri = parts.uri.into_parts();
    let (request, body_sent) = wasmtime_wasi_http::p3::Request::new(
        parts.method,
        uri.scheme,
        uri.authority,
        uri.path_and_query,
        headers,
        None,
        body,
    );
    let response = match service.handle(accessor, request).await? {
        Ok(response) => accessor
            .with(|mut access| response.into_http(&mut access, body_sent))
            .map_err(|error| InvokeError::BadResponse { message: format!("{error:#}") }),
        Err(code) => Err(InvokeError::BadResponse { message: format!("{code:?}") }),
    };
    let memory_peak = accessor.with(|mut access| access.get().limiter.peak);
    let _ = answer.send(Answered { response, memory_peak });
    Ok(())
}

/// A seat: an instance in the scheduler's sense on a WASIp3 worker.
pub(crate) struct Seat {
    worker: Arc<Worker>,
}

impl Seat {
    fn new(worker: Arc<Worker>) -> Self {
        worker.shared.seated.fetch_add(1, Ordering::SeqCst);
        Seat { worker }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.worker.shared.seated.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The workers of one version whose instances run several requests at once, for new
/// seats to join.
#[derive(Default)]
pub struct Workers(tokio::sync::Mutex<Vec<Weak<Worker>>>);

impl Workers {
    /// A seat on a live worker with fewer than `concurrency` seats, or on a new one.
    /// Held across a start, so that instances created together join one worker
    /// instead of each starting their own.
    async fn seat(
        &self,
        component: &PreparedComponent,
        service: &ServicePre<GuestState>,
        options: &InvokeOptions,
        concurrency: usize,
    ) -> Result<Seat, InvokeError> {
        let mut workers = self.0.lock().await;
        workers.retain(|worker| worker.upgrade().is_some_and(|worker| worker.usable()));
        let free = workers
            .iter()
            .filter_map(Weak::upgrade)
            .find(|worker| worker.shared.seated.load(Ordering::SeqCst) < concurrency);
        if let Some(worker) = free {
            return Ok(Seat::new(worker));
        }
        let worker = Arc::new(Worker::start(component, service, options).await?);
        workers.push(Arc::downgrade(&worker));
        Ok(Seat::new(worker))
    }
}

/// Where an instance that keeps its worker gets one: alone, or shared with others of
/// its version up to a number of seats.
pub(crate) type Sharing = Option<(Arc<Workers>, usize)>;

/// A WASIp3 instance's state between invocations: its seat with reuse, none without.
pub(crate) struct P3Instance {
    service: ServicePre<GuestState>,
    seat: Option<Seat>,
    sharing: Sharing,
}

impl P3Instance {
    /// An instance that starts a worker for every invocation.
    pub(crate) fn fresh(service: ServicePre<GuestState>) -> Self {
        P3Instance { service, seat: None, sharing: None }
    }

    /// An instance that keeps its worker (`instance_reuse`): alone on a new one, or with
    /// `workers`, on one of theirs with fewer than `concurrency` seats.
    pub(crate) async fn kept(
        component: &PreparedComponent,
        service: ServicePre<GuestState>,
        options: &InvokeOptions,
        sharing: Sharing,
    ) -> Result<Self, InvokeError> {
        let mut instance = P3Instance { service, seat: None, sharing };
        instance.seat = Some(instance.new_seat(component, options).await?);
        Ok(instance)
    }

    async fn new_seat(&self, component: &PreparedComponent, options: &InvokeOptions) -> Result<Seat, InvokeError> {
        match &self.sharing {
            Some((workers, concurrency)) => workers.seat(component, &self.service, options, *concurrency).await,
            None => Ok(Seat::new(Arc::new(Worker::start(component, &self.service, options).await?))),
        }
    }

    /// The worker for this instance's next request: its kept one, a new one when that
    /// was retired (its guest failed while another seat's request ran, say), or without
    /// reuse, a new one for this request alone.
    async fn worker(
        &mut self,
        component: &PreparedComponent,
        options: &InvokeOptions,
    ) -> Result<Arc<Worker>, InvokeError> {
        match &self.seat {
            Some(seat) if seat.worker.usable() => Ok(seat.worker.clone()),
            Some(_) => {
                self.seat = None;
                let seat = self.new_seat(component, options).await?;
                let worker = seat.worker.clone();
                self.seat = Some(seat);
                Ok(worker)
            }
            None => Worker::start(component, &self.service, options).await.map(Arc::new),
        }
    }
}

impl Worker {
    /// Hands `request` to this worker and waits for its answer's head; the body is the
    /// caller's to read. `deadline` bounds the whole invocation.
    async fn ask(
        &self,
        request: http::Request<Bytes>,
        deadline: Instant,
        timeout: Duration,
        memory_limit: u64,
    ) -> (Result<http::Response<GuestBody>, InvokeError>, u64) {
        let (answer, answered) = oneshot::channel();
        if self.jobs.send(Job { request, deadline, answer }).is_err() {
            return (Err(InvokeError::Internal { message: "the instance's worker had ended".into() }), 0);
        }
        let until = tokio::time::Instant::from_std(deadline) + EPOCH_TICK;
        match tokio::time::timeout_at(until, answered).await {
            Ok(Ok(Answered { response, memory_peak })) => (response, memory_peak),
            // The worker dropped the request: its guest failed, and the worker is ending.
            Ok(Err(_closed)) => {
                (Err(self.shared.failure(InvokeError::NoResponse, until, timeout, memory_limit).await), 0)
            }
            Err(_elapsed) => {
                self.shared.retire();
                (Err(InvokeError::Timeout { timeout }), 0)
            }
        }
    }
}

/// Runs one invocation on `instance`: its answer read whole, or with `stream`, its head
/// returned as soon as the guest has to wait while writing its body.
pub(crate) async fn run(
    instance: &mut P3Instance,
    component: &PreparedComponent,
    options: &InvokeOptions,
    request: http::Request<Bytes>,
    timeout: Duration,
    stream: bool,
) -> StreamedRun {
    let deadline = Instant::now() + timeout;
    let worker = match instance.worker(component, options).await {
        Ok(worker) => worker,
        Err(error) => {
            return StreamedRun::Whole(InvokeOutcome {
                result: Err(error),
                output: GuestOutput::default(),
                memory_peak: 0,
            });
        }
    };
    let limit = options.max_response_bytes;
    let memory_limit = options.memory_limit;
    let (response, memory_peak) = worker.ask(request, deadline, timeout, memory_limit).await;
    let shared = worker.shared.clone();
    // This invocation's hold on the worker: without reuse, dropping it (with the seat
    // never taken) closes the worker's channel once the answer is read.
    let hold = worker;
    let outcome = async move |result: Result<Answer, InvokeError>, shared: &Shared| {
        let result = match result {
            Ok(answer) => Ok(answer),
            Err(error) => {
                // Never used again, whatever the failure.
                shared.retire();
                // A body cut because the guest failed: its failure is the invocation's.
                // The worker ends at once then; a cut without a failure gives it a second.
                let cut = matches!(error, InvokeError::BadResponse { .. } | InvokeError::NoResponse);
                let until = tokio::time::Instant::now() + if cut { Duration::from_secs(1) } else { Duration::ZERO };
                Err(shared.failure(error, until, timeout, memory_limit).await)
            }
        };
        let captured = shared.capture.take();
        let output = GuestOutput { chunks: captured.chunks, truncated: captured.truncated };
        (result, output)
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let (result, output) = outcome(Err(error), &shared).await;
            drop(hold);
            return StreamedRun::Whole(InvokeOutcome {
                result: result.map(|_| http::Response::default()),
                output,
                memory_peak,
            });
        }
    };
    let (parts, body) = response.into_parts();
    let waits_until = tokio::time::Instant::from_std(deadline) + EPOCH_TICK;
    let timed_out = move || InvokeError::Timeout { timeout };
    if !stream {
        let read = tokio::time::timeout_at(waits_until, read_answer(parts, body, limit, None))
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        let (result, output) = outcome(read, &shared).await;
        drop(hold);
        let result = result.map(|answer| match answer {
            Answer::Whole(response) => response,
            Answer::Streamed(_) => http::Response::default(),
        });
        return StreamedRun::Whole(InvokeOutcome { result, output, memory_peak });
    }
    let (head_sender, head): (HeadSender, _) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let read = tokio::time::timeout_at(waits_until, read_answer(parts, body, limit, Some(head_sender)))
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        let (result, output) = outcome(read, &shared).await;
        drop(hold);
        (result, output)
    });
    let finish = async move {
        match reader.await {
            Ok((Ok(Answer::Whole(response)), output)) => {
                StreamEnd { outcome: InvokeOutcome { result: Ok(response), output, memory_peak }, finish: None }
            }
            // The response went out already: the outcome's own is not used.
            Ok((Ok(Answer::Streamed(sender)), output)) => StreamEnd {
                outcome: InvokeOutcome { result: Ok(http::Response::default()), output, memory_peak },
                finish: sender,
            },
            Ok((Err(error), output)) => {
                StreamEnd { outcome: InvokeOutcome { result: Err(error), output, memory_peak }, finish: None }
            }
            Err(join) => {
                let error = InvokeError::Internal { message: format!("the body's reader ended: {join}") };
                let outcome = InvokeOutcome { result: Err(error), output: GuestOutput::default(), memory_peak };
                StreamEnd { outcome, finish: None }
            }
        }
    };
    match head.await {
        Ok(response) => StreamedRun::Streaming { response, rest: Box::pin(finish) },
        Err(_) => StreamedRun::Whole(finish.await.outcome),
    }
}
