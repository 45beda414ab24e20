//! The Lambda Runtime API (2018-06-01) served to one instance.
//!
//! Each instance gets its own server on its own listener (opened inside the instance's
//! network namespace), so a request id is the only thing a runtime can get wrong, and
//! one instance can never see another's events. The runtime long-polls `next`; the
//! host hands it one event at a time and waits for `response` or `error`. Wire details
//! follow the reference emulator and the official clients (`lambda-compat.md` A1).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// The path prefix of every Runtime API route.
const PREFIX: &str = "/2018-06-01/runtime/";

/// One event handed to the runtime.
#[derive(Debug)]
pub struct Event {
    pub request_id: Arc<str>,
    pub deadline_ms: i64,
    pub function_arn: Arc<str>,
    /// The X-Ray form of the invocation's trace (`Root=1-…;Parent=…;Sampled=1`).
    pub trace_header: String,
    pub client_context: Option<String>,
    pub payload: Bytes,
}

/// What the runtime answered for one event.
#[derive(Debug)]
pub enum Reply {
    Response {
        body: Bytes,
        content_type: Option<HeaderValue>,
    },
    Error {
        error_type: String,
        body: Bytes,
    },
    /// The runtime tried to answer with more than the response limit.
    TooLarge {
        limit: usize,
    },
    /// The runtime answers in Lambda's streaming response mode: the body passes on as
    /// it arrives, and `ended` says how it ended (the body is cut unless it completed).
    Streaming {
        content_type: Option<HeaderValue>,
        body: updraft_runtime::Body,
        ended: oneshot::Receiver<StreamEnd>,
    },
}

/// How a streamed response ended.
#[derive(Debug)]
pub enum StreamEnd {
    Complete,
    /// The runtime reported an error in the stream's trailers.
    Failed {
        error_type: String,
        body: Bytes,
    },
    /// The stream broke off or grew past the streamed-response limit.
    Cut {
        message: String,
    },
}

/// The most a streamed response may carry (Lambda's default quota for streaming).
pub const MAX_STREAMED_RESPONSE: usize = 20 * 1024 * 1024;

/// What the host learns of the runtime's start.
#[derive(Debug)]
pub enum Started {
    /// The runtime asked for its first event: initialisation is done.
    Ready,
    /// The runtime reported that it could not initialise.
    InitError { error_type: String, body: Bytes },
}

