//! `/v1/secrets`, token rotation and the secrets key.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;

use crate::v1::function_name;
use crate::{ApiError, AppState};

pub(super) fn secret_name(name: &str) -> Result<updraft_model::SecretName, ApiError> {
    name.parse().map_err(|e: updraft_model::InvalidName| ApiError::bad_request(e.to_string()))
}

/// List secrets: their names, dates and users, never their values.
#[utoipa::path(
    get, path = "/v1/secrets", tag = "secrets",
    responses((status = 200, description = "Every secret", body = crate::views::SecretListView)),
    security(("bearer" = []))
)]
pub(crate) async fn secret_list(State(state): State<AppState>) -> Result<Json<crate::views::SecretListView>, ApiError> {
    let secrets = state.platform.secret_list().await?;
    Ok(Json(crate::views::SecretListView { secrets: secrets.iter().map(crate::views::SecretView::new).collect() }))
}

/// Set a secret: the request body is its value (at most 4 KiB, no NUL), sealed at rest
/// and never shown again. Functions naming it get the new value in instances started
/// from now on.
#[utoipa::path(
    put, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Letters, digits, '.', '-' and '_'")),
    request_body(content = String, description = "The secret's value", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Set", body = crate::views::SecretSetView),
        (status = 400, description = "An invalid name, or an empty value or one with a NUL", body = crate::views::ErrorBody),
        (status = 413, description = "The value is over 4 KiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn secret_set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<crate::views::SecretSetView>, ApiError> {
    let name = secret_name(&name)?;
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_secret", "the value is not UTF-8 text"))?;
    let set = state.platform.secret_set(&name, value).await?;
    let used_by = set.used_by.iter().map(ToString::to_string).collect();
    Ok(Json(crate::views::SecretSetView { name: name.to_string(), created: set.created, used_by }))
}

/// Delete a secret that no deployed function uses.
#[utoipa::path(
    delete, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such secret", body = crate::views::ErrorBody),
        (status = 409, description = "A deployed function uses it", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn secret_delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.secret_delete(&secret_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a function's tokens (`UPDRAFT_TOKEN`): every token given before is refused
/// from now on, and its instances are replaced by ones holding a new token.
#[utoipa::path(
    post, path = "/v1/functions/{name}/tokens/rotate", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "Rotated", body = crate::views::TokenRotatedView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn token_rotate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<crate::views::TokenRotatedView>, ApiError> {
    let function = function_name(&name)?;
    let generation = state.platform.token_rotate(&function).await?;
    Ok(Json(crate::views::TokenRotatedView { function: function.to_string(), generation }))
}

/// Rotate the secrets key (`<data-dir>/secrets.key`): a new key, and everything sealed
/// with the old one (access keys' secrets, secrets, the server's own keys) sealed
/// again with it in one transaction. Access keys and function tokens keep working.
#[utoipa::path(
    post, path = "/v1/secrets-key/rotate", tag = "secrets",
    responses((status = 200, description = "Rotated", body = crate::views::KeyRotatedView)),
    security(("bearer" = []))
)]
pub(crate) async fn secrets_key_rotate(
    State(state): State<AppState>,
) -> Result<Json<crate::views::KeyRotatedView>, ApiError> {
    let rotated = state.platform.rotate_secrets_key().await?;
    Ok(Json(crate::views::KeyRotatedView { resealed: rotated.resealed }))
}
