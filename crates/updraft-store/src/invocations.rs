//! Invocation records and hourly usage: appended in batches, listed with filters.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::{FunctionName, InvocationRecord, InvocationStatus, TraceParent, TriggerKind};

use crate::sql::{ROWS_PER_STATEMENT, parse_name, version_number};
use crate::{Store, StoreError};

const HOUR_MS: i64 = 3_600_000;

/// Which invocations to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct InvocationFilter {
    pub function: Option<FunctionName>,
    pub status: Option<InvocationStatus>,
    /// Only the invocations of one trace.
    pub trace_id: Option<String>,
    /// Started at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Started before (ms since the epoch).
    pub until: Option<i64>,
    /// Only records older than this cursor (a `StoredInvocation::seq`): the next page.
    pub before: Option<i64>,
    pub limit: i64,
}

/// A stored record with its position, the cursor for paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvocation {
    pub seq: i64,
    pub record: InvocationRecord,
}

/// A function's invocations in one step of a window, summed up for a chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepFigures {
    /// Which step: 0 for the one starting at the window's start.
    pub step: i64,
    /// Invocations that ran (throttles excluded).
    pub invocations: i64,
    /// Errors and timeouts.
    pub errors: i64,
    pub throttles: i64,
    pub cold_starts: i64,
    /// The runs' durations added up.
    pub run_ns: i64,
    /// The most memory a run used (bytes).
    pub max_memory: i64,
    /// The runs' nearest-rank duration percentiles; `None` without runs.
    pub p50_ns: Option<i64>,
    pub p99_ns: Option<i64>,
}

/// One function's usage in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub requests: i64,
    /// Billed milliseconds times memory in MiB.
    pub billed_mib_ms: i64,
    pub cold_starts: i64,
    pub throttles: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub function: FunctionName,
    /// The hour's start, in ms since the epoch.
    pub hour: i64,
    pub counts: UsageCounts,
}

const COLUMNS: &str = "id, function, version, trigger_kind, started_at, duration_ns, billed_ms, init_duration_ns, \
     cold, memory_limit, max_memory_used, status, error_type, error_message, trace_id, log_lines_dropped, node, parent_span_id, queued_since, links";

