//! What the store keeps, what it refuses, and what it gives back after a restart.

mod common;

use common::{IMAGE_LEN, RamFlash, SECTOR, pattern};
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::Storage;
use povpoi_flash::{FlashStore, HEADER_LEN, MAX_SETTING_LEN, Options, RESERVE_MARGIN_SECTORS};

/// A region at an offset, as on a real flash with the app before it.
const START: u32 = 16 * SECTOR as u32;
/// Payload bytes per sector.
const P: usize = SECTOR - HEADER_LEN;

fn layout() -> Options {
    Options { relocate_every: 0 }
}

fn open(flash: RamFlash, sectors: u32, options: Options) -> FlashStore<RamFlash> {
    FlashStore::open_with(flash, START..START + sectors * SECTOR as u32, options).unwrap()
}

fn reopen(store: FlashStore<RamFlash>, sectors: u32, options: Options) -> FlashStore<RamFlash> {
    open(RamFlash::from_bytes(store.into_flash().bytes), sectors, options)
}

fn new_store(sectors: u32) -> FlashStore<RamFlash> {
    open(RamFlash::new(START as usize + sectors as usize * SECTOR), sectors, layout())
}

/// Where payload byte `i` of sector `s` of the region is in the flash.
fn payload_at(s: usize) -> usize {
    START as usize + s * SECTOR + HEADER_LEN
}

fn blob(seed: u64, len: usize) -> (BlobHash, Vec<u8>) {
    let bytes = pattern(seed, len);
    (BlobHash::of(&bytes), bytes)
}

#[test]
fn an_erased_region_is_an_empty_store() {
    let store = new_store(64);
    assert_eq!(store.load_state().unwrap(), None);
    assert_eq!(store.blob_hashes().unwrap(), vec![]);
    assert_eq!(store.setting("name").unwrap(), None);
    assert_eq!(store.usage().free_sectors, 64);
    assert_eq!(FlashStore::<RamFlash>::payload_per_sector(), P);
}

#[test]
fn everything_saved_reads_back_after_a_restart() {
    let mut store = new_store(64);
    let (a, a_bytes) = blob(1, IMAGE_LEN);
    let (b, b_bytes) = blob(2, 301);
    let (c, c_bytes) = blob(3, 0);
    for (hash, bytes) in [(&a, &a_bytes), (&b, &b_bytes), (&c, &c_bytes)] {
        store.save_blob(hash, bytes).unwrap();
    }
    let snapshot = pattern(9, 3 * P + 5);
    store.save_state(&snapshot).unwrap();
    store.set_setting("name", b"poi left").unwrap();
    store.set_setting("wifi.psk", &[0; MAX_SETTING_LEN]).unwrap();

    let store = reopen(store, 64, layout());
    assert_eq!(store.load_state().unwrap(), Some(snapshot));
    let mut hashes = vec![a, b, c];
    hashes.sort();
    assert_eq!(store.blob_hashes().unwrap(), hashes);
    assert_eq!(store.load_blob(&a).unwrap(), Some(a_bytes));
    assert_eq!(store.load_blob(&b).unwrap(), Some(b_bytes));
    assert_eq!(store.load_blob(&c).unwrap(), Some(c_bytes));
    assert_eq!(store.setting("name").unwrap().as_deref(), Some(&b"poi left"[..]));
    assert_eq!(store.setting("wifi.psk").unwrap(), Some(vec![0; MAX_SETTING_LEN]));
    // 10 + 1 + 1 sectors of blobs (an empty value has a header too), 4 of snapshot, 1 of
    // settings.
    assert_eq!(store.usage().free_sectors, 64 - 17);
}

#[test]
fn a_new_snapshot_replaces_the_old_one_and_frees_its_sectors() {
    let mut store = new_store(64);
    store.save_state(&pattern(1, 5 * P)).unwrap();
    let free = store.usage().free_sectors;
    store.save_state(&pattern(2, 100)).unwrap();
    assert_eq!(store.usage().free_sectors, free + 4);
    let store = reopen(store, 64, layout());
    assert_eq!(store.load_state().unwrap(), Some(pattern(2, 100)));
    assert_eq!(store.usage().free_sectors, free + 4);
}

