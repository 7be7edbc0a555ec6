//! What plays, and how it turns into one column of LED colours at a given show time.

use crate::model::{ImageId, Pattern, Rgb, Sequence, SequenceTarget};

use super::cache::{ColumnCache, Direct, Tables};
use super::color::{BLACK, FinishTable, Paint, Raw};
use super::pattern;

/// Most LEDs one strip may have.
pub const MAX_LEDS: u16 = 144;
/// LEDs on the existing system's poi.
pub const DEFAULT_LEDS: u16 = 32;

/// An image's pixels as the renderer reads them: RGB bytes, row-major, row y drives LED y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageView<'a> {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// `width * height * 3` bytes.
    pub pixels: &'a [u8],
}

/// Where a sequence finds the images and pattern slots its items name.
pub trait Content {
    /// The pixels of a stored image, if they are here.
    fn image(&self, id: ImageId) -> Option<ImageView<'_>>;
    /// The pattern in a slot, if the slot is filled.
    fn pattern(&self, slot: u8) -> Option<Pattern>;
}

/// What the poi plays.
#[derive(Clone, Copy)]
pub enum Program<'a> {
    /// Dark.
    Idle,
    /// An image, one column per frame.
    Image(ImageView<'a>),
    /// A pattern.
    Pattern(Pattern),
    /// A sequence that began at show time `started_ms`, its items found in `content`.
    Sequence {
        /// The playlist.
        sequence: &'a Sequence,
        /// Show time at which item 0 began.
        started_ms: u64,
        /// Images and patterns the items refer to.
        content: &'a dyn Content,
    },
    /// A column pushed from outside, shown as is (stretched to the strip).
    Live(&'a [Rgb]),
}

/// The LED count is outside 1-[`MAX_LEDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLedCount(pub u16);

impl core::fmt::Display for BadLedCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "a strip has 1-{MAX_LEDS} LEDs, not {}", self.0)
    }
}

/// Which image column is on at show time `t_ms` at `framerate` columns per second. Wide
/// arithmetic: no overflow for any time or width (the old firmware's 8-bit counter wrapped
/// at 256 columns).
pub fn image_column(t_ms: u64, framerate: u16, width: u16) -> usize {
    if cfg!(target_pointer_width = "64") {
        let (fps, width) = (u64::from(framerate), u64::from(width.max(1)));
        if let Some(scaled) = t_ms.checked_mul(fps) {
            // Any show time before the year 10,000 at any frame rate.
            return (scaled / 1000 % width) as usize;
        }
    }
    image_column_32(t_ms, framerate, width)
}

/// [`image_column`] with no 64-bit division: with t = 1000 q + r the frame is
/// q * framerate + r * framerate / 1000, and q matters only modulo the width, so after two
/// divisions by numbers below 2^16 everything fits 32 bits (65,535 * 65,535 + 65,535 <
/// 2^32).
pub(super) fn image_column_32(t_ms: u64, framerate: u16, width: u16) -> usize {
    let (fps, width) = (u32::from(framerate), u32::from(width.max(1)));
    let (q, r) = pattern::divrem(t_ms, 1000);
    let (_, q_mod) = pattern::divrem(q, width);
    ((q_mod * fps + r * fps / 1000) % width) as usize
}

/// Turns a program into columns for a strip of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renderer {
    leds: u16,
}

impl Renderer {
    /// A renderer for `leds` LEDs (1-144).
    pub fn new(leds: u16) -> Result<Renderer, BadLedCount> {
        if leds == 0 || leds > MAX_LEDS { Err(BadLedCount(leds)) } else { Ok(Renderer { leds }) }
    }

    /// LEDs per column.
    pub fn leds(&self) -> usize {
        usize::from(self.leds)
    }

    /// Fills `out` (at least [`Renderer::leds`] long; LED 0 at the handle) with the column
    /// shown at show time `t_ms`. `framerate` (columns per second) paces images; `audio`
    /// (0-255) drives the audio-reactive patterns. Brightness and gamma come after, with
    /// [`super::Finish`].
    pub fn render(&self, program: &Program<'_>, t_ms: u64, framerate: u16, audio: u8, out: &mut [Rgb]) {
        self.draw(program, t_ms, framerate, audio, &mut Direct::new(Raw), out);
    }

