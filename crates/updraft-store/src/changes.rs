//! Changes to what every node must agree on (apps, functions, versions, keys,
//! secrets): a counter the database's own triggers raise in the writing transaction,
//! and, on PostgreSQL, a `LISTEN` on the notification those triggers send at commit.
//! The counter is the truth; a notification only says "look now".

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgListener;

use crate::sql::{Backend, Store, StoreError};

/// The notification channel the triggers send on.
const CHANNEL: &str = "updraft_control";

/// Wakes when another transaction changed the control plane (PostgreSQL only).
pub struct ChangeListener {
    listener: PgListener,
}

impl Store {
    /// The control plane's change counter: equal values mean nothing changed between.
    pub async fn control_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT seq FROM control_changes WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Listens for control-plane changes; `None` on SQLite, where this process is the
    /// only writer.
    pub async fn control_listen(&self) -> Result<Option<ChangeListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = PgListener::connect(&self.url.0).await.map_err(StoreError::Connect)?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }
}

impl ChangeListener {
    /// Waits up to `within` for a notification; true when one came. A lost connection
    /// is reconnected (notifications sent meanwhile are lost, so a caller re-reads the
    /// counter after every return, notified or not).
    pub async fn wait(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.listener.try_recv()).await {
            Ok(Ok(Some(_))) => true,
            // `None`: the connection dropped and is reconnected on the next call.
            Ok(Ok(None)) => false,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "listening for control-plane changes failed; retrying");
                tokio::time::sleep(within).await;
                false
            }
            Err(_) => false,
        }
    }
}
