//! What one poi knows of a peer's own clock: a window of probe samples, the offset from the
//! fastest round trips, and the rate fitted over the window.
//!
//! Samples relate the two *own* clocks, which nobody corrects, so they stay valid whatever
//! either poi does to its show time; the peer's show time is its own clock through the
//! mapping it announces (see [`super::clock`]).

use alloc::collections::VecDeque;

/// Samples kept per peer: at the settled probe period (4 s) about two minutes, enough to
/// fit a rate to a few ppm.
pub const WINDOW: usize = 32;
/// How many of the newest samples the offset is chosen from: older ones have aged by the
/// rate error since.
const RECENT: usize = 8;
/// Rate uncertainty assumed before a fit exists: two crystals of ±100 ppm.
const UNFITTED_PPB: u64 = 200_000;
/// Shortest span of samples a rate is fitted over: shorter spans turn the offset noise
/// into a large rate error.
const MIN_FIT_SPAN_US: u64 = 8_000_000;
/// Fewest samples a rate is fitted from.
const MIN_FIT_SAMPLES: usize = 4;
/// Offset noise floor of a fit, µs (timestamping on a busy host, sleep granularity).
const FIT_NOISE_FLOOR_US: f64 = 50.0;

/// One probe exchange, as the prober saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Prober's own clock half-way through the round trip, µs.
    pub at: u64,
    /// Peer's own clock minus the prober's, there, µs (NTP's θ on the raw clocks).
    pub offset: i64,
    /// Round trip minus the time the peer held the probe, µs (NTP's δ): the offset is off
    /// by at most half of it.
    pub delay: u64,
}

impl Sample {
    /// The sample of one exchange: `t1` probe sent and `t4` answer received (prober's own
    /// clock), `t2` probe received and `t3` answer sent (peer's own clock). `None` when the
    /// times cannot be real (the peer held the probe longer than the round trip took).
    pub fn from_exchange(t1: u64, t2: u64, t3: u64, t4: u64) -> Option<Sample> {
        let round = t4.checked_sub(t1)?;
        let held = t3.checked_sub(t2)?;
        let delay = round.checked_sub(held)?;
        let offset = ((i128::from(t2) - i128::from(t1)) + (i128::from(t3) - i128::from(t4))) / 2;
        Some(Sample { at: t1 + round / 2, offset: i64::try_from(offset).ok()?, delay })
    }
}

/// The peer's own clock relative to ours at some instant, with its error bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset {
    /// Peer's own clock minus ours, µs.
    pub offset: i64,
    /// How far off that may be, µs: half the chosen round trip plus the rate error since.
    pub error: u64,
}

/// The fitted rate of the peer's own clock against ours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Skew {
    /// Peer's own clock runs this much faster than ours, parts per billion.
    pub ppb: f64,
    /// Uncertainty of that, parts per billion.
    pub error_ppb: f64,
}

/// The samples of one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerFilter {
    samples: VecDeque<Sample>,
    skew: Option<Skew>,
}

impl PeerFilter {
    /// Takes a new sample (the oldest goes beyond [`WINDOW`]) and refits the rate.
    pub fn add(&mut self, sample: Sample) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.skew = fit(&self.samples);
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Shortest round trip in the window, µs.
    pub fn min_delay(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.delay).min()
    }

    /// When the newest sample was taken (own clock), if any.
    pub fn newest(&self) -> Option<u64> {
        self.samples.back().map(|s| s.at)
    }

    /// The fitted rate, once the window spans long enough.
    pub fn skew(&self) -> Option<Skew> {
        self.skew
    }

    /// The peer's own clock minus ours at `now`, from the recent sample that bounds it
    /// best (the minimum-delay filter of NTP and Cristian's method, with the error of each
    /// sample grown by the rate uncertainty since it was taken), carried to `now` at the
    /// fitted rate.
    pub fn offset_at(&self, now: u64) -> Option<Offset> {
        let (ppb, error_ppb) = match self.skew {
            Some(s) => (s.ppb, s.error_ppb),
            None => (0.0, UNFITTED_PPB as f64),
        };
        self.samples
            .iter()
            .rev()
            .take(RECENT)
            .map(|s| {
                let age = now.abs_diff(s.at) as f64;
                let error = s.delay as f64 / 2.0 + age * error_ppb / 1e9;
                let carried = (now as f64 - s.at as f64) * ppb / 1e9;
                (error, s.offset as f64 + carried)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(error, offset)| Offset { offset: round(offset), error: round(error).unsigned_abs() + 1 })
    }
}

