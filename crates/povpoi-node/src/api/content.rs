//! Content: images (the old `POST /api/image` upload and the `/api/sd/*` file view of the
//! library), pattern slots and sequences, plus the REST views of each (`/api/images`,
//! `/api/patterns`, `/api/sequences`) that the old system did not have.
//!
//! Names and indices follow the existing system (shared/spec sections 2-3). The library has
//! no files: "SD" endpoints name images by their name (or id), and the data directory's
//! filesystem stands for the card.

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use povpoi_app::content::{
    self, Done, FileRequest, ImageEntry, Loaded, OrderRequest, PatternEntry, PatternFields, PatternStored, Patterns,
    RenameRequest, SequenceEntry, SequenceRequest, Sequences,
};
use povpoi_core::model::{ImageId, ImageMeta, MAX_HEIGHT, PATTERN_SLOTS, Pattern, SEQUENCE_SLOTS};
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, RawBody};
use crate::library::{Origin, now_ms};

/// Largest upload accepted: a 400 x 64 image is 75 KiB, so this leaves room for any form.
pub const UPLOAD_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/image", post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)))
        .route("/api/pattern", post(post_pattern))
        .route("/api/sd/list", get(sd_list))
        .route("/api/sd/info", get(sd_info))
        .route("/api/sd/delete", post(sd_delete))
        .route("/api/sd/load", post(sd_load))
        .route("/api/images", get(list_images))
        // 4,096 ids of about 22 bytes each.
        .route("/api/images/order", put(order_images).layer(DefaultBodyLimit::max(ORDER_BODY_LIMIT)))
        .route("/api/images/{id}", get(get_image).patch(rename_image).delete(delete_image))
        .route("/api/images/{id}/pixels", get(image_pixels))
        .route("/api/patterns", get(list_patterns))
        .route("/api/patterns/{index}", get(get_pattern).put(put_pattern).delete(delete_pattern))
        .route("/api/sequences", get(list_sequences))
        .route("/api/sequences/{index}", get(get_sequence).put(put_sequence).delete(delete_sequence))
}

/// A path segment as text, with a JSON 400 when it is not valid (bad percent-encoding).
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(s)| s).map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

pub(super) fn parse_image_id(text: &str) -> Result<ImageId, ApiError> {
    Ok(content::parse_image_id(text)?)
}

pub(super) fn no_image(id: impl std::fmt::Display) -> ApiError {
    content::no_image(id).into()
}

fn parse_slot(text: &str, what: &str, slots: u8) -> Result<u8, ApiError> {
    Ok(content::parse_slot(text, what, slots)?)
}

/// Maps a multipart failure to a JSON error (413 past the body limit).
fn multipart_error(e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {} KiB", UPLOAD_BODY_LIMIT / 1024),
        )
    } else {
        ApiError::bad_request(format!("malformed multipart form: {}", e.body_text()))
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
    let mut form = form.map_err(|_| {
        ApiError::bad_request("send the image as multipart/form-data with one file field (image_<width>x<height>.rgb)")
    })?;
    let mut file: Option<(String, Bytes)> = None;
    let mut name: Option<String> = None;
    let mut options = povpoi_media::ConvertOptions::for_leds(node.display.leds.get().min(MAX_HEIGHT));
    let mut transformed = false;
    while let Some(field) = form.next_field().await.map_err(|e| multipart_error(&e))? {
        let filename = field.file_name().map(str::to_owned);
        if filename.is_none() && has_raw_filename(field.headers()) {
            return Err(ApiError::bad_request("the file name is not UTF-8 text"));
        }
        let field_name = field.name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
        match filename {
            Some(filename) => {
                if file.is_some() {
                    return Err(ApiError::bad_request("send one file per upload"));
                }
                file = Some((filename, bytes));
            }
            None if matches!(field_name.as_deref(), Some("name" | "flipH" | "flipV" | "rotate" | "contrast")) => {
                let field = field_name.unwrap_or_default();
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::bad_request(format!("the {field} field is not UTF-8 text")))?;
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
        return Err(ApiError::bad_request(
            "no file in the form: send one file field holding image_<width>x<height>.rgb",
        ));
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

async fn list_images(State(node): State<AppState>) -> Json<Value> {
    Json(json!({ "images": node.library.read(content::image_entries) }))
}

async fn get_image(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ImageEntry>, ApiError> {
    let id = parse_image_id(&segment(path)?)?;
    node.library.read(|poi| content::find_image(poi, id)).map(Json).ok_or_else(|| no_image(id))
}

async fn image_pixels(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&segment(path)?)?;
    let hash = node.library.read(|poi| poi.image(id).map(ImageMeta::pixels)).ok_or_else(|| no_image(id))?;
    let pixels = node.library.write(Origin::Local, move |poi| poi.image_pixels(&hash)).await?;
    let pixels = pixels.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the pixels of image {id} are still syncing to this poi; try again soon"),
        )
    })?;
    Ok((StatusCode::OK, [("content-type", "application/octet-stream")], pixels).into_response())
}

