//! Any picture file a user brings, to RGB pixels at its own size.
//!
//! What a file is comes from its bytes where they say (PNG, JPEG, GIF, BMP, WebP and the
//! headered `.pov` all start with a signature) and from its name where they cannot: a
//! headerless Teensy `.pov` and a raw `image_WxH.rgb` are bare pixels.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::pov::{has_pov_magic, read_pov, read_teensy_pov};
use crate::{MediaError, Picture};

/// Widest or tallest picture decoded; far above any screen photo, far below a bomb.
pub const MAX_DECODE_SIDE: u32 = 16_384;
/// Most memory one decode may allocate: a 24-megapixel RGBA photo fits; a poi board with
/// 512 MB must survive the decode plus its RGB copy.
pub const MAX_DECODE_ALLOC: u64 = 96 * 1024 * 1024;

/// What kind of file a picture came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF (the first frame is used).
    Gif,
    /// BMP.
    Bmp,
    /// WebP (the first frame is used).
    WebP,
    /// The old converter's headered `.pov`.
    Pov,
    /// The Teensy's headerless, column-major `.pov`.
    TeensyPov,
    /// Raw RGB named `image_WxH.rgb`, the upload format of the existing API.
    Raw {
        /// Columns, from the name.
        width: u32,
        /// Rows, from the name.
        height: u32,
    },
}

impl Format {
    /// The name users know the format by.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Gif => "GIF",
            Format::Bmp => "BMP",
            Format::WebP => "WebP",
            Format::Pov => ".pov",
            Format::TeensyPov => "Teensy .pov",
            Format::Raw { .. } => "raw .rgb",
        }
    }
}

/// The decode limits applied to every compressed format.
pub fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits
}

/// The size in a raw file's name: `image_20x32.rgb` (or any `NAME_20x32.rgb`, or
/// `20x32.rgb`) gives (20, 32). Folders in front are ignored.
pub fn raw_size_from_name(file_name: &str) -> Option<(u32, u32)> {
    let base = file_name.rsplit(['/', '\\']).next()?.to_ascii_lowercase();
    let size = base.strip_suffix(".rgb")?.rsplit('_').next()?;
    let (w, h) = size.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// The lower-case extension of a file name, if any.
fn extension(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next()?;
    base.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase())
}

/// Says what `bytes` (named `file_name`) are.
///
/// A `.rgb` name wins over the content because raw pixels can start with any bytes; a
/// `.pov` is headered if it has the magic and the Teensy's kind otherwise; everything else
/// is recognised by its signature, whatever its name says.
pub fn detect(bytes: &[u8], file_name: &str) -> Result<Format, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    let ext = extension(file_name);
    if ext.as_deref() == Some("rgb") {
        let (width, height) = raw_size_from_name(file_name).ok_or(MediaError::RawName { name: file_name.into() })?;
        return Ok(Format::Raw { width, height });
    }
    if has_pov_magic(bytes) {
        return Ok(Format::Pov);
    }
    if ext.as_deref() == Some("pov") {
        return Ok(Format::TeensyPov);
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => Ok(Format::Png),
        Ok(ImageFormat::Jpeg) => Ok(Format::Jpeg),
        Ok(ImageFormat::Gif) => Ok(Format::Gif),
        Ok(ImageFormat::Bmp) => Ok(Format::Bmp),
        Ok(ImageFormat::WebP) => Ok(Format::WebP),
        Ok(other) => Err(MediaError::UnknownFormat {
            name: file_name.into(),
            found: Some(other.extensions_str().first().unwrap_or(&"this").to_ascii_uppercase()),
        }),
        Err(_) => Err(MediaError::UnknownFormat { name: file_name.into(), found: None }),
    }
}

/// Decodes `bytes` (named `file_name`) to RGB pixels at the picture's own size, row-major,
/// transparent parts composited onto black (an LED cannot show "see-through").
pub fn decode(bytes: &[u8], file_name: &str) -> Result<RgbImage, MediaError> {
    let format = detect(bytes, file_name)?;
    match format {
        Format::Pov => Ok(read_pov(bytes)?.to_rgb_image()),
        Format::TeensyPov => Ok(read_teensy_pov(bytes)?.to_rgb_image()),
        Format::Raw { width, height } => read_raw(bytes, width, height),
        Format::Png => decode_with_image(bytes, ImageFormat::Png, format),
        Format::Jpeg => decode_with_image(bytes, ImageFormat::Jpeg, format),
        Format::Gif => decode_with_image(bytes, ImageFormat::Gif, format),
        Format::Bmp => decode_with_image(bytes, ImageFormat::Bmp, format),
        Format::WebP => decode_with_image(bytes, ImageFormat::WebP, format),
    }
}

