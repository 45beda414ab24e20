//! Typed names and ids, validated once at the edge so the rest of the code can trust them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {reason}")]
pub struct InvalidName {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn check_name(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    let invalid = |reason| InvalidName { kind, value: value.to_owned(), reason };
    let mut chars = value.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err(invalid("it must start with a lowercase letter"));
        }
        Some(_) => {}
    }
    if value.len() > 64 {
        return Err(invalid("it must be at most 64 characters"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(invalid("use only lowercase letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// A validated name type: `$check` decides what the `$kind` may be.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        name_type!($(#[$doc])* $name, $kind, check_name);
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                $check($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, InvalidName> {
                Self::new(s)
            }
        }
    };
}

name_type!(
    /// An app's name: the `[app] name` of a manifest. Lowercase, `[a-z][a-z0-9_-]*`.
    AppName,
    "app name"
);
name_type!(
    /// A function's name, unique on a server. Lowercase, `[a-z][a-z0-9_-]*`.
    FunctionName,
    "function name"
);

/// Validates a topic or queue name: 1–128 characters of letters, digits, `.`, `-` and
/// `_`, starting with a letter or digit.
fn check_channel(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    let invalid = |reason| InvalidName { kind, value: value.to_owned(), reason };
    match value.chars().next() {
        None => return Err(invalid("it is empty")),
        Some(c) if !c.is_ascii_alphanumeric() => return Err(invalid("it must start with a letter or a digit")),
        Some(_) => {}
    }
    if value.len() > 128 {
        return Err(invalid("it must be at most 128 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return Err(invalid("use only letters, digits, '.', '-' and '_'"));
    }
    Ok(())
}

/// Validates an alias's name as Lambda does: 1–128 letters, digits, `-` and `_`, not
/// all digits (a number names a version).
fn check_alias(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    let invalid = |reason| InvalidName { kind, value: value.to_owned(), reason };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    if value.len() > 128 {
        return Err(invalid("it must be at most 128 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        return Err(invalid("use only letters, digits, '-' and '_'"));
    }
    if value.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid("a number names a version; give the alias a name with a letter in it"));
    }
    Ok(())
}

name_type!(
    /// An alias of a function (`live`, `prod`, `canary`): a name for one of its
    /// versions, with an optional second version taking a share of its invocations.
    AliasName,
    "alias name",
    check_alias
);
name_type!(
    /// A topic's name: what `topic` triggers subscribe to and `updraft publish` sends
    /// to (`user.signed_up`, `orders-eu`): dots group topics the way SNS users and NATS
    /// subjects are used to.
    TopicName,
    "topic name",
    check_channel
);
name_type!(
    /// A work queue's name: what `queue` triggers consume and `updraft send` sends to.
    QueueName,
    "queue name",
    check_channel
);
name_type!(
    /// A secret's name, as `updraft secrets set NAME` stores it and a manifest refers
    /// to it (`env = { KEY = { secret = "NAME" } }`).
    SecretName,
    "secret name",
    check_channel
);

/// A function version: 1 for the first deploy, then one more for each changed deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionNumber(pub u32);

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The sha256 of an artifact's bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactDigest(String);

impl ArtifactDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    /// Parses 64 hex digits, optionally prefixed with `sha256:`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let hex = value.strip_prefix("sha256:").unwrap_or(value);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(hex.to_owned()))
        } else {
            Err(InvalidName {
                kind: "artifact digest",
                value: value.to_owned(),
                reason: "expected 64 lowercase hex digits (a sha256), optionally after `sha256:`",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ArtifactDigest {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, InvalidName> {
        Self::parse(&value)
    }
}

impl From<ArtifactDigest> for String {
    fn from(digest: ArtifactDigest) -> String {
        digest.0
    }
}

impl fmt::Display for ArtifactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(FunctionName::new("hello-world_2").is_ok());
        assert_eq!(FunctionName::new("Hello").unwrap_err().reason, "it must start with a lowercase letter");
        assert!(FunctionName::new("").is_err());
        assert!(FunctionName::new("a/b").is_err());
        assert!(FunctionName::new("a".repeat(65)).is_err());
    }

    #[test]
    fn topic_names_allow_dots() {
        assert!(TopicName::new("user.signed_up").is_ok());
        assert!(TopicName::new("Orders-EU.v2").is_ok());
        assert!(TopicName::new(".hidden").is_err());
        assert!(TopicName::new("a b").is_err());
        assert!(TopicName::new("").is_err());
        assert!(TopicName::new("t".repeat(129)).is_err());
    }

    #[test]
    fn digests_round_trip() {
        let digest = ArtifactDigest::of(b"hello");
        assert_eq!(ArtifactDigest::parse(&digest.to_string()).unwrap(), digest);
        assert!(ArtifactDigest::parse("sha256:xyz").is_err());
    }
}
