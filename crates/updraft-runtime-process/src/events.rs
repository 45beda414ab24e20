//! How a Lambda handler receives an event: the JSON the analogous AWS service sends,
//! so handlers written for AWS run as they are. A topic's message is an SNS
//! notification, a schedule's tick an EventBridge scheduled event, a webhook an API
//! Gateway request (the event an `http` trigger on that route would give, `apigw.rs`);
//! everything else (invocations, destinations' records, mail, queue batches, workflow
//! tasks) is the payload itself. `docs/events.md` documents each.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{SecondsFormat, TimeZone as _, Utc};
use serde_json::json;
use updraft_model::EventSource;
use updraft_runtime::{Event, EventOrigin, Input, replay_webhook};

/// Who receives an event, as AWS's ARNs name it.
pub(crate) struct Receiver<'a> {
    pub function: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
}

/// What the handler is given for an event.
pub(crate) enum Delivery {
    /// This JSON document as the event.
    Payload(Bytes),
    /// This request, mapped to an API Gateway event, and the answer mapped back.
    Request(Box<http::Request<Bytes>>),
}

/// What the handler is given for `input`, and the client context a direct invocation
/// carries. An HTTP request's body must have been read whole (`Input::read_whole`).
pub(crate) fn delivery(input: Input, receiver: &Receiver<'_>) -> (Delivery, Option<String>) {
    let event = match input {
        Input::Http(request) => {
            debug_assert!(!request.body().is_streaming(), "a Lambda handler's request is read whole first");
            let request = request.map(|body| body.as_whole().cloned().unwrap_or_default());
            return (Delivery::Request(Box::new(request)), None);
        }
        Input::Event(event) => event,
    };
    let delivery = event_delivery(&event, receiver);
    let client_context = match event.origin {
        EventOrigin::Direct { client_context, .. } => client_context,
        _ => None,
    };
    (delivery, client_context)
}

fn event_delivery(event: &Event, receiver: &Receiver<'_>) -> Delivery {
    let EventOrigin::Stored { source, .. } = &event.origin else { return Delivery::Payload(event.payload.clone()) };
    match source {
        EventSource::Topic { topic, message_id, subject, published_at, attributes, .. } => {
            Delivery::Payload(sns_notification(
                event,
                receiver,
                topic.as_str(),
                message_id,
                subject.as_deref(),
                *published_at,
                attributes,
            ))
        }
        EventSource::Schedule { tick_at, .. } => Delivery::Payload(scheduled_event(event, receiver, *tick_at)),
        EventSource::Webhook { .. } => match replay_webhook(event, source) {
            Some(request) => {
                Delivery::Request(Box::new(request.map(|body| body.as_whole().cloned().unwrap_or_default())))
            }
            None => Delivery::Payload(event.payload.clone()),
        },
        EventSource::Invoke | EventSource::Destination { .. } | EventSource::Email { .. } => {
            Delivery::Payload(event.payload.clone())
        }
    }
}

/// The event document a Lambda handler named `function` receives for `input`: what
/// the runtime sends it through the Runtime API (an HTTP request as API Gateway's
/// event). `updraft events sample` prints these.
pub fn lambda_event(input: Input, function: &str, region: &str, account_id: &str, now_ms: i64) -> Bytes {
    let receiver = Receiver { function, region, account_id };
    match delivery(input, &receiver).0 {
        Delivery::Payload(payload) => payload,
        Delivery::Request(request) => crate::apigw::request_event(
            &request,
            &crate::apigw::EventContext { account_id, request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", now_ms },
        ),
    }
}

/// SNS's notification record, one per delivery, as Lambda receives it from a topic.
fn sns_notification(
    event: &Event,
    receiver: &Receiver<'_>,
    topic: &str,
    message_id: &str,
    subject: Option<&str>,
    published_at: i64,
    attributes: &[(String, String)],
) -> Bytes {
    let Receiver { function, region, account_id } = receiver;
    let topic_arn = format!("arn:aws:sns:{region}:{account_id}:{topic}");
    let mut message_attributes = serde_json::Map::new();
    for (name, value) in attributes {
        message_attributes.insert(name.clone(), json!({ "Type": "String", "Value": value }));
    }
    // SNS messages are text; a binary message travels base64-encoded, and says so.
    let message = match std::str::from_utf8(&event.payload) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            message_attributes.insert("updraft.encoding".to_owned(), json!({ "Type": "String", "Value": "base64" }));
            base64::engine::general_purpose::STANDARD.encode(&event.payload)
        }
    };
    let record = json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{topic_arn}:{function}"),
            "Sns": {
                "Type": "Notification",
                "MessageId": message_id,
                "TopicArn": topic_arn,
                "Subject": subject,
                "Message": message,
                "Timestamp": rfc3339(published_at, SecondsFormat::Millis),
                "SignatureVersion": "1",
                "Signature": "",
                "SigningCertUrl": "",
                "UnsubscribeUrl": "",
                "MessageAttributes": message_attributes,
            }
        }]
    });
    Bytes::from(record.to_string())
}

