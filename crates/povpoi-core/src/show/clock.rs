//! The show clock of one poi: its timeline, its peers' clocks as probes measured them, and
//! the rules every poi applies alike so a group plays on one timeline with nobody in charge.
//!
//! - **Measuring.** Each poi probes each peer (NTP's four timestamps); a [`PeerFilter`]
//!   turns the samples into the peer's own clock relative to ours (minimum-delay offset,
//!   fitted rate). With the mapping the peer announces in its answer, that gives the
//!   peer's show time on our own clock, and `θ` = its show time minus ours.
//! - **One timeline.** A new poi founds a timeline whose show time starts at its own clock
//!   (its uptime) plus up to [`FOUNDING_SPREAD_US`] taken from the timeline's random id, so
//!   a timeline that has run longer is further ahead, and poi started together are spread
//!   apart by chance rather than by a few ms of process start-up. A poi that measures a peer
//!   on another timeline more than [`TIE_WINDOW_US`] ahead of its own, or within that
//!   window either way with a larger timeline id, plans to join it: it announces a [`Plan`]
//!   (target, the show time of the step, its size) [`STEP_NOTICE_US`] ahead, every poi of
//!   its timeline that hears the plan adopts it, and all step forward together (a tied
//!   timeline is slewed into instead: the two are being averaged anyway). Two
//!   timelines planning to join each other keep the plan toward the larger id. Timelines
//!   within the window of each other also average their show times (below), so they close
//!   in until every poi measures them as tied and the larger id settles it for all alike,
//!   whatever each one's measuring error.
//! - **Staying together.** Among the poi of one timeline nobody leads: each moves its show
//!   time toward the mean of its own and its peers' (symmetric consensus, slewed in at up
//!   to 5 %; peers of a timeline within the tie window count too) and its rate toward the
//!   mean of theirs, so the group keeps the timeline when
//!   any poi leaves, and a poi cut off from all keeps the group's rate (holdover).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use litemap::LiteMap;

use super::filter::{PeerFilter, Sample, Skew};
use super::mapping::ShowMapping;
use super::packet::{Announce, Packet, Plan};
use crate::device::DeviceId;

/// A new timeline starts this much ahead of its founder's own clock at most (the timeline
/// id modulo this), so timelines founded at the same moment are rarely within measuring
/// error of each other. The price: a poi restarted within this time of its group's
/// founding may find its new timeline ahead, and the group then steps to it.
pub const FOUNDING_SPREAD_US: u64 = 5_000_000;
/// Timelines this close are ranked by id, not by which is ahead: the decision then does
/// not hang on measuring error (a step is planned only once the offset is known to
/// [`STEP_ERROR_US`]), and such timelines average toward each other meanwhile.
pub const TIE_WINDOW_US: i64 = 20_000;
/// How far ahead a step to another timeline is announced, so the other poi of the timeline
/// left hear of it (in a probe answer) and step at the same instant.
pub const STEP_NOTICE_US: u64 = 500_000;
/// Corrections within a timeline up to this size are slewed; a larger forward one is a
/// step (it happens only after a long partition or a suspended host).
pub const STEP_THRESHOLD_US: i64 = 50_000;
/// Probe period while a peer has answered fewer than [`BURST_ANSWERS`] probes.
pub const BURST_PERIOD_US: u64 = 250_000;
/// Probe period while converging (another timeline, a step planned, or more than
/// [`IN_STEP_US`] apart).
pub const CONVERGING_PERIOD_US: u64 = 1_000_000;
/// Probe period once in step.
pub const SETTLED_PERIOD_US: u64 = 4_000_000;
/// Answers a peer gives before probing slows from the burst period.
pub const BURST_ANSWERS: u32 = 4;
/// An answer later than this is not taken (its offset error could be half of it).
pub const ANSWER_TIMEOUT_US: u64 = 2_000_000;
/// Show time within this of every peer's: in step.
pub const IN_STEP_US: u64 = 1_000;
/// A peer whose offset is known no better than this is left out.
const USABLE_ERROR_US: u64 = 25_000;
/// A step to another timeline is planned once the offset to it is known this well (or from
/// `DECIDE_SAMPLES` samples, whatever their delay); consensus slews in the rest.
pub const STEP_ERROR_US: u64 = 5_000;
/// Samples after which a step is planned even on a slow path.
const DECIDE_SAMPLES: usize = 8;
/// A peer not heard for this long no longer counts: its announced mapping may be stale.
const PEER_STALE_US: u64 = 20_000_000;
/// Part of the mean offset corrected per answer.
const OFFSET_GAIN: f64 = 0.7;
/// Part of the mean rate difference corrected per answer.
const RATE_GAIN: f64 = 0.5;
/// A fitted peer rate this uncertain is not used for the rate consensus.
const MAX_SKEW_ERROR_PPB: f64 = 20_000.0;
/// Probes awaiting an answer from one peer (8 fit in the answer timeout at the burst period).
const MAX_OUTSTANDING_PER_PEER: usize = 8;
/// Steps remembered for the status.
const STEPS_KEPT: usize = 8;
/// A peer of the same timeline further away than this is broken (or lying), not late: it
/// is left out of the consensus.
const SANE_THETA_US: u64 = 1_000_000;
/// Probes answered lately, remembered so a replayed one is not answered again.
const PROBES_KEPT: usize = 256;

