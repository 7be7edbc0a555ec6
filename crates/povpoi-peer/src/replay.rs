//! The replay window: request nonces accepted within the clock-skew window, so a captured
//! request cannot be sent again. Keeping the window across a restart (a file, flash) is
//! the platform's part: [`NonceWindow::admit`] says what to record.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::auth::{AuthError, MAX_CLOCK_SKEW_MS, RequestAuth, Signed, verify_request, well_formed};
use crate::key::GroupKey;

/// Refuses replayed and stale requests; remembers each accepted nonce for the window.
#[derive(Clone, Debug)]
pub struct NonceWindow {
    seen: BTreeMap<String, u64>,
    /// Most nonces remembered: a full window refuses requests rather than forget one
    /// still inside it (a board keeps a few hundred, a Linux node a hundred thousand).
    capacity: usize,
}

impl NonceWindow {
    /// An empty window remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> NonceWindow {
        NonceWindow { seen: BTreeMap::new(), capacity }
    }

    /// Remembers a nonce accepted at `time_ms` (from the platform's record of the window).
    /// Returns whether it was new.
    pub fn remember(&mut self, nonce: &str, time_ms: u64) -> bool {
        self.seen.insert(nonce.into(), time_ms).is_none()
    }

    /// The nonces remembered, with their request times.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.seen.iter().map(|(nonce, time)| (nonce.as_str(), *time))
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
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

    /// Checks a request's signature, time and nonce; on success the nonce is used up and
    /// returned with its time, for the platform to record before the request is served.
    pub fn admit<'a>(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&'a RequestAuth>,
        now_ms: u64,
    ) -> Result<&'a RequestAuth, AuthError> {
        self.admit_with_clock(key, what, auth, |_| now_ms)
    }

    /// [`Self::admit`], reading the receiver's time with `now_ms` once the signature has
    /// checked out and before the time is judged: a receiver without a real-time clock
    /// learns the time there from a request the key vouches for.
    pub fn admit_with_clock<'a>(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&'a RequestAuth>,
        now_ms: impl FnOnce(&RequestAuth) -> u64,
    ) -> Result<&'a RequestAuth, AuthError> {
        verify_request(key, what, auth)?;
        let auth = auth.expect("a verified request carries its headers");
        let now_ms = now_ms(auth);
        fresh(auth.time_ms, now_ms)?;
        self.seen.retain(|_, time| *time >= window_start(now_ms));
        if self.seen.contains_key(&auth.nonce) {
            return Err(AuthError::Replayed);
        }
        // Forgetting a nonce still inside the window would let it be replayed: refuse instead.
        if self.seen.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        self.seen.insert(auth.nonce.clone(), auth.time_ms);
        Ok(auth)
    }
}

/// Refuses a request time too far from ours.
fn fresh(time_ms: u64, now_ms: u64) -> Result<(), AuthError> {
    let skew_ms = (i128::from(time_ms) - i128::from(now_ms)).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    if skew_ms.unsigned_abs() > MAX_CLOCK_SKEW_MS {
        return Err(AuthError::Stale { skew_ms });
    }
    Ok(())
}

/// The oldest request time still inside the replay window (both clocks may be off by the skew).
pub fn window_start(now_ms: u64) -> u64 {
    now_ms.saturating_sub(2 * MAX_CLOCK_SKEW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::{NOW, key, what};
    use crate::auth::{new_nonce, sign_request_with};

    fn sign(k: &GroupKey, body: &[u8], at: u64) -> RequestAuth {
        sign_request_with(k, &what(body), at, new_nonce(&mut rand::rng()))
    }

    #[test]
    fn a_signed_request_passes_once() {
        let k = key("pairing secret");
        let auth = sign(&k, b"body", NOW);
        let mut window = NonceWindow::new(16);
        assert_eq!(window.admit(&k, &what(b"body"), Some(&auth), NOW + 1_000), Ok(&auth));
        assert_eq!(window.precheck(Some(&auth), NOW + 1_500), Err(AuthError::Replayed));
        assert_eq!(window.admit(&k, &what(b"body"), Some(&auth), NOW + 2_000), Err(AuthError::Replayed));
    }

    #[test]
    fn refusals_do_not_use_the_nonce_up() {
        let k = key("pairing secret");
        let auth = sign(&k, b"body", NOW);
        let mut window = NonceWindow::new(16);
        assert_eq!(window.admit(&key("other secret"), &what(b"body"), Some(&auth), NOW), Err(AuthError::BadSignature));
        assert_eq!(window.admit(&k, &what(b"bodz"), Some(&auth), NOW), Err(AuthError::BadSignature));
        assert_eq!(window.admit(&k, &what(b"body"), None, NOW), Err(AuthError::Missing));
        assert!(window.is_empty());
        assert_eq!(window.admit(&k, &what(b"body"), Some(&auth), NOW), Ok(&auth));
    }

    #[test]
    fn stale_requests_are_refused_even_with_a_fresh_nonce() {
        let k = key("pairing secret");
        let mut window = NonceWindow::new(16);
        let old = sign(&k, b"", NOW - MAX_CLOCK_SKEW_MS - 1);
        assert!(matches!(window.admit(&k, &what(b""), Some(&old), NOW), Err(AuthError::Stale { .. })));
        assert!(matches!(window.precheck(Some(&old), NOW), Err(AuthError::Stale { .. })));
        let future = sign(&k, b"", NOW + MAX_CLOCK_SKEW_MS + 1);
        assert!(matches!(window.admit(&k, &what(b""), Some(&future), NOW), Err(AuthError::Stale { .. })));
    }

    #[test]
    fn a_full_window_refuses_rather_than_forgets_live_nonces() {
        let k = key("pairing secret");
        let mut window = NonceWindow::new(100);
        for i in 0..100 {
            assert!(window.remember(&alloc::format!("{i:032x}"), NOW - 1_000));
        }
        let fresh = sign(&k, b"", NOW);
        assert_eq!(window.admit(&k, &what(b""), Some(&fresh), NOW), Err(AuthError::Busy));
        assert_eq!(window.len(), 100, "no live nonce was dropped");
        // Once those are past the window they go, and requests pass again.
        let later = NOW + 2 * MAX_CLOCK_SKEW_MS;
        let fresh = sign(&k, b"", later);
        assert_eq!(window.admit(&k, &what(b""), Some(&fresh), later), Ok(&fresh));
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn malformed_headers_are_refused_before_the_body() {
        let window = NonceWindow::new(16);
        let auth = |nonce: &str, signature: &str| RequestAuth {
            time_ms: NOW,
            nonce: nonce.into(),
            signature: signature.into(),
        };
        let good_sig = "00".repeat(32);
        assert!(matches!(window.precheck(Some(&auth("short", &good_sig)), NOW), Err(AuthError::Malformed(_))));
        assert!(matches!(window.precheck(Some(&auth(&"a".repeat(32), "zz")), NOW), Err(AuthError::Malformed(_))));
        assert_eq!(window.precheck(Some(&auth(&"a".repeat(32), &good_sig)), NOW), Ok(()));
        assert_eq!(window.precheck(None, NOW), Err(AuthError::Missing));
    }
}
