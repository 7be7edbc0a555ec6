//! Pairing-key protection of peer requests and their answers.
//!
//! A request is signed (HMAC-SHA256) over its method, path, body hash, time, a random nonce,
//! the sender's device id and call-back port, the receiver's device id and the sync group;
//! the answer is signed over the request's nonce, the status and the body hash, so a device
//! without the key can neither ask nor answer, and a request meant for one poi is refused
//! by any other. Bodies between poi are sealed too (XChaCha20-Poly1305 with a key derived from the pairing key), so
//! what crosses the LAN cannot be read without the key. Requests more than
//! [`MAX_CLOCK_SKEW_MS`] away from the receiver's clock, or carrying a nonce already seen
//! within that window, are refused; the nonces are kept on disk, so a restart does not
//! reopen the window for a captured request. The exact strings are in docs/PROTOCOL.md.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::GroupKey;
use crate::storage::write_atomically;

/// Header with the sender's device id (sent with or without a key).
pub const HEADER_DEVICE: &str = "x-povpoi-device";
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
/// Most nonces remembered; beyond this the oldest are dropped early (and their requests
/// would be refused as stale only by time).
const MAX_REMEMBERED_NONCES: usize = 100_000;

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

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => {
                f.write_str("this sync group is protected by a pairing key: unsigned request refused")
            }
            AuthError::Malformed(what) => write!(f, "malformed authentication header: {what}"),
            AuthError::BadSignature => {
                f.write_str("signature does not match: wrong or missing pairing key, or meant for another poi")
            }
            AuthError::Stale { skew_ms } => write!(
                f,
                "request time is {:.0} s from this poi's clock (at most {} s allowed): check both clocks",
                *skew_ms as f64 / 1000.0,
                MAX_CLOCK_SKEW_MS / 1000
            ),
            AuthError::Replayed => f.write_str("request replayed: this nonce was already used"),
            AuthError::Busy => f.write_str("too many signed requests in the last 10 minutes: try again later"),
            AuthError::Unsealable => f.write_str("sealed body does not open with this pairing key"),
        }
    }
}

impl std::error::Error for AuthError {}

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
pub fn new_nonce() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// Signs a request at `now_ms` with a fresh nonce.
pub fn sign_request(key: &GroupKey, what: &Signed<'_>, now_ms: u64) -> RequestAuth {
    sign_request_with(key, what, now_ms, new_nonce())
}

/// Signs a request at `now_ms` with `nonce` (from [`new_nonce`]; the body may already be
/// sealed for it).
pub fn sign_request_with(key: &GroupKey, what: &Signed<'_>, now_ms: u64, nonce: String) -> RequestAuth {
    let signature = hex::encode(request_mac(key, what, now_ms, &nonce).finalize().into_bytes());
    RequestAuth { time_ms: now_ms, nonce, signature }
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

/// Encrypts a body of the exchange whose request carried `request_nonce`: a fresh random
/// 24-byte nonce, then the ciphertext and its 16-byte tag.
pub fn seal(key: &GroupKey, way: Way, request_nonce: &str, plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; SEAL_NONCE_LEN] = rand::rng().random();
    let aad = seal_aad(way, request_nonce);
    let sealed = body_cipher(key)
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
        .expect("XChaCha20-Poly1305 encrypts any in-memory buffer");
    [nonce.as_slice(), &sealed].concat()
}

/// Decrypts what [`seal`] made for the same exchange and direction.
pub fn open(key: &GroupKey, way: Way, request_nonce: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
    if sealed.len() < SEAL_NONCE_LEN + SEAL_TAG_LEN {
        return Err(AuthError::Malformed("sealed body shorter than its nonce and tag"));
    }
    let (nonce, ciphertext) = sealed.split_at(SEAL_NONCE_LEN);
    let aad = seal_aad(way, request_nonce);
    body_cipher(key)
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
        .map_err(|_| AuthError::Unsealable)
}

