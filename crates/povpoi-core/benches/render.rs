//! Instructions per rendered column, counted by valgrind (callgrind), for the image mode and
//! every pattern at 32, 64 and 144 LEDs, next to a microcontroller's budget.
//!
//! `cargo bench -p povpoi-core --bench render`. The driver re-runs this same binary under
//! `valgrind --tool=callgrind` twice per case, rendering 0 and then N columns, and divides
//! the difference by N, so start-up and valgrind's own overhead cancel out. Instruction
//! counts are x86-64 instructions: a proxy for the work, not RISC-V or Thumb counts. Without
//! valgrind it says so and prints native timings only.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::{ColumnCache, Finish, ImageView, Program, Renderer};

const COLUMNS: u64 = 400;
const WORKER: &str = "POVPOI_RENDER_WORKER";
/// A 240 MHz ESP32 showing 5,000 columns a second has this many cycles per column.
const ESP32_BUDGET: u64 = 240_000_000 / 5_000;

/// The cases: "image" or a pattern id.
fn cases() -> Vec<String> {
    let mut cases = vec!["image".to_string()];
    cases.extend(PatternKind::ALL.iter().map(|k| k.id().to_string()));
    cases
}

fn name(case: &str) -> String {
    match case.parse::<u8>() {
        Ok(id) => format!("pattern {id:>2} {}", PatternKind::from_id(id).unwrap().name()),
        Err(_) => "image 400 wide".into(),
    }
}

/// Renders `columns` columns of `case` at `leds` LEDs with brightness 200 and gamma. `cached`:
/// as a player should, `Renderer::render_cached` with one `ColumnCache` made before the
/// first column (so what it builds on the first column counts, spread over the columns);
/// otherwise `Renderer::render` then `Finish::apply`, the two calls a player without the
/// cache makes.
fn work(case: &str, leds: u16, columns: u64, cached: bool) {
    let renderer = Renderer::new(leds).unwrap();
    let pixels: Vec<u8> = (0..400 * usize::from(leds.min(64)) * 3).map(|i| (i * 31 % 251) as u8).collect();
    let image = ImageView { width: 400, height: leds.min(64), pixels: &pixels };
    let program = match case.parse::<u8>() {
        Ok(id) => Program::Pattern(
            Pattern::new(PatternKind::from_id(id).unwrap(), Rgb::new(255, 40, 0), Rgb::new(0, 80, 255), 120).unwrap(),
        ),
        Err(_) => Program::Image(image),
    };
    let mut column = vec![Rgb::default(); usize::from(leds)];
    let finish = Finish { brightness: 200, gamma: true };
    let mut cache = ColumnCache::new(finish);
    let start_ms = 1_764_000_000_000u64;
    for k in 0..columns {
        // 5,000 columns a second: 0.2 ms apart, so time-slotted patterns change slots.
        let t = start_ms + k / 5;
        if cached {
            renderer.render_cached(black_box(&program), black_box(t), 250, (k % 256) as u8, &mut cache, &mut column);
        } else {
            renderer.render(black_box(&program), black_box(t), 250, (k % 256) as u8, &mut column);
            finish.apply(&mut column);
        }
        black_box(&column);
    }
}

/// Instructions callgrind counts for one worker run.
fn instructions(case: &str, leds: u16, columns: u64, cached: bool) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .env(WORKER, format!("{case} {leds} {columns} {cached}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("Collected :"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

/// Bits an APA102 strip of `leds` LEDs needs per column (start frame, 32 per LED, end frame).
fn apa102_bits(leds: u64) -> u64 {
    povpoi_core::wire::apa102::frame_len(leds as usize) as u64 * 8
}

fn main() {
    if let Ok(job) = std::env::var(WORKER) {
        let mut parts = job.split(' ');
        let (case, leds, columns) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let cached = parts.next() != Some("false");
        work(case, leds.parse().unwrap(), columns.parse().unwrap(), cached);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let have_valgrind = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    println!("render cost per column (render + brightness 200 and gamma), {COLUMNS} columns per case");
    println!("ESP32 at 240 MHz and 5,000 columns/s: {ESP32_BUDGET} cycles per column");
    for leds in [32u64, 64, 144] {
        println!(
            "APA102 at 24 MHz, {leds} LEDs: {} bits per column, at most {} columns/s",
            apa102_bits(leds),
            24_000_000 / apa102_bits(leds)
        );
    }
    if !have_valgrind {
        println!("valgrind not found: instruction counts skipped (install valgrind for them)");
    }
    println!(
        "\n| what | LEDs | instructions/column | % of ESP32 budget | render + Finish::apply, instructions/column | native ns/column |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for case in cases() {
        for leds in [32u16, 64, 144] {
            let per_column = |cached| {
                have_valgrind
                    .then(|| {
                        let n = instructions(&case, leds, COLUMNS, cached)? - instructions(&case, leds, 0, cached)?;
                        Some(n / COLUMNS)
                    })
                    .flatten()
            };
            let (cached, uncached) = (per_column(true), per_column(false));
            let t = Instant::now();
            work(&case, leds, 20_000, true);
            let ns = t.elapsed().as_nanos() as f64 / 20_000.0;
            let show = |n: Option<u64>| n.map_or("-".into(), |n| n.to_string());
            let share = cached.map_or("-".into(), |n| format!("{:.1}", n as f64 * 100.0 / ESP32_BUDGET as f64));
            println!("| {} | {leds} | {} | {share} | {} | {ns:.0} |", name(&case), show(cached), show(uncached));
        }
    }
}
