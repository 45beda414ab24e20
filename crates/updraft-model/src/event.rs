//! Where an asynchronous event came from. Stored with the event, it decides the shape
//! the function receives it in (CloudEvents for wasm, the analogous AWS service's JSON
//! for Lambda handlers) and the trigger its invocation records show.

use serde::{Deserialize, Serialize};

use crate::{TopicName, TriggerKind};

/// The origin of an asynchronous event; the event's payload is the body it carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventSource {
    /// `invoke-async` or Lambda's `Event`: the payload is the event itself.
    Invoke,
    /// One subscriber's copy of a message published to a topic.
    Topic {
        topic: TopicName,
        /// Shared by every subscriber's copy of the message.
        message_id: String,
        /// The publisher's `Content-Type`.
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        subject: Option<String>,
        /// When it was published (ms since the epoch).
        published_at: i64,
        /// Name-value pairs beside the message (SNS's message attributes), e.g. the
        /// error of an event sent to a dead-letter topic.
        #[serde(default)]
        attributes: Vec<(String, String)>,
    },
    /// One tick of a `schedule` trigger.
    Schedule {
        /// The expression, as written.
        schedule: String,
        /// The time the tick was due (ms since the epoch), not when it ran.
        tick_at: i64,
    },
    /// A request to a `webhook` route; the payload is its body.
    Webhook {
        method: String,
        /// Path and query, as the caller sent them.
        uri: String,
        /// The route it matched, e.g. `/hooks/{repo}`.
        route: String,
        /// The request's headers, hop-by-hop ones removed.
        headers: Vec<(String, String)>,
    },
    /// Mail accepted by the SMTP listener; the payload is the parsed message as JSON.
    Email {
        /// The envelope sender (`MAIL FROM`).
        from: String,
        /// The envelope recipients (`RCPT TO`) this function claims.
        to: Vec<String>,
    },
    /// The record of another function's asynchronous invocation, sent to this
    /// function as its `on_success` or `on_failure` destination.
    Destination {
        /// `Success` or Lambda's failure condition (`RetriesExhausted`, `EventAgeExceeded`).
        condition: String,
    },
}

impl EventSource {
    /// The trigger its invocations are recorded under.
    pub fn trigger(&self) -> TriggerKind {
        match self {
            EventSource::Invoke | EventSource::Destination { .. } => TriggerKind::Async,
            EventSource::Topic { .. } => TriggerKind::Topic,
            EventSource::Schedule { .. } => TriggerKind::Schedule,
            EventSource::Webhook { .. } => TriggerKind::Webhook,
            EventSource::Email { .. } => TriggerKind::Email,
        }
    }
}
