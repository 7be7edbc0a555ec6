//! The store: values split in chunks over self-describing sectors.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Debug;
use core::ops::Range;

use embedded_storage::nor_flash::MultiwriteNorFlash;
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Encoder, Storage, StorageError};
use sha2::{Digest, Sha256};

use crate::index::BlobIndex;
use crate::sector::{HEADER_LEN, Header, Kind, NO_NEXT, chunks};

/// Longest setting key, in bytes.
pub const MAX_SETTING_KEY_LEN: usize = 64;
/// Longest setting value, in bytes.
pub const MAX_SETTING_LEN: usize = 1024;

/// Sectors a blob save leaves free beyond the snapshot's size: room for the snapshot to
/// grow (40 KB, a merge of many records) and, in a store filled to the last image, for
/// the oldest 400x32 image (10 sectors) to move to fresh sectors.
pub const RESERVE_MARGIN_SECTORS: u32 = 10;

/// Largest flash word supported; a payload's tail is padded to a word in a buffer this big.
const MAX_WORD: usize = 32;

/// Choices of a store that are not written in the flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Every this many snapshot saves, the blob that has gone longest without moving is
    /// copied to fresh sectors (0: never), so that sectors under images that never change
    /// take their share of erases.
    pub relocate_every: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { relocate_every: 16 }
    }
}

/// How full the store is, in erase sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Sectors of the region.
    pub sectors: u32,
    /// Of these, the ones holding nothing.
    pub free_sectors: u32,
    /// Of the free ones, those a blob save may not take (kept for the next snapshot save).
    pub reserved_sectors: u32,
}

/// A povpoi replica's snapshot and blobs, and a poi's settings, in a region of NOR flash.
///
/// See the crate documentation for the layout and why a power cut never loses an
/// acknowledged write.
pub struct FlashStore<F: MultiwriteNorFlash> {
    inner: RefCell<Inner<F>>,
}

/// Where the bytes of a save come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Bytes(&'a [u8]),
    /// The payloads of these sectors, chunk for chunk: a blob moving.
    Sectors(&'a [u16]),
}

/// Most payload bytes a [`ChunkWriter`] gathers before writing them: one page of an SPI
/// NOR flash (its program unit), and a whole number of words of any supported flash.
const PENDING: usize = 256;

/// A [`ChunkWriter`]'s gathered bytes, word-aligned: a flash driver copies an unaligned
/// buffer through a bounce buffer of its own (esp-storage: 4 KiB of stack).
#[repr(align(4))]
struct Pending([u8; PENDING]);

/// Writes a value's payload to its sectors as it arrives: a snapshot
/// ([`Inner::put_streamed`]), or a blob uploaded in pieces ([`Inner::upload`]). It holds no
/// borrow of the store, so an upload's writer waits between pieces while the store serves
/// others.
struct ChunkWriter {
    sectors: Vec<u16>,
    /// The first chunk's header; the others differ in their index and next sector.
    head: Header,
    /// Whether each chunk's header is written as soon as the chunk is: an upload's headers
    /// wait for the end, as they name the hash of the whole.
    headers_as_it_goes: bool,
    /// The chunk being written, whether its sector is erased, and how many of its payload
    /// bytes came.
    chunk: u16,
    erased: bool,
    filled: usize,
    /// Payload bytes not written yet, from the last whole word written on, and how many.
    pending: Pending,
    held: usize,
    /// Bytes taken so far, and their hash: a snapshot is whole only if it matches the one
    /// its headers name; an upload is stored under it.
    total: usize,
    hash: Sha256,
    /// The first failure, which ends the save, and whether it was the flash's (what RAM
    /// knows is then rebuilt from the flash before the next operation).
    failed: Option<StorageError>,
    flash_failed: bool,
    /// What is being saved, for error messages.
    what: &'static str,
}

impl ChunkWriter {
    fn new(sectors: Vec<u16>, head: Header, headers_as_it_goes: bool, what: &'static str) -> ChunkWriter {
        ChunkWriter {
            sectors,
            head,
            headers_as_it_goes,
            chunk: 0,
            erased: false,
            filled: 0,
            pending: Pending([0xFF; PENDING]),
            held: 0,
            total: 0,
            hash: Sha256::new(),
            failed: None,
            flash_failed: false,
            what,
        }
    }

