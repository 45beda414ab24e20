//! Aliases: a name for one of a function's versions (or for the version serving), with
//! an optional second version that takes a share of the alias's invocations, as
//! Lambda's aliases and their `RoutingConfig` do. Every node keeps all aliases in memory
//! (loaded at start and with every cluster change), so resolving one on an invocation
//! reads no database.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_model::{AliasName, FunctionName, VersionNumber};
use updraft_store::{AliasRecord, StoreError};

use crate::Platform;

/// An alias as the platform shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasInfo {
    pub function: FunctionName,
    pub name: AliasName,
    /// The version it names; `None` for the version serving (Lambda's `$LATEST`).
    pub version: Option<VersionNumber>,
    /// A second version and the share of invocations it takes (0 to 1).
    pub routing: Option<(VersionNumber, f64)>,
    pub description: String,
    pub revision: String,
    pub updated_at: i64,
}

/// What an alias should be.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasSpec {
    pub version: Option<VersionNumber>,
    pub routing: Option<(VersionNumber, f64)>,
    pub description: String,
}

/// Why an alias operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    #[error("function {function:?} not found")]
    FunctionNotFound { function: FunctionName },
    #[error("function {function:?} has no alias {alias:?}")]
    NotFound { function: FunctionName, alias: AliasName },
    #[error("function {function:?} has no version {version}")]
    VersionNotFound { function: FunctionName, version: VersionNumber },
    #[error("function {function:?} already has an alias {alias:?}")]
    Exists { function: FunctionName, alias: AliasName },
    #[error("alias {alias:?} of {function:?} was changed since its revision was read; read it again and retry")]
    RevisionChanged { function: FunctionName, alias: AliasName },
    #[error("{0}")]
    Routing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every alias, by function and name.
pub(crate) type AliasMap = BTreeMap<FunctionName, BTreeMap<AliasName, Arc<AliasInfo>>>;

impl From<AliasRecord> for AliasInfo {
    fn from(record: AliasRecord) -> Self {
        AliasInfo {
            function: record.function,
            name: record.name,
            version: record.version,
            routing: record.routing.into_iter().next(),
            description: record.description,
            revision: record.revision,
            updated_at: record.updated_at,
        }
    }
}

impl AliasInfo {
    /// The version one invocation through the alias runs (`None`: the version serving),
    /// the routed version taking its share of them at random.
    pub fn pick(&self) -> Option<VersionNumber> {
        match self.routing {
            Some((routed, weight)) if rand::random::<f64>() < weight => Some(routed),
            _ => self.version,
        }
    }
}

impl Platform {
    /// Loads every alias as the database has them.
    pub(crate) async fn load_aliases(&self) -> Result<(), StoreError> {
        let mut aliases = AliasMap::new();
        for record in self.store.alias_list().await? {
            let info = AliasInfo::from(record);
            aliases.entry(info.function.clone()).or_default().insert(info.name.clone(), Arc::new(info));
        }
        self.aliases.store(Arc::new(aliases));
        Ok(())
    }

    /// Alias `name` of `function`.
    pub fn alias(&self, function: &FunctionName, name: &AliasName) -> Option<Arc<AliasInfo>> {
        self.aliases.load().get(function).and_then(|aliases| aliases.get(name)).cloned()
    }

    /// A function's aliases, by name.
    pub fn alias_list(&self, function: &FunctionName) -> Result<Vec<Arc<AliasInfo>>, AliasError> {
        if !self.live.load().functions.contains_key(function) {
            return Err(AliasError::FunctionNotFound { function: function.clone() });
        }
        Ok(self.aliases.load().get(function).map(|aliases| aliases.values().cloned().collect()).unwrap_or_default())
    }

