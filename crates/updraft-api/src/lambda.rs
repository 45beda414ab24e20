//! The Lambda-compatible API: `Invoke` and `InvokeWithResponseStream`, as AWS serves them, so that
//! boto3, the AWS CLI and the SDKs work with `endpoint_url` pointed here. Requests are
//! signed with SigV4 using access keys Updraft issues (`updraft keys create`); errors
//! carry `X-Amzn-ErrorType` and each exception's own field names, which is how
//! botocore tells them apart (`lambda-compat.md` A2).

use std::str::FromStr as _;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use scratchstack_aws_signature::{
    GetSigningKeyRequest, GetSigningKeyResponse, KSecretKey, NO_ADDITIONAL_SIGNED_HEADERS, SignatureError,
    SignatureOptions, sigv4_validate_request,
};
use serde::Deserialize;
use serde_json::json;
use tower::BoxError;
use updraft_model::FunctionName;
use updraft_platform::{
    ACCOUNT_ID, Event, EventOrigin, Input, InvokeContext, InvokeError, InvokeFailure, Platform, REGION, TailWaiter,
    Throttle, TriggerKind,
};

use crate::AppState;
use crate::request_id::RequestId;

/// The service name SigV4 signatures are scoped to.
const SERVICE: &str = "lambda";
/// Lambda's limits on an Invoke request body: 6 MB sync, 1 MB async.
const SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// How much of the log `LogType: Tail` returns.
const LOG_TAIL: usize = 4096;

/// The Lambda API's routes, on their full paths: a nested router would see its paths
/// with the prefix cut off, and SigV4 signs the whole path.
pub(crate) fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    let router = router
        .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
        .route("/2021-11-15/functions/{name}/response-streaming-invocations", axum::routing::post(invoke_streaming));
    let router = crate::lambda_functions::routes(router);
    crate::lambda_aliases::routes(router)
}

/// An error in Lambda's wire shape.
#[derive(Debug)]
pub(crate) struct LambdaError {
    status: StatusCode,
    error_type: &'static str,
    body: serde_json::Value,
    retry_after: Option<u64>,
}

impl LambdaError {
    pub(crate) fn user(status: StatusCode, error_type: &'static str, message_key: &str, message: String) -> Self {
        let mut body = json!({ "Type": "User" });
        body[message_key] = message.into();
        LambdaError { status, error_type, body, retry_after: None }
    }

    /// Lambda's answer to an invocation stopped as a recursive loop: refused, not failed.
    pub(crate) fn recursive(error: &InvokeError) -> Self {
        Self::user(StatusCode::BAD_REQUEST, "RecursiveInvocationException", "Message", error.to_string())
    }

    pub(crate) fn not_found(name: &str, qualifier: Option<&str>) -> Self {
        let arn = function_arn(name, qualifier);
        Self::user(StatusCode::NOT_FOUND, "ResourceNotFoundException", "Message", format!("Function not found: {arn}"))
    }

    pub(crate) fn invalid_parameter(message: String) -> Self {
        Self::user(StatusCode::BAD_REQUEST, "InvalidParameterValueException", "message", message)
    }

    pub(crate) fn invalid_content(message: String) -> Self {
        Self::user(StatusCode::BAD_REQUEST, "InvalidRequestContentException", "message", message)
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::too_large_for(limit, "InvokeFunction")
    }

    pub(crate) fn too_large_for(limit: usize, operation: &str) -> Self {
        let message = format!("Request must be smaller than {limit} bytes for the {operation} operation");
        Self::user(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException", "message", message)
    }

    pub(crate) fn throttled(throttle: Throttle) -> Self {
        let reason = match throttle {
            Throttle::Function { .. } | Throttle::Disabled => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account { .. } | Throttle::Instances { .. } => "ConcurrentInvocationLimitExceeded",
        };
        let body = json!({ "Reason": reason, "Type": "User", "message": "Rate Exceeded." });
        LambdaError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error_type: "TooManyRequestsException",
            body,
            retry_after: Some(1),
        }
    }

