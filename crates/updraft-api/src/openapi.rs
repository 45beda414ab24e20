//! The OpenAPI document, generated from the handlers' annotations. A committed copy
//! lives at `docs/openapi.json`; a test fails when the two drift.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::params::{CanaryParams, DeployParams, RollbackParams};
use crate::v1;
use crate::views::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Updraft control plane",
        version = "1",
        description = "Deploy apps, manage functions and versions, invoke, and read logs. Every /v1 route except this document needs `Authorization: Bearer <API key>`."
    ),
    paths(
        v1::openapi,
        v1::apps::artifact_put,
        v1::apps::artifact_get,
        v1::apps::app_deploy,
        v1::functions::function_list,
        v1::functions::function_get,
        v1::functions::function_delete,
        v1::functions::version_list,
        v1::functions::function_rollback,
        v1::functions::function_promote,
        v1::functions::function_invoke,
        v1::functions::function_invoke_async,
        v1::events::async_event_get,
        v1::events::failed_event_list,
        v1::events::async_event_retry,
        v1::events::async_retry_all,
        v1::events::queue_redrive,
        v1::events::queue_list,
        v1::events::workflow_list,
        v1::events::execution_list,
        v1::events::topic_publish,
        v1::events::topic_list,
        v1::events::queue_send,
        v1::events::queue_get,
        v1::events::workflow_start,
        v1::events::execution_get,
        v1::observe::log_list,
        v1::observe::log_search,
        v1::observe::log_stream,
        v1::observe::function_stats,
        v1::observe::invocation_list,
        v1::observe::trace_list,
        v1::observe::trace_get,
        v1::observe::usage,
        v1::observe::metrics,
        v1::keys::key_create,
        v1::keys::key_list,
        v1::keys::key_delete,
        v1::status::status,
        v1::nodes::node_list,
        v1::secrets::secret_list,
        v1::secrets::secret_set,
        v1::secrets::secret_delete,
        v1::secrets::token_rotate,
        v1::secrets::secrets_key_rotate,
    ),
    components(schemas(
        ErrorBody, ErrorView, ProblemView, ArtifactView, DeployView, DeployedFunctionView, FunctionView,
        ConfigView, RouteView, ScheduleView, FunctionListView, VersionView, VersionListView, LogLineView, LogListView, FunctionStatsView, StatsStepView,
        DeployParams, CanaryParams, CanaryView, RollbackParams, InvocationView, InvocationListView, UsageView, UsageHourView,
        FunctionUsageView, PricesView, UsageReportView, AccessKeyCreatedView, AccessKeyView, AccessKeyListView,
        AsyncAcceptedView, AsyncEventView, AsyncEventListView, AsyncRetriedView, QueueRedriveView, QueueListView, QueueSummaryView, WorkflowListView, WorkflowView, ExecutionListView, ExecutionSummaryView, PublishedView, TopicView, TopicListView, QueueSentView, QueueView,
        QueueTriggerView, ExecutionStartedView, ExecutionView, HistoryEntryView, StatusView, SandboxView,
        SandboxLayerView, NodeView, NodeListView, SecretView, SecretListView, SecretSetView, TokenRotatedView, KeyRotatedView,
        SpanView, SpanLinkView, TraceView, TraceSummaryView, TraceListView,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed document must match the code. To accept a change to the API,
    /// run `UPDATE_EXPECT=1 cargo test -p updraft-api` and commit `docs/openapi.json`.
    #[test]
    fn committed_openapi_document_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = super::openapi_json();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date with the API; run `UPDATE_EXPECT=1 cargo test -p updraft-api` and commit it"
        );
    }

    #[test]
    fn every_control_plane_route_is_documented() {
        let document: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/v1/artifacts/{digest}",
            "/v1/apps/{app}/deploy",
            "/v1/functions",
            "/v1/functions/{name}",
            "/v1/functions/{name}/versions",
            "/v1/functions/{name}/rollback",
            "/v1/functions/{name}/invoke",
            "/v1/functions/{name}/logs",
            "/v1/traces",
            "/v1/traces/{trace_id}",
        ] {
            assert!(paths.contains_key(path), "{path} is missing from the OpenAPI document");
        }
    }
}
