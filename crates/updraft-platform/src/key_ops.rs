//! API keys and SigV4 access keys: authenticating callers, creating, listing and
//! deleting keys, and the admin key made on first start.

use std::sync::Arc;

use updraft_store::StoreError;

use crate::access::{AccessKey, AccessKeyInfo, AccessKeySet};
use crate::data_dir::write_private_file;
use crate::keys::{ApiKey, KeySet, Principal, Role, token_hash};
use crate::{Platform, StartError};

/// Why a key could not be made, listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("storing or reading keys failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    ClusterKey(#[from] crate::secrets::ClusterKeyError),
}

impl Platform {
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.keys.load().authenticate(token)
    }

    pub(crate) async fn load_keys(&self) -> Result<(), StoreError> {
        let mut keys = KeySet::default();
        for record in self.store.api_key_list().await? {
            if let Some(role) = Role::parse(&record.role) {
                keys.insert(record.secret_hash, Principal { key_id: record.id, role });
            }
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Creates a key and returns it; its secret is not kept.
    pub async fn api_key_create(&self, role: Role) -> Result<ApiKey, KeyError> {
        let key = ApiKey::generate(role);
        self.store
            .api_key_insert(&updraft_store::ApiKeyRecord {
                id: key.id.clone(),
                secret_hash: token_hash(&key.token),
                role: role.as_str().to_owned(),
                created_at: updraft_model::now_millis(),
            })
            .await?;
        self.load_keys().await?;
        Ok(key)
    }

    /// On first start, creates the admin key and writes it to `<data-dir>/admin-token`
    /// (mode 0600), where the local CLI finds it. The file is written before the key is
    /// stored: a crash in between leaves a file whose key does not work (and the next
    /// start makes another), never a stored key that nobody holds.
    pub(crate) async fn ensure_admin_key(&self) -> Result<(), StartError> {
        let path = self.config.data_dir.join("admin-token");
        if !self.keys.load().is_empty() {
            if !path.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "API keys exist but the admin token file is missing; use a key you kept, or set UPDRAFT_TOKEN"
                );
            }
            return Ok(());
        }
        let key = ApiKey::generate(Role::Admin);
        write_private_file(&path, format!("{}\n", key.token).as_bytes())
            .map_err(|source| StartError::AdminToken { path: path.clone(), source })?;
        let record = updraft_store::ApiKeyRecord {
            id: key.id.clone(),
            secret_hash: token_hash(&key.token),
            role: Role::Admin.as_str().to_owned(),
            created_at: updraft_model::now_millis(),
        };
        if let Err(error) = self.store.api_key_insert(&record).await {
            let _ = std::fs::remove_file(&path);
            return Err(error.into());
        }
        self.load_keys().await?;
        tracing::info!(path = %path.display(), "created the admin API key");
        Ok(())
    }

    /// The secret and principal of an access key, for checking a SigV4 signature.
    pub fn access_key_secret(&self, id: &str) -> Option<(String, Principal)> {
        self.access_keys.load().get(id).cloned()
    }

    pub(crate) async fn load_access_keys(&self) -> Result<(), StartError> {
        let mut keys = AccessKeySet::default();
        for record in self.store.access_key_list().await? {
            if let Some(role) = Role::parse(&record.role) {
                let secret = self.sealer.load().open(&record.secret_sealed)?;
                keys.insert(record.id.clone(), secret, Principal { key_id: record.id, role });
            }
        }
        self.access_keys.store(Arc::new(keys));
        Ok(())
    }

    /// Creates an access key; its secret is returned this once.
    pub async fn access_key_create(&self, role: Role) -> Result<AccessKey, KeyError> {
        let _change = self.change_lock.lock().await;
        let key = AccessKey::generate(role);
        let sealer = self.reload_sealer().await?;
        self.store
            .access_key_insert(&updraft_store::AccessKeyRecord {
                id: key.id.clone(),
                secret_sealed: sealer.seal(&key.secret),
                role: role.as_str().to_owned(),
                created_at: updraft_model::now_millis(),
            })
            .await?;
        let mut keys = AccessKeySet::default();
        for (id, entry) in self.access_keys.load().iter() {
            keys.insert(id.clone(), entry.0.clone(), entry.1.clone());
        }
        keys.insert(key.id.clone(), key.secret.clone(), Principal { key_id: key.id.clone(), role });
        self.access_keys.store(Arc::new(keys));
        Ok(key)
    }

    /// Every access key, oldest first, without secrets.
    pub async fn access_key_list(&self) -> Result<Vec<AccessKeyInfo>, KeyError> {
        Ok(self
            .store
            .access_key_list()
            .await?
            .into_iter()
            .filter_map(|record| {
                Some(AccessKeyInfo { role: Role::parse(&record.role)?, id: record.id, created_at: record.created_at })
            })
            .collect())
    }

    /// Deletes an access key; false when there was none.
    pub async fn access_key_delete(&self, id: &str) -> Result<bool, KeyError> {
        let _change = self.change_lock.lock().await;
        let deleted = self.store.access_key_delete(id).await?;
        let mut keys = AccessKeySet::default();
        for (key_id, entry) in self.access_keys.load().iter().filter(|(key_id, _)| key_id.as_str() != id) {
            keys.insert(key_id.clone(), entry.0.clone(), entry.1.clone());
        }
        self.access_keys.store(Arc::new(keys));
        Ok(deleted)
    }
}
