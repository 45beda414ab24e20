//! How a function that speaks HTTP (a wasm component, an `http` server) receives an
//! event: an HTTP `POST /` in CloudEvents binary mode (`ce-*` headers, the payload as
//! the body) with the invocation's `traceparent`. A webhook is replayed as it was
//! sent, with the CloudEvents headers added. `docs/events.md` documents each event's
//! source and type.

use crate::{Body, Call, Event, EventOrigin, HttpRequest, Input, replay_webhook};
use bytes::Bytes;
use chrono::{SecondsFormat, TimeZone as _, Utc};
use http::{HeaderName, HeaderValue};
use serde_json::json;
use updraft_model::EventSource;

/// The request that hands `input` to the function `function`.
pub fn request(input: Input, function: &str, call: &Call) -> HttpRequest {
    let event = match input {
        Input::Http(request) => return request,
        Input::Event(event) => event,
    };
    let mut request = event_request(&event, function);
    let trace = call.trace();
    set(&mut request, "traceparent", &trace.header());
    if let Some(state) = trace.tracestate() {
        set(&mut request, "tracestate", &state);
    }
    request
}

fn event_request(event: &Event, function: &str) -> HttpRequest {
    match &event.origin {
        EventOrigin::Direct { content_type, .. } => {
            let mut request = cloud_event(event, "updraft/invoke", "dev.updraft.invoke", content_type.as_deref());
            set(&mut request, "x-updraft-request-id", &event.id);
            request
        }
        EventOrigin::QueueBatch { queue } => {
            cloud_event(event, &format!("updraft/queues/{queue}"), "dev.updraft.queue.batch", None)
        }
        EventOrigin::WorkflowTask { workflow } => {
            cloud_event(event, &format!("updraft/workflows/{workflow}"), "dev.updraft.workflow.task", None)
        }
        EventOrigin::Stored { source, enqueued_at } => stored_event(event, source, *enqueued_at, function),
    }
}

fn stored_event(event: &Event, source: &EventSource, enqueued_at: i64, function: &str) -> HttpRequest {
    match source {
        EventSource::Invoke => cloud_event(event, "updraft/async", "dev.updraft.invoke.async", None),
        EventSource::Destination { condition } => {
            let kind = if condition == "Success" {
                "dev.updraft.invocation.success"
            } else {
                "dev.updraft.invocation.failure"
            };
            cloud_event(event, "updraft/destinations", kind, None)
        }
        EventSource::Email { .. } => cloud_event(event, "updraft/email", "dev.updraft.email.received", None),
        EventSource::Topic { topic, message_id, content_type, subject, published_at, attributes } => {
            let content_type = content_type.as_deref().unwrap_or("application/octet-stream");
            let mut request =
                cloud_event(event, &format!("updraft/topics/{topic}"), "dev.updraft.topic.message", Some(content_type));
            // Every subscriber's copy of a message carries the message's id.
            set(&mut request, "ce-id", message_id);
            set(&mut request, "ce-time", &rfc3339(*published_at));
            if let Some(subject) = subject {
                set(&mut request, "ce-subject", subject);
            }
            // CloudEvents extension attributes: lowercase letters and digits only.
            for (name, value) in attributes {
                let name: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
                if let Ok(name) = HeaderName::from_bytes(format!("ce-{}", name.to_ascii_lowercase()).as_bytes())
                    && let Ok(value) = HeaderValue::from_str(value)
                {
                    request.headers_mut().insert(name, value);
                }
            }
            request
        }
        EventSource::Schedule { schedule, tick_at } => {
            let tick = Event {
                payload: Bytes::from(json!({ "schedule": schedule, "time": rfc3339(*tick_at) }).to_string()),
                ..event.clone()
            };
            let mut request =
                cloud_event(&tick, &format!("updraft/schedules/{function}"), "dev.updraft.schedule.tick", None);
            set(&mut request, "ce-time", &rfc3339(*tick_at));
            request
        }
        EventSource::Webhook { route, .. } => {
            let mut request =
                replay_webhook(event, source).unwrap_or_else(|| http::Request::new(Body::whole(event.payload.clone())));
            set(&mut request, "ce-specversion", "1.0");
            set(&mut request, "ce-id", &event.id);
            set(&mut request, "ce-source", &format!("updraft/webhooks{route}"));
            set(&mut request, "ce-type", "dev.updraft.webhook.request");
            set(&mut request, "ce-time", &rfc3339(enqueued_at));
            request
        }
    }
}

/// A `POST /` in CloudEvents binary mode carrying the event's payload (JSON unless
/// `content_type` says otherwise).
fn cloud_event(event: &Event, source: &str, kind: &str, content_type: Option<&str>) -> HttpRequest {
    let mut request = http::Request::new(Body::whole(event.payload.clone()));
    *request.method_mut() = http::Method::POST;
    let headers = request.headers_mut();
    headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    if let Some(content_type) = content_type {
        set(&mut request, "content-type", content_type);
    }
    for (name, value) in [("ce-id", event.id.as_str()), ("ce-source", source), ("ce-type", kind)] {
        set(&mut request, name, value);
    }
    request
}