    /// Takes the next bytes of the value.
    fn push<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>, mut piece: &[u8]) {
        let payload = inner.payload();
        while !piece.is_empty() && self.failed.is_none() {
            if usize::from(self.chunk) >= self.sectors.len() {
                self.fail(format!("{}: the value grew while it was written", self.what));
                return;
            }
            self.erase(inner);
            // Gathered up to the next page boundary of the flash, so no write crosses one.
            let page_room = PENDING - (HEADER_LEN + self.filled - self.held) % PENDING;
            let take = (payload - self.filled).min(piece.len()).min(page_room - self.held);
            self.pending.0[self.held..self.held + take].copy_from_slice(&piece[..take]);
            self.hash.update(&piece[..take]);
            (self.held, self.filled, self.total) = (self.held + take, self.filled + take, self.total + take);
            piece = &piece[take..];
            if self.filled == payload {
                self.end_chunk(inner);
            } else if self.held == page_room {
                self.flush(inner);
            }
        }
    }

    /// Erases the sector of the chunk being written, once.
    fn erase<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>) {
        if !self.erased && self.failed.is_none() {
            let at = inner.address(self.sectors[usize::from(self.chunk)]);
            let erased = inner.flash.erase(at, at + F::ERASE_SIZE as u32);
            self.check(erased);
            self.erased = true;
        }
    }

    /// Writes the bytes held, the last word padded with 0xFF as an erased flash reads.
    fn flush<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>) {
        if self.held == 0 || self.failed.is_some() {
            return;
        }
        let word = word::<F>();
        let padded = self.held.next_multiple_of(word);
        self.pending.0[self.held..padded].fill(0xFF);
        let sector = self.sectors[usize::from(self.chunk)];
        let at = inner.address(sector) + (HEADER_LEN + self.filled - self.held) as u32;
        let written = inner.flash.write(at, &self.pending.0[..padded]);
        self.check(written);
        self.held = 0;
    }

    /// Ends the chunk being written: its payload, then its header unless it is the first
    /// (whose header ends the whole save) or headers wait for the end.
    fn end_chunk<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>) {
        self.erase(inner);
        self.flush(inner);
        if self.chunk > 0 && self.headers_as_it_goes {
            self.write_header(inner, self.chunk);
        }
        (self.chunk, self.erased, self.filled) = (self.chunk + 1, false, 0);
    }

    /// Ends the value: its last chunk, unless its last byte ended it (an empty value is
    /// one empty chunk), then the failure if the bytes were not the `len` its headers name.
    fn end<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>) {
        if self.filled > 0 || self.total == 0 {
            self.end_chunk(inner);
        }
        if self.total != self.head.len as usize || usize::from(self.chunk) != self.sectors.len() {
            self.fail(format!("{}: the value changed while it was written", self.what));
        }
    }

    /// Writes chunk `index`'s header.
    fn write_header<F: MultiwriteNorFlash>(&mut self, inner: &mut Inner<F>, index: u16) {
        if self.failed.is_none() {
            let at = inner.address(self.sectors[usize::from(index)]);
            let written = inner.flash.write(at, &chunk_header(&self.head, &self.sectors, index).encode());
            self.check(written);
        }
    }

    /// Ends the save with a flash error, if `result` is one.
    fn check<E: Debug>(&mut self, result: Result<(), E>) {
        if let Err(e) = result {
            self.flash_failed |= self.failed.is_none();
            self.fail(format!("{}: flash error {e:?}", self.what));
        }
    }

    /// Ends the save (the first failure is the one reported).
    fn fail(&mut self, message: String) {
        if self.failed.is_none() {
            self.failed = Some(StorageError::new(message));
        }
    }
}

/// A whole value on flash: its first chunk's header and its sectors in order.
#[derive(Clone, Debug)]
struct Value {
    head: Header,
    sectors: Vec<u16>,
}

struct Inner<F: MultiwriteNorFlash> {
    flash: F,
    /// Flash address of sector 0 of the region.
    start: u32,
    sectors: u32,
    /// One bit per sector: held by a whole, current value.
    used: Vec<u32>,
    free: u32,
    /// Where the next allocation starts looking: sectors are taken in turn around the region.
    cursor: u32,
    next_seq: u64,
    state: Option<Value>,
    settings: Option<Value>,
    /// The settings as saved, decoded.
    settings_map: Settings,
    /// Each blob's first sector: the rest is found through the headers.
    blobs: BlobIndex,
    relocate_every: u32,
    saves: u32,
    /// The blob read last and its sectors, so that reading it in parts (a player reading
    /// an image column by column) walks its headers once. Forgotten whenever a value's
    /// sectors may be given back (a kill) or RAM is rebuilt.
    located: Option<(BlobHash, Value)>,
    /// The blob being uploaded, its sectors marked used meanwhile ([`Storage::begin_blob`]).
    upload: Option<alloc::boxed::Box<ChunkWriter>>,
    /// A flash operation failed part way: what RAM knows is rebuilt from flash first.
    stale: bool,
    snapshot_damaged: bool,
    settings_damaged: bool,
}

/// Why an upload's next piece is refused when none is under way.
const NO_UPLOAD: &str = "no image upload is under way here (another began, or a flash error ended it)";

/// Chunk `index`'s header for a value whose first chunk's header is `head`, in `sectors`:
/// the same but for its index and the sector of the chunk after it.
fn chunk_header(head: &Header, sectors: &[u16], index: u16) -> Header {
    let next = sectors.get(usize::from(index) + 1).copied().unwrap_or(NO_NEXT);
    Header { index, next, ..head.clone() }
}

