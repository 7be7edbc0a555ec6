//! What one column shows on a poi that cannot hold an image in RAM (a board: a 400x32 image
//! is 38,400 bytes of a 64 KiB heap): the pixels stay in storage, and the image playing is
//! read a window of [`WINDOW_COLUMNS`] columns at a time ([`ImageWindow`]), one read per
//! row. [`App::draw_column`] draws from it what a node draws from the whole image (a node
//! whose power mode caps the frame rate or brightness below the group's draws those capped;
//! a board has no power modes).

use alloc::vec::Vec;

use povpoi_core::hash::BlobHash;
use povpoi_core::model::{ImageId, ImageMeta, Mode, Pattern, Rgb, Selection, Sequence, SequenceTarget};
use povpoi_core::render::{Content, Finish, ImageView, Program, Renderer, image_column, sequence_item};
use povpoi_core::sync::{Storage, StorageError};

use crate::App;
use crate::app::Now;
use crate::stage::{Stage, column_middle_ms, sequence_start};

/// Columns an [`ImageWindow`] reads at once: at 32 LEDs a 1,536-byte window, refilled with
/// 32 reads every 16 columns.
pub const WINDOW_COLUMNS: u16 = 16;

/// The columns of one image that a poi reads from storage next, column-major (each column
/// LED 0 first, as the renderer reads a one-column image), and which image of image mode
/// the library's order names.
#[derive(Debug, Default)]
pub struct ImageWindow {
    /// The pixels held (content-addressed: the same hash is the same bytes).
    pixels: Option<BlobHash>,
    /// The shape they were read for: images may share pixels in different shapes.
    shape: (u16, u16),
    first: u16,
    count: u16,
    bytes: Vec<u8>,
    /// Refills so far, for a log or a measurement.
    refills: u64,
    /// Image mode's index resolved against the library.
    image_at: ImageAt,
}

impl ImageWindow {
    /// An empty window.
    pub fn new() -> ImageWindow {
        ImageWindow::default()
    }

    /// How often the window was read from storage.
    pub fn refills(&self) -> u64 {
        self.refills
    }

    /// Column `x` of `image` (its rows' RGB, row 0 first), from the window or read into it
    /// from `storage` with the columns after it; `None` when its pixels are not stored.
    pub fn column<S: Storage>(
        &mut self,
        storage: &S,
        image: &ImageMeta,
        x: u16,
    ) -> Result<Option<&[u8]>, StorageError> {
        let (width, height) = (image.width(), image.height());
        let rows = usize::from(height);
        let held = self.pixels == Some(image.pixels())
            && self.shape == (width, height)
            && (self.first..self.first + self.count).contains(&x);
        if !held {
            self.pixels = None;
            self.refills += 1;
            let count = WINDOW_COLUMNS.min(width.saturating_sub(x));
            self.bytes.resize(usize::from(count) * rows * 3, 0);
            let mut row = [0u8; WINDOW_COLUMNS as usize * 3];
            let row = &mut row[..usize::from(count) * 3];
            for y in 0..rows {
                let offset = (y * usize::from(width) + usize::from(x)) * 3;
                if !storage.read_blob_part(&image.pixels(), offset, row)? {
                    return Ok(None);
                }
                for (c, rgb) in row.chunks_exact(3).enumerate() {
                    self.bytes[(c * rows + y) * 3..][..3].copy_from_slice(rgb);
                }
            }
            (self.pixels, self.shape, self.first, self.count) = (Some(image.pixels()), (width, height), x, count);
        }
        let at = usize::from(x - self.first) * rows * 3;
        Ok(Some(&self.bytes[at..at + rows * 3]))
    }
}

/// Which image image mode's index names in the library's order, looked up again only when
/// the library changed: ordering the library (with an order set, 200 images sorted on the
/// heap) at every column, or at every look of the Teensy mirror, is too slow.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImageAt {
    /// The index resolved after this many changes of the library, and the image found.
    resolved: Option<(u64, u16, Option<ImageId>)>,
}

