//! Harness of the multi-process tests: real `povpoi node` processes talking real HTTP, on
//! loopback or inside private network namespaces where they find each other with real mDNS.
//!
//! Network safety: nothing here touches the root namespace's interfaces. A [`Netns`] is a
//! "switch" namespace holding bridges `br0`, `br1`, ... and one namespace per node, joined to
//! a bridge by a veth pair created inside those namespaces. Node processes run in their
//! namespace (`ip netns exec`); the test's HTTP client runs on a thread that entered the
//! switch namespace, where each bridge has the address `.254`. Deleting the namespaces
//! removes everything (the veths die with them); a [`Netns`] does that when dropped, and
//! namespaces left by an earlier test run that was killed are removed on the next start.

#![allow(dead_code)]

pub mod relay;

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `povpoi` binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_povpoi");
/// Peer timeout given to every node (seconds).
pub const PEER_TIMEOUT_S: u64 = 5;
/// Port the nodes listen on inside namespaces.
pub const NETNS_PORT: u16 = 8080;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process.
pub fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `check` every 100 ms until it gives a value; panics after `timeout` (or 10,000 tries).
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    for _ in 0..10_000 {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {:?} waiting until {what}", start.elapsed());
}

/// Polls `check` until it holds; panics after `timeout`. Returns the time it took.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    wait_for(what, timeout, || check().then_some(()));
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// HTTP client

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// The body as JSON (a string value when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into()))
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

struct Job {
    method: reqwest::Method,
    url: String,
    content_type: Option<String>,
    bearer: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    reply: mpsc::Sender<Result<Reply, String>>,
}

/// A blocking HTTP client for the tests. It runs its requests on a thread of its own, which
/// first enters a network namespace when asked to, so the test (in the root namespace) can
/// reach nodes inside namespaces.
pub struct Client {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Pairing keys sent as bearer tokens, per node, as a key holder's browser would.
    keys: std::sync::Mutex<std::collections::HashMap<SocketAddr, String>>,
}

impl Client {
    /// A client in the test's own namespace (for loopback nodes).
    pub fn loopback() -> Client {
        Client::start(None).expect("HTTP client")
    }

    /// A client whose requests leave from the network namespace `netns`.
    pub fn in_netns(netns: &str) -> Result<Client, String> {
        Client::start(Some(netns.to_string()))
    }

