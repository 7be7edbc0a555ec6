//! `POST /api/image` on a board: the form read in pieces, the pixels written to a flash
//! store as they come, and every refusal leaving the store and the library as they were.

mod common;

use common::{board_config, now};
use povpoi_app::App;
use povpoi_app::api::{Request, Response};
use povpoi_app::clock::ClockService;
use povpoi_app::peers::{Sighting, Source};
use povpoi_app::sessions::MAX_FETCHED_BLOB_BYTES;
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::model::Mode;
use povpoi_core::sync::{Identity, Replica, Storage};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use serde_json::Value;

const SECTORS: u32 = 40;
const BOUNDARY: &str = "----povpoi7Kx2";

type Board = App<&'static FlashStore<RamFlash>>;

fn board(key: Option<&str>) -> (Board, &'static FlashStore<RamFlash>) {
    let store: &'static FlashStore<RamFlash> =
        Box::leak(Box::new(FlashStore::open(RamFlash::new(SECTORS as usize), 0..SECTORS * SECTOR as u32).unwrap()));
    let device = DeviceId([2, 0, 0, 0, 0, 7]);
    let identity = Identity { replica: ReplicaId(7), device, group: "default".into() };
    let replica = Replica::open(store, identity).unwrap();
    let config = povpoi_app::Config {
        group_key: key.map(|k| povpoi_peer::key::GroupKey::new(k).unwrap()),
        max_uploaded_image_bytes: MAX_FETCHED_BLOB_BYTES,
        wifi_setup: false,
        ..board_config(device)
    };
    (App::new(config, replica, ClockService::new(device, 1, 2, 0)), store)
}

fn pixels(width: usize, height: usize) -> Vec<u8> {
    (0..width * height * 3).map(|i| (i * 7 % 251) as u8).collect()
}

