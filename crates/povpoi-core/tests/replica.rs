//! Behaviour of the replicated library between two or three poi, through real sessions
//! whose messages go through the postcard wire encoding.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::show::Cue;
use povpoi_core::sync::{
    Blob, Categories, Delta, Direction, Error, Identity, Key, MIN_PART_BYTES, MemoryStorage, Record, Replica, Request,
    Response, Session, SessionReport, SyncOptions, Value,
};
use povpoi_core::wire;

type Poi = Replica<MemoryStorage>;

fn poi(n: u8) -> Poi {
    poi_in(n, "troupe")
}

fn poi_in(n: u8, group: &str) -> Poi {
    Replica::open(MemoryStorage::default(), identity(n, group)).unwrap()
}

fn identity(n: u8, group: &str) -> Identity {
    Identity { replica: ReplicaId(n.into()), device: DeviceId([0xA0, 0, 0, 0, 0, n]), group: group.into() }
}

/// Poi 1 edits brightness 10, is backed up, edits brightness 20 and frame rate 40, and
/// syncs with poi 2; then its store is restored from the backup. Returns (poi 1 as it was,
/// poi 2, the restored poi 1).
fn restored_after_losing_edits() -> (Poi, Poi, Poi) {
    let (mut a, mut b) = (poi(1), poi(2));
    a.set_brightness(10, 1_000, Cue::NOW).unwrap();
    let backup = a.storage().clone();
    a.set_brightness(20, 2_000, Cue::NOW).unwrap();
    a.set_framerate(40, 2_001, Cue::NOW).unwrap();
    sync(&mut a, &mut b, 2_100);
    let restored = Replica::open(backup, identity(1, "troupe")).unwrap();
    (a, b, restored)
}

/// Runs a whole session from `a` to `b`; returns its report and the bytes both ways.
fn sync_with(a: &mut Poi, b: &mut Poi, options: SyncOptions, now: u64) -> Result<(SessionReport, usize), Error> {
    let (mut session, mut request) = Session::start(a, options);
    let mut bytes = 0;
    for _ in 0..100 {
        let encoded = wire::to_bytes(&request);
        bytes += encoded.len();
        let response = b.respond(wire::from_bytes(&encoded)?, now);
        let encoded = wire::to_bytes(&response);
        bytes += encoded.len();
        match session.on_response(a, wire::from_bytes(&encoded)?, now)? {
            Some(next) => request = next,
            None => return Ok((*session.report(), bytes)),
        }
    }
    panic!("session did not finish in 100 messages");
}

fn sync(a: &mut Poi, b: &mut Poi, now: u64) -> SessionReport {
    sync_with(a, b, SyncOptions::default(), now).unwrap().0
}

fn pixels(w: usize, h: usize, seed: u8) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn image_names(p: &Poi) -> Vec<String> {
    p.images().map(|(_, m)| m.name().to_string()).collect()
}

/// What a user sees, plus every record: equal on two replicas means they agree.
fn view(p: &Poi) -> (Vec<Record>, String) {
    (p.records().cloned().collect(), format!("{:?}", p.settings()))
}

#[test]
fn an_image_reaches_the_peer_with_identical_pixels_and_its_blob_moves_once() {
    let (mut a, mut b) = (poi(1), poi(2));
    let px = pixels(400, 32, 9);
    let id = a.add_image("logo", 400, 32, &px, 1_000).unwrap();

    let report = sync(&mut b, &mut a, 2_000);
    assert_eq!((report.pulled.images_added, report.blobs_received), (1, 1));
    let meta = b.image(id).unwrap().clone();
    assert_eq!((meta.name(), meta.width(), meta.height()), ("logo", 400, 32));
    assert_eq!(b.image_pixels(&meta.pixels()).unwrap().unwrap(), px);

    // Already in sync: two small messages, nothing moves, whatever the library size.
    let (again, bytes) = sync_with(&mut b, &mut a, SyncOptions::default(), 3_000).unwrap();
    assert_eq!(again, SessionReport::default());
    assert!(bytes < 200, "in-sync exchange took {bytes} bytes");
    assert_eq!(view(&a), view(&b));
}

#[test]
fn concurrent_renames_keep_both_versions_as_a_conflict_until_resolved() {
    let (mut a, mut b) = (poi(1), poi(2));
    let id = a.add_image("original", 2, 2, &pixels(2, 2, 1), 1_000).unwrap();
    sync(&mut a, &mut b, 1_100);
    a.rename_image(id, "from A", 2_000).unwrap();
    b.rename_image(id, "from B", 2_500).unwrap();
    sync(&mut a, &mut b, 3_000);

    assert_eq!(view(&a), view(&b));
    for p in [&a, &b] {
        assert_eq!(p.image(id).unwrap().name(), "from B", "later stamp is shown");
        let conflicts: Vec<_> = p.conflicts().collect();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].key, Key::Image(id));
        let copies: Vec<_> = conflicts[0].copies.iter().map(|r| &r.value).collect();
        assert!(matches!(copies[..], [Value::Image(m)] if m.name() == "from A"));
    }

    let keep = a.conflicts().next().unwrap().copies[0].dot;
    a.resolve(Key::Image(id), keep, 4_000, Cue::NOW).unwrap();
    sync(&mut a, &mut b, 4_100);
    assert_eq!(b.conflicts().count(), 0);
    assert_eq!(b.image(id).unwrap().name(), "from A");
    assert_eq!(view(&a), view(&b));
}

