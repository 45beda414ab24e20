//! Removing what is past its retention: invocation records (and so the traces read from
//! them), log lines, finished workflow executions with their history, and failed
//! asynchronous events. Each call removes one small batch in one short statement, so a
//! writer never waits long behind it; the platform's janitor calls again until a batch
//! comes back short.
//!
//! Records and log lines are removed from the oldest end, in the order they were
//! written: a batch is the oldest rows up to the first one still to be kept. Their size
//! bound counts ids (both tables only ever lose their oldest rows, so ids stay dense).

use sqlx::Row;

use crate::{Store, StoreError};

/// How much of an append-only table to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Rows written before this time (ms since the epoch) go.
    pub newer_than: i64,
    /// Beyond this many of the newest rows, the older ones go.
    pub at_most: i64,
}

/// An append-only table the janitor trims from its oldest end.
struct Appended {
    table: &'static str,
    /// The increasing id the rows were written in.
    key: &'static str,
    /// When each was written (ms since the epoch).
    time: &'static str,
}

const INVOCATIONS: Appended = Appended { table: "invocations", key: "seq", time: "started_at" };
const LOG_LINES: Appended = Appended { table: "log_lines", key: "id", time: "at" };

impl Store {
    /// Removes up to `batch` of the oldest invocation records that `keep` lets go;
    /// returns how many.
    pub async fn prune_invocations(&self, keep: Keep, batch: i64) -> Result<u64, StoreError> {
        self.prune_oldest(&INVOCATIONS, keep, batch).await
    }

    /// Removes up to `batch` of the oldest log lines that `keep` lets go; returns how many.
    pub async fn prune_log_lines(&self, keep: Keep, batch: i64) -> Result<u64, StoreError> {
        self.prune_oldest(&LOG_LINES, keep, batch).await
    }

    async fn prune_oldest(&self, appended: &Appended, keep: Keep, batch: i64) -> Result<u64, StoreError> {
        let Appended { table, key, time } = appended;
        let newest: Option<i64> =
            sqlx::query(&format!("SELECT MAX({key}) FROM {table}")).fetch_one(&self.pool).await?.try_get(0)?;
        let Some(newest) = newest else { return Ok(0) };
        let beyond_size = newest - keep.at_most.max(0);
        let oldest = sqlx::query(&format!("SELECT {key}, {time} FROM {table} ORDER BY {key} LIMIT $1"))
            .bind(batch.max(1))
            .fetch_all(&self.pool)
            .await?;
        let mut upto = None;
        for row in &oldest {
            let (id, at): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            if id > beyond_size && at >= keep.newer_than {
                break;
            }
            upto = Some(id);
        }
        let Some(upto) = upto else { return Ok(0) };
        let removed =
            sqlx::query(&format!("DELETE FROM {table} WHERE {key} <= $1")).bind(upto).execute(&self.pool).await?;
        Ok(removed.rows_affected())
    }

    /// Removes up to `batch` workflow executions that finished (succeeded or failed)
    /// before `finished_before` (ms since the epoch), with their history; returns how
    /// many.
    pub async fn prune_executions(&self, finished_before: i64, batch: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM workflow_executions WHERE status <> 'running' AND updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(finished_before)
        .bind(batch.max(1))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        for id in &ids {
            sqlx::query("DELETE FROM workflow_history WHERE execution = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM workflow_executions WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Removes up to `batch` asynchronous events that failed for good and were accepted
    /// before `before` (ms since the epoch); returns how many.
    pub async fn prune_failed_events(&self, before: i64, batch: i64) -> Result<u64, StoreError> {
        let removed = sqlx::query(
            "DELETE FROM async_events WHERE id IN \
             (SELECT id FROM async_events WHERE state = 'failed' AND enqueued_at < $1 ORDER BY enqueued_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch.max(1))
        .execute(&self.pool)
        .await?;
        Ok(removed.rows_affected())
    }
}
