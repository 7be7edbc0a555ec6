//! The simulation's judge must catch the failures it exists to catch.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, Key, Replica, SyncOptions};
use povpoi_sim::oracle::Oracle;
use povpoi_sim::storage::SimStorage;
use povpoi_sim::transport;

fn replica(n: u8) -> Replica<SimStorage> {
    let identity = Identity { replica: ReplicaId(n.into()), device: DeviceId([n; 6]), group: "g".into() };
    Replica::open(SimStorage::default(), identity).unwrap()
}

fn record_last(oracle: &mut Oracle, r: &Replica<SimStorage>, key: Key) {
    oracle.record_write(r.siblings(&key)[0].clone());
}

#[test]
fn the_oracle_flags_a_missing_edit_a_revived_delete_and_missing_pixels() {
    let (mut a, b) = (replica(1), replica(2));
    let mut oracle = Oracle::default();
    let px = [5u8; 6];
    let id = a.add_image("x", 2, 1, &px, 1_000).unwrap();
    oracle.record_pixels(&px);
    record_last(&mut oracle, &a, Key::Image(id));

    // B never got the image.
    let err = oracle.check(&mut [a, b]).unwrap_err();
    assert!(err.contains("replica 1") && err.contains("wrong versions"), "{err}");

    // B got it, then A deleted it and the deletion never reached B.
    let (mut a, mut b) = (replica(1), replica(2));
    let mut oracle = Oracle::default();
    let id = a.add_image("x", 2, 1, &px, 1_000).unwrap();
    oracle.record_pixels(&px);
    record_last(&mut oracle, &a, Key::Image(id));
    transport::sync(&mut b, &mut a, SyncOptions::default(), 1_100).unwrap();
    a.delete_image(id, 1_200).unwrap();
    record_last(&mut oracle, &a, Key::Image(id));
    let err = oracle.check(&mut [a, b]).unwrap_err();
    assert!(err.contains("deleted item is back"), "{err}");
}

#[test]
fn the_oracle_accepts_a_converged_pair_and_counts_conflicts() {
    let (mut a, mut b) = (replica(1), replica(2));
    let mut oracle = Oracle::default();
    let px = [9u8; 3];
    let id = a.add_image("x", 1, 1, &px, 1_000).unwrap();
    oracle.record_pixels(&px);
    record_last(&mut oracle, &a, Key::Image(id));
    transport::sync(&mut a, &mut b, SyncOptions::default(), 1_100).unwrap();
    a.rename_image(id, "a", 1_200).unwrap();
    record_last(&mut oracle, &a, Key::Image(id));
    b.rename_image(id, "b", 1_300).unwrap();
    record_last(&mut oracle, &b, Key::Image(id));
    transport::sync(&mut a, &mut b, SyncOptions::default(), 1_400).unwrap();
    let converged = oracle.check(&mut [a, b]).unwrap();
    assert_eq!((converged.live_items, converged.multi_version_items, converged.images_checked), (1, 1, 4));
}
