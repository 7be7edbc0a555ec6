use serde::{Deserialize, Serialize};

use super::InvalidContent;

/// What the poi is playing, as the existing system numbers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Mode {
    /// Dark.
    #[default]
    Idle = 0,
    /// A stored image.
    Image = 1,
    /// A pattern slot.
    Pattern = 2,
    /// A sequence slot.
    Sequence = 3,
    /// A column pushed from outside.
    Live = 4,
}

impl Mode {
    /// The mode with this number (0-4).
    pub fn from_id(id: u8) -> Result<Self, InvalidContent> {
        Ok(match id {
            0 => Mode::Idle,
            1 => Mode::Image,
            2 => Mode::Pattern,
            3 => Mode::Sequence,
            4 => Mode::Live,
            other => return Err(InvalidContent::Mode(other)),
        })
    }
}

/// The mode together with the slot it plays.
///
/// These two are one replicated field, not two: merging "pattern 5" from one poi with
/// "image 2" from the other field by field could give "pattern 2", which nobody chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// What kind of content plays.
    pub mode: Mode,
    /// Which image, pattern or sequence slot.
    pub index: u16,
}

/// The settings a pair shares: each field is replicated on its own, last writer wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Global brightness, 0-255.
    pub brightness: u8,
    /// Columns per second, 1-255.
    pub framerate: u16,
    /// What plays.
    pub selection: Selection,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { brightness: 128, framerate: 50, selection: Selection::default() }
    }
}

/// Checks a frame rate: the existing system stores it in one byte and accepts 1-255.
pub fn check_framerate(fps: u16) -> Result<(), InvalidContent> {
    if (1..=255).contains(&fps) { Ok(()) } else { Err(InvalidContent::Framerate(fps)) }
}
