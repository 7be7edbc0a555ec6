//! Both ends of one exchange between poi: the caller's request (signed and sealed when the
//! group has a key) with the check its answer must pass, and the answerer's side of a
//! request taken on a peer's signature.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;

use crate::auth::{
    self, AuthError, HEADER_DEVICE, HEADER_NONCE, HEADER_PORT, HEADER_SEALED, HEADER_SIGNATURE, HEADER_TIME,
    SEAL_SCHEME, Signed, Way,
};
use crate::key::GroupKey;

/// The peer-protocol endpoint: one sync message in, its answer out.
pub const SYNC_PATH: &str = "/api/sync/v1";

/// Who calls: this poi's identity as a peer request carries it.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// This poi's device id, as text.
    pub device: &'a str,
    /// The HTTP port this poi answers on, as text (where the callee may call back).
    pub port: &'a str,
    /// This poi's sync group.
    pub group: &'a str,
    /// The group's pairing key, if it has one.
    pub key: Option<&'a GroupKey>,
}

/// A request to another poi, ready to send.
#[derive(Debug)]
pub struct Outgoing {
    /// The povpoi headers to send with it (the platform adds the content type).
    pub headers: Vec<(&'static str, String)>,
    /// The body as it goes on the wire: sealed when the group has a key.
    pub body: Vec<u8>,
    /// What the answer must pass.
    pub check: AnswerCheck,
}

/// Builds a request to the poi whose device id is `receiver`: with a key, the body is
/// sealed and the request signed for it, at `now_ms`.
pub fn request(
    caller: &Caller<'_>,
    method: &str,
    path: &str,
    receiver: &str,
    body: &[u8],
    now_ms: u64,
    rng: &mut impl CryptoRng,
) -> Outgoing {
    let mut headers = alloc::vec![(HEADER_DEVICE, caller.device.to_string()), (HEADER_PORT, caller.port.to_string())];
    let Some(key) = caller.key else {
        let check = AnswerCheck { guard: None, sent: body.len() as u64 };
        return Outgoing { headers, body: body.to_vec(), check };
    };
    let nonce = auth::new_nonce(rng);
    let wire_body = auth::seal(key, Way::Request, &nonce, body, rng);
    let signed = Signed {
        method,
        path,
        body: &wire_body,
        device: caller.device,
        port: caller.port,
        receiver,
        group: caller.group,
    };
    let signature = auth::sign_request_with(key, &signed, now_ms, nonce);
    headers.extend([
        (HEADER_TIME, signature.time_ms.to_string()),
        (HEADER_NONCE, signature.nonce.clone()),
        (HEADER_SIGNATURE, signature.signature),
        (HEADER_SEALED, SEAL_SCHEME.to_string()),
    ]);
    let check = AnswerCheck { guard: Some((key.clone(), signature.nonce)), sent: wire_body.len() as u64 };
    Outgoing { headers, body: wire_body, check }
}

/// What the answer to a [`request`] must be: with a key, signed and sealed for the
/// request's nonce.
#[derive(Debug)]
pub struct AnswerCheck {
    /// The key and nonce the answer must be signed and sealed for.
    guard: Option<(GroupKey, String)>,
    /// Bytes of the request body as sent.
    pub sent: u64,
}

/// Why an answer was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Its signature is missing or wrong.
    NotAuthentic(AuthError),
    /// Its sealed body does not open.
    Unopenable(AuthError),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NotAuthentic(e) => write!(f, "not authentic: {e}"),
            AnswerError::Unopenable(e) => write!(f, "cannot be opened: {e}"),
        }
    }
}

impl core::error::Error for AnswerError {}

impl AnswerCheck {
    /// Whether the request was signed (so its answer must be too).
    pub fn is_signed(&self) -> bool {
        self.guard.is_some()
    }

    /// Checks an answer's signature and opens its body; without a key the body is
    /// returned as it came.
    pub fn open_answer(&self, status: u16, signature: Option<&str>, body: Vec<u8>) -> Result<Vec<u8>, AnswerError> {
        let Some((key, nonce)) = &self.guard else { return Ok(body) };
        auth::verify_response(key, nonce, status, &body, signature).map_err(AnswerError::NotAuthentic)?;
        auth::open_vec(key, Way::Answer, nonce, body).map_err(AnswerError::Unopenable)
    }
}

/// A request taken on a peer's signature: its body is sealed, and its answer is sealed and
/// signed for its nonce (docs/PROTOCOL.md section 10).
#[derive(Debug)]
pub struct SignedExchange {
    key: GroupKey,
    nonce: String,
}

