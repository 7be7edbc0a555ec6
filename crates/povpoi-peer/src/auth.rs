//! Signing and sealing between poi of a group with a pairing key.
//!
//! A request is signed (HMAC-SHA256) over its method, path, body hash, time, a random nonce,
//! the sender's device id and call-back port, the receiver's device id and the sync group;
//! the answer is signed over the request's nonce, the status and the body hash, so a device
//! without the key can neither ask nor answer, and a request meant for one poi is refused
//! by any other. Bodies between poi are sealed too (XChaCha20-Poly1305 with a key derived
//! from the pairing key), so what crosses the LAN cannot be read without the key. The exact
//! strings are in docs/PROTOCOL.md section 10.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::key::GroupKey;

/// Header with the sender's device id (sent with or without a key).
pub const HEADER_DEVICE: &str = "x-povpoi-device";
/// Header carrying the caller's HTTP port, so the callee can call back.
pub const HEADER_PORT: &str = "x-povpoi-port";
/// Header with the sender's clock, ms since the epoch.
pub const HEADER_TIME: &str = "x-povpoi-time";
/// Header with the request's random nonce (32 hex digits).
pub const HEADER_NONCE: &str = "x-povpoi-nonce";
/// Header with the hex HMAC of a request or an answer.
pub const HEADER_SIGNATURE: &str = "x-povpoi-signature";
/// Header naming how a body is sealed ([`SEAL_SCHEME`]); absent on clear bodies.
pub const HEADER_SEALED: &str = "x-povpoi-sealed";
/// The one sealing scheme: XChaCha20-Poly1305, 24-byte nonce first, tag last.
pub const SEAL_SCHEME: &str = "xchacha20poly1305";
/// How far a request's time may be from the receiver's clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

type HmacSha256 = Hmac<Sha256>;

/// The authentication headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAuth {
    /// Sender's clock, ms since the epoch.
    pub time_ms: u64,
    /// Random, never reused.
    pub nonce: String,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

impl RequestAuth {
    /// The signature headers of a request, looked up with `header`, if it has all three; a
    /// time that is not a number is refused.
    pub fn from_headers<'h>(header: impl Fn(&str) -> Option<&'h str>) -> Result<Option<RequestAuth>, AuthError> {
        match (header(HEADER_TIME), header(HEADER_NONCE), header(HEADER_SIGNATURE)) {
            (Some(time), Some(nonce), Some(signature)) => Ok(Some(RequestAuth {
                time_ms: time.parse().map_err(|_| AuthError::Malformed("time is not a number"))?,
                nonce: nonce.into(),
                signature: signature.into(),
            })),
            _ => Ok(None),
        }
    }
}

/// What a signed request covers.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path and query as sent.
    pub path: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
    /// The sender's device id, as text.
    pub device: &'a str,
    /// The sender's `x-povpoi-port` value as sent (empty if none): where it may be called
    /// back, so nobody on the path can redirect that.
    pub port: &'a str,
    /// The receiver's device id, as text: a request captured on its way to one poi is
    /// refused by every other.
    pub receiver: &'a str,
    /// The sync group both are in.
    pub group: &'a str,
}

/// Why a request or answer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The group has a key and the request carried no signature.
    Missing,
    /// A header is not in the expected form.
    Malformed(&'static str),
    /// The signature does not match: wrong key or altered message.
    BadSignature,
    /// The request's time is too far from ours.
    Stale {
        /// Sender's clock minus ours, ms.
        skew_ms: i64,
    },
    /// This nonce was already used.
    Replayed,
    /// Too many requests within the replay window to remember them all.
    Busy,
    /// A sealed body did not open with this key (wrong key, or altered on the way).
    Unsealable,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => {
                f.write_str("this sync group is protected by a pairing key: unsigned request refused")
            }
            AuthError::Malformed(what) => write!(f, "malformed authentication header: {what}"),
            AuthError::BadSignature => {
                f.write_str("signature does not match: wrong or missing pairing key, or meant for another poi")
            }
            // Whole seconds in integers: formatting a float would put ~10 KB of float
            // printing into a board's flash image for this one message.
            AuthError::Stale { skew_ms } => write!(
                f,
                "request time is {} s from this poi's clock (at most {} s allowed): check both clocks",
                rounded_seconds(*skew_ms),
                MAX_CLOCK_SKEW_MS / 1000
            ),
            AuthError::Replayed => f.write_str("request replayed: this nonce was already used"),
            AuthError::Busy => f.write_str("too many signed requests in the last 10 minutes: try again later"),
            AuthError::Unsealable => f.write_str("sealed body does not open with this pairing key"),
        }
    }
}

