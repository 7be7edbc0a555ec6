//! A userspace relay that stands in for a Wi-Fi LAN between node processes on this machine
//! (there is no `tc netem` here).
//!
//! Node `i` listens on `127.0.1.(i+1)` and knows the others only by their mirror addresses
//! `127.0.2.(j+1)`, same port. What a node sends to a mirror address reaches the relay,
//! which passes UDP datagrams on after a delay (a base per direction, so paths are
//! asymmetric, exponential jitter, heavy-tailed spikes) or drops them, and TCP bytes after
//! the base delay, in order. It sends them from the sender's own mirror address, so every
//! node sees its peers only at mirror addresses and all their traffic stays in the relay.
//! Everything stays on loopback. A node can be cut off (a partition), and the datagrams
//! that crossed are kept for replay tests.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::time::Instant;

/// What the relay does to traffic.
#[derive(Clone, Debug)]
pub struct Faults {
    /// One-way delay of a quiet path, µs (TCP bytes get exactly this).
    pub delay_us: u64,
    /// Each direction's delay differs from it by up to this, µs.
    pub asymmetry_us: u64,
    /// Mean exponential jitter per datagram, µs.
    pub jitter_mean_us: f64,
    /// Share of datagrams dropped.
    pub loss: f64,
    /// Share of datagrams held up by a spike (Wi-Fi power saving).
    pub spike_chance: f64,
    /// Shortest and longest spike, µs (Pareto, shape 1.2, cut at the longest).
    pub spike_us: (u64, u64),
    /// Seed of every random choice.
    pub seed: u64,
}

impl Faults {
    /// The Wi-Fi: 2 ms base delay, asymmetric paths, 100-1,000 ms spikes, 20 % loss.
    pub fn wifi(seed: u64) -> Faults {
        Faults {
            delay_us: 2_000,
            asymmetry_us: 400,
            jitter_mean_us: 150.0,
            loss: 0.20,
            spike_chance: 0.05,
            spike_us: (100_000, 1_000_000),
            seed,
        }
    }
}

struct Shared {
    nodes: Vec<SocketAddr>,
    mirrors: Vec<SocketAddr>,
    faults: Faults,
    /// One-way base delay from node `y` to node `x`: `delay[y][x]`, µs.
    delay: Vec<Vec<u64>>,
    cut: Vec<AtomicBool>,
    rng: Mutex<ChaCha8Rng>,
    udp: Vec<Arc<UdpSocket>>,
    captured: Mutex<Vec<(usize, usize, Vec<u8>)>>,
    datagrams: AtomicU64,
    dropped: AtomicU64,
}

/// A running relay; stops when dropped.
pub struct Relay {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, i as u8 + 1)
}

fn mirror_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, i as u8 + 1)
}

impl Relay {
    /// A relay for `n` nodes (at most 250), ports picked free on both sides.
    pub fn start(n: usize, faults: Faults) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(faults.seed);
        let (mut nodes, mut mirrors, mut udp, mut tcp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let (port, u, t) = runtime.block_on(async {
                for _ in 0..200 {
                    let port = rng.random_range(20_000..60_000);
                    let mirror = SocketAddr::V4(SocketAddrV4::new(mirror_ip(i), port));
                    let node = SocketAddr::V4(SocketAddrV4::new(node_ip(i), port));
                    // The node's side must be free too (it binds once it starts).
                    let free = std::net::TcpListener::bind(node).is_ok() && std::net::UdpSocket::bind(node).is_ok();
                    if !free {
                        continue;
                    }
                    if let (Ok(u), Ok(t)) = (UdpSocket::bind(mirror).await, TcpListener::bind(mirror).await) {
                        return (port, u, t);
                    }
                }
                panic!("no free port for relay node {i}");
            });
            nodes.push(SocketAddr::V4(SocketAddrV4::new(node_ip(i), port)));
            mirrors.push(SocketAddr::V4(SocketAddrV4::new(mirror_ip(i), port)));
            udp.push(Arc::new(u));
            tcp.push(t);
        }
        let spread = 2 * faults.asymmetry_us;
        let delay = (0..n)
            .map(|_| (0..n).map(|_| faults.delay_us - faults.asymmetry_us + rng.random_range(0..=spread)).collect())
            .collect();
        let shared = Arc::new(Shared {
            nodes,
            mirrors,
            faults,
            delay,
            cut: (0..n).map(|_| AtomicBool::new(false)).collect(),
            rng: Mutex::new(rng),
            udp,
            captured: Mutex::new(Vec::new()),
            datagrams: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        for (x, listener) in tcp.into_iter().enumerate() {
            runtime.spawn(udp_loop(shared.clone(), x));
            runtime.spawn(tcp_loop(shared.clone(), x, listener));
        }
        Relay { shared, runtime: Some(runtime) }
    }

    /// Where node `i` must listen (`--listen`).
    pub fn node(&self, i: usize) -> SocketAddr {
        self.shared.nodes[i]
    }

    /// Node `i`'s mirror address: where the others reach it (`--peer`).
    pub fn mirror(&self, i: usize) -> SocketAddr {
        self.shared.mirrors[i]
    }

    /// The `--peer` addresses of node `i`: every other node's mirror.
    pub fn peers_of(&self, i: usize) -> Vec<SocketAddr> {
        (0..self.shared.nodes.len()).filter(|j| *j != i).map(|j| self.mirror(j)).collect()
    }

    /// Cuts node `i` off from all others (or joins it back).
    pub fn cut(&self, i: usize, cut: bool) {
        self.shared.cut[i].store(cut, Ordering::Relaxed);
    }

    /// Datagrams that crossed: (from node, to node, bytes), oldest first.
    pub fn captured(&self) -> Vec<(usize, usize, Vec<u8>)> {
        self.shared.captured.lock().unwrap().clone()
    }

    /// Datagrams seen and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.datagrams.load(Ordering::Relaxed), self.shared.dropped.load(Ordering::Relaxed))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.cut[a].load(Ordering::Relaxed) && !self.cut[b].load(Ordering::Relaxed)
    }

