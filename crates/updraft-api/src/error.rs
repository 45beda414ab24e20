//! `ApiError`: every failure as a status code, a stable machine-readable code and a
//! message that says what to do. 5xx answers carry no internals; those go to the
//! server's log.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use updraft_platform::{DeployError, FunctionError, InvokeError, InvokeFailure, PublishError, WebhookError};

use crate::views::{ErrorBody, ErrorView, ProblemView};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub problems: Vec<ProblemView>,
    pub allow: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u32>,
    /// For a throttle: which limit (`function`, `account` or `node`).
    pub limit: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
            allow: None,
            retry_after: None,
            limit: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(error: &dyn std::error::Error) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; see its log for details")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorView {
                code: self.code.to_owned(),
                message: self.message,
                problems: self.problems,
                limit: self.limit.map(str::to_owned),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Ok(code) = http::HeaderValue::from_str(self.code) {
            response.headers_mut().insert("x-updraft-error", code);
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(http::header::ALLOW, allow);
        }
        response
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        use DeployError as E;
        match &error {
            E::Manifest(manifest) => {
                let mut api = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest", error.to_string());
                api.problems = manifest
                    .problems
                    .iter()
                    .map(|p| ProblemView { field: p.field.clone(), message: p.message.clone() })
                    .collect();
                api
            }
            E::AppMismatch { .. } | E::UnexpectedArtifact { .. } | E::MissingArtifact { .. } => {
                ApiError::bad_request(error.to_string())
            }
            E::ArtifactNotUploaded { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "artifact_missing", error.to_string())
            }
            E::UnknownDestination { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_destination", error.to_string())
            }
            E::AliasVersionNotFound { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_version", error.to_string())
            }
            E::UnsupportedRuntime { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_runtime", error.to_string())
            }
            E::Component { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", error.to_string())
            }
            E::RouteConflict(_) => ApiError::new(StatusCode::CONFLICT, "route_conflict", error.to_string()),
            E::WorkflowOwnedByOtherApp { .. } => {
                ApiError::new(StatusCode::CONFLICT, "workflow_name_taken", error.to_string())
            }
            E::Reservation(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "concurrency_over_account_limit", error.to_string())
            }
            E::FunctionOwnedByOtherApp { .. } => {
                ApiError::new(StatusCode::CONFLICT, "function_name_taken", error.to_string())
            }
            E::Store(_) => ApiError::internal(&error),
            E::Artifact(_) | E::SharedArtifact(_) => ApiError::internal(&error),
            E::UnknownSecret { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_secret", error.to_string())
            }
            E::EnvironmentTooLarge { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "environment_too_large", error.to_string())
            }
        }
    }
}

impl From<updraft_platform::SecretError> for ApiError {
    fn from(error: updraft_platform::SecretError) -> Self {
        use updraft_platform::SecretError as E;
        match error {
            E::NotFound { .. } => ApiError::not_found("secret_not_found", error.to_string()),
            E::FunctionNotFound { .. } => ApiError::not_found("function_not_found", error.to_string()),
            E::Empty | E::Nul => ApiError::new(StatusCode::BAD_REQUEST, "invalid_secret", error.to_string()),
            E::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "secret_too_large", error.to_string()),
            E::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "secret_in_use", error.to_string()),
            E::Deploy(deploy) => deploy.into(),
            E::KeyFile { .. } | E::Unseal(_) | E::ClusterKey(_) | E::Store(_) => ApiError::internal(&error),
        }
    }
}

impl From<FunctionError> for ApiError {
    fn from(error: FunctionError) -> Self {
        match error {
            FunctionError::NotFound { .. } => ApiError::not_found("function_not_found", error.to_string()),
            FunctionError::VersionNotFound { .. } => ApiError::not_found("version_not_found", error.to_string()),
            FunctionError::NoEarlierVersion { .. } => {
                ApiError::new(StatusCode::CONFLICT, "no_earlier_version", error.to_string())
            }
            FunctionError::Exists { .. } | FunctionError::AppExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "function_name_taken", error.to_string())
            }
            FunctionError::NoCanary { .. } => ApiError::new(StatusCode::CONFLICT, "no_canary", error.to_string()),
            FunctionError::RevisionChanged { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "revision_changed", error.to_string())
            }
            FunctionError::InvalidName(_) => ApiError::bad_request(error.to_string()),
            FunctionError::Deploy(deploy) => deploy.into(),
            FunctionError::Store(ref store) => ApiError::internal(store),
        }
    }
}

