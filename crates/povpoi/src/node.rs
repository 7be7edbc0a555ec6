//! `povpoi node`: one poi in the foreground until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use povpoi_core::render::MAX_LEDS;
use povpoi_node::output::OutputSpec;
use povpoi_node::player::AudioChoice;
use povpoi_node::{Node, NodeOptions};

/// Options of `povpoi node`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Folder holding this poi's library, blobs and configuration (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address and port of the HTTP API, e.g. 0.0.0.0:80 on a poi, 127.0.0.1:8080 on a laptop.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub listen: SocketAddr,
    /// Device name to set (kept in the data dir; default "POV Poi " + the end of the device id).
    #[arg(long)]
    pub name: Option<String>,
    /// Sync group to set (only poi of the same group sync; default "default").
    #[arg(long)]
    pub group: Option<String>,
    /// A peer's address (IP:PORT) to sync with even without mDNS; repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Do not advertise or browse with mDNS (peers only from --peer or the API).
    #[arg(long)]
    pub no_mdns: bool,
    /// Seconds unseen after which a peer counts as offline.
    #[arg(long, default_value_t = 120)]
    pub peer_timeout: u64,
    /// Where the show goes: sim (in memory, drawn by the web UI), apa102:/dev/spidevB.C[@HZ][,order=bgr]
    /// (apa102:FILE with an existing regular file records the exact frames there) or
    /// teensy:/dev/ttyXXX.
    #[arg(long, default_value = "sim")]
    pub output: OutputSpec,
    /// LEDs on the strip (1-144), stored; without it the stored count (32 at first start).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_LEDS)))]
    pub leds: Option<u16>,
    /// Sound level for the audio patterns: none, test (a 120 bpm beat) or constant:LEVEL.
    #[arg(long, default_value = "none")]
    pub audio: AudioChoice,
    /// Start the show clock as if this poi had been running N ms longer (its own clock N ms
    /// ahead): for trying how poi whose clocks differ come to agree.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub clock_offset_ms: u64,
    /// Run this poi's own clock N ppm fast (negative: slow), as an off crystal would: for
    /// trying how the group holds its time.
    #[arg(long, default_value_t = 0.0, value_name = "N", allow_negative_numbers = true,
          value_parser = parse_ppm)]
    pub clock_rate_ppm: f64,
}

/// A crystal error in ppm: within ±1,000 (real ones are tens).
fn parse_ppm(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ppm) if ppm.abs() <= 1_000.0 => Ok(ppm),
        _ => Err(format!("{text:?} is not a rate error in ppm between -1000 and 1000")),
    }
}

impl Args {
    /// The node options these arguments describe.
    pub fn options(&self) -> NodeOptions {
        NodeOptions {
            name: self.name.clone(),
            group: self.group.clone(),
            mdns: !self.no_mdns,
            peers: self.peers.clone(),
            peer_timeout: Duration::from_secs(self.peer_timeout.max(1)),
            output: self.output.clone(),
            leds: self.leds,
            audio: self.audio,
            clock_offset_ms: self.clock_offset_ms,
            clock_rate_ppm: self.clock_rate_ppm,
            ..NodeOptions::new(&self.data_dir, self.listen)
        }
    }
}

/// Logs to stderr, filtered by RUST_LOG (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

pub fn run(args: &Args) -> Result<(), String> {
    init_logging();
    // Process-wide, so here and not in the library: a node is a long-running process on
    // a shared LAN, and its memory and descriptors must hold up to bursts.
    povpoi_node::memory::tune_allocator();
    povpoi_node::server::raise_file_limit();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let node = Node::start(args.options()).await.map_err(|e| e.to_string())?;
        println!("povpoi node listening on http://{}", node.addr());
        stop_signal().await?;
        tracing::info!("stopping");
        node.stop().await;
        Ok(())
    })
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn stop_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot watch SIGINT: {e}")),
        _ = term.recv() => Ok(()),
    }
}
