//! The gateway: a request that is not for `/v1` or `/healthz` goes to the function
//! whose HTTP trigger matches it. The route table is in memory; nothing here waits on
//! the database. In a cluster, a function's requests run on its home node: this node
//! checks the caller's key, streams the request there as its body arrives (keeping a
//! copy, so that a home that is unreachable or overloaded leaves the request to run
//! here) and streams the home's answer back.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use updraft_model::{HttpAuth, TraceParent, WebhookTrigger, span_id_of};
use updraft_platform::{
    Home, Input, Invocation, InvokeContext, InvokeError, InvokeFailure, LiveFunction, RouteMatch, TriggerKind,
    WebhookRequest, new_trace_id,
};

use crate::request_id::{Forwarded, RequestId};
use crate::{ApiError, AppState};

/// Headers that describe one hop, never forwarded either way.
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

struct Routed {
    function: Arc<LiveFunction>,
    /// The alias whose version serves the route, resolved where the request runs.
    alias: Option<updraft_model::AliasName>,
    payload_format: updraft_model::PayloadFormat,
    /// Set for a webhook route: the request is stored and answered `202`.
    webhook: Option<Arc<WebhookTrigger>>,
    auth: HttpAuth,
    route: String,
    params: Vec<(String, String)>,
}

pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default();
    let forwarded = request.extensions().get::<Forwarded>().is_some();
    match serve(&state, request, &request_id, forwarded).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(state: &AppState, request: Request, request_id: &str, forwarded: bool) -> Result<Response, ApiError> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let routed = state.platform.route(&method, &path, |matched| match matched {
        RouteMatch::Found { target, auth, route, params, .. } => Ok(Routed {
            function: target.function.clone(),
            alias: target.alias.clone(),
            payload_format: target.payload_format,
            webhook: target.webhook.clone(),
            auth,
            route: route.to_string(),
            params,
        }),
        RouteMatch::MethodNotAllowed { allowed } => {
            let mut error = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}; allowed: {}", allowed.join(", ")),
            );
            error.allow = Some(allowed.join(", "));
            Err(error)
        }
        RouteMatch::NotFound => Err(ApiError::not_found(
            "route_not_found",
            format!("no function is routed at {path}; `updraft describe NAME` lists a function's routes"),
        )),
    })?;

    let (mut parts, body) = request.into_parts();
    // A forwarding node checked the caller's key before it sent the request here.
    if routed.auth == HttpAuth::Key && !forwarded {
        crate::auth::authenticate(state, &parts.headers)?;
        // The key is the caller's credential for Updraft, not for the function.
        parts.headers.remove(http::header::AUTHORIZATION);
    }

    let limit = match routed.webhook {
        Some(_) => crate::ASYNC_PAYLOAD,
        None => state.platform.limits().max_sync_payload as usize,
    };
    for hop in HOP_BY_HOP {
        parts.headers.remove(hop);
    }
    let home = match (&routed.webhook, forwarded) {
        (None, false) => state.platform.home(&routed.function.name),
        _ => Home::Here,
    };
    // Refused before its body is read: the sending node still has all of it.
    if forwarded && routed.webhook.is_none() && state.platform.overloaded() {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_overloaded",
            "this node runs as many invocations as it may have instances; the sending node runs it",
        )
        .into_response();
        response.headers_mut().insert(OVERLOADED_HEADER, HeaderValue::from_static("1"));
        return Ok(response);
    }
    let body = match home {
        // The body streams to the home as it arrives, and is kept: if the home cannot
        // take the request, it runs here.
        Home::Node { id, address } => {
            let (pieces, whole) = crate::body::read_passing_on(&parts.headers, body, limit, "request body")?;
            let forwarded = forward(state, &parts, reqwest::Body::wrap_stream(pieces), request_id, &address).await;
            let whole = whole.await.map_err(|join| ApiError::internal(&join))?;
            match forwarded {
                Forward::Answered(response) => return Ok(response),
                // A body cut off or too large is the client's error, not the home's;
                // else the home went away mid-request (it may have run it: at least
                // once, as when a node dies) and the request runs here.
                Forward::Broken | Forward::Unreachable => {
                    if whole.is_ok() {
                        state.platform.suspect(&id);
                    }
                }
                Forward::Overloaded => {}
            }
            Arrived::Whole(whole?)
        }
        // A web server reads the body as it arrives; the others get it whole.
        Home::Here if routed.webhook.is_none() && routed.function.config.streams_requests() => {
            let (streamed, pump) = crate::body::stream_limited(&parts.headers, body, limit, "request body")?;
            Arrived::Streaming(streamed, pump)
        }
        Home::Here => Arrived::Whole(crate::body::read_limited(&parts.headers, body, limit, "request body").await?),
    };
    // The `x-updraft-` headers a function sees are Updraft's word (the route, its
    // parameters, the request id): a client's own are dropped, never passed on.
    let forged: Vec<HeaderName> =
        parts.headers.keys().filter(|name| name.as_str().starts_with("x-updraft-")).cloned().collect();
    for name in forged {
        parts.headers.remove(name);
    }
    let headers = &mut parts.headers;
    if !headers.contains_key(http::header::HOST) {
        let host = parts.uri.authority().map(|a| a.to_string()).unwrap_or_else(|| "localhost".to_owned());
        if let Ok(host) = HeaderValue::from_str(&host) {
            headers.insert(http::header::HOST, host);
        }
    }
    set_header(headers, crate::REQUEST_ID_HEADER, request_id);
    set_header(headers, "x-updraft-route", &routed.route);
    if routed.payload_format == updraft_model::PayloadFormat::RestApi {
        set_header(headers, "x-updraft-payload-format", routed.payload_format.as_str());
    }
    for (name, value) in &routed.params {
        set_header(headers, &format!("x-updraft-param-{}", name.to_ascii_lowercase()), value);
    }
    // The guest sees the origin-form path and query, like any HTTP server.
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
    parts.uri = path_and_query.parse().map_err(|_| ApiError::bad_request("invalid request URI"))?;
    parts.extensions = http::Extensions::new();
    let (body, pump) = match body {
        Arrived::Whole(body) => match &routed.webhook {
            Some(webhook) => return accept_webhook(state, &routed, webhook, parts, body).await,
            None => (updraft_platform::Body::whole(body), None),
        },
        Arrived::Streaming(body, pump) => (body, Some(pump)),
    };
    // The function sees its own invocation as the parent of whatever it calls, in both
    // the W3C form and AWS's (which API Gateway events carry).
    let caller = trace_parent(&parts.headers);
    let trace_id = caller.as_ref().map_or_else(new_trace_id, |caller| caller.trace_id.clone());
    let lineage = caller
        .as_ref()
        .map(|caller| caller.lineage.with(&routed.function.name))
        .unwrap_or_else(|| updraft_model::Lineage::default().with(&routed.function.name));
    let own = TraceParent { trace_id: trace_id.clone(), span_id: span_id_of(request_id), lineage };
    set_header(&mut parts.headers, "traceparent", &own.header());
    set_header(&mut parts.headers, "x-amzn-trace-id", &own.amzn_header());
    // The chain's lineage, which the wasm host puts on the guest's own calls; other
    // vendors' members of the caller's tracestate stay.
    let caller_state = parts.headers.get("tracestate").and_then(|value| value.to_str().ok()).map(str::to_owned);
    parts.headers.remove("tracestate");
    if let Some(state) = own.tracestate_over(caller_state.as_deref()) {
        set_header(&mut parts.headers, "tracestate", &state);
    }
    let guest_request = http::Request::from_parts(parts, body);
    let function = match &routed.alias {
        None => routed.function.clone(),
        // Drawn per request: a weighted alias sends each its share.
        Some(alias) => {
            let name = &routed.function.name;
            state
                .platform
                .qualified_function(name, Some(alias.as_str()))
                .await
                .map_err(|error| ApiError::internal(&error))?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "alias_not_found",
                        format!(
                            "this route is served by alias {alias} of {name}, which does not exist; create it \
                             (Lambda's CreateAlias) or remove `alias` from the trigger"
                        ),
                    )
                })?
        }
    };
    let context = InvokeContext {
        trace_id: Some(trace_id),
        ..InvokeContext::new(request_id.to_owned(), TriggerKind::Http, caller)
    };
    let invocation = match state.platform.invoke(&function, Input::Http(guest_request), context).await {
        Ok(invocation) => invocation,
        // The body the function was reading was cut off on the client's side (too
        // large, cut, too slow): the client's error, as when it is read whole.
        Err(InvokeFailure::Function { error: InvokeError::RequestCut, .. }) if let Some(pump) = pump => {
            pump.await.map_err(|join| ApiError::internal(&join))??;
            return Err(ApiError::bad_request("the request body was cut off before it arrived whole"));
        }
        Err(failure) => return Err(failure.into()),
    };
    let mut response = render(invocation);
    if let Ok(node) = HeaderValue::from_str(state.platform.node_id()) {
        response.headers_mut().insert(NODE_HEADER, node);
    }
    Ok(response)
}

