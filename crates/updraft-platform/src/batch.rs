//! Writes what invocations produce (log lines, records) to the store in batches, off
//! the request path: one task per kind drains its channel, gathering for a short
//! window so that a burst costs one transaction (and one fsync), not one per item.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use updraft_store::StoreError;

/// The most items in one batch.
const BATCH: usize = 1_000;
/// How long the writer gathers items before writing them: one transaction per window
/// under load instead of one per handful of items, which cost the gateway a tenth of
/// its throughput.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Where batches go.
pub(crate) trait BatchTarget<T>: Send + 'static {
    /// What the items are, for the log.
    const WHAT: &'static str;
    /// Attempts before a batch that keeps failing is dropped.
    const ATTEMPTS: u64;

    fn write(&self, batch: &[T]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Called after each batch: `stored` says whether it was written or dropped.
    fn written(&self, batch: &[T], stored: bool);

    /// Whether someone waits for what is queued now: the batch is written at once with
    /// what has arrived, without gathering for the window (what arrives while it is
    /// written goes in the next one, as in a group commit).
    fn urgent(&self) -> bool {
        false
    }
}

/// A channel's receiving side, bounded or not.
pub(crate) trait Inbox<T>: Send + 'static {
    fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send;
}

impl<T: Send + 'static> Inbox<T> for mpsc::Receiver<T> {
    fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send {
        mpsc::Receiver::recv_many(self, buffer, limit)
    }
}

impl<T: Send + 'static> Inbox<T> for mpsc::UnboundedReceiver<T> {
    fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send {
        mpsc::UnboundedReceiver::recv_many(self, buffer, limit)
    }
}

/// Starts the writer task; it ends when every sender is dropped and the channel is
/// drained, so awaiting it after dropping the senders flushes everything.
pub(crate) fn spawn<T, I, W>(mut inbox: I, target: W) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    I: Inbox<T>,
    W: BatchTarget<T> + Sync,
{
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while inbox.recv_many(&mut batch, BATCH).await > 0 {
            let window = tokio::time::Instant::now() + BATCH_WINDOW;
            while batch.len() < BATCH && !target.urgent() {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(window, inbox.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let mut attempt = 0;
            let mut stored = true;
            while let Err(error) = target.write(&batch).await {
                attempt += 1;
                tracing::warn!(error = %error, attempt, items = batch.len(), "writing {} failed; retrying", W::WHAT);
                if attempt >= W::ATTEMPTS {
                    tracing::error!(items = batch.len(), "dropping {} after repeated failures", W::WHAT);
                    stored = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            target.written(&batch, stored);
            batch.clear();
        }
    })
}
