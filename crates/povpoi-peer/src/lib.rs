#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod advert;
pub mod auth;
pub mod exchange;
pub mod key;
pub mod replay;
pub mod respond;
pub mod session;
