//! The show clock's datagrams: probes and answers, postcard-encoded, authenticated with the
//! group's pairing key when it has one. `docs/PROTOCOL.md` section 12 gives the bytes;
//! `tests/wire_vectors.rs` pins them.

use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::device::DeviceId;

/// Version byte that starts every datagram; another value is dropped.
pub const CLOCK_PROTOCOL: u8 = 1;
/// Longest datagram taken (a probe is about 40 bytes, an answer about 50, plus the tag).
pub const MAX_DATAGRAM: usize = 256;
/// Bytes of the truncated HMAC-SHA256 tag a keyed datagram ends with.
pub const TAG_LEN: usize = 16;

/// What a poi says of its show clock in every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Random per start of the poi: a new value means its own clock started again.
    pub boot: u32,
    /// The timeline it follows.
    pub timeline: u32,
    /// Where its show time is headed at the instant the datagram was sent, µs (its show
    /// time plus any correction still being slewed in).
    pub show: u64,
    /// Its rate correction: show time runs this much faster than its own clock, ppb.
    pub rate_ppb: i32,
    /// A step to another timeline it will make, if any.
    pub plan: Option<Plan>,
}

/// A step to another timeline, announced before it is made so every poi of the old
/// timeline makes it at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The timeline joined.
    pub target: u32,
    /// Show time (on the timeline left) at which the step is made, µs.
    pub at: u64,
    /// How far the target timeline is ahead, µs; a step forward if positive, slewed in if not.
    pub step: i64,
}

/// One datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Packet {
    /// Asks the receiver for its times.
    Probe {
        /// Sender.
        from: DeviceId,
        /// Random; the answer echoes it, and only one answer per probe is taken.
        nonce: u32,
        /// Sender's clock (a hint: only answers move a clock).
        state: Announce,
    },
    /// Answers a probe.
    Answer {
        /// Sender (the probed poi).
        from: DeviceId,
        /// The probe's nonce.
        nonce: u32,
        /// Own clock when the probe arrived, µs (NTP's t2).
        received: u64,
        /// Own-clock µs between the probe's arrival and this answer's departure (t3 - t2).
        held: u32,
        /// Sender's clock at departure.
        state: Announce,
    },
}

impl Packet {
    /// The poi that sent it.
    pub fn from(&self) -> DeviceId {
        match self {
            Packet::Probe { from, .. } | Packet::Answer { from, .. } => *from,
        }
    }
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// Longer than [`MAX_DATAGRAM`].
    Oversized,
    /// Empty, another version byte, or not a packet.
    Malformed,
    /// Keyed, and the tag is missing or wrong.
    Unauthenticated,
}

impl core::fmt::Display for PacketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PacketError::Oversized => "datagram too long",
            PacketError::Malformed => "not a clock datagram of this version",
            PacketError::Unauthenticated => "tag missing or wrong",
        })
    }
}

/// The key that authenticates a group's datagrams, derived from its pairing key.
#[derive(Clone)]
pub struct ClockKey([u8; 32]);

impl ClockKey {
    /// HKDF-SHA256 of the pairing key (salt `povpoi-clock-v1`, info `hmac-sha256 probe key\n`
    /// followed by the sync group), so a datagram of another group, or of the sync
    /// transport, never verifies here.
    pub fn derive(group_key: &[u8], group: &str) -> ClockKey {
        let mut info = Vec::from(&b"hmac-sha256 probe key\n"[..]);
        info.extend_from_slice(group.as_bytes());
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"povpoi-clock-v1"), group_key)
            .expand(&info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        ClockKey(key)
    }

    fn mac(&self, receiver: DeviceId, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&receiver.0);
        mac.update(body);
        mac
    }
}

impl core::fmt::Debug for ClockKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ClockKey(<redacted>)")
    }
}

/// The datagram carrying `packet` to `receiver`: the version byte, the postcard bytes, and
/// with a key the first [`TAG_LEN`] bytes of HMAC-SHA256(key, receiver id ‖ the rest), so
/// a datagram captured on its way to one poi is refused by every other.
pub fn encode(packet: &Packet, key: Option<&ClockKey>, receiver: DeviceId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(80);
    bytes.push(CLOCK_PROTOCOL);
    bytes.extend(postcard::to_allocvec(packet).expect("packets always encode"));
    if let Some(key) = key {
        let tag = key.mac(receiver, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
    }
    bytes
}

/// Reads a datagram addressed to `me`; with a key only an authentic one.
pub fn decode(bytes: &[u8], key: Option<&ClockKey>, me: DeviceId) -> Result<Packet, PacketError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(PacketError::Oversized);
    }
    let body = match key {
        Some(key) => {
            let cut = bytes.len().checked_sub(TAG_LEN).ok_or(PacketError::Unauthenticated)?;
            let (body, tag) = bytes.split_at(cut);
            key.mac(me, body).verify_truncated_left(tag).map_err(|_| PacketError::Unauthenticated)?;
            body
        }
        None => bytes,
    };
    match body.split_first() {
        Some((&CLOCK_PROTOCOL, rest)) => match postcard::take_from_bytes(rest) {
            Ok((packet, [])) => Ok(packet),
            _ => Err(PacketError::Malformed),
        },
        _ => Err(PacketError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DeviceId = DeviceId([2, 0, 0, 0, 0, 1]);
    const B: DeviceId = DeviceId([2, 0, 0, 0, 0, 2]);

    fn answer() -> Packet {
        let state = Announce {
            boot: 7,
            timeline: 0xdead_beef,
            show: 3_600_000_000,
            rate_ppb: -12_345,
            plan: Some(Plan { target: 9, at: 3_600_300_000, step: 1_500_000 }),
        };
        Packet::Answer { from: B, nonce: u32::MAX, received: u64::MAX / 3, held: 80, state }
    }

    #[test]
    fn datagrams_round_trip_and_stay_small() {
        let bytes = encode(&answer(), None, A);
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes, None, A), Ok(answer()));
        let key = ClockKey::derive(b"correct horse battery", "troupe");
        let keyed = encode(&answer(), Some(&key), A);
        assert_eq!(keyed.len(), bytes.len() + TAG_LEN);
        assert_eq!(decode(&keyed, Some(&key), A), Ok(answer()));
    }

    #[test]
    fn a_keyed_poi_drops_what_it_cannot_verify() {
        let key = ClockKey::derive(b"correct horse battery", "troupe");
        let keyed = encode(&answer(), Some(&key), A);
        assert_eq!(decode(&encode(&answer(), None, A), Some(&key), A), Err(PacketError::Unauthenticated));
        assert_eq!(decode(&keyed, Some(&key), B), Err(PacketError::Unauthenticated), "meant for another poi");
        let other_group = ClockKey::derive(b"correct horse battery", "other");
        assert_eq!(decode(&keyed, Some(&other_group), A), Err(PacketError::Unauthenticated));
        for cut in 0..keyed.len() {
            assert!(decode(&keyed[..cut], Some(&key), A).is_err(), "truncated to {cut}");
        }
        let mut flipped = keyed.clone();
        flipped[5] ^= 1;
        assert_eq!(decode(&flipped, Some(&key), A), Err(PacketError::Unauthenticated));
    }

    #[test]
    fn malformed_and_oversized_datagrams_are_dropped() {
        let bytes = encode(&answer(), None, A);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], None, A), Err(PacketError::Malformed), "truncated to {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, None, A), Err(PacketError::Malformed), "trailing byte");
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(decode(&version, None, A), Err(PacketError::Malformed));
        assert_eq!(decode(&[0u8; MAX_DATAGRAM + 1], None, A), Err(PacketError::Oversized));
    }
}
