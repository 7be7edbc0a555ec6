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
    postcard::to_extend(message, sized_for(message, 0)).expect("protocol messages always encode")
}

/// An empty vector with room for `value` encoded and `extra` bytes more. Encoding into a
/// vector that grows as it goes holds its old and new buffers at once at every doubling:
/// up to three times the message at the peak, which a board's 64 KiB heap cannot spare
/// (a 200-image snapshot is 13.5 KB). Counting first costs a second pass over the value.
pub(crate) fn sized_for<T: Serialize>(value: &T, extra: usize) -> Vec<u8> {
    Vec::with_capacity(encoded_len(value) + extra)
}

/// The length of `value` encoded, found without encoding it.
pub(crate) fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()).unwrap_or(0)
}

/// Decodes a peer message; malformed or trailing bytes are a protocol error.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        Ok(_) => Err(Error::Protocol("trailing bytes after the message")),
        Err(_) => Err(Error::Protocol("message could not be decoded")),
    }
}
