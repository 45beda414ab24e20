//! The error answer every endpoint shares.

use serde::{Deserialize, Serialize};
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
    /// For `too_many_requests`: which concurrency limit was hit (`function`, `account`
    /// or `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// Dotted path of the field, e.g. `functions.hello.timeout`.
    pub field: String,
    pub message: String,
}
