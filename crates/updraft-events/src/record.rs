//! The record of an asynchronous invocation's outcome (Lambda's invocation record):
//! what an `on_success` or `on_failure` destination receives, the same for every
//! runtime; and the input that delivers a stored event. How each runtime shapes an
//! event is the runtime's own business (`updraft-runtime-wasm`'s CloudEvents,
//! `updraft-runtime-process`'s AWS events).

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use updraft_runtime::{Event, EventOrigin, Input};
use updraft_store::AsyncEvent;

use updraft_model::{ACCOUNT_ID, REGION};

/// The input that delivers the stored `event`.
pub(crate) fn event_input(event: &AsyncEvent) -> Input {
    Input::Event(Event {
        id: event.id.clone(),
        payload: event.payload.clone().into(),
        origin: EventOrigin::Stored { source: event.source.clone(), enqueued_at: event.enqueued_at },
    })
}

/// Why an attempt did not succeed.
pub(crate) struct Failure {
    /// The error in a line, as `last_error` keeps it.
    pub error: String,
    /// What went back: the function's error document or its non-2xx answer.
    pub document: Vec<u8>,
    pub status: u16,
    /// The error was the function's own report (Lambda's `Handled`), not a crash.
    pub handled: bool,
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
