//! Deterministic simulation of a troupe's show clocks.
//!
//! Each poi runs the core's [`ShowClock`] on an own clock with its own offset and crystal
//! error; datagrams (encoded, and tagged when the run has a pairing key) cross a network
//! with a base delay, asymmetric paths, jitter, heavy-tailed spikes of the kind Wi-Fi power
//! saving causes, and loss. Poi start at different times, leave, come back (restarted, on a
//! fresh own clock) and are partitioned. A run checks, at every change of every clock, that
//! show time never goes back and jumps only by the steps the clock announced; every 100 ms
//! it measures the spread of each group that has been together long enough; at the end it
//! checks the spread stayed bounded and no poi went back to a timeline it had left.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use povpoi_core::device::DeviceId;
use povpoi_core::show::{ClockKey, IN_STEP_US, Packet, SLEW_PPM, STEP_ERROR_US, ShowClock, TIE_WINDOW_US, packet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// IPv4 and UDP headers, counted in the bytes on the wire.
pub const HEADER_BYTES: u64 = 28;
/// A group is measured once nothing has joined, left or split for this long.
pub const SETTLE_US: u64 = 10_000_000;
/// Largest spread tolerated in a settled group, µs: beyond this a run fails.
pub const MAX_SETTLED_SPREAD_US: u64 = 5_000;
/// How often spreads are measured.
const MEASURE_EVERY_US: u64 = 100_000;
/// Time a poi takes to answer a probe.
const ANSWER_TIME_US: u64 = 30;

/// The network and the crystals.
#[derive(Clone, Debug)]
pub struct Conditions {
    /// One-way delay of a quiet link, µs.
    pub base_delay_us: u64,
    /// Each direction's delay differs from the base by up to this, µs (asymmetric paths).
    pub asymmetry_us: u64,
    /// Mean of the exponential queueing jitter added to each datagram, µs.
    pub jitter_mean_us: f64,
    /// Share of datagrams lost.
    pub loss: f64,
    /// Share of datagrams held up by a spike.
    pub spike_chance: f64,
    /// Shortest and longest spike, µs; lengths are Pareto-distributed (most short, some long).
    pub spike_us: (u64, u64),
    /// Crystals are off by up to this many ppm, either way.
    pub max_ppm: f64,
}

impl Default for Conditions {
    /// The conditions: 2 ms base delay, asymmetric paths, 100-1,000 ms spikes,
    /// 20 % loss, ±100 ppm.
    fn default() -> Self {
        Conditions {
            base_delay_us: 2_000,
            asymmetry_us: 400,
            jitter_mean_us: 150.0,
            loss: 0.20,
            spike_chance: 0.05,
            spike_us: (100_000, 1_000_000),
            max_ppm: 100.0,
        }
    }
}

/// Something that happens to the troupe during a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Happening {
    /// Poi `node` goes away at `at`; it comes back, restarted, after `away` µs if given.
    Leave {
        /// Which poi.
        node: usize,
        /// When (true time, µs).
        at: u64,
        /// How long it is away.
        away: Option<u64>,
    },
    /// The poi with `side[i]` true cannot reach the others from `at` to `until`.
    Partition {
        /// When it starts.
        at: u64,
        /// When it heals.
        until: u64,
        /// Which side each poi is on.
        side: Vec<bool>,
    },
}

/// One run's troupe and script.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// How long the run lasts, µs.
    pub duration_us: u64,
    /// When each poi first starts.
    pub start_at: Vec<u64>,
    /// Each poi's own clock when it starts (its `--clock-offset-ms`), µs.
    pub origin: Vec<u64>,
    /// Each poi's crystal error, ppm.
    pub ppm: Vec<f64>,
    /// What happens, in time order.
    pub happenings: Vec<Happening>,
    /// Whether the troupe has a pairing key (datagrams tagged and checked).
    pub keyed: bool,
}

