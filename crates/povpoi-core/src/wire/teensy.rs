//! The serial link to the existing Teensy 4.1 firmware (`docs/EXISTING_SYSTEM.md` section 4): the
//! commands povpoi sends, the replies it reads, and a model of the Teensy's own frame
//! parser ([`Receiver`]) for tests and tools.
//!
//! A frame is `0xFF, cmd, len, payload..., 0xFE`; for an image (`0x02`) `len` is two bytes,
//! big-endian. The Teensy does not use `len` to find the end of a frame: it ends the frame
//! at the first `0xFE` from the fourth byte on. So a `0xFE` anywhere after the start byte
//! other than the terminator cuts the frame short, and the rest of it is read as noise
//! until the next `0xFF`. [`Command::encode`] therefore never writes a `0xFE` before the
//! terminator; [`Command::to_wire`] is the command as the Teensy will receive it. The rules:
//!
//! - **Colour bytes** (pixels, pattern colours, live LEDs): 254 is sent as 253. A pixel of
//!   254 shows as 253, a difference no eye sees.
//! - **One-byte numbers** (brightness, pattern speed and type, mode, slot indexes, sequence
//!   item bytes, the legacy frame delay): 254 is sent as 253, the nearest value that is not
//!   254. Brightness 254 shows as 253, speed 254 runs as 253. For a mode or slot, 254 and
//!   253 are both slots the Teensy does not have (it has 18 patterns, 5 sequences), so it
//!   shows the same thing.
//! - **Two-byte numbers** (frame rate, sequence item durations): the nearest value neither
//!   of whose bytes is `0xFE`, ties going down. A duration of 510 ms (`0x01FE`) plays for
//!   509 ms; 65024-65151 ms (`0xFE00`-`0xFE7F`) play for 65023 ms and 65152-65279 ms for
//!   65280 ms, at most 128 ms (0.2 %) off. Frame rates 1-255 change only at 254 -> 253.
//! - **Image width 254** (`0xFE` in the little-endian width): the image is sent 255
//!   columns wide, the last column repeated. Repeating keeps every column the user drew and
//!   adds no dark gap where the picture wraps round; the one column shows a frame longer.
//! - **Image byte count** (`width * height * 3`, big-endian) with a low byte of `0xFE`: the
//!   same one repeated column, which changes the count by `3 * height` (never a multiple of
//!   256 for heights up to 64, so the low byte moves off `0xFE`).
//! - **Images too big for the count**: the count is 16 bits and a high byte of `0xFE` is not
//!   allowed, so an image of 65024 (`0xFE00`) pixel bytes or more (a 400 x 64 image is
//!   76800) is sent as its first 32 rows only. The Teensy drives one strip of 32 LEDs
//!   (section 3), so the rows dropped are rows it could never light; scaling rows down
//!   instead would alter every row it does show. Smaller images go whole.
//! - Columns past 400 and rows past 64 (the display model's limits) and sequence items
//!   past 10 are dropped; a live column is padded with black or cut to 32 LEDs.
//!
//! Sequence items are one byte each. The existing firmware reads bit 7 as the kind: set for
//! a pattern, whose slot is in the low bits ([`PATTERN_ITEM`]` | slot`), clear for an image
//! slot. The Teensy stores every uploaded image in its image slot 0 ([`IMAGE_SLOT`]), and
//! only one image is uploaded at a time, so every image item is sent as slot 0: a sequence
//! of several images shows the uploaded one (the sequence's first image) for each of them.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::model::{MAX_HEIGHT, MAX_SEQUENCE_ITEMS, MAX_WIDTH, Mode, Pattern, Rgb, Sequence, SequenceTarget};

/// First byte of every frame, both ways.
pub const START: u8 = 0xFF;
/// Last byte of every frame, both ways; never inside one.
pub const END: u8 = 0xFE;
/// Second byte of an acknowledgement from the Teensy.
pub const ACK: u8 = 0xAA;
/// Second byte of a status reply from the Teensy.
pub const STATUS: u8 = 0xBB;

/// Command `0x01`: mode and slot.
pub const SET_MODE: u8 = 0x01;
/// Command `0x02`: image upload.
pub const IMAGE: u8 = 0x02;
/// Command `0x03`: one pattern slot.
pub const PATTERN: u8 = 0x03;
/// Command `0x04`: one sequence slot.
pub const SEQUENCE: u8 = 0x04;
/// Command `0x05`: a live column.
pub const LIVE: u8 = 0x05;
/// Command `0x06`: global brightness.
pub const BRIGHTNESS: u8 = 0x06;
/// Command `0x07`: frame rate.
pub const FRAME_RATE: u8 = 0x07;
/// Command `0x10`: status request.
pub const STATUS_REQUEST: u8 = 0x10;

/// LEDs in a live column.
pub const LIVE_LEDS: usize = 32;
/// Bit 7 of a sequence item byte: the item is a pattern slot, not an image slot.
pub const PATTERN_ITEM: u8 = 0x80;
/// The Teensy's image slot that every upload lands in.
pub const IMAGE_SLOT: u8 = 0;
/// Pixel bytes from which an image is sent as its first [`CROPPED_ROWS`] rows.
pub const IMAGE_BYTES_LIMIT: usize = 0xFE00;
/// Rows kept of an image too big for one frame: the Teensy's strip.
pub const CROPPED_ROWS: u16 = 32;
/// Longest frame the [`Receiver`] holds: an image frame with the largest count.
pub const MAX_FRAME: usize = 8 + 0xFFFF + 1;

