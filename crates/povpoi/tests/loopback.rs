//! Real `povpoi node` processes on 127.0.0.1 that know each other by address (`--no-mdns
//! --peer`): the core sync flows over real HTTP, with stops and restarts. Runs anywhere, no
//! privileges needed.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Settings fields that differ between two `/api/sync/data` listings.
fn settings_differing(a: &Value, b: &Value) -> u64 {
    let (a, b) = (&a["settings"], &b["settings"]);
    let brightness = a["brightness"] != b["brightness"];
    let framerate = a["framerate"] != b["framerate"];
    let selection = (&a["mode"], &a["index"]) != (&b["mode"], &b["index"]);
    u64::from(brightness) + u64::from(framerate) + u64::from(selection)
}

#[test]
fn upload_on_a_is_listed_on_b_with_identical_pixels() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    note("both saw each other", lab.wait_meet(&[(0, 1)], Duration::from_secs(15)));
    let c = &lab.client;

    let px = pixels(1, 40, 32);
    let id = c.upload_ok(a, None, 40, 32, &px);
    let on_a = image(c, a, &id).expect("listed on A");
    assert_eq!(
        (on_a["width"].as_u64(), on_a["height"].as_u64(), on_a["size"].as_u64()),
        (Some(40), Some(32), Some(3840))
    );
    assert_eq!(on_a["name"], json!("image_40x32"), "the name defaults to the file name");
    assert!(has_pixels(c, a, &id, &px));

    // No execute: the change is pushed.
    let took = wait_until("B lists the image with its pixels", Duration::from_secs(5), || {
        image(c, b, &id).is_some() && has_pixels(c, b, &id, &px)
    });
    note("image on B (push-on-change)", took);
    let on_b = image(c, b, &id).unwrap();
    for field in ["id", "name", "width", "height", "size", "timestamp", "pixels"] {
        assert_eq!(on_b[field], on_a[field], "field {field} of the image differs between A and B");
    }
    assert_eq!(on_b["available"], json!(true));
    assert_eq!(library(c, a), library(c, b), "whole libraries differ");
    note("test", started.elapsed());
}

#[test]
fn edits_on_both_sides_apart_converge_after_restarts() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    let c = &lab.client;
    let px1 = pixels(11, 30, 32);
    let id1 = c.upload_ok(a, Some("first"), 30, 32, &px1);
    wait_until("B has the first image", Duration::from_secs(5), || has_pixels(c, b, &id1, &px1));
    let b_id = device_id(c, b);

    // B stops cleanly; A edits alone.
    lab.stop(1);
    let c = &lab.client;
    let px2 = pixels(12, 20, 32);
    let id2 = c.upload_ok(a, Some("second"), 20, 32, &px2);
    c.post_ok(a, "/api/pattern", &json!({"index": 5, "type": 3, "color1": {"r": 1, "g": 2, "b": 3}, "speed": 77}));
    c.post_ok(a, "/api/brightness", &json!({"brightness": 111}));
    lab.stop(0);

    // B comes back alone (A is down) with what it had, and edits on its own.
    lab.restart(1);
    let c = &lab.client;
    assert_eq!(device_id(c, b), b_id, "the device id changed across a restart");
    assert!(has_pixels(c, b, &id1, &px1), "B lost the first image across its restart");
    assert!(image(c, b, &id2).is_none(), "B has an image it cannot have received");
    let px3 = pixels(13, 64, 64);
    let id3 = c.upload_ok(b, Some("third"), 64, 64, &px3);
    c.post_ok(b, "/api/pattern", &json!({"index": 7, "type": 12, "speed": 200}));
    c.post_ok(b, "/api/framerate", &json!({"framerate": 44}));
    let (status, renamed) =
        c.send_json(reqwest::Method::PATCH, b, &format!("/api/images/{id1}"), &json!({"name": "first, renamed on B"}));
    assert_eq!(status, 200, "rename: {renamed}");

    // A comes back: they meet and merge.
    lab.restart(0);
    let c = &lab.client;
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    note("converged after A's restart", lab.wait_converged(&[0, 1], Duration::from_secs(15)));
    let (la, lb) = (library(c, a), library(c, b));
    assert_eq!(la, lb);
    for (addr, who) in [(a, "A"), (b, "B")] {
        for (id, px) in [(&id1, &px1), (&id2, &px2), (&id3, &px3)] {
            assert!(has_pixels(c, addr, id, px), "{who} lacks the pixels of {id}");
        }
        assert_eq!(image(c, addr, &id1).unwrap()["name"], json!("first, renamed on B"), "rename lost on {who}");
        assert_eq!(image(c, addr, &id2).unwrap()["name"], json!("second"));
        assert_eq!(images(c, addr).len(), 3, "{who} does not hold exactly the three images");
        let patterns = c.get_ok(addr, "/api/patterns");
        let p5 = c.get_ok(addr, "/api/patterns/5");
        assert_eq!((p5["type"].as_u64(), p5["speed"].as_u64()), (Some(3), Some(77)), "{who}: {patterns}");
        assert_eq!(p5["color1"], json!({"r": 1, "g": 2, "b": 3}), "{who}: {patterns}");
        let p7 = c.get_ok(addr, "/api/patterns/7");
        assert_eq!((p7["type"].as_u64(), p7["speed"].as_u64()), (Some(12), Some(200)), "{who}: {patterns}");
        let s = c.get_ok(addr, "/api/status");
        assert_eq!(
            (s["brightness"].as_u64(), s["framerate"].as_u64(), s["count"].as_u64()),
            (Some(111), Some(44), Some(3))
        );
    }
    note("test", started.elapsed());
}

