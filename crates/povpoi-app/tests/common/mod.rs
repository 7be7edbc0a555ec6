//! What the tests share: a poi's own settings as a board starts with them.

use povpoi_app::Config;
use povpoi_core::device::DeviceId;

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
    }
}
