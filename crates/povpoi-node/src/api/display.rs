//! What the strip shows: `GET /api/strip` gives the columns the `sim` output kept, so the
//! web UI (or a test) can draw the poi live without hardware; `GET /api/preview/...` draws
//! what a spectator sees when a stored item is spun (a long-exposure light trail, PNG).

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use std::collections::HashMap;

use povpoi_core::model::{ImageId, PATTERN_SLOTS, Pattern, PatternKind, Rgb, SEQUENCE_SLOTS, Sequence, SequenceTarget};
use povpoi_core::render::{Content, Finish, ImageView, Program};
use povpoi_media::PreviewOptions;

use super::{ApiError, AppState};
use crate::output::ShowImage;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/strip", get(strip)).route("/api/preview/{kind}/{item}", get(preview))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StripQuery {
    /// Only columns numbered after this one.
    after: Option<u64>,
}

/// `{leds, shown, columns}`: `shown` numbers the last column; each column is a hex string of
/// `rrggbb` per LED, LED 0 (the handle) first, as the LEDs get it (brightness applied, and
/// gamma except on a live column).
async fn strip(
    State(node): State<AppState>,
    query: Result<Query<StripQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let Some(strip) = &node.display.strip else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("this poi drives {}, not the sim strip: nothing is kept to show", node.display.output),
        ));
    };
    let (columns, shown) = strip.since(query.after.unwrap_or(0));
    let columns: Vec<String> = columns
        .iter()
        .map(|column| column.iter().flat_map(|c| [c.r, c.g, c.b]).map(|b| format!("{b:02x}")).collect())
        .collect();
    Ok(Json(json!({ "leds": node.display.leds.get(), "shown": shown, "columns": columns })))
}

/// Largest preview served, pixels a side.
const MAX_PREVIEW_SIZE: u32 = 1024;
/// Most turns of the arm one preview exposure may cover.
const MAX_PREVIEW_TURNS: f64 = 10.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    /// Rotations per second (default 2).
    rps: Option<f64>,
    /// Columns per second (default: the frame rate the strip plays).
    fps: Option<u16>,
    /// Picture side in pixels (default 512).
    size: Option<u32>,
    /// Show time at which the shutter opens, ms (default 0).
    at: Option<u64>,
    /// Exposure, ms (default one rotation).
    exposure: Option<u64>,
    /// `/api/preview/pattern/draft` only: the unsaved pattern's type (0-17)...
    #[serde(rename = "type")]
    kind: Option<u8>,
    /// ...its colours as `rrggbb`...
    color1: Option<String>,
    /// ...
    color2: Option<String>,
    /// ...and its speed (1-255), as the pattern editor holds them.
    speed: Option<u8>,
}

impl PreviewQuery {
    /// The pattern a draft preview shows: what an editor holds before it is saved, so the
    /// editor can show the poi's own rendering of it as it changes.
    fn draft(&self) -> Result<Pattern, ApiError> {
        let colour = |field: &str, text: &Option<String>| -> Result<Rgb, ApiError> {
            let text = text.as_deref().ok_or_else(|| ApiError::bad_request(format!("{field} is missing: rrggbb")))?;
            let bad = || ApiError::bad_request(format!("{field} must be six hex digits rrggbb, not {text:?}"));
            let n = u32::from_str_radix(text, 16).ok().filter(|_| text.len() == 6).ok_or_else(bad)?;
            Ok(Rgb::new((n >> 16) as u8, (n >> 8) as u8, n as u8))
        };
        let kind = self.kind.ok_or_else(|| ApiError::bad_request("type is missing: a pattern type 0-17"))?;
        let kind = PatternKind::from_id(kind)?;
        let speed = self.speed.ok_or_else(|| ApiError::bad_request("speed is missing: 1-255"))?;
        Ok(Pattern::new(kind, colour("color1", &self.color1)?, colour("color2", &self.color2)?, speed)?)
    }

    /// Whether any draft field was given (they mean nothing for a stored item).
    fn has_draft_fields(&self) -> bool {
        self.kind.is_some() || self.color1.is_some() || self.color2.is_some() || self.speed.is_some()
    }
}

/// The images and patterns a previewed sequence refers to.
#[derive(Default)]
struct Stored {
    images: HashMap<ImageId, ShowImage>,
    patterns: Vec<Option<Pattern>>,
}

impl Content for Stored {
    fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
        self.images.get(&id).map(|i| ImageView { width: i.width, height: i.height, pixels: &i.pixels })
    }

    fn pattern(&self, slot: u8) -> Option<Pattern> {
        self.patterns.get(usize::from(slot)).copied().flatten()
    }
}