    /// [`Renderer::render`] followed by `finish`, in one pass: the same bytes as
    /// `render` then `finish.apply`, for less work (each colour is finished as it is made,
    /// and a colour shared by many LEDs is finished once).
    pub fn render_finished(
        &self,
        program: &Program<'_>,
        t_ms: u64,
        framerate: u16,
        audio: u8,
        finish: &FinishTable,
        out: &mut [Rgb],
    ) {
        self.draw(program, t_ms, framerate, audio, &mut Direct::new(finish), out);
    }

    /// [`Renderer::render_finished`] with what `cache` kept from earlier columns (finished
    /// blends and wheel, random draws of the current time slots): the same bytes, for the
    /// least work. A player keeps one [`ColumnCache`] for as long as it plays.
    pub fn render_cached(
        &self,
        program: &Program<'_>,
        t_ms: u64,
        framerate: u16,
        audio: u8,
        cache: &mut ColumnCache,
        out: &mut [Rgb],
    ) {
        self.draw(program, t_ms, framerate, audio, cache, out);
    }

    fn draw<T: Tables>(
        &self,
        program: &Program<'_>,
        t_ms: u64,
        framerate: u16,
        audio: u8,
        tables: &mut T,
        out: &mut [Rgb],
    ) {
        let out = &mut out[..self.leds()];
        match program {
            Program::Idle => draw_dark(tables.painter(), out),
            Program::Image(image) => draw_image(image, t_ms, framerate, tables.painter(), out),
            Program::Pattern(p) => pattern::draw_with(p, t_ms, audio, tables, out),
            Program::Sequence { .. } => draw_sequence(program, &(t_ms, framerate, audio), tables, out),
            Program::Live(column) => draw_live(column, tables.painter(), out),
        }
    }
}

/// Plays the sequence item due at the show time. The time, frame rate and audio level come
/// by reference: with them as arguments, the call would not fit the registers and
/// `Renderer::draw` would save registers on every column, whatever it plays.
#[inline(never)]
fn draw_sequence<T: Tables>(
    program: &Program<'_>,
    &(t_ms, framerate, audio): &(u64, u16, u8),
    tables: &mut T,
    out: &mut [Rgb],
) {
    let Program::Sequence { sequence, started_ms, content } = program else { return };
    let dark = tables.painter().paint(BLACK);
    match sequence_item(sequence, t_ms.saturating_sub(*started_ms)) {
        Some(SequenceTarget::Image(id)) => match content.image(id) {
            Some(image) => draw_image(&image, t_ms, framerate, tables.painter(), out),
            None => out.fill(dark),
        },
        Some(SequenceTarget::Pattern(slot)) => match content.pattern(slot) {
            Some(p) => pattern::draw_with(&p, t_ms, audio, tables, out),
            None => out.fill(dark),
        },
        None => out.fill(dark),
    }
}

// Out of line, like draw_image and draw_sequence.
#[inline(never)]
fn draw_dark(paint: impl Paint, out: &mut [Rgb]) {
    out.fill(paint.paint(BLACK));
}

// Out of line, like draw_image and draw_sequence.
#[inline(never)]
fn draw_live(column: &[Rgb], paint: impl Paint, out: &mut [Rgb]) {
    stretch(column.len(), paint.paint(BLACK), out, |y| paint.paint(column[y]));
}

/// The item playing `elapsed_ms` after the sequence began; None once a sequence that does
/// not loop is over.
pub fn sequence_item(sequence: &Sequence, elapsed_ms: u64) -> Option<SequenceTarget> {
    let total: u64 = sequence.items().iter().map(|i| u64::from(i.duration_ms)).sum();
    if total == 0 || (!sequence.looped() && elapsed_ms >= total) {
        return None;
    }
    let mut into = elapsed_ms % total;
    for item in sequence.items() {
        let d = u64::from(item.duration_ms);
        if into < d {
            return Some(item.target);
        }
        into -= d;
    }
    None
}

