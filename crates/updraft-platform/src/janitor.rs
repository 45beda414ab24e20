//! The janitor: removes what is past its retention (invocation records, and so their
//! traces; log lines; finished workflow executions; failed asynchronous events) every
//! `interval`, in small batches with a pause between them, so that serving and the
//! record and log writers are never held up behind it. Every node of a cluster runs
//! one; a row removed twice is removed once.

use std::sync::Weak;
use std::time::Duration;

use updraft_model::now_millis;
use updraft_store::{Keep, Store, StoreError};

use crate::Platform;

/// How long things are kept, and how much of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Invocation records (and the traces read from them).
    pub records: Duration,
    /// The newest this many records are kept, at most.
    pub max_records: u64,
    pub logs: Duration,
    /// The newest this many log lines are kept, at most.
    pub max_log_lines: u64,
    /// Workflow executions, from when they finished.
    pub executions: Duration,
    /// Asynchronous events that failed for good, from when they were accepted.
    pub failed_events: Duration,
    /// How often the janitor looks.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        Self {
            records: 7 * DAY,
            max_records: 1_000_000,
            logs: 7 * DAY,
            max_log_lines: 1_000_000,
            executions: 30 * DAY,
            failed_events: 14 * DAY,
            interval: Duration::from_secs(60),
        }
    }
}

/// Rows removed in one statement.
const BATCH: i64 = 1000;
/// The pause between two batches, which lets the writers in.
const PAUSE: Duration = Duration::from_millis(5);

/// Starts the janitor; it stops when the platform is gone.
pub(crate) fn start(platform: Weak<Platform>, store: Store, config: RetentionConfig) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(config.interval).await;
            if platform.strong_count() == 0 {
                return;
            }
            match pass(&store, &config).await {
                Ok(removed) if removed.iter().any(|(_, n)| *n > 0) => {
                    let summary: Vec<String> =
                        removed.iter().filter(|(_, n)| *n > 0).map(|(what, n)| format!("{n} {what}")).collect();
                    tracing::info!(removed = %summary.join(", "), "removed what is past its retention");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the janitor could not remove what is past its retention"),
            }
        }
    });
}

/// One pass over everything; returns how many of each were removed.
pub(crate) async fn pass(store: &Store, config: &RetentionConfig) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let now = now_millis();
    let before = |kept: Duration| now.saturating_sub(i64::try_from(kept.as_millis()).unwrap_or(i64::MAX));
    let at_most = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let records = Keep { newer_than: before(config.records), at_most: at_most(config.max_records) };
    let logs = Keep { newer_than: before(config.logs), at_most: at_most(config.max_log_lines) };
    Ok(vec![
        ("invocation records", batches(|| store.prune_invocations(records, BATCH)).await?),
        ("log lines", batches(|| store.prune_log_lines(logs, BATCH)).await?),
        ("workflow executions", batches(|| store.prune_executions(before(config.executions), BATCH)).await?),
        ("failed events", batches(|| store.prune_failed_events(before(config.failed_events), BATCH)).await?),
    ])
}

/// Runs `prune` until a batch comes back short, pausing between batches.
async fn batches<F, Fut>(mut prune: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let removed = prune().await?;
        total += removed;
        if removed < BATCH as u64 {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
