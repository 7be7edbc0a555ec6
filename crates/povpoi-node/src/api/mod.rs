//! The HTTP API: the existing system's endpoints with their exact paths and field names
//! (see shared/spec), plus what a user and a peer need beyond them.
//!
//! Every error is `{"error": "..."}` with a 4xx status saying what to fix (5xx only when the
//! poi itself failed: 507 when the disk is full, naming the write, 500 otherwise). Bodies
//! are parsed whatever their content type, as the old firmware did, and size-limited per
//! route.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::state::NodeState;

mod access;
mod backup;
mod clock;
mod content;
mod control;
mod device;
mod display;
mod events;
mod sync;
mod thumbnail;
mod ui;

/// One CPU-heavy job (a picture conversion, a preview) at a time: a few parallel requests
/// must not take every core (or a board's memory) from the player and the sync.
pub(crate) static HEAVY_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Largest JSON body accepted by default.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The shared state every handler gets.
pub type AppState = Arc<NodeState>;

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(device::routes())
        .merge(clock::routes())
        .merge(display::routes())
        .merge(sync::routes())
        .merge(events::routes())
        .merge(control::routes())
        .merge(content::routes())
        .merge(thumbnail::routes())
        .merge(backup::routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::from(povpoi_app::api::ApiError::no_endpoint()) })
        .method_not_allowed_fallback(|| async { ApiError::from(povpoi_app::api::ApiError::not_allowed()) })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), bounded_bodies))
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::refuse_unsigned_early))
        .with_state(state)
}

/// The shared application's answer ([`povpoi_app::api::Response`], its listing already read)
/// as axum's: a body borrowed from the program (the web app's files) is not copied.
pub fn app_response(answer: povpoi_app::api::Response) -> Response {
    let mut response =
        axum::http::Response::builder().status(answer.status).header("content-type", answer.content_type);
    for (name, value) in &answer.headers {
        response = response.header(*name, value);
    }
    response.body(axum::body::Body::from(answer.body)).unwrap_or_else(|_| Response::new(axum::body::Body::empty()))
}

/// Middleware: counts every request body against the node's body budget
/// ([`crate::memory`]) while the request is served; a request that would go over it gets
/// `503` with a JSON error.
async fn bounded_bodies(
    axum::extract::State(node): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (request, count) = crate::memory::counted(&node.bodies, request);
    let response = next.run(request).await;
    if count.went_over() {
        let busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this poi is receiving too much at once: try again in a few seconds",
        );
        let mut response = busy.into_response();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        return response;
    }
    response
}

/// An error answer: a status and a message that says what to fix.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400: the input is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: the poi failed (storage).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 507: the disk holding the data directory is full; the message names the write.
    pub fn insufficient_storage(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INSUFFICIENT_STORAGE, message)
    }

    /// A failed file write: 507 when the disk is full, else 500; `what` names the write.
    pub fn write_failed(what: &str, e: &std::io::Error) -> ApiError {
        if crate::storage::is_full(e) {
            ApiError::insufficient_storage(format!("disk full: {what}: {e}; delete images to make room"))
        } else {
            ApiError::internal(format!("{what}: {e}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<povpoi_core::sync::Error> for ApiError {
    fn from(e: povpoi_core::sync::Error) -> ApiError {
        povpoi_app::api::ApiError::from(e).into()
    }
}

impl From<povpoi_app::api::ApiError> for ApiError {
    fn from(e: povpoi_app::api::ApiError) -> ApiError {
        ApiError::new(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.message)
    }
}

impl From<crate::config::InvalidSetting> for ApiError {
    fn from(e: crate::config::InvalidSetting) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<povpoi_core::model::InvalidContent> for ApiError {
    fn from(e: povpoi_core::model::InvalidContent) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// A JSON object body, parsed whatever the content type, with parse errors as JSON 400s
/// (413 beyond the route's size limit).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body's bytes, with a JSON 413 beyond the route's size limit (axum's own answer is
/// plain text) and a JSON 400 when it is cut short.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state).await.map(RawBody).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })
    }
}

/// A JSON object body taken only when sent as JSON: `415` otherwise, before the body is
/// read ([`povpoi_app::rules::json_only`]: for the endpoints that decide whom a poi trusts,
/// which no page on another site may reach).
pub struct JsonOnly<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOnly<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        povpoi_app::rules::json_only(content_type(&request))?;
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        Ok(JsonOnly(value))
    }
}

/// A request's `Content-Type` header, for the rules that take a body only as one type.
fn content_type(request: &Request) -> Option<&[u8]> {
    request.headers().get(axum::http::header::CONTENT_TYPE).map(|v| v.as_bytes())
}

/// Parses a JSON body, saying where it is wrong (the rules: [`povpoi_app::rules::parse_json`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(povpoi_app::rules::parse_json(bytes)?)
}

/// The plain success answer of the existing system.
pub fn ok(message: &str) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "message": message }))
}
