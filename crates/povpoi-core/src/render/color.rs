//! Colour arithmetic for the renderer: mixing, the colour wheel, gamma and brightness, and
//! the byte order a strip wants. Integer-only, so it costs the same on an FPU-less ESP32-C3.

use core::str::FromStr;

use crate::model::Rgb;

/// Black, an LED that is off.
pub const BLACK: Rgb = Rgb::new(0, 0, 0);

/// `v / 255` rounded down, as a multiplication and a shift: exact for every `v` up to
/// 66,298 (a test checks each), which covers a channel times a channel plus a rounding term
/// (at most 65,152).
/// Dividing by 255 per LED is what made the renderer dear; a multiply is one instruction
/// on the RV32IMC cores the poi run on.
#[inline(always)]
pub(crate) const fn div255(v: u32) -> u32 {
    (v * 32_897) >> 23
}

/// Mixes `a` and `b`: `amount` 0 gives `a`, 255 gives `b`.
pub fn blend(a: Rgb, b: Rgb, amount: u8) -> Rgb {
    Mix::new(a, b).at(amount)
}

/// `c` at `level`/255 of its intensity.
pub fn scale(c: Rgb, level: u8) -> Rgb {
    let l = u32::from(level);
    let s = |x: u8| div255(u32::from(x) * l + 127) as u8;
    Rgb::new(s(c.r), s(c.g), s(c.b))
}

/// The blends of two colours fixed for a column, with what does not depend on the amount
/// worked out once: `a * (255 - t) + b * t + 127` is `(255 a + 127) + (b - a) t`.
#[derive(Clone, Copy)]
pub(crate) struct Mix {
    base: [u32; 3],
    step: [i32; 3],
}

impl Mix {
    /// From `a` (amount 0) to `b` (amount 255).
    #[inline(always)]
    pub(crate) fn new(a: Rgb, b: Rgb) -> Mix {
        let base = |x: u8| 255 * u32::from(x) + 127;
        let step = |x: u8, y: u8| i32::from(y) - i32::from(x);
        Mix { base: [base(a.r), base(a.g), base(a.b)], step: [step(a.r, b.r), step(a.g, b.g), step(a.b, b.b)] }
    }

    /// The blend at `amount`, as [`blend`] gives it.
    #[inline(always)]
    pub(crate) fn at(&self, amount: u8) -> Rgb {
        let t = i32::from(amount);
        // Never negative: it is a * (255 - t) + b * t + 127.
        let ch = |k: usize| div255(self.base[k].wrapping_add_signed(self.step[k] * t)) as u8;
        Rgb::new(ch(0), ch(1), ch(2))
    }
}

/// Adds two colours, saturating at full intensity.
pub fn add(a: Rgb, b: Rgb) -> Rgb {
    Rgb::new(a.r.saturating_add(b.r), a.g.saturating_add(b.g), a.b.saturating_add(b.b))
}

/// The fully saturated colour at `hue` on a 256-step wheel (0 red, 85 green, 170 blue,
/// 255 next to red again).
pub fn wheel(hue: u8) -> Rgb {
    let [r, g, b, _] = WHEEL[usize::from(hue)];
    Rgb::new(r, g, b)
}

/// The wheel worked out at compile time: three comparisons and multiplications per LED
/// become one load. Four bytes an entry, so that the index is an addressing mode rather
/// than a multiplication by three.
const WHEEL: [[u8; 4]; 256] = {
    let mut table = [[0; 4]; 256];
    let mut hue = 0;
    while hue < 256 {
        let h = hue as u8;
        table[hue] = if h < 85 {
            [255 - h * 3, h * 3, 0, 0]
        } else if h < 170 {
            [0, 255 - (h - 85) * 3, (h - 85) * 3, 0]
        } else {
            [(h - 170) * 3, 0, 255 - (h - 170) * 3, 0]
        };
        hue += 1;
    }
    table
};

