use core::fmt;
use core::str::FromStr;

use alloc::string::String;
use serde::{Deserialize, Serialize};

use super::InvalidContent;
use crate::device::ReplicaId;
use crate::hash::BlobHash;

/// Widest image the display model allows, in columns.
pub const MAX_WIDTH: u16 = 400;
/// Tallest image the display model allows, in LEDs (two strips of 32).
pub const MAX_HEIGHT: u16 = 64;
/// Longest name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// One LED colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rgb {
    /// Red, 0-255.
    pub r: u8,
    /// Green, 0-255.
    pub g: u8,
    /// Blue, 0-255.
    pub b: u8,
}

impl Rgb {
    /// A colour from its three channels.
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Rgb { r, g, b }
    }
}

/// Checks a name for an image, pattern or sequence, wherever it comes from (an upload, a
/// rename, `/api/sync/push`, a peer's record): 1-64 bytes of text without control
/// characters, and nothing that reads as a path, since names end up as file names in other
/// tools (the old SD card, `povpoi convert`).
pub fn validate_name(name: &str) -> Result<(), InvalidContent> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(InvalidContent::Name);
    }
    if name.contains(['/', '\\']) || name.contains("..") {
        return Err(InvalidContent::PathName);
    }
    Ok(())
}

/// Most images an image order lists.
pub const MAX_ORDERED_IMAGES: usize = 4096;

/// Checks an image order: each image at most once, at most [`MAX_ORDERED_IMAGES`].
pub fn check_image_order(ids: &[ImageId]) -> Result<(), InvalidContent> {
    if ids.len() > MAX_ORDERED_IMAGES {
        return Err(InvalidContent::ImageOrder);
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(InvalidContent::ImageOrder);
    }
    Ok(())
}

/// An image's identity, fixed when it is created: the replica that created it and that
/// replica's edit number at the time, so two poi creating images offline never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageId {
    /// The replica that created the image.
    pub origin: ReplicaId,
    /// That replica's sequence number of the creating edit.
    pub seq: u64,
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.origin, self.seq)
    }
}

impl FromStr for ImageId {
    type Err = InvalidContent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (origin, seq) = s.split_once('-').ok_or(InvalidContent::Name)?;
        Ok(ImageId {
            origin: ReplicaId(u64::from_str_radix(origin, 16).map_err(|_| InvalidContent::Name)?),
            seq: seq.parse().map_err(|_| InvalidContent::Name)?,
        })
    }
}

/// What the library records about an image; the pixels live apart, in the blob `pixels`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    name: String,
    width: u16,
    height: u16,
    pixels: BlobHash,
}

impl ImageMeta {
    /// Describes the image whose canonical pixel bytes are `pixels` (RGB, row-major, row y
    /// drives LED y), checking the size limits and that the bytes match the dimensions.
    pub fn describe(name: &str, width: u32, height: u32, pixels: &[u8]) -> Result<Self, InvalidContent> {
        let meta = Self::stored(name, width, height, BlobHash([0; 32]))?;
        let expected = width as usize * height as usize * 3;
        if pixels.len() != expected {
            return Err(InvalidContent::PixelLength { expected, actual: pixels.len() });
        }
        Ok(ImageMeta { pixels: BlobHash::of(pixels), ..meta })
    }

    /// Describes an image whose pixels are already stored under `pixels` (an upload the
    /// storage hashed as it wrote it), checking the name and size limits.
    pub fn stored(name: &str, width: u32, height: u32, pixels: BlobHash) -> Result<Self, InvalidContent> {
        validate_name(name)?;
        if width == 0 || width > u32::from(MAX_WIDTH) {
            return Err(InvalidContent::ImageWidth(width));
        }
        if height == 0 || height > u32::from(MAX_HEIGHT) {
            return Err(InvalidContent::ImageHeight(height));
        }
        Ok(ImageMeta { name: name.into(), width: width as u16, height: height as u16, pixels })
    }

    /// The same image under another name.
    pub fn renamed(&self, name: &str) -> Result<Self, InvalidContent> {
        validate_name(name)?;
        Ok(ImageMeta { name: name.into(), ..self.clone() })
    }

    /// Re-checks limits on metadata that arrived from elsewhere (a peer, a file).
    pub fn validate(&self) -> Result<(), InvalidContent> {
        validate_name(&self.name)?;
        if self.width == 0 || self.width > MAX_WIDTH {
            return Err(InvalidContent::ImageWidth(self.width.into()));
        }
        if self.height == 0 || self.height > MAX_HEIGHT {
            return Err(InvalidContent::ImageHeight(self.height.into()));
        }
        Ok(())
    }

    /// The image's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Columns.
    pub fn width(&self) -> u16 {
        self.width
    }
    /// Rows, one per LED.
    pub fn height(&self) -> u16 {
        self.height
    }
    /// Address of the pixel bytes.
    pub fn pixels(&self) -> BlobHash {
        self.pixels
    }
    /// Length of the pixel bytes.
    pub fn byte_len(&self) -> usize {
        usize::from(self.width) * usize::from(self.height) * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn describe_checks_limits_and_pixel_length() {
        let px = vec![7u8; 400 * 64 * 3];
        let meta = ImageMeta::describe("big", 400, 64, &px).unwrap();
        assert_eq!((meta.width(), meta.height(), meta.byte_len()), (400, 64, px.len()));
        assert_eq!(ImageMeta::describe("w", 401, 1, &[0; 1203]), Err(InvalidContent::ImageWidth(401)));
        assert_eq!(ImageMeta::describe("w", 0, 1, &[]), Err(InvalidContent::ImageWidth(0)));
        assert_eq!(ImageMeta::describe("h", 1, 65, &[0; 195]), Err(InvalidContent::ImageHeight(65)));
        assert_eq!(
            ImageMeta::describe("p", 2, 2, &[0; 11]),
            Err(InvalidContent::PixelLength { expected: 12, actual: 11 })
        );
        assert_eq!(ImageMeta::describe("", 1, 1, &[0; 3]), Err(InvalidContent::Name));
        assert_eq!(ImageMeta::describe("a\nb", 1, 1, &[0; 3]), Err(InvalidContent::Name));
    }

    #[test]
    fn image_ids_round_trip_through_text() {
        let id = ImageId { origin: ReplicaId(0xabc), seq: 42 };
        let text = alloc::format!("{id}");
        assert_eq!(text, "0000000000000abc-42");
        assert_eq!(text.parse::<ImageId>(), Ok(id));
        assert!("nonsense".parse::<ImageId>().is_err());
    }
}
