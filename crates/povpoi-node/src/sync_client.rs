//! This poi's side of sync sessions it starts: the core's [`Session`] driven over HTTP
//! (`POST /api/sync/v1`, postcard bodies, signed when the group has a key), and the rounds
//! that run sessions with every online peer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use povpoi_core::sync::{Direction, Request, Response, Session, SyncOptions};
use povpoi_core::wire;

use crate::auth::{self, HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME, Signed};
use crate::events::Event;
use crate::history::HistoryEntry;
use crate::library::{Origin, now_ms};
use crate::node::NodeState;
use crate::peers::Peer;

/// The peer-protocol endpoint.
pub const SYNC_PATH: &str = "/api/sync/v1";
/// Header carrying the caller's HTTP port, so the callee can call back.
pub const HEADER_PORT: &str = "x-povpoi-port";
/// Most request/answer round trips in one session (blobs move 128 KiB per trip).
const MAX_ROUND_TRIPS: u32 = 2_000;
/// Longest one session may take before it is abandoned (it resumes next time).
const SESSION_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a session stopped early.
#[derive(Debug)]
pub struct SyncFailure {
    /// What went wrong, for the history and the log.
    pub message: String,
    /// The peer answered but would not let us in (401/403: wrong or missing key, clock skew).
    pub refused: bool,
}

impl SyncFailure {
    fn new(message: String) -> SyncFailure {
        SyncFailure { message, refused: false }
    }
}

/// Largest answer read from a peer: a sync answer is bounded by the peer's own request
/// limit; anything bigger is not a povpoi peer and must not fill our memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A request to another poi, signed when the group has a key (the HMAC of `auth`); also
/// returns the nonce the answer's signature must echo.
pub(crate) fn signed_request(
    node: &NodeState,
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (reqwest::RequestBuilder, Option<String>) {
    let (device, group, key) = {
        let config = node.config();
        (config.device_id.to_string(), config.sync_group.clone(), config.group_key.clone())
    };
    let mut call = node
        .http
        .request(method.clone(), format!("http://{addr}{path}"))
        .header(HEADER_DEVICE, &device)
        .header(HEADER_PORT, node.addr.port().to_string())
        .header("content-type", content_type);
    let mut nonce = None;
    if let Some(key) = &key {
        let signed = Signed { method: method.as_str(), path, body, device: &device, group: &group };
        let auth = auth::sign_request(key, &signed, now_ms());
        call = call
            .header(HEADER_TIME, auth.time_ms.to_string())
            .header(HEADER_NONCE, &auth.nonce)
            .header(HEADER_SIGNATURE, &auth.signature);
        nonce = Some(auth.nonce);
    }
    (call.body(body.to_vec()), nonce)
}

/// Reads an answer's body, refusing one longer than `limit` bytes.
pub(crate) async fn read_capped(mut answer: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if answer.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("answer larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| format!("cut short: {e}"))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends one message to a peer and returns its answer and the bytes both ways.
pub async fn exchange(node: &NodeState, addr: SocketAddr, request: &Request) -> Result<(Response, u64), SyncFailure> {
    let body = wire::to_bytes(request);
    let (call, nonce) = signed_request(node, reqwest::Method::POST, addr, SYNC_PATH, "application/octet-stream", &body);
    let key = node.config().group_key.clone();
    let sent = body.len() as u64;
    let answer = call.send().await.map_err(|e| SyncFailure::new(format!("cannot reach {addr}: {e}")))?;
    let status = answer.status();
    let signature = answer.headers().get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_capped(answer, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| SyncFailure::new(format!("answer from {addr}: {e}")))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(SyncFailure {
            message: format!("{addr} answered {status}: {message}"),
            refused: matches!(status.as_u16(), 401 | 403),
        });
    }
    if let (Some(key), Some(nonce)) = (&key, &nonce) {
        auth::verify_response(key, nonce, status.as_u16(), &bytes, signature.as_deref())
            .map_err(|e| SyncFailure::new(format!("answer from {addr} not authentic: {e}")))?;
    }
    let response = wire::from_bytes(&bytes).map_err(|e| SyncFailure::new(format!("bad answer from {addr}: {e}")))?;
    Ok((response, sent + bytes.len() as u64))
}

/// Runs one whole session with the peer at `addr`; the outcome goes into the history and
/// the event stream, and is returned.
pub async fn sync_with(
    node: &NodeState,
    addr: SocketAddr,
    peer: Option<&Peer>,
    options: SyncOptions,
    trigger: &str,
) -> HistoryEntry {
    let _one_at_a_time = node.session_lock.lock().await;
    let started = Instant::now();
    let mut entry = HistoryEntry {
        at: now_ms(),
        peer_id: peer.map(|p| p.device_id.to_string()).unwrap_or_default(),
        peer_name: peer.map(|p| p.device_name.clone()).unwrap_or_default(),
        ip_address: addr.to_string(),
        direction: direction_name(options.direction).into(),
        trigger: trigger.into(),
        ..HistoryEntry::default()
    };
    let outcome = tokio::time::timeout(SESSION_TIMEOUT, drive(node, addr, options, &mut entry)).await;
    let outcome = outcome.unwrap_or_else(|_| Err(SyncFailure::new(format!("session took over {SESSION_TIMEOUT:?}"))));
    entry.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            entry.ok = true;
            if let Some(peer) = peer {
                // Both sides now hold what both had: the peer's digest is ours until it changes again.
                node.peers.set_digest(peer.device_id, node.library.digest());
                node.peers.touch(peer.device_id, now_ms());
            }
        }
        Err(SyncFailure { message, refused }) => {
            tracing::warn!(peer = %addr, error = %message, "sync failed");
            entry.error = Some(message);
            entry.refused = refused;
        }
    }
    tracing::info!(
        peer = %addr, ok = entry.ok, received = entry.records_received, sent = entry.records_sent,
        blobs_in = entry.blobs_received, blobs_out = entry.blobs_sent, ms = entry.duration_ms, "sync session"
    );
    node.history.push(entry.clone());
    node.events.send(Event::SyncFinished(entry.clone()));
    entry
}