/// Perceptual correction: LEDs are linear, eyes are not (gamma 2.2, rounded).
const GAMMA: [u8; 256] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4,
    4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 11, 11, 11, 12, 12, 13, 13, 13, 14, 14, 15, 15,
    16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 22, 22, 23, 23, 24, 25, 25, 26, 26, 27, 28, 28, 29, 30, 30, 31, 32, 33,
    33, 34, 35, 35, 36, 37, 38, 39, 39, 40, 41, 42, 43, 43, 44, 45, 46, 47, 48, 49, 49, 50, 51, 52, 53, 54, 55, 56, 57,
    58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 73, 74, 75, 76, 77, 78, 79, 81, 82, 83, 84, 85, 87, 88, 89,
    90, 91, 93, 94, 95, 97, 98, 99, 100, 102, 103, 105, 106, 107, 109, 110, 111, 113, 114, 116, 117, 119, 120, 121,
    123, 124, 126, 127, 129, 130, 132, 133, 135, 137, 138, 140, 141, 143, 145, 146, 148, 149, 151, 153, 154, 156, 158,
    159, 161, 163, 165, 166, 168, 170, 172, 173, 175, 177, 179, 181, 182, 184, 186, 188, 190, 192, 194, 196, 197, 199,
    201, 203, 205, 207, 209, 211, 213, 215, 217, 219, 221, 223, 225, 227, 229, 231, 234, 236, 238, 240, 242, 244, 246,
    248, 251, 253, 255,
];

/// One channel through the gamma curve.
pub fn gamma(channel: u8) -> u8 {
    GAMMA[usize::from(channel)]
}

/// What every column goes through before it leaves the renderer: global brightness and,
/// optionally, gamma correction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Global brightness, 0-255.
    pub brightness: u8,
    /// Whether to apply gamma 2.2 (on for LEDs; off to see the raw values).
    pub gamma: bool,
}

impl Finish {
    /// Applies brightness (and gamma) to every LED of `column` in place. A player that
    /// finishes many columns alike should keep a [`FinishTable`] instead: one load per
    /// channel rather than a multiplication.
    pub fn apply(&self, column: &mut [Rgb]) {
        for led in column {
            *led = Rgb::new(self.channel(led.r), self.channel(led.g), self.channel(led.b));
        }
    }

    /// One channel value finished.
    #[inline]
    pub fn channel(&self, value: u8) -> u8 {
        let c = if self.gamma { gamma(value) } else { value };
        div255(u32::from(c) * u32::from(self.brightness) + 127) as u8
    }

    /// This finish as a lookup table.
    pub fn table(self) -> FinishTable {
        FinishTable::new(self)
    }
}

/// A [`Finish`] worked out for all 256 channel values, so that finishing a column costs a
/// load per channel. Built once per brightness and gamma: keep it next to the renderer and
/// [`FinishTable::set`] it when they change (it rebuilds only then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishTable {
    finish: Finish,
    table: [u8; 256],
}

impl FinishTable {
    /// The table for `finish`.
    pub fn new(finish: Finish) -> FinishTable {
        let mut table = [0; 256];
        for (value, out) in (0..=255u8).zip(table.iter_mut()) {
            *out = finish.channel(value);
        }
        FinishTable { finish, table }
    }

    /// The finish this table applies.
    pub fn finish(&self) -> Finish {
        self.finish
    }

    /// Switches to `finish`, rebuilding the table only if it differs from the current one.
    pub fn set(&mut self, finish: Finish) {
        if finish != self.finish {
            *self = FinishTable::new(finish);
        }
    }

    /// One channel value finished.
    #[inline(always)]
    pub fn channel(&self, value: u8) -> u8 {
        self.table[usize::from(value)]
    }

    /// One colour finished.
    #[inline(always)]
    pub fn color(&self, c: Rgb) -> Rgb {
        Rgb::new(self.channel(c.r), self.channel(c.g), self.channel(c.b))
    }

    /// Applies the finish to every LED of `column` in place, as [`Finish::apply`] does.
    pub fn apply(&self, column: &mut [Rgb]) {
        for led in column {
            *led = self.color(*led);
        }
    }
}

impl From<Finish> for FinishTable {
    fn from(finish: Finish) -> FinishTable {
        FinishTable::new(finish)
    }
}

/// What the renderer does to each colour on its way out: nothing ([`Raw`]) or a finish
/// ([`FinishTable`]). A type rather than a flag so that each case compiles to its own loop,
/// with the identity free and the table lookups fused into the loop that makes the colour.
pub(crate) trait Paint: Copy {
    /// `c` as it leaves the renderer.
    fn paint(self, c: Rgb) -> Rgb;
}

