//! The blobs' index in RAM: each blob's first sector, by hash.

use alloc::vec::Vec;

use povpoi_core::hash::BlobHash;

/// Entries a chunk holds at most (34 bytes each).
const CHUNK: usize = 16;

/// Each blob's first sector, sorted by hash, in chunks of at most [`CHUNK`] entries.
///
/// One sorted vector would do, but it grows by copying itself whole into a larger one: with
/// 200 blobs that held 7 KiB twice over, at the moment a board takes an image. A full chunk
/// splits in two instead, so growing takes one chunk's kilobyte.
#[derive(Default)]
pub(crate) struct BlobIndex {
    chunks: Vec<Vec<(BlobHash, u16)>>,
}

impl BlobIndex {
    /// The chunk where `hash` is or would go.
    fn chunk_of(&self, hash: &BlobHash) -> usize {
        let after = self.chunks.partition_point(|c| c.last().is_some_and(|(last, _)| last < hash));
        after.min(self.chunks.len().saturating_sub(1))
    }

    /// The first sector of the blob stored under `hash`.
    pub(crate) fn get(&self, hash: &BlobHash) -> Option<u16> {
        let chunk = self.chunks.get(self.chunk_of(hash))?;
        chunk.binary_search_by(|(h, _)| h.cmp(hash)).ok().map(|i| chunk[i].1)
    }

    /// Sets the first sector of the blob under `hash`, adding it if new.
    pub(crate) fn set(&mut self, hash: BlobHash, first: u16) {
        let c = self.chunk_of(&hash);
        let last = c + 1 == self.chunks.len();
        let Some(chunk) = self.chunks.get_mut(c) else {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push((hash, first));
            self.chunks.push(chunk);
            return;
        };
        match chunk.binary_search_by(|(h, _)| h.cmp(&hash)) {
            Ok(i) => chunk[i].1 = first,
            Err(i) => {
                if chunk.len() == CHUNK {
                    // Past the last entry (a store opening lists its blobs in order), a new
                    // chunk: splitting there would leave every chunk half empty.
                    let keep = if i == CHUNK && last { CHUNK } else { CHUNK / 2 };
                    let mut upper = Vec::with_capacity(CHUNK);
                    upper.extend(chunk.drain(keep..));
                    self.chunks.insert(c + 1, upper);
                    // One of the two halves has room now.
                    return self.set(hash, first);
                }
                chunk.insert(i, (hash, first));
            }
        }
    }

    /// Forgets the blob under `hash`; returns its first sector.
    pub(crate) fn remove(&mut self, hash: &BlobHash) -> Option<u16> {
        let c = self.chunk_of(hash);
        let chunk = self.chunks.get_mut(c)?;
        let i = chunk.binary_search_by(|(h, _)| h.cmp(hash)).ok()?;
        let (_, first) = chunk.remove(i);
        if chunk.is_empty() {
            self.chunks.remove(c);
        }
        Some(first)
    }

    /// How many blobs it lists.
    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Every blob's hash and first sector, by hash.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (BlobHash, u16)> + '_ {
        self.chunks.iter().flatten().copied()
    }

    /// Forgets every blob.
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    fn hash(n: u8) -> BlobHash {
        let mut bytes = [0; 32];
        bytes[0] = n;
        bytes[31] = n.wrapping_mul(7);
        BlobHash(bytes)
    }

    proptest! {
        /// Whatever the order of sets and removes, the index answers as a sorted map does,
        /// and no chunk passes its size.
        #[test]
        fn agrees_with_a_map(steps in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u16>()), 0..600)) {
            let (mut index, mut map) = (BlobIndex::default(), BTreeMap::new());
            for (add, n, first) in steps {
                if add {
                    index.set(hash(n), first);
                    map.insert(hash(n), first);
                } else {
                    prop_assert_eq!(index.remove(&hash(n)), map.remove(&hash(n)));
                }
                prop_assert!(index.chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
            }
            prop_assert_eq!(index.iter().collect::<Vec<_>>(), map.iter().map(|(h, f)| (*h, *f)).collect::<Vec<_>>());
            prop_assert_eq!(index.len(), map.len());
            for n in 0..=255 {
                prop_assert_eq!(index.get(&hash(n)), map.get(&hash(n)).copied());
            }
        }
    }
}
