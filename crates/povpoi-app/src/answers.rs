//! The JSON bodies the application answers with, as typed structs: the field names are the
//! existing system's and the node's (shared/spec), and a board's image carries serializers for
//! these shapes only, not for arbitrary JSON values.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use crate::clock::ClockCounters;
use crate::peers::Source;

/// `{"error": ...}`.
#[derive(Serialize)]
pub(crate) struct Error<'a> {
    pub error: &'a str,
}

/// `GET /api/status` (spec section 2).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pub connected: bool,
    pub mode: u8,
    pub index: u16,
    pub image_id: Option<String>,
    pub brightness: u8,
    pub framerate: u16,
    pub sd_card_present: bool,
    pub power_mode: &'static str,
    pub count: usize,
}

/// `GET /api/device/config` (spec section 1, with the key and sync mode).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceConfig<'a> {
    pub device_id: String,
    pub device_name: &'a str,
    pub sync_group: &'a str,
    pub auto_sync: bool,
    pub sync_interval: u32,
    pub protected: bool,
    pub sync_mode: &'static str,
}

/// One peer in `GET /api/sync/status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerEntry<'a> {
    pub device_id: String,
    pub device_name: &'a str,
    pub ip_address: String,
    pub port: u16,
    pub last_seen: u64,
    pub online: bool,
    pub sync_group: &'a str,
    pub source: Source,
}

/// `GET /api/sync/status` (spec section 1, with protocol, digest, key and mode).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyncStatus<'a> {
    #[serde(flatten)]
    pub device: DeviceConfig<'a>,
    pub protocol: u16,
    pub library_digest: &'a str,
    pub peers: Vec<PeerEntry<'a>>,
}

/// One peer's clock in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClockPeer {
    pub device_id: String,
    pub timeline: Option<String>,
    pub same_timeline: bool,
    pub offset_us: Option<i64>,
    pub error_bound_us: Option<u64>,
    pub delay_us: Option<u64>,
    pub samples: usize,
}

/// One step of the show clock in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClockStep {
    pub from_timeline: String,
    pub to_timeline: String,
    pub by_us: i64,
    pub jumped: bool,
    pub show_time_us: u64,
}

/// The last cued switch in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastCue {
    pub cue_us: u64,
    pub applied_show_time_us: u64,
    pub applied_host_time_us: u64,
    pub late_us: u64,
}

/// `GET /api/clock`: show time and host time read at one instant.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Clock {
    pub show_time_us: u64,
    pub host_time_us: u64,
    pub standing: &'static str,
    pub in_step: bool,
    pub timeline: String,
    pub founded_timeline: String,
    pub error_bound_us: Option<u64>,
    pub lead_us: u64,
    pub peers: Vec<ClockPeer>,
    pub steps: Vec<ClockStep>,
    pub last_cue: Option<LastCue>,
    pub datagrams: ClockCounters,
}

/// `{"status": "ok", "brightness": N}`.
#[derive(Serialize)]
pub(crate) struct BrightnessSet {
    pub status: &'static str,
    pub brightness: u8,
}

/// `{"status": "ok", "framerate": N}`.
#[derive(Serialize)]
pub(crate) struct FramerateSet {
    pub status: &'static str,
    pub framerate: u16,
}

/// `{"status": "ok", "mode", "index", "imageId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModeSet {
    pub status: &'static str,
    pub mode: u8,
    pub index: u16,
    pub image_id: Option<String>,
}
