//! `povpoi sim`: a troupe of poi on this computer. Each is a real `povpoi node` process on
//! 127.0.0.1 (consecutive ports, its own data dir); they know each other by address, so no
//! multicast is needed. `--demo` starts them with own clocks seconds apart, reports how
//! they came to play in unison, runs a scripted check of the sync, and exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Options of `povpoi sim`.
#[derive(clap::Args)]
pub struct Args {
    /// How many poi (2-16).
    #[arg(long, default_value_t = 2)]
    devices: u16,
    /// First HTTP port; poi i listens on PORT + i.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Folder for the poi's data dirs (default: a temporary folder removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Start the poi with own clocks 2.5 s apart and report how long they took to agree,
    /// how closely they agree, and how a cued mode change lines up; then upload an image on
    /// the first poi and change the brightness on the last, report how long each took to
    /// reach every poi, and stop.
    #[arg(long)]
    demo: bool,
}

/// How far apart the demo starts the poi's own clocks (`--clock-offset-ms`).
const DEMO_CLOCK_STEP_MS: u64 = 2_500;

/// The child processes; stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Troupe {
    children: Vec<Child>,
}

impl Drop for Troupe {
    fn drop(&mut self) {
        for child in &self.children {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.children {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    if !(2..=16).contains(&args.devices) {
        return Err(format!("--devices must be 2 to 16, not {}", args.devices));
    }
    if args.port.checked_add(args.devices).is_none() {
        return Err("--port is too high for that many poi".into());
    }
    let temp;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("povpoi-sim-").tempdir().map_err(|e| e.to_string())?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let addrs: Vec<SocketAddr> = (0..args.devices).map(|i| SocketAddr::from(([127, 0, 0, 1], args.port + i))).collect();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the povpoi executable: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    // Taken over before any poi starts: a SIGTERM's default action would end this process
    // without dropping the troupe, leaving its poi running.
    let mut stop = runtime.block_on(async { Stop::listen() })?;
    let mut troupe = Troupe { children: Vec::new() };
    for (i, addr) in addrs.iter().enumerate() {
        let offset_ms = if args.demo { i as u64 * DEMO_CLOCK_STEP_MS } else { 0 };
        troupe.children.push(spawn_poi(&exe, &root, i, *addr, &addrs, offset_ms)?);
    }
    let work = async {
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
        for (i, addr) in addrs.iter().enumerate() {
            wait_until_up(&http, *addr)
                .await
                .map_err(|e| format!("poi {} did not start: {e}; see {}", i + 1, log_path(&root, i).display()))?;
            println!("poi {} http://{addr}/  (data {})", i + 1, root.join(format!("poi-{}", i + 1)).display());
        }
        if args.demo {
            demo(&http, &addrs).await
        } else {
            println!("{} poi running; they sync with each other. Ctrl-C or SIGTERM stops them.", addrs.len());
            std::future::pending::<Result<(), String>>().await
        }
    };
    // The troupe stops (dropped) however this ends: done, failed, or told to stop.
    runtime.block_on(async {
        tokio::select! {
            done = work => done,
            signal = stop.wait() => {
                eprintln!("povpoi sim: {signal}: stopping the poi");
                Ok(())
            }
        }
    })
}

/// SIGINT and SIGTERM, either of which stops the troupe.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    /// Takes both signals over (call inside the runtime).
    fn listen() -> Result<Stop, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
        Ok(Stop { interrupt: listen(SignalKind::interrupt())?, terminate: listen(SignalKind::terminate())? })
    }

    /// Waits for the first of them; names it.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

fn log_path(root: &Path, i: usize) -> PathBuf {
    root.join(format!("poi-{}.log", i + 1))
}

fn spawn_poi(
    exe: &Path,
    root: &Path,
    i: usize,
    addr: SocketAddr,
    all: &[SocketAddr],
    clock_offset_ms: u64,
) -> Result<Child, String> {
    let log = std::fs::File::create(log_path(root, i)).map_err(|e| format!("cannot create the log: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--data-dir")
        .arg(root.join(format!("poi-{}", i + 1)))
        .args(["--listen", &addr.to_string(), "--name", &format!("Sim poi {}", i + 1), "--group", "sim"])
        .args(["--no-mdns", "--peer-timeout", "10"])
        .args(["--clock-offset-ms", &clock_offset_ms.to_string()]);
    for peer in all.iter().filter(|p| **p != addr) {
        command.args(["--peer", &peer.to_string()]);
    }
    command.stdout(Stdio::null()).stderr(log).spawn().map_err(|e| format!("cannot start poi {}: {e}", i + 1))
}

async fn get_json(http: &reqwest::Client, url: String) -> Result<Value, String> {
    let answer = http.get(url).send().await.map_err(|e| e.to_string())?;
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

async fn wait_until_up(http: &reqwest::Client, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match get_json(http, format!("http://{addr}/api/sync/status")).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls until `check` holds on every poi; returns the time it took.
async fn until_everywhere<F>(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    path: &str,
    check: F,
) -> Result<Duration, String>
where
    F: Fn(&Value) -> bool,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(10);
    for addr in addrs {
        loop {
            if let Ok(v) = get_json(http, format!("http://{addr}{path}")).await
                && check(&v)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{path} on {addr} did not converge within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(start.elapsed())
}

/// Every poi's show time minus its host's monotonic clock, read at one instant by each (µs): equal on
/// two poi of this machine when their show times agree.
async fn clock_offsets(http: &reqwest::Client, addrs: &[SocketAddr]) -> Result<Vec<(i64, Value)>, String> {
    let mut all = Vec::new();
    for addr in addrs {
        let v = get_json(http, format!("http://{addr}/api/clock")).await?;
        let show = v["showTimeUs"].as_i64().ok_or("no showTimeUs in /api/clock")?;
        let host = v["hostMonotonicUs"].as_i64().ok_or("no hostMonotonicUs in /api/clock")?;
        all.push((show - host, v));
    }
    Ok(all)
}

fn spread(offsets: &[(i64, Value)]) -> u64 {
    let values = offsets.iter().map(|(o, _)| *o);
    (values.clone().max().unwrap_or(0) - values.min().unwrap_or(0)) as u64
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The show clock part of the demo: agreement from clocks seconds apart, the spread, a cue.
async fn demo_clock(http: &reqwest::Client, addrs: &[SocketAddr]) -> Result<(), String> {
    let first = clock_offsets(http, addrs).await?;
    println!(
        "show clocks start {:.1} s apart (own clocks {} ms apart, each poi on a timeline of its own)",
        spread(&first) as f64 / 1e6,
        DEMO_CLOCK_STEP_MS
    );
    let start = Instant::now();
    loop {
        let now = clock_offsets(http, addrs).await?;
        let timeline = &now[0].1["timeline"];
        let agreed = now.iter().all(|(_, v)| v["timeline"] == *timeline && v["inStep"] == json!(true));
        if agreed && spread(&now) <= 1_000 {
            println!(
                "all {} poi on timeline {} within 1 ms after {} ms",
                addrs.len(),
                timeline.as_str().unwrap_or("?"),
                start.elapsed().as_millis()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "the show clocks did not agree within 30 s: {:?}",
                now.iter().map(|x| x.0).collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut spreads = Vec::new();
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(3) {
        spreads.push(spread(&clock_offsets(http, addrs).await?));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    spreads.sort_unstable();
    println!(
        "show-time spread over 3 s ({} samples): p50 {} µs, p95 {} µs, max {} µs",
        spreads.len(),
        percentile(&spreads, 0.5),
        percentile(&spreads, 0.95),
        spreads[spreads.len() - 1]
    );

    let pattern = serde_json::to_vec(&json!({"index": 0, "type": 4})).map_err(|e| e.to_string())?;
    http.post(format!("http://{}/api/pattern", addrs[0])).body(pattern).send().await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = get_json(http, format!("http://{}/api/clock", addrs[0])).await?["showTimeUs"].as_u64().unwrap_or(0);
    let body = serde_json::to_vec(&json!({"mode": 2, "index": 0})).map_err(|e| e.to_string())?;
    http.post(format!("http://{}/api/mode", addrs[0])).body(body).send().await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let cues = loop {
        let clocks = clock_offsets(http, addrs).await?;
        let cues: Vec<Value> = clocks.into_iter().map(|(_, v)| v["lastCue"].clone()).collect();
        let fresh =
            cues.iter().all(|q| q["cueUs"].as_u64().is_some_and(|c| c > asked) && q["cueUs"] == cues[0]["cueUs"]);
        if fresh {
            break cues;
        }
        if Instant::now() > deadline {
            return Err(format!("the cued mode change did not show on every poi within 10 s: {cues:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cue = cues[0]["cueUs"].as_u64().unwrap_or(0);
    let hosts: Vec<u64> = cues.iter().filter_map(|q| q["appliedHostTimeUs"].as_u64()).collect();
    let columns: std::collections::BTreeSet<String> = cues.iter().map(|q| q["appliedShowTimeUs"].to_string()).collect();
    println!(
        "mode change on poi 1 cued {} ms ahead: {} showed it from the same column ({} distinct), switching within {} µs of each other",
        (cue - asked) / 1_000,
        if columns.len() == 1 { "every poi" } else { "not every poi" },
        columns.len(),
        hosts.iter().max().unwrap_or(&0) - hosts.iter().min().unwrap_or(&0)
    );
    Ok(())
}

async fn demo(http: &reqwest::Client, addrs: &[SocketAddr]) -> Result<(), String> {
    demo_clock(http, addrs).await?;
    let (w, h) = (40usize, 32usize);
    let pixels: Vec<u8> = (0..w * h).flat_map(|i| [(i % w * 6) as u8, (i / w * 8) as u8, 128]).collect();
    let form = crate::upload::Form { name: None, filename: &format!("image_{w}x{h}.rgb"), pixels: &pixels };
    let (content_type, body) = form.encode();
    let first = addrs[0];
    let answer = http
        .post(format!("http://{first}/api/image"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let uploaded: Value =
        serde_json::from_slice(&answer.bytes().await.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("upload refused: {uploaded}"));
    }
    let id = uploaded["id"].as_str().ok_or("upload answer has no id")?.to_string();
    let image_ms = until_everywhere(http, addrs, "/api/sync/data", |v| {
        v["images"].as_array().is_some_and(|list| list.iter().any(|i| i["id"] == json!(id)))
    })
    .await?;
    for addr in addrs {
        let got = http.get(format!("http://{addr}/api/images/{id}/pixels")).send().await.map_err(|e| e.to_string())?;
        let got = got.bytes().await.map_err(|e| e.to_string())?;
        if got.as_ref() != pixels.as_slice() {
            return Err(format!("pixels on {addr} differ from the upload"));
        }
    }
    println!(
        "image {id} ({w}x{h}) uploaded on poi 1: listed on all {} poi after {} ms, pixels identical",
        addrs.len(),
        image_ms.as_millis()
    );

    let last = addrs[addrs.len() - 1];
    let body = serde_json::to_vec(&json!({"brightness": 77})).map_err(|e| e.to_string())?;
    http.post(format!("http://{last}/api/brightness")).body(body).send().await.map_err(|e| e.to_string())?;
    let settings_ms =
        until_everywhere(http, addrs, "/api/sync/data", |v| v["settings"]["brightness"] == json!(77)).await?;
    println!("brightness 77 set on poi {}: on all poi after {} ms", addrs.len(), settings_ms.as_millis());
    Ok(())
}
