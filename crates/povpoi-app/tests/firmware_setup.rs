//! The ESP32-C3/C6 firmware's Wi-Fi setup (`firmware/src/setup.rs`, with the settings it
//! keeps, `firmware/src/settings.rs`; neither uses esp-hal), compiled here on the host and
//! run over a flash store on a RAM flash: the page a phone opens on the access point, a
//! network set that is there after the restart, and bad input refused with a 4xx that says
//! what to fix while the flash stays as it was.

extern crate alloc;

mod common;

#[path = "../../../firmware/src/settings.rs"]
#[allow(dead_code)]
mod settings;
#[path = "../../../firmware/src/setup.rs"]
mod setup;

use std::io::Read;

use common::board_config;
use povpoi_app::api::Request;
use povpoi_app::clock::ClockService;
use povpoi_app::{App, Config};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, MemoryStorage, Replica};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use povpoi_peer::key::GroupKey;
use serde_json::{Value, json};
use settings::{BuildWifiSettings, FlashWifiSettings, WifiSettings};
use setup::{Answer, OnAir};

const SECTORS: u32 = 16;

fn new_store() -> FlashStore<RamFlash> {
    FlashStore::open(RamFlash::new(SECTORS as usize), 0..SECTORS * SECTOR as u32).unwrap()
}

/// The same flash after the restart that follows a change.
fn restart(store: FlashStore<RamFlash>) -> FlashStore<RamFlash> {
    let bytes = store.into_flash().bytes().to_vec();
    let mut flash = RamFlash::new(SECTORS as usize);
    embedded_storage::nor_flash::NorFlash::write(&mut flash, 0, &bytes).unwrap();
    FlashStore::open(flash, 0..SECTORS * SECTOR as u32).unwrap()
}

fn access_point() -> OnAir {
    OnAir { station: false, ssid: "povpoi-AB12".into() }
}

/// A request as the page sends it (JSON bodies say so).
fn ask(settings: &mut dyn WifiSettings, method: &str, path: &str, body: &str) -> Answer {
    let json: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];
    ask_with(settings, method, path, body, if method == "POST" { json } else { &[] })
}

fn ask_with(
    settings: &mut dyn WifiSettings,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &[u8])],
) -> Answer {
    let request = Request {
        method,
        path,
        query: None,
        headers,
        body: body.as_bytes(),
        from: "192.168.4.50:50000".parse().unwrap(),
    };
    assert!(matches!(setup::route(&request, false, |_| Ok(())), setup::Route::Setup), "{path}");
    setup::answer(&request, settings, &access_point())
}

fn json_of(answer: &Answer) -> Value {
    assert_eq!(answer.response.content_type, "application/json");
    serde_json::from_slice(&answer.response.body).unwrap()
}

#[test]
fn the_page_is_the_gzipped_setup_form() {
    let store = new_store();
    let page = ask(&mut FlashWifiSettings::new(&store), "GET", "/", "");
    assert_eq!((page.response.status, page.restart), (200, false));
    assert_eq!(page.response.content_type, "text/html; charset=utf-8");
    assert_eq!(page.response.headers, vec![("content-encoding", "gzip".to_string())]);
    let mut html = String::new();
    flate2::read::GzDecoder::new(&page.response.body[..]).read_to_string(&mut html).unwrap();
    assert_eq!(
        html,
        include_str!("../../../firmware/src/setup/page.html"),
        "page.html.gz is not page.html: run `gzip -9nk --force firmware/src/setup/page.html`"
    );
    for wanted in ["/api/wifi/status", "/api/wifi/connect", "/api/wifi/disconnect", "/api/wifi/ap", "name=ssid"] {
        assert!(html.contains(wanted), "{wanted}");
    }
    assert!(html.contains("href=/index.html"), "the page links to the web app");
    // The same page at /setup, where it stays once the poi joined a network.
    let moved = ask(&mut FlashWifiSettings::new(&store), "GET", "/setup", "");
    assert_eq!((moved.response.status, &moved.response.body[..]), (200, setup::PAGE_GZIP));
}

