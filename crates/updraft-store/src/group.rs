//! Group commit for the event queue: writes (new events, outcomes, retries) made at
//! the same moment by many callers go in one transaction, so they share one fsync
//! (SQLite) or one round trip (PostgreSQL) instead of paying one each. Every caller
//! still hears back only once its writes are committed: acknowledged means durable.

use tokio::sync::{mpsc, oneshot};

use crate::{AsyncEvent, EventWrite, Store, StoreError};

/// The most writes in one transaction.
const MAX_GROUP: usize = 1024;

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// A handle to the writer task; cheap to clone. The task ends when every handle is gone.
#[derive(Clone)]
pub struct EventWriter {
    requests: mpsc::Sender<(Vec<EventWrite>, Reply)>,
}

impl EventWriter {
    /// Starts the writer for `store`. Must be called inside a Tokio runtime.
    pub fn start(store: Store) -> Self {
        let (requests, receiver) = mpsc::channel(MAX_GROUP);
        tokio::spawn(write_groups(store, receiver));
        Self { requests }
    }

    /// Stores `events` (all or none); returns once they are committed.
    pub async fn enqueue(&self, events: Vec<AsyncEvent>) -> Result<(), StoreError> {
        self.write(events.into_iter().map(EventWrite::Enqueue).collect()).await
    }

    /// Applies `writes` (all or none); returns once they are committed.
    pub async fn write(&self, writes: Vec<EventWrite>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Grouped { detail: "the event writer has stopped".to_owned() };
        self.requests.send((writes, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_groups(store: Store, mut receiver: mpsc::Receiver<(Vec<EventWrite>, Reply)>) {
    while let Some(first) = receiver.recv().await {
        // Everything that queued up while the last group was being written.
        let mut group = vec![first];
        let mut count = group[0].0.len();
        while count < MAX_GROUP {
            match receiver.try_recv() {
                Ok(request) => {
                    count += request.0.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        match store.event_write_each(group.iter().flat_map(|(request, _)| request.iter())).await {
            Ok(()) => {
                for (_, reply) in group {
                    // A caller that went away no longer waits for its answer.
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) if group.len() == 1 => {
                let _ = group.into_iter().next().map(|(_, reply)| reply.send(Err(error)));
            }
            Err(_) => {
                // One request may be what failed: give each its own transaction, so
                // the others still commit and only the bad one hears of it.
                for (request, reply) in group {
                    let answer = store.event_write(&request).await;
                    let _ = reply.send(answer.map_err(|error| StoreError::Grouped { detail: error_chain(&error) }));
                }
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
