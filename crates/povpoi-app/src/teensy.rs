//! What the existing Teensy 4.1 board (spec section 4), which renders itself, is sent so
//! that it plays what this poi plays: a node's `teensy:` output and a board's UART link
//! both ask a [`Mirror`] for the next command and send it.
//!
//! On each change of the show only what the Teensy does not have yet is sent, in this
//! order: changed pattern slots (`0x03`), changed sequence slots (`0x04`), the image if it
//! changed (`0x02`, written by the caller with [`ImageFrame`], which squeezes it to the
//! Teensy's 256-column counter), brightness (`0x06`), frame rate (`0x07`), in live mode the
//! live column (`0x05`), and the mode last (`0x01`), so the Teensy switches only once what
//! it switches to is there. The Teensy has no command to empty a slot: when the mode
//! selects an empty slot (or image mode has no image), it is sent idle, which is what the
//! renderer shows for it, rather than left to play whatever it kept in that slot.
//!
//! Each command but a live column waits for the Teensy's ack ([`ack_timeout_us`]); after
//! [`MISSES_BEFORE_BLIND`] missing acks in a row the rest of a change goes without waiting,
//! so an unplugged Teensy holds the show up for a second, not a timeout per command. A
//! missing ack does not resend: the Teensy may have taken the command and lost the ack.

use alloc::vec::Vec;

use povpoi_core::hash::BlobHash;
use povpoi_core::model::{
    ImageId, MAX_WIDTH, Mode, PATTERN_SLOTS, Pattern, Rgb, SEQUENCE_SLOTS, Sequence, SequenceTarget,
};
use povpoi_core::show::Staged;
use povpoi_core::sync::{Storage, StorageError};
use povpoi_core::wire::teensy::{BOARD_MAX_COLUMNS, Command, END, IMAGE, IMAGE_SLOT, ImageFrame, sequence_item};

use crate::App;
use crate::columns::ImageAt;
use crate::sessions::AppLock;

/// The link's speed (spec section 4); 8 data bits, no parity, one stop bit.
pub const BAUD: u32 = 115_200;
/// Wait for the ack of a short command, µs.
pub const ACK_TIMEOUT_US: u64 = 500_000;
/// Missing acks in a row after which the rest of a change is sent without waiting.
pub const MISSES_BEFORE_BLIND: u32 = 2;

/// How long to wait for the ack of a command of `bytes` bytes, µs: [`ACK_TIMEOUT_US`] plus
/// one and a half times its time on the wire (10 bits a byte with start and stop bit), as
/// a USB serial adapter and the Teensy's parsing add their own delays. A 256 x 32 image
/// (24,585 bytes, 2.1 s at 115200 baud) waits 3.7 s.
pub fn ack_timeout_us(bytes: usize) -> u64 {
    let wire_us = bytes as u64 * 10 * 1_000_000 / u64::from(BAUD);
    ACK_TIMEOUT_US + wire_us * 3 / 2
}

/// Which acks one change waits for: each, until [`MISSES_BEFORE_BLIND`] are missing in a
/// row; the rest of the change then goes without waiting.
#[derive(Clone, Copy, Debug, Default)]
pub struct AckWaits {
    misses: u32,
}

impl AckWaits {
    /// Whether to wait for the next ack.
    pub fn waiting(&self) -> bool {
        self.misses < MISSES_BEFORE_BLIND
    }

    /// Records whether an ack waited for came; `true` when this miss is the one after
    /// which the change goes on without waiting.
    pub fn heard(&mut self, came: bool) -> bool {
        self.misses = if came { 0 } else { self.misses + 1 };
        self.misses == MISSES_BEFORE_BLIND
    }
}

/// A platform's pattern or sequence slots, read where they are (a board's heap has no room
/// for a copy).
pub trait Slots<T> {
    /// How many slots there are.
    fn count(&self) -> usize;
    /// Slot `i`'s content, `None` if empty.
    fn slot(&self, i: usize) -> Option<&T>;
}

impl<T> Slots<T> for Vec<Option<T>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn slot(&self, i: usize) -> Option<&T> {
        self.get(i).and_then(Option::as_ref)
    }
}