/// A request's body as the gateway passes it on.
enum Arrived {
    /// Read whole: for wasm guests and Lambda handlers, webhooks, and a forward's copy.
    Whole(Bytes),
    /// Passed on as it arrives (`crate::body::stream_limited`), with how its reading
    /// ends.
    Streaming(updraft_platform::Body, tokio::task::JoinHandle<Result<(), ApiError>>),
}

/// Says which node ran a request.
const NODE_HEADER: &str = "x-updraft-node";

/// Marks a home's refusal of a forwarded request because it is overloaded.
const OVERLOADED_HEADER: &str = "x-updraft-overloaded";

/// How a forward to a home node went.
enum Forward {
    /// The home ran it (or answered for it): its answer, streamed.
    Answered(Response),
    /// The forward broke before an answer came: the home died mid-request, or the
    /// client's body was cut off or too large.
    Broken,
    /// The home could not be reached: run here.
    Unreachable,
    /// The home refused, overloaded: run here.
    Overloaded,
}

/// Sends the request to the home node at `address` with proof that this node sent it.
async fn forward(
    state: &AppState,
    parts: &http::request::Parts,
    body: reqwest::Body,
    request_id: &str,
    address: &str,
) -> Forward {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = state.forwarder.request(parts.method.clone(), format!("{address}{path}")).body(body);
    for (name, value) in &parts.headers {
        // The body streams (chunked): its length is the client's to state.
        let ours = [http::header::HOST, http::header::CONTENT_LENGTH];
        if !ours.contains(name) && name.as_str() != updraft_platform::FORWARDED_HEADER {
            request = request.header(name, value);
        }
    }
    request = request.header(updraft_platform::FORWARDED_HEADER, state.platform.forward_proof(request_id));
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Forward::Unreachable,
        Err(error) => {
            tracing::warn!(%address, %error, "forwarding a request to its home node broke off");
            return Forward::Broken;
        }
    };
    if response.status() == StatusCode::SERVICE_UNAVAILABLE && response.headers().contains_key(OVERLOADED_HEADER) {
        return Forward::Overloaded;
    }
    let mut answer = Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != http::header::CONTENT_LENGTH {
            answer = answer.header(name, value);
        }
    }
    let body = Body::from_stream(response.bytes_stream());
    Forward::Answered(answer.body(body).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()))
}

