//! The board's own settings over HTTP. Wi-Fi setup, served by the board itself (a Linux
//! node leaves Wi-Fi to its system and answers `/api/wifi/*` with 501): the page a phone
//! opens at `http://192.168.4.1/` on the poi's access point, and the spec's
//! `/api/wifi/status`, `/connect` and `/disconnect`; a network set is kept in the flash
//! ([`WifiSettings`]) and joined after the restart that follows the answer; and
//! `/api/wifi/ap`, the poi's own access point's password. And
//! `POST /api/device/config`, checked and applied by the shared application
//! (`App::change_config`) once [`keep`] saved it in the flash, read back at start by
//! [`kept`].
//!
//! Host-independent (no esp-hal here): `crates/povpoi-app/tests/firmware_setup.rs` compiles
//! this file and `settings.rs` on the host and runs the endpoints over a RAM flash.

use alloc::format;
use alloc::string::String;

use povpoi_app::api::{ApiError, Request, Response};
use povpoi_app::rules::parse_json;
use serde::Serialize;
use serde_json::Value;

use alloc::vec::Vec;
use embedded_storage::nor_flash::MultiwriteNorFlash;
use povpoi_app::device::{Change, check_interval, check_label};
use povpoi_core::sync::StorageError;
use povpoi_flash::FlashStore;

use crate::settings::{DEFAULT_ACCESS_POINT_PASSWORD, SettingsError, WifiSettings, key};

/// The setup page (`GET /setup`, and `/` on the access point; `setup/page.html`): the
/// network's name and password, the pairing key when the group has one, the access point's
/// own password, and a link to the web app. Sent gzipped, as kept (`gzip -9n`; 943 bytes of flash rather than 1,894): every
/// browser takes it so. The host test checks that it is `page.html`'s.
pub const PAGE_GZIP: &[u8] = include_bytes!("setup/page.html.gz");

/// The network the poi is on now.
#[derive(Clone, Debug)]
pub struct OnAir {
    /// Joined a network as a station (else its own access point).
    pub station: bool,
    /// That network's name, or the access point's.
    pub ssid: String,
}

/// A setup request's answer, and whether the poi restarts once it is sent (to join the
/// network set, or to open its access point).
pub struct Answer {
    /// What to send.
    pub response: Response,
    /// Restart after sending it.
    pub restart: bool,
}

/// Who answers a request.
pub enum Route {
    /// The shared application.
    App,
    /// The board itself, with [`answer`].
    Setup,
    /// `POST /api/device/config`: the application's `change_config`, kept with [`keep`].
    Config,
    /// Nobody: the group's pairing key was not given. The refusal to send.
    Refused(Response),
}

