//! The scheduler: per function version a pool of instances (idle, busy, starting),
//! admission against the concurrency limits, cold and warm starts, deadlines, scale
//! to zero and provisioned instances, and exactly one record per invocation.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Context;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Notify, oneshot};
use updraft_model::{
    FunctionName, InvocationRecord, InvocationStatus, Lineage, TraceParent, TriggerKind, VersionNumber, now_millis,
};

use crate::concurrency::{Account, FunctionLimit, Lender, Permit, ReservationError, Scope, ShareStats, Throttle};
use updraft_runtime::{Call, GuestOutput, Instance, InstanceConfig, InvokeError, Invoked, LogStream, Prepared};

/// How long past its timeout the scheduler waits for a runtime to stop an invocation
/// before it gives up on the instance itself.
const BACKSTOP_GRACE: Duration = Duration::from_millis(250);

/// How long an instance may take to start.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Node-wide settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Invocations in flight at once across all functions (the account limit).
    pub account_concurrency: u32,
    /// Instances alive at once (idle, busy or starting) across all functions. When
    /// full, the instance idle the longest is stopped to make room.
    pub max_instances: u32,
    /// How often idle instances are checked against their idle timeout.
    pub reap_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { account_concurrency: 1000, max_instances: 1000, reap_interval: Duration::from_millis(100) }
    }
}

/// How one function version is scheduled.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub function: FunctionName,
    pub version: VersionNumber,
    /// Reserved concurrency; `None` shares the account's unreserved pool, `Some(0)`
    /// disables the function.
    pub concurrency: Option<u32>,
    pub timeout: Duration,
    /// An instance idle this long is stopped (unless `min_instances` keeps it).
    pub idle_timeout: Duration,
    /// Instances kept started with no traffic; one that dies is replaced.
    pub min_instances: u32,
    /// An invocation whose chain already ran the function this many times is stopped
    /// (recursive loop detection); `None` allows any.
    pub recursion_limit: Option<u16>,
    pub instance: InstanceConfig,
}

/// Who asked for an invocation and under which ids.
#[derive(Debug, Clone)]
pub struct InvocationMeta {
    pub id: String,
    pub trigger: TriggerKind,
    pub trace_id: String,
    /// The span that caused it; `None` for a trace's root.
    pub parent_span_id: Option<String>,
    /// When the event behind it was accepted (ms since the epoch), if it waited in a
    /// queue.
    pub queued_since: Option<i64>,
    /// The spans that sent the messages it handles, linked to its own.
    pub links: Vec<TraceParent>,
    /// How often each function ran in the chain before it.
    pub lineage: Lineage,
}

/// Receives every invocation's record and guest output, off the request path.
pub trait InvocationSink: Send + Sync + 'static {
    fn finished(&self, record: InvocationRecord, output: GuestOutput);
}

/// A successful invocation.
#[derive(Debug)]
pub struct Done<O> {
    pub output: O,
    pub version: VersionNumber,
    pub cold: bool,
    pub duration: Duration,
}

/// Why an invocation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Throttled(Throttle),
    #[error(transparent)]
    Function(InvokeError),
}

/// A version's instance counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub function: FunctionName,
    pub version: VersionNumber,
    pub idle: u32,
    pub busy: u32,
    pub starting: u32,
    /// Replaced by a newer version (or deleted); finishing what it runs.
    pub retired: bool,
}

/// The account's concurrency limit and the part of it reserved by functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStats {
    pub limit: u32,
    pub reserved: u32,
}

/// The scheduler. Generic over the runtimes' input and output so that it knows nothing
/// of what they carry (HTTP requests, events).
pub struct Scheduler<I, O> {
    shared: Arc<Shared<I, O>>,
    reaper: tokio::task::JoinHandle<()>,
}

struct Shared<I, O> {
    config: SchedulerConfig,
    account: Arc<Account>,
    pools: Mutex<Vec<Arc<Pool<I, O>>>>,
    /// Live instances on this node.
    instances: Arc<AtomicU32>,
    in_flight: AtomicU64,
    drained: Notify,
    sink: Arc<dyn InvocationSink>,
    /// In a cluster: where this node's shares of the limits grow from.
    lender: std::sync::OnceLock<Arc<dyn Lender>>,
}

