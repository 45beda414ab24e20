//! Function output, written to the store in batches off the request path.
//!
//! Invocations hand their lines to a channel and move on; one task drains it in
//! batches (see `batch`). Updraft's own lines (`START`, `END`, `REPORT`, notes) are
//! always kept. A function's output is kept within two bounds, and what is past them is
//! dropped and counted in the invocation's record: a budget per function (a flooding
//! function spends its own, not another's), and a cap on output waiting to be written
//! (the store has fallen behind).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use updraft_model::{AppName, FunctionName, LogLevel};
use updraft_store::{LogFilter, LogLine, Store, StoreError};

use crate::batch::BatchTarget;

/// Lines of function output waiting to be written, at most.
const QUEUED_OUTPUT_LINES: usize = 65_536;
/// Lines of output a function may log per second, on average...
pub(crate) const LINES_PER_SECOND: u32 = 2_000;
/// ...and in one burst.
const BURST_LINES: f64 = 20_000.0;

/// The stream name of Updraft's own lines.
pub(crate) const PLATFORM_STREAM: &str = "platform";

/// The sending side, shared by all invocations.
#[derive(Clone)]
pub struct LogWriter {
    sender: mpsc::UnboundedSender<LogLine>,
    /// Output lines sent and not yet written.
    queued: Arc<AtomicUsize>,
    budgets: Arc<Mutex<HashMap<FunctionName, Budget>>>,
    dropped: Arc<AtomicU64>,
    pub(crate) appended: Arc<Notify>,
}

/// A token bucket of output lines.
struct Budget {
    lines: f64,
    refilled: Instant,
}

struct LogTarget {
    store: Store,
    appended: Arc<Notify>,
    queued: Arc<AtomicUsize>,
}

impl BatchTarget<LogLine> for LogTarget {
    const WHAT: &'static str = "function log lines";
    const ATTEMPTS: u64 = 5;

    async fn write(&self, batch: &[LogLine]) -> Result<(), StoreError> {
        self.store.log_append(batch).await
    }

    fn written(&self, batch: &[LogLine], _stored: bool) {
        let output = batch.iter().filter(|line| line.stream != PLATFORM_STREAM).count();
        self.queued.fetch_sub(output, Ordering::AcqRel);
        self.appended.notify_waiters();
    }
}

impl LogWriter {
    /// Starts the writer task; it ends when every `LogWriter` clone is dropped and the
    /// channel is drained.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel::<LogLine>();
        let appended = Arc::new(Notify::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let target = LogTarget { store, appended: appended.clone(), queued: queued.clone() };
        let task = crate::batch::spawn(receiver, target);
        let writer = Self { sender, queued, budgets: Arc::default(), dropped: Arc::default(), appended };
        (writer, task)
    }

    /// How many of `wanted` output lines `function` may log now (its budget).
    pub(crate) fn admit(&self, function: &FunctionName, wanted: usize) -> usize {
        if wanted == 0 {
            return 0;
        }
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        if !budgets.contains_key(function) {
            budgets.insert(function.clone(), Budget { lines: BURST_LINES, refilled: now });
        }
        let budget = budgets.get_mut(function).expect("inserted above");
        let elapsed = now.duration_since(budget.refilled).as_secs_f64();
        budget.lines = (budget.lines + elapsed * f64::from(LINES_PER_SECOND)).min(BURST_LINES);
        budget.refilled = now;
        let admitted = (wanted as f64).min(budget.lines.floor()).max(0.0) as usize;
        budget.lines -= admitted as f64;
        admitted
    }

    /// Sends one invocation's lines in order. Its output lines (any stream but
    /// `platform`) are dropped when too many wait to be written; returns how many.
    pub(crate) fn send_invocation(&self, lines: Vec<LogLine>) -> u64 {
        let output = lines.iter().filter(|line| line.stream != PLATFORM_STREAM).count();
        let queued = self.queued.fetch_add(output, Ordering::AcqRel);
        let keep_output = queued + output <= QUEUED_OUTPUT_LINES;
        if !keep_output {
            self.queued.fetch_sub(output, Ordering::AcqRel);
            let dropped = self.dropped.fetch_add(output as u64, Ordering::Relaxed);
            // One warning per 10,000 lines: a flooding function must not flood ours.
            if dropped / 10_000 != (dropped + output as u64) / 10_000 {
                tracing::warn!(
                    dropped = dropped + output as u64,
                    "function output is waiting to be written; dropping lines"
                );
            }
        }
        for line in lines {
            if keep_output || line.stream == PLATFORM_STREAM {
                // The receiver lives until every writer is dropped.
                let _ = self.sender.send(line);
            }
        }
        if keep_output { 0 } else { output as u64 }
    }
}

/// Whose log lines to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogScope {
    Function(FunctionName),
    /// Every function of an app.
    App(AppName),
    All,
}

/// A request for log lines, oldest first.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub scope: LogScope,
    /// Only lines after this id (0: from the start).
    pub after: i64,
    /// Written at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Written before (ms since the epoch).
    pub until: Option<i64>,
    /// Only one invocation's lines.
    pub request_id: Option<String>,
    /// Only lines containing this text, ignoring ASCII case.
    pub grep: Option<String>,
    /// Only lines at this level or above.
    pub level: Option<LogLevel>,
    pub limit: i64,
    /// The last `limit` matching lines rather than the first.
    pub tail: bool,
    /// When no line matches yet, wait up to this long for one to arrive.
    pub wait: Option<Duration>,
}

impl LogQuery {
    /// One function's lines from the start, `limit` at a time, without waiting.
    pub fn function(function: FunctionName, limit: i64) -> Self {
        Self {
            scope: LogScope::Function(function),
            after: 0,
            since: None,
            until: None,
            request_id: None,
            grep: None,
            level: None,
            limit,
            tail: false,
            wait: None,
        }
    }

    /// The store's filter for it.
    pub(crate) fn filter(&self) -> LogFilter {
        LogFilter {
            scope: match &self.scope {
                LogScope::Function(function) => updraft_store::LogScope::Function(function.clone()),
                LogScope::App(app) => updraft_store::LogScope::App(app.clone()),
                LogScope::All => updraft_store::LogScope::All,
            },
            after: self.after,
            since: self.since,
            until: self.until,
            request_id: self.request_id.clone(),
            grep: self.grep.clone(),
            level: self.level,
            limit: self.limit,
            tail: self.tail,
        }
    }
}
