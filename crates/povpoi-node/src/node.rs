//! One poi as a running service: opens its data directory, serves the HTTP API, finds
//! peers, and keeps its library in sync with them (on a timer and right after changes).

use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use povpoi_core::device::ReplicaId;
use povpoi_core::render::Renderer;
use povpoi_core::sync::{Identity, PROTOCOL_VERSION};
use povpoi_peer::session::Ended;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{self, DeviceConfig};
use crate::discovery::{ANNOUNCE_EVERY, Discovery, Sighting};
use crate::events::{Event, EventBus};
use crate::history::History;
use crate::library::{Library, now_ms};
use crate::output::sim::SimStrip;
use crate::output::{Output, OutputSpec};
use crate::peers::{Peer, PeerTable, Source};
use crate::player::{AudioChoice, Identify, Player, PlayerStats};
use crate::replay::ReplayGuard;
use crate::show_clock::{self, OwnClock, ShowTime};
use crate::state::{Display, LedCount, NodeState};
use crate::storage::DirStorage;
use crate::{api, sync_client};

/// Quiet time after a change before the push starts, so a burst of edits goes in one round.
const PUSH_DEBOUNCE: Duration = Duration::from_millis(25);
/// Nonces of the signed requests taken within the replay window, kept across restarts.
const NONCE_FILE: &str = "nonces";
/// How often addresses added by hand and not seen lately are asked who they are.
const PROBE_PERIOD: Duration = Duration::from_secs(5);

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Where everything is stored.
    pub data_dir: PathBuf,
    /// HTTP address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Name to set (otherwise the stored one, or the default of the spec).
    pub name: Option<String>,
    /// Sync group to set (otherwise the stored one, or `"default"`).
    pub group: Option<String>,
    /// Advertise and browse with mDNS.
    pub mdns: bool,
    /// Peer addresses to sync with besides the ones discovered.
    pub peers: Vec<SocketAddr>,
    /// Unseen this long, a peer counts as offline.
    pub peer_timeout: Duration,
    /// Where the show goes.
    pub output: OutputSpec,
    /// LEDs on the strip (1-144), stored as the poi's `ledCount`; None: the stored count
    /// (32 at first start).
    pub leds: Option<u16>,
    /// Sound level source of the audio-reactive patterns.
    pub audio: AudioChoice,
    /// The own clock the show clock starts from reads this many ms at start (as if the
    /// poi had been running that much longer): tests and demos of poi whose clocks differ.
    pub clock_offset_ms: u64,
    /// The own clock runs this many ppm fast (negative: slow), as a crystal would.
    pub clock_rate_ppm: f64,
}

impl NodeOptions {
    /// Defaults for a node storing in `data_dir` and listening on `listen`.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> NodeOptions {
        NodeOptions {
            data_dir: data_dir.into(),
            listen,
            name: None,
            group: None,
            mdns: true,
            peers: Vec::new(),
            peer_timeout: Duration::from_secs(120),
            output: OutputSpec::Sim,
            leds: None,
            audio: AudioChoice::None,
            clock_offset_ms: 0,
            clock_rate_ppm: 0.0,
        }
    }
}

/// A running node; stops when [`Node::stop`] is called or it is dropped.
pub struct Node {
    state: Arc<NodeState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    player: Option<Player>,
    _lock: File,
}

