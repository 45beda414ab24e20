//! Lambda's control plane for functions: `CreateFunction`, `GetFunction`,
//! `UpdateFunctionCode`, `UpdateFunctionConfiguration`, `PublishVersion`, reserved
//! concurrency and asynchronous-invocation settings, as botocore's model shapes them,
//! so that deploy scripts written for AWS (the AWS CLI, boto3 and its waiters) work
//! here unchanged.
//!
//! How Lambda's model maps onto Updraft's (`docs/lambda.md`, "Managing functions"):
//! every change makes an Updraft version, immutable and numbered, which serves at once.
//! The version serving is what Lambda calls `$LATEST`; `PublishVersion` names it (it
//! makes nothing new, as Lambda's does not when nothing changed since the last one).
//! A change is applied before the answer, so a function is `Active` and its last update
//! `Successful` as soon as the call returns. A function made here is the only function
//! of an app of its name; a function from a manifest can be changed here too, until its
//! manifest is deployed again.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_model::{
    ArtifactDigest, ByteSize, Destination, FunctionConfig, FunctionName, RecursiveLoop, RuntimeKind, TopicName,
    VersionNumber,
};
use updraft_platform::{
    ACCOUNT_ID, DeployError, FunctionDraft, FunctionError, FunctionInfo, MADE_THROUGH_LAMBDA, REGION, VersionInfo,
};

use crate::AppState;
use crate::lambda::{LambdaError, answer, function_arn, request_id, signed};

/// The largest request of an operation without code in it.
const SMALL: usize = 256 * 1024;
/// Versions and functions listed per page when `MaxItems` is not given (Lambda's 50).
const PAGE: usize = 50;
/// The bucket name that stands for this server's artifact store in `S3Bucket`.
const ARTIFACT_BUCKET: &str = "updraft-artifacts";

pub(crate) fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    router
        .route("/2015-03-31/functions", post(create_function).get(list_functions))
        .route("/2015-03-31/functions/", post(create_function).get(list_functions))
        .route("/2015-03-31/functions/{name}", get(get_function).delete(delete_function))
        .route("/2015-03-31/functions/{name}/configuration", get(get_configuration).put(update_configuration))
        .route("/2015-03-31/functions/{name}/code", put(update_code))
        .route("/2015-03-31/functions/{name}/versions", post(publish_version).get(list_versions))
        .route("/2017-10-31/functions/{name}/concurrency", put(put_concurrency).delete(delete_concurrency))
        .route("/2019-09-30/functions/{name}/concurrency", get(get_concurrency))
        .route("/2024-08-31/functions/{name}/recursion-config", put(put_recursion).get(get_recursion))
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            put(put_invoke_config).post(update_invoke_config).get(get_invoke_config).delete(delete_invoke_config),
        )
}

/// Checks the signature, reads the body (at most `limit` bytes), runs `operation` and
/// answers as Lambda does.
pub(crate) async fn call<F, Fut>(state: AppState, request: Request, limit: usize, name: &str, operation: F) -> Response
where
    F: FnOnce(Bytes) -> Fut,
    Fut: Future<Output = Result<Response, LambdaError>>,
{
    let request_id = request_id(&request);
    let result = async {
        let (_parts, body) = signed(&state.platform, request, limit, name).await?;
        operation(body).await
    }
    .await;
    answer(&request_id, result)
}

pub(crate) fn ok(status: StatusCode, body: Value) -> Result<Response, LambdaError> {
    Ok((status, axum::Json(body)).into_response())
}

/// A JSON body in the operation's shape; one that does not parse is Lambda's
/// `InvalidRequestContentException`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, LambdaError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|error| LambdaError::invalid_content(format!("Could not parse request body into json: {error}")))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// A function named by name, `name:qualifier` or ARN, and the qualifier given either way.
struct Named {
    raw: String,
    name: FunctionName,
    qualifier: Option<String>,
}

fn named(raw: &str, query_qualifier: Option<String>) -> Result<Named, LambdaError> {
    let (plain, path_qualifier) = updraft_platform::invoke_api::parse_function_name(raw);
    let qualifier = query_qualifier.or(path_qualifier.map(str::to_owned));
    let name = FunctionName::new(plain).map_err(|_| LambdaError::not_found(plain, qualifier.as_deref()))?;
    Ok(Named { raw: plain.to_owned(), name, qualifier })
}

impl Named {
    fn not_found(&self) -> LambdaError {
        LambdaError::not_found(&self.raw, self.qualifier.as_deref())
    }

    /// The version a qualifier names: `None` for none or `$LATEST` (the one serving).
    fn version(&self) -> Result<Option<VersionNumber>, LambdaError> {
        match self.qualifier.as_deref() {
            None | Some("$LATEST") => Ok(None),
            Some(number) => number.parse::<u32>().map(|n| Some(VersionNumber(n))).map_err(|_| self.not_found()),
        }
    }

    /// Refuses a qualifier on an operation that applies to the function as a whole.
    fn unqualified(&self, operation: &str) -> Result<(), LambdaError> {
        match self.qualifier.as_deref() {
            None | Some("$LATEST") => Ok(()),
            Some(qualifier) => Err(LambdaError::invalid_parameter(format!(
                "{operation} applies to the whole function here; leave out the qualifier {qualifier:?} \
                 (Updraft has no settings per version)"
            ))),
        }
    }
}

