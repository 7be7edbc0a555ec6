//! A board draws images from flash a window of columns at a time: every column must be the
//! one a node draws from the whole image in RAM, in image mode and in sequences, on a
//! flash store as the board keeps it.

mod common;

use common::now;
use povpoi_app::clock::ClockService;
use povpoi_app::columns::{ImageWindow, WINDOW_COLUMNS};
use povpoi_app::stage::{column_start, sequence_start};
use povpoi_app::{App, Config};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{ImageId, Mode, Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::render::{Content, ImageView, Program, Renderer};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, Replica, Storage};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use rand::{Rng, SeedableRng, rngs::StdRng};

type Store = FlashStore<RamFlash>;

const SECTORS: u32 = 96;
const DEVICE: DeviceId = DeviceId([2, 0, 0, 0, 0, 1]);

fn config() -> Config {
    Config { independent: true, auto_sync: false, sync_interval: 0, ..common::board_config(DEVICE) }
}

fn store() -> &'static Store {
    let flash = RamFlash::new(SECTORS as usize);
    Box::leak(Box::new(FlashStore::open(flash, 0..SECTORS * SECTOR as u32).unwrap()))
}

fn noise(rng: &mut StdRng, width: u16, height: u16) -> Vec<u8> {
    (0..usize::from(width) * usize::from(height) * 3).map(|_| rng.random()).collect()
}

/// The whole images, as a node holds them, and the patterns.
struct Whole {
    images: Vec<(ImageId, u16, u16, Vec<u8>)>,
    pattern: (u8, Pattern),
}

impl Content for Whole {
    fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
        let (_, width, height, pixels) = self.images.iter().find(|i| i.0 == id)?;
        Some(ImageView { width: *width, height: *height, pixels })
    }

    fn pattern(&self, slot: u8) -> Option<Pattern> {
        (slot == self.pattern.0).then_some(self.pattern.1)
    }
}

/// A library of a 400x32 image, a 37x64 one, the 400x32 one's pixels as 200x64 (one blob
/// in two shapes) and a pattern, on flash.
fn library(store: &'static Store) -> (Replica<&'static Store>, Whole) {
    let mut rng = StdRng::seed_from_u64(7);
    let identity = Identity { replica: ReplicaId(1), device: DEVICE, group: "default".into() };
    let mut replica = Replica::open(store, identity).unwrap();
    let mut images = Vec::new();
    for (name, width, height) in [("wide.png", 400, 32), ("tall.png", 37, 64)] {
        let pixels = noise(&mut rng, width, height);
        let id = replica.add_image(name, u32::from(width), u32::from(height), &pixels, 1_000).unwrap();
        images.push((id, width, height, pixels));
    }
    let pixels = images[0].3.clone();
    let id = replica.add_image("reshaped.png", 200, 64, &pixels, 1_000).unwrap();
    images.push((id, 200, 64, pixels));
    let pattern = Pattern::new(PatternKind::Comet, Rgb::new(255, 40, 0), Rgb::new(0, 0, 90), 80).unwrap();
    replica.set_pattern(2, pattern, 1_000, Cue::NOW).unwrap();
    (replica, Whole { images, pattern: (2, pattern) })
}

/// What a node draws at the same moment, from the whole images.
fn drawn_whole(app: &App<&'static Store>, whole: &Whole, own_us: u64, out: &mut [Rgb]) {
    let show_us = app.clock().now(own_us);
    let stage = app.stage();
    let fps = *stage.framerate.current();
    let t_ms = (column_start(show_us, fps) + 500_000 / u64::from(fps)) / 1_000;
    let (selection, cue) = *stage.selection.current();
    let program = match selection.mode {
        Mode::Image => {
            let id = app.replica().images().nth(usize::from(selection.index)).unwrap().0;
            Program::Image(whole.image(id).unwrap())
        }
        Mode::Sequence => Program::Sequence {
            sequence: stage.sequences[usize::from(selection.index)].current().as_ref().unwrap(),
            // As the node's player asks it: at the column's middle.
            started_ms: sequence_start(cue, t_ms * 1_000),
            content: whole,
        },
        other => panic!("not drawn here: {other:?}"),
    };
    Renderer::new(32).unwrap().render(&program, t_ms, fps, 0, out);
}

/// Draws a column at each own time of `times` and checks it against the node's.
fn columns_match(
    app: &mut App<&'static Store>,
    whole: &Whole,
    window: &mut ImageWindow,
    times: impl Iterator<Item = u64>,
) {
    let renderer = Renderer::new(32).unwrap();
    let (mut board, mut node) = ([Rgb::default(); 32], [Rgb::default(); 32]);
    for own_us in times {
        let drawn = app.draw_column(now(own_us), &renderer, window, &mut board);
        assert_eq!(drawn.error, None);
        drawn_whole(app, whole, own_us, &mut node);
        assert_eq!(board, node, "column at own time {own_us} µs");
    }
}