/// What a poi last heard from a peer in an answer.
#[derive(Clone, Copy, Debug)]
struct Heard {
    state: Announce,
    /// Peer's own clock when it sent the answer.
    sent: u64,
    /// Our own clock when it arrived.
    at: u64,
}

#[derive(Clone, Debug)]
struct PeerClock {
    filter: PeerFilter,
    heard: Option<Heard>,
    next_probe: u64,
    last_probe: Option<u64>,
    answers: u32,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    nonce: u32,
    peer: DeviceId,
    sent: u64,
}

/// A peer as the clock sees it now.
#[derive(Clone, Copy, Debug)]
struct View {
    timeline: u32,
    /// Its show time minus ours (both where they are headed), µs.
    theta: i64,
    error: u64,
    skew: Option<Skew>,
    rate_ppb: i32,
    plan: Option<Plan>,
    samples: usize,
}

/// A jump of show time, kept for the status and the event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Own clock when it was made, µs.
    pub own: u64,
    /// Show time just before it, µs.
    pub show_before: u64,
    /// How far the timeline joined was from ours, µs.
    pub by: i64,
    /// Whether show time jumped by `by` (a timeline more than [`TIE_WINDOW_US`] ahead, or a
    /// large correction), or `by` is slewed in (a tied timeline, or one behind).
    pub jumped: bool,
    /// Timeline left (the same as `to` for a large correction within a timeline).
    pub from: u32,
    /// Timeline joined.
    pub to: u32,
}

/// Why an answer did not move the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not an answer to a probe still awaited from that peer: late, replayed, or forged.
    Unexpected,
    /// Times that cannot be real, or a round trip over [`ANSWER_TIMEOUT_US`].
    Implausible,
}

/// How a poi stands with its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No peer measured: playing on its own timeline.
    Alone,
    /// Peers measured, not all in step yet (another timeline, a step planned, apart).
    Converging,
    /// Every measured peer on this timeline, no step planned, and show time within
    /// [`IN_STEP_US`] of the peers' mean.
    InStep,
}

/// One peer in the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its device id.
    pub device: DeviceId,
    /// The timeline it follows, if it answered.
    pub timeline: Option<u32>,
    /// Its show time minus ours, µs, if measured.
    pub offset: Option<i64>,
    /// The error bound of that, µs.
    pub error: Option<u64>,
    /// Shortest round trip in the window, µs.
    pub delay: Option<u64>,
    /// Its own clock's rate against ours, ppb, once fitted.
    pub skew_ppb: Option<i64>,
    /// Samples in the window.
    pub samples: usize,
    /// Own-clock µs since its last answer.
    pub heard_ago: Option<u64>,
}

