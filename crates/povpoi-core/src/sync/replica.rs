//! One poi's full copy of the library, its local edits and how it merges a peer's.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};

use super::PROTOCOL_VERSION;
use super::error::Error;
use super::message::{Blob, Categories, Delta, Repair, Summary};
use super::record::{Key, Record, Value};
use super::session::{MAX_PUSH_RECORD_BYTES, MIN_PART_BYTES};
use super::storage::{Storage, StorageError};
use super::version::{Category, Dot, Knowledge, VersionVector};
use crate::clock::{Hlc, Stamp};
use crate::device::{DeviceId, ReplicaId};
use crate::hash::BlobHash;
use crate::model::{
    ImageId, ImageMeta, MAX_NAME_LEN, Mode, PATTERN_SLOTS, Pattern, SEQUENCE_SLOTS, Selection, Sequence, Settings,
    check_framerate, check_image_order, check_pattern_slot, check_sequence_slot,
};
use crate::show::Cue;

/// Most peers whose reported knowledge a replica remembers (for compaction).
pub const MAX_REMEMBERED_PEERS: usize = 64;

/// Version of the snapshot layout written by [`Replica`]; format 1 (records without a cue,
/// protocol 1) is still read.
const SNAPSHOT_FORMAT: u8 = 2;

/// Who a new replica is; used only when the storage holds no snapshot yet.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Fresh random id of this copy of the library.
    pub replica: ReplicaId,
    /// The poi's user-facing id.
    pub device: DeviceId,
    /// The sync group it starts in.
    pub group: String,
}

/// What a merge changed, counted the way `/api/sync/execute` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Records that changed this replica's state.
    pub records_merged: u32,
    /// Images that were not visible before and are now.
    pub images_added: u32,
    /// Pattern or sequence slots that were empty before and are filled now.
    pub patterns_added: u32,
    /// Settings fields whose value changed.
    pub settings_updated: u32,
    /// Items that were visible before and are deleted now.
    pub items_deleted: u32,
}

impl MergeReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &MergeReport) {
        self.records_merged += other.records_merged;
        self.images_added += other.images_added;
        self.patterns_added += other.patterns_added;
        self.settings_updated += other.settings_updated;
        self.items_deleted += other.items_deleted;
    }
}

/// An item with concurrent edits: the version shown, and the others kept as conflict copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict<'a> {
    /// The item.
    pub key: Key,
    /// The version shown.
    pub winner: &'a Record,
    /// The other live versions, oldest stamp first.
    pub copies: Vec<&'a Record>,
}

/// The persisted part of a replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    replica: ReplicaId,
    device: DeviceId,
    group: String,
    seq: u64,
    hlc: Hlc,
    /// Per item, the edits not superseded by another edit seen here (one unless concurrent).
    /// A sorted vector rather than a B-tree: a board keeps this for every image in its
    /// small heap, and the tree's half-full nodes cost about 35 B more per item (RV32);
    /// both serialize as the same map, so snapshots do not change.
    #[serde(deserialize_with = "entries_from_pairs")]
    entries: LiteMap<Key, Siblings>,
    knowledge: Knowledge,
    /// Covers every tombstone compacted here and what it deleted, per category.
    floor: Knowledge,
}

/// Reads the item table of a snapshot as the list of pairs postcard writes a map as (the
/// same bytes: a length, then key and value after each other). Serde's vector reader
/// reserves at most 1 MiB up front whatever length is claimed; litemap's own reader
/// reserves the length a damaged snapshot claims, and aborts on the allocation. (A board's
/// flash store checks a snapshot's hash before it gets here.)
fn entries_from_pairs<'de, D: serde::Deserializer<'de>>(reader: D) -> Result<LiteMap<Key, Siblings>, D::Error> {
    let pairs: Vec<(Key, Siblings)> = Vec::deserialize(reader)?;
    // Saved in key order: taken as they are, where collecting them built a second table
    // beside the first (6 KiB more at the peak of a board opening 200 images).
    if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
        return Ok(LiteMap::from_sorted_store_unchecked(pairs));
    }
    Ok(pairs.into_iter().collect())
}

/// An item's edits, sorted by dot. A boxed slice, not a vector: 8 bytes less in each of a
/// board's items (RV32; no capacity, no padding after the key), the same bytes when saved.
type Siblings = Box<[Record]>;

/// Changes an item's edits through a vector.
fn edit(sibs: &mut Siblings, change: impl FnOnce(&mut Vec<Record>)) {
    let mut all = core::mem::take(sibs).into_vec();
    change(&mut all);
    *sibs = all.into_boxed_slice();
}

/// Where the next part of a delta sent in parts starts ([`Replica::delta_part`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartCursor {
    /// The first key the next part may hold; `None` once the parts passed every item.
    next: Option<Key>,
    /// The sender's knowledge when this pass over the items began.
    seen_at_start: Knowledge,
    /// Records whose dots this covers went in an earlier pass.
    sent_before: Option<Knowledge>,
}

/// A poi's replicated library: images, patterns, sequences and shared settings.
///
/// Every method that changes it saves a snapshot through its [`Storage`] before returning,
/// so nothing it tells a peer or a user can be lost by a crash afterwards. When saving
/// fails, the replica reloads the last snapshot and returns the error: it is never left
/// half-changed.
pub struct Replica<S: Storage> {
    storage: S,
    state: State,
    /// The knowledge each peer last reported, by replica, and when (a count of reports):
    /// decides when tombstones can go. Kept in RAM only; after a restart compaction waits
    /// for peers to report again. At most [`MAX_REMEMBERED_PEERS`], the one heard from
    /// longest ago forgotten first (a forgotten peer is put right by a repair later).
    peers: LiteMap<ReplicaId, (Knowledge, u64)>,
    /// Reports taken so far, to order `peers` by age.
    reports: u64,
    /// Blobs over this many bytes are left out of what this replica asks peers to push
    /// ([`Replica::want_blobs_up_to`]).
    wanted_blob_bytes: usize,
    /// A `Begun` answer's delta larger than this many bytes of records is left out
    /// ([`Replica::answer_deltas_up_to`]).
    pub(super) answered_delta_bytes: usize,
    /// The largest `Push` part this replica takes, named in its summary
    /// ([`Replica::take_parts_up_to`]).
    part_bytes: u32,
}

/// Where a walk through a library's images stands ([`Replica::next_image`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageCursor {
    /// Entries of the image order looked at.
    placed: usize,
    /// The last image walked past that the order does not place.
    last: Option<ImageId>,
}

impl<S: Storage> Replica<S> {
    /// Opens the replica kept in `storage`, or creates one as `identity` if it is empty.
    pub fn open(mut storage: S, identity: Identity) -> Result<Self, Error> {
        let (state, fresh) = match storage.load_state()? {
            Some(bytes) => (decode_snapshot(&bytes)?, false),
            None => {
                let state = State {
                    replica: identity.replica,
                    device: identity.device,
                    group: identity.group,
                    seq: 0,
                    hlc: Hlc::default(),
                    entries: LiteMap::new(),
                    knowledge: Knowledge::default(),
                    floor: Knowledge::default(),
                };
                save_snapshot(&mut storage, &state)?;
                (state, true)
            }
        };
        let mut replica = Replica {
            storage,
            state,
            peers: LiteMap::new(),
            reports: 0,
            wanted_blob_bytes: usize::MAX,
            answered_delta_bytes: usize::MAX,
            part_bytes: MAX_PUSH_RECORD_BYTES as u32,
        };
        if !fresh {
            replica.collect_garbage()?;
        }
        Ok(replica)
    }

    /// Gives the storage back (the in-memory state is dropped, as in a crash).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Its storage, to write an upload's pixels as they arrive ([`Storage::begin_blob`])
    /// before [`Replica::add_stored_image`] records them.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// This copy's replica id.
    pub fn replica_id(&self) -> ReplicaId {
        self.state.replica
    }

    /// The poi's device id.
    pub fn device_id(&self) -> DeviceId {
        self.state.device
    }

    /// The sync group.
    pub fn group(&self) -> &str {
        &self.state.group
    }

    /// Moves this poi to another sync group; its content goes along.
    pub fn set_group(&mut self, group: &str) -> Result<(), Error> {
        self.state.group = group.into();
        self.peers.clear();
        self.commit()
    }

