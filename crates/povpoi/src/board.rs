//! `povpoi board`: the board firmware's application run on this machine. The same
//! [`povpoi_app::App`] the ESP32 firmware serves, over the same flash store
//! ([`povpoi_flash::FlashStore`]) on a RAM flash the size of the board's `povpoi` partition;
//! tokio stands in for embassy, axum for picoserve, a UDP socket for embassy-net's. It talks
//! to `povpoi node` processes and other boards over real HTTP and UDP, so a board's
//! behaviour can be tried without one.
//!
//! With `--teensy DEVICE` it mirrors what plays to a Teensy on that serial port through the
//! same shared code as the firmware's UART link ([`povpoi_app::teensy::send_changes`]).
//! What a board does not do here: mDNS (peers come from `--peer`, or call in), the
//! LED strip (its columns are drawn and dropped), Wi-Fi. Its library lives in RAM and is gone when it stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use povpoi_app::columns::ImageWindow;
use povpoi_app::peers::Source;
use povpoi_app::sessions::{self, AppLock};
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::Rgb;
use povpoi_core::render::{DEFAULT_LEDS, Renderer};
use povpoi_core::sync::{Identity, Replica, Request as SyncRequest, Response as SyncResponse};
use povpoi_core::wire;
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use povpoi_node::config::random_device_id;
use povpoi_node::output::teensy::TeensyLink;
use povpoi_node::show_clock::{OwnClock, host_time_us};
use povpoi_peer::auth::HEADER_SIGNATURE;
use povpoi_peer::exchange::SYNC_PATH;
use povpoi_peer::key::GroupKey;
use povpoi_peer::session::{Ended, Link, LinkFailure};
use tokio::net::{TcpListener, UdpSocket};

/// The shipped partition table's `povpoi` partition (firmware/partitions.csv), KiB.
const PARTITION_KIB: usize = 2_496;
/// Largest request body: a sync message carries at most 128 KiB of pixels
/// (`MAX_BLOB_BYTES_PER_MESSAGE`) and its records.
const BODY_LIMIT: usize = 192 * 1024;
/// How often the peers given by address are asked who they are.
const PROBE_PERIOD: Duration = Duration::from_secs(2);
/// How often the application is asked which sessions are due.
const SESSION_CHECK: Duration = Duration::from_millis(200);
/// Longest wait between two looks at what plays.
const LONGEST_NAP: Duration = Duration::from_millis(20);

/// Options of `povpoi board`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Address and port of the HTTP API (the show clock's UDP uses the same port number).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Device name (default "POV Poi " + the end of the device id).
    #[arg(long)]
    pub name: Option<String>,
    /// Sync group.
    #[arg(long, default_value = povpoi_peer::advert::DEFAULT_SYNC_GROUP)]
    pub group: String,
    /// The group's pairing key (8-256 visible ASCII characters); without it the poi is open.
    #[arg(long, env = "POVPOI_GROUP_KEY", hide_env_values = true)]
    pub group_key: Option<String>,
    /// A peer's address (IP:PORT), asked who it is every 2 s; repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Seconds unseen after which a peer counts as offline.
    #[arg(long, default_value_t = 120)]
    pub peer_timeout: u32,
    /// Size of the flash partition the library is kept in, KiB (the shipped table's: 2496).
    #[arg(long, default_value_t = PARTITION_KIB)]
    pub flash_kib: usize,
    /// Start the own clock N ms ahead: for trying how poi whose clocks differ come to agree.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub clock_offset_ms: u64,
    /// Ignore this machine's real-time clock, as a board has none: real time starts at the
    /// epoch and is learned from peers' signed requests.
    #[arg(long)]
    pub no_real_time: bool,
    /// The serial device of a Teensy to mirror what plays to, as the board's UART link does
    /// (/dev/ttyACM0, /dev/ttyUSB0...).
    #[arg(long, value_name = "DEVICE")]
    pub teensy: Option<PathBuf>,
}

/// The board's application and its clocks, shared by its tasks.
struct Board {
    app: Mutex<App<FlashStore<RamFlash>>>,
    own: OwnClock,
}

