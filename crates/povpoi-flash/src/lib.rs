#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

mod index;
pub mod ram;
mod sector;
mod store;

pub use sector::HEADER_LEN;
pub use store::{FlashStore, MAX_SETTING_KEY_LEN, MAX_SETTING_LEN, Options, RESERVE_MARGIN_SECTORS, Usage};
