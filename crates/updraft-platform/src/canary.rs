//! Canary deploys (`updraft deploy --canary 10% --for 10m`): the deploy makes its new
//! versions serve as usual, and for each function it changed a canary, written in the
//! same transaction, sends the rest of the invocations to the version that served
//! before. Every node keeps the canaries in memory and splits the invocations of a
//! function's serving version by them (`Platform::invoke`); every node also watches
//! them, and whichever takes a canary's row first ends it: promoted when its time is up,
//! rolled back as soon as the new version fails noticeably more often than the old one.
//! `updraft promote` and `updraft rollback` end one by hand.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use updraft_model::{FunctionName, VersionNumber};
use updraft_store::{CanaryRecord, Outcomes, StoreError};

use crate::live::LiveFunction;
use crate::{FunctionError, Platform};

/// How often every node looks at the running canaries.
const TICK: Duration = Duration::from_secs(1);
/// The new version's invocations needed before its error rate can roll it back.
const MIN_INVOCATIONS: u64 = 10;
/// How much more often (in absolute terms) the new version may fail than the old one.
const TOLERANCE: f64 = 0.05;

/// A canary as the platform shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryInfo {
    pub function: FunctionName,
    /// The version that serves the rest of the invocations.
    pub previous: VersionNumber,
    /// The serving (new) version's share of the invocations, 0 to 1.
    pub share: f64,
    pub started_at: i64,
    pub ends_at: i64,
}

/// What a deploy asks for: the new versions' share, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanarySpec {
    pub share: f64,
    pub duration: Duration,
}

pub(crate) type CanaryMap = BTreeMap<FunctionName, Arc<CanaryRecord>>;

fn info(record: &CanaryRecord) -> CanaryInfo {
    CanaryInfo {
        function: record.function.clone(),
        previous: record.previous,
        share: f64::from(record.share_ppm) / 1e6,
        started_at: record.started_at,
        ends_at: record.ends_at,
    }
}

/// Why a canary is rolled back, if it should be: the new version failed noticeably more
/// often than the old one, over enough of its invocations.
fn verdict(new: Outcomes, old: Outcomes) -> Option<String> {
    let rate = |o: Outcomes| if o.total == 0 { 0.0 } else { o.failed as f64 / o.total as f64 };
    (new.total >= MIN_INVOCATIONS && rate(new) > rate(old) + TOLERANCE).then(|| {
        format!(
            "the new version failed {} of {} invocations ({:.1}%), the previous one {} of {} ({:.1}%)",
            new.failed,
            new.total,
            rate(new) * 100.0,
            old.failed,
            old.total,
            rate(old) * 100.0
        )
    })
}

impl Platform {
    /// Loads the running canaries as the database has them.
    pub(crate) async fn load_canaries(&self) -> Result<(), StoreError> {
        let canaries = self.store.canary_list().await?.into_iter().map(|c| (c.function.clone(), Arc::new(c))).collect();
        self.canaries.store(Arc::new(canaries));
        Ok(())
    }

    /// The canary running for `function`, if any.
    pub fn canary(&self, function: &FunctionName) -> Option<CanaryInfo> {
        self.canaries.load().get(function).map(|record| info(record))
    }

    /// For an invocation of `function`'s serving version during a canary: the previous
    /// version when this invocation falls in its share, else `None` (run as asked).
    pub(crate) async fn held_back(&self, function: &LiveFunction) -> Option<Arc<LiveFunction>> {
        let canary = self.canaries.load().get(&function.name).cloned()?;
        let live = self.live.load().functions.get(&function.name).cloned()?;
        // Not the serving version (asked for by number), or the new one not serving here yet.
        if live.version != function.version || canary.previous == function.version {
            return None;
        }
        if rand::random::<f64>() * 1e6 < f64::from(canary.share_ppm) {
            return None;
        }
        match self.earlier.function(self, &live, canary.previous).await {
            Ok(previous) => previous,
            Err(error) => {
                tracing::error!(function = %function.name, version = %canary.previous, %error,
                    "cannot run the previous version of a canary; the new version runs this invocation");
                None
            }
        }
    }

    /// Takes `function`'s canary off the database, so that this caller alone ends it.
    async fn canary_take(&self, function: &FunctionName) -> Result<Arc<CanaryRecord>, FunctionError> {
        let no_canary = || FunctionError::NoCanary { function: function.clone() };
        let record = self.canaries.load().get(function).cloned().ok_or_else(no_canary)?;
        if !self.store.canary_take(&record).await? {
            return Err(no_canary());
        }
        Ok(record)
    }

    /// Ends `function`'s canary now: the new version serves everything.
    pub async fn canary_promote(&self, function: &FunctionName) -> Result<CanaryInfo, FunctionError> {
        let record = self.canary_take(function).await?;
        self.load_canaries().await?;
        tracing::info!(%function, "canary promoted");
        Ok(info(&record))
    }

    /// Ends `function`'s canary by serving its previous version again.
    pub async fn canary_roll_back(&self, function: &FunctionName, reason: &str) -> Result<CanaryInfo, FunctionError> {
        let record = self.canary_take(function).await?;
        self.function_rollback(function, Some(record.previous)).await?;
        tracing::warn!(%function, version = %record.previous, reason, "canary rolled back");
        Ok(info(&record))
    }

    /// Ends each canary whose time is up (promoted) or whose new version fails too
    /// often (rolled back).
    async fn check_canaries(&self) -> Result<(), FunctionError> {
        let canaries: Vec<Arc<CanaryRecord>> = self.canaries.load().values().cloned().collect();
        for canary in canaries {
            let Some(live) = self.live_version(&canary.function) else { continue };
            if live.version == canary.previous {
                continue;
            }
            if updraft_model::now_millis() >= canary.ends_at {
                match self.canary_promote(&canary.function).await {
                    Ok(_) | Err(FunctionError::NoCanary { .. }) => {}
                    Err(error) => return Err(error),
                }
                continue;
            }
            let new = self.store.outcomes(&canary.function, live.version, canary.started_at).await?;
            let old = self.store.outcomes(&canary.function, canary.previous, canary.started_at).await?;
            if let Some(reason) = verdict(new, old) {
                match self.canary_roll_back(&canary.function, &reason).await {
                    Ok(_) | Err(FunctionError::NoCanary { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }
}

/// Watches the canaries while the platform lives.
pub(crate) fn watch(platform: Weak<Platform>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(platform) = platform.upgrade() else { return };
            if let Err(error) = platform.check_canaries().await {
                tracing::warn!(%error, "cannot check the running canaries; trying again");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(total: u64, failed: u64) -> Outcomes {
        Outcomes { total, failed }
    }

    #[test]
    fn a_canary_is_rolled_back_only_when_its_version_fails_clearly_more_often_over_enough_invocations() {
        assert!(verdict(outcomes(10, 10), outcomes(90, 0)).is_some());
        assert!(verdict(outcomes(9, 9), outcomes(90, 0)).is_none(), "too few to judge");
        assert!(verdict(outcomes(100, 10), outcomes(900, 90)).is_none(), "no worse than before");
        assert!(verdict(outcomes(100, 14), outcomes(900, 90)).is_none(), "within the tolerance");
        assert!(verdict(outcomes(100, 16), outcomes(900, 90)).is_some());
        assert!(verdict(outcomes(20, 2), outcomes(0, 0)).is_some(), "failures with nothing to compare");
        let reason = verdict(outcomes(10, 5), outcomes(10, 0)).unwrap();
        assert!(reason.contains("5 of 10") && reason.contains("50.0%"), "{reason}");
    }
}
