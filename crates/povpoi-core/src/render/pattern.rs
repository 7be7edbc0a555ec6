//! The 18 patterns as pure functions of (show time, pattern, LED index, audio level).
//!
//! No state is carried from one column to the next: the same show time gives the same
//! column on every poi, and "random" patterns draw from a hash of the time slot, the LED
//! and the pattern's parameters instead of a generator that would drift apart.

use crate::model::{Pattern, PatternKind, Rgb};

use super::cache::{Ramp, Tables};
use super::color::{BLACK, Mix, Paint, div255, scale, wheel};

/// One period of a sine, 0-255 around 128.
const SINE: [u8; 256] = [
    128, 131, 134, 137, 140, 143, 146, 149, 152, 155, 158, 162, 165, 167, 170, 173, 176, 179, 182, 185, 188, 190, 193,
    196, 198, 201, 203, 206, 208, 211, 213, 215, 218, 220, 222, 224, 226, 228, 230, 232, 234, 235, 237, 238, 240, 241,
    243, 244, 245, 246, 248, 249, 250, 250, 251, 252, 253, 253, 254, 254, 254, 255, 255, 255, 255, 255, 255, 255, 254,
    254, 254, 253, 253, 252, 251, 250, 250, 249, 248, 246, 245, 244, 243, 241, 240, 238, 237, 235, 234, 232, 230, 228,
    226, 224, 222, 220, 218, 215, 213, 211, 208, 206, 203, 201, 198, 196, 193, 190, 188, 185, 182, 179, 176, 173, 170,
    167, 165, 162, 158, 155, 152, 149, 146, 143, 140, 137, 134, 131, 128, 124, 121, 118, 115, 112, 109, 106, 103, 100,
    97, 93, 90, 88, 85, 82, 79, 76, 73, 70, 67, 65, 62, 59, 57, 54, 52, 49, 47, 44, 42, 40, 37, 35, 33, 31, 29, 27, 25,
    23, 21, 20, 18, 17, 15, 14, 12, 11, 10, 9, 7, 6, 5, 5, 4, 3, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3,
    4, 5, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 18, 20, 21, 23, 25, 27, 29, 31, 33, 35, 37, 40, 42, 44, 47, 49, 52, 54,
    57, 59, 62, 65, 67, 70, 73, 76, 79, 82, 85, 88, 90, 93, 97, 100, 103, 106, 109, 112, 115, 118, 121, 124,
];

/// Sine of an angle in 1/256 turns, 0-255.
pub(super) fn sin8(angle: u8) -> u8 {
    SINE[usize::from(angle)]
}

/// 0 up to 254 and back down: a gradient that does not jump when it wraps.
fn triangle8(x: u8) -> u8 {
    if x < 128 { x * 2 } else { (255 - x) * 2 }
}

/// A well-mixed 32-bit hash of three words (the murmur3 finaliser over a combination), the
/// patterns' source of randomness.
fn hash3(a: u32, b: u32, c: u32) -> u32 {
    Draws::new((a, b)).at(c)
}

/// The random draws of one slot (`hash3(key.0, key.1, i)` for LED i), with the part that
/// depends on the slot alone mixed once per column.
#[derive(Clone, Copy)]
pub(super) struct Draws(u32);

impl Draws {
    pub(super) fn new(key: (u32, u32)) -> Draws {
        Draws(key.0 ^ key.1.wrapping_mul(0x9E37_79B9))
    }

    #[inline(always)]
    pub(super) fn at(self, i: u32) -> u32 {
        let mut h = self.0 ^ i.wrapping_mul(0x85EB_CA6B).rotate_left(13);
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^ (h >> 16)
    }
}

/// Division by a number fixed for the column, as a multiplication and a shift: `x / d`
/// exactly whenever `x * d <= 2^31` (every use here has `x` below 2^16 and `d` at most
/// [`super::MAX_LEDS`]). With `m = ceil(2^31 / d) = (2^31 + e) / d`, `e < d`, the error
/// `x * e / (d * 2^31)` stays under `1 / d` and cannot carry past the next integer.
#[derive(Clone, Copy)]
pub(super) struct Recip(u32);

impl Recip {
    pub(super) fn new(d: u32) -> Recip {
        // ceil(2^31 / d) as (2^31 - 1) / d + 1: a 32-bit division, which a 32-bit core does in
        // one instruction, where a 64-bit one is a library routine.
        Recip(0x7FFF_FFFF / d.max(1) + 1)
    }