/// A one-byte number as sent: 254 becomes 253.
pub const fn safe_u8(v: u8) -> u8 {
    if v == END { END - 1 } else { v }
}

/// A two-byte number as sent: the nearest value without a `0xFE` byte, ties going down.
pub fn safe_u16(v: u16) -> u16 {
    let clean = |x: u16| !x.to_be_bytes().contains(&END);
    if clean(v) {
        return v;
    }
    // A clean value is never more than 129 away (0xFDFF and 0xFF00 bracket the 0xFExx run).
    for d in 1..=256u16 {
        if let Some(down) = v.checked_sub(d).filter(|&x| clean(x)) {
            return down;
        }
        if let Some(up) = v.checked_add(d).filter(|&x| clean(x)) {
            return up;
        }
    }
    unreachable!("every run of 0xFE bytes is shorter than 256")
}

/// A colour as sent: each channel through [`safe_u8`].
pub const fn safe_rgb(c: Rgb) -> Rgb {
    Rgb::new(safe_u8(c.r), safe_u8(c.g), safe_u8(c.b))
}

/// The size (columns, rows) an image of `width` x `height` is sent at (see the module doc).
pub fn wire_size(width: u16, height: u16) -> (u16, u16) {
    let (width, height) = (width.min(MAX_WIDTH), height.min(MAX_HEIGHT));
    let padded = |h: u16| {
        let bytes = 3 * usize::from(width) * usize::from(h);
        if width == u16::from(END) || bytes & 0xFF == usize::from(END) { width + 1 } else { width }
    };
    let fits = |w: u16, h: u16| 3 * usize::from(w) * usize::from(h) < IMAGE_BYTES_LIMIT;
    let w = padded(height);
    if fits(w, height) {
        return (w, height);
    }
    let h = height.min(CROPPED_ROWS);
    (padded(h), h)
}

/// The byte of a sequence item (see the module doc).
pub fn sequence_item(target: SequenceTarget) -> u8 {
    match target {
        SequenceTarget::Pattern(slot) => PATTERN_ITEM | slot,
        SequenceTarget::Image(_) => IMAGE_SLOT,
    }
}

/// An image as the link carries it: RGB bytes, row-major, row y drives LED y.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

impl fmt::Debug for Image {
    // Tens of kilobytes of pixels help nobody reading a failed assertion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = self.pixels.iter().fold(0u32, |s, &b| s.wrapping_mul(31).wrapping_add(u32::from(b)));
        write!(f, "Image {}x{} ({} bytes, checksum {sum:08x})", self.width, self.height, self.pixels.len())
    }
}

impl Image {
    /// The image as sent: cut or padded to [`wire_size`], colour bytes through [`safe_u8`].
    pub fn to_wire(&self) -> Image {
        let w = usize::from(self.width);
        let (ww, wh) = wire_size(self.width, self.height);
        let mut pixels = Vec::with_capacity(3 * usize::from(ww) * usize::from(wh));
        for y in 0..usize::from(wh) {
            let row = self.pixels.get(3 * y * w..3 * (y + 1) * w).unwrap_or(&[]);
            wire_pixels(0..usize::from(ww), 0, row, w, w, |pixel| pixels.extend_from_slice(&pixel));
        }
        Image { width: ww, height: wh, pixels }
    }
}

/// Widest image the Teensy plays whole: it counts columns in 8 bits (spec section 4), so
/// it would show the first 256 columns of a wider one and wrap.
pub const BOARD_MAX_COLUMNS: u16 = 256;

/// An image upload (command `0x02`) for the Teensy, written a row (or part of one) at a time, so that a
/// sender that reads the image from storage never holds it whole (a board's 256 x 32
/// frame is 24,585 bytes). An image wider than [`BOARD_MAX_COLUMNS`] is squeezed to it,
/// nearest column, so the whole picture still goes round, slightly narrower; then it is
/// sent as [`Command::image`] sends one ([`wire_size`], [`safe_u8`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFrame {
    source_width: u16,
    played_width: u16,
    width: u16,
    height: u16,
}

impl ImageFrame {
    /// The frame of an image of `width` x `height`.
    pub fn new(width: u16, height: u16) -> ImageFrame {
        let played_width = width.min(BOARD_MAX_COLUMNS);
        let (w, h) = wire_size(played_width, height);
        ImageFrame { source_width: width, played_width, width: w, height: h }
    }

    /// Rows sent: rows `0..rows()` of the image, each given to [`ImageFrame::row`].
    pub fn rows(&self) -> u16 {
        self.height
    }

    /// Columns sent.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// The image's column that sent column `x` shows (nearest column of a squeezed image,
    /// the last column for the padding): for a sender that reads a few columns at a time.
    pub fn source_column(&self, x: u16) -> u16 {
        // Below source_width, so it fits.
        column_of(usize::from(x), usize::from(self.source_width), usize::from(self.played_width)) as u16
    }

    /// The frame's first bytes: start, command, pixel byte count, width and height.
    pub fn head(&self) -> [u8; 8] {
        // Below 0xFE00 by wire_size.
        let count = (3 * usize::from(self.width) * usize::from(self.height)) as u16;
        let [c0, c1] = count.to_be_bytes();
        let [w0, w1] = self.width.to_le_bytes();
        let [h0, h1] = self.height.to_le_bytes();
        [START, IMAGE, c0, c1, w0, w1, h0, h1]
    }

