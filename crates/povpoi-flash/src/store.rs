//! The store: an index map and data sectors in one flash region.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Debug;
use core::ops::Range;

use embassy_futures::block_on;
use embedded_storage::nor_flash::{MultiwriteNorFlash, NorFlash};
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Storage, StorageError};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};
use sha2::{Digest, Sha256};

use crate::blocking::Blocking;
use crate::index::{Record, Slot};

/// Longest setting value, in bytes.
pub const MAX_SETTING_LEN: usize = 1024;

/// Data sectors a blob save leaves free beyond the snapshot's size, so that the snapshot
/// save that follows it (or a delete's) still fits when the snapshot grows by a sector.
pub const RESERVE_MARGIN_SECTORS: u32 = 2;

/// Largest flash word sequential-storage supports; a tail is padded to a word in a buffer
/// this big.
const MAX_WORD: usize = 32;

type Index<F> = MapStorage<Slot, Blocking<F>, Cache<Uncached, Uncached, Uncached, Slot>>;

/// How a region is split between the index and the data sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Erase sectors at the start of the region that hold the index (at least 3).
    pub index_sectors: u32,
    /// Every this many snapshot saves, the blob that has gone longest without moving is
    /// copied to fresh sectors (0: never), so that sectors under images that never change
    /// take their share of erases.
    pub relocate_every: u32,
}

impl Layout {
    /// The default split of a region of `sectors` erase sectors: 4 + 1/64 of it for the
    /// index (16 sectors of a 3 MB region, 32 of a 7 MB one), a relocation every 16 saves.
    pub fn for_sectors(sectors: u32) -> Layout {
        Layout { index_sectors: 4 + sectors / 64, relocate_every: 16 }
    }
}

/// How full the store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Sectors for large values (the snapshot and blobs).
    pub data_sectors: u32,
    /// Of these, the ones holding nothing.
    pub free_sectors: u32,
    /// Of the free ones, those a blob save may not take (kept for the next snapshot save).
    pub reserved_sectors: u32,
    /// Bytes the live index items take.
    pub index_bytes: u32,
    /// Most bytes blobs and settings may make the index take.
    pub index_budget: u32,
}

/// A povpoi replica's snapshot and blobs, and a poi's settings, in a region of NOR flash.
///
/// See the crate documentation for the layout and why a power cut never loses an
/// acknowledged write.
pub struct FlashStore<F: MultiwriteNorFlash> {
    inner: RefCell<Inner<F>>,
}

struct Inner<F: MultiwriteNorFlash> {
    index: Index<F>,
    /// The map's working buffer: one item, at most a page; also the sector copy buffer.
    buf: Vec<u8>,
    /// Flash address of data sector 0.
    data_start: u32,
    data_sectors: u32,
    /// One bit per data sector: held by a committed record.
    used: Vec<u32>,
    free: u32,
    /// Where the next allocation starts looking: sectors are taken in turn around the area.
    cursor: u32,
    next_seq: u64,
    state: Option<Record>,
    index_bytes: u32,
    index_budget: u32,
    relocate_every: u32,
    saves: u32,
    /// A flash operation failed part way: what RAM knows is rebuilt from flash first.
    stale: bool,
    snapshot_damaged: bool,
}

fn word<F: NorFlash>() -> usize {
    F::READ_SIZE.max(F::WRITE_SIZE)
}

fn flash_error<E: Debug>(what: &str, e: E) -> StorageError {
    StorageError::new(format!("{what}: flash error {e:?}"))
}

fn index_error<E: Debug>(what: &str, e: sequential_storage::Error<E>) -> StorageError {
    match e {
        sequential_storage::Error::FullStorage => StorageError::disk_full(format!("{what}: the flash index is full")),
        e => StorageError::new(format!("{what}: flash index error {e:?}")),
    }
}

fn disk_full(what: &str) -> StorageError {
    StorageError::disk_full(format!("{what}: not enough free flash"))
}

