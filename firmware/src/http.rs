//! The HTTP server (picoserve): every request, whatever its method and path, is collected into
//! a plain [`Request`] and handed to one [`Application::handle`], whose [`Response`] is sent back.
//!
//! **Scaffolding.** The shared application (the node's API semantics, moving into a portable
//! crate) is not linked into this build yet. Until it is, [`NotLinked`] answers every request
//! with `503 {"error":"povpoi application not linked in this build yet"}`: the poi's HTTP
//! API does nothing on this firmware today.
//!
//! What the platform does itself: parse HTTP/1.1 (picoserve), keep at most
//! [`crate::net::HTTP_CONNECTIONS`] connections, time out slow clients (picoserve's timeouts
//! below), and refuse a body over [`MAX_BODY_BYTES`] with 413 before reading it. Streaming
//! bodies (uploads bigger than that) and streamed responses (`/api/events`) are not offered
//! yet; they are for the application's port to ask for.

use alloc::string::String;
use alloc::vec::Vec;

use embassy_net::Stack;
use embassy_time::Duration;
use picoserve::io::Read;
use picoserve::request::{Path, Request as PicoRequest};
use picoserve::response::{Content, Response as PicoResponse, ResponseWriter, StatusCode};
use picoserve::routing::{PathRouterService, ServicePathRouter};
use picoserve::{ResponseSent, Router};

/// Largest request body collected, in bytes: read into the application's heap, so the three
/// connections at once hold at most 24 KB of its 64 KB.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Most request headers collected; more are dropped (the node reads fewer than ten).
pub const MAX_HEADERS: usize = 24;

/// Room for the request line and headers, per connection: a phone browser's headers to a poi
/// (no cookies) are ~500 bytes, a peer's signature headers ~300 more; a request whose head does
/// not fit is answered 400 by picoserve.
pub const HEAD_BUFFER_BYTES: usize = 1280;

/// One request as the application sees it. Borrowed from the connection's buffers for the
/// duration of [`Application::handle`].
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, ... as the client sent it.
    pub method: &'a str,
    /// The path, still percent-encoded (`/api/images/My%20pic`).
    pub path: &'a str,
    /// What followed the `?`, still percent-encoded; `None` without one.
    pub query: Option<&'a str>,
    /// Header names and raw values, in order (at most [`MAX_HEADERS`]).
    pub headers: heapless::Vec<(&'a str, &'a [u8]), MAX_HEADERS>,
    /// The whole body (at most [`MAX_BODY_BYTES`]).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// What the application answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// Other headers (`Content-Length` is added from the body).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type: "application/json", headers: Vec::new(), body: body.into() }
    }
}

/// The shared application, as the HTTP server calls it.
// The executor is single-threaded (esp-rtos runs every task on one core), so the future never
// has to be Send, the bound the lint asks about.
#[allow(async_fn_in_trait)]
pub trait Application {
    /// Answers one request.
    async fn handle(&self, request: Request<'_>) -> Response;
}

/// The body [`NotLinked`] answers with.
pub const NOT_LINKED_BODY: &str = r#"{"error":"povpoi application not linked in this build yet"}"#;

/// Placeholder until the shared application is linked in: every request gets 503 and
/// [`NOT_LINKED_BODY`]. Scaffolding, not a feature.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotLinked;

impl Application for NotLinked {
    async fn handle(&self, _request: Request<'_>) -> Response {
        Response::json(503, NOT_LINKED_BODY)
    }
}

/// picoserve's routing, with every path going to the application.
pub type AppRouter<A> = Router<ServicePathRouter<Service<A>>>;

/// The router for `app`: no routes of its own, one service for every path.
pub fn router<A: Application>(app: A) -> AppRouter<A> {
    Router::from_service(Service { app })
}

/// Connection timeouts: a phone on a weak link gets seconds, a stuck client is cut off.
pub const CONFIG: picoserve::Config = picoserve::Config::new(picoserve::Timeouts {
    start_read_request: Duration::from_secs(5),
    persistent_start_read_request: Duration::from_secs(2),
    read_request: Duration::from_secs(5),
    write: Duration::from_secs(5),
})
.keep_connection_alive();

/// Serves connections one after another on [`crate::net::HTTP_PORT`]; run one per connection
/// wanted at once (`id` names it in the log).
pub async fn serve<A: Application>(id: usize, stack: Stack<'static>, router: &'static AppRouter<A>) -> ! {
    let mut head = [0u8; HEAD_BUFFER_BYTES];
    let mut rx = [0u8; crate::net::TCP_BUFFER_BYTES];
    let mut tx = [0u8; crate::net::TCP_BUFFER_BYTES];
    let server = picoserve::Server::new(router, &CONFIG, &mut head);
    match server.listen_and_serve(id, stack, crate::net::HTTP_PORT, &mut rx, &mut tx).await {}
}

/// The one picoserve service: collects the request and calls the application.
pub struct Service<A> {
    app: A,
}

impl<A: Application> PathRouterService<()> for Service<A> {
    async fn call_path_router_service<R: Read, W: ResponseWriter<Error = R::Error>>(
        &self,
        _state: &(),
        _path_parameters: (),
        _remaining_path: Path<'_>,
        mut request: PicoRequest<'_, R>,
        response_writer: W,
    ) -> Result<ResponseSent, W::Error> {
        let parts = request.parts;
        let response = {
            let body = request.body_connection.body();
            let length = body.content_length();
            if length > MAX_BODY_BYTES {
                Response::json(413, r#"{"error":"request body too large for this poi"}"#)
            } else {
                let mut bytes = Vec::new();
                if bytes.try_reserve_exact(length).is_err() {
                    Response::json(507, r#"{"error":"not enough memory for the request body"}"#)
                } else {
                    bytes.resize(length, 0);
                    match body.reader().read_exact(&mut bytes).await {
                        Ok(()) => {
                            let headers = parts
                                .headers()
                                .iter()
                                .filter_map(|(name, value)| {
                                    Some((core::str::from_utf8(name.as_raw()).ok()?, value.as_raw()))
                                })
                                .take(MAX_HEADERS)
                                .collect();
                            let request = Request {
                                method: parts.method(),
                                path: parts.path().encoded(),
                                query: parts.query().map(|q| q.0),
                                headers,
                                body: &bytes,
                            };
                            self.app.handle(request).await
                        }
                        Err(_) => Response::json(400, r#"{"error":"the request body ended early"}"#),
                    }
                }
            }
        };
        let headers: Vec<(&str, &str)> = response.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = Body { content_type: response.content_type, bytes: response.body };
        let reply = PicoResponse::new(StatusCode::new(response.status), body).with_headers(headers.as_slice());
        response_writer.write_response(request.body_connection.finalize().await?, reply).await
    }
}

/// A response body with the application's content type.
struct Body {
    content_type: &'static str,
    bytes: Vec<u8>,
}

impl Content for Body {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn content_length(&self) -> usize {
        self.bytes.len()
    }

    async fn write_content<W: picoserve::io::Write>(self, mut writer: W) -> Result<(), W::Error> {
        writer.write_all(&self.bytes).await
    }
}
