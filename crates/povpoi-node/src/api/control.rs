//! Device control: `/api/status`, mode, brightness, frame rate, power profile, live columns,
//! the multi-poi endpoints, the group view (`/api/group`) and the Wi-Fi stubs, with the existing system's paths and field
//! names (shared/spec section 2).
//!
//! Mode, brightness and frame rate are replicated settings: in mirror mode they reach the
//! other poi of the group by the normal sync (push-on-change), which replaces the ESP-NOW
//! link of the old firmware. The power profile and the live column stay on this poi.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use povpoi_core::model::{ImageId, Mode, Selection};
use povpoi_core::show::{IN_STEP_US, Standing};
use povpoi_peer::auth::HEADER_SIGNATURE;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

// The body and field checks shared with the content endpoints, and what may be selected,
// are the portable application's rules: a board answers with the same ones.
use povpoi_app::answers;
use povpoi_app::rules::{self, Choice};
pub(super) use povpoi_app::rules::{color, int_in, required_int, shown};

use super::{ApiError, AppState, JSON_BODY_LIMIT, JsonBody};
use crate::config::{PowerMode, SyncMode};
use crate::history::HistoryEntry;
use crate::library::{Origin, now_ms};
use crate::peers::{Peer, Source};
use crate::sync_client;

/// Most LEDs a live column may carry (two strips of 72; the usual poi has 32).
pub const MAX_LIVE_PIXELS: usize = 144;
/// How long a forwarded peer command may take: it is one small request on the local network.
const PEER_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// What `/api/wifi/*` answers on this node.
const NO_WIFI: &str = "this poi runs on a Linux board and does not manage Wi-Fi; use the system's network settings";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/status", get(status))
        // Replicated settings, answered as on a board (`povpoi_app::content::answer`).
        .route("/api/mode", any(super::content::shared))
        .route("/api/brightness", any(super::content::shared))
        .route("/api/framerate", any(super::content::shared))
        .route("/api/power/mode", post(set_power_mode))
        .route("/api/live", post(live))
        .route("/api/multipoi/status", get(multipoi_status))
        .route("/api/multipoi/syncmode", post(set_sync_mode))
        .route("/api/multipoi/pair", post(pair))
        .route("/api/multipoi/unpair", post(unpair))
        .route("/api/multipoi/peercmd", post(peer_command))
        .route("/api/group", get(group))
        .route("/api/wifi/status", any(no_wifi))
        .route("/api/wifi/scan", any(no_wifi))
        .route("/api/wifi/connect", any(no_wifi))
        .route("/api/wifi/disconnect", any(no_wifi))
}

// ----- body and field checks shared with the content endpoints -----

/// Stores what plays (a replicated setting) and answers what plays now. The check and the
/// write happen under one hold of the library, so an image deleted in between cannot slip
/// through.
async fn select(node: &AppState, choice: Choice) -> Result<(Selection, Option<ImageId>), ApiError> {
    let cue = node.cue();
    Ok(node.library.write(Origin::Local, move |poi| rules::select(poi, choice, now_ms(), cue)).await?)
}

/// The image id as `/api/status` and `/api/group` show it: a string, or null when no
/// image plays.
fn image_id_json(id: Option<ImageId>) -> Value {
    id.map_or(Value::Null, |id| Value::String(id.to_string()))
}

// ----- status and settings -----

/// `GET /api/status`: the shared answer, with the node's output and columns shown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus<'a> {
    #[serde(flatten)]
    playing: answers::Status<'a>,
    sync_mode: SyncMode,
    output: &'a str,
    leds: u16,
    columns_shown: u64,
}

