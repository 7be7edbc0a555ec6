//! A board's column: `povpoi_app::App::draw_column` over the flash store (on a RAM flash
//! with the ESP32's geometry), as the firmware's column clock calls it, drawing an image
//! whose pixels stay in the flash, a window of 16 columns at a time.

use povpoi_app::clock::ClockService;
use povpoi_app::columns::ImageWindow;
use povpoi_app::stage::column_start;
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Rgb, Selection};
use povpoi_core::render::{ImageView, Program, Renderer};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, Replica};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};

/// What drawing `columns` columns of a 400x32 image in turn at 250 fps cost.
pub struct Drawn {
    /// Instructions per column, the window's refills from the RAM flash included.
    pub per_column: u64,
    /// Of these, letting cues take effect (`App::play`, which `draw_column` calls first).
    pub play: u64,
    /// Window refills (32 reads each).
    pub refills: u64,
    /// Columns that differ from the renderer's column of the whole image.
    pub wrong: u32,
}

/// Draws `columns` columns as a board does; `measure` runs one call and returns its count.
pub fn draw_image_columns(columns: u32, pixels: &[u8], mut measure: impl FnMut(&mut dyn FnMut()) -> u64) -> Drawn {
    const SECTORS: usize = 32;
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let store = FlashStore::open(RamFlash::new(SECTORS), 0..(SECTORS * SECTOR) as u32).unwrap();
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let mut replica = Replica::open(&store, identity).unwrap();
    replica.add_image("wide.png", 400, 32, pixels, 1_000).unwrap();
    replica.set_framerate(250, 1_000, Cue::NOW).unwrap();
    replica.set_selection(Selection { mode: Mode::Image, index: 0 }, 1_000, Cue::NOW).unwrap();
    let config = Config {
        device_id: device,
        device_name: device.default_name(),
        group_key: None,
        independent: true,
        auto_sync: false,
        sync_interval: 0,
        peer_timeout_s: 120,
        port: 80,
        real_time: true,
        replay_capacity: 16,
        max_fetched_blob_bytes: usize::MAX,
        max_pushed_blob_bytes: usize::MAX,
    };
    let mut app = App::new(config, replica, ClockService::new(device, 1, 2, 0));
    let renderer = Renderer::new(32).unwrap();
    let whole = Program::Image(ImageView { width: 400, height: 32, pixels });
    let mut window = ImageWindow::new();
    let (mut board, mut node) = ([Rgb::default(); 32], [Rgb::default(); 32]);
    let (mut spent, mut playing, mut wrong) = (0, 0, 0);
    for k in 0..u64::from(columns) {
        let own_us = 10_000_000 + k * 4_000 + 100;
        let now = Now { wall_us: 1_800_000_000_000_000 + own_us, own_us };
        playing += measure(&mut || {
            app.play(now);
        });
        spent += measure(&mut || {
            app.draw_column(now, &renderer, &mut window, &mut board);
        });
        let show_us = app.clock().now(own_us);
        let t_ms = (column_start(show_us, 250) + 2_000) / 1_000;
        renderer.render(&whole, t_ms, 250, 0, &mut node);
        wrong += u32::from(board != node);
    }
    let n = u64::from(columns);
    Drawn { per_column: spent / n, play: playing / n, refills: window.refills(), wrong }
}
