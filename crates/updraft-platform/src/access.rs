//! Access keys for the Lambda-compatible API: an access key id and a secret, as AWS
//! issues them, so that SigV4 clients (boto3, the AWS CLI) sign requests to Updraft.
//!
//! A SigV4 check derives its signing key from the secret itself, so unlike bearer
//! keys the secret must be kept. It is stored sealed with XChaCha20-Poly1305 under the
//! server's secrets key (`<data-dir>/secrets.key`, mode 0600), and held in memory
//! in the clear, so that checking a request needs no database round trip.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::keys::{Principal, Role};

/// A freshly created access key: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct AccessKey {
    /// `AKUP` and 16 more upper-case letters and digits, shaped like AWS's ids.
    pub id: String,
    pub secret: String,
    pub role: Role,
}

/// An access key as listed: never its secret.
#[derive(Debug, Clone)]
pub struct AccessKeyInfo {
    pub id: String,
    pub role: Role,
    pub created_at: i64,
}

impl AccessKey {
    pub(crate) fn generate(role: Role) -> AccessKey {
        const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut random = [0u8; 16 + 30];
        rand::rng().fill_bytes(&mut random);
        let id: String = random[..16].iter().map(|b| ID_ALPHABET[usize::from(b % 32)] as char).collect();
        // 30 random bytes make AWS's 40-character secret shape in base64.
        let secret = BASE64.encode(&random[16..]);
        AccessKey { id: format!("AKUP{id}"), secret, role }
    }
}

/// Seals and opens secrets with the server's secrets key.
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret does not open with this server's secrets key (was {0} replaced?)")]
pub struct UnsealError(String);

impl Sealer {
    /// Reads the secrets key at `path`, creating it on first start.
    pub(crate) fn open_or_create(path: &Path) -> std::io::Result<Sealer> {
        let key = match std::fs::read(path) {
            Ok(key) if key.len() == 32 => key,
            Ok(_) => {
                return Err(std::io::Error::other(format!("{} is not a 32-byte key", path.display())));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                crate::platform::write_private_file(path, &key)?;
                key
            }
            Err(error) => return Err(error),
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(std::io::Error::other)?;
        Ok(Sealer { cipher })
    }

    pub(crate) fn seal(&self, secret: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), secret.as_bytes()).expect("sealing cannot fail");
        BASE64.encode([nonce.as_slice(), &sealed].concat())
    }

    pub(crate) fn open(&self, sealed: &str) -> Result<String, UnsealError> {
        let fail = || UnsealError("secrets.key".into());
        let bytes = BASE64.decode(sealed).map_err(|_| fail())?;
        if bytes.len() < 24 {
            return Err(fail());
        }
        let (nonce, sealed) = bytes.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

/// Every access key's secret, by id.
#[derive(Default)]
pub(crate) struct AccessKeySet {
    by_id: HashMap<String, (String, Principal)>,
}

impl AccessKeySet {
    pub(crate) fn insert(&mut self, id: String, secret: String, principal: Principal) {
        self.by_id.insert(id, (secret, principal));
    }

    pub(crate) fn get(&self, id: &str) -> Option<&(String, Principal)> {
        self.by_id.get(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &(String, Principal))> {
        self.by_id.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_sealed_and_the_seal_is_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let sealer = Sealer::open_or_create(&path).unwrap();
        let key = AccessKey::generate(Role::Admin);
        assert_eq!(key.id.len(), 20);
        assert_eq!(key.secret.len(), 40);
        let sealed = sealer.seal(&key.secret);
        assert!(!sealed.contains(&key.secret));
        // The same key file opens it after a restart; another key does not.
        assert_eq!(Sealer::open_or_create(&path).unwrap().open(&sealed).unwrap(), key.secret);
        let other = Sealer::open_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open(&sealed).is_err());
    }
}
