//! The persistence hook: where a replica keeps its state and pixel blobs.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::hash::BlobHash;

/// A storage failure, described for a log or an API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// What failed, for a person.
    pub message: String,
    /// The storage is out of space (an API answers 507 rather than 500).
    pub disk_full: bool,
}

impl StorageError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> StorageError {
        StorageError { message: message.into(), disk_full: false }
    }

    /// A failure because the storage is out of space.
    pub fn disk_full(message: impl Into<String>) -> StorageError {
        StorageError { message: message.into(), disk_full: true }
    }
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "storage: {}", self.message)
    }
}

/// Gives a value's bytes, in pieces, to the sink it is called with: the same bytes at
/// every call ([`Storage::save_state_from`]). It must not use the storage it is given to
/// (a store may be busy writing while it runs).
pub type Encoder<'a> = dyn FnMut(&mut dyn FnMut(&[u8])) + 'a;

/// Durable storage for one replica: a state snapshot and content-addressed blobs.
///
/// Contract the replica relies on:
/// - `save_state` is atomic and durable: after a crash, `load_state` returns either the
///   previous snapshot or the new one, never a mix.
/// - a blob is saved before any state that refers to it, so a crash can leave an unused
///   blob (collected later) but never a state pointing at a blob that was never written.
/// - `load_blob` may return damaged bytes; the replica verifies them against the hash.
pub trait Storage {
    /// The last saved snapshot, or `None` for a new store.
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces the snapshot, atomically.
    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError>;
    /// Replaces the snapshot with the bytes `encode` gives its sink, as
    /// [`Storage::save_state`] does. `encode` may be called more than once and gives the
    /// same bytes each time: a store that writes them as they come (a board's flash) never
    /// holds the snapshot whole, 13.5 KB at 200 images. By default they are collected.
    fn save_state_from(&mut self, encode: &mut Encoder<'_>) -> Result<(), StorageError> {
        let mut snapshot = Vec::new();
        encode(&mut |piece| snapshot.extend_from_slice(piece));
        self.save_state(&snapshot)
    }
    /// The bytes stored under `hash`, if any.
    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `bytes` under `hash` (already verified by the caller).
    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError>;
    /// Forgets a blob; removing a missing one is not an error.
    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError>;
    /// Every stored blob's hash.
    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError>;
    /// Whether a blob is stored under `hash` (its bytes unread, so unverified). The replica
    /// asks here rather than keeping its own list: a board's store already indexes its
    /// blobs, and a second copy of that index was 6 KiB of its heap at 200 images.
    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError>;

    /// Begins saving a blob of `len` bytes that arrives in pieces ([`Storage::write_blob`])
    /// and whose hash is known only at the end ([`Storage::finish_blob`]): an upload a board
    /// writes to its flash as it comes, never holding it. One at a time: beginning another
    /// abandons this one. By default a storage takes blobs whole only, and refuses.
    fn begin_blob(&mut self, len: usize) -> Result<(), StorageError> {
        let _ = len;
        Err(StorageError::new("this storage takes an image's pixels whole only"))
    }
    /// Takes the next bytes of the blob begun with [`Storage::begin_blob`].
    fn write_blob(&mut self, piece: &[u8]) -> Result<(), StorageError> {
        let _ = piece;
        Err(StorageError::new("no blob is being written"))
    }
    /// Ends the blob begun with [`Storage::begin_blob`], once all its bytes came: it is
    /// stored, durably, under the hash returned.
    fn finish_blob(&mut self) -> Result<BlobHash, StorageError> {
        Err(StorageError::new("no blob is being written"))
    }
    /// Drops the blob being written, if any: nothing of it is kept.
    fn abandon_blob(&mut self) {}

    /// Fills `out` with the blob's bytes from `offset` on, unverified; `Ok(false)` when the
    /// blob is not stored or is shorter. A player reads an image a few columns at a time
    /// through this, where RAM cannot hold it whole: stores that can read a part without
    /// the rest (flash) override it; this one loads the blob whole.
    fn read_blob_part(&self, hash: &BlobHash, offset: usize, out: &mut [u8]) -> Result<bool, StorageError> {
        let Some(bytes) = self.load_blob(hash)? else { return Ok(false) };
        match offset.checked_add(out.len()).and_then(|end| bytes.get(offset..end)) {
            Some(part) => {
                out.copy_from_slice(part);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Storage in RAM: for a poi without flash storage, for tests and for the simulation.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    /// The current snapshot.
    pub state: Option<Vec<u8>>,
    /// The blobs by hash.
    pub blobs: BTreeMap<BlobHash, Vec<u8>>,
}

impl Storage for MemoryStorage {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.state.clone())
    }
    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        self.state = Some(snapshot.to_vec());
        Ok(())
    }
    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.blobs.get(hash).cloned())
    }
    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        self.blobs.insert(*hash, bytes.to_vec());
        Ok(())
    }
    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        self.blobs.remove(hash);
        Ok(())
    }
    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        Ok(self.blobs.keys().copied().collect())
    }
    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError> {
        Ok(self.blobs.contains_key(hash))
    }
}
