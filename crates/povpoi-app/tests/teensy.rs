//! A board mirrors what plays to the Teensy as a node does: the same commands in the same
//! order, the image read from flash a row at a time and squeezed to the Teensy's
//! 256-column counter, and after a change only what changed.

mod common;

use common::{now, post};
use povpoi_app::clock::ClockService;
use povpoi_app::teensy::{Mirror, Step, StoredImage, ack_timeout_us};
use povpoi_app::{App, Config};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, Replica, Storage};
use povpoi_core::wire::teensy::{Command, END, ImageFrame, Receiver};
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

/// Sends the Teensy everything `app` plays that it lacks, as the board's link does (each
/// image row read from flash), and returns the commands the Teensy's parser got.
fn mirror(app: &App<&'static Store>, mirror: &mut Mirror<StoredImage>) -> Vec<Command> {
    let playing = app.teensy_playing();
    let show = playing.show();
    let (mut wire, mut sent) = (Vec::new(), 0);
    while let Some(step) = mirror.next(&show) {
        match (&step, step.command()) {
            (Step::Image(image), _) => {
                let frame = ImageFrame::new(image.width, image.height);
                wire.extend_from_slice(&frame.head());
                let mut row = vec![0; 3 * usize::from(image.width)];
                for y in 0..frame.rows() {
                    assert!(image.read_row(app.replica().storage(), y, &mut row).unwrap(), "row {y} is stored");
                    frame.row(&row, &mut wire);
                }
                wire.push(END);
            }
            (_, Some(command)) => command.encode(&mut wire),
            (_, None) => unreachable!(),
        }
        mirror.sent(step);
        sent += 1;
        assert!(sent < 50, "the mirror keeps finding differences");
    }
    Receiver::default().feed(&wire).into_iter().map(|c| c.expect("a well-formed frame")).collect()
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
    let mut app = App::new(config, replica, ClockService::new(DEVICE, 1, 2, 0));
    let mut teensy = Mirror::default();

    // Image mode, the 400x32 image: everything, the mode last.
    post(&mut app, "/api/mode", r#"{"mode":1,"index":0}"#, 1_000_000);
    app.play(now(2_000_000));
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
    post(&mut app, "/api/brightness", r#"{"brightness":40}"#, 3_000_000);
    app.play(now(4_000_000));
    assert_eq!(mirror(&app, &mut teensy), [Command::Brightness(40)]);

    // The sequence: its first image that is stored, then the mode.
    post(&mut app, "/api/mode", r#"{"mode":3,"index":1}"#, 5_000_000);
    app.play(now(6_000_000));
    assert_eq!(mirror(&app, &mut teensy), [squeezed(20, 8, &small), Command::set_mode(Mode::Sequence, 1)]);

    // Image mode on an image whose pixels are not stored (yet): idle, no image sent.
    let hash = app.replica().image(wide_id).unwrap().pixels();
    (&*store).remove_blob(&hash).unwrap();
    post(&mut app, "/api/mode", r#"{"mode":1,"index":0}"#, 7_000_000);
    app.play(now(8_000_000));
    assert_eq!(mirror(&app, &mut teensy), [Command::set_mode(Mode::Idle, 0)]);
    post(&mut app, "/api/mode", r#"{"mode":2,"index":2}"#, 9_000_000);
    app.play(now(10_000_000));
    assert_eq!(mirror(&app, &mut teensy), [Command::set_mode(Mode::Pattern, 2)]);
}

#[test]
fn ack_waits_grow_with_the_command() {
    assert_eq!(ack_timeout_us(0), 500_000);
    // A 400 x 32 image goes as 256 x 32: 24,585 bytes, 2.13 s on the wire.
    let image = ImageFrame::new(400, 32).len();
    assert_eq!(image, 24_585);
    assert!((3_690_000..3_710_000).contains(&ack_timeout_us(image)), "{}", ack_timeout_us(image));
    // The largest upload, 256 x 64: 49,161 bytes, 4.27 s.
    let largest = ImageFrame::new(256, 64).len();
    assert!((6_890_000..6_910_000).contains(&ack_timeout_us(largest)), "{}", ack_timeout_us(largest));
}