#[test]
fn a_snapshot_given_in_pieces_of_any_size_reads_back_whole_and_an_empty_one_too() {
    let mut store = new_store(64);
    for (len, piece) in
        [(0, 1), (1, 1), (3 * P, 1), (2 * P + 7, 3), (P, 63), (P + 1, 64), (3 * P + 5, 65), (4000, 4096)]
    {
        let snapshot = pattern(len as u64, len);
        store.save_state_from(&mut |sink| snapshot.chunks(piece).for_each(&mut *sink)).unwrap();
        let store2 = reopen(store, 64, layout());
        assert_eq!(store2.load_state().unwrap(), Some(snapshot), "{len} bytes in pieces of {piece}");
        store = store2;
    }
    store.save_state(&[]).unwrap();
    let store = reopen(store, 64, layout());
    assert_eq!(store.load_state().unwrap(), Some(vec![]));
}

#[test]
fn an_encoder_that_gives_other_bytes_the_second_time_saves_nothing() {
    let mut store = new_store(64);
    let kept = pattern(1, 2 * P + 9);
    store.save_state(&kept).unwrap();
    let free = store.usage().free_sectors;
    let other = pattern(2, 2 * P + 9);
    // More, fewer, or as many but other bytes the second time than the first (which named
    // the length and hash in the headers).
    for second in [pattern(2, 2 * P + 8), pattern(2, 2 * P + 10), kept.clone()] {
        let mut calls = 0;
        let err = store
            .save_state_from(&mut |sink| {
                calls += 1;
                sink(if calls == 1 { &other } else { &second });
            })
            .unwrap_err();
        assert!(err.to_string().contains("changed") || err.to_string().contains("grew"), "{err}");
    }
    assert_eq!(store.load_state().unwrap(), Some(kept.clone()));
    assert_eq!(store.usage().free_sectors, free);
    let store = reopen(store, 64, layout());
    assert_eq!(store.load_state().unwrap(), Some(kept));
}

#[test]
fn settings_are_replaced_and_removed() {
    let store = new_store(16);
    store.set_setting("leds", &[32]).unwrap();
    store.set_setting("leds", &[64]).unwrap();
    store.set_setting("name", b"x").unwrap();
    store.remove_setting("name").unwrap();
    store.remove_setting("never set").unwrap();
    let store = reopen(store, 16, layout());
    assert_eq!(store.setting("leds").unwrap(), Some(vec![64]));
    assert_eq!(store.setting("name").unwrap(), None);
    assert!(store.set_setting("k", &[0; MAX_SETTING_LEN + 1]).is_err());
    assert!(store.set_setting(&"k".repeat(65), b"v").is_err());
}

#[test]
fn settings_changed_together_are_saved_once_and_unchanged_ones_not_at_all() {
    let store = new_store(16);
    store.set_setting("pairing", b"old key").unwrap();
    let erases = store.flash().stats.erases;
    store
        .update_settings(&[("wifi.ssid", Some(b"studio")), ("wifi.psk", Some(b"secret-1")), ("pairing", None)])
        .unwrap();
    assert_eq!(store.flash().stats.erases - erases, 1, "one save of the settings sector");
    let store = reopen(store, 16, layout());
    assert_eq!(store.setting("wifi.ssid").unwrap().as_deref(), Some(&b"studio"[..]));
    assert_eq!(store.setting("wifi.psk").unwrap().as_deref(), Some(&b"secret-1"[..]));
    assert_eq!(store.setting("pairing").unwrap(), None);

    // Changes applied in order; ending where it started writes nothing.
    let before = store.flash().stats;
    store.update_settings(&[("wifi.ssid", Some(b"other")), ("wifi.ssid", Some(b"studio")), ("gone", None)]).unwrap();
    store.set_setting("wifi.psk", b"secret-1").unwrap();
    assert_eq!(store.flash().stats, before);

    // One change too long refuses them all.
    let long = [0; MAX_SETTING_LEN + 1];
    assert!(store.update_settings(&[("wifi.ssid", Some(b"new")), ("k", Some(&long))]).is_err());
    assert_eq!(store.setting("wifi.ssid").unwrap().as_deref(), Some(&b"studio"[..]));
}

#[test]
fn removing_a_blob_frees_its_sectors_and_removing_a_missing_one_is_fine() {
    let mut store = new_store(64);
    let (a, a_bytes) = blob(1, IMAGE_LEN);
    store.save_blob(&a, &a_bytes).unwrap();
    assert_eq!(store.usage().free_sectors, 54);
    store.remove_blob(&a).unwrap();
    store.remove_blob(&a).unwrap();
    assert_eq!(store.usage().free_sectors, 64);
    let store = reopen(store, 64, layout());
    assert_eq!(store.load_blob(&a).unwrap(), None);
    assert_eq!(store.blob_hashes().unwrap(), vec![]);
}