/// A browser's form: text fields, then the file.
fn form(fields: &[(&str, &str)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(file);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// The upload fed in pieces of `piece` bytes, as a board's HTTP service reads its body.
fn upload_in_pieces(app: &mut Board, headers: &[(&str, &[u8])], body: &[u8], piece: usize) -> Response {
    let from = "10.0.0.5:9".parse().unwrap();
    let request = Request { method: "POST", path: "/api/image", query: None, headers, body: b"", from };
    let mut upload = match app.begin_upload(&request) {
        Ok(upload) => upload,
        Err(refusal) => return refusal,
    };
    let mut buffer: Vec<u8> = Vec::new();
    let mut sent = 0;
    while !upload.finished() {
        let more = body.len() - sent;
        let take = more.min(piece);
        buffer.extend_from_slice(&body[sent..sent + take]);
        sent += take;
        match app.upload_step(&mut upload, &buffer, sent == body.len()) {
            Ok(used) => drop(buffer.drain(..used)),
            Err(refusal) => return refusal,
        }
        if take == 0 && !upload.finished() {
            break;
        }
    }
    app.finish_upload(upload, now(3_000_000))
}

fn whole(app: &mut Board, headers: &[(&str, &[u8])], body: &[u8]) -> Response {
    let from = "10.0.0.5:9".parse().unwrap();
    let request = Request { method: "POST", path: "/api/image", query: None, headers, body, from };
    app.handle(&request, now(3_000_000), &mut rand::rng())
}

fn json(answer: &Response) -> Value {
    serde_json::from_slice(&answer.body).unwrap()
}

#[test]
fn an_upload_in_pieces_of_any_size_is_stored_under_its_hash_and_plays() {
    let image = pixels(20, 32);
    let body = form(&[("name", "spiral")], "image_20x32.rgb", &image);
    let ct = content_type();
    for piece in [1, 7, 100, 1024, body.len()] {
        let (mut app, store) = board(None);
        let answer = upload_in_pieces(&mut app, &[("Content-Type", ct.as_bytes())], &body, piece);
        assert_eq!(answer.status, 200, "pieces of {piece}: {}", String::from_utf8_lossy(&answer.body));
        let stored = json(&answer);
        assert_eq!(
            (
                &stored["status"],
                &stored["name"],
                &stored["width"],
                &stored["height"],
                &stored["size"],
                &stored["index"]
            ),
            (&"ok".into(), &"spiral".into(), &20.into(), &32.into(), &1920.into(), &0.into())
        );
        let hash = BlobHash::of(&image);
        assert_eq!(store.load_blob(&hash).unwrap(), Some(image.clone()), "pieces of {piece}");
        let (id, meta) = app.replica().images().next().unwrap();
        assert_eq!((id.to_string(), meta.pixels()), (stored["id"].as_str().unwrap().to_owned(), hash));
        assert_eq!(
            app.replica().settings().selection.mode,
            Mode::Image,
            "an upload plays, as the existing system's does"
        );
        assert!(app.replica().holds_blob(&hash));
    }
}

#[test]
fn a_whole_body_goes_the_same_way_and_the_name_defaults_to_the_files() {
    let (mut app, _) = board(None);
    let ct = content_type();
    let body = form(&[("flipH", "false"), ("rotate", "0"), ("submit", "Add")], "image_2x3.rgb", &pixels(2, 3));
    let answer = whole(&mut app, &[("content-type", ct.as_bytes())], &body);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(json(&answer)["name"], "image_2x3");
}

#[test]
fn a_refused_upload_keeps_nothing_and_says_what_to_fix() {
    let ct = content_type();
    let header = [("Content-Type", ct.as_bytes())];
    let big = pixels(400, 33);
    /// What is sent (its headers and body), and the status and words of the refusal.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("not a form", vec![("Content-Type", b"application/json")], b"{}".to_vec(), 400, "multipart/form-data"),
        (
            "no file",
            header.to_vec(),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n")
                .into_bytes(),
            400,
            "no file in the form",
        ),
        (
            "cut off",
            header.to_vec(),
            form(&[], "image_20x32.rgb", &pixels(20, 32)).split_at(900).0.to_vec(),
            400,
            "malformed",
        ),
        ("short", header.to_vec(), form(&[], "image_20x32.rgb", &pixels(20, 31)), 400, "the file holds 1860 bytes"),
        ("long", header.to_vec(), form(&[], "image_2x2.rgb", &pixels(2, 3)), 400, "the file holds 18 bytes"),
        ("no size", header.to_vec(), form(&[], "image.rgb", &pixels(1, 1)), 400, "does not carry the size"),
        ("a path", header.to_vec(), form(&[], "../image_1x1.rgb", &pixels(1, 1)), 400, "looks like a path"),
        ("a picture", header.to_vec(), form(&[], "cat.png", &pixels(1, 1)), 415, "raw RGB"),
        ("too wide", header.to_vec(), form(&[], "image_401x2.rgb", &pixels(1, 1)), 413, "at most 400 columns"),
        ("over a board's", header.to_vec(), form(&[], "image_400x33.rgb", &big), 413, "up to 38400 bytes"),
        ("flipped", header.to_vec(), form(&[("flipV", "on")], "image_1x1.rgb", &pixels(1, 1)), 400, "cannot flip"),
        (
            "bad flag",
            header.to_vec(),
            form(&[("contrast", "maybe")], "image_1x1.rgb", &pixels(1, 1)),
            400,
            "true or false",
        ),
        ("bad name", header.to_vec(), form(&[("name", "a\nb")], "image_1x1.rgb", &pixels(1, 1)), 400, "name"),
        (
            "two files",
            header.to_vec(),
            {
                let mut body = form(&[], "image_1x1.rgb", &pixels(1, 1));
                body.truncate(body.len() - BOUNDARY.len() - 6);
                body.extend(format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"image_1x1.rgb\"\r\n\r\nabc\r\n--{BOUNDARY}--").bytes());
                body
            },
            400,
            "one file",
        ),
    ];
    for (what, headers, body, status, says) in cases {
        for piece in [5, 4096] {
            let (mut app, store) = board(None);
            let free = store.usage().free_sectors;
            let answer = upload_in_pieces(&mut app, &headers, &body, piece);
            let error = json(&answer)["error"].as_str().unwrap_or_default().to_owned();
            assert_eq!(answer.status, status, "{what}: {error}");
            assert!(error.contains(says), "{what}: {error:?} should say {says:?}");
            assert_eq!(app.replica().images().count(), 0, "{what}");
            assert!(store.blob_hashes().unwrap().is_empty(), "{what}");
            assert_eq!(store.usage().free_sectors, free, "{what}: its sectors are given back");
        }
    }
    // With a pairing key, only a caller holding it.
    let (mut app, store) = board(Some("correct horse battery staple"));
    let free = store.usage().free_sectors;
    let answer = upload_in_pieces(&mut app, &header, &form(&[], "image_1x1.rgb", &pixels(1, 1)), 64);
    assert_eq!(answer.status, 401);
    assert_eq!((store.usage().free_sectors, app.replica().images().count()), (free, 0));
    // A file input left empty: no file.
    let (mut app, _) = board(None);
    let answer = upload_in_pieces(&mut app, &header, &form(&[], "", b""), 64);
    assert_eq!(answer.status, 400);
    assert!(json(&answer)["error"].as_str().unwrap().contains("no file in the form"));
}

