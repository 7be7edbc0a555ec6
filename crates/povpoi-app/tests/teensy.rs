//! A board mirrors what plays to the Teensy as a node does: the same commands in the same
//! order, the image read from flash 32 columns at a time and squeezed to the Teensy's
//! 256-column counter, and after a change only what changed.

mod common;

use std::cell::RefCell;

use common::{now, post};
use povpoi_app::clock::ClockService;
use povpoi_app::sessions::AppLock;
use povpoi_app::teensy::{Mirroring, Port, ack_timeout_us, send_changes};
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, Replica, Storage};
use povpoi_core::wire::teensy::{Command, ImageFrame, Receiver};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};

type Store = FlashStore<RamFlash>;

const SECTORS: u32 = 64;
const DEVICE: DeviceId = DeviceId([2, 0, 0, 0, 0, 7]);

fn store() -> &'static Store {
    let flash = RamFlash::new(SECTORS as usize);
    Box::leak(Box::new(FlashStore::open(flash, 0..SECTORS * SECTOR as u32).unwrap()))
}

fn pixels(width: u16, height: u16, seed: u8) -> Vec<u8> {
    // A quarter of the bytes 254, which the link must not send as they are.
    (0..usize::from(width) * usize::from(height) * 3)
        .map(|i| if i % 4 == 0 { 254 } else { (i as u8).wrapping_mul(31).wrapping_add(seed) })
        .collect()
}

