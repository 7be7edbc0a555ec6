//! Show clock benchmarks on real `povpoi node` processes whose traffic crosses the tests'
//! userspace relay (tests/support/relay.rs): the Wi-Fi (2 ms base delay, asymmetric
//! paths, jitter, 20 % UDP loss, 100-1,000 ms spikes) and, as the baseline measured in the
//! same run, a quiet LAN (2 ms, nothing else).
//!
//! - three poi with own clocks seconds apart: time to agree (several starts), show-time
//!   spread p50/p95/p99 over a minute, cue alignment over 30 cued mode changes, bytes per
//!   peer per minute;
//! - holdover: two poi with crystals +50 and -50 ppm (`--clock-rate-ppm`) that agreed for two
//!   minutes, then 60 s cut off from each other, next to the same pair never synced;
//! - sixteen poi: time to agree, spread, and how long a change on one takes to be seen on all.
//!
//! Spread is read from `GET /api/clock` (`showTimeUs - hostMonotonicUs`, read at one instant by
//! each node; all nodes share this machine's clock). `cargo bench -p povpoi --bench clock`;
//! `POVPOI_BENCH_QUICK=1` shortens every phase. Numbers go to docs/BENCHMARKS.md; nothing
//! here asserts a time.

#[path = "../tests/support/relay.rs"]
#[allow(dead_code)]
mod relay;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay::{Faults, Relay};
use serde_json::{Value, json};

struct Poi(Child);

impl Drop for Poi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, relay: &Relay, i: usize, args: &[String]) -> Poi {
    let mut command = Command::new(env!("CARGO_BIN_EXE_povpoi"));
    command
        .args(["node", "--no-mdns", "--group", "bench", "--peer-timeout", "10"])
        .arg("--data-dir")
        .arg(dir.join(format!("poi-{i}")))
        .args(["--listen", &relay.node(i).to_string()])
        .args(args);
    for peer in relay.peers_of(i) {
        command.args(["--peer", &peer.to_string()]);
    }
    Poi(command.env("RUST_LOG", "warn").stdout(Stdio::null()).spawn().unwrap())
}

struct Http(reqwest::Client);

impl Http {
    async fn json(&self, addr: SocketAddr, path: &str) -> Option<Value> {
        let answer = self.0.get(format!("http://{addr}{path}")).send().await.ok()?;
        serde_json::from_slice(&answer.bytes().await.ok()?).ok()
    }

    async fn post(&self, addr: SocketAddr, path: &str, body: Value) {
        let answer = self.0.post(format!("http://{addr}{path}")).body(body.to_string()).send().await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }

    async fn clocks(&self, addrs: &[SocketAddr]) -> Vec<Value> {
        let mut all = Vec::new();
        for a in addrs {
            all.push(self.json(*a, "/api/clock").await.unwrap_or(Value::Null));
        }
        all
    }
}

fn offset(v: &Value) -> Option<i64> {
    Some(v["showTimeUs"].as_i64()? - v["hostMonotonicUs"].as_i64()?)
}

fn spread(clocks: &[Value]) -> Option<u64> {
    let all: Option<Vec<i64>> = clocks.iter().map(offset).collect();
    let all = all?;
    Some((all.iter().max()? - all.iter().min()?) as u64)
}