    #[inline(always)]
    pub(super) fn div(self, x: u32) -> u32 {
        ((u64::from(x) * u64::from(self.0)) >> 31) as u32
    }
}

/// `t / d` and `t % d` for a divisor below 2^16. A 64-bit division is a library routine of
/// a hundred-odd instructions on a 32-bit core, so there it is done by
/// [`divrem_by_digits`]; a 64-bit core divides (or multiplies, for a constant) at once.
#[inline(always)]
pub(super) fn divrem(t: u64, d: u32) -> (u64, u32) {
    if cfg!(target_pointer_width = "64") {
        (t / u64::from(d), (t % u64::from(d)) as u32)
    } else {
        divrem_by_digits(t, d)
    }
}

/// Long division of `t` by `d` (below 2^16) in four 16-bit digits: each step divides a
/// number below `d * 2^16`, so 32-bit arithmetic suffices.
#[inline(always)]
pub(super) fn divrem_by_digits(t: u64, d: u32) -> (u64, u32) {
    debug_assert!(d > 0 && d < 1 << 16, "divisor {d}");
    let (mut q, mut r) = (0u64, 0u32);
    for shift in [48, 32, 16, 0] {
        let digit = (r << 16) | ((t >> shift) as u32 & 0xFFFF);
        q = q << 16 | u64::from(digit / d);
        r = digit % d;
    }
    (q, r)
}

/// `t * numerator / denominator`, truncated to 64 bits as the 128-bit quotient would be,
/// in 64-bit arithmetic: with `t = q * denominator + r` it is `q * numerator + r *
/// numerator / denominator`. Callers pass the fraction in lowest terms, so that
/// `denominator` is below 2^16 and `r * numerator` below 2^32 (checked in debug builds).
#[inline(always)]
pub(super) fn scaled(t: u64, numerator: u32, denominator: u32) -> u64 {
    let (q, r) = divrem(t, denominator);
    let part = r.checked_mul(numerator);
    debug_assert!(part.is_some(), "{r} * {numerator} overflows");
    q.wrapping_mul(u64::from(numerator)).wrapping_add(u64::from(part.unwrap_or(0) / denominator))
}

/// What a pattern is drawn from at one instant. Everything derived from the show time is
/// worked out here, once per column and only what the playing pattern asks for (a method
/// each: no struct of every pattern's values to fill, which a 32-bit core clears with a
/// library call); the per-LED code sees only 32-bit and narrower values, and no division (a
/// divisor fixed for the column becomes a [`Recip`]).
struct Scene<'a> {
    pattern: &'a Pattern,
    /// Show time, ms.
    t: u64,
    /// LEDs on the strip.
    n: u32,
}

