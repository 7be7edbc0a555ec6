//! Colour arithmetic for the renderer: mixing, the colour wheel, gamma and brightness, and
//! the byte order a strip wants. Integer-only, so it costs the same on an FPU-less ESP32-C3.

use core::str::FromStr;

use crate::model::Rgb;

/// Black, an LED that is off.
pub const BLACK: Rgb = Rgb::new(0, 0, 0);

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

/// Adds two colours, saturating at full intensity.
pub fn add(a: Rgb, b: Rgb) -> Rgb {
    Rgb::new(a.r.saturating_add(b.r), a.g.saturating_add(b.g), a.b.saturating_add(b.b))
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
    /// Applies brightness (and gamma) to every LED of `column` in place.
    pub fn apply(&self, column: &mut [Rgb]) {
        for led in column {
            let c = if self.gamma { Rgb::new(gamma(led.r), gamma(led.g), gamma(led.b)) } else { *led };
            *led = scale(c, self.brightness);
        }
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
