//! The unit of replication: one edit of one item.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::version::{Category, Dot, VersionVector};
use crate::clock::Stamp;
use crate::model::{ImageId, ImageMeta, InvalidContent, Pattern, Selection, Sequence, check_framerate};
use crate::show::Cue;

/// The name of a replicated item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// A stored image.
    Image(ImageId),
    /// A pattern slot (0-17).
    Pattern(u8),
    /// A sequence slot (0-4).
    Sequence(u8),
    /// Shared setting: global brightness.
    Brightness,
    /// Shared setting: columns per second.
    Framerate,
    /// Shared setting: mode and slot that play.
    Selection,
    /// The order the images are listed and numbered in (last writer wins, no conflict
    /// copies: two reorders made apart are not worth a person's decision).
    ImageOrder,
}

impl Key {
    /// Which category the item syncs with.
    pub fn category(&self) -> Category {
        match self {
            Key::Image(_) | Key::ImageOrder => Category::Images,
            Key::Pattern(_) | Key::Sequence(_) => Category::Patterns,
            Key::Brightness | Key::Framerate | Key::Selection => Category::Settings,
        }
    }

    /// Whether concurrent edits of this item are kept side by side as conflict copies
    /// (content) or settled silently by the later stamp (settings).
    pub fn keeps_conflicts(&self) -> bool {
        self.category() != Category::Settings && *self != Key::ImageOrder
    }
}

impl core::fmt::Display for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Key::Image(id) => write!(f, "image {id}"),
            Key::Pattern(slot) => write!(f, "pattern slot {slot}"),
            Key::Sequence(slot) => write!(f, "sequence slot {slot}"),
            Key::Brightness => f.write_str("brightness"),
            Key::Framerate => f.write_str("frame rate"),
            Key::Selection => f.write_str("mode and index"),
            Key::ImageOrder => f.write_str("image order"),
        }
    }
}

/// What an edit wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// An image's metadata.
    Image(ImageMeta),
    /// A pattern.
    Pattern(Pattern),
    /// A sequence.
    Sequence(Sequence),
    /// Brightness 0-255.
    Brightness(u8),
    /// Frame rate 1-255.
    Framerate(u16),
    /// What plays.
    Selection(Selection),
    /// A tombstone: the item was deleted.
    Deleted,
    /// What plays: the image with this id, wherever it sits in the library. Last so that
    /// the variants before keep their numbers (records stored earlier still decode).
    SelectedImage(ImageId),
    /// The images in the order a person put them (ids no longer stored are skipped, and
    /// images not listed follow, by id). Appended for the same reason.
    ImageOrder(Vec<ImageId>),
}

impl Value {
    /// Whether this edit deleted the item.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Value::Deleted)
    }
}

/// One edit of one item, with what the editor had seen of that item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The item.
    pub key: Key,
    /// This edit's identity.
    pub dot: Dot,
    /// When it was made, in hybrid logical time; only picks a winner among concurrent edits.
    pub stamp: Stamp,
    /// Every edit of this item the editor had seen, this one included (for an item other
    /// than an image, also its replica's floor: the edits its compacted tombstones deleted):
    /// the record supersedes exactly the edits of this item whose dots this covers.
    pub context: VersionVector,
    /// What was written.
    pub value: Value,
    /// Show time from which the edit shows on the LEDs, so every poi of the group switches
    /// at the same instant ([`Cue::NOW`] for edits that do not change what plays).
    pub cue: Cue,
}

impl Record {
    /// Whether this edit was made with knowledge of `other` (and so replaces it).
    pub fn supersedes(&self, other: &Record) -> bool {
        self.dot != other.dot && self.context.covers(other.dot)
    }

    /// Orders concurrent edits for display: a live value beats a deletion, then the later
    /// stamp wins, then the larger dot (a fixed tie-break every replica agrees on).
    pub fn precedence(&self) -> (bool, Stamp, Dot) {
        (!self.value.is_deleted(), self.stamp, self.dot)
    }

    /// Checks a record received from a peer: a value of the key's kind, within limits,
    /// with a context that includes its own dot.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        if !self.context.covers(self.dot) || self.dot.seq == 0 {
            return Err(InvalidRecord::Context);
        }
        let slot = match self.key {
            Key::Pattern(slot) => crate::model::check_pattern_slot(slot),
            Key::Sequence(slot) => crate::model::check_sequence_slot(slot),
            _ => Ok(()),
        };
        slot.map_err(InvalidRecord::Content)?;
        let content = match (&self.key, &self.value) {
            (_, Value::Deleted) if self.key.keeps_conflicts() => Ok(()),
            (Key::Image(_), Value::Image(meta)) => meta.validate(),
            (Key::Pattern(_), Value::Pattern(p)) => p.validate(),
            (Key::Sequence(_), Value::Sequence(s)) => s.validate(),
            (Key::Brightness, Value::Brightness(_)) => Ok(()),
            (Key::Framerate, Value::Framerate(fps)) => check_framerate(*fps),
            (Key::Selection, Value::Selection(_) | Value::SelectedImage(_)) => Ok(()),
            (Key::ImageOrder, Value::ImageOrder(ids)) => crate::model::check_image_order(ids),
            _ => return Err(InvalidRecord::KindMismatch),
        };
        content.map_err(InvalidRecord::Content)
    }
}

/// Why a received record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidRecord {
    /// The value is not of the kind the key names (or a setting was "deleted").
    KindMismatch,
    /// The context does not contain the record's own dot.
    Context,
    /// The value breaks a content limit.
    Content(InvalidContent),
}

impl core::fmt::Display for InvalidRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::KindMismatch => f.write_str("record value does not match its key"),
            Self::Context => f.write_str("record context does not contain its own dot"),
            Self::Content(e) => write!(f, "record content invalid: {e}"),
        }
    }
}
