//! The hardware outputs against stand-ins: the APA102 strip's bytes captured in memory, and
//! the Teensy link talking over a pseudo-terminal to a fake board that parses with the
//! Teensy firmware's own rules.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use povpoi_core::device::ReplicaId;
use povpoi_core::model::{ImageId, Mode, Pattern, PatternKind, Rgb, Sequence, SequenceItem, SequenceTarget};
use povpoi_core::render::ColorOrder;
use povpoi_core::wire::teensy::{Command, Malformed, Receiver, Reply, Status};
use povpoi_node::output::apa102::{Apa102, DEFAULT_CLOCK_HZ};
use povpoi_node::output::sim::SimStrip;
use povpoi_node::output::teensy::TeensyLink;
use povpoi_node::output::{Output, OutputSpec, Show, ShowImage};

#[test]
fn apa102_writes_one_exact_frame_per_column() {
    let mut strip = Apa102::new(Vec::new(), "test", ColorOrder::Bgr);
    strip.column(&[Rgb::new(0x11, 0x22, 0x33), Rgb::new(254, 0, 1), Rgb::new(0, 0, 0)]).unwrap();
    #[rustfmt::skip]
    let first = [
        0x00, 0x00, 0x00, 0x00,
        0xFF, 0x33, 0x22, 0x11,
        0xFF, 0x01, 0x00, 0xFE,
        0xFF, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(strip.get_ref()[..], first);

    let mut grb = Apa102::new(Vec::new(), "test", ColorOrder::Grb).with_global(3);
    grb.column(&[Rgb::new(1, 2, 3); 32]).unwrap();
    let bytes = grb.get_ref();
    assert_eq!(bytes.len(), 4 + 32 * 4 + 4 + 2);
    assert!(bytes[4..4 + 128].chunks(4).all(|led| led == [0xE3, 2, 1, 3]));
    assert!(grb.wants_columns());
}

#[test]
fn output_specs_parse() {
    let parse = |s: &str| s.parse::<OutputSpec>();
    assert_eq!(parse("sim"), Ok(OutputSpec::Sim));
    let spi = |device: &str, clock_hz, order| OutputSpec::Apa102 { device: PathBuf::from(device), clock_hz, order };
    assert_eq!(parse("apa102:/dev/spidev0.0"), Ok(spi("/dev/spidev0.0", DEFAULT_CLOCK_HZ, None)));
    assert_eq!(parse("apa102:/dev/spidev0.1@4000000"), Ok(spi("/dev/spidev0.1", 4_000_000, None)));
    assert_eq!(
        parse("apa102:/dev/spidev1.0@12000000,order=grb"),
        Ok(spi("/dev/spidev1.0", 12_000_000, Some(ColorOrder::Grb)))
    );
    assert_eq!(
        parse("apa102:/dev/spidev0.0,order=RGB"),
        Ok(spi("/dev/spidev0.0", DEFAULT_CLOCK_HZ, Some(ColorOrder::Rgb)))
    );
    assert_eq!(parse("teensy:/dev/ttyUSB0"), Ok(OutputSpec::Teensy { device: PathBuf::from("/dev/ttyUSB0") }));
    for bad in [
        "apa102:",
        "apa102:/dev/spidev0.0@",
        "apa102:/dev/spidev0.0@0",
        "apa102:/dev/spidev0.0@fast",
        "apa102:/dev/spidev0.0,order=rgbw",
        "apa102:/dev/spidev0.0,speed=3",
        "teensy:",
        "ws2812:/dev/spidev0.0",
        "",
    ] {
        let err = bad.parse::<OutputSpec>().unwrap_err();
        assert!(!err.is_empty(), "{bad:?}");
    }
}

#[test]
fn opening_a_missing_device_says_what_to_check() {
    let spi = OutputSpec::Apa102 {
        device: PathBuf::from("/nonexistent/spidev9.9"),
        clock_hz: DEFAULT_CLOCK_HZ,
        order: Some(ColorOrder::Bgr),
    };
    let err = spi.open(32).err().expect("no such device").to_string();
    assert!(err.contains("/nonexistent/spidev9.9") && err.contains("SPI is enabled"), "{err}");

    // A device that is not a spidev (nor a regular file to capture frames in) is refused.
    let null = OutputSpec::Apa102 { device: PathBuf::from("/dev/null"), clock_hz: DEFAULT_CLOCK_HZ, order: None };
    let err = null.open(32).err().expect("not a spidev").to_string();
    assert!(err.contains("/dev/null") && err.contains("spidev device"), "{err}");

    let tty = OutputSpec::Teensy { device: PathBuf::from("/nonexistent/ttyUSB9") };
    let err = tty.open(32).err().expect("no such device").to_string();
    assert!(err.contains("/nonexistent/ttyUSB9") && err.contains("plugged in"), "{err}");

    // A file that is not a terminal opens but cannot be set to 115200 8N1.
    let err = TeensyLink::open(Path::new("/dev/null")).err().expect("not a tty").to_string();
    assert!(err.contains("/dev/null") && err.contains("serial port"), "{err}");

    assert_eq!(OutputSpec::Sim.open(32).unwrap().describe(), "sim");
}

/// A fake Teensy on the master side of a pseudo-terminal: cuts frames with the firmware's
/// rules, records what it decoded, acks every command (live columns too, which the link
/// must skip over) and answers status requests with the mode it was last set to.
/// A frame the fake board decoded, with the host time (µs since the epoch) it arrived.
type Received = (u64, Result<Command, Malformed>);

struct FakeTeensy {
    got: Arc<Mutex<Vec<Received>>>,
}

impl FakeTeensy {
    fn start(master: File, answer: bool) -> FakeTeensy {
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        thread::spawn(move || {
            let mut port = master;
            let mut receiver = Receiver::default();
            let mut status = Status::default();
            let mut buf = [0u8; 4096];
            // Ends when the link closes its end (the read fails with EIO).
            while let Ok(n @ 1..) = port.read(&mut buf) {
                for decoded in receiver.feed(&buf[..n]) {
                    let reply = match &decoded {
                        Ok(Command::StatusRequest) => Some(Reply::Status(status)),
                        Ok(command) => {
                            if let Command::SetMode { mode, index } = command {
                                (status.mode, status.index) = (*mode, *index);
                            }
                            Some(Reply::Ack(command.code()))
                        }
                        Err(_) => None,
                    };
                    log.lock().unwrap().push((povpoi_node::show_clock::host_time_us(), decoded));
                    if let Some(reply) = reply.filter(|_| answer) {
                        let mut out = b"noise".to_vec();
                        reply.encode(&mut out);
                        port.write_all(&out).unwrap();
                    }
                }
            }
        });
        FakeTeensy { got }
    }

    fn take(&self) -> Vec<Result<Command, Malformed>> {
        self.take_timed().into_iter().map(|(_, c)| c).collect()
    }

    /// What arrived, each with the host time (µs since the epoch) it was decoded at.
    fn take_timed(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }

    /// What arrived once `count` frames are in (the link does not wait for live acks).
    fn take_when(&self, count: usize) -> Vec<Result<Command, Malformed>> {
        let until = Instant::now() + Duration::from_secs(5);
        while self.got.lock().unwrap().len() < count && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        self.take()
    }
}

/// A link on the slave side of a pseudo-terminal, opened by name as it would open
/// `/dev/ttyUSB0`, and a fake board on the master side.
fn link_and_board(answer: bool) -> (TeensyLink<File>, FakeTeensy, PathBuf) {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let name = nix::unistd::ttyname(&pair.slave).expect("ttyname");
    let link = TeensyLink::open(&name).expect("open the pty as a serial port");
    // Only the link holds the slave now, so the board's reads end when the link is dropped.
    drop(pair.slave);
    (link, FakeTeensy::start(File::from(pair.master), answer), name)
}

fn content() -> Show {
    let red = Rgb::new(255, 0, 0);
    let mut patterns = vec![None; 18];
    patterns[0] = Some(Pattern::default());
    patterns[5] = Some(Pattern::new(PatternKind::Comet, Rgb::new(254, 10, 0), red, 200).unwrap());
    let image_id = ImageId { origin: ReplicaId(7), seq: 1 };
    let mut sequences = vec![None; 5];
    sequences[1] = Some(
        Sequence::new(
            vec![
                SequenceItem { target: SequenceTarget::Pattern(5), duration_ms: 1500 },
                SequenceItem { target: SequenceTarget::Image(image_id), duration_ms: 254 },
            ],
            true,
        )
        .unwrap(),
    );
    // 400 x 32 with every value, 254 included, so the clamp shows.
    let pixels: Vec<u8> = (0..400 * 32 * 3).map(|i| (i % 256) as u8).collect();
    Show {
        mode: Mode::Sequence,
        index: 1,
        brightness: 254,
        framerate: 120,
        patterns,
        sequences,
        image: Some(ShowImage { width: 400, height: 32, pixels: Arc::new(pixels) }),
        live: None,
    }
}

#[test]
fn the_teensy_link_sends_only_what_changed() {
    let (mut link, teensy, slave) = link_and_board(true);
    assert!(!link.wants_columns());
    assert_eq!(link.describe(), format!("teensy {}", slave.display()));

    // First show: everything, in the documented order, mode last.
    let mut show = content();
    link.show_changed(&show).unwrap();
    let got = teensy.take();
    // The board's column counter is 8 bits: the 400-column image goes squeezed to 256, column
    // x of it being the source's column x * 400 / 256.
    let source = show.image.as_ref().unwrap().pixels.clone();
    let squeezed: Vec<u8> = (0..32)
        .flat_map(|y| (0..256).flat_map(move |x| [0, 1, 2].map(|c| (y * 400 + x * 400 / 256) * 3 + c)))
        .map(|i| source[i])
        .collect();
    let want = [
        Command::pattern(0, show.patterns[0].as_ref().unwrap()),
        Command::pattern(5, show.patterns[5].as_ref().unwrap()),
        Command::sequence(1, show.sequences[1].as_ref().unwrap()),
        Command::image(256, 32, &squeezed),
        Command::Brightness(254),
        Command::FrameRate(120),
        Command::SetMode { mode: 3, index: 1 },
    ];
    let want: Vec<_> = want.iter().map(|c| Ok(c.to_wire())).collect();
    assert_eq!(got, want);
    // Spelled out, what the rules did to this show.
    let Ok(Command::Pattern { color1, .. }) = &got[1] else { panic!() };
    assert_eq!(*color1, Rgb::new(253, 10, 0));
    let Ok(Command::Sequence { items, .. }) = &got[2] else { panic!() };
    assert_eq!(items.iter().map(|i| (i.item, i.duration_ms)).collect::<Vec<_>>(), [(0x85, 1500), (0, 253)]);
    let Ok(Command::Image(image)) = &got[3] else { panic!() };
    assert_eq!((image.width, image.height), (256, 32));
    // The last column is the source's column 398 (pixel byte 398 * 3 = 1194 -> 1194 % 256).
    assert_eq!(&image.pixels[255 * 3..256 * 3], &[170, 171, 172]);
    assert_eq!(got[4], Ok(Command::Brightness(253)));

    // The same show again: nothing.
    link.show_changed(&show).unwrap();
    // Only the brightness changed: only 0x06.
    show.brightness = 100;
    link.show_changed(&show).unwrap();
    assert_eq!(teensy.take(), [Ok(Command::Brightness(100))]);

    // Live: the column, padded to 32, then the mode.
    show.mode = Mode::Live;
    show.index = 0;
    show.live = Some(vec![Rgb::new(1, 254, 3); 20]);
    link.show_changed(&show).unwrap();
    let mut column = vec![Rgb::new(1, 253, 3); 20];
    column.resize(32, Rgb::default());
    assert_eq!(teensy.take(), [Ok(Command::Live(column)), Ok(Command::SetMode { mode: 4, index: 0 })]);

    // A new live column alone: just 0x05, with no wait for an ack.
    show.live = Some(vec![Rgb::new(9, 9, 9); 32]);
    link.show_changed(&show).unwrap();
    assert_eq!(teensy.take_when(1), [Ok(Command::Live(vec![Rgb::new(9, 9, 9); 32]))]);

    // Status round trip, past the stale live ack still in the pipe.
    let status = link.status().unwrap();
    assert_eq!(status, Some(Status { mode: 4, index: 0, sd_present: false }));
    assert_eq!(teensy.take(), [Ok(Command::StatusRequest)]);
}

#[test]
fn a_silent_teensy_costs_two_timeouts_per_change() {
    let (mut link, teensy, _) = link_and_board(false);
    let show = content();
    let started = Instant::now();
    link.show_changed(&show).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_millis(2500), "{took:?}");
    // Everything still went out, and is not sent again.
    assert_eq!(teensy.take_when(7).len(), 7);
    link.show_changed(&show).unwrap();
    assert_eq!(link.status().unwrap(), None);
    assert_eq!(teensy.take_when(1), [Ok(Command::StatusRequest)]);
}

