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

#[test]
fn the_application_adds_little_to_its_library() {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let mut replica = Replica::open(MemoryStorage::default(), identity).unwrap();
    for i in 0..200u64 {
        replica.add_image(&format!("image {i:03}.png"), 2, 2, &[i as u8; 12], 1_000 + i).unwrap();
    }
    let config = Config {
        device_id: device,
        device_name: device.default_name(),
        group_key: None,
        independent: false,
        auto_sync: true,
        sync_interval: 0,
        peer_timeout_s: 120,
        port: 80,
        replay_capacity: 128,
    };
    let before = HELD.load(Relaxed);
    let mut app = App::new(config, replica, ClockService::new(device, 1, 2, 0));
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };
    app.play(now);
    let added = HELD.load(Relaxed) - before;
    println!("App beside a 200-image replica: {added} bytes of heap (x86-64)");
    assert!(added < 8 * 1024, "{added}");
    assert_eq!(app.replica().image_count(), 200);
}