/// The instances of one function version. Handed out by `Scheduler::register`; pass
/// it to `Scheduler::invoke`.
pub struct Pool<I, O> {
    spec: PoolSpec,
    instance_config: Arc<InstanceConfig>,
    limit: Arc<FunctionLimit>,
    prepared: Arc<dyn Prepared<I, O>>,
    state: Mutex<PoolState<I, O>>,
}

struct PoolState<I, O> {
    /// Oldest first; invocations take the most recently used (warmest) from the back,
    /// so the front is what idles out.
    idle: VecDeque<Idle<I, O>>,
    busy: u32,
    starting: u32,
    retired: bool,
    /// A provisioning attempt failed (logged once until one succeeds).
    provisioning_failed: bool,
}

struct Idle<I, O> {
    instance: Held<I, O>,
    since: Instant,
}

/// An instance and its slot in the node's instance count; disposed on drop.
struct Held<I, O> {
    instance: Option<Box<dyn Instance<I, O>>>,
    count: Arc<AtomicU32>,
}

impl<I, O> Drop for Held<I, O> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.dispose();
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<I, O> Pool<I, O> {
    pub fn function(&self) -> &FunctionName {
        &self.spec.function
    }

    pub fn version(&self) -> VersionNumber {
        self.spec.version
    }

    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// The prepared version its instances start from.
    pub fn prepared(&self) -> Arc<dyn Prepared<I, O>> {
        self.prepared.clone()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState<I, O>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops serving new work: idle instances are stopped now, busy ones when they
    /// finish. Call when a newer version replaces this one, or the function is deleted.
    pub fn retire(&self) {
        let idle = {
            let mut state = self.lock();
            state.retired = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            function: self.spec.function.clone(),
            version: self.spec.version,
            idle: state.idle.len() as u32,
            busy: state.busy,
            starting: state.starting,
            retired: state.retired,
        }
    }

    fn live(state: &PoolState<I, O>) -> u32 {
        state.idle.len() as u32 + state.busy + state.starting
    }
}

/// Decrements a pool's busy count if the invocation ends without returning its
/// instance (a panic).
struct Busy<I, O> {
    pool: Arc<Pool<I, O>>,
    done: bool,
}

impl<I, O> Busy<I, O> {
    fn finish(mut self, instance: Held<I, O>, reusable: bool) {
        self.done = true;
        let rejected = {
            let mut state = self.pool.lock();
            state.busy -= 1;
            if reusable && !state.retired {
                state.idle.push_back(Idle { instance, since: Instant::now() });
                None
            } else {
                Some(instance)
            }
        };
        drop(rejected);
    }
}

impl<I, O> Drop for Busy<I, O> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.lock().busy -= 1;
        }
    }
}

