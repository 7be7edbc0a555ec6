//! Content: images, pattern slots and sequences as the API reads and edits them, whoever
//! serves it. The rules (what a request may ask, in which words it is refused) and the
//! answers' shapes live here once; a node runs them under its library lock, a board's
//! [`App`] routes to them itself (`App::content`).
//!
//! Names and indices follow the existing system (shared/spec sections 2-3): the "SD"
//! endpoints name images by their name (or id), patterns and sequences by slot.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use povpoi_core::hash::BlobHash;
use povpoi_core::model::{
    ImageId, ImageMeta, MAX_HEIGHT, MAX_SEQUENCE_ITEMS, MAX_WIDTH, Mode, PATTERN_SLOTS, Pattern, PatternKind,
    SEQUENCE_SLOTS, Selection, Sequence, SequenceItem, SequenceTarget, validate_name,
};
use povpoi_core::show::Cue;
use povpoi_core::sync::{ImageCursor, Key, Replica, Storage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answers;
use crate::api::{ApiError, Request, Response};
use crate::app::{App, Now};
use crate::rules::{self, color, int_in, parse_json, required_int};

// ----- answers -----

/// One image as `/api/images` lists it; `index` is its position, what `/api/mode` selects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageEntry {
    /// The image id (`0123456789abcdef-1`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Columns.
    pub width: u16,
    /// Rows (LEDs).
    pub height: u16,
    /// Bytes of pixels.
    pub size: usize,
    /// When it was last changed, ms since the Unix epoch.
    pub timestamp: u64,
    /// Its position in the library's order.
    pub index: usize,
    /// The hash of its pixels.
    pub pixels: String,
    /// Whether this poi holds its pixels (else they are still syncing to it).
    pub available: bool,
}

/// One filled pattern slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatternEntry {
    /// The slot.
    pub index: u8,
    /// The pattern kind's number.
    #[serde(rename = "type")]
    pub kind: u8,
    /// The pattern kind's name.
    pub name: &'static str,
    /// First colour.
    pub color1: povpoi_core::model::Rgb,
    /// Second colour.
    pub color2: povpoi_core::model::Rgb,
    /// Speed, 1-255.
    pub speed: u8,
}

/// One filled sequence slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SequenceEntry {
    /// The slot.
    pub index: u8,
    /// Whether it starts again after its last item.
    #[serde(rename = "loop")]
    pub looped: bool,
    /// What it plays, in order.
    pub items: Vec<StepEntry>,
}

/// One sequence item: an image or a pattern slot, for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEntry {
    /// The image id, when it plays an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The pattern slot, when it plays a pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<u8>,
    /// How long it plays, ms.
    pub duration_ms: u16,
}

/// `{"status": "ok", "message": ...}`: a deletion done.
#[derive(Serialize)]
pub struct Done {
    /// `"ok"`.
    pub status: &'static str,
    /// What was done.
    pub message: String,
}

impl Done {
    /// The answer saying `message`.
    pub fn saying(message: String) -> Done {
        Done { status: "ok", message }
    }
}

/// `{"status": "ok", "index": N}`: `POST /api/pattern`'s answer.
#[derive(Serialize)]
pub struct PatternStored {
    /// `"ok"`.
    pub status: &'static str,
    /// The slot filled.
    pub index: u8,
}

/// `{"status": "ok", "mode": 1, "index": N}`: `POST /api/sd/load`'s answer.
#[derive(Serialize)]
pub struct Loaded {
    /// `"ok"`.
    pub status: &'static str,
    /// The image mode's number.
    pub mode: u8,
    /// The image's position.
    pub index: u16,
}

/// `POST /api/image`'s answer: the image stored, and playing (mode 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageStored {
    /// `"ok"`.
    pub status: &'static str,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Columns.
    pub width: u32,
    /// Rows (LEDs).
    pub height: u32,
    /// Bytes of pixels.
    pub size: usize,
    /// Its position, what `/api/mode` selects.
    pub index: usize,
}

// ----- reading requests -----

/// The 400 of an upload whose body is not the form `POST /api/image` takes.
pub fn not_a_form() -> ApiError {
    ApiError::bad_request("send the image as multipart/form-data with one file field (image_<width>x<height>.rgb)")
}

/// The 400 of an upload form with a second file.
pub fn one_file_only() -> ApiError {
    ApiError::bad_request("send one file per upload")
}

/// The 400 of an upload form without a file.
pub fn no_file() -> ApiError {
    ApiError::bad_request("no file in the form: send one file field holding image_<width>x<height>.rgb")
}

/// The 400 of an upload form whose `what` (a field, the file name) is not UTF-8 text.
pub fn not_text(what: &str) -> ApiError {
    ApiError::bad_request(format!("the {what} is not UTF-8 text"))
}

/// The 400 of a multipart body that does not parse, saying where (`why`).
pub fn malformed_form(why: impl core::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("malformed multipart form: {why}"))
}

/// An upload's file name as a path would name it: refused, whatever follows.
pub fn check_upload_filename(filename: &str) -> Result<(), ApiError> {
    if filename.contains(['/', '\\']) || filename.contains("..") || filename.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "file name {filename:?} looks like a path: send the bare name image_<width>x<height>.rgb"
        )));
    }
    Ok(())
}

