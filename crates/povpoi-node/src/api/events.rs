//! `GET /api/events`: the event stream (server-sent events, one JSON object per event).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(stream))
}

async fn stream(State(node): State<AppState>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = BroadcastStream::new(node.events.subscribe()).filter_map(|event| {
        // A watcher too slow to keep up misses events rather than slowing the poi down.
        let event = event.ok()?;
        let name = event.name();
        SseEvent::default().event(name).json_data(&event).ok().map(Ok)
    });
    // Without an end, an open stream would hold the graceful shutdown of the server. It
    // also ends when the pairing key changes: it was let in under the old one, and its
    // reader must come back with the new key (the web UI reconnects by itself).
    let mut key_changes = node.key_changes.subscribe();
    let until_stop = async move {
        tokio::select! {
            () = node.stopped() => {}
            _ = key_changes.changed() => {}
        }
    };
    Sse::new(futures_util::StreamExt::take_until(events, until_stop))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
