//! `povpoi convert` and `povpoi preview` as a user runs them: the built binary on files
//! generated in a temporary folder.

use std::path::Path;
use std::process::{Command, Output};

use povpoi_media::image::{self, ImageFormat, RgbImage};

fn povpoi(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_povpoi")).args(args).current_dir(dir).output().expect("run povpoi")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// 64 x 16, every pixel naming its place: red = 4x, green = 16y, blue 200.
fn marked() -> RgbImage {
    RgbImage::from_fn(64, 16, |x, y| image::Rgb([(x * 4) as u8, (y * 16) as u8, 200]))
}

fn save_png(image: &RgbImage, path: &Path) {
    image.save_with_format(path, ImageFormat::Png).unwrap();
}

#[test]
fn png_converts_to_raw_rgb_and_pov_with_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let source = marked();
    save_png(&source, &dir.path().join("in.png"));

    // Raw, named for its size whatever OUT said: 64 x 16 at 32 LEDs is 128 x 32.
    let stdout = succeeded(&povpoi(&["convert", "in.png", "heart.rgb", "--filter", "nearest"], dir.path()));
    assert!(stdout.contains("image_128x32.rgb") && stdout.contains("128x32"), "{stdout}");
    assert!(stdout.contains("note:"), "says why the name changed: {stdout}");
    let raw = std::fs::read(dir.path().join("image_128x32.rgb")).unwrap();
    assert_eq!(raw.len(), 128 * 32 * 3);
    for (x, y) in [(0, 0), (1, 1), (37, 20), (127, 31)] {
        let at = (y * 128 + x) * 3;
        let (sx, sy) = (x / 2, y / 2);
        assert_eq!(&raw[at..at + 3], &[(sx * 4) as u8, (sy * 16) as u8, 200], "pixel {x},{y}: nearest doubles");
    }
    assert!(!dir.path().join("heart.rgb").exists());

    // A folder as OUT; at 16 LEDs the picture is already the right size and is copied exactly.
    std::fs::create_dir(dir.path().join("cards")).unwrap();
    let stdout = succeeded(&povpoi(&["convert", "in.png", "cards", "--leds", "16"], dir.path()));
    assert!(stdout.contains("64x16"), "{stdout}");
    assert_eq!(std::fs::read(dir.path().join("cards/image_64x16.rgb")).unwrap(), source.as_raw().as_slice());

    // Headered .pov: magic, version, size, data size, reserved, then the raw bytes.
    succeeded(&povpoi(&["convert", "in.png", "in.pov", "--leds", "16", "--flip-h"], dir.path()));
    let pov = std::fs::read(dir.path().join("in.pov")).unwrap();
    assert_eq!(&pov[..20], &[0x31, 0x56, 0x4F, 0x50, 1, 0, 0, 0, 64, 0, 16, 0, 0x00, 0x0C, 0, 0, 0, 0, 0, 0]);
    assert_eq!(pov.len(), 20 + 64 * 16 * 3);
    assert_eq!(&pov[20..23], &[63 * 4, 0, 200], "flipped: column 0 holds the last source column");

    // And back: the .pov converts to the raw bytes it holds.
    std::fs::create_dir(dir.path().join("back")).unwrap();
    succeeded(&povpoi(&["convert", "in.pov", "back/", "--leds", "16"], dir.path()));
    assert_eq!(std::fs::read(dir.path().join("back/image_64x16.rgb")).unwrap(), &pov[20..]);
}