    pub(crate) fn service(message: String) -> Self {
        let body = json!({ "Type": "Service", "Message": message });
        LambdaError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "ServiceException",
            body,
            retry_after: None,
        }
    }

    /// The resource exists already, or is someone else's (409).
    pub(crate) fn conflict(message: String) -> Self {
        Self::user(StatusCode::CONFLICT, "ResourceConflictException", "message", message)
    }

    /// The `RevisionId` given is not the resource's (412).
    pub(crate) fn precondition(message: String) -> Self {
        Self::user(StatusCode::PRECONDITION_FAILED, "PreconditionFailedException", "message", message)
    }

    /// A SigV4 failure, in the shape AWS's front door gives it (`message` only).
    fn signature(error: &SignatureError) -> Self {
        use scratchstack_aws_signature::errors::ServiceError as _;
        let error_type = match error {
            SignatureError::InvalidClientTokenId(_) => "UnrecognizedClientException",
            SignatureError::SignatureDoesNotMatch(_) => "InvalidSignatureException",
            SignatureError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            SignatureError::IncompleteSignature(_) => "IncompleteSignatureException",
            SignatureError::ExpiredToken(_) => "ExpiredTokenException",
            _ => "InvalidSignatureException",
        };
        let message = match error {
            SignatureError::InvalidClientTokenId(_) => {
                "The security token included in the request is invalid.".to_owned()
            }
            other => other.to_string(),
        };
        LambdaError { status: error.http_status(), error_type, body: json!({ "message": message }), retry_after: None }
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.error_type));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// `POST /2015-03-31/functions/{FunctionName}/invocations`
async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    request: Request,
) -> Response {
    let request_id = request_id(&request);
    let result = invoke_checked(&state, &name, query, &request_id, request).await;
    answer(&request_id, result)
}

/// What an Invoke request asks for, its signature and body checked.
struct InvokeRequest {
    function: Arc<updraft_platform::LiveFunction>,
    name: String,
    qualifier: Option<String>,
    invocation_type: String,
    client_context: Option<String>,
    tail: bool,
    payload: Bytes,
    /// What `X-Amz-Executed-Version` says.
    executed_version: String,
    caller: Option<updraft_model::TraceParent>,
}

async fn invoke_request(
    state: &AppState,
    name: &str,
    query: InvokeQuery,
    request: Request,
) -> Result<InvokeRequest, LambdaError> {
    let (parts, body) = signed(&state.platform, request, SYNC_PAYLOAD, "InvokeFunction").await?;
    let headers = &parts.headers;

    let (name, path_qualifier) = updraft_platform::invoke_api::parse_function_name(name);
    let qualifier = query.qualifier.as_deref().or(path_qualifier);
    let Ok(function_name) = FunctionName::new(name) else {
        return Err(LambdaError::not_found(name, qualifier));
    };
    let function = state
        .platform
        .qualified_function(&function_name, qualifier)
        .await
        .map_err(|error| LambdaError::service(error.to_string()))?
        .ok_or_else(|| LambdaError::not_found(name, qualifier))?;

    let invocation_type = header_str(headers, "x-amz-invocation-type").unwrap_or("RequestResponse").to_owned();
    let client_context = match header_str(headers, "x-amz-client-context") {
        Some(encoded) => Some(decode_client_context(encoded)?),
        None => None,
    };
    let tail = match header_str(headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(LambdaError::invalid_parameter(format!("LogType must be None or Tail, not {other:?}")));
        }
    };
    let payload = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return Err(LambdaError::invalid_content(format!(
            "Could not parse request body into json: Could not parse payload into json: {error}"
        )));
    }
    let executed_version = match qualifier {
        Some(version) if version != "$LATEST" => function.version.to_string(),
        _ => "$LATEST".to_owned(),
    };
    Ok(InvokeRequest {
        function,
        name: name.to_owned(),
        qualifier: qualifier.map(str::to_owned),
        invocation_type,
        client_context,
        tail,
        payload,
        executed_version,
        caller: crate::gateway::trace_parent(headers),
    })
}

