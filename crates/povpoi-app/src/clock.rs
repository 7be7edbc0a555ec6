//! The show clock as a poi runs it, whatever moves its datagrams: the core's [`ShowClock`],
//! what each datagram does to it, which probes are due, and the counters `/api/clock` shows.
//! The platform only reads its own clock, sends and receives UDP on the HTTP port number.
//!
//! The rules live in [`povpoi_core::show`]; this module adds what a poi on a hostile LAN
//! must also do: answer only peers of the group, at a bounded rate per source.

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use povpoi_core::device::DeviceId;
use povpoi_core::show::packet::{self, MAX_DATAGRAM};
use povpoi_core::show::{ClockKey, ClockStatus, Ignored, Packet, PacketError, ShowClock, Standing, Step};
use serde::Serialize;

/// Probes answered per second and per source address at most (a poi sends a few): a
/// spoofed flood must not turn this poi into a reflector.
pub const ANSWERS_PER_SOURCE_S: u64 = 20;
/// Sources whose answer budget is remembered.
pub const MAX_SOURCES: usize = 1_024;
/// IP and UDP headers of an IPv4 datagram, counted in the byte counters.
const HEADERS: u64 = 28;
/// Room for one received datagram: anything longer is dropped as oversized.
pub const RECEIVE_BUFFER: usize = 2 * MAX_DATAGRAM;

/// Datagrams and what became of them, for `/api/clock` and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockCounters {
    /// Probes sent.
    pub probes_sent: u64,
    /// Probes of peers answered.
    pub probes_answered: u64,
    /// Answers that moved (or confirmed) the clock.
    pub answers_taken: u64,
    /// Datagrams sent, bytes with IP and UDP headers (IPv4: 28).
    pub bytes_sent: u64,
    /// Datagrams received, bytes with headers.
    pub bytes_received: u64,
    /// Dropped: longer than a clock datagram can be.
    pub dropped_oversized: u64,
    /// Dropped: not a clock datagram of this version.
    pub dropped_malformed: u64,
    /// Dropped: the pairing key's tag missing or wrong.
    pub dropped_unauthenticated: u64,
    /// Dropped: an answer to no probe awaited (late, replayed or forged).
    pub dropped_unexpected: u64,
    /// Dropped: times that cannot be real.
    pub dropped_implausible: u64,
    /// Probes not answered: their source sent too many.
    pub dropped_rate_limited: u64,
    /// Probes not answered: answered already (replayed), or our own.
    pub dropped_replayed: u64,
    /// Probes not answered: not from the address of an online peer of the group.
    pub dropped_stranger: u64,
}

/// The answer budget of each source address: a token bucket of two seconds' worth. A `Vec`
/// searched in order, not a map: a board's flash pays for every map type instantiated.
#[derive(Debug, Default)]
struct RateLimit(Vec<(IpAddr, u64, u64)>);

impl RateLimit {
    /// Tokens are counted in millionths, so the bucket needs no floating point and refills
    /// exactly: [`ANSWERS_PER_SOURCE_S`] millionths per µs.
    const ONE: u64 = 1_000_000;
    const FULL: u64 = 2 * ANSWERS_PER_SOURCE_S * Self::ONE;

    fn allow(&mut self, ip: IpAddr, now_us: u64) -> bool {
        let i = match self.0.iter().position(|(known, ..)| *known == ip) {
            Some(i) => i,
            None => {
                // Forget the source heard from longest ago, not everyone's budget.
                if self.0.len() >= MAX_SOURCES
                    && let Some(oldest) = self.0.iter().enumerate().min_by_key(|(_, (_, _, at))| *at).map(|(i, _)| i)
                {
                    self.0.swap_remove(oldest);
                }
                self.0.push((ip, Self::FULL, now_us));
                self.0.len() - 1
            }
        };
        let (_, tokens, at) = &mut self.0[i];
        let earned = now_us.saturating_sub(*at).saturating_mul(ANSWERS_PER_SOURCE_S);
        *tokens = tokens.saturating_add(earned).min(Self::FULL);
        *at = now_us.max(*at);
        if *tokens >= Self::ONE {
            *tokens -= Self::ONE;
            true
        } else {
            false
        }
    }
}

