//! What the API answers: serializable views, separate from the domain types so the
//! wire shape changes only on purpose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use updraft_model::Trigger;
use updraft_platform::{DeployOutcome, FunctionRecord, LogLineRecord, VersionRecord};
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// Stable and machine-readable, e.g. `invalid_manifest`, `function_timeout`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// For `invalid_manifest`: every problem found, each with its field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// Dotted path of the field, e.g. `functions.hello.timeout`.
    pub field: String,
    pub message: String,
}

/// A stored artifact.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    /// `sha256:<64 hex digits>`.
    pub digest: String,
    pub size: u64,
}

/// The result of a deploy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeployView {
    pub app: String,
    /// Counts the app's deploys.
    pub generation: i64,
    pub functions: Vec<DeployedFunctionView>,
    /// Functions the app no longer declares, now deleted.
    pub removed: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeployedFunctionView {
    pub name: String,
    /// The version serving after the deploy.
    pub version: u32,
    /// Whether this deploy created that version.
    pub changed: bool,
}

impl DeployView {
    pub(crate) fn new(app: &str, outcome: &DeployOutcome) -> Self {
        Self {
            app: app.to_owned(),
            generation: outcome.generation,
            functions: outcome
                .functions
                .iter()
                .map(|f| DeployedFunctionView { name: f.name.to_string(), version: f.version.0, changed: f.changed })
                .collect(),
            removed: outcome.removed.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A function and the version serving it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionView {
    pub name: String,
    pub app: String,
    /// The version serving traffic.
    pub version: u32,
    pub latest_version: u32,
    #[serde(flatten)]
    pub config: ConfigView,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A version's configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub runtime: String,
    /// `sha256:<hex>` of the code.
    pub artifact: String,
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    /// `null`: the account's limit.
    pub concurrency: Option<u32>,
    pub instance_reuse: bool,
    pub env: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    /// `*` or comma-separated methods.
    pub methods: String,
    pub route: String,
    /// `public` or `key`.
    pub auth: String,
}

impl ConfigView {
    fn new(version: &VersionRecord) -> Self {
        let config = &version.config;
        Self {
            runtime: config.runtime.to_string(),
            artifact: version.artifact.to_string(),
            memory_bytes: config.memory.bytes(),
            timeout_ms: config.timeout.as_millis() as u64,
            concurrency: config.concurrency,
            instance_reuse: config.instance_reuse,
            env: config.env.clone(),
            allowed_outbound_hosts: config.allowed_outbound_hosts.clone(),
            routes: config
                .triggers
                .iter()
                .map(|trigger| match trigger {
                    Trigger::Http(http) => RouteView {
                        methods: http.methods.to_string(),
                        route: http.route.to_string(),
                        auth: match http.auth {
                            updraft_model::HttpAuth::Public => "public".to_owned(),
                            updraft_model::HttpAuth::Key => "key".to_owned(),
                        },
                    },
                })
                .collect(),
        }
    }
}

impl FunctionView {
    pub(crate) fn new(record: &FunctionRecord) -> Self {
        Self {
            name: record.name.to_string(),
            app: record.app.to_string(),
            version: record.current.version.0,
            latest_version: record.latest_version.0,
            config: ConfigView::new(&record.current),
            created_at_ms: record.created_at,
            updated_at_ms: record.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionListView {
    pub functions: Vec<FunctionView>,
}

/// One immutable version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    /// Whether this version serves traffic now.
    pub current: bool,
    #[serde(flatten)]
    pub config: ConfigView,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionListView {
    pub function: String,
    /// Newest first.
    pub versions: Vec<VersionView>,
}

impl VersionView {
    pub(crate) fn new(version: &VersionRecord, current: u32) -> Self {
        Self {
            version: version.version.0,
            current: version.version.0 == current,
            config: ConfigView::new(version),
            created_at_ms: version.created_at,
        }
    }
}

/// A line a function wrote, or a platform note about its invocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLineView {
    /// Position; pass the last one as `after` to follow.
    pub id: i64,
    pub at_ms: i64,
    pub version: u32,
    pub request_id: String,
    /// `stdout`, `stderr` or `platform`.
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogListView {
    pub function: String,
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to get the lines that follow these.
    pub next_after: i64,
}

impl LogLineView {
    pub(crate) fn new(record: &LogLineRecord) -> Self {
        Self {
            id: record.id,
            at_ms: record.line.at,
            version: record.line.version.0,
            request_id: record.line.request_id.clone(),
            stream: record.line.stream.clone(),
            line: record.line.line.clone(),
        }
    }
}