/// Stores a webhook request for asynchronous delivery and answers `202` with its id.
async fn accept_webhook(
    state: &AppState,
    routed: &Routed,
    webhook: &WebhookTrigger,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != crate::REQUEST_ID_HEADER)
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let request = WebhookRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts.uri.to_string(),
        route: routed.route.clone(),
        headers,
        body,
        trace: trace_parent(&parts.headers),
    };
    let id = state.platform.events().accept_webhook(&routed.function.name, webhook, request).await?;
    let view = crate::views::AsyncAcceptedView { id, function: routed.function.name.to_string() };
    Ok((StatusCode::ACCEPTED, axum::Json(view)).into_response())
}

/// The caller's trace context: a valid W3C `traceparent` (with the chain's lineage
/// from its `tracestate`), else AWS's `X-Amzn-Trace-Id` (which the AWS SDKs send from
/// inside a Lambda function, lineage and all). An invalid header is ignored: the
/// invocation starts a trace.
pub(crate) fn trace_parent(headers: &http::HeaderMap) -> Option<TraceParent> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let amzn = header("x-amzn-trace-id").and_then(TraceParent::parse_amzn);
    let Some(w3c) = header("traceparent").and_then(TraceParent::parse) else { return amzn };
    // A caller with both (an instrumented function using an AWS SDK) may carry the
    // lineage in either.
    let lineage = header("tracestate")
        .and_then(TraceParent::lineage_in_tracestate)
        .or_else(|| amzn.map(|amzn| amzn.lineage))
        .unwrap_or_default();
    Some(TraceParent { lineage, ..w3c })
}

fn set_header(headers: &mut http::HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

/// The function's response as the caller gets it.
pub(crate) fn render(invocation: Invocation) -> Response {
    let (mut parts, body) = invocation.response.into_parts();
    for hop in HOP_BY_HOP {
        parts.headers.remove(hop);
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if let Ok(version) = HeaderValue::from_str(&invocation.version.to_string()) {
        parts.headers.insert("x-updraft-version", version);
    }
    // A body still streaming from the function passes through chunk by chunk; if it
    // is cut off, so is the caller's response (never a clean end).
    Response::from_parts(parts, Body::new(body))
}
