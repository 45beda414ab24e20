//! Views of log lines, invocation records and usage.

use serde::{Deserialize, Serialize};
use updraft_platform::LogEntry;
use utoipa::ToSchema;

/// A line a function wrote, or a platform note about its invocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLineView {
    /// Position; pass the last one as `after` to follow.
    pub id: i64,
    pub function: String,
    pub at_ms: i64,
    pub version: u32,
    pub request_id: String,
    /// `stdout`, `stderr` or `platform`.
    pub stream: String,
    /// `trace`, `debug`, `info`, `warn`, `error` or `fatal`.
    pub level: String,
    pub line: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogListView {
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to get the lines that follow these.
    pub next_after: i64,
}

impl LogLineView {
    pub(crate) fn new(entry: &LogEntry) -> Self {
        Self {
            id: entry.cursor,
            function: entry.function.to_string(),
            at_ms: entry.at,
            version: entry.version.0,
            request_id: entry.request_id.clone(),
            stream: entry.stream.clone(),
            level: entry.level.to_string(),
            line: entry.line.clone(),
        }
    }
}

/// One invocation's record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvocationView {
    /// The request id, which also tags the invocation's log lines.
    pub id: String,
    pub function: String,
    pub version: u32,
    /// `http`, `direct`, `async`, `topic`, `schedule` or `webhook`.
    pub trigger: String,
    /// When it arrived, in ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Handler start to finish, in milliseconds (fractional).
    pub duration_ms: f64,
    /// Duration rounded up to the millisecond.
    pub billed_duration_ms: u64,
    /// Time to start the instance, for a cold start.
    pub init_duration_ms: Option<f64>,
    pub cold: bool,
    pub memory_limit_mb: u64,
    pub max_memory_used_mb: u64,
    /// `success`, `error`, `timeout` or `throttled`.
    pub status: String,
    /// Lambda-style, e.g. `Sandbox.Timedout`, `Runtime.OutOfMemory`.
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// W3C trace id.
    pub trace_id: String,
    /// Lines of the function's output that were not kept (over its log budget, or
    /// while the server's log writer was behind).
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// The id of the cluster node that ran it.
    #[serde(default)]
    pub node: String,
}

impl InvocationView {
    pub fn new(record: &updraft_platform::InvocationRecord) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Self {
            id: record.id.clone(),
            function: record.function.to_string(),
            version: record.version.0,
            trigger: record.trigger.as_str().to_owned(),
            started_at_ms: record.started_at,
            duration_ms: ms(record.duration),
            billed_duration_ms: record.billed_duration_ms(),
            init_duration_ms: record.init_duration.map(ms),
            cold: record.cold,
            memory_limit_mb: record.memory_limit.div_ceil(1 << 20),
            max_memory_used_mb: record.max_memory_used.div_ceil(1 << 20),
            status: record.status.as_str().to_owned(),
            error_type: record.error_type.clone(),
            error_message: record.error_message.clone(),
            trace_id: record.trace_id.clone(),
            log_lines_dropped: record.log_lines_dropped,
            node: record.node.clone(),
        }
    }
}

/// A page of invocation records, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvocationListView {
    pub invocations: Vec<InvocationView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Usage and its cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Invocations that ran (throttled ones are not billed).
    pub requests: u64,
    /// Billed duration × memory.
    pub gb_seconds: f64,
    pub cold_starts: u64,
    pub throttles: u64,
    pub errors: u64,
    /// In US dollars, from the server's price table.
    pub cost_usd: f64,
}

impl UsageView {
    pub fn new(usage: &updraft_platform::Usage, prices: &updraft_platform::PriceTable) -> Self {
        Self {
            requests: usage.requests,
            gb_seconds: usage.gb_seconds(),
            cold_starts: usage.cold_starts,
            throttles: usage.throttles,
            errors: usage.errors,
            cost_usd: usage.cost(prices),
        }
    }
}

/// One function's usage in one hour.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageHourView {
    pub function: String,
    /// The hour's start, in ms since the Unix epoch.
    pub hour_ms: i64,
    #[serde(flatten)]
    pub usage: UsageView,
}

/// One function's usage over the period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionUsageView {
    pub function: String,
    #[serde(flatten)]
    pub usage: UsageView,
}

/// The price table costs are computed with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PricesView {
    pub per_million_requests_usd: f64,
    pub per_gb_second_usd: f64,
}

/// Usage per function per hour since a time, with totals and cost.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReportView {
    /// The start of the first hour counted, in ms since the Unix epoch.
    pub since_ms: i64,
    pub prices: PricesView,
    pub total: UsageView,
    pub functions: Vec<FunctionUsageView>,
    pub hours: Vec<UsageHourView>,
}

/// One step of a function's figures.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsStepView {
    /// When the step starts (ms since the Unix epoch).
    pub start_ms: i64,
    /// Invocations that ran (throttles excluded).
    pub invocations: u64,
    /// Errors and timeouts.
    pub errors: u64,
    pub throttles: u64,
    pub cold_starts: u64,
    /// Duration percentiles (ms); absent without runs.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Average invocations running at once.
    pub concurrency: f64,
    /// The most memory one run used, in bytes.
    pub max_memory_bytes: u64,
}

/// A function's figures over a window, in equal steps (from its invocation records).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionStatsView {
    pub function: String,
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
    pub steps: Vec<StatsStepView>,
}

impl StatsStepView {
    pub(crate) fn new(step: &updraft_platform::StatsStep) -> Self {
        Self {
            start_ms: step.start,
            invocations: step.invocations,
            errors: step.errors,
            throttles: step.throttles,
            cold_starts: step.cold_starts,
            p50_ms: step.p50_ms,
            p99_ms: step.p99_ms,
            concurrency: step.concurrency,
            max_memory_bytes: step.max_memory,
        }
    }
}
