//! The peers a poi knows: found by mDNS, added by address, or met when they called.
//!
//! A peer is online while it has been seen (announced, answered or called us) within the
//! timeout; offline ones stay listed so the status shows when each was last seen. Times are
//! the platform's: `now_ms` since the epoch (shown to people), `mono_us` from a monotonic
//! clock (used for every period).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use povpoi_core::device::DeviceId;
use povpoi_peer::advert::Heard;
use povpoi_peer::session::Ended;
use serde::Serialize;

/// Most peers remembered; the least recently seen offline one goes first.
pub const MAX_PEERS: usize = 64;

/// A poi seen on the network: in an mDNS announcement, at an address given by hand, or
/// calling this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The peer's id.
    pub device_id: DeviceId,
    /// The peer's name (its default name if it advertised none).
    pub device_name: String,
    /// The peer's sync group (empty if it advertised none).
    pub sync_group: String,
    /// The sync protocol version the peer speaks.
    pub protocol: u16,
    /// The peer's library digest (empty if it advertised none).
    pub digest: String,
    /// Where the peer's HTTP API is.
    pub addr: SocketAddr,
}

impl Sighting {
    /// A peer as its mDNS TXT records describe it (`heard`), its API at `addr`.
    pub fn heard(heard: Heard, addr: SocketAddr) -> Sighting {
        let Heard { device_id, device_name, sync_group, protocol, digest } = heard;
        Sighting { device_id, device_name, sync_group, protocol, digest, addr }
    }

    /// A peer that called this poi from `from`, saying who it is (`device`, `group`,
    /// `protocol`) in its session's first message: its API is at `from` on the port its
    /// `x-povpoi-port` header names (`port`; without one it cannot be called back, and
    /// this is `None`). The name and digest the table already has for it (`known`) are
    /// kept, since a call does not carry them.
    pub fn caller(
        known: Option<&Peer>,
        device: DeviceId,
        group: &str,
        protocol: u16,
        from: IpAddr,
        port: Option<&str>,
    ) -> Option<Sighting> {
        let addr = SocketAddr::new(from, port?.parse().ok()?);
        Some(Sighting {
            device_id: device,
            device_name: known.map_or_else(|| device.default_name(), |p| p.device_name.clone()),
            sync_group: group.into(),
            protocol,
            digest: known.map(|p| p.digest.clone()).unwrap_or_default(),
            addr,
        })
    }
}

/// First pause of auto-sync with a peer that refused this poi (another pairing key, or a
/// key taken a moment later): asked again soon, then less and less often.
pub const REFUSED_PAUSE_US: u64 = 2_000_000;
/// First pause with a peer that answered too slowly.
pub const STALLED_PAUSE_US: u64 = 5_000_000;
/// First pause with a peer whose session broke off otherwise (an error answer: a board
/// busy with its own session, a full disk; or an answer that could not be read): not asked
/// again at once for a change that piles up meanwhile.
pub const FAILED_PAUSE_US: u64 = 2_000_000;

/// A session this poi started, as it ended ([`Peers::session_ended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionEnd {
    /// The peer.
    pub peer: DeviceId,
    /// The address the session ran at.
    pub addr: SocketAddr,
    /// When it began, monotonic µs.
    pub began_us: u64,
    /// How it ended.
    pub ended: Ended,
}

/// What the end of a session did to its peer's entry ([`Peers::session_ended`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aftermath {
    /// How long auto-sync leaves it alone, µs (0: not at all).
    pub paused_us: u64,
    /// It just went offline.
    pub went_offline: bool,
}

/// The answer of `GET /api/sync/status` that a prober reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusAnswer {
    device_id: String,
    device_name: String,
    sync_group: String,
    #[serde(default)]
    protocol: u16,
    #[serde(default)]
    library_digest: String,
}

/// Why a `GET /api/sync/status` answer does not say which poi answered.
#[derive(Debug)]
pub enum NotAPoi {
    /// It is not the JSON a poi answers.
    Unreadable(serde_json::Error),
    /// Its device id is not one.
    BadDeviceId(String),
}

impl core::fmt::Display for NotAPoi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NotAPoi::Unreadable(e) => write!(f, "not a povpoi node: {e}"),
            NotAPoi::BadDeviceId(e) => write!(f, "bad deviceId: {e}"),
        }
    }
}

impl core::error::Error for NotAPoi {}

