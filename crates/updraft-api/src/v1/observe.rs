//! `/v1/functions/{name}/logs`, `/v1/logs`, `/v1/invocations`, `/v1/traces`, `/v1/usage` and
//! `/metrics`: what happened.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use updraft_model::{AppName, LogLevel};
use updraft_platform::{InvocationQuery, InvocationStatus, LogQuery, LogScope, MAX_STEPS, Usage};

use crate::params::{InvocationParams, LogParams, LogScopeParams, StatsParams, TraceParams, UsageParams};
use crate::v1::function_name;
use crate::views::{
    FunctionStatsView, FunctionUsageView, InvocationListView, InvocationView, LogLineView, LogListView, PricesView,
    StatsStepView, TraceListView, TraceSummaryView, TraceView, UsageHourView, UsageReportView, UsageView,
};
use crate::{ApiError, AppState};

/// Read a function's logs, filtered; with `wait_ms`, wait for new lines (long poll).
#[utoipa::path(
    get, path = "/v1/functions/{name}/logs", tag = "functions",
    params(("name" = String, Path, description = "Function name"), LogParams),
    responses(
        (status = 200, description = "Log lines, oldest first", body = LogListView),
        (status = 400, description = "An unknown level", body = crate::views::ErrorBody),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn log_list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Json<LogListView>, ApiError> {
    let name = function_name(&name)?;
    // Logs outlive a deleted function's live state, but a name never deployed is a
    // mistake worth reporting.
    state.platform.function_get(&name).await?;
    read_logs(&state, LogScope::Function(name), params).await
}

/// Search the logs of every function, or of one app's; with `wait_ms`, wait for new
/// lines (long poll), as `updraft logs --app APP -f` does.
#[utoipa::path(
    get, path = "/v1/logs", tag = "functions",
    params(LogScopeParams, LogParams),
    responses(
        (status = 200, description = "Log lines, oldest first", body = LogListView),
        (status = 400, description = "An unknown level, or both a function and an app", body = crate::views::ErrorBody),
        (status = 404, description = "No such function or app", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn log_search(
    State(state): State<AppState>,
    Query(scope): Query<LogScopeParams>,
    Query(params): Query<LogParams>,
) -> Result<Json<LogListView>, ApiError> {
    let scope = match (scope.function, scope.app) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give a function or an app, not both")),
        (Some(function), None) => {
            let name = function_name(&function)?;
            state.platform.function_get(&name).await?;
            LogScope::Function(name)
        }
        (None, Some(app)) => {
            let app = AppName::new(&app).map_err(|e| ApiError::not_found("app_not_found", e.to_string()))?;
            if !state.platform.function_list().await?.iter().any(|function| function.app == app) {
                return Err(ApiError::not_found("app_not_found", format!("no function of app {app} is deployed")));
            }
            LogScope::App(app)
        }
        (None, None) => LogScope::All,
    };
    read_logs(&state, scope, params).await
}

async fn read_logs(state: &AppState, scope: LogScope, params: LogParams) -> Result<Json<LogListView>, ApiError> {
    let level = params
        .level
        .as_deref()
        .map(str::parse::<LogLevel>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let after = params.after.unwrap_or(0).max(0);
    let query = LogQuery {
        scope,
        after,
        since: params.since,
        until: params.until,
        request_id: params.request_id,
        grep: params.grep.filter(|text| !text.is_empty()),
        level,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
        tail: params.tail.unwrap_or(false),
        wait: params.wait_ms.map(|ms| Duration::from_millis(ms.min(30_000))),
    };
    let lines = state.platform.logs(&query).await?;
    let next_after = lines.last().map_or(after, |line| line.cursor);
    Ok(Json(LogListView { lines: lines.iter().map(LogLineView::new).collect(), next_after }))
}

/// Follow a function's log as server-sent events: the last 100 lines, then each new
/// one as it is written (`id` is the line's id; a reconnect with `Last-Event-ID` goes on
/// from there). Each event's data is a log line as JSON.
#[utoipa::path(
    get, path = "/v1/functions/{name}/logs/stream", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "A stream of `text/event-stream` events, each a log line", content_type = "text/event-stream", body = LogLineView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn log_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let name = function_name(&name)?;
    state.platform.function_get(&name).await?;
    let resume = headers.get("last-event-id").and_then(|value| value.to_str().ok()?.parse::<i64>().ok());
    // First the tail (or what follows the last event seen), then each new line.
    let first =
        LogQuery { after: resume.unwrap_or(0), tail: resume.is_none(), ..LogQuery::function(name.clone(), 100) };
    let platform = state.platform.clone();
    let stream = futures::stream::unfold(Some(first), move |query| {
        let (platform, name) = (platform.clone(), name.clone());
        async move {
            let query = query?;
            let lines = match platform.logs(&query).await {
                Ok(lines) => lines,
                Err(error) => {
                    tracing::warn!(%error, "a log stream cannot read the log; it ends");
                    return None;
                }
            };
            let after = lines.last().map_or(query.after, |line| line.cursor);
            let events: Vec<Result<Event, std::convert::Infallible>> = lines
                .iter()
                .map(|line| {
                    let data = serde_json::to_string(&LogLineView::new(line)).unwrap_or_default();
                    Ok(Event::default().id(line.cursor.to_string()).data(data))
                })
                .collect();
            let next = LogQuery { after, wait: Some(Duration::from_secs(25)), ..LogQuery::function(name, 1000) };
            Some((futures::stream::iter(events), Some(next)))
        }
    })
    .flat_map(|events| events);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A function's figures over a window in equal steps, for charts: invocations, errors,
/// throttles, cold starts, duration p50 and p99, average concurrency and peak memory,
/// from its invocation records.
#[utoipa::path(
    get, path = "/v1/functions/{name}/stats", tag = "functions",
    params(("name" = String, Path, description = "Function name"), StatsParams),
    responses(
        (status = 200, description = "The window in steps, oldest first", body = FunctionStatsView),
        (status = 400, description = "An empty window", body = crate::views::ErrorBody),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<StatsParams>,
) -> Result<Json<FunctionStatsView>, ApiError> {
    let name = function_name(&name)?;
    state.platform.function_get(&name).await?;
    let until = params.until.unwrap_or_else(updraft_model::now_millis);
    let since = params.since.unwrap_or(until - 3_600_000);
    if since >= until {
        return Err(ApiError::bad_request("`since` must be before `until`"));
    }
    let step_ms =
        params.step_ms.unwrap_or((until - since) / 60).max((until - since + MAX_STEPS - 1) / MAX_STEPS).max(1);
    let steps = state.platform.function_stats(&name, since, until, step_ms).await?;
    let since = steps.first().map_or(since, |step| step.start);
    Ok(Json(FunctionStatsView {
        function: name.to_string(),
        since_ms: since,
        until_ms: until,
        step_ms,
        steps: steps.iter().map(StatsStepView::new).collect(),
    }))
}

/// List invocation records, newest first, filtered and paged.
#[utoipa::path(
    get, path = "/v1/invocations", tag = "invocations",
    params(InvocationParams),
    responses(
        (status = 200, description = "Records, newest first", body = InvocationListView),
        (status = 400, description = "An unknown status", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invocation_list(
    State(state): State<AppState>,
    Query(params): Query<InvocationParams>,
) -> Result<Json<InvocationListView>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(InvocationStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status {text:?}; use success, error, timeout or throttled"))
        })?),
    };
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let query = InvocationQuery {
        function: params.function.as_deref().map(function_name).transpose()?,
        status,
        trace_id: params.trace_id.clone(),
        since: params.since,
        until: params.until,
        before: params.before,
        limit,
    };
    let page = state.platform.invocations(&query).await?;
    let next_before = page.last().filter(|_| page.len() as i64 == limit).map(|last| last.cursor);
    Ok(Json(InvocationListView {
        invocations: page.iter().map(|entry| InvocationView::new(&entry.record)).collect(),
        next_before,
    }))
}

/// The latest traces kept in the server's records, newest first: each with its first
/// function, duration, invocations and failures.
#[utoipa::path(
    get, path = "/v1/traces", tag = "invocations",
    params(TraceParams),
    responses(
        (status = 200, description = "Traces, newest first", body = TraceListView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn trace_list(
    State(state): State<AppState>,
    Query(params): Query<TraceParams>,
) -> Result<Json<TraceListView>, ApiError> {
    let function = params.function.as_deref().map(function_name).transpose()?;
    let limit = params.limit.unwrap_or(20).clamp(1, 100);
    let traces = state.platform.recent_traces(function.as_ref(), limit).await?;
    let traces = traces
        .iter()
        .map(|records| {
            let spans: Vec<_> = records.iter().flat_map(updraft_platform::invocation_spans).collect();
            TraceSummaryView::new(records, &spans)
        })
        .collect();
    Ok(Json(TraceListView { traces }))
}

/// One trace: a span for every invocation kept that took part in it (named after its
/// function, with OpenTelemetry's `faas.*` attributes) and for each one's parts
/// (`queued`, `init`, `run`), by start time.
#[utoipa::path(
    get, path = "/v1/traces/{trace_id}", tag = "invocations",
    params(("trace_id" = String, Path, description = "W3C trace id: 32 hex digits")),
    responses(
        (status = 200, description = "The trace's spans", body = TraceView),
        (status = 404, description = "No invocation of this trace is kept", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn trace_get(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceView>, ApiError> {
    let trace_id = trace_id.to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!("{trace_id:?} is not a trace id; give its 32 hex digits")));
    }
    let records = state.platform.trace(&trace_id).await?;
    if records.is_empty() {
        return Err(ApiError::not_found("trace_not_found", format!("no invocation of trace {trace_id} is recorded")));
    }
    Ok(Json(TraceView::new(&records)))
}

/// Usage per function per hour: requests, GB-seconds, cold starts, throttles, and
/// what it costs under the server's price table.
#[utoipa::path(
    get, path = "/v1/usage", tag = "invocations",
    params(UsageParams),
    responses((status = 200, description = "Usage and cost", body = UsageReportView)),
    security(("bearer" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageReportView>, ApiError> {
    let since = params.since.unwrap_or_else(|| updraft_model::now_millis() - 24 * 3_600_000);
    let function = params.function.as_deref().map(function_name).transpose()?;
    let hours_used = state.platform.usage(since, function.as_ref()).await?;
    let prices = state.platform.prices();
    let mut total = Usage::default();
    let mut functions: BTreeMap<String, Usage> = BTreeMap::new();
    let mut hours = Vec::new();
    for hour in &hours_used {
        total.add(&hour.usage);
        functions.entry(hour.function.to_string()).or_default().add(&hour.usage);
        hours.push(UsageHourView {
            function: hour.function.to_string(),
            hour_ms: hour.hour,
            usage: UsageView::new(&hour.usage, prices),
        });
    }
    Ok(Json(UsageReportView {
        since_ms: since - since.rem_euclid(3_600_000),
        prices: PricesView {
            per_million_requests_usd: prices.per_million_requests,
            per_gb_second_usd: prices.per_gb_second,
        },
        total: UsageView::new(&total, prices),
        functions: functions
            .iter()
            .map(|(function, usage)| FunctionUsageView {
                function: function.clone(),
                usage: UsageView::new(usage, prices),
            })
            .collect(),
        hours,
    }))
}

/// Metrics in the Prometheus text format: invocations by function and status, a
/// duration histogram, cold starts, throttles, concurrent executions and instances by
/// state. Needs an API key (a Prometheus `authorization` credential).
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.platform.metrics().await)
        .into_response()
}
