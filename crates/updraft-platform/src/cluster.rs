//! This node as a member of the cluster: it joins the `nodes` table at start with a new
//! epoch, heartbeats its load (invocations running, instances alive and the functions
//! they serve) every `heartbeat`, and marks itself gone when it stops cleanly. A node
//! silent for longer than `dead_after`, by the database's clock, is dead.
//!
//! On SQLite the cluster is this one node; on PostgreSQL every server sharing the
//! database is a member, and the concurrency limits are the cluster's: each node admits
//! up to its share of a limit, borrowed from the `permit_grants` ledger when it needs
//! more (`Ledger`), renewed with every heartbeat, and given back when idle, so the
//! shares of all nodes never add up to more than the limit. A node that cannot renew
//! its shares in time stops admitting before they expire for the others.

use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;
use updraft_model::FunctionName;
use updraft_scheduler::{Lender, Scope};
use updraft_store::{NodeLoad, NodeRecord, Store};

use crate::forward::Peer;
use crate::{ObserveError, Platform};

/// How this node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where other nodes and clients reach this one (`http://10.0.0.5:7070`);
    /// `None`: the API URL functions are given.
    pub advertise_url: Option<String>,
    /// How often this node reports that it is alive, with its load.
    pub heartbeat: Duration,
    /// A node silent this long is dead.
    pub dead_after: Duration,
    /// The operator's key that seals the cluster's secrets key in the database, so
    /// every node opens secrets, access keys and tokens without a copy of a key file;
    /// `None`: the secrets key is `<data-dir>/secrets.key`.
    pub key: Option<ClusterKey>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { advertise_url: None, heartbeat: Duration::from_secs(1), dead_after: Duration::from_secs(10), key: None }
    }
}

/// The operator's cluster key: 32 bytes, given to every node, never stored by Updraft.
#[derive(Clone)]
pub struct ClusterKey(pub(crate) [u8; 32]);

impl ClusterKey {
    /// A key written as 64 hex digits (`openssl rand -hex 32`), spaces around ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "a cluster key is 64 hex digits (make one with `openssl rand -hex 32`)".to_owned())?;
        let key: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "a cluster key is 32 bytes (64 hex digits), not {}; make one with `openssl rand -hex 32`",
                bytes.len()
            )
        })?;
        Ok(Self(key))
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(hidden)")
    }
}

/// A member of the cluster as `updraft nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Where it is reached.
    pub address: String,
    /// Updraft's version on it.
    pub version: String,
    pub state: NodeState,
    /// Whether it is the node that answered.
    pub this: bool,
    /// When it joined (ms since the epoch).
    pub started_at: i64,
    /// Its last heartbeat (ms since the epoch).
    pub last_heartbeat: i64,
    /// Time since its last heartbeat, by the database's clock.
    pub silent_for: Duration,
    /// Invocations running on it.
    pub in_flight: u64,
    /// Instances alive on it.
    pub instances: u64,
    /// The functions those instances serve.
    pub warm_functions: Vec<FunctionName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Heartbeating.
    Alive,
    /// Silent for longer than the dead-after time.
    Dead,
    /// Stopped cleanly.
    Left,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Dead => "dead",
            NodeState::Left => "left",
        }
    }
}

