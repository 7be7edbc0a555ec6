//! Heap the application takes beside its library: what a board pays for running `App` over
//! a replica it would hold anyway (the replica's own share is measured on RV32 by
//! crates/povpoi-core-riscv). Measured here on x86-64, whose pointers and collection headers
//! are twice RV32's, so the board's share is at most this.
//!
//! One test in this binary: the allocator's counters are global. It also measures what a
//! board's own session adds at its peak, fetching the largest image a board fetches.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use povpoi_app::clock::ClockService;
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, MemoryStorage, Replica, SyncOptions};
use povpoi_core::wire;
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
/// The most held since [`start_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Starts measuring the peak from what is held now.
fn start_peak() -> usize {
    let now = HELD.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(held, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The shipped partition table's `povpoi` partition (firmware/partitions.csv), bytes.
const PARTITION: u32 = 2_496 * 1024;

fn config(device: DeviceId) -> Config {
    Config {
        sync_interval: 0,
        // A board's (firmware/src/main.rs): 16 KiB of pixels per answer, an 8 KiB body less 1 KiB.
        max_fetched_blob_bytes: FETCH_LIMIT,
        max_pushed_blob_bytes: 7 * 1024,
        ..common::board_config(device)
    }
}

/// The largest image pixels a board fetches (firmware/src/sync_client.rs,
/// `MAX_FETCHED_BLOB_BYTES`).
const FETCH_LIMIT: usize = 16 * 1024;

#[test]
fn a_board_holds_200_images_sync_state_in_its_64_kib_heap() {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };

    // The application alone, beside a replica it would hold anyway.
    let mut replica = Replica::open(MemoryStorage::default(), identity.clone()).unwrap();
    for i in 0..200u64 {
        replica.add_image(&format!("image {i:03}.png"), 2, 2, &[i as u8; 12], 1_000 + i).unwrap();
    }
    let before = HELD.load(Relaxed);
    let mut app = App::new(config(device), replica, ClockService::new(device, 1, 2, 0));
    app.play(now);
    let added = HELD.load(Relaxed) - before;
    println!("App beside a 200-image replica: {added} bytes of heap (x86-64)");
    assert!(added < 8 * 1024, "{added}");
    assert_eq!(app.replica().image_count(), 200);
    drop(app);

    let (held, worst, _) = board_session(200, now);
    // x86-64's pointers and collection headers are twice RV32's: what fits here fits a board.
    assert!(held <= 64 * 1024, "{held}");
    // Not within 64 KiB beside 200 images (docs/FIRMWARE.md, Budgets): a regression guard
    // only, at a few times the largest message.
    assert!(worst <= 4 * (FETCH_LIMIT + 1024) + 16 * 1024, "{worst}");
    // The 60 images of 400x32 the shipped partition holds: the board and its session fit.
    let (held, worst, image) = board_session(60, now);
    assert!(held + worst <= 64 * 1024, "{held} + {worst}");
    // The image's bytes are held once: decoded in the answer's own buffer.
    assert!(image <= FETCH_LIMIT + 6 * 1024, "{image}");
}

/// A board after a restart with `images` images, then its own session fetching the
/// largest image it fetches: what it holds at rest, the most a step of the session adds, and
/// what its last step, taking the image, adds.
fn board_session(images: u64, now: Now) -> (usize, usize, usize) {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    // All of it as a board keeps it after a restart: the flash store's index, the replica
    // read back from its snapshot, the application. Small pictures, so that the partition
    // holds all 200 and the store indexes 200 blobs (an image's sync state does not depend
    // on its size).
    let store = FlashStore::open(RamFlash::new(PARTITION as usize / SECTOR), 0..PARTITION).unwrap();
    let mut replica = Replica::open(&store, identity.clone()).unwrap();
    for i in 0..images {
        let pixels: Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u64 * 7 + i) as u8).collect();
        replica.add_image(&format!("image {i:03}.png"), 8, 8, &pixels, 1_000 + i).unwrap();
    }
    drop(replica);
    let flash = store.into_flash();
    let before = HELD.load(Relaxed);
    let store = Box::leak(Box::new(FlashStore::open(flash, 0..PARTITION).unwrap()));
    let replica = Replica::open(&*store, identity).unwrap();
    let mut app = App::new(config(device), replica, ClockService::new(device, 1, 2, 0));
    app.play(now);
    let held = HELD.load(Relaxed) - before;
    println!("a board after a restart with {images} images: store, replica and App hold {held} bytes of heap (x86-64)");
    assert_eq!(app.replica().image_count(), images as usize);

    // That board's own session with a peer holding one image of the largest size a board
    // fetches (its App config: a 24 KiB answer, less 1 KiB). The peer answers in this
    // process; only the board's side of each step is measured: from the answer's bytes as
    // they arrive to the next request's bytes as they leave (decoding, merging, saving).
    let peer_identity =
        Identity { replica: ReplicaId(2), device: DeviceId([2, 0, 0, 0, 0, 2]), group: "default".into() };
    let mut peer = Replica::open(MemoryStorage::default(), peer_identity).unwrap();
    let (width, height) = (FETCH_LIMIT / (32 * 3), 32);
    let pixels: Vec<u8> = (0..width * height * 3).map(|k| (k * 13) as u8).collect();
    peer.add_image("largest", width as u32, height as u32, &pixels, 5_000).unwrap();
    let (mut session, request) = app.start_session(SyncOptions::default());
    let mut outgoing = wire::to_bytes(&request);
    drop(request);
    let (mut steps, mut largest_answer, mut worst, mut first) = (0, 0, 0, 0);
    let mut last;
    loop {
        let answer = wire::to_bytes(&peer.respond(wire::from_bytes(&outgoing).unwrap(), 6_000));
        drop(outgoing);
        largest_answer = largest_answer.max(answer.len());
        // The answer is the board's from here: it arrived in its heap.
        let before = start_peak() - answer.capacity();
        // Decoded in its own buffer, as the firmware's sync client does.
        let decoded = wire::response_from_vec(answer).unwrap();
        let next = app.merge(&mut session, decoded, now).unwrap();
        let bytes = next.as_ref().map(wire::to_bytes);
        drop(next);
        let step = PEAK.load(Relaxed) - before;
        if steps == 0 {
            first = step;
        }
        last = step;
        worst = worst.max(step);
        steps += 1;
        match bytes {
            Some(bytes) => outgoing = bytes,
            None => break,
        }
    }
    assert_eq!(app.replica().image_count(), images as usize + 1);
    assert_eq!(app.replica().missing_blobs(), [], "the largest image arrived");
    println!(
        "its own session fetching a {}-byte image: {steps} steps, answers up to {largest_answer} bytes; \
         over the board at rest: {first} bytes building the Push of its {images} records, {last} taking the \
         image, at most {worst} (so {} in all) (x86-64)",
        pixels.len(),
        held + worst
    );
    (held, worst, last)
}