/// `count` columns at `fps` from own time `from_us`, each drawn a little after its start.
fn in_turn(from_us: u64, fps: u64, count: u64) -> impl Iterator<Item = u64> {
    (0..count).map(move |k| from_us + (k * 1_000_000).div_ceil(fps) + k % 7 * 100)
}

/// Selects through the API, as a phone would.
fn select(app: &mut App<&'static Store>, mode: Mode, index: u16, own_us: u64) {
    common::post(app, "/api/mode", &format!(r#"{{"mode":{},"index":{index}}}"#, mode as u8), own_us);
}

#[test]
fn image_columns_read_from_flash_are_the_whole_images_columns() {
    let store = store();
    let (mut replica, whole) = library(store);
    replica.set_framerate(120, 1_000, Cue::NOW).unwrap();
    let mut app = App::new(config(), replica, ClockService::new(DEVICE, 1, 2, 0));
    let mut window = ImageWindow::new();
    select(&mut app, Mode::Image, 0, 4_000_000);
    // Twice round the 400 columns: the window is refilled every 16 columns (with 32
    // reads), and at the image's end.
    columns_match(&mut app, &whole, &mut window, in_turn(5_000_000, 120, 800));
    let refills = window.refills();
    println!("400x32 image, 800 columns in turn at 120 fps: {refills} window refills of {WINDOW_COLUMNS} columns");
    assert!((50..=52).contains(&refills), "{refills} refills");

    // The 64-row image on 32 LEDs, at moments that do not follow one another.
    select(&mut app, Mode::Image, 1, 20_000_000);
    let mut rng = StdRng::seed_from_u64(3);
    let times: Vec<u64> = (0..300).map(|_| rng.random_range(21_000_000..60_000_000)).collect();
    columns_match(&mut app, &whole, &mut window, times.into_iter());

    // The first image's pixels as 200x64 right after the first image, at a column the
    // window holds (12-27, then 18): the window holds columns of one shape (another's
    // would be read out of its bounds).
    select(&mut app, Mode::Image, 0, 60_000_000);
    columns_match(&mut app, &whole, &mut window, in_turn(60_100_000, 120, 5));
    select(&mut app, Mode::Image, 2, 60_140_000);
    columns_match(&mut app, &whole, &mut window, in_turn(60_150_000, 120, 240));
    select(&mut app, Mode::Image, 0, 64_000_000);
    columns_match(&mut app, &whole, &mut window, in_turn(64_100_000, 120, 40));

    // Its pixels gone from the flash (a sync that has not brought them yet): dark, no error.
    select(&mut app, Mode::Image, 1, 69_000_000);
    let hash = app.replica().image(whole.images[1].0).unwrap().pixels();
    (&*store).remove_blob(&hash).unwrap();
    let mut board = [Rgb::new(1, 1, 1); 32];
    let drawn = app.draw_column(now(70_000_000), &Renderer::new(32).unwrap(), &mut ImageWindow::new(), &mut board);
    assert_eq!((board, drawn.error), ([Rgb::default(); 32], None));
}

#[test]
fn sequences_read_the_column_of_the_item_playing() {
    let store = store();
    let (mut replica, whole) = library(store);
    let (wide, tall, reshaped) = (whole.images[0].0, whole.images[1].0, whole.images[2].0);
    let items = [
        (SequenceTarget::Image(wide), 700),
        (SequenceTarget::Pattern(2), 300),
        (SequenceTarget::Image(tall), 500),
        (SequenceTarget::Image(reshaped), 400),
        (SequenceTarget::Image(wide), 300),
        // An empty slot: dark.
        (SequenceTarget::Pattern(5), 200),
    ];
    let items = items.map(|(target, duration_ms)| SequenceItem { target, duration_ms }).to_vec();
    replica.set_sequence(0, Sequence::new(items, true).unwrap(), 1_000, Cue::NOW).unwrap();
    replica.set_framerate(90, 1_000, Cue::NOW).unwrap();
    let mut app = App::new(config(), replica, ClockService::new(DEVICE, 1, 2, 0));
    select(&mut app, Mode::Sequence, 0, 3_000_000);
    let mut window = ImageWindow::new();
    // Three times round the 2.4 s sequence.
    columns_match(&mut app, &whole, &mut window, in_turn(3_100_000, 90, 650));
    println!("sequence, 650 columns at 90 fps: {} window refills", window.refills());
}