async fn drive(
    node: &NodeState,
    addr: SocketAddr,
    options: SyncOptions,
    entry: &mut HistoryEntry,
) -> Result<(), SyncFailure> {
    let (mut session, mut request) = node.library.read(|poi| Session::start(poi, options));
    loop {
        if entry.round_trips >= MAX_ROUND_TRIPS {
            return Err(SyncFailure::new(format!("gave up after {MAX_ROUND_TRIPS} round trips")));
        }
        let (response, bytes) = exchange(node, addr, &request).await?;
        entry.round_trips += 1;
        entry.bytes += bytes;
        let (back, next) = node
            .library
            .write(Origin::Peer, move |poi| {
                let next = session.on_response(poi, response, now_ms());
                (session, next)
            })
            .await;
        session = back;
        let report = *session.report();
        entry.records_received = report.pulled.records_merged;
        entry.records_sent = report.records_sent;
        entry.images_added = report.pulled.images_added;
        entry.patterns_added = report.pulled.patterns_added;
        entry.settings_updated = report.pulled.settings_updated;
        entry.items_deleted = report.pulled.items_deleted;
        entry.blobs_received = report.blobs_received;
        entry.blobs_sent = report.blobs_sent;
        match next.map_err(|e| SyncFailure::new(e.to_string()))? {
            Some(next) => request = next,
            None => return Ok(()),
        }
    }
}

/// The API name of a direction.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Bidirectional => "bidirectional",
        Direction::Push => "push",
        Direction::Pull => "pull",
    }
}

/// Syncs with each online peer of this poi's group in turn.
pub async fn sync_with_online_peers(node: &NodeState, options: SyncOptions, trigger: &str) -> Vec<HistoryEntry> {
    let group = node.config().sync_group.clone();
    let mut entries = Vec::new();
    for peer in node.peers.online_in(&group, povpoi_core::sync::PROTOCOL_VERSION) {
        entries.push(sync_with(node, peer.addr, Some(&peer), options, trigger).await);
    }
    entries
}
