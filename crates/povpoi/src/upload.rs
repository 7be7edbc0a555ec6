//! `povpoi upload`: a picture to a poi, fitted here to its strip and sent as the existing
//! system's raw `image_WxH.rgb` upload. A board takes raw RGB only (it has no converter),
//! so this is how a picture reaches one without a node; a node takes it the same way.

use std::path::PathBuf;
use std::time::Duration;

use povpoi_core::model::MAX_HEIGHT;
use serde_json::Value;

use crate::convert::{Shaping, read_picture};
use crate::poi_client::Poi;

/// Options of `povpoi upload`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The poi, as http://HOST:PORT.
    pub poi: String,
    /// The picture: PNG, JPEG, GIF, BMP, WebP, either kind of .pov, or raw image_WxH.rgb.
    pub picture: PathBuf,
    /// Its name on the poi; by default the file's name without its extension.
    #[arg(long)]
    pub name: Option<String>,
    /// The sync group's pairing key, if the poi's group has one.
    #[arg(long)]
    pub key: Option<String>,
    /// LEDs on the strip (1-64); by default the poi's own count, read from it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_HEIGHT)))]
    pub leds: Option<u16>,
    #[command(flatten)]
    pub shaping: Shaping,
}

/// Fits the picture to the poi's strip, uploads it and says what the poi answered.
pub fn run(args: &Args) -> Result<(), String> {
    let poi = Poi::at(&args.poi, &format!("{:?}", args.poi), args.key.as_deref(), Duration::from_secs(60))?;
    let base = poi.base();
    let leds = match args.leds {
        Some(leds) => leds,
        None => {
            let config = json(base, &poi.call(|client, base| client.get(format!("{base}/api/device/config")), "")?)?;
            config["ledCount"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| format!("{base} did not say how many LEDs its strip has (ledCount): pass --leds"))?
        }
    };
    if args.name.as_deref().is_some_and(|name| name.chars().any(char::is_control)) {
        return Err(format!("--name {:?}: a name has no line breaks or other control characters", args.name));
    }
    let (picture, source) = read_picture(&args.picture, leds, &args.shaping)?;
    let (width, height) = (picture.width(), picture.height());
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args.picture.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let form = Form { name: Some(&name), filename: &format!("image_{width}x{height}.rgb"), pixels: picture.pixels() };
    let (content_type, body) = form.encode();
    let sent = |client: &reqwest::Client, base: &str| {
        client.post(format!("{base}/api/image")).header("content-type", content_type).body(body)
    };
    let answer =
        json(base, &poi.call(sent, " (a board stores images up to 38,400 bytes: try a smaller --max-width)")?)?;
    println!(
        "uploaded {} to {base} as {name:?} ({width}x{height}, {} bytes, from {source}): image {}, playing",
        args.picture.display(),
        picture.pixels().len(),
        answer["id"].as_str().unwrap_or("?"),
    );
    Ok(())
}

/// A poi's answer as JSON.
fn json(base: &str, body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|_| format!("{base} answered with no JSON"))
}

/// The upload form (`POST /api/image`): a `name` field if given, then the raw file.
pub struct Form<'a> {
    /// The image's name on the poi; without one, the poi names it after the file.
    pub name: Option<&'a str>,
    /// `image_WxH.rgb`.
    pub filename: &'a str,
    /// Raw RGB, row-major, row y for LED y.
    pub pixels: &'a [u8],
}

impl Form<'_> {
    /// The body as the existing web app sends it, and its content type.
    pub fn encode(&self) -> (String, Vec<u8>) {
        // One the pixels do not hold (a name holds no line break, checked in `run`): the
        // poi finds the file's end by it.
        let boundary = (0u32..)
            .map(|n| format!("povpoi-upload-{n:08x}"))
            .find(|b| !self.pixels.windows(b.len()).any(|w| w == b.as_bytes()))
            .expect("some boundary is not in the pixels");
        let mut body = Vec::new();
        if let Some(name) = self.name {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n").bytes(),
            );
        }
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                self.filename
            )
            .bytes(),
        );
        body.extend_from_slice(self.pixels);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}