/// Who answers `request`: the board the setup page and `/api/wifi/*`, these but the page
/// only once `authorize` (the application's check of a keyed group's bearer) lets them
/// through, and the application everything else, the web app included. The page is at
/// `/setup`, and at `/` too while the poi is on its own access point (`station` false): a
/// phone that joined it for the first time lands on it. The web app is then at `/index.html`.
pub fn route(
    request: &Request<'_>,
    station: bool,
    authorize: impl FnOnce(&Request<'_>) -> Result<(), Response>,
) -> Route {
    let path = request.path;
    if path == "/setup" || (path == "/" && !station) {
        return Route::Setup;
    }
    let config = request.method == "POST" && path == "/api/device/config";
    if !config && !path.starts_with("/api/wifi/") {
        return Route::App;
    }
    match authorize(request) {
        Ok(()) if config => Route::Config,
        Ok(()) => Route::Setup,
        Err(refusal) => Route::Refused(refusal),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    /// `station` or `accessPoint`.
    mode: &'a str,
    ssid: &'a str,
    /// The network kept in the flash, joined at the next start.
    stored: Option<String>,
    /// Whether the access point still opens with the published password
    /// ([`crate::settings::DEFAULT_ACCESS_POINT_PASSWORD`]): the page asks for one of the
    /// poi's own.
    access_point_password_is_default: bool,
}

#[derive(Serialize)]
struct Saved {
    status: &'static str,
    /// The network to be joined after the restart (`None`: the access point opens), or
    /// without a restart the one joined now.
    ssid: Option<String>,
    restart: bool,
}

/// What a request asks for: an answer, or a saved change the restart applies (the network
/// joined after it, `None` for the access point).
enum Outcome {
    Send(Response),
    Restart(Option<String>),
}

/// Answers a request [`route`] gave the board.
pub fn answer(request: &Request<'_>, settings: &mut dyn WifiSettings, on_air: &OnAir) -> Answer {
    let outcome = match (request.method, request.path) {
        ("GET", "/" | "/setup") => Ok(Outcome::Send(Response::gzipped("text/html; charset=utf-8", PAGE_GZIP))),
        ("GET", "/api/wifi/status") => {
            let stored = settings.station().map(|(ssid, _)| text(&ssid).into());
            let mode = if on_air.station { "station" } else { "accessPoint" };
            let access_point_password_is_default =
                settings.access_point_password()[..] == *DEFAULT_ACCESS_POINT_PASSWORD.as_bytes();
            let status = Status { mode, ssid: &on_air.ssid, stored, access_point_password_is_default };
            Ok(Outcome::Send(Response::json(200, &status)))
        }
        // JSON only: any web page a phone on the network opens could otherwise move the poi
        // to another network (`rules::json_only`).
        ("POST", "/api/wifi/connect") => request.json_only().and_then(|()| connect(request.body, settings)),
        ("POST", "/api/wifi/disconnect") => request
            .json_only()
            .and_then(|()| settings.set_station(b"", b"").map_err(refused).map(|()| Outcome::Restart(None))),
        ("POST", "/api/wifi/ap") => request.json_only().and_then(|()| access_point(request.body, settings, on_air)),
        ("GET" | "POST", "/api/wifi/scan") => {
            Err(ApiError::new(501, "this board does not scan for networks yet: type the network's name"))
        }
        (
            _,
            "/"
            | "/setup"
            | "/api/wifi/status"
            | "/api/wifi/connect"
            | "/api/wifi/disconnect"
            | "/api/wifi/ap"
            | "/api/wifi/scan",
        ) => Err(ApiError::not_allowed()),
        _ => Err(ApiError::no_endpoint()),
    };
    match outcome {
        Ok(Outcome::Send(response)) => Answer { response, restart: false },
        Ok(Outcome::Restart(ssid)) => {
            Answer { response: Response::json(200, &Saved { status: "ok", ssid, restart: true }), restart: true }
        }
        Err(e) => Answer { response: e.response(), restart: false },
    }
}

/// A JSON object of text fields, exactly `names` (`shape` says them in an error).
fn text_fields<const N: usize>(body: &[u8], names: [&str; N], shape: &str) -> Result<[String; N], ApiError> {
    let mut fields: serde_json::Map<String, Value> = parse_json(body)?;
    if let Some(key) = fields.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("unknown field {key:?}: send {shape}")));
    }
    let mut values = names.map(|_| String::new());
    for (value, name) in values.iter_mut().zip(names) {
        match fields.remove(name) {
            Some(Value::String(s)) => *value = s,
            _ => return Err(ApiError::bad_request(format!("{name} is missing: send it as text"))),
        }
    }
    Ok(values)
}

/// `{ssid, password}`: both text, checked as WPA2 asks; saved together.
fn connect(body: &[u8], settings: &mut dyn WifiSettings) -> Result<Outcome, ApiError> {
    let [ssid, password] = text_fields(body, ["ssid", "password"], "{ssid, password}")?;
    if ssid.is_empty() {
        // An empty name would forget the network: that is /api/wifi/disconnect.
        return Err(ApiError::bad_request("ssid is empty: an SSID is 1-32 bytes"));
    }
    settings.set_station(ssid.as_bytes(), password.as_bytes()).map_err(refused)?;
    Ok(Outcome::Restart(Some(ssid)))
}

