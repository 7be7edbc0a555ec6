//! What the strip shows: `GET /api/strip` gives the columns the `sim` output kept, so the
//! web UI (or a test) can draw the poi live without hardware.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/strip", get(strip))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StripQuery {
    /// Only columns numbered after this one.
    after: Option<u64>,
}

/// `{leds, shown, columns}`: `shown` numbers the last column; each column is a hex string of
/// `rrggbb` per LED, LED 0 (the handle) first, as the LEDs get it (brightness and gamma applied).
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
    Ok(Json(json!({ "leds": node.display.leds, "shown": shown, "columns": columns })))
}
