//! Work queues: `updraft send` / `POST /v1/queues/{q}` store a message; the poller
//! hands batches of visible messages to the functions whose `queue` triggers consume
//! the queue, as SQS's event source mapping does. A batch that succeeds deletes its
//! messages, except those the function lists in `batchItemFailures`; a batch that
//! fails leaves them to come back after the visibility timeout; a message delivered
//! `max_receives` times moves to the dead-letter queue instead of a further delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use updraft_model::{
    ACCOUNT_ID, AliasName, FunctionName, Lineage, MAX_RECURSION, QueueName, QueueTrigger, REGION, TraceParent, Trigger,
    TriggerKind, now_millis,
};
use updraft_runtime::{Event, EventOrigin, Input, InvokeContext, InvokeError};
use updraft_store::{QueueMessage, Store, StoreError};

use crate::host::Ran;
use crate::layer::EventLayer;
use crate::queue::QueueError;

/// How often queues are looked at when nothing wakes the poller.
const POLL: Duration = Duration::from_millis(250);
/// Batches of one trigger in flight at once on this node.
const BATCHES_PER_TRIGGER: usize = 4;
/// The most bytes of message bodies in one batch (Lambda caps an SQS batch at 6 MB).
const MAX_BATCH_BYTES: usize = 6 << 20;
/// How long a throttled batch waits before its messages are visible again.
const THROTTLE_DELAY: i64 = 1_000;

/// Starts the poller of `layer`'s work queues until the layer stops;
/// `layer.wake_queues()` wakes it for new messages.
pub(crate) fn start(layer: &Arc<EventLayer>) {
    tokio::spawn(run(Arc::downgrade(layer), layer.store().clone(), layer.queues_wake(), layer.stopping()));
}

impl EventLayer {
    /// Stores a message in `queue`, sent under `trace` (the batch that handles it links
    /// to that span); when this returns it is durable. Returns its id.
    pub async fn send_to_queue(
        &self,
        queue: &QueueName,
        body: Bytes,
        content_type: Option<String>,
        trace: Option<TraceParent>,
    ) -> Result<String, QueueError> {
        let now = now_millis();
        let message = QueueMessage {
            id: uuid::Uuid::now_v7().to_string(),
            queue: queue.clone(),
            body: body.to_vec(),
            content_type,
            sent_at: now,
            receive_count: 0,
            first_received_at: None,
            visible_at: now,
            trace,
        };
        self.store().queue_send(std::slice::from_ref(&message)).await?;
        self.wake_queues();
        Ok(message.id)
    }

    /// Moves every message waiting in `dead_letter` to `to`, oldest first, each
    /// deliverable again with its receives reset (SQS's redrive). Returns how many.
    pub async fn queue_redrive(&self, dead_letter: &QueueName, to: &QueueName) -> Result<u64, QueueError> {
        // Messages that land in the dead-letter queue after this starts stay there.
        let started = now_millis();
        let mut moved = 0;
        loop {
            let batch = self.store().queue_redrive(dead_letter, to, started, 1_000).await?;
            moved += batch;
            if batch > 0 {
                self.wake_queues();
            }
            if batch < 1_000 {
                return Ok(moved);
            }
        }
    }

    /// How many messages `queue` holds: visible, and delivered but not yet handled.
    pub async fn queue_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        let depth = self.store().queue_depth(queue, now_millis()).await?;
        Ok(QueueDepth {
            visible: depth.visible,
            in_flight: depth.in_flight,
            oldest_visible_at: depth.oldest_visible_at,
        })
    }
}

/// A work queue's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages ready for delivery.
    pub visible: i64,
    /// Messages delivered and not yet handled.
    pub in_flight: i64,
    /// When the oldest ready message became ready (ms since the epoch).
    pub oldest_visible_at: Option<i64>,
}

async fn run(layer: Weak<EventLayer>, store: Store, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<String, Arc<AtomicUsize>> = HashMap::new();
    loop {
        let Some(layer) = layer.upgrade() else { return };
        let Some(host) = layer.host() else { return };
        let live = host.functions();
        drop(host);
        let now = now_millis();
        let mut next_look = now + POLL.as_millis() as i64;
        for (function, config) in &live {
            for trigger in &config.triggers {
                let Trigger::Queue(trigger) = trigger else { continue };
                let batches = running.entry(format!("{function}#{}", trigger.queue)).or_default().clone();
                if batches.load(Ordering::SeqCst) >= BATCHES_PER_TRIGGER {
                    continue;
                }
                match take_batch(&store, trigger, now).await {
                    Ok(Batch::Ready(messages)) => {
                        batches.fetch_add(1, Ordering::SeqCst);
                        next_look = now;
                        let (layer, store, function, trigger) =
                            (layer.clone(), store.clone(), function.clone(), trigger.clone());
                        tokio::spawn(async move {
                            deliver(&layer, &store, &function, &trigger, messages).await;
                            batches.fetch_sub(1, Ordering::SeqCst);
                            layer.wake_queues();
                        });
                    }
                    Ok(Batch::WaitUntil(time)) => next_look = next_look.min(time),
                    Ok(Batch::Moved) => next_look = now,
                    Ok(Batch::Empty) => {}
                    Err(error) => {
                        tracing::error!(queue = %trigger.queue, %error, "cannot read a work queue");
                    }
                }
            }
        }
        drop(layer);
        let sleep = Duration::from_millis((next_look - now_millis()).clamp(0, POLL.as_millis() as i64) as u64);
        if sleep.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            _ = stopped.changed() => return,
        }
    }
}

