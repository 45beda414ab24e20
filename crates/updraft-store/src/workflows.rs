//! Workflow executions and their history. Each step of an execution is one
//! transaction: the execution's position (state, that state's input, attempt, wake
//! time, status) and the step's history entry, guarded by the step number so a stale
//! writer cannot move an execution twice.

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::{AppName, FunctionName};

use crate::events::text;
use crate::sql::parse_name;
use crate::{Store, StoreError};

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: String,
    pub workflow: FunctionName,
    pub app: AppName,
    /// The definition it started with (JSON); a redeploy does not change it.
    pub definition: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The state it is in (or last was in).
    pub state: String,
    /// That state's input (JSON).
    pub state_input: String,
    /// Attempts of the state's task that failed and are being retried.
    pub attempt: i64,
    /// While waiting (a Wait state or a retry's delay): until when, in ms since the epoch.
    pub wake_at: Option<i64>,
    /// Steps taken; the number of the next history entry.
    pub seq: i64,
    pub started_at: i64,
    pub updated_at: i64,
    /// The trace it runs in: every task's invocation joins it.
    pub trace_id: Option<String>,
    /// The span that started it; its tasks' invocations are its children.
    pub parent_span_id: Option<String>,
}

/// One entry of an execution's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at: i64,
    /// `ExecutionStarted`, `StateEntered`, `TaskSucceeded`, `TaskFailed`, `TaskRetried`,
    /// `WaitStarted`, `ExecutionSucceeded`, `ExecutionFailed`.
    pub kind: String,
    pub state: Option<String>,
    /// JSON: the state's input or output, or the error.
    pub detail: Option<String>,
}

const COLUMNS: &str = "id, workflow, app, definition, status, input, output, error, cause, state, state_input, \
                       attempt, wake_at, seq, started_at, updated_at, trace_id, parent_span_id";

impl Store {
    /// Stores a new execution, driven by node `owner`, with its first history entry.
    pub async fn execution_create(
        &self,
        execution: &Execution,
        owner: &str,
        first: &HistoryEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO workflow_executions ({COLUMNS}, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(execution.id.as_str())
        .bind(execution.workflow.as_str())
        .bind(execution.app.as_str())
        .bind(execution.definition.as_str())
        .bind(execution.status.as_str())
        .bind(execution.input.as_str())
        .bind(execution.output.as_deref())
        .bind(execution.error.as_deref().map(text))
        .bind(execution.cause.as_deref().map(text))
        .bind(execution.state.as_str())
        .bind(execution.state_input.as_str())
        .bind(execution.attempt)
        .bind(execution.wake_at)
        .bind(execution.seq)
        .bind(execution.started_at)
        .bind(execution.updated_at)
        .bind(execution.trace_id.as_deref())
        .bind(execution.parent_span_id.as_deref())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        insert_history(&mut tx, &execution.id, first).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records one step: `execution`'s new position, from step `from_seq`, with its
    /// history entries. Returns false (changing nothing) if the stored step is not
    /// `from_seq`.
    pub async fn execution_step(
        &self,
        execution: &Execution,
        from_seq: i64,
        entries: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE workflow_executions SET status = $1, output = $2, error = $3, cause = $4, state = $5, \
             state_input = $6, attempt = $7, wake_at = $8, seq = $9, updated_at = $10 WHERE id = $11 AND seq = $12",
        )
        .bind(execution.status.as_str())
        .bind(execution.output.as_deref())
        .bind(execution.error.as_deref().map(text))
        .bind(execution.cause.as_deref().map(text))
        .bind(execution.state.as_str())
        .bind(execution.state_input.as_str())
        .bind(execution.attempt)
        .bind(execution.wake_at)
        .bind(execution.seq)
        .bind(execution.updated_at)
        .bind(execution.id.as_str())
        .bind(from_seq)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for entry in entries {
            insert_history(&mut tx, &execution.id, entry).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn execution_get(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM workflow_executions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// `workflow`'s latest executions, the latest started first.
    pub async fn execution_list(&self, workflow: &FunctionName, limit: i64) -> Result<Vec<Execution>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_executions WHERE workflow = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(workflow.as_str())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    /// The executions `owner` was driving that are still running (to resume them at
    /// its start); other nodes' stay theirs.
    pub async fn execution_running(&self, owner: &str) -> Result<Vec<Execution>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_executions WHERE status = 'running' AND (owner = $1 OR owner IS NULL)"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    /// Moves the running executions of node `from` (dead, or gone) to node `to`, which
    /// resumes them; each moves once, however many nodes ask at the same time.
    pub async fn execution_takeover(&self, from: &str, to: &str) -> Result<Vec<Execution>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE workflow_executions SET owner = $2 WHERE status = 'running' AND owner = $1 RETURNING {COLUMNS}"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    pub async fn execution_history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, at, kind, state, detail FROM workflow_history WHERE execution = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(HistoryEntry {
                    seq: row.try_get(0)?,
                    at: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    state: row.try_get(3)?,
                    detail: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// The stored manifest of every app (workflows are declared there).
    pub async fn app_manifests(&self) -> Result<Vec<(AppName, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, manifest FROM apps ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((parse_name(row.try_get(0)?)?, row.try_get(1)?))).collect()
    }

    /// One app's stored manifest; `None` when no app of that name was ever deployed.
    pub async fn app_manifest(&self, app: &AppName) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT manifest FROM apps WHERE name = $1")
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get(0)).transpose().map_err(StoreError::from)
    }
}

async fn insert_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    execution: &str,
    entry: &HistoryEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_history (execution, seq, at, kind, state, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(execution)
    .bind(entry.seq)
    .bind(entry.at)
    .bind(entry.kind.as_str())
    .bind(entry.state.as_deref())
    .bind(entry.detail.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn execution_from_row(row: &AnyRow) -> Result<Execution, StoreError> {
    Ok(Execution {
        id: row.try_get(0)?,
        workflow: parse_name(row.try_get(1)?)?,
        app: parse_name(row.try_get(2)?)?,
        definition: row.try_get(3)?,
        status: row.try_get(4)?,
        input: row.try_get(5)?,
        output: row.try_get(6)?,
        error: row.try_get(7)?,
        cause: row.try_get(8)?,
        state: row.try_get(9)?,
        state_input: row.try_get(10)?,
        attempt: row.try_get(11)?,
        wake_at: row.try_get(12)?,
        seq: row.try_get(13)?,
        started_at: row.try_get(14)?,
        updated_at: row.try_get(15)?,
        trace_id: row.try_get(16)?,
        parent_span_id: row.try_get(17)?,
    })
}