impl<F: MultiwriteNorFlash> FlashStore<F> {
    /// Opens the store kept in `region` of `flash` with the default [`Layout`]; an erased
    /// region is an empty store.
    pub fn open(flash: F, region: Range<u32>) -> Result<Self, StorageError> {
        let sectors = region.end.saturating_sub(region.start) / F::ERASE_SIZE as u32;
        Self::open_with(flash, region, Layout::for_sectors(sectors))
    }

    /// Erases `region` and opens it as an empty store (for a new poi, or a region that held
    /// something else: opening that fails with an index error).
    pub fn format(mut flash: F, region: Range<u32>, layout: Layout) -> Result<Self, StorageError> {
        flash.erase(region.start, region.end).map_err(|e| flash_error("cannot erase the store", e))?;
        Self::open_with(flash, region, layout)
    }

    /// Opens the store kept in `region` of `flash`, split as `layout` says; the same layout
    /// must be used every time.
    pub fn open_with(flash: F, region: Range<u32>, layout: Layout) -> Result<Self, StorageError> {
        let sector = F::ERASE_SIZE as u32;
        let word = word::<F>();
        if word > MAX_WORD
            || !F::ERASE_SIZE.is_multiple_of(word)
            || !region.start.is_multiple_of(sector)
            || !region.end.is_multiple_of(sector)
        {
            return Err(StorageError::new("flash store: region or flash geometry not supported"));
        }
        let sectors = region.end.saturating_sub(region.start) / sector;
        let data_sectors = sectors.saturating_sub(layout.index_sectors);
        if layout.index_sectors < 3 || data_sectors == 0 || data_sectors > u32::from(u16::MAX) + 1 {
            return Err(StorageError::new("flash store: region too small or too large for the layout"));
        }
        let index_end = region.start + layout.index_sectors * sector;
        let config = MapConfig::<Blocking<F>>::try_new(region.start..index_end)
            .map_err(|e| StorageError::new(format!("flash store: {e:?}")))?;
        let mut inner = Inner {
            index: MapStorage::new(Blocking(flash), config, Cache::new_uncached()),
            buf: vec![0; F::ERASE_SIZE],
            data_start: index_end,
            data_sectors,
            used: vec![0; data_sectors.div_ceil(32) as usize],
            free: data_sectors,
            cursor: 0,
            next_seq: 0,
            state: None,
            index_bytes: 0,
            // Half the index: the map copies live items forward as it erases pages, and
            // each page loses its tail to an item that did not fit.
            index_budget: (layout.index_sectors - 2) * sector / 2,
            relocate_every: layout.relocate_every,
            saves: 0,
            stale: false,
            snapshot_damaged: false,
        };
        inner.rebuild()?;
        Ok(FlashStore { inner: RefCell::new(inner) })
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.inner.into_inner().index.destroy().0.0
    }

    /// How full the store is.
    pub fn usage(&self) -> Usage {
        let inner = self.inner.borrow();
        Usage {
            data_sectors: inner.data_sectors,
            free_sectors: inner.free,
            reserved_sectors: inner.reserve().min(inner.free),
            index_bytes: inner.index_bytes,
            index_budget: inner.index_budget,
        }
    }

    /// Whether the last [`Storage::load_state`] found the snapshot damaged (it then
    /// answered "no snapshot", so the replica starts empty and peers fill it again).
    pub fn snapshot_damaged(&self) -> bool {
        self.inner.borrow().snapshot_damaged
    }

