//! One poi's application: its library, settings, peers, show clock and what plays, with
//! [`App::handle`] answering every API request. The platform (a node's tokio tasks, a
//! board's embassy tasks) owns one behind a lock, hands it requests and datagrams, and
//! reads the clocks it is given in [`Now`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddr;

use povpoi_core::device::DeviceId;
use povpoi_core::show::{ClockKey, Cue, lead_us};
use povpoi_core::sync::{
    MAX_PUSH_RECORD_BYTES, PROTOCOL_VERSION, Replica, Request as SyncRequest, Response as SyncResponse, Session,
    Storage, SyncOptions,
};
use povpoi_core::wire;
use povpoi_peer::auth::{HEADER_PORT, HEADER_SEALED, HEADER_SIGNATURE, RequestAuth, SEAL_OVERHEAD};
use povpoi_peer::exchange::{self, Caller, Outgoing, SYNC_PATH, SignedExchange};
use povpoi_peer::key::GroupKey;
use povpoi_peer::replay::NonceWindow;
use povpoi_peer::respond::{self, Admitted, Incoming};
use povpoi_peer::session::Ended;
use rand_core::CryptoRng;

use crate::access;
use crate::answers;
use crate::api::{ApiError, Request, Response};
use crate::clock::{ClockService, Datagram, Taken};
use crate::peers::{Peers, Sighting, Source};
use crate::stage::{CueShown, Stage, Wanted, column_start, next_column_start};
use crate::time::LearnedTime;

/// A poi's own settings, not replicated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Its device id.
    pub device_id: DeviceId,
    /// Its user-facing name.
    pub device_name: String,
    /// The pairing key of its group, if it has one.
    pub group_key: Option<GroupKey>,
    /// Independent mode: settings stay local, content still syncs.
    pub independent: bool,
    /// Whether it syncs by itself.
    pub auto_sync: bool,
    /// Milliseconds between periodic rounds with every online peer, as the spec counts them
    /// (0: none). Beside them it syncs on change and when a peer's digest differs; a round
    /// also fetches pixels a session left missing (the digest covers records, not pixels).
    pub sync_interval: u64,
    /// Seconds unseen after which a peer counts as offline.
    pub peer_timeout_s: u32,
    /// The port its HTTP API answers on: peers it calls may call back there.
    pub port: u16,
    /// Whether the platform has a real-time clock. Without one (a board) real time is
    /// learned from peers' signed requests ([`LearnedTime`]) and [`App::learned_now`] gives
    /// the clocks.
    pub real_time: bool,
    /// Nonces of signed requests remembered at once (the replay window is 10 minutes): a
    /// full window refuses signed requests rather than forget one. About 80 bytes each.
    pub replay_capacity: usize,
    /// Largest image pixels, bytes, its own sessions fetch (what one answer it reads holds).
    pub max_fetched_blob_bytes: usize,
    /// Largest image pixels, bytes, it asks a pushing peer for (what one request body it
    /// takes holds); larger ones it fetches itself.
    pub max_pushed_blob_bytes: usize,
    /// Bytes of records, at most, in one `Push` part its own sessions send and in one its
    /// summary asks peers to send it ([`povpoi_core::sync::MAX_PUSH_RECORD_BYTES`] at most): a
    /// part's records are held decoded beside their encoding, about three times their size,
    /// both when building and when taking one, so a board uses smaller parts than a node.
    pub max_push_part_bytes: usize,
    /// Bytes of records, at most, in the delta of its answer to a peer's `Begin`; a larger
    /// one is left out and goes in its own sessions, in parts (`usize::MAX` on a node).
    pub max_answered_delta_bytes: usize,
    /// Largest image pixels, bytes, an upload may bring ([`crate::upload`]): what its own
    /// sessions can send and fetch again.
    pub max_uploaded_image_bytes: usize,
    /// Whether the platform serves its own Wi-Fi setup (the page at `/setup` and
    /// `/api/wifi/*`, a board's): its device config then lists the `wifi` feature, and the
    /// web app links to the page.
    pub wifi_setup: bool,
}

/// The spec's default auto-sync interval, ms: what a poi uses until told otherwise.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 30_000;

/// The clocks at one instant, as the platform reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Real time, µs since the Unix epoch: edits are stamped with it.
    pub wall_us: u64,
    /// The poi's own monotonic clock, µs: show time and every period are made from it.
    pub own_us: u64,
}

impl Now {
    pub(crate) fn wall_ms(self) -> u64 {
        self.wall_us / 1_000
    }
}

/// One poi's application.
pub struct App<S: Storage> {
    config: Config,
    replica: Replica<S>,
    replay: NonceWindow,
    peers: Peers,
    clock: ClockService,
    clock_key: Option<ClockKey>,
    stage: Stage,
    last_cue: Option<CueShown>,
    digest: String,
    /// A local edit not pushed to the group's online peers yet.
    unpushed: bool,
    /// Own time, µs, at which the next periodic round is due.
    next_round_us: u64,
    /// Real time as learned from peers, for a platform without a real-time clock.
    time: LearnedTime,
    /// Changes of the library since start (see [`App::library_changes`]).
    changes: u64,
    /// A message of its own sessions is in flight ([`App::set_exchanging`]).
    pub(crate) exchanging: bool,
    /// An image upload is being read ([`App::begin_upload`]): its own sessions wait, as an
    /// upload and a session's step together would not fit a board's heap.
    pub(crate) uploading: bool,
}

