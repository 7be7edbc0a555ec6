//! The checks of the fuzz targets on `povpoi-node`: the image upload (multipart form), the
//! pairing key's request headers and sealed bodies, and the nonce file a node reads at start.
//!
//! This file is the fuzz crate's `node_checks` module and is also compiled into
//! `crates/povpoi-node/tests/fuzz_corpus.rs`, which replays the corpora and regressions on
//! stable: it may use only `povpoi-node`, `povpoi-peer` and what the node's tests can use. How a request
//! reaches the node differs (the fuzz target calls the router in-process, the test sends
//! real HTTP); what is sent and what is checked is here.

use std::collections::HashMap;
use std::path::Path;

use povpoi_node::replay::ReplayGuard;
use povpoi_peer::auth::{
    self, AuthError, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME, MAX_CLOCK_SKEW_MS, RequestAuth, Signed, Way,
    is_nonce, sign_request_with, sign_response, verify_response,
};
use povpoi_peer::key::GroupKey;

/// The boundary of the multipart forms in the `multipart_upload` corpus.
pub const BOUNDARY: &str = "povpoiFuzzBoundary";

/// `multipart_upload`: the request made of an input. Byte 0 picks the content type (most
/// often the right one, sometimes a quoted boundary, none, or none at all); the rest is the
/// body of `POST /api/image`.
pub fn upload_request(data: &[u8]) -> (Option<String>, Vec<u8>) {
    let Some((&pick, body)) = data.split_first() else { return (None, Vec::new()) };
    let content_type = match pick % 8 {
        0..=4 => Some(format!("multipart/form-data; boundary={BOUNDARY}")),
        5 => Some(format!("multipart/form-data; boundary=\"{BOUNDARY}\"")),
        6 => Some("multipart/form-data".to_owned()),
        _ => None,
    };
    (content_type, body.to_vec())
}

/// `multipart_upload`: checks the node's answer to [`upload_request`], given the number
/// of images before and after. Every answer is JSON; a 200 added one image within the
/// display model's size; anything else is a 400 or 413 with an `error` text that left the
/// library alone (a 5xx, a panic in the handler, is a failure). Answers the new image's id,
/// for the caller to delete so the library does not grow.
pub fn check_upload_answer(status: u16, body: &[u8], images_before: usize, images_after: usize) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("upload answered {status} with non-JSON ({e}): {:?}", String::from_utf8_lossy(body))
    });
    match status {
        200 => {
            assert_eq!(value["status"], "ok", "{value}");
            let (w, h) = (value["width"].as_u64().unwrap_or(0), value["height"].as_u64().unwrap_or(0));
            assert!((1..=400).contains(&w) && (1..=64).contains(&h), "stored a {w}x{h} image: {value}");
            assert_eq!(value["size"].as_u64(), Some(3 * w * h), "{value}");
            assert_eq!(images_after, images_before + 1, "a 200 upload did not add one image: {value}");
            Some(value["id"].as_str().expect("a stored image has an id").to_owned())
        }
        400 | 413 => {
            assert!(value["error"].is_string(), "{status} without an error text: {value}");
            assert_eq!(images_after, images_before, "a refused upload ({status}: {value}) changed the library");
            None
        }
        other => panic!("upload answered {other}: {value}"),
    }
}

/// The pairing key the auth checks sign with.
pub const PAIRING_KEY: &str = "fuzz pairing key";
/// The receiver's clock in the auth checks, ms since the epoch.
pub const NOW_MS: u64 = 1_764_000_000_000;

/// A header value as the node reads it: `HeaderValue::to_str` takes visible ASCII, spaces
/// and tabs only; anything else reads as a missing header.
pub fn header(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().all(|&b| b == b'\t' || (32..127).contains(&b));
    visible.then(|| std::str::from_utf8(bytes).expect("ASCII is UTF-8"))
}

