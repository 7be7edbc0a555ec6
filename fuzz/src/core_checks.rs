//! The checks of the fuzz targets on `povpoi-core`'s decoders. Each takes any bytes and
//! panics only when a decoder misbehaves: a panic inside it, or a value that does not
//! survive being encoded again.
//!
//! This file is the fuzz crate's `core_checks` module and is also compiled into
//! `crates/povpoi-core/tests/fuzz_corpus.rs`, which replays the corpora and regressions on
//! stable: it may use only `povpoi-core` and what that crate's tests can use.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::show::packet::{self, Announce, ClockKey, MAX_DATAGRAM, Packet, Plan, TAG_LEN};
use povpoi_core::show::{Cue, PacketError};
use povpoi_core::sync::{
    Categories, Identity, Knowledge, MemoryStorage, Record, Replica, Request, Response, Session, SyncOptions,
};
use povpoi_core::wire;
use povpoi_core::wire::legacy::{ImageEntry, PatternEntry, SettingsEntry, SyncData};
use povpoi_core::wire::teensy::{self, END, Receiver, Reply, ReplyParser, START};
use sha2::Sha256;

/// The time the checks run at, ms since the epoch (after every stamp in the seeds).
pub const NOW_MS: u64 = 1_700_000_100_000;

/// The replica that answers fuzzed requests and takes fuzzed answers.
fn identity() -> Identity {
    Identity { replica: ReplicaId(0x42), device: DeviceId([2, 0, 0, 0, 0, 0x42]), group: "ab".into() }
}

/// A replica with an image, a pattern and a setting, in group `"ab"` (the group of the
/// protocol examples), so fuzzed requests find something to answer with.
pub fn seeded_storage() -> MemoryStorage {
    static SEEDED: OnceLock<MemoryStorage> = OnceLock::new();
    SEEDED
        .get_or_init(|| {
            let mut poi = Replica::open(MemoryStorage::default(), identity()).expect("a new replica opens");
            poi.add_image("dot", 2, 1, &[1, 2, 3, 4, 5, 6], NOW_MS - 3_000).expect("a valid image");
            let comet = Pattern::new(PatternKind::Comet, Rgb::new(1, 2, 3), Rgb::new(4, 5, 6), 9).expect("a pattern");
            poi.set_pattern(4, comet, NOW_MS - 2_000, Cue::NOW).expect("a valid slot");
            poi.set_brightness(77, NOW_MS - 1_000, Cue::NOW).expect("a valid brightness");
            poi.into_storage()
        })
        .clone()
}

/// Whatever a replica saved, it opens again to the same records.
fn reopens(poi: Replica<MemoryStorage>) {
    let records: Vec<Record> = poi.records().cloned().collect();
    let summary = poi.summary();
    let again = Replica::open(poi.into_storage(), identity()).expect("a replica reopens from what it saved");
    assert_eq!(again.summary(), summary, "summary changed across a reopen");
    assert!(again.records().eq(records.iter()), "records changed across a reopen");
}

/// A message that decodes encodes again to the same value.
fn round_trips<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = wire::to_bytes(message);
    match wire::from_bytes::<T>(&bytes) {
        Ok(again) => assert_eq!(&again, message, "re-encoded message decodes to another value"),
        Err(e) => panic!("re-encoded message does not decode ({e}): {message:?}"),
    }
}

/// The replica at the other end of the sessions the checks drive: in group `"ab"` too,
/// with an image the seeded replica lacks and without the seeded one's image, so a session
/// between them passes every stage (Begin, Push, Store, Fetch).
pub fn peer_storage() -> MemoryStorage {
    static PEER: OnceLock<MemoryStorage> = OnceLock::new();
    PEER.get_or_init(|| {
        let mut poi = Replica::open(MemoryStorage::default(), peer_identity()).expect("a new replica opens");
        poi.add_image("sq", 1, 2, &[9, 8, 7, 6, 5, 4], NOW_MS - 2_500).expect("a valid image");
        let items = vec![SequenceItem { target: SequenceTarget::Pattern(4), duration_ms: 500 }];
        poi.set_sequence(1, Sequence::new(items, true).expect("a sequence"), NOW_MS - 1_500, Cue::NOW).expect("a slot");
        poi.set_brightness(12, NOW_MS - 500, Cue::NOW).expect("a valid brightness");
        poi.into_storage()
    })
    .clone()
}

