//! What the tests share: a poi's own settings as a board starts with them.

use povpoi_app::{App, Config, Now};
use povpoi_core::device::DeviceId;
use povpoi_core::sync::Storage;

/// A board's configuration, open (no pairing key), syncing by itself every 30 s, with no
/// limit on the pixels its sessions move; tests change what they look at.
pub fn board_config(device: DeviceId) -> Config {
    Config {
        device_id: device,
        device_name: device.default_name(),
        group_key: None,
        independent: false,
        auto_sync: true,
        sync_interval: povpoi_app::DEFAULT_SYNC_INTERVAL_MS,
        peer_timeout_s: 120,
        port: 80,
        real_time: true,
        replay_capacity: 128,
        max_fetched_blob_bytes: usize::MAX,
        max_pushed_blob_bytes: usize::MAX,
        max_push_part_bytes: povpoi_core::sync::MAX_PUSH_RECORD_BYTES,
        max_answered_delta_bytes: usize::MAX,
        max_uploaded_image_bytes: usize::MAX,
        wifi_setup: false,
    }
}

/// This poi's clock reading `own_us` after it started, with a wall clock in 2027.
#[allow(dead_code, reason = "not every test file reads the clock")]
pub fn now(own_us: u64) -> Now {
    Now { wall_us: 1_800_000_000_000_000 + own_us, own_us }
}

/// Posts a JSON `body` to `path` as a phone would, at own time `own_us`; the answer must be 200.
#[allow(dead_code, reason = "not every test file posts")]
pub fn post<S: Storage>(app: &mut App<S>, path: &str, body: &str, own_us: u64) {
    let from = "127.0.0.1:9".parse().unwrap();
    let request =
        povpoi_app::api::Request { method: "POST", path, query: None, headers: &[], body: body.as_bytes(), from };
    let answer = app.handle(&request, now(own_us), &mut rand::rng());
    assert_eq!(answer.status, 200, "{path} {body}: {}", String::from_utf8_lossy(&answer.body));
}