async fn rename_image(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(ask): JsonBody<RenameRequest>,
) -> Result<Json<ImageEntry>, ApiError> {
    let id = parse_image_id(&segment(path)?)?;
    let entry =
        node.library.write(Origin::Local, move |poi| content::rename_image(poi, id, &ask.name, now_ms())).await?;
    Ok(Json(entry))
}

/// Largest `PUT /api/images/order` body: the longest order, with room for spaces.
const ORDER_BODY_LIMIT: usize = 256 * 1024;

/// `PUT /api/images/order {"ids": [...]}`: lists the images in this order (on every poi of
/// the group); images left out follow. Answers the new listing.
async fn order_images(
    State(node): State<AppState>,
    JsonBody(ask): JsonBody<OrderRequest>,
) -> Result<Json<Value>, ApiError> {
    let ids = ask.ids()?;
    node.library.write(Origin::Local, move |poi| poi.set_image_order(ids, now_ms())).await?;
    Ok(list_images(State(node)).await)
}

async fn delete_image(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Done>, ApiError> {
    let id = parse_image_id(&segment(path)?)?;
    Ok(Json(node.library.write(Origin::Local, move |poi| content::delete_image(poi, id, now_ms())).await?))
}

// ----- the SD view -----

async fn sd_list(State(node): State<AppState>) -> Json<Value> {
    let files: Vec<String> = node.library.read(|poi| poi.images().map(|(_, meta)| meta.name().to_owned()).collect());
    Json(json!({ "files": files }))
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

async fn sd_delete(State(node): State<AppState>, JsonBody(ask): JsonBody<FileRequest>) -> Result<Json<Done>, ApiError> {
    Ok(Json(node.library.write(Origin::Local, move |poi| content::delete_file(poi, &ask.filename, now_ms())).await?))
}

async fn sd_load(State(node): State<AppState>, JsonBody(ask): JsonBody<FileRequest>) -> Result<Json<Loaded>, ApiError> {
    let cue = node.cue();
    Ok(Json(node.library.write(Origin::Local, move |poi| content::load_file(poi, &ask.filename, now_ms(), cue)).await?))
}

// ----- patterns -----

async fn store_pattern(node: &AppState, slot: u8, pattern: Pattern) -> Result<(), ApiError> {
    let cue = node.cue();
    node.library.write(Origin::Local, move |poi| poi.set_pattern(slot, pattern, now_ms(), cue)).await?;
    Ok(())
}

async fn post_pattern(State(node): State<AppState>, RawBody(body): RawBody) -> Result<Json<PatternStored>, ApiError> {
    let (slot, pattern) = content::pattern_posted(&body)?;
    store_pattern(&node, slot, pattern).await?;
    Ok(Json(PatternStored { status: "ok", index: slot }))
}

async fn list_patterns(State(node): State<AppState>) -> Json<Patterns> {
    Json(Patterns { patterns: node.library.read(content::pattern_entries) })
}

async fn get_pattern(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PatternEntry>, ApiError> {
    let slot = parse_slot(&segment(path)?, "pattern", PATTERN_SLOTS)?;
    node.library
        .read(|poi| poi.pattern(slot).map(|p| content::pattern_entry(slot, p)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("pattern slot {slot} is empty")))
}

async fn put_pattern(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(ask): JsonBody<PatternFields>,
) -> Result<Json<PatternEntry>, ApiError> {
    let slot = parse_slot(&segment(path)?, "pattern", PATTERN_SLOTS)?;
    let pattern = ask.pattern()?;
    store_pattern(&node, slot, pattern).await?;
    Ok(Json(content::pattern_entry(slot, &pattern)))
}

async fn delete_pattern(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Done>, ApiError> {
    let slot = parse_slot(&segment(path)?, "pattern", PATTERN_SLOTS)?;
    let cue = node.cue();
    Ok(Json(node.library.write(Origin::Local, move |poi| content::clear_pattern(poi, slot, now_ms(), cue)).await?))
}

// ----- sequences -----

async fn list_sequences(State(node): State<AppState>) -> Json<Sequences> {
    Json(Sequences { sequences: node.library.read(content::sequence_entries) })
}

async fn get_sequence(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SequenceEntry>, ApiError> {
    let slot = parse_slot(&segment(path)?, "sequence", SEQUENCE_SLOTS)?;
    node.library
        .read(|poi| poi.sequence(slot).map(|s| content::sequence_entry(slot, s)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("sequence slot {slot} is empty")))
}

async fn put_sequence(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(ask): JsonBody<SequenceRequest>,
) -> Result<Json<SequenceEntry>, ApiError> {
    let slot = parse_slot(&segment(path)?, "sequence", SEQUENCE_SLOTS)?;
    let cue = node.cue();
    let entry =
        node.library.write(Origin::Local, move |poi| content::put_sequence(poi, slot, &ask, now_ms(), cue)).await?;
    Ok(Json(entry))
}

async fn delete_sequence(
    State(node): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Done>, ApiError> {
    let slot = parse_slot(&segment(path)?, "sequence", SEQUENCE_SLOTS)?;
    let cue = node.cue();
    Ok(Json(node.library.write(Origin::Local, move |poi| content::clear_sequence(poi, slot, now_ms(), cue)).await?))
}