/// Why a node did not start; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or socket operation failed; `what` names it.
    #[error("{what}: {source}")]
    Io {
        /// What was tried, naming the file or address.
        what: String,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Another node holds the data directory.
    #[error("{0} is in use by another povpoi node")]
    InUse(String),
    /// No port on the address is free for both the API and the show clock.
    #[error("cannot find a port on {0} free for both TCP and UDP")]
    NoFreePort(std::net::IpAddr),
    /// A command-line setting is out of range (the message names it).
    #[error(transparent)]
    Setting(#[from] config::InvalidSetting),
    /// `--leds` is out of range.
    #[error("--leds: {0}")]
    Leds(config::InvalidSetting),
    /// The LED count cannot be rendered.
    #[error("ledCount: {0}")]
    LedCount(povpoi_core::render::BadLedCount),
    /// The library could not be opened or prepared; `what` names the step.
    #[error("{what}: {source}")]
    Library {
        /// The step that failed.
        what: &'static str,
        /// The core's reason.
        #[source]
        source: povpoi_core::sync::Error,
    },
    /// The client for peers could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The LED output did not open.
    #[error(transparent)]
    Output(#[from] crate::output::OpenError),
    /// mDNS discovery did not start.
    #[error("mDNS: {0}")]
    Discovery(#[from] crate::discovery::DiscoveryError),
}

/// A [`StartError::Io`] naming `what`.
fn io_failed(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

impl Node {
    /// Opens the data directory, binds the API and starts discovery and sync.
    pub async fn start(options: NodeOptions) -> Result<Node, StartError> {
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir).map_err(io_failed(format!("cannot create data dir {}", dir.display())))?;
        let lock = lock_data_dir(dir)?;
        let (listener, clock_socket) = bind(options.listen).await?;
        let addr = listener.local_addr().map_err(io_failed("cannot read the listening address"))?;

        // Start-up must come up on a full disk: what failed writes left goes first, and
        // nothing is written that is not needed to serve what is stored.
        crate::storage::remove_leftovers(dir).map_err(io_failed(format!("cannot clear {}", dir.display())))?;
        let stored = DeviceConfig::load(dir).map_err(io_failed("cannot read the config"))?;
        let mut config = match &stored {
            Some(config) => config.clone(),
            None => DeviceConfig::new(config::derive_device_id(addr.ip())),
        };
        if let Some(name) = &options.name {
            config::check_label("--name", name)?;
            config.device_name = name.clone();
        }
        if let Some(group) = &options.group {
            config::check_label("--group", group)?;
            config.sync_group = group.clone();
        }
        if let Some(leds) = options.leds {
            config::check_led_count(leds.into()).map_err(StartError::Leds)?;
            config.led_count = leds;
        }
        if let OutputSpec::Apa102 { order: Some(order), .. } = &options.output {
            config.color_order = *order;
        }
        let library_dir = dir.join(crate::storage::LIBRARY_DIR);
        let storage = DirStorage::open(&library_dir).map_err(io_failed("cannot open the store"))?;
        if stored.as_ref() != Some(&config)
            && let Err(e) = config.save(dir)
        {
            // The poi runs on the settings it was given; they are saved with the next change.
            tracing::warn!(error = %e, "cannot save the configuration at start");
        }

        let nonces = dir.join(NONCE_FILE);
        let replay = ReplayGuard::open(&nonces, now_ms())
            .map_err(io_failed(format!("cannot open the request nonces {}", nonces.display())))?;
        let events = EventBus::default();
        let identity =
            Identity { replica: ReplicaId(rand::random()), device: config.device_id, group: config.sync_group.clone() };
        let library = Library::open(storage, identity, events.clone())
            .map_err(|source| StartError::Library { what: "cannot open the library", source })?;
        if library.read(|poi| poi.storage().restored_from_previous()) {
            // The lost snapshot's edits may be on peers under the old id: numbering new
            // edits there again would make peers refuse this poi (ForeignHistory).
            let replica = ReplicaId(rand::random());
            library
                .write(crate::library::Origin::Local, move |poi| poi.renew_replica_id(replica))
                .await
                .map_err(|source| StartError::Library { what: "cannot renew the replica id", source })?;
            tracing::warn!(%replica, "previous snapshot loaded: continuing under a new replica id");
        }
        if library.read(|poi| poi.group() != config.sync_group) {
            let group = config.sync_group.clone();
            library
                .write(crate::library::Origin::Local, move |poi| poi.set_group(&group))
                .await
                .map_err(|source| StartError::Library { what: "cannot set the sync group", source })?;
        }

        // Requests to peers leave from the address the API listens on (when it names one),
        // so a peer that lists a caller at its source address and port lists where it
        // really listens, also on a board with several addresses.
        let source = Some(addr.ip()).filter(|ip| !ip.is_unspecified());
        let http = reqwest::Client::builder()
            .no_proxy()
            .local_address(source)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            // Below the peers' keep-alive limit (server::HEADER_TIMEOUT): a connection the
            // peer is about to close is not picked for a request.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(StartError::HttpClient)?;
        let mut manual = config.manual_peers.clone();
        manual.extend(options.peers.iter().copied());
        manual.sort();
        manual.dedup();
        let renderer = Renderer::new(config.led_count).map_err(StartError::LedCount)?;
        let (outputs, strip): (Vec<Box<dyn Output>>, _) = match &options.output {
            OutputSpec::Sim => {
                let strip = SimStrip::default();
                (vec![Box::new(strip.clone())], Some(strip))
            }
            OutputSpec::Apa102 { device, clock_hz, .. } => {
                // The stored order: the flag's, when it named one, was stored above.
                let spec =
                    OutputSpec::Apa102 { device: device.clone(), clock_hz: *clock_hz, order: Some(config.color_order) };
                (vec![spec.open(config.led_count)?], None)
            }
            other => (vec![other.open(config.led_count)?], None),
        };
        let leds = LedCount::default();
        leds.set(config.led_count);
        let display =
            Display { leds, output: outputs.iter().map(|o| o.describe()).collect::<Vec<_>>().join(", "), strip };
        let (shutdown, stopping) = watch::channel(false);
        let device_id = config.device_id;
        let state = Arc::new(NodeState {
            data_dir: dir.clone(),
            addr,
            library,
            config: Mutex::new(config),
            peers: PeerTable::default(),
            history: History::default(),
            events,
            replay: Mutex::new(replay),
            http,
            session_locks: Mutex::new(std::collections::HashMap::new()),
            live: Mutex::new(Vec::new()),
            manual_peers: Mutex::new(manual),
            kick: Notify::new(),
            rediscover: Notify::new(),
            display,
            player_stats: PlayerStats::default(),
            identify: Identify::default(),
            show: ShowTime::new(device_id, OwnClock::new(options.clock_offset_ms, options.clock_rate_ppm)),
            bodies: Arc::default(),
            key_changes: tokio::sync::watch::Sender::new(0),
            push_rounds: Mutex::new(VecDeque::new()),
            workers: Mutex::new(std::collections::HashMap::new()),
            discovery: Mutex::new(None),
            peer_timeout: options.peer_timeout,
            stopping: stopping.clone(),
        });

        let mut tasks = Vec::new();
        if options.mdns {
            let (found, sightings) = mpsc::unbounded_channel();
            // Peers count as seen on each announcement: three chances within the timeout.
            let announce_every = (options.peer_timeout / 3).clamp(Duration::from_secs(1), ANNOUNCE_EVERY);
            let discovery = Discovery::start_with(&state.advert(), found, announce_every)?;
            *state.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(discovery);
            tasks.push(tokio::spawn(take_sightings(state.clone(), sightings)));
            tasks.push(tokio::spawn(readvertise_on_change(state.clone(), stopping.clone())));
        }
        tasks.push(tokio::spawn(probe_manual_peers(state.clone(), stopping.clone())));
        tasks.push(tokio::spawn(expire_peers(state.clone(), stopping.clone())));
        tasks.push(tokio::spawn(auto_sync(state.clone(), stopping.clone())));
        tasks.push(tokio::spawn(show_clock::serve(state.clone(), clock_socket, stopping.clone())));
        tasks.push(tokio::spawn(prune_thumbnails(state.clone(), stopping.clone())));
        tasks.push(tokio::spawn(serve(listener, state.clone(), stopping)));
        let player = Player::start(state.clone(), outputs, renderer, options.audio);
        let config = state.config().clone();
        tracing::info!(
            device = %config.device_id, name = %config.device_name, group = %config.sync_group,
            %addr, mdns = options.mdns, protected = config.group_key.is_some(), "poi started"
        );
        Ok(Node { state, shutdown, tasks, player: Some(player), _lock: lock })
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// The node's whole HTTP API as a router, for a caller in the same process that sends it
    /// requests without a socket (the fuzz targets).
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.state.clone())
    }

    /// The replicated library.
    pub fn library(&self) -> &crate::library::Library {
        &self.state.library
    }

    /// The strip and output this poi plays on.
    pub fn display(&self) -> &crate::state::Display {
        &self.state.display
    }

    /// The frame loop's counters.
    pub fn player_stats(&self) -> &crate::player::PlayerStats {
        &self.state.player_stats
    }

    /// The column live mode shows now.
    pub fn live_column(&self) -> Vec<povpoi_core::model::Rgb> {
        self.state.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops serving and syncing, says goodbye on mDNS, and waits for the tasks.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(player) = self.player.take() {
            tokio::task::spawn_blocking(move || player.stop()).await.ok();
        }
        let discovery = self.state.discovery.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(discovery) = discovery {
            tokio::task::spawn_blocking(move || discovery.shutdown()).await.ok();
        }
        for task in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                tracing::warn!("a task did not stop within 5 s");
            }
        }
        tracing::info!("poi stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds the HTTP listener and the show clock's UDP socket on the same address and port
/// number. With port 0 the port the system picks for TCP may be taken for UDP: then
/// another is picked.
async fn bind(listen: SocketAddr) -> Result<(TcpListener, UdpSocket), StartError> {
    for _ in 0..20 {
        let tcp = crate::server::listen(listen).map_err(io_failed(format!("cannot listen on {listen}")))?;
        let addr = tcp.local_addr().map_err(io_failed("cannot read the listening address"))?;
        match UdpSocket::bind(addr).await {
            Ok(udp) => return Ok((tcp, udp)),
            Err(_) if listen.port() == 0 => continue,
            Err(e) => return Err(io_failed(format!("cannot listen for show-clock probes on UDP {addr}"))(e)),
        }
    }
    Err(StartError::NoFreePort(listen.ip()))
}

/// Takes an exclusive lock on `DIR/lock`, so two nodes never share one store.
fn lock_data_dir(dir: &std::path::Path) -> Result<File, StartError> {
    let path = dir.join("lock");
    let file = File::create(&path).map_err(io_failed(format!("cannot create {}", path.display())))?;
    fs4::FileExt::try_lock(&file).map_err(|_| StartError::InUse(dir.display().to_string()))?;
    Ok(file)
}

async fn serve(listener: TcpListener, state: Arc<NodeState>, stopping: watch::Receiver<bool>) {
    crate::server::serve(listener, api::router(state), stopping).await;
}

async fn take_sightings(state: Arc<NodeState>, mut sightings: mpsc::UnboundedReceiver<Sighting>) {
    while let Some(seen) = sightings.recv().await {
        if seen.device_id != state.config().device_id {
            state.peer_seen(&seen, Source::Mdns);
        }
    }
}

async fn readvertise_on_change(state: Arc<NodeState>, mut stopping: watch::Receiver<bool>) {
    let mut changes = state.library.changes();
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        // Coalesce bursts: TXT updates are multicast to everyone.
        tokio::time::sleep(Duration::from_millis(200)).await;
        changes.mark_unchanged();
        state.readvertise();
    }
}

/// Keeps the thumbnail cache to the pixels the library uses: at start and after each burst
/// of changes (a delete here or by a peer).
async fn prune_thumbnails(state: Arc<NodeState>, mut stopping: watch::Receiver<bool>) {
    let mut changes = state.library.changes();
    let mut starting = true;
    loop {
        let node = state.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            crate::library::prune_thumbnails(&node.data_dir, &node.library, starting)
        })
        .await;
        match pruned {
            Ok(Ok(removed)) if removed > 0 => tracing::debug!(removed, "thumbnails of gone images removed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot clean the thumbnail cache"),
            Err(e) => tracing::warn!(error = %e, "the thumbnail clean-up failed"),
        }
        starting = false;
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        // Coalesce bursts: a sync merges many records at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        changes.mark_unchanged();
    }
}

