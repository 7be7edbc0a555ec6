//! Real `povpoi node` processes in private network namespaces, finding each other with real
//! mDNS (no `--peer`), syncing over real HTTP across a bridge: the spec's quick start,
//! push-on-change, a partition that heals, a relay through a middle poi, a SIGKILL in the
//! middle of a transfer, and the pairing key; and the board firmware's mDNS browsing
//! (`firmware/src/mdns/records.rs`, compiled here) against a node's mDNS library.
//!
//! Needs root (CAP_NET_ADMIN) and iproute2; otherwise each test fails, unless
//! `POVPOI_SKIP_NETNS=1` is set, when it prints a skip notice. No packet leaves the
//! namespaces the tests create, and they are deleted afterwards, even when a test fails.

#[macro_use]
mod support;

extern crate alloc;

#[path = "../../../firmware/src/mdns/records.rs"]
#[allow(dead_code)]
mod board_mdns;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_mdns::HostQuestions;
use povpoi_app::peers::Sighting;
use povpoi_core::sync::PROTOCOL_VERSION;

use serde_json::{Value, json};
use support::*;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn has_keys(v: &Value, want: &[&str]) {
    for key in want {
        assert!(v.get(*key).is_some(), "field {key} missing in {v}");
    }
}

/// `POST /api/sync/discover` until the answer lists `peer_id`; returns that entry.
fn discover_until(lab: &Lab, on: SocketAddr, peer_id: &str, timeout: Duration) -> Value {
    wait_for(&format!("discover on {on} finds {peer_id}"), timeout, || {
        let (status, answer) = lab.client.post_empty(on, "/api/sync/discover");
        assert_eq!(status, 200, "discover: {answer}");
        assert_eq!(answer["status"], json!("ok"), "{answer}");
        let peers = answer["peers"].as_array().expect("peers list").clone();
        assert_eq!(answer["peersFound"].as_u64(), Some(peers.len() as u64), "peersFound != peers: {answer}");
        peers.into_iter().find(|p| p["deviceId"] == json!(peer_id))
    })
}

