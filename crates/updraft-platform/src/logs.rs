//! Function output, written to the store in batches off the request path.
//!
//! Invocations hand their lines to a bounded channel and move on; one task drains it
//! in batches (see `batch`). When the channel is full (the store has fallen far behind), lines are
//! dropped and counted rather than slowing invocations down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use updraft_model::FunctionName;
use updraft_store::{LogLine, Store, StoreError};

use crate::batch::BatchTarget;

const CHANNEL_CAPACITY: usize = 65_536;

/// The sending side, shared by all invocations.
#[derive(Clone)]
pub struct LogWriter {
    sender: mpsc::Sender<LogLine>,
    dropped: Arc<AtomicU64>,
    pub(crate) appended: Arc<Notify>,
}

struct LogTarget {
    store: Store,
    appended: Arc<Notify>,
}

impl BatchTarget<LogLine> for LogTarget {
    const WHAT: &'static str = "function log lines";
    const ATTEMPTS: u64 = 5;

    async fn write(&self, batch: &[LogLine]) -> Result<(), StoreError> {
        self.store.log_append(batch).await
    }

    fn written(&self, _batch: &[LogLine], _stored: bool) {
        self.appended.notify_waiters();
    }
}

impl LogWriter {
    /// Starts the writer task; it ends when every `LogWriter` clone is dropped and the
    /// channel is drained.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel::<LogLine>(CHANNEL_CAPACITY);
        let appended = Arc::new(Notify::new());
        let task = crate::batch::spawn(receiver, LogTarget { store, appended: appended.clone() });
        (Self { sender, dropped: Arc::default(), appended }, task)
    }

    pub fn send(&self, line: LogLine) {
        if self.sender.try_send(line).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            // One warning per 10,000 lines: a flooding function must not flood ours.
            if dropped.is_multiple_of(10_000) {
                tracing::warn!(dropped = dropped + 1, "function log channel full; dropping lines");
            }
        }
    }
}

/// A request for a function's log lines.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub function: FunctionName,
    /// Lines after this id (0: from the start).
    pub after: i64,
    pub limit: i64,
    /// The last `limit` lines rather than the first.
    pub tail: bool,
    /// When nothing is there yet, wait up to this long for a line to arrive.
    pub wait: Option<Duration>,
}
