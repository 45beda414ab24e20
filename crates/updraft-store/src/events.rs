//! The embedded durable queue of asynchronous invocations: an event is committed
//! before its caller hears 202, claimed with a lease while it runs, removed when it
//! succeeds, rescheduled when it fails and has attempts left, kept as `failed` when it
//! has none. A crash loses nothing acknowledged: leases run out, and the next start
//! releases this node's at once.

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::FunctionName;

use crate::sql::parse_name;
use crate::{Store, StoreError};

/// One asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Also the request id of each of its attempts.
    pub id: String,
    pub function: FunctionName,
    pub payload: Vec<u8>,
    pub trace_id: String,
    /// When it was accepted (ms since the epoch).
    pub enqueued_at: i64,
    /// Attempts that ran and failed.
    pub attempts: i64,
    /// When it is next due (ms since the epoch); while claimed, when the claim lapses.
    pub next_attempt_at: i64,
    pub state: EventState,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// Waiting for `next_attempt_at`, or running under a lease until then.
    Queued,
    /// Out of attempts or too old; kept for inspection.
    Failed,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Queued => "queued",
            EventState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "queued" => Ok(EventState::Queued),
            "failed" => Ok(EventState::Failed),
            other => Err(StoreError::Corrupt { detail: format!("event state {other:?}") }),
        }
    }
}

const COLUMNS: &str = "id, function, payload, trace_id, enqueued_at, attempts, next_attempt_at, state, last_error";

impl Store {
    /// Stores an event; when this returns, it is on disk (or in PostgreSQL).
    pub async fn event_enqueue(&self, event: &AsyncEvent) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO async_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(event.id.as_str())
            .bind(event.function.as_str())
            .bind(event.payload.as_slice())
            .bind(event.trace_id.as_str())
            .bind(event.enqueued_at)
            .bind(event.attempts)
            .bind(event.next_attempt_at)
            .bind(event.state.as_str())
            .bind(event.last_error.as_deref())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Claims up to `limit` queued events due at `now`, oldest due first: each is
    /// leased until `lease_until` (it becomes due again then, unless finished first).
    pub async fn event_claim(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<AsyncEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM async_events WHERE state = 'queued' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut event = event_from_row(row)?;
            // Claimed only if nobody else claimed it since it was read.
            let updated = sqlx::query(
                "UPDATE async_events SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND state = 'queued'",
            )
            .bind(lease_until)
            .bind(event.id.as_str())
            .bind(event.next_attempt_at)
            .execute(&self.pool)
            .await?;
            if updated.rows_affected() == 1 {
                event.next_attempt_at = lease_until;
                claimed.push(event);
            }
        }
        Ok(claimed)
    }

    /// Makes every queued event due at `now` (a node's start: its leases died with it).
    pub async fn event_release_all(&self, now: i64) -> Result<u64, StoreError> {
        let result =
            sqlx::query("UPDATE async_events SET next_attempt_at = $1 WHERE state = 'queued' AND next_attempt_at > $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected())
    }

    /// Removes an event that ran successfully.
    pub async fn event_done(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM async_events WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Puts an event back in the queue, due at `next_attempt_at`.
    pub async fn event_retry(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE async_events SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4")
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks an event failed for good.
    pub async fn event_fail(&self, id: &str, attempts: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE async_events SET state = 'failed', attempts = $1, last_error = $2 WHERE id = $3")
            .bind(attempts)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn event_get(&self, id: &str) -> Result<Option<AsyncEvent>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM async_events WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }
}

fn event_from_row(row: &AnyRow) -> Result<AsyncEvent, StoreError> {
    Ok(AsyncEvent {
        id: row.try_get(0)?,
        function: parse_name(row.try_get(1)?)?,
        payload: row.try_get(2)?,
        trace_id: row.try_get(3)?,
        enqueued_at: row.try_get(4)?,
        attempts: row.try_get(5)?,
        next_attempt_at: row.try_get(6)?,
        state: EventState::parse(row.try_get(7)?)?,
        last_error: row.try_get(8)?,
    })
}
