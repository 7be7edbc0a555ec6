//! `GET /api/backup` and `POST /api/restore`: a poi's library as one file, to keep on a
//! laptop or to move a show to a new poi. The format is described in docs/BACKUP.md:
//!
//! ```text
//! "povpoiB1"            magic, the last byte the format's version
//! SHA-256 (32 bytes)    of every byte after the header
//! u32 little-endian     length M of the manifest
//! M bytes               the manifest, JSON: names, sizes, pattern and sequence slots, settings
//! pixels                each distinct picture's RGB bytes once, in the manifest's order
//! ```
//!
//! A restore checks the whole file (hash, manifest, every picture against its hash, every
//! slot) before it writes anything, so a truncated, damaged or foreign file is a 400 that
//! changes nothing; a write that fails half way (a disk that fills) is undone.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, extract::FromRequest};
use povpoi_core::device::ReplicaId;
use povpoi_core::hash::BlobHash;
use povpoi_core::model::{
    ImageId, MAX_HEIGHT, MAX_SEQUENCE_ITEMS, MAX_WIDTH, PATTERN_SLOTS, Pattern, PatternKind, Rgb, SEQUENCE_SLOTS,
    Sequence, SequenceItem, SequenceTarget, validate_name,
};
use povpoi_core::show::Cue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState, RawBody};
use crate::library::{Origin, Poi, now_ms};

/// First bytes of a backup: `povpoiB` and the format's version.
pub const MAGIC: &[u8; 8] = b"povpoiB1";
/// Magic, SHA-256 of the rest, manifest length.
const HEADER_LEN: usize = 8 + 32 + 4;
/// Largest backup a restore takes: 200 images of 400 x 64 (the most the display model
/// holds, 15.4 MB of pixels) with their manifest. One restore stays within one client's
/// share of the request body budget ([`crate::memory::BODY_BUDGET_PER_CLIENT`], 20 MiB),
/// so two at once from two clients fit the whole budget.
pub const RESTORE_BODY_LIMIT: usize = 16 * 1024 * 1024;
const _: () = assert!(RESTORE_BODY_LIMIT <= crate::memory::BODY_BUDGET_PER_CLIENT);
/// Room a restore leaves free besides its new pixels, for the snapshot saves that follow.
const RESTORE_MARGIN: u64 = 1024 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/backup", get(backup))
        .route("/api/restore", post(restore).layer(DefaultBodyLimit::max(RESTORE_BODY_LIMIT)))
}

/// The JSON part of a backup.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Manifest {
    /// The poi backed up (for the reader; a restore does not use them).
    device_name: String,
    device_id: String,
    /// When, ms since the epoch.
    created_ms: u64,
    brightness: u8,
    framerate: u16,
    images: Vec<ImageEntry>,
    patterns: Vec<PatternEntry>,
    sequences: Vec<SequenceEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEntry {
    name: String,
    width: u16,
    height: u16,
    /// SHA-256 of the RGB bytes, hex: the first image with a hash has its bytes in the file.
    pixels: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternEntry {
    index: u8,
    #[serde(rename = "type")]
    kind: u8,
    color1: Rgb,
    color2: Rgb,
    speed: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceEntry {
    index: u8,
    #[serde(rename = "loop")]
    looped: bool,
    items: Vec<ItemEntry>,
}

/// `{image: n}` (the n-th image of the manifest) or `{pattern: slot}`, with a duration.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ItemEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<u8>,
    duration_ms: u16,
}

// ----- backup -----

/// `GET /api/backup`: the whole library as one file (`application/octet-stream`, an
/// attachment named after the poi and the day).
async fn backup(State(node): State<AppState>) -> Result<Response, ApiError> {
    let (device_name, device_id) = {
        let c = node.config();
        (c.device_name.clone(), c.device_id.to_string())
    };
    // One at a time: a backup holds up to 16 MB while it is made.
    let _turn = super::HEAVY_WORK.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let name = device_name.clone();
    let file = node.library.write(Origin::Local, move |poi| write_backup(poi, name, device_id)).await?;
    let filename = format!("povpoi-{}-{}.povbackup", file_name_part(&device_name), utc_date(now_ms()));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file,
    )
        .into_response())
}

