//! Who may use the API when the group has a pairing key.
//!
//! Without a key the API is open on the LAN, as the existing system's was. With one, the
//! key guards everything that reads or changes the poi's content or settings: a peer signs
//! its requests (HMAC, handled by the peer endpoints themselves), a person or script sends
//! the key as `Authorization: Bearer <key>` (the web UI asks for it once). Left open: the
//! page itself and what a peer or a user needs to find the poi and see that it is protected.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::auth::{self, HEADER_NONCE, HEADER_SEALED, HEADER_SIGNATURE, SEAL_SCHEME, Way};

/// Paths whose handlers check a peer's HMAC signature themselves (or a bearer key).
pub(crate) fn is_peer_path(path: &str) -> bool {
    matches!(path, crate::sync_client::SYNC_PATH | "/api/sync/data" | "/api/sync/push")
        || path.starts_with("/api/blobs/")
}

/// Readable by anyone even when protected: nothing of the library's content is in them.
fn is_open(method: &Method, path: &str) -> bool {
    *method == Method::GET && matches!(path, "/" | "/api/status" | "/api/sync/status" | "/api/device/config")
}

/// Whether the request carries this poi's key as a bearer token.
pub(crate) fn has_bearer_key(node: &AppState, headers: &HeaderMap) -> bool {
    let Some(key) = node.config().group_key.clone() else { return false };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| key.matches(given))
}

/// Largest body of a signed request to a non-peer endpoint (read whole to check the MAC),
/// and of its answer (read whole to seal it).
const SIGNED_BODY_LIMIT: usize = 1024 * 1024;

/// A peer's command (multipoi peercmd): the MAC covers the body, so it is read first; the
/// sealed body is opened for the handler, and the handler's answer, whatever its status,
/// is sealed and signed back for the request's nonce.
async fn peer_command(node: &AppState, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, SIGNED_BODY_LIMIT).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "signed request body too large").into_response();
    };
    if let Err(refusal) = super::sync::authenticate(node, &parts.method, &parts.uri, &parts.headers, &bytes) {
        return refusal.into_response();
    }
    // The key was removed since the check above: the request passes as an open poi's would.
    let Some(key) = node.config().group_key.clone() else {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    let nonce = parts.headers.get(HEADER_NONCE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    // Sealed both ways or not taken: the header is not signed, so an unsealed command must
    // not be answered in clear just because someone stripped it on the way.
    if parts.headers.get(HEADER_SEALED).is_none_or(|v| v.as_bytes() != SEAL_SCHEME.as_bytes()) {
        let why = format!("this sync group has a pairing key: relayed commands must be sealed ({HEADER_SEALED})");
        return ApiError::new(StatusCode::FORBIDDEN, why).into_response();
    }
    let plain = match auth::open(&key, Way::Request, &nonce, &bytes) {
        Ok(plain) => plain,
        Err(e) => return ApiError::new(StatusCode::FORBIDDEN, e.to_string()).into_response(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let answer = next.run(Request::from_parts(parts, Body::from(plain))).await;
    let (mut parts, body) = answer.into_parts();
    let Ok(answer) = axum::body::to_bytes(body, SIGNED_BODY_LIMIT).await else {
        return ApiError::internal("answer too large to seal").into_response();
    };
    let answer = auth::seal(&key, Way::Answer, &nonce, &answer);
    let signature = auth::sign_response(&key, &nonce, parts.status.as_u16(), &answer);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(HEADER_SIGNATURE, header::HeaderValue::from_str(&signature).expect("hex is a header value"));
    Response::from_parts(parts, Body::from(answer))
}

/// Middleware: lets a request through when the group has no key, when it carries the key,
/// when it is signed by a peer holding the key, or when it goes to an open or a peer
/// endpoint (which check signatures themselves); 401 or 403 otherwise.
pub(crate) async fn require_key(State(node): State<AppState>, request: Request, next: Next) -> Response {
    let protected = node.config().group_key.is_some();
    let path = request.uri().path();
    if !protected || is_open(request.method(), path) || is_peer_path(path) || has_bearer_key(&node, request.headers()) {
        return next.run(request).await;
    }
    if request.headers().contains_key(HEADER_SIGNATURE) {
        return peer_command(&node, request, next).await;
    }
    let refusal = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this poi's sync group has a pairing key: send it as `Authorization: Bearer <key>`",
    );
    let mut response = refusal.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}