#[test]
fn an_edit_beats_a_concurrent_delete_even_with_an_older_stamp() {
    let (mut a, mut b) = (poi(1), poi(2));
    let id = a.add_image("keep me", 1, 1, &[1, 2, 3], 1_000).unwrap();
    sync(&mut a, &mut b, 1_000);
    b.rename_image(id, "edited", 2_000).unwrap();
    a.delete_image(id, 9_000).unwrap();
    sync(&mut a, &mut b, 10_000);
    for p in [&mut a, &mut b] {
        assert_eq!(p.image(id).map(|m| m.name()), Some("edited"));
        let hash = p.image(id).unwrap().pixels();
        assert_eq!(p.image_pixels(&hash).unwrap().unwrap(), [1, 2, 3]);
        assert_eq!(p.conflicts().count(), 0, "a deletion is not a conflict copy");
    }
}

#[test]
fn deletes_propagate_compact_once_acknowledged_and_never_come_back() {
    let (mut a, mut b, mut c) = (poi(1), poi(2), poi(3));
    let id = a.add_image("doomed", 2, 1, &pixels(2, 1, 5), 1_000).unwrap();
    sync(&mut a, &mut b, 1_100);
    sync(&mut c, &mut b, 1_200); // C knows B, A never heard of C
    assert_eq!(image_names(&c), ["doomed"]);

    a.delete_image(id, 2_000).unwrap();
    sync(&mut a, &mut b, 2_100);
    assert!(b.image(id).is_none());
    assert!(a.storage().blobs.is_empty() && b.storage().blobs.is_empty(), "unused pixels are removed");
    sync(&mut a, &mut b, 2_200); // A now knows B has seen the tombstone
    assert!(a.siblings(&Key::Image(id)).is_empty(), "A compacted the tombstone");
    assert!(!b.siblings(&Key::Image(id)).is_empty(), "B keeps it: C has not seen it");

    // C, still holding the image, meets A, which no longer has the tombstone.
    sync(&mut c, &mut a, 3_000);
    assert!(c.image(id).is_none(), "C dropped the deleted image through the repair");
    assert!(a.image(id).is_none(), "and did not bring it back to A");
    sync(&mut c, &mut b, 3_100);
    sync(&mut b, &mut c, 3_200);
    for p in [&a, &b, &c] {
        assert!(p.image(id).is_none());
    }
    assert!(b.siblings(&Key::Image(id)).is_empty(), "B compacted once C acknowledged");
}

#[test]
fn a_causally_later_setting_wins_whatever_the_clocks_say() {
    let (mut fast, mut slow) = (poi(1), poi(2));
    let year = 365 * 24 * 3600 * 1000;
    fast.set_brightness(10, 1_000 + year, Cue::NOW).unwrap();
    sync(&mut fast, &mut slow, 1_000);
    assert_eq!(slow.settings().brightness, 10);
    slow.set_brightness(200, 2_000, Cue::NOW).unwrap(); // slow's wall clock is a year behind
    sync(&mut slow, &mut fast, 2_000);
    assert_eq!(fast.settings().brightness, 200);
    assert_eq!(slow.settings().brightness, 200);
    assert!(slow.clock().millis < year, "the far-future stamp did not drag the clock along");
}

#[test]
fn concurrent_settings_are_last_writer_wins_per_field_without_conflicts() {
    let (mut a, mut b) = (poi(1), poi(2));
    a.set_brightness(50, 1_000, Cue::NOW).unwrap();
    b.set_brightness(60, 2_000, Cue::NOW).unwrap();
    b.set_framerate(100, 2_000, Cue::NOW).unwrap();
    a.set_framerate(120, 3_000, Cue::NOW).unwrap();
    sync(&mut a, &mut b, 4_000);
    for p in [&a, &b] {
        assert_eq!((p.settings().brightness, p.settings().framerate), (60, 120));
        assert_eq!(p.conflicts().count(), 0);
    }
    assert_eq!(view(&a), view(&b));
}

#[test]
fn different_sync_groups_never_merge() {
    let (mut a, mut b) = (poi_in(1, "red"), poi_in(2, "blue"));
    a.set_brightness(1, 1_000, Cue::NOW).unwrap();
    b.set_pattern(0, Pattern::default(), 1_000, Cue::NOW).unwrap();
    let before = (view(&a), view(&b));
    let err = sync_with(&mut a, &mut b, SyncOptions::default(), 2_000).unwrap_err();
    assert!(matches!(err, Error::Refused(ref why) if why.contains("sync group")), "{err}");
    let delta = a.delta_for(&Default::default(), Categories::ALL);
    assert!(matches!(b.apply_delta(delta, 2_000), Err(Error::GroupMismatch { .. })));
    assert_eq!((view(&a), view(&b)), before);
}

