//! The show clock of a running poi: its own clock (monotonic, shifted and sped up by the
//! `--clock-offset-ms` and `--clock-rate-ppm` test options), the core's [`ShowClock`]
//! behind a lock, and the task that probes the online peers of the group over UDP, on the
//! HTTP port number, and answers their probes.
//!
//! The rules live in [`povpoi_core::show`]; this module only moves datagrams and time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use povpoi_core::device::DeviceId;
use povpoi_core::show::packet::{self, MAX_DATAGRAM};
use povpoi_core::show::{ClockKey, ClockStatus, Ignored, Packet, PacketError, ShowClock, Standing, Step};
use povpoi_core::sync::PROTOCOL_VERSION;
use povpoi_peer::key::GroupKey;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::events::Event;
use crate::node::NodeState;

/// How often the peers probed are brought up to date with the peer table.
const PEER_REFRESH: Duration = Duration::from_secs(1);
/// Probes answered per second and per source address at most (a poi sends a few): a
/// spoofed flood must not turn this poi into a reflector.
const ANSWERS_PER_SOURCE_S: f64 = 20.0;
/// Sources whose answer budget is remembered.
const MAX_SOURCES: usize = 1_024;
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

/// Datagrams and what became of them, for `/api/clock` and the benchmarks.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockCounters {
    /// Probes sent.
    pub probes_sent: AtomicU64,
    /// Probes of peers answered.
    pub probes_answered: AtomicU64,
    /// Answers that moved (or confirmed) the clock.
    pub answers_taken: AtomicU64,
    /// Datagrams sent, bytes with IP and UDP headers (IPv4: 28).
    pub bytes_sent: AtomicU64,
    /// Datagrams received, bytes with headers.
    pub bytes_received: AtomicU64,
    /// Dropped: longer than a clock datagram can be.
    pub dropped_oversized: AtomicU64,
    /// Dropped: not a clock datagram of this version.
    pub dropped_malformed: AtomicU64,
    /// Dropped: the pairing key's tag missing or wrong.
    pub dropped_unauthenticated: AtomicU64,
    /// Dropped: an answer to no probe awaited (late, replayed or forged).
    pub dropped_unexpected: AtomicU64,
    /// Dropped: times that cannot be real.
    pub dropped_implausible: AtomicU64,
    /// Probes not answered: their source sent too many.
    pub dropped_rate_limited: AtomicU64,
    /// Probes not answered: answered already (replayed), or our own.
    pub dropped_replayed: AtomicU64,
    /// Probes not answered: not from the address of an online peer of the group.
    pub dropped_stranger: AtomicU64,
}

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// IP and UDP headers of a datagram.
const HEADERS: u64 = 28;

/// The show clock as the node's tasks share it.
pub struct ShowTime {
    own: OwnClock,
    clock: Mutex<ShowClock>,
    founded: u32,
    /// Datagram counters.
    pub counters: ClockCounters,
}

impl ShowTime {
    /// A clock founding a fresh timeline now (a random id, as the core asks).
    pub fn new(me: DeviceId, own: OwnClock) -> ShowTime {
        let founded = rand::random::<u32>();
        let clock = ShowClock::new(me, rand::random(), founded, own.now_us());
        ShowTime { own, clock: Mutex::new(clock), founded, counters: ClockCounters::default() }
    }

    fn lock(&self) -> MutexGuard<'_, ShowClock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the clock with the own clock read under the lock, so readers on other
    /// threads see show time in the order the changes were made.
    pub fn with<R>(&self, f: impl FnOnce(&mut ShowClock, u64) -> R) -> R {
        let mut clock = self.lock();
        let own = self.own.now_us();
        f(&mut clock, own)
    }

    /// Show time now, µs.
    pub fn now_us(&self) -> u64 {
        self.with(|clock, own| clock.now(own))
    }

    /// Show time and the host's real-time clock, read at the same instant (µs).
    pub fn read(&self) -> (u64, u64) {
        self.with(|clock, own| (clock.now(own), host_time_us()))
    }

