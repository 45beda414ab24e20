//! The SQL store. Queries use `$N` placeholders, which both SQLite and PostgreSQL
//! accept, and only portable types (TEXT, BIGINT).

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use updraft_model::{AppName, ArtifactDigest, FunctionConfig, FunctionName, VersionNumber};

use crate::records::{
    AccessKeyRecord, ApiKeyRecord, DeployOutcome, DeployPlan, DeployedFunction, FunctionRecord, TokenIdentity,
    VersionRecord,
};
use updraft_model::now_millis;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {url:?}; use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { url: String },
    #[error("could not connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("could not migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("function {function:?} belongs to app {owner:?}; delete it there or pick another name")]
    FunctionOwnedByOtherApp { function: FunctionName, owner: AppName },
    #[error("function {function:?} not found")]
    FunctionNotFound { function: FunctionName },
    #[error("function {function:?} has no version {version}")]
    VersionNotFound { function: FunctionName, version: VersionNumber },
    #[error("alias {alias:?} of function {function:?} exists already, or changed since it was read")]
    AliasConflict { function: FunctionName, alias: updraft_model::AliasName },
    #[error("stored data is corrupt: {detail}")]
    Corrupt { detail: String },
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A write shared with other callers (one group commit) failed.
    #[error("a grouped write failed: {detail}")]
    Grouped { detail: String },
}

/// The control-plane database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// Where it is (for a `LISTEN` connection beside the pool); hidden from `Debug`,
    /// as it may carry a password.
    pub(crate) url: Secret,
}