/// Refuses replayed and stale requests; remembers each accepted nonce for the skew window,
/// in memory and (when opened on a file) on disk, so a restarted poi still knows them.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<String, u64>,
    log: Option<Arc<Mutex<NonceLog>>>,
    /// Lines in the file (as far as this guard has asked for them): it is rewritten
    /// without the expired ones once they are most of it.
    logged: usize,
}

/// The accepted nonces on disk: one `time nonce` line each, appended as they come.
#[derive(Debug)]
struct NonceLog {
    path: PathBuf,
    file: File,
}

impl NonceLog {
    fn append_to(path: PathBuf) -> io::Result<NonceLog> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(NonceLog { path, file })
    }
}

/// A nonce taken in memory that still has to reach the disk: [`PendingNonce::persist`]
/// does the (blocking) write, off the async runtime's threads and outside the guard's lock.
#[derive(Debug)]
#[must_use = "a nonce not persisted could be replayed after a restart"]
pub struct PendingNonce {
    log: Arc<Mutex<NonceLog>>,
    line: String,
    /// The whole file anew (the live nonces) instead of one more line.
    rewrite: Option<String>,
}

impl PendingNonce {
    /// Writes the nonce to the card and flushes it before the request is served: a poi is
    /// switched off by cutting its power, and a nonce lost that way could be replayed after.
    pub fn persist(self) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let result = match self.rewrite {
            Some(all) => write_atomically(&log.path, all.as_bytes())
                .and_then(|()| NonceLog::append_to(log.path.clone()))
                .map(|fresh| *log = fresh),
            None => log.file.write_all(self.line.as_bytes()).and_then(|()| log.file.sync_data()),
        };
        // The request itself is sound; only its protection across a restart is weaker.
        if let Err(e) = result {
            tracing::warn!(path = %log.path.display(), error = %e, "cannot record a request nonce on disk");
        }
    }
}

fn nonce_lines<'a>(seen: impl Iterator<Item = (&'a String, &'a u64)>) -> String {
    seen.map(|(nonce, time)| format!("{time} {nonce}\n")).collect()
}

impl ReplayGuard {
    /// A guard that keeps its nonces in `path`: the ones still inside the window at `now_ms`
    /// are loaded (a line torn by a crash is skipped), the rest dropped from the file.
    pub fn open(path: &Path, now_ms: u64) -> io::Result<ReplayGuard> {
        let mut seen = HashMap::new();
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // Line by line as bytes: a line torn by a crash or garbled on the card is skipped,
        // not a reason to refuse to start.
        // Whether the file holds exactly the live nonces, one `time nonce` line each.
        let mut as_written = bytes.is_empty() || bytes.ends_with(b"\n");
        let lines = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        for line in lines.split(|b| *b == b'\n').filter(|_| !bytes.is_empty()) {
            let parsed = std::str::from_utf8(line).ok().and_then(|line| {
                let (time, nonce) = line.split_once(' ')?;
                Some((time.parse::<u64>().ok()?, nonce, line))
            });
            match parsed {
                Some((time, nonce, line)) if is_nonce(nonce) && time >= window_start(now_ms) => {
                    let fresh = seen.insert(nonce.to_owned(), time).is_none();
                    as_written &= fresh && line == format!("{time} {nonce}");
                }
                _ => as_written = false,
            }
        }
        // Rewritten only when something expired or is not as this poi writes it: start-up
        // must not need free space.
        if !as_written {
            write_atomically(path, nonce_lines(seen.iter()).as_bytes())?;
        }
        let log = NonceLog::append_to(path.to_owned())?;
        let logged = seen.len();
        Ok(ReplayGuard { seen, log: Some(Arc::new(Mutex::new(log))), logged })
    }