impl core::error::Error for AuthError {}

/// `ms` in whole seconds, rounded to the nearest (halves away from zero).
fn rounded_seconds(ms: i64) -> i64 {
    let half = if ms < 0 { -500 } else { 500 };
    ms.saturating_add(half) / 1000
}

fn mac(key: &GroupKey, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.secret()).expect("HMAC takes keys of any length");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b"\n");
        }
        mac.update(part);
    }
    mac
}

fn request_mac(key: &GroupKey, what: &Signed<'_>, time_ms: u64, nonce: &str) -> HmacSha256 {
    let body_hash = hex::encode(Sha256::digest(what.body));
    let time = time_ms.to_string();
    mac(
        key,
        &[
            b"povpoi-request-v1",
            what.method.as_bytes(),
            what.path.as_bytes(),
            body_hash.as_bytes(),
            time.as_bytes(),
            nonce.as_bytes(),
            what.device.as_bytes(),
            what.port.as_bytes(),
            what.receiver.as_bytes(),
            what.group.as_bytes(),
        ],
    )
}

fn response_mac(key: &GroupKey, request_nonce: &str, status: u16, body: &[u8]) -> HmacSha256 {
    let body_hash = hex::encode(Sha256::digest(body));
    let status = status.to_string();
    mac(key, &[b"povpoi-response-v1", request_nonce.as_bytes(), status.as_bytes(), body_hash.as_bytes()])
}

/// A fresh request nonce: 16 random bytes as 32 hex digits.
pub fn new_nonce(rng: &mut impl CryptoRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Signs a request at `now_ms` with a fresh nonce.
pub fn sign_request(key: &GroupKey, what: &Signed<'_>, now_ms: u64, rng: &mut impl CryptoRng) -> RequestAuth {
    sign_request_with(key, what, now_ms, new_nonce(rng))
}

/// Signs a request at `now_ms` with `nonce` (from [`new_nonce`]; the body may already be
/// sealed for it).
pub fn sign_request_with(key: &GroupKey, what: &Signed<'_>, now_ms: u64, nonce: String) -> RequestAuth {
    let signature = hex::encode(request_mac(key, what, now_ms, &nonce).finalize().into_bytes());
    RequestAuth { time_ms: now_ms, nonce, signature }
}

/// Checks a request's signature (not its time or nonce: see [`crate::replay`]).
pub fn verify_request(key: &GroupKey, what: &Signed<'_>, auth: Option<&RequestAuth>) -> Result<(), AuthError> {
    let (auth, signature) = well_formed(auth)?;
    request_mac(key, what, auth.time_ms, &auth.nonce).verify_slice(&signature).map_err(|_| AuthError::BadSignature)
}

/// Signs an answer to the request that carried `request_nonce`.
pub fn sign_response(key: &GroupKey, request_nonce: &str, status: u16, body: &[u8]) -> String {
    hex::encode(response_mac(key, request_nonce, status, body).finalize().into_bytes())
}

/// Checks the signature of an answer to our request with `request_nonce`.
pub fn verify_response(
    key: &GroupKey,
    request_nonce: &str,
    status: u16,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), AuthError> {
    let signature = signature.ok_or(AuthError::Missing)?;
    let bytes = hex::decode(signature).map_err(|_| AuthError::Malformed("signature is not hex"))?;
    response_mac(key, request_nonce, status, body).verify_slice(&bytes).map_err(|_| AuthError::BadSignature)
}

/// Which way a sealed body travels: part of what the seal authenticates, so an answer can
/// never be passed off as a request or the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Initiator to responder.
    Request,
    /// Responder to initiator.
    Answer,
}

