//! Byte-exact examples of the peer protocol, quoted in docs/PROTOCOL.md: if the encoding
//! changes, this fails and the document must change with it (and PROTOCOL_VERSION too).

use povpoi_core::clock::Stamp;
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Selection};
use povpoi_core::show::Cue;
use povpoi_core::sync::{
    Categories, Delta, Direction, Dot, Key, Knowledge, Record, Request, Response, Summary, SyncOptions, Value,
    VersionVector,
};
use povpoi_core::wire;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn summary() -> Summary {
    let vv: VersionVector = [(ReplicaId(1), 3)].into_iter().collect();
    Summary {
        protocol: 2,
        group: "ab".into(),
        device: DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]),
        replica: ReplicaId(1),
        knowledge: Knowledge { images: vv.clone(), patterns: VersionVector::default(), settings: vv },
    }
}

#[test]
fn begin_request_bytes() {
    let request = Request::Begin { summary: summary(), options: SyncOptions::default() };
    let bytes = wire::to_bytes(&request);
    assert_eq!(hex(&bytes), "00 02 02 61 62 a1 b2 c3 d4 e5 f6 01 01 01 03 00 01 01 03 00 01 01 01");
    assert_eq!(wire::from_bytes::<Request>(&bytes).unwrap(), request);
}

#[test]
fn begun_response_with_one_setting_record_bytes() {
    let dot = Dot { replica: ReplicaId(1), seq: 3 };
    let record = Record {
        key: Key::Selection,
        dot,
        stamp: Stamp { millis: 1_700_000_000_000, counter: 0 },
        context: [(ReplicaId(1), 3)].into_iter().collect(),
        value: Value::Selection(Selection { mode: Mode::Pattern, index: 5 }),
        cue: Cue(3_600_250_000),
    };
    let s = summary();
    let delta = Delta {
        group: "ab".into(),
        replica: ReplicaId(1),
        categories: Categories { images: false, patterns: false, settings: true },
        base: Knowledge::default(),
        records: vec![record],
        knowledge: s.knowledge.clone(),
        floor: Knowledge::default(),
        repairs: vec![],
    };
    let response = Response::Begun { summary: s, delta: Some(Box::new(delta)), want: vec![] };
    let bytes = wire::to_bytes(&response);
    assert_eq!(
        hex(&bytes),
        "00 02 02 61 62 a1 b2 c3 d4 e5 f6 01 01 01 03 00 01 01 03 \
         01 02 61 62 01 00 00 01 00 00 00 01 05 01 03 80 d0 95 ff bc 31 00 01 01 03 05 02 05 90 e9 dd b4 0d \
         01 01 03 00 01 01 03 00 00 00 00 \
         00"
    );
    assert_eq!(wire::from_bytes::<Response>(&bytes).unwrap(), response);
}

#[test]
fn options_encode_direction_then_categories() {
    let options = SyncOptions {
        direction: Direction::Pull,
        categories: Categories { images: true, patterns: false, settings: true },
    };
    assert_eq!(hex(&wire::to_bytes(&options)), "02 01 00 01");
}
