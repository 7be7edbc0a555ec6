//! Pictures in every supported format, generated here with the `image` crate's encoders,
//! through decode, convert, `.pov` and preview.

use std::f64::consts::TAU;
use std::io::Cursor;

use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::Finish;
use povpoi_media::image::{self, ImageFormat, RgbImage, Rgba, RgbaImage};
use povpoi_media::preview::preview_pattern;
use povpoi_media::{
    ConvertOptions, Filter, Format, MediaError, Picture, PreviewOptions, Rotation, convert, decode, pov,
    preview_program,
};

/// A picture whose every pixel tells where it is: red = x * 16, green = y * 16, blue 200.
fn marked(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 200]))
}

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn nearest(leds: u16) -> ConvertOptions {
    ConvertOptions { filter: Filter::Nearest, ..ConvertOptions::for_leds(leds) }
}

#[test]
fn every_input_format_decodes_to_the_same_pixels() {
    let source = marked(8, 4);
    let lossless = [
        (ImageFormat::Png, "a.png", Format::Png),
        (ImageFormat::Bmp, "a.bmp", Format::Bmp),
        (ImageFormat::WebP, "a.webp", Format::WebP),
        (ImageFormat::Gif, "a.gif", Format::Gif),
    ];
    for (format, name, expected) in lossless {
        let bytes = encode(&source, format);
        assert_eq!(povpoi_media::decode::detect(&bytes, name), Ok(expected));
        let decoded = decode(&bytes, name).unwrap();
        if format == ImageFormat::Gif {
            // GIF quantises to a palette: close, not exact.
            assert_eq!(decoded.dimensions(), (8, 4));
            let diff =
                decoded.pixels().zip(source.pixels()).flat_map(|(a, b)| (0..3).map(move |c| a[c].abs_diff(b[c])));
            assert!(diff.max().unwrap() <= 24, "{name}");
        } else {
            assert_eq!(decoded, source, "{name}");
        }
        // The name does not matter for formats with a signature.
        assert_eq!(decode(&bytes, "upload").unwrap().dimensions(), (8, 4), "{name} without a name");
    }
    let flat = RgbImage::from_pixel(16, 8, image::Rgb([200, 40, 10]));
    let jpeg = encode(&flat, ImageFormat::Jpeg);
    assert_eq!(povpoi_media::decode::detect(&jpeg, "photo.jpg"), Ok(Format::Jpeg));
    let decoded = decode(&jpeg, "photo.jpg").unwrap();
    assert_eq!(decoded.dimensions(), (16, 8));
    assert!(decoded.pixels().all(|p| p[0].abs_diff(200) < 8 && p[1].abs_diff(40) < 8 && p[2].abs_diff(10) < 8));

    let raw = convert(source.as_raw(), "image_8x4.rgb", &nearest(4)).unwrap();
    assert_eq!(raw.pixels(), source.as_raw().as_slice(), "raw at its own size is copied as is");
    let named = convert(source.as_raw(), "uploads/heart_8x4.rgb", &nearest(4)).unwrap();
    assert_eq!(named, raw, "any NAME_WxH.rgb, in any folder");
}

#[test]
fn the_first_gif_frame_is_used() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame =
                Frame::from_parts(RgbaImage::from_pixel(4, 4, Rgba(colour)), 0, 0, Delay::from_numer_denom_ms(100, 1));
            encoder.encode_frame(frame).unwrap();
        }
    }
    let decoded = decode(&bytes, "anim.gif").unwrap();
    assert!(decoded.pixels().all(|p| p.0 == [255, 0, 0]), "{:?}", decoded.get_pixel(0, 0));
}