/// How a standing is written in the API: `alone`, `converging`, `inStep`.
pub fn standing_name(standing: Standing) -> &'static str {
    match standing {
        Standing::Alone => "alone",
        Standing::Converging => "converging",
        Standing::InStep => "inStep",
    }
}

/// One datagram as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub from: SocketAddr,
    /// The own clock when it arrived, µs.
    pub at: u64,
    /// Whether it came from the address of an online peer of the group.
    pub known: bool,
}

/// What a datagram asks of the platform.
#[derive(Debug, Default)]
pub struct Taken {
    /// An answer to send back to where the datagram came from.
    pub reply: Option<Vec<u8>>,
    /// Steps the clock took on it (to log and announce).
    pub steps: Vec<Step>,
}

/// The show clock of one poi with its datagram rules.
pub struct ClockService {
    clock: ShowClock,
    me: DeviceId,
    founded: u32,
    limit: RateLimit,
    /// What became of the datagrams.
    pub counters: ClockCounters,
}

impl ClockService {
    /// A clock founding timeline `founded` at own time `own`; `boot` tells this run of the
    /// poi from earlier ones. Both random, as the core asks.
    pub fn new(me: DeviceId, boot: u32, founded: u32, own: u64) -> ClockService {
        ClockService {
            clock: ShowClock::new(me, boot, founded, own),
            me,
            founded,
            limit: RateLimit::default(),
            counters: ClockCounters::default(),
        }
    }

    /// The core's clock.
    pub fn clock(&self) -> &ShowClock {
        &self.clock
    }

    /// The core's clock, to change.
    pub fn clock_mut(&mut self) -> &mut ShowClock {
        &mut self.clock
    }

    /// Show time at own time `own`, µs.
    pub fn now(&self, own: u64) -> u64 {
        self.clock.now(own)
    }

    /// Where the clock stands.
    pub fn status(&self, own: u64) -> ClockStatus {
        self.clock.status(own)
    }

    /// The timeline this poi founded when it started.
    pub fn founded(&self) -> u32 {
        self.founded
    }

    /// Tells the clock which peers to follow (the group's online peers).
    pub fn set_peers(&mut self, peers: &[DeviceId], own: u64) {
        self.clock.set_peers(peers, own);
    }

    /// The probes due now, encoded, each with the peer it goes to; `nonce` gives each a
    /// fresh random nonce.
    pub fn probes(
        &mut self,
        own: u64,
        key: Option<&ClockKey>,
        mut nonce: impl FnMut() -> u32,
    ) -> Vec<(DeviceId, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((peer, probe)) = self.clock.probe(own, nonce()) {
            out.push((peer, packet::encode(&probe, key, peer)));
        }
        out
    }

    /// Counts a datagram sent (`len` bytes of payload).
    pub fn sent(&mut self, len: usize, probe: bool) {
        if probe {
            self.counters.probes_sent += 1;
        } else {
            self.counters.probes_answered += 1;
        }
        self.counters.bytes_sent += len as u64 + HEADERS;
    }

    /// When the next probe is due (own time), if any.
    pub fn next_due(&self, own: u64) -> Option<u64> {
        self.clock.next_due(own)
    }

    /// A step the clock takes on its own now (a planned one coming due), if any.
    pub fn poll(&mut self, own: u64) -> Option<Step> {
        self.clock.poll(own)
    }