/// Least-squares rate over the samples whose delay is near the window's minimum (queued
/// samples carry an offset error of up to half their extra delay and would bend the line).
fn fit(samples: &VecDeque<Sample>) -> Option<Skew> {
    let min = samples.iter().map(|s| s.delay).min()?;
    let limit = min + (min / 2).max(1_000);
    let good = || samples.iter().filter(move |s| s.delay <= limit);
    let n = good().count();
    let first = good().next()?.at;
    let last = good().next_back()?.at;
    if n < MIN_FIT_SAMPLES || last - first < MIN_FIT_SPAN_US {
        return None;
    }
    let x0 = first as f64;
    let y0 = good().next()?.offset as f64;
    let (mut sx, mut sy) = (0.0, 0.0);
    for s in good() {
        sx += (s.at as f64 - x0) / 1e6;
        sy += s.offset as f64 - y0;
    }
    let (mx, my) = (sx / n as f64, sy / n as f64);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for s in good() {
        let (dx, dy) = ((s.at as f64 - x0) / 1e6 - mx, s.offset as f64 - y0 - my);
        sxx += dx * dx;
        sxy += dx * dy;
    }
    let slope = sxy / sxx; // µs per s = ppm
    let mut worst: f64 = FIT_NOISE_FLOOR_US;
    for s in good() {
        let (dx, dy) = ((s.at as f64 - x0) / 1e6 - mx, s.offset as f64 - y0 - my);
        worst = worst.max((dy - slope * dx).abs());
    }
    // The worst residual at both ends of the span, as a slope: a bound, not a standard
    // error, so a holdover computed from it is not optimistic.
    let span_s = (last - first) as f64 / 1e6;
    Some(Skew { ppb: slope * 1_000.0, error_ppb: 2.0 * worst / span_s * 1_000.0 })
}

/// Nearest whole number (`f64::round` needs `std`).
fn round(x: f64) -> i64 {
    if x >= 0.0 { (x + 0.5) as i64 } else { (x - 0.5) as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exchange with a peer whose clock is `offset` + `ppm` ahead, legs of `up` and `down` µs.
    fn exchange(t1: u64, offset: i64, ppm: f64, up: u64, down: u64) -> Sample {
        let peer = |t: u64| (t as f64 * (1.0 + ppm / 1e6)) as i64 + offset;
        let t2 = peer(t1 + up) as u64;
        let t3 = t2 + 50;
        let t4 = t1 + up + 50 + down;
        Sample::from_exchange(t1, t2, t3, t4).unwrap()
    }

    #[test]
    fn a_symmetric_exchange_gives_the_exact_offset_and_delay() {
        let s = exchange(1_000_000, 5_000_000, 0.0, 2_000, 2_000);
        assert_eq!((s.offset, s.delay, s.at), (5_000_000, 4_000, 1_002_025));
        // Asymmetric legs: off by half the difference, within half the delay.
        let s = exchange(1_000_000, 5_000_000, 0.0, 1_000, 3_000);
        assert_eq!(s.offset, 5_000_000 - 1_000);
        assert!(s.offset.abs_diff(5_000_000) <= s.delay / 2);
        assert_eq!(Sample::from_exchange(10, 100, 1_000, 20), None, "held longer than the round trip");
    }

    #[test]
    fn the_fastest_round_trip_wins_over_queued_ones() {
        let mut f = PeerFilter::default();
        f.add(exchange(0, 777, 0.0, 2_000, 300_000)); // a Wi-Fi power-save spike
        f.add(exchange(1_000_000, 777, 0.0, 2_000, 2_100));
        f.add(exchange(2_000_000, 777, 0.0, 150_000, 2_000));
        let o = f.offset_at(2_000_000).unwrap();
        assert!(o.offset.abs_diff(777) <= 50, "{o:?}");
        assert!(o.error < 3_000, "{o:?}");
        assert_eq!(f.min_delay(), Some(4_100));
    }

    #[test]
    fn the_rate_is_fitted_over_the_window_and_carries_the_offset() {
        let mut f = PeerFilter::default();
        for i in 0..20u64 {
            let jitter = (i * 7919 % 13) * 40;
            f.add(exchange(i * 1_000_000, 40, 50.0, 2_000 + jitter, 2_000));
        }
        let skew = f.skew().expect("20 s of samples");
        assert!((skew.ppb - 50_000.0).abs() <= skew.error_ppb, "the bound holds: {skew:?}");
        assert!(skew.error_ppb < 20_000.0, "{skew:?}");
        // 60 s after the last sample, with no new one: carried at 50 ppm.
        let now = 79_000_000;
        let truth = (now as f64 * 50e-6) as i64 + 40;
        let o = f.offset_at(now).unwrap();
        assert!(o.offset.abs_diff(truth) < 1_000, "{o:?} vs {truth}");
        assert!(o.offset.abs_diff(truth) <= o.error, "the bound holds: {o:?} vs {truth}");
    }

    #[test]
    fn no_rate_from_a_short_window() {
        let mut f = PeerFilter::default();
        for i in 0..8u64 {
            f.add(exchange(i * 250_000, 0, 80.0, 2_000, 2_000));
        }
        assert_eq!(f.skew(), None);
        let o = f.offset_at(10_000_000).unwrap();
        assert!(o.error > 1_000, "an unfitted rate makes old samples uncertain: {o:?}");
    }
}