/// `auth_headers`: the input is split at newlines into `x-povpoi-time`, `x-povpoi-nonce`,
/// `x-povpoi-signature`, the method, the path, `x-povpoi-device`, `x-povpoi-port`, and the
/// body (the rest). The request is verified as `api::access` does; only a correct
/// signature passes. Then the same fields signed with the key pass once and are a replay
/// after; an altered body is refused; an answer signed for the nonce verifies; the body
/// sealed either way opens to itself, and as given opens (almost surely) to an error.
pub fn auth_headers(data: &[u8]) {
    let key = GroupKey::new(PAIRING_KEY).expect("a long enough key");
    let mut fields = data.splitn(8, |&b| b == b'\n');
    let mut text = || fields.next().and_then(header);
    let (time, nonce, signature) = (text(), text(), text());
    let method = text().unwrap_or("POST");
    let path = text().unwrap_or("/api/sync/v1");
    let (device, port) = (text().unwrap_or(""), text().unwrap_or(""));
    let body = fields.next().unwrap_or(&[]);
    let signed = Signed { method, path, body, device, port, receiver: "02:00:00:00:00:02", group: "troupe" };

    // Read as the node reads them, from the headers as they arrive.
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in [(HEADER_TIME, time), (HEADER_NONCE, nonce), (HEADER_SIGNATURE, signature)] {
        if let Some(value) = value.and_then(|v| axum::http::HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    let Ok(given) = RequestAuth::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok())) else {
        return;
    };
    match ReplayGuard::default().verify(&key, &signed, given.as_ref(), NOW_MS) {
        Ok(()) => {
            let given = given.expect("a verified request carries its headers");
            let expected = sign_request_with(&key, &signed, given.time_ms, given.nonce.clone());
            assert!(given.signature.eq_ignore_ascii_case(&expected.signature), "a wrong signature passed");
            // The middleware's early check must not refuse what the handler would take.
            let early = ReplayGuard::default().precheck(Some(&given), NOW_MS);
            assert_eq!(early, Ok(()), "precheck refuses a request that verifies");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // The same request, signed with the key.
    let nonce = nonce.unwrap_or("");
    let time_ms = time.and_then(|t| t.parse().ok()).unwrap_or(NOW_MS);
    let ours = sign_request_with(&key, &signed, time_ms, nonce.to_owned());
    let mut guard = ReplayGuard::default();
    if is_nonce(nonce) {
        assert_eq!(guard.verify(&key, &signed, Some(&ours), time_ms), Ok(()), "a signed request is refused");
        assert_eq!(guard.verify(&key, &signed, Some(&ours), time_ms), Err(AuthError::Replayed));
        if let Some(late) = time_ms.checked_add(MAX_CLOCK_SKEW_MS + 1) {
            let stale = ReplayGuard::default().verify(&key, &signed, Some(&ours), late);
            assert!(matches!(stale, Err(AuthError::Stale { .. })), "a late request is not stale: {stale:?}");
        }
    } else {
        let refused = guard.verify(&key, &signed, Some(&ours), time_ms);
        assert_eq!(refused, Err(AuthError::Malformed("nonce must be 32 hex digits")));
    }
    let altered = [body, b"!"].concat();
    let moved = Signed { body: &altered, ..signed };
    assert!(ReplayGuard::default().verify(&key, &moved, Some(&ours), time_ms).is_err(), "an altered body passed");

    // Its answer.
    let status = 200 + u16::from(body.first().copied().unwrap_or(0)) % 300;
    let _ = verify_response(&key, nonce, status, body, signature);
    let answer = sign_response(&key, nonce, status, body);
    assert_eq!(verify_response(&key, nonce, status, body, Some(&answer)), Ok(()));

    // Sealed bodies.
    for way in [Way::Request, Way::Answer] {
        if let Err(e) = auth::open(&key, way, nonce, body) {
            let _ = e.to_string();
        }
        let sealed = auth::seal(&key, way, nonce, body, &mut rand::rng());
        assert_eq!(auth::open(&key, way, nonce, &sealed).as_deref(), Ok(body), "a sealed body does not open");
    }

    // The key as a bearer token.
    if let Some(given) = signature {
        assert_eq!(key.matches(given), given == PAIRING_KEY);
    }
}

/// What a nonce file holds, per the rules of `ReplayGuard::open` at `now_ms`: each line
/// `time nonce` whose time parses and is inside the replay window, with a 32-hex-digit
/// nonce; a nonce listed twice keeps the time of its last such line.
fn live_nonces(bytes: &[u8], now_ms: u64) -> HashMap<String, u64> {
    let start = now_ms.saturating_sub(2 * MAX_CLOCK_SKEW_MS);
    let mut live = HashMap::new();
    for line in bytes.split(|&b| b == b'\n').filter_map(|l| std::str::from_utf8(l).ok()) {
        let Some((time, nonce)) = line.split_once(' ') else { continue };
        let Ok(time) = time.parse::<u64>() else { continue };
        if is_nonce(nonce) && time >= start {
            live.insert(nonce.to_owned(), time);
        }
    }
    live
}

/// The lines of a nonce file, sorted (the guard writes them in no set order).
fn sorted_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    lines.sort();
    lines
}

/// `nonce_file`: the input as the `nonces` file in `dir` that a node reads at start. It
/// opens whatever it holds; afterwards the file holds exactly the live nonces of the
/// input, one `time nonce` line each, and opens again to the same; each of them is then
/// refused as a replay, and a nonce not among them is taken.
pub fn nonce_file(data: &[u8], dir: &Path) {
    let path = dir.join("nonces");
    std::fs::write(&path, data).expect("the scratch directory is writable");
    let mut guard = ReplayGuard::open(&path, NOW_MS).expect("a node starts whatever its nonce file holds");
    let kept = std::fs::read(&path).expect("the nonce file is still there");
    let mut expected: Vec<Vec<u8>> =
        live_nonces(data, NOW_MS).iter().map(|(nonce, time)| format!("{time} {nonce}").into_bytes()).collect();
    expected.sort();
    assert_eq!(sorted_lines(&kept), expected, "the nonce file does not hold exactly the live nonces");

    let key = GroupKey::new(PAIRING_KEY).expect("a long enough key");
    let what = Signed {
        method: "POST",
        path: "/api/sync/v1",
        body: b"",
        device: "02:00:00:00:00:01",
        port: "",
        receiver: "02:00:00:00:00:02",
        group: "troupe",
    };
    let live = live_nonces(data, NOW_MS);
    for nonce in live.keys().take(4) {
        let replay = sign_request_with(&key, &what, NOW_MS, nonce.clone());
        assert_eq!(guard.verify(&key, &what, Some(&replay), NOW_MS), Err(AuthError::Replayed), "nonce {nonce}");
    }
    let fresh = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
    let took_fresh = !live.contains_key(fresh);
    if took_fresh {
        let request = sign_request_with(&key, &what, NOW_MS, fresh.to_owned());
        assert_eq!(guard.verify(&key, &what, Some(&request), NOW_MS), Ok(()), "a fresh nonce is refused");
    }
    drop(guard);

    let _ = ReplayGuard::open(&path, NOW_MS).expect("the rewritten nonce file opens");
    let mut again = sorted_lines(&std::fs::read(&path).expect("the nonce file is still there"));
    if took_fresh {
        again.retain(|line| !line.ends_with(fresh.as_bytes()));
    }
    assert_eq!(again, expected, "reopening changed the nonce file");
}

/// The JSON endpoints `legacy_api` sends bodies to: the existing system's shapes, each
/// handled by this process alone (endpoints that reach peers or rewrite the node's
/// configuration are left out). `{slot}` is filled from the input.
pub const API_ENDPOINTS: [(&str, &str); 12] = [
    ("POST", "/api/sync/push"),
    ("POST", "/api/sync/push"),
    ("POST", "/api/pattern"),
    ("PUT", "/api/patterns/{slot}"),
    ("PUT", "/api/sequences/{slot}"),
    ("POST", "/api/mode"),
    ("POST", "/api/brightness"),
    ("POST", "/api/framerate"),
    ("POST", "/api/live"),
    ("POST", "/api/sync/conflicts/resolve"),
    ("POST", "/api/sd/load"),
    ("POST", "/api/power/mode"),
];

/// `legacy_api`: the request made of an input. Byte 0 picks the endpoint from
/// [`API_ENDPOINTS`] (and, divided by their number, a slot 0-19, so slots past the last
/// are tried too); the rest is the JSON body, sent as `application/json`.
pub fn api_request(data: &[u8]) -> (&'static str, String, Vec<u8>) {
    let (pick, body) = data.split_first().map_or((0, &[][..]), |(&p, rest)| (p, rest));
    let (method, path) = API_ENDPOINTS[usize::from(pick) % API_ENDPOINTS.len()];
    let slot = usize::from(pick) / API_ENDPOINTS.len() % 20;
    (method, path.replace("{slot}", &slot.to_string()), body.to_vec())
}

/// `legacy_api`: checks the node's answer to [`api_request`], given whether the library's
/// records changed. Every answer is a JSON object; anything but a 200 is a
/// 4xx with an `error` text that left the library as it was (validation comes before any
/// edit, so a bad entry changes nothing); a 5xx or a panic in the handler is a failure.
pub fn check_api_answer(what: &str, status: u16, body: &[u8], library_changed: bool) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("{what} answered {status} with non-JSON ({e}): {:?}", String::from_utf8_lossy(body))
    });
    match status {
        200 => assert!(value.is_object(), "{what}: 200 with {value}"),
        400..=499 => {
            assert!(value["error"].is_string(), "{what}: {status} without an error text: {value}");
            assert!(!library_changed, "{what}: a refused request ({status}: {value}) changed the library");
        }
        other => panic!("{what} answered {other}: {value}"),
    }
}

