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

/// Rejects control-plane requests without a valid key.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