/// Why a signed request's body was not opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// It came without the sealed-body header.
    NotSealed,
    /// It did not open with the key.
    Auth(AuthError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotSealed => {
                write!(f, "this sync group has a pairing key: peer requests must be sealed ({HEADER_SEALED})")
            }
            OpenError::Auth(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for OpenError {}

impl SignedExchange {
    /// The exchange of a request admitted with `nonce` under `key`.
    pub fn new(key: GroupKey, nonce: String) -> SignedExchange {
        SignedExchange { key, nonce }
    }

    /// The request's body, opened; `sealed` is its sealed-body header. An unsealed one is
    /// refused: that header is not signed, so taking it would let someone on the path strip
    /// it and read the answer.
    pub fn open(&self, sealed: Option<&[u8]>, body: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed != Some(SEAL_SCHEME.as_bytes()) {
            return Err(OpenError::NotSealed);
        }
        auth::open(&self.key, Way::Request, &self.nonce, body).map_err(OpenError::Auth)
    }

    /// An answer's body, sealed in its own buffer ([`auth::seal_vec`]).
    pub fn seal(&self, plain: Vec<u8>, rng: &mut impl CryptoRng) -> Vec<u8> {
        auth::seal_vec(&self.key, Way::Answer, &self.nonce, plain, rng)
    }

    /// The signature header's value for an answer with `status` and (sealed) `body`.
    pub fn sign(&self, status: u16, body: &[u8]) -> String {
        auth::sign_response(&self.key, &self.nonce, status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::RequestAuth;
    use crate::replay::NonceWindow;

    const NOW: u64 = 1_764_000_000_000;

    fn header<'a>(out: &'a Outgoing, name: &str) -> Option<&'a str> {
        out.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The answering poi's side, as a platform runs it: admit, open, answer.
    fn answer(
        key: &GroupKey,
        out: &Outgoing,
        reply: &[u8],
        window: &mut NonceWindow,
    ) -> Result<(Vec<u8>, String, Vec<u8>), String> {
        let auth = RequestAuth::from_headers(|n| header(out, n)).map_err(|e| e.to_string())?;
        let signed = Signed {
            method: "POST",
            path: "/api/sync/v1",
            body: &out.body,
            device: header(out, HEADER_DEVICE).unwrap_or(""),
            port: header(out, HEADER_PORT).unwrap_or(""),
            receiver: "02:00:00:00:00:02",
            group: "troupe",
        };
        let admitted = window.admit(key, &signed, auth.as_ref(), NOW).map_err(|e| e.to_string())?;
        let exchange = SignedExchange::new(key.clone(), admitted.nonce.clone());
        let plain =
            exchange.open(header(out, HEADER_SEALED).map(str::as_bytes), &out.body).map_err(|e| e.to_string())?;
        let sealed = exchange.seal(reply.to_vec(), &mut rand::rng());
        let signature = exchange.sign(200, &sealed);
        Ok((plain, signature, sealed))
    }

    fn caller(key: Option<&GroupKey>) -> Caller<'_> {
        Caller { device: "02:00:00:00:00:01", port: "8080", group: "troupe", key }
    }

    #[test]
    fn a_keyed_exchange_round_trips_sealed_both_ways() {
        let key = GroupKey::new("pairing secret").unwrap();
        let out =
            request(&caller(Some(&key)), "POST", "/api/sync/v1", "02:00:00:00:00:02", b"hello", NOW, &mut rand::rng());
        assert!(!out.body.windows(5).any(|w| w == b"hello"), "sealed on the wire");
        assert_eq!(header(&out, HEADER_SEALED), Some(SEAL_SCHEME));
        let mut window = NonceWindow::new(16);
        let (plain, signature, sealed) = answer(&key, &out, b"world", &mut window).unwrap();
        assert_eq!(plain, b"hello");
        assert_eq!(out.check.open_answer(200, Some(&signature), sealed.clone()).unwrap(), b"world");
        // The answer is bound to its status and body, and must be signed.
        assert!(matches!(
            out.check.open_answer(201, Some(&signature), sealed.clone()),
            Err(AnswerError::NotAuthentic(_))
        ));
        assert!(matches!(out.check.open_answer(200, None, sealed), Err(AnswerError::NotAuthentic(_))));
        // The same request again is a replay.
        assert!(answer(&key, &out, b"world", &mut window).unwrap_err().contains("replayed"));
    }

    #[test]
    fn a_request_for_another_poi_or_with_another_key_is_refused() {
        let key = GroupKey::new("pairing secret").unwrap();
        let out =
            request(&caller(Some(&key)), "POST", "/api/sync/v1", "02:00:00:00:00:03", b"x", NOW, &mut rand::rng());
        assert!(answer(&key, &out, b"", &mut NonceWindow::new(16)).unwrap_err().contains("signature does not match"));
        let out =
            request(&caller(Some(&key)), "POST", "/api/sync/v1", "02:00:00:00:00:02", b"x", NOW, &mut rand::rng());
        let other = GroupKey::new("another secret").unwrap();
        assert!(answer(&other, &out, b"", &mut NonceWindow::new(16)).is_err());
    }

    #[test]
    fn an_open_exchange_carries_the_body_as_is_and_only_who_calls() {
        let out = request(&caller(None), "POST", "/api/sync/v1", "02:00:00:00:00:02", b"plain", NOW, &mut rand::rng());
        assert_eq!(out.body, b"plain");
        assert_eq!(out.headers.len(), 2);
        assert!(!out.check.is_signed());
        assert_eq!(out.check.open_answer(200, None, b"answer".to_vec()).unwrap(), b"answer");
    }

    #[test]
    fn an_unsealed_body_is_refused_on_a_signed_exchange() {
        let key = GroupKey::new("pairing secret").unwrap();
        let exchange = SignedExchange::new(key, "0123456789abcdef0123456789abcdef".into());
        assert_eq!(exchange.open(None, b"plain"), Err(OpenError::NotSealed));
        assert_eq!(exchange.open(Some(b"rot13"), b"plain"), Err(OpenError::NotSealed));
    }
}