#[test]
fn selective_sync_moves_only_the_chosen_categories_and_catches_up_later() {
    let (mut a, mut b) = (poi(1), poi(2));
    a.add_image("img", 1, 1, &[9, 9, 9], 1_000).unwrap();
    a.set_pattern(
        3,
        Pattern::new(PatternKind::Fire, Rgb::new(1, 2, 3), Rgb::new(4, 5, 6), 9).unwrap(),
        1_000,
        Cue::NOW,
    )
    .unwrap();
    a.set_brightness(77, 1_000, Cue::NOW).unwrap();
    let images_only =
        SyncOptions { categories: Categories { images: true, patterns: false, settings: false }, ..Default::default() };
    sync_with(&mut b, &mut a, images_only, 2_000).unwrap();
    assert_eq!(image_names(&b), ["img"]);
    assert!(b.pattern(3).is_none());
    assert_eq!(b.settings().brightness, 128);

    let report = sync(&mut b, &mut a, 3_000);
    assert_eq!((report.pulled.patterns_added, report.pulled.settings_updated, report.pulled.images_added), (1, 1, 0));
    assert_eq!(view(&a), view(&b));
}

#[test]
fn push_and_pull_move_content_one_way_only() {
    let (mut a, mut b) = (poi(1), poi(2));
    a.set_brightness(1, 1_000, Cue::NOW).unwrap();
    b.set_pattern(0, Pattern::default(), 1_000, Cue::NOW).unwrap();
    let push = SyncOptions { direction: Direction::Push, ..Default::default() };
    let (report, _) = sync_with(&mut a, &mut b, push, 2_000).unwrap();
    assert_eq!((report.records_sent, report.pulled.records_merged), (1, 0));
    assert_eq!(b.settings().brightness, 1);
    assert!(a.pattern(0).is_none());

    let pull = SyncOptions { direction: Direction::Pull, ..Default::default() };
    let (report, _) = sync_with(&mut a, &mut b, pull, 3_000).unwrap();
    assert_eq!((report.records_sent, report.pulled.patterns_added), (0, 1));
    assert_eq!(view(&a), view(&b));
}

#[test]
fn damaged_or_unwanted_blobs_are_refused() {
    let (mut a, mut b) = (poi(1), poi(2));
    let px = pixels(2, 2, 3);
    let id = a.add_image("px", 2, 2, &px, 1_000).unwrap();
    let pull_meta = SyncOptions { categories: Categories::ALL, direction: Direction::Pull };
    // Only metadata moves: cut the session right after Begun.
    let (mut session, request) = Session::start(&b, pull_meta);
    let response = a.respond(request, 2_000);
    let next = session.on_response(&mut b, response, 2_000).unwrap();
    assert!(matches!(next, Some(Request::Fetch(ref h)) if h.len() == 1));
    let hash = b.image(id).unwrap().pixels();
    assert_eq!(b.missing_blobs(), [hash]);

    let mut bad = px.clone();
    bad[0] ^= 1;
    let stranger = vec![1u8, 2, 3];
    let kept = b
        .store_blobs(vec![Blob { hash, bytes: bad }, Blob { hash: BlobHash::of(&stranger), bytes: stranger }])
        .unwrap();
    assert_eq!(kept, 0);
    assert_eq!(b.missing_blobs(), [hash]);
    assert_eq!(b.store_blobs(vec![Blob { hash, bytes: px.clone() }]).unwrap(), 1);
    assert!(b.missing_blobs().is_empty());
}

#[test]
fn an_interrupted_session_resumes_with_only_what_is_missing() {
    let (mut a, mut b) = (poi(1), poi(2));
    for i in 0..3 {
        a.add_image(&format!("img{i}"), 400, 64, &pixels(400, 64, i), 1_000).unwrap();
    }
    // Cut after the first blob batch.
    let (mut session, request) = Session::start(&b, SyncOptions::default());
    let mut next = session.on_response(&mut b, a.respond(request, 2_000), 2_000).unwrap();
    next = session.on_response(&mut b, a.respond(next.unwrap(), 2_000), 2_000).unwrap();
    assert!(next.is_some());
    let got_first = session.report().blobs_received;
    assert!((1..3).contains(&got_first), "first batch brought {got_first} blobs");
    let report = sync(&mut b, &mut a, 3_000);
    assert_eq!(report.pulled.records_merged, 0, "metadata is not sent again");
    assert_eq!(report.blobs_received, 3 - got_first);
    assert!(b.missing_blobs().is_empty());
}

#[test]
fn a_bad_record_rejects_the_whole_delta_and_changes_nothing() {
    let (mut a, mut b) = (poi(1), poi(2));
    a.set_brightness(5, 1_000, Cue::NOW).unwrap();
    a.set_framerate(30, 1_000, Cue::NOW).unwrap();
    let mut delta = a.delta_for(&Default::default(), Categories::ALL);
    delta.records[1].value = Value::Deleted; // settings cannot be deleted
    let before = view(&b);
    assert!(matches!(b.apply_delta(delta.clone(), 2_000), Err(Error::BadRecord(_))));
    delta.records[1].value = Value::Framerate(0);
    assert!(matches!(b.apply_delta(delta, 2_000), Err(Error::BadRecord(_))));
    assert_eq!(view(&b), before);
    assert!(b.knowledge().settings.is_empty());
}

#[test]
fn garbage_on_the_wire_is_a_protocol_error() {
    let request = Request::Fetch(vec![BlobHash::of(b"x")]);
    let mut bytes = wire::to_bytes(&request);
    assert_eq!(wire::from_bytes::<Request>(&bytes).unwrap(), request);
    bytes.push(0);
    assert!(matches!(wire::from_bytes::<Request>(&bytes), Err(Error::Protocol(_))));
    assert!(matches!(wire::from_bytes::<Response>(&[0xff, 0xff, 0xff]), Err(Error::Protocol(_))));
}

