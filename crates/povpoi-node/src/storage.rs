//! The replica's storage as files in a data directory, crash-safe.
//!
//! ```text
//! DIR/state.bin          the replica snapshot: "povpoiS1", SHA-256 of the rest, postcard
//! DIR/state.prev         the snapshot before it, same form
//! DIR/blobs/<sha256hex>  one file per image's pixels
//! DIR/quarantine/        files whose bytes no longer match their hash, moved aside
//! DIR/reserve            space held back for a full disk (see below)
//! ```
//! Every file is written whole to a temporary name, flushed to disk, renamed over the final
//! name and the directory flushed, so a crash (power cut, SIGKILL) leaves either the old or
//! the new file, never a torn one; a write that fails removes its temporary file. Every file
//! is checked against its hash when read: a blob that rotted on the card is never served (a
//! peer sends it again), and a damaged snapshot gives way to the previous one (see
//! [`DirStorage::restored_from_previous`]). Plain files rather than an embedded database:
//! the data is one small snapshot and immutable content-addressed blobs, which
//! rename-into-place covers completely, and the layout stays readable with `ls` on a poi's
//! SD card.
//!
//! A full disk must not brick the poi: saving a snapshot needs room for a second copy until
//! the rename, so a delete (which frees space only once its snapshot is saved) would need
//! space to free space. Hence `DIR/reserve`, a file of allocated space (at least
//! [`MIN_RESERVE`], twice the snapshot) that a snapshot save, or a save of a small file of
//! the data directory (configuration, request nonces), gives up when the disk is full and
//! that is made again as soon as there is room; with no reserve left, a snapshot save
//! gives up the previous snapshot, which it replaces anyway. New pixels never take the
//! reserve: a blob is refused up front (a "disk full" error, HTTP 507) unless it fits with
//! room left for the snapshot save, the reserve and a margin.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Storage, StorageError};
use sha2::{Digest, Sha256};

const STATE_FILE: &str = "state.bin";
const PREVIOUS_STATE_FILE: &str = "state.prev";
/// First bytes of a snapshot file; the format's version is its last byte.
const STATE_MAGIC: &[u8; 8] = b"povpoiS1";
const STATE_HEADER_LEN: usize = STATE_MAGIC.len() + 32;
const BLOB_DIR: &str = "blobs";
const QUARANTINE_DIR: &str = "quarantine";
const TEMP_SUFFIX: &str = ".tmp";
const RESERVE_FILE: &str = "reserve";
/// Where a node keeps its library inside its data directory.
pub const LIBRARY_DIR: &str = "library";
/// Smallest reserve kept back for saves on a full disk (bytes).
pub const MIN_RESERVE: u64 = 64 * 1024;
/// Room a blob save leaves free besides the snapshot save and the reserve, for the small
/// files outside the library (configuration, request nonces).
const SAVE_MARGIN: u64 = 32 * 1024;

/// A replica's storage in a directory.
#[derive(Debug)]
pub struct DirStorage {
    root: PathBuf,
    reserve: Reserve,
    /// Bytes of the last snapshot loaded or saved: sizes the reserve and the room a save needs.
    snapshot_len: AtomicU64,
    /// Set when the newest snapshot was damaged and the previous one was loaded instead.
    restored: AtomicBool,
    /// Set while `state.bin` is that damaged file: the next save replaces it in place.
    damaged_current: AtomicBool,
    /// The blob files, as listed at open and changed since by this store: the replica asks
    /// after every image's blob per sync message and per listing, a file system call each.
    held: Mutex<BTreeSet<BlobHash>>,
}

/// What a snapshot file holds.
enum Snapshot {
    Missing,
    /// Checked against its hash: the postcard bytes.
    Sound(Vec<u8>),
    /// Present, but not matching its hash.
    Damaged,
}