/// A value kept out of `Debug` output.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`) and brings the schema up
    /// to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl { url: url.to_owned() });
        };
        let options = AnyConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        let pool = match backend {
            // One connection: SQLite allows one writer, and serializing here avoids
            // lock-upgrade failures between concurrent transactions. Nothing on the
            // invoke path reads the database, so this is not a bottleneck.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        // WAL for concurrent readers; FULL so a commit is on disk when
                        // it returns (acknowledged means durable).
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?,
            Backend::Postgres => {
                AnyPoolOptions::new().max_connections(8).connect_with(options).await.map_err(StoreError::Connect)?
            }
        };
        let files = match backend {
            Backend::Sqlite => crate::migrations::SQLITE,
            Backend::Postgres => crate::migrations::POSTGRES,
        };
        let migrator = crate::migrations::migrator(files).await.map_err(StoreError::Migrate)?;
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self { pool, backend, url: Secret(url.to_owned()) })
    }

    /// The URL of a SQLite database file, created if missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Every function with the version it serves, by name.
    pub async fn function_list(&self) -> Result<Vec<FunctionRecord>, StoreError> {
        let rows = sqlx::query(FUNCTION_SELECT).fetch_all(&self.pool).await?;
        let mut functions = rows.iter().map(function_from_row).collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not with ORDER BY: PostgreSQL orders by the database's collation
        // (`a_c` before `a-b` under en-US), SQLite by bytes, and both must list alike.
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(functions)
    }

    pub async fn function_get(&self, name: &FunctionName) -> Result<Option<FunctionRecord>, StoreError> {
        let row = sqlx::query(&format!("{FUNCTION_SELECT} WHERE f.name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(function_from_row).transpose()
    }

    /// A function's versions, newest first.
    pub async fn version_list(&self, name: &FunctionName) -> Result<Vec<VersionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT function, version, artifact, config, fingerprint, created_at FROM versions \
             WHERE function = $1 ORDER BY version DESC",
        )
        .bind(name.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| version_from_row(row, 0)).collect()
    }

    /// Applies a deploy in one transaction: a new version for each function whose
    /// fingerprint differs from the one it serves, nothing for the others, and the
    /// app's functions that the plan no longer names are deleted.
    pub async fn app_deploy(&self, plan: &DeployPlan) -> Result<DeployOutcome, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;

        // One statement that inserts or bumps the app's row: on PostgreSQL it locks the row
        // until commit, so concurrent deploys of one app run one after the other instead
        // of failing on the primary key or handing out the same generation twice.
        let generation: i64 = sqlx::query(
            "INSERT INTO apps (name, generation, manifest, updated_at) VALUES ($1, 1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET generation = apps.generation + 1, \
             manifest = excluded.manifest, updated_at = excluded.updated_at \
             RETURNING generation",
        )
        .bind(plan.app.as_str())
        .bind(plan.manifest.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;

        let mut functions = Vec::new();
        for planned in &plan.functions {
            let existing = sqlx::query(
                "SELECT f.app, f.latest_version, v.fingerprint, f.current_version FROM functions f \
                 JOIN versions v ON v.function = f.name AND v.version = f.current_version \
                 WHERE f.name = $1",
            )
            .bind(planned.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let config = serde_json::to_string(&planned.config)
                .map_err(|error| StoreError::Corrupt { detail: error.to_string() })?;
            let deployed = match existing {
                None => {
                    // Another app's deploy may have claimed the name since the SELECT; on
                    // PostgreSQL this waits for it and then inserts nothing.
                    let token = TokenIdentity { id: uuid::Uuid::new_v4().simple().to_string(), generation: 1 };
                    let inserted = sqlx::query(
                        "INSERT INTO functions (name, app, current_version, latest_version, created_at, updated_at, \
                         token_id, token_generation) VALUES ($1, $2, 1, 1, $3, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(planned.name.as_str())
                    .bind(plan.app.as_str())
                    .bind(now)
                    .bind(token.id.as_str())
                    .bind(token.generation)
                    .execute(&mut *tx)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        let owner: String = sqlx::query("SELECT app FROM functions WHERE name = $1")
                            .bind(planned.name.as_str())
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                        return Err(StoreError::FunctionOwnedByOtherApp {
                            function: planned.name.clone(),
                            owner: parse_name(owner)?,
                        });
                    }
                    insert_version(&mut tx, planned, 1, &config, now).await?;
                    DeployedFunction { name: planned.name.clone(), version: VersionNumber(1), changed: true }
                }
                Some(row) => {
                    let owner: String = row.try_get(0)?;
                    if owner != plan.app.as_str() {
                        return Err(StoreError::FunctionOwnedByOtherApp {
                            function: planned.name.clone(),
                            owner: parse_name(owner)?,
                        });
                    }
                    let latest: i64 = row.try_get(1)?;
                    let fingerprint: String = row.try_get(2)?;
                    let current: i64 = row.try_get(3)?;
                    if fingerprint == planned.fingerprint {
                        DeployedFunction {
                            name: planned.name.clone(),
                            version: version_number(current)?,
                            changed: false,
                        }
                    } else {
                        let version = latest + 1;
                        insert_version(&mut tx, planned, version, &config, now).await?;
                        // The new version serves a canary's share, or everything.
                        sqlx::query("DELETE FROM canaries WHERE function = $1")
                            .bind(planned.name.as_str())
                            .execute(&mut *tx)
                            .await?;
                        if let Some(canary) = plan.canary {
                            let ends_at = now.saturating_add(i64::try_from(canary.duration_ms).unwrap_or(i64::MAX));
                            sqlx::query(
                                "INSERT INTO canaries (function, previous, share_ppm, started_at, ends_at) \
                                 VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(planned.name.as_str())
                            .bind(current)
                            .bind(i64::from(canary.share_ppm))
                            .bind(now)
                            .bind(ends_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        sqlx::query(
                            "UPDATE functions SET current_version = $2, latest_version = $2, updated_at = $3 WHERE name = $1",
                        )
                        .bind(planned.name.as_str())
                        .bind(version)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        DeployedFunction {
                            name: planned.name.clone(),
                            version: version_number(version)?,
                            changed: true,
                        }
                    }
                }
            };
            set_aliases(&mut tx, planned, now).await?;
            functions.push(deployed);
        }

        let mut removed = Vec::new();
        let rows = sqlx::query("SELECT name FROM functions WHERE app = $1")
            .bind(plan.app.as_str())
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let name: String = row.try_get(0)?;
            if !plan.functions.iter().any(|f| f.name.as_str() == name) {
                delete_function(&mut tx, &name).await?;
                removed.push(parse_name(name)?);
            }
        }
        removed.sort();

        let mut tokens = std::collections::BTreeMap::new();
        for function in &functions {
            let row = sqlx::query("SELECT token_id, token_generation FROM functions WHERE name = $1")
                .bind(function.name.as_str())
                .fetch_one(&mut *tx)
                .await?;
            tokens.insert(function.name.clone(), TokenIdentity { id: row.try_get(0)?, generation: row.try_get(1)? });
        }

        tx.commit().await?;
        Ok(DeployOutcome { generation, functions, removed, tokens })
    }

    /// Points a function back at an earlier version.
    pub async fn function_rollback(
        &self,
        name: &FunctionName,
        version: VersionNumber,
    ) -> Result<FunctionRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM versions WHERE function = $1 AND version = $2")
            .bind(name.as_str())
            .bind(i64::from(version.0))
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::VersionNotFound { function: name.clone(), version });
        }
        sqlx::query("UPDATE functions SET current_version = $2, updated_at = $3 WHERE name = $1")
            .bind(name.as_str())
            .bind(i64::from(version.0))
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        // Serving a chosen version ends a canary.
        sqlx::query("DELETE FROM canaries WHERE function = $1").bind(name.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        self.function_get(name).await?.ok_or_else(|| StoreError::FunctionNotFound { function: name.clone() })
    }

    /// Deletes a function and its versions; false when there was none.
    pub async fn function_delete(&self, name: &FunctionName) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = delete_function(&mut tx, name.as_str()).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn api_key_insert(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, secret_hash, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key.id.as_str())
            .bind(key.secret_hash.as_str())
            .bind(key.role.as_str())
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn api_key_list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, secret_hash, role, created_at FROM api_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyRecord {
                    id: row.try_get(0)?,
                    secret_hash: row.try_get(1)?,
                    role: row.try_get(2)?,
                    created_at: row.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn access_key_insert(&self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO access_keys (id, secret_sealed, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key.id.as_str())
            .bind(key.secret_sealed.as_str())
            .bind(key.role.as_str())
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn access_key_list(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, secret_sealed, role, created_at FROM access_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessKeyRecord {
                    id: row.try_get(0)?,
                    secret_sealed: row.try_get(1)?,
                    role: row.try_get(2)?,
                    created_at: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Deletes an access key; false when there was none.
    pub async fn access_key_delete(&self, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM access_keys WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }
}

const FUNCTION_SELECT: &str = "SELECT f.name, f.app, f.latest_version, f.created_at, f.updated_at, \
     v.function, v.version, v.artifact, v.config, v.fingerprint, v.created_at, f.token_id, f.token_generation \
     FROM functions f JOIN versions v ON v.function = f.name AND v.version = f.current_version";

/// Points the aliases a deploy declares where it says, in its transaction; an alias
/// already naming that version keeps its revision.
async fn set_aliases(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    planned: &crate::PlannedFunction,
    now: i64,
) -> Result<(), StoreError> {
    for (alias, version) in &planned.aliases {
        let version = version.map_or(0, |v| i64::from(v.0));
        sqlx::query(
            "INSERT INTO aliases (function, name, version, routing, description, revision, updated_at) \
             VALUES ($1, $2, $3, '{}', '', $4, $5) \
             ON CONFLICT (function, name) DO UPDATE SET version = excluded.version, routing = excluded.routing, \
             revision = excluded.revision, updated_at = excluded.updated_at \
             WHERE aliases.version <> excluded.version OR aliases.routing <> excluded.routing",
        )
        .bind(planned.name.as_str())
        .bind(alias.as_str())
        .bind(version)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    planned: &crate::PlannedFunction,
    version: i64,
    config: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO versions (function, version, artifact, config, fingerprint, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(planned.name.as_str())
    .bind(version)
    .bind(planned.artifact.as_str())
    .bind(config)
    .bind(planned.fingerprint.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete_function(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM versions WHERE function = $1").bind(name).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM aliases WHERE function = $1").bind(name).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM canaries WHERE function = $1").bind(name).execute(&mut **tx).await?;
    // A later function of the same name must not inherit these logs.
    sqlx::query("DELETE FROM log_lines WHERE function = $1").bind(name).execute(&mut **tx).await?;
    let result = sqlx::query("DELETE FROM functions WHERE name = $1").bind(name).execute(&mut **tx).await?;
    Ok(result.rows_affected() > 0)
}

fn function_from_row(row: &sqlx::any::AnyRow) -> Result<FunctionRecord, StoreError> {
    Ok(FunctionRecord {
        name: parse_name(row.try_get(0)?)?,
        app: parse_name(row.try_get(1)?)?,
        latest_version: version_number(row.try_get(2)?)?,
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
        current: version_from_row(row, 5)?,
        token: TokenIdentity { id: row.try_get(11)?, generation: row.try_get(12)? },
    })
}

fn version_from_row(row: &sqlx::any::AnyRow, at: usize) -> Result<VersionRecord, StoreError> {
    let config: String = row.try_get(at + 3)?;
    let artifact: String = row.try_get(at + 2)?;
    Ok(VersionRecord {
        function: parse_name(row.try_get(at)?)?,
        version: version_number(row.try_get(at + 1)?)?,
        artifact: ArtifactDigest::parse(&artifact).map_err(|e| StoreError::Corrupt { detail: e.to_string() })?,
        config: serde_json::from_str::<FunctionConfig>(&config)
            .map_err(|e| StoreError::Corrupt { detail: format!("version config: {e}") })?,
        fingerprint: row.try_get(at + 4)?,
        created_at: row.try_get(at + 5)?,
    })
}

/// Rows per multi-row `INSERT`: one round trip and one parse per chunk instead of per
/// row, which is most of the cost of writing batches under load.
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

impl Backend {
    /// `?, ?, ?` for a list of `count` values (`$1, $2, $3` on PostgreSQL).
    pub(crate) fn placeholders(self, count: usize) -> String {
        let mut sql = String::new();
        for index in 0..count {
            if index > 0 {
                sql.push_str(", ");
            }
            match self {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", index + 1)),
            }
        }
        sql
    }

    /// `(?, ?), (?, ?)` for `rows` rows of `columns` values, in this backend's
    /// placeholder style.
    pub(crate) fn value_rows(self, rows: usize, columns: usize) -> String {
        let mut sql = String::new();
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for column in 0..columns {
                if column > 0 {
                    sql.push_str(", ");
                }
                match self {
                    // Plain `?` on SQLite: with numbered parameters the driver looks each
                    // one up by name, which grows with the square of the row count.
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => sql.push_str(&format!("${}", row * columns + column + 1)),
                }
            }
            sql.push(')');
        }
        sql
    }
}

pub(crate) fn parse_name<T: FromStr<Err = updraft_model::InvalidName>>(value: String) -> Result<T, StoreError> {
    value.parse().map_err(|e: updraft_model::InvalidName| StoreError::Corrupt { detail: e.to_string() })
}

pub(crate) fn version_number(value: i64) -> Result<VersionNumber, StoreError> {
    u32::try_from(value)
        .map(VersionNumber)
        .map_err(|_| StoreError::Corrupt { detail: format!("version {value} out of range") })
}
