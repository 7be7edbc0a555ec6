//! The 18 patterns as pure functions of (show time, pattern, LED index, audio level).
//!
//! No state is carried from one column to the next: the same show time gives the same
//! column on every poi, and "random" patterns draw from a hash of the time slot, the LED
//! and the pattern's parameters instead of a generator that would drift apart.

use crate::model::{Pattern, PatternKind, Rgb};

use super::color::{BLACK, blend, scale, wheel};

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
fn sin8(angle: u8) -> u8 {
    SINE[usize::from(angle)]
}

/// 0 up to 254 and back down: a gradient that does not jump when it wraps.
fn triangle8(x: u8) -> u8 {
    if x < 128 { x * 2 } else { (255 - x) * 2 }
}

/// A well-mixed 32-bit hash of three words (the murmur3 finaliser over a combination), the
/// patterns' source of randomness.
fn hash3(a: u32, b: u32, c: u32) -> u32 {
    let mut h = a ^ b.wrapping_mul(0x9E37_79B9) ^ c.wrapping_mul(0x85EB_CA6B).rotate_left(13);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// What a pattern is drawn from at one instant. Everything derived from the show time is
/// worked out here, once per column and only what the pattern uses: the wide (64- and
/// 128-bit) multiplications, divisions and remainders are software routines on a 32-bit
/// microcontroller, too dear to repeat for every LED. The per-LED code sees only 32-bit and
/// narrower values.
#[derive(Default)]
struct Scene {
    /// LEDs on the strip.
    n: u32,
    pattern: Pattern,
    /// Microphone level, 0-255.
    level: u8,
    /// Progress through the pattern's cycle in 1/256 turns (256 units take 256 * 256 /
    /// speed ms, about 1.3 s at the default speed 50), modulo one turn.
    phase8: u8,
    /// The same progress modulo two turns: the wipe fills in one colour, then the other.
    wipe: u32,
    /// LED under the comet's or meteor's head.
    head: u32,
    /// Theater chase: which LED of every three is lit (LED i when (i + offset) % 3 == 0),
    /// and whether in colour 1 (else colour 2). Steps 10 times a second at speed 50.
    chase_offset: u32,
    chase_first: bool,
    /// Hash keys of the random draws: the sparkles' 20-a-second slot, the fire's two noise
    /// slots either side of now, and the meteor's 15-a-second crumbling.
    sparkle_key: (u32, u32),
    fire_keys: [(u32, u32); 2],
    crumble_key: (u32, u32),
    /// How far into its 20-a-second slot the column is, 0-255 (sparkles fade over it).
    into_slot20: u8,
    /// How far the fire is from its first noise slot to the second, in 1/256.
    fire_frac: u32,
    /// The strobe is in the lit quarter of its period.
    strobe_on: bool,
}

impl Scene {
    fn new(pattern: &Pattern, t: u64, n: u32, level: u8) -> Scene {
        let speed = u64::from(pattern.speed());
        let (c1, c2) = (pattern.color1(), pattern.color2());
        // Fixed per pattern, so two patterns with other colours sparkle differently.
        let seed = hash3(
            u32::from(pattern.kind().id()) << 8 | u32::from(pattern.speed()),
            u32::from_le_bytes([c1.r, c1.g, c1.b, 0]),
            u32::from_le_bytes([c2.r, c2.g, c2.b, 0]),
        );
        let key = |slot: u64| (seed ^ (slot >> 32) as u32, slot as u32);
        let scaled =
            |numerator: u64, denominator: u64| (u128::from(t) * u128::from(numerator) / u128::from(denominator)) as u64;
        let phase = || scaled(speed, 256);
        let head = || ((phase() % 256) * u64::from(n) / 256) as u32;
        let mut s = Scene { n, pattern: *pattern, level, ..Scene::default() };
        match pattern.kind() {
            PatternKind::Rainbow
            | PatternKind::Wave
            | PatternKind::Gradient
            | PatternKind::Breathing
            | PatternKind::Plasma
            | PatternKind::AudioRainbow
            | PatternKind::SplitSpin => s.phase8 = phase() as u8,
            PatternKind::Wipe => s.wipe = (phase() % 512) as u32,
            PatternKind::Comet => s.head = head(),
            PatternKind::Meteor => {
                s.head = head();
                s.crumble_key = key(scaled(15 * speed, 50_000));
            }
            PatternKind::Sparkle | PatternKind::AudioSparkle => {
                // A fine counter: 256 steps per 20-a-second slot.
                let fine20 = scaled(20 * speed * 256, 50_000);
                s.sparkle_key = key(fine20 / 256);
                s.into_slot20 = (fine20 % 256) as u8;
            }
            PatternKind::Fire => {
                let fire = scaled(speed, 20);
                let slot = fire / 256;
                s.fire_keys = [key(slot), key(slot + 1)];
                s.fire_frac = (fire % 256) as u32;
            }
            // speed/10 flashes a second (5 at 50), each a quarter of its period.
            PatternKind::Strobe => s.strobe_on = (u128::from(t) * u128::from(speed) % 10_000) < 2_500,
            PatternKind::TheaterChase => {
                let step = scaled(10 * speed, 50_000);
                s.chase_offset = (step % 3) as u32;
                s.chase_first = step.is_multiple_of(2);
            }
            PatternKind::VuMeter | PatternKind::Pulse | PatternKind::CenterBurst => {}
        }
        s
    }

    /// LED `i`'s place along the strip in 1/256 of its length.
    fn along(&self, i: u32) -> u8 {
        (i * 256 / self.n) as u8
    }

    fn c1(&self) -> Rgb {
        self.pattern.color1()
    }

    fn c2(&self) -> Rgb {
        self.pattern.color2()
    }
}

/// A draw for LED `i` from the slot behind `key`.
fn random(key: (u32, u32), i: u32) -> u32 {
    hash3(key.0, key.1, i)
}

/// Fills `out` (one entry per LED, LED 0 at the handle) with `pattern` at show time `t_ms`.
pub(crate) fn draw(pattern: &Pattern, t_ms: u64, level: u8, out: &mut [Rgb]) {
    let n = out.len() as u32;
    if n == 0 {
        return;
    }
    let s = Scene::new(pattern, t_ms, n, level);
    for (i, led) in out.iter_mut().enumerate() {
        *led = led_color(&s, i as u32);
    }
}

fn led_color(s: &Scene, i: u32) -> Rgb {
    let n = s.n;
    match s.pattern.kind() {
        PatternKind::Rainbow => wheel(s.along(i).wrapping_add(s.phase8)),
        PatternKind::Wave => blend(s.c2(), s.c1(), sin8(s.along(i).wrapping_mul(2).wrapping_sub(s.phase8))),
        PatternKind::Gradient => blend(s.c1(), s.c2(), triangle8(s.along(i).wrapping_add(s.phase8))),
        PatternKind::Sparkle => sparkle(s, i, 32),
        PatternKind::Fire => fire(s, i),
        PatternKind::Comet => comet(s, i, (n / 4).max(2), false),
        PatternKind::Breathing => scale(s.c1(), 16 + (u16::from(sin8(s.phase8)) * 239 / 255) as u8),
        PatternKind::Strobe => {
            if s.strobe_on {
                s.c1()
            } else {
                BLACK
            }
        }
        PatternKind::Meteor => comet(s, i, (n / 2).max(2), true),
        PatternKind::Wipe => {
            let cycle = s.wipe;
            let (front, fill, rest) = if cycle < 256 { (cycle, s.c1(), s.c2()) } else { (cycle - 256, s.c2(), s.c1()) };
            if i * 256 < front * n { fill } else { rest }
        }
        PatternKind::Plasma => {
            let x = s.along(i);
            let p = s.phase8;
            let a = sin8(x.wrapping_mul(2).wrapping_add(p));
            let b = sin8(x.wrapping_mul(3).wrapping_sub(p.wrapping_mul(2)));
            wheel((((u16::from(a) + u16::from(b)) / 2) as u8).wrapping_add(p / 2))
        }
        PatternKind::VuMeter => {
            let lit = u32::from(s.level) * n / 255;
            if i < lit { blend(s.c1(), s.c2(), (i * 255 / n) as u8) } else { BLACK }
        }
        PatternKind::Pulse => blend(scale(s.c2(), 24), s.c1(), s.level),
        PatternKind::AudioRainbow => scale(wheel(s.along(i).wrapping_add(s.phase8)), s.level.max(24)),
        PatternKind::CenterBurst => {
            let half = (n / 2).max(1);
            let distance = (2 * i + 1).abs_diff(n) / 2;
            let radius = u32::from(s.level) * half / 255;
            if s.level > 0 && distance <= radius {
                blend(s.c1(), s.c2(), (distance * 255 / half).min(255) as u8)
            } else {
                BLACK
            }
        }
        PatternKind::AudioSparkle => sparkle(s, i, u32::from(s.level) / 2),
        PatternKind::SplitSpin => {
            if s.along(i).wrapping_add(s.phase8) < 128 {
                s.c1()
            } else {
                s.c2()
            }
        }
        PatternKind::TheaterChase => {
            if (i + s.chase_offset).is_multiple_of(3) {
                if s.chase_first { s.c1() } else { s.c2() }
            } else {
                BLACK
            }
        }
    }
}

/// LEDs light up in colour 1 at random (`chance` in 256 per slot) and fade within their
/// slot, over colour 2 at a glimmer.
fn sparkle(s: &Scene, i: u32, chance: u32) -> Rgb {
    let background = scale(s.c2(), 16);
    if random(s.sparkle_key, i) % 256 >= chance {
        return background;
    }
    // The spark fades out as its slot ends.
    blend(s.c1(), background, s.into_slot20)
}

/// Flames rising from the handle: heat is value noise in time, cooling toward the tip,
/// shown black, then colour 1, then colour 2 at the hottest.
fn fire(s: &Scene, i: u32) -> Rgb {
    let frac = s.fire_frac;
    let a = random(s.fire_keys[0], i) % 256;
    let b = random(s.fire_keys[1], i) % 256;
    let noise = (a * (256 - frac) + b * frac) / 256;
    let cooling = 255 - i * 200 / s.n;
    let heat = (noise * cooling / 255) as u8;
    if heat < 128 { blend(BLACK, s.c1(), heat * 2) } else { blend(s.c1(), s.c2(), (heat - 128) * 2) }
}

/// A head of colour 1 running from handle to tip once a cycle, with a tail fading into
/// colour 2; a meteor's tail crumbles at random.
fn comet(s: &Scene, i: u32, tail: u32, crumbling: bool) -> Rgb {
    let behind = (s.head + s.n - i) % s.n;
    if behind >= tail {
        return BLACK;
    }
    let fade = 255 - behind * 255 / tail;
    let mut c = scale(blend(s.c1(), s.c2(), (behind * 255 / tail) as u8), fade as u8);
    if crumbling && behind > 0 && random(s.crumble_key, i).is_multiple_of(3) {
        c = scale(c, 64);
    }
    c
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