/// The backup file of `poi` (reads every picture: blocking).
fn write_backup(poi: &mut Poi, device_name: String, device_id: String) -> Result<Vec<u8>, ApiError> {
    let listed: Vec<(ImageId, String, u16, u16, BlobHash)> = poi
        .images()
        .map(|(id, meta)| (id, meta.name().to_owned(), meta.width(), meta.height(), meta.pixels()))
        .collect();
    let mut data = Vec::new();
    let mut stored = HashSet::new();
    let mut position = HashMap::new();
    let mut images = Vec::with_capacity(listed.len());
    for (n, (id, name, width, height, hash)) in listed.into_iter().enumerate() {
        if stored.insert(hash) {
            let pixels = poi.image_pixels(&hash)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "the pixels of image {name:?} ({id}) are still syncing to this poi: back up once GET \
                         /api/images shows every image available"
                    ),
                )
            })?;
            data.extend_from_slice(&pixels);
        }
        position.insert(id, n);
        images.push(ImageEntry { name, width, height, pixels: hash.to_string() });
    }
    let patterns = (0..PATTERN_SLOTS)
        .filter_map(|slot| poi.pattern(slot).map(|p| (slot, *p)))
        .map(|(index, p)| PatternEntry {
            index,
            kind: p.kind().id(),
            color1: p.color1(),
            color2: p.color2(),
            speed: p.speed(),
        })
        .collect();
    let sequences = (0..SEQUENCE_SLOTS)
        .filter_map(|slot| poi.sequence(slot).map(|s| (slot, s)))
        .filter_map(|(index, s)| {
            // An item naming an image deleted meanwhile plays nothing: it is left out.
            let items: Vec<ItemEntry> = s
                .items()
                .iter()
                .filter_map(|item| match item.target {
                    SequenceTarget::Image(id) => position.get(&id).map(|&n| ItemEntry {
                        image: Some(n),
                        pattern: None,
                        duration_ms: item.duration_ms,
                    }),
                    SequenceTarget::Pattern(slot) => {
                        Some(ItemEntry { image: None, pattern: Some(slot), duration_ms: item.duration_ms })
                    }
                })
                .collect();
            (!items.is_empty()).then_some(SequenceEntry { index, looped: s.looped(), items })
        })
        .collect();
    let settings = poi.settings();
    let manifest = Manifest {
        device_name,
        device_id,
        created_ms: now_ms(),
        brightness: settings.brightness,
        framerate: settings.framerate,
        images,
        patterns,
        sequences,
    };
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut body = Vec::with_capacity(4 + manifest.len() + data.len());
    body.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    body.extend_from_slice(&manifest);
    body.extend_from_slice(&data);
    let mut file = Vec::with_capacity(MAGIC.len() + 32 + body.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&Sha256::digest(&body));
    file.extend_from_slice(&body);
    Ok(file)
}