/// This node's membership: its epoch and the task that heartbeats.
pub(crate) struct Membership {
    pub(crate) epoch: i64,
    heartbeat: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Lends this node shares of the cluster's limits from the database's ledger.
pub(crate) struct Ledger {
    store: Store,
    node: String,
    /// How long a grant lasts unless renewed.
    ttl: Duration,
    /// What the last renewal claimed per scope, and when it last succeeded.
    renewed: std::sync::Mutex<(std::collections::HashMap<String, u32>, std::time::Instant)>,
    /// Set when another process took this node's identity: it lends nothing more.
    fenced: std::sync::atomic::AtomicBool,
}

impl Ledger {
    pub(crate) fn new(store: Store, node: String, ttl: Duration) -> Self {
        Self {
            store,
            node,
            ttl,
            renewed: std::sync::Mutex::new((Default::default(), std::time::Instant::now())),
            fenced: Default::default(),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Lender for Ledger {
    fn borrow<'a>(&'a self, scope: &'a Scope, limit: u32, want: u32) -> BoxFuture<'a, u32> {
        Box::pin(async move {
            if self.fenced.load(std::sync::atomic::Ordering::Acquire) {
                return 0;
            }
            match self.store.permit_borrow(&scope.to_string(), &self.node, want, limit, self.ttl_ms()).await {
                Ok(granted) => granted,
                Err(error) => {
                    tracing::warn!(%scope, error = %error, "cannot borrow concurrency from the cluster's ledger");
                    0
                }
            }
        })
    }
}

impl Membership {
    /// Joins the cluster as `id`.
    pub(crate) async fn join(store: &Store, id: &str, address: &str) -> Result<Self, updraft_store::StoreError> {
        let epoch = store.node_join(id, address, env!("CARGO_PKG_VERSION")).await?;
        tracing::info!(node = id, epoch, address, "joined the cluster");
        Ok(Self { epoch, heartbeat: std::sync::Mutex::new(None) })
    }

    /// Starts heartbeating for `platform` (held weakly: the task ends with it).
    pub(crate) fn start(&self, platform: Weak<Platform>, every: Duration) {
        let task = tokio::spawn(heartbeat(platform, self.epoch, every));
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Stops heartbeating, gives back this node's shares of the limits, and records
    /// that it left.
    pub(crate) async fn leave(&self, store: &Store, id: &str) {
        if let Some(task) = self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        if let Err(error) = store.permit_release_all(id).await {
            tracing::warn!(error = %error, "could not give back this node's concurrency; it frees when it expires");
        }
        if let Err(error) = store.node_leave(id, self.epoch).await {
            tracing::warn!(error = %error, "could not record that this node left; the others will see it die");
        }
    }
}

async fn heartbeat(weak: Weak<Platform>, epoch: i64, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let Some(platform) = weak.upgrade() else { return };
        let load = platform.load();
        let store = platform.store().clone();
        let node = platform.node_id().to_owned();
        drop(platform);
        match store.node_heartbeat(&node, epoch, &load).await {
            Ok(true) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("heartbeats reach the database again");
                }
                // Who is alive, for choosing home nodes (a failed read keeps the last).
                if let (Ok(nodes), Some(platform)) = (store.node_list().await, weak.upgrade()) {
                    platform.set_peers(&nodes);
                }
            }
            Ok(false) => {
                tracing::error!(
                    node,
                    epoch,
                    "another server joined the cluster as this node (a copy of its data dir?); this one stops \
                     heartbeating, admits nothing more, and will be seen as dead"
                );
                if let Some(platform) = weak.upgrade() {
                    if let Some(ledger) = &platform.ledger {
                        ledger.fenced.store(true, std::sync::atomic::Ordering::Release);
                    }
                    platform.stop_admitting();
                }
                return;
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = %error, "a heartbeat failed; the other nodes will see this one as dead if it goes on");
            }
            Err(_) => {}
        }
        // Renewed (or, failing for too long, dropped) whatever became of the heartbeat.
        if let Some(platform) = weak.upgrade() {
            platform.renew_shares(every).await;
        }
    }
}

impl Platform {
    /// Renews this node's shares of the cluster's limits, giving back what it did not
    /// use since the last round (a share that ran short is kept whole). If renewals
    /// have failed for nearly their lifetime, it stops admitting: the others may take
    /// those permits once they expire.
    async fn renew_shares(&self, every: Duration) {
        let Some(ledger) = &self.ledger else { return };
        let mut grants = Vec::new();
        {
            let renewed = ledger.renewed.lock().unwrap_or_else(|p| p.into_inner());
            for share in self.scheduler.shares() {
                let keep = if share.short { share.share } else { share.peak.max(share.in_flight).min(share.share) };
                let claim = self.scheduler.set_share(&share.scope, keep.min(share.limit));
                let scope = share.scope.to_string();
                // Unchanged empty grants need no write.
                if claim > 0 || renewed.0.get(&scope).is_some_and(|last| *last > 0) {
                    grants.push((scope, claim));
                }
            }
        }
        match self.store.permit_renew(self.node_id(), &grants, ledger.ttl_ms()).await {
            Ok(()) => {
                let mut renewed = ledger.renewed.lock().unwrap_or_else(|p| p.into_inner());
                renewed.0.extend(grants);
                renewed.1 = std::time::Instant::now();
            }
            Err(error) => {
                let since = ledger.renewed.lock().unwrap_or_else(|p| p.into_inner()).1;
                if since.elapsed() + every * 2 >= ledger.ttl {
                    tracing::error!(error = %error, "cannot renew this node's concurrency shares; it admits nothing until it can");
                    self.stop_admitting();
                } else {
                    tracing::warn!(error = %error, "renewing this node's concurrency shares failed; trying again");
                }
            }
        }
    }

