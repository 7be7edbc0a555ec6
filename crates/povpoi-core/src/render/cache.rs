//! What a player keeps from one column to the next so that the next costs less: the finish
//! as a table, and tables of what a pattern works out again and again (its colours blended
//! and finished, the wheel finished, the random draws of its current time slots).
//!
//! Only a cache: every column is the same bytes as [`super::Renderer::render`] followed by
//! [`super::Finish::apply`]. What it holds is looked up by what it was made from (the two
//! colours, the slot's key), so no column depends on which came before it.

use crate::model::Rgb;

use super::MAX_LEDS;
use super::color::{Finish, FinishTable, Mix, Paint, scale, wheel};
use super::pattern::{Draws, Recip};

/// A run of 256 colours a pattern picks from by a byte, the same for many columns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ramp {
    /// `blend(a, b, x)`.
    Blend(Rgb, Rgb),
    /// The fire's heat `x`: black to colour 1 over the lower half, colour 1 to colour 2 over
    /// the upper.
    Fire(Rgb, Rgb),
    /// A comet's tail `x`/255 of the way back: colour 1 to colour 2, fading out.
    Tail(Rgb, Rgb),
    /// The same where the meteor's tail crumbles: at a quarter of that.
    Crumbled(Rgb, Rgb),
    /// The colour wheel.
    Wheel,
}

impl Ramp {
    /// The ramp as one number, compared once a column: cheaper than comparing the enum.
    #[inline(always)]
    fn key(self) -> u64 {
        let (tag, a, b) = match self {
            Ramp::Blend(a, b) => (1, a, b),
            Ramp::Fire(a, b) => (2, a, b),
            Ramp::Tail(a, b) => (3, a, b),
            Ramp::Crumbled(a, b) => (4, a, b),
            Ramp::Wheel => (5, Rgb::default(), Rgb::default()),
        };
        u64::from_le_bytes([a.r, a.g, a.b, b.r, b.g, b.b, tag, 0])
    }

    /// What `x` picks, before the finish.
    #[inline(always)]
    pub(crate) fn at(self, x: u8) -> Rgb {
        match self {
            Ramp::Blend(a, b) => Mix::new(a, b).at(x),
            Ramp::Fire(c1, c2) => {
                if x < 128 {
                    Mix::new(Rgb::default(), c1).at(x * 2)
                } else {
                    Mix::new(c1, c2).at((x - 128) * 2)
                }
            }
            Ramp::Tail(c1, c2) => scale(Mix::new(c1, c2).at(x), 255 - x),
            Ramp::Crumbled(c1, c2) => scale(scale(Mix::new(c1, c2).at(x), 255 - x), 64),
            Ramp::Wheel => wheel(x),
        }
    }
}

/// What the pattern code asks for, with or without a cache behind it: colours finished, two
/// ramps (`k` 0 or 1) the pattern names for the column, and two sets of random draws.
pub(crate) trait Tables {
    /// How single colours (and images) are finished.
    type Painter<'a>: Paint
    where
        Self: 'a;
    /// The finish, for colours worked out one at a time.
    fn painter(&self) -> Self::Painter<'_>;
    /// Ramp `k` is `ramp` for this column.
    fn set_ramp(&mut self, k: usize, ramp: Ramp);
    /// Ramp `k` at `x`, finished.
    fn ramp(&self, k: usize, x: u8) -> Rgb;
    /// Draws `k` are the slot behind `key`, for LEDs 0 to `n - 1`.
    fn set_draws(&mut self, k: usize, key: (u32, u32), n: u32);
    /// Draw `k` for LED `i`.
    fn draw(&self, k: usize, i: u32) -> u32;
    /// The strip has `n` LEDs (before [`Tables::along`] and [`Tables::cooling`]).
    fn set_strip(&mut self, n: u32);
    /// Sets every LED `i` of `out` to `color(i * 256 / n)`, its place along the strip in
    /// 1/256 of its length.
    fn each_along(&self, out: &mut [Rgb], color: impl FnMut(u8) -> Rgb);
    /// How much of the fire's heat is left at LED `i`: 255 at the handle, 55 at the tip.
    fn cooling(&self, i: u32) -> u32;
}

