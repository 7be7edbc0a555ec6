//! A `Push` in parts meeting what a responder does to each message: independent mode
//! dropping settings from one part but not the next, and a sender that merges a peer's
//! records between its parts.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::show::Cue;
use povpoi_core::sync::{
    Categories, Identity, Key, MAX_PUSH_RECORD_BYTES, MemoryStorage, Replica, Request, Response, Session, SyncOptions,
};
use povpoi_core::wire;
use povpoi_peer::respond::keep_settings_local;

type Poi = Replica<MemoryStorage>;

fn poi(n: u8) -> Poi {
    let id = Identity { replica: ReplicaId(n.into()), device: DeviceId([0xA0, 0, 0, 0, 0, n]), group: "t".into() };
    Replica::open(MemoryStorage::default(), id).unwrap()
}

/// A poi holding `images` small images of its own.
fn library(n: u8, images: u32) -> Poi {
    let mut p = poi(n);
    for i in 0..images {
        let pixels: Vec<u8> = (0..12u32).map(|k| (k * 31 + i * 7 + u32::from(n) * 101) as u8).collect();
        p.add_image(&format!("picture number {i:03}"), 2, 2, &pixels, 1_000 + u64::from(i)).unwrap();
    }
    p
}

/// A session from `a` to `b` pushing parts of `parts_of` bytes. Before the sender makes
/// part `n` after the first, `between(n, a)` runs; `independent(n)` says whether `b` is in
/// independent mode when part `n` arrives. Returns the encoded size of each `Push`.
fn session(
    a: &mut Poi,
    b: &mut Poi,
    parts_of: usize,
    mut independent: impl FnMut(usize) -> bool,
    mut between: impl FnMut(usize, &mut Poi),
) -> Vec<usize> {
    let (session, begin) = Session::start(a, SyncOptions::default());
    let mut session = session.push_parts_of(parts_of);
    let mut request = Some(begin);
    let mut pushes = Vec::new();
    while let Some(req) = request.take() {
        let req = match req {
            Request::Push(_) => {
                pushes.push(wire::to_bytes(&req).len());
                if independent(pushes.len()) { keep_settings_local(req) } else { req }
            }
            other => other,
        };
        let answer = b.respond(req, 3_000);
        assert!(!matches!(answer, Response::Refused(_)), "{answer:?}");
        if matches!(answer, Response::Want(_)) {
            between(pushes.len() + 1, a);
        }
        request = session.on_response(a, answer, 3_000).unwrap();
    }
    pushes
}

#[test]
fn a_responder_leaving_independent_mode_between_parts_still_gets_the_settings_it_counts() {
    let mut a = library(1, 5);
    a.set_brightness(9, 2_000, Cue::NOW).unwrap();
    let ids: Vec<_> = a.images().map(|(id, _)| id).collect();
    a.set_image_order(ids.into_iter().rev().collect(), 2_001).unwrap();
    let mut b = poi(2);
    // One item per part; b is independent for every part but the last.
    let parts = session(&mut a, &mut b, 1, |_| true, |_, _| {}).len();
    let mut b = poi(2);
    session(&mut a, &mut b, 1, |n| n < parts, |_, _| {});
    let brightness = a.visible(&Key::Brightness).unwrap().dot;
    assert!(parts >= 7, "{parts} parts");
    assert!(b.knowledge().settings.covers(brightness), "the last part was taken whole");
    assert_eq!(b.settings().brightness, 9, "b counts the brightness edit as seen, so it holds it");
    assert_eq!(b.knowledge(), a.knowledge());

    // Independent for the last part only: the settings stay out, and uncounted.
    let mut c = poi(3);
    session(&mut a, &mut c, 1, |n| n == parts, |_, _| {});
    assert!(!c.knowledge().settings.covers(brightness));
    assert_ne!(c.settings().brightness, 9);
}

#[test]
fn records_merged_between_parts_go_in_parts_too() {
    let mut a = library(1, 200);
    // Origin 0 sorts before origin 1: items the parts have already passed.
    let c = library(0, 150);
    let mut b = poi(2);
    let pushes = session(
        &mut a,
        &mut b,
        MAX_PUSH_RECORD_BYTES,
        |_| false,
        |n, a| {
            if n == 2 {
                let delta = c.delta_for(a.knowledge(), Categories::ALL);
                a.apply_delta(delta, 2_500).unwrap();
            }
        },
    );
    println!("Push sizes {pushes:?}");
    assert!(pushes.iter().all(|&n| n <= MAX_PUSH_RECORD_BYTES + 512), "{pushes:?}");
    assert_eq!(b.images().count(), 350);
    assert_eq!(b.knowledge(), a.knowledge());
    assert_eq!(b.records().collect::<Vec<_>>(), a.records().collect::<Vec<_>>());
}