impl Scenario {
    /// The random scenario of a seed: 2-16 poi (most runs small) starting within 5 s with
    /// own clocks up to 30 s apart, and up to three leaves, restarts or partitions.
    pub fn random(seed: u64, conditions: &Conditions) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc10c);
        let nodes = match rng.random_range(0..10) {
            0..=2 => 2,
            3..=5 => rng.random_range(3..=4),
            6..=8 => rng.random_range(5..=8),
            _ => rng.random_range(9..=16),
        };
        let duration_us = 90_000_000;
        let start_at = (0..nodes).map(|i| if i == 0 { 0 } else { rng.random_range(0..5_000_000) }).collect();
        let origin = (0..nodes).map(|_| rng.random_range(0..30_000_000)).collect();
        let ppm = (0..nodes).map(|_| rng.random_range(-conditions.max_ppm..=conditions.max_ppm)).collect();
        let mut happenings = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let at = rng.random_range(15_000_000..70_000_000);
            if rng.random_bool(0.5) {
                let node = rng.random_range(0..nodes);
                let away = rng.random_bool(0.8).then(|| rng.random_range(0..20_000_000));
                happenings.push(Happening::Leave { node, at, away });
            } else {
                let side: Vec<bool> = (0..nodes).map(|_| rng.random_bool(0.5)).collect();
                happenings.push(Happening::Partition { at, until: at + rng.random_range(5_000_000..40_000_000), side });
            }
        }
        happenings.sort_by_key(|h| match h {
            Happening::Leave { at, .. } | Happening::Partition { at, .. } => *at,
        });
        Scenario { duration_us, start_at, origin, ppm, happenings, keyed: rng.random_bool(0.5) }
    }
}

