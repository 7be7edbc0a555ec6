//! A poi's own settings as people change them (`POST /api/device/config`, a node's
//! command line and config file): what each takes, and a change read and checked in one
//! place for the node and the boards.

use alloc::string::{String, ToString};
use core::fmt;

use povpoi_core::render::{ColorOrder, MAX_LEDS};
use povpoi_peer::key::GroupKey;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::api::ApiError;
use crate::rules::{int_in, parse_json};

/// Shortest accepted auto-sync interval: the push-on-change path makes faster polling useless.
pub const MIN_SYNC_INTERVAL_MS: u64 = 1_000;
/// Longest accepted auto-sync interval (one day).
pub const MAX_SYNC_INTERVAL_MS: u64 = 86_400_000;
/// Longest device name and sync group (bytes); they travel in mDNS TXT records.
pub const MAX_LABEL_LEN: usize = 63;
/// The colour orders `colorOrder` takes, as the API writes them.
pub const COLOR_ORDERS: [&str; 6] = ["RGB", "RBG", "GRB", "GBR", "BRG", "BGR"];

/// A setting outside what a poi takes; the message names the field and what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidSetting {
    /// A name or group that is empty or blank.
    Empty(&'static str),
    /// A name or group longer than [`MAX_LABEL_LEN`] bytes.
    TooLong(&'static str),
    /// A name or group with control characters.
    ControlCharacters(&'static str),
    /// An LED count outside 1-[`MAX_LEDS`].
    LedCount(u64),
    /// A colour order that is not one of [`COLOR_ORDERS`].
    ColorOrder(String),
    /// An auto-sync interval outside its range.
    SyncInterval(u64),
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidSetting::Empty(field) => write!(f, "{field} must not be empty"),
            InvalidSetting::TooLong(field) => write!(f, "{field} must be at most {MAX_LABEL_LEN} bytes"),
            InvalidSetting::ControlCharacters(field) => write!(f, "{field} must not contain control characters"),
            InvalidSetting::LedCount(n) => write!(f, "ledCount must be an integer 1-{MAX_LEDS}, not {n}"),
            InvalidSetting::ColorOrder(name) => {
                write!(f, "colorOrder must be one of {}, not {name:?}", COLOR_ORDERS.join(", "))
            }
            InvalidSetting::SyncInterval(_) => {
                write!(f, "syncInterval must be {MIN_SYNC_INTERVAL_MS}-{MAX_SYNC_INTERVAL_MS} ms")
            }
        }
    }
}

impl core::error::Error for InvalidSetting {}

impl From<InvalidSetting> for ApiError {
    fn from(e: InvalidSetting) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// Checks a device name or group: 1-63 bytes of printable text (it goes into mDNS TXT).
pub fn check_label(field: &'static str, value: &str) -> Result<(), InvalidSetting> {
    if value.trim().is_empty() {
        return Err(InvalidSetting::Empty(field));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(InvalidSetting::TooLong(field));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidSetting::ControlCharacters(field));
    }
    Ok(())
}

/// Checks an LED count.
pub fn check_led_count(leds: u64) -> Result<(), InvalidSetting> {
    if (1..=u64::from(MAX_LEDS)).contains(&leds) { Ok(()) } else { Err(InvalidSetting::LedCount(leds)) }
}

/// Checks an auto-sync interval.
pub fn check_interval(ms: u64) -> Result<(), InvalidSetting> {
    if (MIN_SYNC_INTERVAL_MS..=MAX_SYNC_INTERVAL_MS).contains(&ms) {
        Ok(())
    } else {
        Err(InvalidSetting::SyncInterval(ms))
    }
}

/// A colour order's name as the API writes it (`"BGR"`).
pub fn color_order_name(order: ColorOrder) -> &'static str {
    match order {
        ColorOrder::Rgb => "RGB",
        ColorOrder::Rbg => "RBG",
        ColorOrder::Grb => "GRB",
        ColorOrder::Gbr => "GBR",
        ColorOrder::Brg => "BRG",
        ColorOrder::Bgr => "BGR",
    }
}

/// A colour order from its name, in any case.
pub fn parse_color_order(name: &str) -> Result<ColorOrder, InvalidSetting> {
    name.parse().map_err(|_| InvalidSetting::ColorOrder(name.into()))
}

/// A `POST /api/device/config` body as sent: any of the fields; unknown ones are refused so
/// a typo is not silently ignored. [`ConfigChange::check`] makes it a [`Change`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigChange {
    device_name: Option<String>,
    sync_group: Option<String>,
    auto_sync: Option<bool>,
    sync_interval: Option<u64>,
    /// A string sets the key, `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    group_key: Option<Option<String>>,
    /// Needed to change or remove a key that is set.
    current_group_key: Option<String>,
    /// LEDs on the strip, 1-144 (checked here, so the error names the range).
    led_count: Option<Value>,
    /// `"RGB"`... `"BGR"`, any case.
    color_order: Option<Value>,
}

