//! Replays the fuzz corpora and the saved crash inputs of the node's decoders
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) with the fuzz targets' own
//! checks, on stable, in the normal test run: requests go to a node started in-process over
//! real HTTP on loopback (the fuzz targets call its router directly). See fuzz/README.md.

#[path = "../../../fuzz/src/node_checks.rs"]
mod node_checks;
#[path = "../../../fuzz/src/replay.rs"]
mod replay;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use povpoi_node::{Node, NodeOptions};

use replay::assert_replays as replay;

#[test]
fn auth_headers() {
    replay("auth_headers", node_checks::auth_headers);
}

#[test]
fn nonce_file() {
    let dir = tempfile::tempdir().unwrap();
    replay("nonce_file", |data| node_checks::nonce_file(data, dir.path()));
}

async fn start_node(dir: &std::path::Path) -> (Node, reqwest::Client, String) {
    let options = NodeOptions { mdns: false, ..NodeOptions::new(dir, "127.0.0.1:0".parse().unwrap()) };
    let node = Node::start(options).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let base = format!("http://{}", node.addr());
    (node, http, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload() {
    let dir = tempfile::tempdir().unwrap();
    let (node, http, base) = start_node(dir.path()).await;
    let images = || node.library().read(|poi| poi.images().count());
    let mut failed = Vec::new();
    for (path, data) in replay::inputs("multipart_upload") {
        let (content_type, body) = node_checks::upload_request(&data);
        let mut request = http.post(format!("{base}/api/image")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let before = images();
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.bytes().await.unwrap();
        let after = images();
        match catch_unwind(|| node_checks::check_upload_answer(status, &body, before, after)) {
            Ok(Some(id)) => {
                let deleted = http.delete(format!("{base}/api/images/{id}")).send().await.unwrap();
                assert_eq!(deleted.status().as_u16(), 200, "deleting the image of {}", path.display());
            }
            Ok(None) => {}
            Err(_) => failed.push(path.display().to_string()),
        }
    }
    node.stop().await;
    assert!(failed.is_empty(), "multipart_upload: failed on {failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_api() {
    let dir = tempfile::tempdir().unwrap();
    let (node, http, base) = start_node(dir.path()).await;
    let records = || node.library().read(|poi| poi.records().cloned().collect::<Vec<_>>());
    let mut failed = Vec::new();
    for (path, data) in replay::inputs("legacy_api") {
        let (method, route, body) = node_checks::api_request(&data);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let before = records();
        let answer = http
            .request(method.clone(), format!("{base}{route}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body = answer.bytes().await.unwrap();
        let changed = records() != before;
        let what = format!("{method} {route}");
        if catch_unwind(AssertUnwindSafe(|| node_checks::check_api_answer(&what, status, &body, changed))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    node.stop().await;
    assert!(failed.is_empty(), "legacy_api: failed on {failed:#?}");
}

/// Writes the seed inputs into the corpora: `cargo test -p povpoi-node --test fuzz_corpus
/// -- --ignored write_seeds`, then minimise (fuzz/README.md).
#[test]
#[ignore = "writes files into fuzz/corpus"]
fn write_seeds() {
    replay::write_seeds(node_checks::seeds());
}
