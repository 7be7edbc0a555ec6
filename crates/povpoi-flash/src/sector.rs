//! The header at the start of every data sector: which value's chunk the sector holds.

use sha2::{Digest, Sha256};

/// Bytes of a sector header; the chunk's payload follows it.
pub const HEADER_LEN: usize = 96;

const MAGIC: [u8; 4] = *b"PPF1";
/// The header bytes its checksum covers.
const CHECKED: usize = HEADER_LEN - 4;

/// `next` of a value's last chunk.
pub(crate) const NO_NEXT: u16 = u16::MAX;

/// What a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    State = 0,
    Blob = 1,
    Settings = 2,
}

/// A sector's header: chunk `index` of `count` of the value `(kind, id)` saved as `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    /// A blob's hash; zeros for the snapshot and the settings.
    pub(crate) id: [u8; 32],
    /// Number of the save: no two saves share one, a later save has a larger one.
    pub(crate) seq: u64,
    /// The whole value's length in bytes.
    pub(crate) len: u32,
    pub(crate) index: u16,
    pub(crate) count: u16,
    /// The sector holding chunk `index + 1`, or [`NO_NEXT`].
    pub(crate) next: u16,
    /// SHA-256 of the whole value.
    pub(crate) sha256: [u8; 32],
}

/// Chunks of a value of `len` bytes with `payload` bytes per sector: at least one, so
/// that an empty value has a header too.
pub(crate) fn chunks(len: usize, payload: usize) -> usize {
    len.div_ceil(payload).max(1)
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(bytes);
    [digest[0], digest[1], digest[2], digest[3]]
}

impl Header {
    /// `magic "PPF1" | kind u8 | 0 u8 ×3 | id [32] | seq u64 | len u32 | index u16 |
    /// count u16 | next u16 | 0 u16 | sha256 [32] | first 4 bytes of SHA-256(bytes 0..92)`,
    /// integers little-endian.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.kind as u8;
        out[8..40].copy_from_slice(&self.id);
        out[40..48].copy_from_slice(&self.seq.to_le_bytes());
        out[48..52].copy_from_slice(&self.len.to_le_bytes());
        out[52..54].copy_from_slice(&self.index.to_le_bytes());
        out[54..56].copy_from_slice(&self.count.to_le_bytes());
        out[56..58].copy_from_slice(&self.next.to_le_bytes());
        out[60..92].copy_from_slice(&self.sha256);
        let sum = checksum(&out[..CHECKED]);
        out[CHECKED..].copy_from_slice(&sum);
        out
    }

    /// The header in `bytes`, if they hold a sound one for sectors of `payload` bytes.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN], payload: usize) -> Option<Header> {
        if bytes[..4] != MAGIC || bytes[CHECKED..] != checksum(&bytes[..CHECKED]) {
            return None;
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let header = Header {
            kind: match bytes[4] {
                0 => Kind::State,
                1 => Kind::Blob,
                2 => Kind::Settings,
                _ => return None,
            },
            id: bytes[8..40].try_into().ok()?,
            seq: u64::from_le_bytes(bytes[40..48].try_into().ok()?),
            len: u32::from_le_bytes(bytes[48..52].try_into().ok()?),
            index: u16_at(52),
            count: u16_at(54),
            next: u16_at(56),
            sha256: bytes[60..92].try_into().ok()?,
        };
        let sound = header.index < header.count
            && usize::from(header.count) == chunks(header.len as usize, payload)
            && (header.next == NO_NEXT) == (header.index + 1 == header.count);
        sound.then_some(header)
    }

    /// Whether `other` is a chunk of the same save of the same value.
    pub(crate) fn same_value(&self, other: &Header) -> bool {
        (self.kind, self.id, self.seq, self.len, self.count, self.sha256)
            == (other.kind, other.id, other.seq, other.len, other.count, other.sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header { kind: Kind::Blob, id: [7; 32], seq: 1 << 40, len: 8001, index: 1, count: 3, next: 12, sha256: [9; 32] }
    }

    #[test]
    fn a_header_reads_back_and_any_flipped_bit_or_erased_byte_voids_it() {
        let bytes = header().encode();
        assert_eq!(Header::decode(&bytes, 4000), Some(header()));
        for bit in 0..HEADER_LEN * 8 {
            let mut torn = bytes;
            torn[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Header::decode(&torn, 4000), None, "bit {bit}");
        }
        assert_eq!(Header::decode(&[0; HEADER_LEN], 4000), None);
        assert_eq!(Header::decode(&[0xFF; HEADER_LEN], 4000), None);
    }

    #[test]
    fn a_header_whose_count_does_not_match_its_length_is_refused() {
        assert_eq!(Header::decode(&header().encode(), 2000), None);
        let last = Header { index: 2, next: 5, ..header() };
        assert_eq!(Header::decode(&last.encode(), 4000), None);
        let empty = Header { len: 0, index: 0, count: 1, next: NO_NEXT, ..header() };
        assert_eq!(Header::decode(&empty.encode(), 4000), Some(empty));
    }
}