    /// The value of setting `key`, if set.
    pub fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let slot = Slot::setting(key).ok_or_else(|| StorageError::new("setting key too long"))?;
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        inner.fetch(&slot)
    }

    /// Sets setting `key` to `value`, atomically (at most [`MAX_SETTING_LEN`] bytes).
    pub fn set_setting(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let slot = Slot::setting(key).ok_or_else(|| StorageError::new("setting key too long"))?;
        if value.len() > MAX_SETTING_LEN {
            return Err(StorageError::new("setting value too long"));
        }
        let inner = self.inner.get_mut();
        inner.fresh()?;
        let old = inner.fetch(&slot)?.map_or(0, |v| inner.item_size(&slot, v.len()));
        let new = inner.item_size(&slot, value.len());
        if inner.index_bytes - old + new > inner.index_budget {
            return Err(StorageError::disk_full("cannot save a setting: the flash index is full"));
        }
        inner.store(&slot, value, "cannot save a setting")?;
        inner.index_bytes = inner.index_bytes - old + new;
        Ok(())
    }

    /// Removes setting `key`; removing a missing one is not an error.
    pub fn remove_setting(&mut self, key: &str) -> Result<(), StorageError> {
        let slot = Slot::setting(key).ok_or_else(|| StorageError::new("setting key too long"))?;
        let inner = self.inner.get_mut();
        inner.fresh()?;
        let Some(old) = inner.fetch(&slot)? else { return Ok(()) };
        let old = inner.item_size(&slot, old.len());
        inner.remove(&slot, "cannot remove a setting")?;
        inner.index_bytes -= old;
        Ok(())
    }
}

impl<F: MultiwriteNorFlash> Inner<F> {
    fn flash(&mut self) -> &mut F {
        &mut self.index.flash().0
    }

    fn sector_size(&self) -> u32 {
        F::ERASE_SIZE as u32
    }

    fn sectors_for(&self, len: usize) -> u32 {
        (len as u32).div_ceil(self.sector_size())
    }

    fn item_size(&self, slot: &Slot, value_len: usize) -> u32 {
        let overhead = Index::<F>::item_overhead_size();
        overhead + (slot.encoded_len() + value_len).next_multiple_of(word::<F>()) as u32
    }

    fn record_item_size(&self, slot: &Slot, sectors: usize) -> u32 {
        self.item_size(slot, Record::encoded_len(sectors))
    }

