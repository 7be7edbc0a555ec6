//! The poi's replicated library as the node shares it between HTTP handlers, the sync loop
//! and discovery: one replica behind a lock, disk work off the async threads, and a
//! notification on every change (what push-on-change and the event stream listen to).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use povpoi_core::hash::BlobHash;
use povpoi_core::model::ImageId;
use povpoi_core::sync::{Identity, Replica};
use tokio::sync::watch;

use crate::events::{Event, EventBus};
use crate::output::ShowImage;
use crate::storage::DirStorage;

/// The replica type of a node: the core's library on files.
pub type Poi = Replica<DirStorage>;

/// Milliseconds since the epoch by the system clock: what edits are stamped with.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A short digest of what a replica has seen: equal digests mean nothing to sync.
pub fn digest_of(poi: &Poi) -> String {
    povpoi_peer::advert::library_digest(poi.group(), poi.knowledge())
}

/// Where a change came from, for watchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An edit made on this poi.
    Local,
    /// A merge of a peer's records.
    Peer,
}

/// The shared library handle; clones share the same replica.
#[derive(Clone)]
pub struct Library {
    replica: Arc<Mutex<Poi>>,
    digest: Arc<watch::Sender<String>>,
    events: EventBus,
}

impl Library {
    /// Opens (or creates) the library stored in `storage`.
    pub fn open(
        storage: DirStorage,
        identity: Identity,
        events: EventBus,
    ) -> Result<Library, povpoi_core::sync::Error> {
        let poi = Replica::open(storage, identity)?;
        let digest = digest_of(&poi);
        Ok(Library { replica: Arc::new(Mutex::new(poi)), digest: Arc::new(watch::channel(digest).0), events })
    }

    fn lock(&self) -> MutexGuard<'_, Poi> {
        // A panic while holding the lock cannot leave the replica half-changed (every change
        // is saved whole or rolled back), so a poisoned lock is still safe to use.
        self.replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the library (in memory only: keep it short, it holds the lock).
    pub fn read<R>(&self, f: impl FnOnce(&Poi) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` on the library off the async threads (it may write to disk); if what the
    /// replica has seen changed, watchers and push-on-change are told.
    pub async fn write<R: Send + 'static>(&self, origin: Origin, f: impl FnOnce(&mut Poi) -> R + Send + 'static) -> R {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut poi = this.lock();
            let result = f(&mut poi);
            // Published under the lock, so a change is announced by the write that made it.
            this.publish(digest_of(&poi), origin);
            drop(poi);
            result
        })
        .await
        .expect("library task panicked")
    }

    fn publish(&self, digest: String, origin: Origin) {
        let changed = self.digest.send_if_modified(|current| {
            if *current == digest {
                return false;
            }
            current.clone_from(&digest);
            true
        });
        if changed {
            let source = if origin == Origin::Local { "local" } else { "peer" };
            self.events.send(Event::LibraryChanged { digest, source });
        }
    }

    /// An image's metadata and pixels for the player (blocking: call off the async threads).
    /// None when the image is gone or its pixels have not arrived yet.
    pub fn image_for_display(&self, id: ImageId) -> Option<ShowImage> {
        let mut poi = self.lock();
        let meta = poi.image(id)?.clone();
        let pixels = poi.image_pixels(&meta.pixels()).ok().flatten()?;
        Some(ShowImage { width: meta.width(), height: meta.height(), pixels: Arc::new(pixels) })
    }

    /// The current digest.
    pub fn digest(&self) -> String {
        self.digest.borrow().clone()
    }

    /// A receiver woken on every change of the library.
    pub fn changes(&self) -> watch::Receiver<String> {
        self.digest.subscribe()
    }
}

/// Where a data directory caches thumbnails: `DIR/thumbnails/<pixel blob hash>-<W>x<H>.png`.
/// Keyed by the pixels, not the image id: a renamed image keeps its thumbnail, and images
/// with the same pixels share one.
pub const THUMBNAIL_DIR: &str = "thumbnails";

/// The cache file of the thumbnail of the pixels `hash`, drawn to fit `max_w` x `max_h`.
pub fn thumbnail_path(data_dir: &Path, hash: &BlobHash, max_w: u32, max_h: u32) -> PathBuf {
    data_dir.join(THUMBNAIL_DIR).join(format!("{hash}-{max_w}x{max_h}.png"))
}

/// Removes the cached thumbnails of pixels no image uses any more (deleted here or by a
/// peer), and at start (`starting`) what an interrupted write left. Returns how many went.
pub fn prune_thumbnails(data_dir: &Path, library: &Library, starting: bool) -> std::io::Result<usize> {
    let dir = data_dir.join(THUMBNAIL_DIR);
    if !dir.is_dir() {
        return Ok(0);
    }
    if starting {
        crate::storage::remove_leftovers(&dir)?;
    }
    let used: HashSet<String> = library.read(|poi| poi.images().map(|(_, meta)| meta.pixels().to_string()).collect());
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Only finished cache files: a write in progress (`.tmp`) is left to finish.
        let Some((hash, _)) = name.strip_suffix(".png").and_then(|n| n.split_once('-')) else { continue };
        if !used.contains(hash) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
