//! A node whose disk fills up: a real `povpoi node` process storing on a 2 MiB tmpfs.
//!
//! Uploads are refused with 507 and a JSON error naming the disk before they are written,
//! no failed write leaves a temporary file, a delete works (and frees space) on a disk with
//! not one byte left, edits work after it, and a node killed on the full disk comes back
//! with every acknowledged image. Needs root to mount the tmpfs; fails without it unless
//! `POVPOI_SKIP_TMPFS=1` is set.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const W: usize = 400;
const H: usize = 64;

fn sd_info(lab: &Lab, addr: std::net::SocketAddr) -> Value {
    let info = lab.client.get_ok(addr, "/api/sd/info");
    assert_eq!(info["present"], json!(true), "{info}");
    info
}

fn free(lab: &Lab, addr: std::net::SocketAddr) -> u64 {
    sd_info(lab, addr)["freeBytes"].as_u64().expect("freeBytes")
}

fn brightness(lab: &Lab, addr: std::net::SocketAddr) -> u64 {
    lab.client.get_ok(addr, "/api/status")["brightness"].as_u64().expect("brightness")
}

fn sync_interval(lab: &Lab, addr: std::net::SocketAddr) -> u64 {
    lab.client.get_ok(addr, "/api/device/config")["syncInterval"].as_u64().expect("syncInterval")
}

/// A 507 whose JSON error says the disk is full and names what: the data directory.
fn assert_disk_full(status: u16, answer: &Value, data_dir: &std::path::Path, what: &str) {
    assert_eq!(status, 507, "{what}: {answer}");
    let error = answer["error"].as_str().unwrap_or_else(|| panic!("{what}: no JSON error: {answer}"));
    assert!(error.contains("disk full"), "{what}: {error}");
    assert!(error.contains(&data_dir.display().to_string()), "{what}: the error names the data directory: {error}");
}

#[test]
fn a_full_disk_refuses_uploads_with_507_frees_space_on_delete_and_restarts() {
    let Some(disk) = Tmpfs::mount_or_skip("2m") else { return };
    let mut lab = Lab::loopback(1);
    let (a, data_dir) = lab.start_on(0, &disk);

    let info = sd_info(&lab, a);
    assert_eq!(info["totalBytes"], json!(2 * 1024 * 1024), "{info}");
    let mut free_now = free(&lab, a);

    // Fill it with uploads: each one acknowledged takes space, then one is refused.
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    let refused = loop {
        assert!(kept.len() < 100, "2 MiB never filled up");
        let px = pixels(kept.len() as u32 + 1, W, H);
        let (status, answer) = lab.client.upload_named(a, Some(&format!("img{}", kept.len())), W, H, &px);
        if status != 200 {
            break (status, answer);
        }
        let after = free(&lab, a);
        assert!(after + (W * H * 3) as u64 <= free_now, "an upload took no space: {free_now} -> {after}");
        free_now = after;
        kept.push((answer["id"].as_str().expect("id").to_string(), px));
    };
    assert_disk_full(refused.0, &refused.1, &data_dir, "the upload that does not fit");
    assert!(kept.len() >= 10, "only {} images fit in 2 MiB", kept.len());
    println!("{} uploads of {} bytes fit; {free_now} bytes free when refused", kept.len(), W * H * 3);
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));

    // Something else takes every byte left.
    let filler = disk.fill("filler");
    assert_eq!(free(&lab, a), 0, "the filler ({filler} bytes) left space");
    let (status, answer) = lab.client.upload_named(a, Some("tiny"), 1, 1, &[1, 2, 3]);
    assert_disk_full(status, &answer, &data_dir, "an upload on a full disk");

    // Edits that free nothing still save on the full disk: the store's reserve is given up
    // for them (and made again when there is room).
    let renamed = kept[0].0.clone();
    let (status, answer) =
        lab.client.send_json(Method::PATCH, a, &format!("/api/images/{renamed}"), &json!({"name": "renamed"}));
    assert_eq!(status, 200, "a rename on a full disk: {answer}");
    assert_eq!(image(&lab.client, a, &renamed).expect("listed")["name"], json!("renamed"));
    let (status, answer) = lab.client.post_json(a, "/api/brightness", &json!({"brightness": 77}));
    assert_eq!(status, 200, "a brightness change on a full disk: {answer}");
    assert_eq!(brightness(&lab, a), 77);
    let (status, answer) = lab.client.post_json(a, "/api/device/config", &json!({"syncInterval": 45_000}));
    assert_eq!(status, 200, "a config change on a full disk: {answer}");
    assert_eq!(sync_interval(&lab, a), 45_000);
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));

    // A delete works on the full disk and frees space.
    let before = sd_info(&lab, a);
    let (gone, _) = kept.remove(1);
    let (status, answer) = lab.client.send_json(Method::DELETE, a, &format!("/api/images/{gone}"), &json!({}));
    assert_eq!(status, 200, "a delete on a full disk: {answer}");
    assert!(image(&lab.client, a, &gone).is_none());
    let after = sd_info(&lab, a);
    let freed = |info: &Value| info["freeBytes"].as_u64().unwrap() + info["reserveBytes"].as_u64().unwrap();
    assert!(
        freed(&after) >= freed(&before) + (W * H * 3) as u64,
        "the delete freed less than the image: {before} -> {after}"
    );
    assert!(after["freeBytes"].as_u64().unwrap() > 0, "{after}");
    println!("free before the delete: {before}, after: {after}");

    // After it, edits work.
    let (status, answer) =
        lab.client.send_json(Method::PATCH, a, &format!("/api/images/{renamed}"), &json!({"name": "renamed2"}));
    assert_eq!(status, 200, "rename after the delete: {answer}");
    lab.client.post_ok(a, "/api/brightness", &json!({"brightness": 66}));
    lab.client.post_ok(a, "/api/device/config", &json!({"syncInterval": 50_000}));
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));

    // Killed on a disk full again, it comes back with everything acknowledged.
    disk.fill("filler2");
    assert_eq!(free(&lab, a), 0);
    let written =
        || ["config.json", "nonces"].map(|f| std::fs::metadata(data_dir.join(f)).and_then(|m| m.modified()).ok());
    let before_restart = written();
    lab.kill_hard(0);
    lab.restart(0);
    assert_eq!(written(), before_restart, "start-up rewrote the config or the nonces");
    assert_eq!(images(&lab.client, a).len(), kept.len());
    for (id, px) in &kept {
        assert!(has_pixels(&lab.client, a, id, px), "image {id} acknowledged but not served after the restart");
    }
    assert_eq!(image(&lab.client, a, &renamed).expect("listed")["name"], json!("renamed2"));
    assert_eq!(brightness(&lab, a), 66);
    assert_eq!(sync_interval(&lab, a), 50_000);
    let (status, answer) = lab.client.upload_named(a, Some("late"), 1, 1, &[1, 2, 3]);
    assert_disk_full(status, &answer, &data_dir, "an upload after the restart");

    // And space can still be freed there.
    let (gone, _) = kept.remove(0);
    let (status, answer) = lab.client.send_json(Method::DELETE, a, &format!("/api/images/{gone}"), &json!({}));
    assert_eq!(status, 200, "a delete after the restart on a full disk: {answer}");
    assert!(free(&lab, a) > 0);
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));
    println!("after the restart: {} images served, {}", kept.len(), sd_info(&lab, a));
}