impl DirStorage {
    /// Opens (creating if needed) the store in `root`, clearing temporary files that a
    /// crash may have left.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join(BLOB_DIR))?;
        remove_leftovers(&root)?;
        remove_leftovers(&root.join(BLOB_DIR))?;
        let storage = DirStorage {
            reserve: Reserve::of_store(&root),
            root,
            snapshot_len: 0.into(),
            restored: false.into(),
            damaged_current: false.into(),
            held: Mutex::new(BTreeSet::new()),
        };
        // The blobs found sound are the ones held: one walk of the folder does both.
        *storage.held() = storage.quarantine_damaged()?;
        let snapshot = fs::metadata(storage.root.join(STATE_FILE)).map_or(0, |m| m.len());
        storage.snapshot_len.store(snapshot, Ordering::Relaxed);
        storage.refill_reserve();
        Ok(storage)
    }

    /// The blob files held, as this store knows them.
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeSet<BlobHash>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held in the reserve for saves on a full disk.
    pub fn reserve_held(&self) -> u64 {
        self.reserve.held()
    }

    /// How large the reserve should be: a snapshot save (and a configuration save) on a
    /// full disk must fit in it.
    fn reserve_target(&self) -> u64 {
        let doubled = self.snapshot_len.load(Ordering::Relaxed).saturating_mul(2);
        round_up(doubled.max(MIN_RESERVE), 4096)
    }

    /// Makes the reserve whole again if there is room; without room it stays as it is and
    /// is tried again at the next write or removal.
    fn refill_reserve(&self) {
        if let Err(e) = self.reserve.fill_to(self.reserve_target()) {
            tracing::debug!(error = %e, "cannot make the full-disk reserve whole yet");
        }
    }

    /// Refuses a new blob of `len` bytes unless it fits with room left for the snapshot
    /// save after it, the reserve and a margin: new content must never take the space
    /// that lets a delete through.
    fn check_room(&self, len: u64, path: &Path) -> Result<(), StorageError> {
        let stats = match fs4::statvfs(&self.root) {
            Ok(stats) => stats,
            // Without the numbers the write itself finds out.
            Err(_) => return Ok(()),
        };
        let unit = stats.allocation_granularity().max(1);
        let snapshot = round_up(self.snapshot_len.load(Ordering::Relaxed), unit);
        let missing_reserve = self.reserve_target().saturating_sub(self.reserve.held());
        let needed = round_up(len, unit) + snapshot + missing_reserve + SAVE_MARGIN;
        let free = stats.available_space();
        if free >= needed {
            return Ok(());
        }
        Err(StorageError::disk_full(format!(
            "disk full: no room to save an image's pixels ({len} bytes) as {}: the disk holding the data \
             directory {} has {free} bytes free and {needed} are needed with the room kept for saving the \
             library; delete images to make room",
            path.display(),
            self.root.display(),
        )))
    }

    /// Whether the last snapshot was damaged and the one before it loaded instead: the
    /// replica then runs under a new replica id (its peers may hold the lost edits).
    pub fn restored_from_previous(&self) -> bool {
        self.restored.load(Ordering::Relaxed)
    }

    /// Where a damaged file named `name` is kept for inspection: `DIR/quarantine/NAME.MS`.
    fn quarantine_path(&self, name: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(QUARANTINE_DIR);
        fs::create_dir_all(&dir)?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Ok(dir.join(format!("{name}.{stamp}")))
    }

    /// Reads a snapshot file and checks it against its hash.
    fn read_snapshot(&self, name: &str) -> Result<Snapshot, StorageError> {
        let path = self.root.join(name);
        let Some(bytes) = read_if_present(&path)? else { return Ok(Snapshot::Missing) };
        let sound = bytes.len() >= STATE_HEADER_LEN
            && bytes.starts_with(STATE_MAGIC)
            && Sha256::digest(&bytes[STATE_HEADER_LEN..]).as_slice() == &bytes[STATE_MAGIC.len()..STATE_HEADER_LEN];
        Ok(if sound { Snapshot::Sound(bytes[STATE_HEADER_LEN..].to_vec()) } else { Snapshot::Damaged })
    }

    /// Checks every blob against its name and moves the damaged ones aside, so a file
    /// rotted on the card is never served and is fetched again from a peer; returns the
    /// sound ones.
    fn quarantine_damaged(&self) -> io::Result<BTreeSet<BlobHash>> {
        let mut sound_blobs = BTreeSet::new();
        for entry in fs::read_dir(self.root.join(BLOB_DIR))? {
            let path = entry?.path();
            let Some(hash) = path.file_name().and_then(|n| n.to_str()).and_then(parse_hash) else { continue };
            // An unreadable blob (bad sector) is as lost as a damaged one: set it aside
            // rather than refuse to start.
            let sound = fs::read(&path).is_ok_and(|bytes| hash.verifies(&bytes));
            if sound {
                sound_blobs.insert(hash);
            } else {
                self.quarantine(&hash)?;
            }
        }
        Ok(sound_blobs)
    }

    /// Sets a damaged snapshot aside in the quarantine: moved there, or copied while it
    /// has to stay in place (`keep`).
    fn set_aside(&self, name: &str, keep: bool) -> Result<(), StorageError> {
        let path = self.root.join(name);
        let set_aside =
            |target: &Path| if keep { fs::copy(&path, target).map(drop) } else { fs::rename(&path, target) };
        let target = self
            .quarantine_path(name)
            .and_then(|target| set_aside(&target).map(|()| target))
            .map_err(|e| storage_error("cannot quarantine", &path, e))?;
        tracing::error!(file = %path.display(), copy = %target.display(), "snapshot does not match its hash");
        Ok(())
    }

    /// Moves a damaged blob to `DIR/quarantine/`, keeping it for inspection.
    fn quarantine(&self, hash: &BlobHash) -> io::Result<()> {
        self.held().remove(hash);
        let moved = self.quarantine_path(&hash.to_string()).and_then(|target| {
            fs::rename(self.blob_path(hash), &target)?;
            Ok(target)
        });
        match moved {
            Ok(target) => {
                tracing::warn!(blob = %hash, to = %target.display(), "blob does not match its hash: quarantined");
                Ok(())
            }
            // No room for the quarantine folder: the damaged copy is of no use (a peer
            // sends the blob again), and keeping it must not stop the poi from starting.
            Err(e) if is_full(&e) => {
                fs::remove_file(self.blob_path(hash))?;
                tracing::warn!(blob = %hash, "blob does not match its hash: removed (no room to quarantine it)");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join(BLOB_DIR).join(hash.to_string())
    }
}

/// Writes a small file of a data directory (the configuration, the request nonces) so that
/// a crash leaves either the old file or the new one. On a full disk the reserve of the
/// library beside it (`library/reserve`) is given up for the write and made again after,
/// so settings can still be changed, and a start-up that must rewrite one comes up.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("data directory files have a parent");
    write_atomically_reserved(path, bytes, &dir.join(LIBRARY_DIR))
}

