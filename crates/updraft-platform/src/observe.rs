//! What happened: invocation records, traces, usage and its cost, metrics, scheduler
//! figures and log lines.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use updraft_model::{FunctionName, InvocationRecord, QueueName, Trigger};
use updraft_store::{InvocationFilter, StoreError};
use updraft_telemetry::{InstanceCounts, PriceTable, QueueGauge};

use crate::logs::LogQuery;
use crate::{HourlyUsage, InvocationEntry, InvocationQuery, LogEntry, Platform};

/// Why records, usage or log lines could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading records, usage, logs or the cluster's nodes failed")]
    Store(#[from] StoreError),
}

/// The most invocations one trace is read with.
pub const TRACE_INVOCATIONS: i64 = 1000;

/// How many of the latest records the trace list looks through.
const TRACE_SCAN: i64 = 500;

impl Platform {
    /// Invocation records, newest first.
    pub async fn invocations(&self, query: &InvocationQuery) -> Result<Vec<InvocationEntry>, ObserveError> {
        let page = self.store.invocation_list(&query.into()).await?;
        Ok(page.into_iter().map(InvocationEntry::from).collect())
    }

    /// The invocations of trace `trace_id` (at most [`TRACE_INVOCATIONS`]), in the order
    /// they arrived. Empty when no record of it is kept.
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<InvocationRecord>, ObserveError> {
        let filter =
            InvocationFilter { trace_id: Some(trace_id.to_owned()), limit: TRACE_INVOCATIONS, ..Default::default() };
        let mut records: Vec<InvocationRecord> =
            self.store.invocation_list(&filter).await?.into_iter().map(|stored| stored.record).collect();
        records.reverse();
        Ok(records)
    }

    /// The latest traces (those `function` took part in, if given), newest first: the
    /// traces of the latest [`TRACE_SCAN`] records, each read whole.
    pub async fn recent_traces(
        &self,
        function: Option<&FunctionName>,
        limit: usize,
    ) -> Result<Vec<Vec<InvocationRecord>>, ObserveError> {
        let filter = InvocationFilter { function: function.cloned(), limit: TRACE_SCAN, ..Default::default() };
        let mut ids: Vec<String> = Vec::new();
        for stored in self.store.invocation_list(&filter).await? {
            if !ids.contains(&stored.record.trace_id) {
                ids.push(stored.record.trace_id);
                if ids.len() == limit {
                    break;
                }
            }
        }
        let mut traces = Vec::with_capacity(ids.len());
        for id in ids {
            traces.push(self.trace(&id).await?);
        }
        Ok(traces)
    }

    /// Hourly usage since `since` (ms since the epoch).
    pub async fn usage(&self, since: i64, function: Option<&FunctionName>) -> Result<Vec<HourlyUsage>, ObserveError> {
        Ok(self.store.usage(since, function).await?.into_iter().map(HourlyUsage::from).collect())
    }

    pub fn prices(&self) -> &PriceTable {
        &self.config.prices
    }

    /// Every metric in the Prometheus text format: the gauges are sampled now.
    pub async fn metrics(&self) -> String {
        let (instances, queues) = self.gauges().await;
        self.metrics.render(instances, queues)
    }

    /// The gauges' values now: instances per version, and the depth of every queue a
    /// trigger consumes or dead-letters into.
    async fn gauges(&self) -> (Vec<InstanceCounts>, Vec<QueueGauge>) {
        let mut counts: BTreeMap<(String, u32), InstanceCounts> = BTreeMap::new();
        for pool in self.scheduler.stats() {
            let (function, version) = (pool.function.to_string(), pool.version.0);
            let entry = counts.entry((function.clone(), version)).or_insert_with(|| InstanceCounts {
                function,
                version,
                ..Default::default()
            });
            entry.idle += pool.idle;
            entry.busy += pool.busy;
            entry.starting += pool.starting;
        }
        let counts: Vec<_> = counts.into_values().collect();
        let mut queues: Vec<QueueName> = self
            .live()
            .functions
            .values()
            .flat_map(|function| function.config.triggers.iter())
            .filter_map(|trigger| match trigger {
                Trigger::Queue(queue) => Some([queue.queue.clone(), queue.dead_letter_queue.clone()]),
                _ => None,
            })
            .flatten()
            .collect();
        queues.sort();
        queues.dedup();
        let now = updraft_model::now_millis();
        let mut gauges = Vec::with_capacity(queues.len());
        for queue in queues {
            match self.store.queue_depth(&queue, now).await {
                Ok(depth) => gauges.push(QueueGauge {
                    queue: queue.to_string(),
                    visible: depth.visible,
                    in_flight: depth.in_flight,
                    oldest_age_seconds: depth.oldest_visible_at.map_or(0, |at| (now - at).max(0) / 1000),
                }),
                // A scrape shows what it can; the queue's gauges are left out this time.
                Err(error) => tracing::warn!(%queue, %error, "cannot read a queue's depth for the metrics"),
            }
        }
        (counts, gauges)
    }

    /// The scheduler's pools, for tests and diagnostics.
    pub fn scheduler_stats(&self) -> Vec<updraft_scheduler::PoolStats> {
        self.scheduler.stats()
    }

    /// Log lines; with `wait`, blocks until a matching one arrives or the wait ends.
    pub async fn logs(&self, query: &LogQuery) -> Result<Vec<LogEntry>, ObserveError> {
        let deadline = query.wait.map(|wait| tokio::time::Instant::now() + wait);
        loop {
            // Register interest before reading, so a batch landing in between still
            // wakes us.
            let appended = self.logs.appended.notified();
            let lines = self.store.log_list(&query.filter()).await?;
            let Some(deadline) = deadline.filter(|_| lines.is_empty()) else {
                return Ok(lines.into_iter().map(LogEntry::from).collect());
            };
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

/// How often the gauges are sampled for the OTLP metric export.
const GAUGE_SAMPLING: Duration = Duration::from_secs(5);

/// Samples the gauges for the OTLP metric export while the platform lives (a scrape of
/// `/metrics` samples them too).
pub(crate) fn sample_gauges(platform: Weak<Platform>) {
    tokio::spawn(async move {
        loop {
            let Some(live) = platform.upgrade() else { return };
            let (instances, queues) = live.gauges().await;
            live.metrics.sample(instances, queues);
            drop(live);
            tokio::time::sleep(GAUGE_SAMPLING).await;
        }
    });
}
