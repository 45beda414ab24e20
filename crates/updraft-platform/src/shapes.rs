//! The shapes events arrive in. A wasm function gets every event as an HTTP `POST /`
//! in CloudEvents binary mode (`ce-*` headers, the data as the body, `traceparent`);
//! a Lambda handler gets the JSON the analogous AWS service sends (an SNS record for a
//! topic, an EventBridge scheduled event for a schedule, Lambda's invocation record
//! for a destination, an API Gateway request for a webhook), so handlers written for
//! AWS run as they are. `docs/events.md` documents each.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{SecondsFormat, TimeZone as _, Utc};
use http::HeaderValue;
use serde_json::{Value, json};
use updraft_model::{EventInput, EventSource, Runtime};
use updraft_runtime_wasm::HttpRequest;
use updraft_store::AsyncEvent;

use crate::live::LiveFunction;
use crate::platform::{ACCOUNT_ID, REGION};

/// The request that delivers `event` to `function`.
pub(crate) fn event_input(event: &AsyncEvent, function: &LiveFunction) -> HttpRequest {
    let wasm = function.config.runtime == Runtime::Wasm;
    let payload = Bytes::from(event.payload.clone());
    let mut request = match &event.source {
        EventSource::Invoke => {
            event_request(&event.id, "updraft/async", "dev.updraft.invoke.async", json_type(), payload)
        }
        EventSource::Destination { condition } => {
            let kind = if condition == "Success" {
                "dev.updraft.invocation.success"
            } else {
                "dev.updraft.invocation.failure"
            };
            event_request(&event.id, "updraft/destinations", kind, json_type(), payload)
        }
        EventSource::Topic { topic, message_id, content_type, subject, published_at, attributes } => {
            if wasm {
                let content_type = content_type
                    .as_deref()
                    .and_then(|value| HeaderValue::from_str(value).ok())
                    .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
                let source = format!("updraft/topics/{topic}");
                let mut request =
                    event_request(message_id, &source, "dev.updraft.topic.message", content_type, payload);
                set(&mut request, "ce-time", &rfc3339(*published_at));
                if let Some(subject) = subject {
                    set(&mut request, "ce-subject", subject);
                }
                // CloudEvents extension attributes: lowercase letters and digits only.
                for (name, value) in attributes {
                    let name: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
                    if let Ok(name) =
                        http::HeaderName::from_bytes(format!("ce-{}", name.to_ascii_lowercase()).as_bytes())
                        && let Ok(value) = HeaderValue::from_str(value)
                    {
                        request.headers_mut().insert(name, value);
                    }
                }
                request
            } else {
                let record =
                    sns_event(event, topic.as_str(), message_id, subject.as_deref(), *published_at, attributes);
                let source = format!("updraft/topics/{topic}");
                event_request(message_id, &source, "dev.updraft.topic.message", json_type(), record)
            }
        }
        EventSource::Schedule { schedule, tick_at } => {
            let source = format!("updraft/schedules/{}", function.name);
            let body = if wasm {
                Bytes::from(json!({ "schedule": schedule, "time": rfc3339(*tick_at) }).to_string())
            } else {
                scheduled_event(event, function, *tick_at)
            };
            let mut request = event_request(&event.id, &source, "dev.updraft.schedule.tick", json_type(), body);
            set(&mut request, "ce-time", &rfc3339(*tick_at));
            request
        }
        EventSource::Email { .. } => {
            event_request(&event.id, "updraft/email", "dev.updraft.email.received", json_type(), payload)
        }
        EventSource::Webhook { method, uri, route, headers } => {
            webhook_request(event, method, uri, route, headers, wasm)
        }
    };
    let traceparent = format!("00-{}-{:016x}-01", event.trace_id, rand::random::<u64>() | 1);
    set(&mut request, "traceparent", &traceparent);
    request
}