/// A poi's name as a safe part of a file name: letters, digits, `-`, `_` and `.`.
fn file_name_part(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let safe = safe.trim_matches(['_', '.']).to_owned();
    if safe.is_empty() { "poi".into() } else { safe }
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the epoch.
fn utc_date(ms: u64) -> String {
    // Days to a civil date (H. Hinnant's algorithm), proleptic Gregorian.
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// ----- restore -----

/// A backup checked whole: what a restore writes.
struct Plan {
    images: Vec<PlannedImage>,
    patterns: Vec<(u8, Pattern)>,
    sequences: Vec<PlannedSequence>,
    brightness: u8,
    framerate: u16,
}

struct PlannedImage {
    name: String,
    width: u16,
    height: u16,
    hash: BlobHash,
    /// Where its bytes are in the file.
    bytes: Range<usize>,
}

struct PlannedSequence {
    slot: u8,
    looped: bool,
    /// Targets and durations (ms); an image as its position in [`Plan::images`].
    items: Vec<(PlannedTarget, u16)>,
}

#[derive(Clone, Copy)]
enum PlannedTarget {
    Image(usize),
    Pattern(u8),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Checks a backup file whole, touching nothing.
fn check_backup(file: &[u8]) -> Result<Plan, ApiError> {
    if file.len() < HEADER_LEN {
        return Err(bad(format!(
            "not a povpoi backup: the file is {} bytes, shorter than the {HEADER_LEN}-byte header (cut short?)",
            file.len()
        )));
    }
    if file[..7] == MAGIC[..7] && file[7] != MAGIC[7] {
        return Err(bad(format!(
            "this backup is format version {:?}; this poi reads version {:?}: update povpoi",
            char::from(file[7]),
            char::from(MAGIC[7])
        )));
    }
    if &file[..8] != MAGIC {
        return Err(bad("not a povpoi backup: it does not start with \"povpoiB1\" (send a file from GET /api/backup)"));
    }
    let body = &file[40..];
    if Sha256::digest(body).as_slice() != &file[8..40] {
        return Err(bad("the backup is damaged or cut short: its SHA-256 does not match its contents"));
    }
    let manifest_len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    let rest = &body[4..];
    if manifest_len > rest.len() {
        return Err(bad(format!("the backup's manifest length {manifest_len} runs past the end of the file")));
    }
    let manifest: Manifest = serde_json::from_slice(&rest[..manifest_len])
        .map_err(|e| bad(format!("the backup's manifest is not valid: {e}")))?;
    let data_start = HEADER_LEN + manifest_len;

    let mut images = Vec::with_capacity(manifest.images.len());
    let mut blobs: HashMap<BlobHash, Range<usize>> = HashMap::new();
    let mut next = data_start;
    for (n, image) in manifest.images.iter().enumerate() {
        let what = |s: String| bad(format!("images[{n}] ({:?}): {s}", image.name));
        validate_name(&image.name).map_err(|e| what(format!("name: {e}")))?;
        if !(1..=MAX_WIDTH).contains(&image.width) || !(1..=MAX_HEIGHT).contains(&image.height) {
            return Err(what(format!(
                "{}x{} is outside 1-{MAX_WIDTH} columns by 1-{MAX_HEIGHT} LEDs",
                image.width, image.height
            )));
        }
        let hash = parse_hash(&image.pixels).ok_or_else(|| what("pixels is not a SHA-256 in hex".into()))?;
        let len = usize::from(image.width) * usize::from(image.height) * 3;
        let bytes = match blobs.get(&hash) {
            Some(range) if range.len() == len => range.clone(),
            Some(_) => return Err(what("the same pixels as an earlier image but another size".into())),
            None => {
                let range = next..next + len;
                if range.end > file.len() {
                    return Err(what("its pixels run past the end of the file".into()));
                }
                if !hash.verifies(&file[range.clone()]) {
                    return Err(what("its pixels do not match their hash".into()));
                }
                next = range.end;
                blobs.insert(hash, range.clone());
                range
            }
        };
        images.push(PlannedImage { name: image.name.clone(), width: image.width, height: image.height, hash, bytes });
    }
    if next != file.len() {
        return Err(bad(format!("the backup holds {} bytes after the pixels its manifest lists", file.len() - next)));
    }

    let mut patterns = Vec::new();
    for (n, p) in manifest.patterns.iter().enumerate() {
        let what = |s: String| bad(format!("patterns[{n}]: {s}"));
        if p.index >= PATTERN_SLOTS || patterns.iter().any(|(slot, _)| *slot == p.index) {
            return Err(what(format!("index {} is not a free slot 0-{}", p.index, PATTERN_SLOTS - 1)));
        }
        let kind = PatternKind::from_id(p.kind).map_err(|e| what(format!("type {}: {e}", p.kind)))?;
        let pattern = Pattern::new(kind, p.color1, p.color2, p.speed).map_err(|e| what(e.to_string()))?;
        patterns.push((p.index, pattern));
    }

    let mut sequences = Vec::new();
    for (n, s) in manifest.sequences.iter().enumerate() {
        let what = |s: String| bad(format!("sequences[{n}]: {s}"));
        if s.index >= SEQUENCE_SLOTS || sequences.iter().any(|q: &PlannedSequence| q.slot == s.index) {
            return Err(what(format!("index {} is not a free slot 0-{}", s.index, SEQUENCE_SLOTS - 1)));
        }
        if s.items.is_empty() || s.items.len() > MAX_SEQUENCE_ITEMS {
            return Err(what(format!("a sequence has 1-{MAX_SEQUENCE_ITEMS} items, not {}", s.items.len())));
        }
        let mut items = Vec::with_capacity(s.items.len());
        for (i, item) in s.items.iter().enumerate() {
            let target = match (item.image, item.pattern) {
                (Some(image), None) if image < images.len() => PlannedTarget::Image(image),
                (None, Some(slot)) if slot < PATTERN_SLOTS => PlannedTarget::Pattern(slot),
                _ => {
                    return Err(what(format!(
                        "items[{i}] must name an image of the backup (0-{}) or a pattern slot (0-{})",
                        images.len().saturating_sub(1),
                        PATTERN_SLOTS - 1
                    )));
                }
            };
            items.push((target, item.duration_ms));
        }
        // The core's own checks, with stand-in ids for the images not stored yet.
        Sequence::new(resolve(&items, stand_in), s.looped).map_err(|e| what(e.to_string()))?;
        sequences.push(PlannedSequence { slot: s.index, looped: s.looped, items });
    }
    if !(1..=255).contains(&manifest.framerate) {
        return Err(bad(format!("framerate must be 1-255, not {}", manifest.framerate)));
    }
    Ok(Plan { images, patterns, sequences, brightness: manifest.brightness, framerate: manifest.framerate })
}

fn stand_in(n: usize) -> ImageId {
    ImageId { origin: ReplicaId(0), seq: n as u64 + 1 }
}

/// Sequence items with images named by `id`.
fn resolve(items: &[(PlannedTarget, u16)], id: impl Fn(usize) -> ImageId) -> Vec<SequenceItem> {
    items
        .iter()
        .map(|&(target, duration_ms)| SequenceItem {
            target: match target {
                PlannedTarget::Image(n) => SequenceTarget::Image(id(n)),
                PlannedTarget::Pattern(slot) => SequenceTarget::Pattern(slot),
            },
            duration_ms,
        })
        .collect()
}

fn parse_hash(text: &str) -> Option<BlobHash> {
    let bytes = hex::decode(text).ok()?;
    Some(BlobHash(bytes.try_into().ok()?))
}

/// What a restore changed, to put back if a later step fails.
enum Undo {
    Image(ImageId),
    Pattern(u8, Option<Pattern>),
    Sequence(u8, Option<Sequence>),
    Brightness(u8),
    Framerate(u16),
}

/// What a restore did.
struct Restored {
    added: usize,
    present: usize,
}

/// `POST /api/restore` with a backup file as the raw body: adds the images not here yet
/// (same name and pixels count as here), fills the backup's pattern and sequence slots
/// (others stay as they are), sets brightness and frame rate. The body is taken only as
/// `application/octet-stream`, checked before it is read ([`povpoi_app::rules::octets_only`]).
async fn restore(State(node): State<AppState>, request: axum::extract::Request) -> Result<Json<Value>, ApiError> {
    povpoi_app::rules::octets_only(super::content_type(&request))?;
    let RawBody(file) = RawBody::from_request(request, &()).await.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(e.status, format!("a backup is at most {} MiB", RESTORE_BODY_LIMIT / (1024 * 1024)))
        } else {
            e
        }
    })?;
    let checked = file.clone();
    let plan = tokio::task::spawn_blocking(move || check_backup(&checked))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let _turn = super::HEAVY_WORK.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let cue = node.cue();
    let (patterns, sequences) = (plan.patterns.len(), plan.sequences.len());
    let (brightness, framerate) = (plan.brightness, plan.framerate);
    let done = node.library.write(Origin::Local, move |poi| apply(poi, &plan, &file, cue)).await?;
    Ok(Json(json!({
        "status": "ok",
        "imagesAdded": done.added,
        "imagesPresent": done.present,
        "patternsSet": patterns,
        "sequencesSet": sequences,
        "brightness": brightness,
        "framerate": framerate,
    })))
}

