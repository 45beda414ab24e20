//! API keys: bearer tokens for the control plane. Only a hash of each secret is
//! stored; the set of hashes is kept in memory so checking a token is a map lookup.

use std::collections::HashMap;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
}

/// A freshly created key: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub role: Role,
    /// `upd_<id>_<secret>`: shown once, never stored.
    pub token: String,
}

impl ApiKey {
    pub(crate) fn generate(role: Role) -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let token = format!("upd_{id}_{}", hex::encode(secret));
        Self { id, role, token }
    }
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The hashes of every valid key.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeySet {
    by_hash: HashMap<String, Principal>,
}

impl KeySet {
    pub(crate) fn insert(&mut self, hash: String, principal: Principal) {
        self.by_hash.insert(hash, principal);
    }

    pub(crate) fn authenticate(&self, token: &str) -> Option<Principal> {
        self.by_hash.get(&token_hash(token)).cloned()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}