    /// Where the clock stands.
    pub fn status(&self) -> ClockStatus {
        self.with(|clock, own| clock.status(own))
    }

    /// The timeline this poi founded when it started.
    pub fn founded(&self) -> u32 {
        self.founded
    }

    /// The own clock.
    pub fn own(&self) -> &OwnClock {
        &self.own
    }
}

/// The answer budget of each source address.
struct RateLimit(HashMap<IpAddr, (f64, Instant)>);

impl RateLimit {
    fn allow(&mut self, ip: IpAddr) -> bool {
        if self.0.len() >= MAX_SOURCES && !self.0.contains_key(&ip) {
            // Forget the source heard from longest ago, not everyone's budget.
            if let Some(oldest) = self.0.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip) {
                self.0.remove(&oldest);
            }
        }
        let (tokens, at) = self.0.entry(ip).or_insert((2.0 * ANSWERS_PER_SOURCE_S, Instant::now()));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * ANSWERS_PER_SOURCE_S).min(2.0 * ANSWERS_PER_SOURCE_S);
        *at = Instant::now();
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The datagram key of the group, derived again only when the pairing key or group changes.
#[derive(Default)]
struct Keys {
    /// The pairing key and the group it was derived for.
    source: Option<(GroupKey, String)>,
    key: Option<ClockKey>,
}

impl Keys {
    fn current(&mut self, state: &NodeState) -> Option<ClockKey> {
        let config = state.config();
        let source = config.group_key.clone().map(|k| (k, config.sync_group.clone()));
        if source != self.source {
            self.key = source.as_ref().map(|(k, group)| k.clock_key(group));
            self.source = source;
        }
        self.key.clone()
    }
}

