//! Bearer-token authentication for the control plane and for HTTP triggers that ask
//! for it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use updraft_platform::Principal;

use crate::{ApiError, AppState};

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

pub(crate) fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing API key: send `Authorization: Bearer <key>` (the local admin key is in <data-dir>/admin-token)",
        ));
    };
    state.platform.authenticate(token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API key is not valid; check UPDRAFT_TOKEN or <data-dir>/admin-token",
        )
    })
}

/// Rejects control-plane requests without a valid key. A function's token (given
/// to functions with grants) passes only for what its grants name: publishing to its
/// `publishes` topics and starting its `starts` workflows.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = bearer(request.headers())
        && token.starts_with("updf_")
    {
        let function = state.platform.token_function(token).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the function token is not valid: it was rotated (`updraft tokens rotate`), or its function was deleted",
            )
        })?;
        let grants = &function.config;
        let path = request.uri().path();
        let path = path.strip_prefix("/v1").unwrap_or(path);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let allowed = request.method() == http::Method::POST
            && match segments.as_slice() {
                ["topics", topic] => grants.publishes.iter().any(|granted| granted.as_str() == *topic),
                ["workflows", workflow, "executions"] => {
                    grants.starts.iter().any(|granted| granted.as_str() == *workflow)
                }
                _ => false,
            };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "function {}'s token may only publish to the topics in its `publishes` and start the workflows \
                     in its `starts`; add {} to its grants in updraft.toml",
                    function.name,
                    request.uri().path()
                ),
            ));
        }
        return Ok(next.run(request).await);
    }
    let principal = authenticate(&state, request.headers())?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