/// Tells a field sent as `null` (Some(None)) from one not sent (None).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A change of a poi's settings, every field checked: `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// The name people see.
    pub device_name: Option<String>,
    /// The sync group.
    pub sync_group: Option<String>,
    /// Whether it syncs by itself.
    pub auto_sync: Option<bool>,
    /// Milliseconds between periodic rounds.
    pub sync_interval: Option<u64>,
    /// The pairing key: `Some(None)` removes it.
    pub group_key: Option<Option<GroupKey>>,
    /// LEDs on the strip.
    pub led_count: Option<u16>,
    /// The strip's channel order.
    pub color_order: Option<ColorOrder>,
}

impl ConfigChange {
    /// Reads a body (400s say what to fix).
    pub fn read(body: &[u8]) -> Result<ConfigChange, ApiError> {
        parse_json(body)
    }

    /// Checks every field, and that a change of the pairing key `current` (if one is set)
    /// comes with it as `currentGroupKey` (403 otherwise).
    pub fn check(self, current: Option<&GroupKey>) -> Result<Change, ApiError> {
        if let Some(name) = &self.device_name {
            check_label("deviceName", name)?;
        }
        if let Some(group) = &self.sync_group {
            check_label("syncGroup", group)?;
        }
        if let Some(interval) = self.sync_interval {
            check_interval(interval)?;
        }
        let led_count = int_in(self.led_count.as_ref(), "ledCount", 1, u64::from(MAX_LEDS))?.map(|n| n as u16);
        let color_order = match self.color_order.as_ref().filter(|v| !v.is_null()) {
            None => None,
            Some(Value::String(name)) => Some(parse_color_order(name)?),
            Some(other) => {
                return Err(ApiError::bad_request(alloc::format!(
                    "colorOrder must be one of {} (a string), not {other}",
                    COLOR_ORDERS.join(", ")
                )));
            }
        };
        let group_key = match self.group_key {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) if text.is_empty() => Some(None),
            Some(Some(text)) => Some(Some(GroupKey::new(&text).map_err(|e| ApiError::bad_request(e.to_string()))?)),
        };
        if group_key.is_some()
            && let Some(current) = current
            && !self.current_group_key.as_deref().is_some_and(|given| current.matches(given))
        {
            return Err(ApiError::new(403, "a pairing key is set: send currentGroupKey to change or remove it"));
        }
        Ok(Change {
            device_name: self.device_name,
            sync_group: self.sync_group,
            auto_sync: self.auto_sync,
            sync_interval: self.sync_interval,
            group_key,
            led_count,
            color_order,
        })
    }
}

/// `{"status": "ok", "message": ...}`, as a node answers a saved configuration.
#[derive(serde::Serialize)]
struct Saved {
    status: &'static str,
    message: &'static str,
}

impl<S: povpoi_core::sync::Storage> crate::App<S> {
    /// Answers `POST /api/device/config` on a board (a JSON body only, 415 otherwise):
    /// checks the change, has `keep` save it (the board's flash settings; nothing changes
    /// when it fails), then applies it: the name, automatic sync and its interval, the
    /// pairing key, and last the sync group (the library's too: should saving that fail,
    /// the board puts the library in line with the kept group at its next start). The
    /// strip's LED count and colour order are not set this way on a board.
    pub fn change_config(
        &mut self,
        request: &crate::api::Request<'_>,
        now: crate::Now,
        keep: impl FnOnce(&Change) -> Result<(), povpoi_core::sync::StorageError>,
    ) -> crate::api::Response {
        match request.json_only().and_then(|()| self.apply_change(request.body, now, keep)) {
            Ok(()) => crate::api::Response::json(200, &Saved { status: "ok", message: "configuration saved" }),
            Err(e) => e.response(),
        }
    }

    fn apply_change(
        &mut self,
        body: &[u8],
        now: crate::Now,
        keep: impl FnOnce(&Change) -> Result<(), povpoi_core::sync::StorageError>,
    ) -> Result<(), ApiError> {
        let change = ConfigChange::read(body)?.check(self.config().group_key.as_ref())?;
        if change.led_count.is_some() || change.color_order.is_some() {
            return Err(ApiError::bad_request("ledCount and colorOrder are not set through the API on a board"));
        }
        keep(&change).map_err(|e| ApiError::from(povpoi_core::sync::Error::Storage(e)))?;
        self.take_change(change, now)
    }
}
