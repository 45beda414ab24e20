//! Operations on one function: list, describe, versions, rollback and delete.

use std::sync::Arc;

use updraft_model::{AppName, FunctionName, VersionNumber};
use updraft_store::{FunctionRecord, StoreError};

use crate::deploy::LiveVersion;
use crate::live::LiveState;
use crate::{DeployError, FunctionInfo, Platform, VersionInfo};

/// Errors of operations on one function.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("function {function:?} not found")]
    NotFound { function: FunctionName },
    #[error("function {function:?} has no version {version}")]
    VersionNotFound { function: FunctionName, version: VersionNumber },
    #[error("function {function:?} has no version before {version} to roll back to")]
    NoEarlierVersion { function: FunctionName, version: VersionNumber },
    #[error("function {function:?} already exists; change it, or delete it first")]
    Exists { function: FunctionName },
    #[error(
        "an app named {app:?} is deployed from a manifest; a function made on its own gets an app of its name, so pick another name for {function:?}"
    )]
    AppExists { function: FunctionName, app: AppName },
    #[error("function {function:?} was changed since its revision was read; read it again and retry")]
    RevisionChanged { function: FunctionName },
    #[error("function {function:?} has no canary running")]
    NoCanary { function: FunctionName },
    #[error(transparent)]
    InvalidName(#[from] updraft_model::InvalidName),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for FunctionError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::FunctionNotFound { function } => FunctionError::NotFound { function },
            StoreError::VersionNotFound { function, version } => FunctionError::VersionNotFound { function, version },
            other => FunctionError::Store(other),
        }
    }
}

impl Platform {
    /// Every function, by name.
    pub async fn function_list(&self) -> Result<Vec<FunctionInfo>, FunctionError> {
        Ok(self.store.function_list().await?.into_iter().map(FunctionInfo::from).collect())
    }

    pub async fn function_get(&self, name: &FunctionName) -> Result<FunctionInfo, FunctionError> {
        Ok(self.function_record(name).await?.into())
    }

    /// A function's versions, newest first.
    pub async fn version_list(&self, name: &FunctionName) -> Result<Vec<VersionInfo>, FunctionError> {
        let versions = self.store.version_list(name).await?;
        if versions.is_empty() {
            return Err(FunctionError::NotFound { function: name.clone() });
        }
        Ok(versions.into_iter().map(VersionInfo::from).collect())
    }

    async fn function_record(&self, name: &FunctionName) -> Result<FunctionRecord, FunctionError> {
        self.store.function_get(name).await?.ok_or_else(|| FunctionError::NotFound { function: name.clone() })
    }

    /// Serves an earlier version again: `to`, or the newest one older than the
    /// version serving now.
    pub async fn function_rollback(
        &self,
        name: &FunctionName,
        to: Option<VersionNumber>,
    ) -> Result<FunctionInfo, FunctionError> {
        let _guard = self.change_lock.lock().await;
        let record = self.function_record(name).await?;
        let versions = self.store.version_list(name).await?;
        // During a canary, back means the version that served before it.
        let to = to.or_else(|| self.canaries.load().get(name).map(|canary| canary.previous));
        let target = match to {
            Some(version) => versions
                .into_iter()
                .find(|v| v.version == version)
                .ok_or(FunctionError::VersionNotFound { function: name.clone(), version })?,
            None => versions
                .into_iter()
                .find(|v| v.version < record.current.version)
                .ok_or(FunctionError::NoEarlierVersion { function: name.clone(), version: record.current.version })?,
        };
        let current = self.live.load_full();
        let mut next = current.functions.clone();
        next.remove(name);
        LiveState::check_routes(next.iter().map(|(name, f)| (name, &*f.config)).chain([(name, &target.config)]))
            .map_err(DeployError::from)?;
        self.scheduler
            .check_reservations(&[(name.clone(), target.config.concurrency)], &[])
            .map_err(DeployError::from)?;
        self.check_secrets(name, &target.config)?;
        let code = self.prepare(name, &target.artifact, &target.config).await?;
        let record = self.store.function_rollback(name, target.version).await?;
        self.load_canaries().await?;
        let version = LiveVersion {
            name,
            app: &record.app,
            version: target.version,
            config: &target.config,
            fingerprint: &target.fingerprint,
            token: record.token.clone(),
        };
        next.insert(name.clone(), self.live_function(&version, code)?);
        let state = LiveState::build(next).map_err(DeployError::from)?;
        self.live.store(Arc::new(state));
        if let Some(old) = current.functions.get(name) {
            old.pool.retire();
        }
        tracing::info!(function = %name, version = %target.version, "rolled back");
        Ok(record.into())
    }

    pub async fn function_delete(&self, name: &FunctionName) -> Result<(), FunctionError> {
        let _guard = self.change_lock.lock().await;
        if !self.store.function_delete(name).await? {
            return Err(FunctionError::NotFound { function: name.clone() });
        }
        let current = self.live.load_full();
        let mut next = current.functions.clone();
        let old = next.remove(name);
        let state = LiveState::build(next).map_err(DeployError::from)?;
        self.live.store(Arc::new(state));
        if let Some(old) = old {
            old.pool.retire();
        }
        self.scheduler.remove_function(name);
        // Its aliases went with it, in the same transaction.
        self.load_aliases().await?;
        self.load_canaries().await?;
        tracing::info!(function = %name, "deleted");
        Ok(())
    }
}