#[test]
fn third_party_edits_are_relayed() {
    let (mut a, mut b, mut c) = (poi(1), poi(2), poi(3));
    a.add_image("from A", 3, 1, &pixels(3, 1, 0), 1_000).unwrap();
    c.set_pattern(1, Pattern::default(), 1_000, Cue::NOW).unwrap();
    sync(&mut a, &mut b, 2_000);
    sync(&mut b, &mut c, 2_100);
    sync(&mut a, &mut b, 2_200);
    assert_eq!(view(&a), view(&c));
    assert_eq!(image_names(&c), ["from A"]);
    assert!(a.pattern(1).is_some());
    assert!(c.missing_blobs().is_empty());
}

#[test]
fn a_delta_meant_for_another_replica_is_refused() {
    let (mut a, mut b, mut c) = (poi(1), poi(2), poi(3));
    a.set_brightness(1, 1_000, Cue::NOW).unwrap();
    a.set_framerate(30, 1_000, Cue::NOW).unwrap();
    let delta_for_b_later = {
        sync(&mut b, &mut a, 1_100); // B now has both edits
        a.set_brightness(2, 1_200, Cue::NOW).unwrap();
        a.delta_for(b.knowledge(), Categories::ALL) // holds only the new brightness
    };
    let before = view(&c);
    assert!(matches!(c.apply_delta(delta_for_b_later, 1_300), Err(Error::Protocol(_))));
    assert_eq!(view(&c), before, "C did not count records as seen that it never got");
    sync(&mut c, &mut a, 1_400);
    assert_eq!((c.settings().brightness, c.settings().framerate), (2, 30));
}

#[test]
fn a_restored_copy_of_a_store_is_refused_instead_of_silently_diverging() {
    let (a, mut b, mut restored) = restored_after_losing_edits();
    // The restored poi meets B before making as many edits as it lost: B has seen edits of
    // replica 1 that the restored store never made, so both sides refuse.
    let err = sync_with(&mut restored, &mut b, SyncOptions::default(), 3_100).unwrap_err();
    assert_eq!(err, Error::ForeignHistory);
    let err = sync_with(&mut b, &mut restored, SyncOptions::default(), 3_200).unwrap_err();
    assert!(matches!(err, Error::Refused(ref why) if why.contains("never made")), "{err}");
    assert_eq!(b.settings().brightness, 20);

    // A forged delta claiming B's future edits changes nothing either.
    let mut forged = a.delta_for(&Default::default(), Categories::ALL);
    forged.knowledge.settings.observe(povpoi_core::sync::Dot { replica: ReplicaId(2), seq: 1_000_000 });
    assert_eq!(b.apply_delta(forged, 3_300), Err(Error::ForeignHistory));
}

#[test]
fn a_restored_copy_under_a_new_replica_id_gets_back_what_it_lost_from_its_peers() {
    let (_, mut b, mut restored) = restored_after_losing_edits();
    restored.renew_replica_id(ReplicaId(77)).unwrap();
    assert_eq!(restored.replica_id(), ReplicaId(77));
    sync(&mut restored, &mut b, 3_100);
    assert_eq!((restored.settings().brightness, restored.settings().framerate), (20, 40));
    // Its next edits are numbered afresh and reach B, which still knows old replica 1.
    restored.set_brightness(30, 4_000, Cue::NOW).unwrap();
    sync(&mut restored, &mut b, 4_100);
    assert_eq!(b.settings().brightness, 30);
    assert_eq!(view(&restored), view(&b));
}

#[test]
fn a_damaged_stored_blob_does_not_swallow_a_new_upload_of_the_same_picture() {
    let mut a = poi(1);
    let px = pixels(3, 2, 4);
    let first = a.add_image("one", 3, 2, &px, 1_000).unwrap();
    let hash = a.image(first).unwrap().pixels();
    let identity = Identity { replica: ReplicaId(1), device: DeviceId([0xA0, 0, 0, 0, 0, 1]), group: "troupe".into() };
    let mut storage = a.into_storage();
    storage.blobs.get_mut(&hash).unwrap()[0] ^= 0xff; // flash rot
    let mut a = Replica::open(storage, identity).unwrap();
    a.add_image("two", 3, 2, &px, 2_000).unwrap();
    assert_eq!(a.image_pixels(&hash).unwrap().unwrap(), px);
    assert!(a.missing_blobs().is_empty());
}

#[test]
fn a_deletion_of_a_slot_that_cannot_exist_is_a_bad_record() {
    let (mut a, mut b) = (poi(1), poi(2));
    a.set_pattern(2, Pattern::default(), 1_000, Cue::NOW).unwrap();
    a.clear_pattern(2, 1_100, Cue::NOW).unwrap();
    let mut delta = a.delta_for(&Default::default(), Categories::ALL);
    let tombstone = delta.records.iter_mut().find(|r| r.value == Value::Deleted).unwrap();
    tombstone.key = Key::Pattern(200);
    assert!(matches!(b.apply_delta(delta, 2_000), Err(Error::BadRecord(_))));
}