/// The size a raw RGB upload's name carries, `image_<W>x<H>.rgb`, within the display
/// model's limits (413 past them, as the existing system answers).
pub fn image_size(filename: &str) -> Result<(u32, u32), ApiError> {
    let form = || {
        ApiError::bad_request(format!(
            "file name {filename:?} does not carry the size: name the raw RGB file image_<width>x<height>.rgb \
             (e.g. image_20x32.rgb)"
        ))
    };
    let size = filename.strip_prefix("image_").and_then(|s| s.strip_suffix(".rgb")).ok_or_else(form)?;
    let (w, h) = size.split_once('x').ok_or_else(form)?;
    // Numbers too long to parse count as too large.
    let number = |s: &str| -> Result<u64, ApiError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(form());
        }
        Ok(s.parse().unwrap_or(u64::MAX))
    };
    let (width, height) = (number(w)?, number(h)?);
    if width > u64::from(MAX_WIDTH) || height > u64::from(MAX_HEIGHT) {
        return Err(ApiError::new(
            413,
            format!("image {width}x{height} is too large: at most {MAX_WIDTH} columns by {MAX_HEIGHT} LEDs"),
        ));
    }
    if width == 0 || height == 0 {
        return Err(ApiError::bad_request(format!("image {width}x{height} is empty: width and height start at 1")));
    }
    Ok((width as u32, height as u32))
}

/// The 400 of a raw file whose length is not its name's size.
pub fn wrong_length(held: usize, width: u32, height: u32) -> ApiError {
    let expected = width as usize * height as usize * 3;
    ApiError::bad_request(format!(
        "the file holds {held} bytes but a {width}x{height} image is {expected} (width x height x 3 RGB bytes)"
    ))
}

/// Whether a form's text field says yes: `true`, `1` or `on` (a checked HTML checkbox).
pub fn form_flag(field: &str, text: &str) -> Result<bool, ApiError> {
    match text.trim() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" | "" => Ok(false),
        other => Err(ApiError::bad_request(format!("{field} must be true or false, not {other:?}"))),
    }
}

/// An uploaded image's name: the form's `name` field, or else the file's name without
/// its extension.
pub fn upload_name(name: Option<String>, filename: &str) -> String {
    match name.filter(|n| !n.is_empty()) {
        Some(name) => name,
        None => filename.rsplit_once('.').map_or(filename, |(stem, _)| stem).into(),
    }
}

/// Adds an uploaded image with `add` (a node hands the pixels over, a board names those
/// it wrote as they arrived: [`Replica::add_stored_image`]) and plays it from `cue`, as
/// the existing upload did (mode 1).
pub fn add_image<S: Storage>(
    poi: &mut Replica<S>,
    name: String,
    (width, height): (u32, u32),
    add: impl FnOnce(&mut Replica<S>, &str) -> Result<ImageId, povpoi_core::sync::Error>,
    now_ms: u64,
    cue: Cue,
) -> Result<ImageStored, ApiError> {
    check_name(&name)?;
    let id = add(poi, &name)?;
    let index = poi.images().position(|(i, _)| i == id).unwrap_or(0);
    let index16 = u16::try_from(index).unwrap_or(u16::MAX);
    poi.set_selection(Selection { mode: Mode::Image, index: index16 }, now_ms, cue)?;
    let size = width as usize * height as usize * 3;
    Ok(ImageStored { status: "ok", id: id.to_string(), name, width, height, size, index })
}

/// An image id from a path or a body, with a 400 that says where to find one.
pub fn parse_image_id(text: &str) -> Result<ImageId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!("{text:?} is not an image id (like 0123456789abcdef-1): see GET /api/images"))
    })
}

/// The 404 of an image not stored.
pub fn no_image(id: impl core::fmt::Display) -> ApiError {
    ApiError::not_found(format!("no image {id}: see GET /api/images"))
}

/// A slot number from a path (`what`: "pattern" or "sequence").
pub fn parse_slot(text: &str, what: &str, slots: u8) -> Result<u8, ApiError> {
    text.parse::<u8>()
        .ok()
        .filter(|s| *s < slots)
        .ok_or_else(|| ApiError::bad_request(format!("{what} slot {text:?} is not a number 0-{}", slots - 1)))
}

/// Checks a user-given image name with the core's rules (the same every way in), naming it.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    validate_name(name).map_err(|e| ApiError::bad_request(format!("name {name:?}: {e}")))
}

/// The pattern fields of `PUT /api/patterns/{index}` (and of `POST /api/pattern`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternFields {
    #[serde(rename = "type")]
    kind: Option<Value>,
    color1: Option<Value>,
    color2: Option<Value>,
    speed: Option<Value>,
}

impl PatternFields {
    /// The pattern, with the existing system's defaults for what is not given.
    pub fn pattern(&self) -> Result<Pattern, ApiError> {
        let base = Pattern::default();
        let last_kind = PatternKind::ALL.len() as u64 - 1;
        let kind = int_in(self.kind.as_ref(), "type", 0, last_kind)?
            .map_or(base.kind(), |k| PatternKind::from_id(k as u8).unwrap_or(base.kind()));
        let speed = int_in(self.speed.as_ref(), "speed", 1, 255)?.map_or(base.speed(), |s| s as u8);
        let color1 = color(self.color1.as_ref(), "color1")?.unwrap_or(base.color1());
        let color2 = color(self.color2.as_ref(), "color2")?.unwrap_or(base.color2());
        Ok(Pattern::new(kind, color1, color2, speed)?)
    }
}

/// The body of `POST /api/pattern`: the slot and the pattern fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternRequest {
    index: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    color1: Option<Value>,
    color2: Option<Value>,
    speed: Option<Value>,
}

/// The slot and pattern `POST /api/pattern` asks for.
pub fn pattern_posted(body: &[u8]) -> Result<(u8, Pattern), ApiError> {
    let ask: PatternRequest = parse_json(body)?;
    let slot = required_int(ask.index.as_ref(), "index", 0, u64::from(PATTERN_SLOTS) - 1)? as u8;
    let PatternRequest { kind, color1, color2, speed, .. } = ask;
    Ok((slot, PatternFields { kind, color1, color2, speed }.pattern()?))
}

/// The body of `PUT /api/sequences/{index}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceRequest {
    items: Vec<Map<String, Value>>,
    #[serde(rename = "loop", default = "looped")]
    looped: bool,
}

/// Sequences loop unless told otherwise: a show runs until it is changed.
fn looped() -> bool {
    true
}