impl ImageAt {
    /// The image at `index` of `app`'s library order.
    pub fn get<S: Storage>(&mut self, app: &App<S>, index: u16) -> Option<ImageId> {
        let changes = app.library_changes();
        match self.resolved {
            Some((seen, i, id)) if seen == changes && i == index => id,
            _ => {
                let id = app.replica().image_at(usize::from(index));
                self.resolved = Some((changes, index, id));
                id
            }
        }
    }
}

/// How a column drawn by [`App::draw_column`] goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// Columns per second (1-255): when the next column starts.
    pub framerate: u16,
    /// Brightness and gamma, not applied yet.
    pub finish: Finish,
    /// The storage failed reading the image playing (the column is dark).
    pub error: Option<StorageError>,
}

/// A sequence's patterns from the stage, and of its images the one column playing.
struct OneColumn<'a> {
    stage: &'a Stage,
    image: Option<(ImageId, ImageView<'a>)>,
}

impl Content for OneColumn<'_> {
    fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
        self.image.filter(|(held, _)| *held == id).map(|(_, view)| view)
    }

    fn pattern(&self, slot: u8) -> Option<Pattern> {
        self.stage.patterns.get(usize::from(slot)).and_then(|p| *p.current())
    }
}

impl<S: Storage> App<S> {
    /// Lets due cues take effect and draws into `out` the column starting at or before
    /// this poi's clock reading `now`, as at the column's middle (as a node draws it), with
    /// image pixels read through `window`. Brightness and gamma are left to the caller.
    pub fn draw_column(&mut self, now: Now, renderer: &Renderer, window: &mut ImageWindow, out: &mut [Rgb]) -> Drawn {
        self.play(now);
        let show_us = self.clock().now(now.own_us);
        let stage = self.stage();
        let framerate = (*stage.framerate.current()).clamp(1, 255);
        let t_ms = column_middle_ms(show_us, framerate);
        let (selection, cue) = *stage.selection.current();
        let finish = Finish { brightness: *stage.brightness.current(), gamma: selection.mode != Mode::Live };
        let sequence = match selection.mode {
            // As of the column's middle, as a node asks it.
            Mode::Sequence => sequence_of(stage, selection).map(|q| (q, sequence_start(cue, t_ms * 1_000))),
            _ => None,
        };
        // The one image this column may need: image mode's, or the sequence item's.
        let image_id = match (selection.mode, sequence) {
            (Mode::Image, _) => window.image_at.get(self, selection.index),
            (_, Some((q, started_ms))) => match sequence_item(q, t_ms.saturating_sub(started_ms)) {
                Some(SequenceTarget::Image(id)) => Some(id),
                _ => None,
            },
            _ => None,
        };
        let mut error = None;
        let mut image = None;
        if let Some((id, meta)) = image_id.and_then(|id| Some((id, self.replica().image(id)?))) {
            // The column the whole image would show now (the renderer's own rule).
            let x = image_column(t_ms, framerate, meta.width()) as u16;
            match window.column(self.replica().storage(), meta, x) {
                Ok(pixels) => image = pixels.map(|pixels| (id, ImageView { width: 1, height: meta.height(), pixels })),
                Err(e) => error = Some(e),
            }
        }
        let content = OneColumn { stage, image };
        let program = match (selection.mode, sequence) {
            (Mode::Image, _) => image.map_or(Program::Idle, |(_, view)| Program::Image(view)),
            (Mode::Sequence, Some((sequence, started_ms))) => {
                Program::Sequence { sequence, started_ms, content: &content }
            }
            (Mode::Sequence, None) => Program::Idle,
            _ => stage.pattern_program(),
        };
        renderer.render(&program, t_ms, framerate, 0, out);
        Drawn { framerate, finish, error }
    }
}

fn sequence_of(stage: &Stage, selection: Selection) -> Option<&Sequence> {
    stage.sequences.get(usize::from(selection.index)).and_then(|q| q.current().as_ref())
}
