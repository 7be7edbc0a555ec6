//! The renderer as it was before the lookup tables (commit 65e6390), kept for the tests
//! that prove the fast paths draw exactly the same bytes: the arithmetic here is the
//! specification, the code in the other modules is the fast version of it.

use crate::model::{Pattern, PatternKind, Rgb};

use super::color::{BLACK, gamma};
use super::pattern::sin8;

/// Mixes `a` and `b`: `amount` 0 gives `a`, 255 gives `b`.
pub fn blend(a: Rgb, b: Rgb, amount: u8) -> Rgb {
    let mix = |x: u8, y: u8| {
        let (x, y, t) = (u16::from(x), u16::from(y), u16::from(amount));
        ((x * (255 - t) + y * t + 127) / 255) as u8
    };
    Rgb::new(mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b))
}

/// `c` at `level`/255 of its intensity.
pub fn scale(c: Rgb, level: u8) -> Rgb {
    let s = |x: u8| ((u16::from(x) * u16::from(level) + 127) / 255) as u8;
    Rgb::new(s(c.r), s(c.g), s(c.b))
}

/// The fully saturated colour at `hue` on a 256-step wheel (0 red, 85 green, 170 blue,
/// 255 next to red again).
pub fn wheel(hue: u8) -> Rgb {
    match hue {
        0..85 => Rgb::new(255 - hue * 3, hue * 3, 0),
        85..170 => {
            let h = hue - 85;
            Rgb::new(0, 255 - h * 3, h * 3)
        }
        _ => {
            let h = hue - 170;
            Rgb::new(h * 3, 0, 255 - h * 3)
        }
    }
}

/// Brightness and gamma as `Finish::apply` did them, one LED at a time with a division.
pub fn finish(brightness: u8, gamma_on: bool, column: &mut [Rgb]) {
    for led in column {
        let c = if gamma_on { Rgb::new(gamma(led.r), gamma(led.g), gamma(led.b)) } else { *led };
        *led = scale(c, brightness);
    }
}

/// Which image column is on, in 128-bit arithmetic.
pub fn image_column(t_ms: u64, framerate: u16, width: u16) -> usize {
    let frame = u128::from(t_ms) * u128::from(framerate) / 1000;
    (frame % u128::from(width.max(1))) as usize
}

/// The image column shown at `t_ms`, stretched to `out`.
pub fn draw_image(width: u16, height: u16, pixels: &[u8], t_ms: u64, framerate: u16, out: &mut [Rgb]) {
    let x = image_column(t_ms, framerate, width);
    let pixel = |y: usize| {
        let at = (y * usize::from(width) + x) * 3;
        match pixels.get(at..at + 3) {
            Some(p) => Rgb::new(p[0], p[1], p[2]),
            None => BLACK,
        }
    };
    stretch(usize::from(height), out, pixel);
}

/// Nearest-neighbour stretch of `rows` rows onto the strip, a division per LED.
pub fn stretch(rows: usize, out: &mut [Rgb], row: impl Fn(usize) -> Rgb) {
    let n = out.len();
    if rows == 0 {
        out.fill(BLACK);
        return;
    }
    for (i, led) in out.iter_mut().enumerate() {
        *led = row(i * rows / n);
    }
}

/// 0 up to 254 and back down.
fn triangle8(x: u8) -> u8 {
    if x < 128 { x * 2 } else { (255 - x) * 2 }
}

