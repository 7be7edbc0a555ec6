//! The column clock: at a fixed column rate from a hardware timer, render the column of "now"
//! with `povpoi_core::render` and send it to the strip.
//!
//! What plays, at which rate and brightness, and what "now" is in show time come from a
//! [`ColumnSource`], which the shared application's player implements (its show clock gives
//! the show time; until then it is this board's own clock). [`Dark`], the stand-in, plays
//! nothing: the strip stays dark.

use alloc::vec;

use embassy_time::{Duration, Instant, Ticker};
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
    /// The show time (ms) at this board's clock reading `own_us` (µs since start).
    fn show_time_ms(&self, own_us: u64) -> u64 {
        own_us / 1000
    }
    /// Calls `draw` with the frame that plays now.
    fn with_frame(&self, draw: &mut dyn FnMut(&Frame<'_>));
}

/// Plays nothing, at the fallback rate: the stand-in until the application is linked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dark;

impl ColumnSource for Dark {
    fn leds(&self) -> u16 {
        DEFAULT_LEDS
    }

    fn with_frame(&self, draw: &mut dyn FnMut(&Frame<'_>)) {
        draw(&Frame {
            program: Program::Idle,
            framerate: FALLBACK_FPS,
            finish: Finish { brightness: 0, gamma: true },
            order: ColorOrder::default(),
        });
    }
}

/// The period of one column at `fps` columns per second (clamped to 1-[`MAX_FPS`]).
pub fn period(fps: u16) -> Duration {
    Duration::from_micros(1_000_000 / u64::from(fps.clamp(1, MAX_FPS)))
}

/// Runs the column clock for as long as the poi runs.
pub async fn run(source: &impl ColumnSource, strip: &mut Apa102) -> ! {
    let renderer = match Renderer::new(source.leds()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}; driving {DEFAULT_LEDS} LEDs");
            Renderer::new(DEFAULT_LEDS).unwrap_or_else(|_| unreachable!("32 LEDs are valid"))
        }
    };
    let mut column = vec![Rgb::default(); renderer.leds()];
    let mut fps = FALLBACK_FPS;
    let mut ticker = Ticker::every(period(fps));
    loop {
        ticker.next().await;
        let show_ms = source.show_time_ms(Instant::now().as_micros());
        let mut order = ColorOrder::default();
        let mut wanted_fps = fps;
        source.with_frame(&mut |frame| {
            renderer.render(&frame.program, show_ms, frame.framerate, 0, &mut column);
            frame.finish.apply(&mut column);
            order = frame.order;
            wanted_fps = frame.framerate;
        });
        strip.show(&column, order).await;
        if wanted_fps != fps && wanted_fps != 0 {
            // A new rate starts its ticks from now; the show time, not the tick count, picks
            // the column, so nothing jumps.
            fps = wanted_fps.min(MAX_FPS);
            ticker = Ticker::every(period(fps));
        }
    }
}