#[test]
fn a_full_store_says_disk_full_keeps_everything_and_still_takes_a_delete() {
    // 48 sectors: a 4-sector snapshot, its reserve of 4 + 10, and three images of 10.
    let mut store = new_store(48);
    let snapshot = pattern(7, 4 * P - 10);
    store.save_state(&snapshot).unwrap();
    let images: Vec<_> = (0..4).map(|i| blob(i, IMAGE_LEN)).collect();
    for (hash, bytes) in &images[..3] {
        store.save_blob(hash, bytes).unwrap();
    }
    let refused = store.save_blob(&images[3].0, &images[3].1).unwrap_err();
    assert!(refused.disk_full, "{refused}");
    assert_eq!(store.usage().free_sectors, 14);
    assert_eq!(store.usage().reserved_sectors, 4 + RESERVE_MARGIN_SECTORS);
    // A snapshot that would leave no room for the next one of its size is refused too...
    let grown = store.save_state(&pattern(8, 10 * P)).unwrap_err();
    assert!(grown.disk_full, "{grown}");
    assert_eq!(store.load_state().unwrap(), Some(snapshot.clone()));
    // ...but the save of a delete fits, and then the blob can go.
    store.save_state(&pattern(9, 4 * P - 20)).unwrap();
    store.remove_blob(&images[0].0).unwrap();
    store.save_blob(&images[3].0, &images[3].1).unwrap();

    let store = reopen(store, 48, layout());
    assert_eq!(store.load_state().unwrap(), Some(pattern(9, 4 * P - 20)));
    for (hash, bytes) in &images[1..] {
        assert_eq!(store.load_blob(hash).unwrap().as_ref(), Some(bytes));
    }
}

#[test]
fn a_damaged_snapshot_reads_as_none_and_is_reported() {
    let mut store = new_store(16);
    store.save_state(&pattern(1, 1000)).unwrap();
    let mut flash = store.into_flash();
    // The snapshot is the only thing in the region, in its first sector.
    flash.bytes[payload_at(0) + 10] ^= 0x01;
    let store = open(flash, 16, layout());
    assert_eq!(store.load_state().unwrap(), None);
    assert!(store.snapshot_damaged());
}

#[test]
fn sectors_are_taken_in_turn_across_restarts() {
    // Each save takes the sector after the last one written, even after a restart, so that
    // saves wear all free sectors alike rather than the first ones again and again.
    let mut store = new_store(14);
    let mut held = Vec::new();
    for i in 0..16 {
        store.save_state(&pattern(i, 100)).unwrap();
        let bytes = store.into_flash().bytes;
        let want = pattern(i, 100);
        held.push((0..14).find(|&s| bytes[payload_at(s)..][..100] == want[..]).unwrap());
        store = open(RamFlash::from_bytes(bytes), 14, layout());
    }
    assert_eq!(held, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 1]);
}

#[test]
fn parts_of_a_blob_read_back_at_any_offset_and_across_sectors() {
    let mut store = new_store(64);
    let (a, a_bytes) = blob(1, IMAGE_LEN);
    let (b, b_bytes) = blob(2, 301);
    store.save_blob(&a, &a_bytes).unwrap();
    store.save_blob(&b, &b_bytes).unwrap();
    // Unaligned starts and lengths, a part crossing a sector's end, the last byte, and a
    // part longer than the store's read buffer.
    for (offset, len) in [(0, 1), (1, 3), (5, 96), (P - 2, 7), (3 * P - 61, 200), (IMAGE_LEN - 1, 1), (7, 1000)] {
        let mut out = vec![0; len];
        assert!(store.read_blob_part(&a, offset, &mut out).unwrap(), "{offset}+{len}");
        assert_eq!(out, a_bytes[offset..offset + len], "{offset}+{len}");
    }
    let mut out = [0; 4];
    assert!(store.read_blob_part(&b, 297, &mut out).unwrap());
    assert_eq!(out, b_bytes[297..]);
    // Past the end or not stored: nothing read, no error.
    assert!(!store.read_blob_part(&b, 298, &mut out).unwrap());
    assert!(!store.read_blob_part(&a, usize::MAX, &mut out).unwrap());
    assert!(!store.read_blob_part(&BlobHash([7; 32]), 0, &mut out).unwrap());
    // The blob's sectors are walked once, not at every part: a 48-byte part within a sector
    // is one read.
    assert!(store.read_blob_part(&a, 100, &mut [0; 48]).unwrap());
    let reads = store.flash().stats.reads;
    assert!(store.read_blob_part(&a, 200, &mut [0; 48]).unwrap());
    assert_eq!(store.flash().stats.reads, reads + 1);
    // A blob removed is not read from the sectors it held, and one saved again reads back.
    store.remove_blob(&a).unwrap();
    assert!(!store.read_blob_part(&a, 0, &mut out).unwrap());
    let (c, c_bytes) = blob(3, IMAGE_LEN);
    store.save_blob(&c, &c_bytes).unwrap();
    store.save_blob(&a, &a_bytes).unwrap();
    let mut whole = vec![0; IMAGE_LEN];
    assert!(store.read_blob_part(&a, 0, &mut whole).unwrap());
    assert_eq!(whole, a_bytes);
}