    fn start(netns: Option<String>) -> Result<Client, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                if let Some(netns) = &netns {
                    let path = format!("/var/run/netns/{netns}");
                    let entered = File::open(&path).map_err(|e| format!("cannot open {path}: {e}")).and_then(|f| {
                        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(|e| format!("setns {path}: {e}"))
                    });
                    if let Err(e) = entered {
                        let _ = ready.send(Err(e));
                        return;
                    }
                }
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                let http = match reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(30))
                    // Below the node's keep-alive limit (10 s), as a browser's retry would:
                    // this client's runtime runs only during a request, so it would not see
                    // the node close an idle connection before reusing it.
                    .pool_idle_timeout(Duration::from_secs(5))
                    .build()
                {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready.send(Err(format!("reqwest: {e}")));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(job) = queue.recv() {
                    let result = runtime.block_on(async {
                        let mut call = http.request(job.method, &job.url);
                        if let Some(ct) = &job.content_type {
                            call = call.header("content-type", ct);
                        }
                        if let Some(key) = &job.bearer {
                            call = call.bearer_auth(key);
                        }
                        for (name, value) in &job.headers {
                            call = call.header(name, value);
                        }
                        if !job.body.is_empty() {
                            call = call.body(job.body);
                        }
                        let answer = call.send().await.map_err(|e| format!("{}: {e}", job.url))?;
                        let status = answer.status().as_u16();
                        let headers = answer
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect();
                        let body = answer.bytes().await.map_err(|e| format!("{}: body: {e}", job.url))?;
                        Ok(Reply { status, body: body.to_vec(), headers })
                    });
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| format!("cannot start the client thread: {e}"))?;
        let mut client = Client { jobs: Some(jobs), thread: Some(thread), keys: Default::default() };
        match started.recv() {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                client.jobs = None;
                Err("client thread died".into())
            }
        }
    }

    /// From now on, requests to `addr` carry `key` (None: no key).
    pub fn set_key(&self, addr: SocketAddr, key: Option<&str>) {
        let mut keys = self.keys.lock().unwrap();
        match key {
            Some(key) => keys.insert(addr, key.to_string()),
            None => keys.remove(&addr),
        };
    }

    /// Any request; Err on a transport error.
    pub fn call(
        &self,
        method: reqwest::Method,
        addr: SocketAddr,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        self.call_with(method, addr, path, content_type, &[], body)
    }

    /// Any request with extra headers (`If-None-Match`...); Err on a transport error.
    pub fn call_with(
        &self,
        method: reqwest::Method,
        addr: SocketAddr,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            method,
            url: format!("http://{addr}{path}"),
            content_type: content_type.map(str::to_string),
            bearer: self.keys.lock().unwrap().get(&addr).cloned(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body,
            reply,
        };
        self.jobs.as_ref().expect("client open").send(job).map_err(|_| "client thread gone".to_string())?;
        answer.recv().map_err(|_| "client thread gone".to_string())?
    }

    /// GET; Err on a transport error.
    pub fn try_get(&self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        self.call(reqwest::Method::GET, addr, path, None, Vec::new())
    }

    /// POST raw bytes; Err on a transport error.
    pub fn try_post(&self, addr: SocketAddr, path: &str, content_type: &str, body: Vec<u8>) -> Result<Reply, String> {
        self.call(reqwest::Method::POST, addr, path, Some(content_type), body)
    }

    /// GET a JSON answer; Err on a transport error.
    pub fn try_get_json(&self, addr: SocketAddr, path: &str) -> Result<(u16, Value), String> {
        self.try_get(addr, path).map(|r| (r.status, r.json()))
    }

    /// GET a JSON answer (panics on a transport error).
    pub fn get_json(&self, addr: SocketAddr, path: &str) -> (u16, Value) {
        self.try_get_json(addr, path).unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
    }

    /// GET raw bytes (panics on a transport error).
    pub fn get_bytes(&self, addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
        let r = self.try_get(addr, path).unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
        (r.status, r.body)
    }

    /// POST a JSON body, JSON answer (panics on a transport error).
    pub fn post_json(&self, addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .try_post(addr, path, "application/json", serde_json::to_vec(body).unwrap())
            .unwrap_or_else(|e| panic!("POST {path} on {addr}: {e}"));
        (r.status, r.json())
    }

    /// POST with an empty body, JSON answer.
    pub fn post_empty(&self, addr: SocketAddr, path: &str) -> (u16, Value) {
        let r = self
            .call(reqwest::Method::POST, addr, path, None, Vec::new())
            .unwrap_or_else(|e| panic!("POST {path} on {addr}: {e}"));
        (r.status, r.json())
    }

    /// A request with a JSON body (PATCH, PUT, ...), JSON answer (panics on a transport error).
    pub fn send_json(&self, method: reqwest::Method, addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .call(method.clone(), addr, path, Some("application/json"), serde_json::to_vec(body).unwrap())
            .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
        (r.status, r.json())
    }

    /// POST a JSON body and insist on a 2xx answer.
    pub fn post_ok(&self, addr: SocketAddr, path: &str, body: &Value) -> Value {
        let (status, answer) = self.post_json(addr, path, body);
        assert!((200..300).contains(&status), "POST {path} {body} on {addr} answered {status}: {answer}");
        answer
    }

    /// GET JSON and insist on 200.
    pub fn get_ok(&self, addr: SocketAddr, path: &str) -> Value {
        let (status, answer) = self.get_json(addr, path);
        assert_eq!(status, 200, "GET {path} on {addr}: {answer}");
        answer
    }

    /// `POST /api/image` as the web app sends it: multipart, one file `image_WxH.rgb`.
    pub fn upload_image(&self, addr: SocketAddr, w: usize, h: usize, pixels: &[u8]) -> (u16, Value) {
        self.upload_named(addr, None, w, h, pixels)
    }

    /// Like [`Client::upload_image`], with a `name` form field before the file when given.
    pub fn upload_named(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        w: usize,
        h: usize,
        pixels: &[u8],
    ) -> (u16, Value) {
        let (content_type, body) = multipart(name, &format!("image_{w}x{h}.rgb"), pixels);
        let r = self
            .try_post(addr, "/api/image", &content_type, body)
            .unwrap_or_else(|e| panic!("POST /api/image on {addr}: {e}"));
        (r.status, r.json())
    }

    /// Uploads and returns the new image's id (panics unless accepted).
    pub fn upload_ok(&self, addr: SocketAddr, name: Option<&str>, w: usize, h: usize, pixels: &[u8]) -> String {
        let (status, answer) = self.upload_named(addr, name, w, h, pixels);
        assert!((200..300).contains(&status), "upload {w}x{h} on {addr} answered {status}: {answer}");
        answer["id"].as_str().unwrap_or_else(|| panic!("upload answer without id: {answer}")).to_string()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.jobs = None; // ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A multipart body: an optional `name` field, then one file.
pub fn multipart(name: Option<&str>, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "povpoi-test-boundary-5c2e91";
    let mut body = Vec::new();
    if let Some(name) = name {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Distinct, deterministic RGB pixels for image number `seed` (every byte value occurs).
pub fn pixels(seed: u32, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(seed % 31 + 1).wrapping_add(seed * 97) as u8)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a node holds

/// `GET /api/images` as a list (accepts `{images:[...]}` or a bare list).
pub fn images(client: &Client, addr: SocketAddr) -> Vec<Value> {
    let v = client.get_ok(addr, "/api/images");
    match v {
        Value::Array(list) => list,
        Value::Object(mut o) => match o.remove("images") {
            Some(Value::Array(list)) => list,
            other => panic!("GET /api/images on {addr}: no images list: {other:?}"),
        },
        other => panic!("GET /api/images on {addr}: {other}"),
    }
}

/// The image `id` as listed, if it is.
pub fn image(client: &Client, addr: SocketAddr, id: &str) -> Option<Value> {
    images(client, addr).into_iter().find(|i| i["id"] == json!(id))
}

/// Whether the image is listed and its pixels are served and equal `expected`.
pub fn has_pixels(client: &Client, addr: SocketAddr, id: &str, expected: &[u8]) -> bool {
    match client.try_get(addr, &format!("/api/images/{id}/pixels")) {
        Ok(r) if r.status == 200 => {
            assert!(
                r.body == expected,
                "pixels of {id} on {addr} differ from the upload ({} bytes served)",
                r.body.len()
            );
            true
        }
        _ => false,
    }
}

/// `GET /api/sync/status`.
pub fn status(client: &Client, addr: SocketAddr) -> Value {
    client.get_ok(addr, "/api/sync/status")
}

/// The node's device id.
pub fn device_id(client: &Client, addr: SocketAddr) -> String {
    status(client, addr)["deviceId"].as_str().expect("deviceId").to_string()
}

/// The peer `peer_id` as `addr` lists it, when online.
pub fn online_peer(client: &Client, addr: SocketAddr, peer_id: &str) -> Option<Value> {
    let s = client.try_get_json(addr, "/api/sync/status").ok()?.1;
    s["peers"].as_array()?.iter().find(|p| p["deviceId"] == json!(peer_id) && p["online"] == json!(true)).cloned()
}

/// `GET /api/sync/data` without its device fields (equal on converged poi).
pub fn library(client: &Client, addr: SocketAddr) -> Value {
    let mut v = client.get_ok(addr, "/api/sync/data");
    let o = v.as_object_mut().expect("sync data object");
    o.remove("deviceId");
    o.remove("deviceName");
    if let Some(Value::Array(images)) = o.get_mut("images") {
        images.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    }
    v
}

/// The library digest a node advertises.
pub fn digest(client: &Client, addr: SocketAddr) -> Option<String> {
    let (_, s) = client.try_get_json(addr, "/api/sync/status").ok()?;
    s["libraryDigest"].as_str().map(str::to_string)
}

/// The pattern in `slot` as `/api/sync/data` lists it.
pub fn pattern_type(data: &Value, slot: u64) -> Option<u64> {
    data["patterns"].as_array()?.iter().find(|p| p["id"] == json!(slot)).and_then(|p| p["type"].as_u64())
}

// ---------------------------------------------------------------------------------------------
// Node processes

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Label for logs (and `--name` unless `plain`).
    pub label: String,
    /// `--listen`.
    pub listen: SocketAddr,
    /// Where the test reaches the API (`listen` unless that is 0.0.0.0).
    pub api: SocketAddr,
    /// Namespace to run in (None: the test's own, loopback only).
    pub netns: Option<String>,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Where stderr goes (appended across restarts).
    pub log: PathBuf,
    /// `--group`.
    pub group: Option<String>,
    /// Pass `--name label`.
    pub named: bool,
    /// `--no-mdns`.
    pub no_mdns: bool,
    /// `--peer` addresses.
    pub peers: Vec<SocketAddr>,
    /// More arguments (`--clock-offset-ms`...).
    pub args: Vec<String>,
    /// Run `povpoi board` (the board firmware's application, RAM flash) instead of
    /// `povpoi node`: no data directory, no mDNS.
    pub board: bool,
}

/// A running `povpoi node` process. Dropping it kills it (and prints its log when the test
/// is failing).
pub struct Poi {
    /// How it was started (restart uses the same).
    pub spec: NodeSpec,
    child: Option<Child>,
    starts: u32,
}

impl Poi {
    /// Spawns the process and waits (≤ 20 s) until its API answers.
    pub fn start(spec: NodeSpec, client: &Client) -> Poi {
        let mut poi = Poi { spec, child: None, starts: 0 };
        poi.spawn();
        poi.wait_ready(client);
        poi
    }

    /// The API address (as the test reaches it).
    pub fn addr(&self) -> SocketAddr {
        self.spec.api
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.spec.label);
        self.starts += 1;
        let s = &self.spec;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&s.log).expect("log file");
        let _ = std::io::Write::write_all(
            &mut log,
            format!("===== start #{} of {} =====\n", self.starts, s.label).as_bytes(),
        );
        let mut command = match &s.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, EXE]);
                c
            }
            None => Command::new(EXE),
        };
        if s.board {
            command.arg("board");
        } else {
            command.arg("node").arg("--data-dir").arg(&s.data_dir);
        }
        command.args(["--listen", &s.listen.to_string()]);
        command.args(["--peer-timeout", &PEER_TIMEOUT_S.to_string()]);
        if s.named {
            command.args(["--name", &s.label]);
        }
        if let Some(group) = &s.group {
            command.args(["--group", group]);
        }
        if s.no_mdns && !s.board {
            command.arg("--no-mdns");
        }
        for peer in &s.peers {
            command.args(["--peer", &peer.to_string()]);
        }
        command.args(&s.args);
        command.env("RUST_LOG", "povpoi_node=debug,info").env_remove("RUST_BACKTRACE");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", s.label));
        self.child = Some(child);
    }

    fn wait_ready(&mut self, client: &Client) {
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = client.try_get_json(self.addr(), "/api/sync/status") {
                return;
            }
            if let Some(Ok(Some(exit))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!("{} exited while starting ({exit}):\n{}", self.spec.label, self.log_tail(60));
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("{} did not answer within 20 s:\n{}", self.spec.label, self.log_tail(60));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; waits ≤ 10 s and asserts the node exited cleanly (status 0).
    pub fn stop(&mut self) {
        let status = self.terminate(Duration::from_secs(10));
        match status {
            Some(status) => assert!(
                status.success(),
                "{} did not stop cleanly on SIGTERM: {status}\n{}",
                self.spec.label,
                self.log_tail(40)
            ),
            None => panic!("{} did not stop within 10 s of SIGTERM:\n{}", self.spec.label, self.log_tail(40)),
        }
    }

    /// SIGTERM and wait up to `grace`; returns the exit status, or None if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts it again with the same data dir and arguments.
    pub fn restart(&mut self, client: &Client) {
        self.spawn();
        self.wait_ready(client);
    }

    /// The whole log.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.spec.log) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        let mut out =
            format!("--- last {} lines of {} ({}) ---\n", all.len() - from, self.spec.label, self.spec.log.display());
        for line in &all[from..] {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

impl Drop for Poi {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(150));
        }
        self.kill_hard();
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Namespaces of earlier runs of these tests whose process is gone (a killed `cargo test`):
/// removed so they do not pile up. Only names of the exact form this harness makes.
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("pvt") else { continue };
        let Some((pid, tail)) = rest.split_once('x') else { continue };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || tail.is_empty() {
            continue;
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_namespace_processes(name);
        let _ = ip(&["netns", "del", name]);
    }
}

/// SIGKILLs the processes inside one of our namespaces (only our nodes run there).
fn kill_namespace_processes(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// One node's place in the lab network.
#[derive(Clone, Debug)]
pub struct NodeNet {
    /// Its namespace.
    pub ns: String,
    /// Bridges it is linked to, in the order of its interfaces eth0, eth1, ...
    pub bridges: Vec<usize>,
    /// Its address on each of those bridges.
    pub ips: Vec<Ipv4Addr>,
}

/// Private network: a switch namespace with bridges and node namespaces linked to them.
pub struct Netns {
    /// Name prefix of every namespace (`pvt<pid>x<n>`).
    pub prefix: String,
    /// The switch namespace (bridges, the test client).
    pub switch: String,
    /// The nodes.
    pub nodes: Vec<NodeNet>,
    subnet_third: u8,
    created: Vec<String>,
}

impl Netns {
    /// `bridges` bridges; node i is linked to the bridges in `links[i]`. Err only when no
    /// namespace can be made here (the tests skip then); panics on later failures.
    pub fn new(bridges: usize, links: &[&[usize]]) -> Result<Netns, String> {
        assert!((1..=4).contains(&bridges) && links.len() <= 50);
        remove_stale_namespaces();
        let prefix = format!("pvt{}x{}", std::process::id(), next_id());
        let third = (std::process::id() % 250) as u8;
        let mut net = Netns {
            prefix: prefix.clone(),
            switch: format!("{prefix}s"),
            nodes: Vec::new(),
            subnet_third: third,
            created: Vec::new(),
        };
        // The first command tells whether namespaces can be made here at all.
        ip(&["netns", "add", &net.switch])?;
        net.created.push(net.switch.clone());
        // Past that, a failure is a broken harness or machine, not a reason to skip.
        if let Err(e) = net.build(bridges, links) {
            panic!("cannot build the test network: {e}");
        }
        Ok(net)
    }

    /// Address of host `host` on bridge `bridge`'s subnet.
    pub fn address(&self, bridge: usize, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213 + bridge as u8, self.subnet_third, host)
    }

    fn build(&mut self, bridges: usize, links: &[&[usize]]) -> Result<(), String> {
        let s = self.switch.clone();
        ip(&["-n", &s, "link", "set", "lo", "up"])?;
        for b in 0..bridges {
            let br = format!("br{b}");
            ip(&["-n", &s, "link", "add", &br, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"])?;
            ip(&["-n", &s, "addr", "add", &format!("{}/24", self.address(b, 254)), "dev", &br])?;
            ip(&["-n", &s, "link", "set", &br, "up"])?;
        }
        for (i, on) in links.iter().enumerate() {
            let ns = format!("{}n{i}", self.prefix);
            ip(&["netns", "add", &ns])?;
            self.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let mut node = NodeNet { ns: ns.clone(), bridges: Vec::new(), ips: Vec::new() };
            for (k, &b) in on.iter().enumerate() {
                assert!(b < bridges);
                let port = format!("p{i}b{b}");
                let eth = format!("eth{k}");
                let addr = self.address(b, i as u8 + 1);
                ip(&["-n", &s, "link", "add", &port, "type", "veth", "peer", "name", &eth, "netns", &ns])?;
                ip(&["-n", &s, "link", "set", &port, "master", &format!("br{b}")])?;
                ip(&["-n", &s, "link", "set", &port, "up"])?;
                ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &eth])?;
                ip(&["-n", &ns, "link", "set", &eth, "multicast", "on"])?;
                ip(&["-n", &ns, "link", "set", &eth, "up"])?;
                if k == 0 {
                    ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &eth])?;
                }
                node.bridges.push(b);
                node.ips.push(addr);
            }
            self.nodes.push(node);
        }
        Ok(())
    }

    /// The MAC address of node `i`'s first interface, upper case.
    pub fn mac(&self, i: usize) -> String {
        let text = ip(&["-n", &self.nodes[i].ns, "-o", "link", "show", "eth0"]).expect("ip link show");
        let mac = text.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).expect("a MAC address");
        mac.to_ascii_uppercase()
    }

    /// Cuts every link of node `i` (its switch ports leave their bridge: frames go nowhere,
    /// the test client cannot reach it either).
    pub fn cut(&self, i: usize) {
        for &b in &self.nodes[i].bridges {
            ip(&["-n", &self.switch, "link", "set", &format!("p{i}b{b}"), "nomaster"]).expect("cut link");
        }
    }

    /// Joins node `i`'s links to their bridges again after [`Netns::cut`].
    pub fn heal(&self, i: usize) {
        for &b in &self.nodes[i].bridges {
            let port = format!("p{i}b{b}");
            ip(&["-n", &self.switch, "link", "set", &port, "master", &format!("br{b}")]).expect("heal link");
            ip(&["-n", &self.switch, "link", "set", &port, "up"]).expect("heal link");
        }
    }

    /// Limits what reaches node `i` over its first link to `rate` (tc syntax, e.g. "2mbit"),
    /// so a transfer to it takes long enough to be interrupted.
    pub fn throttle(&self, i: usize, rate: &str) {
        let port = format!("p{i}b{}", self.nodes[i].bridges[0]);
        run(
            "tc",
            &[
                "-n",
                &self.switch,
                "qdisc",
                "replace",
                "dev",
                &port,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "32kb",
                "latency",
                "5s",
            ],
        )
        .expect("tc qdisc");
    }

    /// Removes the limit of [`Netns::throttle`].
    pub fn unthrottle(&self, i: usize) {
        let port = format!("p{i}b{}", self.nodes[i].bridges[0]);
        run("tc", &["-n", &self.switch, "qdisc", "del", "dev", &port, "root"]).expect("tc qdisc del");
    }

    /// Partitions the nodes on node `i`'s bridges from each other while the test client (the
    /// bridges' own address) still reaches every one of them: every node port of those bridges
    /// becomes an isolated bridge port (isolated ports forward only to non-isolated ones and
    /// the bridge itself). With two nodes on a bridge this separates exactly those two.
    pub fn partition(&self, i: usize) {
        self.set_isolated(i, "on");
    }

    /// Undoes [`Netns::partition`].
    pub fn rejoin(&self, i: usize) {
        self.set_isolated(i, "off");
    }

    fn set_isolated(&self, i: usize, on: &str) {
        for &b in &self.nodes[i].bridges {
            for (j, node) in self.nodes.iter().enumerate() {
                if node.bridges.contains(&b) {
                    let port = format!("p{j}b{b}");
                    ip(&["-n", &self.switch, "link", "set", "dev", &port, "type", "bridge_slave", "isolated", on])
                        .expect("set bridge port isolation");
                }
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            kill_namespace_processes(ns);
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A lab: nodes, a client, maybe a network, a scratch folder

/// Everything one test uses; dropped in field order: nodes, client, network, folder.
pub struct Lab {
    /// The nodes by index (None until started).
    pub pois: Vec<Option<Poi>>,
    /// The test's HTTP client.
    pub client: Client,
    /// The private network (None on loopback).
    pub net: Option<Netns>,
    /// API address of each node.
    pub addrs: Vec<SocketAddr>,
    /// Sync group given to named nodes.
    pub group: String,
    /// The `--peer` list of each node when not every other node's address (a relay's mirrors).
    peers: Option<Vec<Vec<SocketAddr>>>,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // POVPOI_KEEP_TEST_DIRS=1 keeps the data dirs and logs for a look afterwards.
        if std::env::var_os("POVPOI_KEEP_TEST_DIRS").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kept test dir {}", dir.keep().display());
        }
    }
}

/// The namespace lab; when namespaces cannot be made the test fails, unless
/// `POVPOI_SKIP_NETNS` is set (a machine without root or iproute2), when it prints a skip
/// notice and returns.
#[allow(unused_macros)]
macro_rules! lab_or_skip {
    ($bridges:expr, $links:expr) => {
        match $crate::support::Lab::netns($bridges, $links) {
            Ok(lab) => lab,
            Err(reason) if std::env::var_os("POVPOI_SKIP_NETNS").is_some() => {
                println!("SKIPPED (POVPOI_SKIP_NETNS): cannot create network namespaces: {reason}");
                return;
            }
            Err(reason) => panic!(
                "cannot create network namespaces: {reason}; run as root with iproute2, or set POVPOI_SKIP_NETNS=1 to skip"
            ),
        }
    };
}

fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr")
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("povpoi-it-").tempdir().expect("temp dir")
}