async fn status(State(node): State<AppState>) -> Json<Value> {
    let (settings, image, count) = node.library.read(|poi| (poi.settings(), poi.selected_image(), poi.image_count()));
    let (power, sync_mode) = {
        let c = node.config();
        (c.power_mode, c.sync_mode)
    };
    let mut playing = answers::Status::playing(&settings, image, count);
    // Whether the display is being driven: the player runs for as long as the node does.
    playing.connected = node.player_stats.output_errors.load(Ordering::Relaxed) == 0;
    // The data directory plays the part of the SD card.
    playing.sd_card_present = true;
    playing.power_mode = power.name();
    Json(json!(NodeStatus {
        playing,
        sync_mode,
        output: &node.display.output,
        leds: node.display.leds.get(),
        columns_shown: node.player_stats.columns.load(Ordering::Relaxed),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PowerRequest {
    mode: Option<Value>,
}

async fn set_power_mode(
    State(node): State<AppState>,
    JsonBody(ask): JsonBody<PowerRequest>,
) -> Result<Json<Value>, ApiError> {
    const NAMES: &str = "\"performance\", \"balanced\", \"powersave\" or \"ultrasave\"";
    let Some(value) = ask.mode.filter(|v| !v.is_null()) else {
        return Err(ApiError::bad_request(format!("mode is missing: send {NAMES}")));
    };
    let power = value
        .as_str()
        .and_then(PowerMode::parse)
        .ok_or_else(|| ApiError::bad_request(format!("mode must be {NAMES}, not {}", shown(&value))))?;
    node.update_config(|c| c.power_mode = power)
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    Ok(Json(json!({
        "status": "ok",
        "mode": power,
        "cpuMhz": power.cpu_mhz(),
        "fpsLimit": power.fps_limit(),
        "brightnessCap": power.brightness_cap(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveRequest {
    pixels: Option<Value>,
}

async fn live(State(node): State<AppState>, JsonBody(ask): JsonBody<LiveRequest>) -> Result<Json<Value>, ApiError> {
    let Some(list) = ask.pixels.as_ref().and_then(Value::as_array) else {
        return Err(ApiError::bad_request("pixels must be an array of {r, g, b}, one per LED"));
    };
    if list.is_empty() || list.len() > MAX_LIVE_PIXELS {
        return Err(ApiError::bad_request(format!(
            "pixels has {} entries: send 1-{MAX_LIVE_PIXELS} (one per LED)",
            list.len()
        )));
    }
    let mut column = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let field = format!("pixels[{i}]");
        let rgb = color(Some(value), &field)?.ok_or_else(|| ApiError::bad_request(format!("{field} is null")))?;
        column.push(rgb);
    }
    let count = column.len();
    *node.live.lock().unwrap_or_else(|p| p.into_inner()) = column;
    // Columns come many times a second: only the switch into live mode is a replicated edit.
    if node.library.read(|poi| poi.settings().selection.mode) != Mode::Live {
        select(&node, Choice::At(Selection { mode: Mode::Live, index: 0 })).await?;
    }
    Ok(Json(json!({ "status": "ok", "mode": Mode::Live as u8, "pixels": count })))
}

// ----- multi-poi -----

async fn multipoi_status(State(node): State<AppState>) -> Json<Value> {
    let config = node.config().clone();
    let settings = node.library.read(|poi| poi.settings());
    let mirror = config.sync_mode == SyncMode::Mirror;
    let peers: Vec<Value> = node
        .peers
        .list()
        .iter()
        .map(|p| {
            let paired = p.online && p.sync_group == config.sync_group;
            // A paired poi in mirror mode plays our shared settings; otherwise we do not know.
            let (mode, index, brightness) = if mirror && paired {
                (json!(settings.selection.mode as u8), json!(settings.selection.index), json!(settings.brightness))
            } else {
                (Value::Null, Value::Null, Value::Null)
            };
            json!({
                "name": p.device_name,
                "mac": p.device_id.to_string(),
                "state": if paired { "paired" } else { "discovered" },
                "online": p.online,
                "mode": mode,
                "index": index,
                "brightness": brightness,
            })
        })
        .collect();
    let has_paired = peers.iter().any(|p| p["state"] == "paired");
    Json(json!({
        "syncMode": config.sync_mode,
        "localName": config.device_name,
        "localMac": config.device_id.to_string(),
        "hasPairedPeer": has_paired,
        "autoPair": config.auto_sync,
        "peers": peers,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncModeRequest {
    mode: Option<Value>,
}

async fn set_sync_mode(
    State(node): State<AppState>,
    JsonBody(ask): JsonBody<SyncModeRequest>,
) -> Result<Json<Value>, ApiError> {
    let mode = match ask.mode.as_ref() {
        Some(Value::String(s)) if s == "mirror" => SyncMode::Mirror,
        Some(Value::String(s)) if s == "independent" => SyncMode::Independent,
        Some(n) if n.as_u64() == Some(0) => SyncMode::Mirror,
        Some(n) if n.as_u64() == Some(1) => SyncMode::Independent,
        other => {
            let got = other.map_or_else(|| "nothing".to_owned(), shown);
            return Err(ApiError::bad_request(format!(
                "mode must be \"mirror\" (0) or \"independent\" (1), not {got}"
            )));
        }
    };
    node.update_config(|c| c.sync_mode = mode)
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    Ok(Json(json!({ "status": "ok", "syncMode": mode })))
}

async fn pair(State(node): State<AppState>) -> Result<Json<Value>, ApiError> {
    node.update_config(|c| c.auto_sync = true)
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    node.refresh_discovery();
    let group = node.config().sync_group.clone();
    Ok(Json(json!({
        "status": "ok",
        "message": format!("auto-sync on; looking for poi in sync group {group:?}"),
        "autoPair": true,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpairRequest {
    index: Option<Value>,
}

async fn unpair(State(node): State<AppState>, JsonBody(ask): JsonBody<UnpairRequest>) -> Result<Json<Value>, ApiError> {
    let index = required_int(ask.index.as_ref(), "index", 0, u64::from(u16::MAX))? as usize;
    let peers = node.peers.list();
    let Some(peer) = peers.get(index) else {
        return Err(ApiError::not_found(format!(
            "no peer at index {index}: /api/multipoi/status lists {} peer(s)",
            peers.len()
        )));
    };
    node.peers.forget(peer.device_id);
    // An address added by hand would be probed and listed again within seconds.
    node.update_manual_peers(|list| list.retain(|a| *a != peer.addr))
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    Ok(Json(json!({
        "status": "ok",
        "message": format!("forgot {} ({})", peer.device_name, peer.device_id),
    })))
}

/// Drives one peer: the body without `peer` and `cmd` goes to that peer's `/api/{cmd}`.
async fn peer_command(
    State(node): State<AppState>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cmd = match body.remove("cmd") {
        Some(Value::String(cmd))
            if matches!(cmd.as_str(), "mode" | "pattern" | "brightness" | "framerate" | "identify") =>
        {
            cmd
        }
        other => {
            let got = other.as_ref().map_or_else(|| "nothing".to_owned(), shown);
            return Err(ApiError::bad_request(format!(
                "cmd must be \"mode\", \"pattern\", \"brightness\", \"framerate\" or \"identify\", not {got}"
            )));
        }
    };
    let peers = node.peers.list();
    let peer = match body.remove("peer") {
        Some(Value::String(name)) => node
            .peers
            .find(&name)
            .ok_or_else(|| ApiError::not_found(format!("no known peer {name:?}: see /api/multipoi/status")))?,
        Some(value @ Value::Number(_)) => {
            let index = required_int(Some(&value), "peer", 0, u64::from(u16::MAX))? as usize;
            peers.get(index).cloned().ok_or_else(|| {
                ApiError::not_found(format!(
                    "no peer at index {index}: /api/multipoi/status lists {} peer(s)",
                    peers.len()
                ))
            })?
        }
        other => {
            let got = other.as_ref().map_or_else(|| "nothing".to_owned(), shown);
            return Err(ApiError::bad_request(format!(
                "peer must be an index into /api/multipoi/status peers or a deviceId, not {got}"
            )));
        }
    };
    let unreachable =
        |e: String| ApiError::new(StatusCode::BAD_GATEWAY, format!("peer {} did not answer: {e}", peer.device_name));
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal(e.to_string()))?;
    // Signed and sealed like every request between poi, so a peer protected by the group's
    // key takes it and nobody else can read or redirect it.
    let path = format!("/api/{cmd}");
    let device = peer.device_id.to_string();
    let to = sync_client::Destination { addr: peer.addr, device: &device };
    let (call, check) =
        sync_client::peer_request(node.as_ref(), reqwest::Method::POST, to, &path, "application/json", &bytes);
    let answer = call.timeout(PEER_COMMAND_TIMEOUT).send().await.map_err(|e| unreachable(e.to_string()))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let signature = answer.headers().get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = sync_client::read_capped(answer, JSON_BODY_LIMIT).await.map_err(|e| unreachable(e.to_string()))?;
    // A poi that took the request signs (and seals) its answer, whatever the status; one
    // that refused it could not, and its error is shown as it came.
    let text = if signature.is_some() || status.is_success() {
        check
            .open_answer(status.as_u16(), signature.as_deref(), text)
            .map_err(|e| unreachable(format!("answer {e}")))?
    } else {
        text
    };
    let value: Value = serde_json::from_slice(&text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("peer {} answered with something that is not JSON", peer.device_name),
        )
    })?;
    // The peer's refusal is not this poi's: passed on as 401, a page would ask its person
    // for this poi's key.
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        let why = value["error"].as_str().unwrap_or("refused");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("peer {} refused the command ({why}): set the same pairing key on both poi", peer.device_name),
        ));
    }
    Ok((status, Json(value)))
}

// ----- the group view -----

/// How long `/api/group` waits for each peer's status (all asked at once): the view is
/// refreshed every few seconds, and a poi slower than this is as good as unreachable to a
/// performer looking at it.
const GROUP_STATUS_TIMEOUT: Duration = Duration::from_millis(1_200);
/// Largest peer status read: the real one is a few hundred bytes.
const GROUP_STATUS_LIMIT: usize = 16 * 1024;

/// A peer's `/api/status`, or `None` when it does not answer in time with a JSON object.
///
/// The request is signed like every request between poi, so a peer whose status needs the
/// group's key gives it; a signed answer is checked. A plain answer is taken too: a peer
/// serves its status to anyone (nothing of the library is in it), so it does not sign it.
async fn peer_status(node: &AppState, peer: &Peer) -> Option<Map<String, Value>> {
    let device = peer.device_id.to_string();
    let to = sync_client::Destination { addr: peer.addr, device: &device };
    let (call, check) =
        sync_client::peer_request(node.as_ref(), reqwest::Method::GET, to, "/api/status", "application/json", &[]);
    let fetch = async {
        let answer = call.send().await.ok()?;
        let status = answer.status().as_u16();
        let signature = answer.headers().get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if !answer.status().is_success() {
            return None;
        }
        let text = sync_client::read_capped(answer, GROUP_STATUS_LIMIT).await.ok()?;
        let text = match signature {
            Some(signature) => check.open_answer(status, Some(&signature), text).ok()?,
            None => text,
        };
        serde_json::from_slice::<Map<String, Value>>(&text).ok()
    };
    tokio::time::timeout(GROUP_STATUS_TIMEOUT, fetch).await.ok().flatten()
}

/// The fields of a peer's status the group view shows, each of the type this poi gives
/// it (null when missing or of another type: an older or a broken peer).
fn status_fields(status: Option<&Map<String, Value>>) -> Map<String, Value> {
    let get = |name: &str| status.and_then(|s| s.get(name));
    let number = |name: &str| get(name).and_then(Value::as_u64).map_or(Value::Null, Value::from);
    let text =
        |name: &str| get(name).and_then(Value::as_str).filter(|t| t.len() <= 64).map_or(Value::Null, Value::from);
    let mut fields = Map::new();
    fields.insert("mode".into(), number("mode"));
    fields.insert("index".into(), number("index"));
    fields.insert("imageId".into(), text("imageId"));
    fields.insert("brightness".into(), number("brightness"));
    fields.insert("syncMode".into(), text("syncMode"));
    fields.insert("powerMode".into(), text("powerMode"));
    fields
}

/// How the last sync session with a peer ended: "ok", "refused" (its key or clock did not
/// let this poi in, or the other way round), "stalled" (no answer in time) or "failed".
fn result_name(entry: &HistoryEntry) -> &'static str {
    match entry {
        e if e.ok => "ok",
        e if e.refused => "refused",
        e if e.stalled => "stalled",
        _ => "failed",
    }
}

/// What the web UI's group view shows: this poi and every online or hand-added peer, each
/// peer's status asked from it at once.
async fn group(State(node): State<AppState>) -> Json<Value> {
    let config = node.config().clone();
    let (settings, image) = node.library.read(|poi| (poi.settings(), poi.selected_image()));
    let clock = node.show.status();
    let peers: Vec<Peer> = node.peers.list().into_iter().filter(|p| p.online || p.source == Source::Manual).collect();
    let statuses = futures_util::future::join_all(peers.iter().map(|p| peer_status(&node, p))).await;
    let mut listed: Vec<Value> = peers
        .iter()
        .zip(&statuses)
        .map(|(peer, status)| {
            // In step with this peer: its clock measured, on our timeline, no step pending
            // and within the in-step bound (what /api/clock's inStep says of the group).
            let in_step = clock.plan.is_none()
                && clock.peers.iter().any(|c| {
                    c.device == peer.device_id
                        && c.timeline == Some(clock.timeline)
                        && c.offset.is_some_and(|o| o.unsigned_abs() <= IN_STEP_US)
                });
            let last = node.history.last_with(&peer.device_id.to_string());
            let mut entry = status_fields(status.as_ref());
            entry.insert("deviceId".into(), json!(peer.device_id.to_string()));
            entry.insert("deviceName".into(), json!(peer.device_name));
            entry.insert("address".into(), json!(peer.addr.to_string()));
            entry.insert("reachable".into(), json!(status.is_some()));
            // These boards have no battery gauge.
            entry.insert("battery".into(), Value::Null);
            entry.insert("inStep".into(), json!(in_step));
            entry.insert("lastSync".into(), json!(last.as_ref().map(|e| e.at)));
            entry.insert("lastResult".into(), json!(last.as_ref().map(result_name)));
            Value::Object(entry)
        })
        .collect();
    // Addresses given by hand where no poi has answered yet: listed, so the performer sees
    // the poi they added is not there.
    let manual = node.manual_peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for addr in manual.into_iter().filter(|a| !peers.iter().any(|p| p.addr == *a)) {
        let mut entry = status_fields(None);
        entry.insert("deviceId".into(), Value::Null);
        entry.insert("deviceName".into(), Value::Null);
        entry.insert("address".into(), json!(addr.to_string()));
        entry.insert("reachable".into(), json!(false));
        entry.insert("battery".into(), Value::Null);
        entry.insert("inStep".into(), json!(false));
        entry.insert("lastSync".into(), Value::Null);
        entry.insert("lastResult".into(), Value::Null);
        listed.push(Value::Object(entry));
    }
    Json(json!({
        "self": {
            "deviceId": config.device_id.to_string(),
            "deviceName": config.device_name,
            "address": node.addr.to_string(),
            "mode": settings.selection.mode as u8,
            "index": settings.selection.index,
            "imageId": image_id_json(image),
            "brightness": settings.brightness,
            "syncMode": config.sync_mode,
            "powerMode": config.power_mode,
            "battery": null,
            "inStep": clock.standing == Standing::InStep,
        },
        "peers": listed,
    }))
}

async fn no_wifi() -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, NO_WIFI)
}
