//! A decoded picture, turned and scaled to the strip: height = LED count, proportional width
//! up to a cap.
//!
//! Order: rotate, flip, scale, cap the width, contrast. Rotation and flips describe how the
//! strip is mounted, so they act on the picture as the user sees it, before scaling to LEDs.

use std::fmt;
use std::str::FromStr;

use image::RgbImage;
use image::imageops::{self, FilterType};
use povpoi_core::model::{MAX_HEIGHT, MAX_WIDTH};
use povpoi_core::render::DEFAULT_LEDS;

use crate::decode::decode;
use crate::{MediaError, Picture};

/// A quarter turn count, clockwise as the picture is viewed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// As is.
    #[default]
    None,
    /// 90 degrees clockwise.
    Cw90,
    /// Upside down.
    Cw180,
    /// 270 degrees clockwise (90 counter-clockwise).
    Cw270,
}

impl Rotation {
    /// The rotation for 0, 90, 180 or 270 degrees.
    pub fn from_degrees(degrees: u16) -> Option<Rotation> {
        match degrees {
            0 => Some(Rotation::None),
            90 => Some(Rotation::Cw90),
            180 => Some(Rotation::Cw180),
            270 => Some(Rotation::Cw270),
            _ => None,
        }
    }

    /// Degrees clockwise.
    pub fn degrees(self) -> u16 {
        match self {
            Rotation::None => 0,
            Rotation::Cw90 => 90,
            Rotation::Cw180 => 180,
            Rotation::Cw270 => 270,
        }
    }
}

impl FromStr for Rotation {
    type Err = String;

    /// Parses `0`, `90`, `180` or `270`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .ok()
            .and_then(Rotation::from_degrees)
            .ok_or_else(|| format!("rotation must be 0, 90, 180 or 270 degrees, not {s:?}"))
    }
}

/// How pixels are resampled when the picture is scaled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Nearest neighbour, as the old converter: crisp for pixel art, noisy for photos.
    Nearest,
    /// Linear (tent) filter over every source pixel under an LED: the default, see
    /// [`ConvertOptions::filter`].
    #[default]
    Triangle,
    /// Catmull-Rom cubic: sharper than triangle.
    CatmullRom,
    /// Gaussian: softest.
    Gaussian,
    /// Lanczos with window 3: sharpest, may ring at hard edges.
    Lanczos3,
}

impl Filter {
    /// Every filter, in the order the help lists them.
    pub const ALL: [Filter; 5] =
        [Filter::Nearest, Filter::Triangle, Filter::CatmullRom, Filter::Gaussian, Filter::Lanczos3];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Triangle => "triangle",
            Filter::CatmullRom => "catmull-rom",
            Filter::Gaussian => "gaussian",
            Filter::Lanczos3 => "lanczos3",
        }
    }

    fn image_filter(self) -> FilterType {
        match self {
            Filter::Nearest => FilterType::Nearest,
            Filter::Triangle => FilterType::Triangle,
            Filter::CatmullRom => FilterType::CatmullRom,
            Filter::Gaussian => FilterType::Gaussian,
            Filter::Lanczos3 => FilterType::Lanczos3,
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Filter {
    type Err = String;

    /// Parses a [`Filter::name`], in any case (`catmullrom` and `lanczos` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        if wanted == "lanczos" {
            return Ok(Filter::Lanczos3);
        }
        Filter::ALL.into_iter().find(|f| f.name().replace('-', "") == wanted).ok_or_else(|| {
            let names: Vec<&str> = Filter::ALL.iter().map(|f| f.name()).collect();
            format!("filter must be one of {}, not {s:?}", names.join(", "))
        })
    }
}

/// How to turn a picture into LED columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Target height: the strip's LED count, 1-64 (default 32).
    pub leds: u16,
    /// Widest result in columns, 1-400 (default 400). A picture that would be wider at
    /// `leds` rows is squeezed to this width, not cropped: see [`target_size`].
    pub max_width: u16,
    /// Mirror left-right (the poi spins the other way round).
    pub flip_h: bool,
    /// Mirror top-bottom (a strip whose data input, LED 0, is at the tip, not the handle).
    pub flip_v: bool,
    /// Turn the picture before anything else.
    pub rotate: Rotation,
    /// Double the contrast around the mean brightness, as the old converter's option did.
    pub contrast: bool,
    /// Resampling filter. Default [`Filter::Triangle`]: most pictures are photos or drawings
    /// shrunk 10-50 times to 32 rows, where nearest keeps one source row in every 10-50 and
    /// thin lines vanish or break up; triangle averages all of them. Pixel art drawn at the
    /// LED height is copied unscaled whatever the filter, and `Nearest` remains for pixel art
    /// that needs scaling.
    pub filter: Filter,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            leds: DEFAULT_LEDS,
            max_width: MAX_WIDTH,
            flip_h: false,
            flip_v: false,
            rotate: Rotation::None,
            contrast: false,
            filter: Filter::default(),
        }
    }
}

