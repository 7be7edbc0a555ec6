//! Columns per second through the node's display pipeline, per output.
//!
//! `cargo bench -p povpoi-node --bench outputs`. Two parts:
//! - capacity: render + brightness/gamma + the output's write, unpaced, for 2 s, into the sim
//!   strip and into an APA102 writer on `/dev/null` (real write syscalls, no SPI hardware),
//!   and the Teensy live-column encoding into `/dev/null`; next to what the wires allow;
//! - end to end: a real node (`Node::start` in this process, on 127.0.0.1 with mDNS off and
//!   a temporary data directory) asked over its HTTP API for the highest frame rate, and
//!   the columns its player really shows per second (`PlayerStats`), on the `sim` strip
//!   and on the `apa102` output (its frames appended to a regular file, the output's
//!   capture mode; the file's growth is checked against the counter), at 32 and 144 LEDs;
//!   and the `teensy` output on a pseudo-terminal with a fake board that decodes frames by
//!   the firmware's rules, fed live columns over `/api/live` as fast as a client can post
//!   them (the board renders everything else itself, so live columns are the only columns
//!   the node sends it). A pty has no baud rate, so that is the node's side alone.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::{ColorOrder, ColumnCache, Finish, Program, Renderer};
use povpoi_core::wire::teensy::{Command, Receiver, Reply};
use povpoi_core::wire::{apa102, teensy};
use povpoi_node::output::apa102::{Apa102, DEFAULT_CLOCK_HZ};
use povpoi_node::output::sim::SimStrip;
use povpoi_node::output::{Output, OutputSpec};
use povpoi_node::{Node, NodeOptions};

/// How long each running node is watched.
const WINDOW: Duration = Duration::from_secs(5);