impl Scene<'_> {
    fn speed(&self) -> u32 {
        u32::from(self.pattern.speed())
    }

    /// The hash key of time slot `slot`. The seed is fixed per pattern, so two patterns with
    /// other colours sparkle differently.
    fn key(&self, slot: u64) -> (u32, u32) {
        let (c1, c2) = (self.pattern.color1(), self.pattern.color2());
        let seed = hash3(
            u32::from(self.pattern.kind().id()) << 8 | self.speed(),
            u32::from_le_bytes([c1.r, c1.g, c1.b, 0]),
            u32::from_le_bytes([c2.r, c2.g, c2.b, 0]),
        );
        (seed ^ (slot >> 32) as u32, slot as u32)
    }

    /// Progress through the pattern's cycle in 1/256 turns (256 units take 256 * 256 /
    /// speed ms, about 1.3 s at the default speed 50).
    fn phase(&self) -> u64 {
        scaled(self.t, self.speed(), 256)
    }

    /// The progress modulo one turn.
    fn phase8(&self) -> u8 {
        self.phase() as u8
    }

    /// The progress modulo two turns: the wipe fills in one colour, then the other.
    fn wipe(&self) -> u32 {
        (self.phase() % 512) as u32
    }

    /// LED under the comet's or meteor's head.
    fn head(&self) -> u32 {
        ((self.phase() % 256) * u64::from(self.n) / 256) as u32
    }

    /// Hash key of the meteor's crumbling, 15 slots a second at speed 50 (t * 15 * speed /
    /// 50,000).
    fn crumble_key(&self) -> (u32, u32) {
        self.key(scaled(self.t, 3 * self.speed(), 10_000))
    }

    /// Hash key of the sparkles' 20-a-second slot, and how far into it the column is, 0-255
    /// (sparks fade over it): a fine counter of 256 steps a slot, t * 20 * speed * 256 /
    /// 50,000.
    fn sparkle(&self) -> ((u32, u32), u8) {
        let fine20 = scaled(self.t, 64 * self.speed(), 625);
        (self.key(fine20 / 256), (fine20 % 256) as u8)
    }

    /// Hash keys of the fire's two noise slots either side of now, and how far it is from
    /// the first to the second, in 1/256.
    fn fire(&self) -> ([(u32, u32); 2], u32) {
        let fire = scaled(self.t, self.speed(), 20);
        let slot = fire / 256;
        ([self.key(slot), self.key(slot.wrapping_add(1))], (fire % 256) as u32)
    }

    /// The strobe is in the lit quarter of its period: speed/10 flashes a second (5 at 50),
    /// t * speed modulo 10,000 worked out from t modulo 10,000.
    fn strobe_on(&self) -> bool {
        divrem(self.t, 10_000).1 * self.speed() % 10_000 < 2_500
    }

    /// Theater chase: which LED of every three is lit (LED i when (i + offset) % 3 == 0),
    /// and whether in colour 1 (else colour 2). Steps 10 times a second at speed 50 (t * 10
    /// * speed / 50,000).
    fn chase(&self) -> (u32, bool) {
        let step = scaled(self.t, self.speed(), 5_000);
        (divrem(step, 3).1, step.is_multiple_of(2))
    }
}

/// Sets every LED to `color(i)`, a colour already finished.
#[inline(always)]
fn each(out: &mut [Rgb], mut color: impl FnMut(u32) -> Rgb) {
    for (i, led) in out.iter_mut().enumerate() {
        *led = color(i as u32);
    }
}

/// Fills `out` (one entry per LED, LED 0 at the handle) with `pattern` at show time `t_ms`.
#[cfg(test)]
pub(crate) fn draw(pattern: &Pattern, t_ms: u64, level: u8, out: &mut [Rgb]) {
    draw_with(pattern, t_ms, level, &mut super::cache::raw(), out)
}