/// Writes a checked backup into `poi`; on a failure undoes what it wrote.
fn apply(poi: &mut Poi, plan: &Plan, file: &Bytes, cue: Cue) -> Result<Restored, ApiError> {
    let mut here: Vec<(String, BlobHash, ImageId)> =
        poi.images().map(|(id, meta)| (meta.name().to_owned(), meta.pixels(), id)).collect();
    let missing = poi.missing_blobs();
    let held: HashSet<BlobHash> = here.iter().map(|(_, h, _)| *h).filter(|h| !missing.contains(h)).collect();
    let mut new_bytes = 0u64;
    let mut counted = HashSet::new();
    for image in &plan.images {
        if !held.contains(&image.hash) && counted.insert(image.hash) {
            new_bytes += (image.bytes.len() as u64).div_ceil(4096) * 4096;
        }
    }
    let root = poi.storage().root().to_path_buf();
    if let Ok(space) = crate::storage::space(&root)
        && space.free < new_bytes + RESTORE_MARGIN
    {
        return Err(ApiError::insufficient_storage(format!(
            "disk full: the backup's new pictures need {new_bytes} bytes and {} are free on the disk holding {} \
             (with {RESTORE_MARGIN} kept for saving the library); delete images to make room",
            space.free,
            root.display()
        )));
    }

    let now = now_ms();
    let mut undo = Vec::new();
    let mut ids = Vec::with_capacity(plan.images.len());
    let mut present = 0;
    let result = (|| -> Result<(), povpoi_core::sync::Error> {
        for image in &plan.images {
            if let Some(at) = here.iter().position(|(name, hash, _)| *name == image.name && *hash == image.hash) {
                ids.push(here.remove(at).2);
                present += 1;
                continue;
            }
            let pixels = &file[image.bytes.clone()];
            let id = poi.add_image(&image.name, u32::from(image.width), u32::from(image.height), pixels, now)?;
            undo.push(Undo::Image(id));
            ids.push(id);
        }
        for &(slot, pattern) in &plan.patterns {
            let before = poi.pattern(slot).copied();
            poi.set_pattern(slot, pattern, now, cue)?;
            undo.push(Undo::Pattern(slot, before));
        }
        for planned in &plan.sequences {
            let sequence = Sequence::new(resolve(&planned.items, |n| ids[n]), planned.looped)?;
            let before = poi.sequence(planned.slot).cloned();
            poi.set_sequence(planned.slot, sequence, now, cue)?;
            undo.push(Undo::Sequence(planned.slot, before));
        }
        let before = poi.settings();
        poi.set_brightness(plan.brightness, now, cue)?;
        undo.push(Undo::Brightness(before.brightness));
        poi.set_framerate(plan.framerate, now, cue)?;
        undo.push(Undo::Framerate(before.framerate));
        Ok(())
    })();
    if let Err(e) = result {
        for step in undo.into_iter().rev() {
            let undone = match step {
                Undo::Image(id) => poi.delete_image(id, now),
                Undo::Pattern(slot, Some(p)) => poi.set_pattern(slot, p, now, cue),
                Undo::Pattern(slot, None) => poi.clear_pattern(slot, now, cue),
                Undo::Sequence(slot, Some(s)) => poi.set_sequence(slot, s, now, cue),
                Undo::Sequence(slot, None) => poi.clear_sequence(slot, now, cue),
                Undo::Brightness(b) => poi.set_brightness(b, now, cue),
                Undo::Framerate(f) => poi.set_framerate(f, now, cue),
            };
            if let Err(undo_error) = undone {
                tracing::error!(error = %undo_error, "cannot undo part of a failed restore");
            }
        }
        return Err(e.into());
    }
    Ok(Restored { added: plan.images.len() - present, present })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_file_names() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_798_675_200_000), "2026-12-31");
        assert_eq!(file_name_part("Left poi #1"), "Left_poi__1");
        assert_eq!(file_name_part("🔥"), "poi");
    }
}