    /// Handles one datagram; `own` is the own clock now, `key` the group's datagram key.
    pub fn take(&mut self, d: Datagram<'_>, own: u64, key: Option<&ClockKey>) -> Taken {
        let counters = &mut self.counters;
        counters.bytes_received += d.bytes.len() as u64 + HEADERS;
        let mut taken = Taken::default();
        let packet = match packet::decode(d.bytes, key, self.me) {
            Ok(packet) => packet,
            Err(PacketError::Oversized) => {
                counters.dropped_oversized += 1;
                return taken;
            }
            Err(PacketError::Malformed) => {
                counters.dropped_malformed += 1;
                return taken;
            }
            Err(PacketError::Unauthenticated) => {
                counters.dropped_unauthenticated += 1;
                return taken;
            }
        };
        match packet {
            Packet::Probe { from: peer, .. } => {
                // Only a peer is answered, so a forged source address cannot aim answers at a
                // stranger; a peer not listed yet is answered once it is.
                if !d.known {
                    counters.dropped_stranger += 1;
                } else if !self.limit.allow(d.from.ip(), own) {
                    counters.dropped_rate_limited += 1;
                } else if let Some(answer) = self.clock.answer(&packet, d.at, own) {
                    taken.reply = Some(packet::encode(&answer, key, peer));
                } else {
                    counters.dropped_replayed += 1;
                }
            }
            Packet::Answer { .. } => match self.clock.take_answer(&packet, d.at, own) {
                Ok(steps) => {
                    counters.answers_taken += 1;
                    taken.steps = steps;
                }
                Err(Ignored::Unexpected) => counters.dropped_unexpected += 1,
                Err(Ignored::Implausible) => counters.dropped_implausible += 1,
            },
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 80)
    }

    #[test]
    fn two_clocks_exchange_probes_and_answers_and_strangers_get_nothing() {
        let (a, b) = (DeviceId([2, 0, 0, 0, 0, 1]), DeviceId([2, 0, 0, 0, 0, 2]));
        let mut one = ClockService::new(a, 1, 0x1111, 5_000_000);
        let mut two = ClockService::new(b, 2, 0x2222, 9_000_000);
        one.set_peers(&[b], 5_000_000);
        two.set_peers(&[a], 9_000_000);
        let mut n = 0;
        let probes = one.probes(5_000_000, None, || {
            n += 1;
            n
        });
        assert!(!probes.is_empty(), "a new clock probes its peer at once");
        let (to, bytes) = &probes[0];
        assert_eq!(*to, b);
        let stranger = two.take(Datagram { bytes, from: addr(1), at: 9_000_100, known: false }, 9_000_100, None);
        assert!(stranger.reply.is_none());
        assert_eq!(two.counters.dropped_stranger, 1);
        let taken = two.take(Datagram { bytes, from: addr(1), at: 9_000_100, known: true }, 9_000_150, None);
        let reply = taken.reply.expect("a peer's probe is answered");
        let back = one.take(Datagram { bytes: &reply, from: addr(2), at: 5_000_300, known: true }, 5_000_300, None);
        assert_eq!(one.counters.answers_taken, 1, "{back:?}");
        let junk = one.take(Datagram { bytes: b"junk", from: addr(2), at: 5_000_400, known: true }, 5_000_400, None);
        assert!(junk.reply.is_none());
        assert_eq!(one.counters.dropped_malformed, 1);
    }

    #[test]
    fn a_source_gets_two_seconds_of_answers_then_twenty_a_second() {
        let mut limit = RateLimit::default();
        let ip = addr(9).ip();
        let burst = (0..100).filter(|_| limit.allow(ip, 0)).count();
        assert_eq!(burst, 40);
        assert!(!limit.allow(ip, 0));
        assert!(limit.allow(ip, 50_000), "one more after 50 ms");
        assert!(!limit.allow(ip, 50_000));
        // Asked every 10 µs, a source still earns its 20 a second.
        let answered = (1..=100_000u64).filter(|i| limit.allow(ip, 50_000 + i * 10)).count();
        assert_eq!(answered, 20);
    }
}