impl Way {
    fn label(self) -> &'static [u8] {
        match self {
            Way::Request => b"povpoi-request-v1",
            Way::Answer => b"povpoi-response-v1",
        }
    }
}

const SEAL_NONCE_LEN: usize = 24;
const SEAL_TAG_LEN: usize = 16;

/// The body cipher: its key is HKDF-SHA256 of the pairing key, so the MAC key and the
/// encryption key are never the same bytes.
fn body_cipher(key: &GroupKey) -> XChaCha20Poly1305 {
    let mut body_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"povpoi-seal-v1"), key.secret())
        .expand(b"xchacha20poly1305 body key", &mut body_key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    XChaCha20Poly1305::new(&body_key.into())
}

fn seal_aad(way: Way, request_nonce: &str) -> Vec<u8> {
    [way.label(), b"\n", request_nonce.as_bytes()].concat()
}

/// Bytes a sealed body has beyond its plain text: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = SEAL_NONCE_LEN + SEAL_TAG_LEN;

/// Encrypts a body of the exchange whose request carried `request_nonce`: a fresh random
/// 24-byte nonce, then the ciphertext and its 16-byte tag.
pub fn seal(key: &GroupKey, way: Way, request_nonce: &str, plain: &[u8], rng: &mut impl CryptoRng) -> Vec<u8> {
    let mut body = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
    body.extend_from_slice(plain);
    seal_vec(key, way, request_nonce, body, rng)
}

/// [`seal`] in `plain`'s own buffer: with [`SEAL_OVERHEAD`] bytes of spare capacity no second
/// copy is made, so a board seals an answer of one image's pixels holding it once.
pub fn seal_vec(
    key: &GroupKey,
    way: Way,
    request_nonce: &str,
    mut plain: Vec<u8>,
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    let mut nonce = [0u8; SEAL_NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let aad = seal_aad(way, request_nonce);
    let tag = body_cipher(key)
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut plain)
        .expect("XChaCha20-Poly1305 encrypts any in-memory buffer");
    let len = plain.len();
    plain.resize(len + SEAL_NONCE_LEN, 0);
    plain.copy_within(..len, SEAL_NONCE_LEN);
    plain[..SEAL_NONCE_LEN].copy_from_slice(&nonce);
    plain.extend_from_slice(&tag);
    plain
}

/// Decrypts what [`seal`] made for the same exchange and direction.
pub fn open(key: &GroupKey, way: Way, request_nonce: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
    open_vec(key, way, request_nonce, sealed.to_vec())
}

/// [`open`] in `sealed`'s own buffer, which becomes the plain text: no second copy.
pub fn open_vec(key: &GroupKey, way: Way, request_nonce: &str, mut sealed: Vec<u8>) -> Result<Vec<u8>, AuthError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(AuthError::Malformed("sealed body shorter than its nonce and tag"));
    }
    let tag_at = sealed.len() - SEAL_TAG_LEN;
    let (head, tag) = sealed.split_at_mut(tag_at);
    let (nonce, ciphertext) = head.split_at_mut(SEAL_NONCE_LEN);
    let aad = seal_aad(way, request_nonce);
    body_cipher(key)
        .decrypt_in_place_detached(XNonce::from_slice(nonce), &aad, ciphertext, Tag::from_slice(tag))
        .map_err(|_| AuthError::Unsealable)?;
    sealed.truncate(tag_at);
    sealed.copy_within(SEAL_NONCE_LEN.., 0);
    sealed.truncate(tag_at - SEAL_NONCE_LEN);
    Ok(sealed)
}