/// The clock's state for `/api/clock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// Show time, µs.
    pub show: u64,
    /// The timeline followed.
    pub timeline: u32,
    /// How it stands with the peers.
    pub standing: Standing,
    /// No measured peer of this timeline is further than this from us, µs (their offset
    /// plus its error bound); `None` alone.
    pub error_bound: Option<u64>,
    /// Rate correction, ppb.
    pub rate_ppb: i64,
    /// Correction still being slewed in, µs.
    pub slewing: i64,
    /// The step planned, if any.
    pub plan: Option<Plan>,
    /// Every peer the clock probes.
    pub peers: Vec<PeerStatus>,
    /// The last steps, oldest first.
    pub steps: Vec<Step>,
}

/// One poi's show clock. Time comes in as the poi's own clock in µs (monotonic, any
/// origin; its value when the clock is made is where the poi's first timeline starts).
#[derive(Clone, Debug)]
pub struct ShowClock {
    me: DeviceId,
    boot: u32,
    timeline: u32,
    mapping: ShowMapping,
    plan: Option<Plan>,
    peers: LiteMap<DeviceId, PeerClock>,
    outstanding: Vec<Outstanding>,
    steps: Vec<Step>,
    answered: VecDeque<(DeviceId, u32)>,
}

/// Whether timeline `theirs`, measured `theta` µs ahead of ours (`ours`), is to be joined:
/// ahead beyond the tie window, or within it with the larger id.
fn beats(theta: i64, theirs: u32, ours: u32) -> bool {
    theirs != ours && (theta > TIE_WINDOW_US || (theta >= -TIE_WINDOW_US && theirs > ours))
}

/// Whether plan `a` is to be followed rather than `b`: the target further ahead (then the
/// larger id), or for the same target the earlier step.
fn better(a: &Plan, b: &Plan) -> bool {
    if a.target == b.target { a.at < b.at } else { (a.step, a.target) > (b.step, b.target) }
}

impl ShowClock {
    /// A clock founding timeline `timeline` (random) at own time `own`; `boot` is random
    /// per start of the poi. Show time starts at `own` plus `timeline` modulo
    /// [`FOUNDING_SPREAD_US`].
    pub fn new(me: DeviceId, boot: u32, timeline: u32, own: u64) -> ShowClock {
        ShowClock {
            me,
            boot,
            timeline,
            mapping: ShowMapping::starting_at(own, own + u64::from(timeline) % FOUNDING_SPREAD_US),
            plan: None,
            peers: LiteMap::new(),
            outstanding: Vec::new(),
            steps: Vec::new(),
            answered: VecDeque::new(),
        }
    }

    /// Show time at own time `own`, µs. Never less than at an earlier `own`.
    pub fn now(&self, own: u64) -> u64 {
        self.mapping.show_at(own)
    }

    /// The timeline followed.
    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The show mapping, for a reader that wants show time without holding the clock
    /// (copy it after each call that changes the clock).
    pub fn mapping(&self) -> ShowMapping {
        self.mapping
    }

    /// The last steps, oldest first.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// What this poi says of its clock in a datagram sent at own time `own`.
    pub fn announce(&self, own: u64) -> Announce {
        Announce {
            boot: self.boot,
            timeline: self.timeline,
            show: self.mapping.target_at(own),
            rate_ppb: self.mapping.rate_ppb() as i32,
            plan: self.plan,
        }
    }