    /// Appends one row's bytes, given the image's row (`3 * width` bytes, RGB).
    pub fn row(&self, source_row: &[u8], out: &mut Vec<u8>) {
        self.columns(0..self.width, source_row, |pixel| out.extend_from_slice(&pixel));
    }

    /// Gives `put` the pixels of sent columns `sent` of a row, as sent, given the row's
    /// pixels from [`ImageFrame::source_column`]`(sent.start)` on (3 bytes a pixel; pixels
    /// `span` lacks are black): for a sender that reads a few columns at a time.
    pub fn columns(&self, sent: Range<u16>, span: &[u8], put: impl FnMut([u8; 3])) {
        let first = usize::from(self.source_column(sent.start));
        let sent = usize::from(sent.start)..usize::from(sent.end);
        let (source, played) = (usize::from(self.source_width), usize::from(self.played_width));
        wire_pixels(sent, first, span, source, played, put);
    }

    /// The whole frame's length in bytes, [`END`] included.
    pub fn encoded_len(&self) -> usize {
        8 + 3 * usize::from(self.width) * usize::from(self.height) + 1
    }

    /// The whole frame of an image held in memory (`3 * width * height` bytes, RGB).
    pub fn encode(&self, pixels: &[u8], out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.head());
        let row_bytes = 3 * usize::from(self.source_width);
        for y in 0..usize::from(self.height) {
            self.row(pixels.get(y * row_bytes..(y + 1) * row_bytes).unwrap_or(&[]), out);
        }
        out.push(END);
    }
}

/// Sent columns `sent` of a row as sent ([`Image::to_wire`]), from `span`, the row's pixels from
/// column `first` on: the `played` columns taken from the `source` columns by nearest column,
/// then the last one repeated as padding ([`wire_size`]); columns the row lacks are black.
fn wire_pixels(
    sent: Range<usize>,
    first: usize,
    span: &[u8],
    source: usize,
    played: usize,
    mut put: impl FnMut([u8; 3]),
) {
    for x in sent {
        let at = 3 * (column_of(x, source, played) - first);
        let pixel = span.get(at..at + 3).unwrap_or(&[0; 3]);
        put([safe_u8(pixel[0]), safe_u8(pixel[1]), safe_u8(pixel[2])]);
    }
}

/// The `source` column that sent column `x` shows when the image plays `played` columns
/// wide: nearest column, and past the end the last one (the padding).
fn column_of(x: usize, source: usize, played: usize) -> usize {
    x.min(played.saturating_sub(1)) * source / played.max(1)
}

/// One sequence item on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    /// Bit 7 set: pattern slot in the low bits; clear: image slot.
    pub item: u8,
    /// How long, ms.
    pub duration_ms: u16,
}

/// A command to the Teensy, with its fields as raw link values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `0x01`: play `mode` (0 idle, 1 image, 2 pattern, 3 sequence, 4 live) from slot `index`.
    SetMode {
        /// Mode number.
        mode: u8,
        /// Slot.
        index: u8,
    },
    /// `0x02`: the image for image slot 0.
    Image(Image),
    /// `0x03`: one pattern slot.
    Pattern {
        /// Slot.
        slot: u8,
        /// Pattern type id.
        kind: u8,
        /// First colour.
        color1: Rgb,
        /// Second colour.
        color2: Rgb,
        /// Speed 1-255.
        speed: u8,
    },
    /// `0x04`: one sequence slot.
    Sequence {
        /// Slot.
        slot: u8,
        /// Whether it starts over after its last item.
        looped: bool,
        /// Items in play order.
        items: Vec<Item>,
    },
    /// `0x05`: a column shown as is in live mode, LED 0 first.
    Live(Vec<Rgb>),
    /// `0x06`: global brightness 0-255.
    Brightness(u8),
    /// `0x07` with two bytes: columns per second.
    FrameRate(u16),
    /// `0x07` with one byte: the frame delay in ms the old ESP32 sent; povpoi never does,
    /// the receiver decodes it for completeness.
    FrameDelay(u8),
    /// `0x10`: asks for a status reply.
    StatusRequest,
}

impl Command {
    /// `0x01` for a model mode and slot (slots past 255 saturate).
    pub fn set_mode(mode: Mode, index: u16) -> Command {
        Command::SetMode { mode: mode as u8, index: u8::try_from(index).unwrap_or(u8::MAX) }
    }

    /// `0x03` for a pattern in `slot`.
    pub fn pattern(slot: u8, p: &Pattern) -> Command {
        Command::Pattern { slot, kind: p.kind().id(), color1: p.color1(), color2: p.color2(), speed: p.speed() }
    }

    /// `0x04` for a sequence in `slot`, items as [`sequence_item`] maps them.
    pub fn sequence(slot: u8, s: &Sequence) -> Command {
        let items =
            s.items().iter().map(|i| Item { item: sequence_item(i.target), duration_ms: i.duration_ms }).collect();
        Command::Sequence { slot, looped: s.looped(), items }
    }

    /// `0x02` for an image (RGB, row-major, `width * height * 3` bytes).
    pub fn image(width: u16, height: u16, pixels: &[u8]) -> Command {
        Command::Image(Image { width, height, pixels: pixels.to_vec() })
    }