/// Raw RGB, row-major; its length must be exactly what the name says.
fn read_raw(bytes: &[u8], width: u32, height: u32) -> Result<RgbImage, MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::ZeroSize);
    }
    // The same bound as decoded formats: scaling a 5-million-column strip would take gigabytes.
    if width > MAX_DECODE_SIDE || height > MAX_DECODE_SIDE {
        return Err(MediaError::TooLarge {
            reason: format!("{width}x{height}: at most {MAX_DECODE_SIDE} pixels a side"),
        });
    }
    let mismatch = || MediaError::DataSize { format: "raw .rgb", width, height, actual: bytes.len() };
    if u64::from(width) * u64::from(height) * 3 != bytes.len() as u64 {
        return Err(mismatch());
    }
    RgbImage::from_raw(width, height, bytes.to_vec()).ok_or_else(mismatch)
}

fn decode_with_image(bytes: &[u8], image_format: ImageFormat, format: Format) -> Result<RgbImage, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(limits());
    // Uploads come from anyone: a decoder bug must cost one refused file, not the node.
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        // The header alone says how large the picture is: refused before any pixel buffer
        // exists, since some decoders allocate theirs before the limits are checked.
        let mut decoder = reader.into_decoder().map_err(|e| image_error(e, format))?;
        let (width, height) = decoder.dimensions();
        if decoder.total_bytes().saturating_mul(buffers_held(image_format)) > MAX_DECODE_ALLOC {
            let reason = format!("{width}x{height} needs more than {} MiB to decode", MAX_DECODE_ALLOC >> 20);
            return Err(MediaError::TooLarge { reason });
        }
        // A phone stores a photo as its sensor saw it and says in EXIF how to turn it: the
        // picture is taken upright, as a browser (the web app converting for a board) shows
        // it. Unreadable EXIF leaves it as stored.
        let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(e, format))?;
        image.apply_orientation(orientation);
        Ok(image)
    }))
    .map_err(|_| MediaError::Corrupt { format: format.name(), reason: "the decoder gave up".into() })?;
    let image = decoded?;
    if image.width() == 0 || image.height() == 0 {
        return Err(MediaError::ZeroSize);
    }
    Ok(onto_black(image))
}

/// How many buffers of the picture's full decoded size a decoder holds at once: WebP's
/// keeps its own besides the one it fills (found by the image_decode fuzz target: a 28-byte
/// lossless header made it take 227 MB before failing).
fn buffers_held(format: ImageFormat) -> u64 {
    if format == ImageFormat::WebP { 2 } else { 1 }
}

fn image_error(e: ImageError, format: Format) -> MediaError {
    match e {
        ImageError::Limits(limit) => MediaError::TooLarge { reason: limit.to_string() },
        other => MediaError::Corrupt { format: format.name(), reason: other.to_string() },
    }
}

/// Drops the alpha channel by compositing onto black: what a dark LED shows behind a
/// transparent pixel.
fn onto_black(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src.0[3]);
        for c in 0..3 {
            dst.0[c] = ((u16::from(src.0[c]) * a + 127) / 255) as u8;
        }
    }
    out
}

/// Decodes to a [`Picture`] without any scaling, for pictures already at the poi's size.
pub fn decode_picture(bytes: &[u8], file_name: &str) -> Result<Picture, MediaError> {
    Picture::from_rgb_image(decode(bytes, file_name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_names_carry_the_size() {
        assert_eq!(raw_size_from_name("image_20x32.rgb"), Some((20, 32)));
        assert_eq!(raw_size_from_name("IMAGE_20X32.RGB"), Some((20, 32)));
        assert_eq!(raw_size_from_name("C:\\pics\\heart_400x64.rgb"), Some((400, 64)));
        assert_eq!(raw_size_from_name("dir_1x1/7x8.rgb"), Some((7, 8)));
        for bad in [
            "image.rgb",
            "image_20x.rgb",
            "image_x32.rgb",
            "image_20x32.png",
            "image_-1x2.rgb",
            "image_1x9999999999.rgb",
        ] {
            assert_eq!(raw_size_from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_do_not_override_signatures_except_for_raw() {
        let png = b"\x89PNG\r\n\x1a\n rest";
        assert_eq!(detect(png, "looks.jpg"), Ok(Format::Png));
        assert_eq!(detect(png, "image_1x1.rgb"), Ok(Format::Raw { width: 1, height: 1 }));
        assert_eq!(detect(&[1, 0, 1, 0, 9, 9, 9], "x.POV"), Ok(Format::TeensyPov));
    }
}
