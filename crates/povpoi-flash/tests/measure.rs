//! How many images fit, how many bytes a save writes, how evenly sectors wear.
//!
//! The numbers are printed (`cargo test -p povpoi-flash --test measure -- --nocapture`)
//! and checked against what the layout says they must be.

mod common;

use common::{IMAGE_LEN, RamFlash, SECTOR, pattern};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Identity, MemoryStorage, Replica, Storage};
use povpoi_flash::{FlashStore, HEADER_LEN, Options, RESERVE_MARGIN_SECTORS};

const MB: u32 = 1 << 20;
/// The `povpoi` data partition of the ESP32-C3/C6 firmware (firmware/partitions.csv): a
/// 4 MB flash less the bootloader, partition table, nvs, phy_init and a 1.5 MiB app.
const FIRMWARE_REGION: u32 = 0x27_0000;
const P: usize = SECTOR - HEADER_LEN;

/// The snapshot of a library of 200 400x32 images, as the core's replica writes it.
fn snapshot_of_200_images() -> Vec<u8> {
    let identity = Identity { replica: ReplicaId(7), device: DeviceId([1, 2, 3, 4, 5, 6]), group: "poi".into() };
    let mut poi = Replica::open(MemoryStorage::default(), identity).unwrap();
    for i in 0..200u64 {
        poi.add_image(&format!("image {i:03}.png"), 400, 32, &pattern(i, IMAGE_LEN), 1_000 + i).unwrap();
    }
    poi.storage().state.clone().unwrap()
}

fn settings(store: &mut FlashStore<RamFlash>) {
    store.set_setting("device.name", b"POV Poi 3A4F1").unwrap();
    store.set_setting("wifi.ssid", b"studio-network").unwrap();
    store.set_setting("wifi.psk", &[b'p'; 63]).unwrap();
    store.set_setting("pairing.key", &[7; 32]).unwrap();
    store.set_setting("leds", &64u16.to_le_bytes()).unwrap();
}

/// Images that fit beside the snapshot and the settings in a region of `bytes`.
fn images_that_fit(bytes: u32, snapshot: &[u8]) -> (usize, FlashStore<RamFlash>) {
    let mut store = FlashStore::open(RamFlash::new(bytes as usize), 0..bytes).unwrap();
    store.save_state(snapshot).unwrap();
    settings(&mut store);
    let mut n = 0;
    loop {
        let image = pattern(1_000 + n as u64, IMAGE_LEN);
        match store.save_blob(&BlobHash::of(&image), &image) {
            Ok(()) => n += 1,
            Err(e) => {
                assert!(e.disk_full, "{e}");
                break;
            }
        }
    }
    (n, store)
}

#[test]
fn images_per_region_with_the_sync_state_of_200_images() {
    let snapshot = snapshot_of_200_images();
    let snap_sectors = snapshot.len().div_ceil(P) as u32;
    let image_sectors = IMAGE_LEN.div_ceil(P) as u32;
    for region in [FIRMWARE_REGION, 3 * MB, 7 * MB] {
        let (n, mut store) = images_that_fit(region, &snapshot);
        let sectors = region / SECTOR as u32;
        // Everything but the snapshot, the settings (one sector) and the reserve is images.
        let expected = (sectors - snap_sectors - 1 - (snap_sectors + RESERVE_MARGIN_SECTORS)) / image_sectors;
        eprintln!(
            "{} KiB region ({sectors} sectors), snapshot of 200 images {} bytes ({snap_sectors} sectors): {n} images of {IMAGE_LEN} bytes fit",
            region / 1024,
            snapshot.len()
        );
        assert_eq!(n as u32, expected);
        // Full, it still takes the next snapshot save (a delete's) and the delete.
        store.save_state(&snapshot).unwrap();
        let first = pattern(1_000, IMAGE_LEN);
        store.remove_blob(&BlobHash::of(&first)).unwrap();
        store.save_blob(&BlobHash::of(&first), &first).unwrap();
    }
}

