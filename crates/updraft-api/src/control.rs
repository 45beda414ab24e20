//! `/v1`: the control plane. Every route needs an API key.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::StatusCode;
use updraft_model::{AppName, ArtifactDigest, FunctionName, QueueName, TopicName, Trigger, VersionNumber};
use updraft_platform::{
    DeployRequest, Event, EventOrigin, Input, InvocationFilter, InvocationStatus, InvokeContext, LogQuery, Message,
    TriggerKind, Usage,
};

use crate::params::{DeployParams, InvocationParams, LogParams, RollbackParams, UsageParams};
use crate::request_id::RequestId;
use crate::views::{
    AccessKeyCreatedView, AccessKeyListView, AccessKeyView, ArtifactView, AsyncAcceptedView, AsyncEventView,
    DeployView, ExecutionStartedView, ExecutionView, FunctionListView, FunctionUsageView, FunctionView,
    InvocationListView, InvocationView, LogLineView, LogListView, PricesView, PublishedView, QueueSentView, QueueView,
    TopicListView, TopicView, UsageHourView, UsageReportView, UsageView, VersionListView, VersionView,
};
use crate::{ApiError, AppState};

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .route("/artifacts/{digest}", put(artifact_put).get(artifact_get))
        .route("/apps/{app}/deploy", post(app_deploy).layer(DefaultBodyLimit::max(16 * 1024 * 1024)))
        .route("/functions", get(function_list))
        .route("/functions/{name}", get(function_get).delete(function_delete))
        .route("/functions/{name}/versions", get(version_list))
        .route("/functions/{name}/rollback", post(function_rollback))
        .route(
            "/functions/{name}/invoke",
            post(function_invoke).layer(DefaultBodyLimit::max(state.platform.limits().max_sync_payload as usize)),
        )
        .route(
            "/functions/{name}/invoke-async",
            post(function_invoke_async).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)),
        )
        .route("/async/{id}", get(async_event_get))
        .route("/topics", get(topic_list))
        .route("/workflows/{name}/executions", post(workflow_start).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)))
        .route("/executions/{id}", get(execution_get))
        .route("/queues/{queue}", post(queue_send).get(queue_get).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)))
        .route("/topics/{topic}", post(topic_publish).layer(DefaultBodyLimit::max(crate::ASYNC_PAYLOAD)))
        .route("/functions/{name}/logs", get(log_list))
        .route("/invocations", get(invocation_list))
        .route("/usage", get(usage))
        .route("/keys", post(key_create).get(key_list))
        .route("/keys/{id}", axum::routing::delete(key_delete))
        .route("/status", get(status))
        .route("/secrets", get(secret_list))
        .route("/secrets/{name}", put(secret_set).delete(secret_delete).layer(DefaultBodyLimit::max(64 * 1024)))
        .route("/functions/{name}/tokens/rotate", post(token_rotate))
        .route("/secrets-key/rotate", post(secrets_key_rotate))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::require_key));
    Router::new().route("/openapi.json", get(openapi)).merge(authenticated)
}

fn function_name(name: &str) -> Result<FunctionName, ApiError> {
    FunctionName::new(name).map_err(|e| ApiError::not_found("function_not_found", e.to_string()))
}

fn digest(value: &str) -> Result<ArtifactDigest, ApiError> {
    ArtifactDigest::parse(value).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub(crate) async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], crate::openapi_json()).into_response()
}

/// Upload an artifact under its sha256. Idempotent: the same bytes are stored once.
#[utoipa::path(
    put, path = "/v1/artifacts/{digest}", tag = "artifacts",
    params(("digest" = String, Path, description = "sha256 of the body, 64 hex digits, optionally `sha256:`-prefixed")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = ArtifactView),
        (status = 400, description = "Empty body or digest mismatch", body = crate::views::ErrorBody),
        (status = 413, description = "Larger than the server's artifact limit", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn artifact_put(
    State(state): State<AppState>,
    Path(value): Path<String>,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ArtifactView>), ApiError> {
    let expected = digest(&value)?;
    let limit = state.config.max_artifact_bytes as u64;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the artifact is larger than the limit of {limit} bytes (--max-artifact-size)"),
        )
    };
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|length: u64| length > limit) {
        return Err(too_large());
    }
    let stored = |error: updraft_platform::ArtifactError| match error {
        updraft_platform::ArtifactError::DigestMismatch { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "digest_mismatch", error.to_string())
        }
        other => ApiError::internal(&other),
    };
    // Written to disk and hashed as it arrives: an upload never has to fit in memory.
    let mut writer = state.platform.artifact_writer().await.map_err(stored)?;
    let mut body = body;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|error| ApiError::bad_request(format!("could not read the artifact: {error}")))?;
        if let Ok(data) = frame.into_data() {
            if writer.size() + data.len() as u64 > limit {
                return Err(too_large());
            }
            writer.write(&data).await.map_err(stored)?;
        }
    }
    let size = writer.size();
    if size == 0 {
        return Err(ApiError::bad_request("the artifact is empty; upload the built .wasm file"));
    }
    let digest = writer.finish(expected).await.map_err(stored)?;
    Ok((StatusCode::CREATED, Json(ArtifactView { digest: digest.to_string(), size })))
}