fn word<F: MultiwriteNorFlash>() -> usize {
    F::READ_SIZE.max(F::WRITE_SIZE)
}

fn flash_error<E: Debug>(what: &str, e: E) -> StorageError {
    StorageError::new(format!("{what}: flash error {e:?}"))
}

fn disk_full(what: &str) -> StorageError {
    StorageError::disk_full(format!("{what}: not enough free flash"))
}

/// Settings by key, sorted by key: a vector, not a B-tree map, as a board's flash has no
/// room for one more B-tree type's code and a poi keeps a dozen settings.
type Settings = Vec<(String, Vec<u8>)>;

/// Sets `key` to `value`, or removes it for `None`, keeping the keys sorted.
fn put_setting(map: &mut Settings, key: &str, value: Option<&[u8]>) {
    match (map.binary_search_by(|(k, _)| k.as_str().cmp(key)), value) {
        (Ok(i), Some(value)) => map[i].1 = value.to_vec(),
        (Ok(i), None) => drop(map.remove(i)),
        (Err(i), Some(value)) => map.insert(i, (key.into(), value.to_vec())),
        (Err(_), None) => {}
    }
}

/// `count u16 | (key_len u8 | key | value_len u16 | value) × count`, keys in order.
fn encode_settings(map: &Settings) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u16).to_le_bytes());
    for (key, value) in map {
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn decode_settings(mut bytes: &[u8]) -> Option<Settings> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    let count = u16::from_le_bytes(take(&mut bytes, 2)?.try_into().ok()?);
    let mut map = Settings::new();
    for _ in 0..count {
        let key_len = usize::from(take(&mut bytes, 1)?[0]);
        let key = core::str::from_utf8(take(&mut bytes, key_len)?).ok()?;
        let value_len = usize::from(u16::from_le_bytes(take(&mut bytes, 2)?.try_into().ok()?));
        put_setting(&mut map, key, Some(take(&mut bytes, value_len)?));
    }
    bytes.is_empty().then_some(map)
}

impl<F: MultiwriteNorFlash> FlashStore<F> {
    /// Opens the store kept in `region` of `flash` with default [`Options`]. Sectors that
    /// hold no sound chunk of a whole value (an erased region, one that held something
    /// else, the leftovers of an interrupted save) count as free.
    pub fn open(flash: F, region: Range<u32>) -> Result<Self, StorageError> {
        Self::open_with(flash, region, Options::default())
    }

    /// Opens the store kept in `region` of `flash`.
    pub fn open_with(flash: F, region: Range<u32>, options: Options) -> Result<Self, StorageError> {
        let sector = F::ERASE_SIZE as u32;
        let word = word::<F>();
        let sound_geometry = word <= MAX_WORD
            && PENDING.is_multiple_of(word)
            && HEADER_LEN.is_multiple_of(word)
            && F::ERASE_SIZE.is_multiple_of(word)
            && F::ERASE_SIZE > HEADER_LEN
            && region.start.is_multiple_of(sector)
            && region.end.is_multiple_of(sector);
        if !sound_geometry {
            return Err(StorageError::new("flash store: region or flash geometry not supported"));
        }
        let sectors = region.end.saturating_sub(region.start) / sector;
        if sectors < 2 || sectors > u32::from(NO_NEXT) {
            return Err(StorageError::new("flash store: region too small or too large"));
        }
        let mut inner = Inner {
            flash,
            start: region.start,
            sectors,
            used: vec![0; sectors.div_ceil(32) as usize],
            free: sectors,
            cursor: 0,
            next_seq: 0,
            state: None,
            settings: None,
            settings_map: Settings::new(),
            blobs: BlobIndex::default(),
            relocate_every: options.relocate_every,
            saves: 0,
            located: None,
            upload: None,
            stale: false,
            snapshot_damaged: false,
            settings_damaged: false,
        };
        inner.rebuild()?;
        Ok(FlashStore { inner: RefCell::new(inner) })
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.inner.into_inner().flash
    }

