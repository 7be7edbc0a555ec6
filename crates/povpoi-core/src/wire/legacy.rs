//! The JSON shapes of the existing system's sync endpoints (`GET /api/sync/data`), with
//! its exact camelCase field names. `timestamp` is hybrid-logical milliseconds since the
//! epoch here, not a device's uptime as it was there.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::sync::{Key, Replica, Storage};

/// One image in the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// Image id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Columns.
    pub width: u16,
    /// Rows (LEDs).
    pub height: u16,
    /// Last edit, ms since the epoch.
    pub timestamp: u64,
    /// Pixel bytes.
    pub size: usize,
}

/// One pattern slot in the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternEntry {
    /// Slot.
    pub id: u8,
    /// Pattern type id (0-17).
    #[serde(rename = "type")]
    pub kind: u8,
    /// Pattern type name.
    pub name: String,
    /// Last edit, ms since the epoch.
    pub timestamp: u64,
}

/// The shared settings in the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsEntry {
    /// Brightness 0-255.
    pub brightness: u8,
    /// Frame rate.
    pub framerate: u16,
    /// Mode 0-4.
    pub mode: u8,
    /// Slot played.
    pub index: u16,
    /// Latest edit of any of these, ms since the epoch.
    pub timestamp: u64,
}

/// The body of `GET /api/sync/data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncData {
    /// Device id, MAC-like.
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// Every stored image.
    pub images: Vec<ImageEntry>,
    /// Every filled pattern slot.
    pub patterns: Vec<PatternEntry>,
    /// The shared settings.
    pub settings: SettingsEntry,
}

impl SyncData {
    /// The full listing of a replica's library.
    pub fn of<S: Storage>(replica: &Replica<S>, device_name: &str) -> Self {
        let stamp = |key: &Key| replica.visible(key).map_or(0, |r| r.stamp.millis);
        let images = replica
            .images()
            .map(|(id, meta)| ImageEntry {
                id: id.to_string(),
                name: meta.name().into(),
                width: meta.width(),
                height: meta.height(),
                timestamp: stamp(&Key::Image(id)),
                size: meta.byte_len(),
            })
            .collect();
        let patterns = (0..crate::model::PATTERN_SLOTS)
            .filter_map(|slot| {
                let p = replica.pattern(slot)?;
                Some(PatternEntry {
                    id: slot,
                    kind: p.kind().id(),
                    name: p.kind().name().into(),
                    timestamp: stamp(&Key::Pattern(slot)),
                })
            })
            .collect();
        let s = replica.settings();
        SyncData {
            device_id: replica.device_id().to_string(),
            device_name: device_name.into(),
            images,
            patterns,
            settings: SettingsEntry {
                brightness: s.brightness,
                framerate: s.framerate,
                mode: s.selection.mode as u8,
                index: s.selection.index,
                timestamp: [Key::Brightness, Key::Framerate, Key::Selection].iter().map(stamp).max().unwrap_or(0),
            },
        }
    }
}