/// A `POST /` in CloudEvents binary mode carrying `payload`, marked with [`EventInput`]
/// so that a Lambda function gets the payload itself as its event.
pub fn event_request(id: &str, source: &str, kind: &str, content_type: HeaderValue, payload: Bytes) -> HttpRequest {
    let mut request = http::Request::new(payload);
    *request.method_mut() = http::Method::POST;
    request.extensions_mut().insert(EventInput::default());
    let headers = request.headers_mut();
    headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    headers.insert(http::header::CONTENT_TYPE, content_type);
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    for (name, value) in [("ce-id", id), ("ce-source", source), ("ce-type", kind)] {
        set(&mut request, name, value);
    }
    request
}

/// The stored webhook request, replayed: a wasm function sees it as it was sent (plus
/// CloudEvents headers); a Lambda function gets it as an API Gateway request, the same
/// event an `http` trigger on that route would give it.
fn webhook_request(
    event: &AsyncEvent,
    method: &str,
    uri: &str,
    route: &str,
    headers: &[(String, String)],
    wasm: bool,
) -> HttpRequest {
    let mut request = http::Request::new(Bytes::from(event.payload.clone()));
    *request.method_mut() = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::POST);
    *request.uri_mut() = uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            request.headers_mut().append(name, value);
        }
    }
    set(&mut request, "x-updraft-route", route);
    set(&mut request, "x-updraft-request-id", &event.id);
    if wasm {
        set(&mut request, "ce-specversion", "1.0");
        set(&mut request, "ce-id", &event.id);
        set(&mut request, "ce-source", &format!("updraft/webhooks{route}"));
        set(&mut request, "ce-type", "dev.updraft.webhook.request");
        set(&mut request, "ce-time", &rfc3339(event.enqueued_at));
    }
    request
}

/// SNS's notification record, one per delivery, as Lambda receives it from a topic.
fn sns_event(
    event: &AsyncEvent,
    topic: &str,
    message_id: &str,
    subject: Option<&str>,
    published_at: i64,
    attributes: &[(String, String)],
) -> Bytes {
    let topic_arn = format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{topic}");
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
            "EventSubscriptionArn": format!("{topic_arn}:{}", event.function),
            "Sns": {
                "Type": "Notification",
                "MessageId": message_id,
                "TopicArn": topic_arn,
                "Subject": subject,
                "Message": message,
                "Timestamp": rfc3339(published_at),
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
fn scheduled_event(event: &AsyncEvent, function: &LiveFunction, tick_at: i64) -> Bytes {
    let time =
        Utc.timestamp_millis_opt(tick_at).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({
        "version": "0",
        "id": event.id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time,
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{}-schedule", function.name)],
        "detail": {},
    });
    Bytes::from(body.to_string())
}

/// How an asynchronous invocation ended, for its destination's record.
pub(crate) struct Outcome<'a> {
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: &'static str,
    /// The function's answer, or its error document.
    pub response: &'a [u8],
    pub status: u16,
    /// `Handled`/`Unhandled` for a failure.
    pub function_error: Option<&'a str>,
}

/// Lambda's invocation record: what an `on_success` or `on_failure` destination gets.
pub(crate) fn invocation_record(event: &AsyncEvent, outcome: &Outcome<'_>) -> Vec<u8> {
    let mut response_context = json!({ "statusCode": outcome.status, "executedVersion": "$LATEST" });
    if let Some(error) = outcome.function_error {
        response_context["functionError"] = json!(error);
    }
    let record = json!({
        "version": "1.0",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": event.id,
            "functionArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}:$LATEST", event.function),
            "condition": outcome.condition,
            "approximateInvokeCount": event.attempts + 1,
        },
        "requestPayload": json_or_text(&event.payload),
        "responseContext": response_context,
        "responsePayload": json_or_text(outcome.response),
    });
    record.to_string().into_bytes()
}

/// JSON as it is; anything else as a string (lossy for bytes that are not UTF-8).
fn json_or_text(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

pub(crate) fn rfc3339(millis: i64) -> String {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

fn set(request: &mut HttpRequest, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        request.headers_mut().insert(name, value);
    }
}
