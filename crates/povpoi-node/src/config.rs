//! The poi's own settings, kept in `DIR/config.json`: who it is (device id, name), which
//! group it syncs with and how, and the local-only playback limits.
//!
//! These are not replicated: each poi has its own name and key. The file is written
//! atomically like everything else in the data directory.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use povpoi_core::device::DeviceId;
use povpoi_core::render::{ColorOrder, DEFAULT_LEDS};
use povpoi_peer::key::GroupKey;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::storage::write_atomically;

const CONFIG_FILE: &str = "config.json";
/// Default auto-sync interval, as in the existing system (a board's too).
pub use povpoi_app::DEFAULT_SYNC_INTERVAL_MS;
/// The settings' checks, shared with the boards.
pub use povpoi_app::device::{
    COLOR_ORDERS, InvalidSetting, MAX_LABEL_LEN, MAX_SYNC_INTERVAL_MS, MIN_SYNC_INTERVAL_MS, check_interval,
    check_label, check_led_count, color_order_name, parse_color_order,
};

/// How a pair plays: mirrored (shared mode, brightness, frame rate) or each on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Settings sync between the poi of the group.
    #[default]
    Mirror,
    /// Content syncs, settings stay local.
    Independent,
}

/// The power profiles of the existing firmware: a frame-rate cap and a brightness cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerMode {
    /// Up to 120 columns per second.
    Performance,
    /// Up to 60 columns per second.
    #[default]
    Balanced,
    /// Up to 30 columns per second, brightness at most 150.
    Powersave,
    /// Up to 15 columns per second, brightness at most 80.
    Ultrasave,
}

impl PowerMode {
    /// The profile with this name.
    pub fn parse(name: &str) -> Option<PowerMode> {
        Some(match name {
            "performance" => PowerMode::Performance,
            "balanced" => PowerMode::Balanced,
            "powersave" => PowerMode::Powersave,
            "ultrasave" => PowerMode::Ultrasave,
            _ => return None,
        })
    }

    /// The profile's name, as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            PowerMode::Performance => "performance",
            PowerMode::Balanced => "balanced",
            PowerMode::Powersave => "powersave",
            PowerMode::Ultrasave => "ultrasave",
        }
    }

    /// The CPU clock the ESP32 firmware used for this profile (MHz), reported for compatibility.
    pub fn cpu_mhz(self) -> u32 {
        match self {
            PowerMode::Performance => 240,
            PowerMode::Balanced => 160,
            PowerMode::Powersave | PowerMode::Ultrasave => 80,
        }
    }

    /// Highest frame rate played in this profile.
    pub fn fps_limit(self) -> u16 {
        match self {
            PowerMode::Performance => 120,
            PowerMode::Balanced => 60,
            PowerMode::Powersave => 30,
            PowerMode::Ultrasave => 15,
        }
    }

    /// Highest brightness played in this profile.
    pub fn brightness_cap(self) -> u8 {
        match self {
            PowerMode::Powersave => 150,
            PowerMode::Ultrasave => 80,
            _ => 255,
        }
    }
}

/// Everything in `config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConfig {
    /// The poi's id, MAC-like.
    #[serde(with = "device_id_text")]
    pub device_id: DeviceId,
    /// Its user-facing name.
    pub device_name: String,
    /// Only poi of the same group sync.
    pub sync_group: String,
    /// Sync with online peers every `sync_interval` ms and right after each change.
    pub auto_sync: bool,
    /// Auto-sync period, ms.
    pub sync_interval: u64,
    /// The group's pairing key; when set, every peer request is signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<GroupKey>,
    /// Mirror or independent play.
    #[serde(default)]
    pub sync_mode: SyncMode,
    /// Local power profile.
    #[serde(default)]
    pub power_mode: PowerMode,
    /// Peer addresses added by hand, for networks that block multicast.
    #[serde(default)]
    pub manual_peers: Vec<std::net::SocketAddr>,
    /// LEDs on the strip (1-144): what the player renders and the sim strip shows.
    #[serde(default = "default_led_count")]
    pub led_count: u16,
    /// The order an APA102 strip takes the channels in on the wire.
    #[serde(default, with = "color_order_text")]
    pub color_order: ColorOrder,
}

/// A config file from before the LED count was stored: the count of the existing system.
fn default_led_count() -> u16 {
    DEFAULT_LEDS
}

impl DeviceConfig {
    /// A first-start configuration for a poi with this id.
    pub fn new(device_id: DeviceId) -> DeviceConfig {
        DeviceConfig {
            device_id,
            device_name: device_id.default_name(),
            sync_group: povpoi_peer::advert::DEFAULT_SYNC_GROUP.into(),
            auto_sync: true,
            sync_interval: DEFAULT_SYNC_INTERVAL_MS,
            group_key: None,
            sync_mode: SyncMode::Mirror,
            power_mode: PowerMode::Balanced,
            manual_peers: Vec::new(),
            led_count: DEFAULT_LEDS,
            color_order: ColorOrder::default(),
        }
    }