/// The application behind a lock, as a board's tasks share it.
struct Locked(RefCell<App<&'static Store>>);

impl AppLock for Locked {
    type Storage = &'static Store;

    fn with<R>(&self, f: impl FnOnce(&mut App<&'static Store>, Now) -> R) -> R {
        f(&mut self.0.borrow_mut(), now(0))
    }
}

/// A serial port to a Teensy that acks every command at once, or never.
#[derive(Default)]
struct FakePort {
    wire: Vec<u8>,
    answers: bool,
    waits: u32,
}

impl Port for FakePort {
    async fn write(&mut self, bytes: &[u8]) {
        self.wire.extend_from_slice(bytes);
    }

    fn forget_acks(&mut self) {}

    async fn ack(&mut self, _code: u8, timeout_us: u64) -> bool {
        assert!(timeout_us >= 500_000);
        self.waits += 1;
        self.answers
    }
}

/// Sends the Teensy everything the application plays that it lacks, as a board's link
/// does, and returns the commands the Teensy's parser got and what the driver counted.
fn mirror(app: &Locked, mirror: &mut Mirroring) -> Vec<Command> {
    let mut port = FakePort { answers: true, ..FakePort::default() };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let sent = runtime.block_on(send_changes(app, mirror, &mut port));
    let got: Vec<Command> =
        Receiver::default().feed(&port.wire).into_iter().map(|c| c.expect("a well-formed frame")).collect();
    assert_eq!((sent.commands as usize, sent.unacked, sent.rows_unread), (got.len(), 0, 0));
    assert_eq!(port.waits as usize, got.len(), "every command here is acked");
    got
}

/// The image the Teensy should get: squeezed to 256 columns, nearest column, then as sent.
fn squeezed(width: u16, height: u16, pixels: &[u8]) -> Command {
    let played = width.min(256);
    let mut out = Vec::new();
    for y in 0..usize::from(height) {
        for x in 0..usize::from(played) {
            let from = 3 * (y * usize::from(width) + x * usize::from(width) / usize::from(played));
            out.extend_from_slice(&pixels[from..from + 3]);
        }
    }
    Command::image(played, height, &out).to_wire()
}

#[test]
fn a_board_mirrors_what_plays_to_the_teensy_from_its_flash() {
    let store = store();
    let identity = Identity { replica: ReplicaId(3), device: DEVICE, group: "default".into() };
    let mut replica = Replica::open(store, identity).unwrap();
    let (wide, small) = (pixels(400, 32, 1), pixels(20, 8, 2));
    let wide_id = replica.add_image("wide.png", 400, 32, &wide, 1_000).unwrap();
    let small_id = replica.add_image("small.png", 20, 8, &small, 1_000).unwrap();
    let comet = Pattern::new(PatternKind::Comet, Rgb::new(255, 40, 0), Rgb::new(0, 0, 90), 80).unwrap();
    replica.set_pattern(2, comet, 1_000, Cue::NOW).unwrap();
    // The sequence's first image is the small one: what the Teensy's one image slot gets.
    let items = [
        (SequenceTarget::Pattern(2), 500),
        (SequenceTarget::Image(small_id), 700),
        (SequenceTarget::Image(wide_id), 300),
    ];
    let items = items.map(|(target, duration_ms)| SequenceItem { target, duration_ms }).to_vec();
    let sequence = Sequence::new(items, true).unwrap();
    replica.set_sequence(1, sequence.clone(), 1_000, Cue::NOW).unwrap();
    replica.set_brightness(120, 1_000, Cue::NOW).unwrap();
    replica.set_framerate(60, 1_000, Cue::NOW).unwrap();
    let config = Config { independent: true, auto_sync: false, ..common::board_config(DEVICE) };
    let app = Locked(RefCell::new(App::new(config, replica, ClockService::new(DEVICE, 1, 2, 0))));
    let mut teensy = Mirroring::default();
    let post = |path: &str, body: &str, own_us: u64| {
        let mut app = app.0.borrow_mut();
        post(&mut app, path, body, own_us);
        app.play(now(own_us + 1_000_000));
    };

    // Image mode, the 400x32 image: everything, the mode last.
    post("/api/mode", r#"{"mode":1,"index":0}"#, 1_000_000);
    assert_eq!(
        mirror(&app, &mut teensy),
        [
            Command::pattern(2, &comet).to_wire(),
            Command::sequence(1, &sequence).to_wire(),
            squeezed(400, 32, &wide),
            Command::Brightness(120),
            Command::FrameRate(60),
            Command::set_mode(Mode::Image, 0),
        ]
    );
    assert_eq!(mirror(&app, &mut teensy), [], "nothing changed, nothing sent");

    // A brightness change: only that.
    post("/api/brightness", r#"{"brightness":40}"#, 3_000_000);
    assert_eq!(mirror(&app, &mut teensy), [Command::Brightness(40)]);

    // The sequence: its first image that is stored, then the mode.
    post("/api/mode", r#"{"mode":3,"index":1}"#, 5_000_000);
    assert_eq!(mirror(&app, &mut teensy), [squeezed(20, 8, &small), Command::set_mode(Mode::Sequence, 1)]);

    // Image mode on an image whose pixels are not stored (yet): idle, no image sent.
    let hash = app.0.borrow().replica().image(wide_id).unwrap().pixels();
    (&*store).remove_blob(&hash).unwrap();
    post("/api/mode", r#"{"mode":1,"index":0}"#, 7_000_000);
    assert_eq!(mirror(&app, &mut teensy), [Command::set_mode(Mode::Idle, 0)]);
    post("/api/mode", r#"{"mode":2,"index":2}"#, 9_000_000);
    assert_eq!(mirror(&app, &mut teensy), [Command::set_mode(Mode::Pattern, 2)]);
}

#[test]
fn a_silent_teensy_is_waited_for_twice_per_change_then_sent_the_rest() {
    let store = store();
    let identity = Identity { replica: ReplicaId(4), device: DEVICE, group: "default".into() };
    let mut replica = Replica::open(store, identity).unwrap();
    replica.add_image("small.png", 20, 8, &pixels(20, 8, 3), 1_000).unwrap();
    let comet = Pattern::new(PatternKind::Comet, Rgb::new(255, 40, 0), Rgb::new(0, 0, 90), 80).unwrap();
    replica.set_pattern(0, comet, 1_000, Cue::NOW).unwrap();
    replica.set_pattern(1, comet, 1_000, Cue::NOW).unwrap();
    let config = Config { independent: true, auto_sync: false, ..common::board_config(DEVICE) };
    let app = Locked(RefCell::new(App::new(config, replica, ClockService::new(DEVICE, 1, 2, 0))));
    post(&mut app.0.borrow_mut(), "/api/mode", r#"{"mode":1,"index":0}"#, 1_000_000);
    app.0.borrow_mut().play(now(2_000_000));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut teensy = Mirroring::default();
    let mut port = FakePort::default();
    let sent = runtime.block_on(send_changes(&app, &mut teensy, &mut port));
    // Two patterns, the image, brightness, frame rate, the mode: all sent, two waited for.
    assert_eq!((sent.commands, sent.unacked, port.waits), (6, 6, 2));
    let got = Receiver::default().feed(&port.wire);
    assert_eq!(got.len(), 6);
    assert_eq!(got[5], Ok(Command::set_mode(Mode::Image, 0)));
    // The next change starts waiting again.
    post(&mut app.0.borrow_mut(), "/api/brightness", r#"{"brightness":9}"#, 3_000_000);
    app.0.borrow_mut().play(now(4_000_000));
    let sent = runtime.block_on(send_changes(&app, &mut teensy, &mut port));
    assert_eq!((sent.commands, sent.unacked, port.waits), (1, 1, 3));
}

/// Widths around the chunks (32 columns), the padded width (254 goes as 255), the counter's
/// 256, squeezed ones, and a 400x64 image (squeezed to 256x64: 49,152 bytes, whole).
#[test]
fn every_image_shape_goes_out_in_chunks_as_the_whole_image_would() {
    for (w, h) in
        [(1, 1), (31, 8), (33, 8), (64, 3), (254, 8), (255, 2), (256, 32), (257, 8), (300, 32), (399, 5), (400, 64)]
    {
        let store = store();
        let identity = Identity { replica: ReplicaId(5), device: DEVICE, group: "default".into() };
        let mut replica = Replica::open(store, identity).unwrap();
        let px = pixels(w, h, w as u8);
        replica.add_image("shape.png", u32::from(w), u32::from(h), &px, 1_000).unwrap();
        let config = Config { independent: true, auto_sync: false, ..common::board_config(DEVICE) };
        let app = Locked(RefCell::new(App::new(config, replica, ClockService::new(DEVICE, 1, 2, 0))));
        post(&mut app.0.borrow_mut(), "/api/mode", r#"{"mode":1,"index":0}"#, 1_000_000);
        app.0.borrow_mut().play(now(2_000_000));
        let got = mirror(&app, &mut Mirroring::default());
        let mut whole = Vec::new();
        ImageFrame::new(w, h).encode(&px, &mut whole);
        let whole = Receiver::default().feed(&whole).remove(0).unwrap();
        assert!(got.contains(&whole), "{w}x{h}: {got:?}");
        assert!(got.contains(&squeezed(w, h, &px)), "{w}x{h}");
    }
}

#[test]
fn ack_waits_grow_with_the_command() {
    assert_eq!(ack_timeout_us(0), 500_000);
    // A 400 x 32 image goes as 256 x 32: 24,585 bytes, 2.13 s on the wire.
    let image = ImageFrame::new(400, 32).encoded_len();
    assert_eq!(image, 24_585);
    assert!((3_690_000..3_710_000).contains(&ack_timeout_us(image)), "{}", ack_timeout_us(image));
    // The largest upload, 256 x 64: 49,161 bytes, 4.27 s.
    let largest = ImageFrame::new(256, 64).encoded_len();
    assert!((6_890_000..6_910_000).contains(&ack_timeout_us(largest)), "{}", ack_timeout_us(largest));
}