#[test]
fn a_network_set_from_the_access_point_is_joined_after_the_restart() {
    let store = new_store();
    let status = ask(&mut FlashWifiSettings::new(&store), "GET", "/api/wifi/status", "");
    let fresh =
        json!({"mode": "accessPoint", "ssid": "povpoi-AB12", "stored": null, "accessPointPasswordIsDefault": true});
    assert_eq!(json_of(&status), fresh);

    let body = r#"{"ssid": "Studio 5 ☂", "password": "its password"}"#;
    let set = ask(&mut FlashWifiSettings::new(&store), "POST", "/api/wifi/connect", body);
    assert_eq!((set.response.status, set.restart), (200, true));
    assert_eq!(json_of(&set), json!({"status": "ok", "ssid": "Studio 5 ☂", "restart": true}));

    let store = restart(store);
    let wifi = FlashWifiSettings::new(&store);
    let (ssid, password) = wifi.station().unwrap();
    assert_eq!((&ssid[..], &password[..]), ("Studio 5 ☂".as_bytes(), &b"its password"[..]));
    let status = ask(&mut FlashWifiSettings::new(&store), "GET", "/api/wifi/status", "");
    assert_eq!(json_of(&status)["stored"], "Studio 5 ☂");

    // Forgetting it: the access point opens after the restart.
    let forget = ask(&mut FlashWifiSettings::new(&store), "POST", "/api/wifi/disconnect", "{}");
    assert_eq!((json_of(&forget), forget.restart), (json!({"status": "ok", "ssid": null, "restart": true}), true));
    let store = restart(store);
    assert_eq!(FlashWifiSettings::new(&store).station(), None);
}

#[test]
fn the_access_point_gets_a_password_of_its_own() {
    let store = new_store();
    assert_eq!(&FlashWifiSettings::new(&store).access_point_password()[..], b"povpoi-setup");
    // On the access point: the poi restarts to open it with the new password.
    let body = r#"{"password": "our own secret"}"#;
    let set = ask(&mut FlashWifiSettings::new(&store), "POST", "/api/wifi/ap", body);
    assert_eq!((json_of(&set), set.restart), (json!({"status": "ok", "ssid": null, "restart": true}), true));
    let store = restart(store);
    assert_eq!(&FlashWifiSettings::new(&store).access_point_password()[..], b"our own secret");
    let status = ask(&mut FlashWifiSettings::new(&store), "GET", "/api/wifi/status", "");
    assert_eq!(json_of(&status)["accessPointPasswordIsDefault"], false);

    // Joined to a network: kept for the next time the access point opens, no restart.
    let json: &[(&str, &[u8])] = &[("content-type", b"application/json")];
    let body = br#"{"password": "another secret"}"#;
    let from = "192.168.1.50:50000".parse().unwrap();
    let request = Request { method: "POST", path: "/api/wifi/ap", query: None, headers: json, body, from };
    let joined = OnAir { station: true, ssid: "studio".into() };
    let set = setup::answer(&request, &mut FlashWifiSettings::new(&store), &joined);
    assert_eq!((json_of(&set), set.restart), (json!({"status": "ok", "ssid": "studio", "restart": false}), false));
    let store = restart(store);
    assert_eq!(&FlashWifiSettings::new(&store).access_point_password()[..], b"another secret");
    assert!(FlashWifiSettings::new(&store).station().is_none(), "the network kept is not touched");
}

