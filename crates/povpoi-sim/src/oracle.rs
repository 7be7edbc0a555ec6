//! What every replica must hold once the troupe has healed and synced, worked out from
//! the full log of edits rather than from any replica's merge logic.

use std::collections::BTreeMap;

use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Key, Record, Replica, Storage, Value};

/// Every edit that any replica made and saved, and the pixels of every image uploaded.
#[derive(Debug, Default)]
pub struct Oracle {
    writes: BTreeMap<Key, Vec<Record>>,
    pixels: BTreeMap<BlobHash, Vec<u8>>,
}

/// Counts describing the converged library.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// Items with at least one live version.
    pub live_items: usize,
    /// Items deleted everywhere.
    pub deleted_items: usize,
    /// Items holding concurrent versions (conflict copies or edit-vs-delete).
    pub multi_version_items: usize,
    /// Image versions whose pixels were checked on every replica.
    pub images_checked: usize,
}

impl Oracle {
    /// Notes a saved local edit.
    pub fn record_write(&mut self, record: Record) {
        self.writes.entry(record.key).or_default().push(record);
    }

    /// Notes the pixels of an uploaded image.
    pub fn record_pixels(&mut self, pixels: &[u8]) {
        self.pixels.insert(BlobHash::of(pixels), pixels.to_vec());
    }

    /// The edits of `key` that no other edit of it was made with knowledge of: exactly
    /// the versions a converged replica must hold.
    pub fn maximal(&self, key: &Key) -> Vec<&Record> {
        let all = self.writes.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let mut max: Vec<&Record> = all.iter().filter(|w| !all.iter().any(|o| o.supersedes(w))).collect();
        max.sort_by_key(|r| r.dot);
        max
    }

    /// Checks converged replicas: each holds exactly the maximal edits of every item (all
    /// concurrent edits survive; nothing deleted is back, though a tombstone may already be
    /// compacted away), every image version has intact pixels, and all agree.
    pub fn check<S: Storage>(&self, replicas: &mut [Replica<S>]) -> Result<Converged, String> {
        let mut stats = Converged::default();
        for key in self.writes.keys() {
            let expected = self.maximal(key);
            let all_deleted = expected.iter().all(|r| r.value.is_deleted());
            if all_deleted {
                stats.deleted_items += 1;
            } else {
                stats.live_items += 1;
            }
            if !all_deleted && expected.len() > 1 {
                stats.multi_version_items += 1;
            }
            let live = |records: &[&Record]| -> Vec<Record> {
                records.iter().filter(|r| !r.value.is_deleted()).map(|r| (*r).clone()).collect()
            };
            for (i, replica) in replicas.iter_mut().enumerate() {
                let held: Vec<&Record> = replica.siblings(key).iter().collect();
                // Tombstones are bookkeeping that compaction removes at its own pace; a
                // replica may keep one only if it is a maximal edit.
                if let Some(stale) = held.iter().find(|r| r.value.is_deleted() && !expected.contains(r)) {
                    return Err(format!("replica {i}: item {key:?} keeps a superseded deletion {stale:?}"));
                }
                if live(&held) != live(&expected) {
                    let what = if all_deleted { "deleted item is back" } else { "wrong versions" };
                    return Err(format!("replica {i}: item {key:?}: {what}: holds {held:?}, expected {expected:?}"));
                }
                for record in &expected {
                    if let Value::Image(meta) = &record.value {
                        let want = self.pixels.get(&meta.pixels()).ok_or("oracle lacks pixels")?;
                        let got = replica.image_pixels(&meta.pixels()).map_err(|e| e.to_string())?;
                        if got.as_ref() != Some(want) {
                            let missing = replica.missing_blobs().contains(&meta.pixels());
                            return Err(format!(
                                "replica {i}: pixels of {key:?} are {got:?}, expected {want:?} (listed as missing: {missing})"
                            ));
                        }
                        stats.images_checked += 1;
                    }
                }
            }
        }
        for (i, replica) in replicas.iter().enumerate() {
            if let Some(r) = replica.records().find(|r| !self.writes.contains_key(&r.key)) {
                return Err(format!("replica {i} holds an item nobody wrote: {r:?}"));
            }
            if !replica.missing_blobs().is_empty() {
                return Err(format!("replica {i} still misses blobs {:?}", replica.missing_blobs()));
            }
            if replica.knowledge() != replicas[0].knowledge() || replica.settings() != replicas[0].settings() {
                return Err(format!("replica {i} disagrees with replica 0 on knowledge or settings"));
            }
        }
        Ok(stats)
    }
}
