//! What happens after every invocation, off its path: its log lines (guest output
//! framed by Lambda-style `START`, `END` and `REPORT` lines) go to the log writer, its
//! record to the record writer, which stores records with their hourly usage in
//! batches and then counts them in the metrics.

use std::sync::Arc;

use tokio::sync::mpsc;
use updraft_model::{InvocationRecord, InvocationStatus};
use updraft_scheduler::{GuestOutput, InvocationSink};
use updraft_store::{LogLine, Store, StoreError};
use updraft_telemetry::Metrics;

use crate::batch::BatchTarget;
use crate::logs::LogWriter;

/// The scheduler's sink.
pub(crate) struct Recorder {
    records: mpsc::UnboundedSender<InvocationRecord>,
    logs: LogWriter,
}

struct RecordTarget {
    store: Store,
    metrics: Arc<Metrics>,
}

impl BatchTarget<InvocationRecord> for RecordTarget {
    const WHAT: &'static str = "invocation records";
    const ATTEMPTS: u64 = 20;

    async fn write(&self, batch: &[InvocationRecord]) -> Result<(), StoreError> {
        self.store.invocation_append(batch).await
    }

    fn written(&self, batch: &[InvocationRecord]) {
        for record in batch {
            self.metrics.record(record);
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
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (records, receiver) = mpsc::unbounded_channel();
        let task = crate::batch::spawn(receiver, RecordTarget { store, metrics });
        (Arc::new(Self { records, logs }), task)
    }

    fn log(&self, record: &InvocationRecord, at: i64, stream: &str, line: String) {
        self.logs.send(LogLine {
            function: record.function.clone(),
            version: record.version,
            request_id: record.id.clone(),
            at,
            stream: stream.to_owned(),
            line,
        });
    }
}

impl InvocationSink for Recorder {
    fn finished(&self, record: InvocationRecord, output: GuestOutput) {
        // A throttled invocation never ran: it has a record but no log lines, as in Lambda.
        if record.status != InvocationStatus::Throttled {
            let now = updraft_store::now_millis();
            self.log(&record, record.started_at, "platform", updraft_telemetry::start_line(&record));
            for (stream, bytes) in &output.chunks {
                for line in String::from_utf8_lossy(bytes).lines() {
                    self.log(&record, now, stream.as_str(), line.to_owned());
                }
            }
            if output.truncated {
                let message = "output truncated: the function wrote more than 256 KiB".to_owned();
                self.log(&record, now, "platform", message);
            }
            match record.status {
                InvocationStatus::Timeout => {
                    self.log(&record, now, "platform", updraft_telemetry::timeout_line(&record));
                }
                InvocationStatus::Error => {
                    let message = record.error_message.as_deref().unwrap_or("unknown error");
                    self.log(&record, now, "platform", format!("invocation failed: {message}"));
                }
                _ => {}
            }
            self.log(&record, now, "platform", updraft_telemetry::end_line(&record));
            self.log(&record, now, "platform", updraft_telemetry::report_line(&record));
        }
        if self.records.send(record).is_err() {
            tracing::error!("the record writer has stopped; an invocation record is lost");
        }
    }
}
