//! The group's pairing key: the one secret every poi of a protected group shares.

use alloc::string::String;
use core::fmt;

use povpoi_core::show::ClockKey;
use serde::{Deserialize, Serialize};

/// Shortest pairing key accepted: shorter secrets are guessable offline from one signed
/// request.
pub const MIN_GROUP_KEY_LEN: usize = 8;
/// Longest pairing key accepted.
pub const MAX_GROUP_KEY_LEN: usize = 256;

/// A group's shared secret. Never serialised back out by the API, never printed; read
/// back (from a poi's settings file) only if it is a valid key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct GroupKey(String);

impl From<GroupKey> for String {
    fn from(key: GroupKey) -> String {
        key.0
    }
}

impl TryFrom<String> for GroupKey {
    type Error = InvalidKey;
    fn try_from(secret: String) -> Result<GroupKey, InvalidKey> {
        GroupKey::new(&secret)
    }
}

/// Why a text cannot be a pairing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidKey {
    /// Shorter than [`MIN_GROUP_KEY_LEN`] bytes.
    TooShort,
    /// Longer than [`MAX_GROUP_KEY_LEN`] bytes.
    TooLong,
    /// Not visible ASCII, or spaces at either end.
    NotPlain,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidKey::TooShort => write!(f, "groupKey must be at least {MIN_GROUP_KEY_LEN} bytes"),
            InvalidKey::TooLong => write!(f, "groupKey must be at most {MAX_GROUP_KEY_LEN} bytes"),
            InvalidKey::NotPlain => {
                f.write_str("groupKey must be plain ASCII letters, digits, punctuation or inner spaces")
            }
        }
    }
}

impl core::error::Error for InvalidKey {}

impl GroupKey {
    /// A key from its text, if it is long enough to be worth having.
    pub fn new(secret: &str) -> Result<GroupKey, InvalidKey> {
        if secret.len() < MIN_GROUP_KEY_LEN {
            return Err(InvalidKey::TooShort);
        }
        if secret.len() > MAX_GROUP_KEY_LEN {
            return Err(InvalidKey::TooLong);
        }
        // It travels as a bearer token in an HTTP header (visible ASCII only), and a person
        // types it on every phone: spaces at its ends would be invisible differences.
        if !secret.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) || secret.trim() != secret {
            return Err(InvalidKey::NotPlain);
        }
        Ok(GroupKey(secret.into()))
    }

    /// Whether `given` is this key. Compares SHA-256 digests, so the time taken tells
    /// nothing about how much of a guess was right.
    pub fn matches(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(given.as_bytes())
    }

    /// The key that tags the group's show-clock datagrams (docs/PROTOCOL.md section 12).
    pub fn clock_key(&self, group: &str) -> ClockKey {
        ClockKey::derive(self.secret(), group)
    }

    /// The secret's bytes, for deriving keys from it.
    pub(crate) fn secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_visible_ascii_of_a_sensible_length() {
        assert!(GroupKey::new("spin the fire 42").is_ok());
        assert_eq!(GroupKey::new("short"), Err(InvalidKey::TooShort));
        assert_eq!(GroupKey::new(&"x".repeat(257)), Err(InvalidKey::TooLong));
        for bad in [" leading space", "trailing space ", "tab\tinside", "ünïcödé key"] {
            assert_eq!(GroupKey::new(bad), Err(InvalidKey::NotPlain), "{bad:?} was taken");
        }
    }

    #[test]
    fn only_a_valid_key_is_read_back_from_settings() {
        let key: GroupKey = serde_json::from_str("\"spin the fire 42\"").unwrap();
        assert!(key.matches("spin the fire 42"));
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"spin the fire 42\"");
        for bad in ["\"\"", "\"short\"", "\" padded key \""] {
            assert!(serde_json::from_str::<GroupKey>(bad).is_err(), "{bad} was read as a key");
        }
    }

    #[test]
    fn a_key_matches_only_itself_and_never_prints() {
        let key = GroupKey::new("correct horse").unwrap();
        assert!(key.matches("correct horse"));
        assert!(!key.matches("correct horsf"));
        assert_eq!(alloc::format!("{key:?}"), "GroupKey(<redacted>)");
    }
}