    /// `0x05` for a column (padded or cut to [`LIVE_LEDS`] when sent).
    pub fn live(column: &[Rgb]) -> Command {
        Command::Live(column.to_vec())
    }

    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Command::SetMode { .. } => SET_MODE,
            Command::Image(_) => IMAGE,
            Command::Pattern { .. } => PATTERN,
            Command::Sequence { .. } => SEQUENCE,
            Command::Live(_) => LIVE,
            Command::Brightness(_) => BRIGHTNESS,
            Command::FrameRate(_) | Command::FrameDelay(_) => FRAME_RATE,
            Command::StatusRequest => STATUS_REQUEST,
        }
    }

    /// The command as the Teensy receives it: every rule of the module doc applied.
    pub fn to_wire(&self) -> Command {
        match self {
            Command::SetMode { mode, index } => Command::SetMode { mode: safe_u8(*mode), index: safe_u8(*index) },
            Command::Image(image) => Command::Image(image.to_wire()),
            Command::Pattern { slot, kind, color1, color2, speed } => Command::Pattern {
                slot: safe_u8(*slot),
                kind: safe_u8(*kind),
                color1: safe_rgb(*color1),
                color2: safe_rgb(*color2),
                speed: safe_u8(*speed),
            },
            Command::Sequence { slot, looped, items } => Command::Sequence {
                slot: safe_u8(*slot),
                looped: *looped,
                items: items
                    .iter()
                    .take(MAX_SEQUENCE_ITEMS)
                    .map(|i| Item { item: safe_u8(i.item), duration_ms: safe_u16(i.duration_ms) })
                    .collect(),
            },
            Command::Live(column) => {
                let mut leds: Vec<Rgb> = column.iter().take(LIVE_LEDS).map(|&c| safe_rgb(c)).collect();
                leds.resize(LIVE_LEDS, Rgb::default());
                Command::Live(leds)
            }
            Command::Brightness(v) => Command::Brightness(safe_u8(*v)),
            Command::FrameRate(fps) => Command::FrameRate(safe_u16(*fps)),
            Command::FrameDelay(ms) => Command::FrameDelay(safe_u8(*ms)),
            Command::StatusRequest => Command::StatusRequest,
        }
    }

    /// Appends the frame of [`Command::to_wire`] to `out`: no `0xFE` before its last byte.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_wire().write_frame(out);
    }

    /// Bytes [`Command::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Command::Image(image) => {
                let (w, h) = wire_size(image.width, image.height);
                8 + 3 * usize::from(w) * usize::from(h) + 1
            }
            other => {
                let mut out = Vec::new();
                other.encode(&mut out);
                out.len()
            }
        }
    }

    /// The frame with the fields exactly as they are. Only [`Command::encode`] (after the
    /// rules) and the tests that show what the rules prevent call it.
    fn write_frame(&self, out: &mut Vec<u8>) {
        out.push(START);
        out.push(self.code());
        if let Command::Image(image) = self {
            // Truncating is right only after `to_wire`, which keeps the count below 0xFE00.
            out.extend_from_slice(&(image.pixels.len() as u16).to_be_bytes());
            out.extend_from_slice(&image.width.to_le_bytes());
            out.extend_from_slice(&image.height.to_le_bytes());
            out.extend_from_slice(&image.pixels);
            out.push(END);
            return;
        }
        let len_at = out.len();
        out.push(0);
        match self {
            Command::SetMode { mode, index } => out.extend_from_slice(&[*mode, *index]),
            Command::Pattern { slot, kind, color1, color2, speed } => out
                .extend_from_slice(&[*slot, *kind, color1.r, color1.g, color1.b, color2.r, color2.g, color2.b, *speed]),
            Command::Sequence { slot, looped, items } => {
                out.extend_from_slice(&[*slot, items.len() as u8, u8::from(*looped)]);
                for i in items {
                    out.push(i.item);
                    out.extend_from_slice(&i.duration_ms.to_be_bytes());
                }
            }
            Command::Live(leds) => {
                for c in leds {
                    out.extend_from_slice(&[c.r, c.g, c.b]);
                }
            }
            Command::Brightness(v) | Command::FrameDelay(v) => out.push(*v),
            Command::FrameRate(fps) => out.extend_from_slice(&fps.to_be_bytes()),
            Command::StatusRequest | Command::Image(_) => {}
        }
        // At most 96 (a live column) after `to_wire`.
        out[len_at] = (out.len() - len_at - 1) as u8;
        out.push(END);
    }
}

/// A frame the [`Receiver`] cut that does not hold the command its bytes name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The payload is not as long as the length field says: the frame was cut short by a
    /// `0xFE` inside it (the defect the rules avoid), or bytes were lost.
    Length {
        /// Command byte.
        cmd: u8,
        /// What the length field says.
        declared: usize,
        /// Payload bytes before the `0xFE` that ended the frame.
        received: usize,
    },
    /// The length matches but does not fit the command (a pattern of 8 bytes...).
    Shape {
        /// Command byte.
        cmd: u8,
    },
    /// A command byte povpoi does not send.
    Unknown {
        /// Command byte.
        cmd: u8,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Length { cmd, declared, received } => {
                write!(f, "command {cmd:#04x}: length says {declared} bytes, frame ended after {received}")
            }
            Malformed::Shape { cmd } => write!(f, "command {cmd:#04x}: payload does not fit the command"),
            Malformed::Unknown { cmd } => write!(f, "unknown command {cmd:#04x}"),
        }
    }
}