enum Batch {
    Ready(Vec<QueueMessage>),
    /// Fewer than a batch is waiting: look again when the batch window closes.
    WaitUntil(i64),
    /// Only messages out of receives: they went to the dead-letter queue.
    Moved,
    Empty,
}

/// Receives the next batch of `trigger`'s queue, if one is due.
async fn take_batch(store: &Store, trigger: &QueueTrigger, now: i64) -> Result<Batch, StoreError> {
    let depth = store.queue_depth(&trigger.queue, now).await?;
    let Some(oldest) = depth.oldest_visible_at else { return Ok(Batch::Empty) };
    let window_closes = oldest + trigger.batch_window.as_millis() as i64;
    if depth.visible < i64::from(trigger.batch_size) && now < window_closes {
        return Ok(Batch::WaitUntil(window_closes));
    }
    let visible_until = now + trigger.visibility_timeout.as_millis() as i64;
    let received = store.queue_receive(&trigger.queue, now, visible_until, i64::from(trigger.batch_size)).await?;
    let (spent, mut messages): (Vec<QueueMessage>, Vec<QueueMessage>) =
        received.into_iter().partition(|message| message.receive_count > i64::from(trigger.max_receives));
    // Past the byte budget, the rest go back at once, their receive not counted.
    let mut bytes = 0;
    let keep = messages
        .iter()
        .position(|message| {
            bytes += message.body.len();
            bytes > MAX_BATCH_BYTES
        })
        .map_or(messages.len(), |over| over.max(1));
    let returned: Vec<String> = messages.split_off(keep).into_iter().map(|message| message.id).collect();
    if !returned.is_empty() {
        store.queue_settle(&[], &returned, Some(now), true).await?;
    }
    if !spent.is_empty() {
        let ids: Vec<String> = spent.iter().map(|message| message.id.clone()).collect();
        tracing::info!(queue = %trigger.queue, dead_letter_queue = %trigger.dead_letter_queue, count = ids.len(), "messages out of receives moved to the dead-letter queue");
        store.queue_move(&ids, &trigger.dead_letter_queue, now).await?;
    }
    Ok(match (messages.is_empty(), spent.is_empty()) {
        (false, _) => Batch::Ready(messages),
        (true, false) => Batch::Moved,
        (true, true) => Batch::Empty,
    })
}

