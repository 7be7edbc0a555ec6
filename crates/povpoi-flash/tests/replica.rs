//! A real replica on top of the flash store.

mod common;

use common::{IMAGE_LEN, RamFlash, SECTOR, pattern};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Error, Identity, Replica, Storage};
use povpoi_flash::{FlashStore, HEADER_LEN};

fn identity() -> Identity {
    Identity { replica: ReplicaId(42), device: DeviceId([1, 2, 3, 4, 5, 6]), group: "g".into() }
}

fn open(bytes: Vec<u8>, sectors: u32) -> Replica<FlashStore<RamFlash>> {
    let store = FlashStore::open(RamFlash::from_bytes(bytes), 0..sectors * SECTOR as u32).unwrap();
    Replica::open(store, identity()).unwrap()
}

fn bytes_of(poi: Replica<FlashStore<RamFlash>>) -> Vec<u8> {
    poi.into_storage().into_flash().bytes
}

/// What a person sees of the library: each image's name, size and pixels, in order.
fn library<S: Storage>(poi: &mut Replica<S>) -> Vec<(String, u16, u16, Vec<u8>)> {
    let metas: Vec<_> = poi.images().map(|(_, m)| m.clone()).collect();
    metas
        .into_iter()
        .map(|m| {
            let pixels = poi.image_pixels(&m.pixels()).unwrap().expect("pixels held");
            (m.name().to_string(), m.width(), m.height(), pixels)
        })
        .collect()
}

#[test]
fn a_blob_whose_sectors_break_while_the_store_is_open_is_wanted_again() {
    let sectors = 64;
    let flash = RamFlash::new(sectors * SECTOR);
    let rot = flash.rot.clone();
    let mut poi = Replica::open(FlashStore::open(flash, 0..(sectors * SECTOR) as u32).unwrap(), identity()).unwrap();
    let pixels = pattern(7, IMAGE_LEN);
    let id = poi.add_image("wide", 400, 32, &pixels, 1_000).unwrap();
    let hash = poi.image(id).unwrap().pixels();
    assert!(poi.missing_blobs().is_empty());
    // The header of the image's first sector (the one whose payload starts with its pixels).
    let first = {
        let flash = poi.storage().flash();
        (0..sectors).find(|s| flash.bytes[s * SECTOR + HEADER_LEN..][..64] == pixels[..64]).unwrap()
    };
    rot.borrow_mut().push(first * SECTOR);
    assert_eq!(poi.image_pixels(&hash).unwrap(), None);
    assert!(!poi.storage().has_blob(&hash).unwrap());
    assert_eq!(poi.missing_blobs(), [hash], "forgotten, so fetched again");
}

#[test]
fn a_replica_reopens_from_flash_with_the_same_library() {
    let sectors = 128;
    let mut poi = open(vec![0xFF; sectors as usize * SECTOR], sectors);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(poi.add_image(&format!("image {i}"), 400, 32, &pattern(i, IMAGE_LEN), 1_000 + i).unwrap());
    }
    poi.set_brightness(40, 2_000, Cue::NOW).unwrap();
    poi.delete_image(ids[2], 3_000).unwrap();
    let before = library(&mut poi);
    assert_eq!(before.len(), 5);

    let mut poi = open(bytes_of(poi), sectors);
    assert_eq!(library(&mut poi), before);
    assert_eq!(poi.settings().brightness, 40);
    // The deleted image's pixels are gone from the flash, not only from the library.
    let held = poi.storage().blob_hashes().unwrap();
    assert_eq!(held.len(), 5);
    assert!(!held.contains(&povpoi_core::hash::BlobHash::of(&pattern(2, IMAGE_LEN))));
}

#[test]
fn a_full_flash_refuses_an_image_with_disk_full_and_takes_it_after_a_delete() {
    // 56 sectors: a snapshot of 1 sector and its reserve of 1 + 10, four images of 10
    // sectors and 5 left over.
    let sectors = 56;
    let mut poi = open(vec![0xFF; sectors as usize * SECTOR], sectors);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(poi.add_image(&format!("image {i}"), 400, 32, &pattern(i, IMAGE_LEN), 1_000 + i).unwrap());
    }
    let before = library(&mut poi);
    match poi.add_image("one too many", 400, 32, &pattern(9, IMAGE_LEN), 2_000) {
        Err(Error::Storage(e)) => assert!(e.disk_full, "{e}"),
        other => panic!("expected a full flash, got {other:?}"),
    }
    assert_eq!(library(&mut poi), before);
    poi.delete_image(ids[0], 3_000).unwrap();
    poi.add_image("one too many", 400, 32, &pattern(9, IMAGE_LEN), 4_000).unwrap();
    let mut poi = open(bytes_of(poi), sectors);
    let names: Vec<_> = library(&mut poi).into_iter().map(|(name, ..)| name).collect();
    assert_eq!(names, ["image 1", "image 2", "image 3", "one too many"]);
}

#[test]
fn settings_change_through_the_store_a_replica_saves_through() {
    let sectors = 64;
    let store = FlashStore::open(RamFlash::new(sectors as usize * SECTOR), 0..sectors * SECTOR as u32).unwrap();
    let mut poi = Replica::open(&store, identity()).unwrap();
    store.set_setting("wifi.ssid", b"studio").unwrap();
    let id = poi.add_image("first", 400, 32, &pattern(1, IMAGE_LEN), 1_000).unwrap();
    store.update_settings(&[("wifi.ssid", Some(b"stage")), ("device.name", Some(b"left"))]).unwrap();
    poi.set_brightness(40, 2_000, Cue::NOW).unwrap();
    let before = library(&mut poi);
    drop(poi);

    let store = FlashStore::open(RamFlash::from_bytes(store.into_flash().bytes), 0..sectors * SECTOR as u32).unwrap();
    assert_eq!(store.setting("wifi.ssid").unwrap().as_deref(), Some(&b"stage"[..]));
    assert_eq!(store.setting("device.name").unwrap().as_deref(), Some(&b"left"[..]));
    let mut poi = Replica::open(&store, identity()).unwrap();
    assert_eq!(library(&mut poi), before);
    assert_eq!(poi.settings().brightness, 40);
    assert!(poi.images().any(|(image, _)| image == id));
}
