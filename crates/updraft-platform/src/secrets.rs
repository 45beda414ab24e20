//! Secrets and keys: users' secrets (`updraft secrets set NAME`), sealed at rest and put
//! into the environment of the functions that name them; function tokens, revoked by
//! rotating them or deleting the function; and rotating the secrets key, which
//! re-seals everything the store keeps sealed.
//!
//! A secret's value is never shown: not by the API, `describe`, logs or records. It is
//! held in the clear in memory (an instance's start reads no database) and sealed in
//! the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use updraft_model::{FunctionName, SecretName, Trigger, WebhookTrigger};
use updraft_store::{SealedValue, Store, StoreError};

use crate::access::{Sealer, TokenSigner};
use crate::cluster::ClusterKey;
use crate::data_dir::write_private_file;
use crate::deploy::{DeployError, LiveVersion};
use crate::live::{LiveFunction, LiveState};
use crate::platform::{Platform, StartError};

/// The largest secret value: what fits Lambda's environment limit.
pub const MAX_SECRET_BYTES: usize = updraft_model::MAX_ENVIRONMENT_BYTES;

/// Why a secrets or token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name:?} is not set")]
    NotFound { name: SecretName },
    #[error("the value is empty; a secret holds at least one byte")]
    Empty,
    #[error("the value is {size} bytes, over the limit of {MAX_SECRET_BYTES}")]
    TooLarge { size: usize },
    #[error("the value contains a NUL character, which no environment can hold")]
    Nul,
    #[error(
        "secret {name:?} is used by {}; remove it from their manifests and deploy first",
        functions.iter().map(FunctionName::as_str).collect::<Vec<_>>().join(", ")
    )]
    InUse { name: SecretName, functions: Vec<FunctionName> },
    #[error("function {function:?} not found")]
    FunctionNotFound { function: FunctionName },
    #[error("cannot write the new secrets key {path}")]
    KeyFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Unseal(#[from] crate::access::UnsealError),
    #[error(transparent)]
    ClusterKey(#[from] ClusterKeyError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A secret as listed: its name, when it was set, and who uses it.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    pub name: SecretName,
    pub created_at: i64,
    pub updated_at: i64,
    pub used_by: Vec<FunctionName>,
}

/// What setting a secret did.
#[derive(Debug, Clone)]
pub struct SecretSet {
    /// False when it replaced an earlier value.
    pub created: bool,
    /// The functions that get the new value in instances started from now on.
    pub used_by: Vec<FunctionName>,
}

/// What a key rotation did.
#[derive(Debug, Clone, Copy)]
pub struct Rotated {
    /// How many sealed values were sealed again with the new key.
    pub resealed: usize,
}

const KEY_FILE: &str = "secrets.key";
/// A new key waits here until every sealed value is sealed with it.
const NEXT_KEY_FILE: &str = "secrets.key.next";

/// The name of the cluster's secrets key among the cluster keys.
const CLUSTER_SECRETS_KEY: &str = "secrets-key";

/// Opens the secrets key: with a cluster key, the one sealed in the database (made, or
/// taken from this node's `secrets.key`, by the first node); without, the data dir's.
pub(crate) async fn open_sealer(
    data_dir: &Path,
    store: &Store,
    cluster_key: Option<&ClusterKey>,
) -> Result<Sealer, StartError> {
    let Some(cluster_key) = cluster_key else { return open_local_sealer(data_dir, store).await };
    // A node that ran with a key of its own brings it along, so that what it sealed
    // still opens if it is the first to store the cluster's.
    let path = data_dir.join(KEY_FILE);
    let local = if path.exists() {
        open_local_sealer(data_dir, store).await?;
        std::fs::read(&path).map_err(|source| StartError::SecretsKey { path: path.clone(), source })?
    } else {
        Sealer::new_key().to_vec()
    };
    Ok(cluster_sealer(store, cluster_key, &local).await?)
}

/// Why the cluster's secrets key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ClusterKeyError {
    #[error(
        "the cluster key does not open the secrets key this cluster keeps in its database; every node needs the \
         same cluster key (--cluster-key-file or UPDRAFT_CLUSTER_KEY)"
    )]
    WrongKey,
    #[error("the cluster's secrets key in the database is not a 32-byte key")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cluster's secrets key, stored sealed with `cluster_key` (as `candidate` if