    /// Drops every share of the cluster's limits (they are not, or no longer, this
    /// node's to use); a lender fills them again once renewals work.
    fn stop_admitting(&self) {
        if self.ledger.is_some() {
            for share in self.scheduler.shares() {
                self.scheduler.set_share(&share.scope, 0);
            }
        }
    }

    /// Keeps the live nodes of `nodes` as the candidates for home nodes.
    fn set_peers(&self, nodes: &[NodeRecord]) {
        let dead_after = i64::try_from(self.config.cluster.dead_after.as_millis()).unwrap_or(i64::MAX);
        let peers: Vec<Peer> = nodes
            .iter()
            .filter(|node| node.left_at.is_none() && node.silent_for <= dead_after && !node.address.is_empty())
            .map(|node| Peer { id: node.id.clone(), address: node.address.clone() })
            .collect();
        if **self.peers.load() != peers {
            tracing::info!(nodes = peers.len(), "the cluster's live nodes changed");
            self.peers.store(std::sync::Arc::new(peers));
        }
    }

    /// What this node reports with its heartbeat.
    fn load(&self) -> NodeLoad {
        let stats = self.scheduler.stats();
        let mut warm: Vec<FunctionName> =
            stats.iter().filter(|pool| pool.idle + pool.busy > 0).map(|pool| pool.function.clone()).collect();
        warm.sort();
        warm.dedup();
        NodeLoad {
            in_flight: i64::try_from(self.scheduler.in_flight()).unwrap_or(i64::MAX),
            instances: stats.iter().map(|pool| i64::from(pool.idle + pool.busy)).sum(),
            warm_functions: warm,
        }
    }

    /// The cluster's nodes, by id: alive, dead (silent past the dead-after time) or left.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ObserveError> {
        let dead_after = self.config.cluster.dead_after;
        let nodes = self.store.node_list().await?;
        Ok(nodes.into_iter().map(|node| self.node_info(node, dead_after)).collect())
    }

    fn node_info(&self, node: NodeRecord, dead_after: Duration) -> NodeInfo {
        let silent_for = Duration::from_millis(u64::try_from(node.silent_for).unwrap_or(0));
        let state = match node.left_at {
            Some(_) => NodeState::Left,
            None if silent_for > dead_after => NodeState::Dead,
            None => NodeState::Alive,
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        NodeInfo {
            this: node.id == self.node_id() && node.epoch == self.membership.epoch,
            id: node.id,
            address: node.address,
            version: node.version,
            state,
            started_at: node.started_at,
            last_heartbeat: node.last_seen,
            silent_for,
            in_flight: count(node.load.in_flight),
            instances: count(node.load.instances),
            warm_functions: node.load.warm_functions,
        }
    }
}
