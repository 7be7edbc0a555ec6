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
        protocol: 5,
        group: "ab".into(),
        device: DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]),
        replica: ReplicaId(1),
        knowledge: Knowledge { images: vv.clone(), patterns: VersionVector::default(), settings: vv },
        part_bytes: 2048,
    }
}

#[test]
fn begin_request_bytes() {
    let request = Request::Begin { summary: summary(), options: SyncOptions::default() };
    let bytes = wire::to_bytes(&request);
    assert_eq!(hex(&bytes), "00 05 02 61 62 a1 b2 c3 d4 e5 f6 01 01 01 03 00 01 01 03 80 10 00 01 01 01");
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
        to: None,
    };
    let response = Response::Begun { summary: s, delta: Some(Box::new(delta)), want: vec![] };
    let bytes = wire::to_bytes(&response);
    assert_eq!(
        hex(&bytes),
        "00 05 02 61 62 a1 b2 c3 d4 e5 f6 01 01 01 03 00 01 01 03 80 10 \
         01 02 61 62 01 00 00 01 00 00 00 01 05 01 03 80 d0 95 ff bc 31 00 01 01 03 05 02 05 90 e9 dd b4 0d \
         01 01 03 00 01 01 03 00 00 00 00 00 \
         00"
    );
    assert_eq!(wire::from_bytes::<Response>(&bytes).unwrap(), response);
}

#[test]
fn a_selection_by_image_id_is_value_7_after_the_unchanged_older_variants() {
    use povpoi_core::model::ImageId;
    assert_eq!(povpoi_core::sync::PROTOCOL_VERSION, 5);
    let id = ImageId { origin: ReplicaId(1), seq: 2 };
    assert_eq!(hex(&wire::to_bytes(&Value::SelectedImage(id))), "07 01 02");
    assert_eq!(hex(&wire::to_bytes(&Value::Deleted)), "06");
}

#[test]
fn options_encode_direction_then_categories() {
    let options = SyncOptions {
        direction: Direction::Pull,
        categories: Categories { images: true, patterns: false, settings: true },
    };
    assert_eq!(hex(&wire::to_bytes(&options)), "02 01 00 01");
}

fn clock_state() -> povpoi_core::show::Announce {
    povpoi_core::show::Announce { boot: 7, timeline: 0x1234_5678, show: 3_600_000_000, rate_ppb: -1_500, plan: None }
}

#[test]
fn clock_probe_bytes() {
    use povpoi_core::show::packet::{self, Packet};
    let probe =
        Packet::Probe { from: DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]), nonce: 300, state: clock_state() };
    let to = DeviceId([2, 0, 0, 0, 0, 2]);
    let bytes = packet::encode(&probe, None, to);
    assert_eq!(hex(&bytes), "01 00 a1 b2 c3 d4 e5 f6 ac 02 07 f8 ac d1 91 01 80 c8 ce b4 0d b7 17 00");
    assert_eq!(packet::decode(&bytes, None, to), Ok(probe));
}

#[test]
fn clock_answer_bytes_with_a_plan_and_the_key_tag() {
    use povpoi_core::show::packet::{self, Packet};
    use povpoi_core::show::{ClockKey, Plan};
    let state = povpoi_core::show::Announce {
        plan: Some(Plan { target: 9, at: 3_600_500_000, step: 2_000_000 }),
        ..clock_state()
    };
    let answer =
        Packet::Answer { from: DeviceId([2, 0, 0, 0, 0, 2]), nonce: 300, received: 5_000_000, held: 40, state };
    let to = DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);
    let key = ClockKey::derive(b"correct horse battery", "ab");
    let bytes = packet::encode(&answer, Some(&key), to);
    assert_eq!(
        hex(&bytes),
        "01 01 02 00 00 00 00 02 ac 02 c0 96 b1 02 28 07 f8 ac d1 91 01 80 c8 ce b4 0d b7 17 \
         01 09 a0 8a ed b4 0d 80 92 f4 01 39 3b f8 74 05 93 9b 80 94 37 b3 1c af 89 81 7f"
    );
    assert_eq!(packet::decode(&bytes, Some(&key), to), Ok(answer));
}

#[test]
fn an_answer_of_one_blob_is_decoded_in_its_own_buffer_and_others_as_from_bytes() {
    use povpoi_core::hash::BlobHash;
    use povpoi_core::sync::Blob;
    let blob = |n: u8, len: usize| Blob { hash: BlobHash([n; 32]), bytes: (0..len).map(|i| i as u8 ^ n).collect() };
    let one = Response::Blobs { blobs: vec![blob(1, 38_400)], missing: vec![BlobHash([9; 32])] };
    let bytes = wire::to_bytes(&one);
    let at = bytes.as_ptr();
    let decoded = wire::response_from_vec(bytes).unwrap();
    assert_eq!(decoded, one);
    let Response::Blobs { blobs, .. } = &decoded else { unreachable!() };
    assert_eq!(blobs[0].bytes.as_ptr(), at, "the pixels stay in the answer's buffer");

    let others = [
        Response::Blobs { blobs: vec![blob(1, 30), blob(2, 40)], missing: vec![] },
        Response::Blobs { blobs: vec![], missing: vec![BlobHash([3; 32])] },
        Response::Want(vec![BlobHash([4; 32])]),
        Response::Stored(2),
        Response::Refused("no".into()),
    ];
    for response in others {
        assert_eq!(wire::response_from_vec(wire::to_bytes(&response)).unwrap(), response);
    }
    // Trailing or missing bytes are refused as by `from_bytes`.
    let mut long = wire::to_bytes(&one);
    long.push(0);
    assert!(wire::response_from_vec(long).is_err());
    let mut short = wire::to_bytes(&one);
    short.truncate(short.len() - 1);
    assert!(wire::response_from_vec(short).is_err());
}

#[test]
fn a_begin_of_protocol_4_is_refused_by_its_version_not_as_garbage() {
    // Version 4's summary had no `part_bytes`: its Begin does not decode as version 5's.
    let v4 = [0x00, 0x04, 0x02, 0x61, 0x62, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 1, 1, 1, 3, 0, 1, 1, 3, 0, 1, 1, 1];
    let err = wire::from_bytes::<Request>(&v4).unwrap_err();
    assert!(matches!(err, povpoi_core::sync::Error::UnsupportedProtocol(4)), "{err:?}");
    assert_eq!(err.to_string(), "peer speaks sync protocol version 4, this poi version 5");
    // The same for an answer: version 4's `Begun` with no delta and no wants.
    let mut v4_begun = v4[..19].to_vec();
    v4_begun.extend([0, 0]);
    let err = wire::from_bytes::<Response>(&v4_begun).unwrap_err();
    assert!(matches!(err, povpoi_core::sync::Error::UnsupportedProtocol(4)), "{err:?}");
    // Damage after a summary of this version stays a plain decoding error.
    let mut ours = wire::to_bytes(&Request::Begin { summary: summary(), options: SyncOptions::default() });
    ours.push(0);
    assert!(matches!(wire::from_bytes::<Request>(&ours), Err(povpoi_core::sync::Error::Protocol(_))));
}
