//! Everything that can go wrong in the library and its sync.

use alloc::string::String;
use core::fmt;

use super::record::{InvalidRecord, Key};
use super::storage::StorageError;
use crate::model::InvalidContent;

/// Why an operation on a replica failed. The replica is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Content outside the display model's limits.
    Invalid(InvalidContent),
    /// An edit named an item that does not exist (or was deleted).
    NotFound(Key),
    /// An image's pixels have not arrived here yet, so it cannot be edited here: the poi
    /// making a version of an image must hold its pixels, or a concurrent delete elsewhere
    /// could leave a live image that nobody has the pixels of.
    PixelsMissing(Key),
    /// Keeping both versions of a conflict needs an empty slot for the other version, and
    /// every slot of that kind is filled.
    NoFreeSlot(Key),
    /// The peer belongs to another sync group; the two never merge.
    GroupMismatch {
        /// Our group.
        ours: String,
        /// The peer's group.
        theirs: String,
    },
    /// The peer speaks a protocol version we do not.
    UnsupportedProtocol(u16),
    /// A peer sent a record that breaks the rules.
    BadRecord(InvalidRecord),
    /// A peer counts edits of this replica that this replica never made: it met a copy of
    /// this poi's store (restored backup, copied data directory). Syncing would silently
    /// drop this poi's new edits there, so it is refused; give this store a new replica id.
    ForeignHistory,
    /// A message could not be decoded, or came at the wrong point of a session.
    Protocol(&'static str),
    /// The peer refused our request.
    Refused(String),
    /// The storage failed; the in-memory state was rolled back to the last saved one.
    Storage(StorageError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "{e}"),
            Self::NotFound(key) => write!(f, "no such item: {key}"),
            Self::PixelsMissing(key) => {
                write!(f, "the pixels of {key} are still syncing to this poi; try again once they arrived")
            }
            Self::NoFreeSlot(key) => {
                write!(
                    f,
                    "every slot is filled, so the other version of {key} has nowhere to go: clear a slot, or keep one version"
                )
            }
            Self::GroupMismatch { ours, theirs } => {
                write!(f, "peer is in sync group {theirs:?}, this poi in {ours:?}: they never sync")
            }
            Self::UnsupportedProtocol(v) => {
                write!(f, "peer speaks sync protocol version {v}, this poi version {}", super::PROTOCOL_VERSION)
            }
            Self::BadRecord(e) => write!(f, "peer sent a bad record: {e}"),
            Self::ForeignHistory => f.write_str(
                "a peer has seen edits of this poi that this poi never made (a restored backup or copied data \
                 directory?); this poi needs a new replica id before it can sync",
            ),
            Self::Protocol(what) => write!(f, "sync protocol error: {what}"),
            Self::Refused(why) => write!(f, "peer refused: {why}"),
            Self::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<InvalidContent> for Error {
    fn from(e: InvalidContent) -> Self {
        Error::Invalid(e)
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}
