//! What the performer's web UI builds on, part two, over real HTTP against `povpoi node`
//! processes on 127.0.0.1: thumbnails, identify, the strip settings, backup and restore.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use povpoi_media::image;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

/// A `w` x `h` picture whose first half of the LEDs (rows) is red and the rest blue, so a
/// thumbnail shows which way is up.
fn halves(w: usize, h: usize) -> Vec<u8> {
    (0..w * h).flat_map(|i| if i / w < h / 2 { [255, 0, 0] } else { [0, 0, 255] }).collect()
}

/// The cache file of the thumbnail of the image listed as `image` on the node storing in `data_dir`.
fn cache_file(data_dir: &std::path::Path, image: &Value) -> PathBuf {
    let hash = image["pixels"].as_str().expect("pixels hash");
    data_dir.join("thumbnails").join(format!("{hash}-160x64.png"))
}

#[test]
fn thumbnails_are_drawn_once_cached_and_removed_with_their_image() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let data_dir = lab.poi(0).spec.data_dir.clone();
    let client = &lab.client;
    let id = client.upload_ok(a, Some("halves"), 400, 32, &halves(400, 32));
    let path = format!("/api/thumbnail/image/{id}");

    let first = client.try_get(a, &path).unwrap();
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.header("content-type"), Some("image/png"));
    assert_eq!(first.header("cache-control"), Some("private, max-age=31536000, immutable"));
    let etag = first.header("etag").expect("an ETag").to_owned();
    let picture = image::load_from_memory(&first.body).expect("a PNG").to_rgb8();
    // 400 x 32 fitted in 160 x 64 keeping the aspect: 160 x 12.8, rounded down.
    assert_eq!(picture.dimensions(), (160, 12));
    assert_eq!(picture.get_pixel(80, 0).0, [255, 0, 0], "LED 0's row on top");
    assert_eq!(picture.get_pixel(80, 11).0, [0, 0, 255], "the last LED's row at the bottom");

    let cache = cache_file(&data_dir, &images(client, a)[0]);
    assert_eq!(std::fs::read(&cache).expect("the thumbnail is cached"), first.body);
    // Served from the cache, not drawn again: another (valid) PNG put in its place comes back.
    let stand_in = povpoi_media::png_bytes(&image::RgbImage::new(3, 1)).unwrap();
    std::fs::write(&cache, &stand_in).unwrap();
    let second = client.try_get(a, &path).unwrap();
    assert_eq!((second.status, second.body == stand_in), (200, true));
    assert_eq!(second.header("etag"), Some(etag.as_str()));

    // A browser that holds it asks with its ETag and gets no body.
    let revalidated = client.call_with(Method::GET, a, &path, None, &[("if-none-match", &etag)], Vec::new()).unwrap();
    assert_eq!((revalidated.status, revalidated.body.len()), (304, 0));

    let (status, answer) = client.get_json(a, "/api/thumbnail/image/0123456789abcdef-99");
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no image"), "{answer}");
    let (status, answer) = client.get_json(a, "/api/thumbnail/image/not-an-id");
    assert_eq!(status, 400, "{answer}");

    // Deleting the image removes its cached thumbnail.
    let (status, answer) = client.send_json(Method::DELETE, a, &format!("/api/images/{id}"), &Value::Null);
    assert_eq!(status, 200, "{answer}");
    wait_until("the deleted image's thumbnail is removed", Duration::from_secs(5), || !cache.exists());
    let (status, _) = client.get_json(a, &path);
    assert_eq!(status, 404);
}