impl SequenceRequest {
    /// The sequence asked for, its images checked against `poi`'s library.
    pub fn sequence<S: Storage>(&self, poi: &Replica<S>) -> Result<Sequence, ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_SEQUENCE_ITEMS {
            return Err(ApiError::bad_request(format!(
                "a sequence has 1-{MAX_SEQUENCE_ITEMS} items, not {}",
                self.items.len()
            )));
        }
        let items =
            self.items.iter().enumerate().map(|(n, item)| sequence_item(poi, n, item)).collect::<Result<_, _>>()?;
        Ok(Sequence::new(items, self.looped)?)
    }
}

/// One sequence item from `{image: "<id>"} | {pattern: slot}` plus `durationMs`.
fn sequence_item<S: Storage>(poi: &Replica<S>, n: usize, item: &Map<String, Value>) -> Result<SequenceItem, ApiError> {
    let bad = |what: String| ApiError::bad_request(format!("items[{n}]: {what}"));
    if let Some(key) = item.keys().find(|k| !matches!(k.as_str(), "image" | "pattern" | "durationMs")) {
        return Err(bad(format!(
            "unknown field {key:?}: an item is {{image: id}} or {{pattern: slot}}, and durationMs"
        )));
    }
    let duration = required_int(item.get("durationMs"), &format!("items[{n}].durationMs"), 1, u64::from(u16::MAX))?;
    let target = match (item.get("image"), item.get("pattern")) {
        (Some(Value::String(text)), None) => {
            let id = text.parse::<ImageId>().map_err(|_| bad(format!("{text:?} is not an image id")))?;
            if poi.image(id).is_none() {
                return Err(bad(format!("no image {id} on this poi: see GET /api/images")));
            }
            SequenceTarget::Image(id)
        }
        (None, Some(slot)) => {
            let slot = required_int(Some(slot), &format!("items[{n}].pattern"), 0, u64::from(PATTERN_SLOTS) - 1)?;
            SequenceTarget::Pattern(slot as u8)
        }
        _ => return Err(bad("give either image (an image id string) or pattern (a slot 0-17)".into())),
    };
    Ok(SequenceItem { target, duration_ms: duration as u16 })
}

/// The body of `PATCH /api/images/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The new name.
    pub name: String,
}

/// The body of `PUT /api/images/order`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    ids: Vec<String>,
}

impl OrderRequest {
    /// The ids, in the order asked.
    pub fn ids(&self) -> Result<Vec<ImageId>, ApiError> {
        self.ids.iter().map(|text| parse_image_id(text)).collect()
    }
}

/// The body of the SD endpoints that name one file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    /// An image's name, or its id.
    pub filename: String,
}

// ----- reading the library -----

/// The listing of the image at `index` of the library's order.
pub fn image_entry<S: Storage>(poi: &Replica<S>, index: usize, id: ImageId, meta: &ImageMeta) -> ImageEntry {
    ImageEntry {
        id: id.to_string(),
        name: meta.name().into(),
        width: meta.width(),
        height: meta.height(),
        size: meta.byte_len(),
        timestamp: poi.visible(&Key::Image(id)).map_or(0, |r| r.stamp.millis),
        index,
        pixels: meta.pixels().to_string(),
        available: poi.holds_blob(&meta.pixels()),
    }
}

/// Every image's listing, in the library's order.
pub fn image_entries<S: Storage>(poi: &Replica<S>) -> Vec<ImageEntry> {
    poi.images().enumerate().map(|(index, (id, meta))| image_entry(poi, index, id, meta)).collect()
}

/// An image's listing, by id.
pub fn find_image<S: Storage>(poi: &Replica<S>, id: ImageId) -> Option<ImageEntry> {
    let index = usize::from(poi.image_position(id)?);
    Some(image_entry(poi, index, id, poi.image(id)?))
}

/// What a `filename` of the SD endpoints names: an image id, else the one image of that name.
pub fn resolve_file<S: Storage>(poi: &Replica<S>, filename: &str) -> Result<(usize, ImageId), ApiError> {
    if let Ok(id) = filename.parse::<ImageId>()
        && let Some(index) = poi.image_position(id)
    {
        return Ok((usize::from(index), id));
    }
    let named: Vec<(usize, ImageId)> =
        poi.images().enumerate().filter(|(_, (_, meta))| meta.name() == filename).map(|(n, (id, _))| (n, id)).collect();
    match named.as_slice() {
        [] => Err(ApiError::not_found(format!("no image named {filename:?}: see GET /api/sd/list"))),
        [one] => Ok(*one),
        _ => Err(ApiError::new(
            409,
            format!("{} images are named {filename:?}: name one by its id (GET /api/images)", named.len()),
        )),
    }
}

/// A pattern slot's listing.
pub fn pattern_entry(slot: u8, pattern: &Pattern) -> PatternEntry {
    PatternEntry {
        index: slot,
        kind: pattern.kind().id(),
        name: pattern.kind().name(),
        color1: pattern.color1(),
        color2: pattern.color2(),
        speed: pattern.speed(),
    }
}

/// Every filled pattern slot's listing.
pub fn pattern_entries<S: Storage>(poi: &Replica<S>) -> Vec<PatternEntry> {
    (0..PATTERN_SLOTS).filter_map(|slot| poi.pattern(slot).map(|p| pattern_entry(slot, p))).collect()
}

/// A sequence slot's listing.
pub fn sequence_entry(slot: u8, sequence: &Sequence) -> SequenceEntry {
    let items = sequence
        .items()
        .iter()
        .map(|item| {
            let (image, pattern) = match item.target {
                SequenceTarget::Image(id) => (Some(id.to_string()), None),
                SequenceTarget::Pattern(slot) => (None, Some(slot)),
            };
            StepEntry { image, pattern, duration_ms: item.duration_ms }
        })
        .collect();
    SequenceEntry { index: slot, looped: sequence.looped(), items }
}

