//! This poi's side of sync sessions it starts: the core's [`Session`] driven over HTTP
//! (`POST /api/sync/v1`, postcard bodies, signed when the group has a key), and the rounds
//! that run sessions with every online peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use povpoi_core::device::DeviceId;
use povpoi_core::sync::{Categories, Direction, Request, Response, Session, SyncOptions};
use povpoi_core::wire;
use povpoi_peer::auth::HEADER_SIGNATURE;
use povpoi_peer::exchange::{self, AnswerCheck, Caller, SYNC_PATH};
use povpoi_peer::key::GroupKey;
use povpoi_peer::session::{self, DriveError, Ended, Link, LinkFailure, Progress, Replicas};

use crate::history::{HistoryEntry, Role};
use crate::library::{Library, Origin, now_ms};
use crate::peers::{Peer, PeerTable, Sighting, Source};

/// Longest one session of auto-sync may take, waiting for its turn included, before it is
/// abandoned (it resumes next time): a whole library's pixels on a slow link.
pub const AUTO_SESSION_DEADLINE: Duration = Duration::from_secs(120);
/// Longest one request of a session may wait for its answer: a peer that takes longer is
/// stuck, not slow (an answer carries at most 128 KiB of pixels).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of a poi the sessions it starts use; the node hands over its state.
pub trait SessionParts: Sync {
    /// Who calls.
    fn caller(&self) -> CallerId;
    /// The port its API listens on (a called peer may call back there).
    fn port(&self) -> u16;
    /// The HTTP client for peers.
    fn http(&self) -> &reqwest::Client;
    /// The replicated library.
    fn library(&self) -> &Library;
    /// The peer table.
    fn peers(&self) -> &PeerTable;
    /// A poi was met where one was not known (a session with an address).
    fn peer_seen(&self, seen: &Sighting, source: Source);
    /// The lock that lets one session at a time run with the poi at `addr`.
    fn session_lock(&self, addr: SocketAddr) -> Arc<tokio::sync::Mutex<()>>;
    /// A session ended: into the history and the event stream.
    fn session_ended(&self, entry: &HistoryEntry);
}

/// Who a poi is when it calls another.
#[derive(Clone, Debug)]
pub struct CallerId {
    /// Its device id, as text.
    pub device: String,
    /// Its sync group.
    pub group: String,
    /// The group's pairing key, if it has one.
    pub key: Option<GroupKey>,
}

/// Largest answer read from a peer: a sync answer is bounded by the peer's own request
/// limit; anything bigger is not a povpoi peer and must not fill our memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The poi a request goes to: where it listens, and its device id (which a signed request
/// names, so no other poi takes it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Destination<'a> {
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its device id, as text.
    pub device: &'a str,
}

/// A request to another poi, ready to send: when the group has a key, its body sealed and
/// the request signed for `to`.
pub(crate) fn peer_request(
    node: &impl SessionParts,
    method: reqwest::Method,
    to: Destination<'_>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (reqwest::RequestBuilder, AnswerCheck) {
    let CallerId { device, group, key } = node.caller();
    let port = node.port().to_string();
    let caller = Caller { device: &device, port: &port, group: &group, key: key.as_ref() };
    let outgoing = exchange::request(&caller, method.as_str(), path, to.device, body, now_ms(), &mut rand::rng());
    let mut builder =
        node.http().request(method, format!("http://{}{path}", to.addr)).header("content-type", content_type);
    for (name, value) in &outgoing.headers {
        builder = builder.header(*name, value);
    }
    (builder.body(outgoing.body), outgoing.check)
}

/// Why a peer's answer was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Longer than the caller takes.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The connection broke before its end.
    #[error("cut short: {0}")]
    CutShort(#[source] reqwest::Error),
}