impl Lab {
    /// `n` nodes on 127.0.0.1 (free ports), to be started with [`Lab::start`].
    pub fn loopback(n: usize) -> Lab {
        Lab {
            pois: (0..n).map(|_| None).collect(),
            client: Client::loopback(),
            net: None,
            addrs: (0..n).map(|_| free_loopback_addr()).collect(),
            group: format!("lo-{}-{}", std::process::id(), next_id()),
            peers: None,
            dir: Some(scratch()),
        }
    }

    /// Nodes on loopback behind `relay`: each listens on its relay address and knows the
    /// others only at their mirror addresses, so all their traffic crosses the relay.
    pub fn relayed(relay: &relay::Relay, n: usize) -> Lab {
        Lab {
            pois: (0..n).map(|_| None).collect(),
            client: Client::loopback(),
            net: None,
            addrs: (0..n).map(|i| relay.node(i)).collect(),
            group: format!("relay-{}-{}", std::process::id(), next_id()),
            peers: Some((0..n).map(|i| relay.peers_of(i)).collect()),
            dir: Some(scratch()),
        }
    }

    /// Nodes in namespaces; node i is linked to the bridges in `links[i]` and listens on its
    /// first address, port 8080.
    pub fn netns(bridges: usize, links: &[&[usize]]) -> Result<Lab, String> {
        let net = Netns::new(bridges, links)?;
        let client = Client::in_netns(&net.switch).unwrap_or_else(|e| panic!("cannot start the client: {e}"));
        let addrs = net.nodes.iter().map(|n| SocketAddr::from((n.ips[0], NETNS_PORT))).collect();
        Ok(Lab {
            pois: (0..links.len()).map(|_| None).collect(),
            client,
            addrs,
            group: format!("ns-{}-{}", std::process::id(), next_id()),
            peers: None,
            net: Some(net),
            dir: Some(scratch()),
        })
    }

