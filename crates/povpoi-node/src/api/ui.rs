//! The web UI ([`povpoi_ui`]: a page, its script and style sheet, a web app manifest and
//! icons, built into the binary, no external resources, so it works on a poi's own access
//! point without internet). Sent gzipped to browsers that take it, which every browser
//! does; plain to other clients.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// Whether `path` is a file of the UI: open to anyone, so the page can load and ask for the
/// pairing key.
pub(super) fn is_asset(path: &str) -> bool {
    povpoi_ui::asset(path).is_some()
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(|headers: HeaderMap| async move { serve("/", &headers) })).route(
        "/{file}",
        get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&format!("/{file}"), &headers) }),
    )
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let (Some(asset), Some(plain)) = (povpoi_ui::asset(path), povpoi_ui::plain(path)) else {
        return ApiError::not_found("no such endpoint").into_response();
    };
    let takes_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    // no-cache: a browser asks again each time (a 304-free poi answers in one packet or
    // two), so a poi updated to a new UI is never shown with the old script.
    let common = [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "no-cache")];
    if takes_gzip {
        let mut response = (common, asset.gzipped).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    } else {
        (common, plain).into_response()
    }
}
