//! `/api/sync/*`: peer sync. The existing system's endpoints (status, discover, execute,
//! data, push) with their field names, the compact peer protocol (`POST /api/sync/v1`),
//! blobs by hash, history, conflicts and peers added by address.
//!
//! When the group has a pairing key, everything a peer uses to read or change the library
//! (`v1`, `blobs`, `data`, `push`) needs a request signed with it; answers to `v1` are signed
//! back.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use povpoi_app::content;
use povpoi_core::device::DeviceId;
use povpoi_core::hash::BlobHash;
use povpoi_core::model::{ImageId, Mode, Pattern, PatternKind, Rgb, Selection};
use povpoi_core::sync::{Categories, Direction, Key, Request, SyncOptions};
use povpoi_core::wire::{self, legacy::SyncData};
use povpoi_peer::auth::{HEADER_DEVICE, HEADER_PORT, HEADER_SEALED, HEADER_SIGNATURE};
use povpoi_peer::exchange::SYNC_PATH;
use povpoi_peer::respond::{self, Admitted, Incoming};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{SignedExchange, authenticate};
use super::{ApiError, AppState, JsonBody, JsonOnly, RawBody, parse_json};
use crate::config::SyncMode;
use crate::discovery::Sighting;
use crate::history::HistoryEntry;
use crate::library::{Origin, now_ms};
use crate::peers::Source;
use crate::sync_client;

/// Largest peer-protocol message accepted (a delta of a full library, or 128 KiB of pixels).
const SYNC_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Most peer addresses given by hand: each is probed in turn, so the list must stay short.
const MAX_MANUAL_PEERS: usize = 16;
/// Longest `/api/sync/execute` waits for its sessions: a person is waiting, and HTTP
/// clients often give up after 10 s. A session not done by then is stopped (it resumes at
/// the next one) and reported as stalled.
const EXECUTE_DEADLINE: Duration = Duration::from_secs(8);
/// How long `discover` waits for answers before it reports.
const DISCOVER_WAIT: Duration = Duration::from_millis(1_500);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sync/status", get(status))
        .route("/api/sync/discover", post(discover))
        .route("/api/sync/execute", post(execute))
        .route("/api/sync/data", get(data))
        .route("/api/sync/push", post(push))
        .route("/api/sync/history", get(history))
        .route("/api/sync/conflicts", get(conflicts))
        .route("/api/sync/conflicts/resolve", post(resolve))
        .route("/api/sync/peers", get(peers).post(add_peer))
        .route("/api/sync/peers/{address}", axum::routing::delete(remove_peer))
        .route(SYNC_PATH, post(message).layer(DefaultBodyLimit::max(SYNC_BODY_LIMIT)))
        .route("/api/blobs/{hash}", get(blob))
}

async fn status(State(node): State<AppState>) -> Json<Value> {
    let peers = node.peers.list();
    let digest = node.library.digest();
    let c = node.config();
    Json(json!(povpoi_app::answers::SyncStatus::of(super::device::device_config(&c), &digest, peers.iter())))
}

fn online_peers(node: &AppState) -> Vec<Value> {
    node.peers
        .list()
        .iter()
        .filter(|p| p.online)
        .map(|p| {
            json!({"deviceId": p.device_id.to_string(), "deviceName": p.device_name, "ipAddress": p.addr.ip().to_string(), "port": p.addr.port()})
        })
        .collect()
}

async fn discover(State(node): State<AppState>) -> Json<Value> {
    node.refresh_discovery();
    tokio::time::sleep(DISCOVER_WAIT).await;
    let peers = online_peers(&node);
    Json(json!({ "status": "ok", "peersFound": peers.len(), "peers": peers }))
}

fn yes() -> bool {
    true
}

fn auto() -> String {
    "auto".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecuteRequest {
    #[serde(default = "auto")]
    peer_id: String,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default = "yes")]
    sync_images: bool,
    #[serde(default = "yes")]
    sync_patterns: bool,
    #[serde(default = "yes")]
    sync_settings: bool,
}