impl<T: Clone + PartialEq> Slots<T> for Vec<Staged<Option<T>>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn slot(&self, i: usize) -> Option<&T> {
        self.get(i).and_then(|s| s.current().as_ref())
    }
}

/// What plays, as the Teensy needs it. `I` is what names an image and its pixels: a node's
/// pixels in memory, a board's [`StoredImage`].
pub struct Show<'a, I> {
    /// Mode (idle, image, pattern, sequence, live).
    pub mode: Mode,
    /// Slot of the mode: image index in list order, pattern slot, sequence slot.
    pub index: u16,
    /// Global brightness, 0-255.
    pub brightness: u8,
    /// Columns per second.
    pub framerate: u16,
    /// The pattern slots.
    pub patterns: &'a dyn Slots<Pattern>,
    /// The sequence slots.
    pub sequences: &'a dyn Slots<Sequence>,
    /// The image playing (image mode), or the first image of the sequence playing whose
    /// pixels are here (the Teensy holds one image).
    pub image: Option<I>,
    /// The live column (live mode).
    pub live: Option<&'a [Rgb]>,
}

/// One command for the Teensy, and what it was sent once it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Step<I> {
    /// A pattern slot (`0x03`).
    Pattern(u8, Pattern),
    /// A sequence slot (`0x04`).
    Sequence(u8, Sequence),
    /// The image (`0x02`), which the caller writes with [`ImageFrame`].
    Image(I),
    /// Global brightness (`0x06`).
    Brightness(u8),
    /// Frame rate (`0x07`).
    FrameRate(u16),
    /// The live column (`0x05`); not acked.
    Live(Vec<Rgb>),
    /// Mode and slot (`0x01`), always last.
    Select(u8, u8),
}

impl<I> Step<I> {
    /// The command to send, `None` for an image (its frame is written row by row).
    pub fn command(&self) -> Option<Command> {
        Some(match self {
            Step::Pattern(slot, p) => Command::pattern(*slot, p),
            Step::Sequence(slot, s) => Command::sequence(*slot, s),
            Step::Image(_) => return None,
            Step::Brightness(v) => Command::Brightness(*v),
            Step::FrameRate(fps) => Command::FrameRate(*fps),
            Step::Live(column) => Command::live(column),
            Step::Select(mode, index) => Command::SetMode { mode: *mode, index: *index },
        })
    }

    /// Whether the Teensy acks it (all but a live column).
    pub fn acked(&self) -> bool {
        !matches!(self, Step::Live(_))
    }
}

/// What the Teensy was sent, so a change sends only the difference. Sequences are kept as
/// a [`fingerprint`] of what was sent of them: five of ten items each would take a board
/// 1.3 KB of heap, for good.
#[derive(Clone, Debug)]
pub struct Mirror<I> {
    patterns: Vec<Option<Pattern>>,
    sequences: Vec<Option<u64>>,
    image: Option<I>,
    brightness: Option<u8>,
    framerate: Option<u16>,
    live: Option<Vec<Rgb>>,
    selection: Option<(u8, u8)>,
}

impl<I> Default for Mirror<I> {
    fn default() -> Self {
        Mirror {
            patterns: Vec::new(),
            sequences: Vec::new(),
            image: None,
            brightness: None,
            framerate: None,
            live: None,
            selection: None,
        }
    }
}

