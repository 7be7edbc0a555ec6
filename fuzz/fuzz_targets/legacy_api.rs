//! The existing system's JSON endpoints (`/api/sync/push` and the other bodies it sends)
//! through the node's real router (see `node_checks::api_request` and
//! `node_checks::check_api_answer`).
#![no_main]

use axum::body::Body;
use axum::http::Request;
use povpoi_fuzz::node_checks::{api_request, check_api_answer};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let node = povpoi_fuzz::node_harness::harness("legacy_api");
    let (method, path, body) = api_request(data);
    let request = Request::builder()
        .method(method)
        .uri(&path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a request");
    let before = node.records();
    let (status, answer) = node.send(request);
    check_api_answer(&format!("{method} {path}"), status, &answer, node.records() != before);
});
