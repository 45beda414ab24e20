//! Every request gets an id, returned as `x-updraft-request-id` and written with the
//! function's logs, so a user can find the logs of the response they are holding. A
//! request another node forwarded (with a genuine proof) keeps the id it was given there.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

pub const REQUEST_ID_HEADER: &str = "x-updraft-request-id";

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Marks a request another node of the cluster forwarded here (its proof checked).
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

pub(crate) async fn assign(State(state): State<crate::AppState>, mut request: Request, next: Next) -> Response {
    let forwarded = request
        .headers()
        .get(updraft_platform::FORWARDED_HEADER)
        .and_then(|proof| proof.to_str().ok())
        .and_then(|proof| state.platform.forwarded_request_id(proof));
    if forwarded.is_some() {
        request.extensions_mut().insert(Forwarded);
    }
    let id = forwarded.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