async fn invoke_checked(
    state: &AppState,
    name: &str,
    query: InvokeQuery,
    request_id: &str,
    request: Request,
) -> Result<Response, LambdaError> {
    let InvokeRequest {
        function,
        name,
        qualifier,
        invocation_type,
        client_context,
        tail,
        payload,
        executed_version,
        caller,
    } = invoke_request(state, name, query, request).await?;
    let (name, qualifier) = (name.as_str(), qualifier.as_deref());

    match invocation_type.as_str() {
        "DryRun" => Ok(StatusCode::NO_CONTENT.into_response()),
        "Event" => {
            if payload.len() > crate::ASYNC_PAYLOAD {
                return Err(LambdaError::too_large(crate::ASYNC_PAYLOAD));
            }
            // Stored durably before the 202, then run at least once (with retries).
            let id = state
                .platform
                .events()
                // The version or alias asked for, resolved when the event runs (a weighted
                // alias picks then), as Lambda runs an event with a qualifier.
                .invoke_async(&function.name, qualifier.filter(|q| *q != "$LATEST").map(str::to_owned), payload, caller)
                .await
                .map_err(|error| LambdaError::service(error.to_string()))?;
            tracing::debug!(%id, function = %function.name, "event invocation queued");
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "RequestResponse" => {
            let context = InvokeContext::new(request_id.to_owned(), TriggerKind::Direct, caller);
            let event = Event {
                id: context.request_id.clone(),
                payload,
                origin: EventOrigin::Direct { content_type: None, client_context },
            };
            let (result, log) = state.platform.invoke_event(&function, event, context, tail).await;
            let mut response = match result {
                Ok(invocation) => {
                    let (parts, body) = invocation.response.into_parts();
                    let mut response = (StatusCode::OK, body).into_response();
                    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
                        response.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
                    }
                    response
                }
                Err(InvokeFailure::Function { error: error @ InvokeError::RecursiveLoop { .. }, .. }) => {
                    return Err(LambdaError::recursive(&error));
                }
                Err(InvokeFailure::Function { error, .. }) => function_error(&error, request_id)?,
                Err(InvokeFailure::Throttled { throttle, .. }) => return Err(LambdaError::throttled(throttle)),
                Err(InvokeFailure::NotFound { .. }) => return Err(LambdaError::not_found(name, qualifier)),
            };
            let headers = response.headers_mut();
            if let Ok(version) = HeaderValue::from_str(&executed_version) {
                headers.insert("x-amz-executed-version", version);
            }
            if let Some(log) = log.filter(|_| tail)
                && let Ok(value) = HeaderValue::from_str(&BASE64.encode(log_tail(&log)))
            {
                headers.insert("x-amz-log-result", value);
            }
            Ok(response)
        }
        other => Err(LambdaError::invalid_parameter(format!(
            "InvocationType must be RequestResponse, Event or DryRun, not {other:?}"
        ))),
    }
}

/// `POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations`:
/// Lambda's `InvokeWithResponseStream`. The function's answer goes out as it comes, one
/// `PayloadChunk` event per piece, then `InvokeComplete` (with `ErrorCode` and
/// `ErrorDetails` when it failed, even mid-stream).
async fn invoke_streaming(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    request: Request,
) -> Response {
    let request_id = request_id(&request);
    let result = invoke_streaming_checked(&state, &name, query, &request_id, request).await;
    answer(&request_id, result)
}

async fn invoke_streaming_checked(
    state: &AppState,
    name: &str,
    query: InvokeQuery,
    request_id: &str,
    request: Request,
) -> Result<Response, LambdaError> {
    let call = invoke_request(state, name, query, request).await?;
    match call.invocation_type.as_str() {
        "DryRun" => return Ok(StatusCode::NO_CONTENT.into_response()),
        "RequestResponse" => {}
        other => {
            return Err(LambdaError::invalid_parameter(format!(
                "InvocationType must be RequestResponse or DryRun for a streamed response, not {other:?}"
            )));
        }
    }
    let context = InvokeContext::new(request_id.to_owned(), TriggerKind::Direct, call.caller);
    // `LogType: Tail`: the log's end goes in `InvokeComplete`, once the stream has ended.
    let tail = call.tail.then(|| state.platform.log_tail(&context.request_id));
    let event = Event {
        id: context.request_id.clone(),
        payload: call.payload,
        origin: EventOrigin::Direct { content_type: None, client_context: call.client_context },
    };
    let (content_type, frames) = match state.platform.invoke(&call.function, Input::Event(event), context).await {
        Ok(invocation) => {
            let (parts, body) = invocation.response.into_parts();
            let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
            (content_type, stream_frames(body, tail).boxed())
        }
        Err(InvokeFailure::Function { error: error @ InvokeError::RecursiveLoop { .. }, .. }) => {
            return Err(LambdaError::recursive(&error));
        }
        Err(InvokeFailure::Function { error: InvokeError::Internal { message }, .. }) => {
            return Err(LambdaError::service(message));
        }
        // It failed before it answered: the stream holds only how it ended.
        Err(InvokeFailure::Function { error, .. }) => {
            let details = match &error {
                InvokeError::Function { document, .. } => String::from_utf8_lossy(document).into_owned(),
                other => other.to_string(),
            };
            let log = tail.and_then(TailWaiter::take);
            let complete = invoke_complete(Some((error.error_type(), &details)), log.as_deref());
            (None, futures::stream::once(async move { complete }).boxed())
        }
        Err(InvokeFailure::Throttled { throttle, .. }) => return Err(LambdaError::throttled(throttle)),
        Err(InvokeFailure::NotFound { .. }) => {
            return Err(LambdaError::not_found(&call.name, call.qualifier.as_deref()));
        }
    };
    let body = axum::body::Body::from_stream(frames.map(Ok::<Bytes, std::convert::Infallible>));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    // What botocore reads as ResponseStreamContentType: the function's own.
    let content_type = content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(version) = HeaderValue::from_str(&call.executed_version) {
        headers.insert("x-amz-executed-version", version);
    }
    Ok(response)
}

