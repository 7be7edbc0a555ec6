//! `povpoi preview`: a long-exposure photo of the poi spinning with a picture or a pattern,
//! rendered by the same code the poi plays with.

use std::path::PathBuf;

use povpoi_core::model::{MAX_HEIGHT, Pattern, PatternKind, Rgb};
use povpoi_core::render::{Finish, MAX_LEDS, Program};
use povpoi_media::preview::MAX_FPS;
use povpoi_media::{ConvertOptions, PreviewOptions, convert, png_bytes, preview_program};

use crate::poi_client::Poi;

/// Options of `povpoi preview`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// What spins: a picture file (any format `povpoi convert` reads) or
    /// pattern:TYPE[:RRGGBB:RRGGBB[:SPEED]], TYPE 0-17 or a name (e.g. pattern:4:ff0000:ffff00:80,
    /// pattern:fire). With --node, an item stored on that poi: image:ID, pattern:SLOT or
    /// sequence:SLOT.
    pub item: String,
    /// A poi's address (http://HOST:PORT): preview an item stored on it, drawn by the poi at
    /// its own LED count, frame rate and brightness (--fps overrides the frame rate).
    #[arg(long)]
    pub node: Option<String>,
    /// The group's pairing key, if the poi has one.
    #[arg(long, env = "POVPOI_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The PNG to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Rotations per second.
    #[arg(long, default_value_t = 2.0)]
    pub rps: f64,
    /// Frame rate: columns per second [default: a picture's width times --rps, so it goes
    /// once around the circle; 50 for a pattern; with --node, the poi's own].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_FPS)))]
    pub fps: Option<u16>,
    /// LEDs on the strip.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_LEDS)))]
    pub leds: u16,
    /// Global brightness, 0-255.
    #[arg(long, default_value_t = 255)]
    pub brightness: u8,
    /// Apply the LEDs' gamma 2.2 (darker mid-tones on screen; off shows the colours as chosen).
    #[arg(long)]
    pub gamma: bool,
    /// Width and height of the PNG in pixels (16-4096).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub size: u32,
    /// Show time (ms) at which the shutter opens: later moments of an animated pattern.
    #[arg(long, default_value_t = 0)]
    pub at: u64,
    /// Shutter time in ms (default: one rotation).
    #[arg(long)]
    pub exposure: Option<u64>,
}

/// Frame rate of a local pattern preview when `--fps` is not given: the existing system's default.
const DEFAULT_FPS: u16 = 50;

/// The frame rate at which a picture `width` columns wide fills exactly one turn at `rps`:
/// what a user previewing a picture wants to see, the whole of it around the circle.
fn one_turn_fps(width: u16, rps: f64) -> u16 {
    let fps = f64::from(width) * rps;
    // A nonsensical --rps is refused by the preview itself, with its own message.
    if !fps.is_finite() {
        return DEFAULT_FPS;
    }
    fps.round().clamp(1.0, f64::from(MAX_FPS)) as u16
}

/// Renders the preview PNG and says what it shows.
pub fn run(args: &Args) -> Result<(), String> {
    let is_png = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(format!("{}: the preview is a PNG; name it NAME.png", args.output.display()));
    }
    if let Some(node) = &args.node {
        return from_node(node, args);
    }
    let mut options = PreviewOptions {
        leds: args.leds,
        rps: args.rps,
        fps: args.fps.unwrap_or(DEFAULT_FPS),
        exposure_ms: args.exposure,
        start_ms: args.at,
        width: args.size,
        height: args.size,
        finish: Finish { brightness: args.brightness, gamma: args.gamma },
        ..PreviewOptions::default()
    };
    let (photo, what) = match args.item.strip_prefix("pattern:") {
        Some(spec) => {
            let pattern = parse_pattern(spec)?;
            let photo = preview_program(&Program::Pattern(pattern), &options).map_err(|e| e.to_string())?;
            let [c1, c2] = [pattern.color1(), pattern.color2()].map(hex);
            (photo, format!("the {} pattern ({c1}, {c2}, speed {})", pattern.kind().name(), pattern.speed()))
        }
        None => {
            let bytes = std::fs::read(&args.item).map_err(|e| format!("cannot read {}: {e}", args.item))?;
            let name = std::path::Path::new(&args.item).file_name().map(|n| n.to_string_lossy().into_owned());
            // Pictures are stored at most 64 rows high; the renderer stretches them to longer strips.
            let convert_options = ConvertOptions::for_leds(args.leds.min(MAX_HEIGHT));
            let picture = convert(&bytes, name.as_deref().unwrap_or_default(), &convert_options)
                .map_err(|e| format!("{}: {e}", args.item))?;
            options.fps = args.fps.unwrap_or_else(|| one_turn_fps(picture.width(), args.rps));
            let photo = preview_program(&Program::Image(picture.view()), &options).map_err(|e| e.to_string())?;
            (photo, format!("{} ({}x{} columns x LEDs)", args.item, picture.width(), picture.height()))
        }
    };
    let png = png_bytes(&photo).map_err(|e| e.to_string())?;
    std::fs::write(&args.output, &png).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    println!(
        "wrote {}: {}x{} preview of {what}, {} ms exposure at {} rotations/s, {} fps, {} LEDs, brightness {}",
        args.output.display(),
        photo.width(),
        photo.height(),
        options.exposure(),
        args.rps,
        options.fps,
        args.leds,
        args.brightness,
    );
    Ok(())
}