#[test]
fn a_part_read_follows_a_blob_that_moved() {
    let options = Options { relocate_every: 1 };
    // A small region, so that the sectors a move gives back are soon taken again.
    let mut store = open(RamFlash::new(START as usize + 14 * SECTOR), 14, options);
    let (a, a_bytes) = blob(1, 2 * P + 1);
    store.save_blob(&a, &a_bytes).unwrap();
    let mut out = [0; 8];
    assert!(store.read_blob_part(&a, P, &mut out).unwrap());
    // Each snapshot save moves the blob; its old sectors are erased and reused by the next.
    for round in 0..8u8 {
        store.save_state(&[round; 5000]).unwrap();
        let mut out = [0; 40];
        assert!(store.read_blob_part(&a, P - 20, &mut out).unwrap());
        assert_eq!(out, a_bytes[P - 20..P + 20], "after move {round}");
    }
}

#[test]
fn every_so_many_saves_the_blob_unmoved_longest_moves() {
    let options = Options { relocate_every: 2 };
    let mut store = open(RamFlash::new(START as usize + 40 * SECTOR), 40, options);
    let (a, a_bytes) = blob(1, 2 * P + 1);
    let (b, b_bytes) = blob(2, 2 * P + 1);
    store.save_blob(&a, &a_bytes).unwrap();
    store.save_blob(&b, &b_bytes).unwrap();
    // A moved blob's old sectors keep their payload until reused: count the copies.
    let copies = |bytes: &[u8], want: &[u8]| (0..40).filter(|&s| bytes[payload_at(s)..][..P] == want[..P]).count();
    let before = store.into_flash().bytes;
    let mut store = open(RamFlash::from_bytes(before.clone()), 40, options);
    store.save_state(b"one").unwrap();
    assert_eq!(copies(&store.into_flash().bytes, &a_bytes), 1);
    let mut store = open(RamFlash::from_bytes(before), 40, options);
    store.save_state(b"one").unwrap();
    store.save_state(b"two").unwrap();
    let after = store.into_flash().bytes;
    // `a`, written first, moved on the second save; `b` did not.
    assert_eq!(copies(&after, &a_bytes), 2);
    assert_eq!(copies(&after, &b_bytes), 1);
    let store = open(RamFlash::from_bytes(after), 40, options);
    assert_eq!(store.load_blob(&a).unwrap(), Some(a_bytes));
    assert_eq!(store.load_blob(&b).unwrap(), Some(b_bytes));
    assert_eq!(store.usage().free_sectors, 40 - 3 - 3 - 1);
}

#[test]
fn writes_go_only_to_erased_words() {
    let mut store = new_store(64);
    for i in 0..40 {
        let (h, bytes) = blob(i % 7, IMAGE_LEN / 3);
        store.save_blob(&h, &bytes).unwrap();
        store.save_state(&pattern(i, 700 * i as usize)).unwrap();
        store.set_setting("n", &[i as u8; 40]).unwrap();
        if i % 3 == 0 {
            store.remove_blob(&h).unwrap();
        }
    }
    let flash = store.into_flash();
    assert_eq!(flash.stats.overwrites, 0);
    // Outside the region nothing was touched.
    assert!(flash.bytes[..START as usize].iter().all(|&b| b == 0xFF));
}

#[test]
fn a_region_that_held_something_else_opens_empty_and_works() {
    let mut flash = RamFlash::new(START as usize + 32 * SECTOR);
    flash.bytes = pattern(5, flash.bytes.len());
    let mut store = open(flash, 32, layout());
    assert_eq!(store.load_state().unwrap(), None);
    assert_eq!(store.blob_hashes().unwrap(), vec![]);
    assert_eq!(store.usage().free_sectors, 32);
    store.save_state(b"fresh").unwrap();
    let store = reopen(store, 32, layout());
    assert_eq!(store.load_state().unwrap(), Some(b"fresh".to_vec()));
}

