//! Events that become asynchronous invocations: `invoke-async`, messages published to
//! topics (one copy per subscriber, stored together), webhook requests, mail, and the
//! records an invocation's outcome sends to its destinations and dead-letter topic. Each is
//! stored in the durable queue before anyone is told it was accepted; the dispatcher
//! delivers it.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use updraft_model::{
    Destination, EventSource, FunctionConfig, FunctionName, Lineage, TopicName, TraceParent, Trigger, WebhookTrigger,
    now_millis, span_id_of,
};
use updraft_runtime::new_trace_id;
use updraft_store::{AsyncEvent, EventState};

use crate::dispatch;
use crate::host::AsyncEventMetric;
use crate::layer::EventLayer;
use crate::queue::QueueError;
use crate::record::{Failure, Outcome, invocation_record};

/// A message accepted by a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub message_id: String,
    /// The functions that will each get a copy.
    pub subscribers: Vec<FunctionName>,
}

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Nobody would get it; refused rather than silently dropped.
    #[error("no function subscribes to topic {topic}; add {{ topic = \"{topic}\" }} to a function's triggers")]
    NoSubscribers { topic: TopicName },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A message for a topic: its body and what travels with it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub payload: Bytes,
    pub content_type: Option<String>,
    pub subject: Option<String>,
    /// Name-value pairs beside the message (SNS's message attributes).
    pub attributes: Vec<(String, String)>,
    /// The publisher's trace context; a new trace when `None`.
    pub trace: Option<TraceParent>,
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "the request is not signed: send X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> with the webhook's secret"
    )]
    Unsigned,
    #[error("the request's X-Hub-Signature-256 does not match its body; sign it with the webhook's secret")]
    BadSignature,
    /// The secret's variable is gone from the function's env: nothing can be
    /// verified, so nothing is accepted.
    #[error("the webhook's secret {name} is not set in the function's env; redeploy it with {name} in env")]
    NoSecret { name: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A webhook request, as the gateway received it.
pub struct WebhookRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The route it matched.
    pub route: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub trace: Option<TraceParent>,
}

impl EventLayer {
    /// Publishes `message` to `topic`: when this returns, a copy for every subscriber
    /// is stored (all or none), each to be delivered with its function's own retries.
    pub async fn publish(&self, topic: &TopicName, message: Message) -> Result<Published, PublishError> {
        let message_id = uuid::Uuid::now_v7().to_string();
        let copies = self.topic_copies(topic, &message_id, &message);
        if copies.is_empty() {
            return Err(PublishError::NoSubscribers { topic: topic.clone() });
        }
        let subscribers = copies.iter().map(|copy| copy.function.clone()).collect();
        self.enqueue(copies).await?;
        Ok(Published { message_id, subscribers })
    }

    /// Stores a request to `webhook` of `function` for asynchronous delivery, after
    /// checking its signature if the webhook has a secret (failing closed). Returns
    /// the event's id.
    pub async fn accept_webhook(
        &self,
        function: &FunctionName,
        webhook: &WebhookTrigger,
        request: WebhookRequest,
    ) -> Result<String, WebhookError> {
        let signed = webhook.secret.as_ref().map(ToString::to_string).or_else(|| webhook.secret_env.clone());
        if let Some(name) = signed {
            let secret = self.host().and_then(|host| host.webhook_secret(function, webhook));
            let Some(secret) = secret else {
                return Err(WebhookError::NoSecret { name });
            };
            let signature = request
                .headers
                .iter()
                .find(|(header, _)| header.eq_ignore_ascii_case("x-hub-signature-256"))
                .map(|(_, value)| value.as_str())
                .ok_or(WebhookError::Unsigned)?;
            verify_signature(secret.as_bytes(), &request.body, signature)?;
        }
        let source = EventSource::Webhook {
            method: request.method,
            uri: request.uri,
            route: request.route,
            headers: request.headers,
        };
        let event = new_event(function.clone(), request.body.to_vec(), request.trace, source);
        let id = event.id.clone();
        self.enqueue(vec![event]).await?;
        Ok(id)
    }

