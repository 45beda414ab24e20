//! Keeping this node equal to the database when other nodes of the cluster change it:
//! a deploy, rollback or delete, an API or access key, a secret or a token rotation
//! made on any node is live here within a second. The database's change counter (raised
//! by triggers in the writing transaction) is the truth; PostgreSQL's notification at
//! commit only says "look now", and the counter is read again every `POLL` in case a
//! notification was lost. On SQLite this process is the only writer: nothing to watch.
//!
//! A sync rebuilds the live state from the stored one: functions whose version,
//! configuration and token are unchanged keep their instances; the others get new
//! pools, and the old pools finish what they run (an invocation ends on the version it
//! started on).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use updraft_store::ChangeListener;

use crate::live::LiveState;
use crate::{Platform, StartError};

/// How often the counter is read when no notification comes.
const POLL: Duration = Duration::from_secs(5);

impl Platform {
    /// Starts following the other nodes' changes, from counter value `seen` (read
    /// before this node loaded its state). Does nothing outside a cluster.
    pub(crate) async fn follow_changes(self: &Arc<Self>, seen: i64) -> Result<(), StartError> {
        let Some(listener) = self.store.control_listen().await? else { return Ok(()) };
        tokio::spawn(follow(Arc::downgrade(self), listener, seen));
        Ok(())
    }

    /// Loads keys, secrets, functions and workflows as the database has them.
    pub(crate) async fn sync(&self) -> Result<(), StartError> {
        let _guard = self.change_lock().lock().await;
        self.reload_sealer().await?;
        self.load_keys().await?;
        self.load_access_keys().await?;
        let secrets = crate::secrets::load_secrets(&self.store, &self.sealer()).await?;
        self.secret_values().store(Arc::new(secrets));

        let current = self.live.load_full();
        let mut next = BTreeMap::new();
        for record in self.store.function_list().await? {
            let kept = current.functions.get(&record.name).filter(|live| {
                live.version == record.current.version
                    && live.fingerprint == record.current.fingerprint
                    && live.token == record.token
            });
            if let Some(live) = kept {
                next.insert(record.name.clone(), live.clone());
                continue;
            }
            match self.load_version(&record.app, &record.current, record.token.clone()).await {
                Ok(live) => {
                    tracing::info!(function = %record.name, version = %record.current.version, "took another node's change");
                    next.insert(record.name.clone(), live);
                }
                // One version this node cannot load must not hold back the others: the
                // previous one keeps serving here, and the error says why.
                Err(error) => {
                    tracing::error!(function = %record.name, version = %record.current.version, error = %error,
                        "cannot load another node's deploy; this node keeps serving what it had");
                    if let Some(live) = current.functions.get(&record.name) {
                        next.insert(record.name.clone(), live.clone());
                    }
                }
            }
        }
        let state = match LiveState::build(next.clone()) {
            Ok(state) => state,
            Err(conflict) => {
                tracing::error!(error = %conflict, "another node's deploy conflicts here; this node keeps its routes");
                return Ok(());
            }
        };
        self.set_live(state);
        for (name, old) in &current.functions {
            match next.get(name) {
                Some(new) if Arc::ptr_eq(new, old) => {}
                Some(_) => old.pool.retire(),
                None => {
                    old.pool.retire();
                    self.scheduler.remove_function(name);
                }
            }
        }
        self.load_aliases().await?;
        self.load_canaries().await?;
        let workflows = self.load_workflows().await?;
        self.events().workflows_set(workflows);
        Ok(())
    }
}

async fn follow(platform: Weak<Platform>, mut listener: ChangeListener, mut seen: i64) {
    loop {
        listener.wait(POLL).await;
        let Some(platform) = platform.upgrade() else { return };
        // Read before syncing: a change made while the sync runs moves the counter
        // past this value and is taken on the next round.
        let seq = match platform.store.control_seq().await {
            Ok(seq) => seq,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the cluster's change counter; trying again");
                continue;
            }
        };
        if seq == seen {
            continue;
        }
        match platform.sync().await {
            Ok(()) => seen = seq,
            Err(error) => tracing::error!(error = %error, "cannot load the cluster's changes; trying again"),
        }
    }
}
