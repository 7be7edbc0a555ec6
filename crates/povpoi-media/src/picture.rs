//! Canonical pixels: what a poi stores and the renderer reads.

use image::{ExtendedColorType, ImageEncoder, RgbImage};
use povpoi_core::model::Rgb;
use povpoi_core::render::ImageView;

use crate::MediaError;

/// RGB bytes, row-major, first row first; row y drives LED y (LED 0 at the handle).
///
/// Any size up to 65535 x 65535 (what a `.pov` header can state); [`crate::convert()`] gives
/// pictures within the display model's 400 x 64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    width: u16,
    height: u16,
    pixels: Vec<u8>,
}

impl Picture {
    /// A picture from its size and `width * height * 3` bytes.
    pub fn new(width: u16, height: u16, pixels: Vec<u8>) -> Result<Picture, MediaError> {
        if width == 0 || height == 0 {
            return Err(MediaError::ZeroSize);
        }
        if pixels.len() != usize::from(width) * usize::from(height) * 3 {
            return Err(MediaError::DataSize {
                format: "picture",
                width: width.into(),
                height: height.into(),
                actual: pixels.len(),
            });
        }
        Ok(Picture { width, height, pixels })
    }

    /// The same pixels from an [`image::RgbImage`].
    pub fn from_rgb_image(image: RgbImage) -> Result<Picture, MediaError> {
        let (w, h) = image.dimensions();
        let too_large = || MediaError::TooLargeFor { format: "povpoi picture", width: w, height: h };
        let width = u16::try_from(w).map_err(|_| too_large())?;
        let height = u16::try_from(h).map_err(|_| too_large())?;
        Picture::new(width, height, image.into_raw())
    }

    /// Columns.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Rows, one per LED.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// The canonical bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The canonical bytes, taken out.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// The colour of column `x`, row (LED) `y`; None outside the picture.
    pub fn pixel(&self, x: u16, y: u16) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = (usize::from(y) * usize::from(self.width) + usize::from(x)) * 3;
        Some(Rgb::new(self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]))
    }

    /// The picture as the renderer reads it.
    pub fn view(&self) -> ImageView<'_> {
        ImageView { width: self.width, height: self.height, pixels: &self.pixels }
    }

    /// A copy as an [`image::RgbImage`], for further processing or other encoders.
    pub fn to_rgb_image(&self) -> RgbImage {
        RgbImage::from_raw(self.width.into(), self.height.into(), self.pixels.clone())
            .expect("Picture::new checked the length")
    }

    /// The name the upload API reads the size from: `image_WxH.rgb`.
    pub fn raw_file_name(&self) -> String {
        format!("image_{}x{}.rgb", self.width, self.height)
    }

    /// The picture as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>, MediaError> {
        encode_png(&self.pixels, self.width.into(), self.height.into())
    }
}

/// RGB bytes of a `width` x `height` picture as PNG bytes.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, width, height, ExtendedColorType::Rgb8)
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(out)
}