    /// Makes alias `name` (when `revision` is `None`) or changes it (the one with that
    /// revision; `Some("")` for whatever it is now).
    pub async fn alias_put(
        &self,
        function: &FunctionName,
        name: &AliasName,
        spec: AliasSpec,
        revision: Option<&str>,
    ) -> Result<Arc<AliasInfo>, AliasError> {
        let _guard = self.change_lock.lock().await;
        if !self.live.load().functions.contains_key(function) {
            return Err(AliasError::FunctionNotFound { function: function.clone() });
        }
        // A stale change is refused before anything else is checked.
        let current = self.alias(function, name);
        let previous = match (revision, &current) {
            (None, Some(_)) => return Err(AliasError::Exists { function: function.clone(), alias: name.clone() }),
            (None, None) => None,
            (Some(_), None) => return Err(AliasError::NotFound { function: function.clone(), alias: name.clone() }),
            (Some(""), Some(current)) => Some(current.revision.clone()),
            (Some(given), Some(current)) if given == current.revision => Some(current.revision.clone()),
            (Some(_), Some(_)) => {
                return Err(AliasError::RevisionChanged { function: function.clone(), alias: name.clone() });
            }
        };
        let versions = self.store.version_list(function).await?;
        let exists = |version: VersionNumber| versions.iter().any(|v| v.version == version);
        for version in spec.version.iter().chain(spec.routing.as_ref().map(|(v, _)| v)) {
            if !exists(*version) {
                return Err(AliasError::VersionNotFound { function: function.clone(), version: *version });
            }
        }
        if let Some((routed, weight)) = spec.routing {
            if !(0.0..=1.0).contains(&weight) {
                return Err(AliasError::Routing(format!(
                    "the weight of version {routed} must be between 0.0 and 1.0, not {weight}"
                )));
            }
            match spec.version {
                None => {
                    return Err(AliasError::Routing(
                        "an alias that routes to a second version must name its first by number, not $LATEST".into(),
                    ));
                }
                Some(primary) if primary == routed => {
                    return Err(AliasError::Routing(format!(
                        "version {routed} is the alias's own version; route a share to another version"
                    )));
                }
                Some(_) => {}
            }
        }
        let record = AliasRecord {
            function: function.clone(),
            name: name.clone(),
            version: spec.version,
            routing: spec.routing.into_iter().collect(),
            description: spec.description,
            revision: uuid::Uuid::new_v4().to_string(),
            updated_at: updraft_model::now_millis(),
        };
        self.store.alias_put(&record, previous.as_deref()).await.map_err(|error| match error {
            StoreError::AliasConflict { function, alias } if previous.is_none() => {
                AliasError::Exists { function, alias }
            }
            StoreError::AliasConflict { function, alias } => AliasError::RevisionChanged { function, alias },
            other => AliasError::Store(other),
        })?;
        self.load_aliases().await?;
        tracing::info!(%function, alias = %name, "alias set");
        self.alias(function, name)
            .ok_or_else(|| AliasError::NotFound { function: function.clone(), alias: name.clone() })
    }

    pub async fn alias_delete(&self, function: &FunctionName, name: &AliasName) -> Result<(), AliasError> {
        let _guard = self.change_lock.lock().await;
        if !self.store.alias_delete(function, name).await? {
            return Err(AliasError::NotFound { function: function.clone(), alias: name.clone() });
        }
        self.load_aliases().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: u32, routing: Option<(u32, f64)>) -> AliasInfo {
        AliasInfo {
            function: FunctionName::new("f").unwrap(),
            name: AliasName::new("live").unwrap(),
            version: Some(VersionNumber(version)),
            routing: routing.map(|(v, w)| (VersionNumber(v), w)),
            description: String::new(),
            revision: String::new(),
            updated_at: 0,
        }
    }

    #[test]
    fn an_alias_sends_its_routed_version_its_share_and_the_rest_to_its_own() {
        let plain = alias(1, None);
        assert!((0..100).all(|_| plain.pick() == Some(VersionNumber(1))));
        let all = alias(1, Some((2, 1.0)));
        assert!((0..100).all(|_| all.pick() == Some(VersionNumber(2))));
        let tenth = alias(1, Some((2, 0.1)));
        let routed = (0..10_000).filter(|_| tenth.pick() == Some(VersionNumber(2))).count();
        // 1,000 expected; the standard deviation is 30, so this fails by chance about
        // once in 10^20 runs.
        assert!((700..1300).contains(&routed), "{routed}");
    }
}