// Out of line, like the patterns: the dispatch in `Renderer::draw` then stays a jump
// without the register saves that the loops need.
#[inline(never)]
fn draw_image(image: &ImageView<'_>, t_ms: u64, framerate: u16, paint: impl Paint, out: &mut [Rgb]) {
    let x = image_column(t_ms, framerate, image.width);
    let (width, rows) = (usize::from(image.width), usize::from(image.height));
    // Pixel (x, y) is pixel y * width + x of the whole ones.
    let pixels = image.pixels.as_chunks::<3>().0;
    if rows == out.len() && width > 0 && pixels.len() >= rows * width {
        // The usual case, a whole image as tall as the strip: row y on LED y, eight LEDs a
        // turn (at one a turn the loop's own bookkeeping is a third of its work), from row
        // chunks of the full width so that no index is checked inside the loop.
        // Already below the width (image_column's remainder); saying so lets the compiler
        // drop the index check from the loop.
        let x = x.min(width - 1);
        let (groups, rest) = out.as_chunks_mut::<8>();
        let (group_rows, rest_rows) = pixels[..rows * width].split_at(groups.len() * 8 * width);
        for (leds, group) in groups.iter_mut().zip(group_rows.chunks_exact(8 * width)) {
            for (led, row) in leds.iter_mut().zip(group.chunks_exact(width)) {
                let [r, g, b] = row[x];
                *led = paint.paint(Rgb::new(r, g, b));
            }
        }
        if rest.is_empty() {
            // 32, 64 and 144 LEDs are multiples of eight: nothing left to set up.
            return;
        }
        for (led, row) in rest.iter_mut().zip(rest_rows.chunks_exact(width)) {
            let [r, g, b] = row[x];
            *led = paint.paint(Rgb::new(r, g, b));
        }
        return;
    }
    // Anything else: stretched, and black where the bytes run out (they cut rows off the
    // bottom, so the rows that are there form a prefix).
    let whole = match pixels.len().checked_sub(x + 1) {
        None => 0,
        Some(_) if width == 0 => rows,
        Some(spare) => (spare / width + 1).min(rows),
    };
    let dark = paint.paint(BLACK);
    stretch(rows, dark, out, |y| {
        if y < whole {
            let [r, g, b] = pixels[y * width + x];
            paint.paint(Rgb::new(r, g, b))
        } else {
            dark
        }
    });
}