impl Store {
    /// Appends records and adds them to the hourly usage, in one transaction.
    pub async fn invocation_append(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut usage: BTreeMap<(&str, i64), UsageCounts> = BTreeMap::new();
        for record in records {
            let counts =
                usage.entry((record.function.as_str(), record.started_at - record.started_at % HOUR_MS)).or_default();
            match record.status {
                InvocationStatus::Throttled => counts.throttles += 1,
                status => {
                    counts.requests += 1;
                    counts.billed_mib_ms += record.billed_mib_ms() as i64;
                    counts.cold_starts += i64::from(record.cold);
                    counts.errors += i64::from(status != InvocationStatus::Success);
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql =
                format!("INSERT INTO invocations ({COLUMNS}) VALUES {}", self.backend.value_rows(chunk.len(), 20));
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.id.as_str())
                    .bind(r.function.as_str())
                    .bind(i64::from(r.version.0))
                    .bind(r.trigger.as_str())
                    .bind(r.started_at)
                    .bind(r.duration.as_nanos() as i64)
                    .bind(r.billed_duration_ms() as i64)
                    .bind(r.init_duration.map(|d| d.as_nanos() as i64))
                    .bind(i64::from(r.cold))
                    .bind(r.memory_limit as i64)
                    .bind(r.max_memory_used as i64)
                    .bind(r.status.as_str())
                    .bind(r.error_type.as_deref())
                    .bind(r.error_message.as_deref())
                    .bind(r.trace_id.as_str())
                    .bind(r.log_lines_dropped as i64)
                    .bind(r.node.as_str())
                    .bind(r.parent_span_id.as_deref())
                    .bind(r.queued_since)
                    .bind(links_text(&r.links));
            }
            query.execute(&mut *tx).await?;
        }
        for ((function, hour), counts) in usage {
            sqlx::query(
                "INSERT INTO usage_hourly (function, hour, requests, billed_mib_ms, cold_starts, throttles, errors) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (function, hour) DO UPDATE SET \
                 requests = usage_hourly.requests + excluded.requests, \
                 billed_mib_ms = usage_hourly.billed_mib_ms + excluded.billed_mib_ms, \
                 cold_starts = usage_hourly.cold_starts + excluded.cold_starts, \
                 throttles = usage_hourly.throttles + excluded.throttles, \
                 errors = usage_hourly.errors + excluded.errors",
            )
            .bind(function)
            .bind(hour)
            .bind(counts.requests)
            .bind(counts.billed_mib_ms)
            .bind(counts.cold_starts)
            .bind(counts.throttles)
            .bind(counts.errors)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records matching `filter`, newest first.
    pub async fn invocation_list(&self, filter: &InvocationFilter) -> Result<Vec<StoredInvocation>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if filter.function.is_some() {
            conditions.push(format!("function = {}", param()));
        }
        if filter.status.is_some() {
            conditions.push(format!("status = {}", param()));
        }
        if filter.trace_id.is_some() {
            conditions.push(format!("trace_id = {}", param()));
        }
        if filter.since.is_some() {
            conditions.push(format!("started_at >= {}", param()));
        }
        if filter.until.is_some() {
            conditions.push(format!("started_at < {}", param()));
        }
        if filter.before.is_some() {
            conditions.push(format!("seq < {}", param()));
        }
        let limit = param();
        let filter_sql =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!("SELECT seq, {COLUMNS} FROM invocations {filter_sql} ORDER BY seq DESC LIMIT {limit}");
        let mut query = sqlx::query(&sql);
        if let Some(function) = &filter.function {
            query = query.bind(function.as_str());
        }
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(trace_id) = &filter.trace_id {
            query = query.bind(trace_id.as_str());
        }
        for value in [filter.since, filter.until, filter.before].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.bind(filter.limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(stored_invocation).collect()
    }

    /// `function`'s invocations that started in `[since, until)`, summed up per step of
    /// `step_ms` (step 0 starts at `since`); only the steps that saw invocations, in
    /// order. The database does the counting and the percentiles (a window function
    /// ranks each step's durations), so a chart of a million records sends back one row
    /// per step, not the records.
    pub async fn invocation_steps(
        &self,
        function: &FunctionName,
        since: i64,
        until: i64,
        step_ms: i64,
    ) -> Result<Vec<StepFigures>, StoreError> {
        let step_ms = step_ms.max(1);
        // Throttles have no run: they count, and stay out of the durations.
        let window = "SELECT (started_at - $2) / $4 AS step, duration_ns, cold, max_memory_used, status \
                      FROM invocations WHERE function = $1 AND started_at >= $2 AND started_at < $3";
        let run = |sql: String| async move {
            sqlx::query(&sql).bind(function.as_str()).bind(since).bind(until).bind(step_ms).fetch_all(&self.pool).await
        };
        let sums = run(format!(
            "SELECT step, \
               CAST(SUM(CASE WHEN status <> 'throttled' THEN 1 ELSE 0 END) AS BIGINT), \
               CAST(SUM(CASE WHEN status IN ('error', 'timeout') THEN 1 ELSE 0 END) AS BIGINT), \
               CAST(SUM(CASE WHEN status = 'throttled' THEN 1 ELSE 0 END) AS BIGINT), \
               CAST(SUM(CASE WHEN status <> 'throttled' AND cold <> 0 THEN 1 ELSE 0 END) AS BIGINT), \
               CAST(SUM(CASE WHEN status <> 'throttled' THEN duration_ns ELSE 0 END) AS BIGINT), \
               CAST(MAX(CASE WHEN status <> 'throttled' THEN max_memory_used ELSE 0 END) AS BIGINT) \
             FROM ({window}) w GROUP BY step ORDER BY step"
        ))
        .await?;
        // The nearest-rank percentile q of n is the ceil(q·n)-th smallest, in integers:
        // (n·q% + 99) / 100.
        let ranks = run(format!(
            "SELECT step, nth, n, duration_ns FROM ( \
               SELECT step, duration_ns, \
                 ROW_NUMBER() OVER (PARTITION BY step ORDER BY duration_ns) AS nth, \
                 COUNT(*) OVER (PARTITION BY step) AS n \
               FROM ({window}) w WHERE status <> 'throttled') ranked \
             WHERE nth = (n * 50 + 99) / 100 OR nth = (n * 99 + 99) / 100"
        ))
        .await?;
        let mut steps = sums
            .iter()
            .map(|row| {
                Ok(StepFigures {
                    step: row.try_get(0)?,
                    invocations: row.try_get(1)?,
                    errors: row.try_get(2)?,
                    throttles: row.try_get(3)?,
                    cold_starts: row.try_get(4)?,
                    run_ns: row.try_get(5)?,
                    max_memory: row.try_get(6)?,
                    p50_ns: None,
                    p99_ns: None,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for row in &ranks {
            let (step, rank, n, duration): (i64, i64, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            let Ok(at) = steps.binary_search_by_key(&step, |figures| figures.step) else { continue };
            if rank == (n * 50 + 99) / 100 {
                steps[at].p50_ns = Some(duration);
            }
            if rank == (n * 99 + 99) / 100 {
                steps[at].p99_ns = Some(duration);
            }
        }
        Ok(steps)
    }

    /// Hourly usage from the hour containing `since` on, per function, oldest first.
    pub async fn usage(&self, since: i64, function: Option<&FunctionName>) -> Result<Vec<UsageRow>, StoreError> {
        let hour = since - since.rem_euclid(HOUR_MS);
        let select = "SELECT function, hour, requests, billed_mib_ms, cold_starts, throttles, errors FROM usage_hourly";
        let rows = match function {
            Some(function) => {
                sqlx::query(&format!("{select} WHERE hour >= $1 AND function = $2 ORDER BY hour, function"))
                    .bind(hour)
                    .bind(function.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{select} WHERE hour >= $1 ORDER BY hour, function"))
                    .bind(hour)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(UsageRow {
                    function: parse_name(row.try_get(0)?)?,
                    hour: row.try_get(1)?,
                    counts: UsageCounts {
                        requests: row.try_get(2)?,
                        billed_mib_ms: row.try_get(3)?,
                        cold_starts: row.try_get(4)?,
                        throttles: row.try_get(5)?,
                        errors: row.try_get(6)?,
                    },
                })
            })
            .collect()
    }
}

fn stored_invocation(row: &AnyRow) -> Result<StoredInvocation, StoreError> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt { detail: format!("invocation {what} {value:?}") };
    let trigger: String = row.try_get(4)?;
    let status: String = row.try_get(12)?;
    let nanos = |value: i64| Duration::from_nanos(value.max(0) as u64);
    Ok(StoredInvocation {
        seq: row.try_get(0)?,
        record: InvocationRecord {
            id: row.try_get(1)?,
            function: parse_name(row.try_get(2)?)?,
            version: version_number(row.try_get(3)?)?,
            trigger: TriggerKind::parse(&trigger).ok_or_else(|| corrupt("trigger", &trigger))?,
            started_at: row.try_get(5)?,
            duration: nanos(row.try_get(6)?),
            init_duration: row.try_get::<Option<i64>, _>(8)?.map(nanos),
            cold: row.try_get::<i64, _>(9)? != 0,
            memory_limit: row.try_get::<i64, _>(10)? as u64,
            max_memory_used: row.try_get::<i64, _>(11)? as u64,
            status: InvocationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
            error_type: row.try_get(13)?,
            error_message: row.try_get(14)?,
            trace_id: row.try_get(15)?,
            log_lines_dropped: row.try_get::<i64, _>(16)?.max(0) as u64,
            node: row.try_get(17)?,
            parent_span_id: row.try_get(18)?,
            queued_since: row.try_get(19)?,
            links: links_from_text(row.try_get(20)?),
        },
    })
}

/// Span links as stored: their `traceparent` values, space-separated; `None` for none.
fn links_text(links: &[TraceParent]) -> Option<String> {
    (!links.is_empty()).then(|| links.iter().map(TraceParent::header).collect::<Vec<_>>().join(" "))
}

/// Span links read back; a value that is not a `traceparent` is skipped.
fn links_from_text(text: Option<String>) -> Vec<TraceParent> {
    text.as_deref().map_or_else(Vec::new, |text| text.split_whitespace().filter_map(TraceParent::parse).collect())
}