/// The event stream of a function's answer: a `PayloadChunk` per piece as it comes,
/// then `InvokeComplete`, which names the error of an answer cut off mid-stream and,
/// with `tail`, carries the end of the invocation's log.
fn stream_frames(body: updraft_platform::Body, tail: Option<TailWaiter>) -> impl futures::Stream<Item = Bytes> + Send {
    use http_body_util::BodyExt as _;
    futures::stream::unfold(Some((body, tail)), |state| async move {
        let (mut body, tail) = state?;
        loop {
            let error = match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => {
                        let chunk = crate::eventstream::event("PayloadChunk", "application/octet-stream", &data);
                        return Some((chunk, Some((body, tail))));
                    }
                    _ => continue,
                },
                Some(Err(cut)) => Some(format!("the function's response stopped before it was complete: {cut}")),
                None => None,
            };
            // The log is complete once the invocation's record is made, as the stream ends.
            let log = match tail {
                Some(tail) => tail.wait().await,
                None => None,
            };
            let error = error.as_deref().map(|details| ("Runtime.StreamError", details));
            return Some((invoke_complete(error, log.as_deref()), None));
        }
    })
}

/// The `InvokeComplete` event: the error that ended the invocation if any, and the end
/// of its log (`LogResult`, base64) for `LogType: Tail`.
fn invoke_complete(error: Option<(&str, &str)>, log: Option<&str>) -> Bytes {
    let mut document = match error {
        Some((code, details)) => json!({ "ErrorCode": code, "ErrorDetails": details }),
        None => json!({}),
    };
    if let Some(log) = log {
        document["LogResult"] = serde_json::Value::String(BASE64.encode(log_tail(log)));
    }
    crate::eventstream::event("InvokeComplete", "application/json", document.to_string().as_bytes())
}

/// The last `LOG_TAIL` bytes of a log, as `LogType: Tail` returns them.
fn log_tail(log: &str) -> &[u8] {
    let bytes = log.as_bytes();
    &bytes[bytes.len().saturating_sub(LOG_TAIL)..]
}