/// Reads an answer's body, refusing one longer than `limit` bytes.
pub(crate) async fn read_capped(mut answer: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if answer.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(ReadError::CutShort)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends one message to the peer `receiver` (its device id) at `addr`; returns its answer
/// and the bytes both ways.
pub async fn send_message(
    node: &impl SessionParts,
    addr: SocketAddr,
    receiver: &str,
    request: &Request,
) -> Result<(Response, u64), LinkFailure> {
    let body = wire::to_bytes(request);
    let to = Destination { addr, device: receiver };
    let (call, check) = peer_request(node, reqwest::Method::POST, to, SYNC_PATH, "application/octet-stream", &body);
    let answer = call.timeout(REQUEST_TIMEOUT).send().await.map_err(|e| {
        if e.is_timeout() {
            // It took the connection but does not answer: stuck, to be backed off.
            LinkFailure::new(Ended::Stalled, format!("{addr} did not answer within {REQUEST_TIMEOUT:?}"))
        } else {
            let kind = if e.is_connect() { Ended::Unreachable } else { Ended::Failed };
            LinkFailure::new(kind, format!("cannot reach {addr}: {e}"))
        }
    })?;
    let status = answer.status();
    let signature = answer.headers().get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_capped(answer, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| LinkFailure::new(Ended::Failed, format!("answer from {addr}: {e}")))?;
    let on_wire = bytes.len() as u64;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(LinkFailure::new(
            Ended::of_status(status.as_u16()),
            format!("{addr} answered {status}: {message}"),
        ));
    }
    let bytes = check
        .open_answer(status.as_u16(), signature.as_deref(), bytes)
        .map_err(|e| LinkFailure::new(Ended::Failed, format!("answer from {addr} {e}")))?;
    let response = wire::from_bytes(&bytes)
        .map_err(|e| LinkFailure::new(Ended::Failed, format!("bad answer from {addr}: {e}")))?;
    Ok((response, check.sent + on_wire))
}

/// Runs one whole session with the peer at `addr`, giving up after `deadline` (waiting for
/// a session already running with that peer included); the outcome goes into the history
/// and the event stream, and is returned.
pub async fn sync_with(
    node: &impl SessionParts,
    addr: SocketAddr,
    peer: Option<&Peer>,
    options: SyncOptions,
    trigger: &str,
    deadline: Duration,
) -> HistoryEntry {
    let lock = node.session_lock(addr);
    let started = Instant::now();
    let turn = tokio::time::timeout(deadline, lock.lock()).await;
    let mut entry = HistoryEntry {
        at: now_ms(),
        role: Role::Initiator,
        peer_id: peer.map(|p| p.device_id.to_string()).unwrap_or_default(),
        peer_name: peer.map(|p| p.device_name.clone()).unwrap_or_default(),
        ip_address: addr.to_string(),
        direction: direction_name(options.direction).into(),
        trigger: trigger.into(),
        ..HistoryEntry::default()
    };
    // Outside the session's future: a session cut by its deadline still records how far it got.
    let mut progress = Progress::default();
    let session = async {
        let Ok(_one_at_a_time_with_this_peer) = turn else {
            return Err(LinkFailure::new(
                Ended::Stalled,
                format!("a session with {addr} still running after {deadline:?}"),
            ));
        };
        let receiver = match peer {
            Some(peer) => peer.device_id,
            // A request is signed for the poi it goes to: learn who answers there first,
            // and list it as a peer.
            None => {
                let seen = probe(node.http(), addr).await.map_err(|e| {
                    LinkFailure::new(Ended::Unreachable, format!("cannot learn which poi answers at {addr}: {e}"))
                })?;
                node.peer_seen(&seen, Source::Contact);
                entry.peer_id = seen.device_id.to_string();
                entry.peer_name = seen.device_name;
                seen.device_id
            }
        };
        drive(node, addr, receiver, options, &mut progress).await.map(|()| receiver)
    };
    let outcome = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), session).await;
    record(&mut entry, &progress);
    let outcome = outcome.unwrap_or_else(|_| {
        Err(LinkFailure::new(
            Ended::Stalled,
            format!("session with {addr} not done within {deadline:?}: stopped, it resumes next time"),
        ))
    });
    entry.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(receiver) => {
            entry.ok = true;
            node.peers().confirm(receiver, addr, now_ms());
            if options.direction == Direction::Bidirectional && options.categories == Categories::ALL {
                // Both sides now hold what both had: the peer's digest is ours until it
                // changes again. Not after a partial session: the two still differ.
                node.peers().set_digest(receiver, node.library().digest());
            }
        }
        Err(LinkFailure { ended, message }) => {
            tracing::warn!(peer = %addr, error = %message, "sync failed");
            entry.error = Some(message);
            entry.refused = ended == Ended::Refused;
            entry.stalled = ended == Ended::Stalled;
            entry.unreachable = ended == Ended::Unreachable;
        }
    }
    tracing::info!(
        peer = %addr, ok = entry.ok, received = entry.records_received, sent = entry.records_sent,
        blobs_in = entry.blobs_received, blobs_out = entry.blobs_sent, ms = entry.duration_ms, "sync session"
    );
    node.session_ended(&entry);
    entry
}