async fn probe_manual_peers(state: Arc<NodeState>, mut stopping: watch::Receiver<bool>) {
    let mut asked = true;
    loop {
        let addrs = state.manual_peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for addr in addrs {
            // A peer seen lately (probed, or it answered a session) needs no probe yet;
            // offline ones are probed every period, so they are found soon after they return.
            if !asked && state.peers.seen_within(addr, state.peer_timeout / 3) {
                continue;
            }
            match sync_client::probe(&state.http, addr).await {
                Ok(seen) if seen.device_id != state.config().device_id => state.peer_seen(&seen, Source::Manual),
                Ok(_) => {}
                Err(e) => tracing::debug!(%addr, error = %e, "peer address did not answer"),
            }
        }
        asked = tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            _ = tokio::time::sleep(PROBE_PERIOD) => false,
            _ = state.rediscover.notified() => true,
        };
    }
}

async fn expire_peers(state: Arc<NodeState>, mut stopping: watch::Receiver<bool>) {
    let tick = (state.peer_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            _ = tokio::time::sleep(tick) => {}
        }
        for id in state.peers.expire(state.peer_timeout) {
            tracing::info!(peer = %id, "peer offline");
            state.events.send(Event::PeerDown { device_id: id.to_string() });
        }
    }
}

/// Push-on-change and the periodic round, with every online peer of the group.
async fn auto_sync(state: Arc<NodeState>, mut stopping: watch::Receiver<bool>) {
    let mut changes = state.library.changes();
    let mut last_round = tokio::time::Instant::now();
    loop {
        let due = last_round + Duration::from_millis(state.config().sync_interval);
        let mut noticed = tokio::time::Instant::now();
        let trigger = tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            changed = changes.changed() => {
                if changed.is_err() { return }
                noticed = tokio::time::Instant::now();
                tokio::time::sleep(PUSH_DEBOUNCE).await;
                changes.mark_unchanged();
                "change"
            }
            _ = state.kick.notified() => "kick",
            _ = tokio::time::sleep_until(due) => "interval",
        };
        // Counted before the `enabled` check: with auto-sync off the timer must still move
        // on, or `due` stays in the past and this loop spins.
        if trigger == "interval" {
            last_round = tokio::time::Instant::now();
        }
        // Read now, not before waiting: autoSync may have been turned off meanwhile.
        if !state.config().auto_sync {
            continue;
        }
        let group = state.config().sync_group.clone();
        let peers = state.peers.due_in(&group, PROTOCOL_VERSION);
        // On the timer, a peer whose advertised digest equals ours is skipped unasked.
        let trigger = if trigger == "kick" { "meet" } else { trigger };
        let noticed = (trigger == "change").then_some(noticed);
        for peer in peers.into_iter().filter(|p| trigger != "interval" || state.needs_sync(&p.digest)) {
            push_to(&state, peer, trigger, noticed);
        }
    }
}

