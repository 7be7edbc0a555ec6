//! Columns per second through the node's display pipeline, per output.
//!
//! `cargo bench -p povpoi-node --bench outputs`. Two figures:
//! - capacity: render + brightness/gamma + the output's write, unpaced, for 2 s, into the sim
//!   strip and into an APA102 writer on `/dev/null` (real write syscalls, no SPI hardware),
//!   and the Teensy live-column encoding into `/dev/null`; next to what the wires allow;
//! - a running node's player, asked for the highest frame rate: columns it really shows per
//!   second (the power profile caps it; the frame loop paces it).

use std::fs::File;
use std::time::{Duration, Instant};

use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::{ColorOrder, Finish, Program, Renderer};
use povpoi_core::wire::{apa102, teensy};
use povpoi_node::output::Output;
use povpoi_node::output::apa102::Apa102;
use povpoi_node::output::sim::SimStrip;
use povpoi_node::{Node, NodeOptions};

/// Columns per second pushing `program` into `write` for `for_how_long`.
fn capacity(leds: u16, mut write: impl FnMut(&[Rgb])) -> f64 {
    let renderer = Renderer::new(leds).unwrap();
    let program =
        Program::Pattern(Pattern::new(PatternKind::Fire, Rgb::new(255, 30, 0), Rgb::new(255, 200, 0), 120).unwrap());
    let mut column = vec![Rgb::default(); usize::from(leds)];
    let finish = Finish { brightness: 200, gamma: true };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        renderer.render(&program, 1_764_000_000_000 + n / 5, 250, 0, &mut column);
        finish.apply(&mut column);
        write(&column);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
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
    let mut null = File::create("/dev/null").unwrap();
    let rate = capacity(32, |c| {
        let mut frame = Vec::new();
        teensy::Command::Live(c.to_vec()).encode(&mut frame);
        std::io::Write::write_all(&mut null, &frame).unwrap();
    });
    println!(
        "| teensy live column (encode, write to /dev/null) | 32 | {rate:.0} | {:.0} at 115200 baud ({} bytes a frame) |",
        11_520.0 / frame.len() as f64,
        frame.len()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = NodeOptions { mdns: false, ..NodeOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap()) };
        let node = Node::start(options).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for (path, body) in [
            ("/api/power/mode", r#"{"mode": "performance"}"#),
            ("/api/framerate", r#"{"framerate": 255}"#),
            ("/api/pattern", r#"{"index": 0, "type": 4}"#),
            ("/api/mode", r#"{"mode": 2, "index": 0}"#),
        ] {
            let answer = http.post(format!("http://{}{path}", node.addr())).body(body).send().await.unwrap();
            assert!(answer.status().is_success(), "{path}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = &node.state().player_stats;
        let before = stats.columns.load(std::sync::atomic::Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let shown = stats.columns.load(std::sync::atomic::Ordering::Relaxed) - before;
        println!(
            "\nrunning node, sim output, framerate 255 asked, performance profile (cap 120): {:.1} columns/s shown over 5 s",
            shown as f64 / start.elapsed().as_secs_f64()
        );
        node.stop().await;
    });
}