/// The patterns' hash, as it was.
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
pub fn draw(pattern: &Pattern, t_ms: u64, level: u8, out: &mut [Rgb]) {
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

/// The fast renderer against the arithmetic above, input for input.
mod equivalence {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::color::{self, div255};
    use super::super::{ColumnCache, Finish, FinishTable, ImageView, Program, Renderer};
    use crate::model::{Pattern, PatternKind, Rgb};

    /// splitmix64: reproducible inputs without a dependency.
    struct Inputs(u64);

    impl Inputs {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn color(&mut self) -> Rgb {
            let [r, g, b, ..] = self.next().to_le_bytes();
            Rgb::new(r, g, b)
        }

        /// Show times near the epoch, today, the 32-bit and 64-bit limits, and anywhere.
        fn time(&mut self) -> u64 {
            let near = [0, 1_764_000_000_000, 1 << 32, 1 << 40, u64::MAX / 512, u64::MAX - 100_000, 1 << 63];
            match self.below(3) {
                0 => near[self.below(near.len() as u64) as usize].wrapping_add(self.below(100_000)),
                1 => self.below(10_000_000),
                _ => self.next(),
            }
        }
    }

    #[test]
    fn div255_is_the_floor_division_up_to_its_bound() {
        for v in 0..=66_298u32 {
            assert_eq!(div255(v), v / 255, "{v}");
        }
        assert_ne!(div255(66_299), 66_299 / 255, "the bound in the doc comment is the real one");
    }

    #[test]
    fn blend_and_scale_match_the_division_for_every_input() {
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                // The three channels see (x, y), (y, x) and (x, x ^ y): every pair, both ways.
                let (a, b) = (Rgb::new(x, y, x), Rgb::new(y, x, x ^ y));
                for t in 0..=255u8 {
                    assert_eq!(color::blend(a, b, t), super::blend(a, b, t), "{a:?} {b:?} {t}");
                }
                assert_eq!(color::scale(a, y), super::scale(a, y), "{a:?} {y}");
            }
        }
    }

    #[test]
    fn the_wheel_table_is_the_formula() {
        for hue in 0..=255u8 {
            assert_eq!(color::wheel(hue), super::wheel(hue), "{hue}");
        }
    }

    #[test]
    fn finishes_and_their_tables_match_the_old_finish_for_every_input() {
        let all: Vec<Rgb> = (0..=255u8).map(|v| Rgb::new(v, 255 - v, v.wrapping_mul(7))).collect();
        for brightness in 0..=255u8 {
            for gamma in [false, true] {
                let finish = Finish { brightness, gamma };
                let mut expected = all.clone();
                super::finish(brightness, gamma, &mut expected);
                let mut direct = all.clone();
                finish.apply(&mut direct);
                assert_eq!(direct, expected, "Finish::apply {finish:?}");
                let table = finish.table();
                let mut looked_up = all.clone();
                table.apply(&mut looked_up);
                assert_eq!(looked_up, expected, "FinishTable::apply {finish:?}");
                assert_eq!(table.finish(), finish);
            }
        }
    }

    #[test]
    fn a_finish_table_rebuilds_when_its_finish_changes() {
        let dim = Finish { brightness: 40, gamma: true };
        let mut table = FinishTable::new(Finish { brightness: 255, gamma: false });
        assert_eq!(table.channel(200), 200);
        table.set(dim);
        assert_eq!(table, FinishTable::new(dim));
        assert_eq!(table.channel(200), dim.channel(200));
        assert_ne!(table.channel(200), 200);
    }

    #[test]
    fn wide_arithmetic_in_64_bits_matches_128() {
        let mut inputs = Inputs(1);
        for k in 0..200_000 {
            let t = inputs.time();
            let (framerate, width) = (inputs.next() as u16, inputs.next() as u16);
            let width = if k % 3 == 0 { width % 500 } else { width };
            assert_eq!(super::super::image_column(t, framerate, width), super::image_column(t, framerate, width));
            assert_eq!(
                super::super::program::image_column_32(t, framerate, width),
                super::image_column(t, framerate, width),
                "the 32-bit core's way"
            );
            let speed = inputs.below(256) as u32;
            // The fractions the patterns use, as the reference wrote them and in lowest terms.
            for ((m, d), (reduced_m, reduced_d)) in [
                ((speed, 256u32), (speed, 256)),
                ((15 * speed, 50_000), (3 * speed, 10_000)),
                ((20 * speed * 256, 50_000), (64 * speed, 625)),
                ((speed, 20), (speed, 20)),
                ((10 * speed, 50_000), (speed, 5_000)),
            ] {
                let wide = (u128::from(t) * u128::from(m) / u128::from(d)) as u64;
                assert_eq!(super::super::pattern::scaled(t, reduced_m, reduced_d), wide, "{t} * {m} / {d}");
            }
            let d = inputs.below(65_535) as u32 + 1;
            let digits = super::super::pattern::divrem_by_digits(t, d);
            assert_eq!(digits, (t / u64::from(d), (t % u64::from(d)) as u32), "{t} / {d}");
        }
    }

    #[test]
    fn division_by_a_reciprocal_is_exact_for_every_strip() {
        for d in 1..=u32::from(super::super::MAX_LEDS) {
            let r = super::super::pattern::Recip::new(d);
            for x in 0..=65_535u32 {
                assert_eq!(r.div(x), x / d, "{x} / {d}");
            }
        }
    }

    /// The finishes the comparisons go through, and a cache for each that lives as long as
    /// the test, so that what one column leaves in it meets every later one.
    struct Finishes {
        caches: [ColumnCache; 3],
    }

    impl Finishes {
        fn new() -> Finishes {
            let finish = |brightness, gamma| ColumnCache::new(Finish { brightness, gamma });
            Finishes { caches: [finish(255, false), finish(200, true), finish(0, false)] }
        }
    }

    /// Renders `program` every way (raw, finished, finished with a cache) under a few
    /// finishes and compares with the reference.
    #[allow(clippy::too_many_arguments)]
    fn check(
        program: &Program<'_>,
        reference: impl Fn(&mut [Rgb]),
        leds: u16,
        t: u64,
        framerate: u16,
        audio: u8,
        finishes: &mut Finishes,
    ) {
        let renderer = Renderer::new(leds).unwrap();
        let mut expected = vec![Rgb::default(); usize::from(leds)];
        reference(&mut expected);
        // Longer than the strip: what lies past it is left alone.
        let mut out = vec![Rgb::new(1, 2, 3); usize::from(leds) + 2];
        renderer.render(program, t, framerate, audio, &mut out);
        assert_eq!(out[..usize::from(leds)], expected[..], "raw, {leds} LEDs at {t}");
        assert_eq!(out[usize::from(leds)..], [Rgb::new(1, 2, 3); 2]);
        // The third finish changes with the time: its cache is told, and drops its colours.
        finishes.caches[2].set_finish(Finish { brightness: (t % 256) as u8, gamma: t.is_multiple_of(2) });
        for cache in &mut finishes.caches {
            let finish = cache.finish();
            let mut finished = expected.clone();
            super::finish(finish.brightness, finish.gamma, &mut finished);
            renderer.render_finished(program, t, framerate, audio, &finish.table(), &mut out);
            assert_eq!(out[..usize::from(leds)], finished[..], "{finish:?}, {leds} LEDs at {t}");
            out.fill(Rgb::new(1, 2, 3));
            renderer.render_cached(program, t, framerate, audio, cache, &mut out);
            assert_eq!(out[..usize::from(leds)], finished[..], "cached {finish:?}, {leds} LEDs at {t}");
            assert_eq!(out[usize::from(leds)..], [Rgb::new(1, 2, 3); 2]);
        }
    }

    #[test]
    fn every_pattern_matches_the_reference_renderer() {
        let (mut inputs, mut finishes) = (Inputs(2), Finishes::new());
        let some_leds = [1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 63, 64, 100, 143, 144];
        for kind in PatternKind::ALL {
            for k in 0..2_500 {
                let speed = match k % 4 {
                    0 => [1, 2, 50, 120, 255][(k / 4) % 5],
                    _ => inputs.below(255) as u8 + 1,
                };
                let (c1, c2) = match k % 3 {
                    0 => (Rgb::new(255, 0, 0), Rgb::new(0, 0, 255)),
                    1 => (Rgb::new(255, 255, 255), Rgb::new(0, 0, 0)),
                    _ => (inputs.color(), inputs.color()),
                };
                let pattern = Pattern::new(kind, c1, c2, speed).unwrap();
                let leds = if k % 2 == 0 { some_leds[k / 2 % some_leds.len()] } else { inputs.below(144) as u16 + 1 };
                let t = inputs.time();
                let level = match k % 5 {
                    0 => 0,
                    1 => 255,
                    _ => inputs.next() as u8,
                };
                let reference = |out: &mut [Rgb]| super::draw(&pattern, t, level, out);
                check(&Program::Pattern(pattern), reference, leds, t, 250, level, &mut finishes);
            }
        }
    }

    #[test]
    fn images_and_live_columns_match_the_reference_renderer() {
        let (mut inputs, mut finishes) = (Inputs(3), Finishes::new());
        for k in 0..4_000 {
            let (width, height) = (inputs.below(600) as u16, inputs.below(200) as u16);
            let full = usize::from(width) * usize::from(height) * 3;
            // Whole images, short ones (a row or a pixel cut off) and byte counts off by one.
            let len = match k % 4 {
                0 | 1 => full,
                2 => full.saturating_sub(inputs.below(full as u64 + 1) as usize),
                _ => full + 1 + inputs.below(4) as usize,
            };
            let pixels: Vec<u8> = (0..len).map(|_| inputs.next() as u8).collect();
            let image = ImageView { width, height, pixels: &pixels };
            let leds = inputs.below(144) as u16 + 1;
            let (t, framerate) = (inputs.time(), inputs.next() as u16);
            let reference = |out: &mut [Rgb]| super::draw_image(width, height, &pixels, t, framerate, out);
            check(&Program::Image(image), reference, leds, t, framerate, 0, &mut finishes);
            // As tall as the strip, the case with its own loop: whole, short or long.
            let full = usize::from(width) * usize::from(leds) * 3;
            let len = match k % 3 {
                0 => full,
                1 => full.saturating_sub(inputs.below(full as u64 + 1) as usize),
                _ => full + inputs.below(10) as usize,
            };
            let pixels: Vec<u8> = (0..len).map(|_| inputs.next() as u8).collect();
            let image = ImageView { width, height: leds, pixels: &pixels };
            let reference = |out: &mut [Rgb]| super::draw_image(width, leds, &pixels, t, framerate, out);
            check(&Program::Image(image), reference, leds, t, framerate, 0, &mut finishes);

            let pushed: Vec<Rgb> = (0..inputs.below(200)).map(|_| inputs.color()).collect();
            let reference = |out: &mut [Rgb]| super::stretch(pushed.len(), out, |y| pushed[y]);
            check(&Program::Live(&pushed), reference, leds, t, framerate, 0, &mut finishes);
        }
    }

    /// Column after column as a player renders them, a millisecond apart, so that the random
    /// patterns' time slots come and go through the same cache (the fire's next slot
    /// becomes its current one), on strips that change length.
    #[test]
    fn a_cache_kept_across_columns_draws_what_the_reference_draws() {
        let (mut inputs, mut finishes) = (Inputs(4), Finishes::new());
        let kinds = [PatternKind::Fire, PatternKind::Sparkle, PatternKind::AudioSparkle, PatternKind::Meteor];
        for round in 0..12u64 {
            let kind = kinds[round as usize % kinds.len()];
            let pattern = Pattern::new(kind, inputs.color(), inputs.color(), inputs.below(255) as u8 + 1).unwrap();
            let start = inputs.time();
            for k in 0..1_500u64 {
                let t = start.wrapping_add(k);
                let leds = [32, 144, 7, 64][(k / 400) as usize];
                let level = (k % 256) as u8;
                let reference = |out: &mut [Rgb]| super::draw(&pattern, t, level, out);
                check(&Program::Pattern(pattern), reference, leds, t, 250, level, &mut finishes);
            }
        }
    }

    /// A sequence (an image, a pattern, a slot left empty) through the same three paths.
    #[test]
    fn sequences_match_the_reference_renderer() {
        use crate::device::ReplicaId;
        use crate::model::{ImageId, Sequence, SequenceItem, SequenceTarget};

        struct Library(Vec<u8>);
        const IMAGE: ImageId = ImageId { origin: ReplicaId(1), seq: 1 };
        impl super::super::Content for Library {
            fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
                (id == IMAGE).then_some(ImageView { width: 50, height: 32, pixels: &self.0 })
            }
            fn pattern(&self, slot: u8) -> Option<Pattern> {
                (slot == 3)
                    .then(|| Pattern::new(PatternKind::Fire, Rgb::new(255, 90, 0), Rgb::new(255, 255, 80), 80).unwrap())
            }
        }
        let (mut inputs, mut finishes) = (Inputs(5), Finishes::new());
        let library = Library((0..50 * 32 * 3).map(|_| inputs.next() as u8).collect());
        let items = vec![
            SequenceItem { target: SequenceTarget::Image(IMAGE), duration_ms: 300 },
            SequenceItem { target: SequenceTarget::Pattern(3), duration_ms: 500 },
            SequenceItem { target: SequenceTarget::Pattern(9), duration_ms: 200 },
        ];
        let sequence = Sequence::new(items, true).unwrap();
        let program = Program::Sequence { sequence: &sequence, started_ms: 5_000, content: &library };
        for t in (4_000..9_000u64).step_by(7) {
            let reference = |out: &mut [Rgb]| match super::super::sequence_item(&sequence, t.saturating_sub(5_000)) {
                Some(SequenceTarget::Image(_)) => super::draw_image(50, 32, &library.0, t, 120, out),
                Some(SequenceTarget::Pattern(3)) => {
                    let fire = super::super::Content::pattern(&library, 3).unwrap();
                    super::draw(&fire, t, 77, out)
                }
                _ => out.fill(Rgb::default()),
            };
            check(&program, reference, 32, t, 120, 77, &mut finishes);
        }
    }
}
