//! The checks of the fuzz targets on `povpoi-media`'s decoders: any bytes give a picture
//! or an error (never a panic), a picture is within the decode limits, and a decode takes
//! no more memory than its cap allows.
//!
//! This file is the fuzz crate's `media_checks` module and is also compiled into
//! `crates/povpoi-media/tests/fuzz_corpus.rs`, which replays the corpora and regressions on
//! stable: it may use only `povpoi-media` and what that crate's tests can use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use povpoi_media::decode::{MAX_DECODE_ALLOC, MAX_DECODE_SIDE};
use povpoi_media::pov::{read_pov, read_teensy_pov, write_pov, write_teensy_pov};
use povpoi_media::{ConvertOptions, Filter, Rotation, convert_image, decode};

/// Heap bytes live now and the most since [`peak_during`] last started counting.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes so a check can see a decode's peak. Install
/// it as the `#[global_allocator]` of a fuzz target or test binary; without it
/// [`peak_during`] measures nothing and the memory checks pass.
pub struct CountingAlloc;

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Runs `f` and answers its result with the most heap bytes it held at once beyond what
/// was live before (0 unless [`CountingAlloc`] is the global allocator).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = f();
    (result, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// Room for a decoder's own tables and buffers beyond the picture it allocates.
const SLACK: usize = 8 << 20;

/// `pov_file`: the bytes as a headered `.pov`, as a Teensy `.pov` and as an upload named
/// `*.pov`. A file that reads writes back the same (the Teensy's byte for byte, the
/// headered one up to its reserved field), and reading takes a few copies of the file at most.
pub fn pov_file(data: &[u8]) {
    match read_pov(data) {
        Ok(picture) => {
            let bytes = write_pov(&picture).expect("a .pov that was read can be written");
            assert_eq!(bytes.len(), data.len());
            assert_eq!(bytes[..16], data[..16], "header changed");
            assert_eq!(bytes[20..], data[20..], "pixels changed");
            assert_eq!(read_pov(&bytes), Ok(picture));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match read_teensy_pov(data) {
        Ok(picture) => assert_eq!(write_teensy_pov(&picture), data, "Teensy .pov does not write back the same"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let (result, peak) = peak_during(|| decode(data, "picture.pov"));
    match result {
        Ok(image) => assert_eq!(image.as_raw().len(), 3 * image.width() as usize * image.height() as usize),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let allowed = 4 * data.len() + (1 << 20);
    assert!(peak <= allowed, "reading a {}-byte .pov took {peak} bytes at peak (allowed {allowed})", data.len());
}

/// The file names `image_decode` tries, picked by the input's first byte: a name matters
/// only for `.rgb` (size in the name) and `.pov` (Teensy files have no signature).
pub const NAMES: [&str; 8] = [
    "picture.png",
    "picture.jpg",
    "picture.gif",
    "picture.bmp",
    "picture.webp",
    "picture.pov",
    "image_4x4.rgb",
    "picture",
];

/// The conversion options picked by the input's second byte.
pub fn options(pick: u8) -> ConvertOptions {
    let rotate = [Rotation::None, Rotation::Cw90, Rotation::Cw180, Rotation::Cw270][usize::from(pick & 3)];
    ConvertOptions {
        leds: 1 + u16::from(pick) % 64,
        flip_h: pick & 4 != 0,
        flip_v: pick & 8 != 0,
        contrast: pick & 16 != 0,
        filter: Filter::ALL[usize::from(pick >> 5) % Filter::ALL.len()],
        rotate,
        ..ConvertOptions::default()
    }
}

/// Converting pictures above this many pixels is left out: scaling them is slow, not risky.
const MAX_CONVERTED_PIXELS: u64 = 1 << 20;

/// `image_decode`: byte 0 picks a file name from [`NAMES`], byte 1 the conversion
/// [`options`], the rest is the file. Decoding answers a picture within
/// [`MAX_DECODE_SIDE`] a side or an error; it holds at most [`MAX_DECODE_ALLOC`] bytes
/// beyond the picture it returns (and its RGB copy); a picture converts to the strip.
pub fn image_decode(data: &[u8]) {
    let [pick, option, bytes @ ..] = data else { return };
    let name = NAMES[usize::from(*pick) % NAMES.len()];
    let (result, peak) = peak_during(|| decode(bytes, name));
    let returned = match &result {
        Ok(image) => {
            let (w, h) = image.dimensions();
            assert!((1..=MAX_DECODE_SIDE).contains(&w) && (1..=MAX_DECODE_SIDE).contains(&h), "{w}x{h} decoded");
            assert_eq!(image.as_raw().len(), 3 * w as usize * h as usize);
            image.as_raw().len()
        }
        Err(e) => {
            let _ = e.to_string();
            0
        }
    };
    let allowed = MAX_DECODE_ALLOC as usize + 2 * returned + 4 * bytes.len() + SLACK;
    assert!(peak <= allowed, "decoding {} bytes as {name} took {peak} bytes at peak (allowed {allowed})", bytes.len());
    let Ok(image) = result else { return };
    if u64::from(image.width()) * u64::from(image.height()) > MAX_CONVERTED_PIXELS {
        return;
    }
    let options = options(*option);
    let picture = convert_image(image, &options).expect("a decoded picture converts");
    assert_eq!(picture.height(), options.leds);
    assert!((1..=options.max_width).contains(&picture.width()));
}

/// Seed inputs made by the real encoders, as `(target, name, bytes)`: a small picture as a
/// headered and a Teensy `.pov`, and as each format [`NAMES`] lists, prefixed with the
/// name's index and an options byte. `fuzz/README.md` says how they become the corpus.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use povpoi_media::Picture;
    use povpoi_media::image::{ImageFormat, RgbImage};

    let pixels: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let picture = Picture::new(4, 4, pixels.clone()).expect("a 4x4 picture");
    let pov = write_pov(&picture).expect("a .pov");
    let teensy = write_teensy_pov(&picture);
    let mut out =
        vec![("pov_file", "headered".to_owned(), pov.clone()), ("pov_file", "teensy".to_owned(), teensy.clone())];
    let image = RgbImage::from_raw(4, 4, pixels.clone()).expect("a 4x4 image");
    let formats = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP];
    for (index, format) in formats.into_iter().enumerate() {
        let mut file = std::io::Cursor::new(Vec::new());
        image.write_to(&mut file, format).expect("the image crate encodes a 4x4 picture");
        let mut input = vec![index as u8, 0x25];
        input.extend_from_slice(file.get_ref());
        out.push(("image_decode", NAMES[index].trim_start_matches("picture.").to_owned(), input));
    }
    for (index, name, file) in [(5u8, "pov", &pov), (5, "teensy-pov", &teensy), (6, "rgb", &pixels)] {
        let mut input = vec![index, 0x4a];
        input.extend_from_slice(file);
        out.push(("image_decode", name.to_owned(), input));
    }
    out
}
