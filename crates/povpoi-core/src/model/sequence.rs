use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::pattern::check_pattern_slot;
use super::{ImageId, InvalidContent};

/// Number of sequence slots on a poi.
pub const SEQUENCE_SLOTS: u8 = 5;
/// Most items one sequence holds.
pub const MAX_SEQUENCE_ITEMS: usize = 10;

/// What one step of a sequence shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SequenceTarget {
    /// A stored image.
    Image(ImageId),
    /// A pattern slot (0-17).
    Pattern(u8),
}

/// One step of a sequence: what to show and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceItem {
    /// What to show.
    pub target: SequenceTarget,
    /// How long, in milliseconds (1-65535).
    pub duration_ms: u16,
}

/// A playlist of up to 10 items, played once or looped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    items: Vec<SequenceItem>,
    looped: bool,
}

impl Sequence {
    /// A sequence of 1-10 items, each lasting at least 1 ms.
    pub fn new(items: Vec<SequenceItem>, looped: bool) -> Result<Self, InvalidContent> {
        if items.is_empty() || items.len() > MAX_SEQUENCE_ITEMS {
            return Err(InvalidContent::SequenceLength(items.len()));
        }
        for item in &items {
            if item.duration_ms == 0 {
                return Err(InvalidContent::SequenceDuration);
            }
            if let SequenceTarget::Pattern(slot) = item.target {
                check_pattern_slot(slot)?;
            }
        }
        Ok(Sequence { items, looped })
    }

    /// Re-checks a sequence that arrived from elsewhere.
    pub fn validate(&self) -> Result<(), InvalidContent> {
        Self::new(self.items.clone(), self.looped).map(|_| ())
    }

    /// The steps in play order.
    pub fn items(&self) -> &[SequenceItem] {
        &self.items
    }
    /// Whether the sequence starts over after its last item.
    pub fn looped(&self) -> bool {
        self.looped
    }
}

/// Checks a sequence slot number.
pub(crate) fn check_sequence_slot(slot: u8) -> Result<(), InvalidContent> {
    if slot < SEQUENCE_SLOTS { Ok(()) } else { Err(InvalidContent::SequenceSlot(slot)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sequences_hold_one_to_ten_valid_items() {
        let step = SequenceItem { target: SequenceTarget::Pattern(3), duration_ms: 500 };
        assert!(Sequence::new(vec![step; 10], true).is_ok());
        assert_eq!(Sequence::new(vec![], true), Err(InvalidContent::SequenceLength(0)));
        assert_eq!(Sequence::new(vec![step; 11], true), Err(InvalidContent::SequenceLength(11)));
        let zero = SequenceItem { duration_ms: 0, ..step };
        assert_eq!(Sequence::new(vec![zero], false), Err(InvalidContent::SequenceDuration));
        let bad_slot = SequenceItem { target: SequenceTarget::Pattern(18), ..step };
        assert_eq!(Sequence::new(vec![bad_slot], false), Err(InvalidContent::PatternSlot(18)));
        assert_eq!(check_sequence_slot(5), Err(InvalidContent::SequenceSlot(5)));
    }
}