/// A platform error as Lambda's API reports it.
fn refused(named: &Named, error: FunctionError) -> LambdaError {
    match error {
        FunctionError::NotFound { .. } | FunctionError::VersionNotFound { .. } => named.not_found(),
        FunctionError::Exists { .. } => LambdaError::conflict(format!("Function already exist: {}", named.name)),
        FunctionError::AppExists { .. } => LambdaError::conflict(error.to_string()),
        FunctionError::RevisionChanged { .. } => LambdaError::precondition(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                .to_owned(),
        ),
        FunctionError::InvalidName(_) => LambdaError::invalid_parameter(error.to_string()),
        FunctionError::Deploy(deploy) => match deploy {
            DeployError::RouteConflict(_)
            | DeployError::FunctionOwnedByOtherApp { .. }
            | DeployError::WorkflowOwnedByOtherApp { .. } => LambdaError::conflict(deploy.to_string()),
            DeployError::Store(_) | DeployError::Artifact(_) | DeployError::SharedArtifact(_) => {
                LambdaError::service(deploy.to_string())
            }
            other => LambdaError::invalid_parameter(other.to_string()),
        },
        FunctionError::NoEarlierVersion { .. } | FunctionError::NoCanary { .. } | FunctionError::Store(_) => {
            LambdaError::service(error.to_string())
        }
    }
}

// --- Reading what a function is ---------------------------------------------------

/// The `FunctionConfiguration` of `version` of `function`; `published` shows it as
/// its number, otherwise as `$LATEST` (the version serving).
async fn configuration(state: &AppState, function: &FunctionInfo, version: &VersionInfo, published: bool) -> Value {
    let name = function.name.as_str();
    let config = &version.config;
    let qualifier = published.then(|| version.version.to_string());
    let code_size = state.platform.artifact_size(&version.artifact).await.ok().flatten().unwrap_or(0);
    let fingerprint = updraft_platform::version_fingerprint(&version.config, &version.artifact);
    let mut out = json!({
        "FunctionName": name,
        "FunctionArn": function_arn(name, qualifier.as_deref()),
        "Role": format!("arn:aws:iam::{ACCOUNT_ID}:role/updraft-function"),
        "CodeSize": code_size,
        "Description": config.description.clone().unwrap_or_default(),
        "Timeout": config.timeout.as_secs_f64().ceil() as u64,
        "MemorySize": config.memory.bytes() / ByteSize::MIB,
        "LastModified": timestamp(version.created_at),
        "CodeSha256": code_sha256(&version.artifact),
        "Version": qualifier.as_deref().unwrap_or("$LATEST"),
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": updraft_platform::revision_id(&fingerprint),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": { "Size": 512 },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}") },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
    });
    if let Some(runtime) = runtime_identifier(config) {
        out["Runtime"] = runtime.into();
    }
    if let Some(handler) = &config.handler {
        out["Handler"] = handler.as_str().into();
    }
    if !config.env.is_empty() {
        out["Environment"] = json!({ "Variables": config.env });
    }
    if let Some(topic) = &config.dead_letter_topic {
        out["DeadLetterConfig"] = json!({ "TargetArn": topic_arn(topic) });
    }
    out
}

/// The Lambda runtime a function shows: the one it was made with, or for a function
/// from a manifest the identifier of its kind; `None` for kinds Lambda has no name for.
fn runtime_identifier(config: &FunctionConfig) -> Option<String> {
    if let Some(runtime) = &config.lambda_runtime {
        return Some(runtime.clone());
    }
    match config.runtime {
        RuntimeKind::Python3 => Some("python3.12".into()),
        RuntimeKind::Nodejs => Some("nodejs20.x".into()),
        RuntimeKind::Provided => Some("provided.al2023".into()),
        RuntimeKind::Wasm | RuntimeKind::Http => None,
    }
}

/// Lambda's `CodeSha256`: the package's sha256, base64.
fn code_sha256(artifact: &ArtifactDigest) -> String {
    hex::decode(artifact.as_str()).map(|bytes| BASE64.encode(bytes)).unwrap_or_default()
}

/// Lambda's `LastModified`: `2024-01-31T12:00:00.000+0000`.
fn timestamp(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn topic_arn(topic: &TopicName) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{topic}")
}

async fn function_info(state: &AppState, named: &Named) -> Result<FunctionInfo, LambdaError> {
    state.platform.function_get(&named.name).await.map_err(|error| refused(named, error))
}

/// The version a qualifier names, with whether it is shown by number.
async fn qualified_version(
    state: &AppState,
    named: &Named,
    function: &FunctionInfo,
) -> Result<(VersionInfo, bool), LambdaError> {
    let alias = named.qualifier.as_deref().and_then(|text| updraft_model::AliasName::new(text).ok());
    let number = match alias.and_then(|alias| state.platform.alias(&named.name, &alias)) {
        Some(alias) => alias.version,
        None => named.version()?,
    };
    let Some(number) = number else { return Ok((function.current.clone(), false)) };
    let versions = state.platform.version_list(&named.name).await.map_err(|error| refused(named, error))?;
    let version = versions.into_iter().find(|v| v.version == number).ok_or_else(|| named.not_found())?;
    Ok((version, true))
}

/// `GET /2015-03-31/functions/{name}`
async fn get_function(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "GetFunction", |_| async {
        let named = named(&raw, query.qualifier)?;
        let function = function_info(&state, &named).await?;
        let (version, published) = qualified_version(&state, &named, &function).await?;
        let mut out = json!({
            "Configuration": configuration(&state, &function, &version, published).await,
            "Code": { "RepositoryType": "S3" },
            "Tags": {},
        });
        if let Some(reserved) = function.current.config.concurrency {
            out["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
        }
        ok(StatusCode::OK, out)
    })
    .await
}

