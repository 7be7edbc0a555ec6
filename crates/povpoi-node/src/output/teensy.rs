//! The `teensy` output: the existing Teensy 4.1 board on a serial port, told what plays and
//! left to render it itself (a mirroring output).
//!
//! On each change of the show it sends only what the board does not have yet, in this
//! order: changed pattern slots (`0x03`), changed sequence slots (`0x04`), the image if it
//! changed (`0x02`), brightness (`0x06`), frame rate (`0x07`), in live mode the live column
//! (`0x05`), and the mode last (`0x01`), so the board switches only once what it switches
//! to is there. The bytes, and how they dodge the board's `0xFE` defect, are
//! [`povpoi_core::wire::teensy`]'s.
//!
//! Each command waits for the board's ack, 500 ms plus one and a half times the command's
//! time on the wire. Images go at most 256 columns wide (see below), so a 400 x 32 image is
//! sent as 256 x 32: 24,585 bytes, 2.1 s at 115200 baud, a 3.7 s wait; the largest upload,
//! 256 x 64, is 49,161 bytes, 4.3 s, a 6.9 s wait. A missing ack is logged and the link
//! goes on: the board may have taken the command and lost the ack, and the next change
//! resends nothing that the board was already sent. After two missing acks in a row the
//! rest of that change is sent without waiting, so an unplugged board holds the player up
//! for a second, not for a timeout per command. Live columns are not waited for: the
//! firmware does not ack them, and waiting would cap a live stream at a couple of columns
//! a second.
//!
//! The board counts columns in 8 bits (spec section 4), so it would show only the first 256
//! columns of a wider image and wrap: an image wider than 256 columns is sent squeezed to 256
//! (nearest column), so the whole picture still goes round, slightly narrower.
//!
//! The board has no command to empty a slot. When the mode selects an empty slot (or image
//! mode has no image), the link sends idle, which is what the renderer shows for it,
//! instead of letting the board play whatever it kept in that slot.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{self, BaudRate, ControlFlags, FlushArg, InputFlags, SetArg, SpecialCharacterIndices};
use povpoi_core::model::{Mode, PATTERN_SLOTS, Pattern, Rgb, SEQUENCE_SLOTS, Sequence};
use povpoi_core::wire::teensy::{Command, IMAGE_SLOT, Reply, ReplyParser, Status};

use super::{Output, Show, ShowImage};

/// The link's speed; 8 data bits, no parity, one stop bit.
pub const BAUD: u32 = 115_200;
/// Wait for the ack of a short command.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(500);
/// Missing acks in a row after which the rest of a change is sent without waiting.
const MISSES_BEFORE_BLIND: u32 = 2;

/// How long to wait for the ack of a command of `bytes` bytes: [`ACK_TIMEOUT`] plus one
/// and a half times its time on the wire (10 bits a byte with start and stop bit), since
/// a USB serial adapter and the board's parsing add their own delays.
pub fn ack_timeout(bytes: usize) -> Duration {
    let wire_us = bytes as u64 * 10 * 1_000_000 / u64::from(BAUD);
    ACK_TIMEOUT + Duration::from_micros(wire_us * 3 / 2)
}

/// The board on a serial port, or any byte stream that stands in for one. Reads must
/// return (with 0 bytes, `WouldBlock` or `TimedOut`) within a short time when nothing
/// arrives; [`TeensyLink::open`] sets a tty up that way.
pub struct TeensyLink<P> {
    port: P,
    name: String,
    parser: ReplyParser,
    replies: VecDeque<Reply>,
    board: Board,
    misses: u32,
}

/// What the board was sent, so a change sends only the difference.
#[derive(Default)]
struct Board {
    patterns: Vec<Option<Pattern>>,
    sequences: Vec<Option<Sequence>>,
    image: Option<ShowImage>,
    brightness: Option<u8>,
    framerate: Option<u16>,
    live: Option<Vec<Rgb>>,
    selection: Option<(u8, u8)>,
}

impl TeensyLink<File> {
    /// Opens a serial device and sets it to raw 115200 8N1.
    pub fn open(device: &Path) -> Result<Self, super::OpenError> {
        let hint = "check the device name (ls /dev/ttyACM* /dev/ttyUSB*), that the board is plugged in, \
                    and that this user may use it (group dialout)";
        // Non-blocking only for the open itself: a port that waits for carrier would hang it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(device)
            .map_err(|source| super::OpenError {
                action: format!("cannot open the Teensy serial port {}", device.display()),
                source,
                advice: Some(hint.into()),
            })?;
        configure(&file).map_err(|e| super::OpenError {
            action: format!("cannot set {} to raw {BAUD} baud 8N1", device.display()),
            source: e.into(),
            advice: Some(format!("is it a serial port? {hint}")),
        })?;
        Ok(TeensyLink::new(file, format!("teensy {}", device.display())))
    }
}

