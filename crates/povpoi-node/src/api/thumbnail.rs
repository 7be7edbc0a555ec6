//! `GET /api/thumbnail/image/{id}`: a small PNG of a stored image for a phone's list of
//! tiles, made once and cached in the data directory (see [`crate::library::THUMBNAIL_DIR`]).
//!
//! The picture is the image as stored, column 0 on the left and LED 0 (the handle end) on
//! top, which is how the preview shows it read at the bottom of the circle; fitted within
//! 160 x 64 pixels keeping its aspect, never enlarged.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use povpoi_core::hash::BlobHash;
use povpoi_core::model::ImageMeta;
use povpoi_media::thumbnail::{THUMBNAIL_MAX_HEIGHT, THUMBNAIL_MAX_WIDTH};

use super::content::{no_image, parse_image_id};
use super::{ApiError, AppState};
use crate::library::{Origin, thumbnail_path};

/// The pixels of an id never change (an edit makes a new image), so browsers may keep the
/// answer for good and never ask again.
const CACHE_CONTROL: &str = "private, max-age=31536000, immutable";
/// First bytes of every PNG: a cache file without them is not served.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/thumbnail/image/{id}", get(thumbnail))
}

/// The ETag of a thumbnail: the pixels' hash and the box it is fitted in.
fn etag(hash: &BlobHash) -> String {
    format!("\"{hash}-{THUMBNAIL_MAX_WIDTH}x{THUMBNAIL_MAX_HEIGHT}\"")
}

fn png_answer(etag: &str, png: Vec<u8>) -> Response {
    let mut response =
        ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, CACHE_CONTROL)], png).into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

async fn thumbnail(
    State(node): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
    let id = parse_image_id(&text)?;
    let (hash, width, height) = node
        .library
        .read(|poi| poi.image(id).map(|meta: &ImageMeta| (meta.pixels(), meta.width(), meta.height())))
        .ok_or_else(|| no_image(id))?;
    let tag = etag(&hash);
    if not_modified(&headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
        if let Ok(value) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return Ok(response);
    }
    let cache = thumbnail_path(&node.data_dir, &hash, THUMBNAIL_MAX_WIDTH, THUMBNAIL_MAX_HEIGHT);
    let cached = cache.clone();
    let hit = tokio::task::spawn_blocking(move || std::fs::read(&cached).ok().filter(|b| b.starts_with(PNG_SIGNATURE)))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(png) = hit {
        return Ok(png_answer(&tag, png));
    }
    let pixels = node.library.write(Origin::Local, move |poi| poi.image_pixels(&hash)).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the pixels of image {id} are still syncing to this poi; try again soon"),
        )
    })?;
    let _turn = super::HEAVY_WORK.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let png = tokio::task::spawn_blocking(move || {
        let picture = povpoi_media::Picture::new(width, height, pixels)?;
        let png = povpoi_media::thumbnail_png(&picture)?;
        // Best effort: on a failed write (a full disk, say) the picture is still served and
        // made again next time.
        if let Err(e) = crate::storage::write_cache_file(&cache, &png) {
            tracing::info!(file = %cache.display(), error = %e, "thumbnail not cached");
        }
        Ok::<_, povpoi_media::MediaError>(png)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("cannot draw the thumbnail of image {id}: {e}")))?;
    Ok(png_answer(&tag, png))
}