    /// Carries on under a new replica id, for a store brought back from an older copy (a
    /// backup, or the previous snapshot after the newest was damaged): peers may hold
    /// edits the old id made after that copy, which the copy would otherwise number again.
    /// Under a fresh id those come back from peers like anyone's edits.
    pub fn renew_replica_id(&mut self, replica: ReplicaId) -> Result<(), Error> {
        self.state.replica = replica;
        self.state.seq = 0;
        self.peers.clear();
        self.commit()
    }

    /// Everything this replica has seen, per category.
    pub fn knowledge(&self) -> &Knowledge {
        &self.state.knowledge
    }

    /// The latest hybrid-logical time seen.
    pub fn clock(&self) -> Stamp {
        self.state.hlc.last()
    }

    /// What this replica tells a peer when a session opens.
    pub fn summary(&self) -> Summary {
        Summary {
            protocol: PROTOCOL_VERSION,
            group: self.state.group.clone(),
            device: self.state.device,
            replica: self.state.replica,
            knowledge: self.state.knowledge.clone(),
            part_bytes: self.part_bytes,
        }
    }

    // ----- reading the library -----

    /// Every record held, item by item (siblings of one item together, by dot).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.state.entries.values().flatten()
    }

    /// The edits of one item not superseded here (more than one when concurrent).
    pub fn siblings(&self, key: &Key) -> &[Record] {
        self.state.entries.get(key).map(|sibs| &sibs[..]).unwrap_or(&[])
    }

    /// The version of an item that is shown, if it exists and is not deleted.
    pub fn visible(&self, key: &Key) -> Option<&Record> {
        winner(self.siblings(key))
    }

    /// The stored images (the shown version of each), in the order a person put them
    /// ([`Self::set_image_order`]), images not placed following by id. The position in
    /// this order is the `index` the existing API numbers images by.
    pub fn images(&self) -> impl Iterator<Item = (ImageId, &ImageMeta)> {
        // A library never reordered is listed as it is kept, with no list built: a board
        // looks up the image that plays after every merge, beside 200 images.
        let Some(Value::ImageOrder(order)) = self.visible(&Key::ImageOrder).map(|r| &r.value) else {
            return InOrder::Kept(self.images_by_id());
        };
        let mut all: Vec<(ImageId, &ImageMeta)> = Vec::with_capacity(self.image_count());
        all.extend(self.images_by_id());
        let place: LiteMap<ImageId, usize> = order.iter().enumerate().map(|(n, id)| (*id, n)).collect();
        // The unplaced keep their id order, after the placed. Unstable with the id in the
        // key: the same order as a stable sort, without a stable sort's code (flash).
        all.sort_unstable_by_key(|(id, _)| (place.get(id).copied().unwrap_or(usize::MAX), *id));
        InOrder::Sorted(all.into_iter())
    }

    /// The image at `index` of [`Self::images`]' order, found without building that order:
    /// with an order set, the sorted list of 200 images takes a board 10 KB of heap.
    pub fn image_at(&self, index: usize) -> Option<ImageId> {
        let walk = core::iter::successors(self.next_image(ImageCursor::default()), |(_, at)| self.next_image(*at));
        walk.map(|(id, _)| id).nth(index)
    }

    /// The image after `cursor` in [`Self::images`]' order, and where the walk then stands
    /// (start from `ImageCursor::default()`): the same order, found an image at a time in
    /// about a lookup each, without building it. A board lists 200 images so; the cursor
    /// holds as long as the library does not change.
    pub fn next_image(&self, mut cursor: ImageCursor) -> Option<(ImageId, ImageCursor)> {
        let order: &[ImageId] = match self.visible(&Key::ImageOrder).map(|r| &r.value) {
            Some(Value::ImageOrder(order)) => order,
            _ => &[],
        };
        // The placed first, in their order (an order may name deleted images)...
        while cursor.last.is_none()
            && let Some(&id) = order.get(cursor.placed)
        {
            cursor.placed += 1;
            if self.image(id).is_some() {
                return Some((id, cursor));
            }
        }
        // ...then the others by id, as they are kept: images' keys come first in the table.
        let mut at = match cursor.last {
            None => 0,
            Some(last) => self.state.entries.find_index(&Key::Image(last)).map_or_else(|at| at, |at| at + 1),
        };
        while let Some((Key::Image(id), siblings)) = self.state.entries.get_indexed(at) {
            at += 1;
            if matches!(winner(siblings).map(|r| &r.value), Some(Value::Image(_))) && !order.contains(id) {
                cursor.last = Some(*id);
                return Some((*id, cursor));
            }
        }
        None
    }

    /// How many images are stored (no ordering needed to count them).
    pub fn image_count(&self) -> usize {
        self.images_by_id().count()
    }

    /// The stored images by id, the order they are kept in.
    fn images_by_id(&self) -> impl Iterator<Item = (ImageId, &ImageMeta)> {
        self.state.entries.iter().filter_map(|(key, sibs)| match (key, &winner(sibs)?.value) {
            (Key::Image(id), Value::Image(meta)) => Some((*id, meta)),
            _ => None,
        })
    }

    /// The id the next image created here gets: the dot of the edit that creates it.
    fn next_image_id(&self) -> ImageId {
        ImageId { origin: self.state.replica, seq: self.state.seq + 1 }
    }

    /// Puts the images in this order (every id listed must be stored; ids left out follow
    /// the listed ones). Replicated, last writer wins.
    pub fn set_image_order(&mut self, ids: Vec<ImageId>, now_ms: u64) -> Result<(), Error> {
        check_image_order(&ids)?;
        if let Some(missing) = ids.iter().find(|id| self.image(**id).is_none()) {
            return Err(Error::NotFound(Key::Image(*missing)));
        }
        self.write(Key::ImageOrder, Value::ImageOrder(ids), now_ms).map(drop)
    }

    /// One image's metadata.
    pub fn image(&self, id: ImageId) -> Option<&ImageMeta> {
        match &self.visible(&Key::Image(id))?.value {
            Value::Image(meta) => Some(meta),
            _ => None,
        }
    }

    /// The pattern in a slot.
    pub fn pattern(&self, slot: u8) -> Option<&Pattern> {
        match &self.visible(&Key::Pattern(slot))?.value {
            Value::Pattern(p) => Some(p),
            _ => None,
        }
    }

    /// The sequence in a slot.
    pub fn sequence(&self, slot: u8) -> Option<&Sequence> {
        match &self.visible(&Key::Sequence(slot))?.value {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }

    /// The shared settings, with defaults for fields never set. An image selected by id
    /// shows as its current position in [`Self::images`]; once that image is deleted the
    /// selection reads as [`Mode::Idle`] (dark), never as whichever image took its place.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        for key in [Key::Brightness, Key::Framerate, Key::Selection] {
            match self.visible(&key).map(|r| &r.value) {
                Some(Value::Brightness(b)) => settings.brightness = *b,
                Some(Value::Framerate(f)) => settings.framerate = *f,
                Some(Value::Selection(s)) => settings.selection = *s,
                Some(Value::SelectedImage(id)) => {
                    settings.selection = match self.image_position(*id) {
                        Some(index) => Selection { mode: Mode::Image, index },
                        None => Selection { mode: Mode::Idle, index: 0 },
                    }
                }
                _ => {}
            }
        }
        settings
    }

    /// The image that plays, if an image plays: the one selected by id, or for a selection
    /// stored by position (before selections named images by id) the image at that position.
    pub fn selected_image(&self) -> Option<ImageId> {
        match self.visible(&Key::Selection).map(|r| &r.value) {
            Some(Value::SelectedImage(id)) => self.image(*id).map(|_| *id),
            Some(Value::Selection(Selection { mode: Mode::Image, index })) => {
                self.images().nth(usize::from(*index)).map(|(id, _)| id)
            }
            _ => None,
        }
    }

    /// An image's position in [`Self::images`] (the index the API and the player use).
    pub fn image_position(&self, id: ImageId) -> Option<u16> {
        self.image(id)?;
        let position = self.images().take_while(|(other, _)| *other != id).count();
        u16::try_from(position).ok()
    }

    /// Content items edited concurrently on several poi, each with its conflict copies.
    pub fn conflicts(&self) -> impl Iterator<Item = Conflict<'_>> {
        self.state.entries.iter().filter(|(key, _)| key.keeps_conflicts()).filter_map(|(key, sibs)| {
            let winner = winner(sibs)?;
            let mut copies: Vec<&Record> =
                sibs.iter().filter(|r| !r.value.is_deleted() && r.dot != winner.dot).collect();
            if copies.is_empty() {
                return None;
            }
            // Precedence ends with the dot, which no two copies share: no ties to keep in order.
            copies.sort_unstable_by_key(|r| r.precedence());
            Some(Conflict { key: *key, winner, copies })
        })
    }

    /// An image's pixel bytes, verified against their hash. `None` when not (yet) held or
    /// when the stored copy is damaged (it is then dropped and fetched again from a peer).
    pub fn image_pixels(&mut self, hash: &BlobHash) -> Result<Option<Vec<u8>>, Error> {
        match self.storage.load_blob(hash)? {
            Some(bytes) if hash.verifies(&bytes) => Ok(Some(bytes)),
            // Damaged, or listed but unreadable (a flash store's sectors broken since it
            // opened): forgotten, so it counts as missing and is fetched again.
            found => {
                if found.is_some() || self.holds_blob(hash) {
                    self.storage.remove_blob(hash)?;
                }
                Ok(None)
            }
        }
    }

    /// Whether the storage holds the blob (an image's pixels); one it cannot ask counts as
    /// not held.
    pub fn holds_blob(&self, hash: &BlobHash) -> bool {
        self.storage.has_blob(hash).unwrap_or(false)
    }

    /// Blobs referenced by the library that this replica does not hold yet.
    pub fn missing_blobs(&self) -> Vec<BlobHash> {
        self.missing_blobs_up_to(usize::MAX)
    }

    /// [`Replica::missing_blobs`] of at most `max_bytes` each.
    pub fn missing_blobs_up_to(&self, max_bytes: usize) -> Vec<BlobHash> {
        // Only the few missing hashes are gathered, never a set of every referenced one:
        // on a board that set (32 B a blob, doubled while it grows) was the largest thing a
        // step after taking an image held beside the image.
        // A storage that cannot answer counts the blob as missing: asking a peer for it
        // again costs a message, not the library.
        let missing: LiteMap<BlobHash, ()> = self
            .records()
            .filter_map(|r| match &r.value {
                Value::Image(meta) if meta.byte_len() <= max_bytes && !self.holds_blob(&meta.pixels()) => {
                    Some((meta.pixels(), ()))
                }
                _ => None,
            })
            .collect();
        missing.keys().copied().collect()
    }

    /// Leaves blobs over `max_bytes` out of the lists this replica answers a pushing peer
    /// with (`Begun.want`, `Want`): a poi whose request bodies are limited (a board) fetches
    /// larger ones in sessions of its own, where each answer carries one blob.
    pub fn want_blobs_up_to(&mut self, max_bytes: usize) {
        self.wanted_blob_bytes = max_bytes;
    }

    /// Leaves out of a `Begun` answer a delta of more than `max_bytes` of records: a poi whose
    /// heap cannot hold a large delta beside its library (a board) sends those records in
    /// sessions of its own, in `Push` parts, instead.
    pub fn answer_deltas_up_to(&mut self, max_bytes: usize) {
        self.answered_delta_bytes = max_bytes;
    }

    /// Asks peers, through this replica's summary, to push records in parts of at most
    /// `max_bytes` (a board holds a part's records decoded beside their bytes): between
    /// [`MIN_PART_BYTES`], the least a peer heeds, and [`MAX_PUSH_RECORD_BYTES`], the default.
    pub fn take_parts_up_to(&mut self, max_bytes: usize) {
        self.part_bytes = max_bytes.clamp(MIN_PART_BYTES, MAX_PUSH_RECORD_BYTES) as u32;
    }

    /// The blobs a pushing peer is asked for: missing ones within [`Replica::want_blobs_up_to`].
    pub(super) fn wanted_blobs(&self) -> Vec<BlobHash> {
        self.missing_blobs_up_to(self.wanted_blob_bytes)
    }

    // ----- local edits -----

    /// Stores a new image from its canonical pixel bytes (RGB, row-major, row y = LED y).
    pub fn add_image(
        &mut self,
        name: &str,
        width: u32,
        height: u32,
        pixels: &[u8],
        now_ms: u64,
    ) -> Result<ImageId, Error> {
        let meta = ImageMeta::describe(name, width, height, pixels)?;
        // A held copy may have rotted on flash since it was written: only a verified one counts.
        if self.image_pixels(&meta.pixels())?.is_none() {
            self.storage.save_blob(&meta.pixels(), pixels)?;
        }
        let id = self.next_image_id();
        self.write(Key::Image(id), Value::Image(meta), now_ms)?;
        Ok(id)
    }

    /// Stores a new image whose pixels the storage already holds under `pixels`: an upload
    /// written as it arrived ([`Storage::finish_blob`]). Refused when they are not stored
    /// or are not `width` x `height` x 3 bytes.
    pub fn add_stored_image(
        &mut self,
        name: &str,
        width: u32,
        height: u32,
        pixels: BlobHash,
        now_ms: u64,
    ) -> Result<ImageId, Error> {
        let meta = ImageMeta::stored(name, width, height, pixels)?;
        // The last byte read and the one after it not: the blob is exactly that long.
        let len = meta.byte_len();
        let mut edge = [0; 2];
        let whole = self.storage.read_blob_part(&pixels, len - 1, &mut edge[..1])?
            && !self.storage.read_blob_part(&pixels, len - 1, &mut edge)?;
        if !whole {
            return Err(Error::Storage(StorageError::new("the image's pixels are not stored whole")));
        }
        let id = self.next_image_id();
        self.write(Key::Image(id), Value::Image(meta), now_ms)?;
        Ok(id)
    }

    /// Renames an image.
    pub fn rename_image(&mut self, id: ImageId, name: &str, now_ms: u64) -> Result<(), Error> {
        let meta = self.image(id).ok_or(Error::NotFound(Key::Image(id)))?.renamed(name)?;
        self.write(Key::Image(id), Value::Image(meta), now_ms).map(drop)
    }

    /// Deletes an image (and, once no version refers to them, its pixels).
    pub fn delete_image(&mut self, id: ImageId, now_ms: u64) -> Result<(), Error> {
        self.delete(Key::Image(id), now_ms, Cue::NOW)
    }

    /// Puts a pattern in a slot (0-17), showing from `cue` where the slot plays.
    pub fn set_pattern(&mut self, slot: u8, pattern: Pattern, now_ms: u64, cue: Cue) -> Result<(), Error> {
        check_pattern_slot(slot)?;
        self.write_cued(Key::Pattern(slot), Value::Pattern(pattern), now_ms, cue).map(drop)
    }

    /// Empties a pattern slot, from `cue` where the slot plays.
    pub fn clear_pattern(&mut self, slot: u8, now_ms: u64, cue: Cue) -> Result<(), Error> {
        self.delete(Key::Pattern(slot), now_ms, cue)
    }

    /// Puts a sequence in a slot (0-4), showing from `cue` where the slot plays.
    pub fn set_sequence(&mut self, slot: u8, sequence: Sequence, now_ms: u64, cue: Cue) -> Result<(), Error> {
        check_sequence_slot(slot)?;
        self.write_cued(Key::Sequence(slot), Value::Sequence(sequence), now_ms, cue).map(drop)
    }

    /// Empties a sequence slot, from `cue` where the slot plays.
    pub fn clear_sequence(&mut self, slot: u8, now_ms: u64, cue: Cue) -> Result<(), Error> {
        self.delete(Key::Sequence(slot), now_ms, cue)
    }

    /// Sets the shared brightness, showing from `cue`.
    pub fn set_brightness(&mut self, brightness: u8, now_ms: u64, cue: Cue) -> Result<(), Error> {
        self.write_cued(Key::Brightness, Value::Brightness(brightness), now_ms, cue).map(drop)
    }

    /// Sets the shared frame rate (1-255 columns per second), showing from `cue`.
    pub fn set_framerate(&mut self, fps: u16, now_ms: u64, cue: Cue) -> Result<(), Error> {
        check_framerate(fps)?;
        self.write_cued(Key::Framerate, Value::Framerate(fps), now_ms, cue).map(drop)
    }

    /// Sets what plays from `cue` on (a sequence starts there). An image is named by its
    /// position here but stored as its id ([`Self::select_image`]), so images added or
    /// deleted later do not switch what plays; a position with no image is stored as given.
    pub fn set_selection(&mut self, selection: Selection, now_ms: u64, cue: Cue) -> Result<(), Error> {
        let image = match selection.mode {
            Mode::Image => self.images().nth(usize::from(selection.index)).map(|(id, _)| id),
            _ => None,
        };
        match image {
            Some(id) => self.select_image(id, now_ms, cue),
            None => self.write_cued(Key::Selection, Value::Selection(selection), now_ms, cue).map(drop),
        }
    }

    /// Plays the image `id` from `cue` on, wherever it moves in the library; refused when
    /// there is no such image.
    pub fn select_image(&mut self, id: ImageId, now_ms: u64, cue: Cue) -> Result<(), Error> {
        if self.image(id).is_none() {
            return Err(Error::NotFound(Key::Image(id)));
        }
        self.write_cued(Key::Selection, Value::SelectedImage(id), now_ms, cue).map(drop)
    }

    /// Settles a conflict by keeping the version `keep` (a dot from [`Self::conflicts`]),
    /// showing from `cue` where it plays; the other copies are superseded everywhere once
    /// this edit syncs.
    pub fn resolve(&mut self, key: Key, keep: Dot, now_ms: u64, cue: Cue) -> Result<(), Error> {
        let value = self.siblings(&key).iter().find(|r| r.dot == keep).map(|r| r.value.clone());
        let value = value.ok_or(Error::NotFound(key))?;
        self.write_cued(key, value, now_ms, cue).map(drop)
    }

    /// Settles a conflict keeping every version: the shown one stays at `key` (from `cue`),
    /// and each other live copy, oldest first, becomes a new item. An image copy becomes a
    /// new image with the same pixels, named with " (2)", " (3)", ... appended (the name cut
    /// to fit [`MAX_NAME_LEN`]); a pattern or sequence copy goes to the first empty slot of
    /// its kind. Returns the new items' keys. All or nothing: when a step fails (no empty
    /// slot: [`Error::NoFreeSlot`]) the replica is left as it was.
    pub fn keep_both(&mut self, key: Key, now_ms: u64, cue: Cue) -> Result<Vec<Key>, Error> {
        let conflict = self.conflicts().find(|c| c.key == key).ok_or(Error::NotFound(key))?;
        let shown = conflict.winner.value.clone();
        let copies: Vec<Value> = conflict.copies.iter().map(|r| r.value.clone()).collect();
        let staged = self.stage_keep_both(key, shown, copies, now_ms, cue);
        match staged {
            Ok(added) => self.commit().map(|()| added),
            Err(e) => {
                self.rollback()?;
                Err(e)
            }
        }
    }

    /// The edits of [`Self::keep_both`], in memory only: the caller commits or rolls back.
    fn stage_keep_both(
        &mut self,
        key: Key,
        shown: Value,
        copies: Vec<Value>,
        now_ms: u64,
        cue: Cue,
    ) -> Result<Vec<Key>, Error> {
        self.stage(key, shown, now_ms, cue)?;
        let mut added = Vec::with_capacity(copies.len());
        for (n, value) in (2..).zip(copies) {
            let (target, value, cue) = match (key, value) {
                (Key::Image(_), Value::Image(meta)) => {
                    let name = with_suffix(meta.name(), &alloc::format!(" ({n})"));
                    let id = self.next_image_id();
                    (Key::Image(id), Value::Image(meta.renamed(&name)?), Cue::NOW)
                }
                (Key::Pattern(_), value) => {
                    let slot = (0..PATTERN_SLOTS).find(|s| self.pattern(*s).is_none());
                    (Key::Pattern(slot.ok_or(Error::NoFreeSlot(key))?), value, cue)
                }
                (Key::Sequence(_), value) => {
                    let slot = (0..SEQUENCE_SLOTS).find(|s| self.sequence(*s).is_none());
                    (Key::Sequence(slot.ok_or(Error::NoFreeSlot(key))?), value, cue)
                }
                // Settings keep no conflict copies, and an image key only holds image values.
                _ => return Err(Error::NotFound(key)),
            };
            self.stage(target, value, now_ms, cue)?;
            added.push(target);
        }
        Ok(added)
    }

    fn delete(&mut self, key: Key, now_ms: u64, cue: Cue) -> Result<(), Error> {
        if self.visible(&key).is_none() {
            return Err(Error::NotFound(key));
        }
        self.write_cued(key, Value::Deleted, now_ms, cue).map(drop)
    }

    /// Records a local edit that supersedes every version of `key` held here and shows at once.
    fn write(&mut self, key: Key, value: Value, now_ms: u64) -> Result<Dot, Error> {
        self.write_cued(key, value, now_ms, Cue::NOW)
    }

    /// Records a local edit that supersedes every version of `key` held here and shows from `cue`.
    fn write_cued(&mut self, key: Key, value: Value, now_ms: u64, cue: Cue) -> Result<Dot, Error> {
        let dot = self.stage(key, value, now_ms, cue)?;
        self.commit()?;
        Ok(dot)
    }

    /// [`Self::write_cued`] without saving: only for a caller that commits or rolls back.
    fn stage(&mut self, key: Key, value: Value, now_ms: u64, cue: Cue) -> Result<Dot, Error> {
        if let Value::Image(meta) = &value
            && !self.storage.has_blob(&meta.pixels())?
        {
            return Err(Error::PixelsMissing(key));
        }
        let dot = Dot { replica: self.state.replica, seq: self.state.seq + 1 };
        let stamp = self.state.hlc.tick(now_ms);
        // The floor too: a tombstone compacted here is no held sibling any more, yet what it
        // deleted must stay deleted at a replica that never held it and takes this edit
        // from one that dropped the tombstone for it (docs/PROTOCOL.md section 8). Not for
        // an image: its key is its creating dot, and once deleted it is never written again,
        // so a board's 200 images keep contexts of one or two entries.
        let mut context = match key {
            Key::Image(_) => VersionVector::default(),
            _ => self.state.floor.get(key.category()).clone(),
        };
        for sibling in self.siblings(&key) {
            context.join(&sibling.context);
        }
        context.observe(dot);
        self.state.seq = dot.seq;
        room_for(&mut self.state.entries, &key);
        self.state.entries.insert(key, Box::new([Record { key, dot, stamp, context, value, cue }]));
        self.state.knowledge.get_mut(key.category()).observe(dot);
        Ok(dot)
    }

    // ----- sync -----

    /// Remembers what a peer reported having seen, then drops tombstones every known
    /// replica has seen. Returns whether anything was compacted.
    pub fn note_peer(&mut self, peer: &Summary) -> Result<bool, Error> {
        if peer.replica == self.state.replica || peer.group != self.state.group {
            return Ok(false);
        }
        self.reports += 1;
        self.peers.insert(peer.replica, (peer.knowledge.clone(), self.reports));
        // A stranger sending Begins under ever new replica ids must not grow this without end.
        if self.peers.len() > MAX_REMEMBERED_PEERS
            && let Some(oldest) = self.peers.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| *id)
        {
            self.peers.remove(&oldest);
        }
        self.compact()
    }

    /// How many peers' reported knowledge is remembered.
    pub fn remembered_peers(&self) -> usize {
        self.peers.len()
    }

    /// Drops tombstones seen by this replica and by every peer it knows of: once all have
    /// seen a deletion, its record has no more work to do (a live version beside it wins
    /// anyway, and knowledge vectors keep what it deleted from coming back). A peer it
    /// does not know of that still holds a deleted version is put right by the [`Repair`]
    /// in the next delta it receives from here.
    fn compact(&mut self) -> Result<bool, Error> {
        let mut compacted = false;
        for category in Category::ALL {
            let mut stable = self.state.knowledge.get(category).clone();
            for (peer, _) in self.peers.values() {
                stable.meet(peer.get(category));
            }
            let floor = self.state.floor.get_mut(category);
            for sibs in self.state.entries.iter_mut().filter(|(k, _)| k.category() == category).map(|(_, s)| s) {
                edit(sibs, |sibs| {
                    sibs.retain(|r| {
                        // Its whole context, not only its dot: a record taken from a part of a
                        // delta ([`Replica::delta_part`]) is held before its dot counts as seen,
                        // so a tombstone can supersede a dot some poi has not counted yet; gone
                        // before they all count it, the record could come back to one that
                        // never held the tombstone.
                        let done = r.value.is_deleted() && stable.dominates(&r.context);
                        if done {
                            floor.join(&r.context);
                            compacted = true;
                        }
                        !done
                    })
                });
            }
        }
        if compacted {
            self.state.entries.retain(|_, sibs| !sibs.is_empty());
            self.commit()?;
        }
        Ok(compacted)
    }

    /// Whether `knowledge` counts edits of this replica that it has not made: a peer that
    /// saw a restored backup or a copied data directory of this poi, or a forgery.
    pub(crate) fn claims_our_future(&self, knowledge: &Knowledge) -> bool {
        Category::ALL.iter().any(|c| knowledge.get(*c).get(self.state.replica) > self.state.seq)
    }

    /// Whether a peer that reported `theirs` lacks anything of ours in `categories`.
    pub fn peer_lacks(&self, theirs: &Knowledge, categories: Categories) -> bool {
        categories.iter().any(|c| !theirs.get(c).dominates(self.state.knowledge.get(c)))
    }

    /// The records a peer that has seen `theirs` lacks, in the given categories.
    pub fn delta_for(&self, theirs: &Knowledge, categories: Categories) -> Delta {
        self.delta_part(theirs, categories, self.state.replica, None, usize::MAX).0
    }

    /// One part of [`Replica::delta_for`] for the replica `to`, so that no message holds
    /// much more than `max_bytes` of records however many the peer lacks: the records of
    /// whole items from `after` on (from the first item for the first part, `None`), at
    /// least one item's, and where the next part starts, or `None` for the last part.
    ///
    /// A part before the last carries an empty knowledge and floor and no repairs: its
    /// receiver keeps the records and adopts nothing, so a session that stops between
    /// parts leaves no dot counted as seen that did not arrive (the next session sends them
    /// again, and they are skipped). The last part is a whole delta's tail: knowledge,
    /// floor and repairs; every settings record the peer lacks (only the last part carries
    /// them: a responder in independent mode drops settings from a part, and adopts
    /// settings knowledge only with the part that carries them); and every record on an
    /// item the parts had passed whose dot this replica counts now and did not count when
    /// the pass began (what it made or merged meanwhile: a record new here always has a dot
    /// its knowledge did not cover). When those do not fit, a new pass over the items sends
    /// them in parts first.
    /// Unless it is also the first, the last part names `to`: no other replica took the
    /// earlier parts, so no other may take it.
    pub fn delta_part(
        &self,
        theirs: &Knowledge,
        categories: Categories,
        to: ReplicaId,
        after: Option<&PartCursor>,
        max_bytes: usize,
    ) -> (Delta, Option<PartCursor>) {
        let entries = &self.state.entries;
        let lacking = |r: &Record| categories.contains(r.key.category()) && !theirs.get(r.key.category()).covers(r.dot);
        let size = |records: &[&Record]| records.iter().map(|r| crate::wire::encoded_len(*r)).sum::<usize>();
        let mut pass = after.cloned().unwrap_or_else(|| PartCursor {
            next: entries.iter().next().map(|(key, _)| *key),
            seen_at_start: self.state.knowledge.clone(),
            sent_before: None,
        });
        let part = |records: Vec<&Record>| Delta {
            group: self.state.group.clone(),
            replica: self.state.replica,
            categories,
            base: theirs.clone(),
            records: records.into_iter().cloned().collect(),
            knowledge: Knowledge::default(),
            floor: Knowledge::default(),
            repairs: Vec::new(),
            to: None,
        };
        let (records, settings) = loop {
            let start = pass.next.map_or(entries.len(), |key| entries.find_index(&key).unwrap_or_else(|i| i));
            let sent = pass.sent_before.as_ref();
            let wanted = |r: &&Record| {
                r.key.category() != Category::Settings
                    && lacking(r)
                    && !sent.is_some_and(|k| k.get(r.key.category()).covers(r.dot))
            };
            let mut records = Vec::new();
            let mut bytes = 0;
            for (key, sibs) in entries.iter().skip(start) {
                let lacked: Vec<&Record> = sibs.iter().filter(wanted).collect();
                let more = size(&lacked);
                if bytes > 0 && bytes + more > max_bytes {
                    return (part(records), Some(PartCursor { next: Some(*key), ..pass }));
                }
                bytes += more;
                records.extend(lacked);
            }
            let passed = entries.iter().take(start).flat_map(|(_, sibs)| sibs.iter());
            // Counted now and not then: new here. (A record held but not counted, taken
            // from a part of someone's delta, was held then too, or is not claimed below.)
            let new: Vec<&Record> = passed
                .filter(wanted)
                .filter(|r| {
                    let category = r.key.category();
                    !pass.seen_at_start.get(category).covers(r.dot) && self.state.knowledge.get(category).covers(r.dot)
                })
                .collect();
            let settings: Vec<&Record> =
                self.records().filter(|r| r.key.category() == Category::Settings && lacking(r)).collect();
            if bytes + size(&new) + size(&settings) <= max_bytes || (records.is_empty() && new.is_empty()) {
                records.extend(new);
                break (records, settings);
            }
            if !records.is_empty() {
                return (part(records), Some(PartCursor { next: None, ..pass }));
            }
            // Only records made or merged during the pass are left, more than fit: they go
            // in a pass of their own, which leaves out what the earlier passes sent.
            pass = PartCursor {
                next: entries.iter().next().map(|(key, _)| *key),
                seen_at_start: self.state.knowledge.clone(),
                sent_before: Some(pass.seen_at_start),
            };
        };
        let mut records: Vec<Record> = records.into_iter().cloned().collect();
        records.extend(settings.into_iter().cloned());
        let repairs = categories
            .iter()
            .filter(|c| !theirs.get(*c).dominates(self.state.floor.get(*c)))
            .map(|category| {
                let floor = self.state.floor.get(category);
                let live = self
                    .records()
                    .filter(|r| r.key.category() == category && floor.covers(r.dot))
                    .map(|r| r.dot)
                    .collect();
                Repair { category, live }
            })
            .collect();
        let delta = Delta {
            records,
            knowledge: self.state.knowledge.clone(),
            floor: self.state.floor.clone(),
            repairs,
            to: after.map(|_| to),
            ..part(Vec::new())
        };
        (delta, None)
    }

    /// Merges a peer's delta. The whole delta is checked first: a bad one changes nothing.
    pub fn apply_delta(&mut self, delta: Delta, now_ms: u64) -> Result<MergeReport, Error> {
        if delta.group != self.state.group {
            return Err(Error::GroupMismatch { ours: self.state.group.clone(), theirs: delta.group });
        }
        if delta.to.is_some_and(|to| to != self.state.replica) {
            return Err(Error::Protocol("the last part of a delta sent to another replica"));
        }
        for record in &delta.records {
            record.validate().map_err(Error::BadRecord)?;
            if !delta.categories.contains(record.key.category()) {
                return Err(Error::Protocol("delta holds a record outside its categories"));
            }
        }
        if delta.repairs.iter().any(|r| !delta.categories.contains(r.category)) {
            return Err(Error::Protocol("delta repairs a category it does not cover"));
        }
        if delta.categories.iter().any(|c| !self.state.knowledge.get(c).dominates(delta.base.get(c))) {
            return Err(Error::Protocol("delta was computed for a replica that has seen more than this one"));
        }
        if self.claims_our_future(&delta.knowledge)
            || self.claims_our_future(&delta.floor)
            || delta.records.iter().any(|r| r.dot.replica == self.state.replica && r.dot.seq > self.state.seq)
        {
            return Err(Error::ForeignHistory);
        }

        let before_sync_state = (self.state.knowledge.clone(), self.state.floor.clone());
        let repaired: Vec<Category> = delta.repairs.iter().map(|r| r.category).collect();
        // Sorted vectors, not a B-tree set and map: each B-tree type is kilobytes of a
        // board's flash, and these are built once per merge and only searched.
        let mut touched: Vec<Key> = delta
            .records
            .iter()
            .map(|r| r.key)
            .chain(self.state.entries.keys().filter(|k| repaired.contains(&k.category())).copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let before: Vec<Option<Record>> = touched.iter().map(|k| self.visible(k).cloned()).collect();
        let mut report = MergeReport::default();
        let mut affected = touched.clone();

        for record in delta.records {
            self.state.hlc.observe(record.stamp, now_ms);
            if self.merge(record) {
                report.records_merged += 1;
            }
        }
        for repair in &delta.repairs {
            let floor = delta.floor.get(repair.category);
            // A sorted vector searched by halves: a set type here would be one more set's code
            // in a board's flash, and a linear search is quadratic in a peer-sized list.
            let mut live = repair.live.clone();
            live.sort_unstable();
            for (key, sibs) in self.state.entries.iter_mut() {
                if key.category() != repair.category {
                    continue;
                }
                let len = sibs.len();
                edit(sibs, |sibs| sibs.retain(|r| !floor.covers(r.dot) || live.binary_search(&r.dot).is_ok()));
                if sibs.len() != len {
                    report.records_merged += (len - sibs.len()) as u32;
                    affected.push(*key);
                }
            }
            self.state.entries.retain(|_, sibs| !sibs.is_empty());
        }
        // Knowledge and floor travel together: a dot we now count as seen is one we hold,
        // one superseded by what we hold, or one under the floor (deleted, tombstone gone).
        for category in delta.categories.iter() {
            self.state.knowledge.get_mut(category).join(delta.knowledge.get(category));
            self.state.floor.get_mut(category).join(delta.floor.get(category));
        }

        affected.sort_unstable();
        affected.dedup();
        for key in &affected {
            let was = touched.binary_search(key).ok().and_then(|i| before[i].clone());
            let now = self.visible(key);
            match (key.category(), &was, now) {
                (Category::Settings, _, Some(now)) if was.as_ref().map(|w| &w.value) != Some(&now.value) => {
                    report.settings_updated += 1
                }
                (Category::Images, None, Some(_)) if *key != Key::ImageOrder => report.images_added += 1,
                (Category::Patterns, None, Some(_)) => report.patterns_added += 1,
                (_, Some(_), None) => report.items_deleted += 1,
                _ => {}
            }
        }
        if report.records_merged > 0
            || (&self.state.knowledge, &self.state.floor) != (&before_sync_state.0, &before_sync_state.1)
        {
            self.commit()?;
        }
        Ok(report)
    }

    /// Merges one record; returns whether it changed anything.
    fn merge(&mut self, record: Record) -> bool {
        let category = record.key.category();
        if self.state.knowledge.get(category).covers(record.dot) {
            // Held already, or superseded (perhaps by a tombstone since compacted).
            return false;
        }
        room_for(&mut self.state.entries, &record.key);
        let sibs = self.state.entries.entry(record.key).or_default();
        if sibs.iter().any(|s| s.dot == record.dot || s.supersedes(&record)) {
            return false;
        }
        edit(sibs, |sibs| {
            sibs.retain(|s| !record.supersedes(s));
            let at = sibs.partition_point(|s| s.dot < record.dot);
            sibs.insert(at, record);
        });
        true
    }

    /// Serves blobs by hash, in request order, up to about `max_bytes` (always at least one
    /// when any is held). Returns the blobs and the requested hashes not held here.
    pub fn blobs(&mut self, hashes: &[BlobHash], max_bytes: usize) -> Result<(Vec<Blob>, Vec<BlobHash>), Error> {
        let mut blobs = Vec::new();
        let mut missing = Vec::new();
        let mut total = 0;
        for hash in hashes {
            match self.image_pixels(hash)? {
                Some(bytes) => {
                    if !blobs.is_empty() && total + bytes.len() > max_bytes {
                        break;
                    }
                    total += bytes.len();
                    blobs.push(Blob { hash: *hash, bytes });
                }
                None => missing.push(*hash),
            }
        }
        Ok((blobs, missing))
    }

    /// Keeps received blobs that the library needs and that verify against their hash and
    /// size; silently ignores unneeded ones. Returns how many were kept.
    pub fn store_blobs(&mut self, blobs: Vec<Blob>) -> Result<u32, Error> {
        // A scan of the records per blob rather than a map built once: a batch holds at most
        // 64 blobs (one on a board), and a map's code costs a board flash it lacks.
        let mut kept = 0;
        for blob in blobs {
            let fits = self.records().any(|r| {
                matches!(&r.value, Value::Image(meta) if meta.pixels() == blob.hash && meta.byte_len() == blob.bytes.len())
            });
            if !fits || !blob.hash.verifies(&blob.bytes) || self.image_pixels(&blob.hash)?.is_some() {
                continue;
            }
            self.storage.save_blob(&blob.hash, &blob.bytes)?;
            kept += 1;
        }
        Ok(kept)
    }

    // ----- persistence -----

    /// Saves the state; on failure, returns to the last saved state. Once the state is
    /// saved the change stands: removing unused blobs is best effort (retried next time).
    fn commit(&mut self) -> Result<(), Error> {
        if let Err(e) = save_snapshot(&mut self.storage, &self.state) {
            self.rollback()?;
            return Err(e.into());
        }
        let _ = self.collect_garbage();
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), Error> {
        let bytes = self.storage.load_state()?.ok_or(Error::Protocol("snapshot vanished from storage"))?;
        self.state = decode_snapshot(&bytes)?;
        Ok(())
    }

    /// Removes stored blobs no version of any image refers to any more.
    fn collect_garbage(&mut self) -> Result<(), Error> {
        // The store's list marked with a flag per blob, not a second set of every referenced
        // blob beside it: for 200 blobs the flags are 200 bytes, the set was 6.4 KiB more.
        let mut held = self.storage.blob_hashes()?;
        held.sort_unstable();
        let mut used = alloc::vec![false; held.len()];
        for r in self.records() {
            if let Value::Image(meta) = &r.value
                && let Ok(i) = held.binary_search(&meta.pixels())
            {
                used[i] = true;
            }
        }
        for (hash, _) in held.iter().zip(&used).filter(|(_, used)| !**used) {
            self.storage.remove_blob(hash)?;
        }
        Ok(())
    }
}

