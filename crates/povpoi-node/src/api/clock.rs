//! `GET /api/clock`: the show clock, for a person debugging a troupe and for tests that
//! measure how closely poi agree (`showTimeUs`, `hostTimeUs` and `hostMonotonicUs` are read at
//! one instant).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use povpoi_app::answers;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/clock", get(clock))
}

/// The shared answer, with the knobs of the node's own (simulated) clock.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeClock {
    #[serde(flatten)]
    clock: answers::Clock,
    clock_offset_ms: u64,
    clock_rate_ppm: f64,
    /// The host's monotonic clock when `showTimeUs` was read, µs: unlike `hostTimeUs`, no
    /// step of the real-time clock moves it.
    host_monotonic_us: u64,
}

async fn clock(State(node): State<AppState>) -> Json<Value> {
    let (show_us, host_us, host_monotonic_us) = node.show.read();
    let status = node.show.status();
    let names = node.peers.list();
    let reading = answers::ClockReading {
        status: &status,
        show_us,
        host_us,
        founded: node.show.founded(),
        lead_us: node.lead_us(),
        last_cue: node.player_stats.last_cue(),
        counters: node.show.counters(),
    };
    let clock =
        answers::Clock::of(reading, |id| names.iter().find(|n| n.device_id == id).map(|n| n.device_name.clone()));
    let own = node.show.own();
    Json(json!(NodeClock {
        clock,
        clock_offset_ms: own.offset_ms(),
        clock_rate_ppm: own.rate_ppm(),
        host_monotonic_us
    }))
}
