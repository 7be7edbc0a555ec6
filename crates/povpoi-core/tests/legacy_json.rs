//! The `/api/sync/data` listing keeps the existing system's JSON field names exactly.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Pattern, PatternKind, Rgb, Selection};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, MemoryStorage, Replica};
use povpoi_core::wire::legacy::SyncData;
use serde_json::{Value, json};

#[test]
fn sync_data_has_the_spec_shape_with_real_content() {
    let identity = Identity {
        replica: ReplicaId(0xab),
        device: DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]),
        group: "g".into(),
    };
    let mut poi = Replica::open(MemoryStorage::default(), identity).unwrap();
    let id = poi.add_image("say \"hi\"", 2, 1, &[1, 2, 3, 4, 5, 6], 1_700_000_000_000).unwrap();
    let comet = Pattern::new(PatternKind::Comet, Rgb::new(1, 2, 3), Rgb::new(4, 5, 6), 9).unwrap();
    poi.set_pattern(4, comet, 1_700_000_000_100, Cue::NOW).unwrap();
    poi.set_brightness(77, 1_700_000_000_200, Cue::NOW).unwrap();
    poi.set_selection(Selection { mode: Mode::Pattern, index: 4 }, 1_700_000_000_300, Cue::NOW).unwrap();

    let listing: Value = serde_json::to_value(SyncData::of(&poi, "POV Poi E5:F6")).unwrap();
    assert_eq!(
        listing,
        json!({
            "deviceId": "A1:B2:C3:D4:E5:F6",
            "deviceName": "POV Poi E5:F6",
            "images": [{"id": id.to_string(), "name": "say \"hi\"", "width": 2, "height": 1,
                        "timestamp": 1_700_000_000_000u64, "size": 6}],
            "patterns": [{"id": 4, "type": 5, "name": "Comet", "timestamp": 1_700_000_000_100u64}],
            "settings": {"brightness": 77, "framerate": 50, "mode": 2, "index": 4,
                         "timestamp": 1_700_000_000_300u64}
        })
    );
}
