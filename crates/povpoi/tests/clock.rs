//! Playing in unison between real `povpoi node` processes whose traffic crosses a userspace
//! relay with the Wi-Fi faults (2 ms base delay, asymmetric paths, jitter, 20 %
//! UDP loss, 100-1,000 ms spikes): clocks seconds apart converge, a cue lands on the same
//! column everywhere, the poi whose timeline the others follow can die and come back without
//! moving anyone, and forged, replayed or malformed datagrams move no clock.

#[macro_use]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use povpoi_core::device::DeviceId;
use povpoi_core::show::ClockKey;
use povpoi_core::show::packet::{self, Announce, Packet};
use serde_json::{Value, json};
use support::relay::{Faults, Relay};
use support::*;

fn clock(c: &Client, addr: SocketAddr) -> Value {
    c.get_ok(addr, "/api/clock")
}

/// Show time minus the host's monotonic clock, read at one instant by the node: equal on two
/// nodes of this machine when their show times agree. Not the real-time `hostTimeUs`: a step
/// of the machine's real-time clock while a test watches would read as show time jumping.
fn offset_us(v: &Value) -> i64 {
    v["showTimeUs"].as_i64().unwrap() - v["hostMonotonicUs"].as_i64().unwrap()
}

fn spread_us(offsets: &[i64]) -> u64 {
    (offsets.iter().max().unwrap() - offsets.iter().min().unwrap()) as u64
}

fn offsets(c: &Client, addrs: &[SocketAddr]) -> Vec<i64> {
    addrs.iter().map(|a| offset_us(&clock(c, *a))).collect()
}

/// Waits until the nodes follow one timeline, each says it is in step, and they are within
/// 1 ms of each other; returns the time it took.
fn wait_in_step(c: &Client, addrs: &[SocketAddr], timeout: Duration) -> Duration {
    wait_until("the poi play in step", timeout, || {
        let clocks: Vec<Value> = addrs.iter().map(|a| clock(c, *a)).collect();
        let one = clocks.iter().all(|v| v["timeline"] == clocks[0]["timeline"] && v["inStep"] == json!(true));
        one && spread_us(&clocks.iter().map(offset_us).collect::<Vec<_>>()) <= 1_000
    })
}

fn steps(v: &Value) -> usize {
    v["steps"].as_array().map_or(0, Vec::len)
}

