//! The APA102 / SK9822 strip on SPI with DMA, fed with `povpoi_core::wire::apa102` frames.
//!
//! Wiring (docs/FIRMWARE.md): SPI2 clock on GPIO6, data (MOSI) on GPIO7, on both the C3 and
//! the C6 (those are the SPI2 pins of the IO MUX on both chips, so no GPIO-matrix delay),
//! through a 5 V level shifter to the strip's CI and DI.

use alloc::vec::Vec;

use esp_hal::Async;
use esp_hal::spi::master::SpiDma;
use povpoi_core::model::Rgb;
use povpoi_core::render::{ColorOrder, MAX_LEDS};
use povpoi_core::wire::apa102;

/// The SPI clock. 8 MHz moves a 144-LED frame (594 bytes) in 0.6 ms, far inside the 4 ms of a
/// 250 fps column, and is slow enough for a metre of ribbon cable and a level shifter.
pub const CLOCK_HZ: u32 = 8_000_000;

/// The largest frame: [`MAX_LEDS`] LEDs, which sizes the DMA buffer.
pub const MAX_FRAME_BYTES: usize = 4 + 4 * MAX_LEDS as usize + 4 + (MAX_LEDS as usize).div_ceil(16);

/// One strip: the SPI bus and the frame being built, kept between columns so no column allocates.
pub struct Apa102 {
    spi: SpiDma<'static, Async>,
    frame: Vec<u8>,
}

impl Apa102 {
    /// The strip on `spi` (configured for [`CLOCK_HZ`], mode 0, with DMA buffers of at least
    /// [`MAX_FRAME_BYTES`]).
    pub fn new(spi: SpiDma<'static, Async>) -> Self {
        Apa102 { spi, frame: Vec::with_capacity(MAX_FRAME_BYTES) }
    }

    /// Sends one column (LED 0 first) at full 5-bit current; brightness is already in the colours.
    pub async fn show(&mut self, column: &[Rgb], order: ColorOrder) {
        self.frame.clear();
        apa102::encode(column, order, apa102::MAX_GLOBAL, &mut self.frame);
        if let Err(e) = self.spi.write_async(&self.frame).await {
            log::warn!("APA102 frame not sent: {e:?}");
        }
    }
}