#[test]
fn quick_start_discover_status_execute() {
    let started = Instant::now();
    let mut lab = lab_or_skip!(1, &[&[0], &[0]]);
    // As a user starts them: no name, no group, no peers.
    for i in 0..2 {
        let spec = NodeSpec { named: false, group: None, ..lab.spec(i) };
        lab.start_with(i, spec);
    }
    let (a, b) = (lab.addrs[0], lab.addrs[1]);
    let c = &lab.client;

    // Identity: the MAC of the interface it listens on, the spec's default name and config.
    let config = c.get_ok(a, "/api/device/config");
    has_keys(&config, &["deviceId", "deviceName", "syncGroup", "autoSync", "syncInterval"]);
    let a_id = config["deviceId"].as_str().unwrap().to_string();
    assert_eq!(a_id, lab.net().mac(0), "deviceId is not the MAC of the poi's interface");
    assert_eq!(config["deviceName"], json!(format!("POV Poi {}", &a_id[a_id.len() - 5..])));
    assert_eq!((&config["syncGroup"], &config["syncInterval"]), (&json!("default"), &json!(30000)));
    let b_id = device_id(c, b);
    assert_eq!(b_id, lab.net().mac(1));

    // Quick start: name each poi and put both in one group.
    for (addr, name) in [(a, "Left poi"), (b, "Right \"poi\"")] {
        let answer = c.post_ok(
            addr,
            "/api/device/config",
            &json!({"deviceName": name, "syncGroup": lab.group, "autoSync": false}),
        );
        assert_eq!(answer["status"], json!("ok"), "{answer}");
        assert!(answer["message"].is_string(), "{answer}");
        let config = c.get_ok(addr, "/api/device/config");
        assert_eq!((&config["deviceName"], &config["syncGroup"]), (&json!(name), &json!(lab.group)));
        assert_eq!(config["autoSync"], json!(false));
    }

    let t = Instant::now();
    let found = discover_until(&lab, a, &b_id, Duration::from_secs(20));
    assert_eq!(found["deviceName"], json!("Right \"poi\""), "the new name is not what A discovered: {found}");
    assert_eq!(found["ipAddress"], json!(b.ip().to_string()), "{found}");
    let found = discover_until(&lab, b, &a_id, Duration::from_secs(20));
    assert_eq!((&found["deviceName"], &found["ipAddress"]), (&json!("Left poi"), &json!(a.ip().to_string())));
    note("both discovered each other", t.elapsed());

    let status = c.get_ok(a, "/api/sync/status");
    has_keys(&status, &["deviceId", "deviceName", "syncGroup", "autoSync", "syncInterval", "peers"]);
    assert_eq!(status["deviceId"], json!(a_id));
    assert_eq!(status["deviceName"], json!("Left poi"));
    assert_eq!(status["syncGroup"], json!(lab.group));
    assert_eq!((&status["autoSync"], &status["syncInterval"]), (&json!(false), &json!(30000)));
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "A lists other than B: {status}");
    let peer = &peers[0];
    has_keys(peer, &["deviceId", "deviceName", "ipAddress", "lastSeen", "online"]);
    assert_eq!(peer["deviceId"], json!(b_id));
    assert_eq!(peer["deviceName"], json!("Right \"poi\""));
    assert_eq!(peer["ipAddress"], json!(b.ip().to_string()));
    assert_eq!(peer["online"], json!(true));
    let last_seen = peer["lastSeen"].as_u64().expect("lastSeen is an integer");
    assert!(last_seen <= now_ms() + 1000 && last_seen + 60_000 > now_ms(), "lastSeen {last_seen} is not recent ms");

    // A change on A, pulled by B's execute: counted, and on B after.
    c.post_ok(a, "/api/pattern", &json!({"index": 4, "type": 10, "speed": 33}));
    c.post_ok(a, "/api/brightness", &json!({"brightness": 99}));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pattern_type(&library(c, b), 4), None, "autoSync is off, yet the pattern moved");
    let (code, answer) = c.post_json(b, "/api/sync/execute", &json!({"peerId": "auto"}));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], json!("ok"), "{answer}");
    assert_eq!(answer["imagesAdded"], json!(0), "{answer}");
    assert_eq!(answer["patternsAdded"], json!(1), "{answer}");
    assert_eq!(answer["settingsUpdated"], json!(1), "{answer}");
    assert!(answer["itemsSynced"].as_u64().is_some_and(|n| n >= 2), "{answer}");
    let on_b = library(c, b);
    assert_eq!(pattern_type(&on_b, 4), Some(10));
    assert_eq!(on_b["settings"]["brightness"], json!(99));
    assert_eq!(c.get_ok(b, "/api/patterns/4")["speed"], json!(33));
    assert_eq!(library(c, a), on_b);
    let (code, answer) = c.post_json(a, "/api/sync/execute", &json!({}));
    assert_eq!(code, 200, "{answer}");
    assert_eq!((&answer["status"], &answer["itemsSynced"]), (&json!("ok"), &json!(0)), "{answer}");
    note("test", started.elapsed());
}

#[test]
fn image_uploaded_on_a_reaches_b_without_execute() {
    let started = Instant::now();
    let mut lab = lab_or_skip!(1, &[&[0], &[0]]);
    let a = lab.start(0);
    let b = lab.start(1);
    note("met over mDNS", lab.wait_meet(&[(0, 1)], Duration::from_secs(20)));
    let c = &lab.client;
    let px = pixels(7, 40, 32);
    let id = c.upload_ok(a, None, 40, 32, &px);
    let took = wait_until("B lists the image with identical pixels", Duration::from_secs(5), || {
        image(c, b, &id).is_some() && has_pixels(c, b, &id, &px)
    });
    note("image on B, no execute", took);
    let (on_a, on_b) = (image(c, a, &id).unwrap(), image(c, b, &id).unwrap());
    assert_eq!((on_b["width"].as_u64(), on_b["height"].as_u64()), (Some(40), Some(32)));
    assert_eq!((&on_a["name"], &on_a["timestamp"]), (&on_b["name"], &on_b["timestamp"]));

    // And back: a second upload on B reaches A the same way, after the peers have been
    // quiet for longer than the peer timeout.
    std::thread::sleep(Duration::from_secs(PEER_TIMEOUT_S + 3));
    let px2 = pixels(8, 12, 32);
    let id2 = c.upload_ok(b, None, 12, 32, &px2);
    let took =
        wait_until("A lists B's image with identical pixels", Duration::from_secs(5), || has_pixels(c, a, &id2, &px2));
    note("second image on A after a quiet spell", took);
    note("test", started.elapsed());
}

