//! The API's rules about what a request may ask, whoever serves it: how JSON bodies and
//! their fields are read, and what may be selected to play. Each answer that breaks a rule
//! is an [`ApiError`] saying what to fix.

use alloc::format;
use alloc::string::{String, ToString};

use povpoi_core::model::{ImageId, Mode, Rgb, Selection};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Replica, Storage};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::ApiError;

/// Takes only a body sent as JSON (`Content-Type: application/json`, any case, any
/// parameters; 415 otherwise). A page on any site can post a form or text to a poi without
/// the browser asking first, but not JSON: endpoints that decide whom a poi trusts or which
/// network it joins (a pairing key, the network, peers given by address) take only this,
/// so no page a phone on the network opens can lock a poi or move it.
pub fn json_only(content_type: Option<&[u8]>) -> Result<(), ApiError> {
    sent_as(content_type, "application/json", "send the body as JSON, with Content-Type: application/json")
}

/// Takes only a body sent as a file's raw bytes (`Content-Type: application/octet-stream`,
/// any case, any parameters; 415 otherwise), for the endpoints that take a whole file to
/// write into the library (a backup): for the same reason as [`json_only`], no page on
/// another site can send that type without the browser asking the poi first.
pub fn octets_only(content_type: Option<&[u8]>) -> Result<(), ApiError> {
    let fix = "send the file's bytes as the body, with Content-Type: application/octet-stream";
    sent_as(content_type, "application/octet-stream", fix)
}

/// `Ok` when a `Content-Type` header names `media` (any case), alone or followed by
/// parameters; the `415` saying `fix` otherwise.
fn sent_as(content_type: Option<&[u8]>, media: &str, fix: &'static str) -> Result<(), ApiError> {
    let media = media.as_bytes();
    let named = content_type.is_some_and(|t| {
        t.len() >= media.len()
            && t[..media.len()].eq_ignore_ascii_case(media)
            && t[media.len()..].first().is_none_or(|b| *b == b';' || b.is_ascii_whitespace())
    });
    if named { Ok(()) } else { Err(ApiError::new(415, fix)) }
}

/// Parses a JSON object body, saying where it is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body is empty: send a JSON object"));
    }
    if core::str::from_utf8(bytes).is_err() {
        return Err(ApiError::bad_request("request body is not UTF-8 text"));
    }
    // serde would fill a struct from an array by position (`[1, 2]` as mode 1, index 2).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("request body must be a JSON object ({...})"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A JSON value as an error message quotes it: cut after 40 characters.
pub fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// An integer field within `min..=max`, `None` when absent or null; anything else (a string,
/// a fraction, out of range) is a 400 naming the field and the accepted range.
pub fn int_in(value: Option<&Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!("{field} must be an integer {min}-{max}, not {}", shown(value)))),
    }
}

/// A required integer field within `min..=max`.
pub fn required_int(value: Option<&Value>, field: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    int_in(value, field, min, max)?
        .ok_or_else(|| ApiError::bad_request(format!("{field} is missing: send an integer {min}-{max}")))
}

