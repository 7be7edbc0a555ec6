//! Content: images (the old `POST /api/image` upload and the `/api/sd/*` file view of the
//! library), pattern slots and sequences, plus the REST views of each (`/api/images`,
//! `/api/patterns`, `/api/sequences`) that the old system did not have.
//!
//! Names and indices follow the existing system (shared/spec sections 2-3). The library has
//! no files: "SD" endpoints name images by their name (or id), and the data directory's
//! filesystem stands for the card.

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use povpoi_app::content;
use povpoi_core::model::{ImageId, MAX_HEIGHT};
use serde_json::{Value, json};

use super::{ApiError, AppState, RawBody};
use crate::library::{Origin, now_ms};

/// Largest upload accepted: a 400 x 64 image is 75 KiB, so this leaves room for any form.
pub const UPLOAD_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Largest `PUT /api/images/order` body: the longest order (4,096 ids of about 22 bytes
/// each), with room for spaces.
const ORDER_BODY_LIMIT: usize = 256 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/image", post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)))
        .route("/api/sd/info", get(sd_info))
        // The rest is answered as on a board: `povpoi_app::content::answer`.
        .route("/api/pattern", any(shared))
        .route("/api/sd/list", any(shared))
        .route("/api/sd/delete", any(shared))
        .route("/api/sd/load", any(shared))
        .route("/api/images", any(shared))
        .route("/api/images/order", any(shared).layer(DefaultBodyLimit::max(ORDER_BODY_LIMIT)))
        .route("/api/images/{id}", any(shared))
        .route("/api/images/{id}/pixels", any(shared))
        .route("/api/patterns", any(shared))
        .route("/api/patterns/{index}", any(shared))
        .route("/api/sequences", any(shared))
        .route("/api/sequences/{index}", any(shared))
}

pub(super) fn parse_image_id(text: &str) -> Result<ImageId, ApiError> {
    Ok(content::parse_image_id(text)?)
}

pub(super) fn no_image(id: impl std::fmt::Display) -> ApiError {
    content::no_image(id).into()
}

/// A request that reads or edits the library, answered as on a board ([`content::answer`]), under the
/// library's lock off the async threads; a list is read whole there, and an image's pixels
/// at once, checked against their hash.
pub(super) async fn shared(State(node): State<AppState>, method: Method, uri: Uri, RawBody(body): RawBody) -> Response {
    let cue = node.cue();
    // A HEAD is answered as its GET (the server sends no body).
    let method = if method == Method::HEAD { "GET".to_owned() } else { method.as_str().to_owned() };
    let path = uri.path().to_owned();
    let answer = node
        .library
        .write(Origin::Local, move |poi| {
            let request = povpoi_app::api::Request {
                method: &method,
                path: &path,
                query: None,
                headers: &[],
                body: &body,
                from: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            };
            let answered = content::answer(poi, &request, now_ms(), cue)?;
            let mut response = answered.response.unwrap_or_else(|e| e.response());
            // An image's pixels at once, checked against their hash; a list item by item.
            match response.listing.as_ref().and_then(|listing| listing.pixels()) {
                Some(hash) => match poi.image_pixels(&hash) {
                    Ok(Some(pixels)) => {
                        response.listing = None;
                        response.body = pixels.into();
                    }
                    // Found damaged when read, and put aside to be fetched again.
                    Ok(None) => {
                        let id = path.trim_start_matches("/api/images/").trim_end_matches("/pixels");
                        return Some(content::parse_image_id(id).map_or_else(|e| e, content::still_syncing).response());
                    }
                    Err(e) => return Some(povpoi_app::api::ApiError::from(e).response()),
                },
                None => content::list_whole(poi, &mut response),
            }
            Some(response)
        })
        .await;
    answer.map_or_else(|| ApiError::from(povpoi_app::api::ApiError::no_endpoint()).into_response(), super::app_response)
}

/// Maps a multipart failure to a JSON error (413 past the body limit).
fn multipart_error(e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {} KiB", UPLOAD_BODY_LIMIT / 1024),
        )
    } else {
        content::malformed_form(e.body_text()).into()
    }
}

/// Whether a form part carries a file name multer could not decode (not UTF-8).
fn has_raw_filename(headers: &axum::http::HeaderMap) -> bool {
    headers.get("content-disposition").is_some_and(|v| {
        let bytes = v.as_bytes();
        bytes.windows(9).any(|w| w.eq_ignore_ascii_case(b"filename="))
    })
}

