//! Content addresses of pixel blobs.

use core::fmt;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of an image's canonical pixel bytes (RGB, row-major, first row first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BlobHash(pub [u8; 32]);

/// Reads what the derived `Serialize` writes (a newtype around 32 bytes as a tuple: the
/// same bytes on the wire), with one loop where serde's impl for `[u8; 32]` repeats its
/// element code 32 times: 1 KB of a board's flash.
impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hash;
        struct Bytes;
        impl<'de> Visitor<'de> for Hash {
            type Value = BlobHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a blob hash")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<BlobHash, D::Error> {
                inner.deserialize_tuple(32, Bytes)
            }
        }
        impl<'de> Visitor<'de> for Bytes {
            type Value = BlobHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BlobHash, A::Error> {
                let mut out = [0; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(BlobHash(out))
            }
        }
        deserializer.deserialize_newtype_struct("BlobHash", Hash)
    }
}

impl BlobHash {
    /// The address of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(Sha256::digest(bytes).into())
    }

    /// Whether `bytes` really are the content this hash names.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        Self::of(bytes) == *self
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde derives for the same newtype, to check the hand-written reader against.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Derived(pub [u8; 32]);

    #[test]
    fn a_hash_reads_back_as_serde_derives_it_in_postcard_and_json() {
        let hash = BlobHash::of(b"pixels");
        let wire = postcard::to_allocvec(&hash).unwrap();
        assert_eq!(wire, postcard::to_allocvec(&Derived(hash.0)).unwrap());
        assert_eq!(postcard::from_bytes::<BlobHash>(&wire).unwrap(), hash);
        assert!(postcard::from_bytes::<BlobHash>(&wire[..31]).is_err(), "a short hash is refused");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<BlobHash>(&json).unwrap(), hash);
        assert_eq!(serde_json::from_str::<Derived>(&json).unwrap(), Derived(hash.0));
        assert!(serde_json::from_str::<BlobHash>("[1,2,3]").is_err());
    }

    #[test]
    fn hash_is_sha256_and_detects_a_flipped_byte() {
        let h = BlobHash::of(b"abc");
        assert_eq!(alloc::format!("{h}"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(h.verifies(b"abc"));
        assert!(!h.verifies(b"abd"));
    }
}