/// `GET /2015-03-31/functions/{name}/configuration`
async fn get_configuration(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "GetFunctionConfiguration", |_| async {
        let named = named(&raw, query.qualifier)?;
        let function = function_info(&state, &named).await?;
        let (version, published) = qualified_version(&state, &named, &function).await?;
        ok(StatusCode::OK, configuration(&state, &function, &version, published).await)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
    #[serde(rename = "FunctionVersion")]
    pub(crate) function_version: Option<String>,
}

/// One page of `items` (each with its sort key) from `marker`, and the marker of the
/// next page when there is one.
pub(crate) fn page<T>(items: Vec<(String, T)>, query: &ListQuery) -> Result<(Vec<T>, Option<String>), LambdaError> {
    let size = match query.max_items {
        Some(0) => return Err(LambdaError::invalid_parameter("MaxItems must be at least 1".into())),
        Some(n) => n.min(10_000),
        None => PAGE,
    };
    let mut rest = items.into_iter().skip_while(|(key, _)| query.marker.as_ref().is_some_and(|marker| key < marker));
    let taken: Vec<T> = rest.by_ref().take(size).map(|(_, item)| item).collect();
    let next = rest.next().map(|(key, _)| key);
    Ok((taken, next))
}

/// `GET /2015-03-31/functions`
async fn list_functions(State(state): State<AppState>, Query(query): Query<ListQuery>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "ListFunctions", |_| async {
        let all = match query.function_version.as_deref() {
            None => false,
            Some("ALL") => true,
            Some(other) => {
                return Err(LambdaError::invalid_parameter(format!("FunctionVersion must be ALL, not {other:?}")));
            }
        };
        let functions =
            state.platform.function_list().await.map_err(|error| LambdaError::service(error.to_string()))?;
        let mut items = Vec::new();
        for function in &functions {
            items.push((format!("{}:", function.name), (function, None)));
            if all {
                let versions = state.platform.version_list(&function.name).await.unwrap_or_default();
                for version in versions.into_iter().rev() {
                    items.push((format!("{}:{:010}", function.name, version.version.0), (function, Some(version))));
                }
            }
        }
        let (taken, next) = page(items, &query)?;
        let mut listed = Vec::new();
        for (function, version) in taken {
            listed.push(match version {
                Some(version) => configuration(&state, function, &version, true).await,
                None => configuration(&state, function, &function.current, false).await,
            });
        }
        ok(StatusCode::OK, listing("Functions", listed, next))
    })
    .await
}

/// `GET /2015-03-31/functions/{name}/versions`
async fn list_versions(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "ListVersionsByFunction", |_| async {
        let named = named(&raw, None)?;
        let function = function_info(&state, &named).await?;
        let versions = state.platform.version_list(&named.name).await.map_err(|error| refused(&named, error))?;
        let mut items = vec![("0".to_owned(), (function.current.clone(), false))];
        items.extend(versions.into_iter().rev().map(|v| (format!("{:010}", v.version.0), (v, true))));
        let (taken, next) = page(items, &query)?;
        let mut listed = Vec::new();
        for (version, published) in taken {
            listed.push(configuration(&state, &function, &version, published).await);
        }
        ok(StatusCode::OK, listing("Versions", listed, next))
    })
    .await
}

/// A page of a `List*` operation: its items under `key`, and `NextMarker` when more follow.
pub(crate) fn listing(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = json!({ key: items });
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    out
}

