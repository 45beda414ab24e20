//! Views of access keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A new access key, with its secret (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyCreatedView {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`: not shown again.
    pub secret_access_key: String,
    pub role: String,
    /// The region SigV4 signatures name.
    pub region: String,
}

impl AccessKeyCreatedView {
    pub fn new(key: &updraft_platform::AccessKey) -> Self {
        Self {
            access_key_id: key.id.clone(),
            secret_access_key: key.secret.clone(),
            role: key.role.as_str().to_owned(),
            region: updraft_platform::REGION.to_owned(),
        }
    }
}

/// An access key, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyView {
    pub access_key_id: String,
    pub role: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl AccessKeyView {
    pub fn new(key: &updraft_platform::AccessKeyInfo) -> Self {
        Self { access_key_id: key.id.clone(), role: key.role.as_str().to_owned(), created_at: key.created_at }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyListView {
    pub keys: Vec<AccessKeyView>,
}