    /// What can be checked before the body has arrived: the headers are there and well
    /// formed, the time is inside the window and the nonce unused. A request failing this
    /// is refused without reading its body; passing it says nothing of the signature.
    pub fn precheck(&self, auth: Option<&RequestAuth>, now_ms: u64) -> Result<(), AuthError> {
        let (auth, _) = well_formed(auth)?;
        fresh(auth.time_ms, now_ms)?;
        if self.seen.contains_key(&auth.nonce) {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }

    /// Checks a request's signature, time and nonce; on success the nonce is used up in
    /// memory, and what is returned must be persisted before the request is served.
    pub fn admit(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<Option<PendingNonce>, AuthError> {
        let (auth, signature) = well_formed(auth)?;
        request_mac(key, what, auth.time_ms, &auth.nonce)
            .verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        fresh(auth.time_ms, now_ms)?;
        self.seen.retain(|_, time| *time >= window_start(now_ms));
        if self.seen.contains_key(&auth.nonce) {
            return Err(AuthError::Replayed);
        }
        // Forgetting a nonce still inside the window would let it be replayed: refuse instead.
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            return Err(AuthError::Busy);
        }
        self.seen.insert(auth.nonce.clone(), auth.time_ms);
        let Some(log) = &self.log else { return Ok(None) };
        self.logged += 1;
        let rewrite = (self.logged > 2 * self.seen.len() + 1_024).then(|| {
            self.logged = self.seen.len();
            nonce_lines(self.seen.iter())
        });
        Ok(Some(PendingNonce { log: log.clone(), line: format!("{} {}\n", auth.time_ms, auth.nonce), rewrite }))
    }

    /// [`ReplayGuard::admit`], then the nonce written to disk at once (blocking).
    pub fn verify(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        self.admit(key, what, auth, now_ms).map(|pending| pending.map_or((), PendingNonce::persist))
    }
}

/// The headers present and in form: a 32-hex-digit nonce and a signature of 64 hex digits
/// (returned as bytes).
fn well_formed(auth: Option<&RequestAuth>) -> Result<(&RequestAuth, [u8; 32]), AuthError> {
    let auth = auth.ok_or(AuthError::Missing)?;
    if !is_nonce(&auth.nonce) {
        return Err(AuthError::Malformed("nonce must be 32 hex digits"));
    }
    let mut signature = [0u8; 32];
    hex::decode_to_slice(&auth.signature, &mut signature)
        .map_err(|_| AuthError::Malformed("signature must be 64 hex digits"))?;
    Ok((auth, signature))
}

/// Refuses a request time too far from ours.
fn fresh(time_ms: u64, now_ms: u64) -> Result<(), AuthError> {
    let skew_ms = (i128::from(time_ms) - i128::from(now_ms)).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    if skew_ms.unsigned_abs() > MAX_CLOCK_SKEW_MS {
        return Err(AuthError::Stale { skew_ms });
    }
    Ok(())
}

/// The signature headers of a request, if it has all three; a time that is not a number
/// is refused.
pub fn request_auth(headers: &axum::http::HeaderMap) -> Result<Option<RequestAuth>, AuthError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (header(HEADER_TIME), header(HEADER_NONCE), header(HEADER_SIGNATURE)) {
        (Some(time), Some(nonce), Some(signature)) => Ok(Some(RequestAuth {
            time_ms: time.parse().map_err(|_| AuthError::Malformed("time is not a number"))?,
            nonce: nonce.into(),
            signature: signature.into(),
        })),
        _ => Ok(None),
    }
}

/// The oldest request time still inside the replay window (both clocks may be off by the skew).
fn window_start(now_ms: u64) -> u64 {
    now_ms.saturating_sub(2 * MAX_CLOCK_SKEW_MS)
}

