#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

mod blocking;
mod index;
mod store;

pub use index::MAX_SETTING_KEY_LEN;
pub use store::{FlashStore, Layout, MAX_SETTING_LEN, RESERVE_MARGIN_SECTORS, Usage};
