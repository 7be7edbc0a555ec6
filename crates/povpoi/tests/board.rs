//! The board firmware's application (`povpoi board`: povpoi-app over the flash store on a
//! RAM flash) and a real `povpoi node`, separate processes on 127.0.0.1 that know each other
//! by address: content and settings sync both ways, the show clocks agree, a cue set on
//! one poi switches both at the same show time, and the board mirrors what plays to a
//! Teensy on a serial port (a pseudo-terminal).

#[macro_use]
mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use povpoi_core::wire::teensy::{Command, Receiver, Reply, Status};
use serde_json::{Value, json};
use support::*;

fn clock(c: &Client, addr: std::net::SocketAddr) -> Value {
    c.get_ok(addr, "/api/clock")
}

/// Show time minus the host's clock, read at one instant: equal on two poi of this machine
/// when their show times agree.
fn offset_us(v: &Value) -> i64 {
    v["showTimeUs"].as_i64().unwrap() - v["hostTimeUs"].as_i64().unwrap()
}

#[test]
fn a_board_and_a_node_sync_both_ways_keep_one_clock_and_switch_on_the_same_cue() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    // The board's own clock starts 7 s ahead of the node's: they must come to agree.
    let spec = NodeSpec { board: true, args: vec!["--clock-offset-ms".into(), "7000".into()], ..lab.spec(1) };
    let board = lab.start_with(1, spec);
    note("node and board saw each other", lab.wait_meet(&[(0, 1)], Duration::from_secs(15)));
    let c = &lab.client;

    // Node to board: an image, with its pixels (the board's store verifies their hash).
    let px = pixels(7, 40, 32);
    let id = c.upload_ok(node, None, 40, 32, &px);
    note("the image reached the board", lab.wait_converged(&[0, 1], Duration::from_secs(20)));
    let on_board = c.get_ok(board, "/api/status");
    assert_eq!((on_board["count"].clone(), on_board["imageId"].clone()), (json!(1), json!(id)), "{on_board}");

    // Board to node: a setting made on the board's API.
    assert_eq!(c.post_ok(board, "/api/brightness", &json!({"brightness": 33}))["brightness"], json!(33));
    let took = wait_until("the node has the board's brightness", Duration::from_secs(20), || {
        c.get_ok(node, "/api/status")["brightness"] == json!(33)
    });
    note("the board's brightness reached the node", took);
    lab.wait_converged(&[0, 1], Duration::from_secs(20));
    // Bad input on the board gets the same answer the node gives.
    let (code, body) = c.post_json(board, "/api/brightness", &json!({"brightness": 300}));
    assert_eq!((code, body["error"].clone()), (400, json!("brightness must be an integer 0-255, not 300")));
    let (code, body) = c.post_json(node, "/api/brightness", &json!({"brightness": 300}));
    assert_eq!((code, body["error"].clone()), (400, json!("brightness must be an integer 0-255, not 300")));

    // One clock: one timeline, both in step, within 1 ms of each other.
    let took = wait_until("node and board play in step", Duration::from_secs(30), || {
        let (a, b) = (clock(c, node), clock(c, board));
        a["timeline"] == b["timeline"]
            && a["inStep"] == json!(true)
            && b["inStep"] == json!(true)
            && offset_us(&a).abs_diff(offset_us(&b)) <= 1_000
    });
    note("clocks in step", took);
    let (a, b) = (clock(c, node), clock(c, board));
    println!("  show time apart: {} µs", offset_us(&a).abs_diff(offset_us(&b)));

    // A cue set on the node switches both at the same show time.
    let asked = clock(c, node)["showTimeUs"].as_u64().unwrap();
    c.post_ok(node, "/api/framerate", &json!({"framerate": 90}));
    let shown: Vec<Value> = wait_for("both show the cued frame rate", Duration::from_secs(10), || {
        let cues: Vec<Value> = [node, board].iter().map(|a| clock(c, *a)["lastCue"].clone()).collect();
        let latest = cues.iter().all(|q| q["cueUs"].as_u64().is_some_and(|cue| cue > asked));
        (latest && cues[0]["cueUs"] == cues[1]["cueUs"]).then_some(cues)
    });
    let cue = shown[0]["cueUs"].as_u64().unwrap();
    for q in &shown {
        assert_eq!(q["appliedShowTimeUs"], shown[0]["appliedShowTimeUs"], "the same column on both: {shown:?}");
        assert!(q["appliedShowTimeUs"].as_u64().unwrap() >= cue, "not before the cue: {q}");
    }
    let hosts: Vec<i64> = shown.iter().map(|q| q["appliedHostTimeUs"].as_i64().unwrap()).collect();
    println!(
        "  cue {} ms after the request; switched {} µs apart (host clock)",
        (cue - asked) / 1_000,
        hosts[0].abs_diff(hosts[1])
    );
    assert_eq!(c.get_ok(board, "/api/status")["framerate"], json!(90));
    note("test", started.elapsed());
}