#[test]
fn a_thumbnail_is_served_on_a_full_disk_without_being_cached() {
    let Some(disk) = Tmpfs::mount_or_skip("2m") else { return };
    let mut lab = Lab::loopback(1);
    let (a, data_dir) = lab.start_on(0, &disk);
    let id = lab.client.upload_ok(a, Some("halves"), 64, 32, &halves(64, 32));
    disk.fill("filler");

    let answer = lab.client.try_get(a, &format!("/api/thumbnail/image/{id}")).unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let picture = image::load_from_memory(&answer.body).expect("a PNG").to_rgb8();
    assert_eq!(picture.dimensions(), (64, 32), "small enough already: not enlarged");
    assert!(!cache_file(&data_dir, &images(&lab.client, a)[0]).exists(), "nothing cached on a full disk");
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));
}

/// What a column of the sim strip shows, as `/api/strip` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Every LED at the identify flash's white.
    Flash,
    /// Every LED dark.
    Dark,
    /// The green test image (no red, no blue, some green).
    Green,
    Other,
}

fn classify(column: &str) -> Seen {
    let bytes: Vec<u8> =
        (0..column.len() / 2).map(|i| u8::from_str_radix(&column[2 * i..2 * i + 2], 16).unwrap()).collect();
    let leds: Vec<&[u8]> = bytes.chunks(3).collect();
    if leds.iter().all(|c| *c == [64, 64, 64]) {
        Seen::Flash
    } else if leds.iter().all(|c| *c == [0, 0, 0]) {
        Seen::Dark
    } else if leds.iter().all(|c| c[0] == 0 && c[2] == 0 && c[1] > 0) {
        Seen::Green
    } else {
        Seen::Other
    }
}

/// The columns the sim strip showed after column `after`, classified, and the last number.
fn strip_since(client: &Client, addr: SocketAddr, after: u64) -> (Vec<Seen>, u64, u64) {
    let strip = client.get_ok(addr, &format!("/api/strip?after={after}"));
    let columns = strip["columns"].as_array().unwrap().iter().map(|c| classify(c.as_str().unwrap())).collect();
    (columns, strip["shown"].as_u64().unwrap(), strip["leds"].as_u64().unwrap())
}

/// Opens `/api/events` on `addr`, runs `then` once the stream is open, and gives the first
/// `data:` line of an event named `name` (panics after 5 s).
fn event_after(addr: SocketAddr, name: &str, then: impl FnOnce()) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    let mut then = Some(then);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = stream.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // The handler has subscribed once the answer's head is out.
        if text.contains("\r\n\r\n")
            && let Some(then) = then.take()
        {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            then();
        }
        if let Some(at) = text.find(&format!("event: {name}\n"))
            && let Some(data) = text[at..].split('\n').find_map(|l| l.strip_prefix("data: "))
            && text[at..].contains(&format!("data: {data}\n"))
        {
            return serde_json::from_str(data).unwrap();
        }
    }
    panic!("no {name} event within 5 s; the stream said: {text}");
}