    /// Sets the peers to probe (the online poi of the group): new ones are probed at once,
    /// missing ones forgotten.
    pub fn set_peers(&mut self, peers: &[DeviceId], own: u64) {
        self.peers.retain(|id, _| peers.contains(id));
        for id in peers.iter().filter(|id| **id != self.me) {
            self.peers.entry(*id).or_insert(PeerClock {
                filter: PeerFilter::default(),
                heard: None,
                next_probe: own,
                last_probe: None,
                answers: 0,
            });
        }
        self.outstanding.retain(|o| peers.contains(&o.peer));
    }

    /// The next probe due at own time `own`, if any: the peer and the packet (with `nonce`,
    /// which must be random). Call until `None`.
    pub fn probe(&mut self, own: u64, nonce: u32) -> Option<(DeviceId, Packet)> {
        self.outstanding.retain(|o| own.saturating_sub(o.sent) <= ANSWER_TIMEOUT_US);
        let (&id, _) = self.peers.iter().filter(|(_, p)| p.next_probe <= own).min_by_key(|(_, p)| p.next_probe)?;
        let period = self.period(id, own);
        // ±10 % from the nonce, so poi started together do not probe in lockstep.
        let jittered = period / 10 * 9 + period / 5 * u64::from(nonce % 1_000) / 1_000;
        let state = self.announce(own);
        let peer = self.peers.get_mut(&id)?;
        peer.next_probe = own + jittered;
        peer.last_probe = Some(own);
        if self.outstanding.iter().filter(|o| o.peer == id).count() >= MAX_OUTSTANDING_PER_PEER
            && let Some(oldest) = self.outstanding.iter().position(|o| o.peer == id)
        {
            self.outstanding.remove(oldest);
        }
        self.outstanding.push(Outstanding { nonce, peer: id, sent: own });
        Some((id, Packet::Probe { from: self.me, nonce, state }))
    }

    /// Own time of the next thing to do (a probe, a planned step), if any.
    pub fn next_due(&self, own: u64) -> Option<u64> {
        let probe = self.peers.values().map(|p| p.next_probe).min();
        let step = self.plan.map(|p| own + p.at.saturating_sub(self.now(own)));
        probe.into_iter().chain(step).min()
    }

    /// Answers a probe that arrived at own time `received`, sent at own time `own`; `None`
    /// for one of ours, or one answered lately (a replay: every probe has a fresh nonce).
    /// A probe announcing news (a restart, another timeline, a plan) makes its sender due
    /// for a probe of ours soon, since only answers are believed.
    pub fn answer(&mut self, probe: &Packet, received: u64, own: u64) -> Option<Packet> {
        let Packet::Probe { from, nonce, state } = *probe else { return None };
        if from == self.me || self.answered.contains(&(from, nonce)) {
            return None;
        }
        if self.answered.len() == PROBES_KEPT {
            self.answered.pop_front();
        }
        self.answered.push_back((from, nonce));
        if let Some(peer) = self.peers.get_mut(&from) {
            let news = peer.heard.is_none_or(|h| {
                (h.state.boot, h.state.timeline, h.state.plan) != (state.boot, state.timeline, state.plan)
            });
            if news {
                let soonest = peer.last_probe.map_or(own, |t| t + BURST_PERIOD_US);
                peer.next_probe = peer.next_probe.min(soonest.max(own));
            }
        }
        let held = u32::try_from(own.saturating_sub(received)).unwrap_or(u32::MAX);
        Some(Packet::Answer { from: self.me, nonce, received, held, state: self.announce(own) })
    }

