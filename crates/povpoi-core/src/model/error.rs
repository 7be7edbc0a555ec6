use core::fmt;

/// Why a piece of content was refused; each variant says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidContent {
    /// Image width outside 1..=400 columns.
    ImageWidth(u32),
    /// Image height outside 1..=64 LEDs.
    ImageHeight(u32),
    /// The pixel bytes are not width × height × 3 long.
    PixelLength {
        /// Bytes expected from the dimensions.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A name that is empty, too long or holds control characters.
    Name,
    /// A name that reads as a path (`/`, `\\`, `..`).
    PathName,
    /// Pattern type outside 0..=17.
    PatternKind(u8),
    /// Pattern speed 0 (valid speeds are 1..=255).
    PatternSpeed,
    /// Pattern slot outside 0..=17.
    PatternSlot(u8),
    /// Sequence slot outside 0..=4.
    SequenceSlot(u8),
    /// A sequence with no items or more than 10.
    SequenceLength(usize),
    /// A sequence item lasting 0 ms.
    SequenceDuration,
    /// Frame rate outside 1..=255 columns per second.
    Framerate(u16),
    /// Mode outside 0..=4.
    Mode(u8),
    /// An image order naming an image twice, or longer than [`super::MAX_ORDERED_IMAGES`].
    ImageOrder,
}

impl fmt::Display for InvalidContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImageWidth(w) => write!(f, "image width {w} is outside 1..=400 columns"),
            Self::ImageHeight(h) => write!(f, "image height {h} is outside 1..=64 LEDs"),
            Self::PixelLength { expected, actual } => {
                write!(f, "pixel data is {actual} bytes, width x height x 3 = {expected}")
            }
            Self::Name => f.write_str("a name is 1 to 64 bytes of text without control characters"),
            Self::PathName => f.write_str("a name must not look like a path: no '/', '\\' or '..'"),
            Self::PatternKind(k) => write!(f, "pattern type {k} is outside 0..=17"),
            Self::PatternSpeed => f.write_str("pattern speed must be 1..=255"),
            Self::ImageOrder => {
                write!(f, "an image order lists each image once, at most {} images", super::MAX_ORDERED_IMAGES)
            }
            Self::PatternSlot(s) => write!(f, "pattern slot {s} is outside 0..=17"),
            Self::SequenceSlot(s) => write!(f, "sequence slot {s} is outside 0..=4"),
            Self::SequenceLength(n) => write!(f, "a sequence has 1 to 10 items, not {n}"),
            Self::SequenceDuration => f.write_str("a sequence item lasts at least 1 ms"),
            Self::Framerate(r) => write!(f, "frame rate {r} is outside 1..=255 columns per second"),
            Self::Mode(m) => write!(f, "mode {m} is not 0 idle, 1 image, 2 pattern, 3 sequence or 4 live"),
        }
    }
}

impl core::error::Error for InvalidContent {}