#[test]
fn identify_flashes_over_the_show_then_resumes_and_tells_watchers() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let client = &lab.client;
    let green: Vec<u8> = (0..4 * 32).flat_map(|_| [0, 255, 0]).collect();
    client.upload_ok(a, Some("green"), 4, 32, &green);
    let mut shown = wait_for("the green image plays", Duration::from_secs(5), || {
        let (columns, shown, _) = strip_since(client, a, 0);
        (columns.last() == Some(&Seen::Green)).then_some(shown)
    });

    // Refused asks start nothing.
    for bad in [json!({ "seconds": 0 }), json!({ "seconds": 11 }), json!({ "seconds": "2" }), json!({ "secs": 2 })] {
        let (status, answer) = client.post_json(a, "/api/identify", &bad);
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (status, answer) = client.post_json(a, "/api/identify", &json!({ "seconds": 0 }));
    assert!(answer["error"].as_str().unwrap().contains("seconds must be an integer 1-10"), "{status} {answer}");
    std::thread::sleep(Duration::from_millis(300));
    let (columns, now, _) = strip_since(client, a, shown);
    assert!(!columns.is_empty() && columns.iter().all(|c| *c == Seen::Green), "{columns:?}");
    shown = now;

    let device_id = client.get_ok(a, "/api/device/config")["deviceId"].clone();
    let event = event_after(a, "identify", || {
        let answer = client.post_ok(a, "/api/identify", &json!({ "seconds": 1 }));
        assert_eq!((&answer["seconds"], &answer["deviceId"]), (&json!(1), &device_id), "{answer}");
    });
    assert_eq!(event["type"], "identify");
    assert_eq!((&event["deviceId"], &event["seconds"]), (&device_id, &json!(1)), "{event}");
    assert_eq!(event["deviceName"], "poi-a");

    // Flash, dark, flash... for a second, then the image again, and no more flashes.
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let (columns, now, _) = strip_since(client, a, shown);
        shown = now;
        seen.extend(columns);
        let flashed = seen.iter().position(|c| *c == Seen::Flash);
        if let Some(first) = flashed
            && seen[first..].iter().rev().take_while(|c| **c == Seen::Green).count() >= 30
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = seen.iter().position(|c| *c == Seen::Flash).unwrap_or_else(|| panic!("no flash: {seen:?}"));
    let last = seen.iter().rposition(|c| *c == Seen::Flash).unwrap();
    assert!(seen[first..last].contains(&Seen::Dark), "lit and dark in turn: {seen:?}");
    assert!(seen[first..=last].iter().all(|c| matches!(c, Seen::Flash | Seen::Dark)), "{seen:?}");
    let after: Vec<Seen> = seen[last + 1..].iter().copied().skip_while(|c| *c == Seen::Dark).collect();
    assert!(after.len() >= 30 && after.iter().all(|c| *c == Seen::Green), "then the show: {seen:?}");

    // No body: the default three seconds.
    let (status, answer) = client.post_empty(a, "/api/identify");
    assert_eq!((status, &answer["seconds"]), (200, &json!(3)), "{answer}");
}

