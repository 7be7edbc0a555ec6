//! The show clock of a running poi: its own clock (monotonic, shifted and sped up by the
//! `--clock-offset-ms` and `--clock-rate-ppm` test options), the core's [`ShowClock`]
//! behind a lock, and the task that probes the online peers of the group over UDP, on the
//! HTTP port number, and answers their probes.
//!
//! The rules live in [`povpoi_core::show`] and [`povpoi_app::clock`] (which datagrams are
//! answered, at what rate); this module only moves datagrams and time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use povpoi_app::clock::ClockCounters;
pub use povpoi_app::clock::standing_name;
use povpoi_app::clock::{ClockService, Datagram, RECEIVE_BUFFER};
use povpoi_core::device::DeviceId;
use povpoi_core::show::{ClockKey, ClockStatus, ShowClock, Standing, Step};
use povpoi_core::sync::PROTOCOL_VERSION;
use povpoi_peer::key::GroupKey;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::events::{Event, EventBus};
use crate::peers::PeerTable;

/// How often the peers probed are brought up to date with the peer table.
const PEER_REFRESH: Duration = Duration::from_secs(1);
/// A clock status event at least this often, besides changes.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The poi's own clock, µs: monotonic from the start of the process, plus the offset
/// option, at the rate option. Show time is made from it; nothing else uses it.
#[derive(Clone, Copy, Debug)]
pub struct OwnClock {
    start: Instant,
    offset_us: u64,
    rate_ppm: f64,
}

impl OwnClock {
    /// An own clock reading `offset_ms` now and running `rate_ppm` fast.
    pub fn new(offset_ms: u64, rate_ppm: f64) -> OwnClock {
        OwnClock { start: Instant::now(), offset_us: offset_ms.saturating_mul(1_000), rate_ppm }
    }

    /// The own clock now, µs.
    pub fn now_us(&self) -> u64 {
        let elapsed = self.start.elapsed().as_micros() as f64;
        self.offset_us + (elapsed * (1.0 + self.rate_ppm / 1e6)) as u64
    }

    /// The offset option, ms.
    pub fn offset_ms(&self) -> u64 {
        self.offset_us / 1_000
    }

    /// The rate option, ppm.
    pub fn rate_ppm(&self) -> f64 {
        self.rate_ppm
    }

    /// Real time until the own clock reads `own` (zero if it has).
    pub fn until(&self, own: u64) -> Duration {
        let ahead = own.saturating_sub(self.now_us()) as f64 / (1.0 + self.rate_ppm / 1e6);
        Duration::from_micros(ahead.ceil() as u64)
    }
}

/// Microseconds since the Unix epoch by the host's real-time clock (no offset option).
pub fn host_time_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Microseconds by the host's monotonic clock (`CLOCK_MONOTONIC`), which `Instant` reads
/// but does not show.
pub fn host_monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| (t.tv_sec() as u64).saturating_mul(1_000_000) + t.tv_nsec() as u64 / 1_000)
}

/// The show clock as the node's tasks share it.
pub struct ShowTime {
    own: OwnClock,
    service: Mutex<ClockService>,
}

impl ShowTime {
    /// A clock founding a fresh timeline now (a random id, as the core asks).
    pub fn new(me: DeviceId, own: OwnClock) -> ShowTime {
        let service = ClockService::new(me, rand::random(), rand::random(), own.now_us());
        ShowTime { own, service: Mutex::new(service) }
    }

    fn lock(&self) -> MutexGuard<'_, ClockService> {
        self.service.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the clock with the own clock read under the lock, so readers on other
    /// threads see show time in the order the changes were made.
    pub fn with<R>(&self, f: impl FnOnce(&mut ShowClock, u64) -> R) -> R {
        self.serve(|service, own| f(service.clock_mut(), own))
    }

    /// Runs `f` on the clock with its datagram rules, the own clock read under the lock.
    fn serve<R>(&self, f: impl FnOnce(&mut ClockService, u64) -> R) -> R {
        let mut service = self.lock();
        let own = self.own.now_us();
        f(&mut service, own)
    }

    /// What became of the datagrams so far.
    pub fn counters(&self) -> ClockCounters {
        self.lock().counters
    }

    /// Show time now, µs.
    pub fn now_us(&self) -> u64 {
        self.with(|clock, own| clock.now(own))
    }

    /// Show time, the host's real-time clock and its monotonic clock, read at the same
    /// instant (µs). The monotonic one (since boot, one clock for every process) is what an
    /// adjustment of the real-time clock does not move: tests measure jumps of show time
    /// against it.
    pub fn read(&self) -> (u64, u64, u64) {
        self.with(|clock, own| (clock.now(own), host_time_us(), host_monotonic_us()))
    }

    /// Where the clock stands.
    pub fn status(&self) -> ClockStatus {
        self.with(|clock, own| clock.status(own))
    }

