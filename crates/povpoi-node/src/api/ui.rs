//! `GET /`: the web UI, one self-contained page (inline CSS and JS, no external resources,
//! so it works on a poi's own access point without internet) that drives the API.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The page; it reads everything through the JSON API, so it holds no data itself.
const PAGE: &str = include_str!("ui.html");

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(page))
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE)
}