/// A failed invocation as Lambda answers it: `200` with `X-Amz-Function-Error`, and
/// the runtime's error document untouched (or the platform's, for a timeout or crash).
fn function_error(error: &InvokeError, request_id: &str) -> Result<Response, LambdaError> {
    let document = match error {
        InvokeError::Function { document, .. } => document.clone(),
        InvokeError::Timeout { timeout } => json!({
            "errorType": "Sandbox.Timedout",
            "errorMessage": format!("RequestId: {request_id} Error: Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        })
        .to_string()
        .into_bytes(),
        // An init failure carries the runtime's own report after its type.
        InvokeError::Init { message } => match message.split_once(": ") {
            Some((_, report)) if serde_json::from_str::<serde_json::Value>(report).is_ok() => report.as_bytes().to_vec(),
            _ => json!({ "errorType": error.error_type(), "errorMessage": format!("RequestId: {request_id} Error: {message}") })
                .to_string()
                .into_bytes(),
        },
        InvokeError::Internal { message } => return Err(LambdaError::service(message.clone())),
        other => json!({
            "errorType": other.error_type(),
            "errorMessage": format!("RequestId: {request_id} Error: {other}"),
        })
        .to_string()
        .into_bytes(),
    };
    let mut response = (StatusCode::OK, document).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
    Ok(response)
}

/// A request's head and body once its signature is checked: an unsigned request, or
/// one signed with a key this server never issued, is refused before its body is read;
/// a body over `limit` is refused as `operation`'s.
pub(crate) async fn signed(
    platform: &Arc<Platform>,
    request: Request,
    limit: usize,
    operation: &str,
) -> Result<(http::request::Parts, Bytes), LambdaError> {
    let (parts, body) = request.into_parts();
    precheck_signature(platform, &parts.headers)?;
    let body = crate::body::read_limited(&parts.headers, body, limit, "request body")
        .await
        .map_err(|_| LambdaError::too_large_for(limit, operation))?;
    authenticate(platform, parts, body).await
}

/// Answers with `result`, carrying the request's id as Lambda's answers do.
pub(crate) fn answer(request_id: &str, result: Result<Response, LambdaError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// The id the request-id layer gave `request`.
pub(crate) fn request_id(request: &Request) -> String {
    request.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default()
}

/// Refuses a request whose `Authorization` header is missing, is not SigV4, or names an
/// access key this server does not have. The signature itself needs the body and is
/// checked after it (see `authenticate`).
fn precheck_signature(platform: &Platform, headers: &HeaderMap) -> Result<(), LambdaError> {
    use updraft_platform::invoke_api::{CredentialError, credential_key_id};
    match credential_key_id(header_str(headers, "authorization")) {
        Err(CredentialError::Missing) => Err(LambdaError::signature(&SignatureError::MissingAuthenticationToken(
            "Missing Authentication Token".into(),
        ))),
        Err(CredentialError::NotSigV4) => Err(LambdaError::signature(&SignatureError::IncompleteSignature(
            "Authorization header requires a SigV4 Credential".into(),
        ))),
        Ok(key_id) if platform.access_key_secret(key_id).is_none() => {
            Err(LambdaError::signature(&SignatureError::InvalidClientTokenId(String::new())))
        }
        Ok(_) => Ok(()),
    }
}

/// Checks the request's SigV4 signature against the access key it names.
async fn authenticate(
    platform: &Arc<Platform>,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<(http::request::Parts, Bytes), LambdaError> {
    let platform = platform.clone();
    let mut keys = tower::service_fn(move |request: GetSigningKeyRequest| {
        let found = platform.access_key_secret(request.access_key());
        async move {
            let Some((secret, _principal)) = found else {
                return Err(Box::new(SignatureError::InvalidClientTokenId(String::new())) as BoxError);
            };
            let secret = KSecretKey::from_str(&secret).map_err(|e| Box::new(e) as BoxError)?;
            let signing_key = secret.to_ksigning(request.request_date(), request.region(), request.service());
            GetSigningKeyResponse::builder().signing_key(signing_key).build().map_err(|e| Box::new(e) as BoxError)
        }
    });
    // AWS signs a non-S3 path encoded twice (botocore quotes the already-quoted path:
    // `arn%3Aaws` is signed as `arn%253Aaws`); the verifier encodes what it is given
    // once, so it is given the path with its escapes escaped.
    let original_uri = parts.uri.clone();
    let mut parts = parts;
    if original_uri.path().contains('%') {
        let path_and_query = original_uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        let escaped = match query {
            Some(query) => format!("{}?{query}", path.replace('%', "%25")),
            None => path.replace('%', "%25"),
        };
        parts.uri =
            escaped.parse().map_err(|_| LambdaError::invalid_parameter("the request path is not valid".into()))?;
    }
    let request = http::Request::from_parts(parts, body);
    match sigv4_validate_request(
        request,
        REGION,
        SERVICE,
        &mut keys,
        chrono::Utc::now(),
        &NO_ADDITIONAL_SIGNED_HEADERS,
        SignatureOptions::default(),
    )
    .await
    {
        Ok((mut parts, body, _auth)) => {
            parts.uri = original_uri;
            Ok((parts, body))
        }
        Err(error) => match error.downcast_ref::<SignatureError>() {
            Some(signature) => Err(LambdaError::signature(signature)),
            None => Err(LambdaError::service(error.to_string())),
        },
    }
}

pub(crate) fn function_arn(name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(qualifier) => format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}:{qualifier}"),
        None => format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"),
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The client context, or Lambda's error for it.
fn decode_client_context(encoded: &str) -> Result<String, LambdaError> {
    use updraft_platform::invoke_api::ClientContextError;
    updraft_platform::invoke_api::decode_client_context(encoded).map_err(|error| match error {
        ClientContextError::TooLong => LambdaError::invalid_parameter(error.to_string()),
        ClientContextError::Invalid => LambdaError::invalid_content(error.to_string()),
    })
}
