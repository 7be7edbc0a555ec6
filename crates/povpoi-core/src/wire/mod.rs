//! Encodings: compact binary (postcard) between poi, JSON shapes for the HTTP API, and the
//! bytes an LED strip ([`apa102`]) and the existing Teensy board ([`teensy`]) take.

pub mod apa102;
pub mod legacy;
pub mod teensy;

use alloc::vec::Vec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sync::Error;

/// Encodes a peer message ([`crate::sync::Request`] or [`crate::sync::Response`]) as postcard.
pub fn to_bytes<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).expect("protocol messages always encode")
}

/// Decodes a peer message; malformed or trailing bytes are a protocol error.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        Ok(_) => Err(Error::Protocol("trailing bytes after the message")),
        Err(_) => Err(Error::Protocol("message could not be decoded")),
    }
}
