//! `/v1/functions`: list, describe, versions, rollback, delete and invoke functions.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use bytes::Bytes;
use http::StatusCode;
use updraft_model::VersionNumber;
use updraft_platform::{Event, EventOrigin, Input, InvokeContext, TriggerKind};

use crate::params::RollbackParams;
use crate::request_id::RequestId;
use crate::v1::function_name;
use crate::views::{AsyncAcceptedView, CanaryView, FunctionListView, FunctionView, VersionListView, VersionView};
use crate::{ApiError, AppState};

/// List functions, by name, a page at a time.
#[utoipa::path(
    get, path = "/v1/functions", tag = "functions",
    params(crate::params::FunctionListParams),
    responses((status = 200, description = "A page of functions", body = FunctionListView)),
    security(("bearer" = []))
)]
pub(crate) async fn function_list(
    State(state): State<AppState>,
    Query(params): Query<crate::params::FunctionListParams>,
) -> Result<Json<FunctionListView>, ApiError> {
    const MOST: usize = 1000;
    let limit = params.limit.unwrap_or(MOST).clamp(1, MOST);
    let functions = state.platform.function_list().await?;
    let after = params.after.as_deref().unwrap_or("");
    let page: Vec<_> = functions.iter().filter(|f| f.name.as_str() > after).take(limit + 1).collect();
    let next_after = (page.len() > limit).then(|| page[limit - 1].name.to_string());
    let functions = page.into_iter().take(limit).map(FunctionView::new).collect();
    Ok(Json(FunctionListView { functions, next_after }))
}

/// Describe a function.
#[utoipa::path(
    get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "The function", body = FunctionView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    let name = function_name(&name)?;
    let record = state.platform.function_get(&name).await?;
    let mut view = FunctionView::new(&record);
    view.canary = state.platform.canary(&name).map(|canary| CanaryView::new(&canary));
    Ok(Json(view))
}

/// Delete a function and its versions.
#[utoipa::path(
    delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.function_delete(&function_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a function's versions, newest first.
#[utoipa::path(
    get, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "Versions", body = VersionListView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn version_list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VersionListView>, ApiError> {
    let name = function_name(&name)?;
    let record = state.platform.function_get(&name).await?;
    let versions = state.platform.version_list(&name).await?;
    Ok(Json(VersionListView {
        function: name.to_string(),
        versions: versions.iter().map(|v| VersionView::new(v, record.current.version.0)).collect(),
    }))
}

/// Serve an earlier version again.
#[utoipa::path(
    post, path = "/v1/functions/{name}/rollback", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body = RollbackParams,
    responses(
        (status = 200, description = "The function, now serving the earlier version", body = FunctionView),
        (status = 404, description = "No such function or version", body = crate::views::ErrorBody),
        (status = 409, description = "No earlier version, or its routes conflict", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<FunctionView>, ApiError> {
    let params: RollbackParams = if body.is_empty() {
        RollbackParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let record = state.platform.function_rollback(&function_name(&name)?, params.to.map(VersionNumber)).await?;
    Ok(Json(FunctionView::new(&record)))
}

/// End a function's canary now: its new version serves every invocation.
#[utoipa::path(
    post, path = "/v1/functions/{name}/promote", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "The canary, now ended", body = CanaryView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
        (status = 409, description = "No canary running", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_promote(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryView>, ApiError> {
    let canary = state.platform.canary_promote(&function_name(&name)?).await?;
    Ok(Json(CanaryView::new(&canary)))
}

/// Invoke a function with an event. The body is delivered as `POST /` with
/// CloudEvents headers; the function's response comes back as it is.
#[utoipa::path(
    post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = String, description = "The event, usually JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "The function's response (any status it chose)"),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
        (status = 413, description = "Payload above 6 MiB", body = crate::views::ErrorBody),
        (status = 429, description = "A concurrency limit is reached (the body names which); retry after `Retry-After` seconds", body = crate::views::ErrorBody),
        (status = 502, description = "The function failed (trap, out of memory, bad response)", body = crate::views::ErrorBody),
        (status = 504, description = "The function timed out", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = function_name(&name)?;
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let event = Event {
        id: request_id.clone(),
        payload: body,
        origin: EventOrigin::Direct { content_type, client_context: None },
    };
    let context = InvokeContext::new(request_id, TriggerKind::Direct, crate::gateway::trace_parent(&headers));
    let invocation = state.platform.invoke_by_name(&name, Input::Event(event), context).await?;
    Ok(crate::gateway::render(invocation))
}

/// Invoke a function asynchronously: the event is stored durably before the `202`, then
/// delivered at least once; a failed attempt is retried twice with backoff (about a
/// minute, then two), throttled ones wait without using an attempt.
#[utoipa::path(
    post, path = "/v1/functions/{name}/invoke-async", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = String, description = "The event, usually JSON", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored; it will run", body = AsyncAcceptedView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
        (status = 413, description = "Payload above 1 MiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_invoke_async(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<AsyncAcceptedView>), ApiError> {
    let name = function_name(&name)?;
    let function = state
        .platform
        .live_version(&name)
        .ok_or_else(|| ApiError::not_found("function_not_found", format!("function {name:?} not found")))?;
    let id = state
        .platform
        .events()
        .invoke_async(&function.name, None, body, crate::gateway::trace_parent(&headers))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(AsyncAcceptedView { id, function: name.to_string() })))
}