// --- Making and changing functions ------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeIn {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    s3_key: Option<String>,
    image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvironmentIn {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeadLetterIn {
    target_arn: Option<String>,
}

/// What `CreateFunction` and `UpdateFunctionConfiguration` may set.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Settings {
    runtime: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u64>,
    memory_size: Option<u64>,
    environment: Option<EnvironmentIn>,
    dead_letter_config: Option<DeadLetterIn>,
    layers: Option<Vec<String>>,
    file_system_configs: Option<Vec<Value>>,
    revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateFunctionIn {
    function_name: String,
    code: CodeIn,
    #[serde(default)]
    publish: bool,
    package_type: Option<String>,
    architectures: Option<Vec<String>>,
    #[serde(flatten)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateCodeIn {
    #[serde(flatten)]
    code: CodeIn,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    dry_run: bool,
    revision_id: Option<String>,
    architectures: Option<Vec<String>>,
}

/// The request limit of an operation that may carry a zip: the artifact limit, base64.
fn code_limit(state: &AppState) -> usize {
    state.config.max_artifact_bytes / 3 * 4 + SMALL
}

/// The Updraft runtime that runs a Lambda runtime identifier.
fn runtime_kind(identifier: &str) -> Result<RuntimeKind, LambdaError> {
    let versioned = |prefix: &str| {
        identifier
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.' || c == 'x'))
    };
    if versioned("python3.") {
        Ok(RuntimeKind::Python3)
    } else if versioned("nodejs") && identifier.ends_with(".x") {
        Ok(RuntimeKind::Nodejs)
    } else if matches!(identifier, "provided" | "provided.al2" | "provided.al2023") {
        Ok(RuntimeKind::Provided)
    } else {
        Err(LambdaError::invalid_parameter(format!(
            "The runtime parameter of {identifier} is not supported on this server: it runs python3.x, nodejsNN.x \
             and provided (provided.al2, provided.al2023) functions; build other languages as a provided bootstrap"
        )))
    }
}

fn check_architectures(architectures: Option<&Vec<String>>) -> Result<(), LambdaError> {
    match architectures.map(Vec::as_slice) {
        None | Some([]) => Ok(()),
        Some([one]) if one == "x86_64" => Ok(()),
        Some(other) => Err(LambdaError::invalid_parameter(format!(
            "Architectures {other:?} is not supported: this server runs x86_64 functions"
        ))),
    }
}

/// Applies `settings` to `config`, checked against Lambda's bounds and the server's.
fn apply_settings(state: &AppState, config: &mut FunctionConfig, settings: Settings) -> Result<(), LambdaError> {
    if settings.layers.as_ref().is_some_and(|layers| !layers.is_empty()) {
        return Err(LambdaError::invalid_parameter(
            "Layers are not supported on this server; put the layer's files in the function's zip".into(),
        ));
    }
    if settings.file_system_configs.as_ref().is_some_and(|configs| !configs.is_empty()) {
        return Err(LambdaError::invalid_parameter("FileSystemConfigs (EFS) are not supported on this server".into()));
    }
    let limits = state.platform.limits();
    if let Some(runtime) = settings.runtime {
        config.runtime = runtime_kind(&runtime)?;
        config.lambda_runtime = Some(runtime);
    }
    if let Some(handler) = settings.handler {
        if handler.is_empty() || handler.len() > 128 || handler.chars().any(char::is_whitespace) {
            return Err(LambdaError::invalid_parameter(format!(
                "Handler {handler:?} is not valid: 1 to 128 characters without spaces, like index.handler"
            )));
        }
        config.handler = Some(handler);
    }
    if let Some(description) = settings.description {
        if description.chars().count() > 256 {
            return Err(LambdaError::invalid_parameter("Description must be at most 256 characters".into()));
        }
        config.description = (!description.is_empty()).then_some(description);
    }
    if let Some(seconds) = settings.timeout {
        let timeout = Duration::from_secs(seconds);
        if seconds == 0 || timeout > limits.max_timeout {
            return Err(LambdaError::invalid_parameter(format!(
                "Timeout {seconds} is out of range: give 1 to {} seconds",
                limits.max_timeout.as_secs()
            )));
        }
        config.timeout = timeout;
    }
    if let Some(mib) = settings.memory_size {
        let memory = ByteSize::mib(mib);
        if memory < limits.min_memory || memory > limits.max_memory {
            return Err(LambdaError::invalid_parameter(format!(
                "MemorySize {mib} is out of range: give {} to {} MB",
                limits.min_memory.bytes() / ByteSize::MIB,
                limits.max_memory.bytes() / ByteSize::MIB
            )));
        }
        config.memory = memory;
    }
    if let Some(environment) = settings.environment {
        if let Some(name) = environment.variables.keys().find(|name| !valid_variable(name)) {
            return Err(LambdaError::invalid_parameter(format!(
                "Environment variable name {name:?} is not valid: start with a letter, then letters, digits and _"
            )));
        }
        config.env = environment.variables;
    }
    if let Some(dead_letter) = settings.dead_letter_config {
        config.dead_letter_topic = match dead_letter.target_arn.as_deref() {
            None | Some("") => None,
            Some(arn) => Some(sns_topic(arn, "DeadLetterConfig.TargetArn")?),
        };
    }
    Ok(())
}

fn valid_variable(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Updraft topic an SNS topic's ARN names.
fn sns_topic(arn: &str, field: &str) -> Result<TopicName, LambdaError> {
    let topic = arn.strip_prefix("arn:aws:sns:").and_then(|rest| rest.rsplit(':').next());
    match topic.map(TopicName::new) {
        Some(Ok(topic)) => Ok(topic),
        _ => Err(LambdaError::invalid_parameter(format!(
            "{field} {arn:?} is not supported: name an SNS topic (arn:aws:sns:{REGION}:{ACCOUNT_ID}:NAME), which is \
             the Updraft topic NAME"
        ))),
    }
}

/// Stores the code a request carries and returns its digest: a zip in `ZipFile`, or
/// an artifact uploaded before (`PUT /v1/artifacts/{sha256}`) named by `S3Key`.
async fn stored_code(state: &AppState, code: &CodeIn) -> Result<ArtifactDigest, LambdaError> {
    if code.image_uri.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Container images (ImageUri) are not supported on this server; deploy a .zip package".into(),
        ));
    }
    match (&code.zip_file, &code.s3_bucket, &code.s3_key) {
        (Some(encoded), None, None) => {
            let zip = BASE64
                .decode(encoded)
                .map_err(|error| LambdaError::invalid_parameter(format!("ZipFile is not base64: {error}")))?;
            if zip.is_empty() {
                return Err(LambdaError::invalid_parameter("ZipFile is empty; send the function's .zip".into()));
            }
            if zip.len() > state.config.max_artifact_bytes {
                return Err(LambdaError::too_large_for(state.config.max_artifact_bytes, "CreateFunction"));
            }
            let digest = ArtifactDigest::of(&zip);
            let failed = |error: updraft_platform::UploadError| LambdaError::service(error.to_string());
            let mut writer = state.platform.artifact_writer().await.map_err(failed)?;
            writer.write(&zip).await.map_err(failed)?;
            writer.finish(digest).await.map_err(failed)
        }
        (None, Some(bucket), Some(key)) if bucket == ARTIFACT_BUCKET => {
            let digest = ArtifactDigest::parse(key).map_err(|_| {
                LambdaError::invalid_parameter(format!("S3Key {key:?} is not an artifact's sha256 (64 hex digits)"))
            })?;
            match state.platform.artifact_size(&digest).await {
                Ok(Some(_)) => Ok(digest),
                Ok(None) => Err(LambdaError::invalid_parameter(format!(
                    "artifact {digest} is not uploaded; upload it first with PUT /v1/artifacts/{}",
                    digest.as_str()
                ))),
                Err(error) => Err(LambdaError::service(error.to_string())),
            }
        }
        (None, Some(_), _) | (None, _, Some(_)) => Err(LambdaError::invalid_parameter(format!(
            "this server has no S3: send the zip as ZipFile, or upload it with PUT /v1/artifacts/{{sha256}} and \
             name it with S3Bucket={ARTIFACT_BUCKET}, S3Key={{sha256}}"
        ))),
        _ => Err(LambdaError::invalid_parameter("Code must give either ZipFile or S3Bucket and S3Key".into())),
    }
}

