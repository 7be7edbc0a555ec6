//! What a running poi's tasks and handlers share ([`NodeState`]): its library, settings,
//! peers, history, event stream, show clock, strip and counters. The player, the show
//! clock's socket and the sync sessions see it through the few parts each uses
//! (`player::PlayerParts`, `show_clock::ClockParts`, `sync_client::SessionParts`); the API
//! and `node`'s timers take it whole. `node` builds it and starts the tasks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use povpoi_core::model::Rgb;
use povpoi_core::show::{Cue, lead_us};
use povpoi_core::sync::{Categories, Direction, PROTOCOL_VERSION, SyncOptions};
use tokio::sync::{Notify, watch};

use crate::config::{DeviceConfig, SyncMode};
use crate::discovery::{Advert, Discovery, Sighting};
use crate::events::{Event, EventBus};
use crate::history::{History, HistoryEntry};
use crate::library::{Library, now_ms};
use crate::output::sim::SimStrip;
use crate::peers::{Change, PeerTable, Source};
use crate::player::{Identify, PlayerStats};
use crate::replay::ReplayGuard;
use crate::show_clock::ShowTime;
use crate::sync_client;

/// Push rounds remembered for the cue lead.
const PUSH_ROUNDS_KEPT: usize = 8;

/// The LED count the strip plays now, shared by the handlers; it follows the configuration's
/// `ledCount` (see [`NodeState::update_config`]).
#[derive(Clone, Debug, Default)]
pub struct LedCount(Arc<AtomicU16>);

impl LedCount {
    /// LEDs per column now.
    pub fn get(&self) -> u16 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, leds: u16) {
        self.0.store(leds, Ordering::Relaxed);
    }
}

impl serde::Serialize for LedCount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.get())
    }
}

/// The poi's LEDs as the API describes them.
#[derive(Clone, Debug)]
pub struct Display {
    /// LEDs per column.
    pub leds: LedCount,
    /// The output, described (`sim`, `apa102 /dev/spidev0.0`...).
    pub output: String,
    /// The in-memory strip, when the output is `sim`.
    pub strip: Option<SimStrip>,
}

/// Everything the node's tasks and handlers share, within the crate: from outside, a
/// [`crate::node::Node`] gives narrow handles (its library, display, counters).
pub struct NodeState {
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// The address the API really listens on.
    pub(crate) addr: SocketAddr,
    /// The replicated library.
    pub(crate) library: Library,
    /// The poi's own settings: read with [`NodeState::config`], changed (and saved) with
    /// [`NodeState::update_config`].
    pub(crate) config: Mutex<DeviceConfig>,
    /// Known peers.
    pub(crate) peers: PeerTable,
    /// Sessions this poi started.
    pub(crate) history: History,
    /// The event stream.
    pub(crate) events: EventBus,
    /// Nonces of accepted peer requests.
    pub(crate) replay: Mutex<ReplayGuard>,
    /// HTTP client for peers.
    pub(crate) http: reqwest::Client,
    /// One outgoing session per peer address at a time; sessions with different peers run
    /// side by side, so a change reaches a troupe in about one session's time.
    pub(crate) session_locks: Mutex<std::collections::HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    /// The column shown in live mode (not replicated: it changes many times a second).
    pub(crate) live: Mutex<Vec<Rgb>>,
    /// Addresses added by hand (probed until they answer, kept across restarts).
    pub(crate) manual_peers: Mutex<Vec<SocketAddr>>,
    /// Wakes the sync loop: settings changed or a sync was asked for.
    pub(crate) kick: Notify,
    /// Wakes the prober and discovery to look again now.
    pub(crate) rediscover: Notify,
    /// The strip and output this poi plays on.
    pub(crate) display: Display,
    /// The frame loop's counters.
    pub(crate) player_stats: PlayerStats,
    /// The identify flash (`POST /api/identify`).
    pub(crate) identify: Identify,
    /// The show clock the player renders by.
    pub(crate) show: ShowTime,
    /// The request bodies held now (see [`crate::memory`]).
    pub(crate) bodies: Arc<crate::memory::BodyBudget>,
    /// Counts pairing-key changes: an event stream opened under one key ends when it changes,
    /// so a browser that lacks the new key stops hearing what the poi does.
    pub(crate) key_changes: tokio::sync::watch::Sender<u64>,
    /// How long the last pushes of a change to a peer took, µs.
    pub(crate) push_rounds: Mutex<VecDeque<u64>>,
    /// Per peer address: whether a session of auto-sync runs, and whether it is wanted again.
    pub(crate) workers: Mutex<std::collections::HashMap<SocketAddr, Arc<PushWorker>>>,
    /// The mDNS advert and browser, once started.
    pub(crate) discovery: Mutex<Option<Discovery>>,
    /// How long a peer unseen stays online.
    pub(crate) peer_timeout: Duration,
    /// The stop signal ([`crate::shutdown`]).
    pub(crate) stopping: watch::Receiver<bool>,
}