/// A board has no real-time clock: with a pairing key, every signed request is refused
/// outside 5 minutes of the receiver's time. `--no-real-time` starts the board at the epoch,
/// as the firmware does; it learns the time from the node's signed requests and then syncs
/// both ways, its own signed requests taken by the node.
#[test]
fn a_board_without_a_real_time_clock_learns_it_from_a_keyed_peer_and_syncs_both_ways() {
    const KEY: &str = "board-without-a-clock";
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    lab.client.post_ok(node, "/api/device/config", &json!({"groupKey": KEY}));
    let board_args = vec!["--group-key".into(), KEY.into(), "--no-real-time".into()];
    let board = lab.start_with(1, NodeSpec { board: true, args: board_args, ..lab.spec(1) });
    let c = &lab.client;
    c.set_key(node, Some(KEY));
    c.set_key(board, Some(KEY));
    note("node and board saw each other", lab.wait_meet(&[(0, 1)], Duration::from_secs(15)));

    // Node to board: the node's signed session is what teaches the board the time.
    let px = pixels(11, 24, 32);
    let id = c.upload_ok(node, None, 24, 32, &px);
    note("the image reached the board", lab.wait_converged(&[0, 1], Duration::from_secs(20)));
    assert_eq!(c.get_ok(board, "/api/status")["imageId"], json!(id));
    let (on_node, on_board) = (clock(c, node), clock(c, board));
    let apart_ms = on_node["hostTimeUs"].as_i64().unwrap().abs_diff(on_board["hostTimeUs"].as_i64().unwrap()) / 1_000;
    println!("  board's real time {apart_ms} ms from the node's after learning it");
    assert!(apart_ms < 5_000, "the board learned the time: {on_node} / {on_board}");

    // Board to node: the board's own signed session, stamped with the learned time.
    assert_eq!(c.post_ok(board, "/api/brightness", &json!({"brightness": 44}))["brightness"], json!(44));
    let took = wait_until("the node has the board's brightness", Duration::from_secs(20), || {
        c.get_ok(node, "/api/status")["brightness"] == json!(44)
    });
    note("the board's brightness reached the node", took);
    // The node also pulls from peers on its own: that the setting arrived does not show the
    // node took the board's signed requests. Its history does.
    let board_id = device_id(c, board);
    let history = c.get_ok(node, "/api/sync/history");
    let answered = history
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["role"] == json!("responder") && e["peerId"] == json!(board_id) && e["ok"] == json!(true));
    assert!(answered, "the node answered a session the board started: {history}");
    note("test", started.elapsed());
}

/// A board's heap holds one image, not a 128 KiB batch: the sessions it starts fetch one
/// blob per message. The node does not start sessions here (auto-sync off), so the images
/// can only reach the board through the board's own session.
#[test]
fn a_board_fetches_a_nodes_images_one_per_message_in_its_own_session() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    let c = &lab.client;
    c.post_ok(node, "/api/device/config", &json!({"autoSync": false}));
    let ids: Vec<String> = (0..3).map(|n| c.upload_ok(node, None, 8, 32, &pixels(20 + n, 8, 32))).collect();
    let board = lab.start_with(1, NodeSpec { board: true, ..lab.spec(1) });
    let c = &lab.client;
    note("the images reached the board", lab.wait_converged(&[0, 1], Duration::from_secs(30)));
    assert_eq!(c.get_ok(board, "/api/status")["count"], json!(3));

    let board_id = device_id(c, board);
    let history = c.get_ok(node, "/api/sync/history");
    let entries = history.as_array().unwrap();
    assert!(!entries.iter().any(|e| e["role"] == json!("initiator")), "the node started no session: {history}");
    let fetched = entries
        .iter()
        .find(|e| e["role"] == json!("responder") && e["peerId"] == json!(board_id) && e["blobsSent"] == json!(3))
        .unwrap_or_else(|| panic!("no session of the board's took the 3 images: {history}"));
    // Begin, then a Fetch per image (a Push too if the board had records to send).
    let trips = fetched["roundTrips"].as_u64().unwrap();
    assert!((4..=5).contains(&trips), "3 images in {trips} round trips: {fetched}");
    println!("  3 images in {trips} round trips, {} bytes; ids {ids:?}", fetched["bytes"]);
    note("test", started.elapsed());
}