/// The Teensy firmware's parsing rules, for tests and tools: a frame starts at a `0xFF`
/// received between frames, and ends at the first `0xFE` from its fourth byte on, whatever
/// the length field says. Bytes between frames are ignored; a frame longer than
/// [`MAX_FRAME`] is dropped (the firmware resets its buffer on overflow).
#[derive(Clone, Debug, Default)]
pub struct Receiver {
    buf: Vec<u8>,
}

impl Receiver {
    /// Takes one byte; returns a frame (start and end bytes included) when it ends.
    pub fn push(&mut self, byte: u8) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            if byte == START {
                self.buf.push(byte);
            }
            return None;
        }
        self.buf.push(byte);
        if byte == END && self.buf.len() >= 4 {
            return Some(core::mem::take(&mut self.buf));
        }
        if self.buf.len() >= MAX_FRAME {
            self.buf.clear();
        }
        None
    }

    /// Takes bytes; returns each frame that ended among them, decoded.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Command, Malformed>> {
        bytes.iter().filter_map(|&b| self.push(b)).map(|frame| decode(&frame)).collect()
    }
}

/// Decodes one frame as the [`Receiver`] cut it (from `0xFF` to `0xFE`, both included).
pub fn decode(frame: &[u8]) -> Result<Command, Malformed> {
    let cmd = frame.get(1).copied().unwrap_or(0);
    if frame.len() < 4 || frame[0] != START || frame[frame.len() - 1] != END {
        return Err(Malformed::Shape { cmd });
    }
    let body = &frame[..frame.len() - 1];
    if cmd == IMAGE {
        let declared = match body.get(2..4) {
            Some(n) => usize::from(u16::from_be_bytes([n[0], n[1]])),
            None => 0,
        };
        if body.len() < 8 {
            // Cut inside the header: not one pixel arrived.
            return Err(Malformed::Length { cmd, declared, received: 0 });
        }
        let width = u16::from_le_bytes([body[4], body[5]]);
        let height = u16::from_le_bytes([body[6], body[7]]);
        let pixels = &body[8..];
        if pixels.len() != declared {
            return Err(Malformed::Length { cmd, declared, received: pixels.len() });
        }
        if declared != 3 * usize::from(width) * usize::from(height) {
            return Err(Malformed::Shape { cmd });
        }
        return Ok(Command::Image(Image { width, height, pixels: pixels.to_vec() }));
    }
    let declared = usize::from(body[2]);
    let p = &body[3..];
    if p.len() != declared {
        return Err(Malformed::Length { cmd, declared, received: p.len() });
    }
    let rgb = |b: &[u8]| Rgb::new(b[0], b[1], b[2]);
    Ok(match (cmd, p.len()) {
        (SET_MODE, 2) => Command::SetMode { mode: p[0], index: p[1] },
        (PATTERN, 9) => {
            Command::Pattern { slot: p[0], kind: p[1], color1: rgb(&p[2..5]), color2: rgb(&p[5..8]), speed: p[8] }
        }
        (SEQUENCE, n) if n >= 3 && n == 3 + 3 * usize::from(p[1]) => Command::Sequence {
            slot: p[0],
            looped: p[2] != 0,
            items: p[3..]
                .chunks_exact(3)
                .map(|i| Item { item: i[0], duration_ms: u16::from_be_bytes([i[1], i[2]]) })
                .collect(),
        },
        (LIVE, n) if n % 3 == 0 => Command::Live(p.chunks_exact(3).map(rgb).collect()),
        (BRIGHTNESS, 1) => Command::Brightness(p[0]),
        (FRAME_RATE, 2) => Command::FrameRate(u16::from_be_bytes([p[0], p[1]])),
        (FRAME_RATE, 1) => Command::FrameDelay(p[0]),
        (STATUS_REQUEST, 0) => Command::StatusRequest,
        (SET_MODE | PATTERN | SEQUENCE | LIVE | BRIGHTNESS | FRAME_RATE | STATUS_REQUEST, _) => {
            return Err(Malformed::Shape { cmd });
        }
        _ => return Err(Malformed::Unknown { cmd }),
    })
}

/// What the Teensy reports in a status reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Mode number it plays.
    pub mode: u8,
    /// Slot it plays.
    pub index: u8,
    /// Whether its SD card is in.
    pub sd_present: bool,
}

/// A reply from the Teensy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `0xFF 0xAA cmd 0xFE`: command `cmd` was taken.
    Ack(u8),
    /// `0xFF 0xBB mode index sdPresent 0xFE`.
    Status(Status),
}

impl Reply {
    /// Appends the reply's bytes (what the Teensy sends; for fake boards in tests).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ack(cmd) => out.extend_from_slice(&[START, ACK, *cmd, END]),
            Reply::Status(s) => out.extend_from_slice(&[START, STATUS, s.mode, s.index, u8::from(s.sd_present), END]),
        }
    }
}

/// Finds replies in the bytes from the Teensy, skipping anything else: its debug text if
/// it is on the same port, replies povpoi does not read (SD listings), line noise.
#[derive(Clone, Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
}