/// The fire's cooling at LED `i` of `n`: `255 - i * 200 / n`.
#[inline(always)]
fn cooling(per_led: Recip, i: u32) -> u32 {
    255 - per_led.div(i * 200)
}

/// No cache: everything worked out for the LED that needs it.
pub(crate) struct Direct<P> {
    paint: P,
    ramps: [Ramp; 2],
    draws: [Draws; 2],
    per_led: Recip,
}

impl<P: Paint> Direct<P> {
    pub(crate) fn new(paint: P) -> Direct<P> {
        Direct { paint, ramps: [Ramp::Wheel; 2], draws: [Draws::new((0, 0)); 2], per_led: Recip::new(1) }
    }
}

impl<P: Paint> Tables for Direct<P> {
    type Painter<'a>
        = P
    where
        P: 'a;

    #[inline(always)]
    fn painter(&self) -> P {
        self.paint
    }

    #[inline(always)]
    fn set_ramp(&mut self, k: usize, ramp: Ramp) {
        self.ramps[k] = ramp;
    }

    #[inline(always)]
    fn ramp(&self, k: usize, x: u8) -> Rgb {
        self.paint.paint(self.ramps[k].at(x))
    }

    #[inline(always)]
    fn set_draws(&mut self, k: usize, key: (u32, u32), _n: u32) {
        self.draws[k] = Draws::new(key);
    }

    #[inline(always)]
    fn draw(&self, k: usize, i: u32) -> u32 {
        self.draws[k].at(i)
    }

    #[inline(always)]
    fn set_strip(&mut self, n: u32) {
        self.per_led = Recip::new(n);
    }

    #[inline(always)]
    fn each_along(&self, out: &mut [Rgb], mut color: impl FnMut(u8) -> Rgb) {
        for (i, led) in out.iter_mut().enumerate() {
            *led = color(self.per_led.div(i as u32 * 256) as u8);
        }
    }

    #[inline(always)]
    fn cooling(&self, i: u32) -> u32 {
        cooling(self.per_led, i)
    }
}

/// A ramp's 256 colours finished, and which ramp ([`Ramp::key`], 0 for none).
#[derive(Clone)]
struct Palette {
    of: u64,
    colors: [Rgb; 256],
}

/// The draws of one slot for the first `len` LEDs.
#[derive(Clone)]
struct Slot {
    key: (u32, u32),
    len: u32,
    draws: [u32; MAX_LEDS as usize],
}

/// What a player keeps between columns to render them cheaply (about 3.3 KB): use it with
/// [`super::Renderer::render_cached`]. It gives the same bytes as rendering then finishing
/// each column from scratch; it only remembers work. Tell it when brightness or gamma
/// change with [`ColumnCache::set_finish`].
#[derive(Clone)]
pub struct ColumnCache {
    finish: FinishTable,
    ramps: [Palette; 2],
    slots: [Slot; 2],
    /// Each LED's place along a strip of `strip` LEDs, and the fire's cooling there (`strip`
    /// 0 before the first column).
    along: [u8; MAX_LEDS as usize],
    cooling: [u8; MAX_LEDS as usize],
    strip: u32,
    /// Which slot holds draws 0 and which draws 1: the fire's next slot becomes its current
    /// one, so the slot is found by key, not rebuilt.
    slot_of: [usize; 2],
}

impl ColumnCache {
    /// An empty cache for columns finished with `finish`.
    pub fn new(finish: Finish) -> ColumnCache {
        let palette = Palette { of: 0, colors: [Rgb::default(); 256] };
        let slot = Slot { key: (0, 0), len: 0, draws: [0; MAX_LEDS as usize] };
        ColumnCache {
            finish: FinishTable::new(finish),
            ramps: [palette.clone(), palette],
            slots: [slot.clone(), slot],
            along: [0; MAX_LEDS as usize],
            cooling: [0; MAX_LEDS as usize],
            strip: 0,
            slot_of: [0, 1],
        }
    }