#[test]
fn partition_then_heal_converges_with_nothing_lost() {
    let started = Instant::now();
    let mut lab = lab_or_skip!(1, &[&[0], &[0]]);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(20));
    let c = &lab.client;
    let px1 = pixels(31, 40, 32);
    let id1 = c.upload_ok(a, Some("shared"), 40, 32, &px1);
    wait_until("B has the first image", Duration::from_secs(10), || has_pixels(c, b, &id1, &px1));

    lab.net().partition(1);
    // Both sides edit while apart.
    let (code, renamed) =
        c.send_json(reqwest::Method::PATCH, a, &format!("/api/images/{id1}"), &json!({"name": "renamed on A"}));
    assert_eq!(code, 200, "{renamed}");
    c.post_ok(a, "/api/brightness", &json!({"brightness": 10}));
    let px2 = pixels(32, 25, 32);
    let id2 = c.upload_ok(b, Some("made on B"), 25, 32, &px2);
    c.post_ok(b, "/api/pattern", &json!({"index": 6, "type": 4, "color2": {"r": 9, "g": 8, "b": 7}}));
    c.post_ok(b, "/api/brightness", &json!({"brightness": 20}));
    // Longer than the peer timeout: each side sees the other go offline.
    let b_id = device_id(c, b);
    wait_until("A marks B offline", Duration::from_secs(PEER_TIMEOUT_S + 5), || {
        status(c, a)["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["deviceId"] == json!(b_id) && p["online"] == json!(false))
    });
    assert_eq!(image(c, b, &id1).unwrap()["name"], json!("shared"), "the partition leaked the rename");
    assert!(image(c, a, &id2).is_none(), "the partition leaked B's upload");

    lab.net().rejoin(1);
    let took = lab.wait_converged(&[0, 1], Duration::from_secs(40));
    note("converged after the heal", took);
    let (la, lb) = (library(c, a), library(c, b));
    assert_eq!(la, lb);
    for (addr, who) in [(a, "A"), (b, "B")] {
        assert_eq!(images(c, addr).len(), 2, "{who}");
        assert_eq!(image(c, addr, &id1).unwrap()["name"], json!("renamed on A"), "{who}");
        assert_eq!(image(c, addr, &id2).unwrap()["name"], json!("made on B"), "{who}");
        assert!(has_pixels(c, addr, &id1, &px1) && has_pixels(c, addr, &id2, &px2), "{who} lacks pixels");
        let p6 = c.get_ok(addr, "/api/patterns/6");
        assert_eq!((&p6["type"], &p6["color2"]), (&json!(4), &json!({"r": 9, "g": 8, "b": 7})), "{who}");
    }
    let brightness = la["settings"]["brightness"].clone();
    assert!(brightness == json!(10) || brightness == json!(20), "brightness {brightness} is neither edit");
    lab.stop(0);
    lab.stop(1);
    note("test", started.elapsed());
}

#[test]
fn a_change_relays_through_the_middle_poi() {
    let started = Instant::now();
    // A on bridge 0, C on bridge 1, B on both: A and C cannot hear each other.
    let mut lab = lab_or_skip!(2, &[&[0], &[0, 1], &[1]]);
    let a = lab.start(0);
    let middle = NodeSpec { listen: SocketAddr::from(([0, 0, 0, 0], NETNS_PORT)), ..lab.spec(1) };
    lab.start_with(1, middle);
    let cc = lab.start(2);
    note("A-B and B-C met", lab.wait_meet(&[(0, 1), (1, 2)], Duration::from_secs(20)));
    let c = &lab.client;
    let (a_id, c_id) = (device_id(c, a), device_id(c, cc));

    let px = pixels(41, 33, 32);
    let id = c.upload_ok(a, Some("from A"), 33, 32, &px);
    note("A's image on C", wait_until("C has A's image", Duration::from_secs(10), || has_pixels(c, cc, &id, &px)));
    c.post_ok(cc, "/api/pattern", &json!({"index": 11, "type": 16}));
    note(
        "C's pattern on A",
        wait_until("A has C's pattern", Duration::from_secs(10), || pattern_type(&library(c, a), 11) == Some(16)),
    );
    lab.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    // They really never met.
    for (on, other) in [(a, &c_id), (cc, &a_id)] {
        let peers = status(c, on)["peers"].clone();
        assert!(
            !peers.as_array().unwrap().iter().any(|p| p["deviceId"] == json!(other)),
            "{on} knows {other}: {peers}"
        );
    }
    // SIGTERM with mDNS running: every node stops cleanly and promptly.
    for i in 0..3 {
        lab.stop(i);
    }
    note("test", started.elapsed());
}

