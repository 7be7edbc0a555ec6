//! The sync history: the last sessions this poi started or answered, when, with whom, what
//! moved and what went wrong (`GET /api/sync/history`). Kept in memory; it restarts empty.

use std::collections::VecDeque;
use std::sync::Mutex;

use povpoi_peer::session::Ended;
use serde::Serialize;

/// Sessions remembered.
pub const HISTORY_LEN: usize = 200;

/// Which side of a session this poi was on.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// This poi started it.
    #[default]
    Initiator,
    /// A peer started it; this poi answered.
    Responder,
}

/// A responder's entry takes the messages of one session: those from the same peer within
/// this long of the `Begin` (the initiator gives up on a session after 120 s).
const RESPONDER_SESSION_MS: u64 = 120_000;

/// One sync session.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it started, ms since the epoch.
    pub at: u64,
    /// Whether this poi started or answered it. An answering poi counts the records and
    /// blobs the messages carried; what they added here is counted by the initiator.
    pub role: Role,
    /// How long it took, ms.
    pub duration_ms: u64,
    /// Peer's device id (empty if never learned).
    pub peer_id: String,
    /// Peer's name.
    pub peer_name: String,
    /// Peer's address.
    pub ip_address: String,
    /// `"bidirectional"`, `"push"` or `"pull"`.
    pub direction: String,
    /// Why it ran: `"manual"`, `"change"`, `"interval"`, `"meet"`; `"peer"` when answered.
    pub trigger: String,
    /// Whether it completed.
    pub ok: bool,
    /// What went wrong, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The peer refused this poi (pairing key or clock): it is left alone for a while.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// The session ran out of time: the peer is backed off for a while.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// Nothing took the connection: the peer is offline until it is seen again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
    /// Records merged here from the peer.
    pub records_received: u32,
    /// Records sent to the peer.
    pub records_sent: u32,
    /// Images that appeared here.
    pub images_added: u32,
    /// Pattern and sequence slots filled here.
    pub patterns_added: u32,
    /// Settings fields changed here.
    pub settings_updated: u32,
    /// Items deleted here.
    pub items_deleted: u32,
    /// Image pixel blobs received.
    pub blobs_received: u32,
    /// Image pixel blobs the peer kept.
    pub blobs_sent: u32,
    /// Request/answer round trips.
    pub round_trips: u32,
    /// Bytes sent plus received in message bodies.
    pub bytes: u64,
}

impl HistoryEntry {
    /// How the session ended, as auto-sync tells endings apart.
    pub fn ended(&self) -> Ended {
        match self {
            HistoryEntry { ok: true, .. } => Ended::Synced,
            HistoryEntry { refused: true, .. } => Ended::Refused,
            HistoryEntry { stalled: true, .. } => Ended::Stalled,
            HistoryEntry { unreachable: true, .. } => Ended::Unreachable,
            _ => Ended::Failed,
        }
    }
}

/// The last [`HISTORY_LEN`] sessions, newest last.
#[derive(Debug, Default)]
pub struct History(Mutex<VecDeque<HistoryEntry>>);

impl History {
    /// Adds a finished session, forgetting the oldest beyond the limit.
    pub fn push(&self, entry: HistoryEntry) {
        let mut entries = self.0.lock().expect("history lock");
        if entries.len() == HISTORY_LEN {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Opens the entry of a session a peer started with this poi.
    pub fn answering(&self, entry: HistoryEntry) {
        self.push(HistoryEntry { role: Role::Responder, ok: true, ..entry });
    }

    /// Updates the entry of the session `peer_id` opened with this poi most recently, if it
    /// opened one within a session's time of `now_ms`.
    pub fn answered(&self, peer_id: &str, now_ms: u64, update: impl FnOnce(&mut HistoryEntry)) {
        let mut entries = self.0.lock().expect("history lock");
        let open = entries
            .iter_mut()
            .rev()
            .find(|e| e.role == Role::Responder && e.peer_id == peer_id)
            .filter(|e| now_ms.saturating_sub(e.at) <= RESPONDER_SESSION_MS);
        if let Some(entry) = open {
            update(entry);
            entry.duration_ms = now_ms.saturating_sub(entry.at);
        }
    }

    /// The newest session with the peer `peer_id` (started by either side), if any is
    /// remembered.
    pub fn last_with(&self, peer_id: &str) -> Option<HistoryEntry> {
        self.0.lock().expect("history lock").iter().rev().find(|e| e.peer_id == peer_id).cloned()
    }

    /// The sessions remembered, newest first.
    pub fn newest_first(&self) -> Vec<HistoryEntry> {
        self.0.lock().expect("history lock").iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_sessions_newest_first() {
        let history = History::default();
        for at in 0..(HISTORY_LEN as u64 + 5) {
            history.push(HistoryEntry { at, ..HistoryEntry::default() });
        }
        let list = history.newest_first();
        assert_eq!(list.len(), HISTORY_LEN);
        assert_eq!(list[0].at, HISTORY_LEN as u64 + 4);
        assert_eq!(list.last().unwrap().at, 5);
    }

    #[test]
    fn the_last_session_with_a_peer_is_its_newest_whoever_started_it() {
        let history = History::default();
        assert_eq!(history.last_with("A"), None);
        history.push(HistoryEntry { at: 1, peer_id: "A".into(), ok: true, ..HistoryEntry::default() });
        history.answering(HistoryEntry { at: 2, peer_id: "A".into(), ..HistoryEntry::default() });
        history.push(HistoryEntry { at: 3, peer_id: "B".into(), ..HistoryEntry::default() });
        let last = history.last_with("A").unwrap();
        assert_eq!((last.at, last.role), (2, Role::Responder));
        assert_eq!(history.last_with("B").map(|e| e.at), Some(3));
    }

    #[test]
    fn an_answered_session_collects_its_messages_until_it_is_over() {
        let history = History::default();
        history.answering(HistoryEntry { at: 1_000, peer_id: "A".into(), ..HistoryEntry::default() });
        history.push(HistoryEntry { at: 1_001, peer_id: "A".into(), ..HistoryEntry::default() });
        history.answered("A", 1_500, |e| e.records_received += 3);
        history.answered("B", 1_500, |e| e.records_received += 100);
        history.answered("A", 1_000 + RESPONDER_SESSION_MS + 1, |e| e.records_received += 100);
        let answered: Vec<_> = history.newest_first().into_iter().filter(|e| e.role == Role::Responder).collect();
        assert_eq!(answered.len(), 1);
        assert_eq!((answered[0].records_received, answered[0].duration_ms, answered[0].ok), (3, 500, true));
    }
}
