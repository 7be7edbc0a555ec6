//! The two `.pov` files of the existing system (spec section 7).
//!
//! - Headered, written by the old converter scripts: 20 bytes little-endian `magic
//!   0x504F5631`, `version 1`, `width u16`, `height u16`, `data_size u32`, `reserved u32`,
//!   then RGB row-major. povpoi reads and writes it.
//! - Headerless, written by the Teensy to its SD card: `width u16`, `height u16` (LE), then
//!   RGB column-major. povpoi reads it (and can write it back for old cards).
//!
//! The magic tells them apart: a Teensy file would need a width of 22065 to start with it.

use crate::{MediaError, Picture};

/// The headered file's first four bytes, read as a little-endian u32 ("1VOP" on disk).
pub const POV_MAGIC: u32 = 0x504F_5631;
/// The only headered version there is.
pub const POV_VERSION: u32 = 1;
/// Bytes before the pixels in a headered `.pov`.
pub const POV_HEADER_LEN: usize = 20;
/// Bytes before the pixels in a Teensy `.pov`.
pub const TEENSY_HEADER_LEN: usize = 4;

/// Whether `bytes` start like a headered `.pov`.
pub fn has_pov_magic(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&POV_MAGIC.to_le_bytes())
}

/// Reads a headered `.pov`, checking magic, version and that the pixel bytes match the header.
pub fn read_pov(bytes: &[u8]) -> Result<Picture, MediaError> {
    if bytes.len() < POV_HEADER_LEN {
        return Err(MediaError::Truncated { format: ".pov", needed: POV_HEADER_LEN, actual: bytes.len() });
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    if u32_at(0) != POV_MAGIC {
        return Err(MediaError::Corrupt { format: ".pov", reason: "it does not start with the POV1 magic".into() });
    }
    let version = u32_at(4);
    if version != POV_VERSION {
        return Err(MediaError::PovVersion(version));
    }
    let (width, height, data_size) = (u16_at(8), u16_at(10), u32_at(12));
    if width == 0 || height == 0 {
        return Err(MediaError::ZeroSize);
    }
    if u64::from(data_size) != u64::from(width) * u64::from(height) * 3 {
        return Err(MediaError::PovHeader { width, height, data_size });
    }
    let data = &bytes[POV_HEADER_LEN..];
    if data.len() as u64 != u64::from(data_size) {
        return Err(MediaError::DataSize {
            format: ".pov",
            width: width.into(),
            height: height.into(),
            actual: data.len(),
        });
    }
    Picture::new(width, height, data.to_vec())
}

/// Writes a headered `.pov`, the export format old SD cards and scripts take.
pub fn write_pov(picture: &Picture) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (picture.width(), picture.height());
    // u16 sides can still overflow the u32 data_size field (above ~1.4 G pixels).
    let data_size = u32::try_from(picture.pixels().len()).map_err(|_| MediaError::TooLargeFor {
        format: ".pov",
        width: w.into(),
        height: h.into(),
    })?;
    let mut out = Vec::with_capacity(POV_HEADER_LEN + picture.pixels().len());
    out.extend_from_slice(&POV_MAGIC.to_le_bytes());
    out.extend_from_slice(&POV_VERSION.to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&data_size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(picture.pixels());
    Ok(out)
}

/// Reads the Teensy's headerless, column-major `.pov` into row-major canonical pixels.
pub fn read_teensy_pov(bytes: &[u8]) -> Result<Picture, MediaError> {
    if bytes.len() < TEENSY_HEADER_LEN {
        return Err(MediaError::Truncated { format: "Teensy .pov", needed: TEENSY_HEADER_LEN, actual: bytes.len() });
    }
    let width = u16::from_le_bytes([bytes[0], bytes[1]]);
    let height = u16::from_le_bytes([bytes[2], bytes[3]]);
    if width == 0 || height == 0 {
        return Err(MediaError::ZeroSize);
    }
    let data = &bytes[TEENSY_HEADER_LEN..];
    let (w, h) = (usize::from(width), usize::from(height));
    if data.len() != w * h * 3 {
        return Err(MediaError::DataSize {
            format: "Teensy .pov",
            width: width.into(),
            height: height.into(),
            actual: data.len(),
        });
    }
    let mut pixels = vec![0; data.len()];
    for (i, px) in data.chunks_exact(3).enumerate() {
        let (x, y) = (i / h, i % h);
        let at = (y * w + x) * 3;
        pixels[at..at + 3].copy_from_slice(px);
    }
    Picture::new(width, height, pixels)
}

/// Writes the Teensy's headerless, column-major `.pov`, for cards that old firmware reads.
pub fn write_teensy_pov(picture: &Picture) -> Vec<u8> {
    let (w, h) = (usize::from(picture.width()), usize::from(picture.height()));
    let mut out = Vec::with_capacity(TEENSY_HEADER_LEN + picture.pixels().len());
    out.extend_from_slice(&picture.width().to_le_bytes());
    out.extend_from_slice(&picture.height().to_le_bytes());
    for x in 0..w {
        for y in 0..h {
            let at = (y * w + x) * 3;
            out.extend_from_slice(&picture.pixels()[at..at + 3]);
        }
    }
    out
}
