//! The web UI: a page, its script and style sheet, a web app manifest and icons, all built
//! into the binary (no external resources, so it works on a poi's own access point without
//! internet). Served gzipped to browsers that take it, which every browser does.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// One file of the UI: its path, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file the UI is made of; the page reads everything else through the JSON API.
const ASSETS: [Asset; 7] = [
    Asset { path: "/", content_type: "text/html; charset=utf-8", bytes: include_bytes!("ui/index.html") },
    Asset { path: "/app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("ui/app.js") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("ui/app.css") },
    Asset {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("ui/manifest.webmanifest"),
    },
    Asset { path: "/icon.svg", content_type: "image/svg+xml", bytes: include_bytes!("ui/icon.svg") },
    Asset { path: "/icon-192.png", content_type: "image/png", bytes: include_bytes!("ui/icon-192.png") },
    Asset { path: "/icon-512.png", content_type: "image/png", bytes: include_bytes!("ui/icon-512.png") },
];

/// Whether `path` is a file of the UI: open to anyone, so the page can load and ask for the
/// pairing key.
pub(super) fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

fn gzipped() -> &'static [Vec<u8>] {
    static GZIPPED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    GZIPPED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing into a Vec cannot fail.
                z.write_all(a.bytes).and_then(|()| z.finish()).unwrap_or_default()
            })
            .collect()
    })
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(|headers: HeaderMap| async move { serve("/", &headers) })).route(
        "/{file}",
        get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&format!("/{file}"), &headers) }),
    )
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(n) = ASSETS.iter().position(|a| a.path == path) else {
        return ApiError::not_found("no such endpoint").into_response();
    };
    let asset = &ASSETS[n];
    let takes_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    // no-cache: a browser asks again each time (a 304-free poi answers in one packet or
    // two), so a poi updated to a new UI is never shown with the old script.
    let common = [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "no-cache")];
    if takes_gzip {
        let mut response = (common, gzipped()[n].clone()).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    } else {
        (common, asset.bytes).into_response()
    }
}
