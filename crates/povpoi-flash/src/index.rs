//! What the index (a sequential-storage map) holds: its keys and the records of large values.

use alloc::vec::Vec;
use core::fmt;

use povpoi_core::hash::BlobHash;
use sequential_storage::map::{Key, SerializationError};

/// Longest setting key, in bytes.
pub const MAX_SETTING_KEY_LEN: usize = 64;

const TAG_STATE: u8 = 0;
const TAG_BLOB: u8 = 1;
const TAG_SETTING: u8 = 2;

/// A key of the index: `tag, len, name[len]`.
///
/// The name is held inline so that the map, which decodes the key of every item it scans,
/// does not allocate for each one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot {
    tag: u8,
    len: u8,
    /// Zero past `len`, so that the derived comparisons only see the name.
    name: [u8; MAX_SETTING_KEY_LEN],
}

impl Slot {
    fn new(tag: u8, name: &[u8]) -> Option<Slot> {
        let mut slot = Slot { tag, len: u8::try_from(name.len()).ok()?, name: [0; MAX_SETTING_KEY_LEN] };
        slot.name.get_mut(..name.len())?.copy_from_slice(name);
        Some(slot)
    }

    pub(crate) fn state() -> Slot {
        Slot { tag: TAG_STATE, len: 0, name: [0; MAX_SETTING_KEY_LEN] }
    }

    pub(crate) fn blob(hash: &BlobHash) -> Slot {
        Slot::new(TAG_BLOB, &hash.0).expect("a hash is shorter than a setting key")
    }

    /// `None` when the key is longer than [`MAX_SETTING_KEY_LEN`].
    pub(crate) fn setting(key: &str) -> Option<Slot> {
        Slot::new(TAG_SETTING, key.as_bytes())
    }

    pub(crate) fn is_state(&self) -> bool {
        self.tag == TAG_STATE
    }

    pub(crate) fn is_setting(&self) -> bool {
        self.tag == TAG_SETTING
    }

    pub(crate) fn as_blob(&self) -> Option<BlobHash> {
        match self.tag {
            TAG_BLOB => self.name[..usize::from(self.len)].try_into().ok().map(BlobHash),
            _ => None,
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + usize::from(self.len)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot({}, {:02x?})", self.tag, &self.name[..usize::from(self.len)])
    }
}

impl Key for Slot {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let out = buffer.get_mut(..self.encoded_len()).ok_or(SerializationError::BufferTooSmall)?;
        out[0] = self.tag;
        out[1] = self.len;
        out[2..].copy_from_slice(&self.name[..usize::from(self.len)]);
        Ok(out.len())
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        let len = Self::get_len(buffer)?;
        let name = buffer.get(2..len).ok_or(SerializationError::BufferTooSmall)?;
        // Any tag decodes: an item a later version added must not stop this one's scans.
        let slot = Slot::new(buffer[0], name).ok_or(SerializationError::InvalidFormat)?;
        Ok((slot, len))
    }

    fn get_len(buffer: &[u8]) -> Result<usize, SerializationError> {
        let len = usize::from(*buffer.get(1).ok_or(SerializationError::BufferTooSmall)?);
        if len > MAX_SETTING_KEY_LEN {
            return Err(SerializationError::InvalidFormat);
        }
        Ok(2 + len)
    }
}

/// Where a large value (the snapshot or a blob) lies: written last, it commits the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// Order of commits, across all records: picks where allocation resumes after a restart
    /// and which blob has gone longest without moving.
    pub(crate) seq: u64,
    /// The value's length in bytes.
    pub(crate) len: u32,
    /// SHA-256 of the value.
    pub(crate) sha256: [u8; 32],
    /// The data sectors holding the value in order, as indices into the data area; the last
    /// one holds the tail, padded with 0xFF.
    pub(crate) sectors: Vec<u16>,
}

const RECORD_HEAD: usize = 8 + 4 + 32;

impl Record {
    /// `seq u64 LE | len u32 LE | sha256 [32] | sectors u16 LE × ceil(len / sector)`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.sectors.len()));
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        for s in &self.sectors {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    pub(crate) fn encoded_len(sectors: usize) -> usize {
        RECORD_HEAD + 2 * sectors
    }

    /// `None` unless `bytes` are a record whose sector count matches its length.
    pub(crate) fn decode(bytes: &[u8], sector_size: u32) -> Option<Record> {
        let (head, list) = bytes.split_at_checked(RECORD_HEAD)?;
        let len = u32::from_le_bytes(head[8..12].try_into().ok()?);
        if list.len() != 2 * len.div_ceil(sector_size) as usize {
            return None;
        }
        Some(Record {
            seq: u64::from_le_bytes(head[..8].try_into().ok()?),
            len,
            sha256: head[12..].try_into().ok()?,
            sectors: list.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stay_apart() {
        let keys = [Slot::state(), Slot::blob(&BlobHash([7; 32])), Slot::setting("wifi.ssid").unwrap()];
        for key in &keys {
            let mut buf = [0xAA; 80];
            let n = key.serialize_into(&mut buf).unwrap();
            assert_eq!(n, key.encoded_len());
            assert_eq!(Slot::deserialize_from(&buf).unwrap(), (key.clone(), n));
        }
        assert_eq!(keys[1].as_blob(), Some(BlobHash([7; 32])));
        assert_eq!(keys[2].as_blob(), None);
        assert!(Slot::setting(&"x".repeat(MAX_SETTING_KEY_LEN + 1)).is_none());
    }

    #[test]
    fn a_record_with_a_sector_list_that_does_not_match_its_length_is_refused() {
        let record = Record { seq: 9, len: 4097, sha256: [3; 32], sectors: alloc::vec![4, 700] };
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes, 4096), Some(record));
        assert_eq!(Record::decode(&bytes[..bytes.len() - 2], 4096), None);
        assert_eq!(Record::decode(&bytes, 8192), None);
    }
}
