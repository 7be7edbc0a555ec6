//! The serial link to the existing Teensy 4.1 firmware (`docs/EXISTING_SYSTEM.md` §4): the
//! UART under the shared mirror ([`povpoi_app::teensy::send_changes`], which decides what
//! the Teensy is sent and when to wait for its ack, as on a node), and the reader of its
//! replies.
//!
//! Wiring (docs/FIRMWARE.md): UART1, 115200 baud 8N1 as the spec says; TX GPIO4 / RX GPIO5 on
//! the C3, TX GPIO18 / RX GPIO19 on the C6; both boards are 3.3 V, so no level shifter, and a
//! common ground.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Timer, with_timeout};
use esp_hal::Async;
use esp_hal::uart::{UartRx, UartTx};
use povpoi_app::sessions::AppLock;
use povpoi_app::teensy::{Mirroring, Port, send_changes};
use povpoi_core::wire::teensy::{Command, Reply, ReplyParser};

pub use povpoi_app::teensy::BAUD;

/// How often the mirror looks for a change of what plays: a cue reaches the Teensy at most
/// this late (plus its time on the wire).
const LOOK_EVERY: Duration = Duration::from_millis(20);
/// Between status requests to a Teensy that has not answered yet.
const ASK_EVERY: Duration = Duration::from_secs(10);

/// Acks read from the Teensy, for the mirror waiting for one (older ones are dropped).
static ACKS: Channel<CriticalSectionRawMutex, u8, 4> = Channel::new();
/// Set at the Teensy's first reply: from then on it is mirrored.
static HEARD: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// The sending half of the link.
pub struct TeensyLink {
    tx: UartTx<'static, Async>,
}

impl TeensyLink {
    /// The link on `tx` (configured for [`BAUD`], 8N1).
    pub fn new(tx: UartTx<'static, Async>) -> Self {
        TeensyLink { tx }
    }
}

impl Port for TeensyLink {
    async fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.tx.write_async(bytes).await {
                Ok(n) => bytes = &bytes[n..],
                Err(e) => {
                    log::warn!("Teensy link: write failed: {e:?}");
                    return;
                }
            }
        }
        if let Err(e) = self.tx.flush_async().await {
            log::warn!("Teensy link: flush failed: {e:?}");
        }
    }

    fn forget_acks(&mut self) {
        ACKS.clear();
    }

    async fn ack(&mut self, code: u8, timeout_us: u64) -> bool {
        let wanted = async { while ACKS.receive().await != code {} };
        with_timeout(Duration::from_micros(timeout_us), wanted).await.is_ok()
    }
}

/// Asks the Teensy for its status: its answer shows in the log, and starts the mirror.
pub async fn ask(link: &mut TeensyLink) {
    let mut frame = alloc::vec::Vec::new();
    Command::StatusRequest.encode(&mut frame);
    link.write(&frame).await;
}

/// Mirrors what plays on `app` to the Teensy for as long as the poi runs, once one answers
/// a status request (the first asked at start, by `main`, then every 10 s until one
/// answers): a board with no Teensy wired sends nothing more.
pub async fn mirror(app: &impl AppLock, mut link: TeensyLink) -> ! {
    while with_timeout(ASK_EVERY, HEARD.wait()).await.is_err() {
        ask(&mut link).await;
    }
    log::info!("Teensy: answering; mirroring what plays to it");
    let mut mirror = Mirroring::default();
    loop {
        let sent = send_changes(app, &mut mirror, &mut link).await;
        if sent.commands > 0 {
            log::info!("Teensy: sent {} commands, {} without an ack", sent.commands, sent.unacked);
        }
        if sent.rows_unread > 0 {
            log::warn!("Teensy: {} image rows could not be read from the flash; sent dark", sent.rows_unread);
        }
        Timer::after(LOOK_EVERY).await;
    }
}

/// Reads the Teensy's replies for as long as the poi runs: acks go to the mirror, a status
/// is logged, and the first reply of any kind starts the mirror.
pub async fn read_replies(mut rx: UartRx<'static, Async>) -> ! {
    let mut parser = ReplyParser::default();
    let mut buf = [0u8; 64];
    loop {
        match rx.read_async(&mut buf).await {
            Ok(n) => {
                for reply in parser.feed(&buf[..n]) {
                    HEARD.signal(());
                    match reply {
                        Reply::Ack(code) => {
                            // Full: the mirror is not waiting; the oldest ack is the stalest.
                            if ACKS.try_send(code).is_err() {
                                let _ = ACKS.try_receive();
                                let _ = ACKS.try_send(code);
                            }
                        }
                        Reply::Status(status) => log::info!("Teensy: {status:?}"),
                    }
                }
            }
            Err(e) => log::warn!("Teensy link: read failed: {e:?}"),
        }
    }
}