    /// The live functions with an `email` trigger claiming `recipient`.
    pub fn email_recipients(&self, recipient: &str) -> Vec<FunctionName> {
        let Some(host) = self.host() else { return Vec::new() };
        host.functions()
            .into_iter()
            .filter(|(_, config)| {
                config
                    .triggers
                    .iter()
                    .any(|trigger| matches!(trigger, Trigger::Email(email) if email.claims(recipient)))
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// Stores one event per function claiming any of `recipients`, all in one
    /// transaction, each with the recipients that function claims; when this returns
    /// the mail is durable. `message` makes the event's payload from the recipients it
    /// is for. Returns the ids.
    pub async fn accept_email(
        &self,
        envelope_from: &str,
        recipients: &[String],
        message: impl Fn(&[String]) -> Vec<u8>,
    ) -> Result<Vec<String>, QueueError> {
        let mut claimed: Vec<(FunctionName, Vec<String>)> = Vec::new();
        for recipient in recipients {
            for function in self.email_recipients(recipient) {
                match claimed.iter_mut().find(|(name, _)| *name == function) {
                    Some((_, to)) => to.push(recipient.clone()),
                    None => claimed.push((function, vec![recipient.clone()])),
                }
            }
        }
        let events: Vec<AsyncEvent> = claimed
            .into_iter()
            .map(|(function, to)| {
                let payload = message(&to);
                let source = EventSource::Email { from: envelope_from.to_owned(), to };
                new_event(function, payload, None, source)
            })
            .collect();
        let ids = events.iter().map(|event| event.id.clone()).collect();
        self.enqueue(events).await?;
        Ok(ids)
    }

    /// Accepts an asynchronous invocation of `function` (of the version or alias
    /// `qualifier` names, resolved when it runs; the version serving then without one):
    /// when this returns, the event is stored durably and will run at least once.
    /// Returns its id.
    pub async fn invoke_async(
        &self,
        function: &FunctionName,
        qualifier: Option<String>,
        payload: Bytes,
        trace: Option<TraceParent>,
    ) -> Result<String, QueueError> {
        let event =
            AsyncEvent { qualifier, ..new_event(function.clone(), payload.to_vec(), trace, EventSource::Invoke) };
        let id = event.id.clone();
        self.enqueue(vec![event]).await?;
        Ok(id)
    }

    /// Stores events durably and has them run: at once on this node, claimed as they
    /// are stored, when its dispatcher has room for them all (no round through the
    /// queue); otherwise they wait in the queue and the dispatcher is woken.
    pub(crate) async fn enqueue(&self, events: Vec<AsyncEvent>) -> Result<(), QueueError> {
        let received = EventLayer::received(&events);
        let Some((layer, slots)) = dispatch::slots_for(self, events.len()) else {
            self.event_queue().enqueue(events).await?;
            self.count_received(received);
            self.wake_dispatcher();
            return Ok(());
        };
        // In a task of its own: a caller that goes away while the events are being
        // stored must not leave them held by this node and never started (until their
        // lease ran out).
        let stored = tokio::spawn(async move {
            let claimed = layer.event_queue().enqueue_claimed(layer.node_id(), events).await?;
            if claimed.is_empty() {
                // Enqueued only (JetStream): the dispatcher's consumer hands them out.
                layer.wake_dispatcher();
            }
            // A slot for each: `slots_for` gave as many as there were events.
            for (event, slot) in claimed.into_iter().zip(slots) {
                dispatch::deliver_in(layer.clone(), event, slot);
            }
            Ok::<(), QueueError>(())
        });
        match stored.await {
            Ok(result) => result?,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down.
            Err(_) => return Err(QueueError::Stopping),
        }
        self.count_received(received);
        Ok(())
    }

    /// One copy of a message per subscriber of `topic`, as live now.
    fn topic_copies(&self, topic: &TopicName, message_id: &str, message: &Message) -> Vec<AsyncEvent> {
        let subscribers = self.host().map(|host| host.subscribers(topic)).unwrap_or_default();
        // Every copy is in the publisher's trace (one new trace when it has none).
        let (trace_id, parent, lineage) = match &message.trace {
            Some(trace) => (trace.trace_id.clone(), Some(trace.span_id.clone()), trace.lineage.clone()),
            None => (new_trace_id(), None, Lineage::default()),
        };
        let published_at = now_millis();
        subscribers
            .iter()
            .map(|subscriber| {
                let source = EventSource::Topic {
                    topic: topic.clone(),
                    message_id: message_id.to_owned(),
                    content_type: message.content_type.clone(),
                    subject: message.subject.clone(),
                    published_at,
                    attributes: message.attributes.clone(),
                };
                let payload = message.payload.to_vec();
                event_in_trace(subscriber.clone(), payload, trace_id.clone(), parent.clone(), lineage.clone(), source)
            })
            .collect()
    }

    /// The events that deliver an outcome's invocation record to `destination`.
    pub(crate) fn destination_events(
        &self,
        destination: &Destination,
        event: &AsyncEvent,
        outcome: &Outcome<'_>,
    ) -> Vec<AsyncEvent> {
        let record = invocation_record(event, outcome);
        match destination {
            Destination::Function(name) => {
                let source = EventSource::Destination { condition: outcome.condition.to_owned() };
                vec![new_event(name.clone(), record, Some(sent_by(event)), source)]
            }
            Destination::Topic(topic) => {
                let message = Message {
                    payload: Bytes::from(record),
                    content_type: Some("application/json".to_owned()),
                    trace: Some(sent_by(event)),
                    ..Message::default()
                };
                let copies = self.topic_copies(topic, &uuid::Uuid::now_v7().to_string(), &message);
                if copies.is_empty() {
                    self.count(&event.function, AsyncEventMetric::DestinationFailure);
                    static DROPPED: updraft_runtime::LogBudget =
                        updraft_runtime::LogBudget::new(10, std::time::Duration::from_secs(1));
                    if let Some(suppressed) = DROPPED.admit() {
                        tracing::warn!(id = %event.id, %topic, suppressed, "no function subscribes to the destination topic; the record is dropped");
                    }
                }
                copies
            }
        }
    }

    /// What an event that failed for good sends on: its record to `on_failure`, its
    /// payload (with the error as attributes) to the dead-letter topic.
    pub(crate) fn failure_events(
        &self,
        config: &FunctionConfig,
        event: &AsyncEvent,
        condition: &'static str,
        failure: &Failure,
    ) -> Vec<AsyncEvent> {
        let mut events = Vec::new();
        if let Some(destination) = &config.on_failure {
            let outcome = Outcome {
                condition,
                response: &failure.document,
                status: failure.status,
                function_error: Some(if failure.handled { "Handled" } else { "Unhandled" }),
            };
            events.extend(self.destination_events(destination, event, &outcome));
        }
        if let Some(topic) = &config.dead_letter_topic {
            let error_code = if failure.handled { "200" } else { "500" };
            let message = Message {
                payload: Bytes::from(event.payload.clone()),
                content_type: serde_json::from_slice::<serde_json::Value>(&event.payload)
                    .is_ok()
                    .then(|| "application/json".to_owned()),
                subject: None,
                attributes: vec![
                    ("RequestID".to_owned(), event.id.clone()),
                    ("ErrorCode".to_owned(), error_code.to_owned()),
                    ("ErrorMessage".to_owned(), failure.error.clone()),
                ],
                trace: Some(sent_by(event)),
            };
            let copies = self.topic_copies(topic, &uuid::Uuid::now_v7().to_string(), &message);
            if copies.is_empty() {
                self.count(&event.function, AsyncEventMetric::DeadLetterError);
                static KEPT: updraft_runtime::LogBudget =
                    updraft_runtime::LogBudget::new(10, std::time::Duration::from_secs(1));
                if let Some(suppressed) = KEPT.admit() {
                    tracing::warn!(id = %event.id, %topic, suppressed, "no function subscribes to the dead-letter topic; the event stays failed");
                }
            }
            events.extend(copies);
        }
        events
    }
}

/// The context of what event `event`'s invocation sends on: its own span, in a chain
/// that counts that invocation.
fn sent_by(event: &AsyncEvent) -> TraceParent {
    TraceParent {
        trace_id: event.trace_id.clone(),
        span_id: span_id_of(&event.id),
        lineage: event.lineage.with(&event.function),
    }
}

/// A new event for `function`, due now, caused by `trace`'s span (a new trace when
/// `None`).
pub(crate) fn new_event(
    function: FunctionName,
    payload: Vec<u8>,
    trace: Option<TraceParent>,
    source: EventSource,
) -> AsyncEvent {
    match trace {
        Some(trace) => event_in_trace(function, payload, trace.trace_id, Some(trace.span_id), trace.lineage, source),
        None => event_in_trace(function, payload, new_trace_id(), None, Lineage::default(), source),
    }
}

fn event_in_trace(
    function: FunctionName,
    payload: Vec<u8>,
    trace_id: String,
    parent_span_id: Option<String>,
    lineage: Lineage,
    source: EventSource,
) -> AsyncEvent {
    let now = now_millis();
    AsyncEvent {
        id: uuid::Uuid::now_v7().to_string(),
        function,
        payload,
        trace_id,
        parent_span_id,
        lineage,
        qualifier: None,
        enqueued_at: now,
        attempts: 0,
        next_attempt_at: now,
        state: EventState::Queued,
        last_error: None,
        source,
    }
}

/// Checks GitHub's `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256 of the
/// body under the secret), comparing in constant time.
fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> Result<(), WebhookError> {
    let hex_digest = header.trim().strip_prefix("sha256=").ok_or(WebhookError::BadSignature)?;
    let expected = hex::decode(hex_digest).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| WebhookError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_githubs_format() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let secret = b"It's a Secret to Everybody";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature(secret, b"Hello, World!", good).is_ok());
        assert!(matches!(verify_signature(secret, b"Hello, World?", good), Err(WebhookError::BadSignature)));
        assert!(matches!(verify_signature(b"other", b"Hello, World!", good), Err(WebhookError::BadSignature)));
        for bad in
            ["", "sha1=757107ea", "sha256=zz", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"]
        {
            assert!(
                matches!(verify_signature(secret, b"Hello, World!", bad), Err(WebhookError::BadSignature)),
                "{bad}"
            );
        }
    }
}
