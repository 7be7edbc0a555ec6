//! What a poi stores and plays: images, patterns, sequences and the shared settings.
//!
//! Every constructor validates; a value of these types is always within the limits of the
//! existing system (see `docs/EXISTING_SYSTEM.md` section 3), so the sync engine and the renderer never
//! have to re-check.

mod error;
mod image;
mod pattern;
mod sequence;
mod settings;

pub use error::InvalidContent;
pub use image::{
    ImageId, ImageMeta, MAX_HEIGHT, MAX_NAME_LEN, MAX_ORDERED_IMAGES, MAX_WIDTH, Rgb, check_image_order, validate_name,
};
pub(crate) use pattern::check_pattern_slot;
pub use pattern::{PATTERN_SLOTS, Pattern, PatternKind};
pub(crate) use sequence::check_sequence_slot;
pub use sequence::{MAX_SEQUENCE_ITEMS, SEQUENCE_SLOTS, Sequence, SequenceItem, SequenceTarget};
pub use settings::{Mode, Selection, Settings, check_framerate};