fn peer_identity() -> Identity {
    Identity { replica: ReplicaId(0x43), device: DeviceId([2, 0, 0, 0, 0, 0x43]), group: "ab".into() }
}

/// Every message of a bidirectional session from `initiator` to `responder`, in order.
fn session_messages(
    initiator: &mut Replica<MemoryStorage>,
    responder: &mut Replica<MemoryStorage>,
) -> (Vec<Request>, Vec<Response>) {
    let (mut session, mut request) = Session::start(initiator, SyncOptions::default());
    let (mut requests, mut responses) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        requests.push(request.clone());
        let response = responder.respond(request, NOW_MS);
        responses.push(response.clone());
        match session.on_response(initiator, response, NOW_MS) {
            Ok(Some(next)) => request = next,
            _ => break,
        }
    }
    (requests, responses)
}

/// A responder that refuses a request left its storage as it was (a bad delta or blob
/// changes nothing).
fn refusal_changes_nothing(before: &MemoryStorage, poi: &Replica<MemoryStorage>, request: &Request) {
    if matches!(request, Request::Push(_) | Request::Store(_) | Request::Fetch(_)) {
        assert!(poi.storage().state == before.state, "a refused {request:?} changed the stored state");
        assert!(poi.storage().blobs == before.blobs, "a refused request changed the stored blobs");
    }
}

/// `peer_message`: the bytes as a peer's `Request` and `Response` (postcard). A decoded
/// message re-encodes to an equal one. A request is answered by a replica; an answer that
/// refuses a Push, Fetch or Store left the responder's storage unchanged. An answer is taken
/// by a session at each of its stages (after 0-3 real exchanges with a peer) without a
/// panic. Whatever either leaves behind reopens to the same records. Decoded in place
/// (`wire::response_from_vec`, a board's way), an answer is the one `from_bytes` reads.
pub fn peer_message(data: &[u8]) {
    let in_place = wire::response_from_vec(data.to_vec());
    assert_eq!(in_place.as_ref().ok(), wire::from_bytes::<Response>(data).as_ref().ok(), "decoded in place");
    if let Ok(request) = wire::from_bytes::<Request>(data) {
        round_trips(&request);
        let before = seeded_storage();
        let mut poi = Replica::open(before.clone(), identity()).expect("the seeded replica opens");
        let response = poi.respond(request.clone(), NOW_MS);
        round_trips(&response);
        if matches!(response, Response::Refused(_)) {
            refusal_changes_nothing(&before, &poi, &request);
        }
        reopens(poi);
    }
    if let Ok(response) = wire::from_bytes::<Response>(data) {
        round_trips(&response);
        for stage in 0..4 {
            let mut poi = Replica::open(seeded_storage(), identity()).expect("the seeded replica opens");
            let mut peer = Replica::open(peer_storage(), peer_identity()).expect("the peer replica opens");
            let (mut session, mut request) = Session::start(&poi, SyncOptions::default());
            let mut reached = true;
            for _ in 0..stage {
                let real = peer.respond(request, NOW_MS);
                match session.on_response(&mut poi, real, NOW_MS) {
                    Ok(Some(next)) => request = next,
                    _ => {
                        reached = false;
                        break;
                    }
                }
            }
            if reached && let Ok(Some(next)) = session.on_response(&mut poi, response.clone(), NOW_MS) {
                round_trips(&next);
            }
            reopens(poi);
        }
    }
}

