//! Cues: the show time at which a change of what plays takes effect, so every poi of a
//! group switches on the same column, whenever the change reaches it.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Shortest lead a cue is given when the poi has peers: a push to one peer on a LAN takes
/// a few tens of ms (25 ms of it the push's debounce).
pub const MIN_LEAD_US: u64 = 100_000;
/// Longest lead: a performer notices a delay beyond a quarter of a second. A peer the push
/// reaches later (a Wi-Fi power-save spike, a big troupe) joins the change at the phase it
/// would have had, from the cue on.
pub const MAX_LEAD_US: u64 = 250_000;
/// A cue further ahead than this was set on another timeline (this poi has not joined the
/// group's yet, or cannot reach it over UDP): it takes effect on arrival.
pub const MAX_CUE_AHEAD_US: u64 = 1_000_000;

/// Show time (µs) from which an edit of what plays shows; [`Cue::NOW`] shows on arrival.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cue(pub u64);

impl Cue {
    /// No cue: the edit shows wherever and whenever it arrives (edits that do not change
    /// what plays, and those of the protocol before cues).
    pub const NOW: Cue = Cue(0);

    /// Whether a change cued here shows at show time `show`.
    pub fn due(self, show: u64) -> bool {
        self.0 <= show || self.0 > show.saturating_add(MAX_CUE_AHEAD_US)
    }
}

/// The lead of a cue set now: twice the slowest recent push of a change to every online
/// peer, within [`MIN_LEAD_US`]-[`MAX_LEAD_US`]; none for a poi with no peer online.
pub fn lead_us(peers_online: bool, slowest_push_us: u64) -> u64 {
    if peers_online { slowest_push_us.saturating_mul(2).clamp(MIN_LEAD_US, MAX_LEAD_US) } else { 0 }
}

/// One field of what plays, as the player holds it: the value showing, and values cued
/// for later (in cue order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged<T> {
    current: T,
    since: Cue,
    next: Vec<(Cue, T)>,
}

impl<T: Clone + PartialEq> Staged<T> {
    /// Shows `value` from `since` on.
    pub fn new(value: T, since: Cue) -> Staged<T> {
        Staged { current: value, since, next: Vec::new() }
    }

    /// The value showing.
    pub fn current(&self) -> &T {
        &self.current
    }

    /// The cue at which the value showing took effect.
    pub fn since(&self) -> Cue {
        self.since
    }

    /// The value last set, showing or not: what a reload compares against.
    pub fn latest(&self) -> &T {
        self.next.last().map_or(&self.current, |(_, v)| v)
    }

    /// Whether some value waits for its cue.
    pub fn pending(&self) -> bool {
        !self.next.is_empty()
    }

    /// Cues `value` at `cue` (show time now `show`): a change made after those still
    /// waiting replaces the ones cued at or after its own cue. Nothing happens when `value`
    /// is what was set last. Returns whether what shows changed.
    pub fn set(&mut self, value: T, cue: Cue, show: u64) -> bool {
        if *self.latest() == value {
            return false;
        }
        self.next.retain(|(c, _)| *c < cue);
        self.next.push((cue, value));
        self.advance(show)
    }

    /// Lets every value whose cue is due at `show` take effect; returns whether what shows
    /// changed.
    pub fn advance(&mut self, show: u64) -> bool {
        // Up to the last one due: a cue far ahead (another timeline's) is due while a
        // nearer one still waits, and everything cued before a due value is behind it.
        let Some(last) = self.next.iter().rposition(|(cue, _)| cue.due(show)) else { return false };
        let due = last + 1;
        let mut taken = self.next.drain(..due);
        let (cue, value) = taken.next_back().expect("at least one is due");
        drop(taken);
        self.since = cue;
        let changed = self.current != value;
        self.current = value;
        changed
    }

    /// Show time at which the next waiting value is due, if one waits (and is not due).
    pub fn next_cue(&self) -> Option<Cue> {
        self.next.first().map(|(cue, _)| *cue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cued_value_shows_from_its_cue_and_a_late_one_at_once() {
        let mut brightness = Staged::new(100u8, Cue::NOW);
        assert!(!brightness.set(50, Cue(10_000), 5_000));
        assert_eq!((*brightness.current(), *brightness.latest()), (100, 50));
        assert!(!brightness.advance(9_999));
        assert!(brightness.advance(10_000));
        assert_eq!((*brightness.current(), brightness.since()), (50, Cue(10_000)));
        // Heard of after its cue: shows at once, and says since when it should have.
        assert!(brightness.set(70, Cue(12_000), 30_000));
        assert_eq!((*brightness.current(), brightness.since()), (70, Cue(12_000)));
        assert!(!brightness.set(70, Cue(40_000), 30_000), "unchanged");
    }

    #[test]
    fn later_edits_replace_waiting_ones_cued_after_them() {
        let mut s = Staged::new(0u8, Cue::NOW);
        s.set(1, Cue(100), 0);
        s.set(2, Cue(200), 0);
        assert_eq!(s.next_cue(), Some(Cue(100)));
        s.set(3, Cue(150), 0);
        assert!(s.advance(120));
        assert_eq!(*s.current(), 1);
        assert!(s.advance(160));
        assert_eq!(*s.current(), 3);
        assert!(!s.pending() && !s.advance(1_000));
        // A value cued on another timeline (far ahead) shows at once, even behind a waiting one.
        s.set(4, Cue(2_000), 1_000);
        s.set(5, Cue(1_000 + 10 * MAX_CUE_AHEAD_US), 1_000);
        assert_eq!(*s.current(), 5);
    }

    #[test]
    fn a_cue_from_another_timeline_far_ahead_shows_at_once() {
        assert!(Cue(5_000_000).due(5_000_000));
        assert!(!Cue(5_000_001).due(5_000_000));
        assert!(Cue(5_000_000 + MAX_CUE_AHEAD_US + 1).due(5_000_000));
        assert!(Cue::NOW.due(0));
        assert_eq!(lead_us(true, 20_000), MIN_LEAD_US);
        assert_eq!(lead_us(true, 90_000), 180_000);
        assert_eq!(lead_us(true, 400_000), MAX_LEAD_US);
        assert_eq!(lead_us(false, 400_000), 0);
    }
}
