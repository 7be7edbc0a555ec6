//! Heap the store takes: at rest, and at its peak during each kind of save and load.
//!
//! One test in this binary: the allocator's counters are global.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use common::{IMAGE_LEN, RamFlash, pattern};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Identity, MemoryStorage, Replica, Storage};
use povpoi_flash::{FlashStore, Options};

/// The system allocator, counting the bytes held now and the most held since a reset.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated during `f` beyond what was held before it, at the most.
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = NOW.load(Relaxed);
    PEAK.store(before, Relaxed);
    let out = f();
    (PEAK.load(Relaxed) - before, out)
}

const REGION: u32 = 3 << 20;

#[test]
fn heap_at_rest_and_at_the_peak_of_each_operation() {
    let identity = Identity { replica: ReplicaId(7), device: DeviceId([1, 2, 3, 4, 5, 6]), group: "poi".into() };
    let mut poi = Replica::open(MemoryStorage::default(), identity).unwrap();
    for i in 0..200u64 {
        poi.add_image(&format!("image {i:03}.png"), 400, 32, &pattern(i, IMAGE_LEN), 1_000 + i).unwrap();
    }
    let snapshot = poi.storage().state.clone().unwrap();
    drop(poi);
    let options = Options { relocate_every: 16 };

    // A store as a poi has it: the snapshot, settings, 70 images.
    let mut store = FlashStore::open_with(RamFlash::new(REGION as usize), 0..REGION, options).unwrap();
    store.save_state(&snapshot).unwrap();
    store.set_setting("device.name", b"POV Poi 3A4F1").unwrap();
    store.set_setting("wifi.psk", &[b'p'; 63]).unwrap();
    for i in 0..70 {
        let image = pattern(100 + i, IMAGE_LEN);
        store.save_blob(&BlobHash::of(&image), &image).unwrap();
    }
    let flash = store.into_flash();

    let before = NOW.load(Relaxed);
    let (open_peak, store) = peak_of(|| FlashStore::open_with(flash, 0..REGION, options).unwrap());
    let mut store = store;
    let resident = NOW.load(Relaxed) - before;

    let image = pattern(1, IMAGE_LEN);
    let hash = BlobHash::of(&image);
    let (save_blob, ()) = peak_of(|| store.save_blob(&hash, &image).unwrap());
    let (load_blob, loaded) = peak_of(|| store.load_blob(&hash).unwrap().unwrap());
    assert_eq!(loaded, image);
    drop(loaded);
    let (save_state, ()) = peak_of(|| store.save_state(&snapshot).unwrap());
    let (load_state, loaded) = peak_of(|| store.load_state().unwrap().unwrap());
    assert_eq!(loaded, snapshot);
    drop(loaded);
    let (set_setting, ()) = peak_of(|| store.set_setting("leds", &[64, 0]).unwrap());
    // Saves 2..=16 since the open: the 16th moves the oldest blob.
    for _ in 2..16 {
        store.save_state(&snapshot).unwrap();
    }
    let moves = store.flash().stats.erases;
    let (save_state_moving, ()) = peak_of(|| store.save_state(&snapshot).unwrap());
    assert!(store.flash().stats.erases - moves > 10, "the 16th save moves a blob");

    eprintln!(
        "store at rest after open (70 blobs, snapshot, settings; 3 MB region): {resident} bytes; open peak {open_peak}"
    );
    eprintln!("peak heap: save_blob {IMAGE_LEN} B: {save_blob}, load_blob: {load_blob}");
    eprintln!("peak heap: save_state {} B: {save_state}, load_state: {load_state}", snapshot.len());
    eprintln!("peak heap: save_state that moves a blob: {save_state_moving}, set_setting: {set_setting}");
    // A load holds the value once, a save never copies it; a move holds one payload.
    assert!(load_blob < IMAGE_LEN + 256, "{load_blob}");
    assert!(load_state < snapshot.len() + 256, "{load_state}");
    assert!(save_blob < 4096, "{save_blob}");
    assert!(save_state < 1024, "{save_state}");
    assert!(save_state_moving < 4000 + 1024, "{save_state_moving}");
    assert!(resident < 8 * 1024, "{resident}");
}
