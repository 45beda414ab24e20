//! Views of artifacts and deploys.

use serde::{Deserialize, Serialize};
use updraft_platform::Deployed;
use utoipa::ToSchema;

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
    /// What the operator should know about how the deployed functions run (a sandbox
    /// layer the server runs without, say).
    #[serde(default)]
    pub warnings: Vec<String>,
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
    pub(crate) fn new(app: &str, outcome: &Deployed, warnings: Vec<String>) -> Self {
        Self {
            app: app.to_owned(),
            generation: outcome.generation,
            functions: outcome
                .functions
                .iter()
                .map(|f| DeployedFunctionView { name: f.name.to_string(), version: f.version.0, changed: f.changed })
                .collect(),
            removed: outcome.removed.iter().map(ToString::to_string).collect(),
            warnings,
        }
    }
}