    /// The flash, for inspection.
    pub fn flash(&self) -> impl core::ops::Deref<Target = F> + '_ {
        core::cell::Ref::map(self.inner.borrow(), |inner| &inner.flash)
    }

    /// How full the store is.
    pub fn usage(&self) -> Usage {
        let inner = self.inner.borrow();
        Usage { sectors: inner.sectors, free_sectors: inner.free, reserved_sectors: inner.reserve().min(inner.free) }
    }

    /// Payload bytes a sector holds (the erase size less the header).
    pub fn payload_per_sector() -> usize {
        F::ERASE_SIZE - HEADER_LEN
    }

    /// Whether the last [`Storage::load_state`] found the snapshot damaged (it then
    /// answered "no snapshot", so the replica starts empty and peers fill it again).
    pub fn snapshot_damaged(&self) -> bool {
        self.inner.borrow().snapshot_damaged
    }

    /// Whether the settings were found damaged when the store was opened (they then read
    /// as empty).
    pub fn settings_damaged(&self) -> bool {
        self.inner.borrow().settings_damaged
    }

    /// The value of setting `key`, if set.
    pub fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let map = &inner.settings_map;
        Ok(map.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| map[i].1.clone()))
    }

    /// Sets setting `key` (at most [`MAX_SETTING_KEY_LEN`] bytes) to `value` (at most
    /// [`MAX_SETTING_LEN`] bytes), atomically.
    pub fn set_setting(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.update_settings(&[(key, Some(value))])
    }

    /// Removes setting `key`; removing a missing one is not an error.
    pub fn remove_setting(&self, key: &str) -> Result<(), StorageError> {
        self.update_settings(&[(key, None)])
    }

    /// Applies `changes` in order in one save, `Some(value)` setting a key and `None`
    /// removing it: a power cut leaves all of them or none (a network's name and password
    /// change together). Nothing is written when nothing changes.
    ///
    /// Takes `&self`, like [`FlashStore::setting`], so that settings can change while a
    /// replica saves through another reference to the same store (see the `Storage`
    /// implementation for `&FlashStore`).
    pub fn update_settings(&self, changes: &[(&str, Option<&[u8]>)]) -> Result<(), StorageError> {
        let too_long = changes
            .iter()
            .any(|(key, value)| key.len() > MAX_SETTING_KEY_LEN || value.is_some_and(|v| v.len() > MAX_SETTING_LEN));
        if too_long {
            return Err(StorageError::new("setting key or value too long"));
        }
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let mut map = inner.settings_map.clone();
        for (key, value) in changes {
            put_setting(&mut map, key, *value);
        }
        if map == inner.settings_map {
            return Ok(());
        }
        inner.save_settings(map)
    }
}

impl<F: MultiwriteNorFlash> Inner<F> {
    fn payload(&self) -> usize {
        F::ERASE_SIZE - HEADER_LEN
    }

    fn address(&self, sector: u16) -> u32 {
        self.start + u32::from(sector) * F::ERASE_SIZE as u32
    }

    /// Free sectors a blob save must leave for the next snapshot save.
    fn reserve(&self) -> u32 {
        self.state_sectors() + RESERVE_MARGIN_SECTORS
    }

    fn state_sectors(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.sectors.len() as u32)
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

    fn read_header(&mut self, sector: u16) -> Result<Option<Header>, StorageError> {
        let mut bytes = [0; HEADER_LEN];
        let at = self.address(sector);
        let read = self.flash.read(at, &mut bytes).map_err(|e| flash_error("cannot read a sector header", e));
        self.watch(read)?;
        Ok(Header::decode(&bytes, self.payload()))
    }