/// A multipart body of one file field (and a `name` field when given), as a browser sends it.
fn form(filename: &str, file: &[u8], name: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(name) = name {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Seed inputs, as `(target, name, bytes)`: uploads of a raw, a PNG and a `.pov` picture
/// (and a bad one), requests signed with the key (and not), nonce files with live, expired
/// and torn lines, and a body of each shape [`API_ENDPOINTS`] takes. `fuzz/README.md` says
/// how they become the corpus.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let pixels: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 29 % 256) as u8).collect();
    let picture = povpoi_media::Picture::new(2, 3, pixels.clone()).expect("a picture");
    let png = picture.to_png().expect("a PNG");
    let pov = povpoi_media::pov::write_pov(&picture).expect("a .pov");
    let uploads: [(&str, u8, Vec<u8>); 5] = [
        ("raw", 0, form("image_2x3.rgb", &pixels, Some("dots"))),
        ("png", 5, form("dots.png", &png, None)),
        ("pov", 1, form("dots.pov", &pov, Some("pov"))),
        ("wrong-size", 2, form("image_9x9.rgb", &pixels, None)),
        ("no-type", 7, form("image_2x3.rgb", &pixels, None)),
    ];
    for (name, pick, body) in uploads {
        out.push(("multipart_upload", name.to_owned(), [&[pick][..], &body].concat()));
    }

    let key = GroupKey::new(PAIRING_KEY).expect("a long enough key");
    let body = b"\x00\x02\x02ab";
    let (device, port) = ("02:00:00:00:00:01", "8080");
    let signed = Signed {
        method: "POST",
        path: "/api/sync/v1",
        body,
        device,
        port,
        receiver: "02:00:00:00:00:02",
        group: "troupe",
    };
    let auth = sign_request_with(&key, &signed, NOW_MS, "0123456789abcdef0123456789abcdef".to_owned());
    let fields = |time: &str, nonce: &str, signature: &str| {
        [format!("{time}\n{nonce}\n{signature}\nPOST\n/api/sync/v1\n{device}\n{port}\n").as_bytes(), body].concat()
    };
    out.push(("auth_headers", "signed".to_owned(), fields(&NOW_MS.to_string(), &auth.nonce, &auth.signature)));
    out.push(("auth_headers", "unsigned".to_owned(), fields("", "", "")));
    out.push(("auth_headers", "bearer".to_owned(), fields("x", "0123", PAIRING_KEY)));

    let live = NOW_MS - 1_000;
    let expired = NOW_MS - 3 * MAX_CLOCK_SKEW_MS;
    let nonces = [
        ("live", format!("{live} 0123456789abcdef0123456789abcdef\n{live} 00112233445566778899aabbccddeeff\n")),
        ("expired", format!("{expired} 0123456789abcdef0123456789abcdef\n{live} ffeeddccbbaa99887766554433221100\n")),
        ("torn", format!("{live} 0123456789abcdef0123456789abcdef\n{live} 0011223344")),
    ];
    for (name, text) in nonces {
        out.push(("nonce_file", name.to_owned(), text.into_bytes()));
    }

    let bodies: [(u8, &str, &str); 12] = [
        (
            0,
            "push",
            r#"{"patterns":[{"id":3,"type":5,"timestamp":0,"color1":{"r":1,"g":2,"b":3},"speed":40}],"settings":{"brightness":90,"framerate":100,"mode":2,"index":3,"timestamp":0},"images":[{"id":"1-2","name":"x"}]}"#,
        ),
        (1, "push-settings", r#"{"deviceId":"02:00:00:00:00:01","settings":{"mode":9}}"#),
        (2, "pattern", r#"{"index":2,"type":4,"color1":{"r":255,"g":0,"b":0},"speed":30}"#),
        (3 + 12 * 2, "put-pattern", r#"{"type":1,"color2":{"r":0,"g":0,"b":255}}"#),
        (
            4 + 12,
            "put-sequence",
            r#"{"items":[{"pattern":2,"durationMs":500},{"image":"1-2","durationMs":9}],"looped":true}"#,
        ),
        (5, "mode", r#"{"mode":2,"index":2}"#),
        (6, "brightness", r#"{"brightness":128}"#),
        (7, "framerate", r#"{"framerate":60}"#),
        (8, "live", r#"{"pixels":[{"r":1,"g":2,"b":3},{"r":4,"g":5,"b":6}]}"#),
        (9, "resolve", r#"{"item":"pattern:2","keep":"1:1"}"#),
        (10, "sd-load", r#"{"filename":"image_2x3.rgb"}"#),
        (11, "power", r#"{"mode":"balanced"}"#),
    ];
    for (pick, name, json) in bodies {
        out.push(("legacy_api", name.to_owned(), [&[pick][..], json.as_bytes()].concat()));
    }
    out
}