#[test]
fn row_0_of_a_picture_drives_led_0() {
    // Top row red, bottom row blue, at the LED height already: nothing moves.
    let mut source = RgbImage::from_pixel(3, 32, image::Rgb([0, 0, 0]));
    for x in 0..3 {
        source.put_pixel(x, 0, image::Rgb([255, 0, 0]));
        source.put_pixel(x, 31, image::Rgb([0, 0, 255]));
    }
    let picture = convert(&encode(&source, ImageFormat::Png), "top.png", &ConvertOptions::default()).unwrap();
    assert_eq!(picture.pixel(1, 0), Some(Rgb::new(255, 0, 0)), "LED 0 shows the top row");
    assert_eq!(picture.pixel(1, 31), Some(Rgb::new(0, 0, 255)));
    let view = picture.view();
    let mut column = [Rgb::default(); 32];
    povpoi_core::render::Renderer::new(32).unwrap().render(
        &povpoi_core::render::Program::Image(view),
        0,
        50,
        0,
        &mut column,
    );
    assert_eq!((column[0], column[31]), (Rgb::new(255, 0, 0), Rgb::new(0, 0, 255)), "as the renderer reads it");
    // A strip built the other way round: flip vertically.
    let flipped =
        convert(&encode(&source, ImageFormat::Png), "top.png", &ConvertOptions { flip_v: true, ..Default::default() })
            .unwrap();
    assert_eq!(flipped.pixel(1, 0), Some(Rgb::new(0, 0, 255)));
}

#[test]
fn flips_and_rotations_act_before_scaling() {
    // 2 x 1: left red, right green.
    let px = [255, 0, 0, 0, 255, 0];
    let at = |p: &Picture, x, y| p.pixel(x, y).unwrap();
    let (red, green) = (Rgb::new(255, 0, 0), Rgb::new(0, 255, 0));
    let plain = convert(&px, "image_2x1.rgb", &nearest(1)).unwrap();
    assert_eq!((plain.width(), at(&plain, 0, 0), at(&plain, 1, 0)), (2, red, green));
    let h = convert(&px, "image_2x1.rgb", &ConvertOptions { flip_h: true, ..nearest(1) }).unwrap();
    assert_eq!((at(&h, 0, 0), at(&h, 1, 0)), (green, red));
    // Clockwise quarter turn: the left pixel goes on top.
    let cw = convert(&px, "image_2x1.rgb", &ConvertOptions { rotate: Rotation::Cw90, ..nearest(2) }).unwrap();
    assert_eq!((cw.width(), cw.height(), at(&cw, 0, 0), at(&cw, 0, 1)), (1, 2, red, green));
    let ccw = convert(&px, "image_2x1.rgb", &ConvertOptions { rotate: Rotation::Cw270, ..nearest(2) }).unwrap();
    assert_eq!((at(&ccw, 0, 0), at(&ccw, 0, 1)), (green, red));
    let half = convert(&px, "image_2x1.rgb", &ConvertOptions { rotate: Rotation::Cw180, ..nearest(1) }).unwrap();
    assert_eq!((at(&half, 0, 0), at(&half, 1, 0)), (green, red));
    // Rotated first, then flipped, then scaled to 4 LEDs: 2 x 4, top half green.
    let both =
        convert(&px, "image_2x1.rgb", &ConvertOptions { rotate: Rotation::Cw90, flip_v: true, ..nearest(4) }).unwrap();
    assert_eq!((both.width(), both.height()), (2, 4));
    assert_eq!((at(&both, 0, 0), at(&both, 1, 1), at(&both, 0, 2), at(&both, 1, 3)), (green, green, red, red));
    assert_eq!("270".parse::<Rotation>(), Ok(Rotation::Cw270));
    assert!("45".parse::<Rotation>().is_err());
}

#[test]
fn scaling_keeps_the_aspect_ratio_to_the_led_height() {
    let source = marked(64, 16);
    let picture = convert(&encode(&source, ImageFormat::Png), "wide.png", &nearest(32)).unwrap();
    assert_eq!((picture.width(), picture.height()), (128, 32));
    // Nearest at 2x: each source pixel becomes a 2 x 2 block.
    assert_eq!(picture.pixel(7, 5), Some(Rgb::new(3 * 16, 2 * 16, 200)));
    let smooth = convert(&encode(&source, ImageFormat::Png), "wide.png", &ConvertOptions::default()).unwrap();
    assert_eq!((smooth.width(), smooth.height()), (128, 32));
    // Shrinking a photo-like picture: 1000 x 500 to 64 x 32, rounded.
    let big = RgbImage::from_pixel(1000, 499, image::Rgb([9, 9, 9]));
    let small = convert(&encode(&big, ImageFormat::Png), "big.png", &ConvertOptions::default()).unwrap();
    assert_eq!((small.width(), small.height()), (64, 32));
    assert!(small.pixels().iter().all(|&v| v == 9), "a flat picture stays flat through the filter");
}