/// `{password}`: the poi's own access point's, 8-63 bytes, so that only people told it can
/// join the poi's setup network (the published default is in every copy of these docs).
/// On the access point now, the poi restarts to open it with the new one (the phone then
/// joins again with it); joined to a network, it is used the next time the access point
/// opens.
fn access_point(body: &[u8], settings: &mut dyn WifiSettings, on_air: &OnAir) -> Result<Outcome, ApiError> {
    let [password] = text_fields(body, ["password"], "{password}")?;
    settings.set_access_point_password(password.as_bytes()).map_err(refused)?;
    if on_air.station {
        let saved = Saved { status: "ok", ssid: Some(on_air.ssid.clone()), restart: false };
        return Ok(Outcome::Send(Response::json(200, &saved)));
    }
    Ok(Outcome::Restart(settings.station().map(|(ssid, _)| text(&ssid).into())))
}

/// Saves a checked change of the device configuration in the flash, every setting it
/// changes in one atomic save.
pub fn keep<F: MultiwriteNorFlash>(store: &FlashStore<F>, change: &Change) -> Result<(), StorageError> {
    let auto = change.auto_sync.map(|on| [u8::from(on)]);
    let interval = change.sync_interval.map(u64::to_le_bytes);
    let group_key = change.group_key.clone().map(|key| key.map(String::from));
    let mut changes: Vec<(&str, Option<&[u8]>)> = Vec::new();
    if let Some(name) = &change.device_name {
        changes.push((key::DEVICE_NAME, Some(name.as_bytes())));
    }
    if let Some(group) = &change.sync_group {
        changes.push((key::SYNC_GROUP, Some(group.as_bytes())));
    }
    if let Some(auto) = &auto {
        changes.push((key::AUTO_SYNC, Some(auto)));
    }
    if let Some(interval) = &interval {
        changes.push((key::SYNC_INTERVAL, Some(interval)));
    }
    if let Some(group_key) = &group_key {
        // Removed is kept as empty, not as absent: absent falls back to the build's key.
        changes.push((key::PAIRING_KEY, Some(group_key.as_ref().map_or(&b""[..], |k| k.as_bytes()))));
    }
    store.update_settings(&changes)
}

/// The device configuration kept in the flash; `None` where unset or not valid (logged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The name people see.
    pub device_name: Option<String>,
    /// Whether it syncs by itself.
    pub auto_sync: Option<bool>,
    /// Milliseconds between periodic rounds.
    pub sync_interval: Option<u64>,
}

/// Reads what [`keep`] saved (the group and the pairing key are read where the library and
/// the application are made: `settings::sync_group`, `settings::pairing_key`).
pub fn kept<F: MultiwriteNorFlash>(store: &FlashStore<F>) -> Kept {
    let get = |key: &str| crate::settings::read(store, key);
    let device_name = get(key::DEVICE_NAME)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|name| check_label("deviceName", name).is_ok());
    let auto_sync = get(key::AUTO_SYNC).and_then(|b| match b[..] {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    });
    let sync_interval = get(key::SYNC_INTERVAL)
        .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
        .filter(|ms| check_interval(*ms).is_ok());
    Kept { device_name, auto_sync, sync_interval }
}

/// An SSID as text (802.11 allows any bytes; a phone shows such a one as it can).
pub fn text(ssid: &[u8]) -> &str {
    core::str::from_utf8(ssid).unwrap_or("(a name that is not UTF-8)")
}

fn refused(e: SettingsError) -> ApiError {
    let status = match &e {
        SettingsError::Ssid | SettingsError::Passphrase => 400,
        SettingsError::NoStorage => 503,
        SettingsError::Storage(s) if s.disk_full => 507,
        SettingsError::Storage(_) => 500,
    };
    ApiError::new(status, format!("{e}"))
}
