//! One poi's show time as a function of its own clock: an offset, a rate correction, a
//! correction being slewed in, and forward steps.

/// Fastest a correction is slewed in: show time runs at most 5 % fast or slow meanwhile, so
/// 1 ms takes 20 ms and 50 ms takes a second. Nobody sees a pattern run 5 % faster for a
/// moment; everybody sees a jump.
pub const SLEW_PPM: i64 = 50_000;
/// Largest rate correction taken: crystals differ by tens of ppm, a rate beyond this is a
/// bad estimate.
pub const MAX_RATE_PPB: i64 = 1_000_000;

/// Show time = `base_show` + the own clock's time since `base_own`, scaled by the rate
/// correction, plus as much of `slew_left` as the slew rate has had time to apply.
///
/// Every change is anchored at the current instant (show time there stays what it was), and
/// the slope is at least 1 - 0.1 % - 5 %, so show time is continuous and never goes back;
/// only [`ShowMapping::step`] moves it, and only forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShowMapping {
    base_own: u64,
    base_show: u64,
    rate_ppb: i64,
    slew_left: i64,
}

impl ShowMapping {
    /// Show time `show` at own-clock time `own`, at the own clock's rate.
    pub fn starting_at(own: u64, show: u64) -> ShowMapping {
        ShowMapping { base_own: own, base_show: show, rate_ppb: 0, slew_left: 0 }
    }

    fn elapsed(&self, own: u64) -> i128 {
        i128::from(own.saturating_sub(self.base_own))
    }

    /// The part of `slew_left` applied after `dt` µs.
    fn slewed(&self, dt: i128) -> i128 {
        let most = dt * i128::from(SLEW_PPM) / 1_000_000;
        i128::from(self.slew_left).clamp(-most, most)
    }

    fn linear(&self, dt: i128) -> i128 {
        i128::from(self.base_show) + dt + dt * i128::from(self.rate_ppb) / 1_000_000_000
    }

    /// Show time (µs) at own-clock time `own` (µs). Earlier than the last change: the show
    /// time of that change.
    pub fn show_at(&self, own: u64) -> u64 {
        let dt = self.elapsed(own);
        clamp_u64(self.linear(dt) + self.slewed(dt)).max(self.base_show)
    }

    /// Where show time is headed at `own`: [`ShowMapping::show_at`] plus what is still to
    /// be slewed in. Peers compare these, so a correction under way is not made twice.
    pub fn target_at(&self, own: u64) -> u64 {
        clamp_u64(self.linear(self.elapsed(own)) + i128::from(self.slew_left))
    }

    /// The rate correction, parts per billion (show time runs this much faster than the own clock).
    pub fn rate_ppb(&self) -> i64 {
        self.rate_ppb
    }

    /// The correction not yet slewed in at `own`, µs.
    pub fn slew_left_at(&self, own: u64) -> i64 {
        (i128::from(self.slew_left) - self.slewed(self.elapsed(own))) as i64
    }

    /// Anchors the mapping at `own`, keeping show time there.
    fn rebase(&mut self, own: u64) {
        if own <= self.base_own {
            return;
        }
        let dt = self.elapsed(own);
        let done = self.slewed(dt);
        self.base_show = self.show_at(own);
        self.base_own = own;
        self.slew_left = (i128::from(self.slew_left) - done) as i64;
    }

    /// Moves where show time is headed by `by` µs, slewed in from `own` on.
    pub fn correct(&mut self, own: u64, by: i64) {
        self.rebase(own);
        self.slew_left = self.slew_left.saturating_add(by);
    }

    /// Sets the rate correction from `own` on (clamped to ±[`MAX_RATE_PPB`]).
    pub fn set_rate(&mut self, own: u64, rate_ppb: i64) {
        self.rebase(own);
        self.rate_ppb = rate_ppb.clamp(-MAX_RATE_PPB, MAX_RATE_PPB);
    }

    /// Jumps show time forward by `by` µs at `own` (joining another timeline).
    pub fn step(&mut self, own: u64, by: u64) {
        self.rebase(own);
        self.base_show = self.base_show.saturating_add(by);
    }
}

fn clamp_u64(v: i128) -> u64 {
    v.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_time_follows_the_own_clock_at_the_corrected_rate() {
        let mut m = ShowMapping::starting_at(1_000, 50_000);
        assert_eq!(m.show_at(1_000), 50_000);
        assert_eq!(m.show_at(2_000_000), 50_000 + 1_999_000);
        m.set_rate(1_000, 100_000); // 100 ppm fast
        assert_eq!(m.show_at(10_001_000), 50_000 + 10_000_000 + 1_000);
        assert_eq!(m.show_at(500), 50_000, "before the anchor: the anchor's show time");
    }

    #[test]
    fn corrections_are_slewed_at_five_percent_and_never_go_back() {
        let mut m = ShowMapping::starting_at(0, 1_000_000);
        m.correct(0, -3_000);
        assert_eq!(m.target_at(0), 997_000);
        // 3 ms at 5 % takes 60 ms of own time.
        assert_eq!(m.show_at(20_000), 1_000_000 + 20_000 - 1_000);
        assert_eq!(m.slew_left_at(20_000), -2_000);
        assert_eq!(m.show_at(60_000), 1_000_000 + 60_000 - 3_000);
        assert_eq!(m.show_at(1_060_000), 1_000_000 + 1_060_000 - 3_000);
        let mut last = 0;
        for own in (0..200_000).step_by(997) {
            let s = m.show_at(own);
            assert!(s >= last, "show time went back at {own}");
            last = s;
        }
        // A new correction half-way keeps show time where it is.
        let mut n = ShowMapping::starting_at(0, 0);
        n.correct(0, 10_000);
        let before = n.show_at(100_000);
        n.correct(100_000, -20_000);
        assert_eq!(n.show_at(100_000), before);
        assert_eq!(n.target_at(100_000), 100_000 + 10_000 - 20_000);
    }

    #[test]
    fn steps_go_forward_only_and_keep_the_rate() {
        let mut m = ShowMapping::starting_at(0, 0);
        m.set_rate(0, -50_000);
        m.step(1_000_000, 5_000_000);
        assert_eq!(m.show_at(1_000_000), 999_950 + 5_000_000);
        assert_eq!(m.show_at(2_000_000), 2 * 999_950 + 5_000_000);
        assert_eq!(m.rate_ppb(), -50_000);
        m.set_rate(0, i64::MAX);
        assert_eq!(m.rate_ppb(), MAX_RATE_PPB);
    }
}
