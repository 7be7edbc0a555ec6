//! Pairing-key authentication of peer requests and their answers (HMAC-SHA256).
//!
//! A request is signed over its method, path, body hash, time, a random nonce, the sender's
//! device id and the sync group; the answer is signed over the request's nonce, the status
//! and the body hash, so a device without the key can neither ask nor answer. Requests more
//! than [`MAX_CLOCK_SKEW_MS`] away from the receiver's clock, or carrying a nonce already
//! seen within that window, are refused. The exact strings are in docs/PROTOCOL.md.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::GroupKey;

/// Header with the sender's device id (sent with or without a key).
pub const HEADER_DEVICE: &str = "x-povpoi-device";
/// Header with the sender's clock, ms since the epoch.
pub const HEADER_TIME: &str = "x-povpoi-time";
/// Header with the request's random nonce (32 hex digits).
pub const HEADER_NONCE: &str = "x-povpoi-nonce";
/// Header with the hex HMAC of a request or an answer.
pub const HEADER_SIGNATURE: &str = "x-povpoi-signature";
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
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => {
                f.write_str("this sync group is protected by a pairing key: unsigned request refused")
            }
            AuthError::Malformed(what) => write!(f, "malformed authentication header: {what}"),
            AuthError::BadSignature => f.write_str("signature does not match: wrong or missing pairing key"),
            AuthError::Stale { skew_ms } => write!(
                f,
                "request time is {:.0} s from this poi's clock (at most {} s allowed): check both clocks",
                *skew_ms as f64 / 1000.0,
                MAX_CLOCK_SKEW_MS / 1000
            ),
            AuthError::Replayed => f.write_str("request replayed: this nonce was already used"),
            AuthError::Busy => f.write_str("too many signed requests in the last 10 minutes: try again later"),
        }
    }
}

impl std::error::Error for AuthError {}

fn mac(key: &GroupKey, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.secret()).expect("HMAC takes keys of any length");
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
            what.group.as_bytes(),
        ],
    )
}

fn response_mac(key: &GroupKey, request_nonce: &str, status: u16, body: &[u8]) -> HmacSha256 {
    let body_hash = hex::encode(Sha256::digest(body));
    let status = status.to_string();
    mac(key, &[b"povpoi-response-v1", request_nonce.as_bytes(), status.as_bytes(), body_hash.as_bytes()])
}

/// Signs a request at `now_ms` with a fresh nonce.
pub fn sign_request(key: &GroupKey, what: &Signed<'_>, now_ms: u64) -> RequestAuth {
    let nonce = hex::encode(rand::rng().random::<[u8; 16]>());
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

/// Refuses replayed and stale requests; remembers each accepted nonce for the skew window.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<String, u64>,
}

impl ReplayGuard {
    /// Checks a request's signature, time and nonce; on success the nonce is used up.
    pub fn verify(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let auth = auth.ok_or(AuthError::Missing)?;
        if auth.nonce.len() != 32 || !auth.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed("nonce must be 32 hex digits"));
        }
        let signature = hex::decode(&auth.signature).map_err(|_| AuthError::Malformed("signature is not hex"))?;
        request_mac(key, what, auth.time_ms, &auth.nonce)
            .verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        let skew_ms = (i128::from(auth.time_ms) - i128::from(now_ms)).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
        if skew_ms.unsigned_abs() > MAX_CLOCK_SKEW_MS {
            return Err(AuthError::Stale { skew_ms });
        }
        self.forget_before(now_ms.saturating_sub(2 * MAX_CLOCK_SKEW_MS));
        if self.seen.contains_key(&auth.nonce) {
            return Err(AuthError::Replayed);
        }
        // Forgetting a nonce still inside the window would let it be replayed: refuse instead.
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            return Err(AuthError::Busy);
        }
        self.seen.insert(auth.nonce.clone(), auth.time_ms);
        Ok(())
    }

    fn forget_before(&mut self, cutoff_ms: u64) {
        self.seen.retain(|_, time| *time >= cutoff_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;

    fn key(secret: &str) -> GroupKey {
        GroupKey::new(secret).unwrap()
    }

    fn what(body: &[u8]) -> Signed<'_> {
        Signed { method: "POST", path: "/api/sync/v1", body, device: "02:00:00:00:00:01", group: "troupe" }
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
}
