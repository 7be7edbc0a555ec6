//! What the performer's web UI builds on, with real `povpoi node` processes on 127.0.0.1:
//! image selections that stay on their image, readable conflicts settled by keeping both
//! versions, the group view, and `povpoi sim` stopping its poi on SIGTERM.

#[macro_use]
mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

fn is_error(answer: &(u16, Value), status: u16) -> bool {
    answer.0 == status && answer.1["error"].as_str().is_some_and(|e| !e.is_empty())
}

/// `mode`, `index` and `imageId` of `/api/status`.
fn playing(c: &Client, addr: SocketAddr) -> (Value, Value, Value) {
    let s = c.get_ok(addr, "/api/status");
    (s["mode"].clone(), s["index"].clone(), s["imageId"].clone())
}

#[test]
fn the_selected_image_keeps_playing_when_an_earlier_one_is_deleted() {
    let mut lab = Lab::loopback(1);
    let a = lab.start(0);
    let c = &lab.client;
    let first = c.upload_ok(a, Some("first"), 4, 2, &pixels(1, 4, 2));
    let second = c.upload_ok(a, Some("second"), 4, 2, &pixels(2, 4, 2));
    let third = c.upload_ok(a, Some("third"), 4, 2, &pixels(3, 4, 2));

    let answer = c.post_ok(a, "/api/mode", &json!({"mode": 1, "index": 1}));
    assert_eq!((&answer["mode"], &answer["index"], &answer["imageId"]), (&json!(1), &json!(1), &json!(second)));
    let (status, _) = c.send_json(reqwest::Method::DELETE, a, &format!("/api/images/{first}"), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(playing(c, a), (json!(1), json!(0), json!(second)), "the same image, one place down");

    // By id, as /api/images shows it.
    let answer = c.post_ok(a, "/api/mode", &json!({"mode": 1, "id": third}));
    assert_eq!((&answer["index"], &answer["imageId"]), (&json!(1), &json!(third)));
    assert_eq!(playing(c, a), (json!(1), json!(1), json!(third)));

    // Wrong asks are refused with a reason and change nothing.
    let digest_before = digest(c, a);
    for bad in [
        json!({"mode": 1, "id": first}),
        json!({"mode": 1, "id": "not an id"}),
        json!({"mode": 1, "id": 7}),
        json!({"mode": 1, "index": 2}),
        json!({"mode": 1, "index": 0, "id": third}),
        json!({"mode": 2, "id": third}),
    ] {
        let answer = c.post_json(a, "/api/mode", &bad);
        assert!(is_error(&answer, 400), "{bad} answered {answer:?}");
    }
    assert_eq!(digest(c, a), digest_before);
    assert_eq!(playing(c, a), (json!(1), json!(1), json!(third)));

    // The image playing deleted: dark, not whichever image took its place.
    let (status, _) = c.send_json(reqwest::Method::DELETE, a, &format!("/api/images/{third}"), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(playing(c, a), (json!(0), json!(0), Value::Null));

    // Not an image: imageId is null.
    c.post_ok(a, "/api/pattern", &json!({"index": 3, "type": 2}));
    let answer = c.post_ok(a, "/api/mode", &json!({"mode": 2, "index": 3}));
    assert_eq!((&answer["mode"], &answer["index"], &answer["imageId"]), (&json!(2), &json!(3), &Value::Null));
}

/// The item of `/api/sync/conflicts` on `addr` named `item`.
fn conflict(c: &Client, addr: SocketAddr, item: &str) -> Option<Value> {
    let list = c.get_ok(addr, "/api/sync/conflicts");
    list["conflicts"].as_array()?.iter().find(|x| x["item"] == json!(item)).cloned()
}

/// The versions of a conflict: (shown, the others).
fn versions(conflict: &Value) -> (Value, Vec<Value>) {
    let all = conflict["versions"].as_array().expect("versions").clone();
    let (shown, others): (Vec<Value>, Vec<Value>) = all.into_iter().partition(|v| v["shown"] == json!(true));
    assert_eq!(shown.len(), 1, "one version shown: {conflict}");
    (shown[0].clone(), others)
}

#[test]
fn conflicts_made_apart_are_listed_as_json_and_kept_both() {
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    let c = &lab.client;
    let px = pixels(5, 6, 4);
    let id = c.upload_ok(a, Some("shared"), 6, 4, &px);
    // Every sequence slot filled, so a sequence conflict has nowhere to put its other version.
    for slot in 0..5 {
        let body = json!({"items": [{"pattern": 0, "durationMs": 100 + slot}]});
        let (status, answer) = c.send_json(reqwest::Method::PUT, a, &format!("/api/sequences/{slot}"), &body);
        assert_eq!(status, 200, "{answer}");
    }
    lab.wait_converged(&[0, 1], Duration::from_secs(15));
    assert!(has_pixels(c, b, &id, &px));

    // Apart: both edit the same image, pattern slot and sequence slot.
    for addr in [a, b] {
        c.post_ok(addr, "/api/device/config", &json!({"autoSync": false}));
    }
    let put = |addr, path: &str, body: Value| {
        let (status, answer) = c.send_json(reqwest::Method::PUT, addr, path, &body);
        assert_eq!(status, 200, "PUT {path}: {answer}");
    };
    let rename = |addr, name: &str| {
        let (status, answer) =
            c.send_json(reqwest::Method::PATCH, addr, &format!("/api/images/{id}"), &json!({"name": name}));
        assert_eq!(status, 200, "rename: {answer}");
    };
    rename(a, "from a");
    put(a, "/api/patterns/0", json!({"type": 1, "speed": 10}));
    put(a, "/api/sequences/0", json!({"items": [{"pattern": 1, "durationMs": 500}]}));
    rename(b, "from b");
    put(b, "/api/patterns/0", json!({"type": 2, "speed": 20}));
    put(b, "/api/sequences/0", json!({"items": [{"pattern": 2, "durationMs": 600}]}));
    c.post_ok(b, "/api/sync/execute", &json!({"peerId": a.to_string()}));

    // The image conflict, readable.
    let image = conflict(c, a, &format!("image {id}")).expect("image conflict on A");
    assert_eq!((&image["kind"], &image["id"]), (&json!("image"), &json!(id)));
    let (shown, others) = versions(&image);
    assert_eq!(others.len(), 1);
    let mut names = vec![shown["value"]["name"].clone(), others[0]["value"]["name"].clone()];
    names.sort_by_key(|n| n.to_string());
    assert_eq!(names, [json!("from a"), json!("from b")]);
    for v in [&shown, &others[0]] {
        assert_eq!(v["deleted"], json!(false));
        assert!(v["timestamp"].as_u64().is_some() && v["version"].as_str().is_some(), "{v}");
        assert_eq!(
            (&v["value"]["id"], &v["value"]["width"], &v["value"]["height"]),
            (&json!(id), &json!(6), &json!(4))
        );
    }

    // The pattern conflict: values as GET /api/patterns/{slot} gives them.
    let pattern = conflict(c, a, "pattern slot 0").expect("pattern conflict on A");
    assert_eq!((&pattern["kind"], &pattern["slot"]), (&json!("pattern"), &json!(0)));
    let (shown_pattern, other_patterns) = versions(&pattern);
    assert_eq!(shown_pattern["value"], c.get_ok(a, "/api/patterns/0"));
    let other_pattern = other_patterns[0]["value"].clone();
    assert!(other_pattern["speed"].as_u64().is_some_and(|s| s == 10 || s == 20), "{other_pattern}");

    // Keeping both: the other pattern goes to the first empty slot (1).
    let answer = c.post_ok(a, "/api/sync/conflicts/resolve", &json!({"item": "pattern slot 0", "keepBoth": true}));
    assert_eq!(answer["added"], json!([{"kind": "pattern", "slot": 1}]));
    assert_eq!(c.get_ok(a, "/api/patterns/0"), shown_pattern["value"]);
    let mut moved = other_pattern.clone();
    moved["index"] = json!(1);
    assert_eq!(c.get_ok(a, "/api/patterns/1"), moved);
    assert!(conflict(c, a, "pattern slot 0").is_none());

    // Keeping both images: a new image with the same pixels, the name marked.
    let answer = c.post_ok(a, "/api/sync/conflicts/resolve", &json!({"item": format!("image {id}"), "keepBoth": true}));
    let copy_id = answer["added"][0]["id"].as_str().expect("new image id").to_string();
    assert_eq!(answer["added"][0]["kind"], json!("image"));
    assert_eq!(image_name(c, a, &id), shown["value"]["name"]);
    assert_eq!(image_name(c, a, &copy_id), json!(format!("{} (2)", others[0]["value"]["name"].as_str().unwrap())));
    assert!(has_pixels(c, a, &copy_id, &px));

    // No empty sequence slot: 409 with a reason, and nothing changes.
    let sequence = conflict(c, a, "sequence slot 0").expect("sequence conflict on A");
    assert_eq!((&sequence["kind"], &sequence["slot"]), (&json!("sequence"), &json!(0)));
    assert_eq!(versions(&sequence).0["value"], c.get_ok(a, "/api/sequences/0"));
    let before = (digest(c, a), library(c, a));
    let answer = c.post_json(a, "/api/sync/conflicts/resolve", &json!({"item": "sequence slot 0", "keepBoth": true}));
    assert!(is_error(&answer, 409), "{answer:?}");
    assert!(answer.1["error"].as_str().unwrap().contains("slot"), "{answer:?}");
    assert_eq!((digest(c, a), library(c, a)), before);
    assert_eq!(conflict(c, a, "sequence slot 0"), Some(sequence));

    // Asks that name nothing to do are refused.
    for bad in [json!({"item": "sequence slot 0"}), json!({"item": "sequence slot 0", "keepBoth": true, "keep": "1:1"})]
    {
        assert!(is_error(&c.post_json(a, "/api/sync/conflicts/resolve", &bad), 400), "{bad}");
    }
    assert!(is_error(
        &c.post_json(a, "/api/sync/conflicts/resolve", &json!({"item": "pattern slot 0", "keepBoth": true})),
        404
    ));

    // The settlement reaches B: same library, no image or pattern conflict left there.
    c.post_ok(a, "/api/sync/execute", &json!({"peerId": b.to_string()}));
    assert_eq!(library(c, a), library(c, b));
    assert!(conflict(c, b, "pattern slot 0").is_none() && conflict(c, b, &format!("image {id}")).is_none());
}

fn image_name(c: &Client, addr: SocketAddr, id: &str) -> Value {
    image(c, addr, id).unwrap_or_else(|| panic!("image {id} listed on {addr}"))["name"].clone()
}

/// The peer of `/api/group` with this device id.
fn group_peer(group: &Value, device: &str) -> Option<Value> {
    group["peers"].as_array()?.iter().find(|p| p["deviceId"] == json!(device)).cloned()
}

#[test]
fn the_group_view_shows_each_poi_what_it_plays_and_whether_it_is_reachable() {
    let mut lab = Lab::loopback(2);
    let a = lab.start(0);
    let b = lab.start(1);
    lab.wait_meet(&[(0, 1)], Duration::from_secs(15));
    let key = "group view key";
    for addr in [a, b] {
        lab.client.post_ok(addr, "/api/device/config", &json!({"groupKey": key}));
        lab.client.set_key(addr, Some(key));
    }
    let c = &lab.client;
    let id = c.upload_ok(b, Some("on b"), 4, 2, &pixels(9, 4, 2));
    c.post_ok(b, "/api/brightness", &json!({"brightness": 42}));
    let (a_id, b_id) = (device_id(c, a), device_id(c, b));

    // The two meet, sync and put their clocks in step.
    let group = wait_for("A's group view shows B synced and in step", Duration::from_secs(30), || {
        let group = c.get_ok(a, "/api/group");
        let peer = group_peer(&group, &b_id)?;
        (peer["inStep"] == json!(true) && peer["lastResult"] == json!("ok") && peer["brightness"] == json!(42))
            .then_some(group)
    });
    let me = &group["self"];
    let a_status = c.get_ok(a, "/api/status");
    assert_eq!((&me["deviceId"], &me["address"]), (&json!(a_id), &json!(a.to_string())));
    for field in ["mode", "index", "imageId", "brightness", "syncMode", "powerMode"] {
        assert_eq!(me[field], a_status[field], "self.{field}");
    }
    assert_eq!((&me["battery"], &me["inStep"]), (&Value::Null, &json!(true)));
    assert_eq!(me["imageId"], json!(id), "B's upload plays, and the selection synced");

    let peer = group_peer(&group, &b_id).expect("B listed");
    let b_status = c.get_ok(b, "/api/status");
    for field in ["mode", "index", "imageId", "brightness", "syncMode", "powerMode"] {
        assert_eq!(peer[field], b_status[field], "peer.{field}");
    }
    assert_eq!(
        (&peer["address"], &peer["reachable"], &peer["battery"]),
        (&json!(b.to_string()), &json!(true), &Value::Null)
    );
    // The name as A's peer table has it (a peer that called in before A probed it shows
    // under a placeholder name until then).
    assert!(peer["deviceName"].as_str().is_some_and(|n| !n.is_empty()), "{peer}");
    assert!(peer["lastSync"].as_u64().is_some_and(|at| at > 1_600_000_000_000), "{peer}");

    // B stops: still listed (it was given by address), unreachable, and the view does not
    // wait long for it.
    lab.stop(1);
    let c = &lab.client;
    let started = Instant::now();
    let group = c.get_ok(a, "/api/group");
    assert!(started.elapsed() < Duration::from_secs(3), "the group view took {:?}", started.elapsed());
    let peer = group_peer(&group, &b_id).expect("B still listed");
    assert_eq!(peer["reachable"], json!(false));
    for field in ["mode", "index", "imageId", "brightness", "syncMode", "powerMode"] {
        assert_eq!(peer[field], Value::Null, "peer.{field} of an unreachable peer");
    }
}

/// Two consecutive free ports on 127.0.0.1 (as `povpoi sim --port` uses them).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}

/// The processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // The name is in parentheses and may hold spaces: fields after the last ')'.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat[stat.rfind(')').map_or(0, |i| i + 1)..].split_whitespace().next() != Some("Z"))
}

#[test]
fn sim_stops_its_poi_on_sigterm() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let port = free_port_pair();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Command::new(EXE)
        .args(["sim", "--devices", "2", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sim_pid = sim.id();
    let addrs = [SocketAddr::from(([127, 0, 0, 1], port)), SocketAddr::from(([127, 0, 0, 1], port + 1))];
    let client = Client::loopback();
    let nodes = wait_for("both sim poi answer", Duration::from_secs(30), || {
        let up = addrs.iter().all(|a| client.try_get(*a, "/api/status").is_ok_and(|r| r.status == 200));
        let children = children_of(sim_pid);
        (up && children.len() == 2).then_some(children)
    });

    kill(Pid::from_raw(sim_pid as i32), Signal::SIGTERM).unwrap();
    let exited = wait_for("the sim exits", Duration::from_secs(15), || sim.try_wait().unwrap());
    let left: Vec<u32> = nodes.iter().copied().filter(|p| alive(*p)).collect();
    // Clean up before failing: nothing of this test may outlive it.
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    assert!(left.is_empty(), "sim poi {left:?} still running after the sim exited ({exited})");
    assert!(exited.success(), "sim exited with {exited}");
    for addr in addrs {
        assert!(client.try_get(addr, "/api/status").is_err(), "{addr} still answers");
    }
}