/// Who answered a `GET /api/sync/status` at `addr`: how a poi given an address by hand (or
/// met by mDNS) is probed.
pub fn read_sync_status(body: &[u8], addr: SocketAddr) -> Result<Sighting, NotAPoi> {
    let info: StatusAnswer = serde_json::from_slice(body).map_err(NotAPoi::Unreadable)?;
    let device_id: DeviceId = info.device_id.parse().map_err(|e| NotAPoi::BadDeviceId(alloc::format!("{e}")))?;
    Ok(Sighting {
        device_id,
        device_name: info.device_name,
        sync_group: info.sync_group,
        protocol: info.protocol,
        digest: info.library_digest,
        addr,
    })
}

/// How a peer was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// mDNS announcement.
    Mdns,
    /// An address the user gave.
    Manual,
    /// It called this poi with a sync request.
    Contact,
}

/// One known peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its device id.
    pub device_id: DeviceId,
    /// Its name.
    pub device_name: String,
    /// Its sync group, as it last said.
    pub sync_group: String,
    /// Its sync protocol version.
    pub protocol: u16,
    /// Its library digest as last advertised (empty if unknown).
    pub digest: String,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    /// When it was last seen, ms since the epoch.
    pub last_seen_ms: u64,
    /// Monotonic time of the same, µs.
    last_seen_us: u64,
    /// Whether it is seen within the timeout.
    pub online: bool,
    /// How it was found.
    pub source: Source,
    /// Until when (monotonic µs) auto-sync leaves it alone: its last session was refused
    /// (another key, say), got no answer in time or broke off ([`Peers::session_ended`]).
    refused_until: Option<u64>,
    /// Sessions in a row that were refused, got no answer in time or broke off: the back-off grows
    /// with them.
    setbacks: u32,
    /// When (monotonic µs) it last called this poi in and passed its checks.
    contact_at: Option<u64>,
    /// The address where it last finished a session as itself (with the key, when the
    /// group has one); an mDNS advert cannot move it elsewhere while it is online there.
    confirmed: Option<SocketAddr>,
}

impl Peer {
    /// Whether auto-sync leaves it alone at monotonic time `mono_us` (see [`Peers::back_off`]).
    pub fn held_back(&self, mono_us: u64) -> bool {
        self.refused_until.is_some_and(|until| until > mono_us)
    }
}

/// What changed in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A peer became online.
    Up(DeviceId),
    /// Nothing visible.
    None,
}

/// The peer table, by device id. A sorted `Vec`, not a map: it holds at most [`MAX_PEERS`],
/// and on a board every map type instantiated costs kilobytes of flash.
#[derive(Debug, Default)]
pub struct Peers(Vec<Peer>);

impl Peers {
    fn get(&self, id: &DeviceId) -> Option<&Peer> {
        self.0.binary_search_by_key(id, |p| p.device_id).ok().map(|i| &self.0[i])
    }

    fn get_mut(&mut self, id: &DeviceId) -> Option<&mut Peer> {
        self.0.binary_search_by_key(id, |p| p.device_id).ok().map(|i| &mut self.0[i])
    }

    fn remove(&mut self, id: &DeviceId) -> Option<Peer> {
        self.0.binary_search_by_key(id, |p| p.device_id).ok().map(|i| self.0.remove(i))
    }

    fn insert(&mut self, peer: Peer) {
        match self.0.binary_search_by_key(&peer.device_id, |p| p.device_id) {
            Ok(i) => self.0[i] = peer,
            Err(i) => self.0.insert(i, peer),
        }
    }

    /// Records that a peer was seen now; says whether it just came online.
    pub fn saw(&mut self, seen: &Sighting, source: Source, now_ms: u64, mono_us: u64) -> Change {
        let known = self.get(&seen.device_id);
        let was_online = known.is_some_and(|p| p.online);
        // Anyone on the LAN can advertise any device id: an advert pointing an online,
        // confirmed peer somewhere else is ignored. If the peer really moved, its old
        // address stops answering, it goes offline, and the next advert is taken.
        if source == Source::Mdns
            && known.is_some_and(|p| p.online && p.confirmed == Some(p.addr) && p.addr != seen.addr)
        {
            return Change::None;
        }
        // A peer that called in passed this poi's key check (or neither has a key): they
        // agree now, whatever refused before.
        let refused_until = known.and_then(|p| p.refused_until).filter(|_| source != Source::Contact);
        let (setbacks, contact_at) = match source {
            Source::Contact => (0, Some(mono_us)),
            _ => (known.map_or(0, |p| p.setbacks), known.and_then(|p| p.contact_at)),
        };
        let confirmed = known.and_then(|p| p.confirmed);
        // A full table takes no newcomers: a flood of adverts must not grow it without end.
        if known.is_none() && self.0.len() >= MAX_PEERS {
            let oldest = self.0.iter().filter(|p| !p.online).min_by_key(|p| p.last_seen_us).map(|p| p.device_id);
            match oldest {
                Some(id) => self.remove(&id),
                None => return Change::None,
            };
        }
        let (source, addr) = match self.get(&seen.device_id) {
            // An address the user gave stays as given: it is how this poi reaches that one.
            Some(old) if old.source == Source::Manual && source != Source::Manual => (Source::Manual, old.addr),
            _ => (source, seen.addr),
        };
        self.insert(Peer {
            device_id: seen.device_id,
            device_name: seen.device_name.clone(),
            sync_group: seen.sync_group.clone(),
            protocol: seen.protocol,
            digest: seen.digest.clone(),
            addr,
            last_seen_ms: now_ms,
            last_seen_us: mono_us,
            online: true,
            source,
            refused_until,
            setbacks,
            contact_at,
            confirmed,
        });
        if was_online { Change::None } else { Change::Up(seen.device_id) }
    }