/// [`write_atomically`], running `before_rename` once the new bytes are safely on disk and
/// just before they take the final name (to move the old file elsewhere, say).
fn write_atomically_after(path: &Path, bytes: &[u8], before_rename: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let mut temp_name = path.file_name().expect("store paths name a file").to_os_string();
    temp_name.push(TEMP_SUFFIX);
    let temp = path.with_file_name(temp_name);
    let written = write_temp(&temp, bytes).and_then(|()| before_rename()).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        // A partial file left behind would hold space on a full disk until the next start.
        if let Err(left) = fs::remove_file(&temp)
            && left.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %temp.display(), error = %left, "cannot remove a failed write's temporary file");
        }
        return Err(e);
    }
    File::open(path.parent().expect("store paths have a parent"))?.sync_all()
}

/// Writes and flushes the new bytes under their temporary name.
fn write_temp(temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Owner-only: config.json holds the pairing key, and the library is private content.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one; out
/// of space, it gives up the reserve of the store in `store` for the write and makes it
/// again right after.
fn write_atomically_reserved(path: &Path, bytes: &[u8], store: &Path) -> io::Result<()> {
    let write = || write_atomically_after(path, bytes, || Ok(()));
    match write() {
        Err(e) if is_full(&e) => {
            let reserve = Reserve::of_store(store);
            let held = reserve.give_up();
            if held == 0 {
                return Err(e);
            }
            let written = write();
            if let Err(e) = reserve.fill_to(held) {
                tracing::debug!(error = %e, "cannot make the full-disk reserve whole yet");
            }
            written
        }
        other => other,
    }
}

/// Writes a file that can be made again (a cached thumbnail) so that a crash leaves the old
/// file or the new one. Unlike [`write_atomically`] it never gives up the library's reserve
/// and leaves [`CACHE_HEADROOM`] free besides: a cache must not take the room that lets a
/// delete through on a nearly full disk. Fails (`StorageFull`) rather than write without it.
pub(crate) fn write_cache_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("cache files have a parent");
    fs::create_dir_all(dir)?;
    if let Ok(room) = space(dir)
        && room.free < bytes.len() as u64 + CACHE_HEADROOM
    {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("{} bytes free, a cache file is written only with {CACHE_HEADROOM} to spare", room.free),
        ));
    }
    write_atomically_after(path, bytes, || Ok(()))
}

