//! The column clock: at each column start in show time (column `k` at `k / fps` s), draw the
//! column and send it to the strip.
//!
//! What plays, at which rate and brightness, and what "now" is in show time come from a
//! [`ColumnSource`]: the shared application (`crate::poi`, through
//! [`povpoi_app::App::draw_column`], which reads image pixels from the flash a few columns at
//! a time), or [`Dark`] on a board without storage.

use alloc::vec;

use embassy_time::{Duration, Instant, Timer};
use povpoi_app::stage::next_column_start;
use povpoi_core::model::Rgb;
use povpoi_core::render::{ColorOrder, DEFAULT_LEDS, Finish, Renderer};

use crate::apa102::Apa102;

/// Column rate when the source asks for none usable: the existing system's default of 50.
pub const FALLBACK_FPS: u16 = 50;

/// Highest column rate the clock runs at: the model's frame rates are 1-255.
pub const MAX_FPS: u16 = 255;

/// Where the column clock gets what to show; the shared application implements it.
pub trait ColumnSource {
    /// LEDs on the strip (1-144).
    fn leds(&self) -> u16;
    /// The show time (µs) at this board's clock reading `own_us` (µs since start).
    fn show_time_us(&self, own_us: u64) -> u64 {
        own_us
    }
    /// Draws into `out` the column playing at this board's clock reading `own_us`; returns
    /// its frame rate (columns per second) and the brightness and gamma to finish it with.
    fn draw(&self, own_us: u64, renderer: &Renderer, out: &mut [Rgb]) -> (u16, Finish);
}

/// Plays nothing, at the fallback rate: what a board without storage (so without the
/// application) shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dark;

impl ColumnSource for Dark {
    fn leds(&self) -> u16 {
        DEFAULT_LEDS
    }

    fn draw(&self, _own_us: u64, _renderer: &Renderer, out: &mut [Rgb]) -> (u16, Finish) {
        out.fill(Rgb::default());
        (FALLBACK_FPS, Finish { brightness: 0, gamma: true })
    }
}

/// Runs the column clock for as long as the poi runs: each column starts at its show time
/// (column `k` at `k / fps` s), so every poi of a group in step draws the same column at once.
pub async fn run(source: &impl ColumnSource, strip: &mut Apa102) -> ! {
    let renderer = match Renderer::new(source.leds()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}; driving {DEFAULT_LEDS} LEDs");
            Renderer::new(DEFAULT_LEDS).unwrap_or_else(|_| unreachable!("32 LEDs are valid"))
        }
    };
    let mut column = vec![Rgb::default(); renderer.leds()];
    loop {
        let own_us = Instant::now().as_micros();
        let show_us = source.show_time_us(own_us);
        let (fps, finish) = source.draw(own_us, &renderer, &mut column);
        let fps = fps.clamp(1, MAX_FPS);
        finish.apply(&mut column);
        strip.show(&column, ColorOrder::default()).await;
        let now = source.show_time_us(Instant::now().as_micros());
        let next = next_column_start(show_us.max(now), fps);
        Timer::after(Duration::from_micros(next.saturating_sub(now))).await;
    }
}