    /// The network (panics on loopback).
    pub fn net(&self) -> &Netns {
        self.net.as_ref().expect("a namespace lab")
    }

    /// The default way to start node `i`: named `poi-<letter>`, in the lab's group; on
    /// loopback without mDNS and with every other node as `--peer`; in a namespace with
    /// mDNS and no `--peer`.
    pub fn spec(&self, i: usize) -> NodeSpec {
        let label = format!("poi-{}", (b'a' + i as u8) as char);
        let (netns, no_mdns, peers) = match &self.net {
            Some(net) => (Some(net.nodes[i].ns.clone()), false, Vec::new()),
            None => match &self.peers {
                Some(peers) => (None, true, peers[i].clone()),
                None => (None, true, self.addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect()),
            },
        };
        let dir = self.dir.as_ref().expect("scratch dir").path();
        NodeSpec {
            data_dir: dir.join(&label),
            log: dir.join(format!("{label}.log")),
            label,
            listen: self.addrs[i],
            api: self.addrs[i],
            netns,
            group: Some(self.group.clone()),
            named: true,
            no_mdns,
            peers,
            args: Vec::new(),
            board: false,
        }
    }

    /// Starts node `i` as [`Lab::spec`] says; returns its address.
    pub fn start(&mut self, i: usize) -> SocketAddr {
        let spec = self.spec(i);
        self.start_with(i, spec)
    }