/// Columns per second pushing `program` into `write` for `for_how_long`.
fn capacity(leds: u16, mut write: impl FnMut(&[Rgb])) -> f64 {
    let renderer = Renderer::new(leds).unwrap();
    let program =
        Program::Pattern(Pattern::new(PatternKind::Fire, Rgb::new(255, 30, 0), Rgb::new(255, 200, 0), 120).unwrap());
    let mut column = vec![Rgb::default(); usize::from(leds)];
    let mut cache = ColumnCache::new(Finish { brightness: 200, gamma: true });
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        renderer.render_cached(&program, 1_764_000_000_000 + n / 5, 250, 0, &mut cache, &mut column);
        write(&column);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A node of `leds` LEDs on `output`, storing in `dir`, reachable on 127.0.0.1 only.
async fn start_node(dir: &Path, output: OutputSpec, leds: u16) -> Node {
    let options =
        NodeOptions { mdns: false, output, leds: Some(leds), ..NodeOptions::new(dir, "127.0.0.1:0".parse().unwrap()) };
    Node::start(options).await.unwrap()
}

async fn post(http: &reqwest::Client, node: &Node, path: &str, body: String) {
    let answer = http.post(format!("http://{}{path}", node.addr())).body(body).send().await.unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
}

/// Asks for the fastest the node plays: the performance profile and frame rate 255, the
/// Fire pattern.
async fn fastest_fire(http: &reqwest::Client, node: &Node) {
    for (path, body) in [
        ("/api/power/mode", r#"{"mode": "performance"}"#),
        ("/api/framerate", r#"{"framerate": 255}"#),
        ("/api/pattern", r#"{"index": 0, "type": 4}"#),
        ("/api/mode", r#"{"mode": 2, "index": 0}"#),
    ] {
        post(http, node, path, body.into()).await;
    }
    // The player picks the change up within a frame; start counting after it has.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Columns the node's player showed per second over [`WINDOW`], and the output errors it
/// counted meanwhile.
async fn player_rate(node: &Node) -> (f64, u64) {
    let stats = &node.player_stats();
    let (columns, errors) = (stats.columns.load(Ordering::Relaxed), stats.output_errors.load(Ordering::Relaxed));
    let start = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let shown = stats.columns.load(Ordering::Relaxed) - columns;
    let rate = shown as f64 / start.elapsed().as_secs_f64();
    (rate, stats.output_errors.load(Ordering::Relaxed) - errors)
}

/// A board on the master side of a pseudo-terminal: cuts frames with the firmware's rules,
/// acks every command but live columns (the firmware acks none of those, and a pty, unlike
/// a real serial port, would block the board's write once unread acks filled it), and
/// counts the live columns it decoded.
fn fake_teensy(master: File) -> Arc<AtomicU64> {
    let live = Arc::new(AtomicU64::new(0));
    let count = live.clone();
    std::thread::spawn(move || {
        let mut port = master;
        let mut receiver = Receiver::default();
        let mut buf = [0u8; 4096];
        // Ends when the node closes its end (the read fails with EIO).
        while let Ok(n @ 1..) = port.read(&mut buf) {
            for decoded in receiver.feed(&buf[..n]) {
                let reply = match decoded {
                    Ok(Command::Live(_)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Ok(Command::StatusRequest) => Some(Reply::Status(teensy::Status::default())),
                    Ok(command) => Some(Reply::Ack(command.code())),
                    Err(_) => None,
                };
                if let Some(reply) = reply {
                    let mut out = Vec::new();
                    reply.encode(&mut out);
                    if port.write_all(&out).is_err() {
                        return;
                    }
                }
            }
        }
    });
    live
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| output | LEDs | columns/s (pipeline, unpaced) | wire limit, columns/s |");
    println!("|---|---:|---:|---:|");
    for leds in [32u16, 144] {
        let mut sim = SimStrip::default();
        let rate = capacity(leds, |c| sim.column(c).unwrap());
        println!("| sim (in memory) | {leds} | {rate:.0} | - |");
        let null = File::create("/dev/null").unwrap();
        let mut strip = Apa102::new(null, "apa102 /dev/null", ColorOrder::Bgr).for_leds(leds);
        let rate = capacity(leds, |c| strip.column(c).unwrap());
        let bits = apa102::frame_len(usize::from(leds)) as f64 * 8.0;
        println!(
            "| apa102 (write to /dev/null) | {leds} | {rate:.0} | {:.0} at 24 MHz, {:.0} at 8 MHz |",
            24e6 / bits,
            8e6 / bits
        );
    }
    // The Teensy renders itself; in live mode each column is a 0x05 frame on a 115200 baud
    // line (10 bits a byte with start and stop bits).
    let mut frame = Vec::new();
    teensy::Command::Live(vec![Rgb::new(1, 2, 3); 32]).encode(&mut frame);
    let live_frame = frame.len();
    let mut null = File::create("/dev/null").unwrap();
    let rate = capacity(32, |c| {
        let mut frame = Vec::new();
        teensy::Command::Live(c.to_vec()).encode(&mut frame);
        std::io::Write::write_all(&mut null, &frame).unwrap();
    });
    println!(
        "| teensy live column (encode, write to /dev/null) | 32 | {rate:.0} | {:.0} at 115200 baud ({live_frame} bytes a frame) |",
        11_520.0 / live_frame as f64,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        println!(
            "\nrunning node, Fire pattern, framerate 255 asked in the performance profile (cap 120), {} s each:\n",
            WINDOW.as_secs()
        );
        println!("| output | LEDs | columns/s shown (PlayerStats) | output errors | check |");
        println!("|---|---:|---:|---:|---|");
        for leds in [32u16, 144] {
            let dir = tempfile::tempdir().unwrap();
            let node = start_node(&dir.path().join("poi"), OutputSpec::Sim, leds).await;
            fastest_fire(&http, &node).await;
            let strip = node.display().strip.clone().unwrap();
            let before = strip.since(u64::MAX).1;
            let (rate, errors) = player_rate(&node).await;
            let kept = strip.since(u64::MAX).1 - before;
            println!("| sim | {leds} | {rate:.1} | {errors} | strip numbered {kept} new columns |");
            node.stop().await;

            let dir = tempfile::tempdir().unwrap();
            let capture = dir.path().join("frames.bin");
            std::fs::write(&capture, b"").unwrap();
            let spec = OutputSpec::Apa102 { device: capture.clone(), clock_hz: DEFAULT_CLOCK_HZ, order: None };
            let node = start_node(&dir.path().join("poi"), spec, leds).await;
            fastest_fire(&http, &node).await;
            let frame = apa102::frame_len(usize::from(leds)) as u64;
            let size = || std::fs::metadata(&capture).unwrap().len();
            let before = size();
            let (rate, errors) = player_rate(&node).await;
            let written = size() - before;
            println!(
                "| apa102 (frames to a regular file) | {leds} | {rate:.1} | {errors} | {} frames of {frame} bytes written |",
                written / frame
            );
            node.stop().await;
        }

        let pair = nix::pty::openpty(None, None).expect("openpty");
        let name = nix::unistd::ttyname(&pair.slave).expect("ttyname");
        let dir = tempfile::tempdir().unwrap();
        let node = start_node(&dir.path().join("poi"), OutputSpec::Teensy { device: name }, 32).await;
        drop(pair.slave);
        let board = fake_teensy(File::from(pair.master));
        post(&http, &node, "/api/power/mode", r#"{"mode": "performance"}"#.into()).await;
        post(&http, &node, "/api/framerate", r#"{"framerate": 255}"#.into()).await;
        let column = |k: u64| {
            // Every post a new column (no 254, which the link would change), so none is
            // skipped as unchanged.
            let v = |shift: u64| ((k >> shift) % 250) as u8;
            let pixels: Vec<String> =
                (0..32).map(|_| format!(r#"{{"r": {}, "g": {}, "b": {}}}"#, v(0), v(8), v(16))).collect();
            format!(r#"{{"pixels": [{}]}}"#, pixels.join(","))
        };
        post(&http, &node, "/api/live", column(0)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let errors = node.player_stats().output_errors.load(Ordering::Relaxed);
        let (got, start) = (board.load(Ordering::Relaxed), Instant::now());
        let mut posted = 0u64;
        while start.elapsed() < WINDOW {
            posted += 1;
            post(&http, &node, "/api/live", column(posted)).await;
        }
        let seconds = start.elapsed().as_secs_f64();
        let reached = board.load(Ordering::Relaxed) - got;
        let errors = node.player_stats().output_errors.load(Ordering::Relaxed) - errors;
        println!(
            "| teensy (pty, fake board), live columns posted to /api/live | 32 | {:.1} reached the board ({:.0} posted/s) | {errors} | {:.0}/s at 115200 baud on a real line |",
            reached as f64 / seconds,
            posted as f64 / seconds,
            11_520.0 / live_frame as f64,
        );
        node.stop().await;
    });
}
