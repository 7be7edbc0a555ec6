//! Requests and answers as the application sees them, whatever server parsed them: a node's
//! axum and a board's picoserve both hand over a [`Request`] and send back its [`Response`].

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use povpoi_core::model::InvalidContent;
use serde::Serialize;

/// One request, borrowed from the server's buffers while it is answered.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, ... as the client sent it.
    pub method: &'a str,
    /// The path, still percent-encoded (`/api/images/My%20pic`).
    pub path: &'a str,
    /// What followed the `?`, still percent-encoded; `None` without one.
    pub query: Option<&'a str>,
    /// Header names and raw values, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The whole body.
    pub body: &'a [u8],
    /// Where the request came from.
    pub from: SocketAddr,
}

impl<'a> Request<'a> {
    /// The first header called `name` (ASCII case-insensitive), borrowed for as long as
    /// the request's headers (an upload's parser keeps its `Content-Type`).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    /// The first header called `name`, if it is text.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// `Ok` when the body is sent as JSON, the `415` otherwise ([`crate::rules::json_only`]).
    pub fn json_only(&self) -> Result<(), ApiError> {
        crate::rules::json_only(self.header("content-type"))
    }
}

/// What the application answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// Other headers (`Content-Length` is the server's to add).
    pub headers: Vec<(&'static str, String)>,
    /// The body: built for this answer, or sent from the program image as it is (the web
    /// app's files, which a board's heap could not hold a copy of).
    pub body: Cow<'static, [u8]>,
    /// A list sent item by item after `body` ([`App::list_next`](crate::App::list_next)),
    /// chunked: its length is not known ahead.
    pub listing: Option<alloc::boxed::Box<crate::content::Listing>>,
}

impl Response {
    /// A JSON answer of `value` with `status`.
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response { status, content_type: "application/json", headers: Vec::new(), body: body.into(), listing: None }
    }

    /// A `200` binary answer.
    pub fn octets(body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type: "application/octet-stream",
            headers: Vec::new(),
            body: body.into(),
            listing: None,
        }
    }

    /// A `200` of bytes gzipped when building, sent from the program image as they are
    /// (no copy on a board's heap).
    pub fn gzipped(content_type: &'static str, bytes: &'static [u8]) -> Response {
        Response {
            status: 200,
            content_type,
            headers: alloc::vec![("content-encoding", "gzip".into())],
            body: Cow::Borrowed(bytes),
            listing: None,
        }
    }

    /// A file of the web app ([`povpoi_ui`]): asked again at every load (a poi updated to a
    /// new app is never shown with the old script).
    pub fn asset(asset: &'static povpoi_ui::Asset) -> Response {
        let mut response = Response::gzipped(asset.content_type, asset.gzipped);
        response.headers.push(("cache-control", "no-cache".into()));
        response
    }
}

/// An error answer: a status and a message that says what to fix; sent as
/// `{"error": message}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400: the input is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    /// 404 for a path no endpoint has.
    pub fn no_endpoint() -> ApiError {
        ApiError::not_found("no such endpoint")
    }

    /// 405 for a method the endpoint does not take.
    pub fn not_allowed() -> ApiError {
        ApiError::new(405, "this endpoint does not take that method")
    }

    /// The JSON answer.
    pub fn response(&self) -> Response {
        Response::json(self.status, &crate::answers::Error { error: &self.message })
    }
}

impl From<povpoi_peer::respond::Refusal> for ApiError {
    fn from(refusal: povpoi_peer::respond::Refusal) -> ApiError {
        ApiError::new(refusal.status(), refusal.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl core::error::Error for ApiError {}

impl From<povpoi_core::sync::Error> for ApiError {
    fn from(e: povpoi_core::sync::Error) -> ApiError {
        use povpoi_core::sync::Error as E;
        let status = match &e {
            E::Invalid(_) => 400,
            E::NotFound(_) => 404,
            E::NoFreeSlot(_) => 409,
            E::PixelsMissing(_) | E::GroupMismatch { .. } | E::ForeignHistory => 409,
            E::UnsupportedProtocol(_) | E::BadRecord(_) | E::Protocol(_) | E::Refused(_) => 400,
            E::Storage(full) if full.disk_full => return ApiError::new(507, full.message.clone()),
            E::Storage(_) => 500,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<povpoi_core::sync::StorageError> for ApiError {
    fn from(e: povpoi_core::sync::StorageError) -> ApiError {
        povpoi_core::sync::Error::Storage(e).into()
    }
}

impl From<InvalidContent> for ApiError {
    fn from(e: InvalidContent) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}
