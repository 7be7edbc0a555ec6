//! The answering poi's side of a sync session: a peer's message opened (when the exchange
//! is signed), decoded and fitted to this poi's sync mode, ready for the core's
//! `Replica::respond`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use povpoi_core::sync::{self, Category, Request};
use povpoi_core::wire;
use rand_core::CryptoRng;

use crate::exchange::{OpenError, SignedExchange};

/// Why a peer's message was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// This poi has no pairing key but the message came sealed with one.
    SealedWithoutKey,
    /// A signed exchange's body did not open.
    Unopened(OpenError),
    /// The bytes are not a protocol message.
    NotAMessage(sync::Error),
}

impl Refusal {
    /// The HTTP status it is answered with: 403 for the key, 400 for the bytes.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::SealedWithoutKey | Refusal::Unopened(_) => 403,
            Refusal::NotAMessage(_) => 400,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::SealedWithoutKey => f.write_str(
                "this poi has no pairing key but the message is sealed with one: set the same groupKey on both",
            ),
            Refusal::Unopened(e) => e.fmt(f),
            Refusal::NotAMessage(e) => write!(f, "not a sync protocol message: {e}"),
        }
    }
}

impl core::error::Error for Refusal {}

/// On what a message was let in: the caller has checked this before.
#[derive(Clone, Copy, Debug)]
pub enum Admitted<'a> {
    /// This poi has no pairing key: anyone may sync.
    Open,
    /// This poi has a key and the request carried it as a bearer token (a person's script):
    /// its body is clear.
    Bearer,
    /// A peer's signature, checked on this exchange: its body is sealed.
    Signed(&'a SignedExchange),
}

impl<'a> Admitted<'a> {
    /// How a request the key check let in came: on a peer's signature (`signed`), else with
    /// the key as a bearer when this poi has one (`keyed`), else open.
    pub fn of(signed: Option<&'a SignedExchange>, keyed: bool) -> Admitted<'a> {
        match signed {
            Some(signed) => Admitted::Signed(signed),
            None if keyed => Admitted::Bearer,
            None => Admitted::Open,
        }
    }
}

/// An answer's body (`plain`: an encoded `Response`, or a blob's bytes) as it goes back to
/// the caller: sealed when the request was signed, with the value of its signature header.
pub fn answer(signed: Option<&SignedExchange>, plain: Vec<u8>, rng: &mut impl CryptoRng) -> (Vec<u8>, Option<String>) {
    match signed {
        Some(signed) => {
            let body = signed.seal(plain, rng);
            let signature = signed.sign(200, &body);
            (body, Some(signature))
        }
        None => (plain, None),
    }
}

/// A peer's message as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// How it was let in.
    pub admitted: Admitted<'a>,
    /// Its sealed-body header, if any.
    pub sealed: Option<&'a [u8]>,
    /// The body's bytes.
    pub body: &'a [u8],
}

/// A peer's message, opened and decoded; in independent mode (`settings_local`) its
/// settings are left out. Returns it with the number of records it carries.
pub fn open_request(incoming: Incoming<'_>, settings_local: bool) -> Result<(Request, u32), Refusal> {
    let decoded = match incoming.admitted {
        Admitted::Signed(signed) => {
            let plain = signed.open(incoming.sealed, incoming.body).map_err(Refusal::Unopened)?;
            wire::from_bytes(&plain)
        }
        // The sender has a key and this poi does not.
        Admitted::Open if incoming.sealed.is_some() => return Err(Refusal::SealedWithoutKey),
        Admitted::Open | Admitted::Bearer => wire::from_bytes(incoming.body),
    };
    let request: Request = decoded.map_err(Refusal::NotAMessage)?;
    let request = if settings_local { keep_settings_local(request) } else { request };
    let records_in = match &request {
        Request::Push(delta) => delta.records.len() as u32,
        _ => 0,
    };
    Ok((request, records_in))
}

/// In independent mode this poi's settings are its own, whoever starts the session: a
/// mirror-mode peer neither gets them nor overwrites them (content still syncs).
pub fn keep_settings_local(request: Request) -> Request {
    match request {
        Request::Begin { summary, mut options } => {
            options.categories.settings = false;
            Request::Begin { summary, options }
        }
        Request::Push(mut delta) if delta.categories.settings => {
            delta.categories.settings = false;
            delta.records.retain(|r| r.key.category() != Category::Settings);
            delta.repairs.retain(|r| r.category != Category::Settings);
            Request::Push(delta)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::GroupKey;
    use alloc::vec::Vec;
    use povpoi_core::device::{DeviceId, ReplicaId};
    use povpoi_core::sync::{Identity, MemoryStorage, Replica, Session, SyncOptions};

    fn begin() -> Request {
        let who = Identity { replica: ReplicaId(1), device: DeviceId([2, 0, 0, 0, 0, 1]), group: "troupe".into() };
        let poi = Replica::open(MemoryStorage::default(), who).unwrap();
        Session::start(&poi, SyncOptions::default()).1
    }

    #[test]
    fn a_plain_message_decodes_and_garbage_is_a_400() {
        let bytes = wire::to_bytes(&begin());
        let (request, records) =
            open_request(Incoming { admitted: Admitted::Open, sealed: None, body: &bytes }, false).unwrap();
        assert!(matches!(request, Request::Begin { options, .. } if options.categories.settings));
        assert_eq!(records, 0);
        let refused =
            open_request(Incoming { admitted: Admitted::Open, sealed: None, body: b"\xff\xff" }, false).unwrap_err();
        assert_eq!(refused.status(), 400);
    }

    #[test]
    fn independent_mode_leaves_settings_out_of_a_session() {
        let bytes = wire::to_bytes(&begin());
        let (request, _) =
            open_request(Incoming { admitted: Admitted::Open, sealed: None, body: &bytes }, true).unwrap();
        assert!(matches!(request, Request::Begin { options, .. } if !options.categories.settings));
    }

    #[test]
    fn sealed_bodies_need_a_key_and_signed_ones_must_be_sealed() {
        let bytes = wire::to_bytes(&begin());
        let sealed_without_key =
            Incoming { admitted: Admitted::Open, sealed: Some(b"xchacha20poly1305"), body: &bytes };
        assert_eq!(open_request(sealed_without_key, false).unwrap_err().status(), 403);
        // A person with the key as a bearer token sends clear bodies, whatever the header.
        let bearer = Incoming { admitted: Admitted::Bearer, sealed: Some(b"xchacha20poly1305"), body: &bytes };
        assert!(matches!(open_request(bearer, false), Ok((Request::Begin { .. }, 0))));
        let key = GroupKey::new("pairing secret").unwrap();
        let nonce = "0123456789abcdef0123456789abcdef";
        let exchange = SignedExchange::new(key.clone(), nonce.into());
        let plain = Incoming { admitted: Admitted::Signed(&exchange), sealed: None, body: &bytes };
        assert!(matches!(open_request(plain, false), Err(Refusal::Unopened(OpenError::NotSealed))));
        let body: Vec<u8> = crate::auth::seal(&key, crate::auth::Way::Request, nonce, &bytes, &mut rand::rng());
        let sealed =
            Incoming { admitted: Admitted::Signed(&exchange), sealed: Some(b"xchacha20poly1305"), body: &body };
        assert!(matches!(open_request(sealed, false), Ok((Request::Begin { .. }, 0))));
    }
}