/// Makes room for `key` in `entries` when it is new there and the list is full, a sixteenth
/// more at a time. A growing vector doubles: with 200 images, the 201st item took 16 KiB of
/// a board's heap (and kept half of it unused) where this takes 1 KiB.
fn room_for(entries: &mut LiteMap<Key, Siblings>, key: &Key) {
    if entries.contains_key(key) {
        return;
    }
    let mut all = core::mem::take(entries).into_tuple_vec();
    if all.len() == all.capacity() {
        all.reserve_exact(all.len() / 16 + 1);
    }
    *entries = LiteMap::from_sorted_store_unchecked(all);
}

/// The images as [`Replica::images`] lists them: as kept, or sorted into a person's order.
enum InOrder<K, S> {
    Kept(K),
    Sorted(S),
}

impl<T, K: Iterator<Item = T>, S: Iterator<Item = T>> Iterator for InOrder<K, S> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            InOrder::Kept(kept) => kept.next(),
            InOrder::Sorted(sorted) => sorted.next(),
        }
    }
}

/// `name` with `suffix` appended, cut at a character boundary so the whole fits in
/// [`MAX_NAME_LEN`] bytes.
fn with_suffix(name: &str, suffix: &str) -> String {
    let mut end = MAX_NAME_LEN.saturating_sub(suffix.len()).min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    alloc::format!("{}{suffix}", &name[..end])
}