/// `POST /api/image`: one file (a picture, or raw RGB named `image_WxH.rgb`), and optional
/// text fields `name`, and the converter's `flipH`, `flipV`, `rotate` (0, 90, 180, 270) and
/// `contrast`, as `povpoi convert` takes them.
async fn upload(
    State(node): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<content::ImageStored>, ApiError> {
    let mut form = form.map_err(|_| ApiError::from(content::not_a_form()))?;
    let mut file: Option<(String, Bytes)> = None;
    let mut name: Option<String> = None;
    let mut options = povpoi_media::ConvertOptions::for_leds(node.display.leds.get().min(MAX_HEIGHT));
    let mut transformed = false;
    while let Some(field) = form.next_field().await.map_err(|e| multipart_error(&e))? {
        let filename = field.file_name().map(str::to_owned);
        if filename.is_none() && has_raw_filename(field.headers()) {
            return Err(content::not_text("file name").into());
        }
        let field_name = field.name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
        match filename {
            Some(filename) => {
                if file.is_some() {
                    return Err(content::one_file_only().into());
                }
                file = Some((filename, bytes));
            }
            None if matches!(field_name.as_deref(), Some("name" | "flipH" | "flipV" | "rotate" | "contrast")) => {
                let field = field_name.unwrap_or_default();
                let text =
                    String::from_utf8(bytes.to_vec()).map_err(|_| content::not_text(&format!("{field} field")))?;
                match field.as_str() {
                    "name" => name = Some(text),
                    "flipH" => options.flip_h = content::form_flag(&field, &text)?,
                    "flipV" => options.flip_v = content::form_flag(&field, &text)?,
                    "contrast" => options.contrast = content::form_flag(&field, &text)?,
                    _ => options.rotate = text.parse().map_err(|e| ApiError::bad_request(format!("rotate: {e}")))?,
                }
                transformed = options.flip_h || options.flip_v || options.contrast || options.rotate.degrees() != 0;
            }
            // Other text fields (a form's submit button, say) carry nothing we use.
            None => {}
        }
    }
    let Some((filename, pixels)) = file else {
        return Err(content::no_file().into());
    };
    content::check_upload_filename(&filename)?;
    // A raw file with picture options goes through the converter too (it reads image_WxH.rgb).
    if transformed || !filename.to_ascii_lowercase().ends_with(".rgb") {
        return store_converted(&node, filename, pixels, name, options).await;
    }
    let (width, height) = content::image_size(&filename)?;
    if pixels.len() != width as usize * height as usize * 3 {
        return Err(content::wrong_length(pixels.len(), width, height).into());
    }
    store_image(&node, content::upload_name(name, &filename), width, height, pixels.to_vec()).await
}

/// A picture in any format `povpoi-media` reads (PNG, JPEG, GIF, BMP, WebP, `.pov`), scaled
/// to this poi's LED count (at most 64 rows) with proportional width, at most 400 columns.
async fn store_converted(
    node: &AppState,
    filename: String,
    bytes: Bytes,
    name: Option<String>,
    options: povpoi_media::ConvertOptions,
) -> Result<Json<content::ImageStored>, ApiError> {
    let file = filename.clone();
    let _turn = super::HEAVY_WORK.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let picture = tokio::task::spawn_blocking(move || povpoi_media::convert(&bytes, &file, &options))
        .await
        .map_err(|e| ApiError::internal(format!("conversion failed: {e}")))?
        .map_err(|e| {
            // The converter's message says what to do (and names the file where that helps).
            let why = e.to_string();
            ApiError::bad_request(if why.starts_with(&filename) { why } else { format!("{filename}: {why}") })
        })?;
    let name = content::upload_name(name, &filename);
    let (width, height) = (u32::from(picture.width()), u32::from(picture.height()));
    store_image(node, name, width, height, picture.into_pixels()).await
}

/// Adds an image and plays it, as the existing upload did (mode 1).
async fn store_image(
    node: &AppState,
    name: String,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
) -> Result<Json<content::ImageStored>, ApiError> {
    let cue = node.cue();
    let stored = node
        .library
        .write(Origin::Local, move |poi| {
            let now = now_ms();
            let add =
                |poi: &mut povpoi_core::sync::Replica<_>, name: &str| poi.add_image(name, width, height, &pixels, now);
            content::add_image(poi, name, (width, height), add, now, cue)
        })
        .await?;
    Ok(Json(stored))
}

/// The existing system's `{present, totalSpace, freeSpace}` (bytes of the disk holding the
/// data directory) plus `freeBytes`/`totalBytes` (the same, named unambiguously) and
/// `reserveBytes`, the space held back so a delete works on a full disk (not in `free`).
async fn sd_info(State(node): State<AppState>) -> Result<Json<Value>, ApiError> {
    let dir = node.data_dir.clone();
    let library = node.library.clone();
    let (space, reserve) = tokio::task::spawn_blocking(move || {
        let reserve = library.read(|poi| poi.storage().reserve_held());
        crate::storage::space(&dir).map(|space| (space, reserve))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("cannot read the storage size: {e}")))?;
    Ok(Json(json!({
        "present": true,
        "totalSpace": space.total,
        "freeSpace": space.free,
        "totalBytes": space.total,
        "freeBytes": space.free,
        "reserveBytes": reserve,
    })))
}
