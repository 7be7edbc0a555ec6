//! The sync sessions this board starts: push-on-change after its own edits, periodic
//! rounds, and catching up with a peer whose advertised library digest differs. Which are
//! due and how each runs is the shared application's ([`povpoi_app::sessions::run_due`]);
//! this module carries a session's messages as HTTP/1.1 requests over the sync client's
//! connection pool, one connection per message (`Connection: close`), and parses the
//! answer's head with httparse.
//!
//! The peers are those the application knows: heard over mDNS, or that called this board
//! or sent it show clock datagrams, until they time out.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::SocketAddr;

use embassy_time::{Duration, Timer, with_timeout};
use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;
use esp_hal::rng::Trng;
use povpoi_app::sessions::{self, AppLock};
use povpoi_core::device::DeviceId;
use povpoi_core::sync::{Request as SyncRequest, Response as SyncResponse};
use povpoi_core::wire;
use povpoi_peer::auth::HEADER_SIGNATURE;
use povpoi_peer::exchange::{AnswerError, SYNC_PATH};
use povpoi_peer::session::{Ended, Failure, Link};

use crate::http;
use crate::net::SyncClient;
use crate::poi::Shared;

/// How often the application is asked which sessions are due.
const SESSION_CHECK: Duration = Duration::from_secs(1);

/// Longest wait for one message: connecting, sending it and reading the whole answer.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read to a message other than a `Fetch`, bytes: room for an answer of many
/// records. The answer and what it decodes to are in the application's heap at once, beside
/// the library.
pub const MAX_ANSWER_BYTES: usize = 24 * 1024;

use povpoi_app::sessions::BOARD_FETCH_RESERVE_BYTES as FETCH_RESERVE_BYTES;
pub use povpoi_app::sessions::MIN_FETCHED_BLOB_BYTES;

// The reserve counts one request body of this board's server.
const _: () = assert!(FETCH_RESERVE_BYTES >= http::MAX_BODY_BYTES + povpoi_app::sessions::FETCH_STEP_BYTES);

/// Room an answer takes beyond its pixels: its encoding and a seal.
const ANSWER_OVERHEAD_BYTES: usize = 1024;

/// The largest image pixels the next sessions fetch, with `free` bytes of heap free
/// ([`povpoi_app::sessions::fetch_limit`], keeping a request body's room and the step's).
pub fn fetch_limit(free: usize) -> usize {
    povpoi_app::sessions::fetch_limit(free, FETCH_RESERVE_BYTES)
}

/// Bytes of records, at most, in one `Push` part of the board's own sessions (the App's
/// `max_push_part_bytes`; crates/povpoi-core-riscv/src/board.rs measures with the same).
/// A part's records are held decoded beside their encoding: with 200 images, 6 KiB parts
/// made the board's largest step (docs/FIRMWARE.md, Budgets).
pub const MAX_PUSH_PART_BYTES: usize = 2 * 1024;

/// Room for an answer's status line and headers (the node sends a handful of short ones).
const HEAD_BYTES: usize = 1024;

/// Most headers read from an answer.
const MAX_ANSWER_HEADERS: usize = 16;

/// Why a message of a session got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The radio is off, so there is no randomness to seal the message with.
    #[error("no entropy source: the radio is off")]
    NoEntropy,
    /// No connection to the peer (refused, unreachable, or every pool connection busy).
    #[error("cannot connect to {0}")]
    Connect(SocketAddr),
    /// The connection broke while sending or reading.
    #[error("connection to {0} broke")]
    Broken(SocketAddr),
    /// The whole message took longer than [`MESSAGE_TIMEOUT`].
    #[error("no answer from {0} within {secs} s", secs = MESSAGE_TIMEOUT.as_secs())]
    TimedOut(SocketAddr),
    /// The answer's head is not HTTP/1.1, lacks a length, or is over [`HEAD_BYTES`].
    #[error("answer head not understood: {0}")]
    BadHead(&'static str),
    /// The answer is larger than this board reads to that message.
    #[error("answer of {length} bytes is more than the {most} this board takes to that message")]
    TooLarge {
        /// Its length.
        length: usize,
        /// The most taken.
        most: usize,
    },
    /// No free block of the heap holds the answer.
    #[error("no room in the heap for an answer of {0} bytes")]
    NoRoom(usize),
    /// The peer answered with an error status.
    #[error("peer answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of its body (the error's text).
        body: String,
    },
    /// The answer's signature or seal does not check out.
    #[error("answer {0}")]
    NotTaken(AnswerError),
    /// The answer is not a sync message.
    #[error("bad answer: {0}")]
    Decode(povpoi_core::sync::Error),
}

impl Failure for LinkError {
    fn ended(&self) -> Ended {
        match self {
            LinkError::Connect(_) => Ended::Unreachable,
            LinkError::TimedOut(_) => Ended::Stalled,
            LinkError::Status { status, .. } => Ended::of_status(*status),
            _ => Ended::Failed,
        }
    }
}

/// Starts the sessions the application asks for ([`sessions::run_due`]), forever.
pub async fn run(shared: &'static Shared, client: SyncClient) -> ! {
    loop {
        Timer::after(SESSION_CHECK).await;
        let fetched = fetch_limit(esp_alloc::HEAP.free());
        shared.with(|app, _| app.set_max_fetched_blob_bytes(fetched));
        let link_to = |peer, addr| HttpLink { shared, client: &client, addr, peer, fetched };
        sessions::run_due(shared, link_to, |peer, addr, progress, outcome| match outcome {
            Ok(()) => log::info!(
                "sync with {peer} at {addr}: {} round trips, {} bytes, {} blobs in, {} out",
                progress.round_trips,
                progress.bytes,
                progress.report.blobs_received,
                progress.report.blobs_sent
            ),
            Err(e) => log::warn!("sync with {peer} at {addr} failed after {} round trips: {e}", progress.round_trips),
        })
        .await;
    }
}

