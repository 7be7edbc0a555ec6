//! The JSON bodies a poi answers with, as typed structs, each built in one place for the
//! node and the boards: the field names are the existing system's and the node's
//! (shared/spec). A platform with more to say (the node's outputs, its simulated clock
//! knobs) puts these inside its own struct with `#[serde(flatten)]`. A board's image
//! carries serializers for these shapes only, not for arbitrary JSON values.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use povpoi_core::device::DeviceId;
use povpoi_core::model::{ImageId, Settings};
use povpoi_core::show::{ClockStatus, Standing};
use povpoi_core::sync::PROTOCOL_VERSION;
use serde::Serialize;

use crate::clock::{ClockCounters, standing_name};
use crate::peers::{Peer, Source};
use crate::stage::CueShown;

/// `{"error": ...}`.
#[derive(Serialize)]
pub(crate) struct Error<'a> {
    pub error: &'a str,
}

/// `GET /api/status` (spec section 2): what plays.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status<'a> {
    /// Whether the display is being driven.
    pub connected: bool,
    /// The display mode's number.
    pub mode: u8,
    /// The selected image's or pattern's index.
    pub index: u16,
    /// The selected image's id, if an image is selected.
    pub image_id: Option<String>,
    /// Brightness, 0-255.
    pub brightness: u8,
    /// Columns per second.
    pub framerate: u16,
    /// Whether images are kept on an SD card (a node's data directory counts as one).
    pub sd_card_present: bool,
    /// The power profile's name.
    pub power_mode: &'a str,
    /// How many images the library holds.
    pub count: usize,
}

impl<'a> Status<'a> {
    /// What plays under `settings`, with `image` selected, out of `count` images.
    pub fn playing(settings: &Settings, image: Option<ImageId>, count: usize) -> Status<'a> {
        Status {
            connected: true,
            mode: settings.selection.mode as u8,
            index: settings.selection.index,
            image_id: image.map(|id| id.to_string()),
            brightness: settings.brightness,
            framerate: settings.framerate,
            sd_card_present: false,
            power_mode: "performance",
            count,
        }
    }
}

/// The name of a sync mode in answers: `"mirror"` or `"independent"`.
pub fn sync_mode_name(independent: bool) -> &'static str {
    if independent { "independent" } else { "mirror" }
}

/// `GET /api/device/config` (spec section 1, with the key and sync mode).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConfig<'a> {
    /// The poi's device id.
    pub device_id: String,
    /// Its user-facing name.
    pub device_name: &'a str,
    /// Its sync group.
    pub sync_group: &'a str,
    /// Whether it syncs by itself.
    pub auto_sync: bool,
    /// Milliseconds between periodic syncs (the spec's unit).
    pub sync_interval: u64,
    /// Whether its group has a pairing key.
    pub protected: bool,
    /// [`sync_mode_name`].
    pub sync_mode: &'static str,
}

/// `GET /api/device/config` on a board: the shared part, and its strip's length, which a
/// board does not let change (a node puts its own settings beside the shared part).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardDeviceConfig<'a> {
    /// What every poi answers.
    #[serde(flatten)]
    pub device: DeviceConfig<'a>,
    /// LEDs on the strip: the height a picture is fitted to before it is uploaded here.
    pub led_count: u16,
    /// What it serves beyond what every poi does ([`FEATURES`]): the web app shows only
    /// what the poi it came from can do.
    pub features: &'static [&'static str],
}

/// Every feature a poi may list in its device config's `features`, with what it means: the
/// endpoints a node serves and a board does not (yet), and a board's own Wi-Fi setup.
pub const FEATURES: [(&str, &str); 8] = [
    ("convert", "POST /api/image takes pictures (PNG, JPEG, GIF, ...) and converter options, not only raw RGB"),
    ("events", "GET /api/events: a stream of what changed"),
    ("previews", "GET /api/preview/* and /api/thumbnail/*: rendered animations and thumbnails"),
    ("peers", "/api/sync/peers, /history, /execute, /conflicts, /api/group, /api/identify, /api/multipoi/*"),
    ("backup", "GET /api/backup and POST /api/restore"),
    ("strip", "GET /api/strip (the LED columns as they are shown), and ledCount and colorOrder set through the API"),
    ("power", "POST /api/power/mode"),
    ("wifi", "the Wi-Fi setup page at /setup and /api/wifi/*"),
];