/// No finish: the colours as drawn.
#[derive(Clone, Copy)]
pub(crate) struct Raw;

impl Paint for Raw {
    #[inline(always)]
    fn paint(self, c: Rgb) -> Rgb {
        c
    }
}

impl Paint for &FinishTable {
    #[inline(always)]
    fn paint(self, c: Rgb) -> Rgb {
        self.color(c)
    }
}

/// The order in which a strip takes the three channels on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the orders
pub enum ColorOrder {
    Rgb,
    Rbg,
    Grb,
    Gbr,
    /// APA102 and SK9822 strips as the existing system wired them.
    #[default]
    Bgr,
    Brg,
}

impl ColorOrder {
    /// The three channel bytes of `c` in this order.
    pub fn arrange(self, c: Rgb) -> [u8; 3] {
        let Rgb { r, g, b } = c;
        match self {
            ColorOrder::Rgb => [r, g, b],
            ColorOrder::Rbg => [r, b, g],
            ColorOrder::Grb => [g, r, b],
            ColorOrder::Gbr => [g, b, r],
            ColorOrder::Bgr => [b, g, r],
            ColorOrder::Brg => [b, r, g],
        }
    }
}

impl FromStr for ColorOrder {
    type Err = &'static str;

    /// Parses `rgb`, `grb`, `bgr`... in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "rgb" => ColorOrder::Rgb,
            "rbg" => ColorOrder::Rbg,
            "grb" => ColorOrder::Grb,
            "gbr" => ColorOrder::Gbr,
            "bgr" => ColorOrder::Bgr,
            "brg" => ColorOrder::Brg,
            _ => return Err("colour order must be one of rgb, rbg, grb, gbr, bgr, brg"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_and_scale_hit_their_ends_exactly() {
        let (red, blue) = (Rgb::new(255, 0, 0), Rgb::new(0, 0, 255));
        assert_eq!(blend(red, blue, 0), red);
        assert_eq!(blend(red, blue, 255), blue);
        assert_eq!(blend(red, blue, 128), Rgb::new(127, 0, 128));
        assert_eq!(scale(Rgb::new(200, 100, 1), 255), Rgb::new(200, 100, 1));
        assert_eq!(scale(Rgb::new(200, 100, 1), 0), BLACK);
        assert_eq!(scale(Rgb::new(200, 100, 2), 128), Rgb::new(100, 50, 1));
    }

    #[test]
    fn the_wheel_passes_through_the_primaries() {
        assert_eq!(wheel(0), Rgb::new(255, 0, 0));
        assert_eq!(wheel(85), Rgb::new(0, 255, 0));
        assert_eq!(wheel(170), Rgb::new(0, 0, 255));
        assert_eq!(wheel(255), Rgb::new(255, 0, 0), "the wheel closes");
        for hue in 0..=255u8 {
            let c = wheel(hue);
            assert_eq!(u16::from(c.r) + u16::from(c.g) + u16::from(c.b), 255, "hue {hue}");
        }
    }

    #[test]
    fn the_gamma_table_is_x_to_the_2_2() {
        for i in 0..=255u8 {
            let exact = 255.0 * (f64::from(i) / 255.0).powf(2.2);
            assert!((f64::from(gamma(i)) - exact).abs() <= 0.5 + 1e-9, "{i}: {} vs {exact}", gamma(i));
        }
        assert!(GAMMA.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn finish_applies_gamma_then_brightness() {
        let mut column = [Rgb::new(255, 128, 0); 2];
        Finish { brightness: 255, gamma: false }.apply(&mut column);
        assert_eq!(column[0], Rgb::new(255, 128, 0));
        Finish { brightness: 128, gamma: true }.apply(&mut column);
        assert_eq!(column[1], Rgb::new(128, 28, 0));
    }

    #[test]
    fn colour_orders_arrange_and_parse() {
        let c = Rgb::new(1, 2, 3);
        assert_eq!(ColorOrder::Bgr.arrange(c), [3, 2, 1]);
        assert_eq!(ColorOrder::Grb.arrange(c), [2, 1, 3]);
        assert_eq!("GRB".parse::<ColorOrder>(), Ok(ColorOrder::Grb));
        assert!("rgbw".parse::<ColorOrder>().is_err());
        assert_eq!(ColorOrder::default(), ColorOrder::Bgr);
    }
}
