//! A scripted workload, cut off by a power loss at every write and erase in turn.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{IMAGE_LEN, RamFlash, SECTOR, Tear, pattern};
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::{Storage, StorageError};
use povpoi_flash::{FlashStore, Options};

const SECTORS: u32 = 52;
const REGION: std::ops::Range<u32> = 0..SECTORS * SECTOR as u32;
/// Frequent moves, so that some happen under the knife too.
const LAYOUT: Options = Options { relocate_every: 3 };

#[derive(Clone)]
enum Op {
    State(Vec<u8>),
    /// The snapshot handed over in pieces of this many bytes, as a replica encodes it.
    StateInPieces(Vec<u8>, usize),
    Blob(Vec<u8>),
    /// A blob uploaded in pieces of this many bytes, its hash known at the end.
    Upload(Vec<u8>, usize),
    /// An upload given up after half its bytes: nothing of it is kept.
    UploadAbandoned(Vec<u8>),
    /// An upload begun, and given these first bytes, left open across the ops that follow
    /// (other saves go on meanwhile) until [`Op::UploadRest`].
    UploadBegun(Vec<u8>, usize),
    /// The rest of the open upload's bytes, and its end.
    UploadRest(Vec<u8>, usize),
    Remove(BlobHash),
    Set(&'static str, Vec<u8>),
    Unset(&'static str),
    /// Settings changed in one save: `Some` sets, `None` removes.
    Settings(Vec<(&'static str, Option<Vec<u8>>)>),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::State(bytes) => write!(f, "save_state({} bytes)", bytes.len()),
            Op::StateInPieces(bytes, n) => write!(f, "save_state_from({} bytes, pieces of {n})", bytes.len()),
            Op::Blob(bytes) => write!(f, "save_blob({:?}, {} bytes)", BlobHash::of(bytes), bytes.len()),
            Op::Upload(bytes, n) => {
                write!(f, "upload({:?}, {} bytes, pieces of {n})", BlobHash::of(bytes), bytes.len())
            }
            Op::UploadAbandoned(bytes) => write!(f, "abandoned upload({} bytes)", bytes.len()),
            Op::UploadBegun(bytes, n) => write!(f, "upload begun({} bytes, {n} given)", bytes.len()),
            Op::UploadRest(bytes, n) => write!(f, "upload ended({:?}, from {n})", BlobHash::of(bytes)),
            Op::Remove(hash) => write!(f, "remove_blob({hash:?})"),
            Op::Set(key, value) => write!(f, "set_setting({key}, {} bytes)", value.len()),
            Op::Unset(key) => write!(f, "remove_setting({key})"),
            Op::Settings(changes) => write!(f, "update_settings({} changes)", changes.len()),
        }
    }
}

const KEYS: [&str; 6] = ["name", "leds", "wifi.ssid", "wifi.psk", "pairing", "brightness"];

#[derive(Clone, Default, PartialEq, Eq)]
struct Model {
    state: Option<Vec<u8>>,
    blobs: BTreeMap<BlobHash, Vec<u8>>,
    settings: BTreeMap<&'static str, Vec<u8>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.as_ref().map(|s| (s.len(), BlobHash::of(s)));
        let settings: Vec<_> = self.settings.iter().map(|(k, v)| (k, v.len(), BlobHash::of(v))).collect();
        write!(f, "state {state:?}, blobs {:?}, settings {settings:?}", self.blobs.keys())
    }
}

impl Model {
    fn apply(&self, op: &Op) -> Model {
        let mut next = self.clone();
        match op {
            Op::State(bytes) | Op::StateInPieces(bytes, _) => next.state = Some(bytes.clone()),
            Op::Blob(bytes) | Op::Upload(bytes, _) | Op::UploadRest(bytes, _) => {
                next.blobs.insert(BlobHash::of(bytes), bytes.clone());
            }
            Op::UploadAbandoned(_) | Op::UploadBegun(..) => {}
            Op::Remove(hash) => {
                next.blobs.remove(hash);
            }
            Op::Set(key, value) => {
                next.settings.insert(key, value.clone());
            }
            Op::Unset(key) => {
                next.settings.remove(key);
            }
            Op::Settings(changes) => {
                for (key, value) in changes {
                    match value {
                        Some(value) => next.settings.insert(key, value.clone()),
                        None => next.settings.remove(key),
                    };
                }
            }
        }
        next
    }