/// One peer in `GET /api/sync/status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerEntry<'a> {
    /// Its device id.
    pub device_id: String,
    /// Its name.
    pub device_name: &'a str,
    /// Its API's address.
    pub ip_address: String,
    /// Its API's port.
    pub port: u16,
    /// When it was last seen, ms since the epoch.
    pub last_seen: u64,
    /// Whether it is seen within the timeout.
    pub online: bool,
    /// Its sync group.
    pub sync_group: &'a str,
    /// How it was found.
    pub source: Source,
}

/// `GET /api/sync/status` (spec section 1, with protocol, digest, key and mode).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus<'a> {
    /// Who answers.
    #[serde(flatten)]
    pub device: DeviceConfig<'a>,
    /// The sync protocol version it speaks.
    pub protocol: u16,
    /// Its library digest (peers pull when it differs from theirs).
    pub library_digest: &'a str,
    /// The peers it knows.
    pub peers: Vec<PeerEntry<'a>>,
}

impl<'a> SyncStatus<'a> {
    /// The answer of the poi `device` whose library has `digest` and which knows `peers`.
    pub fn of(device: DeviceConfig<'a>, digest: &'a str, peers: impl Iterator<Item = &'a Peer>) -> SyncStatus<'a> {
        let peers = peers
            .map(|p| PeerEntry {
                device_id: p.device_id.to_string(),
                device_name: &p.device_name,
                ip_address: p.addr.ip().to_string(),
                port: p.addr.port(),
                last_seen: p.last_seen_ms,
                online: p.online,
                sync_group: &p.sync_group,
                source: p.source,
            })
            .collect();
        SyncStatus { device, protocol: PROTOCOL_VERSION, library_digest: digest, peers }
    }
}

/// One peer's clock in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockPeer {
    /// Its device id.
    pub device_id: String,
    /// Its name, when the peer table knows it.
    pub device_name: Option<String>,
    /// The timeline it follows (hex), once heard.
    pub timeline: Option<String>,
    /// Whether it follows this poi's timeline.
    pub same_timeline: bool,
    /// Its show time minus ours, µs.
    pub offset_us: Option<i64>,
    /// How far that offset may be off, µs.
    pub error_bound_us: Option<u64>,
    /// The round trip's delay, µs.
    pub delay_us: Option<u64>,
    /// Its clock's rate against ours, parts per billion.
    pub skew_ppb: Option<i64>,
    /// Samples kept.
    pub samples: usize,
    /// How long ago it was last heard, ms.
    pub heard_ago_ms: Option<u64>,
}

/// One step of the show clock in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockStep {
    /// The timeline left (hex).
    pub from_timeline: String,
    /// The timeline joined (hex).
    pub to_timeline: String,
    /// How far show time moved, µs.
    pub by_us: i64,
    /// Whether it jumped rather than slewed.
    pub jumped: bool,
    /// Show time just before the step, µs.
    pub show_time_us: u64,
}

/// A step the show clock has planned, in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingStep {
    /// The timeline it will join (hex).
    pub timeline: String,
    /// Show time at which it steps, µs.
    pub at_show_time_us: u64,
    /// By how much, µs.
    pub by_us: i64,
}

/// The last cued switch in `GET /api/clock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCue {
    /// The cue, µs of show time.
    pub cue_us: u64,
    /// Show time at which the first column showing it began, µs.
    pub applied_show_time_us: u64,
    /// Host real time when that column went out, µs since the epoch.
    pub applied_host_time_us: u64,
    /// How late after the cue it showed, µs.
    pub late_us: u64,
}

/// What `GET /api/clock` is made of, read at one instant.
pub struct ClockReading<'a> {
    /// The show clock's state.
    pub status: &'a ClockStatus,
    /// Show time, µs.
    pub show_us: u64,
    /// Host real time at the same instant, µs since the epoch.
    pub host_us: u64,
    /// The timeline this poi founded.
    pub founded: u32,
    /// How far ahead of show time edits are cued, µs.
    pub lead_us: u64,
    /// The last cued switch shown.
    pub last_cue: Option<CueShown>,
    /// What became of the clock's datagrams.
    pub counters: ClockCounters,
}