    /// The whole value whose first chunk is in `first`, or `None` if a chunk is missing.
    fn walk(&mut self, first: u16) -> Result<Option<Value>, StorageError> {
        let Some(head) = self.read_header(first)? else { return Ok(None) };
        if head.index != 0 {
            return Ok(None);
        }
        let mut sectors = vec![first];
        let mut next = head.next;
        for index in 1..head.count {
            if u32::from(next) >= self.sectors {
                return Ok(None);
            }
            match self.read_header(next)? {
                Some(h) if h.same_value(&head) && h.index == index => {
                    sectors.push(next);
                    next = h.next;
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(Value { head, sectors }))
    }

    /// Voids the header of `sector` by writing zeros over it: a value whose first chunk is
    /// void is gone, and an erase, which only sets bits, cannot make it sound again.
    fn kill(&mut self, sector: u16) -> Result<(), StorageError> {
        self.located = None;
        let at = self.address(sector);
        let killed = self.flash.write(at, &[0; HEADER_LEN]).map_err(|e| flash_error("cannot void a sector", e));
        self.watch(killed)
    }

    /// Reads every sector header back: which values are whole and current, which sectors
    /// they hold, the next sequence number and where allocation resumes.
    fn rebuild(&mut self) -> Result<(), StorageError> {
        let mut firsts: Vec<(Kind, [u8; 32], u64, u16)> = Vec::new();
        let mut newest: Option<(u64, u16)> = None;
        for s in 0..self.sectors as u16 {
            if let Some(h) = self.read_header(s)? {
                newest = newest.max(Some((h.seq, s)));
                if h.index == 0 {
                    firsts.push((h.kind, h.id, h.seq, s));
                }
            }
        }
        // Per value, newest save first: the first whole one is current.
        // Unstable (less flash than a stable sort): the sector decides any tie.
        firsts.sort_unstable_by(|a, b| (a.0, a.1, b.2, a.3).cmp(&(b.0, b.1, a.2, b.3)));
        self.used.fill(0);
        self.free = self.sectors;
        self.state = None;
        self.settings = None;
        self.blobs.clear();
        self.located = None;
        // Its sectors hold no header yet, so they count as free again: it cannot go on.
        self.upload = None;
        let mut current: Option<(Kind, [u8; 32])> = None;
        for (kind, id, _, first) in firsts {
            let Some(value) = self.walk(first)? else { continue };
            if value.sectors.iter().any(|&s| self.is_used(s.into())) {
                // Only a checksum collision could make two whole values share a sector.
                continue;
            }
            if current == Some((kind, id)) {
                // An older whole save, left by a power cut between a save and the voiding
                // of what it replaced: voided now, or a later remove would bring it back.
                self.kill(first)?;
                continue;
            }
            current = Some((kind, id));
            self.set_used(&value.sectors, true);
            match kind {
                Kind::State => self.state = Some(value),
                Kind::Settings => self.settings = Some(value),
                Kind::Blob => self.blobs.set(BlobHash(id), first),
            }
        }
        self.next_seq = newest.map_or(0, |(seq, _)| seq + 1);
        self.cursor = newest.map_or(0, |(_, s)| (u32::from(s) + 1) % self.sectors);
        self.settings_map = Settings::new();
        self.settings_damaged = false;
        if let Some(value) = self.settings.clone() {
            let bytes = self.read_value(&value)?;
            match decode_settings(&bytes).filter(|_| Sha256::digest(&bytes)[..] == value.head.sha256) {
                Some(map) => self.settings_map = map,
                None => self.settings_damaged = true,
            }
        }
        self.stale = false;
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
            s = (s + 1) % self.sectors;
        }
        out
    }

    fn sectors_for(&self, len: usize) -> u32 {
        chunks(len, self.payload()) as u32
    }

    /// The sectors of a new save of `len` bytes of value `(kind, id)`, and its chunk 0's
    /// header.
    fn begin_save(
        &mut self,
        kind: Kind,
        id: [u8; 32],
        sha256: [u8; 32],
        len: usize,
        what: &str,
    ) -> Result<(Vec<u16>, Header), StorageError> {
        let n = self.sectors_for(len);
        let (Ok(len32), Ok(count)) = (u32::try_from(len), u16::try_from(n)) else { return Err(disk_full(what)) };
        let sectors = self.allocate(n);
        let seq = self.next_seq;
        // Taken even if the save fails: no two attempts share a number.
        self.next_seq += 1;
        let head = Header { kind, id, seq, len: len32, index: 0, count, next: NO_NEXT, sha256 };
        let head = chunk_header(&head, &sectors, 0);
        Ok((sectors, head))
    }

    /// Gives back the sectors of the upload under way, if any: nothing of it was whole.
    fn abandon_upload(&mut self) {
        if let Some(out) = self.upload.take() {
            self.set_used(&out.sectors, false);
        }
    }

    /// Writes a new save of value `(kind, id)`, `len` bytes from `source`, to free sectors.
    /// The last chunk is written first and the first chunk's header last: until that header
    /// is whole, the new save is not whole either.
    fn put(
        &mut self,
        kind: Kind,
        id: [u8; 32],
        sha256: [u8; 32],
        len: usize,
        source: Source<'_>,
        what: &str,
    ) -> Result<Value, StorageError> {
        let (sectors, head) = self.begin_save(kind, id, sha256, len, what)?;
        let payload = self.payload();
        let word = word::<F>();
        let mut copied = match source {
            Source::Sectors(_) => vec![0; payload],
            Source::Bytes(_) => Vec::new(),
        };
        for index in (0..head.count).rev() {
            let i = usize::from(index);
            let chunk_len = len.saturating_sub(i * payload).min(payload);
            let header = chunk_header(&head, &sectors, index);
            let at = self.address(sectors[i]);
            let chunk = match source {
                Source::Bytes(bytes) => &bytes[i * payload..][..chunk_len],
                Source::Sectors(old) => {
                    let from = self.address(old[i]) + HEADER_LEN as u32;
                    let read = self.flash.read(from, &mut copied[..chunk_len.next_multiple_of(word)]);
                    let read = read.map_err(|e| flash_error(what, e));
                    self.watch(read)?;
                    &copied[..chunk_len]
                }
            };
            let flash = &mut self.flash;
            let written = (|| {
                flash.erase(at, at + F::ERASE_SIZE as u32)?;
                let whole = chunk.len() / word * word;
                let body = at + HEADER_LEN as u32;
                if whole > 0 {
                    flash.write(body, &chunk[..whole])?;
                }
                if whole < chunk.len() {
                    let mut tail = [0xFF; MAX_WORD];
                    tail[..chunk.len() - whole].copy_from_slice(&chunk[whole..]);
                    flash.write(body + whole as u32, &tail[..word])?;
                }
                flash.write(at, &header.encode())
            })()
            .map_err(|e| flash_error(what, e));
            self.watch(written)?;
        }
        Ok(Value { head, sectors })
    }

    /// Writes a new save of value `(kind, id)`: the `len` bytes `encode` gives its sink,
    /// each piece written to its sector as it comes, so the value is never held whole (a
    /// board's 200-image snapshot is 13.5 KB). Each chunk's header follows its payload, and
    /// the first chunk's header comes last of all: until it is whole, the new save is not
    /// whole either, as with [`Inner::put`].
    fn put_streamed(
        &mut self,
        kind: Kind,
        sha256: [u8; 32],
        len: usize,
        encode: &mut Encoder<'_>,
        what: &'static str,
    ) -> Result<Value, StorageError> {
        let (sectors, head) = self.begin_save(kind, [0; 32], sha256, len, what)?;
        let mut out = ChunkWriter::new(sectors, head, true, what);
        encode(&mut |piece| out.push(self, piece));
        out.end(self);
        if <[u8; 32]>::from(core::mem::take(&mut out.hash).finalize()) != out.head.sha256 {
            out.fail(format!("{what}: the value changed while it was written"));
        }
        out.write_header(self, 0);
        if let Some(e) = out.failed.take() {
            return self.watch(Err(e));
        }
        Ok(Value { head: out.head, sectors: out.sectors })
    }

    /// Ends the upload under way: the headers, each naming the hash of the whole, the
    /// first chunk's last, so that until it is written the upload is not whole; then the
    /// blob replaces any older copy of the same bytes.
    fn finish_upload(&mut self) -> Result<BlobHash, StorageError> {
        let Some(mut out) = self.upload.take() else { return Err(StorageError::new(NO_UPLOAD)) };
        out.end(self);
        let hash: [u8; 32] = core::mem::take(&mut out.hash).finalize().into();
        // Numbered now, not when it began: it is the newest save once its headers are written.
        out.head = Header { id: hash, sha256: hash, seq: self.next_seq, ..out.head.clone() };
        self.next_seq += 1;
        for index in (0..out.sectors.len() as u16).rev() {
            out.write_header(self, index);
        }
        if let Some(e) = out.failed.take() {
            self.set_used(&out.sectors, false);
            self.stale |= out.flash_failed;
            return Err(e);
        }
        let hash = BlobHash(hash);
        let known = self.blobs.get(&hash);
        let old = match known {
            Some(first) => self.walk(first)?,
            None => None,
        };
        if old.is_none() && known.is_some() {
            // Damaged since the store was opened: its sectors are found again by a rebuild.
            self.stale = true;
        }
        let new = Value { head: out.head, sectors: out.sectors };
        self.blobs.set(hash, new.sectors[0]);
        self.retire(&new, old.as_ref())?;
        Ok(hash)
    }

    /// RAM's view, and the flash, after `new` replaced `old`: the old save is voided only
    /// now, so a power cut before leaves both whole and the newer one wins.
    fn replace(&mut self, new: &Value, old: Option<&Value>) -> Result<(), StorageError> {
        self.set_used(&new.sectors, true);
        self.retire(new, old)
    }

    /// [`Inner::replace`] for a `new` whose sectors are already marked used (an upload's,
    /// taken when it began).
    fn retire(&mut self, new: &Value, old: Option<&Value>) -> Result<(), StorageError> {
        self.move_cursor_past(&new.sectors);
        if let Some(old) = old {
            self.set_used(&old.sectors, false);
            self.kill(old.sectors[0])?;
        }
        Ok(())
    }

    /// The next save looks for room after `sectors`: writes go round the region, so every
    /// sector is erased about as often as the others.
    fn move_cursor_past(&mut self, sectors: &[u16]) {
        if let Some(&last) = sectors.last() {
            self.cursor = (u32::from(last) + 1) % self.sectors;
        }
    }

    fn read_value(&mut self, value: &Value) -> Result<Vec<u8>, StorageError> {
        let payload = self.payload();
        let mut out = vec![0; (value.head.len as usize).next_multiple_of(word::<F>())];
        for (&s, part) in value.sectors.iter().zip(out.chunks_mut(payload)) {
            let at = self.address(s) + HEADER_LEN as u32;
            let read = self.flash.read(at, part).map_err(|e| flash_error("cannot read a sector", e));
            self.watch(read)?;
        }
        out.truncate(value.head.len as usize);
        Ok(out)
    }

    /// Fills `out` with `value`'s bytes from `offset` on (the caller checked the range),
    /// reading whole flash words a few at a time through a small buffer.
    fn read_part(&mut self, value: &Value, offset: usize, out: &mut [u8]) -> Result<(), StorageError> {
        const STEP: usize = 64;
        let (payload, word) = (self.payload(), word::<F>());
        let mut buf = [0u8; STEP + MAX_WORD];
        let mut done = 0;
        while done < out.len() {
            let at = offset + done;
            let (sector, within) = (value.sectors[at / payload], at % payload);
            // A sector's payload ends at its end, a word boundary: the rounded-up read stays in it.
            let n = (out.len() - done).min(payload - within).min(STEP);
            let skip = within % word;
            let from = self.address(sector) + (HEADER_LEN + within - skip) as u32;
            let len = (skip + n).next_multiple_of(word);
            let read = self.flash.read(from, &mut buf[..len]).map_err(|e| flash_error("cannot read a sector", e));
            self.watch(read)?;
            out[done..done + n].copy_from_slice(&buf[skip..skip + n]);
            done += n;
        }
        Ok(())
    }

    fn save_settings(&mut self, map: Settings) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save the settings";
        let bytes = encode_settings(&map);
        let n = self.sectors_for(bytes.len());
        // Settings may take the margin of the reserve, not the room of the snapshot's next save.
        if self.free < n + self.state_sectors() {
            return Err(disk_full(WHAT));
        }
        let sha256 = Sha256::digest(&bytes).into();
        let new = self.put(Kind::Settings, [0; 32], sha256, bytes.len(), Source::Bytes(&bytes), WHAT)?;
        let old = self.settings.replace(new.clone());
        self.settings_map = map;
        self.settings_damaged = false;
        self.replace(&new, old.as_ref())
    }

