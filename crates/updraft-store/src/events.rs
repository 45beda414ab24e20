//! The embedded durable queue of asynchronous invocations: an event is committed
//! before its caller hears 202, claimed with a lease while it runs, removed when it
//! succeeds, rescheduled when it fails and has attempts left, kept as `failed` when it
//! has none. A crash loses nothing acknowledged: leases run out, and the next start
//! releases this node's at once.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use updraft_model::{EventSource, FunctionName, Lineage};

use crate::sql::{Backend, ROWS_PER_STATEMENT, parse_name};
use crate::{Store, StoreError};

/// One asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Also the request id of each of its attempts.
    pub id: String,
    pub function: FunctionName,
    pub payload: Vec<u8>,
    pub trace_id: String,
    /// The span that sent it (its caller's, or the invocation it follows from).
    pub parent_span_id: Option<String>,
    /// How often each function ran in the chain that sent it (recursive loop detection).
    pub lineage: Lineage,
    /// The version number or alias it runs (resolved when it runs); `None` for the
    /// version serving then.
    pub qualifier: Option<String>,
    /// When it was accepted (ms since the epoch).
    pub enqueued_at: i64,
    /// Attempts that ran and failed.
    pub attempts: i64,
    /// When it is next due (ms since the epoch); while claimed, when the claim lapses.
    pub next_attempt_at: i64,
    pub state: EventState,
    pub last_error: Option<String>,
    /// Where it came from: decides the shape the function gets it in.
    pub source: EventSource,
}

/// How an event's run ended, for [`Store::event_finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish<'a> {
    /// It ran: the event leaves the queue.
    Done,
    /// Out of attempts or too old: kept as `failed` with its error.
    Failed { attempts: i64, error: &'a str },
}

impl Finish<'_> {
    /// The write that records this outcome of event `id`.
    pub fn write(self, id: &str) -> EventWrite {
        match self {
            Finish::Done => EventWrite::Done { id: id.to_owned() },
            Finish::Failed { attempts, error } => {
                EventWrite::Failed { id: id.to_owned(), attempts, error: error.to_owned() }
            }
        }
    }
}

/// One change to the queue; [`Store::event_write`] applies a list in one transaction.
// Most writes are `Enqueue`s, so boxing it would allocate for the common case to save
// space in the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventWrite {
    /// Store a new event (an id already stored is left as it is).
    Enqueue(AsyncEvent),
    /// Store a new event already claimed by `node`, leased until its `next_attempt_at`,
    /// as [`Store::event_claim`] would have left it: the node that accepted it runs it
    /// without reading it back.
    EnqueueClaimed { event: AsyncEvent, node: String },
    /// It ran: remove it.
    Done { id: String },
    /// Keep it as `failed` with its error.
    Failed { id: String, attempts: i64, error: String },
    /// Make it due again at `next_attempt_at`.
    Retry { id: String, attempts: i64, next_attempt_at: i64, error: Option<String> },
}

impl EventWrite {
    /// The event it writes.
    pub fn id(&self) -> &str {
        match self {
            EventWrite::Enqueue(event) | EventWrite::EnqueueClaimed { event, .. } => &event.id,
            EventWrite::Done { id } | EventWrite::Failed { id, .. } | EventWrite::Retry { id, .. } => id,
        }
    }
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

const COLUMNS: &str = "id, function, payload, trace_id, enqueued_at, attempts, next_attempt_at, state, last_error, source, parent_span_id, lineage, qualifier";

impl Store {
    /// Stores an event; when this returns, it is on disk (or in PostgreSQL).
    pub async fn event_enqueue(&self, event: &AsyncEvent) -> Result<(), StoreError> {
        self.event_enqueue_all(std::slice::from_ref(event)).await
    }

    /// Stores events in one transaction: all of them, or none (one message's copies
    /// for every subscriber of a topic).
    pub async fn event_enqueue_all(&self, events: &[AsyncEvent]) -> Result<(), StoreError> {
        let writes: Vec<EventWrite> = events.iter().cloned().map(EventWrite::Enqueue).collect();
        self.event_write(&writes).await
    }

