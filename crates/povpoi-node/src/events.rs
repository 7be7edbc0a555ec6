//! What the node tells its watchers (the web UI, scripts) as it happens: the event stream
//! behind `GET /api/events`.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::history::HistoryEntry;

/// How many events a slow watcher may fall behind before it misses some.
const BACKLOG: usize = 256;

/// One thing that happened on this poi.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// The library changed (a local edit, or a merge from a peer).
    #[serde(rename_all = "camelCase")]
    LibraryChanged {
        /// The library digest after the change.
        digest: String,
        /// `"local"` or `"peer"`.
        source: &'static str,
    },
    /// A peer came online (found, or answered).
    #[serde(rename_all = "camelCase")]
    PeerUp {
        /// Its device id.
        device_id: String,
        /// Its name.
        device_name: String,
        /// Its address.
        ip_address: String,
    },
    /// A peer went offline (not seen for the timeout, or said goodbye).
    #[serde(rename_all = "camelCase")]
    PeerDown {
        /// Its device id.
        device_id: String,
    },
    /// A sync session this poi started finished, well or not.
    SyncFinished(HistoryEntry),
    /// The show clock's standing with its group changed (and every 10 s).
    #[serde(rename_all = "camelCase")]
    Clock {
        /// `alone`, `converging` or `inStep`.
        standing: &'static str,
        /// The timeline followed (hex).
        timeline: String,
        /// No peer of the timeline is further than this from us, µs.
        error_bound_us: Option<u64>,
        /// Show time, µs.
        show_time_us: u64,
        /// The host's real-time clock at the same instant, µs since the epoch.
        host_time_us: u64,
    },
    /// The show clock stepped to another timeline.
    #[serde(rename_all = "camelCase")]
    ClockStep {
        /// Timeline left (hex).
        from_timeline: String,
        /// Timeline joined (hex).
        to_timeline: String,
        /// How far the timeline joined was, µs.
        by_us: i64,
        /// Whether show time jumped by that much (else it is slewed in).
        jumped: bool,
        /// Show time just before it, µs.
        show_time_us: u64,
    },
    /// `POST /api/identify`: this poi flashes its strip so a performer can find it; a web
    /// page flashes the poi's card alongside.
    #[serde(rename_all = "camelCase")]
    Identify {
        /// This poi's device id.
        device_id: String,
        /// Its name.
        device_name: String,
        /// How long it flashes, s.
        seconds: u64,
    },
}

/// Fan-out of events to every watcher; sending never blocks the node.
#[derive(Clone, Debug)]
pub struct EventBus(broadcast::Sender<Event>);

impl Default for EventBus {
    fn default() -> Self {
        EventBus(broadcast::channel(BACKLOG).0)
    }
}

impl Event {
    /// The event's name on the stream (`event:` of server-sent events), also its `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::LibraryChanged { .. } => "libraryChanged",
            Event::PeerUp { .. } => "peerUp",
            Event::PeerDown { .. } => "peerDown",
            Event::SyncFinished(_) => "syncFinished",
            Event::Clock { .. } => "clock",
            Event::ClockStep { .. } => "clockStep",
            Event::Identify { .. } => "identify",
        }
    }
}

impl EventBus {
    /// Tells every current watcher (none is fine).
    pub fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }

    /// A new watcher, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}
