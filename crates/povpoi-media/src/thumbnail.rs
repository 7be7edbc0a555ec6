//! Small pictures of stored images for a phone's list of tiles.
//!
//! Orientation is the preview's (see [`crate::preview`]): the image as a spectator reads it
//! at the bottom of the circle, column 0 on the left, row 0 (LED 0, the handle end) on top.

use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::picture::encode_png;
use crate::{MediaError, Picture};

/// Widest thumbnail, pixels: a tile in a phone's list.
pub const THUMBNAIL_MAX_WIDTH: u32 = 160;
/// Tallest thumbnail, pixels.
pub const THUMBNAIL_MAX_HEIGHT: u32 = 64;

/// The size a `width` x `height` picture gets: fitted within `max_w` x `max_h` keeping its
/// aspect (at least 1 x 1), never enlarged, since a browser scales a small PNG up crisply
/// (`image-rendering: pixelated`) for free while enlarged pixels cost bytes.
pub fn thumbnail_size(width: u32, height: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if width <= max_w && height <= max_h {
        return (width.max(1), height.max(1));
    }
    // Compared as cross products so no float rounding picks the wrong side.
    let (w, h) = if u64::from(width) * u64::from(max_h) >= u64::from(height) * u64::from(max_w) {
        (max_w, (u64::from(height) * u64::from(max_w) / u64::from(width)) as u32)
    } else {
        ((u64::from(width) * u64::from(max_h) / u64::from(height)) as u32, max_h)
    };
    (w.max(1), h.max(1))
}

/// A PNG thumbnail of `picture` within [`THUMBNAIL_MAX_WIDTH`] x [`THUMBNAIL_MAX_HEIGHT`].
///
/// Downscaled with a triangle (linear) filter over every source pixel under a target pixel:
/// a 400-column image keeps its thin lines as softer lines instead of dropping them, as
/// nearest-neighbour would.
pub fn thumbnail_png(picture: &Picture) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (u32::from(picture.width()), u32::from(picture.height()));
    let (tw, th) = thumbnail_size(w, h, THUMBNAIL_MAX_WIDTH, THUMBNAIL_MAX_HEIGHT);
    let image = picture.to_rgb_image();
    let small: RgbImage =
        if (tw, th) == (w, h) { image } else { imageops::resize(&image, tw, th, FilterType::Triangle) };
    encode_png(small.as_raw(), tw, th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fit_the_box_keeping_the_aspect() {
        assert_eq!(thumbnail_size(400, 32, 160, 64), (160, 12));
        assert_eq!(thumbnail_size(20, 32, 160, 64), (20, 32), "never enlarged");
        assert_eq!(thumbnail_size(100, 64, 160, 64), (100, 64));
        assert_eq!(thumbnail_size(200, 128, 160, 64), (100, 64));
        assert_eq!(thumbnail_size(400, 1, 160, 64), (160, 1), "at least one pixel a side");
        assert_eq!(thumbnail_size(1, 400, 160, 64), (1, 64));
    }

    #[test]
    fn row_zero_stays_on_top() {
        // 400 x 200: the top half red (LED 0 and on), the bottom half blue.
        let mut pixels = Vec::new();
        for y in 0..200 {
            for _ in 0..400 {
                pixels.extend_from_slice(if y < 100 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let png = thumbnail_png(&Picture::new(400, 200, pixels).unwrap()).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (128, 64));
        assert_eq!(back.get_pixel(5, 0).0, [255, 0, 0]);
        assert_eq!(back.get_pixel(5, 63).0, [0, 0, 255]);
    }
}
