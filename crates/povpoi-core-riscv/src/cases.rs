//! The rendering cases that the host (in `build.rs`) and the RISC-V firmware both work out,
//! the same code on both sides, so that their digests must agree byte for byte.

use alloc::vec::Vec;

use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::{ColumnCache, Finish, ImageView, Program, Renderer};

/// Strip lengths the digests cover.
pub const LEDS: [u16; 5] = [1, 7, 32, 64, 144];
/// Columns per digest.
pub const COLUMNS: u64 = 120;
/// Case 0 is the image, case `k + 1` the pattern with id `k`.
pub const CASES: usize = 1 + PatternKind::ALL.len();

/// How a column is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Renderer::render`, no finish.
    Raw,
    /// `Renderer::render` then `Finish::apply`, as the node's player does today.
    Apply,
    /// `Renderer::render_finished` with a `FinishTable` per column.
    Finished,
    /// `Renderer::render_cached` with one `ColumnCache` for all the columns.
    Cached,
}

/// The image the image case plays: 400 columns, as tall as the strip up to 64 rows.
pub fn pixels(leds: u16) -> Vec<u8> {
    (0..400 * usize::from(leds.min(64)) * 3).map(|i| (i * 31 % 251) as u8).collect()
}

/// The program of `case` (speed 120, the bench's colours).
pub fn program<'a>(case: usize, leds: u16, pixels: &'a [u8]) -> Program<'a> {
    match case {
        0 => Program::Image(ImageView { width: 400, height: leds.min(64), pixels }),
        k => Program::Pattern(
            Pattern::new(PatternKind::ALL[k - 1], Rgb::new(255, 40, 0), Rgb::new(0, 80, 255), 120).unwrap(),
        ),
    }
}

/// Show time of column `k`: today, near the 32-bit limit of milliseconds, and near the
/// top of the 64-bit range, where 32-bit and 64-bit arithmetic would part.
pub fn time(k: u64) -> u64 {
    match k % 3 {
        0 => 1_764_000_000_000 + k * 3,
        1 => (1 << 32) - 1_000 + k * 11,
        _ => u64::MAX / 512 + k * 7,
    }
}

/// Finish of column `k`: steady for the first half (a cache keeps its tables), then a
/// different brightness and gamma every column.
pub fn finish(k: u64) -> Finish {
    if k < COLUMNS / 2 {
        Finish { brightness: 200, gamma: true }
    } else {
        Finish { brightness: (k * 53 % 256) as u8, gamma: k.is_multiple_of(2) }
    }
}

/// FNV-1a over every byte of `COLUMNS` columns of `case` on `leds` LEDs made in `mode`.
pub fn digest(case: usize, leds: u16, mode: Mode) -> u64 {
    let pixels = pixels(leds);
    let program = program(case, leds, &pixels);
    let renderer = Renderer::new(leds).unwrap();
    let mut column = alloc::vec![Rgb::default(); usize::from(leds)];
    let mut cache = ColumnCache::new(finish(0));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for k in 0..COLUMNS {
        let (t, audio) = (time(k), (k * 89 % 256) as u8);
        match mode {
            Mode::Raw => renderer.render(&program, t, 250, audio, &mut column),
            Mode::Apply => {
                renderer.render(&program, t, 250, audio, &mut column);
                finish(k).apply(&mut column);
            }
            Mode::Finished => renderer.render_finished(&program, t, 250, audio, &finish(k).table(), &mut column),
            Mode::Cached => {
                cache.set_finish(finish(k));
                renderer.render_cached(&program, t, 250, audio, &mut cache, &mut column);
            }
        }
        for led in &column {
            for byte in [led.r, led.g, led.b] {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}