/// `GET /api/clock`: show time and host time read at one instant.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Clock {
    /// Show time, µs.
    pub show_time_us: u64,
    /// Host real time at the same instant, µs since the epoch.
    pub host_time_us: u64,
    /// How the clock stands with its peers ([`standing_name`]).
    pub standing: &'static str,
    /// Whether it is in step with them.
    pub in_step: bool,
    /// The timeline it follows (hex).
    pub timeline: String,
    /// The timeline it founded (hex).
    pub founded_timeline: String,
    /// How far its show time may be off the timeline, µs.
    pub error_bound_us: Option<u64>,
    /// The rate correction applied, parts per billion.
    pub rate_correction_ppb: i64,
    /// Offset still being slewed away, µs.
    pub slewing_us: i64,
    /// A step planned and not yet taken.
    pub pending_step: Option<PendingStep>,
    /// How far ahead of show time edits are cued, µs.
    pub lead_us: u64,
    /// Its peers' clocks.
    pub peers: Vec<ClockPeer>,
    /// Its recent steps.
    pub steps: Vec<ClockStep>,
    /// The last cued switch shown.
    pub last_cue: Option<LastCue>,
    /// What became of the clock's datagrams.
    pub datagrams: ClockCounters,
}

impl Clock {
    /// The answer for `reading`, naming peers with `name_of`.
    pub fn of(reading: ClockReading<'_>, name_of: impl Fn(DeviceId) -> Option<String>) -> Clock {
        let status = reading.status;
        let hex = |timeline: u32| format!("{timeline:08x}");
        let peers = status
            .peers
            .iter()
            .map(|p| ClockPeer {
                device_id: p.device.to_string(),
                device_name: name_of(p.device),
                timeline: p.timeline.map(hex),
                same_timeline: p.timeline == Some(status.timeline),
                offset_us: p.offset,
                error_bound_us: p.error,
                delay_us: p.delay,
                skew_ppb: p.skew_ppb,
                samples: p.samples,
                heard_ago_ms: p.heard_ago.map(|us| us / 1_000),
            })
            .collect();
        let steps = status
            .steps
            .iter()
            .map(|s| ClockStep {
                from_timeline: hex(s.from),
                to_timeline: hex(s.to),
                by_us: s.by,
                jumped: s.jumped,
                show_time_us: s.show_before,
            })
            .collect();
        let pending_step =
            status.plan.map(|p| PendingStep { timeline: hex(p.target), at_show_time_us: p.at, by_us: p.step });
        let last_cue = reading.last_cue.map(|c| LastCue {
            cue_us: c.cue_us,
            applied_show_time_us: c.show_us,
            applied_host_time_us: c.host_us,
            late_us: c.show_us.saturating_sub(c.cue_us),
        });
        Clock {
            show_time_us: reading.show_us,
            host_time_us: reading.host_us,
            standing: standing_name(status.standing),
            in_step: status.standing == Standing::InStep,
            timeline: hex(status.timeline),
            founded_timeline: hex(reading.founded),
            error_bound_us: status.error_bound,
            rate_correction_ppb: status.rate_ppb,
            slewing_us: status.slewing,
            pending_step,
            lead_us: reading.lead_us,
            peers,
            steps,
            last_cue,
            datagrams: reading.counters,
        }
    }
}

/// `{"status": "ok", "brightness": N}`.
#[derive(Serialize)]
pub struct BrightnessSet {
    /// `"ok"`.
    pub status: &'static str,
    /// The brightness set.
    pub brightness: u8,
}

/// `{"status": "ok", "framerate": N}`.
#[derive(Serialize)]
pub struct FramerateSet {
    /// `"ok"`.
    pub status: &'static str,
    /// The frame rate set.
    pub framerate: u16,
}

/// `{"status": "ok", "mode", "index", "imageId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeSet {
    /// `"ok"`.
    pub status: &'static str,
    /// The mode's number.
    pub mode: u8,
    /// The index selected.
    pub index: u16,
    /// The image selected, if any.
    pub image_id: Option<String>,
}
