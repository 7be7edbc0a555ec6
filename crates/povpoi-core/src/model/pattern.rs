use serde::{Deserialize, Serialize};

use super::{InvalidContent, Rgb};

/// Number of pattern slots on a poi.
pub const PATTERN_SLOTS: u8 = 18;

/// The 18 pattern types of the display model, numbered as the existing system numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
#[allow(missing_docs)] // the names are the documentation
pub enum PatternKind {
    Rainbow = 0,
    Wave = 1,
    Gradient = 2,
    Sparkle = 3,
    Fire = 4,
    Comet = 5,
    Breathing = 6,
    Strobe = 7,
    Meteor = 8,
    Wipe = 9,
    Plasma = 10,
    VuMeter = 11,
    Pulse = 12,
    AudioRainbow = 13,
    CenterBurst = 14,
    AudioSparkle = 15,
    SplitSpin = 16,
    TheaterChase = 17,
}

impl PatternKind {
    /// All types in id order.
    pub const ALL: [PatternKind; 18] = [
        Self::Rainbow,
        Self::Wave,
        Self::Gradient,
        Self::Sparkle,
        Self::Fire,
        Self::Comet,
        Self::Breathing,
        Self::Strobe,
        Self::Meteor,
        Self::Wipe,
        Self::Plasma,
        Self::VuMeter,
        Self::Pulse,
        Self::AudioRainbow,
        Self::CenterBurst,
        Self::AudioSparkle,
        Self::SplitSpin,
        Self::TheaterChase,
    ];

    /// The type with this id (0-17).
    pub fn from_id(id: u8) -> Result<Self, InvalidContent> {
        Self::ALL.get(usize::from(id)).copied().ok_or(InvalidContent::PatternKind(id))
    }

    /// The id users and the Teensy link know.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The name shown to users.
    pub fn name(self) -> &'static str {
        [
            "Rainbow",
            "Wave",
            "Gradient",
            "Sparkle",
            "Fire",
            "Comet",
            "Breathing",
            "Strobe",
            "Meteor",
            "Wipe",
            "Plasma",
            "VU Meter",
            "Pulse",
            "Audio Rainbow",
            "Center Burst",
            "Audio Sparkle",
            "Split Spin",
            "Theater Chase",
        ][self as usize]
    }

    /// Whether the pattern reacts to a microphone level (types 11-15).
    pub fn is_audio_reactive(self) -> bool {
        (11..=15).contains(&self.id())
    }
}

/// A pattern: a type with two colours and a speed (1-255, higher is faster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern {
    kind: PatternKind,
    color1: Rgb,
    color2: Rgb,
    speed: u8,
}

impl Pattern {
    /// A pattern, refusing speed 0.
    pub fn new(kind: PatternKind, color1: Rgb, color2: Rgb, speed: u8) -> Result<Self, InvalidContent> {
        if speed == 0 {
            return Err(InvalidContent::PatternSpeed);
        }
        Ok(Pattern { kind, color1, color2, speed })
    }

    /// Re-checks a pattern that arrived from elsewhere.
    pub fn validate(&self) -> Result<(), InvalidContent> {
        Self::new(self.kind, self.color1, self.color2, self.speed).map(|_| ())
    }

    /// The pattern type.
    pub fn kind(&self) -> PatternKind {
        self.kind
    }
    /// First colour.
    pub fn color1(&self) -> Rgb {
        self.color1
    }
    /// Second colour.
    pub fn color2(&self) -> Rgb {
        self.color2
    }
    /// Speed, 1-255.
    pub fn speed(&self) -> u8 {
        self.speed
    }
}

impl Default for Pattern {
    /// The existing system's defaults: Rainbow, red and blue, speed 50.
    fn default() -> Self {
        Pattern { kind: PatternKind::Rainbow, color1: Rgb::new(255, 0, 0), color2: Rgb::new(0, 0, 255), speed: 50 }
    }
}

/// Checks a pattern slot number.
pub(crate) fn check_pattern_slot(slot: u8) -> Result<(), InvalidContent> {
    if slot < PATTERN_SLOTS { Ok(()) } else { Err(InvalidContent::PatternSlot(slot)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_the_spec_ids_and_names() {
        for (i, kind) in PatternKind::ALL.iter().enumerate() {
            assert_eq!(usize::from(kind.id()), i);
            assert_eq!(PatternKind::from_id(i as u8), Ok(*kind));
        }
        assert_eq!(PatternKind::from_id(11).unwrap().name(), "VU Meter");
        assert_eq!(PatternKind::from_id(17).unwrap().name(), "Theater Chase");
        assert_eq!(PatternKind::from_id(18), Err(InvalidContent::PatternKind(18)));
        let audio: alloc::vec::Vec<u8> =
            PatternKind::ALL.iter().filter(|k| k.is_audio_reactive()).map(|k| k.id()).collect();
        assert_eq!(audio, [11, 12, 13, 14, 15]);
    }

    #[test]
    fn speed_zero_is_refused() {
        let red = Rgb::new(255, 0, 0);
        assert_eq!(Pattern::new(PatternKind::Fire, red, red, 0), Err(InvalidContent::PatternSpeed));
        assert!(Pattern::new(PatternKind::Fire, red, red, 1).is_ok());
    }
}