#[test]
fn an_image_uploaded_to_a_board_plays_there_and_reaches_a_node_whole() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    let board = lab.start_with(1, NodeSpec { board: true, ..lab.spec(1) });
    let c = &lab.client;
    // 400x32, the largest a board takes: far more than the 8 KiB bodies its firmware collects.
    let image = pixels(77, 400, 32);
    let id = c.upload_ok(board, Some("from the board"), 400, 32, &image);
    assert_eq!(c.get_ok(board, "/api/status")["mode"], json!(1), "an upload plays, as on a node");
    note("the image reached the node", lab.wait_converged(&[0, 1], Duration::from_secs(30)));
    let listed = c.get_ok(node, "/api/images");
    let entry = &listed["images"][0];
    assert_eq!(
        (&entry["id"], &entry["name"], &entry["available"]),
        (&json!(id), &json!("from the board"), &json!(true))
    );
    let (status, bytes) = c.get_bytes(node, &format!("/api/images/{id}/pixels"));
    assert_eq!((status, bytes == image), (200, true), "the node holds the board's pixels, byte for byte");
    let (status, bytes) = c.get_bytes(board, &format!("/api/images/{id}/pixels"));
    assert_eq!((status, bytes == image), (200, true), "the board sends them back from its flash");
    // What a board cannot hold or convert is refused, and nothing of it is kept.
    let (status, answer) = c.upload_image(board, 400, 64, &pixels(78, 400, 64));
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("a node takes up to 400x64"), "{answer}");
    let (status, answer) = c.upload_image(board, 20, 32, &pixels(79, 20, 31));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(c.get_ok(board, "/api/status")["count"], json!(1));
    note("test", started.elapsed());
}

