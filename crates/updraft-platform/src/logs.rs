//! Function output, written to the store in batches off the request path.
//!
//! Invocations hand their lines to a bounded channel and move on; one task drains it
//! in batches. When the channel is full (the store has fallen far behind), lines are
//! dropped and counted rather than slowing invocations down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use updraft_model::FunctionName;
use updraft_store::{LogLine, Store};

const CHANNEL_CAPACITY: usize = 65_536;
const BATCH: usize = 1_000;
/// How long the writer gathers lines before writing them: one transaction (and one
/// fsync) per window under load instead of one per handful of lines, which cost
/// the gateway a tenth of its throughput.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// The sending side, shared by all invocations.
#[derive(Clone)]
pub struct LogWriter {
    sender: mpsc::Sender<LogLine>,
    dropped: Arc<AtomicU64>,
    pub(crate) appended: Arc<Notify>,
}

impl LogWriter {
    /// Starts the writer task; it ends when every `LogWriter` clone is dropped and the
    /// channel is drained.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, mut receiver) = mpsc::channel::<LogLine>(CHANNEL_CAPACITY);
        let appended = Arc::new(Notify::new());
        let notify = appended.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while receiver.recv_many(&mut batch, BATCH).await > 0 {
                let window = tokio::time::Instant::now() + BATCH_WINDOW;
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    match tokio::time::timeout_at(window, receiver.recv_many(&mut batch, room)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let mut attempt = 0;
                while let Err(error) = store.log_append(&batch).await {
                    attempt += 1;
                    tracing::warn!(error = %error, attempt, lines = batch.len(), "writing function logs failed; retrying");
                    if attempt >= 5 {
                        tracing::error!(lines = batch.len(), "dropping function log lines after repeated failures");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                batch.clear();
                notify.notify_waiters();
            }
        });
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
