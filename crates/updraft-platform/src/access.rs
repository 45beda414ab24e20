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
use updraft_store::TokenIdentity;

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

/// Seals and opens secrets with the server's secrets key (XChaCha20-Poly1305, a random
/// nonce per value).
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
        match std::fs::read(path) {
            Ok(key) => Sealer::from_key(&key)
                .ok_or_else(|| std::io::Error::other(format!("{} is not a 32-byte key", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Sealer::new_key();
                crate::data_dir::write_private_file(path, &key)?;
                Ok(Sealer::from_key(&key).expect("a new key has 32 bytes"))
            }
            Err(error) => Err(error),
        }
    }

    /// 32 random bytes: a new secrets key.
    pub(crate) fn new_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        key
    }

    /// A sealer with `key`, if it is a key (32 bytes).
    pub(crate) fn from_key(key: &[u8]) -> Option<Sealer> {
        (key.len() == 32).then(|| Sealer { cipher: XChaCha20Poly1305::new_from_slice(key).expect("32 bytes") })
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

/// Signs the bearer tokens functions are given for their grants (`publishes`,
/// `starts`). Its key is the server's own, kept sealed in the store (so rotating the
/// secrets key leaves tokens valid); a token names its function and generation and is
/// signed over the function's token identity, so rotating the generation or deleting
/// the function revokes it.
pub(crate) struct TokenSigner {
    key: [u8; 32],
}

/// A token taken apart, not yet checked.
pub(crate) struct TokenClaim {
    pub(crate) function: FunctionName,
    pub(crate) generation: i64,
    mac: Vec<u8>,
}

impl TokenSigner {
    /// The name of its key among the server's keys.
    pub(crate) const KEY_NAME: &'static str = "function-tokens";

    pub(crate) fn from_key(key: &[u8]) -> Option<TokenSigner> {
        Some(TokenSigner { key: key.try_into().ok()? })
    }

    /// `updf_<function>_<generation>_<hex HMAC-SHA256>`.
    pub(crate) fn token(&self, function: &FunctionName, identity: &TokenIdentity) -> String {
        let mac = self.mac(function, identity).finalize().into_bytes();
        format!("{FUNCTION_TOKEN_PREFIX}{function}_{}_{}", identity.generation, hex::encode(mac))
    }

    /// What `token` claims to be, if it has a token's shape.
    pub(crate) fn claim(token: &str) -> Option<TokenClaim> {
        let (rest, mac) = token.strip_prefix(FUNCTION_TOKEN_PREFIX)?.rsplit_once('_')?;
        let (function, generation) = rest.rsplit_once('_')?;
        Some(TokenClaim {
            function: function.parse().ok()?,
            generation: generation.parse().ok()?,
            mac: hex::decode(mac).ok()?,
        })
    }

    /// Whether `claim` was signed for `identity`, the function's current one.
    pub(crate) fn verify(&self, claim: &TokenClaim, identity: &TokenIdentity) -> bool {
        claim.generation == identity.generation && self.mac(&claim.function, identity).verify_slice(&claim.mac).is_ok()
    }

    /// An HMAC-SHA256 of `parts` (joined by NULs) under the server's key, which every
    /// node of a cluster shares: proof that a node made it.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.keyed(parts).finalize().into_bytes().to_vec()
    }

    /// Whether `mac` is [`TokenSigner::sign`] of `parts`.
    pub(crate) fn verify_signed(&self, parts: &[&[u8]], mac: &[u8]) -> bool {
        self.keyed(parts).verify_slice(mac).is_ok()
    }

    fn keyed(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part);
            mac.update(b"\0");
        }
        mac
    }

    fn mac(&self, function: &FunctionName, identity: &TokenIdentity) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(function.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(identity.id.as_bytes());
        mac.update(b"\0");
        mac.update(&identity.generation.to_be_bytes());
        mac
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
        std::fs::write(dir.path().join("short.key"), [1u8; 16]).unwrap();
        assert!(Sealer::open_or_create(&dir.path().join("short.key")).is_err());
    }

    #[test]
    fn a_function_token_holds_for_its_identity_only() {
        let signer = TokenSigner::from_key(&Sealer::new_key()).unwrap();
        let signup: FunctionName = "signup".parse().unwrap();
        let identity = TokenIdentity { id: "abc".into(), generation: 1 };
        let token = signer.token(&signup, &identity);
        let claim = TokenSigner::claim(&token).unwrap();
        assert_eq!((claim.function.as_str(), claim.generation), ("signup", 1));
        assert!(signer.verify(&claim, &identity));
        // A rotation, a function made again, another name, another server's key.
        assert!(!signer.verify(&claim, &TokenIdentity { id: "abc".into(), generation: 2 }));
        assert!(!signer.verify(&claim, &TokenIdentity { id: "xyz".into(), generation: 1 }));
        let forged = TokenSigner::claim(&token.replacen("signup", "admin-tool", 1)).unwrap();
        assert!(!signer.verify(&forged, &identity));
        let other = TokenSigner::from_key(&Sealer::new_key()).unwrap();
        assert!(!other.verify(&claim, &identity));
        let mut altered = token.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert!(!signer.verify(&TokenSigner::claim(&altered).unwrap(), &identity));
        assert!(TokenSigner::claim("upd_not_a_function_token").is_none());
        assert!(TokenSigner::claim("updf_signup_notanumber_00").is_none());
    }
}
