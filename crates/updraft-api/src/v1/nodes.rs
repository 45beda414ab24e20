//! `/v1/nodes`: the cluster's members and their health.

use axum::Json;
use axum::extract::State;

use crate::views::{NodeListView, NodeView};
use crate::{ApiError, AppState};

/// The cluster's nodes with their address, version, load, warm functions and last
/// heartbeat. On SQLite the cluster is this one server; every server sharing a
/// PostgreSQL database is a node.
#[utoipa::path(
    get, path = "/v1/nodes", tag = "server",
    responses((status = 200, description = "The nodes, by id", body = NodeListView)),
    security(("bearer" = []))
)]
pub(crate) async fn node_list(State(state): State<AppState>) -> Result<Json<NodeListView>, ApiError> {
    let nodes = state.platform.nodes().await?;
    Ok(Json(NodeListView {
        nodes: nodes.iter().map(NodeView::new).collect(),
        dead_after_ms: state.platform.config().cluster.dead_after.as_millis() as u64,
    }))
}
