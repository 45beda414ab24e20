//! Canary deploys: the ones running (written by `app_deploy`), ending one exactly once
//! across the cluster, and the outcomes of each version that decide it.

use sqlx::Row as _;
use updraft_model::{FunctionName, VersionNumber};

use crate::sql::{parse_name, version_number};
use crate::{Store, StoreError};

/// A canary running: the function's serving version gets `share_ppm` millionths of its
/// invocations, `previous` the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRecord {
    pub function: FunctionName,
    pub previous: VersionNumber,
    pub share_ppm: u32,
    pub started_at: i64,
    pub ends_at: i64,
}

/// How one version's invocations ended since a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Invocations that ran (throttles are not counted).
    pub total: u64,
    /// Of those, the ones that failed or timed out.
    pub failed: u64,
}

impl Store {
    /// Every canary running, by function.
    pub async fn canary_list(&self) -> Result<Vec<CanaryRecord>, StoreError> {
        let rows = sqlx::query("SELECT function, previous, share_ppm, started_at, ends_at FROM canaries")
            .fetch_all(&self.pool)
            .await?;
        let mut canaries = rows
            .iter()
            .map(|row| {
                let share: i64 = row.try_get(2)?;
                Ok(CanaryRecord {
                    function: parse_name(row.try_get(0)?)?,
                    previous: version_number(row.try_get(1)?)?,
                    share_ppm: u32::try_from(share)
                        .map_err(|_| StoreError::Corrupt { detail: format!("canary share {share} out of range") })?,
                    started_at: row.try_get(3)?,
                    ends_at: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        canaries.sort_by(|a, b| a.function.cmp(&b.function));
        Ok(canaries)
    }

    /// Ends the canary `canary` started, if it still runs: true for the one caller (of
    /// every node) that ended it, which then promotes or rolls back.
    pub async fn canary_take(&self, canary: &CanaryRecord) -> Result<bool, StoreError> {
        let taken = sqlx::query("DELETE FROM canaries WHERE function = $1 AND started_at = $2")
            .bind(canary.function.as_str())
            .bind(canary.started_at)
            .execute(&self.pool)
            .await?;
        Ok(taken.rows_affected() > 0)
    }

    /// How `version` of `function` fared in invocations started since `since`.
    pub async fn outcomes(
        &self,
        function: &FunctionName,
        version: VersionNumber,
        since: i64,
    ) -> Result<Outcomes, StoreError> {
        let count = |failed_only: bool| {
            let statuses = if failed_only { "('error', 'timeout')" } else { "('success', 'error', 'timeout')" };
            let sql = format!(
                "SELECT COUNT(*) FROM invocations WHERE function = $1 AND version = $2 AND started_at >= $3 \
                 AND status IN {statuses}"
            );
            async move {
                let count: i64 = sqlx::query(&sql)
                    .bind(function.as_str())
                    .bind(i64::from(version.0))
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
                Ok::<u64, StoreError>(u64::try_from(count).unwrap_or(0))
            }
        };
        Ok(Outcomes { total: count(false).await?, failed: count(true).await? })
    }
}