/// The version of an item that is shown: see [`Record::precedence`]. `None` when the
/// item does not exist or every version is a deletion.
fn winner(siblings: &[Record]) -> Option<&Record> {
    siblings.iter().filter(|r| !r.value.is_deleted()).max_by_key(|r| r.precedence())
}

/// Saves `state` as its encoding comes ([`Storage::save_state_from`]): never encoded whole
/// unless the storage collects it.
fn save_snapshot<S: Storage>(storage: &mut S, state: &State) -> Result<(), crate::sync::StorageError> {
    storage.save_state_from(&mut |sink| {
        let mut out = Sink { sink, staged: [0; SINK_STAGE], held: 0 };
        out.put(&[SNAPSHOT_FORMAT]);
        // Cannot fail: the sink takes everything.
        let _ = postcard::serialize_with_flavor(state, &mut out);
        out.flush();
    })
}

/// Bytes a [`Sink`] gathers before handing them on: postcard writes an id or hash a byte
/// at a time.
const SINK_STAGE: usize = 64;

/// A postcard output that hands the bytes to a sink in pieces of up to [`SINK_STAGE`].
struct Sink<'a> {
    sink: &'a mut dyn FnMut(&[u8]),
    staged: [u8; SINK_STAGE],
    held: usize,
}

impl Sink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.held + bytes.len() > SINK_STAGE {
            self.flush();
        }
        if bytes.len() >= SINK_STAGE {
            (self.sink)(bytes);
        } else {
            self.staged[self.held..self.held + bytes.len()].copy_from_slice(bytes);
            self.held += bytes.len();
        }
    }

    fn flush(&mut self) {
        if self.held > 0 {
            (self.sink)(&self.staged[..self.held]);
            self.held = 0;
        }
    }
}

