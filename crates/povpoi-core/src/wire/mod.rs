//! Encodings: compact binary (postcard) between poi, JSON shapes for the HTTP API, and the
//! bytes an LED strip ([`apa102`]) and the existing Teensy board ([`teensy`]) take.

pub mod apa102;
pub mod legacy;
pub mod teensy;

use alloc::vec;
use alloc::vec::Vec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::hash::BlobHash;
use crate::sync::{Blob, Error, Response};

/// Encodes a peer message ([`crate::sync::Request`] or [`crate::sync::Response`]) as postcard.
pub fn to_bytes<T: Serialize>(message: &T) -> Vec<u8> {
    to_bytes_with_room(message, 0)
}

/// [`to_bytes`] into a vector with room for `extra` bytes more, so that sealing the message
/// in its own buffer does not copy it.
pub fn to_bytes_with_room<T: Serialize>(message: &T, extra: usize) -> Vec<u8> {
    postcard::to_extend(message, sized_for(message, extra)).expect("protocol messages always encode")
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

/// Decodes a peer message; malformed or trailing bytes are a protocol error, and a `Begin`
/// or `Begun` that does not decode because its summary is of another protocol version says
/// which version it is.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        outcome => Err(match other_version(bytes) {
            Some(version) => Error::UnsupportedProtocol(version),
            None if outcome.is_ok() => Error::Protocol("trailing bytes after the message"),
            None => Error::Protocol("message could not be decoded"),
        }),
    }
}

/// The protocol version a `Begin` or `Begun` (variant 0 of both, led by the summary's
/// version) names, when it is not ours: another version may lay out its summary otherwise,
/// so it is read before the rest.
fn other_version(bytes: &[u8]) -> Option<u16> {
    let [0, rest @ ..] = bytes else { return None };
    let (version, _) = postcard::take_from_bytes::<u16>(rest).ok()?;
    (version != crate::sync::PROTOCOL_VERSION).then_some(version)
}

/// [`from_bytes`] for a [`Response`] given by value: an answer carrying one blob (what a
/// poi short of RAM fetches) keeps its pixels in the answer's own buffer, moved to its
/// front, so that taking an image holds its bytes once, not twice.
pub fn response_from_vec(mut bytes: Vec<u8>) -> Result<Response, Error> {
    // `Response::Blobs` (variant 2) with one blob: its hash, its length and pixels, then
    // the missing hashes. Read piece by piece with postcard rather than through a borrowing
    // copy of the types: that reader cost a board 2 KB of flash.
    if let [2, 1, rest @ ..] = bytes.as_slice()
        && let Ok((hash, rest)) = postcard::take_from_bytes::<BlobHash>(rest)
        && let Ok((len, rest)) = postcard::take_from_bytes::<usize>(rest)
        && let Some((pixels, rest)) = rest.split_at_checked(len)
        && let Ok(missing) = from_bytes::<Vec<BlobHash>>(rest)
    {
        let start = pixels.as_ptr() as usize - bytes.as_ptr() as usize;
        bytes.copy_within(start..start + len, 0);
        bytes.truncate(len);
        return Ok(Response::Blobs { blobs: vec![Blob { hash, bytes }], missing });
    }
    from_bytes(&bytes)
}