    /// Takes an answer that arrived at own time `arrived`, at own time `own` (now, so what
    /// changes is anchored where show time is being read); returns the steps it caused.
    pub fn take_answer(&mut self, answer: &Packet, arrived: u64, own: u64) -> Result<Vec<Step>, Ignored> {
        let Packet::Answer { from, nonce, received, held, state } = *answer else { return Err(Ignored::Unexpected) };
        let at = self.outstanding.iter().position(|o| o.nonce == nonce && o.peer == from).ok_or(Ignored::Unexpected)?;
        let probe = self.outstanding.swap_remove(at);
        if arrived.saturating_sub(probe.sent) > ANSWER_TIMEOUT_US {
            return Err(Ignored::Unexpected);
        }
        let sent = received.checked_add(u64::from(held)).ok_or(Ignored::Implausible)?;
        let sample = Sample::from_exchange(probe.sent, received, sent, arrived).ok_or(Ignored::Implausible)?;
        let peer = self.peers.get_mut(&from).ok_or(Ignored::Unexpected)?;
        if peer.heard.is_some_and(|h| h.state.boot != state.boot) {
            // Its own clock started again: the old samples relate to a clock that is gone.
            peer.filter = PeerFilter::default();
            peer.answers = 0;
        }
        peer.filter.add(sample);
        peer.answers += 1;
        peer.heard = Some(Heard { state, sent, at: arrived });
        let mut steps: Vec<Step> = self.poll(own).into_iter().collect();
        steps.extend(self.decide(own));
        Ok(steps)
    }

    /// Makes a planned step that has fallen due at own time `own`: by the offset to the
    /// target's poi measured now if some are measured, else by the plan's.
    pub fn poll(&mut self, own: u64) -> Option<Step> {
        let mut plan = self.plan.filter(|p| self.now(own) >= p.at)?;
        self.plan = None;
        let fresh: Vec<i64> = self.views(own).iter().filter(|v| v.timeline == plan.target).map(|v| v.theta).collect();
        if !fresh.is_empty() {
            plan.step = (fresh.iter().map(|t| *t as f64).sum::<f64>() / fresh.len() as f64) as i64;
        }
        let show_before = self.now(own);
        // A timeline within the tie window is joined by slewing: the two were being
        // averaged together anyway, and a jump there would only swap their places.
        let jumped = plan.step > TIE_WINDOW_US;
        if jumped {
            self.mapping.step(own, plan.step as u64);
        } else {
            self.mapping.correct(own, plan.step);
        }
        let step = Step { own, show_before, by: plan.step, jumped, from: self.timeline, to: plan.target };
        self.timeline = plan.target;
        Some(self.remember(step))
    }

    fn remember(&mut self, step: Step) -> Step {
        if self.steps.len() == STEPS_KEPT {
            self.steps.remove(0);
        }
        self.steps.push(step);
        step
    }

    fn period(&self, id: DeviceId, own: u64) -> u64 {
        let Some(peer) = self.peers.get(&id) else { return SETTLED_PERIOD_US };
        if peer.answers < BURST_ANSWERS {
            return BURST_PERIOD_US;
        }
        match self.view(id, own) {
            Some(v) if v.timeline == self.timeline && self.plan.is_none() && v.theta.unsigned_abs() <= IN_STEP_US => {
                SETTLED_PERIOD_US
            }
            _ => CONVERGING_PERIOD_US,
        }
    }

    /// A peer as measured now, if it is measured well enough to count.
    fn view(&self, id: DeviceId, own: u64) -> Option<View> {
        let peer = self.peers.get(&id)?;
        let heard = peer.heard?;
        if own.saturating_sub(heard.at) > PEER_STALE_US {
            return None;
        }
        let offset = peer.filter.offset_at(own)?;
        if offset.error > USABLE_ERROR_US {
            return None;
        }
        // The peer's own clock now, through the mapping it announced, gives its show time.
        let peer_own = i128::from(own) + i128::from(offset.offset);
        let elapsed = peer_own - i128::from(heard.sent);
        let theirs =
            i128::from(heard.state.show) + elapsed + elapsed * i128::from(heard.state.rate_ppb) / 1_000_000_000;
        let theta = theirs - i128::from(self.mapping.target_at(own));
        Some(View {
            timeline: heard.state.timeline,
            theta: theta.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            error: offset.error,
            skew: peer.filter.skew(),
            rate_ppb: heard.state.rate_ppb,
            plan: heard.state.plan,
            samples: peer.filter.len(),
        })
    }

