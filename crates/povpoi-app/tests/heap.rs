//! Heap the application takes beside its library: what a board pays for running `App` over
//! a replica it would hold anyway (the replica's own share is measured on RV32 by
//! crates/povpoi-core-riscv). Measured here on x86-64, whose pointers and collection headers
//! are twice RV32's, so the board's share is at most this.
//!
//! One test in this binary: the allocator's counters are global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use povpoi_app::clock::ClockService;
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, MemoryStorage, Replica};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::RamFlash;

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Relaxed);
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
        device_id: device,
        device_name: device.default_name(),
        group_key: None,
        independent: false,
        auto_sync: true,
        sync_interval: 0,
        peer_timeout_s: 120,
        port: 80,
        real_time: true,
        replay_capacity: 128,
        max_fetched_blob_bytes: usize::MAX,
        max_pushed_blob_bytes: usize::MAX,
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
    let mut app = App::new(config(device), replica, ClockService::new(device, 1, 2, 0));
    app.play(now);
    let added = HELD.load(Relaxed) - before;
    println!("App beside a 200-image replica: {added} bytes of heap (x86-64)");
    assert!(added < 8 * 1024, "{added}");
    assert_eq!(app.replica().image_count(), 200);
    drop(app);

    // All of it as a board keeps it after a restart: the flash store's index, the replica
    // read back from its snapshot, the application. Small pictures, so that the partition
    // holds all 200 and the store indexes 200 blobs (an image's sync state does not depend
    // on its size).
    let store = FlashStore::open(RamFlash::new(PARTITION as usize), 0..PARTITION).unwrap();
    let mut replica = Replica::open(&store, identity.clone()).unwrap();
    for i in 0..200u64 {
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
    println!("a board after a restart with 200 images: store, replica and App hold {held} bytes of heap (x86-64)");
    assert_eq!(app.replica().image_count(), 200);
    // x86-64's pointers and collection headers are twice RV32's: what fits here fits a board.
    assert!(held <= 64 * 1024, "{held}");
}