/// The headers present and in form: a 32-hex-digit nonce and a signature of 64 hex digits
/// (returned as bytes).
pub(crate) fn well_formed(auth: Option<&RequestAuth>) -> Result<(&RequestAuth, [u8; 32]), AuthError> {
    let auth = auth.ok_or(AuthError::Missing)?;
    if !is_nonce(&auth.nonce) {
        return Err(AuthError::Malformed("nonce must be 32 hex digits"));
    }
    let mut signature = [0u8; 32];
    hex::decode_to_slice(&auth.signature, &mut signature)
        .map_err(|_| AuthError::Malformed("signature must be 64 hex digits"))?;
    Ok((auth, signature))
}

/// Whether `text` is a request nonce: 32 hex digits.
pub fn is_nonce(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A time for the tests' requests.
    pub(crate) const NOW: u64 = 1_764_000_000_000;

    /// A key from its text.
    pub(crate) fn key(secret: &str) -> GroupKey {
        GroupKey::new(secret).unwrap()
    }

    /// What a test's request from poi 1 to poi 2 of "troupe" signs.
    pub(crate) fn what(body: &[u8]) -> Signed<'_> {
        Signed {
            method: "POST",
            path: "/api/sync/v1",
            body,
            device: "02:00:00:00:00:01",
            port: "8080",
            receiver: "02:00:00:00:00:02",
            group: "troupe",
        }
    }

    #[test]
    fn a_stale_request_states_its_skew_in_whole_seconds() {
        let text = |skew_ms| AuthError::Stale { skew_ms }.to_string();
        assert!(text(301_499).starts_with("request time is 301 s from"), "{}", text(301_499));
        assert!(text(301_500).starts_with("request time is 302 s from"), "{}", text(301_500));
        assert!(text(-400_600).starts_with("request time is -401 s from"), "{}", text(-400_600));
        assert!(text(i64::MAX).contains("(at most 300 s allowed)"));
    }

    #[test]
    fn a_signature_covers_every_field_and_the_key() {
        let k = key("pairing secret");
        let auth = sign_request_with(&k, &what(b"body"), NOW, new_nonce(&mut rand::rng()));
        assert_eq!(verify_request(&k, &what(b"body"), Some(&auth)), Ok(()));
        assert_eq!(verify_request(&key("other secret"), &what(b"body"), Some(&auth)), Err(AuthError::BadSignature));
        let altered = [
            what(b"bodz"),
            Signed { method: "PUT", ..what(b"body") },
            Signed { path: "/api/sync/push", ..what(b"body") },
            Signed { device: "02:00:00:00:00:09", ..what(b"body") },
            Signed { port: "9999", ..what(b"body") },
            Signed { receiver: "02:00:00:00:00:03", ..what(b"body") },
            Signed { group: "other", ..what(b"body") },
        ];
        for changed in altered {
            assert_eq!(verify_request(&k, &changed, Some(&auth)), Err(AuthError::BadSignature), "{changed:?}");
        }
        let mut later = auth.clone();
        later.time_ms += 1;
        assert_eq!(verify_request(&k, &what(b"body"), Some(&later)), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&k, &what(b"body"), None), Err(AuthError::Missing));
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // docs/PROTOCOL.md section 10: the fields joined by "\n" under the pairing key.
        let k = key("pairing secret");
        let nonce = "0123456789abcdef0123456789abcdef";
        let auth = sign_request_with(&k, &what(b"body"), NOW, nonce.into());
        let body_hash = hex::encode(Sha256::digest(b"body"));
        let text = alloc::format!(
            "povpoi-request-v1\nPOST\n/api/sync/v1\n{body_hash}\n{NOW}\n{nonce}\n02:00:00:00:00:01\n8080\n02:00:00:00:00:02\ntroupe"
        );
        let mut expected = <HmacSha256 as Mac>::new_from_slice(b"pairing secret").unwrap();
        expected.update(text.as_bytes());
        assert_eq!(auth.signature, hex::encode(expected.finalize().into_bytes()));
    }

    #[test]
    fn answers_are_bound_to_their_request_and_body() {
        let k = key("pairing secret");
        let sig = sign_response(&k, "aa", 200, b"answer");
        assert_eq!(verify_response(&k, "aa", 200, b"answer", Some(&sig)), Ok(()));
        assert_eq!(verify_response(&k, "ab", 200, b"answer", Some(&sig)), Err(AuthError::BadSignature));
        assert_eq!(verify_response(&k, "aa", 200, b"forged", Some(&sig)), Err(AuthError::BadSignature));
        assert_eq!(verify_response(&k, "aa", 400, b"answer", Some(&sig)), Err(AuthError::BadSignature));
        assert_eq!(verify_response(&k, "aa", 200, b"answer", None), Err(AuthError::Missing));
    }

    #[test]
    fn sealing_and_opening_in_place_keep_the_aead_layout_and_use_no_second_buffer() {
        use chacha20poly1305::aead::{Aead, Payload};
        let k = key("pairing secret");
        let plain = b"one image's pixels ".repeat(200);
        let mut buffer = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        buffer.extend_from_slice(&plain);
        let at = buffer.as_ptr();
        let sealed = seal_vec(&k, Way::Answer, "aa", buffer, &mut rand::rng());
        assert_eq!(sealed.as_ptr(), at, "sealed in the same buffer");
        // What the one-shot AEAD makes (peers built before this sealed that way): the nonce,
        // then the ciphertext and its tag.
        let (nonce, rest) = sealed.split_at(SEAL_NONCE_LEN);
        let aad = seal_aad(Way::Answer, "aa");
        let whole = body_cipher(&k).encrypt(XNonce::from_slice(nonce), Payload { msg: &plain, aad: &aad }).unwrap();
        assert_eq!(rest, whole.as_slice());
        let opened = open_vec(&k, Way::Answer, "aa", sealed).unwrap();
        assert_eq!(opened.as_ptr(), at, "opened in the same buffer");
        assert_eq!(opened, plain);
    }

    #[test]
    fn sealed_bodies_open_only_with_the_key_for_the_same_exchange_and_way() {
        let k = key("pairing secret");
        let rng = &mut rand::rng();
        let sealed = seal(&k, Way::Request, "aa", b"the library", rng);
        assert!(!sealed.windows(11).any(|w| w == b"the library"), "the body is not readable on the wire");
        assert_eq!(open(&k, Way::Request, "aa", &sealed).unwrap(), b"the library");
        assert_ne!(seal(&k, Way::Request, "aa", b"the library", rng), sealed, "a fresh nonce every time");
        assert_eq!(open(&key("other secret"), Way::Request, "aa", &sealed), Err(AuthError::Unsealable));
        assert_eq!(open(&k, Way::Answer, "aa", &sealed), Err(AuthError::Unsealable));
        assert_eq!(open(&k, Way::Request, "ab", &sealed), Err(AuthError::Unsealable));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&k, Way::Request, "aa", &altered), Err(AuthError::Unsealable));
        assert!(matches!(open(&k, Way::Request, "aa", &sealed[..30]), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn headers_are_read_all_or_nothing_and_a_bad_time_is_refused() {
        let headers = |time: &'static str| {
            move |name: &str| match name {
                HEADER_TIME => Some(time),
                HEADER_NONCE => Some("n"),
                HEADER_SIGNATURE => Some("s"),
                _ => None,
            }
        };
        let auth = RequestAuth::from_headers(headers("12")).unwrap().unwrap();
        assert_eq!((auth.time_ms, auth.nonce.as_str(), auth.signature.as_str()), (12, "n", "s"));
        assert!(matches!(RequestAuth::from_headers(headers("soon")), Err(AuthError::Malformed(_))));
        assert_eq!(RequestAuth::from_headers(|_| None), Ok(None));
        let no_signature = |name: &str| match name {
            HEADER_TIME => Some("12"),
            HEADER_NONCE => Some("n"),
            _ => None,
        };
        assert_eq!(RequestAuth::from_headers(no_signature), Ok(None));
    }
}
