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
use povpoi_app::upload::{UPLOAD_PATH, Upload};

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

    /// Starts reading an image upload ([`povpoi_app::App::begin_upload`]).
    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response>;

    /// Reads the next bytes of an upload ([`povpoi_app::App::upload_step`]).
    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response>;

    /// Ends an upload whose body ended ([`povpoi_app::App::finish_upload`]).
    fn finish_upload(&self, upload: Upload<'_>) -> Response;

    /// Gives up an upload whose body never came whole ([`povpoi_app::App::abandon_upload`]).
    fn abandon_upload(&self);
}

/// Gives an upload up when its reading ends, whichever way: after the application's answer
/// there is nothing left to give up, but a connection task's future dropped half way
/// would otherwise leave the poi's own sync waiting for an upload that never ends.
struct GivenUp<'a, A: Application>(&'a A);

impl<A: Application> Drop for GivenUp<'_, A> {
    fn drop(&mut self) {
        self.0.abandon_upload();
    }
}

/// Seconds a request, its body included, has to arrive whole (the server's read timeout).
pub const READ_REQUEST_S: u64 = 20;

/// Bytes of an upload's body read at once: on the heap while it is read (a connection
/// task's future is static RAM, and the C6 has little of it left).
const UPLOAD_READ_BYTES: usize = 1024;

/// Reads an upload's body into the application a piece at a time, under its lock for each
/// piece only (the player and the sync run between pieces): the pixels go to the flash as
/// they come, so an image of 38,400 bytes never is on the heap.
async fn upload<A: Application, R: Read>(app: &A, request: &Request<'_>, mut body: R, length: usize) -> Response {
    // Boxed: held across the reads, it would otherwise be part of each connection task's
    // future, which is static RAM (its parser keeps a 256-byte header line).
    let mut upload = match app.begin_upload(request) {
        Ok(upload) => alloc::boxed::Box::new(upload),
        Err(refusal) => return refusal,
    };
    let _given_up_if_dropped = GivenUp(app);
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(UPLOAD_READ_BYTES.max(upload.min_buffer())).is_err() {
        app.abandon_upload();
        return ApiError::new(507, "not enough memory to read the upload").response();
    }
    buffer.resize(buffer.capacity(), 0);
    let (mut start, mut end, mut left) = (0, 0, length);
    loop {
        match app.upload_step(&mut upload, &buffer[start..end], left == 0) {
            Ok(used) => start += used,
            Err(refusal) => return refusal,
        }
        if upload.finished() || left == 0 {
            // A form that did not end is refused by the application, and nothing kept.
            return app.finish_upload(*upload);
        }
        buffer.copy_within(start..end, 0);
        (start, end) = (0, end - start);
        let room = (buffer.len() - end).min(left);
        match body.read(&mut buffer[end..end + room]).await {
            Ok(n) if n > 0 => (end, left) = (end + n, left - n),
            _ => {
                app.abandon_upload();
                let why = alloc::format!(
                    "the upload stopped arriving: the connection closed, or it took over {READ_REQUEST_S} s"
                );
                return ApiError::bad_request(why).response();
            }
        }
    }
}

/// Answers every request with 503: a poi whose flash holds no usable store (the error is
/// in the log and in the answer).
#[derive(Clone, Copy, Debug)]
pub struct NoStorage;

/// The 503 of a poi without storage.
fn no_storage() -> Response {
    ApiError::new(503, "this poi has no storage: flash it with firmware/partitions.csv (docs/FIRMWARE.md)").response()
}

impl Application for NoStorage {
    async fn handle(&self, _request: Request<'_>) -> Response {
        no_storage()
    }

    fn list_next(&self, _listing: &mut Listing, _out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        // Its answers list nothing.
        Ok(false)
    }

    fn begin_upload<'b>(&self, _request: &Request<'b>) -> Result<Upload<'b>, Response> {
        Err(no_storage())
    }

    fn upload_step(&self, _upload: &mut Upload<'_>, _input: &[u8], _eof: bool) -> Result<usize, Response> {
        Ok(0)
    }

    fn finish_upload(&self, _upload: Upload<'_>) -> Response {
        no_storage()
    }

    fn abandon_upload(&self) {}
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
        let headers: heapless::Vec<(&str, &[u8]), MAX_HEADERS> = parts
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((core::str::from_utf8(name.as_raw()).ok()?, value.as_raw())))
            .take(MAX_HEADERS)
            .collect();
        let request_of = |body| Request {
            method: parts.method(),
            path: parts.path().encoded(),
            query: parts.query().map(|q| q.0),
            headers: &headers,
            body,
            from: self.remote.get(),
        };
        let response = {
            let body = request.body_connection.body();
            let length = body.content_length();
            if parts.method() == "POST" && parts.path().encoded() == UPLOAD_PATH {
                upload(self.app, &request_of(b""), body.reader(), length).await
            } else if length > MAX_BODY_BYTES {
                ApiError::new(413, "request body too large for this poi").response()
            } else {
                let mut bytes = Vec::new();
                if bytes.try_reserve_exact(length).is_err() {
                    ApiError::new(507, "not enough memory for the request body").response()
                } else {
                    bytes.resize(length, 0);
                    match body.reader().read_exact(&mut bytes).await {
                        Ok(()) => self.app.handle(request_of(&bytes)).await,
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

/// A response body with the application's content type (a web app file straight from the
/// flash, without a copy on the heap).
struct Body {
    content_type: &'static str,
    bytes: alloc::borrow::Cow<'static, [u8]>,
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
