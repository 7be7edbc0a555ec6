//! The `apa102` output: an APA102 or SK9822 strip on a Linux SPI device, one frame per
//! column (the bytes are [`povpoi_core::wire::apa102`]'s).
//!
//! The writer is generic so tests can capture the exact bytes in a `Vec`; on a poi it is a
//! spidev device, which takes a whole frame as one SPI transfer through a plain `write()`
//! once mode, clock and word size are set. Named a regular file that already exists
//! instead, the output appends the same frames to it with no SPI set-up
//! ([`Apa102::open_capture`]): a recording of the exact bytes, and the way the benchmarks
//! run a whole node into this output without SPI hardware.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use povpoi_core::model::Rgb;
use povpoi_core::render::ColorOrder;
use povpoi_core::wire::apa102;
use spidev::{SpiModeFlags, Spidev, SpidevOptions};

use super::Output;

/// SPI clock when `--output` names none: fast enough for 144 LEDs at thousands of columns
/// per second, slow enough for the usual few-metre wire without a level shifter.
pub const DEFAULT_CLOCK_HZ: u32 = 8_000_000;

/// A strip behind any byte sink.
pub struct Apa102<W> {
    port: W,
    name: String,
    order: ColorOrder,
    global: u8,
    frame: Vec<u8>,
}

impl<W: Write> Apa102<W> {
    /// A strip written to `port`, described as `name` in logs, taking channels in `order`,
    /// at full global current.
    pub fn new(port: W, name: impl Into<String>, order: ColorOrder) -> Self {
        Apa102 { port, name: name.into(), order, global: apa102::MAX_GLOBAL, frame: Vec::new() }
    }

    /// Sets the 5-bit global current (0-31, clamped). Lower values dim the strip in
    /// hardware, keeping all 256 PWM steps for the picture; the default 31 leaves dimming
    /// to the renderer's brightness.
    pub fn with_global(mut self, global: u8) -> Self {
        self.global = global.min(apa102::MAX_GLOBAL);
        self
    }

    /// Makes room for the frames of a `leds`-LED strip now rather than at the first column.
    pub fn for_leds(mut self, leds: u16) -> Self {
        self.frame.reserve(apa102::frame_len(usize::from(leds)));
        self
    }

    /// The sink the frames go to.
    pub fn get_ref(&self) -> &W {
        &self.port
    }
}

impl Apa102<Spidev> {
    /// Opens a spidev device: SPI mode 0, `clock_hz`, 8-bit words.
    pub fn open(device: &Path, clock_hz: u32, order: ColorOrder) -> Result<Self, super::OpenError> {
        let hint = "check that SPI is enabled (on a Raspberry Pi: dtparam=spi=on in config.txt), \
                    the bus and chip-select numbers, and that this user may write the device (group spi)";
        let mut spi = Spidev::open(device).map_err(|source| super::OpenError {
            action: format!("cannot open the APA102 SPI device {}", device.display()),
            source,
            advice: Some(hint.into()),
        })?;
        let options =
            SpidevOptions::new().bits_per_word(8).max_speed_hz(clock_hz).mode(SpiModeFlags::SPI_MODE_0).build();
        spi.configure(&options).map_err(|source| super::OpenError {
            action: format!("cannot set SPI mode 0, {clock_hz} Hz, 8 bits on {}", device.display()),
            source,
            advice: Some("check that it is a spidev device and that the controller supports that clock".into()),
        })?;
        // No colour order in the description: it can change while the node runs
        // (`colorOrder` of /api/device/config says it), the description is made once.
        let name = format!("apa102 {} @ {clock_hz} Hz", device.display());
        Ok(Apa102::new(spi, name, order))
    }
}

impl Apa102<File> {
    /// Opens an existing regular file to append the frames to, as a strip would get them.
    pub fn open_capture(path: &Path, order: ColorOrder) -> Result<Self, super::OpenError> {
        let file = OpenOptions::new().append(true).open(path).map_err(|source| super::OpenError {
            action: format!("cannot open {} to write APA102 frames to", path.display()),
            source,
            advice: None,
        })?;
        let name = format!("apa102 {} (frames to a file, no SPI)", path.display());
        Ok(Apa102::new(file, name, order))
    }
}

/// Whether `path` names an existing regular file (frames captured there) rather than a
/// device (a spidev, set up for SPI). Devices, missing paths and anything unreadable go the
/// spidev way, whose errors say what to check; a FIFO too, since opening one to write
/// would hang the node's start until a reader came.
pub fn is_capture(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

impl<W: Write + Send> Output for Apa102<W> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn restrip(&mut self, leds: u16, order: ColorOrder) {
        self.order = order;
        self.frame.reserve(apa102::frame_len(usize::from(leds)));
    }

    fn column(&mut self, column: &[Rgb]) -> io::Result<()> {
        self.frame.clear();
        apa102::encode(column, self.order, self.global, &mut self.frame);
        // One write, one SPI transfer: the frame stays under spidev's 4096-byte buffer up
        // to 1000 LEDs, well past the 144 a strip may have.
        self.port.write_all(&self.frame)?;
        self.port.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_is_one_frame() {
        let mut strip = Apa102::new(Vec::new(), "test", ColorOrder::Bgr).with_global(40);
        strip.column(&[Rgb::new(1, 2, 3)]).unwrap();
        strip.column(&[Rgb::new(4, 5, 6)]).unwrap();
        let one = [0, 0, 0, 0, 0xFF, 3, 2, 1, 0, 0, 0, 0, 0];
        let two = [0, 0, 0, 0, 0xFF, 6, 5, 4, 0, 0, 0, 0, 0];
        assert_eq!(strip.get_ref()[..], [one, two].concat());
    }

    #[test]
    fn a_new_colour_order_applies_from_the_next_column() {
        let mut strip = Apa102::new(Vec::new(), "apa102 test", ColorOrder::Bgr).with_global(31);
        strip.column(&[Rgb::new(1, 2, 3)]).unwrap();
        strip.restrip(1, ColorOrder::Grb);
        strip.column(&[Rgb::new(1, 2, 3)]).unwrap();
        let bgr = [0, 0, 0, 0, 0xFF, 3, 2, 1, 0, 0, 0, 0, 0];
        let grb = [0, 0, 0, 0, 0xFF, 2, 1, 3, 0, 0, 0, 0, 0];
        assert_eq!(strip.get_ref()[..], [bgr, grb].concat());
    }
}