impl<S: Storage> App<S> {
    /// The application over `replica`, with `clock` founded at start.
    pub fn new(config: Config, mut replica: Replica<S>, clock: ClockService) -> App<S> {
        replica.want_blobs_up_to(config.max_pushed_blob_bytes);
        replica.answer_deltas_up_to(config.max_answered_delta_bytes);
        replica.take_parts_up_to(config.max_push_part_bytes);
        let stage = Stage::new(&Wanted::read(&replica));
        let clock_key = config.group_key.as_ref().map(|k| k.clock_key(replica.group()));
        let digest = povpoi_peer::advert::library_digest(replica.group(), replica.knowledge());
        App {
            replay: NonceWindow::new(config.replay_capacity),
            config,
            replica,
            peers: Peers::default(),
            clock,
            clock_key,
            stage,
            last_cue: None,
            digest,
            unpushed: false,
            next_round_us: 0,
            time: LearnedTime::default(),
            changes: 0,
            exchanging: false,
            uploading: false,
        }
    }

    /// The clocks at own time `own_us` on a platform without a real-time clock: real time as
    /// learned from peers' signed requests (see [`LearnedTime`]).
    pub fn learned_now(&self, own_us: u64) -> Now {
        self.time.now(own_us)
    }

    /// Tells the application that a message of its own session is in flight (`true`) or
    /// answered and merged (`false`). While one is, a peer's sync message is answered 503: a
    /// board's heap holds its own session's step (an image, at 200 images 63.5 KB of 64 KiB)
    /// or a peer's, not both, and the peer's session is retried (docs/PROTOCOL.md, section
    /// 10). A node never sets it.
    pub fn set_exchanging(&mut self, on: bool) {
        self.exchanging = on;
    }

    /// Whether an image upload is being read ([`App::begin_upload`]): its own sessions wait.
    pub fn is_uploading(&self) -> bool {
        self.uploading
    }

    /// Sets the largest image pixels its next sessions fetch ([`Config::max_fetched_blob_bytes`]):
    /// a board's room for one image depends on how much its library holds.
    pub fn set_max_fetched_blob_bytes(&mut self, bytes: usize) {
        self.config.max_fetched_blob_bytes = bytes;
    }

    /// Its own settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The library.
    pub fn replica(&self) -> &Replica<S> {
        &self.replica
    }

    /// The replica, to edit (the caller sees to [`App::edited`]).
    pub(crate) fn replica_mut(&mut self) -> &mut Replica<S> {
        &mut self.replica
    }

    /// The peer table.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The show clock.
    pub fn clock(&self) -> &ClockService {
        &self.clock
    }

    /// What plays, field by field.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The library digest it advertises.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Applies a checked change of this poi's own settings (saved by the platform first:
    /// [`App::change_config`]). A new sync group is the library's too.
    pub(crate) fn take_change(&mut self, change: crate::device::Change, now: Now) -> Result<(), ApiError> {
        let regroup = change.sync_group.filter(|group| group != self.replica.group());
        if change.group_key.is_some() || regroup.is_some() {
            // Peers that refused the old key or group may take the new one at once.
            self.peers.clear_refusals();
        }
        if let Some(name) = change.device_name {
            self.config.device_name = name;
        }
        if let Some(auto) = change.auto_sync {
            self.config.auto_sync = auto;
        }
        if let Some(interval) = change.sync_interval {
            self.config.sync_interval = interval;
            self.next_round_us = 0;
        }
        if let Some(key) = change.group_key {
            self.config.group_key = key;
        }
        // Last, as the one that can fail (saving the library).
        let regrouped = match regroup {
            Some(group) => self.replica.set_group(&group),
            None => Ok(()),
        };
        self.clock_key = self.config.group_key.as_ref().map(|k| k.clock_key(self.replica.group()));
        self.changed(now);
        regrouped.map_err(ApiError::from)
    }

    /// How often the library may have changed since start (every edit, merge and answered
    /// message counts): what a cache read from the library holds is stale once this moves.
    pub fn library_changes(&self) -> u64 {
        self.changes
    }

    /// The last switch that took effect at its cue.
    pub fn last_cue(&self) -> Option<CueShown> {
        self.last_cue
    }

    /// Records a poi seen on the network (an mDNS announcement, an address given by hand).
    pub fn peer_seen(&mut self, seen: &Sighting, source: Source, now: Now) {
        if seen.device_id != self.config.device_id {
            self.peers.saw(seen, source, now.wall_ms(), now.own_us);
        }
    }

    /// Marks peers unseen for the timeout offline; returns those that went.
    pub fn expire_peers(&mut self, now: Now) -> Vec<DeviceId> {
        self.peers.expire(u64::from(self.config.peer_timeout_s) * 1_000_000, now.own_us)
    }

