//! Node benchmarks, on real `povpoi node` processes over loopback HTTP (no mDNS):
//!
//! - change-to-visible latency between two poi (push-on-change) for a brightness change and
//!   for a 400x32 image (listed with its pixels on the other poi), p50/p99;
//! - bytes on the wire (HTTP headers included, counted by a TCP relay between the two) for
//!   a sync round when nothing changed, next to the existing system's round (its full
//!   listing both ways every 30 s), with 200 images stored;
//! - resident memory of a node holding 200 images.
//!
//! `cargo bench -p povpoi --bench node`; `POVPOI_BENCH_SAMPLES` sets the latency samples
//! (default 200). Numbers go to docs/BENCHMARKS.md; nothing here asserts a time.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Poi(Child);

impl Drop for Poi {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, addr: SocketAddr, peer: SocketAddr) -> Poi {
    let child = Command::new(env!("CARGO_BIN_EXE_povpoi"))
        .args(["node", "--no-mdns", "--group", "bench"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &addr.to_string(), "--peer", &peer.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Poi(child)
}

/// The benchmark's client; with a pairing key set on the poi it sends it as a bearer token.
struct Http(reqwest::Client, Option<String>);

impl Http {
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let request = self.0.request(method, url);
        match &self.1 {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
        let answer = self.request(reqwest::Method::GET, format!("http://{addr}{path}")).send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, addr: SocketAddr, path: &str) -> Value {
        serde_json::from_slice(&self.get(addr, path).await.1).unwrap()
    }

    async fn post(&self, addr: SocketAddr, path: &str, content_type: &str, body: Vec<u8>) -> Value {
        let answer = self
            .request(reqwest::Method::POST, format!("http://{addr}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let value: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn post_json(&self, addr: SocketAddr, path: &str, body: Value) -> Value {
        self.post(addr, path, "application/json", serde_json::to_vec(&body).unwrap()).await
    }

    async fn upload(&self, addr: SocketAddr, w: usize, h: usize, pixels: &[u8]) -> String {
        let boundary = "bench-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image_{w}x{h}.rgb\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(pixels);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let answer = self.post(addr, "/api/image", &format!("multipart/form-data; boundary={boundary}"), body).await;
        answer["id"].as_str().unwrap().to_string()
    }

    async fn wait_up(&self, addr: SocketAddr) {
        for _ in 0..1_000 {
            if self.0.get(format!("http://{addr}/api/sync/status")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node at {addr} did not start");
    }

    /// Polls until `check` holds, every 1 ms, for at most 10 s.
    async fn until(&self, what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A TCP relay that counts every byte both ways as it passes: what the peer protocol costs
/// on the wire (connections stay open between requests, so counting at close would be late).
async fn counting_relay(listen: SocketAddr, target: SocketAddr, counter: Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    loop {
        let Ok((inbound, _)) = listener.accept().await else { return };
        let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        tokio::spawn(pipe(in_read, out_write, counter.clone()));
        tokio::spawn(pipe(out_read, in_write, counter.clone()));
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{what:<44} n={:<4} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn pixels(n: usize, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i * 7 + n * 131) as u8).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` asks benches to list or smoke-test themselves.
    }
    let samples: usize = std::env::var("POVPOI_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let temp = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let http = Http(client.clone(), None);
    let (a, b, relay) = (free_addr(), free_addr(), free_addr());
    let wire_bytes = Arc::new(AtomicU64::new(0));
    tokio::spawn(counting_relay(relay, b, wire_bytes.clone()));
    // A reaches B only through the relay; B reaches A directly.
    let poi_a = start(&temp.path().join("a"), a, relay);
    let poi_b = start(&temp.path().join("b"), b, a);
    http.wait_up(a).await;
    http.wait_up(b).await;
    http.until("the two poi to meet", async || {
        let status = http.json(a, "/api/sync/status").await;
        status["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["online"] == json!(true)))
    })
    .await;

    println!("povpoi node benchmarks: two `povpoi node` processes on loopback, debug={}", cfg!(debug_assertions));
    report("brightness change on A visible on B", brightness_latency(&http, a, b, samples).await);
    report("400x32 image upload on A, pixels on B", image_latency(&http, a, b, 0..samples.min(100)).await);

    // Fill up to 200 images, let everything settle, then measure an idle round.
    let have = http.json(a, "/api/images").await["images"].as_array().unwrap().len();
    for i in have..200 {
        http.upload(a, 40, 32, &pixels(1_000 + i, 40, 32)).await;
    }
    http.until("200 images on B", async || {
        let list = http.json(b, "/api/images").await;
        let list = list["images"].as_array().unwrap();
        list.len() == 200 && list.iter().all(|i| i["available"] == json!(true))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = wire_bytes.load(Ordering::Relaxed);
    let answer = http.post_json(a, "/api/sync/execute", json!({ "peerId": "auto" })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_session = wire_bytes.load(Ordering::Relaxed) - before;
    assert_eq!(answer["itemsSynced"], json!(0), "the round was not idle: {answer}");

    let before = wire_bytes.load(Ordering::Relaxed);
    let (_, listing) = http.get(relay, "/api/sync/data").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listing_get = wire_bytes.load(Ordering::Relaxed) - before;
    let before = wire_bytes.load(Ordering::Relaxed);
    http.post(relay, "/api/sync/push", "application/json", listing.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listing_push = wire_bytes.load(Ordering::Relaxed) - before;
    let old_round = listing_get + listing_push;
    println!("idle sync session with 200 images stored      {idle_session} bytes on the wire (HTTP headers included)");
    println!(
        "existing system's round (GET listing + POST it) {old_round} bytes ({listing_get} + {listing_push}; listing body {} bytes), {:.0}x the povpoi session",
        listing.len(),
        old_round as f64 / idle_session as f64
    );
    println!(
        "per hour at the 30 s interval: povpoi {} bytes when digests are equal (the round is skipped), {} bytes if forced; existing system {} bytes",
        0,
        idle_session * 120,
        old_round * 120
    );
    let before = wire_bytes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let quiet = wire_bytes.load(Ordering::Relaxed) - before;
    println!(
        "120 s with nothing changing, A to B (peer given by address, probed when unseen for 40 s): {quiet} bytes, {} bytes/hour",
        quiet * 30
    );
    let rss_a = rss_kib(poi_a.0.id());
    let rss_b = rss_kib(poi_b.0.id());
    println!("node RSS with 200 images: A {rss_a} KiB, B {rss_b} KiB");

    // The same with a pairing key: every message signed, every body sealed.
    const KEY: &str = "benchmark pairing key";
    for addr in [a, b] {
        http.post_json(addr, "/api/device/config", json!({ "groupKey": KEY })).await;
    }
    let http = Http(client, Some(KEY.into()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    report("with a pairing key: brightness visible on B", brightness_latency(&http, a, b, samples).await);
    let keyed_images = 1_000..1_000 + samples.min(100);
    report("with a pairing key: 400x32 image, pixels on B", image_latency(&http, a, b, keyed_images).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = wire_bytes.load(Ordering::Relaxed);
    let answer = http.post_json(a, "/api/sync/execute", json!({ "peerId": "auto" })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(answer["itemsSynced"], json!(0), "the keyed round was not idle: {answer}");
    let keyed_idle = wire_bytes.load(Ordering::Relaxed) - before;
    println!(
        "with a pairing key: idle sync session, {} images stored   {keyed_idle} bytes on the wire ({idle_session} without)",
        200 + samples.min(100)
    );
}

/// Brightness set on A until B lists it, `samples` times, in ms.
async fn brightness_latency(http: &Http, a: SocketAddr, b: SocketAddr, samples: usize) -> Vec<f64> {
    let mut took = Vec::new();
    for i in 0..samples {
        let value = (i % 200 + 20) as u64;
        let t0 = Instant::now();
        http.post_json(a, "/api/brightness", json!({ "brightness": value })).await;
        http.until("brightness on B", async || {
            http.json(b, "/api/sync/data").await["settings"]["brightness"] == json!(value)
        })
        .await;
        took.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    took
}

/// A 400x32 image uploaded on A until B serves its pixels, once per seed, in ms.
async fn image_latency(http: &Http, a: SocketAddr, b: SocketAddr, seeds: std::ops::Range<usize>) -> Vec<f64> {
    let mut took = Vec::new();
    for i in seeds {
        let px = pixels(i, 400, 32);
        let t0 = Instant::now();
        let id = http.upload(a, 400, 32, &px).await;
        let path = format!("/api/images/{id}/pixels");
        http.until("image pixels on B", async || {
            let (status, body) = http.get(b, &path).await;
            status == 200 && body == px
        })
        .await;
        took.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    took
}