/// Free space a cache write leaves untouched: the library's margin, reserve and a snapshot
/// save of a large library come first.
pub const CACHE_HEADROOM: u64 = 4 * 1024 * 1024;

/// Removes the temporary files a crash or a failed write left in `dir`, so a restart on a
/// full disk gets their space back before it writes anything.
pub fn remove_leftovers(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == &TEMP_SUFFIX[1..]) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Whether an error means there is no room left (the disk, or the user's quota).
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

fn round_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit).saturating_mul(unit)
}

/// Space on the disk holding a directory, as `statvfs` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Bytes this process may still write.
    pub free: u64,
    /// The disk's size in bytes.
    pub total: u64,
}

/// The free and total space of the disk holding `dir`.
pub fn space(dir: &Path) -> io::Result<Space> {
    let stats = fs4::statvfs(dir)?;
    Ok(Space { free: stats.available_space(), total: stats.total_space() })
}

/// The reserve file of a store: allocated space given up when a save finds the disk full.
#[derive(Debug)]
struct Reserve {
    path: PathBuf,
}

impl Reserve {
    fn of_store(root: &Path) -> Reserve {
        Reserve { path: root.join(RESERVE_FILE) }
    }

    /// Bytes the file has allocated on the disk (0 when it is missing).
    fn held(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&self.path).map_or(0, |m| m.blocks() * 512)
    }

    /// Deletes the file to free its space; returns how much it held.
    fn give_up(&self) -> u64 {
        let held = self.held();
        match fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(bytes = held, "disk full: the reserve is given up for a save");
                held
            }
            Err(_) => 0,
        }
    }

    /// Allocates the file up to `target` bytes (blocks really taken, not a sparse length).
    fn fill_to(&self, target: u64) -> io::Result<()> {
        if self.held() >= target {
            return Ok(());
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&self.path)?;
        let len = i64::try_from(target).map_err(io::Error::other)?;
        nix::fcntl::posix_fallocate(&file, 0, len).map_err(io::Error::from)
    }
}

fn storage_error(what: &str, path: &Path, e: io::Error) -> StorageError {
    if is_full(&e) {
        return StorageError::disk_full(format!(
            "disk full: {what} {}: no space left on the disk holding the data directory; delete images to make room",
            path.display()
        ));
    }
    StorageError::new(format!("{what} {}: {e}", path.display()))
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage_error("cannot read", path, e)),
    }
}

