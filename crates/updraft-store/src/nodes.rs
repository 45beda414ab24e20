//! The cluster's members: each node joins with a new epoch, heartbeats its load, and
//! marks itself gone when it stops. Every time here is the database's clock, the one
//! clock all nodes share, so "how long since its last heartbeat" means the same on each.

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::FunctionName;

use crate::sql::{Backend, Store, StoreError, parse_name};

/// A node as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    /// Raised each time the node (re)joins: tells its writes from an earlier run's.
    pub epoch: i64,
    /// Where other nodes and clients reach it (`http://host:port`).
    pub address: String,
    pub version: String,
    /// When it joined (ms since the epoch).
    pub started_at: i64,
    /// Its last heartbeat (ms since the epoch).
    pub last_seen: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub silent_for: i64,
    pub load: NodeLoad,
    /// When it stopped cleanly; `None` while it runs (or if it died).
    pub left_at: Option<i64>,
}

/// What a node reports with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Invocations running.
    pub in_flight: i64,
    /// Instances alive, idle or busy.
    pub instances: i64,
    /// The functions those instances serve, by name.
    pub warm_functions: Vec<FunctionName>,
}

/// Rows of nodes gone this long (ms) are removed when another node joins.
const FORGET_AFTER_MS: i64 = 7 * 24 * 3_600_000;

impl Store {
    /// The database's clock in ms since the epoch, as an SQL expression.
    fn clock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Registers node `id` (again): returns its new epoch. Rows of nodes long gone are
    /// removed on the way.
    pub async fn node_join(&self, id: &str, address: &str, version: &str) -> Result<i64, StoreError> {
        let now = self.clock();
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!("DELETE FROM nodes WHERE last_seen < {now} - $1 AND id <> $2"))
            .bind(FORGET_AFTER_MS)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let epoch: i64 = sqlx::query(&format!(
            "INSERT INTO nodes (id, epoch, address, version, started_at, last_seen) \
             VALUES ($1, 1, $2, $3, {now}, {now}) \
             ON CONFLICT (id) DO UPDATE SET epoch = nodes.epoch + 1, address = excluded.address, \
             version = excluded.version, started_at = excluded.started_at, last_seen = excluded.last_seen, \
             in_flight = 0, instances = 0, warm_functions = '', left_at = NULL \
             RETURNING epoch"
        ))
        .bind(id)
        .bind(address)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Records a heartbeat of node `id` in `epoch` with its load; false when the row
    /// belongs to a newer epoch (another process joined as this node).
    pub async fn node_heartbeat(&self, id: &str, epoch: i64, load: &NodeLoad) -> Result<bool, StoreError> {
        let warm: Vec<&str> = load.warm_functions.iter().map(FunctionName::as_str).collect();
        let updated = sqlx::query(&format!(
            "UPDATE nodes SET last_seen = {}, in_flight = $3, instances = $4, warm_functions = $5 \
             WHERE id = $1 AND epoch = $2",
            self.clock()
        ))
        .bind(id)
        .bind(epoch)
        .bind(load.in_flight)
        .bind(load.instances)
        .bind(warm.join(" "))
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Marks node `id` as stopped cleanly (if `epoch` is still its latest).
    pub async fn node_leave(&self, id: &str, epoch: i64) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE nodes SET left_at = {}, in_flight = 0, instances = 0, warm_functions = '' \
             WHERE id = $1 AND epoch = $2",
            self.clock()
        ))
        .bind(id)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every node the table knows, by id.
    pub async fn node_list(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, epoch, address, version, started_at, last_seen, {} - last_seen, in_flight, instances, \
             warm_functions, left_at FROM nodes",
            self.clock()
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut nodes = rows.iter().map(node_from_row).collect::<Result<Vec<_>, _>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}

fn node_from_row(row: &AnyRow) -> Result<NodeRecord, StoreError> {
    let warm: String = row.try_get(9)?;
    Ok(NodeRecord {
        id: row.try_get(0)?,
        epoch: row.try_get(1)?,
        address: row.try_get(2)?,
        version: row.try_get(3)?,
        started_at: row.try_get(4)?,
        last_seen: row.try_get(5)?,
        silent_for: row.try_get(6)?,
        load: NodeLoad {
            in_flight: row.try_get(7)?,
            instances: row.try_get(8)?,
            warm_functions: warm
                .split_whitespace()
                .map(|name| parse_name(name.to_owned()))
                .collect::<Result<_, _>>()?,
        },
        left_at: row.try_get(10)?,
    })
}

impl Store {
    /// Grants node `node` up to `want` more permits of `scope`, as many as keep every
    /// node's unexpired grant of it within `limit`; returns how many. Its grant then
    /// lasts `ttl_ms`.
    pub async fn permit_borrow(
        &self,
        scope: &str,
        node: &str,
        want: u32,
        limit: u32,
        ttl_ms: i64,
    ) -> Result<u32, StoreError> {
        let now = self.clock();
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Borrowers of one scope take turns (SQLite's one connection serializes).
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(scope).execute(&mut *tx).await?;
        }
        let others: i64 = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(permits), 0) AS BIGINT) FROM permit_grants \
             WHERE scope = $1 AND node <> $2 AND expires_at > {now}"
        ))
        .bind(scope)
        .bind(node)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let mine: i64 = sqlx::query("SELECT permits FROM permit_grants WHERE scope = $1 AND node = $2")
            .bind(scope)
            .bind(node)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let take = (i64::from(limit) - others - mine).clamp(0, i64::from(want));
        if take > 0 {
            upsert_grant(&mut tx, now, scope, node, mine + take, ttl_ms).await?;
        }
        tx.commit().await?;
        Ok(u32::try_from(take).unwrap_or(0))
    }

    /// Sets node `node`'s grants to `grants` (scope, permits) for another `ttl_ms`;
    /// a grant of 0 is given back.
    pub async fn permit_renew(&self, node: &str, grants: &[(String, u32)], ttl_ms: i64) -> Result<(), StoreError> {
        let now = self.clock();
        let mut tx = self.pool.begin().await?;
        for (scope, permits) in grants {
            if *permits == 0 {
                sqlx::query("DELETE FROM permit_grants WHERE scope = $1 AND node = $2")
                    .bind(scope.as_str())
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
            } else {
                upsert_grant(&mut tx, now, scope, node, i64::from(*permits), ttl_ms).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives back every grant of node `node` (it stops).
    pub async fn permit_release_all(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM permit_grants WHERE node = $1").bind(node).execute(&self.pool).await?;
        Ok(())
    }
}

async fn upsert_grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: &str,
    scope: &str,
    node: &str,
    permits: i64,
    ttl_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO permit_grants (scope, node, permits, expires_at) VALUES ($1, $2, $3, {now} + $4) \
         ON CONFLICT (scope, node) DO UPDATE SET permits = excluded.permits, expires_at = excluded.expires_at"
    ))
    .bind(scope)
    .bind(node)
    .bind(permits)
    .bind(ttl_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