impl From<InvokeFailure> for ApiError {
    fn from(failure: InvokeFailure) -> Self {
        match failure {
            InvokeFailure::NotFound { .. } => ApiError::not_found("function_not_found", failure.to_string()),
            InvokeFailure::Throttled { throttle, .. } => {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!("{failure}; retry after a second"),
                );
                error.retry_after = Some(1);
                error.limit = Some(throttle.limit_name());
                error
            }
            InvokeFailure::Function { ref error, .. } => {
                let (status, code) = match error {
                    InvokeError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "function_timeout"),
                    InvokeError::OutOfMemory { .. } => (StatusCode::BAD_GATEWAY, "function_out_of_memory"),
                    InvokeError::Trap { .. } => (StatusCode::BAD_GATEWAY, "function_trapped"),
                    InvokeError::NoResponse | InvokeError::BadResponse { .. } => {
                        (StatusCode::BAD_GATEWAY, "function_bad_response")
                    }
                    InvokeError::ResponseTooLarge { .. } => (StatusCode::BAD_GATEWAY, "function_response_too_large"),
                    InvokeError::Init { .. } => (StatusCode::BAD_GATEWAY, "function_init_failed"),
                    InvokeError::Function { .. } => (StatusCode::BAD_GATEWAY, "function_error"),
                    InvokeError::Exited { .. } => (StatusCode::BAD_GATEWAY, "function_exited"),
                    InvokeError::RequestCut => (StatusCode::BAD_REQUEST, "request_body_cut"),
                    InvokeError::RecursiveLoop { .. } => (StatusCode::LOOP_DETECTED, "recursive_loop"),
                    InvokeError::Internal { .. } => return ApiError::internal(error),
                };
                // The guest's own failure is the user's to see (it is their code), but
                // trap messages carry wasm backtraces: keep the first line.
                let detail = error.to_string();
                let detail = detail.lines().next().unwrap_or_default();
                ApiError::new(status, code, format!("{}: {detail}", failure))
            }
        }
    }
}

impl From<updraft_platform::ObserveError> for ApiError {
    fn from(error: updraft_platform::ObserveError) -> Self {
        ApiError::internal(&error)
    }
}

impl From<updraft_platform::KeyError> for ApiError {
    fn from(error: updraft_platform::KeyError) -> Self {
        ApiError::internal(&error)
    }
}

impl From<updraft_platform::QueueError> for ApiError {
    fn from(error: updraft_platform::QueueError) -> Self {
        ApiError::internal(&error)
    }
}

impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::NoSubscribers { .. } => ApiError::not_found("topic_has_no_subscribers", error.to_string()),
            PublishError::Queue(error) => error.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Unsigned | WebhookError::BadSignature => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", error.to_string())
            }
            WebhookError::NoSecret { .. } => {
                tracing::error!(%error, "a webhook cannot verify requests");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "webhook_misconfigured", error.to_string())
            }
            WebhookError::Queue(error) => error.into(),
        }
    }
}

/// Gives every error answer the JSON error shape: the HTTP framework's own rejections
/// (bad JSON, a wrong content type, a body over its limit, a malformed path or query)
/// come as plain text, and become `{"error": {"code", "message"}}` here, their text the
/// message.
pub(crate) async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    // Updraft's own errors have the shape already; a function's answer (it carries
    // the version that served it) and Lambda's API errors are theirs to shape.
    let ours_or_theirs = ["x-updraft-error", "x-updraft-version", "x-amzn-errortype"]
        .iter()
        .any(|header| response.headers().contains_key(*header));
    if !(status.is_client_error() || status.is_server_error()) || !plain || ours_or_theirs {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        _ if status.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let mut error = ApiError::new(status, code, String::from_utf8_lossy(&text).trim().to_owned());
    error.allow = parts.headers.get(http::header::ALLOW).and_then(|v| v.to_str().ok()).map(str::to_owned);
    error.into_response()
}