/// Probes the group's online peers and answers probes on `socket` until the node stops.
pub(crate) async fn serve(state: Arc<NodeState>, socket: UdpSocket, mut stopping: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 2 * MAX_DATAGRAM];
    let mut addrs: HashMap<DeviceId, SocketAddr> = HashMap::new();
    let mut refreshed = Instant::now() - PEER_REFRESH;
    let mut limit = RateLimit(HashMap::new());
    let mut keys = Keys::default();
    let me = state.config().device_id;
    let mut reported = (Standing::Alone, state.show.status().timeline, Instant::now());
    loop {
        if refreshed.elapsed() >= PEER_REFRESH {
            refreshed = Instant::now();
            let group = state.config().sync_group.clone();
            addrs =
                state.peers.online_in(&group, PROTOCOL_VERSION).into_iter().map(|p| (p.device_id, p.addr)).collect();
            let ids: Vec<DeviceId> = addrs.keys().copied().collect();
            state.show.with(|clock, own| clock.set_peers(&ids, own));
        }
        let key = keys.current(&state);
        loop {
            let nonce = rand::random::<u32>();
            let Some((peer, probe)) = state.show.with(|clock, own| clock.probe(own, nonce)) else { break };
            if let Some(addr) = addrs.get(&peer) {
                let bytes = packet::encode(&probe, key.as_ref(), peer);
                if socket.send_to(&bytes, addr).await.is_ok() {
                    count(&state.show.counters.probes_sent, 1);
                    count(&state.show.counters.bytes_sent, bytes.len() as u64 + HEADERS);
                }
            }
        }
        let due = state.show.with(|clock, own| clock.next_due(own));
        let wait = due.map_or(PEER_REFRESH, |d| state.show.own().until(d)).min(PEER_REFRESH);
        tokio::select! {
            _ = crate::node::stopped(&mut stopping) => return,
            received = socket.recv_from(&mut buf) => {
                let at = state.show.own().now_us();
                if let Ok((n, from)) = received {
                    let known = addrs.values().any(|a| a.ip() == from.ip());
                    let datagram = Datagram { bytes: &buf[..n], from, at, known, me, key: key.as_ref() };
                    take(&state, &socket, datagram, &mut limit).await;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(step) = state.show.with(|clock, own| clock.poll(own)) {
            announce_step(&state, &step);
        }
        report(&state, &mut reported);
    }
}

/// One datagram as it arrived.
struct Datagram<'a> {
    bytes: &'a [u8],
    from: SocketAddr,
    /// Own clock when it arrived.
    at: u64,
    /// Whether it came from the address of an online peer of the group.
    known: bool,
    me: DeviceId,
    key: Option<&'a ClockKey>,
}

/// Handles one datagram.
async fn take(state: &NodeState, socket: &UdpSocket, d: Datagram<'_>, limit: &mut RateLimit) {
    let counters = &state.show.counters;
    count(&counters.bytes_received, d.bytes.len() as u64 + HEADERS);
    let packet = match packet::decode(d.bytes, d.key, d.me) {
        Ok(packet) => packet,
        Err(PacketError::Oversized) => return count(&counters.dropped_oversized, 1),
        Err(PacketError::Malformed) => return count(&counters.dropped_malformed, 1),
        Err(PacketError::Unauthenticated) => return count(&counters.dropped_unauthenticated, 1),
    };
    match packet {
        Packet::Probe { from: peer, .. } => {
            // Only a peer is answered, so a forged source address cannot aim answers at a
            // stranger; a peer not listed yet is answered once it is (within a second).
            if !d.known {
                return count(&counters.dropped_stranger, 1);
            }
            if !limit.allow(d.from.ip()) {
                return count(&counters.dropped_rate_limited, 1);
            }
            let Some(answer) = state.show.with(|clock, own| clock.answer(&packet, d.at, own)) else {
                return count(&counters.dropped_replayed, 1);
            };
            let bytes = packet::encode(&answer, d.key, peer);
            if socket.send_to(&bytes, d.from).await.is_ok() {
                count(&counters.probes_answered, 1);
                count(&counters.bytes_sent, bytes.len() as u64 + HEADERS);
            }
        }
        Packet::Answer { .. } => match state.show.with(|clock, own| clock.take_answer(&packet, d.at, own)) {
            Ok(steps) => {
                count(&counters.answers_taken, 1);
                for step in &steps {
                    announce_step(state, step);
                }
            }
            Err(Ignored::Unexpected) => count(&counters.dropped_unexpected, 1),
            Err(Ignored::Implausible) => count(&counters.dropped_implausible, 1),
        },
    }
}

fn announce_step(state: &NodeState, step: &Step) {
    let (from, to) = (format!("{:08x}", step.from), format!("{:08x}", step.to));
    if step.from == step.to {
        tracing::warn!(timeline = to, by_us = step.by, "show clock stepped to catch up with its group");
    } else {
        tracing::info!(from, to, by_us = step.by, "show clock joined another timeline");
    }
    state.events.send(Event::ClockStep {
        from_timeline: format!("{:08x}", step.from),
        to_timeline: format!("{:08x}", step.to),
        by_us: step.by,
        jumped: step.jumped,
        show_time_us: step.show_before,
    });
}

/// Tells watchers when the standing or the timeline changes, and every [`STATUS_EVERY`].
fn report(state: &NodeState, last: &mut (Standing, u32, Instant)) {
    let status = state.show.status();
    if (status.standing, status.timeline) == (last.0, last.1) && last.2.elapsed() < STATUS_EVERY {
        return;
    }
    *last = (status.standing, status.timeline, Instant::now());
    let (show, host) = state.show.read();
    state.events.send(Event::Clock {
        standing: standing_name(status.standing),
        timeline: format!("{:08x}", status.timeline),
        error_bound_us: status.error_bound,
        show_time_us: show,
        host_time_us: host,
    });
}

/// How a standing is written in the API: `alone`, `converging`, `inStep`.
pub fn standing_name(standing: Standing) -> &'static str {
    match standing {
        Standing::Alone => "alone",
        Standing::Converging => "converging",
        Standing::InStep => "inStep",
    }
}