impl ConvertOptions {
    /// Defaults for a strip of `leds` LEDs.
    pub fn for_leds(leds: u16) -> ConvertOptions {
        ConvertOptions { leds, ..ConvertOptions::default() }
    }

    fn check(&self) -> Result<(), MediaError> {
        if self.leds == 0 || self.leds > MAX_HEIGHT {
            return Err(MediaError::LedCount(self.leds));
        }
        if self.max_width == 0 || self.max_width > MAX_WIDTH {
            return Err(MediaError::MaxWidth(self.max_width));
        }
        Ok(())
    }
}

/// The size a `width` x `height` picture becomes: `leds` rows and the proportional width,
/// rounded, at least 1 and at most `max_width`.
///
/// Too-wide pictures are squeezed rather than cropped: on a spinning poi the shown aspect
/// ratio is set by the spin speed and frame rate anyway, not by the column count, so a
/// squeeze loses nothing a spectator could measure, while a crop would cut off part of the
/// picture. The old converter squeezed too, so users' pictures come out as before.
pub fn target_size(width: u32, height: u32, leds: u16, max_width: u16) -> (u32, u32) {
    let (w, h, leds) = (u64::from(width), u64::from(height.max(1)), u64::from(leds));
    let proportional = (2 * w * leds + h) / (2 * h);
    (proportional.clamp(1, u64::from(max_width)) as u32, leds as u32)
}

/// Decodes any supported file (see [`crate::decode::detect`]) and converts it for the strip.
pub fn convert(bytes: &[u8], file_name: &str, options: &ConvertOptions) -> Result<Picture, MediaError> {
    options.check()?;
    convert_image(decode(bytes, file_name)?, options)
}

/// Converts decoded pixels for the strip: rotate, flip, scale, cap, contrast.
pub fn convert_image(image: RgbImage, options: &ConvertOptions) -> Result<Picture, MediaError> {
    options.check()?;
    if image.width() == 0 || image.height() == 0 {
        return Err(MediaError::ZeroSize);
    }
    let mut image = match options.rotate {
        Rotation::None => image,
        Rotation::Cw90 => imageops::rotate90(&image),
        Rotation::Cw180 => {
            let mut image = image;
            imageops::rotate180_in_place(&mut image);
            image
        }
        Rotation::Cw270 => imageops::rotate270(&image),
    };
    if options.flip_h {
        imageops::flip_horizontal_in_place(&mut image);
    }
    if options.flip_v {
        imageops::flip_vertical_in_place(&mut image);
    }
    let (w, h) = target_size(image.width(), image.height(), options.leds, options.max_width);
    // Same size: copy, so a picture made for the strip keeps its exact bytes.
    if (w, h) != image.dimensions() {
        image = imageops::resize(&image, w, h, options.filter.image_filter());
    }
    if options.contrast {
        double_contrast(&mut image);
    }
    Picture::from_rgb_image(image)
}

/// Contrast x2 around the mean luma, as Pillow's `ImageEnhance.Contrast(img).enhance(2.0)`
/// in the old converter: `out = clamp(2 * c - mean)`, mean of the ITU-R 601 luma rounded.
pub fn double_contrast(image: &mut RgbImage) {
    let n = u64::from(image.width()) * u64::from(image.height());
    if n == 0 {
        return;
    }
    let luma = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(u64::from);
        (r * 19_595 + g * 38_470 + b * 7_471 + 0x8000) >> 16
    };
    let sum: u64 = image.pixels().map(luma).sum();
    let mean = ((sum + n / 2) / n) as i32;
    for p in image.pixels_mut() {
        for c in &mut p.0 {
            *c = (2 * i32::from(*c) - mean).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_round_and_cap() {
        assert_eq!(target_size(64, 16, 32, 400), (128, 32));
        assert_eq!(target_size(33, 64, 32, 400), (17, 32), "16.5 rounds up");
        assert_eq!(target_size(1, 1000, 32, 400), (1, 32), "never zero columns");
        assert_eq!(target_size(10_000, 10, 64, 400), (400, 64));
        assert_eq!(target_size(u32::MAX, 1, 64, 400), (400, 64), "no overflow");
    }

    #[test]
    fn filters_parse_by_name() {
        for f in Filter::ALL {
            assert_eq!(f.name().parse::<Filter>(), Ok(f));
        }
        assert_eq!("CatmullRom".parse::<Filter>(), Ok(Filter::CatmullRom));
        assert_eq!("lanczos".parse::<Filter>(), Ok(Filter::Lanczos3));
        assert!("bicubic".parse::<Filter>().unwrap_err().contains("nearest, triangle"));
        assert_eq!(Filter::default(), Filter::Triangle);
    }
}