/// Runs one batch and settles its messages.
async fn deliver(
    layer: &EventLayer,
    store: &Store,
    function: &FunctionName,
    trigger: &QueueTrigger,
    messages: Vec<QueueMessage>,
) {
    let request_id = uuid::Uuid::now_v7().to_string();
    let input = Input::Event(Event {
        id: request_id.clone(),
        payload: sqs_batch(&trigger.queue, &messages),
        origin: EventOrigin::QueueBatch { queue: trigger.queue.clone() },
    });
    // The batch's record is stored before its messages are settled (see `dispatch`).
    let recorded = layer.record_wait(&request_id);
    // A batch starts a trace of its own, linked to the span that sent each message, as
    // OpenTelemetry's messaging conventions have it for batches.
    let mut seen = std::collections::HashSet::with_capacity(messages.len());
    let links: Vec<TraceParent> = messages
        .iter()
        .filter_map(|message| message.trace.clone())
        .filter(|trace| seen.insert(trace.clone()))
        .collect();
    // The batch continues each message's chain: each function's highest count among them.
    let lineage = Lineage::merge(messages.iter().filter_map(|message| message.trace.as_ref()).map(|t| &t.lineage));
    let context = InvokeContext { links, lineage, ..InvokeContext::new(request_id, TriggerKind::Queue, None) };
    let ids: Vec<String> = messages.iter().map(|message| message.id.clone()).collect();
    let now = now_millis();
    let invoked = layer.invoke(function, trigger.alias.as_ref().map(AliasName::as_str), input, context).await;
    // Only an invocation that ran (or was throttled) leaves a record to wait for.
    let ran = !matches!(invoked, Ran::NotRun { .. } | Ran::NotDeployed);
    if let Some(recorded) = recorded.filter(|_| ran)
        && !recorded.await
    {
        // They come back after the visibility timeout, and are recorded then.
        tracing::error!(queue = %trigger.queue, "the record of a queue batch was not stored; its messages will come back");
        return;
    }
    let settled = match invoked {
        Ran::Answered(response) if response.status().is_success() => {
            let failed = batch_item_failures(response.body(), &ids);
            let (failed, handled): (Vec<String>, Vec<String>) = ids.into_iter().partition(|id| failed.contains(id));
            store.queue_settle(&handled, &failed, None, false).await
        }
        // Stopped as a recursive loop: the messages that looped go to the dead-letter
        // queue, the others come back at once for a batch without them.
        Ran::Failed(InvokeError::RecursiveLoop { .. }) => {
            let (looped, others): (Vec<&QueueMessage>, Vec<&QueueMessage>) = messages.iter().partition(|message| {
                message.trace.as_ref().is_some_and(|trace| trace.lineage.count(function) >= MAX_RECURSION)
            });
            let (looped, others): (Vec<String>, Vec<String>) = match looped.is_empty() {
                // Never a batch that comes straight back to be stopped again.
                true => (ids.clone(), Vec::new()),
                false => (
                    looped.into_iter().map(|message| message.id.clone()).collect(),
                    others.into_iter().map(|message| message.id.clone()).collect(),
                ),
            };
            tracing::warn!(queue = %trigger.queue, %function, looped = looped.len(), dead_letter_queue = %trigger.dead_letter_queue, "messages stopped in a recursive loop");
            match store.queue_move(&looped, &trigger.dead_letter_queue, now).await {
                Ok(()) => store.queue_settle(&[], &others, Some(now), true).await,
                Err(error) => Err(error),
            }
        }
        // The whole batch failed: its messages come back after the visibility timeout.
        Ran::Answered(_) | Ran::Failed(_) => store.queue_settle(&[], &ids, None, false).await,
        // The function never saw them.
        Ran::Throttled { .. } | Ran::NotDeployed => {
            store.queue_settle(&[], &ids, Some(now + THROTTLE_DELAY), true).await
        }
        // They wait in the queue for the alias to exist.
        Ran::NotRun { message } => {
            tracing::warn!(queue = %trigger.queue, "{message}; its messages wait in the queue");
            store.queue_settle(&[], &ids, Some(now + THROTTLE_DELAY), true).await
        }
    };
    if let Err(error) = settled {
        // They come back after the visibility timeout: at least once.
        tracing::error!(queue = %trigger.queue, %error, "cannot settle a batch of queue messages");
    }
}

/// The ids the function reported failed (`{"batchItemFailures": [{"itemIdentifier":
/// ID}]}`); none when the answer does not mention failures. A report that is
/// malformed or names a message not in the batch fails the whole batch, as on Lambda.
fn batch_item_failures(body: &[u8], ids: &[String]) -> Vec<String> {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let failures = match &answer["batchItemFailures"] {
        Value::Null => return Vec::new(),
        Value::Array(failures) => failures,
        _ => return ids.to_vec(),
    };
    let mut failed = Vec::with_capacity(failures.len());
    for failure in failures {
        match failure["itemIdentifier"].as_str() {
            Some(id) if ids.iter().any(|known| known == id) => failed.push(id.to_owned()),
            _ => return ids.to_vec(),
        }
    }
    failed
}

/// SQS's batch event, as Lambda receives it from a queue.
pub fn sqs_batch(queue: &QueueName, messages: &[QueueMessage]) -> Bytes {
    let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}");
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let mut attributes = serde_json::Map::new();
            // SQS bodies are text; one that is not UTF-8 travels base64-encoded, and says so.
            let body = match std::str::from_utf8(&message.body) {
                Ok(text) => text.to_owned(),
                Err(_) => {
                    attributes.insert("updraft.encoding".to_owned(), json!({ "stringValue": "base64", "dataType": "String" }));
                    base64::engine::general_purpose::STANDARD.encode(&message.body)
                }
            };
            if let Some(content_type) = &message.content_type {
                attributes.insert("content-type".to_owned(), json!({ "stringValue": content_type, "dataType": "String" }));
            }
            json!({
                "messageId": message.id,
                "receiptHandle": message.id,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": message.receive_count.to_string(),
                    "SentTimestamp": message.sent_at.to_string(),
                    "SenderId": ACCOUNT_ID,
                    "ApproximateFirstReceiveTimestamp": message.first_received_at.unwrap_or(message.sent_at).to_string(),
                },
                "messageAttributes": attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    Bytes::from(json!({ "Records": records }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_name_messages_of_the_batch() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(batch_item_failures(br#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#, &ids), ["b"]);
        assert!(batch_item_failures(br#"{"batchItemFailures": []}"#, &ids).is_empty());
        assert!(batch_item_failures(b"null", &ids).is_empty());
        assert!(batch_item_failures(b"not json", &ids).is_empty());
        // A report naming a stranger, or malformed, fails the whole batch.
        let stranger = br#"{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "zzz"}]}"#;
        assert_eq!(batch_item_failures(stranger, &ids), ids);
        assert_eq!(batch_item_failures(br#"{"batchItemFailures": [{"itemId": "a"}]}"#, &ids), ids);
        assert_eq!(batch_item_failures(br#"{"batchItemFailures": "a"}"#, &ids), ids);
    }
}