    /// Starts node `i` as [`Lab::spec`] says but with its data directory on `disk`;
    /// returns its address and data directory.
    #[allow(dead_code)]
    pub fn start_on(&mut self, i: usize, disk: &Tmpfs) -> (SocketAddr, PathBuf) {
        let spec = NodeSpec { data_dir: disk.path().join("poi"), ..self.spec(i) };
        let data_dir = spec.data_dir.clone();
        (self.start_with(i, spec), data_dir)
    }

    /// Starts node `i` with this spec (its `api` becomes the node's address).
    pub fn start_with(&mut self, i: usize, spec: NodeSpec) -> SocketAddr {
        assert!(self.pois[i].is_none(), "node {i} started twice");
        self.addrs[i] = spec.api;
        self.pois[i] = Some(Poi::start(spec, &self.client));
        self.addrs[i]
    }

    /// Node `i`.
    pub fn poi(&mut self, i: usize) -> &mut Poi {
        self.pois[i].as_mut().expect("node started")
    }

    /// SIGTERM node `i`, asserting a clean exit.
    pub fn stop(&mut self, i: usize) {
        self.pois[i].as_mut().expect("node started").stop();
    }

    /// SIGKILL node `i`.
    pub fn kill_hard(&mut self, i: usize) {
        self.pois[i].as_mut().expect("node started").kill_hard();
    }