#[test]
fn bytes_written_per_byte_stored() {
    let snapshot = snapshot_of_200_images();
    let mut store = FlashStore::open(RamFlash::new(3 * MB as usize), 0..3 * MB).unwrap();
    store.save_state(&snapshot).unwrap();
    let image = pattern(1, IMAGE_LEN);
    let cost = |store: &mut FlashStore<RamFlash>, f: &mut dyn FnMut(&mut FlashStore<RamFlash>)| {
        let before = store.flash().stats;
        f(store);
        let after = store.flash().stats;
        (after.bytes_written - before.bytes_written, after.erases - before.erases)
    };
    let (blob_written, blob_erases) = cost(&mut store, &mut |s| s.save_blob(&BlobHash::of(&image), &image).unwrap());
    let (state_written, state_erases) = cost(&mut store, &mut |s| s.save_state(&snapshot).unwrap());
    let blob_wa = blob_written as f64 / IMAGE_LEN as f64;
    let state_wa = state_written as f64 / snapshot.len() as f64;
    eprintln!("blob of {IMAGE_LEN} bytes: {blob_written} bytes written ({blob_wa:.4}x), {blob_erases} sectors erased");
    eprintln!(
        "snapshot of {} bytes replacing one: {state_written} bytes written ({state_wa:.4}x), {state_erases} sectors erased",
        snapshot.len()
    );
    // Payload padded to a word, a header per sector, and for a replacement the voiding of
    // the old first header: nothing else.
    let sectors = |len: usize| len.div_ceil(P) as u64;
    assert_eq!(
        blob_written,
        (IMAGE_LEN.next_multiple_of(4) + HEADER_LEN) as u64 + sectors(IMAGE_LEN) * HEADER_LEN as u64
            - HEADER_LEN as u64
    );
    assert_eq!(blob_erases, sectors(IMAGE_LEN));
    assert_eq!(
        state_written,
        (snapshot.len().next_multiple_of(4) + HEADER_LEN) as u64 + sectors(snapshot.len()) * HEADER_LEN as u64
    );
    assert_eq!(state_erases, sectors(snapshot.len()));
}

/// Erase counts of the region's sectors after `saves` snapshot saves on a store full of
/// images: (most, mean).
fn wear(relocate_every: u32, saves: u32, snapshot: &[u8]) -> (u32, f64) {
    let region = 3 * MB;
    let mut store =
        FlashStore::open_with(RamFlash::new(region as usize), 0..region, Options { relocate_every }).unwrap();
    store.save_state(snapshot).unwrap();
    let mut i = 0;
    loop {
        let image = pattern(5_000 + i, IMAGE_LEN);
        if store.save_blob(&BlobHash::of(&image), &image).is_err() {
            break;
        }
        i += 1;
    }
    let start = store.flash().erase_counts.clone();
    for _ in 0..saves {
        store.save_state(snapshot).unwrap();
    }
    let counts: Vec<u32> = store.flash().erase_counts.iter().zip(&start).map(|(a, b)| a - b).collect();
    let most = *counts.iter().max().unwrap();
    let mean = counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64;
    (most, mean)
}

#[test]
fn moving_the_oldest_blob_spreads_erases_over_a_full_store() {
    let snapshot = snapshot_of_200_images();
    let saves = 4_000;
    let (pinned_most, pinned_mean) = wear(0, saves, &snapshot);
    let (moving_most, moving_mean) = wear(16, saves, &snapshot);
    eprintln!(
        "3 MB full of images, {saves} snapshot saves: most erases of a sector {pinned_most} (mean {pinned_mean:.1}) without moves, {moving_most} (mean {moving_mean:.1}) moving the oldest blob every 16 saves"
    );
    assert!(moving_most * 3 < pinned_most, "{moving_most} vs {pinned_most}");
}