#[test]
fn an_upload_left_unfinished_gives_its_sectors_back_when_abandoned() {
    let (mut app, store) = board(None);
    let ct = content_type();
    let body = form(&[], "image_100x32.rgb", &pixels(100, 32));
    let from = "10.0.0.5:9".parse().unwrap();
    let headers = [("content-type", ct.as_bytes())];
    let request = Request { method: "POST", path: "/api/image", query: None, headers: &headers, body: b"", from };
    let free = store.usage().free_sectors;
    let mut upload = app.begin_upload(&request).unwrap();
    let used = app.upload_step(&mut upload, &body[..5000], false).unwrap();
    assert!(used > 4000 && store.usage().free_sectors < free, "the pixels are being written");
    drop(upload);
    app.abandon_upload();
    assert_eq!(store.usage().free_sectors, free);
    assert_eq!(app.replica().images().count(), 0);
}

#[test]
fn an_upload_and_the_boards_own_sync_messages_take_turns() {
    let (mut app, _) = board(None);
    let ct = content_type();
    let headers = [("content-type", ct.as_bytes())];
    let from = "10.0.0.5:9".parse().unwrap();
    let request = Request { method: "POST", path: "/api/image", query: None, headers: &headers, body: b"", from };
    // A peer to sync with, online: a round is due.
    let peer = DeviceId([2, 0, 0, 0, 0, 9]);
    let sighting = Sighting {
        device_id: peer,
        device_name: "node".into(),
        sync_group: "default".into(),
        protocol: povpoi_core::sync::PROTOCOL_VERSION,
        digest: "other".into(),
        addr: "10.0.0.9:80".parse().unwrap(),
    };
    app.peer_seen(&sighting, Source::Mdns, now(1_000_000));
    // While a message of its own is in flight, an upload is refused: try again.
    app.set_exchanging(true);
    let busy = app.begin_upload(&request).err().expect("refused while a message is in flight");
    assert_eq!(busy.status, 503);
    app.set_exchanging(false);
    // While one is read, no session starts.
    let mut upload = app.begin_upload(&request).ok().unwrap();
    assert!(app.sessions_due(now(40_000_000)).is_empty(), "no session while an upload is read");
    let second = app.begin_upload(&request).err().expect("one upload at a time");
    assert_eq!(second.status, 503);
    let body = form(&[], "image_2x2.rgb", &pixels(2, 2));
    app.upload_step(&mut upload, &body, true).unwrap();
    assert!(upload.finished());
    assert_eq!(app.finish_upload(upload, now(41_000_000)).status, 200);
    assert_eq!(app.sessions_due(now(42_000_000)).len(), 1, "once stored, the peer is synced");
}
