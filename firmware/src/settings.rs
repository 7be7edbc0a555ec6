//! Where the Wi-Fi credentials come from: a small interface the flash store (`povpoi-flash`)
//! will implement, and [`RamWifiSettings`] until it does.

use heapless::Vec;

/// An SSID: 1-32 bytes, not necessarily UTF-8 (802.11 allows any bytes).
pub type Ssid = Vec<u8, 32>;

/// A WPA2 passphrase: 8-63 bytes (or 64 hex digits).
pub type Passphrase = Vec<u8, 64>;

/// The access point's password until one is set: printed on the serial log at every start and
/// written in docs/FIRMWARE.md, so a person can join a new poi. Anyone who reads the docs knows
/// it too; setting a poi's own (through [`WifiSettings::set_access_point_password`]) closes that.
pub const DEFAULT_ACCESS_POINT_PASSWORD: &str = "povpoi-setup";

/// Why a passphrase or SSID was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadCredential {
    /// The SSID is empty or longer than 32 bytes.
    Ssid,
    /// The passphrase is not 8-63 bytes (WPA2's rule; an open network is not offered).
    Passphrase,
}

/// The Wi-Fi settings a poi keeps: the network to join and its own access point's password.
pub trait WifiSettings {
    /// The network to join as a station, if one is configured.
    fn station(&self) -> Option<(Ssid, Passphrase)>;
    /// Sets the network to join; an empty `ssid` forgets it.
    fn set_station(&mut self, ssid: &[u8], password: &[u8]) -> Result<(), BadCredential>;
    /// The password of the poi's own access point.
    fn access_point_password(&self) -> Passphrase;
    /// Sets the password of the poi's own access point.
    fn set_access_point_password(&mut self, password: &[u8]) -> Result<(), BadCredential>;
}

/// Checks a WPA2 passphrase: 8-63 bytes.
pub fn passphrase(bytes: &[u8]) -> Result<Passphrase, BadCredential> {
    if !(8..=63).contains(&bytes.len()) {
        return Err(BadCredential::Passphrase);
    }
    Vec::from_slice(bytes).map_err(|_| BadCredential::Passphrase)
}

/// Checks an SSID: 1-32 bytes.
pub fn ssid(bytes: &[u8]) -> Result<Ssid, BadCredential> {
    if bytes.is_empty() {
        return Err(BadCredential::Ssid);
    }
    Vec::from_slice(bytes).map_err(|_| BadCredential::Ssid)
}

/// Wi-Fi settings held in RAM only: everything set is lost at the next reset. A stand-in until
/// the flash store implements [`WifiSettings`].
///
/// It starts from the build: `POVPOI_WIFI_SSID` and `POVPOI_WIFI_PASSWORD`, when set while
/// building, are the network to join (they end up in the image, readable by anyone holding the
/// board); without them the poi opens its own access point.
#[derive(Clone, Debug)]
pub struct RamWifiSettings {
    station: Option<(Ssid, Passphrase)>,
    access_point_password: Passphrase,
}

impl RamWifiSettings {
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
        RamWifiSettings {
            station,
            access_point_password: passphrase(DEFAULT_ACCESS_POINT_PASSWORD.as_bytes())
                .unwrap_or_else(|_| unreachable!("the default password is 12 bytes")),
        }
    }
}

impl WifiSettings for RamWifiSettings {
    fn station(&self) -> Option<(Ssid, Passphrase)> {
        self.station.clone()
    }

    fn set_station(&mut self, name: &[u8], password: &[u8]) -> Result<(), BadCredential> {
        self.station = if name.is_empty() { None } else { Some((ssid(name)?, passphrase(password)?)) };
        Ok(())
    }

    fn access_point_password(&self) -> Passphrase {
        self.access_point_password.clone()
    }

    fn set_access_point_password(&mut self, password: &[u8]) -> Result<(), BadCredential> {
        self.access_point_password = passphrase(password)?;
        Ok(())
    }
}
