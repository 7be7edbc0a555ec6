//! What a spectator sees when the poi spins: a long-exposure photo of the light trail.
//!
//! Geometry: the strip turns about the hand, LED 0 nearest it. The picture's centre is the
//! hand, with a dark hub for the hand and handle; LED i lights the ring from `r0 + i*dr` to
//! `r0 + (i+1)*dr`. The arm starts pointing down (a hanging poi) and turns counter-clockwise
//! as the spectator sees it, so at the bottom of the circle the columns run left to right
//! with LED 0 on top: an image reads the right way round there. Seen from the other side of
//! the plane everything is mirrored, as it is in real life.
//!
//! Column k, shown from `t_k = start + k/fps`, sweeps the wedge from angle
//! `2π·rps·(t_k − start)` to the next column's. Where the exposure is longer than a turn, a
//! later turn overlaps an earlier one and each channel keeps its brightest value, as film or
//! a sensor saturates.

use std::f64::consts::TAU;

use image::RgbImage;
use povpoi_core::model::{Pattern, Rgb};
use povpoi_core::render::{BLACK, ColumnCache, DEFAULT_LEDS, Finish, MAX_LEDS, Program, Renderer};

use crate::picture::encode_png;
use crate::{MediaError, Picture};

/// Longest exposure: a minute covers any sequence step, and bounds the work per preview.
pub const MAX_EXPOSURE_MS: u64 = 60_000;
/// Largest side of a preview in pixels.
pub const MAX_SIZE: u32 = 4_096;
/// Fastest spin accepted, in rotations per second (a fast poi spinner does 2-3).
pub const MAX_RPS: f64 = 50.0;
/// Highest frame rate accepted (the poi's setting goes to 255).
pub const MAX_FPS: u16 = 1_000;
/// Most turns one exposure may hold: every pixel looks at each turn, so this bounds the work.
pub const MAX_TURNS: f64 = 100.0;
/// Hub radius as a share of the outer radius: the hand and the handle, dark.
const HUB: f64 = 0.1;
/// Share of the half-size left black around the outer ring.
const MARGIN: f64 = 0.02;

/// How the spin is photographed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreviewOptions {
    /// LEDs on the strip, 1-144 (default 32).
    pub leds: u16,
    /// Rotations per second (default 2).
    pub rps: f64,
    /// Columns per second, the poi's frame rate setting (default 50).
    pub fps: u16,
    /// How long the shutter is open; None means one rotation.
    pub exposure_ms: Option<u64>,
    /// Show time at which the shutter opens, ms.
    pub start_ms: u64,
    /// Picture width in pixels (default 512).
    pub width: u32,
    /// Picture height in pixels (default 512).
    pub height: u32,
    /// Brightness and gamma, as the poi applies them. The default is full brightness without
    /// gamma: a screen applies its own gamma, so LED gamma on top would darken the mid-tones
    /// twice.
    pub finish: Finish,
    /// Sound level fed to the audio-reactive patterns (default 128, so they show something).
    pub audio: u8,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            leds: DEFAULT_LEDS,
            rps: 2.0,
            fps: 50,
            exposure_ms: None,
            start_ms: 0,
            width: 512,
            height: 512,
            finish: Finish { brightness: 255, gamma: false },
            audio: 128,
        }
    }
}

impl PreviewOptions {
    /// The exposure in ms: the given one or one rotation.
    pub fn exposure(&self) -> u64 {
        self.exposure_ms.unwrap_or_else(|| (1000.0 / self.rps).ceil() as u64)
    }

