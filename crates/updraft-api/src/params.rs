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
    /// Start a canary for each function the deploy changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryParams>,
}

/// A canary deploy: the new versions get a share of the invocations for a while, the
/// versions they replace the rest; promoted at the end, rolled back as soon as a new
/// version fails noticeably more often than the one it replaces.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryParams {
    /// The new versions' share of invocations, in percent (above 0, below 100).
    pub percent: f64,
    /// How long until the new versions serve everything, like `10m` or `1h`.
    pub duration: String,
}

/// Roll a function back.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackParams {
    /// The version to serve; by default the one before the current.
    #[serde(default)]
    pub to: Option<u32>,
}

/// Which log lines to return, oldest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only lines after this id (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many lines (default 100, at most 1000).
    pub limit: Option<i64>,
    /// The last `limit` matching lines instead of the first.
    pub tail: Option<bool>,
    /// When no line matches yet, wait up to this many milliseconds (at most 30000).
    pub wait_ms: Option<u64>,
    /// Written at or after this time (ms since the Unix epoch).
    pub since: Option<i64>,
    /// Written before this time (ms since the Unix epoch).
    pub until: Option<i64>,
    /// Only lines containing this text (ASCII case ignored).
    pub grep: Option<String>,
    /// Only one invocation's lines.
    pub request_id: Option<String>,
    /// Only lines at this level or above: `trace`, `debug`, `info`, `warn`, `error` or
    /// `fatal`. A line declares its level (JSON `level`, or a leading `ERROR`,
    /// `[WARN]`, ...); one that does not is `info` on stdout and `error` on stderr.
    pub level: Option<String>,
}

/// Whose log lines to search (default: every function's).
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogScopeParams {
    /// Only this function's.
    pub function: Option<String>,
    /// Only the lines of this app's functions.
    pub app: Option<String>,
}

/// Which invocation records to return, newest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvocationParams {
    /// Only this function's.
    pub function: Option<String>,
    /// Only with this status: `success`, `error`, `timeout` or `throttled`.
    pub status: Option<String>,
    /// Only those of this trace (32 hex digits).
    pub trace_id: Option<String>,
    /// Started at or after this time (ms since the Unix epoch).
    pub since: Option<i64>,
    /// Started before this time (ms since the Unix epoch).
    pub until: Option<i64>,
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// Which traces to list, newest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceParams {
    /// Only traces this function took part in.
    pub function: Option<String>,
    /// At most this many (default 20, at most 100).
    pub limit: Option<usize>,
}

/// Which usage to report.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// From the hour containing this time (ms since the Unix epoch); default: 24 hours ago.
    pub since: Option<i64>,
    /// Only this function's.
    pub function: Option<String>,
}

/// A page of `/v1/functions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunctionListParams {
    /// The `next_after` of the previous page: functions named after it.
    pub after: Option<String>,
    /// At most this many (default and most: 1000).
    pub limit: Option<usize>,
}

/// Which failed asynchronous invocations to list, the latest accepted first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailedEventParams {
    /// Only this function's.
    pub function: Option<String>,
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// Whose failed asynchronous invocations to retry.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetryAllParams {
    /// Only this function's (default: every function's).
    pub function: Option<String>,
}

/// Where a dead-letter queue's messages go back to.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedriveParams {
    /// The queue to move them to; by default the one whose queue trigger sends its dead
    /// letters here.
    pub to: Option<String>,
}

/// Which window of a function's figures to chart, in equal steps.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// From this time (ms since the Unix epoch); default: an hour before `until`.
    pub since: Option<i64>,
    /// To this time (ms since the Unix epoch); default: now.
    pub until: Option<i64>,
    /// The length of a step in milliseconds; default: a sixtieth of the window (at most
    /// 1000 steps).
    pub step_ms: Option<i64>,
}
