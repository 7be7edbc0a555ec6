//! The column clock: at each column start in show time (column `k` at `k / fps` s), render the
//! column with `povpoi_core::render` and send it to the strip.
//!
//! What plays, at which rate and brightness, and what "now" is in show time come from a
//! [`ColumnSource`]: the shared application (`crate::poi`), whose show clock gives the show
//! time, or [`Dark`] on a board without storage.

use alloc::vec;

use embassy_time::{Duration, Instant, Timer};
use povpoi_app::stage::{column_start, next_column_start};
use povpoi_core::model::Rgb;
use povpoi_core::render::{ColorOrder, DEFAULT_LEDS, Finish, Program, Renderer};

use crate::apa102::Apa102;

/// Column rate when the source asks for none usable: the existing system's default of 50.
pub const FALLBACK_FPS: u16 = 50;

/// Highest column rate the clock runs at: the model's frame rates are 1-255.
pub const MAX_FPS: u16 = 255;

/// One column's inputs.
pub struct Frame<'a> {
    /// What plays.
    pub program: Program<'a>,
    /// Columns per second (1-255).
    pub framerate: u16,
    /// Brightness and gamma.
    pub finish: Finish,
    /// The strip's channel order.
    pub order: ColorOrder,
}

/// Where the column clock gets what to show; the shared application's player implements it.
pub trait ColumnSource {
    /// LEDs on the strip (1-144).
    fn leds(&self) -> u16;
    /// The show time (µs) at this board's clock reading `own_us` (µs since start).
    fn show_time_us(&self, own_us: u64) -> u64 {
        own_us
    }
    /// Calls `draw` with the frame that plays at this board's clock reading `own_us`. `draw`
    /// must not call back into the source (it may hold the application's lock).
    fn with_frame(&self, own_us: u64, draw: &mut dyn FnMut(&Frame<'_>));
}

/// Plays nothing, at the fallback rate: what a board without storage (so without the
/// application) shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dark;

impl ColumnSource for Dark {
    fn leds(&self) -> u16 {
        DEFAULT_LEDS
    }

    fn with_frame(&self, _own_us: u64, draw: &mut dyn FnMut(&Frame<'_>)) {
        draw(&Frame {
            program: Program::Idle,
            framerate: FALLBACK_FPS,
            finish: Finish { brightness: 0, gamma: true },
            order: ColorOrder::default(),
        });
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
        let mut order = ColorOrder::default();
        let mut fps = FALLBACK_FPS;
        source.with_frame(own_us, &mut |frame| {
            fps = frame.framerate.clamp(1, MAX_FPS);
            // Drawn as at the column's middle, as the node does, whatever the wake-up delay.
            let start = column_start(show_us, fps);
            let middle_ms = (start + 500_000 / u64::from(fps)) / 1_000;
            renderer.render(&frame.program, middle_ms, fps, 0, &mut column);
            frame.finish.apply(&mut column);
            order = frame.order;
        });
        strip.show(&column, order).await;
        let now = source.show_time_us(Instant::now().as_micros());
        let next = next_column_start(show_us.max(now), fps);
        Timer::after(Duration::from_micros(next.saturating_sub(now))).await;
    }
}