/// Issue 10 item 4: a stranger (no pairing key) opening sessions under ever new replica ids
/// with the largest version vectors a message may carry is answered, but a poi remembers
/// only the most recent [`MAX_REMEMBERED_PEERS`] of them; a vector naming more replicas
/// than [`MAX_VERSION_VECTOR_ENTRIES`] does not even decode.
#[test]
fn strangers_knowledge_is_remembered_only_so_far() {
    use povpoi_core::sync::{Knowledge, MAX_REMEMBERED_PEERS, MAX_VERSION_VECTOR_ENTRIES, Summary, VersionVector};
    let mut a = poi(1);
    let huge = |from: u64| -> VersionVector {
        (0..MAX_VERSION_VECTOR_ENTRIES as u64).map(|i| (ReplicaId(from + i), 1)).collect()
    };
    for n in 0..(2 * MAX_REMEMBERED_PEERS as u64) {
        let stranger = ReplicaId(1_000_000 + n);
        let knowledge = Knowledge { images: huge(10_000), patterns: huge(20_000), settings: huge(30_000) };
        let summary = Summary {
            protocol: povpoi_core::sync::PROTOCOL_VERSION,
            group: "troupe".into(),
            device: DeviceId([2, 0, 0, 0, 0, 9]),
            replica: stranger,
            knowledge,
            part_bytes: povpoi_core::sync::MAX_PUSH_RECORD_BYTES as u32,
        };
        let request = Request::Begin { summary, options: SyncOptions::default() };
        let request: Request = wire::from_bytes(&wire::to_bytes(&request)).unwrap();
        assert!(matches!(a.respond(request, 1_000), Response::Begun { .. }));
        assert!(a.remembered_peers() <= MAX_REMEMBERED_PEERS);
    }
    assert_eq!(a.remembered_peers(), MAX_REMEMBERED_PEERS);
    // A real peer syncing after the flood still converges.
    let mut b = poi(2);
    b.set_brightness(42, 2_000, Cue::NOW).unwrap();
    sync(&mut b, &mut a, 3_000);
    assert_eq!(a.settings().brightness, 42);

    let too_many: Vec<(ReplicaId, u64)> =
        (0..=MAX_VERSION_VECTOR_ENTRIES as u64).map(|i| (ReplicaId(i + 1), 1)).collect();
    let bytes = wire::to_bytes(&too_many);
    assert!(wire::from_bytes::<VersionVector>(&bytes).is_err(), "one entry too many is refused");
}

#[test]
fn an_image_order_syncs_numbers_the_images_and_never_makes_a_conflict() {
    let (mut a, mut b) = (poi(1), poi(2));
    let one = a.add_image("one", 2, 2, &pixels(2, 2, 1), 1_000).unwrap();
    let two = a.add_image("two", 2, 2, &pixels(2, 2, 2), 1_001).unwrap();
    let three = a.add_image("three", 2, 2, &pixels(2, 2, 3), 1_002).unwrap();
    sync(&mut a, &mut b, 1_100);
    assert_eq!(image_names(&b), ["one", "two", "three"], "unordered: by id");

    a.set_image_order(vec![three, one], 2_000).unwrap();
    assert_eq!(image_names(&a), ["three", "one", "two"], "the unplaced follow the placed");
    let report = sync(&mut b, &mut a, 2_100);
    assert_eq!((report.pulled.images_added, report.pulled.records_merged), (0, 1), "an order is not an image");
    assert_eq!(image_names(&b), ["three", "one", "two"]);

    // Reordered on both apart: the later order wins everywhere, with no conflict to settle.
    a.set_image_order(vec![two, three, one], 3_000).unwrap();
    b.set_image_order(vec![one, two, three], 3_500).unwrap();
    sync(&mut a, &mut b, 4_000);
    assert_eq!(image_names(&a), ["one", "two", "three"]);
    assert_eq!(view(&a), view(&b));
    assert_eq!(a.conflicts().count(), 0);

    // A deleted image drops out of the order; a new one goes last.
    a.delete_image(one, 5_000).unwrap();
    let four = a.add_image("four", 2, 2, &pixels(2, 2, 4), 5_001).unwrap();
    assert_eq!(a.images().map(|(id, _)| id).collect::<Vec<_>>(), [two, three, four]);

    assert!(matches!(a.set_image_order(vec![two, two], 6_000), Err(Error::Invalid(_))));
    assert!(matches!(a.set_image_order(vec![one], 6_000), Err(Error::NotFound(Key::Image(id))) if id == one));
}

#[test]
fn one_blob_at_a_time_moves_every_image_both_ways_one_blob_per_message() {
    let (mut a, mut b) = (poi(1), poi(2));
    let mut sent = Vec::new();
    for n in 0..3u8 {
        sent.push(a.add_image(&format!("a{n}"), 40, 8, &pixels(40, 8, n), 1_000).unwrap());
        sent.push(b.add_image(&format!("b{n}"), 40, 8, &pixels(40, 8, 10 + n), 1_000).unwrap());
    }
    let (report, requests) = small_session(&mut a, &mut b, usize::MAX);
    let (mut fetches, mut stores) = (0, 0);
    for request in &requests {
        match request {
            Request::Fetch(hashes) => {
                assert_eq!(hashes.len(), 1, "a Fetch asked for {} blobs", hashes.len());
                fetches += 1;
            }
            Request::Store(blobs) => {
                assert_eq!(blobs.len(), 1, "a Store carried {} blobs", blobs.len());
                stores += 1;
            }
            _ => {}
        }
    }
    assert_eq!((fetches, stores), (3, 3));
    assert_eq!((report.blobs_received, report.blobs_sent), (3, 3));
    for id in sent {
        let meta = a.image(id).unwrap().clone();
        assert_eq!(b.image_pixels(&meta.pixels()).unwrap(), a.image_pixels(&meta.pixels()).unwrap());
        assert!(a.image_pixels(&meta.pixels()).unwrap().is_some());
    }
}