/// `replica_snapshot`: the bytes as the snapshot a replica keeps in its storage (a file on
/// a node). A snapshot that opens can be listed, edited, and opened again.
pub fn replica_snapshot(data: &[u8]) {
    let storage = MemoryStorage { state: Some(data.to_vec()), ..MemoryStorage::default() };
    let Ok(mut poi) = Replica::open(storage, identity()) else { return };
    let _ = poi.summary();
    let _ = poi.images().count();
    let _ = poi.settings();
    let _ = poi.conflicts().count();
    let _ = poi.missing_blobs();
    let _ = serde_json::to_vec(&SyncData::of(&poi, "fuzz")).expect("a listing serialises");
    let delta = poi.delta_for(&Knowledge::default(), Categories::ALL);
    round_trips(&Request::Push(Box::new(delta)));
    let _ = poi.set_brightness(9, NOW_MS, Cue::NOW);
    reopens(poi);
}

/// HMAC-SHA256 of `receiver ‖ body` under the key derived from `group_key` and `group`,
/// cut to [`TAG_LEN`] bytes: the tag as docs/PROTOCOL.md section 12.4 specifies it,
/// computed here independently of `packet::encode`.
pub fn clock_tag(group_key: &[u8], group: &str, receiver: DeviceId, body: &[u8]) -> [u8; TAG_LEN] {
    let mut info = b"hmac-sha256 probe key\n".to_vec();
    info.extend_from_slice(group.as_bytes());
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(b"povpoi-clock-v1"), group_key).expand(&info, &mut key).expect("32 bytes");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(&receiver.0);
    mac.update(body);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
    tag
}

/// `clock_datagram`: the bytes as a show clock datagram, unkeyed and keyed. A packet that
/// decodes encodes again (small enough to be taken) to the same packet, keyed or not; the
/// bytes with a tag made by the spec's recipe decode keyed exactly as they do unkeyed.
pub fn clock_datagram(data: &[u8]) {
    const GROUP_KEY: &[u8] = b"fuzz key";
    const GROUP: &str = "g";
    let me = DeviceId([2, 0, 0, 0, 0, 1]);
    let other = DeviceId([2, 0, 0, 0, 0, 2]);
    let key = ClockKey::derive(GROUP_KEY, GROUP);
    let plain = packet::decode(data, None, me);
    let keyed = packet::decode(data, Some(&key), me);
    for decoded in [plain, keyed] {
        let Ok(p) = decoded else { continue };
        let bytes = packet::encode(&p, None, me);
        assert!(bytes.len() <= MAX_DATAGRAM, "a packet encodes longer than a receiver takes");
        assert_eq!(packet::decode(&bytes, None, me), Ok(p));
        let tagged = packet::encode(&p, Some(&key), me);
        assert!(tagged.len() <= MAX_DATAGRAM, "a keyed packet encodes longer than a receiver takes");
        assert_eq!(packet::decode(&tagged, Some(&key), me), Ok(p));
        assert_eq!(packet::decode(&tagged, Some(&key), other), Err(PacketError::Unauthenticated));
        assert_eq!(tagged[tagged.len() - TAG_LEN..], clock_tag(GROUP_KEY, GROUP, me, &bytes), "tag is not the spec's");
    }
    if data.len() + TAG_LEN <= MAX_DATAGRAM {
        let mut tagged = data.to_vec();
        tagged.extend_from_slice(&clock_tag(GROUP_KEY, GROUP, me, data));
        assert_eq!(packet::decode(&tagged, Some(&key), me), plain, "keyed and unkeyed decodes disagree");
    }
    if let Err(e) = plain {
        let _ = e.to_string();
    }
}

/// A value that parses from JSON serialises and parses again to the same value.
fn json_round_trips<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(data) else { return };
    let text = serde_json::to_vec(&value).expect("a parsed value serialises");
    let again: T = serde_json::from_slice(&text).expect("what was serialised parses");
    assert_eq!(again, value, "JSON round trip changed the value");
}

/// `legacy_json`: the bytes as the existing system's `/api/sync/data` JSON and its parts.
pub fn legacy_json(data: &[u8]) {
    json_round_trips::<SyncData>(data);
    json_round_trips::<ImageEntry>(data);
    json_round_trips::<PatternEntry>(data);
    json_round_trips::<SettingsEntry>(data);
}

