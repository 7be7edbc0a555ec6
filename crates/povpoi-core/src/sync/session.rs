//! Running a sync session: the initiator's steps and the responder's answers.
//!
//! Each request is answered on its own and every answer reflects saved state, so a
//! session may stop after any message (lost, cut off, crashed) and the next session simply
//! starts over from the summaries, moving only what is still missing.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::PROTOCOL_VERSION;
use super::error::Error;
use super::message::{Blob, Request, Response, Summary, SyncOptions};
use super::replica::{MergeReport, PartCursor, Replica};
use super::storage::Storage;
use super::version::Knowledge;
use litemap::LiteMap;

use crate::device::ReplicaId;
use crate::hash::BlobHash;

/// Most blob hashes asked for in one `Fetch`.
pub const MAX_FETCH_HASHES: usize = 64;
/// Rough cap on the pixel bytes in one `Blobs` or `Store` message (one blob always goes).
pub const MAX_BLOB_BYTES_PER_MESSAGE: usize = 128 * 1024;
/// Most bytes of records in one `Push` (one item's records always go): a delta larger than
/// this goes in parts, so that a `Push` fits a board's 8 KiB request body with its
/// summaries and seal, and no poi holds a whole library's records in one message.
pub const MAX_PUSH_RECORD_BYTES: usize = 6 * 1024;
/// The smallest `Push` part a peer's [`Summary::part_bytes`](super::Summary::part_bytes)
/// can ask for: a smaller value counts as this, so a peer cannot make a session crawl.
pub const MIN_PART_BYTES: usize = 1024;

/// What a session moved, from the initiator's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// What merging the peer's records changed here.
    pub pulled: MergeReport,
    /// Records sent to the peer.
    pub records_sent: u32,
    /// Blobs received and kept.
    pub blobs_received: u32,
    /// Blobs the peer kept.
    pub blobs_sent: u32,
}

#[derive(Debug)]
enum Stage {
    AwaitBegun,
    AwaitWant,
    AwaitStored { pending: Vec<BlobHash>, sent: u32 },
    AwaitBlobs { asked: Vec<BlobHash> },
    Done,
}

/// The initiator's side of one sync session with one peer.
///
/// ```text
/// let (mut session, mut request) = Session::start(&replica, options);
/// loop {
///     let response = transport(request)?;
///     match session.on_response(&mut replica, response, now)? {
///         Some(next) => request = next,
///         None => break,
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Session {
    options: SyncOptions,
    stage: Stage,
    /// Blobs the peer said it does not have: not asked again in this session. A sorted
    /// vector, as the replica's own blob set, so a board's image has one set's code.
    unavailable: LiteMap<BlobHash, ()>,
    report: SessionReport,
    /// Blobs asked or sent per message at most (see [`Session::one_blob_at_a_time`]).
    blobs_per_message: usize,
    /// Blobs over this many bytes are not fetched.
    max_blob_bytes: usize,
    /// Bytes of records per `Push` at most (see [`MAX_PUSH_RECORD_BYTES`]).
    push_bytes: usize,
    /// The peer, its knowledge and where the next part of the `Push` starts, while parts
    /// remain.
    pushing: Option<(ReplicaId, Knowledge, PartCursor)>,
}

impl Session {
    /// Opens a session; send the returned request to the peer.
    pub fn start<S: Storage>(replica: &Replica<S>, options: SyncOptions) -> (Session, Request) {
        let session = Session {
            options,
            stage: Stage::AwaitBegun,
            unavailable: LiteMap::new(),
            report: SessionReport::default(),
            blobs_per_message: MAX_FETCH_HASHES,
            max_blob_bytes: usize::MAX,
            push_bytes: MAX_PUSH_RECORD_BYTES,
            pushing: None,
        };
        (session, Request::Begin { summary: replica.summary(), options })
    }

    /// Asks for one blob per `Fetch` and sends one per `Store`, so that no message of the
    /// session holds more than one image's pixels, and fetches none over `max_blob_bytes`
    /// (they stay missing, and do not hold up the smaller ones): for a poi whose RAM has
    /// room for one image but not for a 128 KiB batch. The messages are the protocol's own;
    /// only their count grows.
    pub fn one_blob_at_a_time(mut self, max_blob_bytes: usize) -> Session {
        self.blobs_per_message = 1;
        self.max_blob_bytes = max_blob_bytes;
        self
    }