    /// The finish the columns get.
    pub fn finish(&self) -> Finish {
        self.finish.finish()
    }

    /// Switches to `finish`; the finished colours kept so far are dropped if it differs.
    pub fn set_finish(&mut self, finish: Finish) {
        if finish != self.finish.finish() {
            self.finish = FinishTable::new(finish);
            for palette in &mut self.ramps {
                palette.of = 0;
            }
        }
    }
}

impl ColumnCache {
    /// Works out the places along a strip of another length.
    #[cold]
    #[inline(never)]
    fn fill_strip(&mut self, n: u32) {
        let per_led = Recip::new(n);
        let places = self.along.iter_mut().zip(self.cooling.iter_mut());
        for (i, (along, cool)) in places.enumerate().take(n as usize) {
            *along = per_led.div(i as u32 * 256) as u8;
            *cool = cooling(per_led, i as u32) as u8;
        }
        self.strip = n;
    }

    /// Works out a ramp the cache does not have.
    #[cold]
    #[inline(never)]
    fn fill_ramp(&mut self, k: usize, ramp: Ramp) {
        let palette = &mut self.ramps[k];
        for (x, c) in (0..=255u8).zip(palette.colors.iter_mut()) {
            *c = self.finish.color(ramp.at(x));
        }
        palette.of = ramp.key();
    }

    /// Finds the draws of a slot that the column before did not use, or works them out.
    #[cold]
    #[inline(never)]
    fn fill_draws(&mut self, k: usize, key: (u32, u32), n: u32) {
        let n = n.min(u32::from(MAX_LEDS));
        let other = self.slot_of[1 - k];
        let at = match (0..2).find(|&s| self.slots[s].key == key && self.slots[s].len >= n) {
            Some(s) => s,
            // Never the one the other draws use.
            None => 1 - other,
        };
        let slot = &mut self.slots[at];
        if slot.key != key || slot.len < n {
            let draws = Draws::new(key);
            for (i, d) in slot.draws.iter_mut().enumerate().take(n as usize) {
                *d = draws.at(i as u32);
            }
            slot.key = key;
            slot.len = n;
        }
        self.slot_of[k] = at;
    }
}

impl Tables for ColumnCache {
    type Painter<'a> = &'a FinishTable;

    #[inline(always)]
    fn painter(&self) -> &FinishTable {
        &self.finish
    }

    #[inline(always)]
    fn set_ramp(&mut self, k: usize, ramp: Ramp) {
        if self.ramps[k].of != ramp.key() {
            self.fill_ramp(k, ramp);
        }
    }

    #[inline(always)]
    fn ramp(&self, k: usize, x: u8) -> Rgb {
        debug_assert!(self.ramps[k].of != 0, "set_ramp first");
        self.ramps[k].colors[usize::from(x)]
    }

    #[inline(always)]
    fn set_draws(&mut self, k: usize, key: (u32, u32), n: u32) {
        let same = &self.slots[self.slot_of[k]];
        if same.key != key || same.len < n {
            self.fill_draws(k, key, n);
        }
    }

    #[inline(always)]
    fn draw(&self, k: usize, i: u32) -> u32 {
        self.slots[self.slot_of[k]].draws[i as usize]
    }

    #[inline(always)]
    fn set_strip(&mut self, n: u32) {
        if self.strip != n {
            self.fill_strip(n);
        }
    }

    #[inline(always)]
    fn each_along(&self, out: &mut [Rgb], mut color: impl FnMut(u8) -> Rgb) {
        debug_assert_eq!(out.len(), self.strip as usize, "set_strip first");
        for (led, along) in out.iter_mut().zip(&self.along) {
            *led = color(*along);
        }
    }

    #[inline(always)]
    fn cooling(&self, i: u32) -> u32 {
        u32::from(self.cooling[i as usize])
    }
}

/// Colours as drawn, nothing kept: the pattern tests' path.
#[cfg(test)]
pub(crate) fn raw() -> Direct<super::color::Raw> {
    Direct::new(super::color::Raw)
}