/// Asks the poi at `node` for its preview of a stored item and writes the PNG.
fn from_node(node: &str, args: &Args) -> Result<(), String> {
    let usage = "with --node, name a stored item: image:ID, pattern:SLOT or sequence:SLOT";
    let (kind, item) = args.item.split_once(':').ok_or_else(|| format!("{:?}: {usage}", args.item))?;
    if !matches!(kind, "image" | "pattern" | "sequence") || item.is_empty() {
        return Err(format!("{:?}: {usage}", args.item));
    }
    let poi = Poi::at(node, &format!("--node {node:?}"), args.key.as_deref(), std::time::Duration::from_secs(30))?;
    let base = poi.base();
    let url = preview_url(base, kind, item, args);
    let body = poi.call(|client, _| client.get(&url), "")?;
    std::fs::write(&args.output, &body).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    println!("wrote {}: the preview of {} on {base} ({} bytes)", args.output.display(), args.item, body.len());
    Ok(())
}

/// The poi's preview URL for a stored item. Only options given on the command line go in,
/// so the poi fills in the rest from its own settings.
fn preview_url(base: &str, kind: &str, item: &str, args: &Args) -> String {
    let mut url = format!("{base}/api/preview/{kind}/{item}?rps={}&size={}&at={}", args.rps, args.size, args.at);
    if let Some(fps) = args.fps {
        url.push_str(&format!("&fps={fps}"));
    }
    if let Some(exposure) = args.exposure {
        url.push_str(&format!("&exposure={exposure}"));
    }
    url
}

fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c.r, c.g, c.b)
}

/// `TYPE[:RRGGBB[:RRGGBB[:SPEED]]]`; missing parts take the existing system's defaults (red,
/// blue, speed 50).
fn parse_pattern(spec: &str) -> Result<Pattern, String> {
    let usage = "write pattern:TYPE[:RRGGBB:RRGGBB[:SPEED]], e.g. pattern:4:ff0000:ffff00:80";
    let mut parts = spec.split(':');
    let kind = parse_kind(parts.next().unwrap_or_default()).map_err(|e| format!("{e}; {usage}"))?;
    let default = Pattern::default();
    let mut color = |fallback: Rgb| match parts.next() {
        Some(text) => parse_color(text).map_err(|e| format!("{e}; {usage}")),
        None => Ok(fallback),
    };
    let (color1, color2) = (color(default.color1())?, color(default.color2())?);
    let speed = match parts.next() {
        Some(text) => {
            text.parse::<u8>().ok().filter(|&s| s > 0).ok_or_else(|| format!("speed {text:?} is not 1-255"))?
        }
        None => default.speed(),
    };
    if parts.next().is_some() {
        return Err(format!("pattern:{spec} has too many parts; {usage}"));
    }
    Pattern::new(kind, color1, color2, speed).map_err(|e| e.to_string())
}

/// A pattern type by id (0-17) or by name, ignoring case, spaces, dashes and underscores.
fn parse_kind(text: &str) -> Result<PatternKind, String> {
    if let Ok(id) = text.parse::<u8>() {
        return PatternKind::from_id(id).map_err(|e| e.to_string());
    }
    let squash = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let wanted = squash(text);
    PatternKind::ALL.into_iter().find(|k| squash(k.name()) == wanted).ok_or_else(|| {
        let names: Vec<String> = PatternKind::ALL.iter().map(|k| format!("{} {}", k.id(), k.name())).collect();
        format!("unknown pattern type {text:?}; the types are {}", names.join(", "))
    })
}

/// `RRGGBB`, with or without a leading `#`.
fn parse_color(text: &str) -> Result<Rgb, String> {
    let hex = text.strip_prefix('#').unwrap_or(text);
    let bad = || format!("colour {text:?} is not RRGGBB hex (e.g. ff8800)");
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).map_err(|_| bad());
    Ok(Rgb::new(channel(0)?, channel(2)?, channel(4)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn url_for(line: &[&str]) -> String {
        let cli = Cli::try_parse_from([&["preview", "pattern:3", "-o", "x.png", "--node", "http://p"], line].concat())
            .unwrap();
        preview_url("http://p", "pattern", "3", &cli.args)
    }

    #[test]
    fn an_explicit_fps_always_overrides_the_poi_frame_rate() {
        assert!(!url_for(&[]).contains("fps="), "no --fps: the poi's own rate");
        assert!(url_for(&["--fps", "50"]).ends_with("&fps=50"), "50 is asked for, not the default");
        assert!(url_for(&["--fps", "120", "--exposure", "900"]).ends_with("&fps=120&exposure=900"));
    }

    #[test]
    fn pattern_specs_parse_with_defaults() {
        let p = parse_pattern("4:ff0000:ffff00:80").unwrap();
        assert_eq!(
            (p.kind(), p.color1(), p.color2(), p.speed()),
            (PatternKind::Fire, Rgb::new(255, 0, 0), Rgb::new(255, 255, 0), 80)
        );
        let p = parse_pattern("theater-chase").unwrap();
        assert_eq!((p.kind(), p.speed()), (PatternKind::TheaterChase, 50));
        assert_eq!(parse_pattern("VU meter:#00ff00").unwrap().color1(), Rgb::new(0, 255, 0));
        for bad in ["18", "sparkly", "4:red", "4:ff0000:ffff00:0", "4:ff0000:ffff00:80:1", ""] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }
}
