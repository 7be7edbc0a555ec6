//! The POV renderer: the column of LED colours to show at a given show time.
//!
//! Everything here is a pure function of its inputs (the program, the show time, the frame
//! rate, an audio level): nothing reads a clock or keeps state between columns, so two poi
//! given the same show time show the same column, and a preview can render any instant.
//! Brightness and gamma ([`Finish`]) come last; the wire format of a strip
//! after that.
//!
//! Speed: a column costs a few hundred instructions at 32 LEDs when the player keeps a
//! [`ColumnCache`] and calls [`Renderer::render_cached`] (brightness and gamma as one
//! lookup table, the patterns' blends and random draws kept while they stay the same). The
//! cache only remembers work: the bytes are those of [`Renderer::render`] then
//! [`Finish::apply`], which a test checks against a copy of the original arithmetic.

mod audio;
mod cache;
mod color;
mod pattern;
mod program;
#[cfg(test)]
mod reference;

pub use audio::{AudioSource, Constant, Silence, TestSignal};
pub use cache::ColumnCache;
pub use color::{BLACK, ColorOrder, Finish, FinishTable, add, blend, gamma, scale, wheel};
pub use program::{
    BadLedCount, Content, DEFAULT_LEDS, ImageView, MAX_LEDS, Program, Renderer, image_column, sequence_item,
};