    fn views(&self, own: u64) -> Vec<View> {
        self.peers.keys().filter_map(|id| self.view(*id, own)).collect()
    }

    /// Plans a step if a timeline to join is measured or announced, then moves toward the
    /// group of this timeline; returns a step if the move was too large to slew.
    fn decide(&mut self, own: u64) -> Option<Step> {
        let views = self.views(own);
        let show = self.now(own);
        let ours = self.timeline;
        // Members of timeline `t` that plan to join ours: they come to us, unless ours is
        // the smaller id and we plan to go to them (crossing plans keep the larger target).
        let coming = |t: u32| views.iter().any(|v| v.timeline == t && v.plan.is_some_and(|p| p.target == ours));
        if self.plan.is_some_and(|p| coming(p.target) && ours > p.target) {
            self.plan = None;
        }
        for v in views.iter().filter(|v| v.timeline == ours) {
            // A plan of the timeline we share, heard in an answer: everybody steps at its instant.
            if let Some(plan) = v.plan.filter(|p| p.target != ours && !(coming(p.target) && ours > p.target)) {
                self.consider(Plan { at: plan.at.min(show.saturating_add(2 * STEP_NOTICE_US)), ..plan }, own);
            }
        }
        let candidate = views
            .iter()
            .filter(|v| v.error <= STEP_ERROR_US || v.samples >= DECIDE_SAMPLES)
            .filter(|v| beats(v.theta, v.timeline, ours) && !(coming(v.timeline) && ours > v.timeline))
            .max_by_key(|v| (v.theta, v.timeline));
        if let Some(v) = candidate {
            self.consider(Plan { target: v.timeline, at: show.saturating_add(STEP_NOTICE_US), step: v.theta }, own);
        }

        // Consensus with this timeline's peers and with those of tied timelines, which
        // closes the gap between the two until every poi measures them tied (a join within
        // the window is slewed, and measured afresh when it falls due, so nothing counts
        // twice). A peer of this timeline a second or more away is broken, not late: it is
        // left out.
        let peers: Vec<&View> = views
            .iter()
            .filter(|v| {
                if v.timeline == ours {
                    v.theta.unsigned_abs() <= SANE_THETA_US
                } else {
                    v.theta.abs() <= TIE_WINDOW_US
                }
            })
            .collect();
        if peers.is_empty() {
            return None;
        }
        let n = peers.len() as f64 + 1.0;
        let mean = peers.iter().map(|v| v.theta as f64).sum::<f64>() / n;
        let correction = (OFFSET_GAIN * mean) as i64;
        let mut step = None;
        if correction > STEP_THRESHOLD_US {
            let show_before = self.now(own);
            self.mapping.step(own, correction as u64);
            let timeline = self.timeline;
            let step_made = Step { own, show_before, by: correction, jumped: true, from: timeline, to: timeline };
            step = Some(self.remember(step_made));
        } else {
            self.mapping.correct(own, correction);
        }
        let rate = self.mapping.rate_ppb() as f64;
        let rated: Vec<f64> = peers
            .iter()
            .filter_map(|v| v.skew.filter(|s| s.error_ppb <= MAX_SKEW_ERROR_PPB).map(|s| (v.rate_ppb, s)))
            .map(|(their_rate, skew)| f64::from(their_rate) + skew.ppb - rate)
            .collect();
        if !rated.is_empty() {
            let mean = rated.iter().sum::<f64>() / (rated.len() as f64 + 1.0);
            self.mapping.set_rate(own, (rate + RATE_GAIN * mean) as i64);
        }
        step
    }

    /// Takes `plan` if it is better than the one held; a new plan is announced to every
    /// peer at once (a probe carries it, and a peer probed with news probes back).
    fn consider(&mut self, plan: Plan, own: u64) {
        if plan.target != self.timeline && self.plan.is_none_or(|current| better(&plan, &current)) {
            if self.plan.is_none_or(|current| current.target != plan.target) {
                for (_, peer) in self.peers.iter_mut() {
                    let soonest = peer.last_probe.map_or(own, |t| t + BURST_PERIOD_US).max(own);
                    peer.next_probe = peer.next_probe.min(soonest);
                }
            }
            self.plan = Some(plan);
        }
    }