/// `POST /2015-03-31/functions`
async fn create_function(State(state): State<AppState>, request: Request) -> Response {
    let limit = code_limit(&state);
    call(state.clone(), request, limit, "CreateFunction", |body| async move {
        let input: CreateFunctionIn = parse(&body)?;
        let (plain, qualifier) = updraft_platform::invoke_api::parse_function_name(&input.function_name);
        if qualifier.is_some() {
            return Err(LambdaError::invalid_parameter("FunctionName of a new function takes no qualifier".into()));
        }
        let name = FunctionName::new(plain).map_err(|_| {
            LambdaError::invalid_parameter(format!(
                "FunctionName {plain:?} is not valid here: use lowercase letters, digits, '-' and '_', starting \
                 with a letter, at most 64 characters"
            ))
        })?;
        let named = Named { raw: plain.to_owned(), name, qualifier: None };
        if input.package_type.as_deref().is_some_and(|kind| kind != "Zip") {
            return Err(LambdaError::invalid_parameter(
                "PackageType Image is not supported on this server; deploy a .zip package".into(),
            ));
        }
        check_architectures(input.architectures.as_ref())?;
        let Some(runtime) = input.settings.runtime.clone() else {
            return Err(LambdaError::invalid_parameter("Runtime is required for a .zip deployment package".into()));
        };
        let mut config = FunctionConfig::with_defaults(runtime_kind(&runtime)?, state.platform.limits());
        apply_settings(&state, &mut config, input.settings)?;
        if config.runtime != RuntimeKind::Provided && config.handler.is_none() {
            return Err(LambdaError::invalid_parameter(format!(
                "Handler is required for runtime {runtime}, like lambda_function.lambda_handler"
            )));
        }
        let artifact = stored_code(&state, &input.code).await?;
        let manifest = made_manifest(&named.name, &config);
        let draft = FunctionDraft { artifact, config };
        let function =
            state.platform.function_create(&named.name, draft, manifest).await.map_err(|e| refused(&named, e))?;
        ok(StatusCode::CREATED, configuration(&state, &function, &function.current, input.publish).await)
    })
    .await
}

/// The manifest stored with the app of a function made here: it deploys the function
/// as it was made (from its zip saved as `function.zip`), and says how it was made.
fn made_manifest(name: &FunctionName, config: &FunctionConfig) -> String {
    let mut function = toml::Table::new();
    let runtime = match config.runtime {
        RuntimeKind::Python3 => "python3",
        RuntimeKind::Nodejs => "nodejs",
        RuntimeKind::Provided => "provided",
        RuntimeKind::Wasm => "wasm",
        RuntimeKind::Http => "http",
    };
    function.insert("runtime".into(), runtime.into());
    if let Some(handler) = &config.handler {
        function.insert("handler".into(), handler.as_str().into());
    }
    function.insert("source".into(), "function.zip".into());
    function.insert("memory".into(), format!("{}MiB", config.memory.bytes() / ByteSize::MIB).into());
    function.insert("timeout".into(), format!("{}s", config.timeout.as_secs()).into());
    if let Some(description) = &config.description {
        function.insert("description".into(), description.as_str().into());
    }
    if !config.env.is_empty() {
        let env: toml::Table = config.env.iter().map(|(k, v)| (k.clone(), toml::Value::from(v.as_str()))).collect();
        function.insert("env".into(), env.into());
    }
    if let Some(topic) = &config.dead_letter_topic {
        function.insert("dead_letter_topic".into(), topic.as_str().into());
    }
    let functions = toml::Table::from_iter([(name.to_string(), toml::Value::from(function))]);
    let app = toml::Table::from_iter([("name".to_owned(), toml::Value::from(name.as_str()))]);
    let root = toml::Table::from_iter([("app".to_owned(), app.into()), ("functions".to_owned(), functions.into())]);
    format!(
        "{MADE_THROUGH_LAMBDA}, as below. Later changes through the API are kept with its versions, not here.\n{}",
        toml::to_string(&root).unwrap_or_default()
    )
}

/// `PUT /2015-03-31/functions/{name}/code`
async fn update_code(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    let limit = code_limit(&state);
    call(state.clone(), request, limit, "UpdateFunctionCode", |body| async move {
        let named = named(&raw, None)?;
        named.unqualified("UpdateFunctionCode")?;
        let input: UpdateCodeIn = parse(&body)?;
        check_architectures(input.architectures.as_ref())?;
        let function = function_info(&state, &named).await?;
        let artifact = stored_code(&state, &input.code).await?;
        if input.dry_run {
            let mut version = function.current.clone();
            version.artifact = artifact;
            return ok(StatusCode::OK, configuration(&state, &function, &version, false).await);
        }
        let function = state
            .platform
            .function_edit(&named.name, input.revision_id.as_deref(), |draft| FunctionDraft { artifact, ..draft })
            .await
            .map_err(|error| refused(&named, error))?;
        ok(StatusCode::OK, configuration(&state, &function, &function.current, input.publish).await)
    })
    .await
}