/// EventBridge's scheduled event, as Lambda receives it from a schedule rule.
fn scheduled_event(event: &Event, receiver: &Receiver<'_>, tick_at: i64) -> Bytes {
    let Receiver { function, region, account_id } = receiver;
    let body = json!({
        "version": "0",
        "id": event.id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": rfc3339(tick_at, SecondsFormat::Secs),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{account_id}:rule/{function}-schedule")],
        "detail": {},
    });
    Bytes::from(body.to_string())
}

fn rfc3339(millis: i64, format: SecondsFormat) -> String {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default().to_rfc3339_opts(format, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_model::TopicName;

    const RECEIVER: Receiver<'static> =
        Receiver { function: "mailer", region: "us-east-1", account_id: "000000000000" };

    fn stored(source: EventSource, payload: &'static [u8]) -> Event {
        Event {
            id: "0190c1f2-0000-7000-8000-000000000001".into(),
            payload: Bytes::from_static(payload),
            origin: EventOrigin::Stored { source, enqueued_at: 1_795_764_600_000 },
        }
    }

    fn payload(delivery: Delivery) -> serde_json::Value {
        match delivery {
            Delivery::Payload(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Delivery::Request(_) => panic!("a request, not a payload"),
        }
    }

    #[test]
    fn a_topic_message_is_an_sns_notification_naming_the_subscription() {
        let source = EventSource::Topic {
            topic: TopicName::new("signups").unwrap(),
            message_id: "m-1".into(),
            content_type: None,
            subject: Some("hello".into()),
            published_at: 1_795_764_600_000,
            attributes: vec![("reason".into(), "test".into())],
        };
        let record = payload(event_delivery(&stored(source, b"{\"a\":1}"), &RECEIVER));
        let sns = &record["Records"][0];
        assert_eq!(sns["EventSubscriptionArn"], "arn:aws:sns:us-east-1:000000000000:signups:mailer");
        assert_eq!(sns["Sns"]["MessageId"], "m-1");
        assert_eq!(sns["Sns"]["Message"], "{\"a\":1}");
        assert_eq!(sns["Sns"]["Subject"], "hello");
        assert_eq!(sns["Sns"]["MessageAttributes"]["reason"]["Value"], "test");
    }

    #[test]
    fn a_binary_topic_message_travels_base64_and_says_so() {
        let source = EventSource::Topic {
            topic: TopicName::new("blobs").unwrap(),
            message_id: "m-2".into(),
            content_type: None,
            subject: None,
            published_at: 0,
            attributes: Vec::new(),
        };
        let record = payload(event_delivery(&stored(source, b"\xff\x00"), &RECEIVER));
        assert_eq!(record["Records"][0]["Sns"]["Message"], "/wA=");
        assert_eq!(record["Records"][0]["Sns"]["MessageAttributes"]["updraft.encoding"]["Value"], "base64");
    }

    #[test]
    fn a_schedule_tick_is_an_eventbridge_scheduled_event_at_its_due_time() {
        let source = EventSource::Schedule { schedule: "rate(1 minute)".into(), tick_at: 1_795_764_600_000 };
        let event = payload(event_delivery(&stored(source, b""), &RECEIVER));
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["time"], "2026-11-27T07:30:00Z");
        assert_eq!(event["resources"][0], "arn:aws:events:us-east-1:000000000000:rule/mailer-schedule");
    }

    #[test]
    fn a_webhook_is_replayed_as_the_request_it_was() {
        let source = EventSource::Webhook {
            method: "PUT".into(),
            uri: "/hooks/repo?x=1".into(),
            route: "/hooks/{name}".into(),
            headers: vec![("x-github-event".into(), "push".into())],
        };
        let Delivery::Request(request) = event_delivery(&stored(source, b"body"), &RECEIVER) else {
            panic!("a payload")
        };
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.uri(), "/hooks/repo?x=1");
        assert_eq!(request.headers()["x-github-event"], "push");
        assert_eq!(request.headers()["x-updraft-route"], "/hooks/{name}");
        assert_eq!(request.body().as_ref(), b"body");
    }
}
