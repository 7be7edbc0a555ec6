//! Who may use the API when the group has a pairing key: the rules every poi applies, a
//! node behind axum and a board behind picoserve alike.
//!
//! Without a key the API is open on the LAN, as the existing system's was. With one, the
//! key guards everything that reads or changes the poi's content or settings: a peer signs
//! its requests (HMAC, checked by the peer endpoints themselves), a person or script sends
//! the key as `Authorization: Bearer <key>` (the web app asks for it once). Left open: the
//! web app itself and what a peer or a user needs to find the poi and see that it is
//! protected.

use povpoi_peer::auth::{HEADER_DEVICE, HEADER_PORT, Signed};
use povpoi_peer::exchange::SYNC_PATH;
use povpoi_peer::key::GroupKey;

/// The `error` of a request that needs the key and does not carry it, sent with `401` and
/// `WWW-Authenticate: Bearer`.
pub const KEY_WANTED: &str = "this poi's sync group has a pairing key: send it as `Authorization: Bearer <key>`";

/// Whether anyone may send this request even when the group has a key: it reads the web
/// app, or what finds the poi and shows that it is protected, and nothing of the library.
pub fn is_open(method: &str, path: &str) -> bool {
    method == "GET"
        && (povpoi_ui::asset(path).is_some()
            || matches!(path, "/api/status" | "/api/sync/status" | "/api/device/config"))
}

/// Whether `path` is a peer's endpoint, whose handler checks the peer's signature itself
/// (or the key as a bearer): the sync messages, blobs by hash, and the existing system's
/// listing and push.
pub fn is_peer_path(path: &str) -> bool {
    matches!(path, SYNC_PATH | "/api/sync/data" | "/api/sync/push") || path.starts_with("/api/blobs/")
}

/// Whether an `Authorization` header's value carries `key` as a bearer token; never when
/// the group has no key.
pub fn has_bearer_key(key: Option<&GroupKey>, authorization: Option<&str>) -> bool {
    let Some(key) = key else { return false };
    authorization.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|given| key.matches(given))
}

/// What a peer's signature over a request covers, read from the request: `path` with its
/// query as sent, the sender's headers (empty when missing, so the signature fails), and
/// this poi's own id (`receiver`) and group.
pub fn signed_request<'a>(
    method: &'a str,
    path: &'a str,
    body: &'a [u8],
    header: impl Fn(&str) -> Option<&'a str>,
    receiver: &'a str,
    group: &'a str,
) -> Signed<'a> {
    let device = header(HEADER_DEVICE).unwrap_or("");
    let port = header(HEADER_PORT).unwrap_or("");
    Signed { method, path, body, device, port, receiver, group }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_app_and_the_poi_s_status_are_open() {
        for path in ["/", "/index.html", "/app.js", "/api/status", "/api/sync/status", "/api/device/config"] {
            assert!(is_open("GET", path), "{path}");
            assert!(!is_open("POST", path), "POST {path}");
        }
        for path in ["/api/images", "/api/clock", "/api/sync/data", "/api/patterns/0", "/nothing"] {
            assert!(!is_open("GET", path), "{path}");
        }
    }

    #[test]
    fn peer_paths_are_the_ones_peers_sign() {
        for path in [SYNC_PATH, "/api/sync/data", "/api/sync/push", "/api/blobs/00ff"] {
            assert!(is_peer_path(path), "{path}");
        }
        for path in ["/api/sync/status", "/api/sync/execute", "/api/images", "/api/blob"] {
            assert!(!is_peer_path(path), "{path}");
        }
    }

    #[test]
    fn a_bearer_key_is_taken_only_when_it_is_the_group_s() {
        let key = GroupKey::new("correct horse battery").unwrap();
        assert!(has_bearer_key(Some(&key), Some("Bearer correct horse battery")));
        for given in [None, Some("correct horse battery"), Some("Bearer correct horse"), Some("Basic x")] {
            assert!(!has_bearer_key(Some(&key), given), "{given:?}");
        }
        assert!(!has_bearer_key(None, Some("Bearer correct horse battery")));
    }
}