    /// Sends the records in `Push` parts of at most `max_bytes` (one item's records always
    /// go) instead of [`MAX_PUSH_RECORD_BYTES`]; smaller still if the peer's summary asks.
    pub fn push_parts_of(mut self, max_bytes: usize) -> Session {
        self.push_bytes = max_bytes;
        self
    }

    /// What the session moved so far.
    pub fn report(&self) -> &SessionReport {
        &self.report
    }

    /// Takes the peer's answer; returns the next request, or `None` when the session is done.
    pub fn on_response<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        response: Response,
        now_ms: u64,
    ) -> Result<Option<Request>, Error> {
        let stage = core::mem::replace(&mut self.stage, Stage::Done);
        match (stage, response) {
            (_, Response::Refused(why)) => Err(Error::Refused(why)),
            (Stage::AwaitBegun, Response::Begun { summary, delta, want }) => {
                check_peer(replica, &summary)?;
                replica.note_peer(&summary)?;
                // The peer holds each part's records decoded: its parts, not ours, if smaller.
                self.push_bytes = self.push_bytes.min(summary.parts_taken());
                if let Some(delta) = delta {
                    if !self.options.direction.pulls() || delta.replica != summary.replica {
                        return Err(Error::Protocol("peer sent records that were not asked for"));
                    }
                    self.report.pulled.add(&replica.apply_delta(*delta, now_ms)?);
                }
                let push =
                    self.options.direction.pushes() && replica.peer_lacks(&summary.knowledge, self.options.categories);
                let next = if push {
                    Some(self.next_push(replica, summary.replica, summary.knowledge, None))
                } else if self.options.direction.pushes() && self.options.categories.images {
                    self.next_store(replica, want.into_iter().take(MAX_FETCH_HASHES).collect())?
                } else {
                    self.next_fetch(replica)
                };
                Ok(next)
            }
            (Stage::AwaitWant, Response::Want(wanted)) => {
                let pending = wanted.into_iter().take(MAX_FETCH_HASHES).collect();
                self.next_store(replica, pending)
            }
            (Stage::AwaitStored { pending, sent }, Response::Stored(kept)) => {
                self.report.blobs_sent = self.report.blobs_sent.saturating_add(kept.min(sent));
                self.next_store(replica, pending)
            }
            (Stage::AwaitBlobs { asked }, Response::Blobs { blobs, missing }) => {
                let delivered: Vec<BlobHash> = blobs.iter().map(|b| b.hash).collect();
                if blobs.iter().any(|b| !asked.contains(&b.hash)) {
                    return Err(Error::Protocol("peer sent blobs that were not asked for"));
                }
                let kept = replica.store_blobs(blobs)?;
                self.report.blobs_received = self.report.blobs_received.saturating_add(kept);
                let unavailable = if delivered.is_empty() {
                    // Nothing came back: stop asking for these in this session.
                    asked
                } else {
                    // Delivered but refused (damaged, or no longer needed): not asked again.
                    let still_missing = replica.missing_blobs();
                    delivered.into_iter().filter(|h| still_missing.contains(h)).collect()
                };
                for hash in missing.into_iter().chain(unavailable) {
                    self.unavailable.insert(hash, ());
                }
                Ok(self.next_fetch(replica))
            }
            (_, _) => Err(Error::Protocol("answer does not fit the session's step")),
        }
    }

    /// Sends the next batch of blobs the peer asked for, or moves on to fetching.
    fn next_store<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        mut pending: Vec<BlobHash>,
    ) -> Result<Option<Request>, Error> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(hash) = pending.first().copied() {
            // Checked before reading the next blob, so a poi short of RAM never holds two.
            if batch.len() >= self.blobs_per_message {
                break;
            }
            let Some(pixels) = replica.image_pixels(&hash)? else {
                pending.remove(0);
                continue;
            };
            if !batch.is_empty() && bytes + pixels.len() > MAX_BLOB_BYTES_PER_MESSAGE {
                break;
            }
            bytes += pixels.len();
            batch.push(Blob { hash, bytes: pixels });
            pending.remove(0);
        }
        if batch.is_empty() {
            return Ok(match self.pushing.take() {
                // The blobs the last part's records need went first: the peer shows them.
                Some((peer, theirs, cursor)) => Some(self.next_push(replica, peer, theirs, Some(cursor))),
                None => self.next_fetch(replica),
            });
        }
        self.stage = Stage::AwaitStored { pending, sent: batch.len() as u32 };
        Ok(Some(Request::Store(batch)))
    }

    /// The next part of the records the peer `peer`, which had seen `theirs`, lacks.
    fn next_push<S: Storage>(
        &mut self,
        replica: &Replica<S>,
        peer: ReplicaId,
        theirs: Knowledge,
        after: Option<PartCursor>,
    ) -> Request {
        let categories = self.options.categories;
        let (delta, next) = replica.delta_part(&theirs, categories, peer, after.as_ref(), self.push_bytes);
        self.report.records_sent += delta.records.len() as u32;
        self.pushing = next.map(|cursor| (peer, theirs, cursor));
        self.stage = Stage::AwaitWant;
        Request::Push(Box::new(delta))
    }

    /// Asks for the next blobs this replica misses, or ends the session.
    fn next_fetch<S: Storage>(&mut self, replica: &Replica<S>) -> Option<Request> {
        if !self.options.direction.pulls() || !self.options.categories.images {
            return None;
        }
        let asked: Vec<BlobHash> = replica
            .missing_blobs_up_to(self.max_blob_bytes)
            .into_iter()
            .filter(|h| !self.unavailable.contains_key(h))
            .take(self.blobs_per_message)
            .collect();
        if asked.is_empty() {
            return None;
        }
        self.stage = Stage::AwaitBlobs { asked: asked.clone() };
        Some(Request::Fetch(asked))
    }
}