    /// Records how event `id` ended and stores the events that follow from it (its
    /// destination's, its dead-letter topic's) in the same transaction, so that a crash
    /// leaves either the event to run again or its outcome delivered, never neither.
    pub async fn event_finish(
        &self,
        id: &str,
        finish: Finish<'_>,
        follow_ups: &[AsyncEvent],
    ) -> Result<(), StoreError> {
        let mut writes = vec![finish.write(id)];
        writes.extend(follow_ups.iter().cloned().map(EventWrite::Enqueue));
        self.event_write(&writes).await
    }

    /// Puts an event back in the queue, due at `next_attempt_at`.
    pub async fn event_retry(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let retry = EventWrite::Retry { id: id.to_owned(), attempts, next_attempt_at, error: error.map(str::to_owned) };
        self.event_write(&[retry]).await
    }

    /// Applies `writes` in one transaction: all of them, or none.
    pub async fn event_write(&self, writes: &[EventWrite]) -> Result<(), StoreError> {
        self.event_write_each(writes.iter()).await
    }

    /// [`Store::event_write`] for writes gathered from several callers, without copying them.
    pub(crate) async fn event_write_each<'a>(
        &self,
        writes: impl Iterator<Item = &'a EventWrite> + Send,
    ) -> Result<(), StoreError> {
        let writes: Vec<&EventWrite> = writes.collect();
        let mut tx = self.pool.begin().await?;
        // Writes to different events commute. Then the new events go in multi-row
        // statements and the finished ones in one delete: a statement (a round trip to
        // the database's thread or server) per hundred writes, not per write. Writes
        // that touch one event twice keep their order.
        let mut ids = HashSet::with_capacity(writes.len());
        if writes.iter().all(|write| ids.insert(write.id())) {
            let new: Vec<(&AsyncEvent, Option<&str>)> = writes
                .iter()
                .filter_map(|write| match write {
                    EventWrite::Enqueue(event) => Some((event, None)),
                    EventWrite::EnqueueClaimed { event, node } => Some((event, Some(node.as_str()))),
                    _ => None,
                })
                .collect();
            for chunk in new.chunks(ROWS_PER_STATEMENT) {
                insert_events(&mut tx, self.backend, chunk).await?;
            }
            let done: Vec<&str> = writes
                .iter()
                .filter_map(|write| match write {
                    EventWrite::Done { id } => Some(id.as_str()),
                    _ => None,
                })
                .collect();
            for chunk in done.chunks(ROWS_PER_STATEMENT) {
                let sql = format!("DELETE FROM async_events WHERE id IN ({})", self.backend.placeholders(chunk.len()));
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
            }
            for write in writes {
                if matches!(write, EventWrite::Failed { .. } | EventWrite::Retry { .. }) {
                    apply_one(&mut tx, self.backend, write).await?;
                }
            }
        } else {
            for write in writes {
                apply_one(&mut tx, self.backend, write).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The keys of every stored schedule position.
    pub async fn schedule_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT key FROM schedule_ticks").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Forgets schedule `key` (its trigger is gone): if it comes back, it starts afresh.
    pub async fn schedule_forget(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM schedule_ticks WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(())
    }

    /// The next tick of schedule `key` as stored, if it was ever stored.
    pub async fn schedule_next_tick(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT next_tick_at FROM schedule_ticks WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    /// Moves schedule `key` from tick `expected` (`None`: not stored yet) to `next`
    /// and stores `events` (the ticks that fired), all in one transaction. Returns
    /// false, changing nothing, when the stored tick is not `expected`: another node
    /// (or an earlier run) got there first.
    pub async fn schedule_advance(
        &self,
        key: &str,
        function: &FunctionName,
        expected: Option<i64>,
        next: i64,
        events: &[AsyncEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved = match expected {
            None => sqlx::query(
                "INSERT INTO schedule_ticks (key, function, next_tick_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(function.as_str())
            .bind(next)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Some(expected) => {
                sqlx::query("UPDATE schedule_ticks SET next_tick_at = $1 WHERE key = $2 AND next_tick_at = $3")
                    .bind(next)
                    .bind(key)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
        };
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for event in events {
            insert_events(&mut tx, self.backend, &[(event, None)]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` queued events due at `now`, oldest due first: each is
    /// leased until `lease_until` (it becomes due again then, unless finished first).
    pub async fn event_claim(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<AsyncEvent>, StoreError> {
        if self.backend == Backend::Postgres {
            return self.event_claim_postgres(node, now, lease_until, limit).await;
        }
        // One transaction and two statements for the whole batch (SQLite runs them in
        // process, one writer at a time): read what is due, then lease it. The update
        // checks again that each is due and unclaimed, so an event claimed in between
        // is not handed out twice.
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM async_events WHERE state = 'queued' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let due = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
        if due.is_empty() {
            return Ok(due);
        }
        let sql = format!(
            "UPDATE async_events SET next_attempt_at = ?, claimed_by = ? \
             WHERE state = 'queued' AND next_attempt_at <= ? AND id IN ({}) RETURNING id",
            self.backend.placeholders(due.len())
        );
        let mut query = sqlx::query(&sql).bind(lease_until).bind(node).bind(now);
        for event in &due {
            query = query.bind(event.id.as_str());
        }
        let leased: HashSet<String> =
            query.fetch_all(&mut *tx).await?.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(due
            .into_iter()
            .filter(|event| leased.contains(&event.id))
            .map(|event| AsyncEvent { next_attempt_at: lease_until, ..event })
            .collect())
    }

    /// `event_claim` on PostgreSQL: one statement, not a round trip per event (a
    /// topic's hundred copies took ~30 ms that way). Rows another node is claiming are
    /// skipped, not waited for; a row claimed and committed meanwhile no longer matches.
    async fn event_claim_postgres(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<AsyncEvent>, StoreError> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|column| format!("e.{column}")).collect();
        let rows = sqlx::query(&format!(
            "WITH due AS (SELECT id, next_attempt_at AS due_at FROM async_events \
             WHERE state = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
             UPDATE async_events e SET next_attempt_at = $3, claimed_by = $4 FROM due WHERE e.id = due.id \
             RETURNING {}, due.due_at",
            columns.join(", ")
        ))
        .bind(now)
        .bind(limit)
        .bind(lease_until)
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>(13)?, event_from_row(row)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Oldest first, as the query chose them.
        claimed.sort_by(|(a_due, a), (b_due, b)| a_due.cmp(b_due).then_with(|| a.id.cmp(&b.id)));
        Ok(claimed.into_iter().map(|(_, event)| event).collect())
    }

    /// Makes the events `node` had claimed due at `now` (the node's start: its leases
    /// died with it). Other nodes' leases and events waiting out a retry's delay stay.
    pub async fn event_release_all(&self, node: &str, now: i64) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE async_events SET next_attempt_at = $1, claimed_by = NULL \
             WHERE state = 'queued' AND claimed_by = $2 AND next_attempt_at > $1",
        )
        .bind(now)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Failed events, the latest accepted first: `function`'s (or every function's),
    /// accepted before `enqueued_before` when given.
    pub async fn event_failed_list(
        &self,
        function: Option<&FunctionName>,
        enqueued_before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AsyncEvent>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM async_events WHERE state = 'failed'");
        let mut n = 0;
        if function.is_some() {
            n += 1;
            sql.push_str(&format!(" AND function = ${n}"));
        }
        if enqueued_before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND enqueued_at < ${n}"));
        }
        sql.push_str(&format!(" ORDER BY enqueued_at DESC, id DESC LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql);
        if let Some(function) = function {
            query = query.bind(function.as_str());
        }
        if let Some(before) = enqueued_before {
            query = query.bind(before);
        }
        let rows = query.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Makes the failed events among `ids` due at `now` as if accepted then: no
    /// attempts counted, unclaimed, their last error kept. Returns the ids it changed;
    /// an event not failed (queued, running, gone) is left as it is.
    pub async fn event_redrive(&self, ids: &[String], now: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut redriven = Vec::with_capacity(ids.len());
        for id in ids {
            let result = sqlx::query(
                "UPDATE async_events SET state = 'queued', attempts = 0, enqueued_at = $1, next_attempt_at = $1, \
                 claimed_by = NULL WHERE id = $2 AND state = 'failed'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if result.rows_affected() == 1 {
                redriven.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(redriven)
    }

    pub async fn event_get(&self, id: &str) -> Result<Option<AsyncEvent>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM async_events WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }
}

/// Applies one write on its own.
async fn apply_one(tx: &mut Transaction<'_, Any>, backend: Backend, write: &EventWrite) -> Result<(), StoreError> {
    match write {
        EventWrite::Enqueue(event) => insert_events(tx, backend, &[(event, None)]).await?,
        EventWrite::EnqueueClaimed { event, node } => insert_events(tx, backend, &[(event, Some(node))]).await?,
        EventWrite::Done { id } => {
            sqlx::query("DELETE FROM async_events WHERE id = $1").bind(id).execute(&mut **tx).await?;
        }
        EventWrite::Failed { id, attempts, error } => {
            sqlx::query(
                "UPDATE async_events SET state = 'failed', attempts = $1, last_error = $2, claimed_by = NULL \
                 WHERE id = $3",
            )
            .bind(attempts)
            .bind(text(error))
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        EventWrite::Retry { id, attempts, next_attempt_at, error } => {
            sqlx::query(
                "UPDATE async_events SET attempts = $1, next_attempt_at = $2, last_error = $3, claimed_by = NULL \
                 WHERE id = $4",
            )
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(error.as_deref().map(text))
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Stores `events` in one statement, each claimed by the node beside it (or by none);
/// an id already stored is left as it is.
async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    events: &[(&AsyncEvent, Option<&str>)],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO async_events ({COLUMNS}, claimed_by) VALUES {} ON CONFLICT (id) DO NOTHING",
        backend.value_rows(events.len(), 14)
    );
    let mut query = sqlx::query(&sql);
    for (event, claimed_by) in events {
        let source = match &event.source {
            EventSource::Invoke => None,
            source => {
                Some(serde_json::to_string(source).map_err(|error| StoreError::Corrupt { detail: error.to_string() })?)
            }
        };
        query = query
            .bind(event.id.as_str())
            .bind(event.function.as_str())
            .bind(event.payload.as_slice())
            .bind(event.trace_id.as_str())
            .bind(event.enqueued_at)
            .bind(event.attempts)
            .bind(event.next_attempt_at)
            .bind(event.state.as_str())
            .bind(event.last_error.as_deref())
            .bind(source)
            .bind(event.parent_span_id.as_deref())
            .bind(event.lineage.to_string())
            .bind(event.qualifier.as_deref())
            .bind(*claimed_by);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Free text as a TEXT column takes it: PostgreSQL refuses NUL characters, which a
/// function's error message may hold.
pub(crate) fn text(value: &str) -> String {
    value.replace('\0', "\u{FFFD}")
}

fn event_from_row(row: &AnyRow) -> Result<AsyncEvent, StoreError> {
    let source: Option<String> = row.try_get(9)?;
    let source = match source {
        None => EventSource::Invoke,
        Some(json) => serde_json::from_str(&json)
            .map_err(|error| StoreError::Corrupt { detail: format!("event source {json:?}: {error}") })?,
    };
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
        source,
        parent_span_id: row.try_get(10)?,
        // A lineage that does not parse is dropped, as a caller's bad header is.
        lineage: Lineage::parse(row.try_get::<String, _>(11)?.as_str()).unwrap_or_default(),
        qualifier: row.try_get(12)?,
    })
}