    fn save_blob(&mut self, hash: &BlobHash, len: usize, source: Source<'_>, what: &str) -> Result<(), StorageError> {
        let known = self.blobs.get(hash);
        let old = match known {
            Some(first) => self.walk(first)?,
            None => None,
        };
        if old.is_none() && known.is_some() {
            // Damaged since the store was opened: its sectors are found again by a rebuild.
            self.stale = true;
        }
        let new = self.put(Kind::Blob, hash.0, hash.0, len, source, what)?;
        self.blobs.set(*hash, new.sectors[0]);
        self.replace(&new, old.as_ref())
    }

    /// Copies the blob that has gone longest without moving to fresh sectors, if there is
    /// room: images that never change would otherwise pin their sectors
    /// while snapshot saves wear out the few left free.
    fn relocate_oldest(&mut self) -> Result<(), StorageError> {
        let mut oldest: Option<(u64, BlobHash, u16)> = None;
        for i in 0.. {
            let Some((hash, first)) = self.blobs.iter().nth(i) else { break };
            if let Some(h) = self.read_header(first)?
                && oldest.is_none_or(|(seq, _, _)| h.seq < seq)
            {
                oldest = Some((h.seq, hash, first));
            }
        }
        let Some((_, hash, first)) = oldest else { return Ok(()) };
        let Some(old) = self.walk(first)? else { return Ok(()) };
        // The move gives back as many sectors as it takes; only the next snapshot save's
        // room must stay free meanwhile.
        if self.free < old.sectors.len() as u32 + self.state_sectors() {
            return Ok(());
        }
        self.save_blob(&hash, old.head.len as usize, Source::Sectors(&old.sectors), "cannot move a blob")
    }
}