/// Maps `rows` source rows onto the strip, nearest neighbour: a 32-row image fills a
/// 144-LED strip, a 64-row one shows every other row on 32 LEDs. LED i shows row
/// `i * rows / n`, stepped to rather than divided for (one division per column, not per
/// LED).
#[inline(always)]
fn stretch(rows: usize, dark: Rgb, out: &mut [Rgb], row: impl Fn(usize) -> Rgb) {
    let n = out.len();
    if rows == 0 {
        out.fill(dark);
        return;
    }
    if rows == n {
        // The usual case (an image as tall as the strip) without the stepping.
        for (y, led) in out.iter_mut().enumerate() {
            *led = row(y);
        }
        return;
    }
    // Kept: i * rows == y * n + carried, with carried < n.
    let (whole, part) = (rows / n, rows % n);
    let (mut y, mut carried) = (0, 0);
    for led in out.iter_mut() {
        *led = row(y);
        y += whole;
        carried += part;
        if carried >= n {
            carried -= n;
            y += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ReplicaId;
    use crate::model::{PatternKind, SequenceItem};
    use alloc::vec;
    use alloc::vec::Vec;

    fn gradient_image(width: u16, height: u16) -> Vec<u8> {
        let mut px = Vec::new();
        for y in 0..height {
            for x in 0..width {
                px.extend_from_slice(&[(x % 256) as u8, (x / 256) as u8, y as u8]);
            }
        }
        px
    }

    #[test]
    fn image_mode_shows_one_column_per_frame_and_wraps_at_the_width() {
        let px = gradient_image(400, 32);
        let image = Program::Image(ImageView { width: 400, height: 32, pixels: &px });
        let r = Renderer::new(32).unwrap();
        let mut out = [BLACK; 32];
        let column_of = |out: &[Rgb]| usize::from(out[0].r) + 256 * usize::from(out[0].g);
        // 50 columns per second: column k is on from k*20 ms.
        for (t, x) in [(0, 0), (19, 0), (20, 1), (5_099, 254), (5_120, 256), (7_999, 399), (8_000, 0)] {
            r.render(&image, t, 50, 0, &mut out);
            assert_eq!(column_of(&out), x, "t={t}");
            assert_eq!(out[31].b, 31, "row y drives LED y");
        }
        // Years of show time at 255 fps: no overflow, still inside the image.
        assert_eq!(image_column(u64::MAX, 255, 400), ((u128::from(u64::MAX) * 255 / 1000) % 400) as usize);
    }

    #[test]
    fn images_stretch_to_the_strip() {
        let px = gradient_image(1, 32);
        let image = Program::Image(ImageView { width: 1, height: 32, pixels: &px });
        let mut long = [BLACK; 144];
        Renderer::new(144).unwrap().render(&image, 0, 10, 0, &mut long);
        assert_eq!((long[0].b, long[143].b, long[72].b), (0, 31, 16));
        let mut short = [BLACK; 16];
        Renderer::new(16).unwrap().render(&image, 0, 10, 0, &mut short);
        assert_eq!((short[1].b, short[15].b), (2, 30));
    }

    struct Library {
        image: Vec<u8>,
    }

    const IMAGE: ImageId = ImageId { origin: ReplicaId(1), seq: 1 };

    impl Content for Library {
        fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
            (id == IMAGE).then_some(ImageView { width: 2, height: 1, pixels: &self.image })
        }
        fn pattern(&self, slot: u8) -> Option<Pattern> {
            (slot == 3).then(|| Pattern::new(PatternKind::Breathing, Rgb::new(0, 255, 0), BLACK, 50).unwrap())
        }
    }

    #[test]
    fn sequences_play_items_for_their_durations_then_loop_or_stop() {
        let items = vec![
            SequenceItem { target: SequenceTarget::Image(IMAGE), duration_ms: 1_000 },
            SequenceItem { target: SequenceTarget::Pattern(3), duration_ms: 500 },
            SequenceItem { target: SequenceTarget::Pattern(9), duration_ms: 500 },
        ];
        let looped = Sequence::new(items.clone(), true).unwrap();
        let once = Sequence::new(items, false).unwrap();
        assert_eq!(sequence_item(&looped, 999), Some(SequenceTarget::Image(IMAGE)));
        assert_eq!(sequence_item(&looped, 1_000), Some(SequenceTarget::Pattern(3)));
        assert_eq!(sequence_item(&looped, 2_000 + 1_200), Some(SequenceTarget::Pattern(3)));
        assert_eq!(sequence_item(&once, 1_999), Some(SequenceTarget::Pattern(9)));
        assert_eq!(sequence_item(&once, 2_000), None);

        let library = Library { image: vec![200, 0, 0, 0, 0, 200] };
        let program = Program::Sequence { sequence: &looped, started_ms: 10_000, content: &library };
        let r = Renderer::new(4).unwrap();
        let mut out = [BLACK; 4];
        r.render(&program, 10_000, 1, 0, &mut out);
        assert_eq!(out[0], Rgb::new(200, 0, 0), "image column 0 at 10 s and 1 fps");
        r.render(&program, 11_200, 1, 0, &mut out);
        assert!(out[0].g > 0 && out[0].r == 0, "the green breathing pattern: {:?}", out[0]);
        r.render(&program, 11_700, 1, 0, &mut out);
        assert_eq!(out, [BLACK; 4], "an empty pattern slot is dark");
        r.render(&program, 6_000, 1, 0, &mut out);
        assert_eq!(out[0], Rgb::new(200, 0, 0), "before its start a sequence shows item 0");
    }

    #[test]
    fn live_columns_and_idle() {
        let r = Renderer::new(4).unwrap();
        let mut out = [Rgb::new(9, 9, 9); 4];
        r.render(&Program::Idle, 5, 50, 0, &mut out);
        assert_eq!(out, [BLACK; 4]);
        let pushed = [Rgb::new(1, 0, 0), Rgb::new(2, 0, 0)];
        r.render(&Program::Live(&pushed), 5, 50, 0, &mut out);
        assert_eq!(out.map(|c| c.r), [1, 1, 2, 2]);
        assert_eq!(Renderer::new(0), Err(BadLedCount(0)));
        assert_eq!(Renderer::new(145), Err(BadLedCount(145)));
    }
}