impl Storage for DirStorage {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let current = self.read_snapshot(STATE_FILE)?;
        if let Snapshot::Sound(snapshot) = current {
            return Ok(Some(snapshot));
        }
        let previous = self.read_snapshot(PREVIOUS_STATE_FILE)?;
        match (current, previous) {
            // A crash between the two renames of a save: the previous snapshot is the last
            // one saved whole, and nothing newer was ever acknowledged.
            (Snapshot::Missing, Snapshot::Sound(previous)) => Ok(Some(previous)),
            (Snapshot::Damaged, Snapshot::Sound(previous)) => {
                // The damaged file stays until the replica, renewed, saves over it: a
                // power cut before that finds it damaged again and renews again, instead of
                // finding no snapshot and carrying on under the old id.
                self.set_aside(STATE_FILE, true)?;
                self.restored.store(true, Ordering::Relaxed);
                self.damaged_current.store(true, Ordering::Relaxed);
                Ok(Some(previous))
            }
            (current, previous) => {
                // Nothing sound is left: start empty (under a new replica id, as any new
                // store) and let the peers fill it again, rather than not start at all.
                let damaged = [(STATE_FILE, current), (PREVIOUS_STATE_FILE, previous)]
                    .into_iter()
                    .filter(|(_, snapshot)| matches!(snapshot, Snapshot::Damaged));
                for (name, _) in damaged {
                    self.set_aside(name, false)?;
                    tracing::error!("no sound snapshot left: starting with an empty library");
                }
                Ok(None)
            }
        }
    }

    fn save_state(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        let path = self.root.join(STATE_FILE);
        let previous = self.root.join(PREVIOUS_STATE_FILE);
        let bytes = [STATE_MAGIC.as_slice(), &Sha256::digest(snapshot), snapshot].concat();
        // Over a damaged snapshot (set aside at load), the sound previous one stays as it is.
        let over_damage = self.damaged_current.load(Ordering::Relaxed);
        let keep_previous = || {
            if over_damage {
                return Ok(());
            }
            match fs::rename(&path, &previous) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        let save = || write_atomically_after(&path, &bytes, keep_previous);
        let saved = match save() {
            // The disk is full: this save may be the delete that frees it. The reserve is
            // given up for it; failing that (no reserve yet), the previous snapshot, which
            // this save replaces anyway, makes room for the new copy.
            Err(e) if is_full(&e) => {
                let saved = match self.reserve.give_up() {
                    0 => Err(e),
                    _ => save(),
                };
                match saved {
                    Err(e) if is_full(&e) && !over_damage && fs::remove_file(&previous).is_ok() => {
                        tracing::warn!("disk full: the previous snapshot is given up for a save");
                        save()
                    }
                    other => other,
                }
            }
            other => other,
        };
        let result = saved.map_err(|e| storage_error("cannot save the library snapshot to", &path, e));
        if result.is_ok() {
            self.damaged_current.store(false, Ordering::Relaxed);
            self.snapshot_len.store(bytes.len() as u64, Ordering::Relaxed);
        }
        self.refill_reserve();
        result
    }

    fn load_blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.blob_path(hash);
        match read_if_present(&path)? {
            Some(bytes) if !hash.verifies(&bytes) => {
                self.quarantine(hash).map_err(|e| storage_error("cannot quarantine", &path, e))?;
                Ok(None)
            }
            found => Ok(found),
        }
    }

    fn save_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.blob_path(hash);
        // The reserve before new content: it is what keeps a delete possible.
        self.refill_reserve();
        self.check_room(bytes.len() as u64, &path)?;
        // Straight to the disk, never through the reserve: new content must not take it.
        write_atomically_after(&path, bytes, || Ok(()))
            .map_err(|e| storage_error("cannot save an image's pixels to", &path, e))?;
        self.held().insert(*hash);
        Ok(())
    }

    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        let path = self.blob_path(hash);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(storage_error("cannot remove", &path, e)),
            _ => {
                self.held().remove(hash);
                // Space just freed goes to the reserve first, if it was given up.
                self.refill_reserve();
                Ok(())
            }
        }
    }

    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        Ok(self.held().iter().copied().collect())
    }

    fn has_blob(&self, hash: &BlobHash) -> Result<bool, StorageError> {
        Ok(self.held().contains(hash))
    }
}

