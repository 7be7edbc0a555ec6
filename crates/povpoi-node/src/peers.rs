//! The peers this poi knows, as the node's tasks share them: the portable table
//! ([`povpoi_app::peers`], where the rules are) behind a lock, on the process's monotonic
//! clock.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use povpoi_core::device::DeviceId;

pub use povpoi_app::peers::{Aftermath, Change, MAX_PEERS, Peer, Peers, SessionEnd, Sighting, Source};
use povpoi_peer::session::Ended;

/// The peer table, shared by discovery, the sync loop and the API.
#[derive(Debug)]
pub struct PeerTable {
    peers: Mutex<Peers>,
    /// Monotonic time 0 of the table.
    start: Instant,
}

impl Default for PeerTable {
    fn default() -> Self {
        PeerTable { peers: Mutex::default(), start: Instant::now() }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl PeerTable {
    fn lock(&self) -> MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mono_us(&self) -> u64 {
        us(self.start.elapsed())
    }

    /// Records that a peer was seen now; says whether it just came online.
    pub fn saw(&self, seen: &Sighting, source: Source, now_ms: u64) -> Change {
        let mono = self.mono_us();
        self.lock().saw(seen, source, now_ms, mono)
    }

    /// Marks peers unseen for longer than `timeout` offline; returns those that just went.
    pub fn expire(&self, timeout: Duration) -> Vec<DeviceId> {
        let mono = self.mono_us();
        self.lock().expire(us(timeout), mono)
    }

    /// Marks one peer offline now (it said goodbye or stopped answering); true if it was online.
    pub fn offline(&self, id: DeviceId) -> bool {
        self.lock().offline(id)
    }

    /// Notes that the peer finished a session at `addr` as itself.
    pub fn confirm(&self, id: DeviceId, addr: SocketAddr, now_ms: u64) {
        let mono = self.mono_us();
        self.lock().confirm(id, addr, now_ms, mono);
    }

    /// Whether an online peer at `addr` was seen within `period`.
    pub fn seen_within(&self, addr: SocketAddr, period: Duration) -> bool {
        let mono = self.mono_us();
        self.lock().seen_within(addr, us(period), mono)
    }

    /// Records the library digest a peer is known to have now.
    pub fn set_digest(&self, id: DeviceId, digest: String) {
        self.lock().set_digest(id, digest);
    }

    /// Drops a peer from the table.
    pub fn forget(&self, id: DeviceId) -> bool {
        self.lock().forget(id)
    }

    /// Every known peer, by device id.
    pub fn list(&self) -> Vec<Peer> {
        self.lock().list().cloned().collect()
    }

    /// Online peers of `group` speaking `protocol`, those auto-sync leaves alone for now
    /// included: the show clock probes them all and a cue's lead counts them.
    pub fn online_in(&self, group: &str, protocol: u16) -> Vec<Peer> {
        self.lock().online_in(group, protocol).cloned().collect()
    }

    /// The same, less those auto-sync leaves alone for now ([`Peers::back_off`]): the peers
    /// a round of sessions asks.
    pub fn due_in(&self, group: &str, protocol: u16) -> Vec<Peer> {
        let mono = self.mono_us();
        self.lock().online_in(group, protocol).filter(|p| !p.held_back(mono)).cloned().collect()
    }

    /// Leaves a peer out of auto-sync for a while after a session begun at `since` was
    /// refused, got no answer in time or broke off (see [`Peers::back_off`]; auto-sync asks
    /// [`PeerTable::session_ended`], which picks the first period). Returns the period.
    pub fn back_off(&self, id: DeviceId, since: Instant, first: Duration, longest: Duration) -> Duration {
        let since = us(since.saturating_duration_since(self.start));
        let mono = self.mono_us();
        Duration::from_micros(self.lock().back_off(id, since, us(first), us(longest), mono))
    }

    /// Auto-sync's rule after a session with `id` at `addr`, begun at `since`, `ended` so
    /// ([`Peers::session_ended`]); `longest` is the longest pause, the peer timeout.
    pub fn session_ended(
        &self,
        id: DeviceId,
        addr: SocketAddr,
        since: Instant,
        ended: Ended,
        longest: Duration,
    ) -> Aftermath {
        let began_us = us(since.saturating_duration_since(self.start));
        let mono = self.mono_us();
        let end = SessionEnd { peer: id, addr, began_us, ended };
        self.lock().session_ended(end, us(longest), crate::library::now_ms(), mono)
    }

    /// Forgets every refusal: this poi's key or group changed, so peers may take it now.
    pub fn clear_refusals(&self) {
        self.lock().clear_refusals();
    }

    /// A peer named by device id, address (`ip` or `ip:port`) or name.
    pub fn find(&self, name: &str) -> Option<Peer> {
        self.lock().find(name).cloned()
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
        let ids = |t: &PeerTable| t.due_in("g", 1).iter().map(|p| p.device_id).collect::<Vec<_>>();
        assert_eq!(ids(&table), vec![two]);
        assert_eq!(table.online_in("g", 1).len(), 2, "still online: the show clock probes it");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ids(&table).len(), 2, "asked again once the period is over");
        assert_eq!(table.back_off(one, Instant::now(), ms, long), ms * 2, "setbacks in a row double it");
        assert_eq!(table.back_off(one, Instant::now(), ms, ms * 3), ms * 3, "up to the longest");
        table.saw(&sighting(1), Source::Contact, 3);
        assert_eq!(ids(&table).len(), 2, "a peer that called in with the right key is asked again");
        // A session begun after the call: in the same microsecond it would count as begun
        // before it (and be no setback), as it did once on a loaded machine.
        std::thread::sleep(Duration::from_millis(1));
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