impl ReplyParser {
    /// Takes one byte; returns a reply when this byte completes one.
    pub fn push(&mut self, byte: u8) -> Option<Reply> {
        self.buf.push(byte);
        loop {
            match self.check() {
                Some(Ok(reply)) => {
                    self.buf.clear();
                    return Some(reply);
                }
                None => return None,
                Some(Err(())) => {
                    // Not a reply after all: look for another start among the bytes held.
                    let next = self.buf.iter().skip(1).position(|&b| b == START);
                    match next {
                        Some(at) => drop(self.buf.drain(..=at)),
                        None => {
                            self.buf.clear();
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// Takes bytes; returns the replies completed among them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Reply> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }

    /// `None`: need more bytes; `Some(Err)`: the held bytes are not a reply.
    fn check(&self) -> Option<Result<Reply, ()>> {
        let b = &self.buf;
        if b[0] != START {
            return Some(Err(()));
        }
        let (len, kind) = match b.get(1) {
            None => return None,
            Some(&ACK) => (4, ACK),
            Some(&STATUS) => (6, STATUS),
            Some(_) => return Some(Err(())),
        };
        if b.len() < len {
            return None;
        }
        if b[len - 1] != END {
            return Some(Err(()));
        }
        Some(Ok(if kind == ACK {
            Reply::Ack(b[2])
        } else {
            Reply::Status(Status { mode: b[2], index: b[3], sd_present: b[4] != 0 })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ReplicaId;
    use crate::model::{ImageId, PatternKind, SequenceItem};
    use alloc::vec;
    use proptest::prelude::*;

    fn roundtrip(cmd: &Command) -> Vec<Result<Command, Malformed>> {
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        assert!(!bytes[1..bytes.len() - 1].contains(&END), "0xFE inside the frame of {cmd:?}");
        assert_eq!(bytes.len(), cmd.encoded_len());
        Receiver::default().feed(&bytes)
    }

    #[test]
    fn frames_have_the_spec_bytes() {
        let mut out = Vec::new();
        Command::set_mode(Mode::Pattern, 5).encode(&mut out);
        Command::Brightness(200).encode(&mut out);
        Command::FrameRate(300).encode(&mut out);
        Command::StatusRequest.encode(&mut out);
        #[rustfmt::skip]
        let expected = [
            0xFF, 0x01, 2, 2, 5, 0xFE,
            0xFF, 0x06, 1, 200, 0xFE,
            0xFF, 0x07, 2, 0x01, 0x2C, 0xFE,
            0xFF, 0x10, 0, 0xFE,
        ];
        assert_eq!(out, expected);

        let red = Rgb::new(255, 0, 0);
        let p = Pattern::new(PatternKind::Fire, red, Rgb::new(1, 254, 3), 254).unwrap();
        out.clear();
        Command::pattern(7, &p).encode(&mut out);
        assert_eq!(out, [0xFF, 0x03, 9, 7, 4, 255, 0, 0, 1, 253, 3, 253, 0xFE]);

        let image = ImageId { origin: ReplicaId(1), seq: 2 };
        let s = Sequence::new(
            vec![
                SequenceItem { target: SequenceTarget::Pattern(3), duration_ms: 1000 },
                SequenceItem { target: SequenceTarget::Image(image), duration_ms: 510 },
            ],
            true,
        )
        .unwrap();
        out.clear();
        Command::sequence(2, &s).encode(&mut out);
        assert_eq!(out, [0xFF, 0x04, 9, 2, 2, 1, 0x83, 0x03, 0xE8, 0x00, 0x01, 0xFD, 0xFE]);

        out.clear();
        Command::image(2, 1, &[1, 2, 3, 4, 5, 254]).encode(&mut out);
        assert_eq!(out, [0xFF, 0x02, 0, 6, 2, 0, 1, 0, 1, 2, 3, 4, 5, 253, 0xFE]);

        out.clear();
        Command::live(&[Rgb::new(254, 1, 2)]).encode(&mut out);
        assert_eq!(out.len(), 3 + 96 + 1);
        assert_eq!(out[..6], [0xFF, 0x05, 96, 253, 1, 2]);
        assert!(out[6..99].iter().all(|&b| b == 0), "padded with black to 32 LEDs");
    }

    #[test]
    fn two_byte_numbers_move_to_the_nearest_clean_value() {
        assert_eq!(safe_u16(0x00FE), 0x00FD);
        assert_eq!(safe_u16(0x01FE), 0x01FD);
        assert_eq!(safe_u16(0xFE00), 0xFDFF);
        assert_eq!(safe_u16(0xFE7F), 0xFDFF);
        assert_eq!(safe_u16(0xFE80), 0xFF00);
        assert_eq!(safe_u16(0xFEFE), 0xFF00);
        assert_eq!(safe_u16(0xFFFE), 0xFFFD);
        for v in 0..=u16::MAX {
            let s = safe_u16(v);
            assert!(!s.to_be_bytes().contains(&END));
            assert!(s.abs_diff(v) <= 128, "{v:#x} -> {s:#x}");
            if v > 0 {
                assert!(s > 0, "a duration never becomes 0");
            }
        }
        assert_eq!(safe_u8(254), 253);
        assert_eq!(safe_u8(255), 255);
    }

    #[test]
    fn every_image_size_has_a_clean_header() {
        for w in 1..=MAX_WIDTH {
            for h in 1..=MAX_HEIGHT {
                let (ww, wh) = wire_size(w, h);
                let bytes = 3 * usize::from(ww) * usize::from(wh);
                assert!(bytes < IMAGE_BYTES_LIMIT, "{w}x{h}");
                let header = [(bytes as u16).to_be_bytes(), ww.to_le_bytes(), wh.to_le_bytes()];
                assert!(!header.as_flattened().contains(&END), "{w}x{h} -> {ww}x{wh}");
                assert!(ww == w || (ww == w + 1), "at most one column added: {w}x{h}");
                if 3 * usize::from(w) * usize::from(h) < IMAGE_BYTES_LIMIT {
                    assert_eq!(wh, h, "{w}x{h} fits whole");
                } else {
                    assert_eq!(wh, CROPPED_ROWS, "{w}x{h}");
                }
            }
        }
        assert_eq!(wire_size(254, 32), (255, 32));
        assert_eq!(wire_size(170, 1), (171, 1), "510 = 0x01FE bytes");
        assert_eq!(wire_size(400, 32), (400, 32));
        assert_eq!(wire_size(400, 64), (400, 32));
        assert_eq!(wire_size(339, 64), (339, 32), "65088 = 0xFE40 bytes");
        assert_eq!(wire_size(340, 64), (340, 32), "65280 bytes: over the limit too");
        assert_eq!(wire_size(338, 64), (338, 64), "64896 bytes go whole");
    }

    #[test]
    fn a_wide_image_is_padded_with_its_last_column() {
        let (w, h) = (254u16, 2u16);
        let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3).map(|i| (i % 251) as u8).collect();
        let Command::Image(sent) = Command::image(w, h, &pixels).to_wire() else { unreachable!() };
        assert_eq!((sent.width, sent.height), (255, 2));
        for y in 0..2 {
            let row = &sent.pixels[y * 255 * 3..(y + 1) * 255 * 3];
            assert_eq!(&row[..254 * 3], &pixels[y * 254 * 3..(y + 1) * 254 * 3]);
            assert_eq!(row[254 * 3..], row[253 * 3..254 * 3]);
        }
    }

    #[test]
    fn a_naive_frame_is_cut_short_by_the_teensy() {
        // The same commands without the rules: every 0xFE ends the frame where it stands.
        let mut rx = Receiver::default();
        let mut naive = Vec::new();
        Command::Brightness(254).write_frame(&mut naive);
        assert_eq!(rx.feed(&naive), [Err(Malformed::Length { cmd: BRIGHTNESS, declared: 1, received: 0 })]);

        naive.clear();
        let p = Command::Pattern { slot: 0, kind: 0, color1: Rgb::new(10, 254, 30), color2: Rgb::default(), speed: 9 };
        p.write_frame(&mut naive);
        assert_eq!(rx.feed(&naive), [Err(Malformed::Length { cmd: PATTERN, declared: 9, received: 3 })]);

        naive.clear();
        let image = Command::Image(Image { width: 2, height: 1, pixels: vec![1, 2, 3, 254, 5, 6] });
        image.write_frame(&mut naive);
        assert_eq!(rx.feed(&naive), [Err(Malformed::Length { cmd: IMAGE, declared: 6, received: 3 })]);

        // A width of 254 puts 0xFE in the fourth byte of the header.
        naive.clear();
        let wide = Command::Image(Image { width: 254, height: 1, pixels: vec![0; 762] });
        wide.write_frame(&mut naive);
        assert_eq!(rx.feed(&naive), [Err(Malformed::Length { cmd: IMAGE, declared: 762, received: 0 })]);

        // The rest of a cut frame is noise until the next start byte, and then all is well.
        let mut fixed = Vec::new();
        p.encode(&mut fixed);
        assert_eq!(rx.feed(&fixed), [Ok(p.to_wire())]);
    }

    #[test]
    fn replies_are_found_among_noise() {
        let mut bytes = b"debug text\r\n".to_vec();
        Reply::Ack(0x03).encode(&mut bytes);
        bytes.extend_from_slice(&[0xFF, 0xCC, 0, 0xFE]); // an SD listing: not read
        bytes.extend_from_slice(&[0xFF, 0xAA, 0xFF]); // a broken ack ...
        Reply::Status(Status { mode: 2, index: 5, sd_present: true }).encode(&mut bytes); // ... then a status
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xAA, 0x01, 0xFE]);
        let replies = ReplyParser::default().feed(&bytes);
        assert_eq!(
            replies,
            [Reply::Ack(0x03), Reply::Status(Status { mode: 2, index: 5, sd_present: true }), Reply::Ack(0x01)]
        );
    }

    fn rgb() -> impl Strategy<Value = Rgb> {
        // Biased towards 254 and 255 so the rules are exercised on most cases.
        let channel = prop_oneof![Just(254u8), Just(255u8), any::<u8>()];
        (channel.clone(), channel.clone(), channel).prop_map(|(r, g, b)| Rgb::new(r, g, b))
    }

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![Just(254u8), any::<u8>()]
    }

    fn word() -> impl Strategy<Value = u16> {
        prop_oneof![Just(0x00FEu16), 0xFE00u16..=0xFEFF, any::<u16>()]
    }

    fn small_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (byte(), byte()).prop_map(|(mode, index)| Command::SetMode { mode, index }),
            (byte(), byte(), rgb(), rgb(), byte()).prop_map(|(slot, kind, color1, color2, speed)| {
                Command::Pattern { slot, kind, color1, color2, speed }
            }),
            (byte(), any::<bool>(), proptest::collection::vec((byte(), word()), 0..13)).prop_map(
                |(slot, looped, items)| Command::Sequence {
                    slot,
                    looped,
                    items: items.into_iter().map(|(item, duration_ms)| Item { item, duration_ms }).collect(),
                }
            ),
            proptest::collection::vec(rgb(), 0..40).prop_map(Command::Live),
            byte().prop_map(Command::Brightness),
            word().prop_map(Command::FrameRate),
            byte().prop_map(Command::FrameDelay),
            Just(Command::StatusRequest),
        ]
    }

    /// Pixels from a seed, cheap to make at 400 x 64, a quarter of the bytes 254.
    fn pixels(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(4) { 254 } else { (x >> 8) as u8 }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn the_teensy_receives_what_the_encoder_meant(cmds in proptest::collection::vec(small_command(), 1..8)) {
            let mut bytes = Vec::new();
            for c in &cmds {
                c.encode(&mut bytes);
            }
            let got = Receiver::default().feed(&bytes);
            let meant: Vec<_> = cmds.iter().map(|c| Ok(c.to_wire())).collect();
            prop_assert_eq!(got, meant);
        }

        #[test]
        fn images_arrive_as_meant(w in 1..=MAX_WIDTH, h in 1..=MAX_HEIGHT, seed in any::<u64>()) {
            let src = pixels(3 * usize::from(w) * usize::from(h), seed);
            let cmd = Command::image(w, h, &src);
            let got = roundtrip(&cmd);
            prop_assert_eq!(&got, &[Ok(cmd.to_wire())]);
            let Ok(Command::Image(sent)) = &got[0] else { unreachable!() };
            // What arrives is the source, clamped, within the documented size rules.
            let (ww, wh) = wire_size(w, h);
            prop_assert_eq!((sent.width, sent.height), (ww, wh));
            for y in 0..usize::from(wh) {
                for x in 0..usize::from(ww) {
                    let sx = x.min(usize::from(w) - 1);
                    let s = 3 * (y * usize::from(w) + sx);
                    let d = 3 * (y * usize::from(ww) + x);
                    for c in 0..3 {
                        prop_assert_eq!(sent.pixels[d + c], safe_u8(src[s + c]));
                    }
                }
            }
        }

        #[test]
        fn an_image_frame_written_row_by_row_is_the_image_squeezed_to_the_column_counter(
            w in 1..=MAX_WIDTH, h in 1..=MAX_HEIGHT, seed in any::<u64>(),
        ) {
            let src = pixels(3 * usize::from(w) * usize::from(h), seed);
            let frame = ImageFrame::new(w, h);
            let (row_bytes, mut streamed) = (3 * usize::from(w), frame.head().to_vec());
            for y in 0..usize::from(frame.rows()) {
                frame.row(&src[y * row_bytes..(y + 1) * row_bytes], &mut streamed);
            }
            streamed.push(END);
            let mut whole = Vec::new();
            frame.encode(&src, &mut whole);
            prop_assert_eq!(&streamed, &whole);
            prop_assert_eq!(streamed.len(), frame.encoded_len());

            // The same bytes as the command of the image squeezed, nearest column, to 256.
            let played = w.min(BOARD_MAX_COLUMNS);
            let mut squeezed = Vec::new();
            for y in 0..usize::from(h) {
                for x in 0..usize::from(played) {
                    let from = 3 * (y * usize::from(w) + x * usize::from(w) / usize::from(played));
                    squeezed.extend_from_slice(&src[from..from + 3]);
                }
            }
            let mut meant = Vec::new();
            Command::image(played, h, &squeezed).encode(&mut meant);
            prop_assert_eq!(streamed, meant);
        }

        #[test]
        fn model_content_arrives_as_meant(
            kind in 0..18u8, c1 in rgb(), c2 in rgb(), speed in 1..=255u8, slot in 0..18u8,
            items in proptest::collection::vec((any::<bool>(), 0..18u8, 1..=u16::MAX), 1..=10),
            looped in any::<bool>(),
        ) {
            let p = Pattern::new(PatternKind::from_id(kind).unwrap(), c1, c2, speed).unwrap();
            let got = roundtrip(&Command::pattern(slot, &p));
            let want = Command::Pattern { slot, kind, color1: safe_rgb(c1), color2: safe_rgb(c2), speed: safe_u8(speed) };
            prop_assert_eq!(got, vec![Ok(want)]);

            let image = ImageId { origin: ReplicaId(9), seq: 1 };
            let model_items: Vec<SequenceItem> = items
                .iter()
                .map(|&(is_image, slot, d)| SequenceItem {
                    target: if is_image { SequenceTarget::Image(image) } else { SequenceTarget::Pattern(slot) },
                    duration_ms: d,
                })
                .collect();
            let s = Sequence::new(model_items, looped).unwrap();
            let got = roundtrip(&Command::sequence(4, &s));
            let Ok(Command::Sequence { slot: 4, looped: l, items: sent }) = &got[0] else {
                panic!("{got:?}")
            };
            prop_assert_eq!(*l, looped);
            prop_assert_eq!(sent.len(), items.len());
            for (i, &(is_image, slot, d)) in sent.iter().zip(&items) {
                prop_assert_eq!(i.item, if is_image { IMAGE_SLOT } else { PATTERN_ITEM | slot });
                prop_assert!(i.duration_ms.abs_diff(d) <= 128 && i.duration_ms > 0);
            }
        }
    }
}