#[test]
fn povpoi_upload_fits_a_picture_to_a_boards_strip_and_sends_it_raw() {
    let mut lab = Lab::loopback(1);
    let board = lab.start_with(0, NodeSpec { board: true, ..lab.spec(0) });
    let dir = tempfile::tempdir().unwrap();
    // 80 x 40: fitted to the board's 32 LEDs (its device config says), 64 columns wide.
    let picture =
        povpoi_media::image::RgbImage::from_fn(80, 40, |x, y| povpoi_media::image::Rgb([x as u8 * 3, y as u8 * 6, 90]));
    picture.save(dir.path().join("sun.png")).unwrap();
    let upload = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_povpoi"))
            .arg("upload")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run povpoi upload")
    };
    let url = format!("http://{board}");
    let out = upload(&[&url, "sun.png", "--name", "sun"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("\"sun\" (64x32, 6144 bytes, from PNG 80x40)"), "{stdout}");
    let c = &lab.client;
    let listed = c.get_ok(board, "/api/images");
    let entry = &listed["images"][0];
    assert_eq!((&entry["name"], &entry["width"], &entry["height"]), (&json!("sun"), &json!(64), &json!(32)));
    // What goes wrong says what to do.
    let wide = povpoi_media::image::RgbImage::from_fn(400, 40, |x, _| povpoi_media::image::Rgb([x as u8, 0, 0]));
    wide.save(dir.path().join("wide.png")).unwrap();
    // At 64 LEDs, 400x64: twice what a board stores.
    let out = upload(&[&url, "wide.png", "--leds", "64"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("answered 413") && stderr.contains("--max-width"), "{stderr}");
    let out = upload(&["http://127.0.0.1:9", "sun.png", "--leds", "32"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cannot reach http://127.0.0.1:9"), "{stderr}");
    let out = upload(&[&url, "missing.png"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.png"));
    assert_eq!(c.get_ok(board, "/api/status")["count"], json!(1), "nothing else was stored");
}

/// Protocol 5 between processes: the board's summary asks for 2 KiB `Push` parts, so a node
/// with 40 images' records (about 3 KB) leaves them out of its answer to the board's session
/// and pushes them in its own, in parts.
#[test]
fn a_node_pushes_many_records_to_a_board_in_parts_of_the_boards_size() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    let c = &lab.client;
    for n in 0..40u32 {
        c.upload_ok(node, Some(&format!("picture {n:02}.png")), 4, 4, &pixels(n, 4, 4));
    }
    let board = lab.start_with(1, NodeSpec { board: true, ..lab.spec(1) });
    let c = &lab.client;
    note("the 40 images reached the board", lab.wait_converged(&[0, 1], Duration::from_secs(60)));
    assert_eq!(c.get_ok(board, "/api/status")["count"], json!(40));

    let board_id = device_id(c, board);
    let history = c.get_ok(node, "/api/sync/history");
    let pushed = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["role"] == json!("initiator")
                && e["peerId"] == json!(board_id)
                && e["ok"] == json!(true)
                && e["recordsSent"].as_u64() >= Some(40)
        })
        .unwrap_or_else(|| panic!("no session of the node's pushed the 40 records: {history}"));
    // Begin, then for each part a Push and a Store of the blobs it wants: one 6 KiB part
    // would take 3 round trips.
    let trips = pushed["roundTrips"].as_u64().unwrap();
    assert!(trips >= 5, "40 records in {trips} round trips: {pushed}");
    println!("  40 records pushed in {trips} round trips, {} bytes", pushed["bytes"]);
    note("test", started.elapsed());
}

/// Content edited on a board's API (pattern and sequence slots, an image's name, the
/// library's order, a deletion) reaches the node, and the board lists and refuses content
/// as the node does: one shared set of rules and answers.
#[test]
fn a_board_edits_content_and_lists_it_as_a_node_does() {
    use reqwest::Method;
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    let board = lab.start_with(1, NodeSpec { board: true, ..lab.spec(1) });
    let c = &lab.client;
    let ids: Vec<String> =
        (0..3).map(|n| c.upload_ok(node, Some(&format!("pic {n}")), 8, 32, &pixels(30 + n, 8, 32))).collect();
    lab.wait_converged(&[0, 1], Duration::from_secs(30));
    wait_until("the board holds every image's pixels", Duration::from_secs(30), || {
        images(c, board).iter().all(|i| i["available"] == json!(true))
    });

    // Edits on the board.
    let pattern = json!({"type": 2, "color1": {"r": 9, "g": 8, "b": 7}, "speed": 40});
    let (code, put) = c.send_json(Method::PUT, board, "/api/patterns/3", &pattern);
    assert_eq!((code, put["index"].clone(), put["type"].clone()), (200, json!(3), json!(2)), "{put}");
    let sequence = json!({"items": [{"image": ids[1], "durationMs": 500}, {"pattern": 3, "durationMs": 250}]});
    let (code, put) = c.send_json(Method::PUT, board, "/api/sequences/1", &sequence);
    assert_eq!((code, put["items"].as_array().map(Vec::len)), (200, Some(2)), "{put}");
    let (code, renamed) =
        c.send_json(Method::PATCH, board, &format!("/api/images/{}", ids[0]), &json!({"name": "hoop"}));
    assert_eq!((code, renamed["name"].clone()), (200, json!("hoop")), "{renamed}");
    let order = json!({"ids": [ids[2], ids[0], ids[1]]});
    let (code, listed) = c.send_json(Method::PUT, board, "/api/images/order", &order);
    let listed_ids: Vec<Value> = listed["images"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
    assert_eq!((code, listed_ids), (200, vec![json!(ids[2]), json!(ids[0]), json!(ids[1])]));
    let (code, deleted) = c.send_json(Method::DELETE, board, &format!("/api/images/{}", ids[2]), &json!({}));
    assert_eq!(code, 200, "{deleted}");
    let posted = c.post_ok(board, "/api/pattern", &json!({"index": 5, "type": 1, "speed": 9}));
    assert_eq!(posted, json!({"status": "ok", "index": 5}));
    let (code, _) = c.send_json(Method::DELETE, board, "/api/patterns/5", &json!({}));
    assert_eq!(code, 200);

    // They reach the node; both list the same.
    let took = wait_until("the node has the board's edits", Duration::from_secs(20), || {
        let node_images = images(c, node);
        node_images.len() == 2 && node_images[0]["name"] == json!("hoop")
    });
    note("the board's content edits reached the node", took);
    lab.wait_converged(&[0, 1], Duration::from_secs(20));
    let one = format!("/api/images/{}", ids[0]);
    for path in ["/api/images", "/api/patterns", "/api/sequences", "/api/sd/list", "/api/sequences/1", &one] {
        assert_eq!(c.get_ok(board, path), c.get_ok(node, path), "GET {path}");
    }
    assert_eq!(c.get_ok(node, "/api/patterns/3")["color1"], json!({"r": 9, "g": 8, "b": 7}));

    // Bad input: the same refusal, word for word, from both.
    let asks = [
        (Method::PUT, "/api/patterns/18", json!({"type": 1})),
        (Method::PUT, "/api/patterns/2", json!({"type": 99})),
        (Method::PUT, "/api/sequences/0", json!({"items": [{"image": ids[2], "durationMs": 5}]})),
        (Method::PUT, "/api/sequences/0", json!({"items": []})),
        (Method::PATCH, "/api/images/nope", json!({"name": "x"})),
        (Method::DELETE, "/api/images/0123456789abcdef-99", json!({})),
        (Method::DELETE, "/api/patterns/4", json!({})),
        (Method::POST, "/api/sd/load", json!({"filename": "no such"})),
        (Method::POST, "/api/sd/delete", json!({"filename": "no such"})),
        (Method::PATCH, "/api/images/nope", json!({"nam": "x"})),
        (Method::POST, "/api/patterns", json!({})),
        (Method::GET, "/api/images/", json!({})),
        (Method::GET, "/api/sequences/1/x", json!({})),
    ];
    for (method, path, body) in asks {
        let on_board = c.send_json(method.clone(), board, path, &body);
        let on_node = c.send_json(method.clone(), node, path, &body);
        assert!(on_board.0 >= 400 && on_board.1["error"].is_string(), "{method} {path} on the board: {on_board:?}");
        assert_eq!(on_board, on_node, "{method} {path}");
    }
    println!("  {} images, pattern 3 and sequence 1 alike on both", images(c, node).len());
    note("test", started.elapsed());
}

/// A Teensy on the master side of a pseudo-terminal: cuts frames as its firmware does,
/// acks every command, answers status requests, and keeps what it decoded.
fn fake_teensy(mut master: File) -> Arc<Mutex<Vec<Command>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        let (mut receiver, mut buf) = (Receiver::default(), [0u8; 4096]);
        // Ends when the test ends (the test holds the slave side open until then).
        while let Ok(n) = master.read(&mut buf) {
            for command in receiver.feed(&buf[..n]).into_iter().flatten() {
                let reply = match command {
                    Command::StatusRequest => Reply::Status(Status::default()),
                    ref other => Reply::Ack(other.code()),
                };
                let mut out = Vec::new();
                reply.encode(&mut out);
                let _ = master.write_all(&out);
                log.lock().unwrap().push(command);
            }
        }
    });
    got
}

