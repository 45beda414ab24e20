//! Updraft's HTTP surface: the gateway that routes requests to functions, the `/v1`
//! control plane, the Lambda-compatible API (`/2015-03-31/...`), `/metrics` and
//! `/healthz`. Handlers parse (`params`), call the platform and
//! render (`views`); they never touch the database. The OpenAPI document is generated
//! from these handlers (`openapi_json`).

#![forbid(unsafe_code)]

mod auth;
mod body;
mod error;
mod eventstream;
mod gateway;
mod lambda;
mod lambda_aliases;
mod lambda_functions;
mod openapi;
pub mod params;
mod request_id;
mod serve;
mod ui;
mod v1;
pub mod views;

use std::sync::Arc;

use axum::Router;
use updraft_platform::Platform;

pub use error::ApiError;

/// The largest asynchronous event (Lambda's limit).
pub(crate) const ASYNC_PAYLOAD: usize = 1024 * 1024;
pub use openapi::openapi_json;
pub use request_id::REQUEST_ID_HEADER;
pub use serve::{HttpLimits, serve};

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest artifact upload, in bytes.
    pub max_artifact_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { max_artifact_bytes: 128 * 1024 * 1024 }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) platform: Arc<Platform>,
    pub(crate) config: Arc<ApiConfig>,
    /// Sends requests on to their functions' home nodes (kept-alive connections).
    pub(crate) forwarder: reqwest::Client,
}

/// The whole HTTP surface on one router.
pub fn router(platform: Arc<Platform>, config: ApiConfig) -> Router {
    let forwarder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(1))
        .build()
        .expect("an HTTP client with no TLS and no proxy builds");
    let state = AppState { platform, config: Arc::new(config), forwarder };
    let router = Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let router = ui::routes(router);
    lambda::routes(router)
        .nest("/v1", v1::router(&state))
        .route(
            "/metrics",
            axum::routing::get(v1::metrics)
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key)),
        )
        .fallback(gateway::handle)
        .with_state(state.clone())
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(state, request_id::assign))
}