/// An invocation's work, polled by its caller until the caller stops waiting; then
/// whatever is left runs as a Tokio task of its own (`detach`, or on drop).
struct Detachable(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Detachable {
    /// Polls the work if it is still the caller's and not done.
    fn poll_attached(&mut self, cx: &mut Context<'_>) {
        if let Some(work) = self.0.as_mut()
            && work.as_mut().poll(cx).is_ready()
        {
            self.0 = None;
        }
    }

    /// Hands what is left of the work to a task of its own.
    fn detach(&mut self) {
        if let Some(work) = self.0.take() {
            // Without a runtime (it is shutting down) nothing could run it anyway.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(work);
            }
        }
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Counts an invocation as in flight until dropped.
struct InFlight<I, O>(Arc<Shared<I, O>>);

impl<I, O> Drop for InFlight<I, O> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

enum StartFailure {
    Throttle(Throttle),
    Error(InvokeError),
}

impl<I: Send + 'static, O: Send + 'static> Scheduler<I, O> {
    /// Creates the scheduler and its idle reaper (on the current Tokio runtime).
    pub fn new(config: SchedulerConfig, sink: Arc<dyn InvocationSink>) -> Self {
        let shared = Arc::new(Shared {
            account: Account::new(config.account_concurrency),
            config,
            pools: Mutex::new(Vec::new()),
            instances: Arc::new(AtomicU32::new(0)),
            in_flight: AtomicU64::new(0),
            drained: Notify::new(),
            sink,
            lender: std::sync::OnceLock::new(),
        });
        let reaper = tokio::spawn(reap_loop(Arc::downgrade(&shared), shared.config.reap_interval));
        Self { shared, reaper }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.shared.config
    }

    /// Makes this node one of a cluster's: its shares of every limit start empty and
    /// grow from `lender` as invocations need them.
    pub fn set_lender(&self, lender: Arc<dyn Lender>) {
        if self.shared.lender.set(lender).is_ok() {
            self.shared.account.cluster();
        }
    }

    /// Each shared limit's share on this node and its use since the last call.
    pub fn shares(&self) -> Vec<ShareStats> {
        self.shared.account.shares()
    }

    /// Sets this node's share of `scope`; returns what it must keep claiming (the share
    /// or, if more run now, what runs).
    pub fn set_share(&self, scope: &Scope, permits: u32) -> u32 {
        self.shared.account.set_share(scope, permits)
    }

    /// Checks that these reservations (with those of `removed` dropped) fit the
    /// account. Call before committing a deploy that sets them.
    pub fn check_reservations(
        &self,
        changes: &[(FunctionName, Option<u32>)],
        removed: &[FunctionName],
    ) -> Result<(), ReservationError> {
        self.shared.account.check(changes, removed)
    }

    /// Adds a version's pool and starts its `min_instances`. The function's reservation
    /// becomes `spec.concurrency` (checked beforehand with `check_reservations`).
    pub fn register(&self, spec: PoolSpec, prepared: Arc<dyn Prepared<I, O>>) -> Arc<Pool<I, O>> {
        let limit = self.shared.account.set(&spec.function, spec.concurrency);
        let pool = Arc::new(Pool {
            instance_config: Arc::new(spec.instance.clone()),
            spec,
            limit,
            prepared,
            state: Mutex::new(PoolState {
                idle: VecDeque::new(),
                busy: 0,
                starting: 0,
                retired: false,
                provisioning_failed: false,
            }),
        });
        self.shared.pools.lock().unwrap_or_else(|p| p.into_inner()).push(pool.clone());
        self.shared.top_up(&pool);
        pool
    }

    /// Forgets a deleted function's reservation. Retire its pools separately.
    pub fn remove_function(&self, function: &FunctionName) {
        self.shared.account.remove(function);
    }

    /// Every pool's counts, retired ones included until they are empty.
    pub fn stats(&self) -> Vec<PoolStats> {
        let pools = self.shared.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
        pools.iter().map(|pool| pool.stats()).collect()
    }

    /// The account limit and how much of it functions have reserved.
    pub fn account(&self) -> AccountStats {
        AccountStats { limit: self.shared.account.limit(), reserved: self.shared.account.reserved_total() }
    }

    /// Live instances on the node.
    pub fn instances(&self) -> u32 {
        self.shared.instances.load(Ordering::Acquire)
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Runs one invocation on `pool`: admits it or throttles it, takes an idle
    /// instance or starts one (cold), runs it with the version's deadline, returns the
    /// instance or discards it, and hands the record to the sink.
    ///
    /// The invocation runs in the caller's task, so that a warm invocation costs no
    /// hand-off between threads; if the caller goes away, or a streamed answer's head
    /// comes back before the body ends, the rest becomes a task of its own, so the
    /// invocation always finishes and is recorded.
    pub async fn invoke(&self, pool: &Arc<Pool<I, O>>, input: I, meta: InvocationMeta) -> Result<Done<O>, Failure> {
        let shared = self.shared.clone();
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let pool = pool.clone();
        let (answer, mut answered) = oneshot::channel();
        let mut task = Detachable(Some(Box::pin(async move {
            let in_flight = InFlight(shared);
            let shared = &in_flight.0;
            // The one record of this invocation: `run` fills it in, and it goes to the
            // sink here, once, however the invocation ended (a panic included).
            let lineage = meta.lineage.clone();
            let mut record = new_record(&pool, meta, now_millis());
            let mut answer = Some(answer);
            let run =
                AssertUnwindSafe(shared.run(&pool, input, lineage, &mut record, &mut answer)).catch_unwind().await;
            let (result, output) = run.unwrap_or_else(|panic| {
                let message = panic_message(&panic);
                tracing::error!(function = %pool.spec.function, message, "the runtime panicked during an invocation");
                let error = InvokeError::Internal { message };
                set_error(&mut record, &error);
                (Err(Failure::Function(error)), GuestOutput::default())
            });
            shared.sink.finished(record, output);
            let answered = match result {
                Ok(Some(done)) => Ok(done),
                Err(failure) => Err(failure),
                // A streamed result went back when its head was there.
                Ok(None) => return,
            };
            if let Some(answer) = answer {
                let _ = answer.send(answered);
            }
        })));
        let answered = std::future::poll_fn(|cx| {
            task.poll_attached(cx);
            let answered = Pin::new(&mut answered).poll(cx);
            if answered.is_ready() {
                // A streamed body still runs: its own task carries it on from here.
                task.detach();
            }
            answered
        })
        .await;
        answered.unwrap_or_else(|_| {
            Err(Failure::Function(InvokeError::Internal {
                message: "the invocation's task ended without an answer".into(),
            }))
        })
    }

    /// Waits until no invocation is running, or `within` passes; says which.
    pub async fn drain(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let drained = self.shared.drained.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    /// Stops every idle instance and the reaper; running invocations finish.
    pub fn shutdown(&self) {
        self.reaper.abort();
        for pool in self.shared.pools.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            pool.retire();
        }
    }
}

impl<I, O> Drop for Scheduler<I, O> {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

impl<I: Send + 'static, O: Send + 'static> Shared<I, O> {
    /// Admits an invocation of `pool`; in a cluster, a full share (with the limit not
    /// reached) asks the lender for more once before it throttles.
    async fn admit(&self, pool: &Pool<I, O>) -> Result<Permit, Throttle> {
        let throttle = match self.account.admit(&pool.limit) {
            Ok(permit) => return Ok(permit),
            Err(throttle) => throttle,
        };
        let Some(lender) = self.lender.get() else { return Err(throttle) };
        let Some((scope, limit)) = self.account.short_scope(&pool.limit) else { return Err(throttle) };
        // A small block: enough that a busy node does not ask for every invocation.
        let want = (limit / 8).max(1);
        let granted = lender.borrow(&scope, limit, want).await;
        if granted > 0 {
            self.account.grow_share(&scope, granted);
        }
        // Admitted if the share has room now: this borrow's, or that of another
        // invocation's borrow that took the rest of the limit while this one waited.
        self.account.admit(&pool.limit)
    }

    /// Runs one invocation, filling in `record`; returns the result and the guest's
    /// output. A result whose body still streams goes to the caller through `answer`
    /// as soon as its head is there; the invocation ends (the instance is handed back,
    /// the record completed) when the body does.
    async fn run(
        self: &Arc<Self>,
        pool: &Arc<Pool<I, O>>,
        input: I,
        lineage: Lineage,
        record: &mut InvocationRecord,
        answer: &mut Option<oneshot::Sender<Result<Done<O>, Failure>>>,
    ) -> (Result<Option<Done<O>>, Failure>, GuestOutput) {
        if let Some(stopped) = recursion_stopped(pool, &lineage) {
            set_error(record, &stopped);
            let line = format!("Updraft stopped this invocation: {stopped}\n");
            let output = GuestOutput { chunks: vec![(LogStream::Stderr, line.into_bytes())], truncated: false };
            return (Err(Failure::Function(stopped)), output);
        }
        let permit = match self.admit(pool).await {
            Ok(permit) => permit,
            Err(throttle) => return (Err(throttled(record, throttle)), GuestOutput::default()),
        };

        // One lock: take the warmest idle instance, or count a start.
        let idle = {
            let mut state = pool.lock();
            match state.idle.pop_back() {
                Some(idle) => {
                    state.busy += 1;
                    Some(idle.instance)
                }
                None => {
                    state.starting += 1;
                    None
                }
            }
        };
        let mut held = match idle {
            Some(held) => held,
            None => {
                record.cold = true;
                let started = Instant::now();
                let created = self.start(pool, true).await;
                record.init_duration = Some(started.elapsed());
                match created {
                    Ok(held) => held.expect("a start for an invocation returns the instance"),
                    Err(StartFailure::Throttle(throttle)) => {
                        record.cold = false;
                        record.init_duration = None;
                        return (Err(throttled(record, throttle)), GuestOutput::default());
                    }
                    Err(StartFailure::Error(error)) => {
                        set_error(record, &error);
                        return (Err(Failure::Function(error)), GuestOutput::default());
                    }
                }
            }
        };
        let busy = Busy { pool: pool.clone(), done: false };

        let timeout = pool.spec.timeout;
        let call = Call {
            request_id: record.id.as_str().into(),
            trace_id: record.trace_id.as_str().into(),
            timeout,
            deadline_ms: now_millis().saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)),
            lineage: lineage.with(&pool.spec.function),
        };
        let started = Instant::now();
        let instance = held.instance.as_mut().expect("a held instance is present until dropped");
        let backstop = timeout + BACKSTOP_GRACE;
        let invoked = tokio::time::timeout(backstop, instance.invoke(input, call))
            .await
            .unwrap_or_else(|_elapsed| overran(pool, timeout));
        let Invoked { result, mut output, mut max_memory_used, mut reusable, rest, mut settled } = invoked;
        let result = match (result, rest) {
            (Ok(head), Some(rest)) => {
                let done =
                    Done { output: head, version: pool.spec.version, cold: record.cold, duration: started.elapsed() };
                if let Some(answer) = answer.take() {
                    let _ = answer.send(Ok(done));
                }
                let left = backstop.saturating_sub(started.elapsed());
                let ended = tokio::time::timeout(left, rest).await.unwrap_or_else(|_elapsed| overran(pool, timeout));
                output.chunks.extend(ended.output.chunks);
                output.truncated |= ended.output.truncated;
                max_memory_used = max_memory_used.max(ended.max_memory_used);
                reusable = ended.reusable;
                settled = ended.settled;
                ended.result.map(|()| None)
            }
            (result, _) => result.map(Some),
        };
        record.duration = started.elapsed();
        let timed_out = matches!(result, Err(InvokeError::Timeout { .. }));
        // The instance goes back before the permit is released, so the next admitted
        // invocation finds it warm.
        busy.finish(held, reusable && !timed_out);
        drop(permit);
        if let Some(settled) = settled {
            settled();
        }

        record.max_memory_used = max_memory_used;
        let result = match result {
            Ok(Some(output)) => {
                Ok(Some(Done { output, version: pool.spec.version, cold: record.cold, duration: record.duration }))
            }
            // The caller has the result already.
            Ok(None) => Ok(None),
            Err(error) => {
                set_error(record, &error);
                Err(Failure::Function(error))
            }
        };
        (result, output)
    }

    /// Starts an instance for `pool`, whose `starting` count the caller has already
    /// raised. With `for_invocation` the instance is returned busy; otherwise it joins
    /// the idle instances (provisioning).
    async fn start(&self, pool: &Arc<Pool<I, O>>, for_invocation: bool) -> Result<Option<Held<I, O>>, StartFailure> {
        let created = match self.reserve_instance_slot() {
            Err(throttle) => Err(StartFailure::Throttle(throttle)),
            Ok(()) => {
                // From here the slot belongs to `Held` (or is given back below).
                match tokio::time::timeout(INIT_LIMIT, pool.prepared.create(&pool.instance_config)).await {
                    Ok(Ok(instance)) => Ok(Held { instance: Some(instance), count: self.instances.clone() }),
                    Ok(Err(error)) => Err(StartFailure::Error(error)),
                    Err(_) => Err(StartFailure::Error(InvokeError::Init {
                        message: format!("the instance did not start within {}s", INIT_LIMIT.as_secs()),
                    })),
                }
                .inspect_err(|_| {
                    self.instances.fetch_sub(1, Ordering::AcqRel);
                })
            }
        };
        let mut state = pool.lock();
        state.starting -= 1;
        let held = created?;
        if for_invocation {
            state.busy += 1;
            return Ok(Some(held));
        }
        if !state.retired {
            state.idle.push_back(Idle { instance: held, since: Instant::now() });
        }
        Ok(None)
    }

    fn reserve_instance_slot(&self) -> Result<(), Throttle> {
        let limit = self.config.max_instances;
        let take = || {
            self.instances.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
        };
        if take() || (self.evict_oldest_idle() && take()) { Ok(()) } else { Err(Throttle::Instances { limit }) }
    }

    /// Stops the node's longest-idle instance; false if none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let oldest = pools
            .iter()
            .filter_map(|pool| pool.lock().idle.front().map(|idle| (idle.since, pool)))
            .min_by_key(|(since, _)| *since)
            .map(|(_, pool)| pool);
        let evicted = oldest.and_then(|pool| pool.lock().idle.pop_front());
        evicted.is_some()
    }

    /// Stops instances idle past their timeout, drops empty retired pools, and starts
    /// instances that `min_instances` asks for.
    fn reap(self: &Arc<Self>) {
        let now = Instant::now();
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut expired = Vec::new();
        let mut empty_retired = Vec::new();
        for pool in &pools {
            {
                let mut state = pool.lock();
                if state.retired {
                    expired.extend(state.idle.drain(..));
                    if state.busy == 0 && state.starting == 0 {
                        empty_retired.push(Arc::as_ptr(pool));
                    }
                    continue;
                }
                while Pool::live(&state) > pool.spec.min_instances
                    && state.idle.front().is_some_and(|idle| now.duration_since(idle.since) >= pool.spec.idle_timeout)
                {
                    expired.extend(state.idle.pop_front());
                }
            }
            self.top_up(pool);
        }
        if !empty_retired.is_empty() {
            self.pools.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| !empty_retired.contains(&Arc::as_ptr(p)));
        }
        drop(expired);
    }

    /// Starts instances until the pool has its `min_instances`.
    fn top_up(self: &Arc<Self>, pool: &Arc<Pool<I, O>>) {
        let missing = {
            let mut state = pool.lock();
            let missing = if state.retired { 0 } else { pool.spec.min_instances.saturating_sub(Pool::live(&state)) };
            state.starting += missing;
            missing
        };
        for _ in 0..missing {
            let shared = self.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let result = shared.start(&pool, false).await;
                let mut state = pool.lock();
                match result {
                    Ok(_) => state.provisioning_failed = false,
                    Err(failure) => {
                        if !std::mem::replace(&mut state.provisioning_failed, true) {
                            let reason = match failure {
                                StartFailure::Throttle(throttle) => throttle.to_string(),
                                StartFailure::Error(error) => error.to_string(),
                            };
                            tracing::warn!(function = %pool.spec.function, reason, "could not start a provisioned instance; retrying");
                        }
                    }
                }
            });
        }
    }
}