/// Fills `out` (one entry per LED, LED 0 at the handle, at most [`super::MAX_LEDS`]) with
/// `pattern` at show time `t_ms`, finished, with what `tables` may have kept. One loop per
/// pattern type, so the per-LED code is only that pattern's.
#[inline(never)]
pub(crate) fn draw_with<T: Tables>(pattern: &Pattern, t_ms: u64, level: u8, tables: &mut T, out: &mut [Rgb]) {
    debug_assert!(out.len() <= usize::from(super::MAX_LEDS), "Recip is exact for strips up to MAX_LEDS");
    // Never shorter: the renderer's strips are at most MAX_LEDS long. The compiler learns
    // that LED indexes stay below it, and checks no cached draw's index per LED.
    let len = out.len().min(usize::from(super::MAX_LEDS));
    let out = &mut out[..len];
    let n = out.len() as u32;
    if n == 0 {
        return;
    }
    let s = Scene { pattern, t: t_ms, n };
    let (c1, c2) = (pattern.color1(), pattern.color2());
    tables.set_strip(n);
    let paint = tables.painter();
    let dark = paint.paint(BLACK);
    let per_led = Recip::new(n);
    let p = match pattern.kind() {
        PatternKind::Rainbow
        | PatternKind::Wave
        | PatternKind::Gradient
        | PatternKind::Breathing
        | PatternKind::Plasma
        | PatternKind::AudioRainbow
        | PatternKind::SplitSpin => s.phase8(),
        _ => 0,
    };
    match pattern.kind() {
        PatternKind::Rainbow => {
            tables.set_ramp(0, Ramp::Wheel);
            tables.each_along(out, |x| tables.ramp(0, x.wrapping_add(p)))
        }
        PatternKind::Wave => {
            tables.set_ramp(0, Ramp::Blend(c2, c1));
            tables.each_along(out, |x| tables.ramp(0, sin8(x.wrapping_mul(2).wrapping_sub(p))))
        }
        PatternKind::Gradient => {
            tables.set_ramp(0, Ramp::Blend(c1, c2));
            tables.each_along(out, |x| tables.ramp(0, triangle8(x.wrapping_add(p))))
        }
        PatternKind::Sparkle => sparkle(&s, c1, c2, 32, tables, out),
        PatternKind::AudioSparkle => sparkle(&s, c1, c2, u32::from(level) / 2, tables, out),
        PatternKind::Fire => {
            tables.set_ramp(0, Ramp::Fire(c1, c2));
            let (keys, frac) = s.fire();
            tables.set_draws(0, keys[0], n);
            tables.set_draws(1, keys[1], n);
            let tables = &*tables;
            each(out, |i| {
                let (a, b) = (tables.draw(0, i) % 256, tables.draw(1, i) % 256);
                let noise = (a * (256 - frac) + b * frac) / 256;
                let cooling = tables.cooling(i);
                let heat = div255(noise * cooling) as u8;
                tables.ramp(0, heat)
            })
        }
        PatternKind::Comet => comet(&s, c1, c2, n, (n / 4).max(2), false, tables, out),
        PatternKind::Meteor => comet(&s, c1, c2, n, (n / 2).max(2), true, tables, out),
        PatternKind::Breathing => {
            let level = 16 + div255(u32::from(sin8(p)) * 239) as u8;
            out.fill(paint.paint(scale(c1, level)))
        }
        PatternKind::Strobe => out.fill(if s.strobe_on() { paint.paint(c1) } else { dark }),
        PatternKind::Wipe => {
            let cycle = s.wipe();
            let (front, fill, rest) = if cycle < 256 { (cycle, c1, c2) } else { (cycle - 256, c2, c1) };
            // LED i is filled while i * 256 < front * n: the first ceil(front * n / 256).
            let filled = ((front * n).div_ceil(256) as usize).min(out.len());
            let (head, tail) = out.split_at_mut(filled);
            head.fill(paint.paint(fill));
            tail.fill(paint.paint(rest));
        }
        PatternKind::Plasma => {
            tables.set_ramp(0, Ramp::Wheel);
            tables.each_along(out, |x| {
                let a = sin8(x.wrapping_mul(2).wrapping_add(p));
                let b = sin8(x.wrapping_mul(3).wrapping_sub(p.wrapping_mul(2)));
                tables.ramp(0, (((u16::from(a) + u16::from(b)) / 2) as u8).wrapping_add(p / 2))
            })
        }
        PatternKind::VuMeter => {
            let lit = div255(u32::from(level) * n) as usize;
            tables.set_ramp(0, Ramp::Blend(c1, c2));
            let (on, off) = out.split_at_mut(lit);
            each(on, |i| tables.ramp(0, per_led.div(i * 255) as u8));
            off.fill(dark);
        }
        PatternKind::Pulse => out.fill(paint.paint(Mix::new(scale(c2, 24), c1).at(level))),
        PatternKind::AudioRainbow => {
            let level = level.max(24);
            tables.each_along(out, |x| paint.paint(scale(wheel(x.wrapping_add(p)), level)))
        }
        PatternKind::CenterBurst => {
            let half = (n / 2).max(1);
            let per_half = Recip::new(half);
            let radius = div255(u32::from(level) * half);
            tables.set_ramp(0, Ramp::Blend(c1, c2));
            let paint = tables.painter();
            out.fill(paint.paint(BLACK));
            if level == 0 {
                return;
            }
            // LED i is lit while (2i + 1).abs_diff(n) / 2 <= radius, that is while
            // (2i + 1).abs_diff(n) <= 2 radius + 1: from ceil((n - 2 radius - 2) / 2) to
            // (n + 2 radius) / 2.
            let first = (n.saturating_sub(2 * radius + 2) as usize).div_ceil(2);
            let last = (((n + 2 * radius) / 2) as usize).min(out.len() - 1);
            for (i, led) in out.iter_mut().enumerate().take(last + 1).skip(first) {
                let distance = (2 * i as u32 + 1).abs_diff(n) / 2;
                *led = tables.ramp(0, per_half.div(distance * 255).min(255) as u8);
            }
        }
        PatternKind::SplitSpin => {
            let (first, second) = (paint.paint(c1), paint.paint(c2));
            tables.each_along(out, |x| if x.wrapping_add(p) < 128 { first } else { second })
        }
        PatternKind::TheaterChase => {
            let (offset, first) = s.chase();
            let lit = paint.paint(if first { c1 } else { c2 });
            // (i + offset) % 3, counted along rather than divided for.
            let mut k = offset;
            each(out, |_| {
                let c = if k == 0 { lit } else { dark };
                k = if k == 2 { 0 } else { k + 1 };
                c
            })
        }
    }
}

