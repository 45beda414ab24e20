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
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use updraft_model::FunctionName;

use crate::keys::{Principal, Role};

/// What every function token starts with.
const FUNCTION_TOKEN_PREFIX: &str = "updf_";

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
    /// Signs the tokens functions are given for their grants (`publishes`, `starts`),
    /// derived from the secrets key so that a token outlives restarts, not the key.
    token_key: [u8; 32],
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
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(std::io::Error::other)?;
        derive.update(b"updraft function tokens v1");
        Ok(Sealer { cipher, token_key: derive.finalize().into_bytes().into() })
    }

    /// The bearer token `function` is given for what its grants allow:
    /// `updf_<function>_<hex HMAC-SHA256 of the name>`.
    pub(crate) fn function_token(&self, function: &FunctionName) -> String {
        format!(
            "{FUNCTION_TOKEN_PREFIX}{function}_{}",
            hex::encode(self.token_mac(function.as_str()).finalize().into_bytes())
        )
    }

    /// The function `token` was made for, if this server made it.
    pub(crate) fn token_function(&self, token: &str) -> Option<FunctionName> {
        let (name, mac) = token.strip_prefix(FUNCTION_TOKEN_PREFIX)?.rsplit_once('_')?;
        let mac = hex::decode(mac).ok()?;
        self.token_mac(name).verify_slice(&mac).ok()?;
        name.parse().ok()
    }

    fn token_mac(&self, function: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_key).expect("HMAC takes a key of any length");
        mac.update(function.as_bytes());
        mac
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

    #[test]
    fn a_function_token_names_its_function_and_only_this_server_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::open_or_create(&dir.path().join("secrets.key")).unwrap();
        let signup: FunctionName = "signup".parse().unwrap();
        let token = sealer.function_token(&signup);
        assert_eq!(sealer.token_function(&token), Some(signup.clone()));
        assert_eq!(
            Sealer::open_or_create(&dir.path().join("secrets.key")).unwrap().token_function(&token),
            Some(signup)
        );
        // Another name under the same signature, a changed signature, another server's token.
        let forged = token.replacen("signup", "admin-tool", 1);
        assert_eq!(sealer.token_function(&forged), None);
        let mut altered = token.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert_eq!(sealer.token_function(&altered), None);
        let other = Sealer::open_or_create(&dir.path().join("other.key")).unwrap();
        assert_eq!(other.token_function(&token), None);
        assert_eq!(sealer.token_function("upd_not_a_function_token"), None);
    }
}