#[test]
fn bad_input_is_refused_with_what_to_fix_and_the_flash_unchanged() {
    let store = new_store();
    FlashWifiSettings::new(&store).set_station(b"studio", b"its password").unwrap();
    let before = store.flash().bytes().to_vec();
    let cases = [
        ("POST", "/api/wifi/connect", r#"{"ssid": "stage", "password": "short"}"#, 400, "8-63 bytes"),
        (
            "POST",
            "/api/wifi/connect",
            &format!(r#"{{"ssid": "{}", "password": "long enough"}}"#, "n".repeat(33)),
            400,
            "1-32 bytes",
        ),
        ("POST", "/api/wifi/connect", r#"{"ssid": "", "password": "long enough"}"#, 400, "ssid is empty"),
        ("POST", "/api/wifi/connect", r#"{"ssid": "stage"}"#, 400, "password is missing"),
        (
            "POST",
            "/api/wifi/connect",
            r#"{"ssid": 5, "password": "long enough"}"#,
            400,
            "ssid is missing: send it as text",
        ),
        (
            "POST",
            "/api/wifi/connect",
            r#"{"ssid": "a", "password": "long enough", "pass": 1}"#,
            400,
            "unknown field \"pass\"",
        ),
        ("POST", "/api/wifi/connect", r#"["stage", "long enough"]"#, 400, "JSON object"),
        ("POST", "/api/wifi/connect", "ssid=stage", 400, "JSON object"),
        ("POST", "/api/wifi/connect", "", 400, "empty"),
        ("POST", "/api/wifi/ap", r#"{"password": "short"}"#, 400, "8-63 bytes"),
        ("POST", "/api/wifi/ap", r#"{"password": "long enough", "ssid": "x"}"#, 400, "unknown field \"ssid\""),
        ("POST", "/api/wifi/ap", r#"{"password": 12345678}"#, 400, "password is missing: send it as text"),
        ("GET", "/api/wifi/ap", "", 405, "method"),
        ("GET", "/api/wifi/connect", "", 405, "method"),
        ("POST", "/api/wifi/status", "", 405, "method"),
        ("PUT", "/", "", 405, "method"),
        ("GET", "/api/wifi/scan", "", 501, "type the network's name"),
        ("GET", "/api/wifi/other", "", 404, "no such endpoint"),
    ];
    for (method, path, body, status, says) in cases {
        let answer = ask(&mut FlashWifiSettings::new(&store), method, path, body);
        let error = json_of(&answer)["error"].as_str().unwrap_or_default().to_string();
        assert_eq!((answer.response.status, answer.restart), (status, false), "{method} {path} {body}: {error}");
        assert!(error.contains(says), "{method} {path} {body}: {error:?} does not say {says:?}");
    }
    // A form or plain text, as a page on another site can send without asking: refused.
    let body = r#"{"ssid": "elsewhere", "password": "long enough"}"#;
    for content_type in [&b"text/plain"[..], b"application/x-www-form-urlencoded"] {
        for path in ["/api/wifi/connect", "/api/wifi/disconnect", "/api/wifi/ap"] {
            let answer =
                ask_with(&mut FlashWifiSettings::new(&store), "POST", path, body, &[("content-type", content_type)]);
            assert_eq!((answer.response.status, answer.restart), (415, false), "{path}");
        }
    }
    let answer = ask_with(&mut FlashWifiSettings::new(&store), "POST", "/api/wifi/connect", body, &[]);
    assert_eq!(answer.response.status, 415);
    assert_eq!(store.flash().bytes(), &before[..], "nothing written");
    assert_eq!(&FlashWifiSettings::new(&store).station().unwrap().0[..], b"studio");
}

#[test]
fn without_storage_nothing_can_be_set() {
    let mut build = BuildWifiSettings::new(None);
    let answer = ask(&mut build, "POST", "/api/wifi/connect", r#"{"ssid": "stage", "password": "long enough"}"#);
    assert_eq!((answer.response.status, answer.restart), (503, false));
    assert!(json_of(&answer)["error"].as_str().unwrap().contains("no storage"));
}

/// The board answers the page and `/api/wifi/*` itself, the latter only once the
/// application's check lets them through; everything else goes to the application.
#[test]
fn only_the_setup_paths_are_the_boards_and_only_the_page_is_open() {
    let refusal = || povpoi_app::api::ApiError::new(401, "key").response();
    let request = |path: &'static str| Request {
        method: "POST",
        path,
        query: None,
        headers: &[],
        body: b"",
        from: "192.168.4.50:50000".parse().unwrap(),
    };
    for path in ["/", "/api/wifi/connect", "/api/wifi/disconnect", "/api/wifi/status", "/api/wifi/../x"] {
        assert!(matches!(setup::route(&request(path), false, |_| Ok(())), setup::Route::Setup), "{path}");
    }
    assert!(matches!(setup::route(&request("/api/device/config"), false, |_| Ok(())), setup::Route::Config));
    assert!(matches!(
        setup::route(&request("/api/device/config"), false, |_| Err(refusal())),
        setup::Route::Refused(_)
    ));
    let get = Request { method: "GET", ..request("/api/device/config") };
    assert!(matches!(setup::route(&get, false, |_| Err(refusal())), setup::Route::App), "GET is the application's");
    for path in ["/api/status", "/api/wifi", "/index.html", "/api/sync/v1", "//api/wifi/connect"] {
        assert!(matches!(setup::route(&request(path), false, |_| Err(refusal())), setup::Route::App), "{path}");
    }
    assert!(matches!(setup::route(&request("/"), false, |_| Err(refusal())), setup::Route::Setup));
    // Joined to a network, `/` is the web app's and the page moves to `/setup` alone.
    assert!(matches!(setup::route(&request("/"), true, |_| Err(refusal())), setup::Route::App));
    assert!(matches!(setup::route(&request("/setup"), true, |_| Err(refusal())), setup::Route::Setup));
    for path in ["/api/wifi/connect", "/api/wifi/status", "/api/wifi/scan"] {
        match setup::route(&request(path), false, |_| Err(refusal())) {
            setup::Route::Refused(r) => assert_eq!(r.status, 401, "{path}"),
            _ => panic!("{path} not refused"),
        }
    }
}

/// In a group with a pairing key, the board asks the application before it answers a
/// guarded setup path (`poi::Http`): without the key as a bearer, a 401.
#[test]
fn a_keyed_poi_refuses_setup_without_its_key() {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let key = "spin the fire 42";
    let identity = Identity { replica: ReplicaId(1), device, group: "g".into() };
    let replica = Replica::open(MemoryStorage::default(), identity).unwrap();
    let config = Config { group_key: Some(GroupKey::new(key).unwrap()), ..board_config(device) };
    let app = App::new(config, replica, ClockService::new(device, 1, 2, 0));
    let bearer = format!("Bearer {key}");
    let wrong: &[(&str, &[u8])] = &[("Authorization", b"Bearer not the key")];
    let right: &[(&str, &[u8])] = &[("authorization", bearer.as_bytes())];
    for (headers, admitted) in [(&[][..], false), (wrong, false), (right, true)] {
        let request = Request {
            method: "POST",
            path: "/api/wifi/connect",
            query: None,
            headers,
            body: b"{}",
            from: "192.168.4.50:50000".parse().unwrap(),
        };
        // As `poi::Http` routes it.
        match setup::route(&request, false, |r| app.authorize(r)) {
            setup::Route::Setup => assert!(admitted),
            setup::Route::Refused(refusal) => {
                assert!(!admitted);
                assert_eq!(refusal.status, 401);
            }
            setup::Route::App | setup::Route::Config => panic!("not the board's setup"),
        }
    }
}

fn post_config(app: &mut App<&FlashStore<RamFlash>>, store: &FlashStore<RamFlash>, body: &str) -> (u16, Value) {
    post_config_as(app, store, body, b"application/json")
}

fn post_config_as(
    app: &mut App<&FlashStore<RamFlash>>,
    store: &FlashStore<RamFlash>,
    body: &str,
    content_type: &[u8],
) -> (u16, Value) {
    let now = povpoi_app::Now { wall_us: 1_800_000_000_000_000, own_us: 5_000_000 };
    let headers: &[(&str, &[u8])] = &[("Content-Type", content_type)];
    let request = Request {
        method: "POST",
        path: "/api/device/config",
        query: None,
        headers,
        body: body.as_bytes(),
        from: "192.168.4.50:50000".parse().unwrap(),
    };
    let answer = app.change_config(&request, now, |change| setup::keep(store, change));
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

/// `POST /api/device/config` on a board: checked and applied by the application, kept in
/// the flash by `setup::keep`, read back after a restart; refused changes keep nothing.
#[test]
fn a_device_config_set_on_a_board_is_applied_and_kept_across_a_restart() {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let store = new_store();
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let mut app =
        App::new(board_config(device), Replica::open(&store, identity).unwrap(), ClockService::new(device, 1, 2, 0));
    assert_eq!(setup::kept(&store), setup::Kept::default());

    // What a form on another site can send (no preflight): a key nobody here knows, refused.
    let before = store.flash().bytes().to_vec();
    for content_type in [&b"text/plain"[..], b"application/x-www-form-urlencoded", b""] {
        let (status, answer) = post_config_as(&mut app, &store, r#"{"groupKey":"attacker key=x"}"#, content_type);
        assert_eq!(status, 415, "{answer}");
    }
    assert!(app.config().group_key.is_none());
    assert_eq!(store.flash().bytes(), &before[..]);

    let body = r#"{"deviceName": "Left poi", "syncGroup": "troupe", "autoSync": false, "syncInterval": 5000, "groupKey": "spin the fire 42"}"#;
    assert_eq!(post_config(&mut app, &store, body), (200, json!({"status": "ok", "message": "configuration saved"})));
    let c = app.config();
    assert_eq!((c.device_name.as_str(), c.auto_sync, c.sync_interval), ("Left poi", false, 5000));
    assert!(c.group_key.as_ref().is_some_and(|k| k.matches("spin the fire 42")));
    assert_eq!(app.replica().group(), "troupe");

    // Keyed now: changing the key needs the current one; a strip setting is not the API's
    // on a board; a bad name is a 400. None of them writes to the flash.
    let before = store.flash().bytes().to_vec();
    for (body, status, says) in [
        (r#"{"groupKey": "another key 1234"}"#, 403, "currentGroupKey"),
        (r#"{"ledCount": 64}"#, 400, "not set through the API on a board"),
        (r#"{"deviceName": ""}"#, 400, "deviceName must not be empty"),
        (r#"{"syncInterval": 10}"#, 400, "syncInterval must be"),
        (r#"{"devicename": "x"}"#, 400, "unknown field"),
    ] {
        let (got, answer) = post_config(&mut app, &store, body);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    assert_eq!(store.flash().bytes(), &before[..]);
    assert_eq!(app.config().device_name, "Left poi");

    drop(app);
    let store = restart(store);
    let kept = setup::kept(&store);
    assert_eq!(
        kept,
        setup::Kept { device_name: Some("Left poi".into()), auto_sync: Some(false), sync_interval: Some(5000) }
    );
    assert_eq!(settings::sync_group(&store), "troupe");
    assert!(settings::pairing_key(&store).is_some_and(|k| k.matches("spin the fire 42")));

    // The key removed with the current one: the board is open again after a restart.
    let identity = Identity { replica: ReplicaId(1), device, group: "troupe".into() };
    let mut config = board_config(device);
    config.group_key = settings::pairing_key(&store);
    let mut app = App::new(config, Replica::open(&store, identity).unwrap(), ClockService::new(device, 1, 2, 0));
    let body = r#"{"groupKey": null, "currentGroupKey": "spin the fire 42"}"#;
    assert_eq!(post_config(&mut app, &store, body).0, 200);
    assert!(app.config().group_key.is_none());
    drop(app);
    let store = restart(store);
    assert!(settings::pairing_key(&store).is_none());
    // Kept as removed, not as unset: a board built with POVPOI_GROUP_KEY stays open.
    assert_eq!(store.setting(settings::key::PAIRING_KEY).unwrap(), Some(Vec::new()));
}