/// The host's handle on one instance's Runtime API.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    events: mpsc::Sender<(Event, oneshot::Sender<Reply>)>,
    started: Option<oneshot::Receiver<Started>>,
    assignment: Option<oneshot::Sender<Bytes>>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves the Runtime API on `listener` until the handle is dropped. Requests and
    /// responses are limited to `max_payload` bytes.
    pub fn serve(listener: TcpListener, max_payload: usize) -> RuntimeApi {
        let (events_tx, events_rx) = mpsc::channel(1);
        let (started_tx, started_rx) = oneshot::channel();
        let (assignment_tx, assignment_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            assignment: tokio::sync::Mutex::new(Some(assignment_rx)),
            awaiting_assignment: tokio::sync::watch::Sender::new(false),
            state: Mutex::new(State { started: Some(started_tx), current: None }),
            max_payload: max_payload.into(),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        RuntimeApi { shared, events: events_tx, started: Some(started_rx), assignment: Some(assignment_tx), server }
    }

    /// Waits until a pre-started runtime asks for its function (its interpreter and
    /// bootstrap are then fully loaded). Pending forever if it never does.
    pub async fn awaiting_assignment(&self) {
        let mut waiting = self.shared.awaiting_assignment.subscribe();
        if waiting.wait_for(|asked| *asked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Changes the payload limit (a pre-started runtime learns its function's late).
    pub fn set_max_payload(&self, limit: usize) {
        self.shared.max_payload.store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands a pre-started runtime its function: the JSON document (`{"env": {...}}`)
    /// its `GET /runtime/updraft/assignment` has been waiting for. Once only.
    pub fn assign(&mut self, document: Bytes) -> bool {
        self.assignment.take().is_some_and(|sender| sender.send(document).is_ok())
    }

    /// Waits until the runtime asks for its first event or reports an init error.
    /// `None` means the server stopped first (the process is gone).
    pub async fn started(&mut self) -> Option<Started> {
        self.started.take()?.await.ok()
    }

    /// Hands an event to the runtime; the receiver gets its answer.
    pub async fn send(&self, event: Event) -> Option<oneshot::Receiver<Reply>> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.events.send((event, reply_tx)).await.ok()?;
        Some(reply_rx)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    /// A pre-started runtime's function, once the host names it (Updraft's own route,
    /// not part of Lambda's API).
    assignment: tokio::sync::Mutex<Option<oneshot::Receiver<Bytes>>>,
    /// Set when a pre-started runtime asks for its function: it is fully started.
    awaiting_assignment: tokio::sync::watch::Sender<bool>,
    /// Events from the host; `next` holds the lock while it waits for one.
    events: tokio::sync::Mutex<mpsc::Receiver<(Event, oneshot::Sender<Reply>)>>,
    state: Mutex<State>,
    max_payload: std::sync::atomic::AtomicUsize,
}

struct State {
    /// Present until initialisation ends, one way or the other.
    started: Option<oneshot::Sender<Started>>,
    /// The event the runtime is working on.
    current: Option<(Arc<str>, oneshot::Sender<Reply>)>,
}

impl Shared {
    fn max_payload(&self) -> usize {
        self.max_payload.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "runtime API accept failed");
                continue;
            }
        };
        // Without TCP_NODELAY, the clients' small writes wait on delayed ACKs
        // (~40 ms per invocation).
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            // Title-case header names, as Lambda's own (Go) server writes them: some
            // hand-written runtimes look headers up case-sensitively.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

async fn route(shared: &Arc<Shared>, request: Request<Incoming>) -> Answer {
    let Some(path) = request.uri().path().strip_prefix(PREFIX).map(str::to_owned) else {
        return not_found();
    };
    let segments: Vec<&str> = path.split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(shared).await,
        (&Method::POST, ["invocation", id, "response"]) => {
            let id = (*id).to_owned();
            respond(shared, &id, request, false).await
        }
        (&Method::POST, ["invocation", id, "error"]) => {
            let id = (*id).to_owned();
            respond(shared, &id, request, true).await
        }
        (&Method::POST, ["init", "error"]) => init_error(shared, request).await,
        (&Method::GET, ["updraft", "assignment"]) => assignment(shared).await,
        _ => not_found(),
    }
}

async fn next(shared: &Arc<Shared>) -> Answer {
    {
        let mut state = shared.state.lock().unwrap();
        if let Some((id, _)) = &state.current {
            let message = format!("the runtime asked for the next event before answering {id}");
            return error(StatusCode::FORBIDDEN, "InvalidStateTransition", &message);
        }
        if let Some(started) = state.started.take() {
            let _ = started.send(Started::Ready);
        }
    }
    // One `next` at a time; a second concurrent one waits behind the first.
    let mut events = shared.events.lock().await;
    let Some((event, reply)) = events.recv().await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "the instance is shutting down");
    };
    drop(events);
    shared.state.lock().unwrap().current = Some((event.request_id.clone(), reply));

    let mut response = Response::new(Full::new(event.payload));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    insert(headers, "lambda-runtime-aws-request-id", &event.request_id);
    insert(headers, "lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    insert(headers, "lambda-runtime-invoked-function-arn", &event.function_arn);
    insert(headers, "lambda-runtime-trace-id", &event.trace_header);
    if let Some(context) = &event.client_context {
        insert(headers, "lambda-runtime-client-context", context);
    }
    response
}

async fn respond(shared: &Arc<Shared>, id: &str, request: Request<Incoming>, is_error: bool) -> Answer {
    if !is_error
        && let Some(mode) = request.headers().get("lambda-runtime-function-response-mode")
        && mode != "streaming"
    {
        let message = "Lambda-Runtime-Function-Response-Mode must be `streaming` when present";
        return error(StatusCode::BAD_REQUEST, "InvalidFunctionResponseMode", message);
    }
    if !is_error && request.headers().contains_key("lambda-runtime-function-response-mode") {
        return stream(shared, id, request).await;
    }
    let headers = request.headers().clone();
    // The body is read whatever the answer, so that the connection stays usable.
    let body = read_body(request, shared.max_payload()).await;
    let mut state = shared.state.lock().unwrap();
    match &state.current {
        None => return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "no invocation is in progress"),
        Some((current, _)) if &**current != id => {
            return error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID");
        }
        Some(_) => {}
    }
    let answer = match body {
        Ok(body) if is_error => Reply::Error { error_type: error_type(&headers), body },
        Ok(body) => Reply::Response { body, content_type: headers.get(header::CONTENT_TYPE).cloned() },
        // The invocation fails as Lambda's does: the caller learns the response was
        // too large; the runtime gets a 413.
        Err(answer) if answer.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            if let Some((_, reply)) = state.current.take() {
                let _ = reply.send(Reply::TooLarge { limit: shared.max_payload() });
            }
            return answer;
        }
        // A body cut short: the runtime may send it again.
        Err(answer) => return answer,
    };
    if let Some((_, reply)) = state.current.take() {
        let _ = reply.send(answer);
    }
    accepted()
}

