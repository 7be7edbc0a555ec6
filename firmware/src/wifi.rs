//! Wi-Fi (esp-radio): join the configured network as a station, or else open the poi's own
//! access point.
//!
//! The choice is made once, at start: a station that joined keeps rejoining that network
//! ([`keep_station_joined`]); a poi that could not join runs its access point until reset, so a
//! phone on it is not cut off by a retry. Power saving stays off in both: the show clock's
//! probes need the radio awake, as modem sleep adds up to a beacon interval (~100 ms) of jitter.

use core::net::Ipv4Addr;

use embassy_time::{Duration, Timer, with_timeout};
use esp_radio::wifi::ap::AccessPointConfig;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, ControllerConfig, PowerSaveMode, WifiController, WifiError};

use crate::settings::{Passphrase, Ssid, WifiSettings};

/// How long joining the configured network may take before the poi opens its own access point.
/// Long enough for a router that is slow to answer (a few tries of a few seconds each), short
/// enough that a performer waiting for the poi's own network is not left wondering.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The poi's address on its own access point: the existing system's (`EXISTING_SYSTEM.md` §6).
pub const ACCESS_POINT_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

/// The access point's channel. 6 rather than the driver's 1: the middle of the 2.4 GHz band,
/// allowed in every regulatory domain.
pub const ACCESS_POINT_CHANNEL: u8 = 6;

/// At most this many phones and poi on the access point at once. The hardware keys are shared
/// with ESP-NOW; four clients cover a performer's phone and a troupe's poi.
pub const ACCESS_POINT_CLIENTS: u16 = 4;

/// The driver's settings: its buffers bounded to fit the radio's heap ([`crate::heap`]).
///
/// Fewer buffers than the driver's defaults (10 static RX, 32 dynamic RX and TX), which assume
/// megabytes of traffic; a poi moves a few images. The block-ack window stays below both the
/// dynamic RX count and twice the static count, as the driver asks.
pub fn controller_config() -> ControllerConfig {
    ControllerConfig::default()
        .with_static_rx_buf_num(8)
        .with_dynamic_rx_buf_num(10)
        .with_dynamic_tx_buf_num(10)
        .with_rx_ba_win(6)
        // Power saving off also while not joined, so the access point and rejoining stay prompt.
        .with_sta_disconnected_pm(false)
}

/// How the poi is on the air.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Joined the configured network; addresses come from its DHCP server.
    Station {
        /// The network joined.
        ssid: Ssid,
    },
    /// Its own access point, at [`ACCESS_POINT_ADDRESS`].
    AccessPoint {
        /// The access point's name, `povpoi-XXXX`.
        ssid: heapless::String<32>,
    },
}

/// `povpoi-XXXX`: XXXX the last four hex digits of the MAC, upper case, like the poi's mDNS
/// host name, so the network a phone sees and the name it browses to match.
pub fn access_point_name(mac: [u8; 6]) -> heapless::String<32> {
    let label = povpoi_peer::advert::host_label(povpoi_core::device::DeviceId(mac));
    // 11 characters always fit in 32.
    heapless::String::try_from(label.as_str()).unwrap_or_default()
}

/// Brings Wi-Fi up: joins the configured network within [`JOIN_TIMEOUT`], or opens the access
/// point named after `mac` with the configured password.
pub async fn start(
    controller: &mut WifiController<'static>,
    settings: &(impl WifiSettings + ?Sized),
    mac: [u8; 6],
) -> Link {
    if let Some((ssid, password)) = settings.station() {
        match join(controller, &ssid, &password).await {
            Ok(()) => return Link::Station { ssid },
            Err(why) => log::warn!(
                "could not join {:?} within {} s ({why}); opening the poi's own access point",
                core::str::from_utf8(&ssid).unwrap_or("<not UTF-8>"),
                JOIN_TIMEOUT.as_secs()
            ),
        }
    } else {
        log::info!("no network configured; opening the poi's own access point");
    }
    let ssid = access_point_name(mac);
    let password = settings.access_point_password();
    match open_access_point(controller, &ssid, &password) {
        // The default is printed in the docs anyway; one a person chose stays off the log.
        Ok(()) if password.as_slice() == crate::settings::DEFAULT_ACCESS_POINT_PASSWORD.as_bytes() => log::info!(
            "access point {ssid} (WPA2, password {:?}) at {ACCESS_POINT_ADDRESS}",
            crate::settings::DEFAULT_ACCESS_POINT_PASSWORD
        ),
        Ok(()) => log::info!("access point {ssid} (WPA2, the password set for it) at {ACCESS_POINT_ADDRESS}"),
        // Nothing else to fall back to: without a radio the poi is a standalone player.
        Err(e) => log::error!("cannot open the access point {ssid}: {e:?}"),
    }
    Link::AccessPoint { ssid }
}