    /// Starts node `i` again with its data dir.
    pub fn restart(&mut self, i: usize) {
        let poi = self.pois[i].as_mut().expect("node started");
        poi.restart(&self.client);
    }

    /// Waits until every pair of the given nodes sees each other online.
    pub fn wait_meet(&self, pairs: &[(usize, usize)], timeout: Duration) -> Duration {
        let ids: Vec<Option<String>> = self
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| self.pois[i].as_ref().map(|_| device_id(&self.client, *a)))
            .collect();
        let start = Instant::now();
        for &(x, y) in pairs {
            for (from, to) in [(x, y), (y, x)] {
                let to_id = ids[to].clone().expect("started");
                let remaining = timeout.saturating_sub(start.elapsed());
                wait_until(&format!("node {from} sees node {to} ({to_id}) online"), remaining, || {
                    online_peer(&self.client, self.addrs[from], &to_id).is_some()
                });
            }
        }
        start.elapsed()
    }

    /// Waits until the libraries of the given nodes have equal digests; returns the time it took.
    pub fn wait_converged(&self, nodes: &[usize], timeout: Duration) -> Duration {
        wait_until(&format!("nodes {nodes:?} hold the same library (digest)"), timeout, || {
            let digests: Vec<Option<String>> = nodes.iter().map(|&i| digest(&self.client, self.addrs[i])).collect();
            digests.iter().all(|d| d.is_some() && *d == digests[0])
        })
    }
}

