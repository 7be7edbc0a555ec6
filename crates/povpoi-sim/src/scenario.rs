//! One seeded run: random edits and syncs under faults, then healing and the final check.

use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Pattern, PatternKind, Rgb, Selection, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::show::Cue;
use povpoi_core::sync::{
    Categories, Direction, Error, Identity, Key, MAX_PUSH_RECORD_BYTES, Replica, Session, SyncOptions,
};
use povpoi_core::wire;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::oracle::{Converged, Oracle};
use crate::storage::SimStorage;
use crate::transport::{self, Fate, Leg, Link, Stop};

/// Wall-clock origin of a run (2023-11-14), so stamps look like real times.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// How a run went, for the report of a batch of seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Replicas in the run.
    pub replicas: usize,
    /// Edits saved.
    pub edits: usize,
    /// Sessions started during the random phase.
    pub sessions: usize,
    /// Of those, sessions that finished.
    pub sessions_completed: usize,
    /// Messages lost.
    pub lost: usize,
    /// Messages delivered twice.
    pub duplicated: usize,
    /// Old messages delivered again, out of order.
    pub replayed: usize,
    /// Crashes (plain restarts and crashes during a save).
    pub crashes: usize,
    /// Partitions begun.
    pub partitions: usize,
    /// The converged library.
    pub converged: Converged,
}

impl RunStats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &RunStats) {
        self.replicas += o.replicas;
        self.edits += o.edits;
        self.sessions += o.sessions;
        self.sessions_completed += o.sessions_completed;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.replayed += o.replayed;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.converged.live_items += o.converged.live_items;
        self.converged.deleted_items += o.converged.deleted_items;
        self.converged.multi_version_items += o.converged.multi_version_items;
        self.converged.images_checked += o.converged.images_checked;
    }
}

/// A failed run: enough to replay it.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Random steps before healing.
    pub steps: usize,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simulation seed {} failed after {} steps: {}\nreplay with: POVPOI_SIM_SEED={} POVPOI_SIM_STEPS={} \
             cargo test -p povpoi-sim --test simulation -- --nocapture",
            self.seed, self.steps, self.message, self.seed, self.steps
        )
    }
}

/// Number of replicas a seed runs with: 2 to 8.
fn replicas_for(seed: u64) -> usize {
    2 + (seed % 7) as usize
}

/// Runs `seed` for `steps` random steps, then heals and checks.
pub fn run(seed: u64, steps: usize) -> Result<RunStats, Failure> {
    World::new(seed, None).run(steps)
}

/// Like [`run`], writing every step to `trace`.
pub fn run_traced(seed: u64, steps: usize, trace: &mut String) -> Result<RunStats, Failure> {
    let mut world = World::new(seed, Some(String::new()));
    let result = world.run(steps);
    trace.push_str(world.trace.as_deref().unwrap_or(""));
    result
}

/// Finds the fewest random steps with which `seed` still fails (steps are drawn in order,
/// so a shorter run is a prefix of the longer one).
pub fn shrink(failure: Failure) -> Failure {
    let (mut lo, mut best) = (0, failure);
    while lo < best.steps {
        let mid = lo + (best.steps - lo) / 2;
        match run(best.seed, mid) {
            Err(f) => best = f,
            Ok(_) => lo = mid + 1,
        }
    }
    best
}

struct Node {
    replica: Option<Replica<SimStorage>>,
    identity: Identity,
    fail_saves: Rc<Cell<u32>>,
    clock_offset_ms: i64,
    side: u8,
}

/// Messages kept to be delivered again later, out of order.
enum Stashed {
    Request { to: usize, bytes: Vec<u8> },
    Response { to: usize, bytes: Vec<u8> },
}

struct World {
    rng: ChaCha8Rng,
    seed: u64,
    nodes: Vec<Node>,
    elapsed_ms: u64,
    oracle: Oracle,
    stash: Vec<Stashed>,
    stats: RunStats,
    trace: Option<String>,
}

