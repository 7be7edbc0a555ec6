//! `GET /api/clock`: the show clock, for a person debugging a troupe and for tests that
//! measure how closely poi agree (`showTimeUs` and `hostTimeUs` are read at one instant).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use povpoi_core::show::Standing;
use serde_json::{Value, json};

use super::AppState;
use crate::show_clock::standing_name;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/clock", get(clock))
}

fn hex(timeline: u32) -> String {
    format!("{timeline:08x}")
}

async fn clock(State(node): State<AppState>) -> Json<Value> {
    let (show, host) = node.show.read();
    let status = node.show.status();
    let names = node.peers.list();
    let peers: Vec<Value> = status
        .peers
        .iter()
        .map(|p| {
            let name = names.iter().find(|n| n.device_id == p.device).map(|n| n.device_name.clone());
            json!({
                "deviceId": p.device.to_string(),
                "deviceName": name,
                "timeline": p.timeline.map(hex),
                "sameTimeline": p.timeline == Some(status.timeline),
                "offsetUs": p.offset,
                "errorBoundUs": p.error,
                "delayUs": p.delay,
                "skewPpb": p.skew_ppb,
                "samples": p.samples,
                "heardAgoMs": p.heard_ago.map(|us| us / 1_000),
            })
        })
        .collect();
    let steps: Vec<Value> = status
        .steps
        .iter()
        .map(|s| {
            json!({
                "fromTimeline": hex(s.from),
                "toTimeline": hex(s.to),
                "byUs": s.by,
                "jumped": s.jumped,
                "showTimeUs": s.show_before,
            })
        })
        .collect();
    let plan = status.plan.map(|p| json!({ "timeline": hex(p.target), "atShowTimeUs": p.at, "byUs": p.step }));
    let last_cue = node.player_stats.last_cue().map(|c| {
        json!({
            "cueUs": c.cue_us,
            "appliedShowTimeUs": c.show_us,
            "appliedHostTimeUs": c.host_us,
            "lateUs": c.show_us.saturating_sub(c.cue_us),
        })
    });
    let own = node.show.own();
    Json(json!({
        "showTimeUs": show,
        "hostTimeUs": host,
        "standing": standing_name(status.standing),
        "inStep": status.standing == Standing::InStep,
        "timeline": hex(status.timeline),
        "foundedTimeline": hex(node.show.founded()),
        "errorBoundUs": status.error_bound,
        "rateCorrectionPpb": status.rate_ppb,
        "slewingUs": status.slewing,
        "pendingStep": plan,
        "leadUs": node.lead_us(),
        "clockOffsetMs": own.offset_ms(),
        "clockRatePpm": own.rate_ppm(),
        "peers": peers,
        "steps": steps,
        "lastCue": last_cue,
        "datagrams": node.show.counters(),
    }))
}
