//! Sealed values: users' secrets, the server's own keys, function token generations,
//! and re-sealing everything at once when the secrets key is rotated. The store never
//! sees a secret in the clear: the platform seals and opens.

use sqlx::Row;
use updraft_model::{FunctionName, SecretName};

use crate::records::{SealedKind, SealedValue, SecretRecord};
use crate::sql::{Store, StoreError, parse_name};
use updraft_model::now_millis;

impl Store {
    /// Stores a secret's sealed value; true when it is new, false when it replaced one.
    pub async fn secret_put(&self, name: &SecretName, sealed: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE secrets SET sealed = $2, updated_at = $3 WHERE name = $1")
            .bind(name.as_str())
            .bind(sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let created = updated.rows_affected() == 0;
        if created {
            sqlx::query("INSERT INTO secrets (name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(name.as_str())
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Every secret's name and dates, by name.
    pub async fn secret_list(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM secrets").fetch_all(&self.pool).await?;
        let mut secrets = rows
            .iter()
            .map(|row| {
                Ok(SecretRecord {
                    name: parse_name(row.try_get(0)?)?,
                    created_at: row.try_get(1)?,
                    updated_at: row.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(secrets)
    }

    /// Every secret's sealed value, to open at start.
    pub async fn secret_sealed_list(&self) -> Result<Vec<(SecretName, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, sealed FROM secrets").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((parse_name(row.try_get(0)?)?, row.try_get(1)?))).collect()
    }

    /// Deletes a secret; false when there was none.
    pub async fn secret_delete(&self, name: &SecretName) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM secrets WHERE name = $1").bind(name.as_str()).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }

    /// The server key `name`, made by `make` (already sealed) if there is none yet. When
    /// two nodes race to make it, both get the one stored first.
    pub async fn server_key_get_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        if let Some(row) =
            sqlx::query("SELECT sealed FROM server_keys WHERE name = $1").bind(name).fetch_optional(&self.pool).await?
        {
            return Ok(row.try_get(0)?);
        }
        sqlx::query("INSERT INTO server_keys (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query("SELECT sealed FROM server_keys WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// The cluster key `name` (sealed with the operator's cluster key), made by `make`
    /// if there is none yet; racing nodes all get the one stored first.
    pub async fn cluster_key_get_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO cluster_keys (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query("SELECT sealed FROM cluster_keys WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Raises a function's token generation, revoking every token made before; returns
    /// the new generation.
    pub async fn function_token_rotate(&self, name: &FunctionName) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "UPDATE functions SET token_generation = token_generation + 1 WHERE name = $1 RETURNING token_generation",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(StoreError::FunctionNotFound { function: name.clone() }),
        }
    }

    /// Every sealed value the store holds: access keys' secrets, secrets, server keys.
    pub async fn sealed_list(&self) -> Result<Vec<SealedValue>, StoreError> {
        let mut values = Vec::new();
        for (kind, sql) in SEALED_TABLES {
            for row in sqlx::query(sql.select).fetch_all(&self.pool).await? {
                values.push(SealedValue { kind, id: row.try_get(0)?, sealed: row.try_get(1)? });
            }
        }
        Ok(values)
    }

    /// Replaces sealed values (each found by its kind and id) in one transaction: all
    /// of them, or none.
    /// With `cluster_key`, the cluster key of that name (the new secrets key, sealed
    /// with the operator's key) is replaced in the same transaction.
    pub async fn sealed_replace(
        &self,
        values: &[SealedValue],
        cluster_key: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some((name, sealed)) = cluster_key {
            sqlx::query(
                "INSERT INTO cluster_keys (name, sealed) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
            )
            .bind(name)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        }
        for value in values {
            let (_, sql) = SEALED_TABLES.iter().find(|(kind, _)| *kind == value.kind).expect("every kind is listed");
            let updated =
                sqlx::query(sql.update).bind(value.id.as_str()).bind(value.sealed.as_str()).execute(&mut *tx).await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Corrupt { detail: format!("sealed {:?} {} vanished", value.kind, value.id) });
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

struct SealedSql {
    select: &'static str,
    update: &'static str,
}

const SEALED_TABLES: [(SealedKind, SealedSql); 3] = [
    (
        SealedKind::AccessKey,
        SealedSql {
            select: "SELECT id, secret_sealed FROM access_keys",
            update: "UPDATE access_keys SET secret_sealed = $2 WHERE id = $1",
        },
    ),
    (
        SealedKind::Secret,
        SealedSql {
            select: "SELECT name, sealed FROM secrets",
            update: "UPDATE secrets SET sealed = $2 WHERE name = $1",
        },
    ),
    (
        SealedKind::ServerKey,
        SealedSql {
            select: "SELECT name, sealed FROM server_keys",
            update: "UPDATE server_keys SET sealed = $2 WHERE name = $1",
        },
    ),
];