    /// The cue of an edit made now: far enough ahead for the group's online peers to hear
    /// of it first; at once in independent mode.
    pub fn cue(&self, now: Now) -> Cue {
        if self.config.independent {
            return Cue(self.clock.now(now.own_us));
        }
        let online = self.online_peers().next().is_some();
        Cue(self.clock.now(now.own_us) + lead_us(online, 0))
    }

    /// The group's online peers, including those auto-sync holds back for a while: a peer
    /// whose session failed (busy, or slow to answer) still counts for the show clock and
    /// the cue lead.
    fn online_peers(&self) -> impl Iterator<Item = &crate::peers::Peer> {
        self.peers.online_in(self.replica.group(), PROTOCOL_VERSION)
    }

    /// Lets what plays follow the show clock: call at every column start (or more often).
    /// Changes take effect at the start of a column: the column that started before a cue
    /// keeps what played, on every poi alike, however late this is called. Returns, when a
    /// switch took effect just now, the column it shows from.
    pub fn play(&mut self, now: Now) -> Option<CueShown> {
        let show = self.clock.now(now.own_us);
        let column = column_start(show, *self.stage.framerate.current());
        if !self.stage.advance(column) {
            return None;
        }
        let shown = CueShown { cue_us: self.stage.latest_cue().0, show_us: column, host_us: now.wall_us };
        self.last_cue = Some(shown);
        Some(shown)
    }

    /// How long until the next column begins (own clock, µs): when to call [`App::play`]
    /// again.
    pub fn until_next_column(&self, now: Now) -> u64 {
        let show = self.clock.now(now.own_us);
        next_column_start(show, *self.stage.framerate.current()) - show
    }

    /// Runs an edit of the library, cued now (patterns, sequences, what plays); once it
    /// succeeded, the change goes to the online peers.
    /// Its storage, for an upload written as it arrives ([`crate::upload`]).
    pub(crate) fn storage_mut(&mut self) -> &mut S {
        self.replica.storage_mut()
    }

    pub(crate) fn edit<T>(
        &mut self,
        now: Now,
        f: impl FnOnce(&mut Replica<S>, Cue) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let cue = self.cue(now);
        let done = f(&mut self.replica, cue)?;
        self.edited(now);
        Ok(done)
    }

    /// This poi's library changed by an edit of its own: it goes to the online peers.
    pub(crate) fn edited(&mut self, now: Now) {
        self.unpushed = true;
        self.changed(now);
    }

    /// The library changed: the digest follows, and what plays is cued (read from the
    /// library here, not at every column).
    fn changed(&mut self, now: Now) {
        self.changes += 1;
        self.digest = povpoi_peer::advert::library_digest(self.replica.group(), self.replica.knowledge());
        let show = self.clock.now(now.own_us);
        let column = column_start(show, *self.stage.framerate.current());
        self.stage.set(&Wanted::read(&self.replica), column);
        self.play(now);
    }

    // ----- sessions this poi starts -----

    /// The peers to run a session with now: after an edit of this poi's own, or when a
    /// periodic round ([`Config::sync_interval`]) is due, every online peer of the group
    /// (push-on-change; the edit's cue leaves them time to hear of it); otherwise those
    /// whose advertised digest differs from ours. Each session, once ended, goes to
    /// [`App::session_ended`].
    pub fn sessions_due(&mut self, now: Now) -> Vec<(DeviceId, SocketAddr)> {
        if !self.config.auto_sync || self.uploading {
            return Vec::new();
        }
        let round = self.config.sync_interval > 0 && now.own_us >= self.next_round_us;
        if round {
            self.next_round_us = now.own_us.saturating_add(self.config.sync_interval.saturating_mul(1_000));
        }
        let every = core::mem::take(&mut self.unpushed) || round;
        let digest = self.digest.clone();
        self.online_peers()
            .filter(|p| !p.held_back(now.own_us) && (every || p.digest != digest))
            .map(|p| (p.device_id, p.addr))
            .collect()
    }

    /// Starts a session: its state and first message. It moves one blob per message, none
    /// over [`Config::max_fetched_blob_bytes`] ([`Session::one_blob_at_a_time`]): a board's
    /// heap holds one image, not a 128 KiB batch.
    pub fn start_session(&self, options: SyncOptions) -> (Session, SyncRequest) {
        let (session, first) = Session::start(&self.replica, options);
        let session = session.one_blob_at_a_time(self.config.max_fetched_blob_bytes);
        (session.push_parts_of(self.config.max_push_part_bytes.min(MAX_PUSH_RECORD_BYTES)), first)
    }

    /// Merges a peer's answer into the library (saving it); returns the session's next
    /// message, `None` once it is over.
    pub fn merge(
        &mut self,
        session: &mut Session,
        answer: SyncResponse,
        now: Now,
    ) -> Result<Option<SyncRequest>, povpoi_core::sync::Error> {
        let next = session.on_response(&mut self.replica, answer, now.wall_ms());
        self.changed(now);
        if self.uploading && matches!(next, Ok(Some(_))) {
            // Taken, but no further message while an upload is read; the peer is synced again
            // once it is stored (a failed session is retried after 2 s).
            return Err(povpoi_core::sync::Error::Refused("paused for an image upload on this poi".into()));
        }
        next
    }