impl postcard::ser_flavors::Flavor for &mut Sink<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.put(&[byte]);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.put(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn decode_snapshot(bytes: &[u8]) -> Result<State, Error> {
    let damaged = |_| Error::Protocol("stored snapshot is damaged");
    match bytes.split_first() {
        Some((&SNAPSHOT_FORMAT, rest)) => postcard::from_bytes(rest).map_err(damaged),
        Some((&1, rest)) => postcard::from_bytes::<v1::State>(rest).map(State::from).map_err(damaged),
        _ => Err(Error::Protocol("stored snapshot has an unknown format")),
    }
}

/// Snapshot format 1, written before records carried a cue: read, and saved as format 2
/// with every record cued [`Cue::NOW`] at the next change.
mod v1 {
    use alloc::string::String;
    use alloc::vec::Vec;
    use serde::Deserialize;

    use super::super::record::{Key, Value};
    use super::super::version::{Dot, Knowledge, VersionVector};
    use crate::clock::{Hlc, Stamp};
    use crate::device::{DeviceId, ReplicaId};
    use crate::show::Cue;

    #[derive(Deserialize)]
    pub(super) struct Record {
        key: Key,
        dot: Dot,
        stamp: Stamp,
        context: VersionVector,
        value: Value,
    }

    #[derive(Deserialize)]
    pub(super) struct State {
        replica: ReplicaId,
        device: DeviceId,
        group: String,
        seq: u64,
        hlc: Hlc,
        /// The map as its pairs (the same bytes, see `entries_from_pairs`).
        entries: Vec<(Key, Vec<Record>)>,
        knowledge: Knowledge,
        floor: Knowledge,
    }

    impl From<State> for super::State {
        fn from(old: State) -> super::State {
            let entries = old
                .entries
                .into_iter()
                .map(|(key, records)| {
                    let records = records
                        .into_iter()
                        .map(|r| super::Record {
                            key: r.key,
                            dot: r.dot,
                            stamp: r.stamp,
                            context: r.context,
                            value: r.value,
                            cue: Cue::NOW,
                        })
                        .collect();
                    (key, records)
                })
                .collect();
            super::State {
                replica: old.replica,
                device: old.device,
                group: old.group,
                seq: old.seq,
                hlc: old.hlc,
                entries,
                knowledge: old.knowledge,
                floor: old.floor,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::MemoryStorage;
    use alloc::collections::BTreeMap;
    use alloc::vec;

    fn replica(n: u64) -> Replica<MemoryStorage> {
        let identity =
            Identity { replica: ReplicaId(n), device: DeviceId([2, 0, 0, 0, 0, n as u8]), group: "g".into() };
        Replica::open(MemoryStorage::default(), identity).unwrap()
    }

    /// Merges everything `from` has that `into` lacks (one direction of a session).
    fn pull(into: &mut Replica<MemoryStorage>, from: &mut Replica<MemoryStorage>, now_ms: u64) {
        let delta = from.delta_for(into.knowledge(), Categories::ALL);
        into.apply_delta(delta, now_ms).unwrap();
        let (blobs, _) = from.blobs(&into.missing_blobs(), usize::MAX).unwrap();
        into.store_blobs(blobs).unwrap();
    }

    fn add(poi: &mut Replica<MemoryStorage>, name: &str, seed: u8, now_ms: u64) -> ImageId {
        poi.add_image(name, 1, 1, &[seed, seed, seed], now_ms).unwrap()
    }

    #[test]
    fn the_image_at_an_index_is_the_one_the_ordered_list_has_there() {
        let mut poi = replica(1);
        let ids: Vec<ImageId> = (0..12).map(|n| add(&mut poi, "x", n, 1_000 + u64::from(n))).collect();
        let same = |poi: &Replica<MemoryStorage>| {
            for i in 0..15 {
                assert_eq!(poi.image_at(i), poi.images().nth(i).map(|(id, _)| id), "index {i}");
            }
            let mut walked = Vec::new();
            let mut cursor = ImageCursor::default();
            while let Some((id, next)) = poi.next_image(cursor) {
                walked.push(id);
                cursor = next;
            }
            assert_eq!(walked, poi.images().map(|(id, _)| id).collect::<Vec<_>>(), "walked one at a time");
        };
        same(&poi);
        // Some placed, in another order; the rest after them by id.
        poi.set_image_order(vec![ids[7], ids[2], ids[11], ids[0]], 2_000).unwrap();
        same(&poi);
        // Placed images deleted since, and one not placed.
        poi.delete_image(ids[2], 3_000).unwrap();
        poi.delete_image(ids[5], 3_000).unwrap();
        same(&poi);
        assert_eq!(poi.image_at(0), Some(ids[7]));
        assert_eq!(poi.image_at(1), Some(ids[11]));
        // Every image placed.
        let mut all: Vec<ImageId> = poi.images().map(|(id, _)| id).collect();
        all.reverse();
        poi.set_image_order(all, 4_000).unwrap();
        same(&poi);
    }

    const IMAGE_0: Selection = Selection { mode: Mode::Image, index: 0 };
    const IDLE: Selection = Selection { mode: Mode::Idle, index: 0 };

    #[test]
    fn a_snapshot_read_back_holds_its_items_in_order_even_when_saved_out_of_order() {
        let mut poi = replica(1);
        for (n, seed) in [(3, 30), (1, 10), (2, 20)] {
            add(&mut poi, &alloc::format!("image {n}"), seed, 1_000 + u64::from(seed));
        }
        poi.set_brightness(90, 2_000, Cue::NOW).unwrap();
        let state = &poi.state;
        // As the edit just saved it.
        let saved = poi.storage().state.as_deref().unwrap();
        assert_eq!(decode_snapshot(saved).unwrap(), *state);
        // The same fields with the items backwards, as a damaged or foreign snapshot could
        // hold them: read back sorted, as a map.
        let backwards: Vec<(&Key, &Siblings)> = state.entries.iter().rev().collect();
        let fields = (state.replica, state.device, &state.group, state.seq, &state.hlc);
        let mut bytes = alloc::vec![SNAPSHOT_FORMAT];
        bytes.extend(postcard::to_allocvec(&(fields, backwards, &state.knowledge, &state.floor)).unwrap());
        let read = decode_snapshot(&bytes).unwrap();
        assert_eq!(read, *state);
        assert!(read.entries.iter().zip(read.entries.iter().skip(1)).all(|(a, b)| a.0 < b.0));
    }

    #[test]
    fn deleting_an_earlier_image_keeps_the_selected_one_playing_at_its_new_position() {
        let mut poi = replica(1);
        let first = add(&mut poi, "first", 1, 1_000);
        let second = add(&mut poi, "second", 2, 1_001);
        poi.set_selection(Selection { mode: Mode::Image, index: 1 }, 1_002, Cue::NOW).unwrap();
        assert_eq!(poi.selected_image(), Some(second));
        poi.delete_image(first, 1_003).unwrap();
        assert_eq!(poi.settings().selection, IMAGE_0);
        assert_eq!(poi.selected_image(), Some(second));
    }

    #[test]
    fn an_image_with_a_lower_id_merged_from_a_peer_does_not_switch_what_plays() {
        // Replica 1's ids sort before replica 9's, so its image lands in front.
        let (mut low, mut high) = (replica(1), replica(9));
        add(&mut low, "from low", 1, 1_000);
        let playing = add(&mut high, "from high", 2, 1_001);
        high.select_image(playing, 1_002, Cue::NOW).unwrap();
        assert_eq!(high.settings().selection, IMAGE_0);
        pull(&mut high, &mut low, 1_003);
        assert_eq!(high.images().count(), 2);
        assert_eq!(high.settings().selection, Selection { mode: Mode::Image, index: 1 });
        assert_eq!(high.selected_image(), Some(playing));
        // The peer that merges the selection resolves it to the same image too.
        pull(&mut low, &mut high, 1_004);
        assert_eq!((low.settings().selection, low.selected_image()), (high.settings().selection, Some(playing)));
    }

    #[test]
    fn deleting_the_selected_image_goes_dark_rather_than_playing_its_neighbour() {
        let mut poi = replica(1);
        let first = add(&mut poi, "first", 1, 1_000);
        add(&mut poi, "second", 2, 1_001);
        poi.select_image(first, 1_002, Cue::NOW).unwrap();
        poi.delete_image(first, 1_003).unwrap();
        assert_eq!(poi.settings().selection, IDLE);
        assert_eq!(poi.selected_image(), None);
    }

    #[test]
    fn selecting_a_missing_image_is_refused_and_changes_nothing() {
        let mut poi = replica(1);
        let gone = add(&mut poi, "gone", 1, 1_000);
        poi.delete_image(gone, 1_001).unwrap();
        let before = poi.knowledge().clone();
        assert_eq!(poi.select_image(gone, 1_002, Cue::NOW), Err(Error::NotFound(Key::Image(gone))));
        assert_eq!(poi.knowledge(), &before);
        // A position past the end is stored as given, as it always was.
        let past_end = Selection { mode: Mode::Image, index: 4 };
        poi.set_selection(past_end, 1_003, Cue::NOW).unwrap();
        assert_eq!((poi.settings().selection, poi.selected_image()), (past_end, None));
    }

    #[test]
    fn a_selection_by_id_is_a_valid_record_only_under_the_selection_key() {
        let mut poi = replica(1);
        let id = add(&mut poi, "one", 1, 1_000);
        poi.select_image(id, 1_001, Cue::NOW).unwrap();
        let mut record = poi.visible(&Key::Selection).unwrap().clone();
        assert_eq!(record.value, Value::SelectedImage(id));
        assert_eq!(record.validate(), Ok(()));
        record.key = Key::Brightness;
        assert_eq!(record.validate(), Err(super::super::record::InvalidRecord::KindMismatch));
    }

    fn pattern(speed: u8) -> Pattern {
        use crate::model::{PatternKind, Rgb};
        Pattern::new(PatternKind::Rainbow, Rgb::new(1, 2, 3), Rgb::new(4, 5, 6), speed).unwrap()
    }

    /// Two replicas that both hold `key` edit it apart (the second edit is the later one,
    /// so it is shown) and then merge both ways.
    fn conflicted(
        key: Key,
        setup: impl Fn(&mut Replica<MemoryStorage>),
        edit: impl Fn(&mut Replica<MemoryStorage>, u8, u64),
    ) -> (Replica<MemoryStorage>, Replica<MemoryStorage>) {
        let (mut a, mut b) = (replica(1), replica(2));
        setup(&mut a);
        pull(&mut b, &mut a, 2_000);
        edit(&mut a, 10, 3_000);
        edit(&mut b, 20, 3_001);
        pull(&mut a, &mut b, 4_000);
        pull(&mut b, &mut a, 4_001);
        assert_eq!(a.conflicts().filter(|c| c.key == key).count(), 1);
        (a, b)
    }

    #[test]
    fn keeping_both_versions_of_a_pattern_moves_the_other_to_the_first_empty_slot() {
        let (mut a, mut b) = conflicted(
            Key::Pattern(3),
            |poi| {
                poi.set_pattern(0, pattern(1), 1_000, Cue::NOW).unwrap();
                poi.set_pattern(3, pattern(2), 1_001, Cue::NOW).unwrap();
            },
            |poi, speed, now| poi.set_pattern(3, pattern(speed), now, Cue::NOW).unwrap(),
        );
        assert_eq!(a.keep_both(Key::Pattern(3), 5_000, Cue::NOW), Ok(vec![Key::Pattern(1)]));
        assert_eq!(a.pattern(3), Some(&pattern(20)));
        assert_eq!(a.pattern(1), Some(&pattern(10)));
        assert_eq!(a.pattern(0), Some(&pattern(1)));
        assert_eq!(a.conflicts().count(), 0);
        // The settlement syncs: the peer ends with the same slots and no conflict.
        pull(&mut b, &mut a, 5_001);
        assert_eq!((b.pattern(1), b.pattern(3), b.conflicts().count()), (Some(&pattern(10)), Some(&pattern(20)), 0));
    }

    #[test]
    fn keeping_both_with_every_slot_filled_is_refused_and_changes_nothing() {
        let (mut a, _) = conflicted(
            Key::Sequence(0),
            |poi| {
                for slot in 0..SEQUENCE_SLOTS {
                    poi.set_sequence(slot, sequence(1), 1_000, Cue::NOW).unwrap();
                }
            },
            |poi, ms, now| poi.set_sequence(0, sequence(ms.into()), now, Cue::NOW).unwrap(),
        );
        let before: Vec<Record> = a.records().cloned().collect();
        let saved = a.storage().state.clone();
        assert_eq!(a.keep_both(Key::Sequence(0), 5_000, Cue::NOW), Err(Error::NoFreeSlot(Key::Sequence(0))));
        assert_eq!(a.records().cloned().collect::<Vec<_>>(), before);
        assert_eq!(a.storage().state, saved);
        assert_eq!(a.conflicts().count(), 1);
    }

    fn sequence(duration_ms: u16) -> Sequence {
        use crate::model::{SequenceItem, SequenceTarget};
        Sequence::new(vec![SequenceItem { target: SequenceTarget::Pattern(0), duration_ms }], true).unwrap()
    }

    #[test]
    fn keeping_both_versions_of_an_image_adds_a_copy_with_the_same_pixels_and_a_suffixed_name() {
        // 64 bytes, with the two-byte "é" across the cut that makes room for " (2)".
        let long = "n".repeat(MAX_NAME_LEN - 5) + "é" + "nnn";
        let id = ImageId { origin: ReplicaId(1), seq: 1 };
        let (mut a, _) = conflicted(
            Key::Image(id),
            |poi| {
                add(poi, "pic", 7, 1_000);
            },
            |poi, n, now| {
                let name = if n == 10 { long.as_str() } else { "later" };
                poi.rename_image(id, name, now).unwrap();
            },
        );
        let added = a.keep_both(Key::Image(id), 5_000, Cue::NOW).unwrap();
        let [Key::Image(copy)] = added[..] else { panic!("one new image expected, got {added:?}") };
        assert_eq!(a.image(id).unwrap().name(), "later");
        let copy = a.image(copy).unwrap();
        assert_eq!(copy.name(), "n".repeat(MAX_NAME_LEN - 5) + " (2)");
        assert_eq!(copy.pixels(), a.image(id).unwrap().pixels());
        assert_eq!(a.images().count(), 2);
        assert_eq!(a.conflicts().count(), 0);
    }

    #[test]
    fn a_format_1_snapshot_opens_with_its_records_cued_now() {
        let mut poi = Replica::open(
            MemoryStorage::default(),
            Identity { replica: ReplicaId(7), device: DeviceId([2, 0, 0, 0, 0, 7]), group: "g".into() },
        )
        .unwrap();
        poi.set_selection(Selection { mode: Mode::Pattern, index: 3 }, 1_000, Cue(55)).unwrap();
        poi.set_brightness(90, 2_000, Cue(66)).unwrap();
        // Format 1 is format 2 without the cue after each record's value: postcard writes
        // a struct as its fields in order, so tuples of the old fields give its bytes.
        let s = &poi.state;
        let entries: BTreeMap<Key, Vec<_>> = s
            .entries
            .iter()
            .map(|(k, rs)| (*k, rs.iter().map(|r| (r.key, r.dot, r.stamp, &r.context, &r.value)).collect()))
            .collect();
        let old = (s.replica, s.device, &s.group, s.seq, s.hlc, entries, &s.knowledge, &s.floor);
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let storage = MemoryStorage { state: Some(bytes), blobs: BTreeMap::new() };
        let reopened =
            Replica::open(storage, Identity { replica: ReplicaId(9), device: s.device, group: "x".into() }).unwrap();
        assert_eq!(reopened.replica_id(), ReplicaId(7));
        assert_eq!(reopened.settings(), poi.settings());
        assert_eq!(reopened.knowledge(), poi.knowledge());
        assert!(reopened.records().all(|r| r.cue == Cue::NOW));
        assert_eq!(reopened.records().count(), 2);
    }
}