#[test]
fn execute_with_explicit_peer_id_returns_real_counts() {
    let started = Instant::now();
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    let c = &lab.client;
    for addr in [a, b] {
        c.post_ok(addr, "/api/device/config", &json!({"autoSync": false}));
        assert_eq!(c.get_ok(addr, "/api/device/config")["autoSync"], json!(false));
    }
    let a_id = device_id(c, a);
    let b_id = device_id(c, b);
    let before_b = library(c, b);

    let px1 = pixels(21, 40, 32);
    let px2 = pixels(22, 400, 64);
    let id1 = c.upload_ok(a, None, 40, 32, &px1);
    let id2 = c.upload_ok(a, Some("wide"), 400, 64, &px2);
    c.post_ok(a, "/api/pattern", &json!({"index": 1, "type": 10}));
    c.post_ok(a, "/api/pattern", &json!({"index": 2, "type": 5, "speed": 9}));
    c.post_ok(a, "/api/brightness", &json!({"brightness": 42}));
    c.post_ok(b, "/api/pattern", &json!({"index": 9, "type": 7}));
    let lib_a = library(c, a);
    let expected_settings = settings_differing(&lib_a, &before_b);
    assert!(expected_settings >= 1, "A's brightness must differ from B's");

    // Auto-sync is off: nothing moves by itself.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(image(c, b, &id1).is_none(), "with autoSync off, A's image reached B without execute");

    let (status, answer) = c.post_json(b, "/api/sync/execute", &json!({"peerId": a_id}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], json!("ok"), "{answer}");
    for field in ["itemsSynced", "imagesAdded", "patternsAdded", "settingsUpdated"] {
        assert!(answer[field].is_u64(), "{field} is not a non-negative integer: {answer}");
    }
    assert_eq!(answer["imagesAdded"], json!(2), "{answer}");
    assert_eq!(answer["patternsAdded"], json!(2), "{answer}");
    assert_eq!(answer["settingsUpdated"], json!(expected_settings), "{answer}");
    // Records: at least every item that arrived here, plus B's pattern sent to A.
    let min_items = 2 + 2 + expected_settings + 1;
    assert!(answer["itemsSynced"].as_u64().unwrap() >= min_items, "itemsSynced < {min_items}: {answer}");

    // Both ways, pixels included, right after the answer.
    assert!(has_pixels(c, b, &id1, &px1), "B lacks image 1's pixels after execute");
    assert!(has_pixels(c, b, &id2, &px2), "B lacks image 2's pixels after execute");
    assert_eq!(pattern_type(&library(c, a), 9), Some(7), "bidirectional execute did not give A B's pattern");
    assert_eq!(library(c, a), library(c, b));

    // Nothing left to move: zeros, still ok.
    let again = c.post_ok(b, "/api/sync/execute", &json!({"peerId": a_id}));
    assert_eq!(
        (
            &again["status"],
            &again["itemsSynced"],
            &again["imagesAdded"],
            &again["patternsAdded"],
            &again["settingsUpdated"]
        ),
        (&json!("ok"), &json!(0), &json!(0), &json!(0), &json!(0)),
        "{again}"
    );
    let pull = c.post_ok(a, "/api/sync/execute", &json!({"peerId": b_id, "direction": "pull"}));
    assert_eq!((&pull["status"], &pull["itemsSynced"]), (&json!("ok"), &json!(0)), "{pull}");

    // A push of a new pattern from A, then a pull that excludes patterns.
    c.post_ok(a, "/api/pattern", &json!({"index": 3, "type": 1}));
    let push = c.post_ok(a, "/api/sync/execute", &json!({"peerId": b_id, "direction": "push"}));
    assert_eq!(
        (&push["status"], &push["patternsAdded"]),
        (&json!("ok"), &json!(0)),
        "counts are what arrived on A: {push}"
    );
    assert!(push["itemsSynced"].as_u64().unwrap() >= 1, "{push}");
    assert_eq!(pattern_type(&library(c, b), 3), Some(1), "push did not reach B");
    c.post_ok(a, "/api/pattern", &json!({"index": 4, "type": 2}));
    let no_patterns = c.post_ok(b, "/api/sync/execute", &json!({"peerId": a_id, "syncPatterns": false}));
    assert_eq!(no_patterns["patternsAdded"], json!(0), "{no_patterns}");
    assert_eq!(pattern_type(&library(c, b), 4), None, "syncPatterns:false moved a pattern");

    // Errors are JSON with a status saying what is wrong.
    let (status, answer) = c.post_json(b, "/api/sync/execute", &json!({"peerId": "nobody-here"}));
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    let (status, answer) = c.post_json(b, "/api/sync/execute", &json!({"peerId": a_id, "direction": "sideways"}));
    assert_eq!(status, 400, "{answer}");
    note("test", started.elapsed());
}

