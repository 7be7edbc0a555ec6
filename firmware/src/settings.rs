//! The poi's settings: the Wi-Fi credentials behind [`WifiSettings`], and the keys under
//! which the flash store (`storage`) keeps them and the poi's own settings.
//!
//! Host-independent (no esp-hal here): `crates/povpoi-flash/tests/firmware_settings.rs`
//! compiles this file on the host and tests it over a RAM flash.
//!
//! [`FlashWifiSettings`] keeps them in the flash store, so that credentials set from the
//! access point's setup page survive a reset. [`BuildWifiSettings`] is the network given at
//! build time: written into the store once per image ([`FlashWifiSettings::apply_build`]),
//! and used alone only by a poi without storage.

use alloc::string::String;
use alloc::vec::Vec as HeapVec;
use core::fmt;

use embedded_storage::nor_flash::MultiwriteNorFlash;
use heapless::Vec;
use povpoi_core::hash::BlobHash;
use povpoi_core::sync::StorageError;
use povpoi_flash::FlashStore;
use povpoi_peer::key::GroupKey;

/// An SSID: 1-32 bytes, not necessarily UTF-8 (802.11 allows any bytes).
pub type Ssid = Vec<u8, 32>;

/// A WPA2 passphrase: 8-63 bytes (or 64 hex digits).
pub type Passphrase = Vec<u8, 64>;

/// The access point's password until one is set: printed on the serial log at every start and
/// written in docs/FIRMWARE.md, so a person can join a new poi. Anyone who reads the docs knows
/// it too; setting a poi's own (through [`WifiSettings::set_access_point_password`]) closes that.
pub const DEFAULT_ACCESS_POINT_PASSWORD: &str = "povpoi-setup";

/// The sync group of a poi whose settings name none, as on a node.
pub use povpoi_peer::advert::DEFAULT_SYNC_GROUP;

/// Keys of the settings in the flash store, and how each value is written.
///
/// The store keeps any key (up to 64 bytes, values up to 1 KiB: `povpoi_flash`); these are
/// the ones the firmware and the shared application agree on.
pub mod key {
    /// The network to join: its SSID, 1-32 bytes. Absent: no network, the poi opens its
    /// access point.
    pub const WIFI_SSID: &str = "wifi.ssid";
    /// That network's WPA2 passphrase, 8-63 bytes; saved together with [`WIFI_SSID`].
    pub const WIFI_PASSWORD: &str = "wifi.psk";
    /// The poi's own access point's password, 8-63 bytes. Absent:
    /// [`super::DEFAULT_ACCESS_POINT_PASSWORD`].
    pub const ACCESS_POINT_PASSWORD: &str = "wifi.ap.psk";
    /// SHA-256 of the network given at build time that was last written into the store, so
    /// that an image writes its network once and a network set later is not overwritten at
    /// every start.
    pub const WIFI_FROM_BUILD: &str = "wifi.build";
    /// The poi's name for people, UTF-8. Absent: `DeviceId::default_name`.
    pub const DEVICE_NAME: &str = "device.name";
    /// The sync group, UTF-8. Absent: [`super::DEFAULT_SYNC_GROUP`].
    pub const SYNC_GROUP: &str = "sync.group";
    /// Whether the poi starts sync sessions by itself, one byte 0 or 1. Absent: on.
    pub const AUTO_SYNC: &str = "sync.auto";
    /// Milliseconds between periodic sync rounds, a little-endian u64. Absent: the spec's 30 s.
    pub const SYNC_INTERVAL: &str = "sync.interval";
    /// The group's pairing key (the node's `groupKey`), its raw bytes. Empty: removed, the
    /// poi is open. Absent: the key given at build time, if any.
    pub const PAIRING_KEY: &str = "pairing.key";
    /// LEDs on the strip, a little-endian u16 (1-144).
    pub const LED_COUNT: &str = "leds";
}

/// Why a setting was not changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// The SSID is empty or longer than 32 bytes.
    Ssid,
    /// The passphrase is not 8-63 bytes (WPA2's rule; an open network is not offered).
    Passphrase,
    /// The poi has no storage (see `storage::Unavailable`): nothing set could be kept.
    NoStorage,
    /// The flash store failed to save it; what it held before is unchanged.
    Storage(StorageError),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Ssid => f.write_str("an SSID is 1-32 bytes"),
            SettingsError::Passphrase => f.write_str("a WPA2 passphrase is 8-63 bytes"),
            SettingsError::NoStorage => f.write_str("this poi has no storage partition: settings cannot be kept"),
            SettingsError::Storage(e) => write!(f, "{e}"),
        }
    }
}

