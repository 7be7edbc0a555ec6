//! Kills real `povpoi node` processes with SIGKILL at random moments (mid-upload,
//! mid-sync) many times and checks after each restart that the store loads, that every
//! acknowledged change survived, and that every image listed has its exact pixels.
//!
//! Loopback only, no mDNS. `POVPOI_CRASH_ROUNDS` sets the number of kills (default 25),
//! `POVPOI_CRASH_SEED` the random seed.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Poi {
    child: Child,
}

impl Poi {
    fn start(dir: &Path, addr: SocketAddr, peer: SocketAddr, log: &Path) -> Poi {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_povpoi"))
            .args(["node", "--no-mdns", "--group", "crash", "--peer-timeout", "3"])
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &addr.to_string(), "--peer", &peer.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Poi { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Poi {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Http {
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http { client: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap() }
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
        let answer = self.client.get(format!("http://{addr}{path}")).send().await.map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        Ok((status, answer.bytes().await.map_err(|e| e.to_string())?.to_vec()))
    }

    async fn get_json(&self, addr: SocketAddr, path: &str) -> Result<Value, String> {
        let (_, body) = self.get(addr, path).await?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    async fn post(&self, addr: SocketAddr, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value, String> {
        let answer = self
            .client
            .post(format!("http://{addr}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if status.is_success() { Ok(value) } else { Err(format!("{status}: {value}")) }
    }

    async fn upload(&self, addr: SocketAddr, name: &str, w: usize, h: usize, pixels: &[u8]) -> Result<Value, String> {
        let boundary = "crash-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image_{w}x{h}.rgb\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(pixels);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.post(addr, "/api/image", &format!("multipart/form-data; boundary={boundary}"), body).await
    }

    async fn wait_up(&self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.get_json(addr, "/api/sync/status").await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("node at {addr} did not come up: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// The pixels of image number `n`: distinct per image, so a mix-up is caught.
fn pixels(n: u32, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i as u32).wrapping_mul(31).wrapping_add(n * 97) as u8).collect()
}

/// What the workload was told succeeded.
#[derive(Default)]
struct Acked {
    /// Image name -> (width, height, pixel seed), for uploads answered 200.
    images: BTreeMap<String, (usize, usize, u32)>,
    /// Highest brightness answered 200 (values only increase).
    brightness: Option<u8>,
    /// Every image name ever attempted, answered or not.
    attempted: BTreeMap<String, (usize, usize, u32)>,
}

/// Uploads images (and raises the brightness, with `settings`) on `target` until it stops answering.
async fn workload(http: Arc<Http>, target: SocketAddr, round: u32, acked: Arc<Mutex<Acked>>, settings: bool) {
    for step in 0..1_000u32 {
        let n = round * 1_000 + step;
        if settings && step % 3 == 2 {
            let value = ((round * 7 + step) % 200 + 20).max(acked.lock().unwrap().brightness.unwrap_or(0) as u32 + 1);
            let value = value.min(255) as u8;
            let body = serde_json::to_vec(&json!({ "brightness": value })).unwrap();
            match http.post(target, "/api/brightness", "application/json", body).await {
                Ok(_) => acked.lock().unwrap().brightness = Some(value),
                Err(_) => return,
            }
        } else {
            let (w, h) = if step % 2 == 0 { (400, 64) } else { (37, 32) };
            let name = format!("crash-{n}");
            acked.lock().unwrap().attempted.insert(name.clone(), (w, h, n));
            match http.upload(target, &name, w, h, &pixels(n, w, h)).await {
                Ok(_) => {
                    acked.lock().unwrap().images.insert(name, (w, h, n));
                }
                Err(_) => return,
            }
        }
    }
}

/// Checks the restarted node against what was acknowledged before the kill.
async fn check_store(http: &Http, addr: SocketAddr, acked: &Acked, round: u32) {
    let listing = http.get_json(addr, "/api/images").await.unwrap();
    let images = listing["images"].as_array().expect("image list").clone();
    let listed: BTreeMap<String, Value> =
        images.iter().map(|i| (i["name"].as_str().unwrap().to_string(), i.clone())).collect();
    for name in acked.images.keys() {
        assert!(listed.contains_key(name), "round {round}: acknowledged upload {name} lost after SIGKILL");
    }
    for (name, image) in &listed {
        let &(w, h, n) = acked.attempted.get(name).unwrap_or_else(|| panic!("round {round}: unknown image {name}"));
        assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(w as u64), Some(h as u64)));
        let id = image["id"].as_str().unwrap();
        let (status, body) = http.get(addr, &format!("/api/images/{id}/pixels")).await.unwrap();
        // Pixels of an image pulled from the peer may still be on their way (409); those of
        // an upload this poi acknowledged itself were on its disk before the answer.
        if status == 200 {
            assert!(body == pixels(n, w, h), "round {round}: pixels of {name} differ after SIGKILL");
        } else if acked.images.contains_key(name) {
            panic!("round {round}: pixels of acknowledged upload {name} lost after SIGKILL (status {status})");
        } else {
            assert_eq!(status, 409, "round {round}: pixels of {name}: status {status}");
        }
    }
    let data = http.get_json(addr, "/api/sync/data").await.unwrap();
    if let Some(b) = acked.brightness {
        let now = data["settings"]["brightness"].as_u64().unwrap();
        assert!(now >= b as u64, "round {round}: brightness {now} is older than the acknowledged {b}");
    }
}

/// Files of a save cut short by the kill (the next start clears them).
fn temp_files(dir: &Path) -> usize {
    ["library", "library/blobs"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

/// Files the store found damaged and set aside: a crash must never leave one.
fn quarantined(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("library/quarantine"))
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// What B must hold: what B acknowledged; images acknowledged by A may or may not have
/// reached B before a kill, so they only count as attempted.
fn expected_on_b(acked_b: &Mutex<Acked>, acked_a: &Mutex<Acked>) -> Acked {
    let on_b = acked_b.lock().unwrap();
    let mut attempted = on_b.attempted.clone();
    attempted.extend(acked_a.lock().unwrap().attempted.clone());
    Acked { images: on_b.images.clone(), attempted, brightness: on_b.brightness }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_acknowledged_changes() {
    let rounds: u32 = std::env::var("POVPOI_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let seed: u64 = std::env::var("POVPOI_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let temp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (temp.path().join("a"), temp.path().join("b"));
    let (a, b) = (free_addr(), free_addr());
    let log = temp.path().join("nodes.log");
    let http = Arc::new(Http::new());
    // A stays up and receives uploads too, so B is also killed while pulling from A.
    let _a = Poi::start(&a_dir, a, b, &log);
    http.wait_up(a).await.unwrap();
    let acked_b = Arc::new(Mutex::new(Acked::default()));
    let acked_a = Arc::new(Mutex::new(Acked::default()));
    let mut kills_with_work_in_flight = 0;
    let mut kills_mid_write = 0;
    for round in 0..rounds {
        let mut poi_b = Poi::start(&b_dir, b, a, &log);
        http.wait_up(b)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", std::fs::read_to_string(&log).unwrap()));
        check_store(&http, b, &expected_on_b(&acked_b, &acked_a), round).await;
        // Atomic writes never leave a torn file behind: one would be found damaged at start.
        assert_eq!(quarantined(&b_dir), Vec::<String>::new(), "round {round}: a crash left a damaged file");
        let on_b = tokio::spawn(workload(http.clone(), b, round * 2, acked_b.clone(), true));
        let on_a = tokio::spawn(workload(http.clone(), a, round * 2 + 1, acked_a.clone(), false));
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        if !on_b.is_finished() {
            kills_with_work_in_flight += 1;
        }
        poi_b.kill();
        if temp_files(&b_dir) > 0 {
            kills_mid_write += 1;
        }
        on_a.abort();
        let _ = on_b.await;
        let _ = on_a.await;
    }
    // Finally both must converge: everything A acknowledged is on B with its pixels.
    let _poi_b = Poi::start(&b_dir, b, a, &log);
    http.wait_up(b).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected: Vec<String> = acked_a.lock().unwrap().images.keys().cloned().collect();
    loop {
        let listing = http.get_json(b, "/api/images").await.unwrap();
        let names: Vec<&str> =
            listing["images"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
        let all_available = listing["images"].as_array().unwrap().iter().all(|i| i["available"] == json!(true));
        if expected.iter().all(|n| names.contains(&n.as_str())) && all_available {
            break;
        }
        assert!(Instant::now() < deadline, "B did not converge with A after the last restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_store(&http, b, &expected_on_b(&acked_b, &acked_a), rounds).await;
    println!(
        "{rounds} SIGKILLs ({kills_with_work_in_flight} with requests in flight, {kills_mid_write} in the middle of writing a file); {} uploads acknowledged on B, {} on A; all survived",
        acked_b.lock().unwrap().images.len(),
        acked_a.lock().unwrap().images.len()
    );
    assert!(kills_with_work_in_flight > rounds / 2, "most kills must hit a node that is busy");
}