    /// The timeline this poi founded when it started.
    pub fn founded(&self) -> u32 {
        self.lock().founded()
    }

    /// The own clock.
    pub fn own(&self) -> &OwnClock {
        &self.own
    }
}

/// The parts of a poi the show clock's socket reads and reports to; the node hands over its
/// state.
pub trait ClockParts: Send + Sync + 'static {
    /// The show clock.
    fn show(&self) -> &ShowTime;
    /// The sync group, and its pairing key if it has one.
    fn group(&self) -> (String, Option<GroupKey>);
    /// The peer table: who is probed, who is answered.
    fn peers(&self) -> &PeerTable;
    /// Where steps and the clock's standing are announced.
    fn events(&self) -> &EventBus;
}

/// The datagram key of the group, derived again only when the pairing key or group changes.
#[derive(Default)]
struct Keys {
    /// The pairing key and the group it was derived for.
    source: Option<(GroupKey, String)>,
    key: Option<ClockKey>,
}

impl Keys {
    fn current(&mut self, state: &impl ClockParts) -> Option<ClockKey> {
        let (group, key) = state.group();
        let source = key.map(|k| (k, group));
        if source != self.source {
            self.key = source.as_ref().map(|(k, group)| k.clock_key(group));
            self.source = source;
        }
        self.key.clone()
    }
}

/// Probes the group's online peers and answers probes on `socket` until the node stops.
pub(crate) async fn serve(state: Arc<impl ClockParts>, socket: UdpSocket, mut stopping: watch::Receiver<bool>) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut addrs: HashMap<DeviceId, SocketAddr> = HashMap::new();
    let mut refreshed = Instant::now() - PEER_REFRESH;
    let mut keys = Keys::default();
    let mut reported = (Standing::Alone, state.show().status().timeline, Instant::now());
    loop {
        if refreshed.elapsed() >= PEER_REFRESH {
            refreshed = Instant::now();
            let (group, _) = state.group();
            addrs =
                state.peers().online_in(&group, PROTOCOL_VERSION).into_iter().map(|p| (p.device_id, p.addr)).collect();
            let ids: Vec<DeviceId> = addrs.keys().copied().collect();
            state.show().with(|clock, own| clock.set_peers(&ids, own));
        }
        let key = keys.current(state.as_ref());
        let probes = state.show().serve(|service, own| service.probes(own, key.as_ref(), rand::random));
        for (peer, bytes) in probes {
            if let Some(addr) = addrs.get(&peer)
                && socket.send_to(&bytes, addr).await.is_ok()
            {
                state.show().lock().sent(bytes.len(), true);
            }
        }
        let due = state.show().with(|clock, own| clock.next_due(own));
        let wait = due.map_or(PEER_REFRESH, |d| state.show().own().until(d)).min(PEER_REFRESH);
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            received = socket.recv_from(&mut buf) => {
                let at = state.show().own().now_us();
                if let Ok((n, from)) = received {
                    let known = addrs.values().any(|a| a.ip() == from.ip());
                    let datagram = Datagram { bytes: &buf[..n], from, at, known };
                    let taken = state.show().serve(|service, own| service.take(datagram, own, key.as_ref()));
                    for step in &taken.steps {
                        announce_step(state.as_ref(), step);
                    }
                    if let Some(reply) = taken.reply
                        && socket.send_to(&reply, from).await.is_ok()
                    {
                        state.show().lock().sent(reply.len(), false);
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(step) = state.show().with(|clock, own| clock.poll(own)) {
            announce_step(state.as_ref(), &step);
        }
        report(state.as_ref(), &mut reported);
    }
}

fn announce_step(state: &impl ClockParts, step: &Step) {
    let (from, to) = (format!("{:08x}", step.from), format!("{:08x}", step.to));
    if step.from == step.to {
        tracing::warn!(timeline = to, by_us = step.by, "show clock stepped to catch up with its group");
    } else {
        tracing::info!(from, to, by_us = step.by, "show clock joined another timeline");
    }
    state.events().send(Event::ClockStep {
        from_timeline: format!("{:08x}", step.from),
        to_timeline: format!("{:08x}", step.to),
        by_us: step.by,
        jumped: step.jumped,
        show_time_us: step.show_before,
    });
}

/// Tells watchers when the standing or the timeline changes, and every [`STATUS_EVERY`].
fn report(state: &impl ClockParts, last: &mut (Standing, u32, Instant)) {
    let status = state.show().status();
    if (status.standing, status.timeline) == (last.0, last.1) && last.2.elapsed() < STATUS_EVERY {
        return;
    }
    *last = (status.standing, status.timeline, Instant::now());
    let (show, host, _) = state.show().read();
    state.events().send(Event::Clock {
        standing: standing_name(status.standing),
        timeline: format!("{:08x}", status.timeline),
        error_bound_us: status.error_bound,
        show_time_us: show,
        host_time_us: host,
    });
}
