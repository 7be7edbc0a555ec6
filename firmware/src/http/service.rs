//! The one picoserve service of the board's HTTP server ([`super`]): every request, whatever
//! its method and path, is collected into a plain [`Request`] and handed to
//! [`Application::handle`]; its answer is sent back, whole or, for a list the application
//! sends item by item, chunked. No embassy here: `crates/povpoi-app/tests/firmware_http.rs`
//! compiles this file on the host and serves the shared application through it with
//! picoserve on tokio.

use alloc::vec::Vec;
use core::cell::Cell;
use core::net::SocketAddr;

use picoserve::ResponseSent;
use picoserve::io::Read;
use picoserve::request::{Path, Request as PicoRequest};
use picoserve::response::chunked::{ChunkWriter, ChunkedResponse, Chunks, ChunksWritten};
use picoserve::response::{Content, Response as PicoResponse, ResponseWriter, StatusCode};
use picoserve::routing::PathRouterService;
use povpoi_app::api::{ApiError, Request, Response};
use povpoi_app::content::{Listing, ListingCut};

/// Largest request body collected, in bytes: read into the application's heap, so the three
/// connections at once hold at most 24 KB of its 64 KB.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Most request headers collected; more are dropped (the node reads fewer than ten).
pub const MAX_HEADERS: usize = 24;

/// The shared application, as the HTTP server calls it.
// The executor is single-threaded (esp-rtos runs every task on one core), so the future never
// has to be Send, the bound the lint asks about.
#[allow(async_fn_in_trait)]
pub trait Application {
    /// Answers one request.
    async fn handle(&self, request: Request<'_>) -> Response;

    /// Appends the next part of a list that an answer sends item by item
    /// ([`povpoi_app::App::list_next`]); `Ok(false)` once it ended.
    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut>;
}

/// Answers every request with 503: a poi whose flash holds no usable store (the error is
/// in the log and in the answer).
#[derive(Clone, Copy, Debug)]
pub struct NoStorage;

impl Application for NoStorage {
    async fn handle(&self, _request: Request<'_>) -> Response {
        ApiError::new(503, "this poi has no storage: flash it with firmware/partitions.csv (docs/FIRMWARE.md)")
            .response()
    }

    fn list_next(&self, _listing: &mut Listing, _out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        // Its answers list nothing.
        Ok(false)
    }
}

/// The one picoserve service: collects the request and calls the application.
pub struct Service<'a, A: 'static> {
    app: &'static A,
    remote: &'a Cell<SocketAddr>,
}

impl<'a, A> Service<'a, A> {
    /// The service of `app`, with `remote` set by the server to each connection's caller.
    pub fn new(app: &'static A, remote: &'a Cell<SocketAddr>) -> Service<'a, A> {
        Service { app, remote }
    }
}

impl<A: Application> PathRouterService<()> for Service<'_, A> {
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
                ApiError::new(413, "request body too large for this poi").response()
            } else {
                let mut bytes = Vec::new();
                if bytes.try_reserve_exact(length).is_err() {
                    ApiError::new(507, "not enough memory for the request body").response()
                } else {
                    bytes.resize(length, 0);
                    match body.reader().read_exact(&mut bytes).await {
                        Ok(()) => {
                            let headers: heapless::Vec<(&str, &[u8]), MAX_HEADERS> = parts
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
                                headers: &headers,
                                body: &bytes,
                                from: self.remote.get(),
                            };
                            self.app.handle(request).await
                        }
                        Err(_) => ApiError::bad_request("the request body ended early").response(),
                    }
                }
            }
        };
        let headers: Vec<(&str, &str)> = response.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let connection = request.body_connection.finalize().await?;
        if let Some(listing) = response.listing {
            let chunks = Listed { app: self.app, listing, content_type: response.content_type };
            let reply = ChunkedResponse::new(chunks)
                .into_response()
                .with_status_code(StatusCode::new(response.status))
                .with_headers(headers.as_slice());
            return response_writer.write_response(connection, reply).await;
        }
        let body = Body { content_type: response.content_type, bytes: response.body };
        let reply = PicoResponse::new(StatusCode::new(response.status), body).with_headers(headers.as_slice());
        response_writer.write_response(connection, reply).await
    }
}

/// A list sent item by item, each read under the application's lock on its own: the
/// player and the sync run between items.
struct Listed<A: 'static> {
    app: &'static A,
    listing: alloc::boxed::Box<Listing>,
    content_type: &'static str,
}

impl<A: Application> Chunks for Listed<A> {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    async fn write_chunks<W: picoserve::io::Write>(
        mut self,
        mut writer: ChunkWriter<W>,
    ) -> Result<ChunksWritten, W::Error> {
        // One item per chunk: gathering a kilobyte of them held 2.8 KB of heap at the peak
        // (crates/povpoi-core-riscv), one holds about 1 KB.
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            match self.app.list_next(&mut self.listing, &mut chunk) {
                Ok(true) => writer.write_chunk(&chunk).await?,
                Ok(false) => return writer.finalize().await,
                Err(cut) => {
                    // The JSON is left unclosed: no client takes a mixed list for whole.
                    log::info!("listing cut off: {cut}");
                    return writer.finalize().await;
                }
            }
        }
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