/// The store shared by reference, as `std` implements `Read` for `&File`: a replica owns
/// one `&FlashStore` as its storage while the poi's settings are read and written through
/// another. Every call borrows the store for its own duration only, and none calls another,
/// so the borrows never overlap.
impl<F: MultiwriteNorFlash> Storage for &FlashStore<F> {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let Some(value) = inner.state.clone() else { return Ok(None) };
        let bytes = inner.read_value(&value)?;
        let sound = Sha256::digest(&bytes)[..] == value.head.sha256;
        inner.snapshot_damaged = !sound;
        Ok(sound.then_some(bytes))
    }

    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        self.save_state_from(&mut |sink| sink(snapshot))
    }

    /// Hashes and counts the snapshot in a first pass (its headers come first and name its
    /// hash and length), then writes it as it comes in a second, checked against them
    /// before the save is committed: never held whole.
    fn save_state_from(&mut self, encode: &mut Encoder<'_>) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save the library snapshot";
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let (mut hasher, mut len) = (Sha256::new(), 0);
        encode(&mut |piece| {
            hasher.update(piece);
            len += piece.len();
        });
        let n = inner.sectors_for(len);
        let old_n = inner.state_sectors();
        // A growing snapshot may not take the room the next save of its size needs: that
        // save may be the delete that frees space.
        if n > inner.free || (n > old_n && inner.free - n + old_n < n) {
            return Err(disk_full(WHAT));
        }
        let sha256 = hasher.finalize().into();
        let new = inner.put_streamed(Kind::State, sha256, len, encode, WHAT)?;
        let old = inner.state.replace(new.clone());
        inner.replace(&new, old.as_ref())?;
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
        let Some(first) = inner.blobs.get(hash) else { return Ok(None) };
        match inner.walk(first)? {
            Some(value) => inner.read_value(&value).map(Some),
            // Damaged since it was opened: as good as gone.
            None => Ok(None),
        }
    }

    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save an image's pixels";
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        if inner.free < inner.sectors_for(bytes.len()) + inner.reserve() {
            return Err(disk_full(WHAT));
        }
        inner.save_blob(hash, bytes.len(), Source::Bytes(bytes), WHAT)
    }

    /// Takes the sectors now, marked used so no other save takes them meanwhile, and
    /// leaves the room of the next snapshot save free as [`Storage::save_blob`] does. The
    /// payload goes to them as it comes; their headers, which name the hash, only at the
    /// end: a power cut before leaves sectors without a sound header, which count as free.
    fn begin_blob(&mut self, len: usize) -> Result<(), StorageError> {
        const WHAT: &str = "cannot save an uploaded image's pixels";
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        inner.abandon_upload();
        if inner.free < inner.sectors_for(len) + inner.reserve() {
            return Err(disk_full(WHAT));
        }
        let (sectors, head) = inner.begin_save(Kind::Blob, [0; 32], [0; 32], len, WHAT)?;
        inner.set_used(&sectors, true);
        inner.move_cursor_past(&sectors);
        inner.upload = Some(alloc::boxed::Box::new(ChunkWriter::new(sectors, head, false, WHAT)));
        Ok(())
    }

    fn write_blob(&mut self, piece: &[u8]) -> Result<(), StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let Some(mut out) = inner.upload.take() else { return Err(StorageError::new(NO_UPLOAD)) };
        out.push(&mut inner, piece);
        if let Some(e) = out.failed.take() {
            inner.set_used(&out.sectors, false);
            inner.stale |= out.flash_failed;
            return Err(e);
        }
        inner.upload = Some(out);
        Ok(())
    }

    fn finish_blob(&mut self) -> Result<BlobHash, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        inner.finish_upload()
    }

    fn abandon_blob(&mut self) {
        self.inner.borrow_mut().abandon_upload();
    }

    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let Some(first) = inner.blobs.remove(hash) else { return Ok(()) };
        match inner.walk(first)? {
            Some(old) => inner.set_used(&old.sectors, false),
            // Damaged since the store was opened: its sectors are found again by a rebuild.
            None => inner.stale = true,
        }
        inner.kill(first)
    }

    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        // Sized first: the chunks' iterator does not tell its length, and a growing vector
        // would hold 10 KiB for 200 hashes where 6.4 KiB do.
        let mut hashes = Vec::with_capacity(inner.blobs.len());
        hashes.extend(inner.blobs.iter().map(|(h, _)| h));
        Ok(hashes)
    }

    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        Ok(inner.blobs.get(hash).is_some())
    }

    fn read_blob_part(&self, hash: &BlobHash, offset: usize, out: &mut [u8]) -> Result<bool, StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.fresh()?;
        let value = match inner.located.take() {
            Some((h, value)) if h == *hash => value,
            _ => {
                let Some(first) = inner.blobs.get(hash) else { return Ok(false) };
                // Damaged since it was opened: as good as gone.
                let Some(value) = inner.walk(first)? else { return Ok(false) };
                value
            }
        };
        let fits = offset.checked_add(out.len()).is_some_and(|end| end <= value.head.len as usize);
        if fits {
            inner.read_part(&value, offset, out)?;
        }
        inner.located = Some((*hash, value));
        Ok(fits)
    }
}

