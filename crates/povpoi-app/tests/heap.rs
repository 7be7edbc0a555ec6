//! Heap the application takes beside its library: what a board pays for running `App` over
//! a replica it would hold anyway (the replica's own share is measured on RV32 by
//! crates/povpoi-core-riscv). Measured here on x86-64, whose pointers and collection headers
//! are twice RV32's, so the board's share is at most this.
//!
//! One test in this binary: the allocator's counters are global. It also measures what a
//! board's own session adds at its peak, fetching the largest image a board fetches.

extern crate alloc;

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use povpoi_app::clock::ClockService;
use povpoi_app::{App, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, MemoryStorage, Replica};

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

/// Image pixels a board fetches whatever its library holds (firmware/src/sync_client.rs,
/// `MIN_FETCHED_BLOB_BYTES`).
const FETCH_LIMIT: usize = 16 * 1024;

/// A 400x32 image: what a board fetches when its heap has room (`MAX_FETCHED_BLOB_BYTES`).
const WIDE_IMAGE: usize = 400 * 32 * 3;

/// A board's session as the QEMU run measures it on RV32: one copy of the measurement.
#[allow(dead_code)] // its column drawing is for the QEMU run
#[path = "../../povpoi-core-riscv/src/board.rs"]
mod board;

/// This allocator's counters, as the board measurement reads them.
struct Meter;

impl board::Meter for Meter {
    fn used(&self) -> usize {
        HELD.load(Relaxed)
    }

    fn start_peak(&self) -> usize {
        start_peak()
    }

    fn peak(&self) -> usize {
        PEAK.load(Relaxed)
    }
}

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
    let mut app = App::new(common::board_config(device), replica, ClockService::new(device, 1, 2, 0));
    app.play(now);
    let added = HELD.load(Relaxed) - before;
    println!("App beside a 200-image replica: {added} bytes of heap (x86-64)");
    assert!(added < 8 * 1024, "{added}");
    assert_eq!(app.replica().image_count(), 200);
    drop(app);

    // A board after a restart with 200, then 60 images in its flash, and its own session
    // with a peer holding one image of the size it fetches.
    let session = |images: u32, fetched: usize, key: Option<&str>| {
        let heap = board::session_heap(images, false, fetched, 0, key, &Meter);
        let group = if key.is_some() { "a keyed" } else { "an open" };
        println!(
            "a board after a restart with {images} images: store, replica and App hold {} bytes; its own session in {group} group \
             fetching an image of at most {fetched} bytes: {} steps, answers up to {} bytes; over the board at rest: {} \
             bytes taking the summary and pushing the first of {} parts, {} taking the image, at most {} (so {} in \
             all) (x86-64)",
            heap.at_rest,
            heap.steps,
            heap.largest_answer,
            heap.first_step,
            heap.parts,
            heap.last_step,
            heap.worst_step,
            heap.at_rest + heap.worst_step
        );
        heap
    };
    // x86-64's pointers and collection headers are twice RV32's: the budget itself is
    // checked on RV32 (the QEMU run: 200 images and their session within 64 KiB).
    let key = Some("pairing-key-1");
    let cases = [(200, FETCH_LIMIT, None), (60, FETCH_LIMIT, None), (200, FETCH_LIMIT, key), (60, WIDE_IMAGE, key)];
    for (images, fetched, key) in cases {
        let heap = session(images, fetched, key);
        assert!(heap.at_rest <= 64 * 1024, "{}", heap.at_rest);
        assert!(heap.parts >= 2, "a board pushes its records in parts");
        // No step holds more than the image beside the board at rest, and the image once
        // (decoded in the answer's own buffer): not a second list of the blobs, a doubled
        // index, nor a whole push of 200 records.
        assert!(heap.worst_step <= fetched + 1024, "{images} images: {}", heap.worst_step);
    }

    // A node's session pushing records to a board: the node's own parts would be 6 KiB (one
    // for 60 images' records); the board's summary asks for 2 KiB, which it takes beside its
    // library (the RV32 totals are checked in the QEMU run).
    for (images, pushed, at_least) in [(140, 60, 2), (100, 100, 4)] {
        let answered = board::responder_heap(images, false, pushed, &Meter);
        println!(
            "a board with {images} images taking {pushed} more from a node's session in {} parts: {} bytes at rest, {} \
             more at most in a step (x86-64)",
            answered.parts, answered.at_rest, answered.worst_step
        );
        assert!(answered.parts >= at_least, "{} parts", answered.parts);
    }

    // A phone's listing of 200 images (41 KB of JSON) is sent an item at a time: never whole.
    let listing = board::listing_heap(200, true, &Meter, || 0);
    println!(
        "a board with 200 reordered images listing them: {} bytes sent, {} more at most (x86-64)",
        listing.bytes, listing.peak
    );
    assert_eq!(listing.listed, 200);
    assert!(listing.bytes > 40_000 && listing.peak < 2 * 1024, "{} bytes at the peak", listing.peak);

    // A phone's upload of a 400x32 image goes to the flash as it arrives: between its pieces
    // the board holds its parser, a 1 KiB buffer and the store's writer, never the pixels.
    let upload = board::upload_heap(200, &Meter);
    println!(
        "a board with 200 images taking a 400x32 upload: {} bytes held between pieces, {} more at most (x86-64)",
        upload.held, upload.peak
    );
    assert!(upload.stored, "the upload is stored");
    // The peak is the record's edit (its snapshot saved as it is encoded), a few KB.
    assert!(upload.held < 3 * 1024 && upload.peak < 16 * 1024, "{} held, {} at the peak", upload.held, upload.peak);
}