/// A response in streaming mode: handed to the invocation at once, its body passed on
/// piece by piece at the pace the caller reads, its end (or the error in its trailers)
/// reported once it is all read.
async fn stream(shared: &Arc<Shared>, id: &str, request: Request<Incoming>) -> Answer {
    let reply = {
        let mut state = shared.state.lock().unwrap();
        match &state.current {
            None => return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "no invocation is in progress"),
            Some((current, _)) if &**current != id => {
                return error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID");
            }
            Some(_) => state.current.take().map(|(_, reply)| reply),
        }
    };
    let (sender, body) = updraft_runtime::Body::channel();
    let (end, ended) = oneshot::channel();
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    if let Some(reply) = reply {
        let _ = reply.send(Reply::Streaming { content_type, body, ended });
    }
    let mut incoming = request.into_body();
    // Gone when the caller stops reading: the rest is read and dropped, so that the
    // runtime finishes its request.
    let mut reader = Some(sender);
    let mut sent = 0usize;
    let mut failure = None;
    let outcome = loop {
        match incoming.frame().await {
            None => break None,
            Some(Err(broken)) => break Some(format!("the runtime's response stream broke off: {broken}")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    sent = sent.saturating_add(data.len());
                    if sent > MAX_STREAMED_RESPONSE {
                        break Some(format!("the response is larger than the limit of {MAX_STREAMED_RESPONSE} bytes"));
                    }
                    if let Some(sender) = &reader
                        && sender.send(data).await.is_err()
                    {
                        reader = None;
                    }
                }
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref()
                        && let Some(kind) = trailers.get("lambda-runtime-function-error-type")
                    {
                        failure = Some(stream_error(kind, trailers.get("lambda-runtime-function-error-body")));
                    }
                }
            },
        }
    };
    let (answer, end_with) = match (outcome, failure) {
        (Some(message), _) => {
            let answer = error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message);
            (answer, StreamEnd::Cut { message })
        }
        (None, Some((error_type, body))) => (accepted(), StreamEnd::Failed { error_type, body }),
        (None, None) => {
            if let Some(sender) = reader {
                let _ = sender.finish().await;
            }
            (accepted(), StreamEnd::Complete)
        }
    };
    let _ = end.send(end_with);
    answer
}

