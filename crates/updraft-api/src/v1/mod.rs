//! `/v1`: the control plane. Every route needs an API key. The handlers live in one
//! module per resource; this one routes to them.

pub(crate) mod apps;
pub(crate) mod events;
pub(crate) mod functions;
pub(crate) mod keys;
pub(crate) mod nodes;
pub(crate) mod observe;
pub(crate) mod secrets;
pub(crate) mod status;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use updraft_model::{ArtifactDigest, FunctionName};

use crate::{ApiError, AppState};
use apps::{app_deploy, artifact_get, artifact_put};
use events::{
    async_event_get, async_event_retry, async_retry_all, execution_get, execution_list, failed_event_list, queue_get,
    queue_list, queue_redrive, queue_send, topic_list, topic_publish, workflow_list, workflow_start,
};
use functions::{
    function_delete, function_get, function_invoke, function_invoke_async, function_list, function_promote,
    function_rollback, version_list,
};
use keys::{key_create, key_delete, key_list};
use nodes::node_list;
pub(crate) use observe::metrics;
use observe::{function_stats, invocation_list, log_list, log_search, log_stream, trace_get, trace_list, usage};
use secrets::{secret_delete, secret_list, secret_set, secrets_key_rotate, token_rotate};
use status::status;

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .route("/artifacts/{digest}", put(artifact_put).get(artifact_get))
        .route("/apps/{app}/deploy", post(app_deploy).layer(DefaultBodyLimit::max(16 * 1024 * 1024)))
        .route("/functions", get(function_list))
        .route("/functions/{name}", get(function_get).delete(function_delete))
        .route("/functions/{name}/versions", get(version_list))
        .route("/functions/{name}/rollback", post(function_rollback))
        .route("/functions/{name}/promote", post(function_promote))
        .route(
            "/functions/{name}/invoke",
            post(function_invoke).layer(DefaultBodyLimit::max(state.platform.limits().max_sync_payload as usize)),
        )
        .route(
            "/functions/{name}/invoke-async",
            post(function_invoke_async).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)),
        )
        .route("/async/failed", get(failed_event_list))
        .route("/async/retry", post(async_retry_all))
        .route("/async/{id}", get(async_event_get))
        .route("/async/{id}/retry", post(async_event_retry))
        .route("/queues", get(queue_list))
        .route("/queues/{queue}/redrive", post(queue_redrive))
        .route("/topics", get(topic_list))
        .route("/workflows", get(workflow_list))
        .route(
            "/workflows/{name}/executions",
            post(workflow_start).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)).get(execution_list),
        )
        .route("/executions/{id}", get(execution_get))
        .route("/queues/{queue}", post(queue_send).get(queue_get).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)))
        .route("/topics/{topic}", post(topic_publish).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)))
        .route("/functions/{name}/logs", get(log_list))
        .route("/functions/{name}/logs/stream", get(log_stream))
        .route("/functions/{name}/stats", get(function_stats))
        .route("/logs", get(log_search))
        .route("/invocations", get(invocation_list))
        .route("/traces", get(trace_list))
        .route("/traces/{trace_id}", get(trace_get))
        .route("/usage", get(usage))
        .route("/keys", post(key_create).get(key_list))
        .route("/keys/{id}", axum::routing::delete(key_delete))
        .route("/status", get(status))
        .route("/nodes", get(node_list))
        .route("/secrets", get(secret_list))
        .route("/secrets/{name}", put(secret_set).delete(secret_delete).layer(DefaultBodyLimit::max(64 * 1024)))
        .route("/functions/{name}/tokens/rotate", post(token_rotate))
        .route("/secrets-key/rotate", post(secrets_key_rotate))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::require_key));
    Router::new().route("/openapi.json", get(openapi)).merge(authenticated)
}

pub(super) fn function_name(name: &str) -> Result<FunctionName, ApiError> {
    FunctionName::new(name).map_err(|e| ApiError::not_found("function_not_found", e.to_string()))
}

pub(super) fn digest(value: &str) -> Result<ArtifactDigest, ApiError> {
    ArtifactDigest::parse(value).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub(crate) async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], crate::openapi_json()).into_response()
}