#[test]
fn the_cli_previews_items_stored_on_a_poi() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let c = &lab.client;
    let px = pixels(3, 40, 32);
    let id = c.upload_ok(a, Some("stored"), 40, 32, &px);
    c.post_ok(a, "/api/pattern", &json!({"index": 7, "type": 10}));
    let dir = tempfile::tempdir().unwrap();
    for item in [format!("image:{id}"), "pattern:7".to_string()] {
        let out = dir.path().join("spun.png");
        let run = std::process::Command::new(EXE)
            .args(["preview", &item, "--node", &format!("http://{a}"), "--size", "128", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{item}: {}", String::from_utf8_lossy(&run.stderr));
        let png = povpoi_media::image::open(&out).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), (128, 128), "{item}");
        assert!(png.pixels().any(|p| p.0 != [0, 0, 0]), "{item}: the preview is dark");
    }
    let run = std::process::Command::new(EXE)
        .args(["preview", "sequence:4", "--node", &format!("http://{a}"), "-o"])
        .arg(dir.path().join("none.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && stderr.contains("404") && stderr.contains("empty"), "{stderr}");
}

/// Pixels whose bytes spell `marker` over and over, so they can be looked for on the wire.
fn marked_pixels(marker: &[u8; 16], w: usize, h: usize) -> Vec<u8> {
    marker.iter().copied().cycle().take(w * h * 3).collect()
}

#[test]
fn with_a_pairing_key_nothing_of_the_library_crosses_the_wire_readable() {
    const KEY: &str = "tapped wire secret";
    let mut lab = Lab::loopback(2);
    // A reaches B, and B reaches A, only through a tap that keeps every byte.
    let (to_b, to_a) = (Tap::start(lab.addrs[1]), Tap::start(lab.addrs[0]));
    let mut spec_a = lab.spec(0);
    spec_a.peers = vec![to_b.addr];
    let mut spec_b = lab.spec(1);
    spec_b.peers = vec![to_a.addr];
    let a = lab.start_with(0, spec_a);
    let b = lab.start_with(1, spec_b);
    let c = &lab.client;
    let (a_id, b_id) = (device_id(c, a), device_id(c, b));
    // A peer that called in is first listed where it called from; the address given by hand
    // takes over at the next probe. Wait until each lists the other at its tap.
    for (from, peer, tap) in [(a, &b_id, &to_b), (b, &a_id, &to_a)] {
        wait_until("peers listed at their taps", Duration::from_secs(15), || {
            online_peer(c, from, peer).is_some_and(|p| p["port"] == json!(tap.addr.port()))
        });
    }
    let seen = || [to_b.seen(), to_a.seen()].concat();
    let crossed = |needle: &[u8]| seen().windows(needle.len()).any(|w| w == needle);

    // Without a key the tap reads what moves: the test can see what it looks for.
    let plain = marked_pixels(b"plain-pixels-01!", 40, 32);
    let id = c.upload_ok(a, Some("plain-name-marker"), 40, 32, &plain);
    wait_until("B has the plain image", Duration::from_secs(10), || has_pixels(c, b, &id, &plain));
    assert!(crossed(b"plain-pixels-01!") && crossed(b"plain-name-marker"), "the tap saw no library content");

    for addr in [a, b] {
        c.post_ok(addr, "/api/device/config", &json!({"groupKey": KEY}));
        c.set_key(addr, Some(KEY));
    }
    to_b.clear();
    to_a.clear();
    let secret = marked_pixels(b"sealed-pixels-2!", 40, 32);
    let id = c.upload_ok(a, Some("sealed-name-marker"), 40, 32, &secret);
    c.post_ok(a, "/api/brightness", &json!({"brightness": 123}));
    let took = wait_until("B has the sealed image", Duration::from_secs(10), || has_pixels(c, b, &id, &secret));
    note("keyed image on B through the tap", took);
    wait_until("B has the brightness", Duration::from_secs(10), || {
        c.get_ok(b, "/api/status")["brightness"] == json!(123)
    });
    let bytes = seen().len();
    assert!(bytes > secret.len(), "the pixels went through the tap ({bytes} bytes crossed)");
    assert!(!crossed(b"sealed-pixels-2!"), "pixels crossed the wire readable");
    assert!(!crossed(b"sealed-name-marker"), "an image name crossed the wire readable");
    assert!(!crossed(KEY.as_bytes()), "the key crossed the wire");
    let history = c.get_ok(b, "/api/sync/history");
    assert!(history.as_array().unwrap().iter().any(|e| e["ok"] == json!(true)), "{history}");
}

#[test]
fn malformed_requests_to_a_node_process_get_json_errors_and_change_nothing() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let c = &lab.client;
    let id = c.upload_ok(a, Some("keep me"), 20, 32, &pixels(5, 20, 32));
    let before = library(c, a);
    let post = |path: &str, body: &[u8]| c.try_post(a, path, "application/json", body.to_vec()).unwrap();
    let (content_type, truncated) = multipart(None, "image_20x32.rgb", &pixels(6, 20, 31));
    let (_, wrong_size) = multipart(None, "image_21x32.rgb", &pixels(7, 20, 32));
    let (_, traversal) = multipart(Some("../../etc/passwd"), "image_20x32.rgb", &pixels(8, 20, 32));
    let (_, too_wide) = multipart(None, "image_401x32.rgb", &pixels(9, 401, 32));
    let upload = |body: &[u8]| c.try_post(a, "/api/image", &content_type, body.to_vec()).unwrap();
    let cases: Vec<(&str, u16, Reply)> = vec![
        ("malformed JSON", 400, post("/api/brightness", b"{\"brightness\": ")),
        ("non-UTF-8", 400, post("/api/brightness", b"{\"brightness\": \"\xff\"}")),
        ("wrong type", 400, post("/api/brightness", br#"{"brightness": "high"}"#)),
        ("out of range", 400, post("/api/brightness", br#"{"brightness": 256}"#)),
        ("unknown field", 400, post("/api/mode", br#"{"mode": 1, "idx": 2}"#)),
        ("oversized JSON", 413, post("/api/pattern", &[b' '; 70 * 1024])),
        ("oversized push", 413, post("/api/sync/push", &[b' '; 70 * 1024])),
        ("not a sync message", 400, c.try_post(a, "/api/sync/v1", "application/octet-stream", vec![0xff; 8]).unwrap()),
        ("truncated upload", 400, upload(&truncated)),
        ("size in the name not the bytes'", 400, upload(&wrong_size)),
        ("path in the name", 400, upload(&traversal)),
        ("too wide", 413, upload(&too_wide)),
        ("bad escape in a path", 400, c.try_get(a, "/api/blobs/%FF").unwrap()),
        ("bad escape in a preview path", 400, c.try_get(a, "/api/preview/image/%FF").unwrap()),
        ("path trick in an id", 400, c.try_get(a, "/api/images/..%2F..%2Fconfig.json").unwrap()),
    ];
    for (what, expected, reply) in cases {
        let error = reply.json()["error"].as_str().map(str::to_owned);
        assert!(
            reply.status == expected && error.as_deref().is_some_and(|e| !e.is_empty()),
            "{what}: expected {expected} with a JSON error, got {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert_eq!(library(c, a), before, "a refused request changed the library");
    assert!(has_pixels(c, a, &id, &pixels(5, 20, 32)));
    assert!(lab.poi(0).running(), "the node survived all of it");
}

#[test]
fn images_reordered_on_a_are_listed_in_that_order_on_b() {
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    let c = &lab.client;
    let ids: Vec<String> = (0..3).map(|n| c.upload_ok(a, Some(&format!("pic{n}")), 4, 32, &pixels(n, 4, 32))).collect();
    let names = |addr| images(c, addr).iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    wait_until("B lists the three images", Duration::from_secs(10), || names(b).len() == 3);

    let (code, listing) =
        c.send_json(reqwest::Method::PUT, a, "/api/images/order", &json!({ "ids": [&ids[2], &ids[0]] }));
    assert_eq!(code, 200, "{listing}");
    let order: Vec<&str> = listing["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["pic2", "pic0", "pic1"], "the answer is the new listing");
    wait_until("B lists them in A's order", Duration::from_secs(10), || names(b) == ["pic2", "pic0", "pic1"]);
    let indexes: Vec<u64> = images(c, b).iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2], "index is the position in the new order");

    let (code, error) =
        c.send_json(reqwest::Method::PUT, a, "/api/images/order", &json!({ "ids": [&ids[1], &ids[1]] }));
    assert_eq!(code, 400, "{error}");
    assert!(error["error"].as_str().unwrap().contains("each image once"), "{error}");
    let (code, error) = c.send_json(reqwest::Method::PUT, a, "/api/images/order", &json!({ "ids": ["nonsense"] }));
    assert_eq!(code, 400, "{error}");
    assert_eq!(names(a), ["pic2", "pic0", "pic1"], "a refused order changes nothing");
}