/// Prints how long a step took (visible with --nocapture).
/// The nearest-rank percentile `p` (0-1) of `sorted`, which must not be empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub fn note(what: &str, took: Duration) {
    println!("  {what}: {} ms", took.as_millis());
}

// ---------------------------------------------------------------------------------------------
// A wire tap

/// A TCP relay on 127.0.0.1 in front of one node, keeping every byte that crosses it in
/// either direction: what someone capturing the LAN would see.
pub struct Tap {
    /// Where to connect instead of the node.
    pub addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Tap {
    /// Starts relaying connections to `to`. Its threads end with the test process.
    pub fn start(to: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tap");
        let addr = listener.local_addr().expect("tap address");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                let Ok(outbound) = std::net::TcpStream::connect(to) else { continue };
                for (from, into) in [(&inbound, &outbound), (&outbound, &inbound)] {
                    let (mut from, mut into) = (from.try_clone().unwrap(), into.try_clone().unwrap());
                    let kept = kept.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || std::io::Write::write_all(&mut into, &buf[..n]).is_err() {
                                break;
                            }
                            kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        let _ = into.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Tap { addr, seen }
    }

    /// Everything that crossed so far.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets what crossed so far.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// Whether `needle` crossed.
    pub fn saw(&self, needle: &[u8]) -> bool {
        self.seen.lock().unwrap().windows(needle.len()).any(|w| w == needle)
    }
}

// ---------------------------------------------------------------------------------------------
// A small disk

/// A tmpfs of a given size mounted on a fresh temporary folder: a disk the test can fill.
/// Unmounted when dropped, also when the test panics (lazily if a process still holds it).
/// Declare it before the [`Lab`] whose nodes store on it, so the nodes stop first.
pub struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`"2m"`). Without one (not root) the test fails, unless
    /// `POVPOI_SKIP_TMPFS` is set, when this prints a skip notice and gives None.
    pub fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new().prefix("povpoi-disk-").tempdir().expect("temp dir");
        let path = dir.path().to_string_lossy().into_owned();
        match run("mount", &["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", &path]) {
            Ok(_) => Some(Tmpfs { dir: Some(dir) }),
            Err(reason) if std::env::var_os("POVPOI_SKIP_TMPFS").is_some() => {
                println!("SKIPPED (POVPOI_SKIP_TMPFS): cannot mount a tmpfs: {reason}");
                None
            }
            Err(reason) => {
                panic!("cannot mount a tmpfs: {reason}; run as root, or set POVPOI_SKIP_TMPFS=1 to skip")
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// Takes every byte left on it with the file `name` (as another program filling the
    /// card would); returns the file's size.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write as _;
        let mut file = File::create(self.path().join(name)).expect("filler file");
        let page = [0u8; 4096];
        let mut written = 0;
        loop {
            match file.write_all(&page).and_then(|()| file.sync_all()) {
                Ok(()) => written += page.len() as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => return written,
                Err(e) => panic!("filling {}: {e}", self.path().display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let path = dir.path().to_string_lossy().into_owned();
        if run("umount", &[&path]).is_err()
            && let Err(e) = run("umount", &["-l", &path])
        {
            eprintln!("cannot unmount the tmpfs on {path}: {e}");
            let _ = dir.keep();
        }
    }
}

/// Every file under `dir` (recursively) whose name ends in `.tmp`.
pub fn temp_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}