    /// A message to the peer `receiver` at `path`, ready to send: signed and sealed for it
    /// when the group has a key.
    pub fn outgoing<R: CryptoRng>(
        &self,
        receiver: DeviceId,
        path: &str,
        body: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Outgoing {
        let device = self.config.device_id.to_string();
        let port = self.config.port.to_string();
        let caller =
            Caller { device: &device, port: &port, group: self.replica.group(), key: self.config.group_key.as_ref() };
        exchange::request(&caller, "POST", path, &receiver.to_string(), body, now.wall_ms(), rng)
    }

    /// A session with `peer` at `addr`, begun at `started`, `ended` so: the peer table's rule
    /// ([`Peers::session_ended`]: backed off, offline or confirmed, as on a node). A full
    /// one leaves both with what both had, so the peer's digest is ours until it changes again.
    pub fn session_ended(
        &mut self,
        peer: DeviceId,
        addr: SocketAddr,
        started: Now,
        ended: Ended,
        now: Now,
    ) -> crate::peers::Aftermath {
        let longest_us = u64::from(self.config.peer_timeout_s) * 1_000_000;
        let end = crate::peers::SessionEnd { peer, addr, began_us: started.own_us, ended };
        let after = self.peers.session_ended(end, longest_us, now.wall_ms(), now.own_us);
        if ended == Ended::Synced {
            self.peers.set_digest(peer, self.digest.clone());
        }
        after
    }

    // ----- the show clock's datagrams -----

    /// The probes due now, each with the address it goes to; `nonce` gives fresh random
    /// nonces. Call when a datagram arrived or [`App::next_probe_due`] came.
    pub fn due_probes(&mut self, now: Now, nonce: impl FnMut() -> u32) -> Vec<(SocketAddr, Vec<u8>)> {
        let peers: Vec<(DeviceId, SocketAddr)> = self.online_peers().map(|p| (p.device_id, p.addr)).collect();
        let ids: Vec<DeviceId> = peers.iter().map(|(id, _)| *id).collect();
        self.clock.set_peers(&ids, now.own_us);
        let probes = self.clock.probes(now.own_us, self.clock_key.as_ref(), nonce);
        let mut out = Vec::new();
        for (peer, bytes) in probes {
            if let Some((_, addr)) = peers.iter().find(|(id, _)| *id == peer) {
                self.clock.sent(bytes.len(), true);
                out.push((*addr, bytes));
            }
        }
        // A planned step coming due is taken here; `/api/clock` lists the steps taken.
        self.clock.poll(now.own_us);
        out
    }

    /// Own time at which the next probe is due, if any.
    pub fn next_probe_due(&self, now: Now) -> Option<u64> {
        self.clock.next_due(now.own_us)
    }

    /// Handles one show clock datagram that arrived at `arrived` (own clock); returns what
    /// to send back to `from`, if anything.
    pub fn datagram(&mut self, bytes: &[u8], from: SocketAddr, arrived: u64, now: Now) -> Option<Vec<u8>> {
        let known = self.online_peers().any(|p| p.addr.ip() == from.ip());
        let d = Datagram { bytes, from, at: arrived, known };
        let taken_before = self.clock.counters.answers_taken;
        let Taken { reply, .. } = self.clock.take(d, now.own_us, self.clock_key.as_ref());
        if reply.is_some() || self.clock.counters.answers_taken > taken_before {
            self.peers.heard_from(from.ip(), now.wall_ms(), now.own_us);
        }
        if let Some(reply) = &reply {
            self.clock.sent(reply.len(), false);
        }
        self.play(now);
        reply
    }

    // ----- the API -----

    /// Answers one request.
    pub fn handle<R: CryptoRng>(&mut self, request: &Request<'_>, now: Now, rng: &mut R) -> Response {
        match self.route(request, now, rng) {
            Ok(response) => response,
            Err(e) => e.response(),
        }
    }

    fn route<R: CryptoRng>(&mut self, request: &Request<'_>, now: Now, rng: &mut R) -> Result<Response, ApiError> {
        let (method, path) = (request.method, request.path);
        if path == SYNC_PATH {
            return match method {
                "POST" if self.exchanging => Err(ApiError::new(503, "busy with its own sync: try again")),
                "POST" => self.sync_message(request, now, rng),
                _ => Err(ApiError::not_allowed()),
            };
        }
        // The web app's files are open to anyone, so the page can load and ask for the key.
        if let Some(asset) = povpoi_ui::asset(path) {
            return if method == "GET" { Ok(Response::asset(asset)) } else { Err(ApiError::not_allowed()) };
        }
        if !access::is_open(method, path)
            && let Err(refusal) = self.authorize(request)
        {
            return Ok(refusal);
        }
        match (method, path) {
            ("GET", "/api/status") => Ok(Response::json(200, &self.status())),
            ("GET", "/api/sync/status") => Ok(Response::json(200, &self.sync_status())),
            ("GET", "/api/device/config") => Ok(Response::json(
                200,
                &answers::BoardDeviceConfig {
                    device: self.device_config(),
                    led_count: povpoi_core::render::DEFAULT_LEDS,
                    features: if self.config.wifi_setup { &["wifi"] } else { &[] },
                },
            )),
            ("GET", "/api/clock") => Ok(Response::json(200, &self.clock_json(now))),
            (_, "/api/status" | "/api/sync/status" | "/api/device/config" | "/api/clock") => {
                Err(ApiError::not_allowed())
            }
            (_, crate::upload::UPLOAD_PATH) => Ok(self.upload_whole(request, now)),
            _ => self.content(request, now).unwrap_or_else(|| Err(ApiError::no_endpoint())),
        }
    }

    /// Whether `request` may change this poi or read more than its status: always in an open
    /// group; with a pairing key only when it carries it as a bearer. The refusal is the 401
    /// to send. Endpoints a platform serves itself (a board's Wi-Fi setup) ask this too.
    pub fn authorize(&self, request: &Request<'_>) -> Result<(), Response> {
        if self.config.group_key.is_none() || self.has_bearer_key(request) {
            return Ok(());
        }
        let mut refusal = ApiError::new(401, access::KEY_WANTED).response();
        refusal.headers.push(("www-authenticate", "Bearer".into()));
        Err(refusal)
    }

    fn has_bearer_key(&self, request: &Request<'_>) -> bool {
        access::has_bearer_key(self.config.group_key.as_ref(), request.header_str("authorization"))
    }

    fn status(&self) -> answers::Status<'static> {
        answers::Status::playing(&self.replica.settings(), self.replica.selected_image(), self.replica.image_count())
    }