/// Runs a session with `peer` on a task of its own, so a slow or stuck peer holds up
/// nobody else; asked again while one runs, it runs once more after it (the change may
/// have come after that session's `Begin`).
fn push_to(state: &Arc<NodeState>, peer: Peer, trigger: &'static str, noticed: Option<tokio::time::Instant>) {
    let worker = state.workers.lock().unwrap_or_else(|p| p.into_inner()).entry(peer.addr).or_default().clone();
    worker.again.store(true, Ordering::SeqCst);
    if worker.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            worker.again.store(false, Ordering::SeqCst);
            let options = state.auto_options();
            let deadline = sync_client::AUTO_SESSION_DEADLINE;
            let began = std::time::Instant::now();
            let entry =
                sync_client::sync_with(state.as_ref(), peer.addr, Some(&peer), options, trigger, deadline).await;
            // The shared rule (`Peers::session_ended`): a refusal (often a pairing key set on
            // one poi a moment before the other), a stall or a failure pause the peer, asked
            // again soon, then less and less often; nothing answering takes it offline.
            let ended = entry.ended();
            let after = state.peers.session_ended(peer.device_id, peer.addr, began, ended, state.peer_timeout);
            if after.paused_us > 0 {
                tracing::info!(peer = %peer.addr, paused_ms = after.paused_us / 1_000, ?ended, "peer left out of auto-sync for a while");
                // A peer that refused or stalled is not asked again for the changes that
                // piled up meanwhile: the first round after its pause carries them. One
                // whose session broke off otherwise is, at once, as before its pause.
                if ended != Ended::Failed {
                    worker.again.store(false, Ordering::SeqCst);
                }
            } else if after.went_offline {
                state.events.send(Event::PeerDown { device_id: peer.device_id.to_string() });
            }
            if let (true, Some(noticed)) = (entry.ok, noticed) {
                state.note_push_round(noticed.elapsed());
            }
            if worker.again.load(Ordering::SeqCst) {
                continue;
            }
            worker.running.store(false, Ordering::SeqCst);
            // Asked again between the check and the store: carry on unless another task took it.
            if !worker.again.load(Ordering::SeqCst) || worker.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    });
}