impl Board {
    fn app(&self) -> MutexGuard<'_, App<FlashStore<RamFlash>>> {
        self.app.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn own_us(&self) -> u64 {
        self.own.now_us()
    }

    /// The clocks now.
    fn now(&self) -> Now {
        self.with(|_, now| now)
    }
}

impl AppLock for Board {
    type Storage = FlashStore<RamFlash>;

    /// Runs `f` on the application with the clocks read now (under the lock: without a
    /// real-time clock, the application holds what it learned of real time).
    fn with<R>(&self, f: impl FnOnce(&mut App<FlashStore<RamFlash>>, Now) -> R) -> R {
        let mut app = self.app();
        let own_us = self.own_us();
        let now =
            if app.config().real_time { Now { wall_us: host_time_us(), own_us } } else { app.learned_now(own_us) };
        f(&mut app, now)
    }
}

/// Runs the board until SIGINT or SIGTERM.
pub fn run(args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(args.clone()))
}

async fn serve(args: Args) -> Result<(), String> {
    let board = Arc::new(open(&args)?);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}; pick another --listen", args.listen))?;
    let udp = UdpSocket::bind(args.listen)
        .await
        .map_err(|e| format!("cannot bind the show clock's UDP port {}: {e}", args.listen))?;
    {
        let app = board.app();
        let c = app.config();
        eprintln!(
            "povpoi board {} ({}) on http://{} in group {:?}, {} KiB of flash",
            c.device_id,
            c.device_name,
            args.listen,
            app.replica().group(),
            args.flash_kib
        );
    }
    if let Some(device) = &args.teensy {
        let link = TeensyLink::open(device).map_err(|e| format!("--teensy: {e}"))?;
        let board = board.clone();
        std::thread::Builder::new()
            .name("teensy".into())
            .spawn(move || mirror_to_teensy(&board, link))
            .map_err(|e| format!("cannot start the Teensy link's thread: {e}"))?;
    }
    tokio::spawn(show_clock(board.clone(), udp));
    tokio::spawn(play(board.clone()));
    tokio::spawn(probe_peers(board.clone(), args.peers.clone()));
    tokio::spawn(sync_sessions(board.clone()));
    let router = Router::new().fallback(request).layer(DefaultBodyLimit::max(BODY_LIMIT)).with_state(board);
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let stop = async {
        if let Err(e) = crate::node::stop_signal().await {
            // Without the signals, stopping is up to whoever kills the process.
            eprintln!("povpoi board: {e}");
            std::future::pending::<()>().await;
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(stop).await.map_err(|e| format!("HTTP server: {e}"))
}

fn open(args: &Args) -> Result<Board, String> {
    // A board's id is its MAC; this one is made up, marked locally administered as a node's is.
    let device_id = random_device_id();
    let key = args.group_key.as_deref().map(GroupKey::new).transpose().map_err(|e| format!("--group-key: {e}"))?;
    let sectors = args.flash_kib * 1024 / SECTOR;
    let store = FlashStore::open(RamFlash::new(sectors), 0..(sectors * SECTOR) as u32)
        .map_err(|e| format!("cannot open the store on {} KiB of flash: {e}", args.flash_kib))?;
    let identity = Identity { replica: ReplicaId(rand::random()), device: device_id, group: args.group.clone() };
    let replica = Replica::open(store, identity).map_err(|e| format!("cannot open the library: {e}"))?;
    let config = Config {
        device_id,
        device_name: args.name.clone().unwrap_or_else(|| device_id.default_name()),
        group_key: key,
        independent: false,
        auto_sync: true,
        sync_interval: povpoi_app::DEFAULT_SYNC_INTERVAL_MS,
        peer_timeout_s: args.peer_timeout,
        port: args.listen.port(),
        real_time: !args.no_real_time,
        replay_capacity: 128,
        // Its HTTP server takes bodies up to BODY_LIMIT, and reqwest reads any answer.
        max_fetched_blob_bytes: usize::MAX,
        max_pushed_blob_bytes: BODY_LIMIT - 1024,
        // Records move as on the firmware (firmware/src/main.rs): 2 KiB parts each way, its
        // summary asking a node for the same, and a larger delta left out of its answers.
        max_push_part_bytes: 2 * 1024,
        max_answered_delta_bytes: 2 * 1024,
        // What the firmware takes: the largest image its sessions fetch.
        max_uploaded_image_bytes: povpoi_app::sessions::MAX_FETCHED_BLOB_BYTES,
        wifi_setup: false,
    };
    let own = OwnClock::new(args.clock_offset_ms, 0.0);
    let clock = povpoi_app::clock::ClockService::new(device_id, rand::random(), rand::random(), own.now_us());
    Ok(Board { app: Mutex::new(App::new(config, replica, clock)), own })
}

/// Every request goes to the application, as on the board (picoserve hands it everything).
async fn request(
    State(board): State<Arc<Board>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let request = povpoi_app::api::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers: &headers,
        body: &body,
        from,
    };
    let answer = board.with(|app, now| {
        // A device configuration is the firmware's to keep in its flash settings; here it
        // lives as long as the process, as the whole RAM flash does.
        if request.method == "POST" && request.path == "/api/device/config" {
            return match app.authorize(&request) {
                Ok(()) => app.change_config(&request, now, |_| Ok(())),
                Err(refusal) => refusal,
            };
        }
        let mut answer = app.handle(&request, now, &mut rand::rng());
        // A list the firmware sends item by item, chunked, is read here whole under the one
        // lock (the host has the memory): it cannot be cut off by a change.
        povpoi_app::content::list_whole(app.replica(), &mut answer);
        answer
    });
    povpoi_node::api::app_response(answer)
}