/// `PUT /2015-03-31/functions/{name}/configuration`
async fn update_configuration(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "UpdateFunctionConfiguration", |body| async move {
        let named = named(&raw, None)?;
        named.unqualified("UpdateFunctionConfiguration")?;
        let mut settings: Settings = parse(&body)?;
        let revision = settings.revision_id.take();
        let current = function_info(&state, &named).await?;
        // Checked on the configuration serving now; applied under the change lock to
        // the one serving then, which `revision` (when given) pins to this one.
        let mut checked = current.current.config.clone();
        apply_settings(&state, &mut checked, settings)?;
        if checked.runtime != RuntimeKind::Provided
            && checked.runtime != RuntimeKind::Wasm
            && checked.runtime != RuntimeKind::Http
            && checked.handler.is_none()
        {
            return Err(LambdaError::invalid_parameter("Handler is required for this runtime".into()));
        }
        let wanted = checked.clone();
        let before = current.current.config.clone();
        let function = state
            .platform
            .function_edit(&named.name, revision.as_deref(), move |draft| FunctionDraft {
                config: merged(&before, &wanted, draft.config),
                ..draft
            })
            .await
            .map_err(|error| refused(&named, error))?;
        ok(StatusCode::OK, configuration(&state, &function, &function.current, false).await)
    })
    .await
}

/// `now` with what a change turned `before` into `wanted`: the Lambda settings a
/// change names are taken from `wanted`, the rest stays as `now` has it (another change
/// may have landed in between).
fn merged(before: &FunctionConfig, wanted: &FunctionConfig, mut now: FunctionConfig) -> FunctionConfig {
    macro_rules! take_changed {
        ($($field:ident),*) => {
            $(if before.$field != wanted.$field {
                now.$field = wanted.$field.clone();
            })*
        };
    }
    take_changed!(runtime, lambda_runtime, handler, description, timeout, memory, env, dead_letter_topic);
    now
}

/// `DELETE /2015-03-31/functions/{name}`
async fn delete_function(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "DeleteFunction", |_| async {
        let named = named(&raw, query.qualifier)?;
        if named.qualifier.is_some() {
            return Err(LambdaError::invalid_parameter(
                "deleting one version is not supported here (versions are the function's rollback history); \
                 delete the function without a qualifier"
                    .into(),
            ));
        }
        state.platform.function_delete(&named.name).await.map_err(|error| refused(&named, error))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishIn {
    code_sha256: Option<String>,
    revision_id: Option<String>,
}

/// `POST /2015-03-31/functions/{name}/versions`: names the version serving now.
async fn publish_version(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "PublishVersion", |body| async move {
        let named = named(&raw, None)?;
        named.unqualified("PublishVersion")?;
        let input: PublishIn = parse(&body)?;
        let function = function_info(&state, &named).await?;
        let current = &function.current;
        if let Some(expected) = input.code_sha256.as_deref()
            && expected != code_sha256(&current.artifact)
        {
            return Err(LambdaError::invalid_parameter(format!(
                "CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({}). Please try again \
                 with the CodeSHA256 in $LATEST.",
                code_sha256(&current.artifact)
            )));
        }
        if let Some(revision) = input.revision_id.as_deref() {
            let fingerprint = updraft_platform::version_fingerprint(&current.config, &current.artifact);
            if updraft_platform::revision_id(&fingerprint) != revision {
                return Err(refused(&named, FunctionError::RevisionChanged { function: named.name.clone() }));
            }
        }
        ok(StatusCode::CREATED, configuration(&state, &function, current, true).await)
    })
    .await
}

// --- Reserved concurrency -----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConcurrencyIn {
    reserved_concurrent_executions: u32,
}

/// `PUT /2017-10-31/functions/{name}/concurrency`
async fn put_concurrency(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "PutFunctionConcurrency", |body| async move {
        let named = named(&raw, None)?;
        named.unqualified("PutFunctionConcurrency")?;
        let input: ConcurrencyIn = parse(&body)?;
        let reserved = input.reserved_concurrent_executions;
        let max = state.platform.limits().max_concurrency;
        if reserved > max {
            return Err(LambdaError::invalid_parameter(format!(
                "ReservedConcurrentExecutions {reserved} is above this server's limit for one function ({max})"
            )));
        }
        let function = function_info(&state, &named).await?;
        if function.current.config.min_instances > reserved {
            return Err(LambdaError::invalid_parameter(format!(
                "ReservedConcurrentExecutions {reserved} is below the function's min_instances ({})",
                function.current.config.min_instances
            )));
        }
        edit_config(&state, &named, |config| config.concurrency = Some(reserved)).await?;
        ok(StatusCode::OK, json!({ "ReservedConcurrentExecutions": reserved }))
    })
    .await
}

