//! `povpoi sim`: a troupe of poi on this computer. Each is a real `povpoi node` process on
//! 127.0.0.1 (consecutive ports, its own data dir); they know each other by address, so no
//! multicast is needed. `--demo` runs a scripted check and exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Options of `povpoi sim`.
#[derive(clap::Args)]
pub struct Args {
    /// How many poi (2-8).
    #[arg(long, default_value_t = 2)]
    devices: u16,
    /// First HTTP port; poi i listens on PORT + i.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Folder for the poi's data dirs (default: a temporary folder removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Upload an image on the first poi and change the brightness on the last, report how
    /// long each took to reach every poi, then stop.
    #[arg(long)]
    demo: bool,
}

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
    if !(2..=8).contains(&args.devices) {
        return Err(format!("--devices must be 2 to 8, not {}", args.devices));
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
    let mut troupe = Troupe { children: Vec::new() };
    for (i, addr) in addrs.iter().enumerate() {
        troupe.children.push(spawn_poi(&exe, &root, i, *addr, &addrs)?);
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
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
            println!("{} poi running; they sync with each other. Ctrl-C stops them.", addrs.len());
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
        }
    })
}

fn log_path(root: &Path, i: usize) -> PathBuf {
    root.join(format!("poi-{}.log", i + 1))
}

fn spawn_poi(exe: &Path, root: &Path, i: usize, addr: SocketAddr, all: &[SocketAddr]) -> Result<Child, String> {
    let log = std::fs::File::create(log_path(root, i)).map_err(|e| format!("cannot create the log: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--data-dir")
        .arg(root.join(format!("poi-{}", i + 1)))
        .args(["--listen", &addr.to_string(), "--name", &format!("Sim poi {}", i + 1), "--group", "sim"])
        .args(["--no-mdns", "--peer-timeout", "10"]);
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

/// A multipart body with one file, as the existing web app sends `POST /api/image`.
pub fn multipart_upload(filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "povpoi-sim-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn demo(http: &reqwest::Client, addrs: &[SocketAddr]) -> Result<(), String> {
    let (w, h) = (40usize, 32usize);
    let pixels: Vec<u8> = (0..w * h).flat_map(|i| [(i % w * 6) as u8, (i / w * 8) as u8, 128]).collect();
    let (content_type, body) = multipart_upload(&format!("image_{w}x{h}.rgb"), &pixels);
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