/// Splits `bytes` into chunks whose lengths come from `seed` (1-16 bytes each, or 1-256
/// when the seed's top bit is set), as a serial port hands them over.
pub fn chunks(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let span = if seed & 0x80 != 0 { 256 } else { 16 };
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (((state >> 16) as usize) % span + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// `teensy_link`: the first byte picks how the rest is split into reads; the rest is what
/// the serial link carries, read both by the model of the Teensy's frame receiver and by
/// povpoi's reply parser. The split changes nothing; every frame is well cut; a command
/// that decodes is re-encoded without a `0xFE` inside and arrives as `to_wire` says (byte
/// for byte what came in when the rules leave it alone, but for a sequence's `looped`
/// flag written as 1); a reply encodes and parses back.
pub fn teensy_link(data: &[u8]) {
    let Some((&seed, bytes)) = data.split_first() else { return };
    let pieces = chunks(bytes, seed);

    let whole = Receiver::default().feed(bytes);
    let mut receiver = Receiver::default();
    let split: Vec<_> = pieces.iter().flat_map(|piece| receiver.feed(piece)).collect();
    assert_eq!(whole, split, "the receiver depends on how the bytes were split");

    let mut receiver = Receiver::default();
    for frame in bytes.iter().filter_map(|&b| receiver.push(b)) {
        assert!(frame.len() >= 4 && frame[0] == START && frame[frame.len() - 1] == END, "badly cut frame");
        assert!(!frame[3..frame.len() - 1].contains(&END), "a frame runs past a 0xFE");
        let command = match teensy::decode(&frame) {
            Ok(command) => command,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let sent = command.to_wire();
        assert_eq!(sent.to_wire(), sent, "to_wire is not idempotent");
        assert_eq!(sent.code(), command.code());
        let mut out = Vec::new();
        command.encode(&mut out);
        assert_eq!(out.len(), command.encoded_len(), "encoded_len disagrees with encode");
        assert!(!out[1..out.len() - 1].contains(&END), "0xFE inside an encoded frame of {command:?}");
        assert_eq!(Receiver::default().feed(&out), [Ok(sent.clone())], "re-encoded {command:?}");
        if sent == command {
            // The receiver reads any non-zero `looped` byte as true; the encoder writes 1.
            let mut canonical = frame.clone();
            if let teensy::Command::Sequence { looped, .. } = &command {
                canonical[5] = u8::from(*looped);
            }
            assert_eq!(out, canonical, "a command the rules leave alone re-encodes to other bytes");
        }
    }

    let replies = ReplyParser::default().feed(bytes);
    let mut parser = ReplyParser::default();
    let split: Vec<Reply> = pieces.iter().flat_map(|piece| parser.feed(piece)).collect();
    assert_eq!(replies, split, "the reply parser depends on how the bytes were split");
    for reply in replies {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(ReplyParser::default().feed(&out), [reply], "a reply does not parse back");
    }
}

/// Seed inputs made by the real encoders, as `(target, name, bytes)`: the messages of
/// sessions in both directions between the seeded replica and its peer, their snapshots,
/// clock datagrams of each kind, the JSON listing and entries, and every Teensy command and
/// reply. `fuzz/README.md` says how they become the corpus.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();

    let mut poi = Replica::open(seeded_storage(), identity()).expect("the seeded replica opens");
    let mut peer = Replica::open(peer_storage(), peer_identity()).expect("the peer replica opens");
    let mut empty = Replica::open(MemoryStorage::default(), identity()).expect("a new replica opens");
    out.push(("replica_snapshot", "seeded".to_owned(), poi.storage().state.clone().expect("a snapshot")));
    out.push(("replica_snapshot", "peer".to_owned(), peer.storage().state.clone().expect("a snapshot")));
    out.push(("replica_snapshot", "empty".to_owned(), empty.storage().state.clone().unwrap_or_default()));
    let runs = [session_messages(&mut peer, &mut poi), session_messages(&mut poi, &mut peer)];
    for (run, (requests, responses)) in runs.iter().enumerate() {
        for (i, request) in requests.iter().enumerate() {
            out.push(("peer_message", format!("session{run}-request{i}"), wire::to_bytes(request)));
        }
        for (i, response) in responses.iter().enumerate() {
            out.push(("peer_message", format!("session{run}-response{i}"), wire::to_bytes(response)));
        }
    }
    let (requests, _) = session_messages(&mut empty, &mut poi);
    out.push(("peer_message", "empty-begin".to_owned(), wire::to_bytes(&requests[0])));
    out.push(("peer_message", "refused".to_owned(), wire::to_bytes(&Response::Refused("group mismatch".into()))));
    out.push(("replica_snapshot", "synced".to_owned(), poi.storage().state.clone().expect("a snapshot")));

    let state = Announce { boot: 7, timeline: 3, show: 5_000_000, rate_ppb: -1_200, plan: None };
    let planned = Announce { plan: Some(Plan { target: 9, at: 6_000_000, step: -2_500 }), ..state };
    let from = DeviceId([2, 0, 0, 0, 0, 2]);
    let me = DeviceId([2, 0, 0, 0, 0, 1]);
    let key = ClockKey::derive(b"fuzz key", "g");
    let packets = [
        ("probe", Packet::Probe { from, nonce: 77, state }),
        ("answer", Packet::Answer { from, nonce: 77, received: 123_456, held: 40, state: planned }),
    ];
    for (name, p) in packets {
        out.push(("clock_datagram", name.to_owned(), packet::encode(&p, None, me)));
        out.push(("clock_datagram", format!("{name}-keyed"), packet::encode(&p, Some(&key), me)));
    }

    let listing = SyncData::of(&poi, "fuzz");
    out.push(("legacy_json", "listing".to_owned(), serde_json::to_vec(&listing).expect("JSON")));
    let value = serde_json::to_value(&listing).expect("JSON");
    for part in ["images", "patterns"] {
        if let Some(first) = value[part].get(0) {
            out.push(("legacy_json", format!("{part}-entry"), serde_json::to_vec(first).expect("JSON")));
        }
    }
    out.push(("legacy_json", "settings".to_owned(), serde_json::to_vec(&value["settings"]).expect("JSON")));

    let comet = Pattern::new(PatternKind::Comet, Rgb::new(1, 2, 3), Rgb::new(4, 5, 6), 9).expect("a pattern");
    let items = vec![
        SequenceItem { target: SequenceTarget::Pattern(4), duration_ms: 500 },
        SequenceItem { target: SequenceTarget::Image(poi.images().next().expect("an image").0), duration_ms: 900 },
    ];
    let commands = [
        teensy::Command::set_mode(Mode::Pattern, 4),
        teensy::Command::image(2, 1, &[1, 2, 3, 254, 255, 6]),
        teensy::Command::pattern(4, &comet),
        teensy::Command::sequence(1, &Sequence::new(items, true).expect("a sequence")),
        teensy::Command::live(&[Rgb::new(1, 2, 3), Rgb::new(254, 0, 9)]),
        teensy::Command::Brightness(77),
        teensy::Command::FrameRate(1_000),
        teensy::Command::FrameDelay(5),
        teensy::Command::StatusRequest,
    ];
    let mut all = vec![0x80];
    for (i, command) in commands.iter().enumerate() {
        let mut bytes = vec![i as u8];
        command.encode(&mut bytes);
        all.extend_from_slice(&bytes[1..]);
        out.push(("teensy_link", format!("command{i}"), bytes));
    }
    let replies = [Reply::Ack(3), Reply::Status(teensy::Status { mode: 2, index: 4, sd_present: true })];
    let mut bytes = vec![0x11];
    bytes.extend_from_slice(b"debug text\n");
    for reply in replies {
        reply.encode(&mut bytes);
    }
    out.push(("teensy_link", "replies".to_owned(), bytes));
    out.push(("teensy_link", "all-commands".to_owned(), all));
    out
}
