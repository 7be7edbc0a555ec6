//! `povpoi convert`: any picture to what a poi shows, as raw `image_WxH.rgb` for the upload
//! API, as a `.pov` for old SD cards, or as a PNG to look at.

use std::path::{Path, PathBuf};

use povpoi_core::model::{MAX_HEIGHT, MAX_WIDTH};
use povpoi_core::render::DEFAULT_LEDS;
use povpoi_media::decode::detect;
use povpoi_media::{ConvertOptions, Filter, Picture, Rotation, convert_image, decode, pov};

/// Options of `povpoi convert`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The picture: PNG, JPEG, GIF, BMP, WebP, either kind of .pov, or raw image_WxH.rgb.
    pub input: PathBuf,
    /// Where to write, by extension: .rgb (raw; named image_WxH.rgb in that folder, the name
    /// the poi's upload reads the size from), .pov (headered), .png; or a folder (raw).
    pub output: PathBuf,
    /// LEDs on the strip: the picture's height (1-64).
    #[arg(long, default_value_t = DEFAULT_LEDS, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_HEIGHT)))]
    pub leds: u16,
    #[command(flatten)]
    pub shaping: Shaping,
}

/// How a picture is fitted to the strip, besides its height: `povpoi convert`'s and
/// `povpoi upload`'s options alike.
#[derive(clap::Args, Clone, Debug)]
pub struct Shaping {
    /// Widest result in columns (1-400); wider pictures are squeezed to it, not cropped.
    #[arg(long, default_value_t = MAX_WIDTH, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WIDTH)))]
    pub max_width: u16,
    /// Mirror left-right.
    #[arg(long)]
    pub flip_h: bool,
    /// Mirror top-bottom, for a strip whose LED 0 is at the tip rather than the handle.
    #[arg(long)]
    pub flip_v: bool,
    /// Turn the picture clockwise first: 0, 90, 180 or 270 degrees.
    #[arg(long, default_value = "0")]
    pub rotate: Rotation,
    /// Double the contrast, as the old converter could.
    #[arg(long)]
    pub contrast: bool,
    /// Resampling: nearest (crisp pixel art, as the old converter), triangle (smooth, for
    /// photos), catmull-rom, gaussian or lanczos3.
    #[arg(long, default_value_t = Filter::default())]
    pub filter: Filter,
}

impl Shaping {
    /// The converter's options for a strip of `leds` LEDs.
    pub fn options(&self, leds: u16) -> ConvertOptions {
        ConvertOptions {
            leds,
            max_width: self.max_width,
            flip_h: self.flip_h,
            flip_v: self.flip_v,
            rotate: self.rotate,
            contrast: self.contrast,
            filter: self.filter,
        }
    }
}

/// A picture file read, decoded and fitted to a strip of `leds` LEDs; the converted picture,
/// and the file's format and size for messages. Errors name the file.
pub fn read_picture(path: &Path, leds: u16, shaping: &Shaping) -> Result<(Picture, String), String> {
    let input = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {input}: {e}"))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let format = detect(&bytes, &name).map_err(|e| format!("{input}: {e}"))?;
    let decoded = decode(&bytes, &name).map_err(|e| format!("{input}: {e}"))?;
    let (source_w, source_h) = decoded.dimensions();
    let picture = convert_image(decoded, &shaping.options(leds)).map_err(|e| format!("{input}: {e}"))?;
    Ok((picture, format!("{} {source_w}x{source_h}", format.name())))
}

/// What kind of file OUT asks for.
enum Output {
    Raw,
    Pov,
    Png,
}

/// Converts IN to OUT and says what it wrote.
pub fn run(args: &Args) -> Result<(), String> {
    let kind = output_kind(&args.output)?;
    let input = args.input.display();
    let (picture, source) = read_picture(&args.input, args.leds, &args.shaping)?;

    let (path, data, note) = match kind {
        Output::Raw => {
            let (path, note) = raw_path(&args.output, &picture);
            (path, picture.pixels().to_vec(), note)
        }
        Output::Pov => (args.output.clone(), pov::write_pov(&picture).map_err(|e| e.to_string())?, None),
        Output::Png => (args.output.clone(), picture.to_png().map_err(|e| e.to_string())?, None),
    };
    std::fs::write(&path, &data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {}: {}x{} ({} bytes) from {input} ({source})",
        path.display(),
        picture.width(),
        picture.height(),
        data.len(),
    );
    if let Some(note) = note {
        println!("{note}");
    }
    Ok(())
}

/// The output kind from OUT's extension, or raw for a folder.
fn output_kind(out: &Path) -> Result<Output, String> {
    if is_folder(out) {
        return Ok(Output::Raw);
    }
    let ext = out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("rgb") => Ok(Output::Raw),
        Some("pov") => Ok(Output::Pov),
        Some("png") => Ok(Output::Png),
        _ => Err(format!(
            "{}: name the output NAME.rgb (raw, for the upload API), NAME.pov (SD card) or NAME.png, \
             or give a folder",
            out.display()
        )),
    }
}

fn is_folder(out: &Path) -> bool {
    out.is_dir() || out.as_os_str().to_string_lossy().ends_with(['/', std::path::MAIN_SEPARATOR])
}

/// Where a raw picture goes: always `image_WxH.rgb`, because the upload API (the poi's and
/// the existing system's) takes the size from exactly that name, and a file that uploads as
/// it is named is the least surprising. The folder is OUT itself or OUT's folder; when OUT
/// named something else, the note says so.
fn raw_path(out: &Path, picture: &Picture) -> (PathBuf, Option<String>) {
    let wanted = picture.raw_file_name();
    if is_folder(out) {
        return (out.join(&wanted), None);
    }
    let given = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let path = out.with_file_name(&wanted);
    if given == wanted {
        return (path, None);
    }
    let note = format!(
        "note: written as {wanted}, not {given}: the poi's upload reads the size from the name image_WxH.rgb \
         (for a name of your own, convert to .pov or .png)"
    );
    (path, Some(note))
}
