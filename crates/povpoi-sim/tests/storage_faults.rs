//! A replica whose storage fails to save changes nothing and carries on afterwards.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Error, Identity, Record, Replica};
use povpoi_sim::storage::SimStorage;

#[test]
fn a_failed_save_rolls_back_and_the_store_reopens_as_it_was() {
    let identity = Identity { replica: ReplicaId(7), device: DeviceId([7; 6]), group: "g".into() };
    let mut p = Replica::open(SimStorage::default(), identity.clone()).unwrap();
    let fail_saves = p.storage().fail_switch();
    p.set_brightness(10, 1_000, Cue::NOW).unwrap();
    let id = p.add_image("kept", 1, 1, &[1, 1, 1], 1_000).unwrap();
    let records: Vec<Record> = p.records().cloned().collect();

    fail_saves.set(2);
    assert!(matches!(p.set_brightness(99, 2_000, Cue::NOW), Err(Error::Storage(_))));
    assert!(matches!(p.delete_image(id, 2_000), Err(Error::Storage(_))));
    assert_eq!(p.settings().brightness, 10);
    assert_eq!(p.records().cloned().collect::<Vec<_>>(), records);

    let mut p = Replica::open(p.into_storage(), identity).unwrap();
    assert_eq!(p.records().cloned().collect::<Vec<_>>(), records);
    let hash = p.image(id).unwrap().pixels();
    assert_eq!(p.image_pixels(&hash).unwrap().unwrap(), [1, 1, 1]);
    p.set_brightness(11, 3_000, Cue::NOW).unwrap();
    assert_eq!(p.settings().brightness, 11, "edits go on after the failure");
}
