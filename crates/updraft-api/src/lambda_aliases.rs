//! Lambda's alias operations: `CreateAlias`, `GetAlias`, `ListAliases`, `UpdateAlias`
//! and `DeleteAlias`, with `RoutingConfig.AdditionalVersionWeights` (one more version
//! taking a share of the alias's invocations, as Lambda allows).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_model::{AliasName, FunctionName, VersionNumber};
use updraft_platform::{AliasError, AliasInfo, AliasSpec};

use crate::AppState;
use crate::lambda::{LambdaError, function_arn};
use crate::lambda_functions::{ListQuery, call, listing, ok, page, parse};

const SMALL: usize = 64 * 1024;

pub(crate) fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    router
        .route("/2015-03-31/functions/{name}/aliases", get(list_aliases).post(create_alias))
        .route("/2015-03-31/functions/{name}/aliases/{alias}", get(get_alias).put(update_alias).delete(delete_alias))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingIn {
    #[serde(default)]
    additional_version_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasIn {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingIn>,
    revision_id: Option<String>,
}

fn function_name(raw: &str) -> Result<FunctionName, LambdaError> {
    let (plain, _) = updraft_platform::invoke_api::parse_function_name(raw);
    FunctionName::new(plain).map_err(|_| LambdaError::not_found(plain, None))
}

fn alias_name(raw: &str) -> Result<AliasName, LambdaError> {
    AliasName::new(raw).map_err(|invalid| LambdaError::invalid_parameter(invalid.to_string()))
}

/// `$LATEST` or a version's number.
fn version(text: &str) -> Result<Option<VersionNumber>, LambdaError> {
    if text == "$LATEST" {
        return Ok(None);
    }
    text.parse::<u32>().map(|n| Some(VersionNumber(n))).map_err(|_| {
        LambdaError::invalid_parameter(format!("FunctionVersion must be $LATEST or a version's number, not {text:?}"))
    })
}

fn routing(input: Option<RoutingIn>) -> Result<Option<(VersionNumber, f64)>, LambdaError> {
    let weights = input.map(|routing| routing.additional_version_weights).unwrap_or_default();
    if weights.len() > 1 {
        return Err(LambdaError::invalid_parameter(
            "AdditionalVersionWeights may name one version (Lambda's limit)".into(),
        ));
    }
    weights
        .into_iter()
        .next()
        .map(|(text, weight)| match version(&text)? {
            Some(version) => Ok((version, weight)),
            None => Err(LambdaError::invalid_parameter("AdditionalVersionWeights must name a version's number".into())),
        })
        .transpose()
}

fn view(alias: &AliasInfo) -> Value {
    let mut out = json!({
        "AliasArn": function_arn(alias.function.as_str(), Some(alias.name.as_str())),
        "Name": alias.name.as_str(),
        "FunctionVersion": alias.version.map_or_else(|| "$LATEST".to_owned(), |v| v.to_string()),
        "Description": alias.description,
        "RevisionId": alias.revision,
    });
    if let Some((version, weight)) = alias.routing {
        out["RoutingConfig"] = json!({ "AdditionalVersionWeights": { version.to_string(): weight } });
    }
    out
}

fn refused(error: AliasError) -> LambdaError {
    match error {
        AliasError::FunctionNotFound { ref function } => LambdaError::not_found(function.as_str(), None),
        AliasError::NotFound { ref function, ref alias } => LambdaError::user(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Message",
            format!("Alias not found: {}", function_arn(function.as_str(), Some(alias.as_str()))),
        ),
        AliasError::VersionNotFound { ref function, version } => LambdaError::user(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Message",
            format!("Function not found: {}", function_arn(function.as_str(), Some(&version.to_string()))),
        ),
        AliasError::Exists { ref function, ref alias } => LambdaError::conflict(format!(
            "Alias already exists: {}",
            function_arn(function.as_str(), Some(alias.as_str()))
        )),
        AliasError::RevisionChanged { .. } => LambdaError::precondition(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                .to_owned(),
        ),
        AliasError::Routing(message) => LambdaError::invalid_parameter(message),
        AliasError::Store(error) => LambdaError::service(error.to_string()),
    }
}

fn found(state: &AppState, function: &FunctionName, name: &AliasName) -> Result<Arc<AliasInfo>, LambdaError> {
    if state.platform.live_version(function).is_none() {
        return Err(LambdaError::not_found(function.as_str(), None));
    }
    state
        .platform
        .alias(function, name)
        .ok_or_else(|| refused(AliasError::NotFound { function: function.clone(), alias: name.clone() }))
}

/// `POST /2015-03-31/functions/{name}/aliases`
async fn create_alias(State(state): State<AppState>, Path(raw): Path<String>, request: Request) -> Response {
    call(state.clone(), request, SMALL, "CreateAlias", |body| async move {
        let function = function_name(&raw)?;
        let input: AliasIn = parse(&body)?;
        let name = alias_name(input.name.as_deref().unwrap_or_default())?;
        let Some(text) = input.function_version.as_deref() else {
            return Err(LambdaError::invalid_parameter("FunctionVersion is required".into()));
        };
        let spec = AliasSpec {
            version: version(text)?,
            routing: routing(input.routing_config)?,
            description: input.description.unwrap_or_default(),
        };
        let alias = state.platform.alias_put(&function, &name, spec, None).await.map_err(refused)?;
        ok(StatusCode::CREATED, view(&alias))
    })
    .await
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`: what is given changes, the rest stays.
async fn update_alias(
    State(state): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "UpdateAlias", |body| async move {
        let function = function_name(&raw)?;
        let name = alias_name(&alias)?;
        let input: AliasIn = parse(&body)?;
        let current = found(&state, &function, &name)?;
        let spec = AliasSpec {
            version: match input.function_version.as_deref() {
                Some(text) => version(text)?,
                None => current.version,
            },
            routing: match input.routing_config {
                Some(config) => routing(Some(config))?,
                None => current.routing,
            },
            description: input.description.unwrap_or_else(|| current.description.clone()),
        };
        let revision = input.revision_id.as_deref().unwrap_or("");
        let alias = state.platform.alias_put(&function, &name, spec, Some(revision)).await.map_err(refused)?;
        ok(StatusCode::OK, view(&alias))
    })
    .await
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`
async fn get_alias(
    State(state): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "GetAlias", |_| async move {
        let function = function_name(&raw)?;
        let name = alias_name(&alias)?;
        let alias = found(&state, &function, &name)?;
        ok(StatusCode::OK, view(&alias))
    })
    .await
}

/// `GET /2015-03-31/functions/{name}/aliases`
async fn list_aliases(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "ListAliases", |_| async move {
        let function = function_name(&raw)?;
        let only = query.function_version.as_deref().map(version).transpose()?;
        let aliases = state.platform.alias_list(&function).map_err(refused)?;
        let items = aliases
            .iter()
            .filter(|alias| only.is_none_or(|version| alias.version == version))
            .map(|alias| (alias.name.to_string(), view(alias)))
            .collect();
        let (listed, next) = page(items, &query)?;
        ok(StatusCode::OK, listing("Aliases", listed, next))
    })
    .await
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`
async fn delete_alias(
    State(state): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
    request: Request,
) -> Response {
    call(state.clone(), request, SMALL, "DeleteAlias", |_| async move {
        let function = function_name(&raw)?;
        let name = alias_name(&alias)?;
        state.platform.alias_delete(&function, &name).await.map_err(refused)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}