/// A colour field `{r, g, b}` (each 0-255), `None` when absent or null.
pub fn color(value: Option<&Value>, field: &str) -> Result<Option<Rgb>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let Some(object) = value.as_object() else {
        return Err(ApiError::bad_request(format!(
            "{field} must be an object {{\"r\": 0-255, \"g\": 0-255, \"b\": 0-255}}, not {}",
            shown(value)
        )));
    };
    if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "r" | "g" | "b")) {
        return Err(ApiError::bad_request(format!("{field} has an unknown key {key:?}: a colour is {{r, g, b}}")));
    }
    let channel = |c: &str| -> Result<u8, ApiError> {
        let n = required_int(object.get(c), &format!("{field}.{c}"), 0, 255)?;
        Ok(n as u8)
    };
    Ok(Some(Rgb::new(channel("r")?, channel("g")?, channel("b")?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrightnessRequest {
    brightness: Option<Value>,
}

/// The brightness a `POST /api/brightness` body asks for (0-255).
pub fn brightness_asked(body: &[u8]) -> Result<u8, ApiError> {
    let ask: BrightnessRequest = parse_json(body)?;
    Ok(required_int(ask.brightness.as_ref(), "brightness", 0, 255)? as u8)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FramerateRequest {
    framerate: Option<Value>,
}

/// The frame rate a `POST /api/framerate` body asks for (1-255: the existing system kept it
/// in one byte).
pub fn framerate_asked(body: &[u8]) -> Result<u16, ApiError> {
    let ask: FramerateRequest = parse_json(body)?;
    Ok(required_int(ask.framerate.as_ref(), "framerate", 1, 255)? as u16)
}

/// What `/api/mode` asks to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A mode with an index (for images, the position in `/api/images`).
    At(Selection),
    /// An image by its id.
    Image(ImageId),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: Option<Value>,
    index: Option<Value>,
    id: Option<Value>,
}

/// What a `POST /api/mode` body asks to play: `{mode, index}`, or `{mode: 1, id}` for an
/// image by id.
pub fn mode_asked(body: &[u8]) -> Result<Choice, ApiError> {
    let ask: ModeRequest = parse_json(body)?;
    let mode = Mode::from_id(required_int(ask.mode.as_ref(), "mode", 0, 4)? as u8)?;
    let index = int_in(ask.index.as_ref(), "index", 0, u64::from(u16::MAX))?;
    match ask.id.filter(|v| !v.is_null()) {
        None => Ok(Choice::At(Selection { mode, index: index.unwrap_or(0) as u16 })),
        Some(_) if mode != Mode::Image => {
            Err(ApiError::bad_request("id names an image: send it with mode 1, or send index instead"))
        }
        Some(_) if index.is_some() => {
            Err(ApiError::bad_request("send index or id, not both: they could name different images"))
        }
        Some(id) => id.as_str().and_then(|s| s.parse().ok()).map(Choice::Image).ok_or_else(|| {
            ApiError::bad_request(format!(
                "id must be an image id as /api/images shows it (\"0123456789abcdef-1\"), not {}",
                shown(&id)
            ))
        }),
    }
}

/// Refuses a selection of an image, pattern or sequence that is not there (the poi would
/// play black with no word why).
pub fn check_choice<S: Storage>(poi: &Replica<S>, choice: Choice) -> Result<(), ApiError> {
    let selection = match choice {
        Choice::Image(id) if poi.image(id).is_none() => {
            return Err(ApiError::bad_request(format!("no image with id {id}: see /api/images for the ids")));
        }
        Choice::Image(_) => return Ok(()),
        Choice::At(selection) => selection,
    };
    let index = selection.index;
    let missing = match selection.mode {
        Mode::Image => {
            let count = poi.image_count();
            (usize::from(index) >= count).then(|| {
                format!("no image at index {index}: /api/images lists {count} (index 0 to {})", count.max(1) - 1)
            })
        }
        Mode::Pattern => u8::try_from(index)
            .ok()
            .and_then(|slot| poi.pattern(slot))
            .is_none()
            .then(|| format!("pattern slot {index} is empty: fill it with POST /api/pattern, see /api/patterns")),
        Mode::Sequence => u8::try_from(index)
            .ok()
            .and_then(|slot| poi.sequence(slot))
            .is_none()
            .then(|| format!("sequence slot {index} is empty: fill it with PUT /api/sequences/{index}")),
        Mode::Idle | Mode::Live => None,
    };
    missing.map_or(Ok(()), |why| Err(ApiError::bad_request(why)))
}

/// Stores what plays (a replicated setting, from `cue`) once [`check_choice`] passes, and
/// returns what plays now. An image is stored by id, so what plays stays put as the
/// library changes.
pub fn select<S: Storage>(
    poi: &mut Replica<S>,
    choice: Choice,
    now_ms: u64,
    cue: Cue,
) -> Result<(Selection, Option<ImageId>), ApiError> {
    check_choice(poi, choice)?;
    match choice {
        Choice::At(selection) => poi.set_selection(selection, now_ms, cue)?,
        Choice::Image(id) => poi.select_image(id, now_ms, cue)?,
    }
    Ok((poi.settings().selection, poi.selected_image()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_taken_only_as_the_type_its_endpoint_names() {
        for taken in ["application/json", "Application/JSON; charset=utf-8", "application/json ;x=1"] {
            assert!(json_only(Some(taken.as_bytes())).is_ok(), "{taken}");
        }
        for refused in
            ["text/plain", "application/jsonp", "multipart/form-data; boundary=x", "application/octet-stream"]
        {
            assert_eq!(json_only(Some(refused.as_bytes())).unwrap_err().status, 415, "{refused}");
        }
        assert_eq!(json_only(None).unwrap_err().status, 415);
        for taken in ["application/octet-stream", "APPLICATION/Octet-Stream;x=1"] {
            assert!(octets_only(Some(taken.as_bytes())).is_ok(), "{taken}");
        }
        for refused in ["text/plain", "application/x-www-form-urlencoded", "application/json", "application/octet"] {
            assert_eq!(octets_only(Some(refused.as_bytes())).unwrap_err().status, 415, "{refused}");
        }
        assert_eq!(octets_only(None).unwrap_err().status, 415);
    }

    #[test]
    fn bodies_are_read_with_errors_that_say_what_to_fix() {
        assert_eq!(brightness_asked(br#"{"brightness": 40}"#).unwrap(), 40);
        let e = brightness_asked(br#"{"brightness": 300}"#).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "brightness must be an integer 0-255, not 300"));
        assert_eq!(brightness_asked(b"[40]").unwrap_err().message, "request body must be a JSON object ({...})");
        assert!(brightness_asked(br#"{"bright": 4}"#).unwrap_err().message.starts_with("invalid JSON body"));
        assert_eq!(
            framerate_asked(br#"{"framerate": 0}"#).unwrap_err().message,
            "framerate must be an integer 1-255, not 0"
        );
        assert_eq!(
            mode_asked(br#"{"mode": 2, "index": 4}"#).unwrap(),
            Choice::At(Selection { mode: Mode::Pattern, index: 4 })
        );
        assert!(mode_asked(br#"{"mode": 2, "id": "x"}"#).unwrap_err().message.starts_with("id names an image"));
    }
}