/// The Wi-Fi settings a poi keeps: the network to join and its own access point's password.
pub trait WifiSettings {
    /// The network to join as a station, if one is configured.
    fn station(&self) -> Option<(Ssid, Passphrase)>;
    /// Sets the network to join; an empty `ssid` forgets it.
    fn set_station(&mut self, ssid: &[u8], password: &[u8]) -> Result<(), SettingsError>;
    /// The password of the poi's own access point.
    fn access_point_password(&self) -> Passphrase;
    /// Sets the password of the poi's own access point.
    fn set_access_point_password(&mut self, password: &[u8]) -> Result<(), SettingsError>;
}

/// Checks a WPA2 passphrase: 8-63 bytes.
pub fn passphrase(bytes: &[u8]) -> Result<Passphrase, SettingsError> {
    if !(8..=63).contains(&bytes.len()) {
        return Err(SettingsError::Passphrase);
    }
    Vec::from_slice(bytes).map_err(|_| SettingsError::Passphrase)
}

/// Checks an SSID: 1-32 bytes.
pub fn ssid(bytes: &[u8]) -> Result<Ssid, SettingsError> {
    if bytes.is_empty() {
        return Err(SettingsError::Ssid);
    }
    Vec::from_slice(bytes).map_err(|_| SettingsError::Ssid)
}

fn default_access_point_password() -> Passphrase {
    passphrase(DEFAULT_ACCESS_POINT_PASSWORD.as_bytes())
        .unwrap_or_else(|_| unreachable!("the default password is 12 bytes"))
}

/// The network given at build time, in RAM: `POVPOI_WIFI_SSID` and `POVPOI_WIFI_PASSWORD`,
/// when set while building (they end up in the image, readable by anyone holding the board).
///
/// On a poi with storage it only seeds the flash ([`FlashWifiSettings::apply_build`]). On a
/// poi without, it is all there is: it joins that network or opens its access point with the
/// default password, and refuses every change ([`SettingsError::NoStorage`]), as nothing set
/// would outlive the next reset.
#[derive(Clone, Debug)]
pub struct BuildWifiSettings {
    station: Option<(Ssid, Passphrase)>,
}

impl BuildWifiSettings {
    /// Settings holding `station` as the network to join, as if given at build time.
    pub fn new(station: Option<(Ssid, Passphrase)>) -> Self {
        BuildWifiSettings { station }
    }

    /// The settings given at build time (see the type's doc).
    pub fn from_build() -> Self {
        let station = match (option_env!("POVPOI_WIFI_SSID"), option_env!("POVPOI_WIFI_PASSWORD")) {
            (Some(name), password) => match (ssid(name.as_bytes()), passphrase(password.unwrap_or("").as_bytes())) {
                (Ok(name), Ok(password)) => Some((name, password)),
                _ => {
                    log::warn!(
                        "POVPOI_WIFI_SSID/POVPOI_WIFI_PASSWORD given at build time are not a valid WPA2 network"
                    );
                    None
                }
            },
            (None, _) => None,
        };
        BuildWifiSettings { station }
    }
}

impl WifiSettings for BuildWifiSettings {
    fn station(&self) -> Option<(Ssid, Passphrase)> {
        self.station.clone()
    }

    fn set_station(&mut self, _ssid: &[u8], _password: &[u8]) -> Result<(), SettingsError> {
        Err(SettingsError::NoStorage)
    }

    fn access_point_password(&self) -> Passphrase {
        default_access_point_password()
    }

    fn set_access_point_password(&mut self, _password: &[u8]) -> Result<(), SettingsError> {
        Err(SettingsError::NoStorage)
    }
}

/// Wi-Fi settings kept in the flash store: what is set survives a reset and a power cut (the
/// SSID and passphrase are saved together, in one atomic save).
pub struct FlashWifiSettings<'a, F: MultiwriteNorFlash> {
    store: &'a FlashStore<F>,
}

impl<'a, F: MultiwriteNorFlash> FlashWifiSettings<'a, F> {
    /// The Wi-Fi settings kept in `store`.
    pub fn new(store: &'a FlashStore<F>) -> Self {
        FlashWifiSettings { store }
    }