/// LEDs light up in colour 1 at random (`chance` in 256 per slot) and fade within their
/// slot, over colour 2 at a glimmer. A column has two colours, so both are finished once.
fn sparkle<T: Tables>(s: &Scene<'_>, c1: Rgb, c2: Rgb, chance: u32, tables: &mut T, out: &mut [Rgb]) {
    let background = scale(c2, 16);
    // The spark fades out as its slot ends.
    let paint = tables.painter();
    let (key, into_slot) = s.sparkle();
    let (spark, background) = (paint.paint(Mix::new(c1, background).at(into_slot)), paint.paint(background));
    tables.set_draws(0, key, out.len() as u32);
    let tables = &*tables;
    each(out, |i| if tables.draw(0, i) % 256 < chance { spark } else { background })
}

/// A head of colour 1 running from handle to tip once a cycle, with a tail fading into
/// colour 2; a meteor's tail crumbles at random.
#[allow(clippy::too_many_arguments)] // all of them fixed for the column
fn comet<T: Tables>(
    s: &Scene<'_>,
    c1: Rgb,
    c2: Rgb,
    n: u32,
    tail: u32,
    crumbling: bool,
    tables: &mut T,
    out: &mut [Rgb],
) {
    tables.set_ramp(0, Ramp::Tail(c1, c2));
    if crumbling {
        tables.set_ramp(1, Ramp::Crumbled(c1, c2));
        tables.set_draws(0, s.crumble_key(), n);
    }
    let (per_tail, head) = (Recip::new(tail), s.head());
    let tables = &*tables;
    out.fill(tables.painter().paint(BLACK));
    // The lit LEDs run back from the head, `behind` LEDs back, wrapping at the handle; the
    // rest stay dark.
    let mut i = head as usize;
    for behind in 0..tail.min(n) {
        let along_tail = per_tail.div(behind * 255) as u8;
        out[i] = if crumbling && behind > 0 && tables.draw(0, i as u32).is_multiple_of(3) {
            tables.ramp(1, along_tail)
        } else {
            tables.ramp(0, along_tail)
        };
        i = if i == 0 { n as usize - 1 } else { i - 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn column(kind: PatternKind, t: u64, level: u8, n: usize) -> Vec<Rgb> {
        let p = Pattern::new(kind, Rgb::new(255, 0, 0), Rgb::new(0, 0, 255), 50).unwrap();
        let mut out = vec![Rgb::default(); n];
        draw(&p, t, level, &mut out);
        out
    }

    /// LED values at a few (pattern, show time, LED count), written down from a run so that
    /// any change to what a pattern draws (or to the arithmetic that gets there, at show
    /// times near the epoch and near the counters' limits) shows here. Colours red and blue,
    /// speed 50, level 200.
    #[test]
    fn golden_columns() {
        let at = |kind, t, n| column(kind, t, 200, n);
        let rgb = |r, g, b| Rgb::new(r, g, b);
        let c = at(PatternKind::Rainbow, 1_000, 32);
        assert_eq!([c[0], c[10], c[31]], [rgb(75, 0, 180), rgb(198, 57, 0), rgb(51, 0, 204)]);
        let c = at(PatternKind::Wave, 2_345, 32);
        assert_eq!([c[0], c[7], c[20]], [rgb(251, 0, 4), rgb(25, 0, 230), rgb(158, 0, 97)]);
        let c = at(PatternKind::Fire, 5_000, 144);
        assert_eq!([c[0], c[71], c[143]], [rgb(161, 0, 94), rgb(18, 0, 0), rgb(16, 0, 0)]);
        let c = at(PatternKind::Comet, 700, 32);
        assert_eq!(
            [c[0], c[10], c[17], c[18], c[19]],
            [BLACK, rgb(4, 0, 28), rgb(255, 0, 0), BLACK, BLACK],
            "head at LED 17, tail behind it"
        );
        let c = at(PatternKind::Meteor, 1_764_000_000_123, 64);
        assert_eq!([c[0], c[20], c[40], c[60]], [rgb(9, 0, 39), rgb(170, 0, 38), BLACK, rgb(1, 0, 15)]);
        let c = at(PatternKind::TheaterChase, 12_345, 32);
        assert_eq!([c[0], c[1], c[2], c[3]], [rgb(0, 0, 255), BLACK, BLACK, rgb(0, 0, 255)]);
        let c = at(PatternKind::Plasma, u64::MAX / 512, 144);
        assert_eq!([c[0], c[50], c[100]], [rgb(255, 0, 0), rgb(123, 0, 132), rgb(36, 219, 0)]);
        let c = at(PatternKind::Wipe, 3_000, 32);
        assert_eq!([c[0], c[15], c[31]], [rgb(255, 0, 0), rgb(0, 0, 255), rgb(0, 0, 255)]);

        // Sparks: which LEDs, and how far faded into their slot; the rest is the blue glimmer.
        let lit = |c: &[Rgb], background: Rgb| -> Vec<(usize, Rgb)> {
            c.iter().copied().enumerate().filter(|(_, led)| *led != background).collect()
        };
        let glimmer = rgb(0, 0, 16);
        let c = at(PatternKind::Sparkle, 123_456_789, 32);
        assert_eq!(lit(&c, glimmer), [(25, rgb(56, 0, 12)), (28, rgb(56, 0, 12))]);
        let c = at(PatternKind::AudioSparkle, 40_000, 32);
        let sparks: Vec<usize> = lit(&c, glimmer).iter().map(|(i, _)| *i).collect();
        assert_eq!(sparks, [2, 6, 10, 11, 14, 16, 24, 25, 27, 31]);
        assert!(lit(&c, glimmer).iter().all(|(_, led)| *led == rgb(255, 0, 0)), "fresh in their slot");
    }

    /// Where the sparks of `pattern` fall over 50 slots of 50 ms (20 a second at speed 50).
    fn spark_places(pattern: &Pattern, level: u8) -> Vec<Vec<usize>> {
        (0..50u64)
            .map(|k| {
                let mut out = [BLACK; 32];
                draw(pattern, 1_764_000_000_000 + k * 50, level, &mut out);
                let glimmer = scale(pattern.color2(), 16);
                (0..32).filter(|&i| out[i] != glimmer).collect()
            })
            .collect()
    }

    #[test]
    fn other_parameters_sparkle_elsewhere() {
        let (red, blue, green) = (Rgb::new(255, 0, 0), Rgb::new(0, 0, 255), Rgb::new(0, 255, 0));
        let base = spark_places(&Pattern::new(PatternKind::Sparkle, red, blue, 50).unwrap(), 0);
        assert!(base.iter().any(|s| !s.is_empty()), "it sparkles at all");
        for other in [
            Pattern::new(PatternKind::Sparkle, green, blue, 50).unwrap(),
            Pattern::new(PatternKind::Sparkle, red, green, 50).unwrap(),
            Pattern::new(PatternKind::Sparkle, red, blue, 51).unwrap(),
        ] {
            assert_ne!(spark_places(&other, 0), base, "{other:?} sparkles like the default");
        }
        // Audio Sparkle at level 64 has Sparkle's chance (32 in 256) and the same slots: only
        // the seed (the type is part of it) tells them apart.
        let audio = Pattern::new(PatternKind::AudioSparkle, red, blue, 50).unwrap();
        assert_ne!(spark_places(&audio, 64), base);
    }

    /// Two poi, each with its own renderer and a different history of columns, show the same
    /// column at the same show time: nothing of earlier columns is carried over.
    #[test]
    fn two_renderers_agree_at_the_same_show_time() {
        use crate::render::{Program, Renderer};
        let (a, b) = (Renderer::new(32).unwrap(), Renderer::new(32).unwrap());
        for kind in PatternKind::ALL {
            let program =
                Program::Pattern(Pattern::new(kind, Rgb::new(255, 40, 0), Rgb::new(0, 80, 255), 120).unwrap());
            let t = 1_764_000_123_456;
            let (mut on_a, mut on_b) = ([BLACK; 32], [BLACK; 32]);
            // Poi b has been playing for a while; poi a was just switched on.
            for earlier in (t - 3_000..t).step_by(7) {
                b.render(&program, earlier, 50, (earlier % 256) as u8, &mut on_b);
            }
            a.render(&program, t, 50, 90, &mut on_a);
            b.render(&program, t, 50, 90, &mut on_b);
            assert_eq!(on_a, on_b, "{kind:?}");
        }
    }

    #[test]
    fn animated_patterns_change_with_the_show_time() {
        // The audio patterns that stand still at a steady level are left out.
        let still = [PatternKind::VuMeter, PatternKind::Pulse, PatternKind::CenterBurst];
        for kind in PatternKind::ALL.into_iter().filter(|k| !still.contains(k)) {
            for n in [32, 144] {
                let now = column(kind, 10_000, 200, n);
                assert_ne!(column(kind, 10_500, 200, n), now, "{kind:?} at {n} LEDs is the same 500 ms later");
            }
        }
        for kind in still {
            assert_eq!(column(kind, 10_500, 200, 32), column(kind, 10_000, 200, 32), "{kind:?}");
        }
    }

    #[test]
    fn every_pattern_moves_and_shows_something() {
        for kind in PatternKind::ALL {
            // The level varies too: the audio patterns move with the sound, not the clock.
            let frames: Vec<Vec<Rgb>> =
                (0..200).map(|k| column(kind, 10_000 + k * 37, (k * 53 % 256) as u8, 32)).collect();
            assert!(frames.iter().any(|f| f.iter().any(|c| *c != BLACK)), "{kind:?} is always dark");
            assert!(frames.windows(2).any(|w| w[0] != w[1]), "{kind:?} never changes");
        }
    }

    #[test]
    fn audio_patterns_follow_the_level() {
        let lit = |c: &[Rgb]| c.iter().filter(|c| **c != BLACK).count();
        assert_eq!(lit(&column(PatternKind::VuMeter, 5_000, 0, 32)), 0);
        assert_eq!(lit(&column(PatternKind::VuMeter, 5_000, 128, 32)), 16);
        assert_eq!(lit(&column(PatternKind::VuMeter, 5_000, 255, 32)), 32);
        assert_eq!(lit(&column(PatternKind::CenterBurst, 5_000, 0, 32)), 0);
        assert!(lit(&column(PatternKind::CenterBurst, 5_000, 255, 32)) >= 30);
        // Sparks are colour 1 (red); the background glimmer is colour 2 (blue).
        let sparks = |c: &[Rgb]| c.iter().filter(|c| c.r > 0).count();
        let quiet: usize = (0..50).map(|k| sparks(&column(PatternKind::AudioSparkle, k * 60, 0, 32))).sum();
        let loud: usize = (0..50).map(|k| sparks(&column(PatternKind::AudioSparkle, k * 60, 255, 32))).sum();
        assert_eq!(quiet, 0, "silence, no sparks");
        assert!(loud > quiet, "louder sparkles more: {loud} vs {quiet}");
        assert_ne!(column(PatternKind::Pulse, 0, 0, 4), column(PatternKind::Pulse, 0, 255, 4));
    }

    #[test]
    fn a_faster_speed_moves_the_rainbow_further() {
        let at = |speed: u8, t: u64| {
            let p = Pattern::new(PatternKind::Rainbow, BLACK, BLACK, speed).unwrap();
            let mut out = [BLACK; 1];
            draw(&p, t, 0, &mut out);
            out[0]
        };
        // Phase = t * speed / 256 in 1/256 turns of the hue wheel.
        assert_eq!(at(128, 100), wheel(50));
        assert_eq!(at(64, 100), wheel(25), "half the speed, half the way");
        assert_eq!(at(255, 256), wheel(255));
        assert_eq!(at(255, 300), wheel(42), "past a full turn it wraps (298 - 256)");
        assert_ne!(at(200, 1_000), at(20, 1_000));
    }

    #[test]
    fn the_comet_head_runs_from_handle_to_tip() {
        let brightest = |t: u64| {
            let c = column(PatternKind::Comet, t, 0, 32);
            (0..32).max_by_key(|&i| u16::from(c[i].r) + u16::from(c[i].b)).unwrap()
        };
        // Speed 50: 256 phase units take 1,310 ms; a quarter cycle is LED 8.
        assert_eq!(brightest(0), 0);
        assert_eq!(brightest(1_311 / 4 + 1), 8);
    }
}