#[test]
fn wide_pictures_are_squeezed_to_the_width_cap() {
    // 1000 x 20 at 32 LEDs would be 1600 wide: squeezed, not cropped, so both ends survive.
    let mut source = RgbImage::from_pixel(1000, 20, image::Rgb([0, 0, 0]));
    for y in 0..20 {
        for x in 0..10 {
            source.put_pixel(x, y, image::Rgb([255, 0, 0]));
            source.put_pixel(999 - x, y, image::Rgb([0, 0, 255]));
        }
    }
    let picture = convert(&encode(&source, ImageFormat::Png), "banner.png", &nearest(32)).unwrap();
    assert_eq!((picture.width(), picture.height()), (400, 32));
    assert_eq!(picture.pixel(0, 16), Some(Rgb::new(255, 0, 0)));
    assert_eq!(picture.pixel(399, 16), Some(Rgb::new(0, 0, 255)));
    let capped =
        convert(&encode(&source, ImageFormat::Png), "banner.png", &ConvertOptions { max_width: 200, ..nearest(32) })
            .unwrap();
    assert_eq!(capped.width(), 200);
    assert_eq!(
        convert(&encode(&source, ImageFormat::Png), "banner.png", &ConvertOptions { max_width: 401, ..nearest(32) }),
        Err(MediaError::MaxWidth(401))
    );
    assert_eq!(convert(&[0; 3], "image_1x1.rgb", &nearest(65)), Err(MediaError::LedCount(65)));
    // A tall thin picture still gets one column.
    let thin = convert(&[7; 3 * 100], "image_1x100.rgb", &nearest(32)).unwrap();
    assert_eq!((thin.width(), thin.height()), (1, 32));
}