/// Runs a session from `a` to `b`, `a` fetching one blob at a time up to `max_fetched` bytes;
/// returns its report and the requests `a` sent.
fn small_session(a: &mut Poi, b: &mut Poi, max_fetched: usize) -> (SessionReport, Vec<Request>) {
    let (session, mut request) = Session::start(a, SyncOptions::default());
    let mut session = session.one_blob_at_a_time(max_fetched);
    let mut sent = Vec::new();
    for _ in 0..1_000 {
        sent.push(request.clone());
        let response = b.respond(wire::from_bytes(&wire::to_bytes(&request)).unwrap(), 2_000);
        match session.on_response(a, wire::from_bytes(&wire::to_bytes(&response)).unwrap(), 2_000).unwrap() {
            Some(next) => request = next,
            None => return (*session.report(), sent),
        }
    }
    panic!("session did not finish in 1,000 messages");
}

#[test]
fn a_poi_short_of_ram_skips_blobs_over_its_limits_and_still_gets_the_rest() {
    let (mut board, mut node) = (poi(1), poi(2));
    // 960 bytes, 3,840 bytes and 1,920 bytes of pixels.
    let small = node.add_image("small", 40, 8, &pixels(40, 8, 1), 1_000).unwrap();
    let large = node.add_image("large", 40, 32, &pixels(40, 32, 2), 1_000).unwrap();
    let middle = node.add_image("middle", 40, 16, &pixels(40, 16, 3), 1_000).unwrap();
    let has = |p: &Poi, id| !p.missing_blobs().contains(&p.image(id).unwrap().pixels());

    // Its own session fetches those up to 2,000 bytes; the large one does not stop the others.
    let (_, sent) = small_session(&mut board, &mut node, 2_000);
    let fetches = sent.iter().filter(|r| matches!(r, Request::Fetch(_))).count();
    assert_eq!(fetches, 2, "Fetch requests");
    assert!(has(&board, small) && has(&board, middle) && !has(&board, large));
    assert_eq!(board.missing_blobs_up_to(2_000), []);
    assert_eq!(board.missing_blobs().len(), 1);

    // Pushed to it, it asks only for those up to 1,000 bytes: the push carries what its
    // request limit takes, and its own sessions fetch the rest.
    let (mut board, mut node) = (poi(3), poi(4));
    let small = node.add_image("small", 40, 8, &pixels(40, 8, 1), 1_000).unwrap();
    let large = node.add_image("large", 40, 32, &pixels(40, 32, 2), 1_000).unwrap();
    board.want_blobs_up_to(1_000);
    let (_, sent) = small_session(&mut node, &mut board, usize::MAX);
    let stored: Vec<usize> = sent
        .iter()
        .filter_map(|r| match r {
            Request::Store(blobs) => Some(blobs.iter().map(|b| b.bytes.len()).sum()),
            _ => None,
        })
        .collect();
    assert_eq!(stored, [960], "bytes of each Store");
    assert!(has(&board, small) && !has(&board, large));
    small_session(&mut board, &mut node, 4_000);
    assert!(has(&board, large), "its own session fetched the large one");
    assert_eq!(view(&board), view(&node));
}

/// A poi with 200 images and a pattern per slot: more records than one board body holds.
fn large_library(n: u8) -> Poi {
    let mut a = poi(n);
    for i in 0..200u32 {
        a.add_image(&format!("picture number {i:03}"), 2, 2, &pixels(2, 2, i as u8), 1_000 + u64::from(i)).unwrap();
    }
    for slot in 0..18 {
        let pattern = Pattern::new(PatternKind::Comet, Rgb::new(slot, 0, 0), Rgb::default(), 9).unwrap();
        a.set_pattern(slot, pattern, 2_000, Cue::NOW).unwrap();
    }
    a
}

/// A board's request body limit (firmware/src/http.rs).
const BOARD_BODY_BYTES: usize = 8 * 1024;

#[test]
fn a_large_delta_goes_in_push_parts_that_each_fit_a_boards_request_body() {
    let (mut a, mut b) = (large_library(1), poi(2));
    b.set_brightness(77, 1_500, Cue::NOW).unwrap();
    let (report, sent) = small_session(&mut a, &mut b, usize::MAX);
    let pushes: Vec<usize> =
        sent.iter().filter(|r| matches!(r, Request::Push(_))).map(|r| wire::to_bytes(r).len()).collect();
    println!("200 images and 18 patterns pushed in {} parts of {pushes:?} bytes", pushes.len());
    assert!(pushes.len() >= 3, "{pushes:?}");
    assert!(pushes.iter().all(|&n| n <= BOARD_BODY_BYTES - 1024), "{pushes:?}");
    assert_eq!(report.records_sent, 218);
    assert_eq!(b.records().filter(|r| r.dot.replica == a.replica_id()).count(), 218);
    assert_eq!(b.knowledge(), &{
        let mut k = a.knowledge().clone();
        k.settings = b.knowledge().settings.clone();
        k
    });
    assert_eq!(b.images().count(), 200);
    // Each part's `Want` lists at most 64 of the blobs it misses, which the next session
    // finishes.
    assert!(b.missing_blobs().len() < 64, "{}", b.missing_blobs().len());
    small_session(&mut a, &mut b, usize::MAX);
    assert_eq!(b.missing_blobs(), []);

    // In one part, the same records would not fit such a body.
    let (mut a, mut c) = (large_library(1), poi(3));
    let (mut session, _) = Session::start(&a, SyncOptions::default());
    session = session.push_parts_of(usize::MAX);
    let mut begun = c.respond(Request::Begin { summary: a.summary(), options: SyncOptions::default() }, 2_000);
    if let Response::Begun { summary, .. } = &mut begun {
        summary.part_bytes = u32::MAX; // a receiver that would take any part
    }
    let push = session.on_response(&mut a, begun, 2_000).unwrap().unwrap();
    assert!(matches!(push, Request::Push(_)));
    assert!(wire::to_bytes(&push).len() > BOARD_BODY_BYTES);
}