#[test]
fn a_blob_damaged_on_flash_is_gone_and_its_sectors_come_back() {
    let mut store = new_store(32);
    let (a, a_bytes) = blob(1, IMAGE_LEN);
    store.save_blob(&a, &a_bytes).unwrap();
    let mut flash = store.into_flash();
    // The header of its second chunk rots (the first chunk is in sector 0, the second in 1).
    flash.bytes[START as usize + SECTOR + 50] ^= 0x10;
    let mut store = open(flash, 32, layout());
    assert_eq!(store.blob_hashes().unwrap(), vec![]);
    assert_eq!(store.load_blob(&a).unwrap(), None);
    assert_eq!(store.usage().free_sectors, 32);
    store.save_blob(&a, &a_bytes).unwrap();
    assert_eq!(reopen(store, 32, layout()).load_blob(&a).unwrap(), Some(a_bytes));
}

#[test]
fn an_upload_written_between_other_saves_is_stored_under_its_hash_and_survives_a_restart() {
    let mut store = new_store(60);
    let (hash, bytes) = blob(30, IMAGE_LEN);
    let (other_hash, other) = blob(31, 3 * P + 5);
    store.begin_blob(bytes.len()).unwrap();
    let taken = store.usage().free_sectors;
    assert_eq!(taken, 60 - 10, "the upload's 10 sectors are taken when it begins");
    let (first, rest) = bytes.split_at(12_345);
    for piece in first.chunks(999) {
        store.write_blob(piece).unwrap();
    }
    // Other saves while the upload waits for its next piece take other sectors.
    store.save_state(&pattern(32, 5000)).unwrap();
    store.save_blob(&other_hash, &other).unwrap();
    store.set_setting("name", b"poi").unwrap();
    assert!(!store.has_blob(&hash).unwrap(), "not stored before it ends");
    for piece in rest.chunks(4096) {
        store.write_blob(piece).unwrap();
    }
    assert_eq!(store.finish_blob().unwrap(), hash);
    assert_eq!(store.load_blob(&hash).unwrap().as_deref(), Some(&bytes[..]));
    let free = store.usage().free_sectors;
    let store = reopen(store, 60, layout());
    assert_eq!(store.usage().free_sectors, free);
    assert_eq!(store.load_blob(&hash).unwrap().as_deref(), Some(&bytes[..]));
    assert_eq!(store.load_blob(&other_hash).unwrap().as_deref(), Some(&other[..]));
    assert_eq!(store.load_state().unwrap(), Some(pattern(32, 5000)));
    assert_eq!(store.setting("name").unwrap().as_deref(), Some(&b"poi"[..]));
}

#[test]
fn an_upload_of_the_wrong_length_or_given_up_keeps_nothing_and_frees_its_sectors() {
    let mut store = new_store(40);
    let (_, bytes) = blob(40, IMAGE_LEN);
    for (len, sent) in [(IMAGE_LEN, IMAGE_LEN - 1), (IMAGE_LEN - 1, IMAGE_LEN)] {
        store.begin_blob(len).unwrap();
        let sent = store.write_blob(&bytes[..sent]).and_then(|()| store.finish_blob());
        assert!(sent.is_err(), "{len} announced: {sent:?}");
        assert_eq!(store.usage().free_sectors, 40);
        assert!(store.blob_hashes().unwrap().is_empty());
    }
    store.begin_blob(IMAGE_LEN).unwrap();
    store.write_blob(&bytes[..100]).unwrap();
    store.abandon_blob();
    assert_eq!(store.usage().free_sectors, 40);
    assert!(store.write_blob(&bytes[100..200]).is_err(), "nothing is under way any more");
    // A second upload begun ends the first.
    store.begin_blob(IMAGE_LEN).unwrap();
    store.begin_blob(P).unwrap();
    assert_eq!(store.usage().free_sectors, 39);
    store.write_blob(&bytes[..P]).unwrap();
    assert_eq!(store.finish_blob().unwrap(), BlobHash::of(&bytes[..P]));
    // No room beside the next snapshot save's: refused, nothing taken.
    let mut full = new_store(19);
    assert!(full.begin_blob(IMAGE_LEN).unwrap_err().disk_full);
    assert_eq!(full.usage().free_sectors, 19);
}
