//! Changing one function at a time, as Lambda's control plane does (`CreateFunction`,
//! `UpdateFunctionCode`, `UpdateFunctionConfiguration`, ...), rather than a whole app
//! from its manifest. Each change is an ordinary deploy of the function's app with only
//! that function changed: it makes a new version, which serves at once, and the app's
//! other functions, workflows and stored manifest stay as they were.
//!
//! A function made this way is the only function of an app of its own name, whose
//! stored manifest (written by the caller) says how it was made. A function of a
//! manifest's app can be changed this way too; the next `updraft deploy` of the manifest
//! sets it back to what the manifest says, as a stack update overwrites drift.

use std::collections::BTreeMap;

use updraft_model::{AppName, ArtifactDigest, FunctionConfig, FunctionName};
use updraft_store::{DeployPlan, PlannedFunction};

use crate::deploy::fingerprint;
use crate::{FunctionError, FunctionInfo, Platform};

/// The first line of a manifest the platform wrote for a function made through
/// Lambda's API; an app whose manifest starts otherwise was deployed from a manifest.
pub const MADE_THROUGH_LAMBDA: &str = "# Made through Lambda's API (CreateFunction)";

/// A function as one change wants it: its code and how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDraft {
    pub artifact: ArtifactDigest,
    pub config: FunctionConfig,
}

impl Platform {
    /// Makes `name` the only function of a new app of the same name, with `manifest`
    /// stored as that app's (it should start with [`MADE_THROUGH_LAMBDA`]).
    pub async fn function_create(
        &self,
        name: &FunctionName,
        draft: FunctionDraft,
        manifest: String,
    ) -> Result<FunctionInfo, FunctionError> {
        let app = AppName::new(name.as_str())?;
        let _guard = self.change_lock.lock().await;
        if self.store.function_get(name).await?.is_some() {
            return Err(FunctionError::Exists { function: name.clone() });
        }
        // An app of this name from a manifest (or one made through Lambda's API that
        // still has functions) is someone else's: adding to it would be undone, or
        // would undo it, at its next deploy.
        if let Some(stored) = self.store.app_manifest(&app).await?
            && (!stored.starts_with(MADE_THROUGH_LAMBDA)
                || self.store.function_list().await?.iter().any(|f| f.app == app))
        {
            return Err(FunctionError::AppExists { function: name.clone(), app });
        }
        let planned = planned(name, draft);
        let plan = DeployPlan { app, manifest, functions: vec![planned], canary: None };
        self.apply(plan, Some(Vec::new())).await?;
        self.function_get(name).await
    }

    /// Changes one function: `change` gets the version serving now and says what the
    /// function should be; when that differs, a new version serves it. `revision`, when
    /// given, must be the serving version's fingerprint (or its start), so a change
    /// made from a stale read is refused instead of undoing another one.
    pub async fn function_edit(
        &self,
        name: &FunctionName,
        revision: Option<&str>,
        change: impl FnOnce(FunctionDraft) -> FunctionDraft,
    ) -> Result<FunctionInfo, FunctionError> {
        let _guard = self.change_lock.lock().await;
        let functions = self.store.function_list().await?;
        let Some(record) = functions.iter().find(|f| f.name == *name) else {
            return Err(FunctionError::NotFound { function: name.clone() });
        };
        if let Some(revision) = revision
            && !revision_matches(&record.current.fingerprint, revision)
        {
            return Err(FunctionError::RevisionChanged { function: name.clone() });
        }
        let serving =
            FunctionDraft { artifact: record.current.artifact.clone(), config: record.current.config.clone() };
        let wanted = change(serving.clone());
        if wanted == serving {
            return Ok(record.clone().into());
        }
        let app = record.app.clone();
        let manifest = self.store.app_manifest(&app).await?.unwrap_or_default();
        let siblings = functions.iter().filter(|f| f.app == app && f.name != *name).map(|f| PlannedFunction {
            name: f.name.clone(),
            artifact: f.current.artifact.clone(),
            config: f.current.config.clone(),
            fingerprint: f.current.fingerprint.clone(),
            aliases: BTreeMap::new(),
        });
        let functions = siblings.chain([planned(name, wanted)]).collect();
        self.apply(DeployPlan { app, manifest, functions, canary: None }, None).await?;
        self.function_get(name).await
    }
}

fn planned(name: &FunctionName, draft: FunctionDraft) -> PlannedFunction {
    PlannedFunction {
        name: name.clone(),
        fingerprint: fingerprint(&draft.config, &draft.artifact),
        artifact: draft.artifact,
        config: draft.config,
        aliases: BTreeMap::new(),
    }
}

/// Whether a client's revision id names the version with `fingerprint`: Lambda's
/// `RevisionId` is shown as a UUID made of the fingerprint's first 32 hex digits.
fn revision_matches(fingerprint: &str, revision: &str) -> bool {
    let digits: String = revision.chars().filter(|c| *c != '-').collect();
    !digits.is_empty() && fingerprint.starts_with(&digits.to_ascii_lowercase())
}

/// The `RevisionId` Lambda's API shows for a version with `fingerprint`.
pub fn revision_id(fingerprint: &str) -> String {
    let hex = fingerprint.get(..32).unwrap_or(fingerprint);
    if hex.len() < 32 {
        return hex.to_owned();
    }
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_id_is_the_fingerprints_start_as_a_uuid_and_names_only_that_version() {
        let fingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let id = revision_id(fingerprint);
        assert_eq!(id, "01234567-89ab-cdef-0123-456789abcdef");
        assert!(revision_matches(fingerprint, &id));
        assert!(revision_matches(fingerprint, &id.to_ascii_uppercase()));
        assert!(!revision_matches(fingerprint, "11234567-89ab-cdef-0123-456789abcdef"));
        assert!(!revision_matches(fingerprint, ""));
    }
}