    fn device_config(&self) -> answers::DeviceConfig<'_> {
        let c = &self.config;
        answers::DeviceConfig {
            device_id: c.device_id.to_string(),
            device_name: &c.device_name,
            sync_group: self.replica.group(),
            auto_sync: c.auto_sync,
            sync_interval: c.sync_interval,
            protected: c.group_key.is_some(),
            sync_mode: answers::sync_mode_name(c.independent),
        }
    }

    fn sync_status(&self) -> answers::SyncStatus<'_> {
        answers::SyncStatus::of(self.device_config(), &self.digest, self.peers.list())
    }

    fn clock_json(&self, now: Now) -> answers::Clock {
        let status = self.clock.status(now.own_us);
        let show_us = self.clock.now(now.own_us);
        let reading = answers::ClockReading {
            status: &status,
            show_us,
            host_us: now.wall_us,
            founded: self.clock.founded(),
            lead_us: self.cue(now).0.saturating_sub(show_us),
            last_cue: self.last_cue,
            counters: self.clock.counters,
        };
        answers::Clock::of(reading, |id| self.peers.list().find(|p| p.device_id == id).map(|p| p.device_name.clone()))
    }

    // ----- a peer's sync message -----

    /// The peer protocol: one postcard request in, one answer out; both sealed and signed
    /// when the group has a key (docs/PROTOCOL.md).
    fn sync_message<R: CryptoRng>(
        &mut self,
        request: &Request<'_>,
        now: Now,
        rng: &mut R,
    ) -> Result<Response, ApiError> {
        let signed = self.authenticate(request, now)?;
        // The request may have taught a board the time: its answer is stamped with it.
        let now = if self.config.real_time { now } else { self.time.now(now.own_us) };
        let admitted = Admitted::of(signed.as_ref(), self.config.group_key.is_some());
        let incoming = Incoming { admitted, sealed: request.header(HEADER_SEALED), body: request.body };
        let (message, _) = respond::open_request(incoming, self.config.independent).map_err(ApiError::from)?;
        if let SyncRequest::Begin { summary, .. } = &message {
            self.note_caller(request, summary.device, &summary.group, summary.protocol, now);
        }
        let answer = self.replica.respond(message, now.wall_ms());
        self.changed(now);
        // Encoded with room for the seal, and the answer let go first: an answer of one
        // image's pixels is then held twice at most, not four times (a board's heap).
        let plain = wire::to_bytes_with_room(&answer, SEAL_OVERHEAD);
        drop(answer);
        let (body, signature) = respond::answer(signed.as_ref(), plain, rng);
        let mut response = Response::octets(body);
        if let Some(signature) = signature {
            response.headers.push((HEADER_SIGNATURE, signature));
        }
        Ok(response)
    }

    /// Checks a peer request's signature when the group has a key (403 otherwise). `Some`
    /// when taken on a peer's signature; `None` when no key is set or a person sent the key
    /// as a bearer.
    fn authenticate(&mut self, request: &Request<'_>, now: Now) -> Result<Option<SignedExchange>, ApiError> {
        let Some(key) = self.config.group_key.clone() else { return Ok(None) };
        if self.has_bearer_key(request) {
            return Ok(None);
        }
        let refused = |e: povpoi_peer::auth::AuthError| ApiError::new(403, e.to_string());
        let auth = RequestAuth::from_headers(|name| request.header_str(name)).map_err(refused)?;
        let path = match request.query {
            Some(query) => format!("{}?{query}", request.path),
            None => request.path.to_string(),
        };
        let me = self.config.device_id.to_string();
        let header = |name: &str| request.header_str(name);
        let signed = access::signed_request(request.method, &path, request.body, header, &me, self.replica.group());
        let (real_time, time) = (self.config.real_time, &mut self.time);
        let clock = |vouched: &RequestAuth| {
            if real_time {
                return now.wall_ms();
            }
            time.vouched(vouched.time_ms, now.own_us);
            time.now(now.own_us).wall_ms()
        };
        let admitted = self.replay.admit_with_clock(&key, &signed, auth.as_ref(), clock).map_err(refused)?;
        Ok(Some(SignedExchange::new(key, admitted.nonce.clone())))
    }

    /// A peer that calls us is a peer we can call back (networks without multicast), and
    /// whose clock datagrams are answered.
    fn note_caller(&mut self, request: &Request<'_>, device: DeviceId, group: &str, protocol: u16, now: Now) {
        let known = self.peers.list().find(|p| p.device_id == device);
        let port = request.header_str(HEADER_PORT);
        if let Some(seen) = Sighting::caller(known, device, group, protocol, request.from.ip(), port) {
            self.peer_seen(&seen, Source::Contact, now);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use core::net::{IpAddr, Ipv4Addr};
    use povpoi_core::device::ReplicaId;
    use povpoi_core::sync::{Identity, MemoryStorage, Response as SyncResponse};
    use povpoi_peer::exchange::Caller;
    use serde_json::{Value, json};

    fn poi(last: u8, key: Option<&str>) -> App<MemoryStorage> {
        let device = DeviceId([2, 0, 0, 0, 0, last]);
        let id = Identity { replica: ReplicaId(u64::from(last)), device, group: "g".into() };
        let replica = Replica::open(MemoryStorage::default(), id).unwrap();
        App::new(test_config(device, key), replica, ClockService::new(device, 1, 2, 0))
    }

    /// A node-like poi's settings (no limits of a board's heap), for tests.
    pub(crate) fn test_config(device: DeviceId, key: Option<&str>) -> Config {
        Config {
            device_id: device,
            device_name: "poi".into(),
            group_key: key.map(|k| GroupKey::new(k).unwrap()),
            independent: false,
            auto_sync: true,
            sync_interval: 0,
            peer_timeout_s: 120,
            port: 8080,
            real_time: true,
            replay_capacity: 64,
            max_fetched_blob_bytes: usize::MAX,
            max_pushed_blob_bytes: usize::MAX,
            max_push_part_bytes: povpoi_core::sync::MAX_PUSH_RECORD_BYTES,
            max_answered_delta_bytes: usize::MAX,
            max_uploaded_image_bytes: 400 * 64 * 3,
            wifi_setup: false,
        }
    }

    const NOW: Now = Now { wall_us: 1_800_000_000_000_000, own_us: 5_000_000 };

    fn ask(app: &mut App<MemoryStorage>, method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Response {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40_000);
        let request = Request { method, path, query: None, headers, body, from };
        app.handle(&request, NOW, &mut rand::rng())
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn an_edit_is_cued_answered_and_queued_for_the_peers() {
        let mut app = poi(1, None);
        let r = ask(&mut app, "POST", "/api/brightness", &[], br#"{"brightness": 40}"#);
        assert_eq!((r.status, json_of(&r)["brightness"].clone()), (200, json!(40)));
        assert_eq!(json_of(&ask(&mut app, "GET", "/api/status", &[], b""))["brightness"], json!(40));
        let bad = ask(&mut app, "POST", "/api/mode", &[], br#"{"mode": 2, "index": 3}"#);
        assert_eq!(bad.status, 400);
        assert!(json_of(&bad)["error"].as_str().unwrap().starts_with("pattern slot 3 is empty"));
        assert_eq!(ask(&mut app, "GET", "/api/nothing", &[], b"").status, 404);
        assert_eq!(ask(&mut app, "DELETE", "/api/status", &[], b"").status, 405);
        assert!(app.unpushed, "the edit waits for a push");
    }

    #[test]
    fn the_web_app_is_served_open_and_the_features_say_what_else_is() {
        let mut app = poi(1, Some("pairing-key-1"));
        for asset in &povpoi_ui::ASSETS {
            let r = ask(&mut app, "GET", asset.path, &[], b"");
            assert_eq!((r.status, r.content_type), (200, asset.content_type), "{} without the key", asset.path);
            assert!(r.headers.contains(&("content-encoding", "gzip".into())));
            assert!(matches!(r.body, alloc::borrow::Cow::Borrowed(b) if core::ptr::eq(b, asset.gzipped)), "not copied");
        }
        assert_eq!(ask(&mut app, "POST", "/app.js", &[], b"").status, 405);
        let key = [("Authorization", b"Bearer pairing-key-1".as_slice())];
        assert_eq!(json_of(&ask(&mut app, "GET", "/api/device/config", &[], b""))["features"], json!([]));
        // What the features name is what the application does not serve.
        for path in ["/api/events", "/api/thumbnail/image/x", "/api/sync/peers", "/api/backup", "/api/strip"] {
            assert_eq!(ask(&mut app, "GET", path, &key, b"").status, 404, "{path}");
        }
        app.config.wifi_setup = true;
        assert_eq!(json_of(&ask(&mut app, "GET", "/api/device/config", &[], b""))["features"], json!(["wifi"]));
    }

    #[test]
    fn sessions_are_due_on_an_edit_a_differing_digest_and_every_sync_interval() {
        let mut app = poi(1, None);
        app.config.sync_interval = 10_000;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080);
        let peer = DeviceId([2, 0, 0, 0, 0, 2]);
        let seen = |digest: &str| Sighting {
            device_id: peer,
            device_name: "peer".into(),
            sync_group: "g".into(),
            protocol: PROTOCOL_VERSION,
            digest: digest.into(),
            addr,
        };
        let at = |s: u64| Now { wall_us: NOW.wall_us + s * 1_000_000, own_us: NOW.own_us + s * 1_000_000 };
        let same = app.digest().to_string();
        app.peer_seen(&seen(&same), Source::Mdns, at(0));
        assert_eq!(app.sessions_due(at(0)), [(peer, addr)], "the first round is due at start");
        assert_eq!(app.sessions_due(at(1)), [], "same digest, no edit, round not due");
        assert_eq!(app.sessions_due(at(9)), []);
        assert_eq!(app.sessions_due(at(10)), [(peer, addr)], "a round every 10 s");
        assert_eq!(app.sessions_due(at(11)), []);
        ask(&mut app, "POST", "/api/brightness", &[], br#"{"brightness": 40}"#);
        assert_eq!(app.sessions_due(at(12)), [(peer, addr)], "an edit is pushed");
        // The push ended fully: the peer has what this poi has.
        app.session_ended(peer, addr, at(12), Ended::Synced, at(12));
        assert_eq!(app.sessions_due(at(13)), []);
        app.peer_seen(&seen("another"), Source::Mdns, at(14));
        assert_eq!(app.sessions_due(at(14)), [(peer, addr)], "a differing digest");
        app.config.sync_interval = 0;
        app.peer_seen(&seen(app.digest()), Source::Mdns, at(30));
        assert_eq!(app.sessions_due(at(30)), [], "no rounds with an interval of 0");
    }

    #[test]
    fn a_peer_held_back_from_auto_sync_still_counts_for_the_show_clock() {
        let mut app = poi(1, None);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080);
        let peer = DeviceId([2, 0, 0, 0, 0, 2]);
        let sighting = Sighting {
            device_id: peer,
            device_name: "peer".into(),
            sync_group: "g".into(),
            protocol: PROTOCOL_VERSION,
            digest: "other".into(),
            addr,
        };
        let at = |ms: u64| Now { wall_us: NOW.wall_us + ms * 1_000, own_us: NOW.own_us + ms * 1_000 };
        app.peer_seen(&sighting, Source::Mdns, at(0));
        assert_eq!(app.sessions_due(at(0)), [(peer, addr)]);
        // Its session failed (it was busy, say): auto-sync leaves it alone for 2 s...
        app.session_ended(peer, addr, at(0), Ended::Failed, at(100));
        let mut probed = 0;
        for ms in (200..2_000).step_by(100) {
            assert_eq!(app.sessions_due(at(ms)), [], "held back at {ms} ms");
            probed += app.due_probes(at(ms), || 7).iter().filter(|(to, _)| *to == addr).count();
        }
        // ...but the show clock goes on probing it, and an edit's cue leaves it time.
        assert!(probed >= 2, "{probed} probes in 1.8 s");
        assert!(app.cue(at(2_000)).0 > app.clock().now(at(2_000).own_us), "a lead for the peer");
        assert_eq!(app.sessions_due(at(2_200)), [(peer, addr)], "tried again after 2 s");
    }

    #[test]
    fn a_board_with_a_message_of_its_own_in_flight_answers_peers_503_and_then_syncs() {
        let (mut board, mut node) = (poi(1, None), poi(2, None));
        node.replica.set_brightness(99, NOW.wall_us / 1_000 + 1, Cue(0)).unwrap();
        let (mut session, mut message) = node.start_session(SyncOptions::default());
        let send = |node: &App<MemoryStorage>, board: &mut App<MemoryStorage>, message: &SyncRequest| {
            let out = node.outgoing(board.config.device_id, SYNC_PATH, &wire::to_bytes(message), NOW, &mut rand::rng());
            let headers: Vec<(&str, &[u8])> = out.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
            ask(board, "POST", SYNC_PATH, &headers, &out.body)
        };
        board.set_exchanging(true);
        let busy = send(&node, &mut board, &message);
        assert_eq!(busy.status, 503);
        assert!(json_of(&busy)["error"].as_str().unwrap().contains("try again"), "{}", json_of(&busy));
        assert_eq!(board.online_peers().count(), 0, "the message was not read: its caller is not listed");
        // Answered and merged: the node's session, tried again, goes through.
        board.set_exchanging(false);
        loop {
            let answer = send(&node, &mut board, &message);
            assert_eq!(answer.status, 200, "{:?}", core::str::from_utf8(&answer.body));
            match node.merge(&mut session, wire::from_bytes(&answer.body).unwrap(), NOW).unwrap() {
                Some(next) => message = next,
                None => break,
            }
        }
        assert_eq!(board.replica.settings().brightness, 99);
        assert_eq!(board.online_peers().count(), 1, "now the caller is listed");
    }

    #[test]
    fn a_session_under_way_when_an_upload_begins_sends_nothing_more() {
        let (mut node, mut board) = (poi(1, None), poi(2, None));
        // The board lacks two images: its session takes several messages.
        for n in 0..2u8 {
            node.replica.add_image(&alloc::format!("n{n}"), 1, 1, &[n; 3], NOW.wall_us / 1_000).unwrap();
        }
        let (mut session, message) = board.start_session(SyncOptions::default());
        let out = board.outgoing(node.config.device_id, SYNC_PATH, &wire::to_bytes(&message), NOW, &mut rand::rng());
        let headers: Vec<(&str, &[u8])> = out.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let answer = ask(&mut node, "POST", SYNC_PATH, &headers, &out.body);
        assert_eq!(answer.status, 200);
        let content_type = b"multipart/form-data; boundary=xyz";
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40_000);
        let headers: [(&str, &[u8]); 1] = [("content-type", content_type)];
        let upload = Request { method: "POST", path: "/api/image", query: None, headers: &headers, body: b"", from };
        assert!(board.begin_upload(&upload).is_ok());
        let refused = board.merge(&mut session, wire::from_bytes(&answer.body).unwrap(), NOW);
        assert!(
            matches!(&refused, Err(povpoi_core::sync::Error::Refused(why)) if why.contains("upload")),
            "the answer is taken, no next message: {refused:?}"
        );
        assert_eq!(board.replica.images().count(), 2, "the answer's records were merged");
        board.abandon_upload();
        assert!(!board.is_uploading());
    }

    #[test]
    fn a_keyed_poi_wants_the_key_and_answers_signed_sessions_sealed() {
        let key = "pairing-key-1";
        let mut board = poi(1, Some(key));
        let mut node = poi(2, Some(key));
        let open = ask(&mut board, "GET", "/api/status", &[], b"");
        assert_eq!(open.status, 200, "the status stays open");
        let refused = ask(&mut board, "POST", "/api/brightness", &[], br#"{"brightness": 1}"#);
        assert_eq!(refused.status, 401);
        let bearer = ask(
            &mut board,
            "POST",
            "/api/brightness",
            &[("Authorization", b"Bearer pairing-key-1")],
            br#"{"brightness": 1}"#,
        );
        assert_eq!(bearer.status, 200);

        // A session from the node, signed: answered sealed and signed, and the node's
        // edit of the brightness arrives.
        node.replica.set_brightness(99, NOW.wall_us / 1_000 + 1, Cue(0)).unwrap();
        let (mut session, mut message) = node.start_session(SyncOptions::default());
        let mut rounds = 0;
        loop {
            let body = wire::to_bytes(&message);
            let out = node.outgoing(board.config.device_id, SYNC_PATH, &body, NOW, &mut rand::rng());
            let headers: Vec<(&str, &[u8])> = out.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
            let answer = ask(&mut board, "POST", SYNC_PATH, &headers, &out.body);
            assert_eq!(answer.status, 200, "{:?}", core::str::from_utf8(&answer.body));
            let signature = answer.headers.iter().find(|(n, _)| *n == HEADER_SIGNATURE).map(|(_, v)| v.as_str());
            let plain = out.check.open_answer(200, signature, answer.body.to_vec()).expect("signed and sealed");
            let reply: SyncResponse = wire::from_bytes(&plain).unwrap();
            rounds += 1;
            match node.merge(&mut session, reply, NOW).unwrap() {
                Some(next) => message = next,
                None => break,
            }
            // The same signed request again is a replay.
            let again = ask(&mut board, "POST", SYNC_PATH, &headers, &out.body);
            assert_eq!(again.status, 403);
        }
        assert!(rounds >= 2);
        assert_eq!(board.replica.settings().brightness, 99);
        assert_eq!(board.digest(), node.digest());
        // The caller gave its port: it is the board's peer now, online in the group.
        assert_eq!(board.online_peers().map(|p| p.addr.port()).collect::<Vec<_>>(), vec![8080]);

        // Unsigned and without the key: refused before anything is read.
        let caller = Caller { device: "02:00:00:00:00:02", port: "8080", group: "g", key: None };
        let plain = exchange::request(&caller, "POST", SYNC_PATH, "x", b"junk", 0, &mut rand::rng());
        let headers: Vec<(&str, &[u8])> = plain.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        assert_eq!(ask(&mut board, "POST", SYNC_PATH, &headers, b"junk").status, 403);
    }
}