#[test]
fn both_pov_formats_round_trip() {
    let picture = Picture::from_rgb_image(marked(5, 3)).unwrap();
    let headered = pov::write_pov(&picture).unwrap();
    assert_eq!(&headered[..4], &[0x31, 0x56, 0x4F, 0x50], "the magic, little-endian");
    assert_eq!(&headered[4..20], &[1, 0, 0, 0, 5, 0, 3, 0, 45, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&headered[20..], picture.pixels(), "row-major after the header");
    assert_eq!(pov::read_pov(&headered).unwrap(), picture);
    assert_eq!(povpoi_media::decode::detect(&headered, "x.pov"), Ok(Format::Pov));
    assert_eq!(povpoi_media::decode::detect(&headered, "whatever.bin"), Ok(Format::Pov), "the magic suffices");

    let teensy = pov::write_teensy_pov(&picture);
    assert_eq!(&teensy[..4], &[5, 0, 3, 0]);
    // Column-major: the second pixel stored is column 0, row 1.
    assert_eq!(&teensy[7..10], &[0, 16, 200]);
    assert_eq!(pov::read_teensy_pov(&teensy).unwrap(), picture);
    assert_eq!(povpoi_media::decode::detect(&teensy, "old.pov"), Ok(Format::TeensyPov));
    let opts = ConvertOptions { leds: 3, ..nearest(3) };
    assert_eq!(convert(&teensy, "old.pov", &opts).unwrap(), picture);
    assert_eq!(convert(&headered, "new.pov", &opts).unwrap(), picture);
}

#[test]
fn damaged_pov_files_are_refused() {
    let picture = Picture::from_rgb_image(marked(5, 3)).unwrap();
    let good = pov::write_pov(&picture).unwrap();
    let cut = &good[..good.len() - 1];
    assert_eq!(pov::read_pov(cut), Err(MediaError::DataSize { format: ".pov", width: 5, height: 3, actual: 44 }));
    let mut lying = good.clone();
    lying[12] = 99;
    assert_eq!(pov::read_pov(&lying), Err(MediaError::PovHeader { width: 5, height: 3, data_size: 99 }));
    let mut future = good.clone();
    future[4] = 2;
    assert_eq!(pov::read_pov(&future), Err(MediaError::PovVersion(2)));
    assert!(matches!(pov::read_pov(&good[..10]), Err(MediaError::Truncated { needed: 20, actual: 10, .. })));
    let mut empty = good.clone();
    empty[8] = 0;
    assert_eq!(pov::read_pov(&empty[..20]), Err(MediaError::ZeroSize));
    let teensy = pov::write_teensy_pov(&picture);
    assert!(matches!(pov::read_teensy_pov(&teensy[..20]), Err(MediaError::DataSize { format: "Teensy .pov", .. })));
    assert!(matches!(pov::read_pov(&[teensy.clone(), vec![0; 16]].concat()), Err(MediaError::Corrupt { .. })));
    let message = convert(cut, "cut.pov", &ConvertOptions::default()).unwrap_err().to_string();
    assert!(message.contains("5x3") && message.contains("44"), "{message}");
}

#[test]
fn transparent_pixels_become_black() {
    let mut source = RgbaImage::from_pixel(2, 2, Rgba([255, 255, 255, 255]));
    source.put_pixel(1, 0, Rgba([255, 0, 0, 0]));
    source.put_pixel(0, 1, Rgba([200, 100, 50, 128]));
    let mut png = Cursor::new(Vec::new());
    source.write_to(&mut png, ImageFormat::Png).unwrap();
    let picture = convert(png.get_ref(), "alpha.png", &nearest(2)).unwrap();
    assert_eq!(picture.pixel(0, 0), Some(Rgb::new(255, 255, 255)));
    assert_eq!(picture.pixel(1, 0), Some(Rgb::new(0, 0, 0)), "fully transparent red shows nothing");
    assert_eq!(picture.pixel(0, 1), Some(Rgb::new(100, 50, 25)), "half transparent is half as bright");
}

#[test]
fn contrast_doubles_around_the_mean() {
    // Two greys, 100 and 150: the mean luma is 125, so they go to 75 and 175.
    let px = [100, 100, 100, 150, 150, 150];
    let out = convert(&px, "image_2x1.rgb", &ConvertOptions { contrast: true, ..nearest(1) }).unwrap();
    assert_eq!(out.pixels(), &[75, 75, 75, 175, 175, 175]);
    let saturated =
        convert(&[0, 0, 0, 255, 255, 255], "image_2x1.rgb", &ConvertOptions { contrast: true, ..nearest(1) }).unwrap();
    assert_eq!(saturated.pixels(), &[0, 0, 0, 255, 255, 255], "clamped");
}

#[test]
fn bad_input_is_refused_with_what_to_fix() {
    let opts = ConvertOptions::default();
    let cases: [(&[u8], &str, &str); 6] = [
        (b"", "x.png", "empty"),
        (b"hello, world", "notes.txt", "PNG, JPEG"),
        (&[1, 2, 3], "photo.rgb", "image_WxH.rgb"),
        (&[1, 2, 3], "image_2x2.rgb", "2x2"),
        (&[0; 3], "image_0x1.rgb", "no pixels"),
        (b"II*\0\x08\0\0\0", "scan.tif", "TIFF"),
    ];
    for (bytes, name, hint) in cases {
        let message = convert(bytes, name, &opts).unwrap_err().to_string();
        assert!(message.contains(hint), "{name}: {message}");
    }
    let png = encode(&marked(8, 8), ImageFormat::Png);
    let message = convert(&png[..png.len() / 2], "half.png", &opts).unwrap_err().to_string();
    assert!(message.contains("PNG") && message.contains("damaged"), "{message}");
}

#[test]
fn truncated_and_garbled_files_never_panic() {
    let source = marked(12, 7);
    let mut files: Vec<(Vec<u8>, &str)> = [
        (ImageFormat::Png, "f.png"),
        (ImageFormat::Jpeg, "f.jpg"),
        (ImageFormat::Gif, "f.gif"),
        (ImageFormat::Bmp, "f.bmp"),
        (ImageFormat::WebP, "f.webp"),
    ]
    .into_iter()
    .map(|(format, name)| (encode(&source, format), name))
    .collect();
    let picture = Picture::from_rgb_image(source).unwrap();
    files.push((pov::write_pov(&picture).unwrap(), "f.pov"));
    files.push((pov::write_teensy_pov(&picture), "t.pov"));
    for (bytes, name) in &files {
        for cut in 0..bytes.len() {
            let _ = convert(&bytes[..cut], name, &ConvertOptions::default());
        }
        for at in (0..bytes.len()).step_by(3) {
            let mut garbled = bytes.clone();
            garbled[at] ^= 0xA5;
            let _ = convert(&garbled, name, &ConvertOptions::default());
        }
    }
}

#[test]
fn decompression_bombs_are_refused() {
    // A PNG header claiming 100000 x 100000 pixels: refused by the limits before any
    // allocation, whatever follows.
    let mut png = encode(&marked(1, 1), ImageFormat::Png);
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let err = decode(&png, "bomb.png").unwrap_err();
    assert!(matches!(err, MediaError::TooLarge { .. } | MediaError::Corrupt { .. }), "{err:?}");
    // A real 10000 x 10000 white PNG (a few kB compressed, 300 MB decoded) is over the
    // allocation limit.
    let mut big = Vec::new();
    {
        use image::ImageEncoder;
        let row = vec![255u8; 10_000 * 3];
        let all: Vec<u8> = row.iter().copied().cycle().take(10_000 * 10_000 * 3).collect();
        image::codecs::png::PngEncoder::new(&mut big)
            .write_image(&all, 10_000, 10_000, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    assert!(big.len() < 2_000_000, "{} bytes", big.len());
    assert!(matches!(decode(&big, "bomb.png"), Err(MediaError::TooLarge { .. })));
}

/// The colour of a preview pixel at `angle` (radians from straight down, counter-clockwise
/// on screen) and `radius` (share of the half-size).
fn at_angle(image: &RgbImage, angle: f64, radius: f64) -> [u8; 3] {
    let half = f64::from(image.width()) / 2.0;
    let (x, y) = (half + radius * half * angle.sin(), half + radius * half * angle.cos());
    image.get_pixel(x as u32, y as u32).0
}

#[test]
fn a_red_column_lights_exactly_its_wedge() {
    // Four columns, the first red on LEDs 0-15 only, at 1 fps and a quarter turn a second:
    // the red column sweeps the first quarter of the turn, over the inner half of the strip.
    let mut px = vec![0u8; 4 * 32 * 3];
    for y in 0..16 {
        px[y * 4 * 3] = 255;
    }
    let picture = Picture::new(4, 32, px).unwrap();
    let options = PreviewOptions { rps: 0.25, fps: 1, ..PreviewOptions::default() };
    assert_eq!(options.exposure(), 4_000, "one rotation");
    let photo = preview_program(&povpoi_core::render::Program::Image(picture.view()), &options).unwrap();
    assert_eq!(photo.dimensions(), (512, 512));
    let red = [255, 0, 0];
    let black = [0, 0, 0];
    // Radii as shares of the half-size: the hub ends at about 0.1, LED 15 at about 0.54.
    for angle_deg in [5.0, 45.0, 85.0] {
        let a = f64::to_radians(angle_deg);
        assert_eq!(at_angle(&photo, a, 0.2), red, "inner LEDs at {angle_deg} degrees");
        assert_eq!(at_angle(&photo, a, 0.5), red, "LED ~14 at {angle_deg} degrees");
        assert_eq!(at_angle(&photo, a, 0.7), black, "outer LEDs are dark in this column");
        assert_eq!(at_angle(&photo, a, 0.05), black, "the hub is dark");
    }
    for angle_deg in [95.0, 180.0, 270.0, 355.0] {
        assert_eq!(at_angle(&photo, f64::to_radians(angle_deg), 0.3), black, "{angle_deg} degrees is another column");
    }
    assert_eq!(photo.get_pixel(0, 0).0, black, "outside the circle");
    let lit = photo.pixels().filter(|p| p.0 == red).count() as f64;
    // A quarter of the ring between radius 0.098 and 0.549 of 250.9 pixels.
    let expected = TAU / 4.0 / 2.0 * (250.88f64 * 0.549).powi(2) - TAU / 8.0 * (250.88f64 * 0.098).powi(2);
    assert!((lit / expected - 1.0).abs() < 0.05, "{lit} red pixels, about {expected:.0} expected");
}

#[test]
fn a_later_turn_keeps_the_brightest_light() {
    // Three columns, red, green, blue, one per half turn, over two turns: the second turn
    // lays blue and red over the first's red and green, and every channel keeps its maximum.
    let px = vec![255, 0, 0, 0, 255, 0, 0, 0, 255];
    let picture = Picture::new(3, 1, px).unwrap();
    let options = PreviewOptions { rps: 1.0, fps: 2, exposure_ms: Some(2_000), leds: 1, ..PreviewOptions::default() };
    let photo = preview_program(&povpoi_core::render::Program::Image(picture.view()), &options).unwrap();
    // Turn 1: red [0, 180), green [180, 360); turn 2: blue [0, 180), red [180, 360).
    assert_eq!(at_angle(&photo, f64::to_radians(90.0), 0.5), [255, 0, 255]);
    assert_eq!(at_angle(&photo, f64::to_radians(270.0), 0.5), [255, 255, 0]);
}

#[test]
fn a_pattern_preview_is_lit_and_brightness_dims_it() {
    let fire = Pattern::new(PatternKind::Fire, Rgb::new(255, 0, 0), Rgb::new(255, 255, 0), 80).unwrap();
    let photo = preview_pattern(fire, &PreviewOptions::default()).unwrap();
    let lit = photo.pixels().filter(|p| p.0 != [0, 0, 0]).count();
    assert!(lit > 512 * 512 / 10, "{lit} lit pixels");
    let brightest = |image: &RgbImage| image.pixels().map(|p| p.0[0]).max().unwrap();
    let dim = preview_pattern(
        fire,
        &PreviewOptions { finish: Finish { brightness: 64, gamma: false }, ..PreviewOptions::default() },
    )
    .unwrap();
    assert!(brightest(&dim) <= 64 && brightest(&dim) > 0 && brightest(&photo) > 64);
    for kind in PatternKind::ALL {
        let pattern = Pattern::new(kind, Rgb::new(0, 255, 0), Rgb::new(0, 0, 255), 50).unwrap();
        let photo =
            preview_pattern(pattern, &PreviewOptions { width: 64, height: 64, ..PreviewOptions::default() }).unwrap();
        assert!(photo.pixels().any(|p| p.0 != [0, 0, 0]), "{} shows something", kind.name());
    }
    let png = povpoi_media::png_bytes(&photo).unwrap();
    let back = image::load_from_memory(&png).unwrap().into_rgb8();
    assert_eq!(back, photo);
}

#[test]
fn bad_preview_options_are_refused() {
    let program = povpoi_core::render::Program::Idle;
    let bad = [
        PreviewOptions { rps: 0.0, ..PreviewOptions::default() },
        PreviewOptions { rps: f64::NAN, ..PreviewOptions::default() },
        PreviewOptions { fps: 0, ..PreviewOptions::default() },
        PreviewOptions { leds: 0, ..PreviewOptions::default() },
        PreviewOptions { width: 100_000, ..PreviewOptions::default() },
        PreviewOptions { exposure_ms: Some(0), ..PreviewOptions::default() },
        PreviewOptions { exposure_ms: Some(60_000), rps: 10.0, ..PreviewOptions::default() },
    ];
    for options in bad {
        assert!(matches!(preview_program(&program, &options), Err(MediaError::Preview(_))), "{options:?}");
    }
    let dark =
        preview_program(&program, &PreviewOptions { width: 32, height: 32, ..PreviewOptions::default() }).unwrap();
    assert!(dark.pixels().all(|p| p.0 == [0, 0, 0]));
}

#[test]
fn a_raw_file_too_long_to_scale_is_refused() {
    let long = vec![7u8; 20_000 * 3];
    let refused = povpoi_media::convert(&long, "image_20000x1.rgb", &ConvertOptions::for_leds(32));
    assert!(matches!(refused, Err(MediaError::TooLarge { .. })), "{refused:?}");
}

/// `jpeg` with an EXIF segment saying "turn 90 degrees clockwise to show" (orientation 6),
/// as a phone writes a photo taken upright.
fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let tiff: [u8; 26] = [
        b'I', b'I', 0x2A, 0, 8, 0, 0, 0, // little-endian TIFF, first IFD at 8
        1, 0, // one entry
        0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // Orientation, SHORT, 1 value: 6
        0, 0, 0, 0, // no next IFD
    ];
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_photo_is_turned_as_its_exif_says() {
    let jpeg = encode(&marked(8, 4), ImageFormat::Jpeg);
    assert_eq!(decode(&jpeg, "plain.jpg").unwrap().dimensions(), (8, 4), "no EXIF: as stored");
    let turned = decode(&with_exif_orientation_6(&jpeg), "photo.jpg").unwrap();
    assert_eq!(turned.dimensions(), (4, 8));
    // Turned clockwise: the stored top-right corner (red 112) is now at the bottom right,
    // the stored top-left (red 0) at the top right.
    let red = |x, y| i32::from(turned.get_pixel(x, y).0[0]);
    assert!((red(3, 7) - 112).abs() < 40 && red(3, 0) < 40, "{} {}", red(3, 7), red(3, 0));
}