/// Probes peers and answers their probes on the HTTP port number, as the board's UDP task does.
async fn show_clock(board: Arc<Board>, socket: UdpSocket) {
    let mut buf = vec![0u8; povpoi_app::clock::RECEIVE_BUFFER];
    loop {
        let probes = board.with(|app, now| app.due_probes(now, rand::random));
        for (addr, bytes) in probes {
            let _ = socket.send_to(&bytes, addr).await;
        }
        let now = board.now();
        let due = board.app().next_probe_due(now);
        let wait = due.map_or(Duration::from_secs(1), |d| Duration::from_micros(d.saturating_sub(now.own_us)));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let arrived = board.own_us();
                if let Ok((n, from)) = received {
                    let reply = board.with(|app, now| app.datagram(&buf[..n], from, arrived, now));
                    if let Some(reply) = reply {
                        let _ = socket.send_to(&reply, from).await;
                    }
                }
            }
            _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
        }
    }
}

/// The board's column clock without its strip: at every column start it draws the column
/// as the firmware does ([`App::draw_column`], image pixels read from the flash store a few
/// columns at a time), so cues take effect and the flash is read as on a board.
async fn play(board: Arc<Board>) {
    let renderer = Renderer::new(DEFAULT_LEDS).expect("32 LEDs are valid");
    let mut window = ImageWindow::new();
    let mut column = vec![Rgb::default(); renderer.leds()];
    let mut failures = 0u64;
    loop {
        let wait = board.with(|app, now| {
            if let Some(e) = app.draw_column(now, &renderer, &mut window, &mut column).error {
                if failures.is_multiple_of(1000) {
                    eprintln!("povpoi board: image pixels ({} failed reads): {e}", failures + 1);
                }
                failures += 1;
            }
            app.until_next_column(now)
        });
        // A long column (1 fps) still notices a change of frame rate soon.
        tokio::time::sleep(Duration::from_micros(wait).min(LONGEST_NAP)).await;
    }
}