/// A node on 127.0.0.1 (mDNS off) playing into `output`, its data in `data_dir`.
async fn loopback_node(data_dir: &Path, output: OutputSpec) -> povpoi_node::Node {
    let options = povpoi_node::NodeOptions {
        mdns: false,
        output,
        ..povpoi_node::NodeOptions::new(data_dir, "127.0.0.1:0".parse().unwrap())
    };
    povpoi_node::Node::start(options).await.unwrap()
}

/// The whole path on a running node: an API call changes the library, the player sees it
/// and the Teensy link sends it to the board over the serial port named by `--output`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_the_teensy_output_mirrors_what_the_api_changes() {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let name = nix::unistd::ttyname(&pair.slave).expect("ttyname");
    let dir = tempfile::tempdir().unwrap();
    let node = loopback_node(dir.path(), OutputSpec::Teensy { device: name }).await;
    drop(pair.slave);
    let board = FakeTeensy::start(File::from(pair.master), true);
    // On start the link sends the whole show; the default selection is idle.
    let first = board.take_when(3);
    assert!(first.iter().any(|c| matches!(c, Ok(Command::SetMode { mode: 0, .. }))), "{first:?}");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post =
        |path: &'static str, body: &'static str| http.post(format!("http://{}{path}", node.addr())).body(body).send();
    assert!(post("/api/brightness", r#"{"brightness": 99}"#).await.unwrap().status().is_success());
    let got = board.take_when(1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0], Ok(Command::Brightness(99))), "{got:?}");
    assert!(post("/api/pattern", r#"{"index": 3, "type": 4}"#).await.unwrap().status().is_success());
    assert!(post("/api/mode", r#"{"mode": 2, "index": 3}"#).await.unwrap().status().is_success());
    let got = board.take_when(2);
    assert!(got.iter().any(|c| matches!(c, Ok(Command::Pattern { slot: 3, kind: 4, .. }))), "{got:?}");
    assert!(got.iter().any(|c| matches!(c, Ok(Command::SetMode { mode: 2, index: 3 }))), "{got:?}");
    let status: serde_json::Value = serde_json::from_slice(
        &http.get(format!("http://{}/api/status", node.addr())).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    assert!(status["output"].as_str().unwrap().starts_with("teensy"), "{status}");
    node.stop().await;
}

/// A change is sent to the board at its cue, not when the edit is made: with a peer online
/// the cue is at least 100 ms ahead, and the mode command reaches the board then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teensy_gets_a_change_at_its_cue() {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let name = nix::unistd::ttyname(&pair.slave).expect("ttyname");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b = loopback_node(dir_b.path(), OutputSpec::Sim).await;
    let options = povpoi_node::NodeOptions {
        mdns: false,
        output: OutputSpec::Teensy { device: name },
        peers: vec![b.addr()],
        ..povpoi_node::NodeOptions::new(dir_a.path(), "127.0.0.1:0".parse().unwrap())
    };
    let a = povpoi_node::Node::start(options).await.unwrap();
    drop(pair.slave);
    let board = FakeTeensy::start(File::from(pair.master), true);
    board.take_when(3);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let clock = || async {
        let bytes = http.get(format!("http://{}/api/clock", a.addr())).send().await.unwrap().bytes().await.unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while clock().await["leadUs"].as_u64() < Some(100_000) {
        assert!(Instant::now() < until, "the peer never came online");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pattern = http.post(format!("http://{}/api/pattern", a.addr())).body(r#"{"index": 1, "type": 4}"#).send();
    assert!(pattern.await.unwrap().status().is_success());
    board.take_when(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    board.take();
    let asked = povpoi_node::show_clock::host_time_us();
    let posted = http.post(format!("http://{}/api/mode", a.addr())).body(r#"{"mode": 2, "index": 1}"#).send();
    assert!(posted.await.unwrap().status().is_success());
    let answered = povpoi_node::show_clock::host_time_us();
    let until = Instant::now() + Duration::from_secs(5);
    let (at, _) = loop {
        let got = board.take_timed();
        if let Some(hit) = got.into_iter().find(|(_, c)| matches!(c, Ok(Command::SetMode { mode: 2, index: 1 }))) {
            break hit;
        }
        assert!(Instant::now() < until, "the mode never reached the board");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let cue = clock().await["lastCue"].clone();
    let sent_at = cue["appliedHostTimeUs"].as_u64().unwrap();
    assert!(at >= asked + 90_000, "the board got the mode {} µs after it was asked for", at - asked);
    assert!(at >= answered, "not before the API answered");
    assert!(at.abs_diff(sent_at) < 50_000, "the board got it {} µs from its cue: {cue}", at.abs_diff(sent_at));
    a.stop().await;
    b.stop().await;
}

/// The last 3 of the next 10 columns the strip shows: by then the player has caught up with
/// a change just posted.
async fn settled_columns(strip: &SimStrip) -> Vec<Vec<Rgb>> {
    let after = strip.since(u64::MAX).1;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (columns, _) = strip.since(after);
        if columns.len() >= 10 || Instant::now() > until {
            return columns[columns.len().saturating_sub(3)..].to_vec();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Spec section 3: a live column is shown as is. A node on the sim strip gets values that
/// gamma would change (128 -> 56); they must reach the strip unchanged at full brightness,
/// and only scaled, not corrected, under the power profile's brightness cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_column_reaches_the_strip_without_gamma() {
    let dir = tempfile::tempdir().unwrap();
    let node = loopback_node(dir.path(), OutputSpec::Sim).await;
    let strip = node.display().strip.clone().expect("the sim strip");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &'static str, body: serde_json::Value| {
        http.post(format!("http://{}{path}", node.addr())).body(body.to_string()).send()
    };
    let pushed = [Rgb::new(128, 64, 200), Rgb::new(10, 250, 100)];
    let pixels: Vec<_> = pushed.iter().map(|c| serde_json::json!({"r": c.r, "g": c.g, "b": c.b})).collect();

    assert!(post("/api/brightness", serde_json::json!({"brightness": 255})).await.unwrap().status().is_success());
    assert!(post("/api/live", serde_json::json!({"pixels": pixels})).await.unwrap().status().is_success());
    let shown = settled_columns(&strip).await;
    assert!(!shown.is_empty());
    for column in &shown {
        assert_eq!((column[0], column[15], column[16], column[31]), (pushed[0], pushed[0], pushed[1], pushed[1]));
    }

    // Ultrasave caps brightness at 80: scaled by 80/255, still no gamma.
    assert!(post("/api/power/mode", serde_json::json!({"mode": "ultrasave"})).await.unwrap().status().is_success());
    let shown = settled_columns(&strip).await;
    assert!(!shown.is_empty());
    for column in &shown {
        assert_eq!((column[0], column[31]), (Rgb::new(40, 20, 63), Rgb::new(3, 78, 31)));
    }
    node.stop().await;
}

/// The node's preview shows what the strip plays: the settings under the power profile's
/// caps (ultrasave: brightness 80, 15 columns per second), not the raw settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_preview_uses_the_power_capped_brightness_and_frame_rate() {
    let dir = tempfile::tempdir().unwrap();
    let node = loopback_node(dir.path(), OutputSpec::Sim).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |path: &str| format!("http://{}{path}", node.addr());
    for (path, body) in [
        ("/api/brightness", r#"{"brightness": 255}"#),
        ("/api/framerate", r#"{"framerate": 255}"#),
        ("/api/power/mode", r#"{"mode": "ultrasave"}"#),
        (
            "/api/pattern",
            r#"{"index": 0, "type": 0, "color1": {"r": 255, "g": 0, "b": 0}, "color2": {"r": 0, "g": 0, "b": 255}, "speed": 50}"#,
        ),
    ] {
        let answer = http.post(url(path)).body(body).send().await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.text().await.unwrap());
    }
    let answer = http.get(url("/api/preview/pattern/0?size=64")).send().await.unwrap();
    assert!(answer.status().is_success());
    let served = answer.bytes().await.unwrap();

    let pattern = Pattern::new(PatternKind::Rainbow, Rgb::new(255, 0, 0), Rgb::new(0, 0, 255), 50).unwrap();
    let drawn = |brightness: u8, fps: u16| {
        let options = povpoi_media::PreviewOptions {
            fps,
            width: 64,
            height: 64,
            finish: povpoi_core::render::Finish { brightness, gamma: false },
            ..povpoi_media::PreviewOptions::default()
        };
        let picture = povpoi_media::preview_program(&povpoi_core::render::Program::Pattern(pattern), &options).unwrap();
        povpoi_media::png_bytes(&picture).unwrap()
    };
    assert!(served[..] != drawn(255, 255)[..], "the raw settings are not what the strip plays");
    assert_eq!(served[..], drawn(80, 15)[..]);
    node.stop().await;
}

/// `--output apa102:FILE` on an existing regular file: a running node appends the exact SPI
/// frames there, one per column, with no SPI set-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_the_apa102_output_appends_frames_to_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("frames.bin");
    std::fs::write(&capture, b"").unwrap();
    let output = OutputSpec::Apa102 { device: capture.clone(), clock_hz: DEFAULT_CLOCK_HZ, order: None };
    let node = loopback_node(&dir.path().join("poi"), output).await;
    assert!(node.display().output.contains("no SPI"), "{}", node.display().output);
    let frame_of = |column: &[Rgb]| {
        let mut frame = Vec::new();
        povpoi_core::wire::apa102::encode(column, ColorOrder::Bgr, povpoi_core::wire::apa102::MAX_GLOBAL, &mut frame);
        frame
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let pixels = serde_json::json!({"pixels": [{"r": 1, "g": 2, "b": 3}]});
    for (path, body) in [("/api/brightness", serde_json::json!({"brightness": 255})), ("/api/live", pixels)] {
        let answer = http.post(format!("http://{}{path}", node.addr())).body(body.to_string()).send().await.unwrap();
        assert!(answer.status().is_success(), "{path}");
    }
    let lit = frame_of(&[Rgb::new(1, 2, 3); 32]);
    let until = Instant::now() + Duration::from_secs(5);
    let bytes = loop {
        let bytes = std::fs::read(&capture).unwrap();
        if bytes.ends_with(&lit) || Instant::now() > until {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    node.stop().await;
    let dark = frame_of(&[Rgb::default(); 32]);
    assert_eq!(bytes.len() % lit.len(), 0, "whole frames only");
    let frames: Vec<&[u8]> = bytes.chunks(lit.len()).collect();
    assert!(frames.len() >= 2, "{} frames", frames.len());
    assert_eq!(frames[0], dark, "idle first");
    assert_eq!(*frames.last().unwrap(), lit, "then the live column, as pushed");
    assert!(frames.iter().all(|f| *f == dark || *f == lit));
}