#[test]
fn bad_input_exits_non_zero_and_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut png = Vec::new();
    marked().write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png).unwrap();
    std::fs::write(dir.path().join("cut.png"), &png[..png.len() / 3]).unwrap();
    std::fs::write(dir.path().join("photo.rgb"), [0u8; 12]).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a picture").unwrap();
    std::fs::write(dir.path().join("ok.png"), &png).unwrap();
    let cases: [(&[&str], &[&str]); 6] = [
        (&["convert", "cut.png", "out.pov"], &["cut.png", "PNG", "damaged"]),
        (&["convert", "photo.rgb", "out.pov"], &["image_WxH.rgb"]),
        (&["convert", "notes.txt", "out.pov"], &["notes.txt", "PNG, JPEG"]),
        (&["convert", "missing.png", "out.pov"], &["cannot read missing.png"]),
        (&["convert", "ok.png", "out.jpg"], &["NAME.rgb", "NAME.pov", "NAME.png"]),
        (&["preview", "pattern:sparkly", "-o", "p.png"], &["unknown pattern type", "4 Fire"]),
    ];
    for (args, hints) in cases {
        let out = povpoi(args, dir.path());
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {}", text(&out.stdout));
        for hint in hints {
            assert!(stderr.contains(hint), "{args:?}: {stderr:?} lacks {hint:?}");
        }
    }
    assert!(!dir.path().join("out.pov").exists(), "nothing written on failure");
    let out = povpoi(&["convert", "ok.png", "out.pov", "--leds", "65"], dir.path());
    assert!(!out.status.success() && text(&out.stderr).contains("65"), "{}", text(&out.stderr));
}

/// Checks a preview PNG: the size asked for, a dark hub, and light around it.
fn check_preview(path: &Path, size: u32) {
    let photo = image::open(path).expect("a valid PNG").into_rgb8();
    assert_eq!(photo.dimensions(), (size, size));
    let c = size / 2;
    for y in c - size / 40..c + size / 40 {
        for x in c - size / 40..c + size / 40 {
            assert_eq!(photo.get_pixel(x, y).0, [0, 0, 0], "the hub at {x},{y} is dark");
        }
    }
    let lit = photo.pixels().filter(|p| p.0 != [0, 0, 0]).count();
    assert!(lit > (size * size / 10) as usize, "{lit} lit pixels");
}

#[test]
fn preview_writes_a_png_of_the_light_trail() {
    let dir = tempfile::tempdir().unwrap();
    // Left half red, right half blue: spun once around, each fills half the circle.
    let halves =
        RgbImage::from_fn(40, 32, |x, _| if x < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    save_png(&halves, &dir.path().join("halves.png"));
    let stdout = succeeded(&povpoi(&["preview", "halves.png", "-o", "halves-preview.png"], dir.path()));
    assert!(stdout.contains("halves-preview.png") && stdout.contains("512x512"), "{stdout}");
    assert!(stdout.contains(" 80 fps,"), "without --fps a picture goes once around (40 columns x 2 rps): {stdout}");
    let path = dir.path().join("halves-preview.png");
    check_preview(&path, 512);
    let photo = image::open(&path).unwrap().into_rgb8();
    let (first, second) = (photo.get_pixel(256 + 150, 256).0, photo.get_pixel(256 - 150, 256).0);
    assert!(first[0] > 200 && first[2] < 50, "the first half-turn shows the left (red) half: {first:?}");
    assert!(second[2] > 200 && second[0] < 50, "the second half-turn shows the right (blue) half: {second:?}");
    // At a lower frame rate the same turn shows fewer columns: only the red half.
    succeeded(&povpoi(&["preview", "halves.png", "-o", "slow.png", "--fps", "40"], dir.path()));
    let slow = image::open(dir.path().join("slow.png")).unwrap().into_rgb8();
    assert!(slow.get_pixel(256 - 150, 256).0[0] > 200, "at 40 fps one turn is the first 20 columns, all red");

    let stdout = succeeded(&povpoi(
        &["preview", "pattern:4:ff0000:ffff00:80", "-o", "fire.png", "--size", "256", "--rps", "1", "--at", "1500"],
        dir.path(),
    ));
    assert!(stdout.contains("Fire"), "{stdout}");
    check_preview(&dir.path().join("fire.png"), 256);

    let out = povpoi(&["preview", "pattern:0", "-o", "rainbow.jpg"], dir.path());
    assert!(!out.status.success() && text(&out.stderr).contains("NAME.png"));
}
