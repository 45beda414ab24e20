//! What the platform tells its callers about functions, versions, deploys, invocations,
//! usage and log lines: its own types, so a caller never depends on how the store
//! keeps them (a row's columns, its token identity, its paging keys).

use updraft_model::{AppName, ArtifactDigest, FunctionConfig, FunctionName, InvocationRecord, InvocationStatus};
use updraft_model::{LogLevel, VersionNumber};
use updraft_store::{
    ArtifactError, DeployOutcome, FunctionRecord, LogLineRecord, SharedArtifactError, StoredInvocation, UsageRow,
};
use updraft_store::{InvocationFilter, VersionRecord};
use updraft_telemetry::Usage;

/// A function and the version serving it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInfo {
    pub name: FunctionName,
    pub app: AppName,
    pub latest_version: VersionNumber,
    /// The version that serves traffic (after a rollback, not the latest).
    pub current: VersionInfo,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub version: VersionNumber,
    pub artifact: ArtifactDigest,
    pub config: FunctionConfig,
    pub created_at: i64,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// Counts the app's deploys.
    pub generation: i64,
    pub functions: Vec<DeployedVersion>,
    /// Functions the app had before and no longer declares; they were deleted.
    pub removed: Vec<FunctionName>,
}

/// A function as a deploy left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedVersion {
    pub name: FunctionName,
    /// The version serving after the deploy.
    pub version: VersionNumber,
    /// Whether the deploy created that version (false: unchanged, still served).
    pub changed: bool,
}

/// Which invocation records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct InvocationQuery {
    pub function: Option<FunctionName>,
    pub status: Option<InvocationStatus>,
    /// Only the invocations of one trace.
    pub trace_id: Option<String>,
    /// Started at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Started before (ms since the epoch).
    pub until: Option<i64>,
    /// Only records listed after this cursor (an [`InvocationEntry::cursor`]): the next page.
    pub before: Option<i64>,
    pub limit: i64,
}

/// An invocation record and its place in the list, the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationEntry {
    pub cursor: i64,
    pub record: InvocationRecord,
}

/// One function's usage in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyUsage {
    pub function: FunctionName,
    /// The hour's start, in ms since the epoch.
    pub hour: i64,
    pub usage: Usage,
}

/// One line a function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its place in the log: ask for lines after it to follow.
    pub cursor: i64,
    pub function: FunctionName,
    pub version: VersionNumber,
    pub request_id: String,
    /// When it was written (ms since the epoch).
    pub at: i64,
    /// `stdout`, `stderr` or `platform`.
    pub stream: String,
    pub line: String,
    pub level: LogLevel,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the artifact's sha256 is {actual}, not the {expected} it was uploaded as")]
    DigestMismatch { expected: ArtifactDigest, actual: ArtifactDigest },
    #[error("storing the artifact failed")]
    Storage(#[source] ArtifactError),
    #[error("sharing the artifact with the cluster failed")]
    Shared(#[source] SharedArtifactError),
}

impl From<SharedArtifactError> for UploadError {
    fn from(error: SharedArtifactError) -> Self {
        match error {
            SharedArtifactError::Local(local) => local.into(),
            other => UploadError::Shared(other),
        }
    }
}

impl From<ArtifactError> for UploadError {
    fn from(error: ArtifactError) -> Self {
        match error {
            ArtifactError::DigestMismatch { expected, actual } => UploadError::DigestMismatch { expected, actual },
            other => UploadError::Storage(other),
        }
    }
}

impl From<VersionRecord> for VersionInfo {
    fn from(version: VersionRecord) -> Self {
        Self {
            version: version.version,
            artifact: version.artifact,
            config: version.config,
            created_at: version.created_at,
        }
    }
}

impl From<FunctionRecord> for FunctionInfo {
    fn from(record: FunctionRecord) -> Self {
        Self {
            name: record.name,
            app: record.app,
            latest_version: record.latest_version,
            current: record.current.into(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl From<DeployOutcome> for Deployed {
    fn from(outcome: DeployOutcome) -> Self {
        Self {
            generation: outcome.generation,
            functions: outcome
                .functions
                .into_iter()
                .map(|f| DeployedVersion { name: f.name, version: f.version, changed: f.changed })
                .collect(),
            removed: outcome.removed,
        }
    }
}

impl From<&InvocationQuery> for InvocationFilter {
    fn from(query: &InvocationQuery) -> Self {
        Self {
            function: query.function.clone(),
            status: query.status,
            trace_id: query.trace_id.clone(),
            since: query.since,
            until: query.until,
            before: query.before,
            limit: query.limit,
        }
    }
}

impl From<StoredInvocation> for InvocationEntry {
    fn from(stored: StoredInvocation) -> Self {
        Self { cursor: stored.seq, record: stored.record }
    }
}

impl From<UsageRow> for HourlyUsage {
    fn from(row: UsageRow) -> Self {
        let counts = row.counts;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Self {
            function: row.function,
            hour: row.hour,
            usage: Usage {
                requests: count(counts.requests),
                billed_mib_ms: count(counts.billed_mib_ms),
                cold_starts: count(counts.cold_starts),
                throttles: count(counts.throttles),
                errors: count(counts.errors),
            },
        }
    }
}

impl From<LogLineRecord> for LogEntry {
    fn from(record: LogLineRecord) -> Self {
        let line = record.line;
        Self {
            cursor: record.id,
            function: line.function,
            version: line.version,
            request_id: line.request_id,
            at: line.at,
            stream: line.stream,
            line: line.line,
            level: line.level,
        }
    }
}