/// Raw 115200 8N1, no flow control, reads that give up after 100 ms, blocking writes.
fn configure(file: &File) -> nix::Result<()> {
    let mut t = termios::tcgetattr(file)?;
    termios::cfmakeraw(&mut t);
    termios::cfsetspeed(&mut t, BaudRate::B115200)?;
    t.control_flags &= !(ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::CSTOPB | ControlFlags::CRTSCTS);
    t.control_flags |= ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD;
    // Software flow control would swallow the bytes 0x11 and 0x13 of pixels.
    t.input_flags &= !(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 1;
    termios::tcsetattr(file, SetArg::TCSANOW, &t)?;
    // Whatever the board said before anyone listened (its boot text) is not a reply.
    termios::tcflush(file, FlushArg::TCIFLUSH)?;
    fcntl(file, FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(())
}

impl<P: Read + Write> TeensyLink<P> {
    /// A link over `port`, described as `name` in logs.
    pub fn new(port: P, name: impl Into<String>) -> Self {
        TeensyLink {
            port,
            name: name.into(),
            parser: ReplyParser::default(),
            replies: VecDeque::new(),
            board: Board::default(),
            misses: 0,
        }
    }

    /// Asks the board what it plays; `None` if it does not answer within [`ACK_TIMEOUT`].
    pub fn status(&mut self) -> io::Result<Option<Status>> {
        self.write(&Command::StatusRequest)?;
        let reply = self.wait_for(Instant::now() + ACK_TIMEOUT, |r| matches!(r, Reply::Status(_)))?;
        Ok(reply.and_then(|r| match r {
            Reply::Status(s) => Some(s),
            Reply::Ack(_) => None,
        }))
    }

    /// Sends what of `show` the board does not have yet.
    pub fn mirror(&mut self, show: &Show) -> io::Result<()> {
        self.misses = 0;
        for (slot, pattern) in show.patterns.iter().enumerate().take(usize::from(PATTERN_SLOTS)) {
            if let Some(p) = pattern
                && !matches!(self.board.patterns.get(slot), Some(Some(had)) if had == p)
            {
                self.send(&Command::pattern(slot as u8, p))?;
                set_slot(&mut self.board.patterns, slot, *p);
            }
        }
        for (slot, sequence) in show.sequences.iter().enumerate().take(usize::from(SEQUENCE_SLOTS)) {
            if let Some(s) = sequence
                && !matches!(self.board.sequences.get(slot), Some(Some(had)) if had == s)
            {
                self.send(&Command::sequence(slot as u8, s))?;
                set_slot(&mut self.board.sequences, slot, s.clone());
            }
        }
        if let Some(image) = &show.image
            && !self.board.image.as_ref().is_some_and(|had| same_image(had, image))
        {
            let (width, pixels) = fit_column_counter(image);
            self.send(&Command::image(width, image.height, &pixels))?;
            self.board.image = Some(image.clone());
        }
        if self.board.brightness != Some(show.brightness) {
            self.send(&Command::Brightness(show.brightness))?;
            self.board.brightness = Some(show.brightness);
        }
        if self.board.framerate != Some(show.framerate) {
            self.send(&Command::FrameRate(show.framerate))?;
            self.board.framerate = Some(show.framerate);
        }
        if show.mode == Mode::Live {
            let column = show.live.clone().unwrap_or_default();
            if self.board.live.as_ref() != Some(&column) {
                self.send(&Command::live(&column))?;
                self.board.live = Some(column);
            }
        }
        let selection = selection(show);
        if self.board.selection != Some(selection) {
            self.send(&Command::SetMode { mode: selection.0, index: selection.1 })?;
            self.board.selection = Some(selection);
        }
        Ok(())
    }

    /// Writes one command and, unless it is a live column, waits for its ack.
    fn send(&mut self, command: &Command) -> io::Result<()> {
        let len = self.write(command)?;
        if matches!(command, Command::Live(_)) {
            return Ok(());
        }
        if self.misses >= MISSES_BEFORE_BLIND {
            return Ok(());
        }
        let code = command.code();
        let deadline = Instant::now() + ack_timeout(len);
        if self.wait_for(deadline, |r| *r == Reply::Ack(code))?.is_some() {
            self.misses = 0;
            return Ok(());
        }
        self.misses += 1;
        if self.misses == MISSES_BEFORE_BLIND {
            tracing::warn!(output = %self.name, "the Teensy is not answering; sending the rest of this change without waiting");
        } else {
            tracing::warn!(output = %self.name, command = format_args!("{code:#04x}"), "no ack from the Teensy");
        }
        Ok(())
    }

    /// Writes one command; returns its length in bytes.
    fn write(&mut self, command: &Command) -> io::Result<usize> {
        let mut frame = Vec::with_capacity(command.encoded_len());
        command.encode(&mut frame);
        self.port.write_all(&frame)?;
        self.port.flush()?;
        Ok(frame.len())
    }

    /// Reads until a reply `wanted` accepts arrives or `deadline` passes. Other replies are
    /// dropped: they answer commands whose wait is over.
    fn wait_for(&mut self, deadline: Instant, wanted: impl Fn(&Reply) -> bool) -> io::Result<Option<Reply>> {
        let mut buf = [0u8; 256];
        loop {
            while let Some(reply) = self.replies.pop_front() {
                if wanted(&reply) {
                    return Ok(Some(reply));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.port.read(&mut buf) {
                // A tty with VTIME has already waited; this is for streams that do not.
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    for &b in &buf[..n] {
                        if let Some(reply) = self.parser.push(b) {
                            self.replies.push_back(reply);
                        }
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<P: Read + Write + Send> Output for TeensyLink<P> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn wants_columns(&self) -> bool {
        false
    }

    fn column(&mut self, _column: &[Rgb]) -> io::Result<()> {
        Ok(())
    }

    fn show_changed(&mut self, show: &Show) -> io::Result<()> {
        self.mirror(show)
    }
}

fn set_slot<T>(slots: &mut Vec<Option<T>>, slot: usize, value: T) {
    if slots.len() <= slot {
        slots.resize_with(slot + 1, || None);
    }
    slots[slot] = Some(value);
}

/// Whether two images are the same picture; the pointer check spares comparing 77 KB of
/// pixels on every change of brightness.
fn same_image(a: &ShowImage, b: &ShowImage) -> bool {
    a.width == b.width && a.height == b.height && (Arc::ptr_eq(&a.pixels, &b.pixels) || a.pixels == b.pixels)
}

/// The mode and the board's slot for it: uploads land in image slot 0; an empty slot
/// plays as idle (see the module doc).
fn selection(show: &Show) -> (u8, u8) {
    let index = usize::from(show.index);
    let slot = u8::try_from(show.index).unwrap_or(u8::MAX);
    match show.mode {
        Mode::Image if show.image.is_some() => (Mode::Image as u8, IMAGE_SLOT),
        Mode::Pattern if matches!(show.patterns.get(index), Some(Some(_))) => (Mode::Pattern as u8, slot),
        Mode::Sequence if matches!(show.sequences.get(index), Some(Some(_))) => (Mode::Sequence as u8, slot),
        Mode::Live => (Mode::Live as u8, 0),
        _ => (Mode::Idle as u8, 0),
    }
}

/// Widest image the board's 8-bit column counter plays whole.
pub const BOARD_MAX_COLUMNS: u16 = 256;

/// The image's width and pixels as the board can play them: squeezed to
/// [`BOARD_MAX_COLUMNS`] by taking the nearest column when wider.
fn fit_column_counter(image: &ShowImage) -> (u16, Vec<u8>) {
    let (w, h) = (usize::from(image.width), usize::from(image.height));
    if image.width <= BOARD_MAX_COLUMNS {
        return (image.width, image.pixels.to_vec());
    }
    let target = usize::from(BOARD_MAX_COLUMNS);
    let mut out = Vec::with_capacity(target * h * 3);
    for y in 0..h {
        for x in 0..target {
            let from = (y * w + x * w / target) * 3;
            out.extend_from_slice(image.pixels.get(from..from + 3).unwrap_or(&[0, 0, 0]));
        }
    }
    (BOARD_MAX_COLUMNS, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_grow_with_the_command() {
        assert_eq!(ack_timeout(0), ACK_TIMEOUT);
        // A 400 x 32 image goes as 256 x 32: 24,585 bytes, 2.13 s on the wire.
        let image = ack_timeout(8 + 256 * 32 * 3 + 1);
        assert!(image > Duration::from_millis(3690) && image < Duration::from_millis(3710), "{image:?}");
        // The largest upload, 256 x 64: 49,161 bytes, 4.27 s.
        let largest = ack_timeout(8 + 256 * 64 * 3 + 1);
        assert!(largest > Duration::from_millis(6890) && largest < Duration::from_millis(6910), "{largest:?}");
    }

    #[test]
    fn empty_slots_play_as_idle() {
        let mut show = Show { mode: Mode::Pattern, index: 3, patterns: vec![None; 18], ..Show::default() };
        assert_eq!(selection(&show), (0, 0));
        show.patterns[3] = Some(Pattern::default());
        assert_eq!(selection(&show), (2, 3));
        show.mode = Mode::Image;
        assert_eq!(selection(&show), (0, 0));
        show.image = Some(ShowImage { width: 1, height: 1, pixels: Arc::new(vec![0; 3]) });
        assert_eq!(selection(&show), (1, IMAGE_SLOT), "the upload slot, whatever the list index");
    }
}