/// The session's messages over HTTP to the poi at `addr`.
struct HttpLink<'a, P> {
    node: &'a P,
    addr: SocketAddr,
    receiver: String,
}

impl<P: SessionParts> Link for HttpLink<'_, P> {
    type Error = LinkFailure;
    async fn exchange(&mut self, request: &Request) -> Result<(Response, u64), LinkFailure> {
        send_message(self.node, self.addr, &self.receiver, request).await
    }
}

/// The library as a session needs it: merges run off the async threads and save.
struct LibrarySessions<'a>(&'a crate::library::Library);

impl Replicas for LibrarySessions<'_> {
    async fn start(&mut self, options: SyncOptions) -> (Session, Request) {
        self.0.read(|poi| Session::start(poi, options))
    }

    async fn merge(
        &mut self,
        mut session: Session,
        response: Response,
    ) -> (Session, Result<Option<Request>, povpoi_core::sync::Error>) {
        self.0
            .write(Origin::Peer, move |poi| {
                let next = session.on_response(poi, response, now_ms());
                (session, next)
            })
            .await
    }
}

/// Copies what a session did so far into its history entry.
fn record(entry: &mut HistoryEntry, progress: &Progress) {
    let report = progress.report;
    entry.round_trips = progress.round_trips;
    entry.bytes = progress.bytes;
    entry.records_received = report.pulled.records_merged;
    entry.records_sent = report.records_sent;
    entry.images_added = report.pulled.images_added;
    entry.patterns_added = report.pulled.patterns_added;
    entry.settings_updated = report.pulled.settings_updated;
    entry.items_deleted = report.pulled.items_deleted;
    entry.blobs_received = report.blobs_received;
    entry.blobs_sent = report.blobs_sent;
}

async fn drive(
    node: &impl SessionParts,
    addr: SocketAddr,
    receiver: DeviceId,
    options: SyncOptions,
    progress: &mut Progress,
) -> Result<(), LinkFailure> {
    let mut link = HttpLink { node, addr, receiver: receiver.to_string() };
    let outcome = session::drive(&mut link, &mut LibrarySessions(node.library()), receiver, options, progress).await;
    let ended = session::ended(&outcome, progress);
    outcome.map_err(|e| match e {
        DriveError::Link(failure) => LinkFailure { ended, ..failure },
        DriveError::WrongPeer { answered } => {
            LinkFailure::new(ended, format!("the poi at {addr} is {answered}, not {receiver}"))
        }
        DriveError::TooManyRoundTrips => {
            LinkFailure::new(Ended::Failed, format!("gave up after {} round trips", session::MAX_ROUND_TRIPS))
        }
        DriveError::Sync(e) => LinkFailure::new(Ended::Failed, e.to_string()),
    })
}

/// The API name of a direction.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Bidirectional => "bidirectional",
        Direction::Push => "push",
        Direction::Pull => "pull",
    }
}

/// Syncs with every online peer of this poi's group (a person asked: those auto-sync pauses
/// too), side by side, each within `deadline`.
pub async fn sync_with_online_peers(
    node: &impl SessionParts,
    options: SyncOptions,
    trigger: &str,
    deadline: Duration,
) -> Vec<HistoryEntry> {
    let group = node.caller().group;
    let peers = node.peers().online_in(&group, povpoi_core::sync::PROTOCOL_VERSION);
    let sessions = peers.iter().map(|peer| sync_with(node, peer.addr, Some(peer), options, trigger, deadline));
    futures_util::future::join_all(sessions).await
}

/// Why a probe did not learn who answers at an address.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered.
    #[error("{0}")]
    Unreachable(#[source] reqwest::Error),
    /// The answer was not read whole.
    #[error(transparent)]
    Answer(#[from] ReadError),
    /// What answered is not a povpoi node, or gave no device id.
    #[error(transparent)]
    NotPovpoi(#[from] povpoi_app::peers::NotAPoi),
}

/// Asks the node at `addr` who it is (`GET /api/sync/status`).
pub(crate) async fn probe(http: &reqwest::Client, addr: SocketAddr) -> Result<Sighting, ProbeError> {
    let answer = http
        .get(format!("http://{addr}/api/sync/status"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(ProbeError::Unreachable)?;
    let bytes = read_capped(answer, 64 * 1024).await?;
    Ok(povpoi_app::peers::read_sync_status(&bytes, addr)?)
}