/// A blob file name back to its hash; anything else in the folder is not a blob.
fn parse_hash(name: &str) -> Option<BlobHash> {
    if name.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(BlobHash(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use povpoi_core::device::{DeviceId, ReplicaId};
    use povpoi_core::show::Cue;
    use povpoi_core::sync::{Identity, Replica};

    fn identity() -> Identity {
        Identity { replica: ReplicaId(42), device: DeviceId([1, 2, 3, 4, 5, 6]), group: "g".into() }
    }

    #[test]
    fn a_replica_reopens_from_disk_with_its_images_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let px: Vec<u8> = (0..10 * 32 * 3).map(|i| i as u8).collect();
        let id = {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.set_brightness(33, 1_000, Cue::NOW).unwrap();
            poi.add_image("disk", 10, 32, &px, 1_000).unwrap()
        };
        let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert_eq!(poi.settings().brightness, 33);
        let hash = poi.image(id).unwrap().pixels();
        assert_eq!(poi.image_pixels(&hash).unwrap().unwrap(), px);
        assert!(dir.path().join("blobs").join(hash.to_string()).is_file());
    }

    #[test]
    fn leftovers_of_a_crash_are_cleared_and_a_damaged_blob_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.add_image("x", 1, 1, &[1, 2, 3], 1_000).unwrap()
        };
        fs::write(dir.path().join("state.bin.tmp"), b"half a snapshot").unwrap();
        let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert!(!dir.path().join("state.bin.tmp").exists());

        let hash = poi.image(id).unwrap().pixels();
        fs::write(dir.path().join("blobs").join(hash.to_string()), [9, 9, 9]).unwrap();
        assert_eq!(poi.image_pixels(&hash).unwrap(), None);
        assert_eq!(poi.missing_blobs(), [hash], "the damaged copy is dropped and wanted again");
        let quarantined: Vec<_> = fs::read_dir(dir.path().join("quarantine")).unwrap().collect();
        assert_eq!(quarantined.len(), 1, "the damaged file is kept aside for inspection");
        assert!(!dir.path().join("blobs").join(hash.to_string()).exists());
    }

    #[test]
    fn a_blob_damaged_while_the_poi_was_off_is_quarantined_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.add_image("x", 2, 1, &[1, 2, 3, 4, 5, 6], 1_000).unwrap()
        };
        let blob = fs::read_dir(dir.path().join("blobs")).unwrap().next().unwrap().unwrap().path();
        fs::write(&blob, [1, 2, 3]).unwrap(); // a torn copy: half the bytes
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert!(!blob.exists());
        assert_eq!(poi.missing_blobs(), [poi.image(id).unwrap().pixels()]);
    }

    fn quarantined(dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir.join("quarantine")) else { return Vec::new() };
        entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_damaged_snapshot_gives_way_to_the_previous_one_and_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.set_brightness(10, 1_000, Cue::NOW).unwrap();
            poi.set_brightness(20, 2_000, Cue::NOW).unwrap();
        }
        let state = dir.path().join("state.bin");
        let mut bytes = fs::read(&state).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40; // one flipped bit, as a failing card gives
        fs::write(&state, &bytes).unwrap();

        // A power cut before the renewed replica is saved: the damage is found again.
        for _ in 0..2 {
            let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            assert_eq!(poi.settings().brightness, 10, "the snapshot before the damaged one");
            assert!(poi.storage().restored_from_previous());
        }
        assert!(quarantined(dir.path()).iter().any(|n| n.starts_with("state.bin.")));
        let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        poi.renew_replica_id(ReplicaId(43)).unwrap();
        drop(poi);
        // Saved over the damage, with the sound previous snapshot kept as it was.
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert!(!poi.storage().restored_from_previous());
        assert_eq!((poi.replica_id(), poi.settings().brightness), (ReplicaId(43), 10));
        fs::remove_file(dir.path().join("state.bin")).unwrap();
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert_eq!((poi.replica_id(), poi.settings().brightness), (ReplicaId(42), 10));
    }

    /// A store whose `state.bin` becomes `state` (None: removed) and `state.prev` becomes
    /// `previous` opens empty, as a fresh store, with `set_aside` files in the quarantine.
    fn opens_empty(state: Option<&[u8]>, previous: &[u8], set_aside: usize) {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.set_brightness(10, 1_000, Cue::NOW).unwrap();
        }
        match state {
            Some(bytes) => fs::write(dir.path().join("state.bin"), bytes).unwrap(),
            None => fs::remove_file(dir.path().join("state.bin")).unwrap(),
        }
        fs::write(dir.path().join("state.prev"), previous).unwrap();
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert_ne!(poi.settings().brightness, 10);
        assert!(!poi.storage().restored_from_previous(), "a fresh store, not a restored one");
        assert_eq!(quarantined(dir.path()).len(), set_aside);
    }

    #[test]
    fn with_no_sound_snapshot_left_the_poi_starts_empty_instead_of_not_at_all() {
        opens_empty(Some(b"povpoiS1 but the rest is gone"), b"", 2);
        // After a crash between a save's renames only the previous one is left, damaged.
        opens_empty(None, b"garbage", 1);
    }

    #[test]
    fn a_crash_between_the_renames_of_a_save_loads_the_last_whole_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
            poi.set_brightness(10, 1_000, Cue::NOW).unwrap();
            poi.set_brightness(20, 2_000, Cue::NOW).unwrap();
        }
        // The save of brightness 20 had moved state.bin aside and died before renaming
        // its new file into place (its .tmp is cleared at start).
        fs::rename(dir.path().join("state.bin"), dir.path().join("state.bin.tmp")).unwrap();
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert_eq!(poi.settings().brightness, 10);
        assert!(!poi.storage().restored_from_previous(), "nothing newer was ever acknowledged");
        assert!(quarantined(dir.path()).is_empty());
    }

    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        [dir.to_path_buf(), dir.join("blobs")]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|entries| entries.map(|e| e.unwrap().path()))
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        write_atomically(&path, b"old").unwrap();
        let failed = write_atomically_after(&path, b"new bytes", || Err(io::Error::other("cut short")));
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(temp_files(dir.path()).is_empty(), "left behind: {:?}", temp_files(dir.path()));
    }

    #[test]
    fn a_new_store_holds_a_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        assert!(poi.storage().reserve_held() >= MIN_RESERVE);
    }

    /// A tmpfs of `size` mounted on a fresh temporary folder, unmounted when dropped (also
    /// when the test panics). Without it the test fails, unless `POVPOI_SKIP_TMPFS` is set.
    struct Tmpfs(Option<tempfile::TempDir>);

    impl Tmpfs {
        fn mount(size: &str) -> Option<Tmpfs> {
            let dir = tempfile::tempdir().unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .output();
            match mounted {
                Ok(out) if out.status.success() => Some(Tmpfs(Some(dir))),
                other => {
                    let reason = match other {
                        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                        Err(e) => e.to_string(),
                    };
                    assert!(
                        std::env::var_os("POVPOI_SKIP_TMPFS").is_some(),
                        "cannot mount a tmpfs: {reason}; run as root, or set POVPOI_SKIP_TMPFS=1 to skip"
                    );
                    println!("SKIPPED (POVPOI_SKIP_TMPFS): cannot mount a tmpfs: {reason}");
                    None
                }
            }
        }

        fn path(&self) -> &Path {
            self.0.as_ref().unwrap().path()
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let Some(dir) = self.0.take() else { return };
            let unmount = |lazy: bool| {
                let mut command = std::process::Command::new("umount");
                if lazy {
                    command.arg("-l");
                }
                command.arg(dir.path()).status().is_ok_and(|s| s.success())
            };
            if !unmount(false) && !unmount(true) {
                eprintln!("cannot unmount the tmpfs on {}", dir.path().display());
                let _ = dir.keep();
            }
        }
    }

    /// Takes every byte left on the disk holding `dir` with one file.
    fn fill(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let mut file = File::create(&path).unwrap();
        let page = [0u8; 4096];
        loop {
            match file.write_all(&page).and_then(|()| file.sync_all()) {
                Ok(()) => {}
                Err(e) if is_full(&e) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        path
    }

    fn image(seed: u8) -> Vec<u8> {
        (0..400 * 32 * 3).map(|i: u32| (i as u8).wrapping_mul(seed).wrapping_add(seed)).collect()
    }

    #[test]
    fn on_a_full_disk_writes_fail_cleanly_and_a_rename_and_a_delete_still_get_through() {
        let Some(disk) = Tmpfs::mount("1m") else { return };
        let root = disk.path().join("library");
        let mut poi = Replica::open(DirStorage::open(&root).unwrap(), identity()).unwrap();
        let mut ids = Vec::new();
        let refused = loop {
            let seed = ids.len() as u8 + 1;
            match poi.add_image(&format!("img{seed}"), 400, 32, &image(seed), 1_000) {
                Ok(id) => ids.push((id, seed)),
                Err(povpoi_core::sync::Error::Storage(e)) => break e,
                Err(e) => panic!("unexpected error: {e}"),
            }
        };
        assert!(refused.disk_full, "{refused}");
        assert!(refused.message.contains(&root.display().to_string()), "names the data directory: {refused}");
        assert!(ids.len() >= 10, "only {} images of 38,400 bytes fit in 1 MiB", ids.len());
        assert!(temp_files(&root).is_empty());

        // Something else takes the rest: not a byte left.
        fill(disk.path(), "filler");
        assert_eq!(space(&root).unwrap().free, 0);
        // A write that really runs out of space leaves nothing behind.
        let failed = write_atomically_after(&root.join("big"), &[7; 64 * 1024], || Ok(())).unwrap_err();
        assert!(is_full(&failed), "{failed}");
        assert!(temp_files(&root).is_empty(), "left behind: {:?}", temp_files(&root));
        // Small saves get through by the reserve, which is made again after them.
        let config = disk.path().join("config.json");
        write_atomically(&config, b"{\"deviceName\":\"Left\"}").unwrap();
        poi.rename_image(ids[0].0, "renamed", 2_000).unwrap();
        poi.set_brightness(99, 2_000, povpoi_core::show::Cue::NOW).unwrap();
        let free_before = space(&root).unwrap().free;
        poi.delete_image(ids[1].0, 3_000).unwrap();
        let freed = space(&root).unwrap().free + poi.storage().reserve_held() - free_before;
        assert!(freed >= 400 * 32 * 3, "the delete freed only {freed} bytes");
        assert!(temp_files(&root).is_empty());

        // With no reserve at all (a store from before reserves, on a full disk), the
        // previous snapshot makes room for the save.
        fs::remove_file(root.join(RESERVE_FILE)).unwrap();
        fill(disk.path(), "filler2");
        poi.delete_image(ids[2].0, 4_000).unwrap();
        drop(poi);

        // Everything that was saved is there after a reopen on the still-full disk.
        let mut poi = Replica::open(DirStorage::open(&root).unwrap(), identity()).unwrap();
        assert_eq!(poi.images().count(), ids.len() - 2);
        assert_eq!(poi.image(ids[0].0).unwrap().name(), "renamed");
        assert_eq!(poi.settings().brightness, 99);
        for &(id, seed) in &ids[3..] {
            let hash = poi.image(id).unwrap().pixels();
            assert_eq!(poi.image_pixels(&hash).unwrap().unwrap(), image(seed));
        }
        assert_eq!(fs::read(&config).unwrap(), b"{\"deviceName\":\"Left\"}");
    }

    #[test]
    fn unused_blobs_are_removed_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        let id = poi.add_image("x", 1, 1, &[1, 2, 3], 1_000).unwrap();
        poi.delete_image(id, 2_000).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }

    #[test]
    fn the_blobs_held_follow_saves_removals_and_damage_and_are_listed_again_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (BlobHash::of(&[1, 2, 3]), BlobHash::of(&[4, 5, 6]));
        let mut store = DirStorage::open(dir.path()).unwrap();
        store.save_blob(&a, &[1, 2, 3]).unwrap();
        store.save_blob(&b, &[4, 5, 6]).unwrap();
        assert!(store.has_blob(&a).unwrap() && store.has_blob(&b).unwrap());
        store.remove_blob(&a).unwrap();
        assert!(!store.has_blob(&a).unwrap());
        assert_eq!(store.blob_hashes().unwrap(), [b]);
        drop(store);

        // Written by someone else while closed: listed at open. Damaged: set aside at open.
        fs::write(dir.path().join("blobs").join(a.to_string()), [1, 2, 3]).unwrap();
        fs::write(dir.path().join("blobs").join(b.to_string()), [9, 9, 9]).unwrap();
        let store = DirStorage::open(dir.path()).unwrap();
        assert_eq!(store.blob_hashes().unwrap(), [a]);
        assert!(store.has_blob(&a).unwrap() && !store.has_blob(&b).unwrap());
        // Damaged after open: dropped when read.
        fs::write(dir.path().join("blobs").join(a.to_string()), [0, 0, 0]).unwrap();
        assert_eq!(store.load_blob(&a).unwrap(), None);
        assert!(!store.has_blob(&a).unwrap());
    }
}