#[test]
fn a_poi_killed_mid_transfer_recovers_and_converges() {
    let started = Instant::now();
    let mut lab = lab_or_skip!(1, &[&[0], &[0]]);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(20));
    let c = &lab.client;
    let b_id = device_id(c, b);

    // 6 images of 400x64 (75 KiB each) through a 4 Mbit/s link to B: about a second of transfer.
    lab.net().throttle(1, "4mbit");
    let mut uploaded = Vec::new();
    for n in 0..6u32 {
        let px = pixels(100 + n, 400, 64);
        uploaded.push((c.upload_ok(a, Some(&format!("big {n}")), 400, 64, &px), px));
    }
    // Kill B as soon as it has started taking them in, before it has them all.
    let (listed, available) = wait_for("B has begun receiving", Duration::from_secs(10), || {
        let listed = images(c, b);
        let available = listed.iter().filter(|i| i["available"] == json!(true)).count();
        (!listed.is_empty() || available > 0).then_some((listed.len(), available))
    });
    lab.kill_hard(1);
    println!("  B killed mid-transfer: {listed} of 6 images listed, {available} with their pixels");
    assert!(available < 6, "the transfer was over before the kill: the test proves nothing");
    let c = &lab.client;
    // A goes on while B is down.
    for n in 6..8u32 {
        let px = pixels(100 + n, 400, 64);
        uploaded.push((c.upload_ok(a, Some(&format!("big {n}")), 400, 64, &px), px));
    }
    lab.net().unthrottle(1);

    lab.restart(1);
    let c = &lab.client;
    assert_eq!(device_id(c, b), b_id, "B's identity changed across the crash");
    let took = wait_until("B holds all 8 images with their pixels", Duration::from_secs(40), || {
        uploaded.iter().all(|(id, px)| has_pixels(c, b, id, px))
    });
    note("B complete after restart", took);
    lab.wait_converged(&[0, 1], Duration::from_secs(10));
    assert_eq!(images(c, b).len(), 8);
    assert_eq!(library(c, a), library(c, b));
    note("test", started.elapsed());
}

