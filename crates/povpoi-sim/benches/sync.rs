//! Sync protocol benchmarks: bytes on the wire, merge time and RAM per item.
//!
//! Run with `cargo bench -p povpoi-sim --bench sync`. Numbers are printed as Markdown
//! tables for docs/BENCHMARKS.md; nothing is asserted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Categories, Delta, Identity, Knowledge, Replica, SyncOptions};
use povpoi_core::wire::{self, legacy::SyncData};
use povpoi_sim::storage::SimStorage;
use povpoi_sim::transport::{self, Traffic};

/// Counts live heap bytes, for the RAM figures.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Poi = Replica<SimStorage>;

/// One edit applied to a replica.
type Change = fn(&mut Poi);

const NOW: u64 = 1_700_000_000_000;

fn poi(n: u8) -> Poi {
    let identity = Identity {
        replica: ReplicaId(0x5eed_0000_0000_0000 + u64::from(n)),
        device: DeviceId([2, 0, 0, 0, 0, n]),
        group: "troupe".into(),
    };
    Replica::open(SimStorage::default(), identity).unwrap()
}

/// A library of `items` items: 3 settings, up to 18 patterns and 5 sequences, the rest
/// 8x32 images (the protocol does not care how large pixels are; only blobs do).
fn library(items: usize) -> Poi {
    let mut p = poi(1);
    let mut made = 0;
    let mut now = NOW;
    let mut tick = || {
        now += 1;
        now
    };
    p.set_brightness(200, tick(), Cue::NOW).unwrap();
    p.set_framerate(120, tick(), Cue::NOW).unwrap();
    p.set_selection(Default::default(), tick(), Cue::NOW).unwrap();
    made += 3;
    for slot in 0..18.min(items.saturating_sub(made) / 4) as u8 {
        let kind = PatternKind::ALL[slot as usize];
        p.set_pattern(
            slot,
            Pattern::new(kind, Rgb::new(slot, 0, 0), Rgb::new(0, 0, slot), 50).unwrap(),
            tick(),
            Cue::NOW,
        )
        .unwrap();
        made += 1;
    }
    for slot in 0..5.min(items.saturating_sub(made) / 10) as u8 {
        let items =
            (0..10).map(|i| SequenceItem { target: SequenceTarget::Pattern(i % 18), duration_ms: 1000 }).collect();
        p.set_sequence(slot, Sequence::new(items, true).unwrap(), tick(), Cue::NOW).unwrap();
        made += 1;
    }
    for i in 0..items.saturating_sub(made) {
        let px: Vec<u8> = (0..8 * 32 * 3).map(|b| (b as u8) ^ (i as u8) ^ ((i >> 8) as u8)).collect();
        p.add_image(&format!("image {i:04}"), 8, 32, &px, tick()).unwrap();
    }
    assert_eq!(p.records().count(), items);
    p
}

fn synced_pair(items: usize) -> (Poi, Poi) {
    let mut a = library(items);
    let mut b = poi(2);
    transport::sync(&mut b, &mut a, SyncOptions::default(), NOW + 1_000_000).unwrap();
    transport::sync(&mut a, &mut b, SyncOptions::default(), NOW + 1_000_000).unwrap();
    (a, b)
}

fn session_traffic(a: &mut Poi, b: &mut Poi) -> Traffic {
    transport::sync(a, b, SyncOptions::default(), NOW + 2_000_000).unwrap().1
}

