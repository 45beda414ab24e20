//! `/v1/artifacts` and `/v1/apps/{app}/deploy`: uploading code and deploying apps.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use updraft_model::{AppName, FunctionName};
use updraft_platform::DeployRequest;

use crate::params::DeployParams;
use crate::v1::digest;
use crate::views::{ArtifactView, DeployView};
use crate::{ApiError, AppState};

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
    let stored = |error: updraft_platform::UploadError| match error {
        updraft_platform::UploadError::DigestMismatch { .. } => {
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
    let size = state.platform.artifact_size(&digest).await.map_err(|error| ApiError::internal(&error))?;
    let Some(size) = size else {
        return Err(ApiError::not_found("artifact_not_found", format!("artifact {digest} is not stored")));
    };
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
    let canary = match &params.canary {
        Some(canary) => {
            if !(canary.percent > 0.0 && canary.percent < 100.0) {
                return Err(ApiError::bad_request(format!(
                    "a canary's share is above 0% and below 100%, not {}%",
                    canary.percent
                )));
            }
            let duration = updraft_model::parse_duration(&canary.duration)
                .map_err(|e| ApiError::bad_request(format!("canary duration: {e}")))?;
            Some(updraft_platform::CanarySpec { share: canary.percent / 100.0, duration })
        }
        None => None,
    };
    let request = DeployRequest { app: app.clone(), manifest: params.manifest, artifacts, canary };
    let outcome = state.platform.deploy(request).await?;
    let warnings = state.platform.deploy_warnings(&outcome);
    Ok(Json(DeployView::new(app.as_str(), &outcome, warnings)))
}