/// Spread samples, in 10 µs buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    /// Counts one value (µs).
    pub fn add(&mut self, us: u64) {
        let bucket = (us / 10) as usize;
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, 0);
        }
        self.buckets[bucket] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (i, n) in other.buckets.iter().enumerate() {
            self.buckets[i] += n;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value, µs.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `p` (0-1) of the counts fall, µs (to the bucket's upper edge).
    pub fn percentile(&self, p: f64) -> u64 {
        let wanted = (self.count as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= wanted && *n > 0 {
                return ((i as u64 + 1) * 10).min(self.max);
            }
        }
        self.max
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Poi in the run.
    pub nodes: usize,
    /// Spread of settled groups, sampled every 100 ms.
    pub spread: Histogram,
    /// From the last first start to all poi within [`IN_STEP_US`] on one timeline, µs
    /// (`None` if not before the first happening).
    pub converged_after_us: Option<u64>,
    /// Steps made (timelines joined).
    pub steps: u64,
    /// Steps back to a timeline left before, between two timelines within the tie window
    /// of each other (each smaller than [`TIE_WINDOW_US`] plus [`STEP_ERROR_US`]).
    pub tie_returns: u64,
    /// Datagrams sent, and lost on the way.
    pub datagrams: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Bytes per peer per second (sent and received by one poi for one peer, with IP and
    /// UDP headers) in the first 10 s after the last start.
    pub converging_bytes_per_peer_s: f64,
    /// The same once the troupe has settled (from 30 s to the first happening, or the end).
    pub settled_bytes_per_peer_s: f64,
    /// Leaves, restarts and partitions that happened.
    pub happenings: usize,
    /// Spread of all running poi at the end, reachable or not, µs.
    pub final_spread_us: Option<u64>,
}

/// A failed run, with what replays it.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What went wrong, and when.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clock simulation seed {} failed: {}\nreplay with: POVPOI_CLOCK_SEED={} cargo test -p povpoi-sim --test clock_simulation",
            self.seed, self.message, self.seed
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A poi's clock wants attention (generation guards against stale wake-ups).
    Wake { node: usize, generation: u64 },
    /// A datagram arrives.
    Deliver { to: usize, datagram: usize },
    /// The next happening of the script.
    Script { index: usize },
    /// The partition ends.
    Heal,
    /// A poi starts for the first time.
    Start { node: usize },
    /// Spreads are measured.
    Measure,
}

struct Poi {
    id: DeviceId,
    ppm: f64,
    /// Own clock when it (re)started, and the true time of that.
    origin: u64,
    booted_at: u64,
    clock: Option<ShowClock>,
    generation: u64,
    wake_at: Option<u64>,
    /// Last show time measured, the own time then, and the steps (µs) made before it (this boot).
    last: Option<(u64, u64, u64)>,
    /// Forward steps made this boot, µs in all.
    stepped: u64,
    /// Timelines this boot has left: it must never go back to one (but by a tie swap).
    left: Vec<u32>,
    /// Tie swaps this boot.
    ties: u64,
    boots: u32,
}

impl Poi {
    fn own(&self, t: u64) -> u64 {
        self.origin + ((t - self.booted_at) as f64 * (1.0 + self.ppm / 1e6)) as u64
    }

    /// True time at which the own clock reaches `own`.
    fn true_time(&self, own: u64, now: u64) -> u64 {
        let ahead = own.saturating_sub(self.own(now)) as f64 / (1.0 + self.ppm / 1e6);
        now + ahead.ceil() as u64
    }
}

struct World<'a> {
    conditions: &'a Conditions,
    scenario: &'a Scenario,
    seed: u64,
    rng: ChaCha8Rng,
    t: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    order: u64,
    pois: Vec<Poi>,
    /// One-way base delay of each directed pair.
    delay: Vec<Vec<u64>>,
    side: Option<Vec<bool>>,
    key: Option<ClockKey>,
    datagrams: Vec<Option<Vec<u8>>>,
    /// Last change of who is up or who reaches whom.
    changed_at: u64,
    /// Timelines founded so far (one per start of a poi).
    founded: u64,
    report: Report,
    bytes_converging: u64,
    bytes_settled: u64,
}

/// Runs a scenario; the same seed gives the same run.
pub fn run(seed: u64, scenario: &Scenario, conditions: &Conditions) -> Result<Report, Failure> {
    let nodes = scenario.start_at.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let delay = (0..nodes)
        .map(|_| {
            (0..nodes)
                .map(|_| {
                    conditions.base_delay_us - conditions.asymmetry_us
                        + rng.random_range(0..=2 * conditions.asymmetry_us)
                })
                .collect()
        })
        .collect();
    let pois = (0..nodes)
        .map(|i| Poi {
            id: DeviceId([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
            ppm: scenario.ppm[i],
            origin: scenario.origin[i],
            booted_at: 0,
            clock: None,
            generation: 0,
            wake_at: None,
            last: None,
            stepped: 0,
            left: Vec::new(),
            ties: 0,
            boots: 0,
        })
        .collect();
    let mut world = World {
        conditions,
        scenario,
        seed,
        rng,
        t: 0,
        queue: BinaryHeap::new(),
        order: 0,
        pois,
        delay,
        side: None,
        key: scenario.keyed.then(|| ClockKey::derive(b"simulated pairing key", "troupe")),
        datagrams: Vec::new(),
        changed_at: 0,
        founded: 0,
        report: Report { nodes, happenings: scenario.happenings.len(), ..Report::default() },
        bytes_converging: 0,
        bytes_settled: 0,
    };
    for (node, at) in scenario.start_at.iter().enumerate() {
        world.schedule(*at, Event::Start { node });
    }
    for index in 0..scenario.happenings.len() {
        let at = match &scenario.happenings[index] {
            Happening::Leave { at, .. } | Happening::Partition { at, .. } => *at,
        };
        world.schedule(at, Event::Script { index });
    }
    world.schedule(0, Event::Measure);
    while let Some(Reverse((t, _, event))) = world.queue.pop() {
        if t > scenario.duration_us {
            break;
        }
        world.t = t;
        world.handle(event)?;
    }
    world.finish()
}

impl World<'_> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, event)));
    }

    fn fail(&self, message: String) -> Failure {
        Failure { seed: self.seed, message: format!("at {:.3} s: {message}", self.t as f64 / 1e6) }
    }

    fn last_start(&self) -> u64 {
        self.scenario.start_at.iter().copied().max().unwrap_or(0)
    }

    fn first_happening(&self) -> u64 {
        match self.scenario.happenings.first() {
            Some(Happening::Leave { at, .. } | Happening::Partition { at, .. }) => *at,
            None => self.scenario.duration_us,
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Failure> {
        match event {
            Event::Start { node } => self.boot(node),
            Event::Wake { node, generation } => {
                if self.pois[node].generation == generation && self.pois[node].wake_at == Some(self.t) {
                    self.pois[node].wake_at = None;
                    self.wake(node)?;
                }
                Ok(())
            }
            Event::Deliver { to, datagram } => {
                let bytes = self.datagrams[datagram].take().expect("delivered once");
                self.deliver(to, &bytes)
            }
            Event::Script { index } => {
                self.script(index);
                Ok(())
            }
            Event::Heal => {
                self.side = None;
                self.changed_at = self.t;
                Ok(())
            }
            Event::Measure => {
                self.measure()?;
                self.schedule(self.t + MEASURE_EVERY_US, Event::Measure);
                Ok(())
            }
        }
    }

    fn boot(&mut self, node: usize) -> Result<(), Failure> {
        let boot = self.rng.random::<u32>();
        let timeline = self.rng.random::<u32>() | 1;
        let t = self.t;
        let peers: Vec<DeviceId> = self.pois.iter().map(|p| p.id).collect();
        let poi = &mut self.pois[node];
        poi.boots += 1;
        poi.booted_at = t;
        poi.origin = self.scenario.origin[node];
        let own = poi.own(t);
        let mut clock = ShowClock::new(poi.id, boot, timeline, own);
        clock.set_peers(&peers, own);
        poi.clock = Some(clock);
        poi.generation += 1;
        poi.last = None;
        poi.stepped = 0;
        poi.left.clear();
        poi.ties = 0;
        self.founded += 1;
        self.changed_at = t;
        self.wake(node)
    }

    fn script(&mut self, index: usize) {
        match self.scenario.happenings[index].clone() {
            Happening::Leave { node, away, .. } => {
                let poi = &mut self.pois[node];
                if poi.clock.take().is_some() {
                    poi.generation += 1;
                    poi.wake_at = None;
                    self.changed_at = self.t;
                    if let Some(away) = away {
                        self.schedule(self.t + away, Event::Start { node });
                    }
                }
            }
            Happening::Partition { until, side, .. } => {
                self.side = Some(side);
                self.changed_at = self.t;
                if until < self.scenario.duration_us {
                    self.schedule(until, Event::Heal);
                }
            }
        }
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.side.as_ref().is_none_or(|side| side[a] == side[b])
    }

    /// Runs a clock operation on poi `node`, checking show time did not go back and
    /// jumped only by a step the clock announced.
    fn checked<R>(&mut self, node: usize, op: impl FnOnce(&mut ShowClock, u64) -> R) -> Result<R, Failure> {
        let t = self.t;
        let poi = &mut self.pois[node];
        let own = poi.own(t);
        let clock = poi.clock.as_mut().expect("checked on a running poi");
        let before = clock.now(own);
        let steps_before = clock.steps().last().copied();
        let result = op(clock, own);
        let after = clock.now(own);
        let step = clock.steps().last().copied().filter(|s| Some(*s) != steps_before);
        if after < before {
            return Err(self.fail(format!("poi {node}'s show time went back from {before} to {after}")));
        }
        match step {
            None if after != before => {
                return Err(self.fail(format!("poi {node}'s show time jumped {} µs unannounced", after - before)));
            }
            Some(s) => {
                // Allowed beyond 50 ms (a long partition, a suspended host), but these
                // partitions and crystals never drift a group that far apart.
                if s.from == s.to {
                    return Err(self.fail(format!("poi {node} stepped {} µs within its timeline", s.by)));
                }
                let jump = if s.jumped { s.by.max(0) as u64 } else { 0 };
                if after - before != jump {
                    return Err(self.fail(format!("poi {node} moved {} µs for a step of {}", after - before, s.by)));
                }
                self.report.steps += 1;
                if std::env::var("POVPOI_CLOCK_TRACE").is_ok() {
                    eprintln!(
                        "{:.3} poi {node} step {:08x} -> {:08x} by {} at show {}",
                        self.t as f64 / 1e6,
                        s.from,
                        s.to,
                        s.by,
                        before
                    );
                }
                let founded = self.founded;
                let poi = &mut self.pois[node];
                poi.stepped += after - before;
                if !s.jumped && s.by > TIE_WINDOW_US {
                    return Err(self.fail(format!("poi {node} slewed into a timeline {} µs ahead", s.by)));
                }
                if poi.left.contains(&s.to) {
                    // Two timelines at the edge of the tie window may swap once while they
                    // close in; a real step back is a failure.
                    if s.by.unsigned_abs() > TIE_WINDOW_US.unsigned_abs() + STEP_ERROR_US {
                        return Err(
                            self.fail(format!("poi {node} went back to timeline {:08x}, which it had left", s.to))
                        );
                    }
                    self.report.tie_returns += 1;
                    poi.ties += 1;
                }
                poi.left.push(s.from);
                let steps = poi.left.len() as u64 - poi.ties;
                if steps >= founded {
                    return Err(self.fail(format!("poi {node} stepped {steps} times with {founded} timelines")));
                }
            }
            None => {}
        }
        Ok(result)
    }

    fn wake(&mut self, node: usize) -> Result<(), Failure> {
        self.checked(node, |clock, own| clock.poll(own))?;
        loop {
            let nonce = self.rng.random::<u32>();
            let poi = &mut self.pois[node];
            let own = poi.own(self.t);
            let Some((to, probe)) = poi.clock.as_mut().and_then(|c| c.probe(own, nonce)) else { break };
            let to = to.0[5] as usize | (to.0[4] as usize) << 8;
            self.send(node, to, &probe, self.t);
        }
        self.rearm(node);
        Ok(())
    }

    fn rearm(&mut self, node: usize) {
        let t = self.t;
        let poi = &mut self.pois[node];
        let Some(clock) = poi.clock.as_ref() else { return };
        let own = poi.own(t);
        let Some(due) = clock.next_due(own) else { return };
        let at = poi.true_time(due, t).max(t + 1);
        if poi.wake_at.is_none_or(|w| at < w || w <= t) {
            poi.wake_at = Some(at);
            let generation = poi.generation;
            self.schedule(at, Event::Wake { node, generation });
        }
    }

    fn send(&mut self, from: usize, to: usize, packet: &Packet, at: u64) {
        let bytes = packet::encode(packet, self.key.as_ref(), self.pois[to].id);
        let wire = bytes.len() as u64 + HEADER_BYTES;
        let (last_start, settled_from) = (self.last_start(), self.last_start() + 30_000_000);
        if (last_start..last_start + 10_000_000).contains(&at) {
            self.bytes_converging += wire;
        }
        if (settled_from..self.first_happening()).contains(&at) {
            self.bytes_settled += wire;
        }
        self.report.datagrams += 1;
        let c = self.conditions;
        if !self.reachable(from, to) || self.rng.random_bool(c.loss) {
            self.report.lost += 1;
            return;
        }
        let jitter = -c.jitter_mean_us * (1.0 - self.rng.random::<f64>()).ln();
        let mut delay = self.delay[from][to] + jitter as u64;
        if self.rng.random_bool(c.spike_chance) {
            // Pareto with shape 1.2 from the shortest spike, cut at the longest.
            let (low, high) = c.spike_us;
            let spike = low as f64 / (1.0 - self.rng.random::<f64>()).powf(1.0 / 1.2);
            delay += (spike as u64).min(high);
        }
        self.datagrams.push(Some(bytes));
        let datagram = self.datagrams.len() - 1;
        self.schedule(at + delay, Event::Deliver { to, datagram });
    }

    fn deliver(&mut self, to: usize, bytes: &[u8]) -> Result<(), Failure> {
        if self.pois[to].clock.is_none() {
            return Ok(());
        }
        let packet = match packet::decode(bytes, self.key.as_ref(), self.pois[to].id) {
            Ok(p) => p,
            Err(e) => return Err(self.fail(format!("poi {to} could not read a datagram: {e}"))),
        };
        match packet {
            Packet::Probe { from, .. } => {
                let from = from.0[5] as usize | (from.0[4] as usize) << 8;
                let (received, sent_at) = (self.pois[to].own(self.t), self.t + ANSWER_TIME_US);
                let sent = self.pois[to].own(sent_at);
                let answer = self.pois[to].clock.as_mut().and_then(|c| c.answer(&packet, received, sent));
                if let Some(answer) = answer {
                    self.send(to, from, &answer, sent_at);
                }
            }
            Packet::Answer { .. } => {
                let _ = self.checked(to, |clock, own| clock.take_answer(&packet, own, own))?;
            }
        }
        self.rearm(to);
        Ok(())
    }

    fn measure(&mut self) -> Result<(), Failure> {
        let t = self.t;
        // Every running clock: never back, never faster or slower than slewing allows.
        for node in 0..self.pois.len() {
            let poi = &self.pois[node];
            let Some(clock) = &poi.clock else { continue };
            let own = poi.own(t);
            let show = clock.now(own);
            if let Some((last_show, last_own, stepped_then)) = poi.last {
                let stepped = poi.stepped - stepped_then;
                let ran = (show - stepped) as f64 - last_show as f64;
                let own_ran = (own - last_own) as f64;
                let most = (SLEW_PPM as f64 / 1e6 + 0.0011) * own_ran + 2.0;
                if show < last_show || (ran - own_ran).abs() > most {
                    return Err(self.fail(format!(
                        "poi {node}'s show time ran {ran} µs in {own_ran} µs of its own clock (steps {stepped})"
                    )));
                }
            }
            self.pois[node].last = Some((show, own, self.pois[node].stepped));
        }
        // Groups: poi that are up and reach each other.
        let up: Vec<usize> = (0..self.pois.len()).filter(|i| self.pois[*i].clock.is_some()).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in &up {
            match groups.iter_mut().find(|g| self.reachable(g[0], i)) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let all_started = t >= self.last_start();
        for group in groups.iter().filter(|g| g.len() >= 2) {
            let shows: Vec<u64> =
                group.iter().map(|i| self.pois[*i].clock.as_ref().unwrap().now(self.pois[*i].own(t))).collect();
            let spread = shows.iter().max().unwrap() - shows.iter().min().unwrap();
            let one_timeline = group.windows(2).all(|w| {
                self.pois[w[0]].clock.as_ref().unwrap().timeline() == self.pois[w[1]].clock.as_ref().unwrap().timeline()
            });
            if all_started
                && self.report.converged_after_us.is_none()
                && group.len() == self.pois.len()
                && one_timeline
                && spread <= IN_STEP_US
                && t < self.first_happening()
            {
                self.report.converged_after_us = Some(t - self.last_start());
            }
            if all_started && t >= self.changed_at + SETTLE_US {
                if !one_timeline || spread > MAX_SETTLED_SPREAD_US {
                    return Err(self
                        .fail(format!("settled group {group:?} is {spread} µs apart (one timeline: {one_timeline})")));
                }
                self.report.spread.add(spread);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Report, Failure> {
        let t = self.scenario.duration_us;
        let shows: Vec<u64> =
            self.pois.iter().filter_map(|p| p.clock.as_ref().map(|c| c.now(p.own(t.max(p.booted_at))))).collect();
        if shows.len() == self.pois.len() {
            self.report.final_spread_us = Some(shows.iter().max().unwrap() - shows.iter().min().unwrap());
        }
        let n = self.pois.len() as f64;
        let pairs = n * (n - 1.0);
        self.report.converging_bytes_per_peer_s = 2.0 * self.bytes_converging as f64 / pairs / 10.0;
        let settled_s = self.first_happening().saturating_sub(self.last_start() + 30_000_000) as f64 / 1e6;
        if settled_s > 0.0 {
            self.report.settled_bytes_per_peer_s = 2.0 * self.bytes_settled as f64 / pairs / settled_s;
        }
        Ok(self.report)
    }
}

/// Holdover: two poi with crystals `ppm` off either way converge for `together_us`, lose
/// each other for `apart_us`; returns how far apart their show times are at the end, µs.
pub fn holdover(seed: u64, ppm: f64, together_us: u64, apart_us: u64, conditions: &Conditions) -> Result<u64, Failure> {
    let scenario = Scenario {
        duration_us: together_us + apart_us,
        start_at: vec![0, 0],
        origin: vec![1_000_000, 4_000_000],
        ppm: vec![ppm, -ppm],
        happenings: vec![Happening::Partition { at: together_us, until: u64::MAX, side: vec![true, false] }],
        keyed: false,
    };
    let report = run(seed, &scenario, conditions)?;
    report.final_spread_us.ok_or_else(|| Failure { seed, message: "a poi was not running at the end".into() })
}