impl<I: Clone + PartialEq> Mirror<I> {
    /// The next command `show` needs the Teensy to be sent, `None` once it has everything.
    /// Call [`Mirror::sent`] once it is sent.
    pub fn next(&self, show: &Show<'_, I>) -> Option<Step<I>> {
        for slot in 0..show.patterns.count().min(usize::from(PATTERN_SLOTS)) {
            if let Some(p) = show.patterns.slot(slot)
                && !matches!(self.patterns.get(slot), Some(Some(had)) if had == p)
            {
                return Some(Step::Pattern(slot as u8, *p));
            }
        }
        for slot in 0..show.sequences.count().min(usize::from(SEQUENCE_SLOTS)) {
            if let Some(s) = show.sequences.slot(slot)
                && self.sequences.get(slot).copied().flatten() != Some(fingerprint(s))
            {
                return Some(Step::Sequence(slot as u8, s.clone()));
            }
        }
        if let Some(image) = &show.image
            && self.image.as_ref() != Some(image)
        {
            return Some(Step::Image(image.clone()));
        }
        if self.brightness != Some(show.brightness) {
            return Some(Step::Brightness(show.brightness));
        }
        if self.framerate != Some(show.framerate) {
            return Some(Step::FrameRate(show.framerate));
        }
        if show.mode == Mode::Live {
            let column = show.live.unwrap_or_default();
            if self.live.as_deref() != Some(column) {
                return Some(Step::Live(column.to_vec()));
            }
        }
        let selection = selection(show);
        (self.selection != Some(selection)).then_some(Step::Select(selection.0, selection.1))
    }

    /// Forgets which image the Teensy has, so the next look sends it again.
    pub fn forget_image(&mut self) {
        self.image = None;
    }

    /// Records that `step` was sent (acked or not: see the module doc).
    pub fn sent(&mut self, step: Step<I>) {
        match step {
            Step::Pattern(slot, p) => set_slot(&mut self.patterns, usize::from(slot), p),
            Step::Sequence(slot, s) => set_slot(&mut self.sequences, usize::from(slot), fingerprint(&s)),
            Step::Image(image) => self.image = Some(image),
            Step::Brightness(v) => self.brightness = Some(v),
            Step::FrameRate(fps) => self.framerate = Some(fps),
            Step::Live(column) => self.live = Some(column),
            Step::Select(mode, index) => self.selection = Some((mode, index)),
        }
    }
}

/// What the Teensy is sent of a sequence, as 64 bits (FNV-1a over each item's byte and
/// duration and the loop flag): two sequences that send the same bytes need no resend.
pub fn fingerprint(sequence: &Sequence) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |byte: u8| hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    eat(u8::from(sequence.looped()));
    for item in sequence.items() {
        eat(sequence_item(item.target));
        item.duration_ms.to_be_bytes().into_iter().for_each(&mut eat);
    }
    hash
}

fn set_slot<T>(slots: &mut Vec<Option<T>>, slot: usize, value: T) {
    if slots.len() <= slot {
        slots.resize_with(slot + 1, || None);
    }
    slots[slot] = Some(value);
}

/// The mode and the Teensy's slot for it: uploads land in image slot 0; an empty slot
/// plays as idle (see the module doc).
fn selection<I>(show: &Show<'_, I>) -> (u8, u8) {
    let index = usize::from(show.index);
    let slot = u8::try_from(show.index).unwrap_or(u8::MAX);
    match show.mode {
        Mode::Image if show.image.is_some() => (Mode::Image as u8, IMAGE_SLOT),
        Mode::Pattern if show.patterns.slot(index).is_some() => (Mode::Pattern as u8, slot),
        Mode::Sequence if show.sequences.slot(index).is_some() => (Mode::Sequence as u8, slot),
        Mode::Live => (Mode::Live as u8, 0),
        _ => (Mode::Idle as u8, 0),
    }
}

/// The image the Teensy holds for what plays (it has one image slot): image mode's image
/// (`of_mode`), or else the first image of the `sequence` playing, in item order so that
/// every look picks the same one; only one whose pixels are `here`.
pub fn image_for_teensy(
    mode: Mode,
    of_mode: Option<ImageId>,
    sequence: Option<&Sequence>,
    here: impl Fn(ImageId) -> bool,
) -> Option<ImageId> {
    match mode {
        Mode::Image => of_mode.filter(|id| here(*id)),
        Mode::Sequence => sequence?.items().iter().find_map(|item| match item.target {
            SequenceTarget::Image(id) if here(id) => Some(id),
            _ => None,
        }),
        _ => None,
    }
}

/// An image whose pixels are in storage: what a board sends the Teensy, read as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// Its pixels' blob.
    pub pixels: BlobHash,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