fn rfc3339(millis: i64) -> String {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn set(request: &mut HttpRequest, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        request.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use updraft_model::TopicName;

    use super::*;

    fn call() -> Call {
        Call {
            request_id: "0190c1f2-0000-7000-8000-00000000abcd".into(),
            trace_id: Arc::from("5bef4de7ad49b0e87f6ef6c87fc2e700"),
            timeout: Duration::from_secs(3),
            deadline_ms: 0,
            lineage: updraft_model::Lineage::default().with(&"resize".parse().unwrap()),
        }
    }

    fn stored(source: EventSource, payload: &'static [u8]) -> Input {
        Input::Event(Event {
            id: "event-1".into(),
            payload: Bytes::from_static(payload),
            origin: EventOrigin::Stored { source, enqueued_at: 1_795_764_600_000 },
        })
    }

    fn header<'r>(request: &'r HttpRequest, name: &str) -> &'r str {
        request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn a_request_on_a_route_reaches_the_component_untouched() {
        let original = http::Request::get("/hello?x=1").header("x-mine", "yes").body(Body::default()).unwrap();
        let request = request(Input::Http(original), "hello", &call());
        assert_eq!(request.uri(), "/hello?x=1");
        assert_eq!(header(&request, "x-mine"), "yes");
        assert!(request.headers().get("ce-type").is_none() && request.headers().get("traceparent").is_none());
    }

    #[test]
    fn a_topic_message_is_a_cloudevent_with_the_messages_id_subject_and_attributes() {
        let source = EventSource::Topic {
            topic: TopicName::new("orders").unwrap(),
            message_id: "m-1".into(),
            content_type: Some("text/plain".into()),
            subject: Some("new".into()),
            published_at: 1_795_764_600_000,
            attributes: vec![("Error_Code".into(), "500".into())],
        };
        let request = request(stored(source, b"hi"), "mailer", &call());
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(header(&request, "ce-specversion"), "1.0");
        assert_eq!(header(&request, "ce-id"), "m-1");
        assert_eq!(header(&request, "ce-source"), "updraft/topics/orders");
        assert_eq!(header(&request, "ce-type"), "dev.updraft.topic.message");
        assert_eq!(header(&request, "ce-subject"), "new");
        assert_eq!(header(&request, "ce-errorcode"), "500");
        assert_eq!(header(&request, "ce-time"), "2026-11-27T07:30:00.000Z");
        assert_eq!(header(&request, "content-type"), "text/plain");
        assert_eq!(request.body().as_whole().unwrap().as_ref(), b"hi");
        assert_eq!(header(&request, "traceparent"), "00-5bef4de7ad49b0e87f6ef6c87fc2e700-800000000000abcd-01");
        // The chain's lineage goes with it, for the calls the function makes.
        assert_eq!(header(&request, "tracestate"), format!("updraft={}", call().lineage));
    }

    #[test]
    fn a_schedule_tick_carries_its_expression_and_due_time() {
        let source = EventSource::Schedule { schedule: "rate(1 hour)".into(), tick_at: 1_795_764_600_000 };
        let request = request(stored(source, b""), "nightly", &call());
        assert_eq!(header(&request, "ce-source"), "updraft/schedules/nightly");
        assert_eq!(header(&request, "ce-type"), "dev.updraft.schedule.tick");
        let body: serde_json::Value = serde_json::from_slice(request.body().as_whole().unwrap()).unwrap();
        assert_eq!(body, json!({ "schedule": "rate(1 hour)", "time": "2026-11-27T07:30:00.000Z" }));
    }

    #[test]
    fn a_webhook_is_replayed_as_sent_with_cloudevents_headers_added() {
        let source = EventSource::Webhook {
            method: "PUT".into(),
            uri: "/hooks/repo?x=1".into(),
            route: "/hooks/{name}".into(),
            headers: vec![("x-github-event".into(), "push".into())],
        };
        let request = request(stored(source, b"{}"), "hook", &call());
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.uri(), "/hooks/repo?x=1");
        assert_eq!(header(&request, "x-github-event"), "push");
        assert_eq!(header(&request, "x-updraft-request-id"), "event-1");
        assert_eq!(header(&request, "ce-source"), "updraft/webhooks/hooks/{name}");
        assert_eq!(header(&request, "ce-type"), "dev.updraft.webhook.request");
    }

    #[test]
    fn a_direct_invocation_keeps_the_callers_content_type_and_request_id() {
        let input = Input::Event(Event {
            id: "req-9".into(),
            payload: Bytes::from_static(b"<x/>"),
            origin: EventOrigin::Direct { content_type: Some("application/xml".into()), client_context: None },
        });
        let request = request(input, "f", &call());
        assert_eq!(header(&request, "ce-type"), "dev.updraft.invoke");
        assert_eq!(header(&request, "content-type"), "application/xml");
        assert_eq!(header(&request, "x-updraft-request-id"), "req-9");
    }
}
