//! The POV renderer: the column of LED colours to show at a given show time.
//!
//! Everything here is a pure function of its inputs (the program, the show time, the frame
//! rate, an audio level): nothing reads a clock or keeps state between columns, so two poi
//! given the same show time show the same column, and a preview can render any instant.
//! Brightness and gamma ([`Finish`]) come last; the wire format of a strip
//! after that.

mod audio;
mod color;
mod pattern;
mod program;
#[cfg(test)]
mod reference;

pub use audio::{AudioSource, Constant, Silence, TestSignal};
pub use color::{BLACK, ColorOrder, Finish, FinishTable, add, blend, gamma, scale, wheel};
pub use program::{
    BadLedCount, Content, DEFAULT_LEDS, ImageView, MAX_LEDS, Program, Renderer, image_column, sequence_item,
};
