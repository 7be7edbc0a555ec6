//! Who may use the API when the group has a pairing key: the shared rules
//! ([`povpoi_app::access`]) as axum middleware, and a peer's commands to any endpoint,
//! signed and sealed (a node's own: a board takes none).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use povpoi_app::access::{self, is_open, is_peer_path};
use povpoi_peer::auth::{AuthError, HEADER_SEALED, HEADER_SIGNATURE, RequestAuth};
use povpoi_peer::exchange;

use super::{ApiError, AppState};
use crate::library::now_ms;

/// Whether the request carries this poi's key as a bearer token.
pub(crate) fn has_bearer_key(node: &AppState, headers: &HeaderMap) -> bool {
    let key = node.config().group_key.clone();
    access::has_bearer_key(key.as_ref(), headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

fn refusal(uri: &Uri, e: AuthError) -> ApiError {
    tracing::warn!(path = %uri.path(), error = %e, "peer request refused");
    ApiError::new(StatusCode::FORBIDDEN, e.to_string())
}

/// Middleware: with a pairing key, a request that cannot be a peer's signed one (headers
/// missing or malformed, time outside the window, nonce used) is refused before its body
/// is read, so strangers cannot make this poi hold their bodies in memory.
pub(crate) async fn refuse_unsigned_early(State(node): State<AppState>, request: Request, next: Next) -> Response {
    let keyed = node.config().group_key.is_some();
    let signed_path = is_peer_path(request.uri().path()) || request.headers().contains_key(HEADER_SIGNATURE);
    if !keyed || !signed_path || has_bearer_key(&node, request.headers()) {
        return next.run(request).await;
    }
    let checked = request_auth(request.headers())
        .and_then(|auth| node.replay.lock().unwrap_or_else(|p| p.into_inner()).precheck(auth.as_ref(), now_ms()));
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => refusal(request.uri(), e).into_response(),
    }
}

/// Checks a peer request's signature when the group has a key (403 otherwise). `Some` when
/// the request was taken on a peer's signature: its body comes sealed and its answer goes
/// back sealed and signed; `None` when no key is set or a person sent the key as a bearer.
pub(crate) async fn authenticate(
    node: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<SignedExchange>, ApiError> {
    let (key, group, me) = {
        let config = node.config();
        (config.group_key.clone(), config.sync_group.clone(), config.device_id.to_string())
    };
    let Some(key) = key else { return Ok(None) };
    if has_bearer_key(node, headers) {
        return Ok(None);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let auth = request_auth(headers).map_err(|e| refusal(uri, e))?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let signed = access::signed_request(method.as_str(), path, body, header, &me, &group);
    let admitted = node.replay.lock().unwrap_or_else(|p| p.into_inner()).admit(&key, &signed, auth.as_ref(), now_ms());
    if let Some(pending) = admitted.map_err(|e| refusal(uri, e))? {
        // An fsync takes milliseconds on a card: on a blocking thread, not the runtime's.
        tokio::task::spawn_blocking(move || pending.persist())
            .await
            .map_err(|_| ApiError::internal("recording the request nonce failed"))?;
    }
    let nonce = auth.expect("a verified request carries its nonce").nonce;
    Ok(Some(SignedExchange(exchange::SignedExchange::new(key, nonce))))
}

/// The signature headers of a request, if it has all three.
fn request_auth(headers: &HeaderMap) -> Result<Option<RequestAuth>, AuthError> {
    RequestAuth::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()))
}

/// A request taken on a peer's signature ([`exchange::SignedExchange`]) with HTTP types.
pub(crate) struct SignedExchange(exchange::SignedExchange);

impl SignedExchange {
    /// The exchange itself, for the portable code.
    pub(crate) fn exchange(&self) -> &exchange::SignedExchange {
        &self.0
    }

    /// The request's body, opened (403 when it is not sealed or does not open).
    pub(crate) fn open(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.0
            .open(headers.get(HEADER_SEALED).map(HeaderValue::as_bytes), body)
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.to_string()))
    }

    /// An answer's body, sealed.
    pub(crate) fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.0.seal(plain.to_vec(), &mut rand::rng())
    }

    /// Signs an answer with `status` and (sealed) `body`.
    pub(crate) fn sign(&self, status: StatusCode, body: &[u8], headers: &mut HeaderMap) {
        let signature = self.0.sign(status.as_u16(), body);
        headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(&signature).expect("hex is a header value"));
    }
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
    let signed = match authenticate(node, &parts.method, &parts.uri, &parts.headers, &bytes).await {
        Ok(Some(signed)) => signed,
        // The key was removed since the check above: the request passes as an open poi's would.
        Ok(None) => return next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(refusal) => return refusal.into_response(),
    };
    let plain = match signed.open(&parts.headers, &bytes) {
        Ok(plain) => plain,
        Err(refusal) => return refusal.into_response(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let answer = next.run(Request::from_parts(parts, Body::from(plain))).await;
    let (mut parts, body) = answer.into_parts();
    let Ok(answer) = axum::body::to_bytes(body, SIGNED_BODY_LIMIT).await else {
        return ApiError::internal("answer too large to seal").into_response();
    };
    let answer = signed.seal(&answer);
    signed.sign(parts.status, &answer, &mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(answer))
}

/// Middleware: lets a request through when the group has no key, when it carries the key,
/// when it is signed by a peer holding the key, or when it goes to an open or a peer
/// endpoint (which check signatures themselves); 401 or 403 otherwise.
pub(crate) async fn require_key(State(node): State<AppState>, request: Request, next: Next) -> Response {
    let protected = node.config().group_key.is_some();
    let path = request.uri().path();
    if !protected
        || is_open(request.method().as_str(), path)
        || is_peer_path(path)
        || has_bearer_key(&node, request.headers())
    {
        return next.run(request).await;
    }
    if request.headers().contains_key(HEADER_SIGNATURE) {
        return peer_command(&node, request, next).await;
    }
    let refusal = ApiError::new(StatusCode::UNAUTHORIZED, access::KEY_WANTED);
    let mut response = refusal.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}