    /// Free sectors a blob save must leave for the next snapshot save.
    fn reserve(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.sectors.len() as u32) + RESERVE_MARGIN_SECTORS
    }

    fn is_used(&self, sector: u32) -> bool {
        self.used[(sector / 32) as usize] & (1 << (sector % 32)) != 0
    }

    fn set_used(&mut self, sectors: &[u16], used: bool) {
        for &s in sectors {
            let (word, bit) = (usize::from(s) / 32, 1 << (s % 32));
            if used {
                self.used[word] |= bit;
                self.free -= 1;
            } else {
                self.used[word] &= !bit;
                self.free += 1;
            }
        }
    }

    fn fresh(&mut self) -> Result<(), StorageError> {
        if self.stale {
            self.rebuild()?;
        }
        Ok(())
    }

    /// Marks RAM as not to be trusted when `result` is a failed flash operation.
    fn watch<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if matches!(&result, Err(e) if !e.disk_full) {
            self.stale = true;
        }
        result
    }

    fn fetch(&mut self, slot: &Slot) -> Result<Option<Vec<u8>>, StorageError> {
        let found = block_on(self.index.fetch_item::<&[u8]>(&mut self.buf, slot))
            .map(|v| v.map(<[u8]>::to_vec))
            .map_err(|e| index_error("cannot read the flash index", e));
        self.watch(found)
    }

    fn fetch_record(&mut self, slot: &Slot) -> Result<Option<Record>, StorageError> {
        let sector = self.sector_size();
        Ok(self.fetch(slot)?.and_then(|bytes| Record::decode(&bytes, sector)))
    }

    fn store(&mut self, slot: &Slot, value: &[u8], what: &str) -> Result<(), StorageError> {
        let stored = block_on(self.index.store_item(&mut self.buf, slot, &value)).map_err(|e| index_error(what, e));
        self.watch(stored)
    }

    fn remove(&mut self, slot: &Slot, what: &str) -> Result<(), StorageError> {
        let removed = block_on(self.index.remove_item(&mut self.buf, slot)).map_err(|e| index_error(what, e));
        self.watch(removed)
    }

    /// Calls `f` with every item of the index, oldest first (a later item of a key replaces
    /// an earlier one).
    fn for_each_item(&mut self, mut f: impl FnMut(Slot, &[u8])) -> Result<(), StorageError> {
        const WHAT: &str = "cannot read the flash index";
        if let Err(sequential_storage::Error::Corrupted { .. }) = block_on(self.index.fetch_all_items(&mut self.buf)) {
            // sequential-storage 8.0.2's fetch_all_items returns a page left half erased by a
            // power cut as an error without the repair its other calls make; a fetch makes it.
            let repaired = block_on(self.index.fetch_item::<&[u8]>(&mut self.buf, &Slot::state()))
                .map(drop)
                .map_err(|e| index_error(WHAT, e));
            self.watch(repaired)?;
        }
        let Inner { index, buf, .. } = self;
        let walked = (|| {
            let mut items = block_on(index.fetch_all_items(buf))?;
            while let Some((slot, value)) = block_on(items.next::<&[u8]>(buf))? {
                f(slot, value);
            }
            Ok(())
        })()
        .map_err(|e| index_error(WHAT, e));
        self.watch(walked)
    }

    /// Reads the whole index back: which sectors are held, the snapshot's record, the next
    /// sequence number, where allocation resumes, how big the index is.
    fn rebuild(&mut self) -> Result<(), StorageError> {
        let sector = self.sector_size();
        let mut records: BTreeMap<Slot, Record> = BTreeMap::new();
        let mut settings: BTreeMap<Slot, usize> = BTreeMap::new();
        let mut broken: BTreeSet<Slot> = BTreeSet::new();
        let mut max_seq = None;
        self.for_each_item(|slot, value| {
            if slot.is_setting() {
                settings.insert(slot, value.len());
                return;
            }
            if !slot.is_state() && slot.as_blob().is_none() {
                return;
            }
            match Record::decode(value, sector) {
                Some(record) => {
                    max_seq = max_seq.max(Some(record.seq));
                    broken.remove(&slot);
                    records.insert(slot, record);
                }
                None => {
                    records.remove(&slot);
                    broken.insert(slot);
                }
            }
        })?;
        self.used.fill(0);
        self.free = self.data_sectors;
        self.state = None;
        self.index_bytes = settings.iter().map(|(slot, len)| self.item_size(slot, *len)).sum();
        // Newest first, so that if two records ever claimed one sector the older one gives
        // way; neither can happen without the index losing a committed item.
        let mut newest_first: Vec<(Slot, Record)> = records.into_iter().collect();
        newest_first.sort_by_key(|(_, r)| core::cmp::Reverse(r.seq));
        let mut cursor_set = false;
        for (slot, record) in newest_first {
            let sound = record.sectors.iter().all(|&s| u32::from(s) < self.data_sectors && !self.is_used(s.into()))
                && record.sectors.iter().collect::<BTreeSet<_>>().len() == record.sectors.len();
            if !sound {
                broken.insert(slot);
                continue;
            }
            if !cursor_set {
                self.cursor = record.sectors.last().map_or(0, |&s| (u32::from(s) + 1) % self.data_sectors);
                cursor_set = true;
            }
            self.set_used(&record.sectors, true);
            self.index_bytes += self.record_item_size(&slot, record.sectors.len());
            if slot.is_state() {
                self.state = Some(record);
            }
        }
        self.next_seq = max_seq.map_or(0, |s| s + 1);
        self.stale = false;
        for slot in broken {
            // A blob dropped here is fetched again from a peer; the index never refers to it again.
            self.remove(&slot, "cannot drop a broken index record")?;
        }
        Ok(())
    }

    /// `n` free sectors, taken in turn from the cursor on (the caller checked there are).
    fn allocate(&self, n: u32) -> Vec<u16> {
        let mut out = Vec::with_capacity(n as usize);
        let mut s = self.cursor;
        while out.len() < n as usize {
            if !self.is_used(s) {
                out.push(s as u16);
            }
            s = (s + 1) % self.data_sectors;
        }
        out
    }

    fn sector_address(&self, sector: u16) -> u32 {
        self.data_start + u32::from(sector) * self.sector_size()
    }

    /// Erases each of `sectors` and writes its part of `bytes`, the tail padded with 0xFF.
    fn write_sectors(&mut self, sectors: &[u16], bytes: &[u8]) -> Result<(), StorageError> {
        let size = self.sector_size();
        let word = word::<F>();
        for (&s, chunk) in sectors.iter().zip(bytes.chunks(size as usize)) {
            let at = self.sector_address(s);
            let flash = self.flash();
            flash.erase(at, at + size).map_err(|e| flash_error("cannot erase a sector", e))?;
            let whole = chunk.len() / word * word;
            if whole > 0 {
                flash.write(at, &chunk[..whole]).map_err(|e| flash_error("cannot write a sector", e))?;
            }
            if whole < chunk.len() {
                let mut tail = [0xFF; MAX_WORD];
                tail[..chunk.len() - whole].copy_from_slice(&chunk[whole..]);
                flash.write(at + whole as u32, &tail[..word]).map_err(|e| flash_error("cannot write a sector", e))?;
            }
        }
        Ok(())
    }

    fn read_value(&mut self, record: &Record) -> Result<Vec<u8>, StorageError> {
        let size = self.sector_size() as usize;
        let mut out = vec![0; (record.len as usize).next_multiple_of(word::<F>())];
        for (&s, part) in record.sectors.iter().zip(out.chunks_mut(size)) {
            let at = self.sector_address(s);
            let read = self.flash().read(at, part).map_err(|e| flash_error("cannot read a sector", e));
            self.watch(read)?;
        }
        out.truncate(record.len as usize);
        Ok(out)
    }

    /// Writes `bytes` to fresh sectors and commits them under `slot`; the sectors of the
    /// value it replaces are free only once the commit is on flash.
    fn put(
        &mut self,
        slot: &Slot,
        bytes: &[u8],
        sha256: [u8; 32],
        old: Option<&Record>,
        what: &str,
    ) -> Result<Record, StorageError> {
        let len = u32::try_from(bytes.len()).map_err(|_| disk_full(what))?;
        let sectors = self.allocate(self.sectors_for(bytes.len()));
        let written = self.write_sectors(&sectors, bytes);
        self.watch(written)?;
        let record = Record { seq: self.next_seq, len, sha256, sectors };
        self.store(slot, &record.encode(), what)?;
        self.next_seq += 1;
        self.commit(slot, &record, old);
        Ok(record)
    }

    /// RAM's view after `record` replaced `old` on flash.
    fn commit(&mut self, slot: &Slot, record: &Record, old: Option<&Record>) {
        if let Some(old) = old {
            self.set_used(&old.sectors, false);
            self.index_bytes -= self.record_item_size(slot, old.sectors.len());
        }
        self.set_used(&record.sectors, true);
        self.index_bytes += self.record_item_size(slot, record.sectors.len());
        if let Some(&last) = record.sectors.last() {
            self.cursor = (u32::from(last) + 1) % self.data_sectors;
        }
    }

    /// Copies the blob that has gone longest without moving to fresh sectors, if that
    /// leaves the reserve free: images that never change would otherwise pin their sectors
    /// while snapshot saves wear out the few left free.
    fn relocate_oldest(&mut self) -> Result<(), StorageError> {
        let sector = self.sector_size();
        let mut newest: BTreeMap<BlobHash, u64> = BTreeMap::new();
        self.for_each_item(|slot, value| {
            if let (Some(hash), Some(record)) = (slot.as_blob(), Record::decode(value, sector)) {
                newest.insert(hash, record.seq);
            }
        })?;
        let Some((hash, _)) = newest.into_iter().min_by_key(|(_, seq)| *seq) else { return Ok(()) };
        let slot = Slot::blob(&hash);
        let Some(old) = self.fetch_record(&slot)? else { return Ok(()) };
        let n = old.sectors.len() as u32;
        if self.free < n + self.reserve() {
            return Ok(());
        }
        let sectors = self.allocate(n);
        for (&from, &to) in old.sectors.iter().zip(&sectors) {
            let (src, dst) = (self.sector_address(from), self.sector_address(to));
            let Inner { index, buf, .. } = self;
            let flash = &mut index.flash().0;
            let copied = flash
                .read(src, buf)
                .and_then(|()| flash.erase(dst, dst + sector))
                .and_then(|()| flash.write(dst, buf))
                .map_err(|e| flash_error("cannot move a blob", e));
            self.watch(copied)?;
        }
        let record = Record { seq: self.next_seq, len: old.len, sha256: old.sha256, sectors };
        self.store(&slot, &record.encode(), "cannot move a blob")?;
        self.next_seq += 1;
        self.commit(&slot, &record, Some(&old));
        Ok(())
    }
}