#[test]
fn poi_with_clocks_seconds_apart_play_in_unison_and_keep_it_when_one_leaves() {
    let started = Instant::now();
    let relay = Relay::start(3, Faults::wifi(9));
    let mut lab = Lab::relayed(&relay, 3);
    // Own clocks 0, 8 and 16 s along: each poi's first timeline is seconds from the others'.
    for (i, offset) in [0, 8_000, 16_000].into_iter().enumerate() {
        let mut spec = lab.spec(i);
        spec.args = vec!["--clock-offset-ms".into(), offset.to_string()];
        lab.start_with(i, spec);
    }
    let addrs = lab.addrs.clone();
    let client = Client::loopback();
    let c = &client;
    let before = offsets(c, &addrs);
    assert!(spread_us(&before) > 1_000_000, "the clocks start seconds apart: {before:?}");
    note("in step from seconds apart", wait_in_step(c, &addrs, Duration::from_secs(30)));

    // Any two agree within 2 ms (p95) while the relay keeps losing and delaying probes.
    let mut spreads = Vec::new();
    for _ in 0..60 {
        spreads.push(spread_us(&offsets(c, &addrs)));
        std::thread::sleep(Duration::from_millis(50));
    }
    spreads.sort_unstable();
    println!(
        "  spread µs over {} samples: p50 {} p95 {} max {}",
        spreads.len(),
        percentile(&spreads, 0.5),
        percentile(&spreads, 0.95),
        spreads[spreads.len() - 1]
    );
    assert!(percentile(&spreads, 0.95) <= 2_000, "p95 spread over 2 ms: {spreads:?}");

    // A mode change on one poi is cued: every poi switches on the same column.
    c.post_ok(addrs[1], "/api/pattern", &json!({"index": 4, "type": 0}));
    std::thread::sleep(Duration::from_millis(500));
    let asked = clock(c, addrs[1])["showTimeUs"].as_u64().unwrap();
    c.post_ok(addrs[1], "/api/framerate", &json!({"framerate": 100}));
    c.post_ok(addrs[1], "/api/mode", &json!({"mode": 2, "index": 4}));
    let shown: Vec<Value> = wait_for("every poi shows the cued mode", Duration::from_secs(10), || {
        let cues: Vec<Value> = addrs.iter().map(|a| clock(c, *a)["lastCue"].clone()).collect();
        let latest = cues.iter().all(|q| q["cueUs"].as_u64().is_some_and(|cue| cue > asked));
        (latest && cues.iter().all(|q| q["cueUs"] == cues[0]["cueUs"])).then_some(cues)
    });
    let cue = shown[0]["cueUs"].as_u64().unwrap();
    let lead_ms = (cue - asked) / 1_000;
    let hosts: Vec<i64> = shown.iter().map(|q| q["appliedHostTimeUs"].as_i64().unwrap()).collect();
    println!("  cue {lead_ms} ms after the request; switched within {} µs of each other", spread_us(&hosts));
    for q in &shown {
        assert_eq!(q["appliedShowTimeUs"], shown[0]["appliedShowTimeUs"], "the same column everywhere: {shown:?}");
        assert!(q["appliedShowTimeUs"].as_u64().unwrap() >= cue, "not before the cue: {q}");
    }
    for a in &addrs {
        assert_eq!(c.get_ok(*a, "/api/status")["mode"], json!(2));
    }

    // The poi whose timeline the others follow dies: nobody else moves.
    let clocks: Vec<Value> = addrs.iter().map(|a| clock(c, *a)).collect();
    let leader = clocks.iter().position(|v| v["foundedTimeline"] == v["timeline"]).expect("someone founded it");
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let rest_addrs: Vec<SocketAddr> = rest.iter().map(|i| addrs[*i]).collect();
    let kept = offsets(c, &rest_addrs);
    let kept_steps: Vec<usize> = rest.iter().map(|i| steps(&clocks[*i])).collect();
    lab.kill_hard(leader);
    let watch = |what: &str, secs: u64| {
        let mut worst = 0;
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let now = offsets(c, &rest_addrs);
            worst = worst.max(now.iter().zip(&kept).map(|(a, b)| a.abs_diff(*b)).max().unwrap());
            assert!(spread_us(&now) <= 5_000, "{what}: the others drifted apart: {now:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("  {what}: the others moved at most {worst} µs");
        // A jump would be a step: at least 50 ms, or a timeline seconds away.
        assert!(worst <= 5_000, "{what}: a poi's show time moved {worst} µs");
    };
    watch(&format!("poi {leader} killed"), 8);
    for (i, before) in rest.iter().zip(&kept_steps) {
        assert_eq!(steps(&clock(c, addrs[*i])), *before, "poi {i} stepped");
    }

    // It comes back on a new timeline of its own, behind theirs, and joins theirs alone.
    lab.restart(leader);
    note("restarted poi in step", wait_in_step(c, &addrs, Duration::from_secs(30)));
    watch("after the restart", 2);
    let back = clock(c, addrs[leader]);
    assert_eq!(steps(&back), 1, "one step onto the group's timeline: {back}");
    assert_eq!(back["timeline"], clock(c, addrs[rest[0]])["timeline"]);
    for (i, before) in rest.iter().zip(&kept_steps) {
        assert_eq!(steps(&clock(c, addrs[*i])), *before, "poi {i} stepped");
    }
    let (seen, dropped) = relay.counts();
    println!("  relay: {seen} datagrams, {dropped} dropped");
    assert!(dropped * 10 > seen, "the relay dropped too few to matter");
    note("test", started.elapsed());
}

#[test]
fn forged_replayed_and_malformed_datagrams_move_no_clock() {
    let relay = Relay::start(2, Faults { loss: 0.0, spike_chance: 0.0, ..Faults::wifi(4) });
    let mut lab = Lab::relayed(&relay, 2);
    let a = lab.start(0);
    let b = lab.start(1);
    let key = "hunter2hunter2";
    for addr in [a, b] {
        lab.client.post_ok(addr, "/api/device/config", &json!({"groupKey": key}));
        lab.client.set_key(addr, Some(key));
    }
    let c = &lab.client;
    let a_id: DeviceId = device_id(c, a).parse().unwrap();
    let b_id: DeviceId = device_id(c, b).parse().unwrap();
    // Answers and probes B sent A (under the key), kept until none is awaited any more.
    let group_key = ClockKey::derive(key.as_bytes(), &lab.group);
    let sent_to_a = |answers: bool| -> Vec<Vec<u8>> {
        relay
            .captured()
            .into_iter()
            .filter(|(from, to, d)| {
                (*from, *to) == (1, 0)
                    && match packet::decode(d, Some(&group_key), a_id) {
                        Ok(Packet::Answer { .. }) => answers,
                        Ok(Packet::Probe { .. }) => !answers,
                        Err(_) => false,
                    }
            })
            .map(|(_, _, d)| d)
            .take(20)
            .collect()
    };
    let (answers, probes) =
        wait_for("six answers and probes from B to A under the key", Duration::from_secs(60), || {
            let (answers, probes) = (sent_to_a(true), sent_to_a(false));
            (answers.len() >= 6 && probes.len() >= 6).then_some((answers, probes))
        });
    std::thread::sleep(Duration::from_secs(3));

    wait_in_step(c, &[a, b], Duration::from_secs(30));
    let before = clock(c, a);
    let kept = offset_us(&before);
    // The rogue sends from B's address (another port): A takes it for B's.
    let rogue = UdpSocket::bind(SocketAddr::new(relay.mirror(1).ip(), 0)).unwrap();
    let send = |bytes: &[u8]| {
        rogue.send_to(bytes, a).unwrap();
    };
    let state = Announce { boot: 1, timeline: u32::MAX, show: u64::MAX / 4, rate_ppb: 0, plan: None };
    let forged = Packet::Answer { from: b_id, nonce: 1, received: 5, held: 1, state };
    let wrong_key = ClockKey::derive(b"not the group's key", "x");
    let mut unauthenticated = 0;
    for bytes in [packet::encode(&forged, None, a_id), packet::encode(&forged, Some(&wrong_key), a_id)] {
        send(&bytes);
        unauthenticated += 1;
    }
    for len in [0, 1, 7, 33, 120] {
        send(&vec![0x5a; len]);
        unauthenticated += 1;
    }
    for answer in answers.iter().take(5) {
        send(&answer[..answer.len() - 1]);
        unauthenticated += 1;
    }
    let mut flipped = answers[0].clone();
    flipped[3] ^= 0x40;
    send(&flipped);
    unauthenticated += 1;
    let oversized = 3;
    for _ in 0..oversized {
        send(&[1u8; 300]);
    }
    for replayed in answers.iter().chain(&probes) {
        send(replayed);
    }
    // A fresh probe from a device that is not A's peer, however well formed, gets no answer.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let probe = Packet::Probe { from: DeviceId([2, 9, 9, 9, 9, 9]), nonce: 77, state };
    stranger.send_to(&packet::encode(&probe, Some(&group_key), a_id), a).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let after = clock(c, a);
    let grew = |field: &str| after["datagrams"][field].as_u64().unwrap() - before["datagrams"][field].as_u64().unwrap();
    println!(
        "  tried {unauthenticated} forged, malformed or truncated, {oversized} oversized, {} replayed answers, {} replayed probes",
        answers.len(),
        probes.len()
    );
    assert_eq!(grew("droppedUnauthenticated"), unauthenticated);
    assert_eq!(grew("droppedOversized"), oversized);
    assert_eq!(grew("droppedUnexpected"), answers.len() as u64, "every replayed answer is refused");
    assert_eq!(grew("droppedReplayed"), probes.len() as u64, "no replayed probe is answered");
    assert_eq!(grew("droppedStranger"), 1, "a probe from a stranger's address is not answered");
    assert!(offset_us(&after).abs_diff(kept) <= 1_000, "A's clock moved: {before} -> {after}");
    assert_eq!(steps(&after), steps(&before));
    assert_eq!(after["inStep"], json!(true));
}
