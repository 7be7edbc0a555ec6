//! The serial link to the existing Teensy 4.1 firmware (`docs/EXISTING_SYSTEM.md` §4), fed
//! with `povpoi_core::wire::teensy` encodings (which keep 0xFE out of every payload).
//!
//! Wiring (docs/FIRMWARE.md): UART1, 115200 baud 8N1 as the spec says; TX GPIO4 / RX GPIO5 on
//! the C3, TX GPIO18 / RX GPIO19 on the C6; both boards are 3.3 V, so no level shifter, and a
//! common ground.

use alloc::vec::Vec;

use esp_hal::Async;
use esp_hal::uart::{UartRx, UartTx};
use povpoi_core::wire::teensy::{Command, ReplyParser};

/// The link's speed, from the spec.
pub const BAUD: u32 = 115_200;

/// The sending half: encodes commands and writes them out.
pub struct TeensyLink {
    tx: UartTx<'static, Async>,
    frame: Vec<u8>,
}

impl TeensyLink {
    /// The link on `tx` (configured for [`BAUD`], 8N1).
    pub fn new(tx: UartTx<'static, Async>) -> Self {
        TeensyLink { tx, frame: Vec::new() }
    }

    /// Sends one command as the Teensy will receive it ([`Command::to_wire`]).
    pub async fn send(&mut self, command: &Command) {
        self.frame.clear();
        command.encode(&mut self.frame);
        let mut rest = self.frame.as_slice();
        while !rest.is_empty() {
            match self.tx.write_async(rest).await {
                Ok(n) => rest = &rest[n..],
                Err(e) => {
                    log::warn!("Teensy link: write failed: {e:?}");
                    return;
                }
            }
        }
        if let Err(e) = self.tx.flush_async().await {
            log::warn!("Teensy link: flush failed: {e:?}");
        }
        // An image is the only large frame; keep the memory for the next one only if small.
        if self.frame.capacity() > 1024 {
            self.frame = Vec::new();
        }
    }
}

/// Reads the Teensy's replies (acks, status) and logs them, for as long as the poi runs.
pub async fn log_replies(mut rx: UartRx<'static, Async>) -> ! {
    let mut parser = ReplyParser::default();
    let mut buf = [0u8; 64];
    loop {
        match rx.read_async(&mut buf).await {
            Ok(n) => {
                for reply in parser.feed(&buf[..n]) {
                    log::info!("Teensy: {reply:?}");
                }
            }
            Err(e) => log::warn!("Teensy link: read failed: {e:?}"),
        }
    }
}
