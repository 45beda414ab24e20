//! Earlier versions of a function, invoked by number (Lambda's `Qualifier`, or
//! `name:3`): each is prepared and registered with the scheduler on its first
//! invocation on this node, beside the live version, so that instances of several
//! versions run at once; the most recently used few are kept.

use std::collections::VecDeque;
use std::sync::Arc;

use updraft_model::VersionNumber;

use crate::live::LiveFunction;
use crate::{DeployError, Platform};

/// How many earlier versions a node keeps ready across all functions; the least
/// recently used beyond that is retired (its instances finish what they run).
const KEPT: usize = 16;

#[derive(Default)]
pub(crate) struct EarlierVersions {
    /// Least recently used first. One lock: a version is prepared once however many
    /// invocations ask for it at the same time.
    kept: tokio::sync::Mutex<VecDeque<Arc<LiveFunction>>>,
}

impl EarlierVersions {
    /// Version `version` of the function whose live version is `live`, or `None` if it
    /// has no such version.
    pub(crate) async fn function(
        &self,
        platform: &Platform,
        live: &LiveFunction,
        version: VersionNumber,
    ) -> Result<Option<Arc<LiveFunction>>, DeployError> {
        let mut kept = self.kept.lock().await;
        if let Some(index) = kept.iter().position(|kept| kept.name == live.name && kept.version == version) {
            let found = kept.remove(index).expect("the position is in range");
            // The same function still (not deleted and made again), with the same tokens.
            if found.app == live.app && found.token == live.token {
                kept.push_back(found.clone());
                return Ok(Some(found));
            }
            found.pool.retire();
        }
        let versions = platform.store.version_list(&live.name).await?;
        let Some(mut record) = versions.into_iter().find(|record| record.version == version) else { return Ok(None) };
        // The function's concurrency is one, whichever version runs (the live version's
        // setting is the function's), and only the live version keeps instances started.
        record.config.concurrency = live.config.concurrency;
        record.config.min_instances = 0;
        let function = platform.load_version(&live.app, &record, live.token.clone()).await?;
        kept.push_back(function.clone());
        if kept.len() > KEPT
            && let Some(oldest) = kept.pop_front()
        {
            oldest.pool.retire();
        }
        Ok(Some(function))
    }
}
