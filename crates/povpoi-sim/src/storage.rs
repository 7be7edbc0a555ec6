//! Storage for simulated replicas: RAM, with saves that can be made to fail.

use std::cell::Cell;
use std::rc::Rc;

use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{MemoryStorage, Storage, StorageError};

/// [`MemoryStorage`] whose next saves fail on demand, as a crash in the middle of a write
/// would: the failed save leaves the previous snapshot in place.
#[derive(Debug, Default)]
pub struct SimStorage {
    mem: MemoryStorage,
    failing_saves: Rc<Cell<u32>>,
}

impl SimStorage {
    /// A handle that makes the next `n` state saves fail: `handle.set(n)`.
    pub fn fail_switch(&self) -> Rc<Cell<u32>> {
        self.failing_saves.clone()
    }
}

impl Storage for SimStorage {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.mem.load_state()
    }
    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        let failing = self.failing_saves.get();
        if failing > 0 {
            self.failing_saves.set(failing - 1);
            return Err(StorageError::new("simulated crash during save"));
        }
        self.mem.save_state(snapshot)
    }
    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        self.mem.load_blob(hash)
    }
    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        self.mem.save_blob(hash, bytes)
    }
    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        self.mem.remove_blob(hash)
    }
    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        self.mem.blob_hashes()
    }
    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError> {
        self.mem.has_blob(hash)
    }
}