impl StoredImage {
    /// Reads row `y`'s pixels from column `x` on into `out` (3 bytes a pixel); `false` if
    /// the pixels are not stored.
    pub fn read<S: Storage>(&self, storage: &S, x: u16, y: u16, out: &mut [u8]) -> Result<bool, StorageError> {
        let offset = (usize::from(y) * usize::from(self.width) + usize::from(x)) * 3;
        storage.read_blob_part(&self.pixels, offset, out)
    }
}

impl<S: Storage> App<S> {
    /// What shows now, for the Teensy, read where it is: the stage's current brightness,
    /// frame rate, selection and slots, and the image of image mode (by library order) or
    /// else the sequence's first image, if its pixels are stored. No live column: a board
    /// takes none.
    /// `image_at` keeps image mode's lookup between looks.
    pub fn teensy_show(&self, image_at: &mut ImageAt) -> Show<'_, StoredImage> {
        let stage = self.stage();
        let (selection, _) = *stage.selection.current();
        let replica = self.replica();
        let held =
            |id| replica.image(id).is_some_and(|meta| replica.storage().has_blob(&meta.pixels()).unwrap_or(false));
        let of_mode = if selection.mode == Mode::Image { image_at.get(self, selection.index) } else { None };
        let sequence = stage.sequences.slot(usize::from(selection.index));
        let image = image_for_teensy(selection.mode, of_mode, sequence, held)
            .and_then(|id| replica.image(id))
            .map(|meta| StoredImage { pixels: meta.pixels(), width: meta.width(), height: meta.height() });
        Show {
            mode: selection.mode,
            index: selection.index,
            brightness: *stage.brightness.current(),
            framerate: *stage.framerate.current(),
            patterns: &stage.patterns,
            sequences: &stage.sequences,
            image,
            live: None,
        }
    }
}

/// The serial link to a Teensy as a platform provides it (a board's UART).
pub trait Port {
    /// Writes `bytes` out, all of them (a link that fails logs it: the mirror goes on).
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = ()>;
    /// Forgets the acks heard so far: they answer commands whose wait is over.
    fn forget_acks(&mut self);
    /// Waits up to `timeout_us` for the ack of command `code`; whether it came.
    fn ack(&mut self, code: u8, timeout_us: u64) -> impl Future<Output = bool>;
}

/// What one [`send_changes`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Commands sent.
    pub commands: u32,
    /// Of them, acked commands whose ack did not come (or was not waited for, once
    /// [`MISSES_BEFORE_BLIND`] were missing in a row).
    pub unacked: u32,
    /// Rows of the image that storage could not give (sent black).
    pub rows_unread: u32,
}

/// What a poi that keeps its images in storage keeps between two [`send_changes`].
#[derive(Debug, Default)]
pub struct Mirroring {
    mirror: Mirror<StoredImage>,
    image_at: ImageAt,
}

/// What goes out for one step, decided under the application's lock.
enum Out {
    /// An encoded command in the frame buffer: its code, and whether the Teensy acks it.
    Frame(u8, bool),
    /// The image, read from storage as it goes.
    Image(StoredImage),
}

/// Sends the Teensy what plays on the application behind `lock` that it lacks, until it
/// lacks nothing. Each step is decided, encoded and recorded as sent under the lock; only
/// its few encoded bytes are held while they travel (an image is read as it goes), so what
/// the mirror holds on the heap across an await is that frame alone.
pub async fn send_changes<L: AppLock>(lock: &L, state: &mut Mirroring, port: &mut impl Port) -> Sent {
    let mut sent = Sent::default();
    let mut acks = AckWaits::default();
    let mut frame = Vec::new();
    loop {
        let next = lock.with(|app, _| {
            let step = state.mirror.next(&app.teensy_show(&mut state.image_at))?;
            let out = match (&step, step.command()) {
                (Step::Image(image), _) => Out::Image(*image),
                (_, Some(command)) => {
                    frame.clear();
                    command.encode(&mut frame);
                    Out::Frame(command.code(), step.acked())
                }
                (_, None) => unreachable!("only an image step has no command"),
            };
            state.mirror.sent(step);
            Some(out)
        });
        let Some(out) = next else { break };
        port.forget_acks();
        let (code, bytes, acked) = match out {
            Out::Image(image) => {
                let unread = sent.rows_unread;
                let bytes = send_image(lock, &image, port, &mut sent).await;
                // Rows went dark: send it again at the next look.
                if sent.rows_unread > unread {
                    state.mirror.forget_image();
                }
                (IMAGE, bytes, true)
            }
            Out::Frame(code, acked) => {
                port.write(&frame).await;
                (code, frame.len(), acked)
            }
        };
        sent.commands += 1;
        if acked && acks.waiting() {
            let came = port.ack(code, ack_timeout_us(bytes)).await;
            acks.heard(came);
            sent.unacked += u32::from(!came);
        } else if acked {
            // Two missed in a row: the rest of the change goes unwaited, counted unacked.
            sent.unacked += 1;
        }
    }
    sent
}

