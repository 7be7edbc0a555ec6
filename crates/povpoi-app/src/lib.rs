#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod access;
pub mod answers;
pub mod api;
pub mod app;
pub mod clock;
pub mod columns;
pub mod content;
pub mod device;
pub mod peers;
pub mod rules;
pub mod sessions;
pub mod stage;
pub mod teensy;
pub mod time;
pub mod upload;

pub use app::{App, Config, DEFAULT_SYNC_INTERVAL_MS, Now};