/// none is stored yet).
async fn cluster_sealer(store: &Store, cluster_key: &ClusterKey, candidate: &[u8]) -> Result<Sealer, ClusterKeyError> {
    let outer = Sealer::from_key(&cluster_key.0).expect("a cluster key has 32 bytes");
    let sealed = store.cluster_key_get_or_insert(CLUSTER_SECRETS_KEY, || outer.seal(&hex::encode(candidate))).await?;
    let key = outer.open(&sealed).map_err(|_| ClusterKeyError::WrongKey)?;
    hex::decode(key).ok().as_deref().and_then(Sealer::from_key).ok_or(ClusterKeyError::Corrupt)
}

/// Opens the secrets key in `data_dir`, finishing a rotation that a crash interrupted:
/// if a new key is waiting and the store's values open with it (they were re-sealed
/// and committed), it takes the old one's place; otherwise it is discarded.
async fn open_local_sealer(data_dir: &Path, store: &Store) -> Result<Sealer, StartError> {
    let path = data_dir.join(KEY_FILE);
    let next = data_dir.join(NEXT_KEY_FILE);
    let key_error = |path: &Path| {
        let path = path.to_owned();
        move |source| StartError::SecretsKey { path, source }
    };
    let sealer = Sealer::open_or_create(&path).map_err(key_error(&path))?;
    let waiting = match std::fs::read(&next) {
        Ok(key) => Sealer::from_key(&key),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(sealer),
        Err(source) => return Err(StartError::SecretsKey { path: next, source }),
    };
    if let (Some(candidate), Some(sample)) = (waiting, store.sealed_list().await?.into_iter().next())
        && candidate.open(&sample.sealed).is_ok()
    {
        std::fs::rename(&next, &path).map_err(key_error(&path))?;
        tracing::info!("finished a rotation of the secrets key that a stop interrupted");
        return Ok(candidate);
    }
    std::fs::remove_file(&next).map_err(key_error(&next))?;
    Ok(sealer)
}

/// The function-token signer, its key made on first start and kept sealed.
pub(crate) async fn token_signer(store: &Store, sealer: &Sealer) -> Result<TokenSigner, StartError> {
    let sealed =
        store.server_key_get_or_insert(TokenSigner::KEY_NAME, || sealer.seal(&hex::encode(Sealer::new_key()))).await?;
    let key = hex::decode(sealer.open(&sealed)?).ok();
    key.as_deref().and_then(TokenSigner::from_key).ok_or_else(|| {
        StartError::Store(StoreError::Corrupt { detail: "the function-token key is not 32 bytes".into() })
    })
}

/// Every secret, opened.
pub(crate) async fn load_secrets(store: &Store, sealer: &Sealer) -> Result<BTreeMap<SecretName, String>, StartError> {
    let mut secrets = BTreeMap::new();
    for (name, sealed) in store.secret_sealed_list().await? {
        secrets.insert(name, sealer.open(&sealed)?);
    }
    Ok(secrets)
}

/// The functions of `live` whose environment or webhooks name `secret`.
fn users(live: &LiveState, secret: &SecretName) -> Vec<FunctionName> {
    live.functions.values().filter(|function| uses(function, secret)).map(|function| function.name.clone()).collect()
}

fn uses(function: &LiveFunction, secret: &SecretName) -> bool {
    function.config.secret_env.values().any(|name| name == secret)
        || function.config.triggers.iter().any(
            |trigger| matches!(trigger, Trigger::Webhook(WebhookTrigger { secret: Some(name), .. }) if name == secret),
        )
}