/// Every filled sequence slot's listing.
pub fn sequence_entries<S: Storage>(poi: &Replica<S>) -> Vec<SequenceEntry> {
    (0..SEQUENCE_SLOTS).filter_map(|slot| poi.sequence(slot).map(|s| sequence_entry(slot, s))).collect()
}

// ----- editing the library -----

/// Renames an image; answers its listing.
pub fn rename_image<S: Storage>(
    poi: &mut Replica<S>,
    id: ImageId,
    name: &str,
    now_ms: u64,
) -> Result<ImageEntry, ApiError> {
    check_name(name)?;
    if poi.image(id).is_none() {
        return Err(no_image(id));
    }
    poi.rename_image(id, name, now_ms)?;
    find_image(poi, id).ok_or_else(|| no_image(id))
}

/// Deletes an image.
pub fn delete_image<S: Storage>(poi: &mut Replica<S>, id: ImageId, now_ms: u64) -> Result<Done, ApiError> {
    if poi.image(id).is_none() {
        return Err(no_image(id));
    }
    poi.delete_image(id, now_ms)?;
    Ok(Done::saying(format!("image {id} deleted")))
}

/// Deletes the image an SD `filename` names.
pub fn delete_file<S: Storage>(poi: &mut Replica<S>, filename: &str, now_ms: u64) -> Result<Done, ApiError> {
    let (_, id) = resolve_file(poi, filename)?;
    poi.delete_image(id, now_ms)?;
    Ok(Done::saying(format!("{filename} deleted")))
}

/// Plays the image an SD `filename` names, from `cue`.
pub fn load_file<S: Storage>(poi: &mut Replica<S>, filename: &str, now_ms: u64, cue: Cue) -> Result<Loaded, ApiError> {
    let (index, _) = resolve_file(poi, filename)?;
    let index = u16::try_from(index).map_err(|_| ApiError::bad_request("image index beyond 65535"))?;
    poi.set_selection(Selection { mode: Mode::Image, index }, now_ms, cue)?;
    Ok(Loaded { status: "ok", mode: Mode::Image as u8, index })
}

/// Empties a pattern slot, from `cue`.
pub fn clear_pattern<S: Storage>(poi: &mut Replica<S>, slot: u8, now_ms: u64, cue: Cue) -> Result<Done, ApiError> {
    if poi.pattern(slot).is_none() {
        return Err(ApiError::not_found(format!("pattern slot {slot} is already empty")));
    }
    poi.clear_pattern(slot, now_ms, cue)?;
    Ok(Done::saying(format!("pattern slot {slot} cleared")))
}

/// Fills a sequence slot as `ask` says, from `cue`; answers its listing.
pub fn put_sequence<S: Storage>(
    poi: &mut Replica<S>,
    slot: u8,
    ask: &SequenceRequest,
    now_ms: u64,
    cue: Cue,
) -> Result<SequenceEntry, ApiError> {
    let sequence = ask.sequence(poi)?;
    let answer = sequence_entry(slot, &sequence);
    poi.set_sequence(slot, sequence, now_ms, cue)?;
    Ok(answer)
}

/// Empties a sequence slot, from `cue`.
pub fn clear_sequence<S: Storage>(poi: &mut Replica<S>, slot: u8, now_ms: u64, cue: Cue) -> Result<Done, ApiError> {
    if poi.sequence(slot).is_none() {
        return Err(ApiError::not_found(format!("sequence slot {slot} is already empty")));
    }
    poi.clear_sequence(slot, now_ms, cue)?;
    Ok(Done::saying(format!("sequence slot {slot} cleared")))
}

// ----- lists sent item by item -----

/// Which list a [`Listing`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `GET /api/images`: `{"images": [ImageEntry...]}`.
    Images,
    /// `GET /api/sd/list`: `{"files": [name...]}`.
    FileNames,
    /// `GET /api/images/{id}/pixels`: the image's pixels (this many bytes stored under this
    /// hash), [`PIXELS_PIECE`] bytes a part, read from storage as they go.
    Pixels(BlobHash, usize),
}

/// Bytes of pixels a [`Listing`] of them sends a part: about a listed image's JSON, so a
/// board's heap holds no more for them than for a list.
pub const PIXELS_PIECE: usize = 256;

/// A list answered item by item, as the library changes nothing meanwhile: a board's heap
/// holds one item at a time, not the 44 KB that 200 images list to. The platform calls
/// [`App::list_next`] until it says the list ended, sending what each call wrote. A change
/// of the library once the list began to go out cuts it off: the answer ends with its JSON
/// unclosed, which a client's parser refuses, so no client takes a mixed list for whole
/// (HTTP-level the answer still ends normally: picoserve's chunked writer has no other end).
/// A change before anything went out just lists the library as it is then. Pixels never
/// change under their hash: only their becoming unreadable (the image deleted and its
/// pixels collected) cuts them short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    listed: Listed,
    /// The library digest when the list began.
    digest: String,
    /// Items written so far.
    written: usize,
    /// Where the walk through the library's order stands.
    cursor: ImageCursor,
    /// Whether the head and the tail were written.
    opened: bool,
    closed: bool,
}

/// The library changed while a [`Listing`] was sent: the answer is to be cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingCut;

impl core::fmt::Display for ListingCut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the library changed while it was listed, or the pixels sent became unreadable")
    }
}

/// Begins a listing of what the library holds now (the digest it is checked against is
/// taken when the list opens, [`list_next`]).
fn listing(listed: Listed) -> Response {
    let listing = Listing {
        listed,
        digest: String::new(),
        written: 0,
        cursor: ImageCursor::default(),
        opened: false,
        closed: false,
    };
    let content_type = match listed {
        Listed::Pixels(..) => "application/octet-stream",
        Listed::Images | Listed::FileNames => "application/json",
    };
    Response {
        status: 200,
        content_type,
        headers: Vec::new(),
        body: Vec::new().into(),
        listing: Some(alloc::boxed::Box::new(listing)),
    }
}