/// Whether `bytes` holds `needle`.
fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn led_count_and_colour_order_are_settings_applied_at_once_and_kept() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let client = &lab.client;
    let config = client.get_ok(a, "/api/device/config");
    assert_eq!((&config["ledCount"], &config["colorOrder"]), (&json!(32), &json!("BGR")), "{config}");
    let (_, _, leds) = strip_since(client, a, 0);
    assert_eq!(leds, 32);

    let answer = client.post_ok(a, "/api/device/config", &json!({ "ledCount": 16, "colorOrder": "grb" }));
    assert_eq!(answer["status"], "ok");
    let config = client.get_ok(a, "/api/device/config");
    assert_eq!((&config["ledCount"], &config["colorOrder"]), (&json!(16), &json!("GRB")), "{config}");
    // The sim strip plays 16 LEDs from the next column on, without a restart.
    wait_until("the strip shows 16 LEDs", Duration::from_secs(5), || {
        let strip = client.get_ok(a, "/api/strip");
        let last = strip["columns"].as_array().unwrap().last().cloned();
        strip["leds"] == json!(16) && last.is_some_and(|c| c.as_str().unwrap().len() == 16 * 6)
    });

    // Refused values name the field and what it takes, and change nothing.
    let refusals = [
        (json!({ "ledCount": 0 }), "ledCount must be an integer 1-144"),
        (json!({ "ledCount": 145 }), "ledCount must be an integer 1-144"),
        (json!({ "ledCount": "16" }), "ledCount must be an integer 1-144"),
        (json!({ "colorOrder": "RGBW" }), "colorOrder must be one of RGB, RBG, GRB, GBR, BRG, BGR"),
        (json!({ "colorOrder": 3 }), "colorOrder must be one of RGB, RBG, GRB, GBR, BRG, BGR"),
        (json!({ "ledCount": 20, "colorOrder": "bad" }), "colorOrder"),
    ];
    for (body, says) in refusals {
        let (status, answer) = client.post_json(a, "/api/device/config", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let config = client.get_ok(a, "/api/device/config");
    assert_eq!((&config["ledCount"], &config["colorOrder"]), (&json!(16), &json!("GRB")), "{config}");

    // Kept across a restart without --leds; --leds sets (and stores) the count.
    lab.stop(0);
    lab.restart(0);
    let config = lab.client.get_ok(a, "/api/device/config");
    assert_eq!((&config["ledCount"], &config["colorOrder"]), (&json!(16), &json!("GRB")), "{config}");
    lab.stop(0);
    lab.poi(0).spec.args = vec!["--leds".into(), "20".into()];
    lab.restart(0);
    assert_eq!(lab.client.get_ok(a, "/api/device/config")["ledCount"], 20);
    assert_eq!(lab.client.get_ok(a, "/api/strip")["leds"], 20);
    lab.stop(0);
    lab.poi(0).spec.args.clear();
    lab.restart(0);
    assert_eq!(lab.client.get_ok(a, "/api/device/config")["ledCount"], 20);
}

#[test]
fn the_apa102_output_sends_the_channels_in_the_order_set() {
    let mut lab = Lab::loopback(1);
    let mut spec = lab.spec(0);
    let capture = spec.data_dir.with_extension("frames");
    std::fs::write(&capture, b"").unwrap();
    spec.args = vec!["--output".into(), format!("apa102:{}", capture.display()), "--leds".into(), "2".into()];
    let a = lab.start_with(0, spec);
    let client = &lab.client;
    client.post_ok(a, "/api/brightness", &json!({ "brightness": 255 }));
    let rgb = json!({ "r": 10, "g": 20, "b": 30 });
    client.post_ok(a, "/api/live", &json!({ "pixels": [rgb, rgb] }));
    // Full global current (0xFF), then the channels: BGR unless told otherwise.
    wait_until("BGR frames of the live column", Duration::from_secs(5), || {
        holds(&std::fs::read(&capture).unwrap(), &[0xFF, 30, 20, 10, 0xFF, 30, 20, 10])
    });

    let before = std::fs::read(&capture).unwrap().len();
    client.post_ok(a, "/api/device/config", &json!({ "colorOrder": "RGB", "ledCount": 3 }));
    client.post_ok(a, "/api/live", &json!({ "pixels": [rgb, rgb, rgb] }));
    wait_until("RGB frames of three LEDs", Duration::from_secs(5), || {
        let frames = std::fs::read(&capture).unwrap();
        holds(&frames[before..], &[0, 0, 0, 0, 0xFF, 10, 20, 30, 0xFF, 10, 20, 30, 0xFF, 10, 20, 30, 0])
    });
    assert_eq!(client.get_ok(a, "/api/device/config")["colorOrder"], "RGB");
}

/// A poi's library as the API lists it, without what differs between two poi holding the
/// same content (image ids, edit times): images by position, sequences naming images by
/// position, patterns, and brightness and frame rate.
fn library_view(client: &Client, addr: SocketAddr) -> (Vec<Value>, Value, Vec<Value>, Value) {
    let listed = images(client, addr);
    let ids: Vec<Value> = listed.iter().map(|i| i["id"].clone()).collect();
    let images = listed
        .iter()
        .map(|i| json!([i["index"], i["name"], i["width"], i["height"], i["size"], i["pixels"], i["available"]]))
        .collect();
    let mut sequences = client.get_ok(addr, "/api/sequences")["sequences"].as_array().unwrap().clone();
    for sequence in &mut sequences {
        for item in sequence["items"].as_array_mut().unwrap() {
            if let Some(id) = item.get("image").cloned() {
                item["image"] = json!(ids.iter().position(|i| *i == id).expect("a listed image"));
            }
        }
    }
    let status = client.get_ok(addr, "/api/status");
    (images, client.get_ok(addr, "/api/patterns"), sequences, json!([status["brightness"], status["framerate"]]))
}

/// A poi started on its own: no peers, a group of its own.
fn lone_poi() -> (Lab, SocketAddr) {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    (lab, a)
}

#[test]
fn a_backup_restores_into_a_fresh_poi_and_a_damaged_one_changes_nothing() {
    let (source, a) = lone_poi();
    let client = &source.client;
    let one = pixels(1, 400, 32);
    let two = pixels(2, 20, 32);
    client.upload_ok(a, Some("one"), 400, 32, &one);
    let two_id = client.upload_ok(a, Some("two"), 20, 32, &two);
    client.upload_ok(a, Some("one again"), 400, 32, &one);
    client.upload_ok(a, Some("two"), 20, 32, &two);
    client.post_ok(a, "/api/pattern", &json!({ "index": 3, "type": 4, "speed": 200 }));
    let pattern =
        json!({ "type": 9, "color1": { "r": 1, "g": 2, "b": 3 }, "color2": { "r": 4, "g": 5, "b": 6 }, "speed": 7 });
    let (status, answer) = client.send_json(Method::PUT, a, "/api/patterns/17", &pattern);
    assert_eq!(status, 200, "{answer}");
    let sequence = json!({ "loop": false, "items": [
        { "image": two_id, "durationMs": 500 }, { "pattern": 3, "durationMs": 700 } ] });
    let (status, answer) = client.send_json(Method::PUT, a, "/api/sequences/4", &sequence);
    assert_eq!(status, 200, "{answer}");
    client.post_ok(a, "/api/brightness", &json!({ "brightness": 77 }));
    client.post_ok(a, "/api/framerate", &json!({ "framerate": 33 }));

    let backup = client.try_get(a, "/api/backup").unwrap();
    assert_eq!(backup.status, 200, "{:?}", backup.json());
    let disposition = backup.header("content-disposition").expect("an attachment");
    assert!(
        disposition.starts_with("attachment; filename=\"povpoi-poi-a-20") && disposition.ends_with(".povbackup\""),
        "{disposition}"
    );
    assert!(backup.body.starts_with(b"povpoiB1"));
    // Each picture once, whatever the number of images showing it, plus a small manifest.
    let pixel_bytes = one.len() + two.len();
    assert!(backup.body.len() > pixel_bytes && backup.body.len() < pixel_bytes + 4096, "{} bytes", backup.body.len());

    let (target, b) = lone_poi();
    let client = &target.client;
    let empty = library_view(client, b);
    let restore = |body: Vec<u8>| {
        let reply = client.try_post(b, "/api/restore", "application/octet-stream", body).unwrap();
        (reply.status, reply.json())
    };
    let mut flipped = backup.body.clone();
    flipped[backup.body.len() / 2] ^= 0x20;
    let png = povpoi_media::png_bytes(&image::RgbImage::new(4, 4)).unwrap();
    let mut newer = backup.body.clone();
    newer[7] = b'2';
    for (what, body, says) in [
        ("cut short", backup.body[..backup.body.len() - 100].to_vec(), "damaged or cut short"),
        ("cut in its header", backup.body[..20].to_vec(), "shorter than the 44-byte header"),
        ("one bit flipped", flipped, "damaged or cut short"),
        ("a PNG", png, "not a povpoi backup"),
        ("from a newer povpoi", newer, "format version '2'"),
        ("empty", Vec::new(), "not a povpoi backup"),
    ] {
        let (status, answer) = restore(body);
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{what}: {answer}");
        assert_eq!(library_view(client, b), empty, "{what}: the poi is unchanged");
    }
    let (status, answer) = restore(vec![0; 16 * 1024 * 1024 + 1]);
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("16 MiB"), "{answer}");
    // A good backup sent as a type a page on another site may post unasked: refused, unread.
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let reply = client.call(Method::POST, b, "/api/restore", content_type, backup.body.clone()).unwrap();
        assert_eq!(reply.status, 415, "{content_type:?}: {:?}", reply.json());
        assert!(reply.json()["error"].as_str().unwrap().contains("application/octet-stream"), "{content_type:?}");
        assert_eq!(library_view(client, b), empty, "{content_type:?}: the poi is unchanged");
    }

    let (status, answer) = restore(backup.body.clone());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({ "status": "ok", "imagesAdded": 4, "imagesPresent": 0, "patternsSet": 2, "sequencesSet": 1,
                "brightness": 77, "framerate": 33 })
    );
    assert_eq!(library_view(client, b), library_view(&source.client, a));
    for image in images(client, b) {
        let expected = if image["width"] == 400 { &one } else { &two };
        assert!(has_pixels(client, b, image["id"].as_str().unwrap(), expected), "{image}");
    }

    // Restoring again adds nothing: every image is there with its name and pixels.
    let (status, answer) = restore(backup.body.clone());
    assert_eq!((status, &answer["imagesAdded"], &answer["imagesPresent"]), (200, &json!(0), &json!(4)), "{answer}");
    assert_eq!(images(client, b).len(), 4);
}