/// `GET /2019-09-30/functions/{name}/concurrency`
async fn get_concurrency(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "GetFunctionConcurrency", |_| async {
        let named = named(&raw, None)?;
        let function = function_info(&state, &named).await?;
        match function.current.config.concurrency {
            Some(reserved) => ok(StatusCode::OK, json!({ "ReservedConcurrentExecutions": reserved })),
            None => ok(StatusCode::OK, json!({})),
        }
    })
    .await
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`
async fn delete_concurrency(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "DeleteFunctionConcurrency", |_| async {
        let named = named(&raw, None)?;
        named.unqualified("DeleteFunctionConcurrency")?;
        edit_config(&state, &named, |config| config.concurrency = None).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

// --- Recursive loop detection --------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecursionIn {
    recursive_loop: String,
}

/// Lambda's name for a `RecursiveLoop` setting.
fn recursion_name(setting: RecursiveLoop) -> &'static str {
    match setting {
        RecursiveLoop::Terminate => "Terminate",
        RecursiveLoop::Allow => "Allow",
    }
}

/// `PUT /2024-08-31/functions/{name}/recursion-config`
async fn put_recursion(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "PutFunctionRecursionConfig", |body| async move {
        let named = named(&raw, None)?;
        named.unqualified("PutFunctionRecursionConfig")?;
        let input: RecursionIn = parse(&body)?;
        let setting = match input.recursive_loop.as_str() {
            "Allow" => RecursiveLoop::Allow,
            "Terminate" => RecursiveLoop::Terminate,
            other => {
                return Err(LambdaError::invalid_parameter(format!(
                    "RecursiveLoop must be Allow or Terminate, not {other:?}"
                )));
            }
        };
        edit_config(&state, &named, |config| config.recursive_loop = setting).await?;
        ok(StatusCode::OK, json!({ "RecursiveLoop": recursion_name(setting) }))
    })
    .await
}

/// `GET /2024-08-31/functions/{name}/recursion-config`
async fn get_recursion(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "GetFunctionRecursionConfig", |_| async {
        let named = named(&raw, None)?;
        let function = function_info(&state, &named).await?;
        ok(StatusCode::OK, json!({ "RecursiveLoop": recursion_name(function.current.config.recursive_loop) }))
    })
    .await
}

/// Changes the serving version's configuration with `change` (a new version when it
/// changes anything).
async fn edit_config(
    state: &AppState,
    named: &Named,
    change: impl FnOnce(&mut FunctionConfig),
) -> Result<FunctionInfo, LambdaError> {
    state
        .platform
        .function_edit(&named.name, None, |mut draft| {
            change(&mut draft.config);
            draft
        })
        .await
        .map_err(|error| refused(named, error))
}

// --- Asynchronous invocation settings ----------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationIn {
    destination: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationsIn {
    on_success: Option<DestinationIn>,
    on_failure: Option<DestinationIn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InvokeConfigIn {
    maximum_retry_attempts: Option<u32>,
    maximum_event_age_in_seconds: Option<u64>,
    destination_config: Option<DestinationsIn>,
}

/// Lambda's defaults for asynchronous invocation, which a function without an
/// `EventInvokeConfig` has.
fn invoke_defaults(config: &mut FunctionConfig) {
    let defaults = FunctionConfig::with_defaults(config.runtime, &updraft_model::Limits::default());
    config.retries = defaults.retries;
    config.max_event_age = defaults.max_event_age;
    config.on_success = None;
    config.on_failure = None;
}

fn has_invoke_config(config: &FunctionConfig) -> bool {
    let mut defaults = config.clone();
    invoke_defaults(&mut defaults);
    defaults != *config
}

/// Where an ARN sends records: a function's, or an SNS topic's (an Updraft topic).
fn destination(arn: &str, field: &str) -> Result<Destination, LambdaError> {
    if arn.starts_with("arn:aws:lambda:") {
        let (name, _) = updraft_platform::invoke_api::parse_function_name(arn);
        return FunctionName::new(name).map(Destination::Function).map_err(|_| {
            LambdaError::invalid_parameter(format!("{field} names function {name:?}, which is not a valid name here"))
        });
    }
    if arn.starts_with("arn:aws:sns:") {
        return sns_topic(arn, field).map(Destination::Topic);
    }
    Err(LambdaError::invalid_parameter(format!(
        "{field} {arn:?} is not supported: name a Lambda function's ARN or an SNS topic's (an Updraft topic)"
    )))
}

fn destination_arn(destination: &Destination) -> String {
    match destination {
        Destination::Function(name) => function_arn(name.as_str(), None),
        Destination::Topic(topic) => topic_arn(topic),
    }
}

/// Applies an `EventInvokeConfig` to `config`: over Lambda's defaults for `Put`, over
/// what is set for `Update`.
fn apply_invoke_config(config: &mut FunctionConfig, input: InvokeConfigIn, replace: bool) -> Result<(), LambdaError> {
    if replace {
        invoke_defaults(config);
    }
    if let Some(retries) = input.maximum_retry_attempts {
        if retries > 2 {
            return Err(LambdaError::invalid_parameter("MaximumRetryAttempts must be 0, 1 or 2".into()));
        }
        config.retries = retries;
    }
    if let Some(seconds) = input.maximum_event_age_in_seconds {
        if !(60..=21_600).contains(&seconds) {
            return Err(LambdaError::invalid_parameter("MaximumEventAgeInSeconds must be between 60 and 21600".into()));
        }
        config.max_event_age = Duration::from_secs(seconds);
    }
    if let Some(destinations) = input.destination_config {
        for (slot, given, field) in [
            (&mut config.on_success, destinations.on_success, "DestinationConfig.OnSuccess.Destination"),
            (&mut config.on_failure, destinations.on_failure, "DestinationConfig.OnFailure.Destination"),
        ] {
            if let Some(given) = given {
                *slot = match given.destination.as_deref() {
                    None | Some("") => None,
                    Some(arn) => Some(destination(arn, field)?),
                };
            }
        }
    }
    Ok(())
}

fn invoke_config_view(function: &FunctionInfo) -> Value {
    let config = &function.current.config;
    let arn = |destination: &Option<Destination>| match destination {
        Some(destination) => json!({ "Destination": destination_arn(destination) }),
        None => json!({}),
    };
    json!({
        "LastModified": function.updated_at as f64 / 1000.0,
        "FunctionArn": function_arn(function.name.as_str(), Some("$LATEST")),
        "MaximumRetryAttempts": config.retries,
        "MaximumEventAgeInSeconds": config.max_event_age.as_secs(),
        "DestinationConfig": { "OnSuccess": arn(&config.on_success), "OnFailure": arn(&config.on_failure) },
    })
}

async fn edit_invoke_config(
    state: AppState,
    raw: String,
    query: QualifierQuery,
    body: Bytes,
    replace: bool,
) -> Result<Response, LambdaError> {
    let named = named(&raw, query.qualifier)?;
    named.unqualified("PutFunctionEventInvokeConfig")?;
    let input: InvokeConfigIn = parse(&body)?;
    // Checked before the change, so a bad value is refused with nothing applied.
    let mut checked = function_info(&state, &named).await?.current.config;
    apply_invoke_config(&mut checked, input, replace)?;
    let function = edit_config(&state, &named, |config| {
        config.retries = checked.retries;
        config.max_event_age = checked.max_event_age;
        config.on_success = checked.on_success.clone();
        config.on_failure = checked.on_failure.clone();
    })
    .await?;
    ok(StatusCode::OK, invoke_config_view(&function))
}

/// `PUT /2019-09-25/functions/{name}/event-invoke-config`
async fn put_invoke_config(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "PutFunctionEventInvokeConfig", |body| {
        edit_invoke_config(state, raw, query, body, true)
    })
    .await
}

/// `POST /2019-09-25/functions/{name}/event-invoke-config`
async fn update_invoke_config(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "UpdateFunctionEventInvokeConfig", |body| {
        edit_invoke_config(state, raw, query, body, false)
    })
    .await
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config`
async fn get_invoke_config(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "GetFunctionEventInvokeConfig", |_| async {
        let named = named(&raw, query.qualifier)?;
        let function = function_info(&state, &named).await?;
        if !has_invoke_config(&function.current.config) {
            return Err(LambdaError::user(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "Message",
                format!("The function {} doesn't have an EventInvokeConfig", function_arn(named.name.as_str(), None)),
            ));
        }
        ok(StatusCode::OK, invoke_config_view(&function))
    })
    .await
}