impl Listing {
    /// The hash of the pixels this lists, when it lists an image's pixels: a platform that
    /// holds an image whole (a node) reads them at once, checked against it.
    pub fn pixels(&self) -> Option<BlobHash> {
        match self.listed {
            Listed::Pixels(hash, _) => Some(hash),
            Listed::Images | Listed::FileNames => None,
        }
    }
}

/// Appends the next part of `listing` of `poi`, whose library digest is `digest`, to `out`:
/// the list's head with its first item, then one item per call, then its tail. `Ok(false)`
/// once the tail was written.
pub fn list_next<S: Storage>(
    poi: &Replica<S>,
    digest: &str,
    listing: &mut Listing,
    out: &mut Vec<u8>,
) -> Result<bool, ListingCut> {
    if listing.closed {
        return Ok(false);
    }
    let images = match listing.listed {
        Listed::Pixels(hash, len) => return pixels_next(poi, hash, len, listing, out),
        Listed::Images => true,
        Listed::FileNames => false,
    };
    if !listing.opened {
        // Nothing went out yet: the list is of the library as it is now.
        listing.digest = digest.into();
        listing.opened = true;
        out.extend_from_slice(if images { b"{\"images\":[" } else { b"{\"files\":[" });
    } else if digest != listing.digest {
        return Err(ListingCut);
    }
    let index = listing.written;
    // One image found from where the last one was, without sorting the library: a board
    // keeps no list.
    let Some((id, meta, cursor)) =
        poi.next_image(listing.cursor).and_then(|(id, cursor)| Some((id, poi.image(id)?, cursor)))
    else {
        out.extend_from_slice(b"]}");
        listing.closed = true;
        return Ok(true);
    };
    if index > 0 {
        out.push(b',');
    }
    let item =
        if images { serde_json::to_vec(&image_entry(poi, index, id, meta)) } else { serde_json::to_vec(meta.name()) };
    out.extend_from_slice(&item.unwrap_or_default());
    listing.written += 1;
    listing.cursor = cursor;
    Ok(true)
}

/// Reads `response`'s listing, if it has one, into its body at once: for a platform that
/// has the memory (a node, `povpoi board`). The library is borrowed throughout, so nothing
/// can change it between items (the digest [`list_next`] compares is then any constant).
pub fn list_whole<S: Storage>(poi: &Replica<S>, response: &mut Response) {
    if let Some(mut listing) = response.listing.take() {
        while let Ok(true) = list_next(poi, "", &mut listing, response.body.to_mut()) {}
    }
}

/// [`list_next`] for an image's pixels: the next piece, read from storage.
fn pixels_next<S: Storage>(
    poi: &Replica<S>,
    hash: BlobHash,
    len: usize,
    listing: &mut Listing,
    out: &mut Vec<u8>,
) -> Result<bool, ListingCut> {
    if listing.written >= len {
        listing.closed = true;
        return Ok(false);
    }
    let (start, n) = (out.len(), (len - listing.written).min(PIXELS_PIECE));
    out.resize(start + n, 0);
    if !matches!(poi.storage().read_blob_part(&hash, listing.written, &mut out[start..]), Ok(true)) {
        out.truncate(start);
        return Err(ListingCut);
    }
    listing.written += n;
    Ok(true)
}

impl<S: Storage> App<S> {
    /// Appends the next part of `listing` to `out` ([`list_next`] over this poi's library).
    pub fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        list_next(self.replica(), self.digest(), listing, out)
    }

    /// Answers a request that reads or edits the library ([`answer`]); `None` for another
    /// path.
    pub(crate) fn content(&mut self, request: &Request<'_>, now: Now) -> Option<Result<Response, ApiError>> {
        let cue = self.cue(now);
        let answered = answer(self.replica_mut(), request, now.wall_ms(), cue)?;
        if answered.edited {
            self.edited(now);
        }
        Some(answered.response)
    }
}

/// A content request's answer, and whether it edited the library (which then goes to the
/// peers).
#[derive(Debug)]
pub struct Answered {
    /// What to send; a list is sent a part at a time through [`list_next`].
    pub response: Result<Response, ApiError>,
    /// The library was edited.
    pub edited: bool,
}

/// Answers a request that reads or edits the library: content (`/api/images*`,
/// `/api/pattern*`, `/api/sequences*`, `/api/sd/*`, all but the upload and `/api/sd/info`)
/// and the replicated play settings (`/api/mode`, `/api/brightness`, `/api/framerate`),
/// over `poi`, edits stamped `ms` and what they select played at `cue`; `None` for another
/// path. A node and a board route these requests here alike.
pub fn answer<S: Storage>(poi: &mut Replica<S>, request: &Request<'_>, ms: u64, cue: Cue) -> Option<Answered> {
    let mut content = Content { poi, ms, cue, edited: false };
    let response = content.route(request)?;
    Some(Answered { response, edited: content.edited })
}

/// One content request under way.
struct Content<'a, S: Storage> {
    poi: &'a mut Replica<S>,
    ms: u64,
    cue: Cue,
    edited: bool,
}