    /// The delay of one datagram from `y` to `x`, or None if it is lost.
    fn fate(&self, y: usize, x: usize) -> Option<Duration> {
        let f = &self.faults;
        let mut rng = self.rng.lock().unwrap();
        if rng.random_bool(f.loss) {
            return None;
        }
        let mut us = self.delay[y][x] as f64 - f.jitter_mean_us * (1.0 - rng.random::<f64>()).ln();
        if rng.random_bool(f.spike_chance) {
            let spike = f.spike_us.0 as f64 / (1.0 - rng.random::<f64>()).powf(1.0 / 1.2);
            us += spike.min(f.spike_us.1 as f64);
        }
        Some(Duration::from_micros(us as u64))
    }
}

/// Datagrams arriving at node `x`'s mirror: from node `y`, passed on to `x` from `y`'s mirror.
async fn udp_loop(shared: Arc<Shared>, x: usize) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = shared.udp[x].recv_from(&mut buf).await else { continue };
        let Some(y) = shared.nodes.iter().position(|a| *a == from) else { continue };
        shared.datagrams.fetch_add(1, Ordering::Relaxed);
        let bytes = buf[..n].to_vec();
        {
            let mut captured = shared.captured.lock().unwrap();
            if captured.len() < 100_000 {
                captured.push((y, x, bytes.clone()));
            }
        }
        let delay = if shared.reachable(x, y) { shared.fate(y, x) } else { None };
        let Some(delay) = delay else {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = shared.udp[y].send_to(&bytes, shared.nodes[x]).await;
        });
    }
}

/// Connections arriving at node `x`'s mirror from node `y`, opened to `x` from `y`'s mirror.
async fn tcp_loop(shared: Arc<Shared>, x: usize, listener: TcpListener) {
    loop {
        let Ok((inbound, from)) = listener.accept().await else { continue };
        let Some(y) = shared.nodes.iter().position(|a| a.ip() == from.ip()) else { continue };
        if !shared.reachable(x, y) {
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let socket = TcpSocket::new_v4().unwrap();
            if socket.bind(SocketAddr::new(shared.mirrors[y].ip(), 0)).is_err() {
                return;
            }
            let Ok(outbound) = socket.connect(shared.nodes[x]).await else { return };
            let delay = Duration::from_micros(shared.faults.delay_us);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let ends = [x, y];
            tokio::spawn(pump(shared.clone(), ends, in_read, out_write, delay));
            tokio::spawn(pump(shared, ends, out_read, in_write, delay));
        });
    }
}

/// Copies one direction of a connection, each chunk `delay` after it arrived, in order;
/// stops when either end closes or an end is cut off.
async fn pump(
    shared: Arc<Shared>,
    ends: [usize; 2],
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut into: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let due = Instant::now() + delay;
        tokio::time::sleep_until(due).await;
        if !shared.reachable(ends[0], ends[1]) || into.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = into.shutdown().await;
}