/// What to preview, with the content it needs.
enum Item {
    Image(ShowImage),
    Pattern(Pattern),
    Sequence(Sequence, Stored),
}

/// `GET /api/preview/image/{id}`, `/api/preview/pattern/{slot}`, `/api/preview/sequence/{slot}`:
/// a PNG of the item spun at `rps`, at the frame rate and brightness the strip plays (the
/// settings under the power profile's caps).
async fn preview(
    State(node): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PreviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((kind, item)) = path.map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let slot = |limit: u8| -> Result<u8, ApiError> {
        item.parse::<u8>()
            .ok()
            .filter(|s| *s < limit)
            .ok_or_else(|| ApiError::bad_request(format!("{kind} slot must be 0-{}, not {item:?}", limit - 1)))
    };
    if query.has_draft_fields() && (kind.as_str(), item.as_str()) != ("pattern", "draft") {
        return Err(ApiError::bad_request(
            "type, color1, color2 and speed describe an unsaved pattern: ask /api/preview/pattern/draft",
        ));
    }
    let state = node.clone();
    let what = match kind.as_str() {
        "image" => {
            let id: ImageId =
                item.parse().map_err(|_| ApiError::bad_request(format!("{item:?} is not an image id")))?;
            let image = tokio::task::spawn_blocking(move || state.library.image_for_display(id))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Item::Image(image.ok_or_else(|| ApiError::not_found(format!("no image {id} with its pixels here")))?)
        }
        "pattern" if item == "draft" => Item::Pattern(query.draft()?),
        "pattern" => {
            let slot = slot(PATTERN_SLOTS)?;
            let pattern = node.library.read(|poi| poi.pattern(slot).copied());
            Item::Pattern(pattern.ok_or_else(|| ApiError::not_found(format!("pattern slot {slot} is empty")))?)
        }
        "sequence" => {
            let slot = slot(SEQUENCE_SLOTS)?;
            let (sequence, patterns) = node.library.read(|poi| {
                (poi.sequence(slot).cloned(), (0..PATTERN_SLOTS).map(|s| poi.pattern(s).copied()).collect())
            });
            let sequence = sequence.ok_or_else(|| ApiError::not_found(format!("sequence slot {slot} is empty")))?;
            let ids: Vec<ImageId> = sequence
                .items()
                .iter()
                .filter_map(|i| match i.target {
                    SequenceTarget::Image(id) => Some(id),
                    SequenceTarget::Pattern(_) => None,
                })
                .collect();
            let images = tokio::task::spawn_blocking(move || {
                ids.into_iter().filter_map(|id| Some((id, state.library.image_for_display(id)?))).collect()
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
            Item::Sequence(sequence, Stored { images, patterns })
        }
        other => {
            return Err(ApiError::not_found(format!("no preview of {other:?}: use image, pattern or sequence")));
        }
    };
    let settings = crate::player::power_capped(node.library.read(|poi| poi.settings()), node.config().power_mode);
    let size = query.size.unwrap_or(512);
    // The work grows with pixels x turns of the arm: bounded so one request stays well under
    // a second on the VM (and a few on a Pi).
    if !(16..=MAX_PREVIEW_SIZE).contains(&size) {
        return Err(ApiError::bad_request(format!("size must be 16-{MAX_PREVIEW_SIZE} pixels")));
    }
    let rps = query.rps.unwrap_or(2.0);
    if let Some(exposure) = query.exposure
        && rps.is_finite()
        && rps * exposure as f64 / 1000.0 > MAX_PREVIEW_TURNS
    {
        return Err(ApiError::bad_request(format!(
            "exposure x rps is {:.0} turns of the arm: at most {MAX_PREVIEW_TURNS}",
            rps * exposure as f64 / 1000.0
        )));
    }
    let options = PreviewOptions {
        leds: node.display.leds.get(),
        rps,
        fps: query.fps.unwrap_or(settings.framerate),
        exposure_ms: query.exposure,
        start_ms: query.at.unwrap_or(0),
        width: size,
        height: size,
        finish: Finish { brightness: settings.brightness, gamma: false },
        ..PreviewOptions::default()
    };
    let _turn = super::HEAVY_WORK.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let png = tokio::task::spawn_blocking(move || {
        let program = match &what {
            Item::Image(i) => Program::Image(ImageView { width: i.width, height: i.height, pixels: &i.pixels }),
            Item::Pattern(p) => Program::Pattern(*p),
            Item::Sequence(sequence, stored) => Program::Sequence { sequence, started_ms: 0, content: stored },
        };
        povpoi_media::preview_program(&program, &options).and_then(|picture| povpoi_media::png_bytes(&picture))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