async fn execute(
    State(node): State<AppState>,
    JsonOnly(ask): JsonOnly<ExecuteRequest>,
) -> Result<Json<Value>, ApiError> {
    let direction = match ask.direction.as_deref().unwrap_or("bidirectional") {
        "bidirectional" => Direction::Bidirectional,
        "push" => Direction::Push,
        "pull" => Direction::Pull,
        other => {
            return Err(ApiError::bad_request(format!(
                "direction {other:?} is not one of \"bidirectional\", \"push\", \"pull\""
            )));
        }
    };
    let categories = Categories { images: ask.sync_images, patterns: ask.sync_patterns, settings: ask.sync_settings };
    let options = SyncOptions { direction, categories };
    let entries = if ask.peer_id == "auto" {
        let entries = sync_client::sync_with_online_peers(node.as_ref(), options, "manual", EXECUTE_DEADLINE).await;
        if entries.is_empty() {
            let group = node.config().sync_group.clone();
            return Err(ApiError::not_found(format!("no online peer in sync group {group:?}: try /api/sync/discover")));
        }
        entries
    } else if let Some(peer) = node.peers.find(&ask.peer_id) {
        vec![sync_client::sync_with(node.as_ref(), peer.addr, Some(&peer), options, "manual", EXECUTE_DEADLINE).await]
    } else if let Ok(addr) = ask.peer_id.parse::<SocketAddr>() {
        // An address not met yet: the session learns who answers there and lists it.
        vec![sync_client::sync_with(node.as_ref(), addr, None, options, "manual", EXECUTE_DEADLINE).await]
    } else {
        return Err(ApiError::not_found(format!(
            "no known peer {:?}: give a deviceId, name or address from /api/sync/status, or \"auto\"",
            ask.peer_id
        )));
    };
    let sum = |f: fn(&HistoryEntry) -> u32| entries.iter().map(f).sum::<u32>();
    let failed: Vec<&HistoryEntry> = entries.iter().filter(|e| !e.ok).collect();
    let body = json!({
        "status": if failed.is_empty() { "ok" } else { "error" },
        "itemsSynced": sum(|e| e.records_received + e.records_sent),
        "imagesAdded": sum(|e| e.images_added),
        "patternsAdded": sum(|e| e.patterns_added),
        "settingsUpdated": sum(|e| e.settings_updated),
        "sessions": entries,
    });
    if failed.len() == entries.len() {
        let why: Vec<&str> = failed.iter().filter_map(|e| e.error.as_deref()).collect();
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("sync failed: {}", why.join("; "))));
    }
    Ok(Json(body))
}

async fn data(
    State(node): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<SyncData>, ApiError> {
    // Answered in clear, signed or not: the listing of the existing system, for its scripts.
    authenticate(&node, &method, &uri, &headers, &[]).await?;
    let name = node.config().device_name.clone();
    Ok(Json(node.library.read(|poi| SyncData::of(poi, &name))))
}

/// The body of the existing system's `/api/sync/push`: the listing shapes, every field optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyPush {
    #[serde(default)]
    images: Vec<LegacyImage>,
    #[serde(default)]
    patterns: Vec<LegacyPattern>,
    settings: Option<LegacySettings>,
    // deviceId and deviceName of a full listing are accepted and ignored.
}

#[derive(Deserialize)]
struct LegacyImage {
    id: String,
    name: Option<String>,
    #[serde(default)]
    timestamp: u64,
}

