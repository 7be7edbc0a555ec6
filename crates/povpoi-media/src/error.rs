//! Why a picture could not be read, converted, written or previewed.

use std::fmt;

/// Everything that can go wrong with a picture; each message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The file holds no bytes.
    Empty,
    /// Neither the bytes nor the file name say what the file is.
    UnknownFormat {
        /// The file name given with the bytes.
        name: String,
        /// What the bytes look like, when recognisable but not supported (e.g. "TIFF").
        found: Option<String>,
    },
    /// The file looked like `format` but could not be decoded.
    Corrupt {
        /// PNG, JPEG, ...
        format: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The picture is larger than the decoder accepts (a guard against decompression bombs).
    TooLarge {
        /// What limit was hit.
        reason: String,
    },
    /// The picture has no pixels (width or height 0).
    ZeroSize,
    /// A raw `.rgb` file whose name does not carry its size.
    RawName {
        /// The name given.
        name: String,
    },
    /// A raw or `.pov` file whose pixel bytes do not match its stated size.
    DataSize {
        /// `raw .rgb`, `.pov`, `Teensy .pov`.
        format: &'static str,
        /// Width the name or header states.
        width: u32,
        /// Height the name or header states.
        height: u32,
        /// Bytes of pixels the file holds.
        actual: usize,
    },
    /// A headered `.pov` whose `data_size` field disagrees with its width and height.
    PovHeader {
        /// Width in the header.
        width: u16,
        /// Height in the header.
        height: u16,
        /// The header's `data_size`.
        data_size: u32,
    },
    /// A headered `.pov` of a version this reader does not know.
    PovVersion(u32),
    /// A file shorter than its fixed header.
    Truncated {
        /// The format whose header is cut.
        format: &'static str,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the file has.
        actual: usize,
    },
    /// The picture is too large for the output format (a `.pov` holds at most 65535 x 65535).
    TooLargeFor {
        /// The output format.
        format: &'static str,
        /// The picture's width.
        width: u32,
        /// The picture's height.
        height: u32,
    },
    /// A target height (LED count) outside 1-64.
    LedCount(u16),
    /// A width cap outside 1-400.
    MaxWidth(u16),
    /// A preview parameter out of range; the text names it and its range.
    Preview(String),
    /// Encoding the output picture failed.
    Encode(String),
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty; pick the picture itself, not a placeholder"),
            Self::UnknownFormat { name, found: Some(found) } => {
                write!(f, "{name}: {found} pictures are not supported; save it as PNG, JPEG, GIF, BMP or WebP first")
            }
            Self::UnknownFormat { name, found: None } => write!(
                f,
                "{name}: not a PNG, JPEG, GIF, BMP, WebP or .pov file, nor a raw file named image_WxH.rgb; \
                 save it in one of those formats"
            ),
            Self::Corrupt { format, reason } => {
                write!(f, "the {format} file is damaged or incomplete ({reason}); export or download it again")
            }
            Self::TooLarge { reason } => write!(
                f,
                "the picture is too large to decode safely ({reason}); scale it down first (at most 16384 pixels a \
                 side and 256 MiB of pixels)"
            ),
            Self::ZeroSize => f.write_str("the picture has no pixels (width or height 0)"),
            Self::RawName { name } => write!(
                f,
                "{name}: a raw .rgb file carries its size in its name; rename it image_WxH.rgb \
                 (e.g. image_20x32.rgb for 20 columns of 32 LEDs)"
            ),
            Self::DataSize { format, width, height, actual } => {
                let expected = u64::from(*width) * u64::from(*height) * 3;
                write!(
                    f,
                    "the {format} file says {width}x{height}, which is {expected} bytes of pixels, but it holds \
                     {actual}; the file is cut short, padded, or its size is wrong"
                )
            }
            Self::PovHeader { width, height, data_size } => write!(
                f,
                "the .pov header says {width}x{height} but data_size {data_size} (it must be width x height x 3 = \
                 {}); the file is damaged or not a .pov",
                // u64: a damaged header's 65535 x 65535 x 3 does not fit a u32.
                u64::from(*width) * u64::from(*height) * 3
            ),
            Self::PovVersion(v) => {
                write!(f, "the .pov file is version {v}; only version 1 is known; convert the original picture again")
            }
            Self::Truncated { format, needed, actual } => {
                write!(f, "the {format} file is {actual} bytes, shorter than its {needed}-byte header; it is cut short")
            }
            Self::TooLargeFor { format, width, height } => {
                write!(f, "a {width}x{height} picture does not fit a {format} file; scale it down first")
            }
            Self::LedCount(n) => write!(f, "the LED count (picture height) must be 1-64, not {n}"),
            Self::MaxWidth(n) => write!(f, "the width cap must be 1-400 columns, not {n}"),
            Self::Preview(reason) => write!(f, "cannot preview: {reason}"),
            Self::Encode(reason) => write!(f, "cannot encode the picture: {reason}"),
        }
    }
}

impl std::error::Error for MediaError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_header_a_damaged_pov_can_claim_is_described_not_a_panic() {
        // Found by the pov_file and image_decode fuzz targets: 65535 x 65535 x 3 overflowed.
        let e = MediaError::PovHeader { width: u16::MAX, height: u16::MAX, data_size: 7 };
        assert!(e.to_string().contains("= 12884508675)"), "{e}");
    }
}