    fn check(&self) -> Result<(), MediaError> {
        let bad = |s: String| Err(MediaError::Preview(s));
        if self.leds == 0 || self.leds > MAX_LEDS {
            return bad(format!("the LED count must be 1-{MAX_LEDS}, not {}", self.leds));
        }
        if !(self.rps.is_finite() && self.rps > 0.0 && self.rps <= MAX_RPS) {
            return bad(format!("rotations per second must be above 0 and at most {MAX_RPS}, not {}", self.rps));
        }
        if !(1..=MAX_FPS).contains(&self.fps) {
            return bad(format!("the frame rate must be 1-{MAX_FPS} columns per second, not {}", self.fps));
        }
        if !(1..=MAX_EXPOSURE_MS).contains(&self.exposure()) {
            let what = if self.exposure_ms.is_some() { "" } else { " (one rotation at this speed)" };
            return bad(format!("the exposure must be 1-{MAX_EXPOSURE_MS} ms, not {}{what}", self.exposure()));
        }
        let turns = self.rps * self.exposure() as f64 / 1000.0;
        if turns > MAX_TURNS {
            return bad(format!("{turns:.0} turns in one exposure is too many; at most {MAX_TURNS} (shorten it)"));
        }
        if !(16..=MAX_SIZE).contains(&self.width) || !(16..=MAX_SIZE).contains(&self.height) {
            return bad(format!("the size must be 16-{MAX_SIZE} pixels a side, not {}x{}", self.width, self.height));
        }
        Ok(())
    }
}

/// Photographs the spin of whatever `column_at` shows: it gets a show time in ms and gives
/// the finished column (LED 0 first, at the hand; missing LEDs are dark).
pub fn preview(options: &PreviewOptions, mut column_at: impl FnMut(u64) -> Vec<Rgb>) -> Result<RgbImage, MediaError> {
    options.check()?;
    let fps = u64::from(options.fps);
    let exposure = options.exposure();
    let columns = (exposure * fps).div_ceil(1000).max(1);
    // Rounded up to the ms so the renderer, which switches columns at frame boundaries, is
    // already showing column k at t_k.
    let shown: Vec<Vec<Rgb>> =
        (0..columns).map(|k| column_at(options.start_ms.saturating_add((k * 1000).div_ceil(fps)))).collect();

    let turns_per_ms = options.rps / 1000.0;
    let total_angle = TAU * turns_per_ms * exposure as f64;
    let column_angle = TAU * options.rps / options.fps as f64;
    let (w, h) = (options.width, options.height);
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    let outer = cx.min(cy) * (1.0 - MARGIN);
    let hub = outer * HUB;
    let ring = (outer - hub) / f64::from(options.leds);

    let mut out = RgbImage::new(w, h);
    for (px, py, pixel) in out.enumerate_pixels_mut() {
        let (dx, dy) = (f64::from(px) + 0.5 - cx, f64::from(py) + 0.5 - cy);
        let r = dx.hypot(dy);
        if r < hub || r >= outer {
            continue;
        }
        let led = ((r - hub) / ring) as usize;
        // Angle from straight down, counter-clockwise on screen (y grows downwards).
        let angle = dx.atan2(dy).rem_euclid(TAU);
        let mut lit = BLACK;
        let mut swept = angle;
        while swept < total_angle {
            let k = (swept / column_angle) as usize;
            if let Some(c) = shown.get(k).and_then(|column| column.get(led)) {
                lit = Rgb::new(lit.r.max(c.r), lit.g.max(c.g), lit.b.max(c.b));
            }
            swept += TAU;
        }
        pixel.0 = [lit.r, lit.g, lit.b];
    }
    Ok(out)
}

/// Photographs the spin of a program (image, pattern, sequence...) as the poi renders it,
/// brightness and gamma from `options.finish`.
pub fn preview_program(program: &Program<'_>, options: &PreviewOptions) -> Result<RgbImage, MediaError> {
    let renderer = Renderer::new(options.leds).map_err(|e| MediaError::Preview(e.to_string()))?;
    let mut column = vec![BLACK; renderer.leds()];
    let mut cache = ColumnCache::new(options.finish);
    preview(options, |t_ms| {
        renderer.render_cached(program, t_ms, options.fps, options.audio, &mut cache, &mut column);
        column.clone()
    })
}

/// Photographs the spin of a picture shown in image mode.
pub fn preview_picture(picture: &Picture, options: &PreviewOptions) -> Result<RgbImage, MediaError> {
    preview_program(&Program::Image(picture.view()), options)
}

/// Photographs the spin of a pattern.
pub fn preview_pattern(pattern: Pattern, options: &PreviewOptions) -> Result<RgbImage, MediaError> {
    preview_program(&Program::Pattern(pattern), options)
}

/// A preview (or any RGB picture) as PNG bytes, to save or serve.
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>, MediaError> {
    encode_png(image.as_raw(), image.width(), image.height())
}
