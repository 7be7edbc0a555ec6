//! The peers this poi knows: found by mDNS, added by address, or met when they called.
//!
//! A peer is online while it has been seen (announced, answered or called us) within the
//! timeout; offline ones stay listed so the status shows when each was last seen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use povpoi_core::device::DeviceId;
use serde::Serialize;

use crate::discovery::Sighting;

/// Most peers remembered; the least recently seen offline one goes first.
pub const MAX_PEERS: usize = 64;

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
    /// Monotonic time of the same.
    last_seen: Instant,
    /// Whether it is seen within the timeout.
    pub online: bool,
    /// How it was found.
    pub source: Source,
    /// Until when auto-sync leaves it alone: it refused this poi (another key, say), or
    /// its last sessions got no answer (backed off).
    refused_until: Option<Instant>,
    /// Sessions in a row that were refused or got no answer in time: the back-off grows
    /// with them.
    setbacks: u32,
    /// When it last called this poi in and passed its checks.
    contact_at: Option<Instant>,
    /// The address where it last finished a session as itself (with the key, when the
    /// group has one); an mDNS advert cannot move it elsewhere while it is online there.
    confirmed: Option<SocketAddr>,
}

/// The peer table, shared by discovery, the sync loop and the API.
#[derive(Debug, Default)]
pub struct PeerTable(Mutex<BTreeMap<DeviceId, Peer>>);

/// What changed in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A peer became online.
    Up(DeviceId),
    /// Nothing visible.
    None,
}