/// A link that misbehaves at the rates of a run, remembering some messages for replay.
struct FaultyLink<'a> {
    rng: &'a mut ChaCha8Rng,
    stash: &'a mut Vec<Stashed>,
    stats: &'a mut RunStats,
    initiator: usize,
    responder: usize,
}

impl Link for FaultyLink<'_> {
    fn fate(&mut self, leg: Leg, bytes: &[u8]) -> Fate {
        if self.rng.random_bool(0.1) && self.stash.len() < 64 {
            self.stash.push(match leg {
                Leg::Request => Stashed::Request { to: self.responder, bytes: bytes.to_vec() },
                Leg::Response => Stashed::Response { to: self.initiator, bytes: bytes.to_vec() },
            });
        }
        let roll = self.rng.random_range(0..100);
        match roll {
            0..6 => {
                self.stats.lost += 1;
                Fate::Lose
            }
            6..11 => {
                self.stats.duplicated += 1;
                Fate::Duplicate
            }
            11..13 => Fate::CrashReceiver,
            _ => Fate::Deliver,
        }
    }
}

impl World {
    fn new(seed: u64, trace: Option<String>) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let count = replicas_for(seed);
        let far_future = rng.random_bool(0.2).then(|| rng.random_range(0..count));
        let nodes = (0..count)
            .map(|i| {
                let identity = Identity {
                    replica: ReplicaId(rng.random()),
                    device: DeviceId([0x02, 0, 0, 0, 0, i as u8]),
                    group: "troupe".into(),
                };
                let storage = SimStorage::default();
                let fail_saves = storage.fail_switch();
                let replica = Replica::open(storage, identity.clone()).expect("a new store opens");
                // Skew of up to 5 minutes each way; one poi may be a year ahead.
                let clock_offset_ms =
                    if far_future == Some(i) { 365 * 24 * 3600 * 1000 } else { rng.random_range(-300_000..=300_000) };
                Node { replica: Some(replica), identity, fail_saves, clock_offset_ms, side: 0 }
            })
            .collect();
        World {
            rng,
            seed,
            nodes,
            elapsed_ms: 0,
            oracle: Oracle::default(),
            stash: Vec::new(),
            stats: RunStats { replicas: count, ..Default::default() },
            trace,
        }
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let _ = writeln!(trace, "[{:>7} ms] {}", self.elapsed_ms, line());
        }
    }

    fn now(&self, i: usize) -> u64 {
        EPOCH_MS.saturating_add_signed(self.nodes[i].clock_offset_ms) + self.elapsed_ms
    }

    fn replica(&mut self, i: usize) -> &mut Replica<SimStorage> {
        self.nodes[i].replica.as_mut().expect("replicas are reopened right after a crash")
    }

    fn fail(&self, steps: usize, message: String) -> Failure {
        Failure { seed: self.seed, steps, message }
    }

    /// A fault: the replica loses its memory and reopens from what it saved.
    fn crash(&mut self, i: usize) -> Result<(), String> {
        self.stats.crashes += 1;
        self.restart(i)
    }

    /// Drops a replica's memory and reopens it from what it saved.
    fn restart(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        node.fail_saves.set(0);
        let storage = node.replica.take().expect("node is up").into_storage();
        let replica =
            Replica::open(storage, node.identity.clone()).map_err(|e| format!("replica {i} failed to reopen: {e}"))?;
        node.replica = Some(replica);
        Ok(())
    }

    fn run(&mut self, steps: usize) -> Result<RunStats, Failure> {
        for step in 0..steps {
            self.elapsed_ms += self.rng.random_range(0..3_000);
            self.step().map_err(|m| self.fail(steps, format!("step {step}: {m}")))?;
        }
        self.heal_and_check().map_err(|m| self.fail(steps, m))
    }

    fn step(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        match self.rng.random_range(0..100) {
            0..45 => {
                let i = self.rng.random_range(0..n);
                self.edit(i)
            }
            45..85 => {
                let a = self.rng.random_range(0..n);
                let b = (a + self.rng.random_range(1..n)) % n;
                self.random_sync(a, b)
            }
            85..90 => self.replay_stale(),
            90..94 => {
                let i = self.rng.random_range(0..n);
                self.log(|| format!("crash and restart replica {i}"));
                self.crash(i)
            }
            94..97 => {
                self.stats.partitions += 1;
                for node in &mut self.nodes {
                    node.side = self.rng.random_range(0..2);
                }
                let sides: Vec<u8> = self.nodes.iter().map(|n| n.side).collect();
                self.log(|| format!("partition {sides:?}"));
                Ok(())
            }
            _ => {
                self.nodes.iter_mut().for_each(|n| n.side = 0);
                self.log(|| "heal partition".into());
                Ok(())
            }
        }
    }

    fn random_options(&mut self) -> SyncOptions {
        if self.rng.random_bool(0.7) {
            return SyncOptions::default();
        }
        let direction = [Direction::Bidirectional, Direction::Push, Direction::Pull][self.rng.random_range(0..3)];
        let categories =
            Categories { images: self.rng.random(), patterns: self.rng.random(), settings: self.rng.random() };
        SyncOptions { direction, categories }
    }

    fn random_sync(&mut self, a: usize, b: usize) -> Result<(), String> {
        if self.nodes[a].side != self.nodes[b].side {
            self.log(|| format!("sync {a} -> {b}: partitioned"));
            return Ok(());
        }
        let options = self.random_options();
        // Half the sessions push in parts of one or a few items, so that lost messages,
        // crashes and stale replays fall between parts too. (A session runs whole here, so
        // no edit falls between its parts: povpoi-core's merge_properties has those.)
        let push_bytes = if self.rng.random_bool(0.5) { self.rng.random_range(1..300) } else { MAX_PUSH_RECORD_BYTES };
        self.stats.sessions += 1;
        let now = (self.now(a), self.now(b));
        let (fail_a, fail_b) = (self.nodes[a].fail_saves.clone(), self.nodes[b].fail_saves.clone());
        let (init, resp) = pair_mut(&mut self.nodes, a, b);
        let mut link = FaultyLink {
            rng: &mut self.rng,
            stash: &mut self.stash,
            stats: &mut self.stats,
            initiator: a,
            responder: b,
        };
        let mut crash_switch = |leg: Leg| match leg {
            Leg::Request => fail_b.set(1),
            Leg::Response => fail_a.set(1),
        };
        let outcome = transport::run_session(init, resp, options, now, push_bytes, &mut link, &mut crash_switch);
        self.log(|| format!("sync {a} -> {b} {options:?}: {:?} {:?}", outcome.report, outcome.stopped));
        match outcome.stopped {
            None => self.stats.sessions_completed += 1,
            Some(Stop::Crashed(Leg::Request)) => self.crash(b)?,
            Some(Stop::Crashed(Leg::Response)) => self.crash(a)?,
            Some(Stop::Lost(_)) => {}
            // Only failures a fault explains are acceptable; anything else is a bug.
            Some(Stop::Failed(e)) => return Err(format!("sync {a} -> {b} failed without a fault: {e}")),
        }
        Ok(())
    }

    /// Delivers a message from an earlier session again, long after it was sent.
    fn replay_stale(&mut self) -> Result<(), String> {
        if self.stash.is_empty() {
            self.log(|| "no stale message to replay".into());
            return Ok(());
        }
        self.stats.replayed += 1;
        let pick = self.rng.random_range(0..self.stash.len());
        match self.stash.swap_remove(pick) {
            Stashed::Request { to, bytes } => {
                let now = self.now(to);
                let request = wire::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let response = self.replica(to).respond(request, now);
                self.log(|| format!("stale request replayed to {to}: {}", short(&response)));
            }
            Stashed::Response { to, bytes } => {
                let now = self.now(to);
                let response = wire::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let replica = self.replica(to);
                let (mut session, _) = Session::start(replica, SyncOptions::default());
                let result = session.on_response(replica, response, now);
                self.log(|| {
                    format!(
                        "stale response replayed to {to}: {}",
                        result.as_ref().map_or_else(|e| e.to_string(), |_| "taken".into())
                    )
                });
                if let Err(Error::Storage(e)) = result {
                    return Err(format!("stale response broke storage: {e}"));
                }
            }
        }
        Ok(())
    }

    fn edit(&mut self, i: usize) -> Result<(), String> {
        let crash_mid_save = self.rng.random_bool(0.03);
        if crash_mid_save {
            self.nodes[i].fail_saves.set(1);
        }
        let now = self.now(i);
        let result = self.apply_random_edit(i, now);
        self.nodes[i].fail_saves.set(0);
        let (key, what) = match result {
            Ok(Some(done)) => done,
            Ok(None) => {
                self.log(|| format!("replica {i}: nothing to edit"));
                return Ok(());
            }
            Err(Error::PixelsMissing(key)) => {
                self.log(|| format!("replica {i}: cannot edit {key:?} before its pixels arrive"));
                return Ok(());
            }
            Err(Error::Storage(_)) if crash_mid_save => {
                self.log(|| format!("replica {i} crashed while saving an edit"));
                return self.crash(i);
            }
            Err(e) => return Err(format!("edit on replica {i} failed: {e}")),
        };
        let record = match self.replica(i).siblings(&key) {
            [record] => record.clone(),
            other => return Err(format!("a local edit left {} versions of {key:?}", other.len())),
        };
        self.log(|| format!("replica {i}: {what} -> {:?}", record.dot));
        self.oracle.record_write(record);
        self.stats.edits += 1;
        Ok(())
    }

    /// Makes one random local edit; `None` when the chosen edit had nothing to act on.
    fn apply_random_edit(&mut self, i: usize, now: u64) -> Result<Option<(Key, String)>, Error> {
        let rng = &mut self.rng;
        let replica = self.nodes[i].replica.as_mut().unwrap();
        let images: Vec<_> = replica.images().map(|(id, _)| id).collect();
        let image = (!images.is_empty()).then(|| images[rng.random_range(0..images.len())]);
        let color = |rng: &mut ChaCha8Rng| Rgb::new(rng.random(), rng.random(), rng.random());
        Ok(Some(match rng.random_range(0..100) {
            0..20 => {
                let (w, h) = (rng.random_range(1..=5u32), rng.random_range(1..=3u32));
                // Some uploads repeat an earlier picture: the blob is shared, not resent.
                let shade = rng.random_range(0..4u8);
                let pixels: Vec<u8> = (0..w * h * 3).map(|p| (p as u8).wrapping_mul(shade)).collect();
                let name = format!("img{}", rng.random_range(0..1000));
                let id = replica.add_image(&name, w, h, &pixels, now)?;
                self.oracle.record_pixels(&pixels);
                (Key::Image(id), format!("add image {name} {w}x{h}"))
            }
            20..34 => {
                let Some(id) = image else { return Ok(None) };
                let name = format!("renamed{}", rng.random_range(0..1000));
                replica.rename_image(id, &name, now)?;
                (Key::Image(id), format!("rename {id} to {name}"))
            }
            34..44 => {
                let Some(id) = image else { return Ok(None) };
                replica.delete_image(id, now)?;
                (Key::Image(id), format!("delete {id}"))
            }
            44..60 => {
                let slot = rng.random_range(0..4);
                let kind = PatternKind::ALL[rng.random_range(0..18)];
                let pattern = Pattern::new(kind, color(rng), color(rng), rng.random_range(1..=255))?;
                replica.set_pattern(slot, pattern, now, Cue(now * 1_000))?;
                (Key::Pattern(slot), format!("set pattern {slot} {kind:?}"))
            }
            60..65 => {
                let slot = rng.random_range(0..4);
                if replica.pattern(slot).is_none() {
                    return Ok(None);
                }
                replica.clear_pattern(slot, now, Cue(now * 1_000))?;
                (Key::Pattern(slot), format!("clear pattern {slot}"))
            }
            65..73 => {
                let slot = rng.random_range(0..2);
                let items = (0..rng.random_range(1..=10))
                    .map(|_| SequenceItem {
                        target: match image.filter(|_| rng.random()) {
                            Some(id) => SequenceTarget::Image(id),
                            None => SequenceTarget::Pattern(rng.random_range(0..4)),
                        },
                        duration_ms: rng.random_range(1..=5000),
                    })
                    .collect();
                replica.set_sequence(slot, Sequence::new(items, rng.random())?, now, Cue(now * 1_000))?;
                (Key::Sequence(slot), format!("set sequence {slot}"))
            }
            73..76 => {
                let slot = rng.random_range(0..2);
                if replica.sequence(slot).is_none() {
                    return Ok(None);
                }
                replica.clear_sequence(slot, now, Cue(now * 1_000))?;
                (Key::Sequence(slot), format!("clear sequence {slot}"))
            }
            76..84 => {
                let b = rng.random();
                replica.set_brightness(b, now, Cue(now * 1_000))?;
                (Key::Brightness, format!("brightness {b}"))
            }
            84..89 => {
                let f = rng.random_range(1..=255);
                replica.set_framerate(f, now, Cue(now * 1_000))?;
                (Key::Framerate, format!("framerate {f}"))
            }
            89..94 => {
                let selection =
                    Selection { mode: Mode::from_id(rng.random_range(0..5))?, index: rng.random_range(0..4) };
                replica.set_selection(selection, now, Cue(now * 1_000))?;
                (Key::Selection, format!("select {selection:?}"))
            }
            _ => {
                let conflicts: Vec<_> = replica
                    .conflicts()
                    .map(|c| (c.key, c.copies.iter().map(|r| r.dot).chain([c.winner.dot]).collect::<Vec<_>>()))
                    .collect();
                if conflicts.is_empty() {
                    return Ok(None);
                }
                let (key, dots) = &conflicts[rng.random_range(0..conflicts.len())];
                let keep = dots[rng.random_range(0..dots.len())];
                replica.resolve(*key, keep, now, Cue(now * 1_000))?;
                (*key, format!("resolve {key:?} keeping {keep:?}"))
            }
        }))
    }

    /// Ends partitions and faults, restarts everyone from storage, runs one full round of
    /// syncs (everyone with replica 0, twice over) and checks against the oracle.
    fn heal_and_check(&mut self) -> Result<RunStats, String> {
        self.log(|| "heal: restart all, full round".into());
        for i in 0..self.nodes.len() {
            self.restart(i)?;
        }
        for _pass in 0..2 {
            for i in 1..self.nodes.len() {
                let now = self.now(0).max(self.now(i));
                let (hub, other) = pair_mut(&mut self.nodes, 0, i);
                transport::sync(hub, other, SyncOptions::default(), now)
                    .map_err(|e| format!("final sync 0 <-> {i}: {e}"))?;
            }
        }
        let mut replicas: Vec<_> = self.nodes.iter_mut().map(|n| n.replica.take().unwrap()).collect();
        let result = self.oracle.check(&mut replicas);
        for (node, replica) in self.nodes.iter_mut().zip(replicas) {
            node.replica = Some(replica);
        }
        self.stats.converged = result?;
        Ok(self.stats)
    }
}

/// The replicas of two different nodes, both borrowed mutably.
fn pair_mut(nodes: &mut [Node], a: usize, b: usize) -> (&mut Replica<SimStorage>, &mut Replica<SimStorage>) {
    assert_ne!(a, b, "a replica does not sync with itself");
    let (lo, hi) = (a.min(b), a.max(b));
    let (left, right) = nodes.split_at_mut(hi);
    let (low, high) = (left[lo].replica.as_mut().expect("node is up"), right[0].replica.as_mut().expect("node is up"));
    if a < b { (low, high) } else { (high, low) }
}

fn short(response: &povpoi_core::sync::Response) -> String {
    let text = format!("{response:?}");
    text.chars().take(80).collect()
}