    /// What `store` holds, read back in full; every blob must verify against its hash.
    fn read(store: &FlashStore<RamFlash>) -> Model {
        let mut blobs = BTreeMap::new();
        for hash in store.blob_hashes().unwrap() {
            let bytes = store.load_blob(&hash).unwrap().expect("a listed blob loads");
            assert!(hash.verifies(&bytes), "blob {hash} does not verify");
            blobs.insert(hash, bytes);
        }
        let settings = KEYS.iter().filter_map(|k| Some((*k, store.setting(k).unwrap()?))).collect();
        Model { state: store.load_state().unwrap(), blobs, settings }
    }
}

fn workload() -> Vec<Op> {
    let image = |seed| Op::Blob(pattern(seed, IMAGE_LEN));
    let hash = |seed| BlobHash::of(&pattern(seed, IMAGE_LEN));
    let mut ops = vec![
        Op::Set("name", b"poi-1".to_vec()),
        Op::Set("leds", vec![32]),
        Op::State(pattern(100, 300)),
        image(1),
        Op::State(pattern(101, 1200)),
        image(2),
        Op::Blob(pattern(3, 500)),
        Op::State(pattern(102, 5000)),
        Op::Remove(hash(1)),
        Op::State(pattern(103, 3000)),
        Op::StateInPieces(pattern(108, 4500), 3),
        Op::Set("wifi.ssid", b"studio".to_vec()),
        Op::Set("wifi.psk", pattern(104, 63)),
        Op::Settings(vec![
            ("wifi.ssid", Some(b"stage".to_vec())),
            ("wifi.psk", Some(pattern(107, 40))),
            ("leds", None),
        ]),
        image(4),
        Op::State(pattern(105, 9000)),
        image(5),
        // No room left beside the snapshot's reserve: refused, nothing changes.
        image(6),
        Op::State(pattern(106, 9100)),
        Op::StateInPieces(pattern(109, 8200), 65),
    ];
    for i in 0..120u64 {
        let key = KEYS[i as usize % KEYS.len()];
        ops.push(Op::Set(key, pattern(200 + i, 100 + (i as usize * 7) % 60)));
        if i % 20 == 19 {
            ops.push(Op::State(pattern(300 + i, 2000 + 100 * i as usize)));
        }
    }
    ops.extend([
        Op::Unset("pairing"),
        Op::Settings(vec![
            ("name", None),
            ("wifi.ssid", Some(b"studio".to_vec())),
            ("pairing", Some(pattern(402, 32))),
        ]),
        Op::Remove(hash(2)),
        Op::State(pattern(400, 700)),
        image(1),
        Op::Remove(BlobHash::of(&pattern(3, 500))),
        Op::State(pattern(401, 12_000)),
        Op::Set("name", b"poi-2".to_vec()),
        Op::Remove(hash(4)),
        Op::Remove(hash(1)),
        Op::UploadAbandoned(pattern(21, IMAGE_LEN)),
        // Other saves, and a move, while an upload waits for its next piece.
        Op::UploadBegun(pattern(22, IMAGE_LEN), 20_000),
        Op::State(pattern(404, 5000)),
        Op::Blob(pattern(23, 3000)),
        Op::Set("leds", vec![64]),
        Op::State(pattern(405, 5200)),
        Op::UploadRest(pattern(22, IMAGE_LEN), 20_000),
        Op::Remove(BlobHash::of(&pattern(22, IMAGE_LEN))),
        Op::Remove(BlobHash::of(&pattern(23, 3000))),
        Op::Upload(pattern(20, IMAGE_LEN), 700),
        // The same bytes as a blob stored: the upload replaces it.
        Op::Upload(pattern(5, IMAGE_LEN), 4096),
        Op::State(pattern(403, 6000)),
    ]);
    ops
}

fn run(store: &mut FlashStore<RamFlash>, op: &Op) -> Result<(), StorageError> {
    match op {
        Op::State(bytes) => store.save_state(bytes),
        Op::StateInPieces(bytes, n) => store.save_state_from(&mut |sink| bytes.chunks(*n).for_each(&mut *sink)),
        Op::Blob(bytes) => store.save_blob(&BlobHash::of(bytes), bytes),
        Op::Upload(bytes, n) => {
            store.begin_blob(bytes.len())?;
            for piece in bytes.chunks(*n) {
                store.write_blob(piece)?;
            }
            let hash = store.finish_blob()?;
            assert_eq!(hash, BlobHash::of(bytes), "the upload is stored under the hash of its bytes");
            Ok(())
        }
        Op::UploadAbandoned(bytes) => {
            store.begin_blob(bytes.len())?;
            store.write_blob(&bytes[..bytes.len() / 2])?;
            store.abandon_blob();
            Ok(())
        }
        Op::UploadBegun(bytes, n) => {
            store.begin_blob(bytes.len())?;
            store.write_blob(&bytes[..*n])
        }
        Op::UploadRest(bytes, n) => {
            store.write_blob(&bytes[*n..])?;
            assert_eq!(store.finish_blob()?, BlobHash::of(bytes));
            Ok(())
        }
        Op::Remove(hash) => store.remove_blob(hash),
        Op::Set(key, value) => store.set_setting(key, value),
        Op::Unset(key) => store.remove_setting(key),
        Op::Settings(changes) => {
            let changes: Vec<_> = changes.iter().map(|(key, value)| (*key, value.as_deref())).collect();
            store.update_settings(&changes)
        }
    }
}

fn open(flash: RamFlash) -> FlashStore<RamFlash> {
    FlashStore::open_with(flash, REGION, LAYOUT).unwrap()
}

/// The workload without a cut: the state after each op, which ops were refused for want of
/// room, and how many writes and erases it takes.
fn reference(ops: &[Op]) -> (Vec<Model>, Vec<bool>, u64) {
    let mut store = open(RamFlash::new(REGION.end as usize));
    let mut models = vec![Model::default()];
    let mut refused = Vec::new();
    for op in ops {
        let model = models.last().unwrap();
        match run(&mut store, op) {
            Ok(()) => {
                models.push(model.apply(op));
                refused.push(false);
            }
            Err(e) => {
                assert!(e.disk_full, "{op:?}: {e}");
                models.push(model.clone());
                refused.push(true);
            }
        }
        assert_eq!(&Model::read(&store), models.last().unwrap());
    }
    let flash = store.into_flash();
    assert_eq!(flash.stats.overwrites, 0);
    (models, refused, flash.ops)
}

fn cut_everywhere(tear: Tear) {
    let ops = workload();
    let (models, refused, total) = reference(&ops);
    let refused_at: Vec<usize> = (0..ops.len()).filter(|i| refused[*i]).collect();
    assert_eq!(refused_at, vec![17], "the workload fills the store once");
    let started = Instant::now();
    let (mut in_state, mut in_blob, mut in_upload) = (0, 0, 0);
    for k in 0..total {
        let mut store = open(RamFlash::new(REGION.end as usize).cut_at(k, tear, k));
        let mut in_flight = None;
        for (i, op) in ops.iter().enumerate() {
            let result = run(&mut store, op);
            if is_dead(&mut store) {
                in_flight = Some((i, result.is_ok()));
                break;
            }
            assert_eq!(result.is_err(), refused[i], "op {i} before the cut");
        }
        let (i, acknowledged) = in_flight.expect("the cut point is inside the workload");
        match ops[i] {
            Op::State(_) => in_state += 1,
            Op::Blob(_) => in_blob += 1,
            Op::Upload(..) | Op::UploadAbandoned(_) | Op::UploadBegun(..) | Op::UploadRest(..) => in_upload += 1,
            _ => {}
        }
        let bytes = store.into_flash().bytes;
        let mut store = FlashStore::open_with(RamFlash::from_bytes(bytes), REGION, LAYOUT)
            .unwrap_or_else(|e| panic!("cut at {k} during op {i} ({:?}): reopen failed: {e}", ops[i]));
        let seen = Model::read(&store);
        let (before, after) = (&models[i], &models[i + 1]);
        assert!(
            seen == *after || (!acknowledged && seen == *before),
            "cut at {k} ({tear:?}) during op {i} {:?}, acknowledged: {acknowledged}",
            ops[i]
        );
        // The store goes on working, and what it is given now survives a restart too.
        let extra = pattern(10_000 + k, 2 * SECTOR + 3);
        let mut expected = seen.clone();
        if let Err(e) = store.save_blob(&BlobHash::of(&extra), &extra) {
            // Full (the cut came after the store filled up): a delete makes room.
            assert!(e.disk_full, "cut at {k}: {e}");
            let usage = store.usage();
            assert!(usage.free_sectors < 3 + usage.reserved_sectors, "cut at {k}: {usage:?}");
            let victim = *seen.blobs.keys().next().unwrap();
            store.remove_blob(&victim).unwrap();
            expected = expected.apply(&Op::Remove(victim));
            store.save_blob(&BlobHash::of(&extra), &extra).unwrap_or_else(|e| panic!("cut at {k}: {e}"));
        }
        expected = expected.apply(&Op::Blob(extra.clone()));
        let snapshot = pattern(20_000 + k, 777);
        expected = expected.apply(&Op::State(snapshot.clone()));
        store.save_state(&snapshot).unwrap_or_else(|e| panic!("cut at {k}: {e}"));
        expected = expected.apply(&Op::Set("name", b"after".to_vec()));
        store.set_setting("name", b"after").unwrap();
        let store = FlashStore::open_with(RamFlash::from_bytes(store.into_flash().bytes), REGION, LAYOUT).unwrap();
        assert_eq!(Model::read(&store), expected, "cut at {k}: after the restart");
    }
    eprintln!(
        "{tear:?}: {total} cut points ({in_state} in snapshot saves, {in_blob} in blob saves, {in_upload} in uploads) \
         in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(in_state > 0 && in_blob > 0 && in_upload > 0);
}

fn is_dead(store: &mut FlashStore<RamFlash>) -> bool {
    store.flash().is_dead()
}

#[test]
fn a_cut_at_any_write_or_erase_keeps_every_acknowledged_write_and_the_store_working_prefix() {
    cut_everywhere(Tear::Prefix);
}

#[test]
fn a_cut_at_any_write_or_erase_keeps_every_acknowledged_write_and_the_store_working_undefined() {
    cut_everywhere(Tear::Undefined);
}
