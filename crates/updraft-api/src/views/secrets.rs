//! Views of secrets and rotations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A secret as listed: never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The deployed functions whose environment or webhooks name it.
    pub used_by: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretListView {
    pub secrets: Vec<SecretView>,
}

/// What setting a secret did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretSetView {
    pub name: String,
    /// False when it replaced an earlier value.
    pub created: bool,
    /// The functions that get the new value in instances started from now on.
    pub used_by: Vec<String>,
}

/// A function's tokens after a rotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRotatedView {
    pub function: String,
    /// The generation tokens are signed for now; every earlier one is refused.
    pub generation: i64,
}

/// A rotation of the secrets key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyRotatedView {
    /// How many sealed values (access keys' secrets, secrets, the server's own keys)
    /// were sealed again with the new key.
    pub resealed: usize,
}

impl SecretView {
    pub(crate) fn new(info: &updraft_platform::SecretInfo) -> Self {
        SecretView {
            name: info.name.to_string(),
            created_at_ms: info.created_at,
            updated_at_ms: info.updated_at,
            used_by: info.used_by.iter().map(ToString::to_string).collect(),
        }
    }
}