/// The board firmware's Teensy link, through `povpoi board --teensy`: the shared mirror
/// (`povpoi_app::teensy::send_changes`) sends what plays on the board, an image synced from
/// the node squeezed to the Teensy's 256 columns and read from the board's flash a row at a
/// time, then the mode; a brightness set on the node follows alone.
#[test]
fn a_board_mirrors_what_plays_to_a_teensy_on_its_serial_port() {
    let started = Instant::now();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let teensy = fake_teensy(File::from(pty.master));
    let mut lab = Lab::loopback(2);
    let node = lab.start(0);
    let spec = NodeSpec { board: true, args: vec!["--teensy".into(), slave.display().to_string()], ..lab.spec(1) };
    let board = lab.start_with(1, spec);
    note("node and board saw each other", lab.wait_meet(&[(0, 1)], Duration::from_secs(15)));
    let c = &lab.client;

    let (w, h) = (300, 32);
    let px = pixels(11, w, h);
    c.upload_ok(node, None, w, h, &px);
    c.post_ok(node, "/api/mode", &json!({"mode": 1, "index": 0}));
    let image_mode = Command::set_mode(povpoi_core::model::Mode::Image, 0);
    let got = wait_for("the Teensy is set to image mode", Duration::from_secs(30), || {
        let got = teensy.lock().unwrap().clone();
        got.contains(&image_mode).then_some(got)
    });
    note("the Teensy plays the node's image", started.elapsed());
    assert_eq!(got.first(), Some(&Command::StatusRequest), "asked first whether a Teensy answers: {got:?}");
    // The image as a node's Teensy output sends it: 256 columns, nearest column of 300.
    let mut squeezed = Vec::new();
    for y in 0..h {
        for x in 0..256 {
            let from = 3 * (y * w + x * w / 256);
            squeezed.extend_from_slice(&px[from..from + 3]);
        }
    }
    let image = Command::image(256, 32, &squeezed).to_wire();
    let at = got.iter().position(|c| *c == image).expect("the squeezed image reached the Teensy");
    assert!(at < got.iter().position(|c| *c == image_mode).unwrap(), "the image before the mode: {got:?}");
    assert_eq!(c.get_ok(board, "/api/status")["mode"], json!(1));

    let before = teensy.lock().unwrap().len();
    c.post_ok(node, "/api/brightness", &json!({"brightness": 77}));
    let after = wait_for("the Teensy gets the brightness", Duration::from_secs(30), || {
        let got = teensy.lock().unwrap().clone();
        got.contains(&Command::Brightness(77)).then_some(got)
    });
    assert_eq!(after[before..], [Command::Brightness(77)], "only what changed");
    drop(pty.slave);
    note("test", started.elapsed());
}