    /// Marks peers unseen for longer than `timeout_us` offline; returns those that just went.
    pub fn expire(&mut self, timeout_us: u64, mono_us: u64) -> Vec<DeviceId> {
        let mut gone = Vec::new();
        for peer in &mut self.0 {
            if peer.online && mono_us.saturating_sub(peer.last_seen_us) > timeout_us {
                peer.online = false;
                gone.push(peer.device_id);
            }
        }
        gone
    }

    /// Marks one peer offline now (it said goodbye or stopped answering); true if it was online.
    pub fn offline(&mut self, id: DeviceId) -> bool {
        self.get_mut(&id).is_some_and(|p| core::mem::replace(&mut p.online, false))
    }

    /// Notes that the peer finished a session at `addr` as itself: it is seen now, and
    /// that address is the one adverts cannot move it from.
    pub fn confirm(&mut self, id: DeviceId, addr: SocketAddr, now_ms: u64, mono_us: u64) {
        if let Some(peer) = self.get_mut(&id).filter(|p| p.online) {
            peer.last_seen_us = mono_us;
            peer.last_seen_ms = now_ms;
            peer.setbacks = 0;
            if peer.addr == addr {
                peer.confirmed = Some(addr);
            }
        }
    }

    /// Notes that the online peers at `ip` were heard from now (a valid show clock datagram):
    /// a peer that keeps the clock in step stays online between sessions.
    pub fn heard_from(&mut self, ip: core::net::IpAddr, now_ms: u64, mono_us: u64) {
        for peer in self.0.iter_mut().filter(|p| p.online && p.addr.ip() == ip) {
            peer.last_seen_us = mono_us;
            peer.last_seen_ms = now_ms;
        }
    }

    /// Whether an online peer at `addr` was seen within `period_us`.
    pub fn seen_within(&self, addr: SocketAddr, period_us: u64, mono_us: u64) -> bool {
        self.0.iter().any(|p| p.online && p.addr == addr && mono_us.saturating_sub(p.last_seen_us) < period_us)
    }

    /// Records the library digest a peer is known to have now.
    pub fn set_digest(&mut self, id: DeviceId, digest: String) {
        if let Some(peer) = self.get_mut(&id) {
            peer.digest = digest;
        }
    }

    /// Drops a peer from the table.
    pub fn forget(&mut self, id: DeviceId) -> bool {
        self.remove(&id).is_some()
    }

    /// Every known peer, by device id.
    pub fn list(&self) -> impl Iterator<Item = &Peer> {
        self.0.iter()
    }

    /// Online peers of `group` speaking `protocol`, whether or not auto-sync holds one back
    /// ([`Peer::held_back`]): the show clock probes and hears them all.
    pub fn online_in(&self, group: &str, protocol: u16) -> impl Iterator<Item = &Peer> {
        self.0.iter().filter(move |p| p.online && p.sync_group == group && p.protocol == protocol)
    }

    /// Leaves a peer out of auto-sync for a while after a session begun at `since_us` was
    /// refused (another key, say), got no answer in time or broke off: `first_us`, doubling with each
    /// setback in a row up to `longest_us`. A peer is still tried now and then, and one that
    /// called in since (so it takes this poi now) is not held back. Returns the period, µs.
    pub fn back_off(&mut self, id: DeviceId, since_us: u64, first_us: u64, longest_us: u64, mono_us: u64) -> u64 {
        let Some(peer) = self.get_mut(&id) else { return 0 };
        if peer.contact_at.is_some_and(|at| at >= since_us) {
            return 0;
        }
        peer.setbacks = peer.setbacks.saturating_add(1);
        let period = first_us.saturating_mul(2u64.saturating_pow(peer.setbacks - 1).min(1 << 10)).min(longest_us);
        peer.refused_until = Some(mono_us.saturating_add(period));
        period
    }