/// Bytes of records in each `Push` of a session, as the parts are cut.
fn part_sizes(sent: &[Request]) -> Vec<usize> {
    let records = |d: &Delta| d.records.iter().map(|r| wire::to_bytes(r).len()).sum();
    sent.iter().filter_map(|r| if let Request::Push(d) = r { Some(records(d)) } else { None }).collect()
}

#[test]
fn a_receiver_that_takes_small_parts_is_pushed_parts_of_its_size() {
    // The pusher's own limit is the default, 6 KiB; the receiver's summary asks for 2 KiB.
    let (mut a, mut b) = (large_library(1), poi(2));
    b.take_parts_up_to(2 * 1024);
    assert_eq!(b.summary().part_bytes, 2048);
    let (report, sent) = small_session(&mut a, &mut b, usize::MAX);
    let parts = part_sizes(&sent);
    println!("{} records pushed to a 2 KiB receiver in parts of {parts:?} bytes", report.records_sent);
    assert!(parts.iter().all(|&n| n <= 2 * 1024), "{parts:?}");
    let (mut c, mut d) = (large_library(1), poi(3));
    let wide = part_sizes(&small_session(&mut c, &mut d, usize::MAX).1);
    assert!(wide.iter().any(|&n| n > 2 * 1024) && parts.len() > 2 * wide.len(), "{wide:?} against {parts:?}");
    assert_eq!(report.records_sent, 218);
    assert_eq!(view(&b), view(&a));

    // Under the floor, a summary's limit counts as 1 KiB: a peer cannot ask for a part per record.
    let (mut a, mut b) = (large_library(1), poi(2));
    b.take_parts_up_to(10);
    assert_eq!(b.summary().part_bytes, MIN_PART_BYTES as u32, "a replica names no less");
    let (session, begin) = Session::start(&a, SyncOptions::default());
    let mut begun = b.respond(begin, 2_000);
    if let Response::Begun { summary, .. } = &mut begun {
        summary.part_bytes = 10; // as another implementation might ask
    }
    let mut session = session;
    let Some(Request::Push(first)) = session.on_response(&mut a, begun, 2_000).unwrap() else {
        panic!("expected a Push")
    };
    assert!(part_sizes(&[Request::Push(first.clone())])[0] > MIN_PART_BYTES / 2, "cut at 1 KiB, not 10 B");
    assert!(matches!(b.respond(Request::Push(first), 2_000), Response::Want(_)));
    let parts = part_sizes(&small_session(&mut a, &mut b, usize::MAX).1);
    assert!(parts.iter().all(|&n| n <= MIN_PART_BYTES), "{parts:?}");
    assert!(parts.iter().filter(|&&n| n > MIN_PART_BYTES / 2).count() > parts.len() / 2, "{parts:?}");
    assert_eq!(view(&b), view(&a));
}

#[test]
fn a_session_cut_off_between_push_parts_leaves_nothing_counted_as_seen_that_did_not_arrive() {
    let (mut a, mut b) = (large_library(1), poi(2));
    let before = b.knowledge().clone();
    let (mut session, begin) = Session::start(&a, SyncOptions::default());
    let begun = b.respond(begin, 2_000);
    let Some(Request::Push(first)) = session.on_response(&mut a, begun, 2_000).unwrap() else {
        panic!("expected a Push")
    };
    let held = first.records.len();
    assert!(held > 0 && held < 218, "{held}");
    assert!(matches!(b.respond(Request::Push(first), 2_000), Response::Want(_)));
    // The session stops here: the records are held, but none counts as seen, so the next
    // session offers them all again and only the rest are new.
    assert_eq!(b.records().count(), held);
    assert_eq!(b.knowledge(), &before);
    let report = sync(&mut a, &mut b, 3_000);
    assert_eq!(report.records_sent, 218);
    assert_eq!(b.records().count(), 218);
    assert_eq!(b.knowledge(), a.knowledge());
    assert_eq!(view(&b), view(&a));
    // Now in step: a further session moves no record.
    assert_eq!(sync(&mut a, &mut b, 4_000).records_sent, 0);
}