impl<S: Storage> Content<'_, S> {
    /// Runs an edit of the library; noted once it succeeded.
    fn edit<T>(&mut self, f: impl FnOnce(&mut Replica<S>, Cue) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let done = f(self.poi, self.cue)?;
        self.edited = true;
        Ok(done)
    }

    fn route(&mut self, request: &Request<'_>) -> Option<Result<Response, ApiError>> {
        let (method, path) = (request.method, request.path);
        let ms = self.ms;
        let answer = match (method, path) {
            ("GET", "/api/images") => Ok(listing(Listed::Images)),
            ("GET", "/api/sd/list") => Ok(listing(Listed::FileNames)),
            // An order set answers the new listing, as a node does.
            ("PUT", "/api/images/order") => self
                .edit(|poi, _| {
                    let ids = parse_json::<OrderRequest>(request.body)?.ids()?;
                    Ok(poi.set_image_order(ids, ms)?)
                })
                .map(|()| listing(Listed::Images)),
            ("POST", "/api/sd/delete") => self.edit(|poi, _| {
                let ask: FileRequest = parse_json(request.body)?;
                Ok(Response::json(200, &delete_file(poi, &ask.filename, ms)?))
            }),
            ("POST", "/api/sd/load") => self.edit(|poi, cue| {
                let ask: FileRequest = parse_json(request.body)?;
                Ok(Response::json(200, &load_file(poi, &ask.filename, ms, cue)?))
            }),
            ("POST", "/api/pattern") => self.edit(|poi, cue| {
                let (slot, pattern) = pattern_posted(request.body)?;
                poi.set_pattern(slot, pattern, ms, cue)?;
                Ok(Response::json(200, &PatternStored { status: "ok", index: slot }))
            }),
            ("POST", "/api/brightness") => self.edit(|poi, cue| {
                let brightness = rules::brightness_asked(request.body)?;
                poi.set_brightness(brightness, ms, cue)?;
                Ok(Response::json(200, &answers::BrightnessSet { status: "ok", brightness }))
            }),
            ("POST", "/api/framerate") => self.edit(|poi, cue| {
                let framerate = rules::framerate_asked(request.body)?;
                poi.set_framerate(framerate, ms, cue)?;
                Ok(Response::json(200, &answers::FramerateSet { status: "ok", framerate }))
            }),
            ("POST", "/api/mode") => self.edit(|poi, cue| {
                let choice = rules::mode_asked(request.body)?;
                let (selection, image) = rules::select(poi, choice, ms, cue)?;
                Ok(Response::json(
                    200,
                    &answers::ModeSet {
                        status: "ok",
                        mode: selection.mode as u8,
                        index: selection.index,
                        image_id: image.map(|id| id.to_string()),
                    },
                ))
            }),
            ("GET", "/api/patterns") => Ok(Response::json(200, &Patterns { patterns: pattern_entries(self.poi) })),
            ("GET", "/api/sequences") => Ok(Response::json(200, &Sequences { sequences: sequence_entries(self.poi) })),
            (_, "/api/images" | "/api/sd/list" | "/api/images/order" | "/api/sd/delete" | "/api/sd/load")
            | (_, "/api/pattern" | "/api/patterns" | "/api/sequences") => Err(ApiError::not_allowed()),
            (_, "/api/brightness" | "/api/framerate" | "/api/mode") => Err(ApiError::not_allowed()),
            _ => return self.item(request),
        };
        Some(answer)
    }

    /// One image, pattern slot or sequence slot, named in the path. The body is checked
    /// first, then the path (as axum, which reads a body before the handler runs, did on a
    /// node).
    fn item(&mut self, request: &Request<'_>) -> Option<Result<Response, ApiError>> {
        let (method, path, body) = (request.method, request.path, request.body);
        let ms = self.ms;
        if let Some(id) = path.strip_prefix("/api/images/").and_then(|rest| rest.strip_suffix("/pixels"))
            && !id.is_empty()
            && !id.contains('/')
        {
            if method != "GET" {
                return Some(Err(ApiError::not_allowed()));
            }
            // Read from storage a part at a time: a board holds no image whole in RAM.
            return Some(segment(id).and_then(|id| parse_image_id(&id)).and_then(|id| {
                let meta = self.poi.image(id).ok_or_else(|| no_image(id))?;
                let (hash, len) = (meta.pixels(), meta.byte_len());
                if !self.poi.holds_blob(&hash) {
                    return Err(still_syncing(id));
                }
                Ok(listing(Listed::Pixels(hash, len)))
            }));
        }
        // One segment after the prefix; anything else is the platform's to 404.
        let item = |prefix: &str| path.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'));
        let decoded = |prefix| item(prefix).map(segment);
        if let Some(text) = decoded("/api/images/") {
            let text = match text {
                Ok(text) => text,
                Err(e) => return Some(Err(e)),
            };
            return Some(match method {
                "GET" => parse_image_id(&text).and_then(|id| {
                    find_image(self.poi, id).map(|entry| Response::json(200, &entry)).ok_or_else(|| no_image(id))
                }),
                "PATCH" => parse_json::<RenameRequest>(body).and_then(|ask| {
                    let id = parse_image_id(&text)?;
                    self.edit(|poi, _| Ok(Response::json(200, &rename_image(poi, id, &ask.name, ms)?)))
                }),
                "DELETE" => parse_image_id(&text)
                    .and_then(|id| self.edit(|poi, _| Ok(Response::json(200, &delete_image(poi, id, ms)?)))),
                _ => Err(ApiError::not_allowed()),
            });
        }
        if let Some(text) = decoded("/api/patterns/") {
            let slot = || parse_slot(&text?, "pattern", PATTERN_SLOTS);
            return Some(match method {
                "GET" => slot().and_then(|slot| {
                    self.poi
                        .pattern(slot)
                        .map(|p| Response::json(200, &pattern_entry(slot, p)))
                        .ok_or_else(|| ApiError::not_found(format!("pattern slot {slot} is empty")))
                }),
                "PUT" => parse_json::<PatternFields>(body).and_then(|ask| {
                    let slot = slot()?;
                    let pattern = ask.pattern()?;
                    self.edit(|poi, cue| Ok(poi.set_pattern(slot, pattern, ms, cue)?))?;
                    Ok(Response::json(200, &pattern_entry(slot, &pattern)))
                }),
                "DELETE" => slot().and_then(|slot| {
                    self.edit(|poi, cue| Ok(Response::json(200, &clear_pattern(poi, slot, ms, cue)?)))
                }),
                _ => Err(ApiError::not_allowed()),
            });
        }
        if let Some(text) = decoded("/api/sequences/") {
            let slot = || parse_slot(&text?, "sequence", SEQUENCE_SLOTS);
            return Some(match method {
                "GET" => slot().and_then(|slot| {
                    self.poi
                        .sequence(slot)
                        .map(|s| Response::json(200, &sequence_entry(slot, s)))
                        .ok_or_else(|| ApiError::not_found(format!("sequence slot {slot} is empty")))
                }),
                "PUT" => parse_json::<SequenceRequest>(body).and_then(|ask| {
                    let slot = slot()?;
                    self.edit(|poi, cue| Ok(Response::json(200, &put_sequence(poi, slot, &ask, ms, cue)?)))
                }),
                "DELETE" => slot().and_then(|slot| {
                    self.edit(|poi, cue| Ok(Response::json(200, &clear_sequence(poi, slot, ms, cue)?)))
                }),
                _ => Err(ApiError::not_allowed()),
            });
        }
        None
    }
}

