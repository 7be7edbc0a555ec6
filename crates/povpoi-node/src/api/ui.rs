//! The web UI ([`povpoi_ui`]: a page, its script and style sheet, a web app manifest and
//! icons, built into the binary, no external resources, so it works on a poi's own access
//! point without internet). Sent gzipped to browsers that take it, which every browser
//! does; plain to other clients.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;
use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(|headers: HeaderMap| async move { serve("/", &headers) })).route(
        "/{file}",
        get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&format!("/{file}"), &headers) }),
    )
}

/// The board's answer ([`povpoi_app::api::Response::asset`]: gzipped, asked again at every
/// load), with the plain bytes instead for a client that does not take gzip.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let (Some(asset), Some(plain)) = (povpoi_ui::asset(path), povpoi_ui::plain(path)) else {
        return ApiError::from(povpoi_app::api::ApiError::no_endpoint()).into_response();
    };
    let takes_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut answer = povpoi_app::api::Response::asset(asset);
    if !takes_gzip {
        answer.headers.retain(|(name, _)| *name != "content-encoding");
        answer.body = plain.into();
    }
    answer.headers.push(("vary", "accept-encoding".into()));
    super::app_response(answer)
}
