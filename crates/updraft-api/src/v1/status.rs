//! `/v1/status`: what this node runs with, sandbox layers included.

use axum::Json;
use axum::extract::State;

use crate::AppState;

/// The server's status: its version, and each layer of the Lambda sandbox on its host
/// (what `updraft doctor` shows).
#[utoipa::path(
    get, path = "/v1/status", tag = "server",
    responses((status = 200, description = "The server's status", body = crate::views::StatusView)),
    security(("bearer" = []))
)]
pub(crate) async fn status(State(state): State<AppState>) -> Json<crate::views::StatusView> {
    let platform = &state.platform;
    Json(crate::views::StatusView {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node_id: platform.node_id().to_owned(),
        pooling: platform.pooling(),
        event_queue: match platform.config().event_queue {
            updraft_platform::EventQueueConfig::Database => "database".to_owned(),
            updraft_platform::EventQueueConfig::JetStream { .. } => "jetstream".to_owned(),
        },
        sandbox: platform.sandbox_status().map(crate::views::SandboxView::new),
    })
}
