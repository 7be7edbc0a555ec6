//! `POST /api/image` through the node's real router: each input is one upload (see
//! `node_checks::upload_request` and `node_checks::check_upload_answer`), and an image it
//! stores is deleted again so the library does not grow.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use povpoi_fuzz::node_checks::{check_upload_answer, upload_request};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let node = povpoi_fuzz::node_harness::harness("multipart_upload");
    let (content_type, body) = upload_request(data);
    let mut request = Request::post("/api/image");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let before = node.images();
    let (status, answer) = node.send(request.body(Body::from(body)).expect("a request"));
    if let Some(id) = check_upload_answer(status, &answer, before, node.images()) {
        let delete = Request::delete(format!("/api/images/{id}")).body(Body::empty()).expect("a request");
        let (status, answer) = node.send(delete);
        assert_eq!(status, 200, "deleting the uploaded image: {}", String::from_utf8_lossy(&answer));
    }
});