/// An owned store: the same as through a reference.
impl<F: MultiwriteNorFlash> Storage for FlashStore<F> {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        <&Self as Storage>::load_state(&self)
    }

    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        <&Self as Storage>::save_state(&mut &*self, snapshot)
    }

    fn save_state_from(&mut self, encode: &mut Encoder<'_>) -> Result<(), StorageError> {
        <&Self as Storage>::save_state_from(&mut &*self, encode)
    }

    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        <&Self as Storage>::load_blob(&self, hash)
    }

    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        <&Self as Storage>::save_blob(&mut &*self, hash, bytes)
    }

    fn begin_blob(&mut self, len: usize) -> Result<(), StorageError> {
        <&Self as Storage>::begin_blob(&mut &*self, len)
    }

    fn write_blob(&mut self, piece: &[u8]) -> Result<(), StorageError> {
        <&Self as Storage>::write_blob(&mut &*self, piece)
    }

    fn finish_blob(&mut self) -> Result<BlobHash, StorageError> {
        <&Self as Storage>::finish_blob(&mut &*self)
    }

    fn abandon_blob(&mut self) {
        <&Self as Storage>::abandon_blob(&mut &*self)
    }

    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        <&Self as Storage>::remove_blob(&mut &*self, hash)
    }

    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        <&Self as Storage>::blob_hashes(&self)
    }

    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError> {
        <&Self as Storage>::has_blob(&self, hash)
    }

    fn read_blob_part(&self, hash: &BlobHash, offset: usize, out: &mut [u8]) -> Result<bool, StorageError> {
        <&Self as Storage>::read_blob_part(&self, hash, offset, out)
    }
}