/// A path segment percent-decoded (`My%20pic`), or a 400 when that is not UTF-8 text.
fn segment(text: &str) -> Result<alloc::borrow::Cow<'_, str>, ApiError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request(format!("bad path: {text:?} is not UTF-8 text once percent-decoded")))
}

/// 409: an image is listed but its pixels have not arrived.
pub fn still_syncing(id: ImageId) -> ApiError {
    ApiError::new(409, format!("the pixels of image {id} are still syncing to this poi; try again soon"))
}

/// `{"patterns": [...]}`.
#[derive(Serialize)]
pub struct Patterns {
    /// The filled slots.
    pub patterns: Vec<PatternEntry>,
}

/// `{"sequences": [...]}`.
#[derive(Serialize)]
pub struct Sequences {
    /// The filled slots.
    pub sequences: Vec<SequenceEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::test_config;
    use crate::clock::ClockService;
    use core::net::{IpAddr, Ipv4Addr, SocketAddr};
    use povpoi_core::device::{DeviceId, ReplicaId};
    use povpoi_core::sync::{Identity, MemoryStorage};
    use serde_json::json;

    const NOW: Now = Now { wall_us: 1_800_000_000_000_000, own_us: 5_000_000 };

    /// A poi holding `names` as 2x2 images.
    fn poi(names: &[&str]) -> (App<MemoryStorage>, Vec<ImageId>) {
        let device = DeviceId([2, 0, 0, 0, 0, 1]);
        let id = Identity { replica: ReplicaId(1), device, group: "g".into() };
        let mut replica = Replica::open(MemoryStorage::default(), id).unwrap();
        let ids = names
            .iter()
            .enumerate()
            .map(|(n, name)| replica.add_image(name, 2, 2, &[n as u8; 12], 1_000 + n as u64).unwrap())
            .collect();
        (App::new(test_config(device, None), replica, ClockService::new(device, 1, 2, 0)), ids)
    }