/// Mirrors what plays to the Teensy as the firmware's link does (firmware/src/teensy.rs):
/// once it answers a status request (asked every 10 s until then), the shared
/// [`povpoi_app::teensy::send_changes`] every 20 ms. On a thread of its own: the serial
/// port's reads block.
fn mirror_to_teensy(board: &Board, mut link: TeensyLink<std::fs::File>) {
    loop {
        match link.status() {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => eprintln!("povpoi board: Teensy link: {e}"),
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    eprintln!("povpoi board: the Teensy answers; mirroring what plays to it");
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => return eprintln!("povpoi board: no runtime for the Teensy link: {e}"),
    };
    let mut mirror = povpoi_app::teensy::Mirroring::default();
    loop {
        let sent = runtime.block_on(povpoi_app::teensy::send_changes(board, &mut mirror, &mut link));
        if sent.commands > 0 {
            eprintln!("povpoi board: Teensy sent {} commands, {} without an ack", sent.commands, sent.unacked);
        }
        std::thread::sleep(LONGEST_NAP);
    }
}

/// Asks each peer given by address who it is, every [`PROBE_PERIOD`], and marks peers
/// unseen for the timeout offline.
async fn probe_peers(board: Arc<Board>, addrs: Vec<SocketAddr>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
    loop {
        for addr in &addrs {
            let answer = match http.get(format!("http://{addr}/api/sync/status")).send().await {
                Ok(answer) => answer.bytes().await,
                Err(e) => Err(e),
            };
            let seen = answer
                .map_err(|e| e.to_string())
                .and_then(|bytes| povpoi_app::peers::read_sync_status(&bytes, *addr).map_err(|e| e.to_string()));
            match seen {
                Ok(seen) => board.with(|app, now| app.peer_seen(&seen, Source::Manual, now)),
                Err(e) => eprintln!("povpoi board: peer {addr} did not answer: {e}"),
            }
        }
        board.with(|app, now| app.expire_peers(now));
        tokio::time::sleep(PROBE_PERIOD).await;
    }
}

/// Starts the sessions [`App::sessions_due`] asks for, one peer after another, as the
/// board's sync task does ([`sessions::run_due`]).
async fn sync_sessions(board: Arc<Board>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    loop {
        tokio::time::sleep(SESSION_CHECK).await;
        let link_to = |peer, addr| HttpLink { board: &board, http: &http, addr, peer };
        sessions::run_due(&*board, link_to, |peer, addr, _, outcome| {
            if let Err(e) = outcome {
                eprintln!("povpoi board: sync with {peer} at {addr} failed: {e}");
            }
        })
        .await;
    }
}

/// A session's messages over HTTP to the peer `peer` at `addr`.
struct HttpLink<'a> {
    board: &'a Board,
    http: &'a reqwest::Client,
    addr: SocketAddr,
    peer: DeviceId,
}

impl Link for HttpLink<'_> {
    type Error = LinkFailure;

    async fn exchange(&mut self, request: &SyncRequest) -> Result<(SyncResponse, u64), LinkFailure> {
        // As on the firmware: peers' sync messages are answered 503 while this one is in
        // flight (`App::set_exchanging`), although a laptop's heap would hold both.
        let _in_flight = sessions::InFlight::start(self.board);
        let body = wire::to_bytes(request);
        let out = self.board.with(|app, now| app.outgoing(self.peer, SYNC_PATH, &body, now, &mut rand::rng()));
        let mut call = self.http.post(format!("http://{}{SYNC_PATH}", self.addr));
        call = call.header("content-type", "application/octet-stream");
        for (name, value) in &out.headers {
            call = call.header(*name, value);
        }
        let answer = call.body(out.body).send().await.map_err(|e| {
            let kind = if e.is_connect() {
                Ended::Unreachable
            } else if e.is_timeout() {
                Ended::Stalled
            } else {
                Ended::Failed
            };
            LinkFailure::new(kind, format!("cannot reach {}: {e}", self.addr))
        })?;
        let failed = |message: String| LinkFailure::new(Ended::Failed, message);
        let status = answer.status().as_u16();
        let signature = answer.headers().get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = answer.bytes().await.map_err(|e| failed(format!("answer cut short: {e}")))?.to_vec();
        let on_wire = bytes.len() as u64;
        if status != 200 {
            let message = format!("{} answered {status}: {}", self.addr, String::from_utf8_lossy(&bytes));
            return Err(LinkFailure::new(Ended::of_status(status), message));
        }
        let plain =
            out.check.open_answer(status, signature.as_deref(), bytes).map_err(|e| failed(format!("answer {e}")))?;
        let answer = wire::from_bytes(&plain).map_err(|e| failed(format!("bad answer: {e}")))?;
        Ok((answer, out.check.sent + on_wire))
    }
}