fn agreed(clocks: &[Value]) -> bool {
    clocks.iter().all(|c| c["timeline"] == clocks[0]["timeline"] && !c["timeline"].is_null())
        && spread(clocks).is_some_and(|s| s <= 1_000)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// Waits until every node answers, then until they agree; returns the time from the moment
/// all answered.
async fn time_to_agree(http: &Http, addrs: &[SocketAddr], limit: Duration) -> Option<Duration> {
    let up = Instant::now();
    while http.clocks(addrs).await.iter().any(Value::is_null) {
        assert!(up.elapsed() < Duration::from_secs(20), "the poi did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    while start.elapsed() < limit {
        if agreed(&http.clocks(addrs).await) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn spreads(http: &Http, addrs: &[SocketAddr], for_s: u64) -> Vec<u64> {
    let mut all = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(for_s) {
        if let Some(s) = spread(&http.clocks(addrs).await) {
            all.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    all.sort_unstable();
    all
}

fn spread_row(name: &str, s: &[u64]) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        s.len(),
        ms(percentile(s, 0.5)),
        ms(percentile(s, 0.95)),
        ms(percentile(s, 0.99)),
        ms(s[s.len() - 1])
    )
}

/// Datagram bytes (sent and received, with IP and UDP headers) of every node so far.
async fn clock_bytes(http: &Http, addrs: &[SocketAddr]) -> u64 {
    let mut total = 0;
    for c in http.clocks(addrs).await {
        total +=
            c["datagrams"]["bytesSent"].as_u64().unwrap_or(0) + c["datagrams"]["bytesReceived"].as_u64().unwrap_or(0);
    }
    total
}

/// Cued mode changes on random poi: for each, the spread of the host times at which every
/// poi showed it, and whether they all showed it from the same column.
async fn cues(http: &Http, addrs: &[SocketAddr], count: usize) -> (Vec<u64>, usize) {
    for slot in 0..18 {
        http.post(addrs[0], "/api/pattern", json!({"index": slot, "type": slot})).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut spreads = Vec::new();
    let mut same_column = 0;
    for n in 0..count {
        let on = addrs[n % addrs.len()];
        let asked = http.json(on, "/api/clock").await.unwrap()["showTimeUs"].as_u64().unwrap();
        http.post(on, "/api/mode", json!({"mode": 2, "index": n % 18})).await;
        let start = Instant::now();
        let shown = loop {
            let cues: Vec<Value> = http.clocks(addrs).await.into_iter().map(|c| c["lastCue"].clone()).collect();
            if cues.iter().all(|q| q["cueUs"].as_u64().is_some_and(|c| c > asked) && q["cueUs"] == cues[0]["cueUs"]) {
                break Some(cues);
            }
            if start.elapsed() > Duration::from_secs(5) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if let Some(cues) = shown {
            let hosts: Vec<u64> = cues.iter().map(|q| q["appliedHostTimeUs"].as_u64().unwrap()).collect();
            spreads.push(hosts.iter().max().unwrap() - hosts.iter().min().unwrap());
            same_column += usize::from(cues.iter().all(|q| q["appliedShowTimeUs"] == cues[0]["appliedShowTimeUs"]));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    spreads.sort_unstable();
    (spreads, same_column)
}

fn relay(n: usize, faults: Faults) -> Relay {
    std::thread::spawn(move || Relay::start(n, faults)).join().unwrap()
}

fn quiet(seed: u64) -> Faults {
    Faults { asymmetry_us: 0, jitter_mean_us: 0.0, loss: 0.0, spike_chance: 0.0, ..Faults::wifi(seed) }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let quick = std::env::var_os("POVPOI_BENCH_QUICK").is_some();
    let minute = if quick { 10 } else { 60 };
    let http = Http(reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap());
    let temp = tempfile::tempdir().unwrap();
    println!(
        "povpoi show clock benchmarks: node processes behind the userspace relay, debug={}",
        cfg!(debug_assertions)
    );

    // Three poi, own clocks seconds apart.
    println!("\n| network | samples | spread p50 | p95 | p99 | max |\n|---|---|---|---|---|---|");
    let mut agree_times = Vec::new();
    let mut converging = Vec::new();
    let mut rows = Vec::new();
    for (name, faults) in [("quiet LAN (baseline)", quiet(1)), ("issue's Wi-Fi", Faults::wifi(2))] {
        let relay = relay(3, faults);
        let dir = temp.path().join(name.replace(' ', "-"));
        let addrs: Vec<SocketAddr> = (0..3).map(|i| relay.node(i)).collect();
        let mut trials = Vec::new();
        for trial in 0..if quick { 2 } else { 5 } {
            let offsets = [0, 3_000 + 1_000 * trial, 9_000 + 2_000 * trial];
            let pois: Vec<Poi> = (0..3)
                .map(|i| {
                    let args = ["--clock-offset-ms".to_string(), offsets[i].to_string()];
                    start(&dir.join(format!("t{trial}")), &relay, i, &args)
                })
                .collect();
            let agreed = time_to_agree(&http, &addrs, Duration::from_secs(30)).await;
            trials.push(agreed);
            if trial == 0 {
                let before = clock_bytes(&http, &addrs).await;
                if let Some(took) = agreed {
                    // Every byte since the processes started, 3 poi x 2 peers.
                    converging.push(format!(
                        "{name}: {:.0} clock bytes per peer per second until they agreed ({} ms)",
                        before as f64 / 6.0 / took.as_secs_f64().max(0.5),
                        took.as_millis()
                    ));
                }
                let s = spreads(&http, &addrs, minute).await;
                let after = clock_bytes(&http, &addrs).await;
                // 3 poi x 2 peers; each byte counted by its sender and its receiver.
                let per_peer_minute = (after - before) as f64 / 6.0 / (minute as f64 / 60.0);
                rows.push(format!(
                    "{} (clock bytes per peer per minute, settled: {per_peer_minute:.0})",
                    spread_row(name, &s)
                ));
                if name.starts_with("issue") {
                    let (cue_spreads, same) = cues(&http, &addrs, if quick { 8 } else { 30 }).await;
                    println!(
                        "cue alignment on the Wi-Fi relay: {} of {} cues shown from the same column on all 3; switch spread p50 {} p95 {} max {}",
                        same,
                        cue_spreads.len(),
                        ms(percentile(&cue_spreads, 0.5)),
                        ms(percentile(&cue_spreads, 0.95)),
                        ms(cue_spreads[cue_spreads.len() - 1])
                    );
                }
            }
            drop(pois);
        }
        let mut ok: Vec<u64> = trials.iter().flatten().map(|d| d.as_millis() as u64).collect();
        ok.sort_unstable();
        agree_times.push(format!(
            "{name}: agreed (one timeline, within 1 ms) in {} of {} starts, after p50 {} ms, max {} ms",
            ok.len(),
            trials.len(),
            ok.get(ok.len() / 2).copied().unwrap_or(0),
            ok.last().copied().unwrap_or(0)
        ));
    }
    for row in &rows {
        println!("{row}");
    }
    for line in agree_times.iter().chain(&converging) {
        println!("{line}");
    }

    // Holdover: +50 / -50 ppm, agree two minutes, then 60 s apart; baseline never synced.
    let relay_h = relay(2, Faults::wifi(3));
    let addrs: Vec<SocketAddr> = (0..2).map(|i| relay_h.node(i)).collect();
    let rate = |i: usize| vec!["--clock-rate-ppm".to_string(), if i == 0 { "50" } else { "-50" }.to_string()];
    let pois: Vec<Poi> = (0..2).map(|i| start(&temp.path().join("holdover"), &relay_h, i, &rate(i))).collect();
    time_to_agree(&http, &addrs, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(if quick { 20 } else { 120 })).await;
    let together = spread(&http.clocks(&addrs).await).unwrap();
    relay_h.cut(0, true);
    tokio::time::sleep(Duration::from_secs(minute)).await;
    let apart = spread(&http.clocks(&addrs).await).unwrap();
    drop(pois);
    let relay_n = relay(2, quiet(4));
    relay_n.cut(0, true);
    let lone: Vec<Poi> = (0..2).map(|i| start(&temp.path().join("never"), &relay_n, i, &rate(i))).collect();
    let addrs_n: Vec<SocketAddr> = (0..2).map(|i| relay_n.node(i)).collect();
    while http.clocks(&addrs_n).await.iter().any(Value::is_null) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = http.clocks(&addrs_n).await;
    tokio::time::sleep(Duration::from_secs(minute)).await;
    let later = http.clocks(&addrs_n).await;
    let drift = |c: &[Value]| offset(&c[0]).unwrap() - offset(&c[1]).unwrap();
    let free = drift(&later).abs_diff(drift(&first));
    drop(lone);
    println!(
        "\nholdover at +50/-50 ppm: {} apart when cut off, {} after {minute} s cut off; never synced, the same crystals drift {} apart in {minute} s ({:.0}x)",
        ms(together),
        ms(apart),
        ms(free),
        free as f64 / apart.max(1) as f64
    );

    // Sixteen poi.
    let relay16 = relay(16, Faults::wifi(5));
    let addrs: Vec<SocketAddr> = (0..16).map(|i| relay16.node(i)).collect();
    let pois: Vec<Poi> = (0..16)
        .map(|i| {
            start(&temp.path().join("troupe"), &relay16, i, &["--clock-offset-ms".into(), (i * 2_500).to_string()])
        })
        .collect();
    let agreed16 = time_to_agree(&http, &addrs, Duration::from_secs(60)).await;
    let s16 = spreads(&http, &addrs, if quick { 5 } else { 20 }).await;
    let mut seen = Vec::new();
    for n in 0..if quick { 5 } else { 30 } {
        let value = 10 + n as u64;
        let on = addrs[(n * 7) % 16];
        let start = Instant::now();
        http.post(on, "/api/brightness", json!({"brightness": value})).await;
        let mut waiting: Vec<SocketAddr> = addrs.clone();
        while !waiting.is_empty() && start.elapsed() < Duration::from_secs(10) {
            let mut left = Vec::new();
            for a in waiting {
                if http.json(a, "/api/status").await.is_none_or(|s| s["brightness"] != json!(value)) {
                    left.push(a);
                }
            }
            waiting = left;
        }
        seen.push(start.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    seen.sort_unstable();
    let (cue16, same16) = cues(&http, &addrs, if quick { 3 } else { 10 }).await;
    drop(pois);
    println!(
        "\n16 poi on the Wi-Fi relay: agreed after {} ms; {}\n  a brightness change seen on all 16 after p50 {} ms, p99 {} ms, max {} ms ({} changes)\n  cues: {} of {} from the same column on all 16, switch spread p50 {} max {}",
        agreed16.map_or(-1, |d| d.as_millis() as i64),
        spread_row("spread", &s16),
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        seen[seen.len() - 1],
        seen.len(),
        same16,
        cue16.len(),
        ms(percentile(&cue16, 0.5)),
        ms(cue16[cue16.len() - 1])
    );
}
