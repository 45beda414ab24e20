//! What the store reads and writes.

use updraft_model::{AppName, ArtifactDigest, FunctionConfig, FunctionName, VersionNumber};

/// A function and the version that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRecord {
    pub name: FunctionName,
    pub app: AppName,
    pub latest_version: VersionNumber,
    pub created_at: i64,
    pub updated_at: i64,
    /// The version that serves traffic (after a rollback, not the latest).
    pub current: VersionRecord,
    pub token: TokenIdentity,
}

/// What a function's tokens are signed over: a random id made with the function and a
/// generation raised by each rotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenIdentity {
    pub id: String,
    pub generation: i64,
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub function: FunctionName,
    pub version: VersionNumber,
    pub artifact: ArtifactDigest,
    pub config: FunctionConfig,
    /// Identifies config plus artifact: equal fingerprints mean nothing changed.
    pub fingerprint: String,
    pub created_at: i64,
}

/// A deploy of a whole app, applied in one transaction.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub app: AppName,
    pub manifest: String,
    pub functions: Vec<PlannedFunction>,
    /// A canary for each function this deploy changes that had a version serving: the
    /// new version gets this share of invocations until it ends; `None` makes the new
    /// versions serve everything (and ends the canaries of the functions it changes).
    pub canary: Option<CanaryPlan>,
}

/// A canary a deploy starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryPlan {
    /// The new version's share of invocations, in millionths.
    pub share_ppm: u32,
    /// How long until it is promoted, in milliseconds (unless rolled back before).
    pub duration_ms: u64,
}

/// A function as the deploy wants it.
#[derive(Debug, Clone)]
pub struct PlannedFunction {
    pub name: FunctionName,
    pub artifact: ArtifactDigest,
    pub config: FunctionConfig,
    pub fingerprint: String,
    /// Aliases the deploy sets, each to a version by number or (`None`) to the version
    /// serving; the function's other aliases are left as they are.
    pub aliases: std::collections::BTreeMap<updraft_model::AliasName, Option<VersionNumber>>,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployOutcome {
    pub generation: i64,
    pub functions: Vec<DeployedFunction>,
    /// Functions the app had before and no longer declares; they were deleted.
    pub removed: Vec<FunctionName>,
    /// What each deployed function's tokens are signed over, as committed.
    pub tokens: std::collections::BTreeMap<FunctionName, TokenIdentity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeployedFunction {
    pub name: FunctionName,
    pub version: VersionNumber,
    /// Whether this deploy created the version (false: unchanged, still served).
    pub changed: bool,
}

/// An API key as stored: only a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub secret_hash: String,
    pub role: String,
    pub created_at: i64,
}

/// An access key for the Lambda-compatible API, its secret sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub id: String,
    pub secret_sealed: String,
    pub role: String,
    pub created_at: i64,
}

/// A line of function output to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub function: FunctionName,
    pub version: VersionNumber,
    pub request_id: String,
    pub at: i64,
    pub stream: String,
    pub line: String,
    /// How severe (see [`updraft_model::LogLevel`] for how a function's lines get theirs).
    pub level: updraft_model::LogLevel,
}

/// A stored line, with its position for following.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLineRecord {
    pub id: i64,
    pub line: LogLine,
}

/// A stored secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub name: updraft_model::SecretName,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One value sealed with the server's secrets key, wherever it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub kind: SealedKind,
    /// The row's key (an access key id, a secret's or a server key's name).
    pub id: String,
    pub sealed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    AccessKey,
    Secret,
    ServerKey,
}
