//! The OpenAPI document, generated from the handlers' annotations. A committed copy
//! lives at `docs/openapi.json`; a test fails when the two drift.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::control;
use crate::params::{DeployParams, RollbackParams};
use crate::views::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Updraft control plane",
        version = "1",
        description = "Deploy apps, manage functions and versions, invoke, and read logs. Every /v1 route except this document needs `Authorization: Bearer <API key>`."
    ),
    paths(
        control::openapi,
        control::artifact_put,
        control::artifact_get,
        control::app_deploy,
        control::function_list,
        control::function_get,
        control::function_delete,
        control::version_list,
        control::function_rollback,
        control::function_invoke,
        control::log_list,
    ),
    components(schemas(
        ErrorBody, ErrorView, ProblemView, ArtifactView, DeployView, DeployedFunctionView, FunctionView,
        ConfigView, RouteView, FunctionListView, VersionView, VersionListView, LogLineView, LogListView,
        DeployParams, RollbackParams,
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as pretty JSON, ending in a newline.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}