    /// Writes the network given at build time into the store, unless this network was the
    /// last one written from a build: a new image's network is joined after flashing it, and
    /// a network set since from the setup page is not overwritten at every start. Returns
    /// whether it wrote.
    pub fn apply_build(&self, build: &BuildWifiSettings) -> Result<bool, StorageError> {
        let Some((name, password)) = &build.station else { return Ok(false) };
        // Length-prefixed: no SSID/passphrase split of the same bytes hashes alike.
        let mut both: Vec<u8, 97> = Vec::new();
        let fits = both.push(name.len() as u8).is_ok()
            && both.extend_from_slice(name).is_ok()
            && both.extend_from_slice(password).is_ok();
        debug_assert!(fits, "1 + 32 + 64 bytes");
        let seed = BlobHash::of(&both);
        if self.store.setting(key::WIFI_FROM_BUILD)?.as_deref() == Some(&seed.0[..]) {
            return Ok(false);
        }
        self.store.update_settings(&[
            (key::WIFI_SSID, Some(name)),
            (key::WIFI_PASSWORD, Some(password)),
            (key::WIFI_FROM_BUILD, Some(&seed.0)),
        ])?;
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<HeapVec<u8>> {
        read(self.store, key)
    }
}

impl<F: MultiwriteNorFlash> WifiSettings for FlashWifiSettings<'_, F> {
    fn station(&self) -> Option<(Ssid, Passphrase)> {
        let name = self.get(key::WIFI_SSID)?;
        let password = self.get(key::WIFI_PASSWORD).unwrap_or_default();
        match (ssid(&name), passphrase(&password)) {
            (Ok(name), Ok(password)) => Some((name, password)),
            _ => {
                log::warn!("the stored network is not a valid WPA2 network; ignored");
                None
            }
        }
    }

    fn set_station(&mut self, name: &[u8], password: &[u8]) -> Result<(), SettingsError> {
        let change = if name.is_empty() {
            [(key::WIFI_SSID, None), (key::WIFI_PASSWORD, None)]
        } else {
            ssid(name)?;
            passphrase(password)?;
            [(key::WIFI_SSID, Some(name)), (key::WIFI_PASSWORD, Some(password))]
        };
        self.store.update_settings(&change).map_err(SettingsError::Storage)
    }

    fn access_point_password(&self) -> Passphrase {
        self.get(key::ACCESS_POINT_PASSWORD)
            .and_then(|password| passphrase(&password).ok())
            .unwrap_or_else(default_access_point_password)
    }

    fn set_access_point_password(&mut self, password: &[u8]) -> Result<(), SettingsError> {
        passphrase(password)?;
        self.store.set_setting(key::ACCESS_POINT_PASSWORD, password).map_err(SettingsError::Storage)
    }
}

/// Setting `key` of `store`, or `None` when unset or unreadable (logged: the poi then starts
/// as if it were unset, and can be set up again from its access point).
pub fn read<F: MultiwriteNorFlash>(store: &FlashStore<F>, key: &str) -> Option<HeapVec<u8>> {
    store.setting(key).unwrap_or_else(|e| {
        log::warn!("cannot read setting {key}: {e}");
        None
    })
}

/// The sync group named in `store`'s settings, or [`DEFAULT_SYNC_GROUP`].
pub fn sync_group<F: MultiwriteNorFlash>(store: &FlashStore<F>) -> String {
    match store.setting(key::SYNC_GROUP) {
        Ok(Some(group)) => String::from_utf8(group).unwrap_or_else(|_| {
            log::warn!("the stored sync group is not UTF-8; using {DEFAULT_SYNC_GROUP:?}");
            DEFAULT_SYNC_GROUP.into()
        }),
        Ok(None) => DEFAULT_SYNC_GROUP.into(),
        Err(e) => {
            log::warn!("cannot read the sync group: {e}; using {DEFAULT_SYNC_GROUP:?}");
            DEFAULT_SYNC_GROUP.into()
        }
    }
}

/// The group's pairing key: the store's [`key::PAIRING_KEY`], or else the one given at build
/// time (`POVPOI_GROUP_KEY`). `None`, an open poi, when neither is set, or when the one set is
/// not a valid key (logged: better open and reachable than keyed with a key nobody typed).
pub fn pairing_key<F: MultiwriteNorFlash>(store: &FlashStore<F>) -> Option<GroupKey> {
    let stored = store.setting(key::PAIRING_KEY).unwrap_or_else(|e| {
        log::warn!("cannot read the pairing key: {e}; trying the build's");
        None
    });
    if stored.as_ref().is_some_and(|bytes| bytes.is_empty()) {
        // Removed through the API: the build's key is not taken back.
        return None;
    }
    // Bytes that are not text become U+FFFD, which no key holds: refused (and logged) below.
    let text = match &stored {
        Some(bytes) => String::from_utf8_lossy(bytes),
        None => option_env!("POVPOI_GROUP_KEY")?.into(),
    };
    GroupKey::new(&text).inspect_err(|e| log::warn!("the pairing key set is not one ({e}); the poi is open")).ok()
}
