//! Scheduler tests with a scripted runtime: each input says what the instance does,
//! so limits, cold starts, idle timeouts and failures can be driven exactly.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use updraft_model::{FunctionName, InvocationRecord, InvocationStatus, TriggerKind, VersionNumber};
use updraft_runtime::{
    BoxFuture, Call, GuestOutput, Instance, InstanceConfig, InvokeError, Invoked, LogStream, Prepared,
};
use updraft_scheduler::{
    Failure, InvocationMeta, InvocationSink, Lender, Pool, PoolSpec, Scheduler, SchedulerConfig, Scope, Throttle,
};

/// What one invocation does.
#[derive(Clone)]
enum Script {
    Answer,
    /// Waits for a permit from the semaphore, then answers.
    Hold(Arc<Semaphore>),
    /// Fails; the instance may or may not be reused.
    Fail {
        reusable: bool,
    },
    /// Answers at once with a result whose body streams until the semaphore gives a
    /// permit (then the rest ends well, and asks for the callback once settled), or
    /// forever.
    Stream(Arc<Semaphore>, Arc<dyn Fn() + Send + Sync>),
    /// Never finishes (a runtime that does not enforce its deadline).
    Hang,
    Panic,
}

#[derive(Default)]
struct Runtime {
    created: AtomicU32,
    disposed: Arc<AtomicU32>,
    init_delay: Mutex<Duration>,
}

struct FakePrepared(Arc<Runtime>);

struct FakeInstance {
    id: u32,
    disposed: Arc<AtomicU32>,
}

impl Prepared<Script, u32> for FakePrepared {
    fn create(
        &self,
        _config: &Arc<InstanceConfig>,
    ) -> BoxFuture<'_, Result<Box<dyn Instance<Script, u32>>, InvokeError>> {
        Box::pin(async move {
            let delay = *self.0.init_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let id = self.0.created.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Box::new(FakeInstance { id, disposed: self.0.disposed.clone() }) as Box<dyn Instance<Script, u32>>)
        })
    }
}