#[derive(Deserialize)]
struct LegacyColor {
    r: u8,
    g: u8,
    b: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyPattern {
    id: u8,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    timestamp: u64,
    color1: Option<LegacyColor>,
    color2: Option<LegacyColor>,
    speed: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacySettings {
    brightness: Option<u8>,
    framerate: Option<u16>,
    mode: Option<u8>,
    index: Option<u16>,
    #[serde(default)]
    timestamp: u64,
}

/// Whether a pushed entry stamped `pushed` replaces our version of `key`: when it carries no
/// time (0), or a later one than ours. The old firmware's uptime stamps lose to real ones.
fn newer(poi: &crate::library::Poi, key: &Key, pushed: u64) -> bool {
    pushed == 0 || poi.visible(key).is_none_or(|r| pushed > r.stamp.millis)
}

async fn push(
    State(node): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    authenticate(&node, &method, &uri, &headers, &body).await?;
    let pushed: LegacyPush = parse_json(&body)?;
    // Validate everything first, so a bad entry changes nothing.
    let mut patterns = Vec::new();
    for p in &pushed.patterns {
        let kind = PatternKind::from_id(p.kind)?;
        let rgb = |c: &Option<LegacyColor>| c.as_ref().map(|c| Rgb::new(c.r, c.g, c.b));
        if p.id >= povpoi_core::model::PATTERN_SLOTS {
            return Err(ApiError::bad_request(format!("pattern id {} is not a slot 0-17", p.id)));
        }
        // The values are checked here too (speed 1-255), not halfway through applying them.
        Pattern::new(kind, Rgb::new(255, 0, 0), Rgb::new(0, 0, 255), p.speed.unwrap_or(50))?;
        patterns.push((p.id, kind, rgb(&p.color1), rgb(&p.color2), p.speed, p.timestamp));
    }
    let mut images = Vec::new();
    for i in &pushed.images {
        let id: ImageId =
            i.id.parse().map_err(|_| ApiError::bad_request(format!("image id {:?} is not an image id", i.id)))?;
        if let Some(name) = &i.name {
            povpoi_core::model::validate_name(name)
                .map_err(|e| ApiError::bad_request(format!("image {:?} name {name:?}: {e}", i.id)))?;
        }
        images.push((id, i.name.clone(), i.timestamp));
    }
    if let Some(s) = &pushed.settings {
        if let Some(fps) = s.framerate {
            povpoi_core::model::check_framerate(fps)?;
        }
        if let Some(mode) = s.mode {
            Mode::from_id(mode)?;
        }
    }
    let settings = pushed.settings;
    let cue = node.cue();
    let result = node
        .library
        .write(Origin::Peer, move |poi| -> Result<Value, povpoi_core::sync::Error> {
            let now = now_ms();
            let (mut images_updated, mut patterns_updated, mut settings_updated) = (0u32, 0u32, 0u32);
            let mut skipped = Vec::new();
            let missing = poi.missing_blobs();
            for (id, name, stamp) in images {
                match (poi.image(id).cloned(), name) {
                    (None, _) => skipped.push(json!({"item": id.to_string(), "reason": "pixels are not part of /api/sync/push: upload the image with POST /api/image"})),
                    (Some(meta), Some(_)) if missing.contains(&meta.pixels()) => skipped.push(json!({"item": id.to_string(), "reason": "this poi is still fetching the image's pixels from a peer: push again later"})),
                    (Some(meta), Some(name)) if meta.name() != name && newer(poi, &Key::Image(id), stamp) => {
                        poi.rename_image(id, &name, now)?;
                        images_updated += 1;
                    }
                    _ => {}
                }
            }
            for (slot, kind, c1, c2, speed, stamp) in patterns {
                let old = poi.pattern(slot).copied();
                let base = old.unwrap_or(Pattern::new(kind, Rgb::new(255, 0, 0), Rgb::new(0, 0, 255), 50)?);
                let next = Pattern::new(kind, c1.unwrap_or(base.color1()), c2.unwrap_or(base.color2()), speed.unwrap_or(base.speed()))?;
                if old.as_ref() != Some(&next) && newer(poi, &Key::Pattern(slot), stamp) {
                    poi.set_pattern(slot, next, now, cue)?;
                    patterns_updated += 1;
                }
            }
            if let Some(s) = settings {
                let current = poi.settings();
                if let Some(b) = s.brightness.filter(|b| *b != current.brightness && newer(poi, &Key::Brightness, s.timestamp)) {
                    poi.set_brightness(b, now, cue)?;
                    settings_updated += 1;
                }
                if let Some(f) = s.framerate.filter(|f| *f != current.framerate && newer(poi, &Key::Framerate, s.timestamp)) {
                    poi.set_framerate(f, now, cue)?;
                    settings_updated += 1;
                }
                if s.mode.is_some() || s.index.is_some() {
                    let selection = Selection {
                        mode: s.mode.map_or(Ok(current.selection.mode), Mode::from_id)?,
                        index: s.index.unwrap_or(current.selection.index),
                    };
                    if selection != current.selection && newer(poi, &Key::Selection, s.timestamp) {
                        poi.set_selection(selection, now, cue)?;
                        settings_updated += 1;
                    }
                }
            }
            Ok(json!({
                "status": "ok",
                "imagesUpdated": images_updated,
                "patternsUpdated": patterns_updated,
                "settingsUpdated": settings_updated,
                "skipped": skipped,
            }))
        })
        .await?;
    Ok(Json(result))
}

async fn history(State(node): State<AppState>) -> Json<Vec<HistoryEntry>> {
    Json(node.history.newest_first())
}

fn version_name(dot: povpoi_core::sync::Dot) -> String {
    format!("{}:{}", dot.replica, dot.seq)
}

/// A version's value in the shape the API already gives that kind: an image as
/// `{id, name, width, height}`, a pattern as `GET /api/patterns/{slot}`, a sequence as
/// `GET /api/sequences/{slot}`; null for a deletion.
fn value_json(key: Key, value: &povpoi_core::sync::Value) -> Value {
    use povpoi_core::sync::Value as V;
    match (key, value) {
        (Key::Image(id), V::Image(meta)) => json!({
            "id": id.to_string(),
            "name": meta.name(),
            "width": meta.width(),
            "height": meta.height(),
        }),
        (Key::Pattern(slot), V::Pattern(pattern)) => json!(content::pattern_entry(slot, pattern)),
        (Key::Sequence(slot), V::Sequence(sequence)) => json!(content::sequence_entry(slot, sequence)),
        _ => Value::Null,
    }
}

/// `kind` and `id` or `slot` of a conflicted item, merged into its listing.
fn item_json(key: Key) -> Value {
    match key {
        Key::Image(id) => json!({ "kind": "image", "id": id.to_string() }),
        Key::Pattern(slot) => json!({ "kind": "pattern", "slot": slot }),
        Key::Sequence(slot) => json!({ "kind": "sequence", "slot": slot }),
        // Settings settle silently and never show up as conflicts.
        _ => json!({ "kind": "setting" }),
    }
}

async fn conflicts(State(node): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = node.library.read(|poi| {
        poi.conflicts()
            .map(|c| {
                let describe = |r: &povpoi_core::sync::Record, shown: bool| {
                    json!({
                        "version": version_name(r.dot),
                        "timestamp": r.stamp.millis,
                        "shown": shown,
                        "deleted": r.value.is_deleted(),
                        "value": value_json(c.key, &r.value),
                    })
                };
                let mut versions = vec![describe(c.winner, true)];
                versions.extend(c.copies.iter().map(|r| describe(r, false)));
                let mut item = item_json(c.key);
                item["item"] = json!(c.key.to_string());
                item["versions"] = json!(versions);
                item
            })
            .collect()
    });
    Json(json!({ "conflicts": list }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ResolveRequest {
    item: Option<Value>,
    keep: Option<Value>,
    keep_both: Option<Value>,
}

/// How a conflict is settled.
enum Settle {
    /// Keep this version (its name as listed) and drop the others.
    Keep(String),
    /// Keep the shown version in place and every other one as a new item.
    Both,
}

async fn resolve(
    State(node): State<AppState>,
    JsonBody(ask): JsonBody<ResolveRequest>,
) -> Result<Json<Value>, ApiError> {
    let item = match ask.item {
        Some(Value::String(item)) => item,
        _ => return Err(ApiError::bad_request("item is missing: send the item as GET /api/sync/conflicts lists it")),
    };
    let settle = match (ask.keep.filter(|v| !v.is_null()), ask.keep_both.filter(|v| !v.is_null())) {
        (Some(Value::String(keep)), None) => Settle::Keep(keep),
        (None, Some(Value::Bool(true))) => Settle::Both,
        (Some(_), Some(_)) => return Err(ApiError::bad_request("send keep or keepBoth, not both")),
        _ => {
            return Err(ApiError::bad_request(
                "send keep (a version string from GET /api/sync/conflicts) or keepBoth: true",
            ));
        }
    };
    let cue = node.cue();
    // Found and settled under one hold of the library, so a merge in between cannot change
    // which versions there are.
    let added = node
        .library
        .write(Origin::Local, move |poi| -> Result<Vec<Key>, ApiError> {
            let Some(conflict) = poi.conflicts().find(|c| c.key.to_string() == item) else {
                return Err(ApiError::not_found(format!("no conflict on {item:?}: see GET /api/sync/conflicts")));
            };
            let key = conflict.key;
            match settle {
                Settle::Keep(keep) => {
                    let dot = std::iter::once(conflict.winner)
                        .chain(conflict.copies.iter().copied())
                        .find(|r| version_name(r.dot) == keep)
                        .map(|r| r.dot)
                        .ok_or_else(|| ApiError::not_found(format!("{item:?} has no version {keep:?}")))?;
                    poi.resolve(key, dot, now_ms(), cue)?;
                    Ok(Vec::new())
                }
                // No empty slot for the other version is a 409 saying to clear one.
                Settle::Both => Ok(poi.keep_both(key, now_ms(), cue)?),
            }
        })
        .await?;
    let added: Vec<Value> = added.into_iter().map(item_json).collect();
    Ok(Json(json!({ "status": "ok", "message": "conflict resolved", "added": added })))
}

async fn peers(State(node): State<AppState>) -> Json<Value> {
    let manual = node.manual_peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({ "addresses": manual, "online": online_peers(&node) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPeer {
    address: String,
}

/// A peer address as a person writes it: `IP:PORT`, or an IP alone for port 80.
fn peer_address(text: &str) -> Result<SocketAddr, ApiError> {
    text.parse()
        .or_else(|_| format!("{text}:80").parse())
        .map_err(|_| ApiError::bad_request(format!("address {text:?} is not IP:PORT (e.g. 192.168.4.2:80)")))
}

async fn add_peer(State(node): State<AppState>, JsonOnly(ask): JsonOnly<AddPeer>) -> Result<Json<Value>, ApiError> {
    let addr = peer_address(&ask.address)?;
    if addr == node.addr {
        return Err(ApiError::bad_request("that is this poi's own address"));
    }
    let mut full = false;
    node.update_manual_peers(|list| {
        if !list.contains(&addr) {
            full = list.len() >= MAX_MANUAL_PEERS;
            if !full {
                list.push(addr);
            }
        }
    })
    .map_err(|e| ApiError::internal(format!("cannot save: {e}")))?;
    if full {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("already {MAX_MANUAL_PEERS} peer addresses: remove one first (DELETE /api/sync/peers/IP:PORT)"),
        ));
    }
    node.refresh_discovery();
    Ok(Json(json!({ "status": "ok", "message": format!("peer address {addr} added") })))
}

/// Removes an address added by hand, whether or not a poi ever answered there.
async fn remove_peer(
    State(node): State<AppState>,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let text = address.map(|Path(a)| a).map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
    let addr = peer_address(&text)?;
    let mut found = false;
    node.update_manual_peers(|list| {
        found = list.contains(&addr);
        list.retain(|a| *a != addr);
    })
    .map_err(|e| ApiError::internal(format!("cannot save: {e}")))?;
    if !found {
        return Err(ApiError::not_found(format!(
            "{addr} is not a peer address added by hand: see GET /api/sync/peers"
        )));
    }
    // A poi seen there is forgotten too, or it would stay listed until it timed out.
    if let Some(peer) = node.peers.list().into_iter().find(|p| p.addr == addr && p.source == Source::Manual) {
        node.peers.forget(peer.device_id);
    }
    Ok(Json(json!({ "status": "ok", "message": format!("peer address {addr} removed") })))
}

/// The peer protocol: one postcard `Request` in, one `Response` out; both sealed and
/// signed when the group has a key.
async fn message(
    State(node): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = authenticate(&node, &method, &uri, &headers, &body).await?;
    let sender = headers.get(HEADER_DEVICE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (request, records_in) = match open_message(&node, signed.as_ref(), &headers, &body) {
        Ok(request) => request,
        Err(refusal) => {
            // The sender passed the key check: its session did not go through.
            node.history.answered(&sender, now_ms(), |entry| {
                entry.ok = false;
                entry.error = Some(refusal.message.clone());
            });
            return Err(refusal);
        }
    };
    let caller = match &request {
        Request::Begin { summary, .. } => summary.device.to_string(),
        _ => sender,
    };
    if let Request::Begin { summary, options } = &request {
        note_caller(&node, &headers, from, summary.device, &summary.group, summary.protocol);
        let name = node.peers.find(&caller).map(|p| p.device_name).unwrap_or_default();
        node.history.answering(HistoryEntry {
            at: now_ms(),
            peer_id: caller.clone(),
            peer_name: name,
            ip_address: from.to_string(),
            direction: sync_client::direction_name(options.direction).into(),
            trigger: "peer".into(),
            ..HistoryEntry::default()
        });
    }
    let response = node.library.write(Origin::Peer, move |poi| poi.respond(request, now_ms())).await;
    let (answer, signature) =
        respond::answer(signed.as_ref().map(SignedExchange::exchange), wire::to_bytes(&response), &mut rand::rng());
    node.history.answered(&caller, now_ms(), |entry| {
        count_answered(entry, records_in, &response);
        entry.round_trips += 1;
        entry.bytes += (body.len() + answer.len()) as u64;
    });
    Ok(octets(answer, signature))
}

/// A peer message opened and decoded (settings left out in independent mode), with the
/// number of records it carries.
fn open_message(
    node: &AppState,
    signed: Option<&SignedExchange>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Request, u32), ApiError> {
    let (keyed, independent) = {
        let config = node.config();
        (config.group_key.is_some(), config.sync_mode == SyncMode::Independent)
    };
    // `authenticate` let it in: signed by a peer, or with the key as a bearer, or open.
    let admitted = Admitted::of(signed.map(SignedExchange::exchange), keyed);
    let incoming = Incoming { admitted, sealed: headers.get(HEADER_SEALED).map(HeaderValue::as_bytes), body };
    respond::open_request(incoming, independent).map_err(|refusal| povpoi_app::api::ApiError::from(refusal).into())
}

/// Adds to an answered session's entry what one message brought and its answer took.
fn count_answered(entry: &mut HistoryEntry, records_in: u32, response: &povpoi_core::sync::Response) {
    use povpoi_core::sync::Response as R;
    entry.records_received += records_in;
    match response {
        R::Begun { delta: Some(delta), .. } => entry.records_sent += delta.records.len() as u32,
        R::Blobs { blobs, .. } => entry.blobs_sent += blobs.len() as u32,
        R::Stored(kept) => entry.blobs_received += kept,
        R::Refused(why) => {
            entry.ok = false;
            entry.error = Some(why.clone());
        }
        _ => {}
    }
}

/// The `200` answer carrying `bytes`, with the signature from [`respond::answer`].
fn octets(bytes: Vec<u8>, signature: Option<String>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(signature) = signature {
        headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(&signature).expect("hex is a header value"));
    }
    (StatusCode::OK, headers, bytes).into_response()
}

/// A peer that calls us is a peer we can call back (networks without multicast).
fn note_caller(node: &AppState, headers: &HeaderMap, from: SocketAddr, device: DeviceId, group: &str, protocol: u16) {
    let known = node.peers.find(&device.to_string());
    let port = headers.get(HEADER_PORT).and_then(|v| v.to_str().ok());
    if let Some(seen) = Sighting::caller(known.as_ref(), device, group, protocol, from.ip(), port) {
        node.peer_seen(&seen, Source::Contact);
    }
}

async fn blob(
    State(node): State<AppState>,
    hash: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let signed = authenticate(&node, &method, &uri, &headers, &[]).await?;
    let Path(hash) = hash.map_err(|e| ApiError::bad_request(format!("bad blob path: {e}")))?;
    let bytes = hex::decode(&hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::bad_request("a blob hash is 64 hex digits (SHA-256)"))?;
    let hash = BlobHash(bytes);
    let pixels = node.library.write(Origin::Local, move |poi| poi.image_pixels(&hash)).await?;
    let pixels = pixels.ok_or_else(|| ApiError::not_found("no such blob on this poi"))?;
    // A peer asks signed and gets the pixels sealed; a person with the bearer key gets them plain.
    let (body, signature) = respond::answer(signed.as_ref().map(SignedExchange::exchange), pixels, &mut rand::rng());
    Ok(octets(body, signature))
}