/// Sent columns an image is written in at a time.
const CHUNK: usize = 32;
/// Image columns read at a time: the most [`CHUNK`] sent columns show of an image squeezed
/// from the widest the model holds (400 columns to 256: at most 50).
const SPAN: usize = 64;
const _: () = assert!((CHUNK - 1) * MAX_WIDTH as usize / BOARD_MAX_COLUMNS as usize + 2 <= SPAN);

/// Writes the upload of `image` [`CHUNK`] columns of a row at a time, each read from
/// storage, so no part of it is held on the heap; returns the frame's length. A row storage
/// cannot give (the pixels removed meanwhile) goes black, so the Teensy still gets a whole
/// frame.
async fn send_image<L: AppLock>(lock: &L, image: &StoredImage, port: &mut impl Port, sent: &mut Sent) -> usize {
    let frame = ImageFrame::new(image.width, image.height);
    port.write(&frame.head()).await;
    let (mut span, mut out) = ([0u8; 3 * SPAN], [0u8; 3 * CHUNK]);
    let width = usize::from(frame.width());
    for y in 0..frame.rows() {
        let mut unread = false;
        for start in (0..width).step_by(CHUNK) {
            let sent = start as u16..width.min(start + CHUNK) as u16;
            let first = frame.source_column(sent.start);
            let wanted = usize::from(frame.source_column(sent.end - 1) - first + 1).min(SPAN);
            let read = lock.with(|app, _| image.read(app.replica().storage(), first, y, &mut span[..3 * wanted]));
            if read != Ok(true) {
                span.fill(0);
                unread = true;
            }
            let mut n = 0;
            frame.columns(sent, &span[..3 * wanted], |pixel| {
                out[n..n + 3].copy_from_slice(&pixel);
                n += 3;
            });
            port.write(&out[..n]).await;
        }
        sent.rows_unread += u32::from(unread);
    }
    port.write(&[END]).await;
    frame.encoded_len()
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn an_empty_slot_or_a_missing_image_plays_as_idle() {
        let empty: Vec<Option<Pattern>> = vec![None; 18];
        let mut filled = empty.clone();
        filled[3] = Some(Pattern::default());
        let sequences: Vec<Option<Sequence>> = vec![None; 5];
        let show = |mode, patterns: &Vec<Option<Pattern>>, image: Option<u8>| {
            let show = Show {
                mode,
                index: 3,
                brightness: 9,
                framerate: 50,
                patterns,
                sequences: &sequences,
                image,
                live: None,
            };
            selection(&show)
        };
        assert_eq!(show(Mode::Pattern, &empty, None), (Mode::Idle as u8, 0));
        assert_eq!(show(Mode::Pattern, &filled, None), (Mode::Pattern as u8, 3));
        assert_eq!(show(Mode::Sequence, &filled, None), (Mode::Idle as u8, 0));
        assert_eq!(show(Mode::Image, &filled, None), (Mode::Idle as u8, 0));
        assert_eq!(
            show(Mode::Image, &filled, Some(1)),
            (Mode::Image as u8, IMAGE_SLOT),
            "the upload slot, whatever the index"
        );
    }
}