impl PeerTable {
    /// Records that a peer was seen now; says whether it just came online.
    pub fn saw(&self, seen: &Sighting, source: Source, now_ms: u64) -> Change {
        let mut peers = self.0.lock().expect("peer table lock");
        let known = peers.get(&seen.device_id);
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
            Source::Contact => (0, Some(Instant::now())),
            _ => (known.map_or(0, |p| p.setbacks), known.and_then(|p| p.contact_at)),
        };
        let confirmed = known.and_then(|p| p.confirmed);
        // A full table takes no newcomers: a flood of adverts must not grow it without end.
        if !peers.contains_key(&seen.device_id) && peers.len() >= MAX_PEERS {
            let oldest = peers.values().filter(|p| !p.online).min_by_key(|p| p.last_seen).map(|p| p.device_id);
            match oldest {
                Some(id) => peers.remove(&id),
                None => return Change::None,
            };
        }
        let (source, addr) = match peers.get(&seen.device_id) {
            // An address the user gave stays as given: it is how this poi reaches that one.
            Some(old) if old.source == Source::Manual && source != Source::Manual => (Source::Manual, old.addr),
            _ => (source, seen.addr),
        };
        peers.insert(
            seen.device_id,
            Peer {
                device_id: seen.device_id,
                device_name: seen.device_name.clone(),
                sync_group: seen.sync_group.clone(),
                protocol: seen.protocol,
                digest: seen.digest.clone(),
                addr,
                last_seen_ms: now_ms,
                last_seen: Instant::now(),
                online: true,
                source,
                refused_until,
                setbacks,
                contact_at,
                confirmed,
            },
        );
        if was_online { Change::None } else { Change::Up(seen.device_id) }
    }

    /// Marks peers unseen for longer than `timeout` offline; returns those that just went.
    pub fn expire(&self, timeout: Duration) -> Vec<DeviceId> {
        let mut peers = self.0.lock().expect("peer table lock");
        let mut gone = Vec::new();
        for peer in peers.values_mut() {
            if peer.online && peer.last_seen.elapsed() > timeout {
                peer.online = false;
                gone.push(peer.device_id);
            }
        }
        gone
    }

    /// Marks one peer offline now (it said goodbye or stopped answering); true if it was online.
    pub fn offline(&self, id: DeviceId) -> bool {
        let mut peers = self.0.lock().expect("peer table lock");
        peers.get_mut(&id).is_some_and(|p| std::mem::replace(&mut p.online, false))
    }

    /// Notes that the peer finished a session at `addr` as itself: it is seen now, and
    /// that address is the one adverts cannot move it from.
    pub fn confirm(&self, id: DeviceId, addr: SocketAddr, now_ms: u64) {
        if let Some(peer) = self.0.lock().expect("peer table lock").get_mut(&id).filter(|p| p.online) {
            peer.last_seen = Instant::now();
            peer.last_seen_ms = now_ms;
            peer.setbacks = 0;
            if peer.addr == addr {
                peer.confirmed = Some(addr);
            }
        }
    }

    /// Whether an online peer at `addr` was seen within `period`.
    pub fn seen_within(&self, addr: SocketAddr, period: Duration) -> bool {
        self.0
            .lock()
            .expect("peer table lock")
            .values()
            .any(|p| p.online && p.addr == addr && p.last_seen.elapsed() < period)
    }

    /// Records the library digest a peer is known to have now.
    pub fn set_digest(&self, id: DeviceId, digest: String) {
        if let Some(peer) = self.0.lock().expect("peer table lock").get_mut(&id) {
            peer.digest = digest;
        }
    }

    /// Drops a peer from the table.
    pub fn forget(&self, id: DeviceId) -> bool {
        self.0.lock().expect("peer table lock").remove(&id).is_some()
    }

    /// Every known peer, by device id.
    pub fn list(&self) -> Vec<Peer> {
        self.0.lock().expect("peer table lock").values().cloned().collect()
    }

    /// Online peers of `group` speaking `protocol`.
    pub fn online_in(&self, group: &str, protocol: u16) -> Vec<Peer> {
        let now = Instant::now();
        self.list()
            .into_iter()
            .filter(|p| p.online && p.sync_group == group && p.protocol == protocol)
            .filter(|p| p.refused_until.is_none_or(|until| until <= now))
            .collect()
    }

    /// Leaves a peer out of auto-sync for a while after a session begun at `since` was
    /// refused (another key, say) or got no answer in time: `first`, doubling with each
    /// setback in a row up to `longest`. A peer is still tried now and then, and one that
    /// called in since (so it takes this poi now) is not held back. Returns the period.
    pub fn back_off(&self, id: DeviceId, since: Instant, first: Duration, longest: Duration) -> Duration {
        let mut peers = self.0.lock().expect("peer table lock");
        let Some(peer) = peers.get_mut(&id) else { return Duration::ZERO };
        if peer.contact_at.is_some_and(|at| at >= since) {
            return Duration::ZERO;
        }
        peer.setbacks = peer.setbacks.saturating_add(1);
        let period = (first * 2u32.saturating_pow(peer.setbacks - 1).min(1 << 10)).min(longest);
        peer.refused_until = Some(Instant::now() + period);
        period
    }

    /// Forgets every refusal: this poi's key or group changed, so peers may take it now.
    pub fn clear_refusals(&self) {
        for peer in self.0.lock().expect("peer table lock").values_mut() {
            peer.refused_until = None;
            peer.setbacks = 0;
        }
    }

    /// A peer named by device id, address (`ip` or `ip:port`) or name.
    pub fn find(&self, name: &str) -> Option<Peer> {
        let peers = self.list();
        let by_id = name.parse::<DeviceId>().ok();
        peers
            .iter()
            .find(|p| Some(p.device_id) == by_id)
            .or_else(|| peers.iter().find(|p| p.addr.to_string() == name || p.addr.ip().to_string() == name))
            .or_else(|| peers.iter().find(|p| p.device_name == name))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(last: u8) -> Sighting {
        Sighting {
            device_id: DeviceId([2, 0, 0, 0, 0, last]),
            device_name: format!("poi {last}"),
            sync_group: "g".into(),
            protocol: 1,
            digest: String::new(),
            addr: SocketAddr::from(([10, 0, 0, last], 8080)),
        }
    }

    #[test]
    fn peers_come_online_once_and_expire_after_the_timeout() {
        let table = PeerTable::default();
        assert_eq!(table.saw(&sighting(1), Source::Mdns, 1), Change::Up(sighting(1).device_id));
        assert_eq!(table.saw(&sighting(1), Source::Mdns, 2), Change::None);
        assert!(table.expire(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(table.expire(Duration::from_millis(1)), vec![sighting(1).device_id]);
        assert!(table.online_in("g", 1).is_empty());
        assert_eq!(table.list().len(), 1, "offline peers stay listed");
        assert_eq!(table.saw(&sighting(1), Source::Mdns, 3), Change::Up(sighting(1).device_id));
    }

    #[test]
    fn a_refusing_peer_stays_listed_but_is_left_out_of_auto_sync_for_a_while() {
        let table = PeerTable::default();
        table.saw(&sighting(1), Source::Mdns, 1);
        table.saw(&sighting(2), Source::Mdns, 1);
        let (one, two) = (sighting(1).device_id, sighting(2).device_id);
        let (ms, long) = (Duration::from_millis(30), Duration::from_secs(60));
        assert_eq!(table.back_off(one, Instant::now(), ms, long), ms);
        // Seen again meanwhile (its next announcement): still left alone, no new "up".
        assert_eq!(table.saw(&sighting(1), Source::Mdns, 2), Change::None);
        let ids = |t: &PeerTable| t.online_in("g", 1).iter().map(|p| p.device_id).collect::<Vec<_>>();
        assert_eq!(ids(&table), vec![two]);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ids(&table).len(), 2, "asked again once the period is over");
        assert_eq!(table.back_off(one, Instant::now(), ms, long), ms * 2, "setbacks in a row double it");
        assert_eq!(table.back_off(one, Instant::now(), ms, ms * 3), ms * 3, "up to the longest");
        table.saw(&sighting(1), Source::Contact, 3);
        assert_eq!(ids(&table).len(), 2, "a peer that called in with the right key is asked again");
        assert_eq!(table.back_off(one, Instant::now(), ms, long), ms, "and starts over");
        // A refusal that comes back after the peer called in (it took our key meanwhile)
        // does not hold it back.
        let began = Instant::now();
        table.saw(&sighting(2), Source::Contact, 4);
        assert_eq!(table.back_off(two, began, long, long), Duration::ZERO);
        table.confirm(one, sighting(1).addr, 5);
        table.back_off(one, Instant::now(), long, long);
        table.clear_refusals();
        assert_eq!(ids(&table).len(), 2, "a new key of ours is worth a try at once");
    }

    #[test]
    fn a_full_table_of_online_peers_takes_no_newcomers() {
        let table = PeerTable::default();
        let flood = |i: usize| {
            let mut seen = sighting(0);
            seen.device_id = DeviceId([2, 0, 0, 0, (i >> 8) as u8, i as u8]);
            table.saw(&seen, Source::Mdns, 1)
        };
        for i in 0..MAX_PEERS {
            assert!(matches!(flood(i), Change::Up(_)));
        }
        assert_eq!(flood(MAX_PEERS), Change::None);
        assert_eq!(table.list().len(), MAX_PEERS);
        table.offline(DeviceId([2, 0, 0, 0, 0, 0]));
        assert!(matches!(flood(MAX_PEERS + 1), Change::Up(_)), "an offline one makes room");
        assert_eq!(table.list().len(), MAX_PEERS);
    }

    #[test]
    fn peers_are_found_by_id_address_or_name_and_filtered_by_group() {
        let table = PeerTable::default();
        table.saw(&sighting(1), Source::Manual, 1);
        let mut other = sighting(2);
        other.sync_group = "h".into();
        table.saw(&other, Source::Mdns, 1);
        assert_eq!(table.find("02:00:00:00:00:01").unwrap().addr.port(), 8080);
        assert_eq!(table.find("10.0.0.2").unwrap().device_name, "poi 2");
        assert_eq!(table.find("poi 1").unwrap().source, Source::Manual);
        assert!(table.find("nobody").is_none());
        assert_eq!(table.online_in("g", 1).len(), 1);
        table.saw(&sighting(1), Source::Mdns, 2);
        assert_eq!(table.find("poi 1").unwrap().source, Source::Manual, "a manual peer stays manual");
    }

    #[test]
    fn an_advert_cannot_move_a_confirmed_peer_until_it_stops_answering() {
        let table = PeerTable::default();
        let real = sighting(1);
        table.saw(&real, Source::Mdns, 1);
        let impostor = Sighting { addr: SocketAddr::from(([10, 0, 0, 66], 8080)), ..sighting(1) };
        table.saw(&impostor, Source::Mdns, 2);
        assert_eq!(table.find("poi 1").unwrap().addr, impostor.addr, "not confirmed yet: the newest advert wins");
        table.saw(&real, Source::Mdns, 3);
        table.confirm(real.device_id, real.addr, 4);
        table.saw(&impostor, Source::Mdns, 5);
        assert_eq!(table.find("poi 1").unwrap().addr, real.addr);
        // A signed call from the new address (Contact) or a hand-given one still moves it.
        table.saw(&impostor, Source::Contact, 6);
        assert_eq!(table.find("poi 1").unwrap().addr, impostor.addr);
        table.confirm(real.device_id, impostor.addr, 7);
        // It stopped answering there: offline, so the next advert is believed.
        table.offline(real.device_id);
        table.saw(&real, Source::Mdns, 8);
        assert_eq!(table.find("poi 1").unwrap().addr, real.addr);
    }
}