    fn ask(app: &mut App<MemoryStorage>, method: &str, path: &str, body: &[u8]) -> Response {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40_000);
        let request = Request { method, path, query: None, headers: &[], body, from };
        app.handle(&request, NOW, &mut rand::rng())
    }

    /// A listing sent whole, as the parts `list_next` gives.
    fn sent(app: &App<MemoryStorage>, mut listing: alloc::boxed::Box<Listing>) -> Value {
        let mut body = Vec::new();
        while app.list_next(&mut listing, &mut body).unwrap() {}
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn pixels_go_out_a_part_at_a_time_and_stop_short_when_they_become_unreadable() {
        let device = DeviceId([2, 0, 0, 0, 0, 1]);
        let identity = Identity { replica: ReplicaId(1), device, group: "g".into() };
        let mut replica = Replica::open(MemoryStorage::default(), identity).unwrap();
        let pixels: Vec<u8> = (0..40 * 8 * 3).map(|i| (i % 251) as u8).collect();
        let id = replica.add_image("wide", 40, 8, &pixels, 1_000).unwrap();
        let mut app = App::new(test_config(device, None), replica, ClockService::new(device, 1, 2, 0));
        let path = alloc::format!("/api/images/{id}/pixels");
        let answer = ask(&mut app, "GET", &path, b"");
        assert_eq!((answer.status, answer.content_type), (200, "application/octet-stream"));
        let mut listing = answer.listing.expect("sent a part at a time");
        let (mut body, mut parts) = (Vec::new(), 0);
        while app.list_next(&mut listing, &mut body).unwrap() {
            parts += 1;
        }
        assert_eq!((body == pixels, parts), (true, pixels.len().div_ceil(PIXELS_PIECE)));
        assert_eq!(ask(&mut app, "DELETE", &path, b"").status, 405);
        // Gone from storage after the first part went out: cut short, not padded.
        let mut listing = ask(&mut app, "GET", &path, b"").listing.unwrap();
        let mut first = Vec::new();
        assert!(app.list_next(&mut listing, &mut first).unwrap());
        let hash = app.replica().image(id).unwrap().pixels();
        app.storage_mut().remove_blob(&hash).unwrap();
        let mut rest = Vec::new();
        assert_eq!(app.list_next(&mut listing, &mut rest), Err(ListingCut));
        assert!(rest.is_empty());
        // Not held here: the node's 409.
        let missing = ask(&mut app, "GET", &path, b"");
        assert_eq!(missing.status, 409);
    }

    #[test]
    fn a_listing_sent_item_by_item_is_the_listing_in_the_librarys_order() {
        let (mut app, ids) = poi(&["a", "b", "c", "d", "e"]);
        let order = format!(r#"{{"ids": ["{}", "{}"]}}"#, ids[2], ids[0]);
        let r = ask(&mut app, "PUT", "/api/images/order", order.as_bytes());
        assert_eq!((r.status, r.body.is_empty()), (200, true));
        let listed = sent(&app, r.listing.unwrap());
        let whole = serde_json::to_value(image_entries(app.replica())).unwrap();
        assert_eq!(listed, json!({ "images": whole }));
        let names: Vec<&str> = whole.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
        // The placed first, the others after them in the order they are kept.
        assert_eq!(names, ["c", "a", "b", "d", "e"]);
        let indices: Vec<u64> = whole.as_array().unwrap().iter().map(|i| i["index"].as_u64().unwrap()).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4]);
        assert_eq!(whole[0]["index"], json!(0));
        assert_eq!(whole[0]["available"], json!(true));

        let listing = ask(&mut app, "GET", "/api/sd/list", b"").listing.unwrap();
        assert_eq!(sent(&app, listing), json!({ "files": ["c", "a", "b", "d", "e"] }));
        let (mut empty, _) = poi(&[]);
        let listing = ask(&mut empty, "GET", "/api/images", b"").listing.unwrap();
        assert_eq!(sent(&empty, listing), json!({ "images": [] }));
    }

    #[test]
    fn a_listing_is_cut_off_when_the_library_changes_under_it() {
        let (mut app, ids) = poi(&["a", "b"]);
        let mut listing = ask(&mut app, "GET", "/api/images", b"").listing.unwrap();
        let mut body = Vec::new();
        assert_eq!(app.list_next(&mut listing, &mut body), Ok(true));
        let r = ask(&mut app, "DELETE", &format!("/api/images/{}", ids[1]), b"");
        assert_eq!(r.status, 200);
        assert_eq!(app.list_next(&mut listing, &mut body), Err(ListingCut));
        // Nothing sent yet: the list is of the library as it is when it starts going out.
        let listing = ask(&mut app, "GET", "/api/sd/list", b"").listing.unwrap();
        assert_eq!(ask(&mut app, "DELETE", &format!("/api/images/{}", ids[0]), b"").status, 200);
        assert_eq!(sent(&app, listing), json!({ "files": [] }));
        let (mut app, _) = poi(&["a"]);
        // A read changes nothing: a listing begun after it runs to its end.
        let listing = ask(&mut app, "GET", "/api/images", b"").listing.unwrap();
        ask(&mut app, "GET", "/api/patterns", b"");
        assert_eq!(sent(&app, listing)["images"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn slots_are_filled_read_and_emptied_with_answers_that_say_what_to_fix() {
        let (mut app, ids) = poi(&["a"]);
        let body = |r: &Response| serde_json::from_slice::<Value>(&r.body).unwrap();
        let r = ask(&mut app, "POST", "/api/pattern", br#"{"index": 4, "type": 3}"#);
        assert_eq!((r.status, body(&r)), (200, json!({"status": "ok", "index": 4})));
        let listed = body(&ask(&mut app, "GET", "/api/patterns", b""));
        assert_eq!(listed["patterns"][0]["type"], json!(3));
        let seq =
            format!(r#"{{"items": [{{"image": "{}", "durationMs": 9}}, {{"pattern": 4, "durationMs": 7}}]}}"#, ids[0]);
        let r = ask(&mut app, "PUT", "/api/sequences/2", seq.as_bytes());
        let want = json!({"index": 2, "loop": true, "items": [
            {"image": ids[0].to_string(), "durationMs": 9}, {"pattern": 4, "durationMs": 7}]});
        assert_eq!((r.status, body(&r)), (200, want.clone()));
        assert_eq!(body(&ask(&mut app, "GET", "/api/sequences/2", b"")), want);
        // Path segments are percent-decoded, as an HTTP router does.
        assert_eq!(body(&ask(&mut app, "GET", "/api/sequences/%32", b"")), want);
        let r = ask(&mut app, "GET", "/api/images/%FF", b"");
        assert_eq!(
            (r.status, body(&r)["error"].clone()),
            (400, json!("bad path: \"%FF\" is not UTF-8 text once percent-decoded"))
        );
        let r = ask(&mut app, "DELETE", "/api/patterns/4", b"");
        assert_eq!(body(&r)["message"], json!("pattern slot 4 cleared"));
        let errors = [
            ("GET", "/api/patterns/4", &b""[..], 404, "pattern slot 4 is empty"),
            ("PUT", "/api/patterns/18", br#"{"type": 1}"#, 400, "pattern slot \"18\" is not a number 0-17"),
            ("PUT", "/api/sequences/0", br#"{"items": []}"#, 400, "a sequence has 1-10 items, not 0"),
            ("DELETE", "/api/sequences/3", b"", 404, "sequence slot 3 is already empty"),
            ("POST", "/api/sd/delete", br#"{"filename": "zz"}"#, 404, "no image named \"zz\": see GET /api/sd/list"),
            (
                "PATCH",
                "/api/images/x",
                br#"{"name": "b"}"#,
                400,
                "\"x\" is not an image id (like 0123456789abcdef-1): see GET /api/images",
            ),
            ("POST", "/api/images", b"", 405, "this endpoint does not take that method"),
            (
                "GET",
                "/api/images/0123456789abcdef-1/pixels",
                b"",
                404,
                "no image 0123456789abcdef-1: see GET /api/images",
            ),
            ("GET", "/api/images/", b"", 404, "no such endpoint"),
            ("GET", "/api/patterns/3/x", b"", 404, "no such endpoint"),
            // The body is read before the path, as on a node.
            (
                "PATCH",
                "/api/images/x",
                br#"{"nam": "b"}"#,
                400,
                "invalid JSON body: unknown field `nam`, expected `name` at line 1 column 6",
            ),
        ];
        for (method, path, sent, status, error) in errors {
            let r = ask(&mut app, method, path, sent);
            assert_eq!((r.status, body(&r)), (status, json!({ "error": error })), "{method} {path}");
        }
        let r = ask(&mut app, "POST", "/api/sd/load", br#"{"filename": "a"}"#);
        assert_eq!(body(&r), json!({"status": "ok", "mode": 1, "index": 0}));
        assert_eq!(app.replica().selected_image(), Some(ids[0]));
    }
}