impl sync_client::SessionParts for NodeState {
    fn caller(&self) -> sync_client::CallerId {
        let config = self.config();
        sync_client::CallerId {
            device: config.device_id.to_string(),
            group: config.sync_group.clone(),
            key: config.group_key.clone(),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn library(&self) -> &Library {
        &self.library
    }

    fn peers(&self) -> &PeerTable {
        &self.peers
    }

    fn peer_seen(&self, seen: &Sighting, source: Source) {
        NodeState::peer_seen(self, seen, source);
    }

    fn session_lock(&self, addr: SocketAddr) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.session_locks.lock().unwrap_or_else(|p| p.into_inner());
        // Addresses synced with by hand come and go: drop the locks nobody holds.
        if locks.len() > 64 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(addr).or_default().clone()
    }

    fn session_ended(&self, entry: &HistoryEntry) {
        self.history.push(entry.clone());
        self.events.send(Event::SyncFinished(entry.clone()));
    }
}

impl crate::show_clock::ClockParts for NodeState {
    fn show(&self) -> &ShowTime {
        &self.show
    }

    fn group(&self) -> (String, Option<povpoi_peer::key::GroupKey>) {
        let config = self.config();
        (config.sync_group.clone(), config.group_key.clone())
    }

    fn peers(&self) -> &PeerTable {
        &self.peers
    }

    fn events(&self) -> &EventBus {
        &self.events
    }
}

impl crate::player::PlayerParts for NodeState {
    fn library(&self) -> &Library {
        &self.library
    }

    fn show(&self) -> &ShowTime {
        &self.show
    }

    fn strip(&self) -> crate::player::StripSettings {
        let config = self.config();
        crate::player::StripSettings { power: config.power_mode, leds: config.led_count, order: config.color_order }
    }

    fn live(&self) -> &Mutex<Vec<Rgb>> {
        &self.live
    }

    fn identify(&self) -> &Identify {
        &self.identify
    }

    fn stats(&self) -> &PlayerStats {
        &self.player_stats
    }
}

impl NodeState {
    /// Resolves once the node is stopping (long-lived answers such as the event stream end then).
    pub async fn stopped(&self) {
        crate::shutdown::stopped(&mut self.stopping.clone()).await;
    }

    /// The device configuration (hold the guard briefly).
    pub fn config(&self) -> MutexGuard<'_, DeviceConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the configuration and saves it; on a failed save nothing changes.
    pub fn update_config(&self, change: impl FnOnce(&mut DeviceConfig)) -> std::io::Result<()> {
        let mut config = self.config();
        let mut next = config.clone();
        change(&mut next);
        next.save(&self.data_dir)?;
        *config = next;
        self.display.leds.set(config.led_count);
        drop(config);
        self.kick.notify_one();
        self.readvertise();
        Ok(())
    }

    /// Changes the addresses added by hand and saves them; the list stays locked while it
    /// is saved, so two changes at once cannot save a stale list. On a failed save nothing
    /// changes.
    pub fn update_manual_peers(&self, change: impl FnOnce(&mut Vec<SocketAddr>)) -> std::io::Result<()> {
        let mut manual = self.manual_peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = manual.clone();
        change(&mut next);
        if next != *manual {
            self.update_config(|c| c.manual_peers = next.clone())?;
            *manual = next;
        }
        Ok(())
    }