/// Whether an artifact is stored (use HEAD to skip uploading what is there).
#[utoipa::path(
    get, path = "/v1/artifacts/{digest}", tag = "artifacts",
    params(("digest" = String, Path, description = "sha256, 64 hex digits")),
    responses(
        (status = 200, description = "Stored", body = ArtifactView),
        (status = 404, description = "Not stored", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn artifact_get(
    State(state): State<AppState>,
    Path(value): Path<String>,
) -> Result<Json<ArtifactView>, ApiError> {
    let digest = digest(&value)?;
    if !state.platform.artifact_exists(&digest) {
        return Err(ApiError::not_found("artifact_not_found", format!("artifact {digest} is not stored")));
    }
    let size = std::fs::metadata(state.platform.artifact_path(&digest)).map(|m| m.len()).unwrap_or(0);
    Ok(Json(ArtifactView { digest: digest.to_string(), size }))
}

/// Deploy an app. Changed functions get a new version; unchanged ones keep theirs;
/// functions the manifest no longer declares are deleted. All or nothing.
#[utoipa::path(
    post, path = "/v1/apps/{app}/deploy", tag = "apps",
    params(("app" = String, Path, description = "The app's name, as in the manifest's [app] name")),
    request_body = DeployParams,
    responses(
        (status = 200, description = "Deployed", body = DeployView),
        (status = 400, description = "An artifact is missing or not uploaded", body = crate::views::ErrorBody),
        (status = 409, description = "A route or function name is taken", body = crate::views::ErrorBody),
        (status = 422, description = "The manifest or a component is invalid", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn app_deploy(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(params): Json<DeployParams>,
) -> Result<Json<DeployView>, ApiError> {
    let app = AppName::new(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut artifacts = BTreeMap::new();
    for (name, value) in &params.artifacts {
        let name = FunctionName::new(name.as_str()).map_err(|e| ApiError::bad_request(e.to_string()))?;
        artifacts.insert(name, digest(value)?);
    }
    let outcome =
        state.platform.deploy(DeployRequest { app: app.clone(), manifest: params.manifest, artifacts }).await?;
    let warnings = state.platform.deploy_warnings(&outcome);
    Ok(Json(DeployView::new(app.as_str(), &outcome, warnings)))
}

fn secret_name(name: &str) -> Result<updraft_model::SecretName, ApiError> {
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
    let record = state.platform.function_get(&function_name(&name)?).await?;
    Ok(Json(FunctionView::new(&record)))
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
    let trace_id = crate::gateway::trace_id(&headers);
    let context = InvokeContext { request_id, trigger: TriggerKind::Direct, trace_id };
    let invocation = state.platform.invoke_by_name(&name, Input::Event(event), context).await?;
    Ok(crate::gateway::render(invocation))
}

/// Read a function's logs; with `wait_ms`, wait for new lines (long poll).
#[utoipa::path(
    get, path = "/v1/functions/{name}/logs", tag = "functions",
    params(("name" = String, Path, description = "Function name"), LogParams),
    responses(
        (status = 200, description = "Log lines, oldest first", body = LogListView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn log_list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Json<LogListView>, ApiError> {
    let name = function_name(&name)?;
    // Logs outlive a deleted function's live state, but a name never deployed is a
    // mistake worth reporting.
    state.platform.function_get(&name).await?;
    let after = params.after.unwrap_or(0).max(0);
    let query = LogQuery {
        function: name.clone(),
        after,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
        tail: params.tail.unwrap_or(false),
        wait: params.wait_ms.map(|ms| Duration::from_millis(ms.min(30_000))),
    };
    let lines = state.platform.logs(&query).await?;
    let next_after = lines.last().map_or(after, |line| line.id);
    Ok(Json(LogListView {
        function: name.to_string(),
        lines: lines.iter().map(LogLineView::new).collect(),
        next_after,
    }))
}

/// List invocation records, newest first, filtered and paged.
#[utoipa::path(
    get, path = "/v1/invocations", tag = "invocations",
    params(InvocationParams),
    responses(
        (status = 200, description = "Records, newest first", body = InvocationListView),
        (status = 400, description = "An unknown status", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invocation_list(
    State(state): State<AppState>,
    Query(params): Query<InvocationParams>,
) -> Result<Json<InvocationListView>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(InvocationStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status {text:?}; use success, error, timeout or throttled"))
        })?),
    };
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let filter = InvocationFilter {
        function: params.function.as_deref().map(function_name).transpose()?,
        status,
        since: params.since,
        until: params.until,
        before: params.before,
        limit,
    };
    let page = state.platform.invocations(&filter).await?;
    let next_before = page.last().filter(|_| page.len() as i64 == limit).map(|last| last.seq);
    Ok(Json(InvocationListView {
        invocations: page.iter().map(|stored| InvocationView::new(&stored.record)).collect(),
        next_before,
    }))
}

/// Usage per function per hour: requests, GB-seconds, cold starts, throttles, and
/// what it costs under the server's price table.
#[utoipa::path(
    get, path = "/v1/usage", tag = "invocations",
    params(UsageParams),
    responses((status = 200, description = "Usage and cost", body = UsageReportView)),
    security(("bearer" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageReportView>, ApiError> {
    let since = params.since.unwrap_or_else(|| updraft_model::now_millis() - 24 * 3_600_000);
    let function = params.function.as_deref().map(function_name).transpose()?;
    let rows = state.platform.usage(since, function.as_ref()).await?;
    let prices = state.platform.prices();
    let mut total = Usage::default();
    let mut functions: BTreeMap<String, Usage> = BTreeMap::new();
    let mut hours = Vec::new();
    for row in &rows {
        let counts = row.counts;
        let usage = Usage {
            requests: counts.requests as u64,
            billed_mib_ms: counts.billed_mib_ms as u64,
            cold_starts: counts.cold_starts as u64,
            throttles: counts.throttles as u64,
            errors: counts.errors as u64,
        };
        total.add(&usage);
        functions.entry(row.function.to_string()).or_default().add(&usage);
        hours.push(UsageHourView {
            function: row.function.to_string(),
            hour_ms: row.hour,
            usage: UsageView::new(&usage, prices),
        });
    }
    Ok(Json(UsageReportView {
        since_ms: since - since.rem_euclid(3_600_000),
        prices: PricesView {
            per_million_requests_usd: prices.per_million_requests,
            per_gb_second_usd: prices.per_gb_second,
        },
        total: UsageView::new(&total, prices),
        functions: functions
            .iter()
            .map(|(function, usage)| FunctionUsageView {
                function: function.clone(),
                usage: UsageView::new(usage, prices),
            })
            .collect(),
        hours,
    }))
}

/// Metrics in the Prometheus text format: invocations by function and status, a
/// duration histogram, cold starts, throttles, concurrent executions and instances by
/// state. Needs an API key (a Prometheus `authorization` credential).
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.platform.metrics())
        .into_response()
}

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
        .qualified_function(&name, None)
        .ok_or_else(|| ApiError::not_found("function_not_found", format!("function {name:?} not found")))?;
    let id = state.platform.events().invoke_async(&function.name, body, crate::gateway::trace_id(&headers)).await?;
    Ok((StatusCode::ACCEPTED, Json(AsyncAcceptedView { id, function: name.to_string() })))
}

/// An asynchronous invocation that has not succeeded yet: queued (with its attempts so
/// far) or failed for good. One that succeeded is gone (404); its records are in
/// `/v1/invocations`, under the same id.
#[utoipa::path(
    get, path = "/v1/async/{id}", tag = "functions",
    params(("id" = String, Path, description = "The id `invoke-async` answered")),
    responses(
        (status = 200, description = "Queued or failed", body = AsyncEventView),
        (status = 404, description = "Delivered, or never accepted", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn async_event_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AsyncEventView>, ApiError> {
    let event = state.platform.events().async_event(&id).await?.ok_or_else(|| {
        ApiError::not_found("async_event_not_found", format!("no pending or failed asynchronous invocation {id:?}"))
    })?;
    Ok(Json(AsyncEventView::new(&event)))
}

/// Publish a message to a topic: a copy for every subscribed function is stored
/// durably (all or none) before the `202`, and each is delivered with that function's
/// own retries. Lambda functions get it as an SNS record, wasm functions as a
/// CloudEvent. Besides an API key, a function's token (`UPDRAFT_TOKEN`) is accepted
/// for the topics in its `publishes` grant.
#[utoipa::path(
    post, path = "/v1/topics/{topic}", tag = "events",
    params(
        ("topic" = String, Path, description = "Topic name"),
        ("x-updraft-subject" = Option<String>, Header, description = "A subject line (SNS's Subject)"),
    ),
    request_body(content = String, description = "The message; its Content-Type travels with it", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored for every subscriber", body = PublishedView),
        (status = 400, description = "Invalid topic name", body = crate::views::ErrorBody),
        (status = 403, description = "A function token without a grant for this topic", body = crate::views::ErrorBody),
        (status = 404, description = "No function subscribes to the topic", body = crate::views::ErrorBody),
        (status = 413, description = "Message above 1 MiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn topic_publish(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PublishedView>), ApiError> {
    let topic = TopicName::new(topic).map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    let text = |name: http::HeaderName| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let message = Message {
        payload: body,
        content_type: text(http::header::CONTENT_TYPE),
        subject: text(http::HeaderName::from_static("x-updraft-subject")),
        attributes: Vec::new(),
        trace_id: crate::gateway::trace_id(&headers),
    };
    let published = state.platform.events().publish(&topic, message).await?;
    let view = PublishedView {
        message_id: published.message_id,
        topic: topic.to_string(),
        subscribers: published.subscribers.iter().map(ToString::to_string).collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The topics live functions subscribe to, with their subscribers.
#[utoipa::path(
    get, path = "/v1/topics", tag = "events",
    responses((status = 200, description = "Topics by name", body = TopicListView)),
    security(("bearer" = []))
)]
pub(crate) async fn topic_list(State(state): State<AppState>) -> Json<TopicListView> {
    let live = state.platform.live();
    let topics = live
        .topics
        .iter()
        .map(|(topic, subscribers)| TopicView {
            topic: topic.to_string(),
            subscribers: subscribers.iter().map(|function| function.name.to_string()).collect(),
        })
        .collect();
    Json(TopicListView { topics })
}

fn queue_name(queue: String) -> Result<QueueName, ApiError> {
    QueueName::new(queue).map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

/// Send a message to a work queue: stored durably before the `202`, then delivered in
/// a batch to a function consuming the queue (an SQS batch event). A queue needs no
/// consumer to accept messages: they wait.
#[utoipa::path(
    post, path = "/v1/queues/{queue}", tag = "events",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = String, description = "The message; its Content-Type travels with it", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = QueueSentView),
        (status = 400, description = "Invalid queue name", body = crate::views::ErrorBody),
        (status = 413, description = "Message above 1 MiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn queue_send(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<QueueSentView>), ApiError> {
    let queue = queue_name(queue)?;
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let message_id = state.platform.events().send_to_queue(&queue, body, content_type).await?;
    Ok((StatusCode::ACCEPTED, Json(QueueSentView { message_id, queue: queue.to_string() })))
}

/// A work queue's depth and consumers.
#[utoipa::path(
    get, path = "/v1/queues/{queue}", tag = "events",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, description = "Depth and consumers", body = QueueView)),
    security(("bearer" = []))
)]
pub(crate) async fn queue_get(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    let queue = queue_name(queue)?;
    let depth = state.platform.events().queue_depth(&queue).await?;
    let consumers = state
        .platform
        .live()
        .functions
        .values()
        .filter(|function| {
            function.config.triggers.iter().any(|trigger| matches!(trigger, Trigger::Queue(q) if q.queue == queue))
        })
        .map(|function| function.name.to_string())
        .collect();
    Ok(Json(QueueView { queue: queue.to_string(), visible: depth.visible, in_flight: depth.in_flight, consumers }))
}

/// Start an execution of a workflow with the body as its input (JSON). It is stored
/// before the `202`, runs its states one by one, each step persisted, and resumes
/// after a restart where it stopped. Besides an API key, a function's token
/// (`UPDRAFT_TOKEN`) is accepted for the workflows in its `starts` grant.
#[utoipa::path(
    post, path = "/v1/workflows/{name}/executions", tag = "events",
    params(("name" = String, Path, description = "Workflow name")),
    request_body(content = String, description = "The execution's input (JSON; empty means {})", content_type = "application/json"),
    responses(
        (status = 202, description = "Started", body = ExecutionStartedView),
        (status = 400, description = "The input is not JSON", body = crate::views::ErrorBody),
        (status = 403, description = "A function token without a grant for this workflow", body = crate::views::ErrorBody),
        (status = 404, description = "No such workflow", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn workflow_start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ExecutionStartedView>), ApiError> {
    let input: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("the input is not JSON ({error}); send a JSON document")))?
    };
    let execution_id = state.platform.events().workflow_start(&name, input).await.map_err(|error| match error {
        updraft_platform::WorkflowError::NotFound { .. } => {
            ApiError::not_found("workflow_not_found", error.to_string())
        }
        updraft_platform::WorkflowError::Store(error) => error.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionStartedView { execution_id, workflow: name })))
}

/// A workflow execution: its status, current state, output or error, and history.
#[utoipa::path(
    get, path = "/v1/executions/{id}", tag = "events",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution", body = ExecutionView),
        (status = 404, description = "No such execution", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn execution_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let report = state
        .platform
        .events()
        .execution(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution_not_found", format!("no workflow execution {id:?}")))?;
    Ok(Json(ExecutionView::new(&report)))
}