async fn reap_loop<I: Send + 'static, O: Send + 'static>(shared: Weak<Shared<I, O>>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        shared.reap();
    }
}

fn new_record<I, O>(pool: &Pool<I, O>, meta: InvocationMeta, started_at: i64) -> InvocationRecord {
    InvocationRecord {
        id: meta.id,
        function: pool.spec.function.clone(),
        version: pool.spec.version,
        trigger: meta.trigger,
        started_at,
        duration: Duration::ZERO,
        init_duration: None,
        cold: false,
        memory_limit: pool.instance_config.memory_limit,
        max_memory_used: 0,
        status: InvocationStatus::Success,
        error_type: None,
        error_message: None,
        trace_id: meta.trace_id,
        parent_span_id: meta.parent_span_id,
        queued_since: meta.queued_since,
        links: meta.links,
        log_lines_dropped: 0,
        // The platform's recorder knows which node this is.
        node: String::new(),
    }
}

/// What an invocation that the runtime did not stop at its deadline ends with; its
/// instance is discarded.
fn overran<I, O, T>(pool: &Pool<I, O>, timeout: Duration) -> Invoked<T> {
    static OVERRAN: updraft_runtime::LogBudget = updraft_runtime::LogBudget::new(10, Duration::from_secs(1));
    if let Some(suppressed) = OVERRAN.admit() {
        tracing::warn!(function = %pool.spec.function, suppressed, "the runtime did not stop an invocation at its timeout; discarding the instance");
    }
    Invoked::ended(Err(InvokeError::Timeout { timeout }), GuestOutput::default(), 0, false)
}

/// The error that stops an invocation whose chain has run its function as often as the
/// function allows, if it must be stopped.
fn recursion_stopped<I, O>(pool: &Pool<I, O>, lineage: &Lineage) -> Option<InvokeError> {
    let limit = pool.spec.recursion_limit?;
    let count = lineage.count(&pool.spec.function);
    if count < limit {
        return None;
    }
    static STOPPED: updraft_runtime::LogBudget = updraft_runtime::LogBudget::new(10, Duration::from_secs(1));
    if let Some(suppressed) = STOPPED.admit() {
        tracing::warn!(function = %pool.spec.function, count, suppressed, "recursive loop stopped");
    }
    Some(InvokeError::RecursiveLoop { count })
}

fn throttled(record: &mut InvocationRecord, throttle: Throttle) -> Failure {
    record.status = InvocationStatus::Throttled;
    record.error_type = Some(throttle.error_type().to_owned());
    record.error_message = Some(throttle.to_string());
    Failure::Throttled(throttle)
}

fn set_error(record: &mut InvocationRecord, error: &InvokeError) {
    record.status = error.status();
    record.error_type = Some(error.error_type().to_owned());
    record.error_message = Some(error.to_string());
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}