impl<F: MultiwriteNorFlash> Storage for FlashStore<F> {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let Some(record) = inner.state.clone() else { return Ok(None) };
        let bytes = inner.read_value(&record)?;
        let sound = <[u8; 32]>::from(Sha256::digest(&bytes)) == record.sha256;
        inner.snapshot_damaged = !sound;
        Ok(sound.then_some(bytes))
    }

    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save the library snapshot";
        let inner = self.inner.get_mut();
        inner.fresh()?;
        let n = inner.sectors_for(snapshot.len());
        let old = inner.state.take();
        let old_n = old.as_ref().map_or(0, |r| r.sectors.len() as u32);
        // A growing snapshot may not take the room the next save of its size needs: that
        // save may be the delete that frees space.
        let fits = n <= inner.free && (n <= old_n || inner.free - n + old_n >= n);
        if !fits {
            inner.state = old;
            return Err(disk_full(WHAT));
        }
        let sha256 = Sha256::digest(snapshot).into();
        match inner.put(&Slot::state(), snapshot, sha256, old.as_ref(), WHAT) {
            Ok(record) => inner.state = Some(record),
            Err(e) => {
                inner.state = old;
                return Err(e);
            }
        }
        inner.saves = inner.saves.wrapping_add(1);
        if inner.relocate_every > 0 && inner.saves.is_multiple_of(inner.relocate_every) {
            // The snapshot is saved whatever happens here; a failed move is retried later.
            let _ = inner.relocate_oldest();
        }
        Ok(())
    }

    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        match inner.fetch_record(&Slot::blob(hash))? {
            Some(record) => inner.read_value(&record).map(Some),
            None => Ok(None),
        }
    }

    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save an image's pixels";
        let inner = self.inner.get_mut();
        inner.fresh()?;
        let slot = Slot::blob(hash);
        let old = inner.fetch_record(&slot)?;
        let n = inner.sectors_for(bytes.len());
        if inner.free < n + inner.reserve() {
            return Err(disk_full(WHAT));
        }
        let old_size = old.as_ref().map_or(0, |r| inner.record_item_size(&slot, r.sectors.len()));
        if inner.index_bytes - old_size + inner.record_item_size(&slot, n as usize) > inner.index_budget {
            return Err(StorageError::disk_full(format!("{WHAT}: the flash index is full")));
        }
        inner.put(&slot, bytes, hash.0, old.as_ref(), WHAT).map(drop)
    }

    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        let inner = self.inner.get_mut();
        inner.fresh()?;
        let slot = Slot::blob(hash);
        let Some(old) = inner.fetch_record(&slot)? else { return Ok(()) };
        inner.remove(&slot, "cannot remove an image's pixels")?;
        inner.set_used(&old.sectors, false);
        inner.index_bytes -= inner.record_item_size(&slot, old.sectors.len());
        Ok(())
    }

    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let mut hashes = BTreeSet::new();
        inner.for_each_item(|slot, _| hashes.extend(slot.as_blob()))?;
        Ok(hashes.into_iter().collect())
    }
}