fn check_peer<S: Storage>(replica: &Replica<S>, peer: &Summary) -> Result<(), Error> {
    if peer.protocol != PROTOCOL_VERSION {
        return Err(Error::UnsupportedProtocol(peer.protocol));
    }
    if peer.group != replica.group() {
        return Err(Error::GroupMismatch { ours: replica.group().to_string(), theirs: peer.group.clone() });
    }
    if peer.replica == replica.replica_id() {
        return Err(Error::Protocol("peer has this replica's own id"));
    }
    if replica.claims_our_future(&peer.knowledge) {
        return Err(Error::ForeignHistory);
    }
    Ok(())
}

impl<S: Storage> Replica<S> {
    /// Answers one request of a peer's session. Errors become [`Response::Refused`].
    pub fn respond(&mut self, request: Request, now_ms: u64) -> Response {
        self.try_respond(request, now_ms).unwrap_or_else(|e| Response::Refused(format!("{e}")))
    }

    fn try_respond(&mut self, request: Request, now_ms: u64) -> Result<Response, Error> {
        Ok(match request {
            Request::Begin { summary: peer, options } => {
                check_peer(self, &peer)?;
                self.note_peer(&peer)?;
                let categories = options.categories;
                // Built a part at a time, so one larger than this replica answers with is never
                // held whole: it is left out, and goes in this replica's own sessions instead.
                // A peer that takes smaller `Push` parts than the protocol's (a board) takes no
                // larger delta here either.
                let takes = peer.parts_taken();
                let limit = if takes < MAX_PUSH_RECORD_BYTES {
                    self.answered_delta_bytes.min(takes)
                } else {
                    self.answered_delta_bytes
                };
                let delta = options
                    .direction
                    .pulls()
                    .then(|| self.delta_part(&peer.knowledge, categories, peer.replica, None, limit))
                    .and_then(|(delta, rest)| rest.is_none().then_some(delta))
                    .filter(|d| {
                        !d.records.is_empty() || !d.repairs.is_empty() || self.peer_lacks(&peer.knowledge, categories)
                    });
                let want = if options.direction.pushes() && categories.images {
                    self.wanted_blobs().into_iter().take(MAX_FETCH_HASHES).collect()
                } else {
                    Vec::new()
                };
                Response::Begun { summary: self.summary(), delta: delta.map(Box::new), want }
            }
            Request::Push(delta) => {
                self.apply_delta(*delta, now_ms)?;
                Response::Want(self.wanted_blobs().into_iter().take(MAX_FETCH_HASHES).collect())
            }
            Request::Fetch(hashes) => {
                let hashes = &hashes[..hashes.len().min(MAX_FETCH_HASHES)];
                let (blobs, missing) = self.blobs(hashes, MAX_BLOB_BYTES_PER_MESSAGE)?;
                Response::Blobs { blobs, missing }
            }
            Request::Store(blobs) => Response::Stored(self.store_blobs(blobs)?),
        })
    }
}