/// The error a runtime reported in a stream's trailers: its type (normalised as
/// Lambda does) and its document, sent base64-encoded.
fn stream_error(kind: &HeaderValue, body: Option<&HeaderValue>) -> (String, Bytes) {
    use base64::Engine as _;
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-function-error-type", kind.clone());
    let document = body
        .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).ok())
        .unwrap_or_else(|| {
            let kind = kind.to_str().unwrap_or("Runtime.StreamError");
            serde_json::json!({ "errorType": kind, "errorMessage": "the function failed while it streamed its response" })
                .to_string()
                .into_bytes()
        });
    (error_type(&headers), Bytes::from(document))
}

async fn assignment(shared: &Arc<Shared>) -> Answer {
    let Some(receiver) = shared.assignment.lock().await.take() else {
        return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "the function was assigned already");
    };
    shared.awaiting_assignment.send_replace(true);
    match receiver.await {
        Ok(document) => json(StatusCode::OK, document),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "the instance is shutting down"),
    }
}

async fn init_error(shared: &Arc<Shared>, request: Request<Incoming>) -> Answer {
    let headers = request.headers().clone();
    let body = match read_body(request, shared.max_payload()).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let Some(started) = shared.state.lock().unwrap().started.take() else {
        return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "initialisation is already over");
    };
    let _ = started.send(Started::InitError { error_type: error_type(&headers), body });
    accepted()
}

/// Reads a body of at most `limit` bytes. A larger one is read to its end (up to a
/// bound) and dropped, so that the runtime, still sending, gets the 413 rather than a
/// reset connection.
async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, Answer> {
    let mut body = request.into_body();
    let mut kept = bytes::BytesMut::new();
    let mut seen: usize = 0;
    let drain_limit = limit.saturating_mul(4);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(error(StatusCode::BAD_REQUEST, "TruncatedHTTPRequest", "the request body was cut short"));
        };
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > drain_limit {
            break;
        }
    }
    if seen > limit {
        let message = format!("the payload is larger than the limit of {limit} bytes");
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message));
    }
    Ok(kept.freeze())
}

/// The error type a runtime reported, normalised as Lambda does: a well-formed
/// `Runtime.*` or `Function.*` type is kept, any other `Function…` type becomes
/// `Function.Unknown`, anything else `Runtime.Unknown`. A missing header is the
/// handler's own failure, `Unhandled`.
fn error_type(headers: &HeaderMap) -> String {
    let Some(value) = headers.get("lambda-runtime-function-error-type") else {
        return "Unhandled".to_owned();
    };
    let value = value.to_str().unwrap_or_default();
    normalise_error_type(value)
}

pub(crate) fn normalise_error_type(value: &str) -> String {
    let well_formed = |rest: &str| {
        let mut chars = rest.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphabetic())
    };
    if let Some(rest) = value.strip_prefix("Runtime.").or_else(|| value.strip_prefix("Function."))
        && well_formed(rest)
    {
        return value.to_owned();
    }
    if value == "Unhandled" || value == "Handled" {
        return value.to_owned();
    }
    if value.starts_with("Function") { "Function.Unknown".to_owned() } else { "Runtime.Unknown".to_owned() }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn accepted() -> Answer {
    json(StatusCode::ACCEPTED, br#"{"status":"OK"}"#.as_slice().into())
}

fn not_found() -> Answer {
    error(StatusCode::NOT_FOUND, "NotFound", "no such Runtime API route")
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Answer {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    json(status, body.to_string().into())
}

fn json(status: StatusCode, body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_normalised_like_lambda() {
        assert_eq!(normalise_error_type("Runtime.HandlerNotFound"), "Runtime.HandlerNotFound");
        assert_eq!(normalise_error_type("Function.MyError"), "Function.MyError");
        assert_eq!(normalise_error_type("Function.bad-type"), "Function.Unknown");
        assert_eq!(normalise_error_type("FunctionThing"), "Function.Unknown");
        assert_eq!(normalise_error_type("ValueError"), "Runtime.Unknown");
        assert_eq!(normalise_error_type("Runtime."), "Runtime.Unknown");
        assert_eq!(normalise_error_type("Unhandled"), "Unhandled");
    }
}
