//! The hybrid logical clock that stamps every edit.
//!
//! A stamp is (physical milliseconds, counter). It never goes backwards on one replica and
//! moves past every stamp the replica has received, so an edit made after seeing another
//! carries a larger stamp even when the two devices' wall clocks disagree. Stamps only pick a
//! winner among *concurrent* edits; which edit supersedes which is decided by version vectors
//! (see [`crate::sync`]), so no clock, however wrong, can make an older edit beat a newer one.

use serde::{Deserialize, Serialize};

/// How far ahead of our own wall clock a received stamp may pull us, in milliseconds.
///
/// A peer whose clock is years in the future would otherwise drag every replica's stamps
/// with it for good. Beyond this bound we keep our own time; ordering stays correct because
/// supersession never depends on stamps.
pub const MAX_FORWARD_DRIFT_MS: u64 = 10 * 60 * 1000;

/// One point of hybrid logical time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, as far as the clock knows.
    pub millis: u64,
    /// Orders stamps within the same millisecond.
    pub counter: u32,
}

/// A replica's hybrid logical clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    last: Stamp,
}

impl Hlc {
    /// The latest stamp this clock has issued or observed.
    pub fn last(&self) -> Stamp {
        self.last
    }

    /// A new stamp for a local edit at wall-clock time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Stamp {
        self.last = if now_ms > self.last.millis {
            Stamp { millis: now_ms, counter: 0 }
        } else {
            Stamp { millis: self.last.millis, counter: self.last.counter.saturating_add(1) }
        };
        self.last
    }

    /// Takes in a stamp received from a peer, bounded by [`MAX_FORWARD_DRIFT_MS`].
    pub fn observe(&mut self, remote: Stamp, now_ms: u64) {
        let ceiling = now_ms.saturating_add(MAX_FORWARD_DRIFT_MS);
        if remote > self.last && remote.millis <= ceiling.max(self.last.millis) {
            self.last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_even_when_the_wall_clock_stalls_or_goes_back() {
        let mut hlc = Hlc::default();
        let a = hlc.tick(1_000);
        let b = hlc.tick(1_000);
        let c = hlc.tick(500);
        let d = hlc.tick(2_000);
        assert!(a < b && b < c && c < d);
        assert_eq!(d, Stamp { millis: 2_000, counter: 0 });
    }

    #[test]
    fn observed_stamps_push_later_local_stamps_past_them() {
        let mut slow = Hlc::default();
        slow.observe(Stamp { millis: 5_000, counter: 7 }, 1_000);
        assert!(slow.tick(1_000) > Stamp { millis: 5_000, counter: 7 });
    }

    #[test]
    fn a_far_future_stamp_does_not_drag_the_clock_along() {
        let mut hlc = Hlc::default();
        let year = 365 * 24 * 3600 * 1000;
        hlc.observe(Stamp { millis: 1_000 + year, counter: 0 }, 1_000);
        assert_eq!(hlc.tick(1_000), Stamp { millis: 1_000, counter: 0 });
    }
}
