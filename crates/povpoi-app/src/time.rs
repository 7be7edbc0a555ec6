//! Real time on a poi without a real-time clock (a board: no battery-backed clock, no time
//! server on a phone hotspot): learned from the times its peers sign their requests with.
//!
//! A signed request carries its sender's clock, covered by the group key's MAC, and is
//! refused when that time is more than 5 minutes from the receiver's (docs/PROTOCOL.md). A
//! board that starts at the Unix epoch would refuse every one, and its own signed requests
//! would be refused. So a board takes the time of a request whose signature checks out
//! before judging its freshness, and only ever moves forward: a replayed old message cannot
//! set it back, and a newer genuine one puts right a time taken from an older one.

use crate::app::Now;

/// Real time as a poi without a real-time clock knows it: its own clock plus what it
/// learned from its peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedTime {
    /// Real time minus own time, µs, once learned.
    offset_us: Option<u64>,
}

impl LearnedTime {
    /// The clocks at own time `own_us`: real time as learned, or the own clock alone (that
    /// is, shortly after the epoch) until a peer vouched for one.
    pub fn now(&self, own_us: u64) -> Now {
        Now { wall_us: own_us.saturating_add(self.offset_us.unwrap_or(0)), own_us }
    }

    /// `wall_ms` is the time of a request signed with the group's key, which arrived at own
    /// time `own_us`: taken when it is later than the time known. Returns whether it was.
    pub fn vouched(&mut self, wall_ms: u64, own_us: u64) -> bool {
        let offset = wall_ms.saturating_mul(1_000).saturating_sub(own_us);
        if self.offset_us.is_some_and(|known| known >= offset) {
            return false;
        }
        self.offset_us = Some(offset);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_the_own_clock_until_a_peer_vouches_then_only_moves_forward() {
        let mut time = LearnedTime::default();
        assert_eq!(time.now(5_000_000).wall_us, 5_000_000);
        // A request signed at 1.8e12 ms arrives 5 s after start.
        assert!(time.vouched(1_800_000_000_000, 5_000_000));
        assert_eq!(time.now(6_000_000).wall_us, 1_800_000_001_000_000);
        // An older one (a replay, or a peer whose clock is behind) does not set it back.
        assert!(!time.vouched(1_799_999_000_000, 6_000_000));
        assert_eq!(time.now(6_000_000).wall_us, 1_800_000_001_000_000);
        // A newer one moves it forward.
        assert!(time.vouched(1_800_000_010_000, 7_000_000));
        assert_eq!(time.now(7_000_000).wall_us, 1_800_000_010_000_000);
    }
}