impl Platform {
    /// Sets a secret (a new one, or a new value). Functions that use it get the value in
    /// instances started from now on; the ones already running finish with the old.
    pub async fn secret_set(&self, name: &SecretName, value: String) -> Result<SecretSet, SecretError> {
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge { size: value.len() });
        }
        if value.contains('\0') {
            return Err(SecretError::Nul);
        }
        let _change = self.change_lock().lock().await;
        let sealer = self.reload_sealer().await?;
        let created = self.store().secret_put(name, &sealer.seal(&value)).await?;
        let mut secrets = (**self.secret_values().load()).clone();
        secrets.insert(name.clone(), value);
        self.secret_values().store(Arc::new(secrets));
        let users = users(&self.live(), name);
        self.refresh(&users)?;
        tracing::info!(secret = %name, created, functions = users.len(), "secret set");
        Ok(SecretSet { created, used_by: users })
    }

    /// Every secret's name and dates, and the functions using it; never a value.
    pub async fn secret_list(&self) -> Result<Vec<SecretInfo>, SecretError> {
        let live = self.live();
        Ok(self
            .store()
            .secret_list()
            .await?
            .into_iter()
            .map(|record| SecretInfo {
                used_by: users(&live, &record.name),
                name: record.name,
                created_at: record.created_at,
                updated_at: record.updated_at,
            })
            .collect())
    }

    /// Deletes a secret no deployed function uses.
    pub async fn secret_delete(&self, name: &SecretName) -> Result<(), SecretError> {
        let _change = self.change_lock().lock().await;
        let functions = users(&self.live(), name);
        if !functions.is_empty() {
            return Err(SecretError::InUse { name: name.clone(), functions });
        }
        if !self.store().secret_delete(name).await? {
            return Err(SecretError::NotFound { name: name.clone() });
        }
        let mut secrets = (**self.secret_values().load()).clone();
        secrets.remove(name);
        self.secret_values().store(Arc::new(secrets));
        tracing::info!(secret = %name, "secret deleted");
        Ok(())
    }

    /// The secret that signs `webhook`'s requests to `function`: a stored secret it
    /// names, or the value of the environment variable it names.
    pub(crate) fn webhook_secret(&self, function: &LiveFunction, webhook: &WebhookTrigger) -> Option<String> {
        if let Some(secret) = &webhook.secret {
            return self.secret_values().load().get(secret).cloned();
        }
        let variable = webhook.secret_env.as_ref()?;
        let env = &function.pool.spec().instance.env;
        env.iter().find(|(name, _)| name == variable).map(|(_, value)| value.clone())
    }

    /// Revokes every token of `function`: its next generation is signed from now on,
    /// and its running instances are replaced by ones holding the new token.
    pub async fn token_rotate(&self, function: &FunctionName) -> Result<i64, SecretError> {
        let _change = self.change_lock().lock().await;
        let generation = self.store().function_token_rotate(function).await.map_err(|error| match error {
            StoreError::FunctionNotFound { function } => SecretError::FunctionNotFound { function },
            other => other.into(),
        })?;
        let live = self.live();
        if let Some(current) = live.functions.get(function) {
            let mut token = current.token.clone();
            token.generation = generation;
            self.replace_live(current, token)?;
        }
        tracing::info!(%function, generation, "function tokens rotated");
        Ok(generation)
    }

    /// Makes a new secrets key and seals everything sealed with the old one again,
    /// access keys included, in one transaction; then the new key file takes the old
    /// one's place. A crash at any point leaves a key that opens every value (see
    /// `open_sealer`). With a cluster key, the new key is stored sealed in the same
    /// transaction instead, and every node takes it with the change.
    pub async fn rotate_secrets_key(&self) -> Result<Rotated, SecretError> {
        let _change = self.change_lock().lock().await;
        self.reload_sealer().await?;
        if let Some(cluster_key) = &self.config().cluster.key {
            let key = Sealer::new_key();
            let new = Sealer::from_key(&key).expect("a new key has 32 bytes");
            let values = self.resealed(&new).await?;
            let outer = Sealer::from_key(&cluster_key.0).expect("a cluster key has 32 bytes");
            let sealed_key = outer.seal(&hex::encode(key));
            self.store().sealed_replace(&values, Some((CLUSTER_SECRETS_KEY, &sealed_key))).await?;
            self.set_sealer(new);
            tracing::info!(resealed = values.len(), "rotated the cluster's secrets key");
            return Ok(Rotated { resealed: values.len() });
        }
        let data_dir = &self.config().data_dir;
        let (path, next) = (data_dir.join(KEY_FILE), data_dir.join(NEXT_KEY_FILE));
        let key = Sealer::new_key();
        let new = Sealer::from_key(&key).expect("a new key has 32 bytes");
        write_private_file(&next, &key).map_err(|source| SecretError::KeyFile { path: next.clone(), source })?;
        let resealed = async {
            let values = self.resealed(&new).await?;
            self.store().sealed_replace(&values, None).await?;
            Ok::<Vec<SealedValue>, SecretError>(values)
        }
        .await;
        let values = match resealed {
            Ok(values) => values,
            Err(error) => {
                let _ = std::fs::remove_file(&next);
                return Err(error);
            }
        };
        std::fs::rename(&next, &path).map_err(|source| SecretError::KeyFile { path: path.clone(), source })?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        self.set_sealer(new);
        tracing::info!(resealed = values.len(), "rotated the secrets key");
        Ok(Rotated { resealed: values.len() })
    }

    /// Every sealed value the store holds, sealed again with `new`.
    async fn resealed(&self, new: &Sealer) -> Result<Vec<SealedValue>, SecretError> {
        let old = self.sealer();
        let mut values = self.store().sealed_list().await?;
        for value in &mut values {
            value.sealed = new.seal(&old.open(&value.sealed)?);
        }
        Ok(values)
    }

    /// Takes the cluster's secrets key again: another node may have rotated it, and
    /// a value sealed with the old one would open nowhere. Every write that seals
    /// calls it first (without a cluster key, this node's key is the only one).
    pub(crate) async fn reload_sealer(&self) -> Result<Arc<Sealer>, ClusterKeyError> {
        if let Some(cluster_key) = &self.config().cluster.key {
            let sealer = cluster_sealer(self.store(), cluster_key, &Sealer::new_key()).await?;
            self.set_sealer(sealer);
        }
        Ok(self.sealer())
    }

    /// Rebuilds the live entries of `functions` with the same versions (their
    /// environment changed), replacing their instances.
    fn refresh(&self, functions: &[FunctionName]) -> Result<(), SecretError> {
        let live = self.live();
        for name in functions {
            if let Some(current) = live.functions.get(name) {
                self.replace_live(current, current.token.clone())?;
            }
        }
        Ok(())
    }

    /// Swaps `current` for the same version built again (with `token`), and retires the
    /// old instances. Callers hold the change lock.
    fn replace_live(
        &self,
        current: &Arc<LiveFunction>,
        token: updraft_store::TokenIdentity,
    ) -> Result<(), SecretError> {
        let version = LiveVersion {
            name: &current.name,
            app: &current.app,
            version: current.version,
            config: &current.config,
            fingerprint: &current.fingerprint,
            token,
        };
        let replacement = self.live_function(&version, current.pool.prepared())?;
        let mut functions = self.live().functions.clone();
        functions.insert(current.name.clone(), replacement);
        let state = LiveState::build(functions).map_err(DeployError::from)?;
        self.set_live(state);
        current.pool.retire();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &Path) -> Store {
        Store::connect(&Store::sqlite_url(&dir.join("updraft.db"))).await.unwrap()
    }

    #[tokio::test]
    async fn a_rotation_cut_short_keeps_whichever_key_the_store_was_sealed_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let old = open_sealer(dir.path(), &store, None).await.unwrap();
        let secret: SecretName = "stripe".parse().unwrap();
        store.secret_put(&secret, &old.seal("value")).await.unwrap();

        // Cut before the commit: the store is sealed with the old key; the new one goes.
        let new_key = Sealer::new_key();
        std::fs::write(dir.path().join(NEXT_KEY_FILE), new_key).unwrap();
        let opened = open_sealer(dir.path(), &store, None).await.unwrap();
        assert_eq!(load_secrets(&store, &opened).await.unwrap()[&secret], "value");
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());

        // Cut after the commit: the store is sealed with the new key, which takes over.
        let new = Sealer::from_key(&new_key).unwrap();
        let mut values = store.sealed_list().await.unwrap();
        for value in &mut values {
            value.sealed = new.seal(&old.open(&value.sealed).unwrap());
        }
        store.sealed_replace(&values, None).await.unwrap();
        std::fs::write(dir.path().join(NEXT_KEY_FILE), new_key).unwrap();
        let opened = open_sealer(dir.path(), &store, None).await.unwrap();
        assert_eq!(load_secrets(&store, &opened).await.unwrap()[&secret], "value");
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE)).unwrap(), new_key);
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        store.close().await;
    }
}
