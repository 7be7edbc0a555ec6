//! The backend pieces of the performer's web UI, over real HTTP against `povpoi node`
//! processes on 127.0.0.1: thumbnails, identify, the strip settings, backup and restore.

mod support;

use std::path::PathBuf;
use std::time::Duration;

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
    assert_eq!(first.header("cache-control"), Some("public, max-age=31536000, immutable"));
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
    let mut spec = lab.spec(0);
    spec.data_dir = disk.path().join("poi");
    let data_dir = spec.data_dir.clone();
    let a = lab.start_with(0, spec);
    let id = lab.client.upload_ok(a, Some("halves"), 64, 32, &halves(64, 32));
    disk.fill("filler");

    let answer = lab.client.try_get(a, &format!("/api/thumbnail/image/{id}")).unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let picture = image::load_from_memory(&answer.body).expect("a PNG").to_rgb8();
    assert_eq!(picture.dimensions(), (64, 32), "small enough already: not enlarged");
    assert!(!cache_file(&data_dir, &images(&lab.client, a)[0]).exists(), "nothing cached on a full disk");
    assert!(temp_files_under(&data_dir).is_empty(), "left behind: {:?}", temp_files_under(&data_dir));
}
