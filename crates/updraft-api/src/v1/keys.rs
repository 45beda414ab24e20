//! `/v1/keys`: SigV4 access keys for the Lambda-compatible API.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;

use crate::views::{AccessKeyCreatedView, AccessKeyListView, AccessKeyView};
use crate::{ApiError, AppState};

/// Create an access key for the Lambda-compatible API (SigV4: boto3, the AWS CLI).
/// The secret is in this response only.
#[utoipa::path(
    post, path = "/v1/keys", tag = "keys",
    responses((status = 201, description = "Created; keep the secret now", body = AccessKeyCreatedView)),
    security(("bearer" = []))
)]
pub(crate) async fn key_create(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<AccessKeyCreatedView>), ApiError> {
    let key = state.platform.access_key_create(updraft_platform::Role::Admin).await?;
    Ok((StatusCode::CREATED, Json(AccessKeyCreatedView::new(&key))))
}

/// List access keys, oldest first (without secrets).
#[utoipa::path(
    get, path = "/v1/keys", tag = "keys",
    responses((status = 200, description = "Access keys", body = AccessKeyListView)),
    security(("bearer" = []))
)]
pub(crate) async fn key_list(State(state): State<AppState>) -> Result<Json<AccessKeyListView>, ApiError> {
    let keys = state.platform.access_key_list().await?;
    Ok(Json(AccessKeyListView { keys: keys.iter().map(AccessKeyView::new).collect() }))
}

/// Delete an access key: requests signed with it fail from now on.
#[utoipa::path(
    delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Access key id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn key_delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if state.platform.access_key_delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key_not_found", format!("no access key {id:?}; `updraft keys ls` lists them")))
    }
}
