//! The bytes an APA102 or SK9822 strip takes for one column.
//!
//! A frame is:
//!
//! - a start frame of 32 zero bits;
//! - per LED, 32 bits: `0b111` then the 5-bit global brightness (`0xE0 | global`), then the
//!   three colour bytes in the strip's channel order (BGR on the strips the existing
//!   system used);
//! - an end frame of zeros, [`end_frame_len`] bytes: 4 bytes, then `ceil(n / 16)` more.
//!
//! Why that end frame. Each LED re-clocks the data on the opposite clock edge, so the data
//! lags half a clock per LED and the last of `n` LEDs gets its bits only after `n / 2` more
//! clock edges (`ceil(n / 16)` bytes). An APA102 shows its colour as soon as it has it; an
//! SK9822 copies the received colour to its PWM only when it sees a 32-bit all-zero
//! "reset" frame (for an APA102 that is just another start frame), otherwise it shows each
//! column one column late, which on a poi smears the picture by one column. So the end
//! frame is the 32-bit reset frame plus the `n / 2` edges that carry it to the last LED:
//! 4 + `ceil(n / 16)` zero bytes, the sum rather than the larger of the two.
//!
//! Zeros rather than the `0xFF` bytes some drivers send: a run of ones reaching LEDs past
//! the end of the data (a longer strip than configured) reads as a full-white LED frame,
//! while zeros read as a start frame and do nothing.

use alloc::vec::Vec;

use crate::model::Rgb;
use crate::render::ColorOrder;

/// Highest 5-bit global brightness, the default: full current, brightness done in PWM.
pub const MAX_GLOBAL: u8 = 31;

/// Zero bytes after the LED data for `leds` LEDs: the SK9822 reset frame and the half
/// clock per LED that carries it to the end of the strip.
pub fn end_frame_len(leds: usize) -> usize {
    4 + leds.div_ceil(16)
}

/// Bytes in the frame for `leds` LEDs.
pub fn frame_len(leds: usize) -> usize {
    4 + 4 * leds + end_frame_len(leds)
}

/// Appends the frame for `column` (LED 0 first) to `out`; `global` is the 5-bit current
/// setting, clamped to 0-31.
pub fn encode(column: &[Rgb], order: ColorOrder, global: u8, out: &mut Vec<u8>) {
    out.reserve(frame_len(column.len()));
    out.extend_from_slice(&[0; 4]);
    let header = 0xE0 | global.min(MAX_GLOBAL);
    for &led in column {
        out.push(header);
        out.extend_from_slice(&order.arrange(led));
    }
    out.resize(out.len() + end_frame_len(column.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn three_leds_give_the_datasheet_bytes() {
        let column = [Rgb::new(0x10, 0x20, 0x30), Rgb::new(255, 0, 0), Rgb::new(0, 0, 254)];
        let mut out = vec![0xAA];
        encode(&column, ColorOrder::Bgr, MAX_GLOBAL, &mut out);
        #[rustfmt::skip]
        let expected = [
            0xAA, // what was there stays
            0x00, 0x00, 0x00, 0x00, // start frame
            0xFF, 0x30, 0x20, 0x10, // LED 0: B G R
            0xFF, 0x00, 0x00, 0xFF, // LED 1: red
            0xFF, 0xFE, 0x00, 0x00, // LED 2: blue 254 (no byte is special on SPI)
            0x00, 0x00, 0x00, 0x00, // SK9822 reset frame
            0x00, // ceil(3 / 16) byte of clock for the half-clock lag
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn order_and_global_brightness_are_applied() {
        let mut out = vec![];
        encode(&[Rgb::new(1, 2, 3)], ColorOrder::Grb, 7, &mut out);
        assert_eq!(out[4..8], [0xE7, 2, 1, 3]);
        out.clear();
        encode(&[Rgb::new(1, 2, 3)], ColorOrder::Rgb, 200, &mut out);
        assert_eq!(out[4..8], [0xFF, 1, 2, 3], "global is clamped to 31");
    }

    #[test]
    fn lengths_for_the_poi_strips() {
        // 32 LEDs: 4 start + 128 data + 4 reset + 2 (16 half clocks).
        assert_eq!(frame_len(32), 138);
        assert_eq!(end_frame_len(32), 6);
        // 144 LEDs: 4 + 576 + 4 + 9 (72 half clocks).
        assert_eq!(frame_len(144), 593);
        assert_eq!(end_frame_len(144), 13);
        assert_eq!(frame_len(0), 8);
        for n in [1, 17, 32, 64, 144] {
            let mut out = vec![];
            encode(&vec![Rgb::new(9, 9, 9); n], ColorOrder::Bgr, MAX_GLOBAL, &mut out);
            assert_eq!(out.len(), frame_len(n));
            let tail = &out[4 + 4 * n..];
            assert!(tail.iter().all(|&b| b == 0));
            assert!(tail.len() * 8 >= 32 + n / 2, "reset frame plus half a clock per LED");
        }
    }
}
