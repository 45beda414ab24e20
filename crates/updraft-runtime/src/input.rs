//! What an invocation hands a function: an HTTP request on a route, or an event with
//! where it came from. The platform builds one without asking which runtime will run
//! it; each runtime turns an event into its own wire shape (CloudEvents for wasm
//! components, the analogous AWS service's JSON for Lambda handlers).

use bytes::Bytes;
use http::HeaderValue;
use updraft_model::{EventSource, FunctionName, Lineage, QueueName, TraceParent, TriggerKind};

pub use crate::body::HttpRequest;

/// An HTTP response with its body read whole (an event's answer is its body, with a
/// content type).
pub type HttpResponse = http::Response<Bytes>;

/// Who asks for an invocation, beside its input.
#[derive(Debug, Clone)]
pub struct InvokeContext {
    /// The id its record, its log lines and the function see.
    pub request_id: String,
    /// The trigger it is recorded under.
    pub trigger: TriggerKind,
    /// The caller's W3C trace id; a new one when `None`.
    pub trace_id: Option<String>,
    /// The span that caused it (the caller's, or the invocation that sent its event);
    /// `None` makes it a trace's root.
    pub parent_span_id: Option<String>,
    /// When the event behind it was accepted (ms since the epoch), for an invocation
    /// that waited in a queue: its trace shows the wait.
    pub queued_since: Option<i64>,
    /// The spans that sent the messages it handles (a queue batch), linked to its own.
    pub links: Vec<TraceParent>,
    /// How often each function ran in the chain before it (recursive loop detection).
    pub lineage: Lineage,
}

impl InvokeContext {
    /// A context for a caller with `trace` (`None`: a new trace).
    pub fn new(request_id: String, trigger: TriggerKind, trace: Option<TraceParent>) -> Self {
        let (trace_id, parent_span_id, lineage) = match trace {
            Some(trace) => (Some(trace.trace_id), Some(trace.span_id), trace.lineage),
            None => (None, None, Lineage::default()),
        };
        Self { request_id, trigger, trace_id, parent_span_id, queued_since: None, links: Vec::new(), lineage }
    }
}

/// A random W3C trace id: 32 lowercase hex digits, not all zero.
pub fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>() | 1)
}

/// The input of one invocation.
#[derive(Debug)]
pub enum Input {
    /// A request on an `http` route, answered as HTTP.
    Http(HttpRequest),
    /// An event: a payload and its origin.
    Event(Event),
}

impl Input {
    /// The input with an HTTP request's body read whole, for runtimes that hand a
    /// function its request in one piece.
    pub async fn read_whole(self) -> Result<Input, crate::BodyCut> {
        match self {
            Input::Http(request) => {
                let (parts, body) = request.into_parts();
                let body = body.read_whole().await?;
                Ok(Input::Http(http::Request::from_parts(parts, crate::Body::whole(body))))
            }
            event => Ok(event),
        }
    }
}

/// An event delivered to a function.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's id: the stored event's, a topic message's (shared by every
    /// subscriber's copy), or the invocation's for events made on the spot.
    pub id: String,
    /// The payload, as the caller or the event layer gave it.
    pub payload: Bytes,
    pub origin: EventOrigin,
}

/// Where an event came from, which decides the shape a function receives it in.
#[derive(Debug, Clone)]
pub enum EventOrigin {
    /// Invoked with the payload as the event: `/v1/functions/{name}/invoke` or Lambda's
    /// Invoke API.
    Direct {
        /// The caller's `Content-Type`.
        content_type: Option<String>,
        /// Lambda's client context: the JSON the caller sent base64-encoded in
        /// `X-Amz-Client-Context`, decoded.
        client_context: Option<String>,
    },
    /// An asynchronous event from the event queue.
    Stored {
        source: EventSource,
        /// When it was enqueued (ms since the epoch).
        enqueued_at: i64,
    },
    /// A batch of work-queue messages; the payload is the batch in SQS's event shape,
    /// the same for every runtime (the queue poller reads the answer back).
    QueueBatch { queue: QueueName },
    /// A workflow's Task state; the payload is the state's input.
    WorkflowTask { workflow: FunctionName },
}

/// The webhook request stored in `source`, rebuilt: method, path and query, headers
/// and body as they were sent, plus the route it matched (`x-updraft-route`) and the
/// event's id (`x-updraft-request-id`). `None` when `source` is not a webhook.
pub fn replay_webhook(event: &Event, source: &EventSource) -> Option<HttpRequest> {
    let EventSource::Webhook { method, uri, route, headers } = source else { return None };
    let mut request = http::Request::new(crate::Body::whole(event.payload.clone()));
    *request.method_mut() = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::POST);
    *request.uri_mut() = uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    let replayed = request.headers_mut();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            replayed.append(name, value);
        }
    }
    for (name, value) in [("x-updraft-route", route.as_str()), ("x-updraft-request-id", event.id.as_str())] {
        if let Ok(value) = HeaderValue::from_str(value) {
            replayed.insert(name, value);
        }
    }
    Some(request)
}