impl Instance<Script, u32> for FakeInstance {
    fn invoke(&mut self, script: Script, _call: Call) -> BoxFuture<'_, Invoked<u32>> {
        Box::pin(async move {
            let output = GuestOutput { chunks: vec![(LogStream::Stdout, b"hi\n".to_vec())], truncated: false };
            let (result, reusable) = match script {
                Script::Answer => (Ok(self.id), true),
                Script::Stream(gate, settled) => {
                    let rest = async move {
                        gate.acquire().await.unwrap().forget();
                        let more =
                            GuestOutput { chunks: vec![(LogStream::Stdout, b"streamed\n".to_vec())], truncated: false };
                        let settled: Box<dyn FnOnce() + Send> = Box::new(move || settled());
                        Invoked { settled: Some(settled), ..Invoked::ended(Ok(()), more, 2 << 20, true) }
                    };
                    return Invoked {
                        rest: Some(Box::pin(rest)),
                        ..Invoked::ended(Ok(self.id), output, 1 << 20, true)
                    };
                }
                Script::Hold(gate) => {
                    gate.acquire().await.unwrap().forget();
                    (Ok(self.id), true)
                }
                Script::Fail { reusable } => (Err(InvokeError::Trap { message: "boom".into() }), reusable),
                Script::Hang => std::future::pending().await,
                Script::Panic => panic!("the runtime broke"),
            };
            Invoked::ended(result, output, 1 << 20, reusable)
        })
    }

    fn dispose(self: Box<Self>) {
        self.disposed.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Records(Mutex<Vec<(InvocationRecord, GuestOutput)>>);

impl InvocationSink for Records {
    fn finished(&self, record: InvocationRecord, output: GuestOutput) {
        self.0.lock().unwrap().push((record, output));
    }
}

impl Records {
    fn all(&self) -> Vec<InvocationRecord> {
        self.0.lock().unwrap().iter().map(|(record, _)| record.clone()).collect()
    }

    fn output(&self, id: &str) -> String {
        let records = self.0.lock().unwrap();
        let (_, output) = records.iter().find(|(record, _)| record.id == id).unwrap();
        output.chunks.iter().map(|(_, chunk)| String::from_utf8_lossy(chunk)).collect()
    }

    fn count(&self, status: InvocationStatus) -> usize {
        self.all().iter().filter(|r| r.status == status).count()
    }
}

struct Setup {
    scheduler: Scheduler<Script, u32>,
    records: Arc<Records>,
    runtime: Arc<Runtime>,
}

fn setup(config: SchedulerConfig) -> Setup {
    let records = Arc::new(Records::default());
    let scheduler = Scheduler::new(config, records.clone());
    Setup { scheduler, records, runtime: Arc::new(Runtime::default()) }
}

fn spec(name: &str) -> PoolSpec {
    PoolSpec {
        function: name.parse::<FunctionName>().unwrap(),
        version: VersionNumber(1),
        concurrency: None,
        timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(600),
        min_instances: 0,
        recursion_limit: Some(updraft_model::MAX_RECURSION),
        instance: InstanceConfig {
            memory_limit: 128 << 20,
            env: Arc::new([]),
            allowed_outbound_hosts: Arc::new([]),
            max_response_bytes: 1 << 20,
            reuse_state: false,
        },
    }
}

impl Setup {
    fn register(&self, spec: PoolSpec) -> Arc<Pool<Script, u32>> {
        self.scheduler.register(spec, Arc::new(FakePrepared(self.runtime.clone())))
    }

    async fn invoke(&self, pool: &Arc<Pool<Script, u32>>, script: Script) -> Result<u32, Failure> {
        self.scheduler.invoke(pool, script, meta()).await.map(|done| done.output)
    }
}

fn meta() -> InvocationMeta {
    InvocationMeta {
        id: uuid(),
        trigger: TriggerKind::Direct,
        trace_id: "0".repeat(32),
        parent_span_id: None,
        queued_since: None,
        links: Vec::new(),
        lineage: Default::default(),
    }
}

fn uuid() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("req-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Polls `condition` every few milliseconds for up to ten seconds.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Fires `burst` held invocations at once and returns (admitted, throttled) once every
/// throttle has come back, with the admitted ones still running.
async fn burst(
    setup: &Arc<Setup>,
    pool: &Arc<Pool<Script, u32>>,
    gate: &Arc<Semaphore>,
    burst: usize,
) -> Vec<tokio::task::JoinHandle<Result<u32, Failure>>> {
    (0..burst)
        .map(|_| {
            let (setup, pool, gate) = (setup.clone(), pool.clone(), gate.clone());
            tokio::spawn(async move { setup.invoke(&pool, Script::Hold(gate)).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_past_a_function_limit_admits_exactly_the_limit() {
    let setup = Arc::new(setup(SchedulerConfig::default()));
    let pool = setup.register(PoolSpec { concurrency: Some(5), ..spec("limited") });
    let gate = Arc::new(Semaphore::new(0));
    let tasks = burst(&setup, &pool, &gate, 50).await;
    wait_for("45 throttles", || setup.records.count(InvocationStatus::Throttled) == 45).await;
    wait_for("5 busy instances", || pool.stats().busy == 5).await;
    gate.add_permits(50);
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(Failure::Throttled(throttle)) => assert_eq!(throttle, Throttle::Function { limit: 5 }),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted, 5);
    assert_eq!(setup.records.all().len(), 50, "one record per invocation");
    assert_eq!(setup.records.count(InvocationStatus::Success), 5);
    // Nothing is left held: the limit is whole again.
    assert!(setup.invoke(&pool, Script::Answer).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_are_carved_out_of_the_account_limit() {
    let setup = Arc::new(setup(SchedulerConfig { account_concurrency: 10, ..SchedulerConfig::default() }));
    let reserved = setup.register(PoolSpec { concurrency: Some(4), ..spec("reserved") });
    let shared = setup.register(spec("shared"));
    let gate = Arc::new(Semaphore::new(0));
    let mut tasks = burst(&setup, &shared, &gate, 30).await;
    wait_for("24 throttles", || setup.records.count(InvocationStatus::Throttled) == 24).await;
    assert_eq!(shared.stats().busy, 6, "the unreserved pool is the account limit minus the reservation");
    // The reservation is still there for its function.
    tasks.extend(burst(&setup, &reserved, &gate, 4).await);
    wait_for("4 reserved busy", || reserved.stats().busy == 4).await;
    assert_eq!(setup.records.count(InvocationStatus::Throttled), 24);
    let throttle = setup.records.all().into_iter().find(|r| r.status == InvocationStatus::Throttled).unwrap();
    assert_eq!(throttle.error_type.as_deref(), Some("ConcurrentInvocationLimitExceeded"));
    gate.add_permits(100);
    for task in tasks {
        let _ = task.await.unwrap();
    }
    assert_eq!(setup.records.count(InvocationStatus::Success), 10);
}

#[tokio::test]
async fn concurrency_zero_disables_a_function() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(PoolSpec { concurrency: Some(0), ..spec("off") });
    assert_eq!(setup.invoke(&pool, Script::Answer).await, Err(Failure::Throttled(Throttle::Disabled)));
    assert_eq!(setup.runtime.created.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn reservations_above_the_account_are_refused() {
    let setup = setup(SchedulerConfig { account_concurrency: 10, ..SchedulerConfig::default() });
    setup.register(PoolSpec { concurrency: Some(8), ..spec("a") });
    let b: FunctionName = "b".parse().unwrap();
    let error = setup.scheduler.check_reservations(&[(b.clone(), Some(3))], &[]).unwrap_err();
    assert_eq!(
        error.to_string().split(';').next().unwrap(),
        "the functions' reserved concurrency would total 11, above the account limit of 10"
    );
    assert!(setup.scheduler.check_reservations(&[(b, Some(2))], &[]).is_ok());
}

#[tokio::test]
async fn the_first_invocation_is_cold_and_the_next_warm() {
    let setup = setup(SchedulerConfig::default());
    *setup.runtime.init_delay.lock().unwrap() = Duration::from_millis(30);
    let pool = setup.register(spec("hello"));
    let first = setup.scheduler.invoke(&pool, Script::Answer, meta()).await.unwrap();
    let second = setup.scheduler.invoke(&pool, Script::Answer, meta()).await.unwrap();
    assert!(first.cold && !second.cold);
    assert_eq!(first.output, second.output, "the warm invocation ran on the same instance");
    let records = setup.records.all();
    assert!(records[0].cold && records[0].init_duration.unwrap() >= Duration::from_millis(30));
    assert!(!records[1].cold && records[1].init_duration.is_none());
    assert!(records[0].duration < Duration::from_millis(30), "init time is not part of the duration");
    assert_eq!(records[1].max_memory_used, 1 << 20);
}

#[tokio::test]
async fn idle_instances_stop_after_the_idle_timeout() {
    let setup = setup(SchedulerConfig { reap_interval: Duration::from_millis(10), ..SchedulerConfig::default() });
    let pool = setup.register(PoolSpec { idle_timeout: Duration::from_millis(100), ..spec("sleepy") });
    setup.invoke(&pool, Script::Answer).await.unwrap();
    assert_eq!(pool.stats().idle, 1);
    wait_for("scale to zero", || pool.stats().idle == 0).await;
    assert_eq!(setup.runtime.disposed.load(Ordering::SeqCst), 1);
    assert_eq!(setup.scheduler.instances(), 0);
    let again = setup.scheduler.invoke(&pool, Script::Answer, meta()).await.unwrap();
    assert!(again.cold, "after scaling to zero the next invocation is cold");
}

#[tokio::test]
async fn min_instances_stay_started_and_a_lost_one_is_replaced() {
    let setup = setup(SchedulerConfig { reap_interval: Duration::from_millis(10), ..SchedulerConfig::default() });
    let pool = setup.register(PoolSpec { min_instances: 2, idle_timeout: Duration::from_millis(20), ..spec("warm") });
    wait_for("two provisioned instances", || pool.stats().idle == 2).await;
    let done = setup.scheduler.invoke(&pool, Script::Answer, meta()).await.unwrap();
    assert!(!done.cold, "a provisioned instance serves warm");
    // Well past the idle timeout, both are still there.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stats().idle, 2);
    // An instance that fails badly is discarded, and a new one takes its place.
    let _ = setup.invoke(&pool, Script::Fail { reusable: false }).await;
    wait_for("a replacement", || setup.runtime.created.load(Ordering::SeqCst) == 3 && pool.stats().idle == 2).await;
    pool.retire();
    assert_eq!(pool.stats().idle, 0);
    assert_eq!(setup.scheduler.instances(), 0);
}

#[tokio::test]
async fn a_runtime_that_ignores_its_deadline_is_timed_out_and_its_instance_discarded() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(spec("stuck"));
    let result = setup.invoke(&pool, Script::Hang).await;
    assert_eq!(result, Err(Failure::Function(InvokeError::Timeout { timeout: Duration::from_millis(200) })));
    assert_eq!(pool.stats(), updraft_scheduler::PoolStats { idle: 0, busy: 0, starting: 0, ..pool.stats() });
    assert_eq!(setup.runtime.disposed.load(Ordering::SeqCst), 1);
    let record = &setup.records.all()[0];
    assert_eq!((record.status, record.error_type.as_deref()), (InvocationStatus::Timeout, Some("Sandbox.Timedout")));
}

#[tokio::test]
async fn a_failed_instance_is_reused_only_when_the_runtime_says_so() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(spec("flaky"));
    let _ = setup.invoke(&pool, Script::Fail { reusable: true }).await;
    assert_eq!(pool.stats().idle, 1);
    let _ = setup.invoke(&pool, Script::Fail { reusable: false }).await;
    assert_eq!(pool.stats().idle, 0);
    let record = setup.records.all().pop().unwrap();
    assert_eq!((record.status, record.error_type.as_deref()), (InvocationStatus::Error, Some("Runtime.Trap")));
}

#[tokio::test]
async fn a_panicking_runtime_fails_one_invocation_and_is_recorded() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(spec("panics"));
    let result = setup.invoke(&pool, Script::Panic).await;
    assert!(
        matches!(result, Err(Failure::Function(InvokeError::Internal { ref message })) if message.contains("the runtime broke"))
    );
    assert_eq!(pool.stats().busy, 0);
    assert_eq!(setup.scheduler.instances(), 0);
    assert_eq!(setup.records.all().len(), 1);
    assert!(setup.invoke(&pool, Script::Answer).await.is_ok());
}

#[tokio::test]
async fn at_the_node_instance_limit_the_longest_idle_instance_makes_room() {
    let setup = setup(SchedulerConfig { max_instances: 2, ..SchedulerConfig::default() });
    let a = setup.register(spec("a"));
    let b = setup.register(spec("b"));
    let c = setup.register(spec("c"));
    setup.invoke(&a, Script::Answer).await.unwrap();
    setup.invoke(&b, Script::Answer).await.unwrap();
    setup.invoke(&c, Script::Answer).await.unwrap();
    assert_eq!((a.stats().idle, b.stats().idle, c.stats().idle), (0, 1, 1));
    assert_eq!(setup.scheduler.instances(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_running_invocations() {
    let setup = Arc::new(setup(SchedulerConfig::default()));
    let pool = setup.register(spec("slow"));
    let gate = Arc::new(Semaphore::new(0));
    let tasks = burst(&setup, &pool, &gate, 3).await;
    wait_for("3 running", || setup.scheduler.in_flight() == 3).await;
    assert!(!setup.scheduler.drain(Duration::from_millis(20)).await);
    gate.add_permits(3);
    assert!(setup.scheduler.drain(Duration::from_secs(10)).await);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_result_returns_at_once_and_the_invocation_ends_with_its_body() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(PoolSpec { timeout: Duration::from_secs(10), ..spec("streams") });
    let gate = Arc::new(Semaphore::new(0));
    let request = meta();
    let id = request.id.clone();
    // What the pool looked like when the invocation settled (a body's end goes out then).
    let at_settling = Arc::new(Mutex::new(None));
    let settled = {
        let (pool, at_settling) = (pool.clone(), at_settling.clone());
        Arc::new(move || *at_settling.lock().unwrap() = Some(pool.stats()))
    };
    let done = setup.scheduler.invoke(&pool, Script::Stream(gate.clone(), settled), request).await.unwrap();
    assert_eq!(done.output, 1);
    // Still running: the instance is busy, the record not written, the body streaming.
    assert_eq!(pool.stats().busy, 1);
    assert_eq!(setup.scheduler.in_flight(), 1);
    assert!(setup.records.all().is_empty());

    gate.add_permits(1);
    wait_for("the record", || setup.records.all().len() == 1).await;
    let record = &setup.records.all()[0];
    assert_eq!((record.status, record.max_memory_used), (InvocationStatus::Success, 2 << 20));
    assert_eq!(setup.records.output(&id), "hi\nstreamed\n", "the output is the head's and the rest's");
    let stats = at_settling.lock().unwrap().clone().expect("the invocation settled");
    assert_eq!((stats.busy, stats.idle), (0, 1), "the instance is back before the body's end goes out");

    // A body still streaming at the deadline ends the invocation as timed out, and its
    // instance is not reused.
    let timed = setup.register(spec("streams-forever"));
    let request = meta();
    let id = request.id.clone();
    let never = Script::Stream(Arc::new(Semaphore::new(0)), Arc::new(|| panic!("a timed-out body never ends well")));
    setup.scheduler.invoke(&timed, never, request).await.unwrap();
    wait_for("the timeout", || setup.records.all().iter().any(|r| r.id == id)).await;
    let record = setup.records.all().into_iter().find(|r| r.id == id).unwrap();
    assert_eq!(record.status, InvocationStatus::Timeout);
    let stats = timed.stats();
    assert_eq!((stats.busy, stats.idle), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_leaves_its_invocation_to_finish_and_be_recorded() {
    let setup = setup(SchedulerConfig::default());
    let pool = setup.register(spec("abandoned"));
    let gate = Arc::new(Semaphore::new(0));
    let request = meta();
    let id = request.id.clone();
    // The caller stops waiting while the instance runs (a client that hung up).
    let waited = tokio::time::timeout(
        Duration::from_millis(20),
        setup.scheduler.invoke(&pool, Script::Hold(gate.clone()), request),
    )
    .await;
    assert!(waited.is_err(), "the invocation is still held");
    assert_eq!(setup.scheduler.in_flight(), 1, "it runs on without its caller");
    assert!(setup.records.all().is_empty());

    gate.add_permits(1);
    wait_for("the record", || setup.records.all().len() == 1).await;
    let record = &setup.records.all()[0];
    assert_eq!((record.id.as_str(), record.status), (id.as_str(), InvocationStatus::Success));
    wait_for("nothing in flight", || setup.scheduler.in_flight() == 0).await;
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.idle), (0, 1), "its instance went back to the pool");
}

/// A cluster's ledger of one node: grants what is left of a scope's limit, each borrow
/// once `gate` lets it through, counting the borrowers waiting there.
struct Ledger {
    granted: Mutex<u32>,
    waiting: AtomicU32,
    gate: Semaphore,
}

impl Lender for Ledger {
    fn borrow<'a>(&'a self, _scope: &'a Scope, limit: u32, want: u32) -> BoxFuture<'a, u32> {
        Box::pin(async move {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            let mut granted = self.granted.lock().unwrap();
            let take = want.min(limit - *granted);
            *granted += take;
            take
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_cluster_node_is_admitted_when_other_borrows_took_the_whole_limit() {
    let setup = Arc::new(setup(SchedulerConfig { account_concurrency: 80, ..SchedulerConfig::default() }));
    let ledger = Arc::new(Ledger { granted: Mutex::new(0), waiting: AtomicU32::new(0), gate: Semaphore::new(0) });
    setup.scheduler.set_lender(ledger.clone());
    let pool = setup.register(spec("busy"));
    let gate = Arc::new(Semaphore::new(0));
    // 40 invocations find the node's share empty at once and all ask the ledger; the
    // first eight borrows (an eighth of the limit each) take all of it.
    let tasks = burst(&setup, &pool, &gate, 40).await;
    wait_for("40 borrowers", || ledger.waiting.load(Ordering::SeqCst) == 40).await;
    ledger.gate.add_permits(40);
    wait_for("40 running", || pool.stats().busy == 40).await;
    gate.add_permits(40);
    for task in tasks {
        task.await.unwrap().expect("admitted: the node's share has room for all 40");
    }
    assert_eq!(*ledger.granted.lock().unwrap(), 80);
    assert_eq!(setup.records.count(InvocationStatus::Throttled), 0);
}
