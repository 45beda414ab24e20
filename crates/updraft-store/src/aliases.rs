//! Aliases: names for a function's versions, with an optional weighted second version
//! (Lambda's aliases and their routing configuration).

use std::collections::BTreeMap;

use sqlx::Row as _;
use updraft_model::{AliasName, FunctionName, VersionNumber};

use crate::sql::{parse_name, version_number};
use crate::{Store, StoreError};

/// An alias as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    pub function: FunctionName,
    pub name: AliasName,
    /// The version it names; `None` for the version serving (Lambda's `$LATEST`).
    pub version: Option<VersionNumber>,
    /// Other versions and the share of invocations each takes (0 to 1).
    pub routing: BTreeMap<VersionNumber, f64>,
    pub description: String,
    /// Changes with every update, so a client can refuse to overwrite another's change.
    pub revision: String,
    pub updated_at: i64,
}

impl Store {
    /// Every function's aliases, by function and name.
    pub async fn alias_list(&self) -> Result<Vec<AliasRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT function, name, version, routing, description, revision, updated_at FROM aliases")
                .fetch_all(&self.pool)
                .await?;
        let mut aliases = rows.iter().map(alias_from_row).collect::<Result<Vec<_>, _>>()?;
        aliases.sort_by(|a, b| (&a.function, &a.name).cmp(&(&b.function, &b.name)));
        Ok(aliases)
    }

    /// Writes `alias`: a new one when `previous_revision` is `None` (refused if the name
    /// is taken), else over the one with that revision (refused if it changed or went).
    pub async fn alias_put(&self, alias: &AliasRecord, previous_revision: Option<&str>) -> Result<(), StoreError> {
        let routing: BTreeMap<String, f64> = alias.routing.iter().map(|(v, w)| (v.to_string(), *w)).collect();
        let routing = serde_json::to_string(&routing).map_err(|e| StoreError::Corrupt { detail: e.to_string() })?;
        let version = alias.version.map_or(0, |v| i64::from(v.0));
        let written = match previous_revision {
            None => sqlx::query(
                "INSERT INTO aliases (function, name, version, routing, description, revision, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (function, name) DO NOTHING",
            ),
            Some(_) => sqlx::query(
                "UPDATE aliases SET version = $3, routing = $4, description = $5, revision = $6, updated_at = $7 \
                 WHERE function = $1 AND name = $2 AND revision = $8",
            ),
        }
        .bind(alias.function.as_str())
        .bind(alias.name.as_str())
        .bind(version)
        .bind(routing)
        .bind(alias.description.as_str())
        .bind(alias.revision.as_str())
        .bind(alias.updated_at);
        let written = match previous_revision {
            Some(previous) => written.bind(previous),
            None => written,
        };
        if written.execute(&self.pool).await?.rows_affected() == 0 {
            return Err(StoreError::AliasConflict { function: alias.function.clone(), alias: alias.name.clone() });
        }
        Ok(())
    }

    /// Deletes an alias; false when there was none.
    pub async fn alias_delete(&self, function: &FunctionName, name: &AliasName) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM aliases WHERE function = $1 AND name = $2")
            .bind(function.as_str())
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}

fn alias_from_row(row: &sqlx::any::AnyRow) -> Result<AliasRecord, StoreError> {
    let version: i64 = row.try_get(2)?;
    let routing: String = row.try_get(3)?;
    let routing: BTreeMap<String, f64> =
        serde_json::from_str(&routing).map_err(|e| StoreError::Corrupt { detail: e.to_string() })?;
    let routing = routing
        .into_iter()
        .map(|(version, weight)| {
            let version = version.parse::<i64>().map_err(|e| StoreError::Corrupt { detail: e.to_string() })?;
            Ok((version_number(version)?, weight))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(AliasRecord {
        function: parse_name(row.try_get(0)?)?,
        name: parse_name(row.try_get(1)?)?,
        version: if version == 0 { None } else { Some(version_number(version)?) },
        routing,
        description: row.try_get(4)?,
        revision: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}
