//! The ESP32-C3/C6 firmware's settings (`firmware/src/settings.rs`, compiled here on the
//! host: it uses nothing of esp-hal) over a flash store on a RAM flash: what is set survives a
//! restart, what is refused leaves the flash as it was, and the build-time network is written
//! once per image.

extern crate alloc;

mod common;

#[path = "../../../firmware/src/settings.rs"]
#[allow(dead_code)]
mod settings;

use common::{RamFlash, SECTOR};
use povpoi_flash::FlashStore;
use settings::{
    BuildWifiSettings, DEFAULT_ACCESS_POINT_PASSWORD, DEFAULT_SYNC_GROUP, FlashWifiSettings, SettingsError,
    WifiSettings, key, passphrase, ssid,
};

const SECTORS: u32 = 16;

fn new_store() -> FlashStore<RamFlash> {
    FlashStore::open(RamFlash::new(SECTORS as usize * SECTOR), 0..SECTORS * SECTOR as u32).unwrap()
}

/// The same flash after a reset.
fn restart(store: FlashStore<RamFlash>) -> FlashStore<RamFlash> {
    FlashStore::open(RamFlash::from_bytes(store.into_flash().bytes), 0..SECTORS * SECTOR as u32).unwrap()
}

fn network(name: &str, password: &str) -> Option<(settings::Ssid, settings::Passphrase)> {
    Some((ssid(name.as_bytes()).unwrap(), passphrase(password.as_bytes()).unwrap()))
}

#[test]
fn a_new_poi_has_no_network_and_the_default_access_point_password() {
    let store = new_store();
    let wifi = FlashWifiSettings::new(&store);
    assert_eq!(wifi.station(), None);
    assert_eq!(&wifi.access_point_password()[..], DEFAULT_ACCESS_POINT_PASSWORD.as_bytes());
    assert_eq!(settings::sync_group(&store), DEFAULT_SYNC_GROUP);
}

#[test]
fn a_network_and_an_access_point_password_set_survive_a_restart() {
    let store = new_store();
    let mut wifi = FlashWifiSettings::new(&store);
    wifi.set_station(b"studio", b"its password").unwrap();
    wifi.set_access_point_password(b"our own secret").unwrap();

    let store = restart(store);
    let mut wifi = FlashWifiSettings::new(&store);
    assert_eq!(wifi.station(), network("studio", "its password"));
    assert_eq!(&wifi.access_point_password()[..], b"our own secret");

    // An empty SSID forgets the network, also across a restart.
    wifi.set_station(b"", b"").unwrap();
    let store = restart(store);
    assert_eq!(FlashWifiSettings::new(&store).station(), None);
    assert_eq!(store.setting(key::WIFI_PASSWORD).unwrap(), None);
}

#[test]
fn a_bad_credential_is_refused_and_changes_nothing() {
    let store = new_store();
    let mut wifi = FlashWifiSettings::new(&store);
    wifi.set_station(b"studio", b"its password").unwrap();
    let before = store.flash().bytes.clone();

    assert_eq!(wifi.set_station(&[b'n'; 33], b"its password"), Err(SettingsError::Ssid));
    assert_eq!(wifi.set_station(b"stage", b"short"), Err(SettingsError::Passphrase));
    assert_eq!(wifi.set_station(b"stage", &[b'p'; 64]), Err(SettingsError::Passphrase));
    assert_eq!(wifi.set_access_point_password(b"1234567"), Err(SettingsError::Passphrase));
    assert_eq!(store.flash().bytes, before);
    assert_eq!(wifi.station(), network("studio", "its password"));
}

#[test]
fn stored_values_that_are_not_valid_credentials_are_ignored() {
    let store = new_store();
    // Written by something else than these settings (another firmware, a damaged save).
    store.update_settings(&[(key::WIFI_SSID, Some(b"studio")), (key::WIFI_PASSWORD, Some(b"short"))]).unwrap();
    store.set_setting(key::ACCESS_POINT_PASSWORD, b"abc").unwrap();
    store.set_setting(key::SYNC_GROUP, &[0xFF, 0xFE]).unwrap();
    let wifi = FlashWifiSettings::new(&store);
    assert_eq!(wifi.station(), None, "a poi with a broken network opens its access point");
    assert_eq!(&wifi.access_point_password()[..], DEFAULT_ACCESS_POINT_PASSWORD.as_bytes());
    assert_eq!(settings::sync_group(&store), DEFAULT_SYNC_GROUP);

    store.set_setting(key::SYNC_GROUP, "troupe A".as_bytes()).unwrap();
    assert_eq!(settings::sync_group(&store), "troupe A");
}