#[test]
fn a_restore_that_does_not_fit_is_a_507_that_changes_nothing() {
    let (source, a) = lone_poi();
    for n in 0..48 {
        source.client.upload_ok(a, Some(&format!("img{n}")), 400, 32, &pixels(n + 10, 400, 32));
    }
    let backup = source.client.try_get(a, "/api/backup").unwrap();
    assert_eq!(backup.status, 200);

    let Some(disk) = Tmpfs::mount_or_skip("2m") else { return };
    let mut target = Lab::loopback(1);
    let (b, data_dir) = target.start_on(0, &disk);
    let before = library_view(&target.client, b);
    let reply = target.client.try_post(b, "/api/restore", "application/octet-stream", backup.body).unwrap();
    let answer = reply.json();
    assert_eq!(reply.status, 507, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("disk full"), "{answer}");
    assert_eq!(library_view(&target.client, b), before);
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));
}

#[test]
fn with_a_pairing_key_backup_restore_identify_and_thumbnails_need_it() {
    let (lab, a) = lone_poi();
    let client = &lab.client;
    let id = client.upload_ok(a, Some("x"), 2, 2, &pixels(3, 2, 2));
    client.post_ok(a, "/api/device/config", &json!({ "groupKey": "correct horse battery" }));
    for (method, path) in [
        (Method::GET, "/api/backup".to_owned()),
        (Method::POST, "/api/restore".to_owned()),
        (Method::POST, "/api/identify".to_owned()),
        (Method::GET, format!("/api/thumbnail/image/{id}")),
    ] {
        let reply = client.call(method.clone(), a, &path, None, Vec::new()).unwrap();
        assert_eq!(reply.status, 401, "{method} {path}: {:?}", reply.json());
    }
    client.set_key(a, Some("correct horse battery"));
    assert_eq!(client.try_get(a, "/api/backup").unwrap().status, 200);
    assert_eq!(client.try_get(a, &format!("/api/thumbnail/image/{id}")).unwrap().status, 200);
}

/// An event stream opened before a pairing key was set ends when it is set: its reader
/// never gave the key and must not go on hearing what the poi does.
#[test]
fn setting_a_pairing_key_ends_the_event_streams_opened_without_it() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let mut stream = TcpStream::connect(a).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: {a}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let mut read = |text: &mut String| {
        if let Ok(n) = stream.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    wait_until("the stream is open", Duration::from_secs(5), || {
        read(&mut text);
        text.contains("\r\n\r\n")
    });
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("chunked"), "an open-ended stream is chunked: {text}");

    lab.client.post_ok(a, "/api/device/config", &json!({ "groupKey": "spin-the-fire-42" }));
    // The last chunk (size 0) says the stream is over.
    wait_until("the stream ends", Duration::from_secs(5), || {
        read(&mut text);
        text.ends_with("\r\n0\r\n\r\n")
    });
    let (code, _) = lab.client.get_json(a, "/api/events");
    assert_eq!(code, 401, "a new stream needs the key");
}