#[test]
fn pairing_key_keeps_outsiders_out() {
    let started = Instant::now();
    const KEY: &str = "correct horse battery staple";
    const WRONG: &str = "incorrect mule battery";
    // A and B share the key, C has a wrong one, D none; all in one group on one bridge.
    let mut lab = lab_or_skip!(1, &[&[0], &[0], &[0], &[0]]);
    for i in 0..4 {
        lab.start(i);
    }
    let [a, b, cc, d] = [lab.addrs[0], lab.addrs[1], lab.addrs[2], lab.addrs[3]];
    let c = &lab.client;
    for (addr, key) in [(a, KEY), (b, KEY), (cc, WRONG)] {
        c.post_ok(addr, "/api/device/config", &json!({"groupKey": key}));
        // Once set, the key guards the API too; the test holds each poi's key.
        let (code, answer) = c.get_json(addr, "/api/images");
        assert_eq!(code, 401, "content readable without the key: {answer}");
        c.set_key(addr, Some(key));
    }
    for (addr, protected) in [(a, true), (b, true), (cc, true), (d, false)] {
        let raw = c.try_get(addr, "/api/device/config").unwrap();
        let text = String::from_utf8_lossy(&raw.body).into_owned();
        assert!(!text.contains("horse") && !text.contains("mule"), "the key shows in the config: {text}");
        assert!(!text.contains("groupKey"), "{text}");
        let status = c.get_ok(addr, "/api/sync/status");
        assert_eq!(status["protected"], json!(protected), "{status}");
        assert!(!status.to_string().contains("horse"), "{status}");
    }
    // A key cannot be changed or removed without the current one.
    for body in [
        json!({"groupKey": "another long key"}),
        json!({"groupKey": null}),
        json!({"groupKey": "x".repeat(9), "currentGroupKey": WRONG}),
    ] {
        let (code, answer) = c.post_json(a, "/api/device/config", &body);
        assert_eq!(code, 403, "{body} -> {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let a_id = device_id(c, a);

    // The pair with the key syncs.
    lab.wait_meet(&[(0, 1)], Duration::from_secs(20));
    let px = pixels(51, 40, 32);
    let id = c.upload_ok(a, Some("secret show"), 40, 32, &px);
    note("keyed image on B", wait_until("B has A's image", Duration::from_secs(10), || has_pixels(c, b, &id, &px)));
    let ok = c.post_ok(b, "/api/sync/execute", &json!({"peerId": a_id}));
    assert_eq!(ok["status"], json!("ok"), "{ok}");

    // The outsiders see A on mDNS, but cannot sync with it, either way.
    let px_c = pixels(52, 10, 32);
    let px_d = pixels(53, 11, 32);
    let id_c = c.upload_ok(cc, Some("from C"), 10, 32, &px_c);
    let id_d = c.upload_ok(d, Some("from D"), 11, 32, &px_d);
    for (outsider, who) in [(cc, "C (wrong key)"), (d, "D (no key)")] {
        // It hears A on mDNS (listed, online or not: a refused session marks it offline).
        wait_until(&format!("{who} lists A"), Duration::from_secs(20), || {
            status(c, outsider)["peers"].as_array().unwrap().iter().any(|p| p["deviceId"] == json!(a_id))
        });
        let (code, answer) = c.post_json(outsider, "/api/sync/execute", &json!({"peerId": a_id}));
        assert_eq!(code, 502, "{who} execute toward A: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains("403")), "{who}: {answer}");
        let (code, answer) =
            c.post_json(outsider, "/api/sync/execute", &json!({"peerId": b.to_string(), "direction": "pull"}));
        assert_eq!(code, 502, "{who} pull from B: {answer}");
    }
    // Long enough for every auto-sync attempt in either direction to have happened.
    std::thread::sleep(Duration::from_secs(3));
    for (addr, who) in [(cc, "C"), (d, "D")] {
        assert!(image(c, addr, &id).is_none(), "{who} got the keyed group's image");
    }
    for (addr, who) in [(a, "A"), (b, "B")] {
        assert!(
            image(c, addr, &id_c).is_none() && image(c, addr, &id_d).is_none(),
            "an outsider's image reached {who}"
        );
    }
    assert!(has_pixels(c, cc, &id_c, &px_c) && has_pixels(c, d, &id_d, &px_d));

    // The peer endpoints refuse unsigned requests (and the rest wants the key).
    let digest_before = digest(c, a).unwrap();
    let hash = image(c, a, &id).unwrap()["pixels"].as_str().unwrap().to_string();
    c.set_key(a, None);
    let (code, answer) = c.get_json(a, "/api/sync/data");
    assert_eq!(code, 403, "{answer}");
    assert!(answer["error"].is_string(), "403 without a JSON error: {answer}");
    let (code, body) = c.get_bytes(a, &format!("/api/blobs/{hash}"));
    assert_eq!(code, 403, "blob served unsigned ({} bytes)", body.len());
    let (code, body) = c.get_bytes(a, &format!("/api/images/{id}/pixels"));
    assert_eq!(code, 401, "pixels served without the key ({} bytes)", body.len());
    let (code, body) = c.get_bytes(a, &format!("/api/blobs/{hash}"));
    assert_eq!(code, 403, "blob served unsigned ({} bytes)", body.len());
    assert!(body != px, "the pixels were served unsigned");
    let r = c.try_post(a, "/api/sync/v1", "application/octet-stream", vec![1, 2, 3]).unwrap();
    assert_eq!(r.status, 403);
    let push = json!({
        "images": [{"id": id, "name": "hijacked", "timestamp": 0}],
        "patterns": [{"id": 2, "type": 4, "timestamp": 0}],
        "settings": {"brightness": 3, "timestamp": 0},
    });
    let (code, answer) = c.post_json(a, "/api/sync/push", &push);
    assert_eq!(code, 403, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    let (code, answer) = c.post_json(a, "/api/brightness", &json!({"brightness": 3}));
    assert_eq!(code, 401, "{answer}");
    c.set_key(a, Some(KEY));
    assert_eq!(digest(c, a).unwrap(), digest_before, "A's library changed after a refused push");
    assert_eq!(image(c, a, &id).unwrap()["name"], json!("secret show"));
    assert_ne!(c.get_ok(a, "/api/status")["brightness"], json!(3));
    assert_eq!(c.get_json(a, "/api/patterns/2").0, 404);
    // D has no key: its own peer endpoints stay open.
    assert_eq!(c.get_json(d, "/api/sync/data").0, 200);
    note("test", started.elapsed());
}

/// The mDNS group and port.
const MDNS: (Ipv4Addr, u16) = (Ipv4Addr::new(224, 0, 0, 251), 5353);

/// A board's browsing against a real node: the board's PTR query, sent from a namespace on
/// the node's bridge where no node runs, gets the answer of the node's mDNS library
/// (mdns-sd), and the board's reader takes it as that poi, at its address and port.
#[test]
fn a_boards_mdns_query_finds_a_node_and_reads_it_as_that_peer() {
    let started = Instant::now();
    let mut lab = lab_or_skip!(1, &[&[0], &[0]]);
    let node = lab.start(0);
    let c = &lab.client;
    let config = c.get_ok(node, "/api/device/config");
    let (ns, ip) = (lab.net().nodes[1].ns.clone(), lab.net().nodes[1].ips[0]);
    let asker = std::thread::spawn(move || browse_from(&ns, ip, Duration::from_secs(20)));
    let heard = asker.join().expect("the browsing thread").unwrap_or_else(|e| panic!("{e}"));
    let id = config["deviceId"].as_str().unwrap();
    let peer = heard
        .iter()
        .find(|s| s.device_id.to_string() == id)
        .unwrap_or_else(|| panic!("the node {id} is not among {heard:?}"));
    assert_eq!(peer.addr, node, "{peer:?}");
    assert_eq!(
        (peer.device_name.as_str(), peer.sync_group.as_str(), peer.protocol),
        (config["deviceName"].as_str().unwrap(), config["syncGroup"].as_str().unwrap(), PROTOCOL_VERSION),
        "{peer:?}"
    );
    assert_eq!(peer.digest, c.get_ok(node, "/api/sync/status")["libraryDigest"].as_str().unwrap(), "{peer:?}");
    note("test", started.elapsed());
}

/// In the namespace `ns`, on its address `ip`: sends the board's query each second and
/// reads every mDNS packet with the board's reader until one describes a poi, for at most
/// `within`.
fn browse_from(ns: &str, ip: Ipv4Addr, within: Duration) -> Result<Vec<Sighting>, String> {
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, MDNS.1)).map_err(|e| format!("bind 5353: {e}"))?;
    socket.join_multicast_v4(&MDNS.0, &ip).map_err(|e| format!("join {}: {e}", MDNS.0))?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + within;
    let (mut query, mut packet) = ([0u8; 512], [0u8; 9000]);
    let mut sent = 0;
    while Instant::now() < deadline {
        let len = board_mdns::Browse.query(sent, &mut query).map_err(|e| format!("query: {e:?}"))?;
        socket.send_to(&query[..len], MDNS).map_err(|e| format!("send the query: {e}"))?;
        sent += 1;
        let second = Instant::now() + Duration::from_secs(1);
        while Instant::now() < second {
            let Ok((len, _)) = socket.recv_from(&mut packet) else { continue };
            match board_mdns::read_services(&packet[..len]) {
                Ok(heard) if !heard.is_empty() => {
                    println!("  a poi heard after {sent} queries, in a {len}-byte packet");
                    return Ok(heard);
                }
                _ => {}
            }
        }
    }
    Err(format!("no mDNS answer described a poi within {within:?} ({sent} queries sent)"))
}