#[test]
fn the_build_time_network_is_written_once_per_image_and_a_later_one_is_kept() {
    let store = new_store();
    let first_image = BuildWifiSettings::new(network("studio", "its password"));
    let wifi = FlashWifiSettings::new(&store);
    assert!(wifi.apply_build(&first_image).unwrap());
    assert_eq!(wifi.station(), network("studio", "its password"));

    // The next start of the same image writes nothing.
    let store = restart(store);
    let erases = store.flash().stats.erases;
    assert!(!FlashWifiSettings::new(&store).apply_build(&first_image).unwrap());
    assert_eq!(store.flash().stats.erases, erases);

    // A network set from the setup page is not overwritten by that image's next starts...
    FlashWifiSettings::new(&store).set_station(b"stage", b"another password").unwrap();
    let store = restart(store);
    assert!(!FlashWifiSettings::new(&store).apply_build(&first_image).unwrap());
    assert_eq!(FlashWifiSettings::new(&store).station(), network("stage", "another password"));

    // ...but an image built with another network joins that one.
    let second_image = BuildWifiSettings::new(network("tour", "tour password"));
    assert!(FlashWifiSettings::new(&store).apply_build(&second_image).unwrap());
    let store = restart(store);
    assert_eq!(FlashWifiSettings::new(&store).station(), network("tour", "tour password"));

    // An image built without a network leaves the stored one alone.
    assert!(!FlashWifiSettings::new(&store).apply_build(&BuildWifiSettings::new(None)).unwrap());
    assert_eq!(FlashWifiSettings::new(&store).station(), network("tour", "tour password"));
}

#[test]
fn the_same_bytes_split_differently_are_a_different_build_network() {
    let store = new_store();
    let wifi = FlashWifiSettings::new(&store);
    assert!(wifi.apply_build(&BuildWifiSettings::new(network("ab", "cdefghijk"))).unwrap());
    assert!(wifi.apply_build(&BuildWifiSettings::new(network("abc", "defghijk"))).unwrap());
    assert_eq!(wifi.station(), network("abc", "defghijk"));
}

#[test]
fn without_storage_the_build_network_is_used_and_nothing_can_be_set() {
    let mut build = BuildWifiSettings::new(network("studio", "its password"));
    assert_eq!(build.station(), network("studio", "its password"));
    assert_eq!(&build.access_point_password()[..], DEFAULT_ACCESS_POINT_PASSWORD.as_bytes());
    assert_eq!(build.set_station(b"stage", b"another password"), Err(SettingsError::NoStorage));
    assert_eq!(build.set_access_point_password(b"our own secret"), Err(SettingsError::NoStorage));
    assert_eq!(build.station(), network("studio", "its password"));
}

#[test]
fn the_pairing_key_is_read_from_the_store_and_a_bad_one_leaves_the_poi_open() {
    let store = new_store();
    if option_env!("POVPOI_GROUP_KEY").is_none() {
        assert!(settings::pairing_key(&store).is_none(), "unset: open");
    }
    store.set_setting(key::PAIRING_KEY, b"our troupe's key").unwrap();
    let store = restart(store);
    let read = settings::pairing_key(&store).expect("the stored key");
    assert!(read.matches("our troupe's key"));
    assert!(!read.matches("another key"));
    // Too short to be a key (8-256 visible ASCII characters): not taken.
    store.set_setting(key::PAIRING_KEY, b"short").unwrap();
    assert!(settings::pairing_key(&store).is_none());
    store.set_setting(key::PAIRING_KEY, b"not \xff text at all").unwrap();
    assert!(settings::pairing_key(&store).is_none());
}