/// Whether `text` is a request nonce: 32 hex digits.
pub fn is_nonce(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;

    fn key(secret: &str) -> GroupKey {
        GroupKey::new(secret).unwrap()
    }

    fn what(body: &[u8]) -> Signed<'_> {
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
    fn a_signed_request_passes_once() {
        let k = key("pairing secret");
        let auth = sign_request(&k, &what(b"body"), NOW);
        let mut guard = ReplayGuard::default();
        assert_eq!(guard.verify(&k, &what(b"body"), Some(&auth), NOW + 1_000), Ok(()));
        assert_eq!(guard.verify(&k, &what(b"body"), Some(&auth), NOW + 2_000), Err(AuthError::Replayed));
    }

    #[test]
    fn wrong_key_altered_body_path_group_or_missing_signature_are_refused() {
        let k = key("pairing secret");
        let auth = sign_request(&k, &what(b"body"), NOW);
        let mut guard = ReplayGuard::default();
        assert_eq!(guard.verify(&key("other secret"), &what(b"body"), Some(&auth), NOW), Err(AuthError::BadSignature));
        assert_eq!(guard.verify(&k, &what(b"bodz"), Some(&auth), NOW), Err(AuthError::BadSignature));
        let moved = Signed { path: "/api/sync/push", ..what(b"body") };
        assert_eq!(guard.verify(&k, &moved, Some(&auth), NOW), Err(AuthError::BadSignature));
        let regrouped = Signed { group: "other", ..what(b"body") };
        assert_eq!(guard.verify(&k, &regrouped, Some(&auth), NOW), Err(AuthError::BadSignature));
        let elsewhere = Signed { receiver: "02:00:00:00:00:03", ..what(b"body") };
        assert_eq!(guard.verify(&k, &elsewhere, Some(&auth), NOW), Err(AuthError::BadSignature));
        let redirected = Signed { port: "9999", ..what(b"body") };
        assert_eq!(guard.verify(&k, &redirected, Some(&auth), NOW), Err(AuthError::BadSignature));
        assert_eq!(guard.verify(&k, &what(b"body"), None, NOW), Err(AuthError::Missing));
        // None of the refusals used the nonce up.
        assert_eq!(guard.verify(&k, &what(b"body"), Some(&auth), NOW), Ok(()));
    }

    #[test]
    fn stale_requests_are_refused_even_with_a_fresh_nonce() {
        let k = key("pairing secret");
        let mut guard = ReplayGuard::default();
        let old = sign_request(&k, &what(b""), NOW - MAX_CLOCK_SKEW_MS - 1);
        assert!(matches!(guard.verify(&k, &what(b""), Some(&old), NOW), Err(AuthError::Stale { .. })));
        let future = sign_request(&k, &what(b""), NOW + MAX_CLOCK_SKEW_MS + 1);
        assert!(matches!(guard.verify(&k, &what(b""), Some(&future), NOW), Err(AuthError::Stale { .. })));
    }

    #[test]
    fn a_full_nonce_memory_refuses_rather_than_forgets_live_nonces() {
        let k = key("pairing secret");
        let mut guard = ReplayGuard::default();
        guard.seen.extend((0..MAX_REMEMBERED_NONCES).map(|i| (format!("{i:032x}"), NOW - 1_000)));
        let fresh = sign_request(&k, &what(b""), NOW);
        assert_eq!(guard.verify(&k, &what(b""), Some(&fresh), NOW), Err(AuthError::Busy));
        assert_eq!(guard.seen.len(), MAX_REMEMBERED_NONCES, "no live nonce was dropped");
        // Once those are past the window they go, and requests pass again.
        let later = NOW + 2 * MAX_CLOCK_SKEW_MS;
        let fresh = sign_request(&k, &what(b""), later);
        assert_eq!(guard.verify(&k, &what(b""), Some(&fresh), later), Ok(()));
        assert_eq!(guard.seen.len(), 1);
    }

    #[test]
    fn a_tampered_time_breaks_the_signature() {
        let k = key("pairing secret");
        let mut auth = sign_request(&k, &what(b""), NOW);
        auth.time_ms += 1;
        assert_eq!(ReplayGuard::default().verify(&k, &what(b""), Some(&auth), NOW), Err(AuthError::BadSignature));
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
    fn a_nonce_file_as_written_is_left_alone_and_any_other_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let nonce = "0123456789abcdef0123456789abcdef";
        let opens_to = |text: &str| {
            fs::write(&path, text).unwrap();
            drop(ReplayGuard::open(&path, NOW).unwrap());
            fs::read_to_string(&path).unwrap()
        };
        let canonical = format!("{NOW} {nonce}\n");
        assert_eq!(opens_to(&canonical), canonical);
        // Read the same, written otherwise (found by the nonce_file fuzz target): a `+`
        // the parser takes, no final newline. The file becomes what this poi writes.
        assert_eq!(opens_to(&format!("+{NOW} {nonce}")), canonical);
        assert_eq!(opens_to(&format!("{NOW} {nonce}")), canonical);
        assert_eq!(opens_to(&format!("{NOW} {nonce}\n{NOW} {nonce}\n")), canonical);
        assert_eq!(opens_to(&format!("garbage\n{NOW} {nonce}\n")), canonical);
        assert_eq!(opens_to(""), "");
    }

    #[test]
    fn a_restarted_poi_still_refuses_a_request_it_took_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let k = key("pairing secret");
        let first = sign_request(&k, &what(b"a"), NOW);
        let second = sign_request(&k, &what(b"b"), NOW);
        {
            let mut guard = ReplayGuard::open(&path, NOW).unwrap();
            assert_eq!(guard.verify(&k, &what(b"a"), Some(&first), NOW), Ok(()));
        }
        // A crash cut the last line short, and the card garbled another: both are skipped,
        // the rest still counts.
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\xff\xfe garbled\n17640000").unwrap();
        let mut guard = ReplayGuard::open(&path, NOW + 1_000).unwrap();
        assert_eq!(guard.verify(&k, &what(b"a"), Some(&first), NOW + 1_000), Err(AuthError::Replayed));
        assert_eq!(guard.verify(&k, &what(b"b"), Some(&second), NOW + 1_000), Ok(()));
        // Past the window the file forgets them (time alone refuses such requests).
        let later = NOW + 3 * MAX_CLOCK_SKEW_MS;
        drop(guard);
        let guard = ReplayGuard::open(&path, later).unwrap();
        assert!(guard.seen.is_empty());
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn the_nonce_file_is_compacted_once_mostly_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let k = key("pairing secret");
        let mut guard = ReplayGuard::open(&path, NOW).unwrap();
        for i in 0..1_600u64 {
            let at = NOW + i * MAX_CLOCK_SKEW_MS / 100;
            let auth = sign_request(&k, &what(b""), at);
            assert_eq!(guard.verify(&k, &what(b""), Some(&auth), at), Ok(()));
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 1_600, "expired nonces were dropped from the file ({lines} lines)");
        assert!(lines >= guard.seen.len(), "every live nonce is still on disk");
    }

    #[test]
    fn sealed_bodies_open_only_with_the_key_for_the_same_exchange_and_way() {
        let k = key("pairing secret");
        let sealed = seal(&k, Way::Request, "aa", b"the library");
        assert!(!sealed.windows(11).any(|w| w == b"the library"), "the body is not readable on the wire");
        assert_eq!(open(&k, Way::Request, "aa", &sealed).unwrap(), b"the library");
        assert_ne!(seal(&k, Way::Request, "aa", b"the library"), sealed, "a fresh nonce every time");
        assert_eq!(open(&key("other secret"), Way::Request, "aa", &sealed), Err(AuthError::Unsealable));
        assert_eq!(open(&k, Way::Answer, "aa", &sealed), Err(AuthError::Unsealable));
        assert_eq!(open(&k, Way::Request, "ab", &sealed), Err(AuthError::Unsealable));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&k, Way::Request, "aa", &altered), Err(AuthError::Unsealable));
        assert!(matches!(open(&k, Way::Request, "aa", &sealed[..30]), Err(AuthError::Malformed(_))));
    }
}
