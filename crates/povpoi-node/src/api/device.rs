//! `/api/device/config`: who this poi is, how it syncs and what strip it drives;
//! `/api/identify`: flash this poi's strip so a performer can find it.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use povpoi_app::answers;
use povpoi_app::device::{Change, ConfigChange};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::control::int_in;
use super::{ApiError, AppState, JsonOnly, RawBody, ok, parse_json};

use crate::config;
use crate::events::Event;
use crate::library::Origin;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/device/config", get(get_config).post(set_config)).route("/api/identify", post(identify))
}

/// Seconds a poi flashes when not told.
pub const IDENTIFY_DEFAULT_S: u64 = 3;
/// Longest flash asked for: long enough to walk up to a poi, short enough not to spoil a show.
pub const IDENTIFY_MAX_S: u64 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyRequest {
    seconds: Option<Value>,
}

/// `POST /api/identify` (`{"seconds": 1-10}`, or no body for 3 s): the strip flashes white
/// and dark four times a second over whatever plays, then the show goes on; watchers of the
/// event stream get an `identify` event.
async fn identify(State(node): State<AppState>, RawBody(body): RawBody) -> Result<Json<Value>, ApiError> {
    let seconds = if body.iter().all(u8::is_ascii_whitespace) {
        IDENTIFY_DEFAULT_S
    } else {
        let ask: IdentifyRequest = parse_json(&body)?;
        int_in(ask.seconds.as_ref(), "seconds", 1, IDENTIFY_MAX_S)?.unwrap_or(IDENTIFY_DEFAULT_S)
    };
    node.identify.start(std::time::Duration::from_secs(seconds));
    let (device_id, device_name) = {
        let c = node.config();
        (c.device_id.to_string(), c.device_name.clone())
    };
    node.events.send(Event::Identify { device_id: device_id.clone(), device_name, seconds });
    Ok(Json(json!({ "status": "ok", "deviceId": device_id, "seconds": seconds })))
}

/// The shared part of `GET /api/device/config` (also in `GET /api/sync/status`).
pub(super) fn device_config(c: &config::DeviceConfig) -> answers::DeviceConfig<'_> {
    answers::DeviceConfig {
        device_id: c.device_id.to_string(),
        device_name: &c.device_name,
        sync_group: &c.sync_group,
        auto_sync: c.auto_sync,
        sync_interval: c.sync_interval,
        protected: c.group_key.is_some(),
        sync_mode: answers::sync_mode_name(c.sync_mode == config::SyncMode::Independent),
    }
}

/// `GET /api/device/config`: the shared answer, with the node's power mode, peers given by
/// address and strip.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeDeviceConfig<'a> {
    #[serde(flatten)]
    device: answers::DeviceConfig<'a>,
    power_mode: config::PowerMode,
    peer_addresses: &'a [std::net::SocketAddr],
    led_count: u16,
    color_order: &'static str,
    features: &'static [&'static str],
}

/// What a node serves beyond what every poi does ([`answers::FEATURES`]): all but a board's
/// Wi-Fi setup (a node leaves Wi-Fi to its system).
pub const NODE_FEATURES: [&str; 7] = ["convert", "events", "previews", "peers", "backup", "strip", "power"];

async fn get_config(State(node): State<AppState>) -> Json<Value> {
    let c = node.config();
    Json(json!(NodeDeviceConfig {
        device: device_config(&c),
        power_mode: c.power_mode,
        peer_addresses: &c.manual_peers,
        led_count: c.led_count,
        color_order: config::color_order_name(c.color_order),
        features: &NODE_FEATURES,
    }))
}

async fn set_config(
    State(node): State<AppState>,
    JsonOnly(change): JsonOnly<ConfigChange>,
) -> Result<Json<Value>, ApiError> {
    let current_key = node.config().group_key.clone();
    let Change { device_name, sync_group, auto_sync, sync_interval, group_key: new_key, led_count, color_order } =
        change.check(current_key.as_ref())?;
    let old_group = node.config().sync_group.clone();
    let key_changed = new_key.is_some();
    let rekeyed = key_changed || sync_group.as_ref().is_some_and(|g| *g != old_group);
    let regroup = sync_group.clone().filter(|group| node.library.read(|poi| poi.group() != group));
    // The config first: on a failed save nothing changed, and a library left behind by a
    // failed regroup below is put back in line with the config at the next start.
    node.update_config(|c| {
        if let Some(name) = device_name {
            c.device_name = name;
        }
        if let Some(group) = sync_group {
            c.sync_group = group;
        }
        if let Some(auto) = auto_sync {
            c.auto_sync = auto;
        }
        if let Some(interval) = sync_interval {
            c.sync_interval = interval;
        }
        if let Some(key) = new_key {
            c.group_key = key;
        }
        if let Some(leds) = led_count {
            c.led_count = leds;
        }
        if let Some(order) = color_order {
            c.color_order = order;
        }
    })
    .map_err(|e| ApiError::write_failed("cannot save the configuration", &e))?;
    if rekeyed {
        node.peers.clear_refusals();
    }
    if key_changed {
        node.key_changes.send_modify(|n| *n += 1);
    }
    if let Some(group) = regroup
        && let Err(e) = node.library.write(Origin::Local, move |poi| poi.set_group(&group)).await
    {
        if let Err(undo) = node.update_config(|c| c.sync_group = old_group) {
            tracing::error!(error = %undo, "cannot put the sync group back after a failed change");
        }
        return Err(e.into());
    }
    Ok(ok("configuration saved"))
}
