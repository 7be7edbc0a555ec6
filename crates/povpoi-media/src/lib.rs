#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod convert;
pub mod decode;
mod error;
mod picture;
pub mod pov;
pub mod preview;
pub mod thumbnail;

pub use convert::{ConvertOptions, Filter, Rotation, convert, convert_image};
pub use decode::{Format, decode};
pub use error::MediaError;
/// The `image` crate this one is built on, so callers encode and decode with the same version.
pub use image;
pub use picture::Picture;
pub use preview::{PreviewOptions, png_bytes, preview, preview_program};
pub use thumbnail::thumbnail_png;