#[test]
fn an_edit_made_between_push_parts_goes_with_the_last_part() {
    let (mut a, mut b) = (large_library(1), poi(2));
    let (session, begin) = Session::start(&a, SyncOptions::default());
    let mut session = session.push_parts_of(1);
    let mut request = Some(begin);
    let mut response = None;
    let mut parts = 0;
    while let Some(req) = request.take() {
        if let Request::Push(delta) = &req {
            parts += 1;
            if parts == 30 {
                // Pattern slots sort after the images, so the parts are past slot 0 only
                // once the 200 images went; a key they passed: image 0, renamed now.
                assert!(delta.records.iter().all(|r| matches!(r.key, Key::Image(_))));
                let first = a.images().next().unwrap().0;
                a.rename_image(first, "renamed between parts", 2_500).unwrap();
            }
        }
        response = Some(b.respond(req, 3_000));
        request = session.on_response(&mut a, response.clone().unwrap(), 3_000).unwrap();
    }
    assert!(matches!(response, Some(Response::Want(_) | Response::Blobs { .. } | Response::Stored(_))));
    assert!(parts > 200, "{parts} parts");
    assert!(image_names(&b).contains(&"renamed between parts".to_string()));
    assert_eq!(b.knowledge(), a.knowledge());
    assert_eq!(view(&b), view(&a));
}

#[test]
fn the_last_push_part_is_taken_only_by_the_replica_that_took_the_earlier_parts() {
    let (mut a, mut b, mut c) = (large_library(1), poi(2), poi(3));
    let (session, begin) = Session::start(&a, SyncOptions::default());
    let mut session = session.push_parts_of(2_000);
    let mut request = Some(begin);
    let mut last_part = None;
    while let Some(req) = request.take() {
        if let Request::Push(delta) = &req
            && delta.to.is_some()
        {
            last_part = Some(delta.clone());
        }
        let response = b.respond(req, 3_000);
        request = session.on_response(&mut a, response, 3_000).unwrap();
    }
    let last_part = last_part.expect("a last part naming its receiver");
    assert_eq!(last_part.to, Some(b.replica_id()));
    assert_eq!(b.knowledge(), a.knowledge());
    // Its knowledge counts records c never got: c, which has seen its base, refuses it.
    let before = view(&c);
    assert!(matches!(c.respond(Request::Push(last_part.clone()), 4_000), Response::Refused(_)));
    assert_eq!(view(&c), before);
    assert_eq!(c.knowledge(), poi(3).knowledge());
    // Taken again by b, it changes nothing.
    let before = (view(&b), b.knowledge().clone());
    assert!(matches!(b.respond(Request::Push(last_part), 4_000), Response::Want(_)));
    assert_eq!((view(&b), b.knowledge().clone()), before);
}

#[test]
fn an_initiator_that_takes_small_parts_gets_a_large_delta_pushed_in_parts_not_in_the_answer() {
    let (mut board, mut node) = (poi(1), poi(2));
    board.take_parts_up_to(2 * 1024);
    for i in 0..50u8 {
        node.add_image(&format!("image {i:02}"), 2, 2, &pixels(2, 2, i), 1_000 + u64::from(i)).unwrap();
    }
    // The board's session: the node's 50 records are over the board's 2 KiB, so the node's
    // answer leaves them out; the board's own edit still reaches the node.
    board.set_brightness(33, 2_000, Cue::NOW).unwrap();
    let report = sync(&mut board, &mut node, 2_100);
    assert_eq!(report.pulled.records_merged, 0);
    assert_eq!(board.image_count(), 0);
    assert_eq!(node.settings().brightness, 33);
    // The node's own session pushes them, in parts of the board's size.
    let (pushed, sent) = small_session(&mut node, &mut board, usize::MAX);
    assert_eq!(pushed.records_sent, 50);
    let parts = part_sizes(&sent);
    assert!(parts.len() >= 2 && parts.iter().all(|&n| n <= 2 * 1024), "{parts:?}");
    assert_eq!(view(&board), view(&node));
    // A delta within the board's size comes in the answer, and a node (6 KiB) gets any.
    node.set_brightness(12, 3_000, Cue::NOW).unwrap();
    assert_eq!(sync(&mut board, &mut node, 3_100).pulled.records_merged, 1);
    let mut other = poi(3);
    assert_eq!(sync(&mut other, &mut node, 3_200).pulled.records_merged, 51);
}

#[test]
fn a_responder_that_answers_small_deltas_only_leaves_a_large_one_for_its_own_session() {
    let (mut board, mut node) = (poi(1), poi(2));
    board.answer_deltas_up_to(2 * 1024);
    for i in 0..50u8 {
        board.add_image(&format!("image {i:02}"), 2, 2, &pixels(2, 2, i), 1_000 + u64::from(i)).unwrap();
    }
    // The node's session: the board's 50 records are over 2 KiB, so its answer leaves them
    // out (and never builds them whole); the node's own edit still reaches the board.
    node.set_brightness(77, 2_000, Cue::NOW).unwrap();
    let report = sync(&mut node, &mut board, 2_100);
    assert_eq!(report.pulled.records_merged, 0);
    assert_eq!(node.image_count(), 0);
    assert_eq!(board.settings().brightness, 77);
    // The board's own session pushes them, in parts.
    sync(&mut board, &mut node, 2_200);
    assert_eq!(view(&node), view(&board));
    assert_eq!(node.image_count(), 50);
    // A delta within the limit is answered as before.
    board.set_brightness(12, 3_000, Cue::NOW).unwrap();
    let report = sync(&mut node, &mut board, 3_100);
    assert_eq!(report.pulled.records_merged, 1);
    assert_eq!(view(&node), view(&board));
}
