//! What happens after every invocation, off its path: its log lines (guest output
//! framed by Lambda-style `START`, `END` and `REPORT` lines) go to the log writer, its
//! record to the record writer, which stores records with their hourly usage in
//! batches and then counts them in the metrics and, with an OTLP collector set, hands
//! their spans to the exporter.
//!
//! A synchronous invocation's record is durable within one batch window (50 ms) of
//! its response, or lost with a crash in that window. An asynchronous one's outcome
//! waits for its record ([`Recorder::durable`]): the event leaves the queue only once
//! its record is stored, so a crash leaves it a record or a pending event, never
//! neither.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use updraft_model::{InvocationRecord, InvocationStatus, LogLevel};
use updraft_runtime::GuestOutput;
use updraft_scheduler::InvocationSink;
use updraft_store::{LogLine, Store, StoreError};
use updraft_telemetry::{Metrics, SpanExport, invocation_spans};

use crate::batch::BatchTarget;
use crate::logs::{LogWriter, PLATFORM_STREAM};

/// The scheduler's sink.
pub(crate) struct Recorder {
    records: mpsc::UnboundedSender<InvocationRecord>,
    logs: LogWriter,
    /// Callers waiting for an invocation's log text (Lambda's `LogType: Tail`), by
    /// request id; the counter spares every other invocation the lock.
    tails: Mutex<HashMap<String, oneshot::Sender<String>>>,
    tail_waiters: AtomicUsize,
    /// Callers waiting for an invocation's record to be stored, by request id.
    durable: Arc<DurableWaiters>,
    /// This node's id, which every record carries.
    node: String,
}

/// Who waits for which record to be stored; the counter spares every other batch the
/// lock.
#[derive(Default)]
pub(crate) struct DurableWaiters {
    by_id: Mutex<HashMap<String, oneshot::Sender<bool>>>,
    count: AtomicUsize,
}

struct RecordTarget {
    store: Store,
    metrics: Arc<Metrics>,
    durable: Arc<DurableWaiters>,
    /// Sends stored records' spans to the OTLP collector; flushed when dropped.
    export: Option<SpanExport>,
}

impl BatchTarget<InvocationRecord> for RecordTarget {
    const WHAT: &'static str = "invocation records";
    const ATTEMPTS: u64 = 20;

    async fn write(&self, batch: &[InvocationRecord]) -> Result<(), StoreError> {
        self.store.invocation_append(batch).await
    }

    /// An asynchronous outcome waits for its record: no window then.
    fn urgent(&self) -> bool {
        self.durable.count.load(Ordering::Acquire) > 0
    }

    fn written(&self, batch: &[InvocationRecord], stored: bool) {
        for record in batch {
            self.metrics.record(record);
        }
        if let Some(export) = &self.export {
            export.send(batch.iter().flat_map(invocation_spans).collect());
        }
        if self.durable.count.load(Ordering::Acquire) > 0 {
            let mut waiting = self.durable.by_id.lock().unwrap_or_else(|p| p.into_inner());
            for record in batch {
                if let Some(waiter) = waiting.remove(&record.id) {
                    let _ = waiter.send(stored);
                }
            }
        }
    }
}

impl Recorder {
    /// Starts the record writer. Records are never dropped for lack of room (the
    /// channel is unbounded): every invocation gets exactly one.
    pub(crate) fn start(
        store: Store,
        logs: LogWriter,
        metrics: Arc<Metrics>,
        node: String,
        export: Option<SpanExport>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (records, receiver) = mpsc::unbounded_channel();
        let durable = Arc::new(DurableWaiters::default());
        let task = crate::batch::spawn(receiver, RecordTarget { store, metrics, durable: durable.clone(), export });
        let recorder =
            Self { records, logs, tails: Mutex::default(), tail_waiters: AtomicUsize::new(0), durable, node };
        (Arc::new(recorder), task)
    }

    /// Asks to hear when the record of invocation `request_id` (about to run) is stored.
    pub(crate) fn durable(&self, request_id: &str) -> DurableWaiter {
        let (sender, receiver) = oneshot::channel();
        self.durable.by_id.lock().unwrap().insert(request_id.to_owned(), sender);
        self.durable.count.fetch_add(1, Ordering::AcqRel);
        DurableWaiter { waiters: self.durable.clone(), request_id: request_id.to_owned(), receiver: Some(receiver) }
    }

    /// Asks for the log text of invocation `request_id`, sent when it finishes.
    pub(crate) fn tail(self: &Arc<Self>, request_id: &str) -> TailWaiter {
        let (sender, receiver) = oneshot::channel();
        self.tails.lock().unwrap().insert(request_id.to_owned(), sender);
        self.tail_waiters.fetch_add(1, Ordering::AcqRel);
        TailWaiter { recorder: self.clone(), request_id: request_id.to_owned(), receiver }
    }
}

