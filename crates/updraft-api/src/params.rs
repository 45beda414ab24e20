//! What the API accepts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Deploy an app: its manifest and the artifact of each function.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    /// The text of `updraft.toml`.
    pub manifest: String,
    /// Function name to `sha256:<hex>` of its uploaded artifact.
    pub artifacts: BTreeMap<String, String>,
}

/// Roll a function back.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackParams {
    /// The version to serve; by default the one before the current.
    #[serde(default)]
    pub to: Option<u32>,
}

/// Which log lines to return.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only lines after this id (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many lines (default 100, at most 1000).
    pub limit: Option<i64>,
    /// The last `limit` lines instead of the first.
    pub tail: Option<bool>,
    /// When no line is there yet, wait up to this many milliseconds (at most 30000).
    pub wait_ms: Option<u64>,
}