/// Why joining failed.
#[derive(Debug)]
enum JoinError {
    Config(WifiError),
    Timeout,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JoinError::Config(e) => write!(f, "the driver refused the settings: {e:?}"),
            JoinError::Timeout => f.write_str("no answer in time"),
        }
    }
}

async fn join(controller: &mut WifiController<'static>, ssid: &[u8], password: &[u8]) -> Result<(), JoinError> {
    controller.set_config(&station_config(ssid, password)?).map_err(JoinError::Config)?;
    controller.set_power_saving(PowerSaveMode::None).map_err(JoinError::Config)?;
    with_timeout(JOIN_TIMEOUT, async {
        loop {
            match controller.connect_async().await {
                Ok(info) => {
                    log::info!("joined {:?} on channel {}", info.ssid, info.channel);
                    return;
                }
                Err(e) => {
                    log::info!("join attempt failed: {e:?}");
                    Timer::after(Duration::from_secs(1)).await;
                }
            }
        }
    })
    .await
    .map_err(|_| JoinError::Timeout)
}

fn station_config(ssid: &[u8], password: &[u8]) -> Result<Config, JoinError> {
    let ssid = ssid.try_into().map_err(JoinError::Config)?;
    let password = password.try_into().map_err(JoinError::Config)?;
    Ok(Config::Station(
        StationConfig::default()
            .with_ssid(ssid)
            // WPA2 or WPA3-transition routers both accept a WPA2 station.
            .with_authentication(AuthenticationMethodConfig::Wpa2Personal(password)),
    ))
}

fn open_access_point(
    controller: &mut WifiController<'static>,
    ssid: &str,
    password: &Passphrase,
) -> Result<(), WifiError> {
    let config = AccessPointConfig::default()
        .with_ssid(ssid.try_into()?)
        .with_channel(ACCESS_POINT_CHANNEL)
        .with_authentication(AuthenticationMethodConfig::Wpa2Personal(password.as_slice().try_into()?))
        .with_max_connections(ACCESS_POINT_CLIENTS);
    controller.set_config(&Config::AccessPoint(config))?;
    controller.set_power_saving(PowerSaveMode::None)
}

/// Rejoins the network whenever the station drops off it, for as long as the poi runs.
pub async fn keep_station_joined(mut controller: WifiController<'static>) -> ! {
    loop {
        if controller.is_connected() {
            match controller.wait_for_disconnect_async().await {
                Ok(info) => log::warn!("left the network: {:?}", info.reason),
                Err(e) => log::warn!("lost the network: {e:?}"),
            }
        }
        match controller.connect_async().await {
            Ok(_) => log::info!("rejoined the network"),
            // The router may be restarting; keep trying without flooding it.
            Err(e) => {
                log::info!("rejoin failed: {e:?}");
                Timer::after(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Keeps the access point's controller alive (dropping it would stop Wi-Fi) and logs who joins.
pub async fn keep_access_point(controller: WifiController<'static>) -> ! {
    loop {
        match controller.wait_for_access_point_connected_event_async().await {
            Ok(event) => log::info!("access point: {event:?}"),
            Err(e) => {
                log::warn!("access point events: {e:?}");
                Timer::after(Duration::from_secs(1)).await;
            }
        }
    }
}
