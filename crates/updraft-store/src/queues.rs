//! Work queues: messages committed before their sender hears 202, delivered in batches
//! with a visibility timeout (a delivered message is invisible until the timeout, and
//! comes back if its batch did not succeed), deleted when handled, moved to a
//! dead-letter queue after too many deliveries.

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::{Lineage, QueueName, TraceParent};

use crate::sql::parse_name;
use crate::{Store, StoreError};

/// One message in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub queue: QueueName,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// When it was sent (ms since the epoch).
    pub sent_at: i64,
    /// Deliveries so far, this one included once received.
    pub receive_count: i64,
    pub first_received_at: Option<i64>,
    /// Until when it is invisible (ms since the epoch); due when in the past.
    pub visible_at: i64,
    /// The trace context it was sent under, which the batch that handles it links to.
    pub trace: Option<TraceParent>,
}

/// A queue's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Messages ready for delivery.
    pub visible: i64,
    /// Messages delivered and not yet handled.
    pub in_flight: i64,
    /// When the oldest visible message became visible (ms since the epoch).
    pub oldest_visible_at: Option<i64>,
}

const COLUMNS: &str =
    "id, queue, body, content_type, sent_at, receive_count, first_received_at, visible_at, traceparent, lineage";

impl Store {
    /// Stores messages (all or none); when this returns they are durable.
    pub async fn queue_send(&self, messages: &[QueueMessage]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for message in messages {
            sqlx::query(&format!(
                "INSERT INTO queue_messages ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(message.id.as_str())
            .bind(message.queue.as_str())
            .bind(message.body.as_slice())
            .bind(message.content_type.as_deref())
            .bind(message.sent_at)
            .bind(message.receive_count)
            .bind(message.first_received_at)
            .bind(message.visible_at)
            .bind(message.trace.as_ref().map(TraceParent::header))
            .bind(message.trace.as_ref().map(|trace| trace.lineage.to_string()).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many messages of `queue` are visible and in flight at `now`.
    pub async fn queue_depth(&self, queue: &QueueName, now: i64) -> Result<QueueDepth, StoreError> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN visible_at <= $2 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN visible_at > $2 THEN 1 ELSE 0 END), 0), \
               MIN(CASE WHEN visible_at <= $2 THEN visible_at END) \
             FROM queue_messages WHERE queue = $1",
        )
        .bind(queue.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueDepth { visible: row.try_get(0)?, in_flight: row.try_get(1)?, oldest_visible_at: row.try_get(2)? })
    }

    /// Receives up to `limit` visible messages of `queue`, oldest first: each becomes
    /// invisible until `visible_until` and counts one more receive.
    pub async fn queue_receive(
        &self,
        queue: &QueueName,
        now: i64,
        visible_until: i64,
        limit: i64,
    ) -> Result<Vec<QueueMessage>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM queue_messages WHERE queue = $1 AND visible_at <= $2 ORDER BY sent_at, id LIMIT $3"
        ))
        .bind(queue.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut received = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut message = message_from_row(row)?;
            // Received only if no other consumer received it since it was read.
            let updated = sqlx::query(
                "UPDATE queue_messages SET visible_at = $1, receive_count = receive_count + 1, \
                 first_received_at = COALESCE(first_received_at, $2) WHERE id = $3 AND visible_at = $4",
            )
            .bind(visible_until)
            .bind(now)
            .bind(message.id.as_str())
            .bind(message.visible_at)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 1 {
                message.visible_at = visible_until;
                message.receive_count += 1;
                message.first_received_at.get_or_insert(now);
                received.push(message);
            }
        }
        tx.commit().await?;
        Ok(received)
    }

    /// Deletes handled messages and makes the others of the batch visible at
    /// `retry_at` (`None`: when their visibility timeout ends), in one transaction.
    /// `uncount` takes their receive back (the function never saw them: a throttle).
    pub async fn queue_settle(
        &self,
        handled: &[String],
        unhandled: &[String],
        retry_at: Option<i64>,
        uncount: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in handled {
            sqlx::query("DELETE FROM queue_messages WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        if let Some(retry_at) = retry_at {
            let back = if uncount { 1 } else { 0 };
            for id in unhandled {
                sqlx::query(
                    "UPDATE queue_messages SET visible_at = $1, receive_count = receive_count - $2 WHERE id = $3",
                )
                .bind(retry_at)
                .bind(back)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves messages to `dead_letter`, visible at once with their receives reset.
    pub async fn queue_move(&self, ids: &[String], dead_letter: &QueueName, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE queue_messages SET queue = $1, visible_at = $2, receive_count = 0, first_received_at = NULL \
                 WHERE id = $3",
            )
            .bind(dead_letter.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves up to `limit` messages visible in `from` at `now` (a dead-letter queue's)
    /// to `to`, oldest first, visible at once with their receives reset: a redrive.
    /// Returns how many moved; call again until it moves none.
    pub async fn queue_redrive(
        &self,
        from: &QueueName,
        to: &QueueName,
        now: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE queue_messages SET queue = $1, visible_at = $2, receive_count = 0, first_received_at = NULL \
             WHERE id IN (SELECT id FROM queue_messages WHERE queue = $3 AND visible_at <= $2 \
             ORDER BY sent_at, id LIMIT $4)",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(from.as_str())
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Up to `limit` messages of `queue`, oldest first, without receiving them.
    pub async fn queue_peek(&self, queue: &QueueName, limit: i64) -> Result<Vec<QueueMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM queue_messages WHERE queue = $1 ORDER BY sent_at, id LIMIT $2"
        ))
        .bind(queue.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }
}

fn message_from_row(row: &AnyRow) -> Result<QueueMessage, StoreError> {
    let lineage: String = row.try_get(9)?;
    Ok(QueueMessage {
        id: row.try_get(0)?,
        queue: parse_name(row.try_get(1)?)?,
        body: row.try_get(2)?,
        content_type: row.try_get(3)?,
        sent_at: row.try_get(4)?,
        receive_count: row.try_get(5)?,
        first_received_at: row.try_get(6)?,
        visible_at: row.try_get(7)?,
        trace: row.try_get::<Option<String>, _>(8)?.as_deref().and_then(TraceParent::parse).map(|trace| {
            // A lineage that does not parse is dropped, as a caller's bad header is.
            TraceParent { lineage: Lineage::parse(&lineage).unwrap_or_default(), ..trace }
        }),
    })
}
