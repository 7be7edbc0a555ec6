//! The replicated library and the protocol that keeps copies of it in agreement.
//!
//! Each poi holds a full [`Replica`]. Every edit is a [`Record`] named by a [`Dot`]
//! (replica id, per-replica counter) and carrying the version vector of the edits of that
//! item it had seen; an edit supersedes exactly what that vector covers, so concurrent edits
//! are detected, never silently lost, and kept side by side until someone settles them.
//! A replica also keeps, per category, a version vector of every dot it has seen; a peer
//! sends only the records whose dots that vector does not cover. `docs/PROTOCOL.md`
//! describes the protocol independent of this code.

mod error;
mod message;
mod record;
mod replica;
mod session;
mod storage;
mod version;

pub use error::Error;
pub use message::{Blob, Categories, Delta, Direction, Repair, Request, Response, Summary, SyncOptions};
pub use record::{InvalidRecord, Key, Record, Value};
pub use replica::{Conflict, Identity, ImageCursor, MAX_REMEMBERED_PEERS, MergeReport, PartCursor, Replica};
pub use session::{
    MAX_BLOB_BYTES_PER_MESSAGE, MAX_FETCH_HASHES, MAX_PUSH_RECORD_BYTES, MIN_PART_BYTES, Session, SessionReport,
};
pub use storage::{Encoder, MemoryStorage, Storage, StorageError};
pub use version::{Category, Dot, Knowledge, MAX_VERSION_VECTOR_ENTRIES, VersionVector};

/// Version of the peer sync protocol; peers of another version refuse to sync. 3: a
/// selection can name an image by id ([`Value::SelectedImage`]). 4: a `Push` may come in
/// parts ([`Delta::to`]), and a record under the floor is never taken back. 5: a summary
/// names the largest `Push` part its replica takes ([`Summary::part_bytes`]).
pub const PROTOCOL_VERSION: u16 = 5;