    /// What the node advertises now.
    pub(crate) fn advert(&self) -> Advert {
        let config = self.config();
        Advert {
            poi: povpoi_peer::advert::Advert {
                device_id: config.device_id,
                device_name: config.device_name.clone(),
                sync_group: config.sync_group.clone(),
                protocol: PROTOCOL_VERSION,
                digest: self.library.digest(),
                port: self.addr.port(),
            },
            addrs: if self.addr.ip().is_unspecified() { Vec::new() } else { vec![self.addr.ip()] },
        }
    }

    /// Sends the mDNS advert again with what changed in it.
    pub(crate) fn readvertise(&self) {
        if let Some(discovery) = self.discovery.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && let Err(e) = discovery.update(&self.advert())
        {
            tracing::warn!(error = %e, "cannot update the mDNS advert");
        }
    }

    /// Asks mDNS and the hand-added addresses again, now.
    pub fn refresh_discovery(&self) {
        if let Some(discovery) = self.discovery.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && let Err(e) = discovery.refresh()
        {
            tracing::warn!(error = %e, "cannot restart the mDNS browse");
        }
        self.rediscover.notify_one();
    }

    /// What auto-sync moves: everything in mirror mode, content only in independent mode.
    pub fn auto_options(&self) -> SyncOptions {
        let settings = self.config().sync_mode == SyncMode::Mirror;
        SyncOptions {
            direction: Direction::Bidirectional,
            categories: Categories { images: true, patterns: true, settings },
        }
    }

    /// Records a peer seen now; tells watchers when it comes online and starts a sync with it.
    pub fn peer_seen(&self, seen: &Sighting, source: Source) {
        if let Change::Up(id) = self.peers.saw(seen, source, now_ms()) {
            tracing::info!(peer = %id, name = %seen.device_name, addr = %seen.addr, "peer online");
            self.events.send(Event::PeerUp {
                device_id: id.to_string(),
                device_name: seen.device_name.clone(),
                ip_address: seen.addr.to_string(),
            });
            // Meeting again is when what each learned alone gets merged.
            self.kick.notify_one();
        }
    }

    /// The cue of an edit of what plays made now: in mirror mode a lead ahead, twice the
    /// slowest recent push to the group (see [`lead_us`]); in independent mode now.
    pub fn cue(&self) -> Cue {
        let lead = self.lead_us();
        Cue(self.show.now_us() + lead)
    }

    /// How far ahead a cue set now is, µs.
    pub fn lead_us(&self) -> u64 {
        let config = self.config().clone();
        if config.sync_mode == SyncMode::Independent {
            return 0;
        }
        let online = !self.peers.online_in(&config.sync_group, PROTOCOL_VERSION).is_empty();
        let slowest = self.push_rounds.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().max();
        lead_us(online, slowest.unwrap_or(0))
    }

    pub(crate) fn note_push_round(&self, took: Duration) {
        // A push to one peer: the lead needs the slowest recent one.
        let mut rounds = self.push_rounds.lock().unwrap_or_else(|p| p.into_inner());
        if rounds.len() == PUSH_ROUNDS_KEPT {
            rounds.pop_front();
        }
        rounds.push_back(took.as_micros() as u64);
    }

    /// Whether a peer needs a sync: its digest differs from ours, or ours lacks pixels.
    pub(crate) fn needs_sync(&self, peer_digest: &str) -> bool {
        peer_digest != self.library.digest() || self.library.read(|poi| !poi.missing_blobs().is_empty())
    }
}

/// The auto-sync task of one peer address.
#[derive(Debug, Default)]
pub(crate) struct PushWorker {
    /// A session of auto-sync with the address runs.
    pub(crate) running: AtomicBool,
    /// Another is wanted once it ends.
    pub(crate) again: AtomicBool,
}
