#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod clock;
pub mod device;
pub mod hash;
pub mod model;
pub mod render;
pub mod show;
pub mod sync;
pub mod wire;