    /// Auto-sync's rule after a session ended: a full one confirms the peer at its address;
    /// a refusal, a stall or a failure leave it out of auto-sync for a while
    /// ([`Peers::back_off`]: [`REFUSED_PAUSE_US`], [`STALLED_PAUSE_US`] or
    /// [`FAILED_PAUSE_US`] first, doubling up to `longest_us`, the peer timeout); nothing
    /// answering there marks it offline until it is seen again.
    pub fn session_ended(&mut self, end: SessionEnd, longest_us: u64, now_ms: u64, mono_us: u64) -> Aftermath {
        let SessionEnd { peer: id, addr, began_us, ended } = end;
        let first_us = match ended {
            Ended::Synced => {
                self.confirm(id, addr, now_ms, mono_us);
                return Aftermath::default();
            }
            Ended::Unreachable => return Aftermath { paused_us: 0, went_offline: self.offline(id) },
            Ended::Refused => REFUSED_PAUSE_US,
            Ended::Stalled => STALLED_PAUSE_US,
            Ended::Failed => FAILED_PAUSE_US,
        };
        Aftermath { paused_us: self.back_off(id, began_us, first_us, longest_us, mono_us), went_offline: false }
    }

    /// Forgets every refusal: this poi's key or group changed, so peers may take it now.
    pub fn clear_refusals(&mut self) {
        for peer in &mut self.0 {
            peer.refused_until = None;
            peer.setbacks = 0;
        }
    }

    /// A peer named by device id, address (`ip` or `ip:port`) or name.
    pub fn find(&self, name: &str) -> Option<&Peer> {
        let by_id = name.parse::<DeviceId>().ok();
        let peers = || self.0.iter();
        peers()
            .find(|p| Some(p.device_id) == by_id)
            .or_else(|| peers().find(|p| p.addr.to_string() == name || p.addr.ip().to_string() == name))
            .or_else(|| peers().find(|p| p.device_name == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_session_a_peer_is_paused_offline_or_confirmed_by_how_it_ended() {
        let addr = SocketAddr::from(([10, 0, 0, 2], 8080));
        let peer = DeviceId([2, 0, 0, 0, 0, 2]);
        let seen = Sighting {
            device_id: peer,
            device_name: "poi 2".into(),
            sync_group: "g".into(),
            protocol: 1,
            digest: String::new(),
            addr,
        };
        let mut peers = Peers::default();
        peers.saw(&seen, Source::Mdns, 1, 0);
        let longest = 120_000_000;
        let end = |peers: &mut Peers, ended, mono_us| {
            let end = SessionEnd { peer, addr, began_us: mono_us, ended };
            peers.session_ended(end, longest, 1, mono_us)
        };
        let paused = |paused_us| Aftermath { paused_us, went_offline: false };
        assert_eq!(end(&mut peers, Ended::Refused, 10), paused(REFUSED_PAUSE_US));
        assert!(peers.list().next().unwrap().held_back(10 + REFUSED_PAUSE_US - 1));
        assert!(!peers.list().next().unwrap().held_back(10 + REFUSED_PAUSE_US));
        // Setbacks in a row double the pause, whatever their kind, up to the longest.
        assert_eq!(end(&mut peers, Ended::Stalled, 20), paused(2 * STALLED_PAUSE_US));
        assert_eq!(end(&mut peers, Ended::Failed, 30), paused(4 * FAILED_PAUSE_US));
        for _ in 0..10 {
            end(&mut peers, Ended::Stalled, 40);
        }
        assert_eq!(end(&mut peers, Ended::Stalled, 50), paused(longest));
        // A full session starts the count over.
        assert_eq!(end(&mut peers, Ended::Synced, 60), Aftermath::default());
        assert_eq!(end(&mut peers, Ended::Failed, 70), paused(FAILED_PAUSE_US));
        assert_eq!(end(&mut peers, Ended::Synced, 80), Aftermath::default());
        assert_eq!(end(&mut peers, Ended::Stalled, 90), paused(STALLED_PAUSE_US));
        // Nothing answering: offline (once), not paused; seen again, it is back.
        let gone = Aftermath { paused_us: 0, went_offline: true };
        assert_eq!(end(&mut peers, Ended::Unreachable, 100), gone);
        assert_eq!(end(&mut peers, Ended::Unreachable, 110), Aftermath::default());
        assert_eq!(peers.online_in("g", 1).count(), 0);
        assert_eq!(peers.saw(&seen, Source::Mdns, 2, 120), Change::Up(peer));
    }
}