    /// Where the clock stands at own time `own`.
    pub fn status(&self, own: u64) -> ClockStatus {
        let views: Vec<(DeviceId, Option<View>)> = self.peers.keys().map(|id| (*id, self.view(*id, own))).collect();
        let measured: Vec<&View> = views.iter().filter_map(|(_, v)| v.as_ref()).collect();
        let ours: Vec<&&View> = measured.iter().filter(|v| v.timeline == self.timeline).collect();
        let standing = if measured.is_empty() {
            Standing::Alone
        } else if self.plan.is_none()
            && ours.len() == measured.len()
            && (ours.iter().map(|v| v.theta as f64).sum::<f64>() / ours.len() as f64).abs() <= IN_STEP_US as f64
        {
            Standing::InStep
        } else {
            Standing::Converging
        };
        let error_bound = ours.iter().map(|v| v.theta.unsigned_abs().saturating_add(v.error)).max();
        let peers = views
            .iter()
            .map(|(id, view)| {
                let peer = &self.peers[id];
                PeerStatus {
                    device: *id,
                    timeline: peer.heard.map(|h| h.state.timeline),
                    offset: view.map(|v| v.theta),
                    error: view.map(|v| v.error),
                    delay: peer.filter.min_delay(),
                    skew_ppb: peer.filter.skew().map(|s| s.ppb as i64),
                    samples: peer.filter.len(),
                    heard_ago: peer.heard.map(|h| own.saturating_sub(h.at)),
                }
            })
            .collect();
        ClockStatus {
            show: self.now(own),
            timeline: self.timeline,
            standing,
            error_bound,
            rate_ppb: self.mapping.rate_ppb(),
            slewing: self.mapping.slew_left_at(own),
            plan: self.plan,
            peers,
            steps: self.steps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DeviceId = DeviceId([2, 0, 0, 0, 0, 1]);
    const B: DeviceId = DeviceId([2, 0, 0, 0, 0, 2]);

    /// Two poi on a 1 ms link (0.5 ms each way); B's own clock runs `skew` ppm fast.
    struct Pair {
        a: ShowClock,
        b: ShowClock,
        t: u64,
        origins: [u64; 2],
        skew: f64,
        nonce: u32,
    }

    impl Pair {
        /// A's own clock reads `a_start` and B's `b_start` at true time 0.
        fn new(a_start: u64, b_start: u64, skew: f64) -> Pair {
            let mut a = ShowClock::new(A, 1, 100, a_start);
            let mut b = ShowClock::new(B, 2, 200, b_start);
            a.set_peers(&[B], a_start);
            b.set_peers(&[A], b_start);
            Pair { a, b, t: 0, origins: [a_start, b_start], skew, nonce: 1 }
        }

        fn own(&self, side: usize, t: u64) -> u64 {
            let rate = if side == 0 { 1.0 } else { 1.0 + self.skew / 1e6 };
            self.origins[side] + (t as f64 * rate) as u64
        }

        /// Runs `us` µs of true time in 1 ms ticks, exchanging every probe due.
        fn run(&mut self, us: u64) {
            let end = self.t + us;
            while self.t < end {
                self.t += 1_000;
                for side in [0, 1] {
                    self.nonce = self.nonce.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let (sent, there, back) =
                        (self.own(side, self.t), self.own(1 - side, self.t + 500), self.own(side, self.t + 1_000));
                    let (p, q) = if side == 0 { (&mut self.a, &mut self.b) } else { (&mut self.b, &mut self.a) };
                    p.poll(sent);
                    if let Some((_, probe)) = p.probe(sent, self.nonce) {
                        let answer = q.answer(&probe, there, there).unwrap();
                        let _ = p.take_answer(&answer, back, back);
                    }
                }
            }
        }

        fn show(&self, side: usize) -> u64 {
            let clock = if side == 0 { &self.a } else { &self.b };
            clock.now(self.own(side, self.t))
        }

        fn spread(&self) -> i64 {
            self.show(1) as i64 - self.show(0) as i64
        }
    }

    #[test]
    fn two_poi_meet_on_the_older_timeline_with_one_forward_step() {
        // A started 7 s "earlier" (its own clock reads 7 s more): B joins A's timeline.
        let mut pair = Pair::new(7_000_000, 0, 0.0);
        pair.run(3_000_000);
        assert!(pair.spread().abs() <= 100, "spread {} µs", pair.spread());
        assert_eq!(pair.b.timeline(), 100);
        assert_eq!(pair.a.steps(), &[]);
        let steps = pair.b.steps();
        assert_eq!(steps.len(), 1);
        assert!((steps[0].by - 7_000_000).abs() < 2_000, "{steps:?}");
        assert_eq!(pair.a.status(pair.own(0, pair.t)).standing, Standing::InStep);
    }

    #[test]
    fn show_time_never_goes_back_and_rates_meet() {
        let mut pair = Pair::new(0, 2_000_000, 80.0);
        let mut last = (0, 0);
        for _ in 0..200 {
            pair.run(1_000_000);
            let now = (pair.show(0), pair.show(1));
            assert!(now.0 >= last.0 && now.1 >= last.1);
            last = now;
        }
        assert!(pair.spread().abs() <= 200, "spread {} µs", pair.spread());
        // Both ran at the mean rate: A 40 ppm fast, B 40 ppm slow against their own clocks.
        let (ra, rb) = (pair.a.mapping().rate_ppb(), pair.b.mapping().rate_ppb());
        assert!((ra - 40_000).abs() < 8_000 && (rb + 40_000).abs() < 8_000, "{ra} {rb}");
    }

    #[test]
    fn replayed_and_unasked_answers_are_ignored() {
        let mut a = ShowClock::new(A, 1, 100, 0);
        let mut b = ShowClock::new(B, 2, 200, 5_000_000);
        a.set_peers(&[B], 0);
        let (_, probe) = a.probe(0, 42).unwrap();
        let answer = b.answer(&probe, 5_000_500, 5_000_600).unwrap();
        assert!(a.take_answer(&answer, 1_100, 1_100).is_ok());
        assert_eq!(a.take_answer(&answer, 1_200, 1_200), Err(Ignored::Unexpected), "replayed");
        let unasked = b.answer(&Packet::Probe { from: A, nonce: 7, state: a.announce(0) }, 1, 2).unwrap();
        assert_eq!(a.take_answer(&unasked, 1_300, 1_300), Err(Ignored::Unexpected));
        let (_, probe) = a.probe(300_000, 43).unwrap();
        let Packet::Probe { nonce, .. } = probe else { unreachable!() };
        let held_too_long = Packet::Answer { from: B, nonce, received: 0, held: 900_000, state: b.announce(5_000_000) };
        assert_eq!(a.take_answer(&held_too_long, 300_500, 300_500), Err(Ignored::Implausible));
        assert_eq!(a.status(300_500).peers[0].samples, 1);
        let (_, probe) = a.probe(600_000, 44).unwrap();
        assert!(b.answer(&probe, 5_600_000, 5_600_010).is_some());
        assert_eq!(b.answer(&probe, 5_700_000, 5_700_010), None, "a replayed probe is not answered");
        let (_, probe) = a.probe(1_000_000, 45).unwrap();
        let late = b.answer(&probe, 5_900_000, 5_900_010).unwrap();
        assert_eq!(a.take_answer(&late, 3_000_001, 3_000_001), Err(Ignored::Unexpected), "over 2 s late");
    }
}