fn legacy_listing_bytes(p: &Poi) -> usize {
    serde_json::to_vec(&SyncData::of(p, "POV Poi 00:01")).unwrap().len()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut setup: impl FnMut() -> T, mut work: impl FnMut(T)) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let input = setup();
                let start = Instant::now();
                work(input);
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    println!("## (a) Already-synced pair: one bidirectional session\n");
    println!("| items | messages | bytes (both ways) | old design: one /api/sync/data listing (JSON) |");
    println!("|---:|---:|---:|---:|");
    for items in [10, 100, 1000] {
        let (mut a, mut b) = synced_pair(items);
        let t = session_traffic(&mut a, &mut b);
        println!("| {items} | {} | {} | {} |", t.messages, t.bytes, legacy_listing_bytes(&a));
    }

    println!("\n## (b) One item changed among 1,000: session that brings the peer up to date\n");
    println!("| change | messages | bytes (both ways) | old design: one listing (JSON, no pixels) |");
    println!("|---|---:|---:|---:|");
    let changes: [(&str, Change); 4] = [
        ("brightness", |p| p.set_brightness(17, NOW + 3_000_000, Cue::NOW).unwrap()),
        ("pattern slot 0", |p| {
            p.set_pattern(
                0,
                Pattern::new(PatternKind::Fire, Rgb::new(1, 1, 1), Rgb::new(2, 2, 2), 99).unwrap(),
                NOW + 3_000_000,
                Cue::NOW,
            )
            .unwrap()
        }),
        ("image rename", |p| {
            let id = p.images().next().unwrap().0;
            p.rename_image(id, "renamed", NOW + 3_000_000).unwrap()
        }),
        ("new 400x32 image (pixels included)", |p| {
            let px: Vec<u8> = (0..400 * 32 * 3).map(|b| (b % 251) as u8).collect();
            p.add_image("new", 400, 32, &px, NOW + 3_000_000).unwrap();
        }),
    ];
    for (what, change) in changes {
        let (mut a, mut b) = synced_pair(1000);
        change(&mut a);
        let t = session_traffic(&mut b, &mut a);
        println!("| {what} | {} | {} | {} |", t.messages, t.bytes, legacy_listing_bytes(&a));
    }

    println!("\n## (c) Merge time, 1,000 items (median of 15 runs)\n");
    let source = library(1000);
    let full: Delta = source.delta_for(&Knowledge::default(), Categories::ALL);
    let full_bytes = wire::to_bytes(&full);
    let decode = time(15, || (), |_| drop(black_box(wire::from_bytes::<Delta>(&full_bytes).unwrap())));
    let merge_new = time(
        15,
        || (poi(2), full.clone()),
        |(mut p, d)| {
            black_box(p.apply_delta(d, NOW + 5_000_000).unwrap());
        },
    );
    // Every item edited on both sides while apart: 1,000 concurrent versions to keep.
    let conflicting = || {
        let mut a = library(1000);
        let mut b = poi(2);
        transport::sync(&mut b, &mut a, SyncOptions::default(), NOW + 1_000_000).unwrap();
        let ids: Vec<_> = a.images().map(|(id, _)| id).collect();
        for (n, id) in ids.iter().enumerate() {
            a.rename_image(*id, &format!("a{n}"), NOW + 2_000_000).unwrap();
        }
        b.set_brightness(1, NOW + 2_000_000, Cue::NOW).unwrap();
        for (n, id) in ids.iter().enumerate() {
            b.rename_image(*id, &format!("b{n}"), NOW + 2_000_000).unwrap();
        }
        let delta = a.delta_for(b.knowledge(), Categories::ALL);
        (b, delta)
    };
    let merge_conflicts = time(5, conflicting, |(mut b, d)| {
        let report = b.apply_delta(d, NOW + 5_000_000).unwrap();
        assert!(report.records_merged > 900);
    });
    let (b, d) = conflicting();
    let conflicts_made = {
        let mut b = b;
        b.apply_delta(d, NOW + 5_000_000).unwrap();
        b.conflicts().count()
    };
    println!("| what | median | ratio to decoding the same delta |");
    println!("|---|---:|---:|");
    println!("| decode a 1,000-record delta ({} bytes), baseline | {:.2?} | 1.0 |", full_bytes.len(), decode);
    println!(
        "| merge it into an empty replica (incl. snapshot save) | {:.2?} | {:.1} |",
        merge_new,
        merge_new.as_secs_f64() / decode.as_secs_f64()
    );
    println!(
        "| merge 1,000 concurrent renames ({conflicts_made} conflicts kept) | {:.2?} | {:.1} |",
        merge_conflicts,
        merge_conflicts.as_secs_f64() / decode.as_secs_f64()
    );

    println!("\n## (d) RAM held per item (counting allocator, heap bytes)\n");
    println!("| items | replica state in RAM | per item | of which content values | sync metadata per item |");
    println!("|---:|---:|---:|---:|---:|");
    for items in [100, 1000] {
        let p = library(items);
        let values: Vec<_> = p.records().map(|r| (r.key, r.value.clone())).collect();
        let before_values = LIVE.load(Ordering::Relaxed);
        drop(values);
        let content = before_values - LIVE.load(Ordering::Relaxed);
        let with_state = LIVE.load(Ordering::Relaxed);
        let storage = p.into_storage();
        let state = with_state - LIVE.load(Ordering::Relaxed);
        drop(storage);
        println!(
            "| {items} | {state} | {} | {} | {} |",
            state / items,
            content / items,
            (state.saturating_sub(content)) / items
        );
    }
}
