//! Where the rendered show goes: LED strips and the existing Teensy board, behind one small
//! trait, so the player does not care which it drives.
//!
//! Two kinds of output exist. A *column* output (the in-memory `sim` strip, an APA102 strip
//! on SPI) takes one finished column per frame, rendered here. A *mirroring* output (the
//! Teensy link) takes what plays, the content and settings, and lets the board render.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use povpoi_core::model::{Mode, Pattern, Rgb, Sequence};
use povpoi_core::render::ColorOrder;

pub mod apa102;
pub mod sim;
pub mod teensy;

/// What plays now and everything a mirroring output needs to play it itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Show {
    /// Mode (idle, image, pattern, sequence, live).
    pub mode: Mode,
    /// Slot of the mode: image index in list order, pattern slot, sequence slot.
    pub index: u16,
    /// Global brightness after the power mode's cap, 0-255.
    pub brightness: u8,
    /// Columns per second after the power mode's cap.
    pub framerate: u16,
    /// The 18 pattern slots.
    pub patterns: Vec<Option<Pattern>>,
    /// The 5 sequence slots.
    pub sequences: Vec<Option<Sequence>>,
    /// The image playing (mode 1), or the first image of the sequence playing.
    pub image: Option<ShowImage>,
    /// The column pushed with `/api/live` (mode 4).
    pub live: Option<Vec<Rgb>>,
}

/// An image's pixels as the display model holds them: RGB, row-major, row y drives LED y.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowImage {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// `width * height * 3` bytes.
    pub pixels: Arc<Vec<u8>>,
}

/// One place the show goes.
pub trait Output: Send {
    /// A short description for logs and `/api/status` (`sim`, `apa102 /dev/spidev0.0`...).
    fn describe(&self) -> String;

    /// Whether the player should render a column per frame for it (false for the Teensy,
    /// which renders itself).
    fn wants_columns(&self) -> bool {
        true
    }

    /// One finished column (brightness applied, and gamma except on a live column), LED 0 first.
    fn column(&mut self, column: &[Rgb]) -> std::io::Result<()>;

    /// What plays changed; a mirroring output passes it on.
    fn show_changed(&mut self, _show: &Show) -> std::io::Result<()> {
        Ok(())
    }

    /// The strip's LED count or colour order was changed (`POST /api/device/config`): the
    /// columns after this have `leds` LEDs, to be sent in `order`. A board that drives its
    /// own strip (the Teensy: 32 LEDs, its firmware's order) has nothing to change.
    fn restrip(&mut self, _leds: u16, _order: ColorOrder) {}
}

/// Which output `--output` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    /// Frames kept in memory and streamed to the web UI (`sim`).
    Sim,
    /// An APA102/SK9822 strip on a Linux SPI device (`apa102:/dev/spidev0.0`); an existing
    /// regular file gets the frames appended instead.
    Apa102 {
        /// The spidev device.
        device: PathBuf,
        /// SPI clock, Hz.
        clock_hz: u32,
        /// Channel order of the strip, when `order=` names one: stored as the poi's
        /// `colorOrder` at start; without it the stored order (BGR at first start).
        order: Option<ColorOrder>,
    },
    /// The existing Teensy 4.1 firmware on a serial port (`teensy:/dev/ttyUSB0`).
    Teensy {
        /// The serial device.
        device: PathBuf,
    },
}

impl FromStr for OutputSpec {
    type Err = String;

    /// Parses `sim`, `apa102:DEVICE[@HZ][,order=ORDER]` (8 MHz and BGR unless given) or
    /// `teensy:DEVICE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const USAGE: &str = "use sim, apa102:/dev/spidevB.C[@HZ][,order=bgr] or teensy:/dev/ttyXXX";
        if s == "sim" {
            return Ok(OutputSpec::Sim);
        }
        if let Some(rest) = s.strip_prefix("apa102:") {
            let mut parts = rest.split(',');
            let device = parts.next().unwrap_or_default();
            let (device, clock_hz) = match device.rsplit_once('@') {
                Some((device, hz)) => match hz.parse::<u32>() {
                    Ok(hz) if hz > 0 => (device, hz),
                    _ => return Err(format!("output {s:?}: the SPI clock after @ must be a positive number of Hz")),
                },
                None => (device, apa102::DEFAULT_CLOCK_HZ),
            };
            let mut order = None;
            for option in parts {
                match option.split_once('=') {
                    Some(("order", value)) => order = Some(value.parse().map_err(|e| format!("output {s:?}: {e}"))?),
                    _ => return Err(format!("output {s:?}: unknown option {option:?}; the only one is order=ORDER")),
                }
            }
            if device.is_empty() {
                return Err(format!("output {s:?} names no SPI device; {USAGE}"));
            }
            return Ok(OutputSpec::Apa102 { device: PathBuf::from(device), clock_hz, order });
        }
        if let Some(device) = s.strip_prefix("teensy:") {
            if device.is_empty() {
                return Err(format!("output {s:?} names no serial device; {USAGE}"));
            }
            return Ok(OutputSpec::Teensy { device: PathBuf::from(device) });
        }
        Err(format!("unknown output {s:?}: {USAGE}"))
    }
}

/// Why an LED output did not open: what was tried, the system's reason, what to check.
#[derive(Debug, thiserror::Error)]
pub struct OpenError {
    /// What was tried, naming the device.
    pub action: String,
    /// The system's reason.
    #[source]
    pub source: std::io::Error,
    /// What a person should check, if there is something to say.
    pub advice: Option<String>,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.action, self.source)?;
        match &self.advice {
            Some(advice) => write!(f, "; {advice}"),
            None => Ok(()),
        }
    }
}

impl OutputSpec {
    /// Opens the device for a strip of `leds` LEDs, or says what to check.
    ///
    /// `Sim` gives a fresh [`sim::SimStrip`] that nobody else holds; a caller that wants to
    /// read the frames (the node, for the web UI) makes the strip itself and keeps a clone.
    pub fn open(&self, leds: u16) -> Result<Box<dyn Output>, OpenError> {
        Ok(match self {
            OutputSpec::Sim => Box::new(sim::SimStrip::default()),
            OutputSpec::Apa102 { device, order, .. } if apa102::is_capture(device) => {
                Box::new(apa102::Apa102::open_capture(device, order.unwrap_or_default())?.for_leds(leds))
            }
            OutputSpec::Apa102 { device, clock_hz, order } => {
                Box::new(apa102::Apa102::open(device, *clock_hz, order.unwrap_or_default())?.for_leds(leds))
            }
            OutputSpec::Teensy { device } => {
                if leds != povpoi_core::render::DEFAULT_LEDS {
                    tracing::warn!(
                        leds,
                        "the Teensy renders on its own 32-LED strip; the LED count is not used for it"
                    );
                }
                Box::new(teensy::TeensyLink::open(device)?)
            }
        })
    }
}