/// `DELETE /2019-09-25/functions/{name}/event-invoke-config`
async fn delete_invoke_config(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "DeleteFunctionEventInvokeConfig", |_| async {
        let named = named(&raw, query.qualifier)?;
        named.unqualified("DeleteFunctionEventInvokeConfig")?;
        edit_config(&state, &named, invoke_defaults).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_runtime_identifiers_map_to_the_hosts_runtimes_or_are_refused_by_name() {
        assert_eq!(runtime_kind("python3.12").ok(), Some(RuntimeKind::Python3));
        assert_eq!(runtime_kind("python3.9").ok(), Some(RuntimeKind::Python3));
        assert_eq!(runtime_kind("nodejs20.x").ok(), Some(RuntimeKind::Nodejs));
        assert_eq!(runtime_kind("provided.al2023").ok(), Some(RuntimeKind::Provided));
        assert_eq!(runtime_kind("provided").ok(), Some(RuntimeKind::Provided));
        for refused in ["java21", "dotnet8", "ruby3.3", "go1.x", "python2.7", "nodejs", "python3."] {
            assert!(runtime_kind(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn pages_resume_at_their_marker_and_say_where_the_next_starts() {
        let items: Vec<(String, u32)> = (1..=5).map(|n| (format!("f{n}"), n)).collect();
        let query = ListQuery { max_items: Some(2), ..ListQuery::default() };
        let (first, next) = page(items.clone(), &query).unwrap();
        assert_eq!((first, next.as_deref()), (vec![1, 2], Some("f3")));
        let query = ListQuery { max_items: Some(2), marker: next, ..ListQuery::default() };
        let (second, next) = page(items.clone(), &query).unwrap();
        assert_eq!((second, next.as_deref()), (vec![3, 4], Some("f5")));
        let query = ListQuery { max_items: Some(2), marker: next, ..ListQuery::default() };
        assert_eq!(page(items, &query).unwrap(), (vec![5], None));
    }

    #[test]
    fn a_code_sha256_is_the_packages_digest_in_base64() {
        let digest = ArtifactDigest::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(code_sha256(&digest), BASE64.encode([0xab; 32]));
    }

    #[test]
    fn a_made_manifest_deploys_the_function_as_it_was_made() {
        let limits = updraft_model::Limits::default();
        let mut config = FunctionConfig::with_defaults(RuntimeKind::Python3, &limits);
        config.handler = Some("app.handler".into());
        config.env = BTreeMap::from([("GREETING".into(), "a \"quoted\" value".into())]);
        config.description = Some("Says hello".into());
        let name = FunctionName::new("greeter").unwrap();
        let text = made_manifest(&name, &config);
        assert!(text.starts_with(MADE_THROUGH_LAMBDA), "{text}");
        let manifest = updraft_model::Manifest::parse(&text, "updraft.toml", &limits).unwrap();
        let parsed = &manifest.functions[&name].config;
        assert_eq!(
            (parsed.handler.as_deref(), &parsed.env, &parsed.description),
            (Some("app.handler"), &config.env, &config.description)
        );
        assert_eq!(parsed.memory, config.memory);
    }
}
