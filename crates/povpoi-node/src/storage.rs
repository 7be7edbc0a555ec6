//! The replica's storage as files in a data directory, crash-safe.
//!
//! ```text
//! DIR/state.bin          the replica snapshot: "povpoiS1", SHA-256 of the rest, postcard
//! DIR/state.prev         the snapshot before it, same form
//! DIR/blobs/<sha256hex>  one file per image's pixels
//! DIR/quarantine/        files whose bytes no longer match their hash, moved aside
//! ```
//! Every file is written whole to a temporary name, flushed to disk, renamed over the final
//! name and the directory flushed, so a crash (power cut, SIGKILL) leaves either the old or
//! the new file, never a torn one. Every file is checked against its hash when read: a
//! blob that rotted on the card is never served (a peer sends it again), and a damaged
//! snapshot gives way to the previous one (see [`DirStorage::restored_from_previous`]).
//! Plain files rather than an embedded database: the data is one small snapshot and
//! immutable content-addressed blobs, which rename-into-place covers completely, and the
//! layout stays readable with `ls` on a poi's SD card.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A replica's storage in a directory.
#[derive(Debug)]
pub struct DirStorage {
    root: PathBuf,
    /// Set when the newest snapshot was damaged and the previous one was loaded instead.
    restored: AtomicBool,
    /// Set while `state.bin` is that damaged file: the next save replaces it in place.
    damaged_current: AtomicBool,
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
        for dir in [root.clone(), root.join(BLOB_DIR)] {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == &TEMP_SUFFIX[1..]) {
                    fs::remove_file(&path)?;
                }
            }
        }
        let storage = DirStorage { root, restored: false.into(), damaged_current: false.into() };
        storage.quarantine_damaged()?;
        Ok(storage)
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
    /// rotted on the card is never served and is fetched again from a peer.
    fn quarantine_damaged(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.root.join(BLOB_DIR))? {
            let path = entry?.path();
            let Some(hash) = path.file_name().and_then(|n| n.to_str()).and_then(parse_hash) else { continue };
            // An unreadable blob (bad sector) is as lost as a damaged one: set it aside
            // rather than refuse to start.
            let sound = fs::read(&path).is_ok_and(|bytes| hash.verifies(&bytes));
            if !sound {
                self.quarantine(&hash)?;
            }
        }
        Ok(())
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
        let target = self.quarantine_path(&hash.to_string())?;
        fs::rename(self.blob_path(hash), &target)?;
        tracing::warn!(blob = %hash, to = %target.display(), "blob does not match its hash: quarantined");
        Ok(())
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join(BLOB_DIR).join(hash.to_string())
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_after(path, bytes, || Ok(()))
}

/// [`write_atomically`], running `before_rename` once the new bytes are safely on disk and
/// just before they take the final name (to move the old file elsewhere, say).
fn write_atomically_after(path: &Path, bytes: &[u8], before_rename: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let mut temp_name = path.file_name().expect("store paths name a file").to_os_string();
    temp_name.push(TEMP_SUFFIX);
    let temp = path.with_file_name(temp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Owner-only: config.json holds the pairing key, and the library is private content.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    before_rename()?;
    fs::rename(&temp, path)?;
    File::open(path.parent().expect("store paths have a parent"))?.sync_all()
}

fn storage_error(what: &str, path: &Path, e: io::Error) -> StorageError {
    StorageError(format!("{what} {}: {e}", path.display()))
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
        write_atomically_after(&path, &bytes, keep_previous).map_err(|e| storage_error("cannot write", &path, e))?;
        self.damaged_current.store(false, Ordering::Relaxed);
        Ok(())
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
        write_atomically(&path, bytes).map_err(|e| storage_error("cannot write", &path, e))
    }

    fn remove_blob(&mut self, hash: &BlobHash) -> Result<(), StorageError> {
        let path = self.blob_path(hash);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(storage_error("cannot remove", &path, e)),
            _ => Ok(()),
        }
    }

    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        let dir = self.root.join(BLOB_DIR);
        let entries = fs::read_dir(&dir).map_err(|e| storage_error("cannot list", &dir, e))?;
        let mut hashes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| storage_error("cannot list", &dir, e))?;
            if let Some(hash) = entry.file_name().to_str().and_then(parse_hash) {
                hashes.push(hash);
            }
        }
        Ok(hashes)
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

    #[test]
    fn unused_blobs_are_removed_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut poi = Replica::open(DirStorage::open(dir.path()).unwrap(), identity()).unwrap();
        let id = poi.add_image("x", 1, 1, &[1, 2, 3], 1_000).unwrap();
        poi.delete_image(id, 2_000).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }
}