impl InvocationSink for Recorder {
    fn finished(&self, mut record: InvocationRecord, output: GuestOutput) {
        // A throttled invocation never ran: it has a record but no log lines, as in Lambda.
        if record.status != InvocationStatus::Throttled {
            let InvocationLines { lines, dropped } =
                log_lines(&record, &output, |wanted| self.logs.admit(&record.function, wanted));
            if self.tail_waiters.load(Ordering::Acquire) > 0 {
                let waiter = self.tails.lock().unwrap().remove(&record.id);
                if let Some(waiter) = waiter {
                    let text: Vec<&str> = lines.iter().map(|(_, _, line, _)| line.as_str()).collect();
                    let _ = waiter.send(text.join("\n") + "\n");
                }
            }
            let lines: Vec<LogLine> = lines
                .into_iter()
                .map(|(at, stream, line, level)| LogLine {
                    function: record.function.clone(),
                    version: record.version,
                    request_id: record.id.clone(),
                    at,
                    stream: stream.to_owned(),
                    line,
                    level,
                })
                .collect();
            record.log_lines_dropped = dropped + self.logs.send_invocation(lines);
        }
        record.node.clone_from(&self.node);
        if self.records.send(record).is_err() {
            tracing::error!("the record writer has stopped; an invocation record is lost");
        }
    }
}

/// The log lines of one invocation, and how many output lines its budget dropped.
struct InvocationLines {
    /// When, which stream, the line, its level.
    lines: Vec<(i64, &'static str, String, LogLevel)>,
    dropped: u64,
}

/// The log lines of one invocation: `START`, the guest's output (as much as `admit`
/// lets through), `END`, `REPORT`.
fn log_lines(record: &InvocationRecord, output: &GuestOutput, admit: impl FnOnce(usize) -> usize) -> InvocationLines {
    let now = updraft_model::now_millis();
    let info = |at, line| (at, PLATFORM_STREAM, line, LogLevel::Info);
    let mut lines = vec![info(record.started_at, updraft_telemetry::start_line(record))];
    for (stream, bytes) in &output.chunks {
        for line in String::from_utf8_lossy(bytes).lines() {
            lines.push((now, stream.as_str(), line.to_owned(), LogLevel::of_output(stream.as_str(), line)));
        }
    }
    let written = lines.len() - 1;
    let admitted = admit(written);
    let dropped = (written - admitted) as u64;
    lines.truncate(1 + admitted);
    if output.truncated {
        let note = "output truncated: the function wrote more than 256 KiB".to_owned();
        lines.push((now, PLATFORM_STREAM, note, LogLevel::Warn));
    }
    if dropped > 0 {
        let note = format!(
            "{dropped} lines of output dropped: the function logs faster than its budget of {} lines a second",
            crate::logs::LINES_PER_SECOND
        );
        lines.push((now, PLATFORM_STREAM, note, LogLevel::Warn));
    }
    match record.status {
        InvocationStatus::Timeout => {
            lines.push((now, PLATFORM_STREAM, updraft_telemetry::timeout_line(record), LogLevel::Error));
        }
        InvocationStatus::Error => {
            let message = record.error_message.as_deref().unwrap_or("unknown error");
            lines.push((now, PLATFORM_STREAM, format!("invocation failed: {message}"), LogLevel::Error));
        }
        _ => {}
    }
    lines.push(info(now, updraft_telemetry::end_line(record)));
    lines.push(info(now, updraft_telemetry::report_line(record)));
    InvocationLines { lines, dropped }
}

/// One caller's wait for an invocation's record to be stored; unregisters itself when
/// dropped.
pub(crate) struct DurableWaiter {
    waiters: Arc<DurableWaiters>,
    request_id: String,
    receiver: Option<oneshot::Receiver<bool>>,
}

impl DurableWaiter {
    /// Whether the record was stored within `within` (false: dropped after repeated
    /// failures, or not yet).
    pub(crate) async fn stored(mut self, within: std::time::Duration) -> bool {
        let Some(receiver) = self.receiver.take() else { return false };
        matches!(tokio::time::timeout(within, receiver).await, Ok(Ok(true)))
    }
}

impl Drop for DurableWaiter {
    fn drop(&mut self) {
        self.waiters.by_id.lock().unwrap().remove(&self.request_id);
        self.waiters.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One caller's wait for an invocation's log text; unregisters itself when dropped.
pub struct TailWaiter {
    recorder: Arc<Recorder>,
    request_id: String,
    receiver: oneshot::Receiver<String>,
}

impl TailWaiter {
    /// The text, if the invocation ran (a throttled one has none).
    pub fn take(mut self) -> Option<String> {
        self.receiver.try_recv().ok()
    }

    /// The text of an invocation that ran, waiting a moment for it: an answer that
    /// streamed was read whole just before the invocation's record was made.
    pub async fn wait(mut self) -> Option<String> {
        tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.receiver).await.ok()?.ok()
    }
}

impl Drop for TailWaiter {
    fn drop(&mut self) {
        self.recorder.tails.lock().unwrap().remove(&self.request_id);
        self.recorder.tail_waiters.fetch_sub(1, Ordering::AcqRel);
    }
}