    /// Reads `DIR/config.json`, if it exists.
    pub fn load(dir: &Path) -> io::Result<Option<DeviceConfig>> {
        match std::fs::read(dir.join(CONFIG_FILE)) {
            Ok(bytes) => {
                let invalid = |e: &dyn std::fmt::Display| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{CONFIG_FILE}: {e}"))
                };
                let config: DeviceConfig = serde_json::from_slice(&bytes).map_err(|e| invalid(&e))?;
                // A hand-edited file gets the same checks as the API, so a zero or huge
                // interval cannot make the sync timer spin or overflow.
                check_interval(config.sync_interval).map_err(|e| invalid(&e))?;
                check_label("deviceName", &config.device_name).map_err(|e| invalid(&e))?;
                check_label("syncGroup", &config.sync_group).map_err(|e| invalid(&e))?;
                check_led_count(u64::from(config.led_count)).map_err(|e| invalid(&e))?;
                Ok(Some(config))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `DIR/config.json` atomically; on a full disk through the library's reserve,
    /// so a setting can still be changed (errors name the file).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let path = dir.join(CONFIG_FILE);
        write_atomically(&path, &bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
    }
}

/// The id a new poi takes: the MAC of the interface it listens on (or of the first real
/// interface when it listens on all), else a random locally-administered one.
///
/// Loopback has no MAC, so poi simulated on 127.0.0.1 get random, distinct ids.
pub fn derive_device_id(listen: IpAddr) -> DeviceId {
    mac_for(listen).unwrap_or_else(random_device_id)
}

fn mac_for(listen: IpAddr) -> Option<DeviceId> {
    let interfaces = if_addrs::get_if_addrs().ok()?;
    let mut names: Vec<String> = interfaces
        .iter()
        .filter(|i| !i.is_loopback() && (listen.is_unspecified() || i.ip() == listen))
        .map(|i| i.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names.iter().find_map(|name| read_mac(name))
}

fn read_mac(interface: &str) -> Option<DeviceId> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(interface).join("address")).ok()?;
    let id: DeviceId = text.trim().to_ascii_uppercase().parse().ok()?;
    (id.0 != [0; 6]).then_some(id)
}

/// A random id with the locally-administered bit set, so it cannot equal a real MAC.
pub fn random_device_id() -> DeviceId {
    let mut bytes: [u8; 6] = rand::rng().random();
    bytes[0] = (bytes[0] | 0x02) & !0x01;
    DeviceId(bytes)
}

/// Writes a colour order as its name (`"BGR"`) in JSON, as the API shows it.
mod color_order_text {
    use povpoi_core::render::ColorOrder;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(order: &ColorOrder, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(super::color_order_name(*order))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ColorOrder, D::Error> {
        super::parse_color_order(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// Writes a device id as its MAC-like text in JSON, as the API shows it.
mod device_id_text {
    use povpoi_core::device::DeviceId;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(id: &DeviceId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DeviceId, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let mut config = DeviceConfig::new(DeviceId([1, 2, 3, 4, 5, 6]));
        config.group_key = Some(GroupKey::new("correct horse").unwrap());
        assert!(!format!("{config:?}").contains("horse"));
    }

    #[test]
    fn config_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DeviceConfig::load(dir.path()).unwrap(), None);
        let mut config = DeviceConfig::new(random_device_id());
        config.sync_group = "troupe \"A\"".into();
        config.led_count = 144;
        config.color_order = ColorOrder::Grb;
        config.save(dir.path()).unwrap();
        assert!(std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap().contains("\"colorOrder\": \"GRB\""));
        assert_eq!(DeviceConfig::load(dir.path()).unwrap(), Some(config));
    }

    #[test]
    fn random_ids_are_locally_administered_unicast() {
        for _ in 0..100 {
            let id = random_device_id();
            assert_eq!(id.0[0] & 0x03, 0x02);
        }
    }

    #[test]
    fn labels_and_intervals_are_checked() {
        assert!(check_label("deviceName", "Left poi").is_ok());
        assert!(check_label("deviceName", " ").is_err());
        assert!(check_label("deviceName", &"x".repeat(64)).is_err());
        assert!(check_label("deviceName", "a\nb").is_err());
        assert!(check_interval(999).is_err());
        assert!(check_interval(30_000).is_ok());
        assert!(check_led_count(0).is_err() && check_led_count(145).is_err());
        assert!(check_led_count(1).is_ok() && check_led_count(144).is_ok());
    }

    #[test]
    fn a_config_from_before_the_strip_settings_gets_the_old_strip() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(DeviceConfig::new(random_device_id())).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("ledCount").unwrap();
        object.remove("colorOrder").unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), json.to_string()).unwrap();
        let config = DeviceConfig::load(dir.path()).unwrap().unwrap();
        assert_eq!((config.led_count, config.color_order), (32, ColorOrder::Bgr));
    }
}