/// A session's messages over HTTP to the peer `peer` at `addr`.
struct HttpLink<'a> {
    shared: &'static Shared,
    client: &'a SyncClient,
    addr: SocketAddr,
    peer: DeviceId,
    /// Image pixels fetched at most, as the session was told (the App's config holds the
    /// same; reading it through the lock here cost the C6 image 1,040 B it does not have).
    fetched: usize,
}

impl Link for HttpLink<'_> {
    type Error = LinkError;

    async fn exchange(&mut self, request: &SyncRequest) -> Result<(SyncResponse, u64), LinkError> {
        // Peers' sync messages wait (503) until this one's answer is merged: the heap has
        // room for one session's step, not two (`App::set_exchanging`). The answer is merged
        // right after this returns, with no await between, so the flag may drop here.
        let _in_flight = sessions::InFlight::start(self.shared);
        let body = wire::to_bytes(request);
        let mut rng = Trng::try_new().map_err(|_| LinkError::NoEntropy)?;
        let out = self.shared.with(|app, now| app.outgoing(self.peer, SYNC_PATH, &body, now, &mut rng));
        drop(body);
        let mut head = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "POST {SYNC_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            self.addr,
            out.body.len()
        );
        for (name, value) in &out.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let sent = head.len() + out.body.len();
        // An answer of pixels may be as large as the session fetches; others, of records, not.
        let most = match request {
            SyncRequest::Fetch(_) => MAX_ANSWER_BYTES.max(self.fetched + ANSWER_OVERHEAD_BYTES),
            _ => MAX_ANSWER_BYTES,
        };
        let answer = match with_timeout(MESSAGE_TIMEOUT, self.post(head.as_bytes(), &out.body, most))
            .await
            .map_err(|_| LinkError::TimedOut(self.addr))?
        {
            // Pixels this board has no room for now: as if none came back, so the session
            // stops asking for them and goes on with the others (a later round tries again).
            Err(e @ (LinkError::TooLarge { .. } | LinkError::NoRoom(_)))
                if matches!(request, SyncRequest::Fetch(_)) =>
            {
                log::warn!("sync with {}: image left missing for now: {e}", self.peer);
                return Ok((SyncResponse::Blobs { blobs: Vec::new(), missing: Vec::new() }, sent as u64));
            }
            answer => answer?,
        };
        let on_wire = (sent + answer.head_bytes + answer.body.len()) as u64;
        if answer.status != 200 {
            // The node's error answers are short JSON; anything else is not worth the flash
            // a lossy decoder costs.
            let body = core::str::from_utf8(&answer.body).unwrap_or("(not text)").chars().take(200).collect();
            return Err(LinkError::Status { status: answer.status, body });
        }
        let plain = out
            .check
            .open_answer(answer.status, answer.signature.as_deref(), answer.body)
            .map_err(LinkError::NotTaken)?;
        // Decoded in its own buffer: an image's pixels are held once (the heap, FIRMWARE.md).
        let answer = wire::response_from_vec(plain).map_err(LinkError::Decode)?;
        Ok((answer, on_wire))
    }
}

/// An answer as read off the connection.
struct Answer {
    status: u16,
    signature: Option<String>,
    head_bytes: usize,
    body: Vec<u8>,
}

impl HttpLink<'_> {
    /// Sends one request on a new connection and reads its whole answer.
    async fn post(&self, head: &[u8], body: &[u8], most: usize) -> Result<Answer, LinkError> {
        let broken = |_| LinkError::Broken(self.addr);
        let mut connection = self.client.connect(self.addr).await.map_err(|_| LinkError::Connect(self.addr))?;
        connection.write_all(head).await.map_err(broken)?;
        connection.write_all(body).await.map_err(broken)?;
        connection.flush().await.map_err(broken)?;

        let mut buf = [0u8; HEAD_BYTES];
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                return Err(LinkError::BadHead("longer than 1 KiB"));
            }
            let n = connection.read(&mut buf[filled..]).await.map_err(broken)?;
            if n == 0 {
                return Err(LinkError::BadHead("connection closed before the head ended"));
            }
            filled += n;
            let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            let head_bytes = match parsed.parse(&buf[..filled]) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => continue,
                Err(_) => return Err(LinkError::BadHead("not an HTTP/1.1 answer")),
            };
            let status = parsed.code.unwrap_or(0);
            let header = |name: &str| {
                parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| core::str::from_utf8(h.value).ok())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .ok_or(LinkError::BadHead("no content-length"))?;
            if length > most {
                return Err(LinkError::TooLarge { length, most });
            }
            let signature = header(HEADER_SIGNATURE).map(String::from);
            let mut body = Vec::new();
            // Free room is not one free block: refused here rather than stopping the board.
            body.try_reserve_exact(length).map_err(|_| LinkError::NoRoom(length))?;
            body.extend_from_slice(&buf[head_bytes..filled.min(head_bytes + length)]);
            let start = body.len();
            body.resize(length, 0);
            connection.read_exact(&mut body[start..]).await.map_err(|_| LinkError::Broken(self.addr))?;
            return Ok(Answer { status, signature, head_bytes, body });
        }
    }
}
