//! The `teensy` output: the existing Teensy 4.1 board on a serial port, told what plays and
//! left to render it itself (a mirroring output).
//!
//! What to send, in which order, and when to wait for an ack are the shared rules of
//! [`povpoi_app::teensy`] (a board's UART link follows them too); this is the serial port
//! and the waiting. The bytes, and how they dodge the board's `0xFE` defect, are
//! [`povpoi_core::wire::teensy`]'s: images go at most 256 columns wide, squeezed
//! ([`ImageFrame`]), so a 400 x 32 image is sent as 256 x 32: 24,585 bytes, 2.1 s at 115200
//! baud, a 3.7 s wait; the largest upload, 256 x 64, is 49,161 bytes, 4.3 s, a 6.9 s wait.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{self, BaudRate, ControlFlags, FlushArg, InputFlags, SetArg, SpecialCharacterIndices};
use povpoi_app::teensy::{ACK_TIMEOUT_US, AckWaits, Mirror, Port, Step, ack_timeout_us};
use povpoi_core::model::Rgb;
use povpoi_core::wire::teensy::{Command, ImageFrame, Reply, ReplyParser, Status};

use super::{Output, Show, ShowImage};

pub use povpoi_app::teensy::BAUD;
/// Wait for the ack of a short command.
pub const ACK_TIMEOUT: Duration = Duration::from_micros(ACK_TIMEOUT_US);

/// The board on a serial port, or any byte stream that stands in for one. Reads must
/// return (with 0 bytes, `WouldBlock` or `TimedOut`) within a short time when nothing
/// arrives; [`TeensyLink::open`] sets a tty up that way.
pub struct TeensyLink<P> {
    port: P,
    name: String,
    parser: ReplyParser,
    replies: VecDeque<Reply>,
    board: Mirror<ShowImage>,
    acks: AckWaits,
}

impl TeensyLink<File> {
    /// Opens a serial device and sets it to raw 115200 8N1.
    pub fn open(device: &Path) -> Result<Self, super::OpenError> {
        Ok(TeensyLink::new(open_port(device)?, format!("teensy {}", device.display())))
    }
}

/// Opens the serial device a Teensy is on, raw 115200 8N1, with reads that give up after
/// 100 ms (`povpoi board --teensy` mirrors through it too).
pub fn open_port(device: &Path) -> Result<File, super::OpenError> {
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
    Ok(file)
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
            board: Mirror::default(),
            acks: AckWaits::default(),
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
        self.acks = AckWaits::default();
        let show = povpoi_app::teensy::Show {
            mode: show.mode,
            index: show.index,
            brightness: show.brightness,
            framerate: show.framerate,
            patterns: &show.patterns,
            sequences: &show.sequences,
            image: show.image.clone(),
            live: show.live.as_deref(),
        };
        while let Some(step) = self.board.next(&show) {
            let mut frame = Vec::new();
            let code = match (&step, step.command()) {
                (Step::Image(image), _) => {
                    ImageFrame::new(image.width, image.height).encode(&image.pixels, &mut frame);
                    povpoi_core::wire::teensy::IMAGE
                }
                (_, Some(command)) => {
                    command.encode(&mut frame);
                    command.code()
                }
                (_, None) => unreachable!("only an image step has no command"),
            };
            self.send(&frame, code, step.acked())?;
            self.board.sent(step);
        }
        Ok(())
    }

    /// Writes one frame and, if the board acks its command, waits for the ack.
    fn send(&mut self, frame: &[u8], code: u8, acked: bool) -> io::Result<()> {
        self.port.write_all(frame)?;
        self.port.flush()?;
        if !acked || !self.acks.waiting() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_micros(ack_timeout_us(frame.len()));
        let came = self.wait_for(deadline, |r| *r == Reply::Ack(code))?.is_some();
        if self.acks.heard(came) {
            tracing::warn!(output = %self.name, "the Teensy is not answering; sending the rest of this change without waiting");
        } else if !came {
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

/// The link under the shared application's mirror ([`povpoi_app::teensy::send_changes`]),
/// as `povpoi board --teensy` runs it: the board firmware's UART, on this machine.
impl<P: Read + Write> Port for TeensyLink<P> {
    async fn write(&mut self, bytes: &[u8]) {
        let written = self.port.write_all(bytes).and_then(|()| self.port.flush());
        if let Err(e) = written {
            tracing::warn!(output = %self.name, "write failed: {e}");
        }
    }

    fn forget_acks(&mut self) {
        self.replies.clear();
    }

    /// Blocks the thread while it waits: run it on a thread of its own.
    async fn ack(&mut self, code: u8, timeout_us: u64) -> bool {
        let deadline = Instant::now() + Duration::from_micros(timeout_us);
        matches!(self.wait_for(deadline, |r| *r == Reply::Ack(code)), Ok(Some(_)))
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
