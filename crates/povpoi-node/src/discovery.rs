//! Finding other poi with mDNS / DNS-SD: every node advertises `_povpoi._tcp` and browses for it.
//!
//! Names follow the existing system (`EXISTING_SYSTEM.md` §1 and §6): host `povpoi-XXXX.local.`
//! (XXXX = last four hex digits of the device id), TXT keys `deviceId` and `deviceName`. We add
//! `syncGroup`, `protocol` and `digest` so a peer can be judged (other group, other protocol,
//! nothing new) before it is contacted, and `seq`, explained next.
//!
//! Liveness: mdns-sd reports a service again only when one of its records changes; an identical
//! re-announcement only refreshes its cache, silently. So every node re-announces itself every
//! [`ANNOUNCE_EVERY`] with `seq` incremented, which makes each announcement a change and each
//! live peer appear on the sightings channel again. The caller keeps `lastSeen` from those and
//! times out the peers that fall silent; a goodbye is only logged here.
//!
//! Network safety: when [`Advert::addrs`] is not empty the daemon is told to use only the
//! interfaces that carry those addresses, before anything is registered or browsed, and only
//! those addresses are advertised. One thing mdns-sd does not let us prevent: when its daemon
//! starts it joins the mDNS multicast group on every interface (an IGMP/MLD membership report
//! leaves each of them) and leaves it again when told to disable them. No mDNS packet is sent on
//! a disabled interface, but a daemon must still only be started in a network namespace (tests)
//! or on a real poi.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdns_sd::{
    DaemonEvent, IfKind, Receiver, RecvTimeoutError, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent,
    ServiceInfo,
};
use povpoi_core::device::DeviceId;
use tokio::sync::mpsc::UnboundedSender;

use povpoi_peer::advert;
pub use povpoi_peer::advert::SERVICE_TYPE;

/// How often a node re-announces itself, so each live peer is reported again at least this often.
// Well inside the 120 s after which the existing system marks a peer offline: several
// announcements may be lost before a live peer looks gone.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);

/// How long the worker blocks on mDNS events before it looks at its commands and timers again:
/// the delay of a refresh taking effect and of the worker noticing a shutdown.
const TICK: Duration = Duration::from_millis(100);

/// The whole bound on [`Discovery::shutdown`].
const SHUTDOWN_WAIT: Duration = Duration::from_millis(1000);

/// What this node advertises about itself, and on which addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// The names and TXT records, as every poi advertises them.
    pub poi: advert::Advert,
    /// The only addresses advertised, and their interfaces the only ones used (empty: every IPv4 interface).
    pub addrs: Vec<IpAddr>,
}

pub use povpoi_app::peers::Sighting;

/// Why discovery could not start or change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError(pub String);

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiscoveryError {}

impl From<mdns_sd::Error> for DiscoveryError {
    fn from(e: mdns_sd::Error) -> Self {
        DiscoveryError(format!("mDNS: {e}"))
    }
}

/// Advertises this node and browses for others until dropped or shut down.
pub struct Discovery {
    daemon: ServiceDaemon,
    published: Arc<Mutex<Published>>,
    /// `None` once stopped.
    worker: Option<Worker>,
}

/// What is advertised now; shared by [`Discovery::update`] and the worker's re-announcements.
struct Published {
    advert: Advert,
    seq: u32,
}

/// The thread that reads mDNS events and re-announces.
struct Worker {
    /// Dropping it tells the worker to stop.
    commands: std_mpsc::Sender<Command>,
    /// Disconnects when the worker has ended.
    done: std_mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

enum Command {
    /// Read events from this browse from now on (the daemon has replaced the previous one).
    Browse(Receiver<ServiceEvent>),
}

impl Discovery {
    /// Starts advertising `advert` and browsing; every resolved peer (not ourselves: skip our own device_id) is sent to `sightings`.
    pub fn start(advert: &Advert, sightings: UnboundedSender<Sighting>) -> Result<Discovery, DiscoveryError> {
        Self::start_with(advert, sightings, ANNOUNCE_EVERY)
    }

    /// Like [`Discovery::start`], re-announcing every `announce_every` (keep it well under the
    /// peer timeout: an unchanged announcement is only reported because `seq` changes).
    pub fn start_with(
        advert: &Advert,
        sightings: UnboundedSender<Sighting>,
        announce_every: Duration,
    ) -> Result<Discovery, DiscoveryError> {
        // Checked before the daemon exists: a wrong address must not fall back to other interfaces.
        check_advert(advert)?;
        check_addrs_are_local(&advert.addrs)?;
        let daemon = ServiceDaemon::new()?;
        match Self::run(&daemon, advert, sightings, announce_every) {
            Ok((published, worker)) => {
                tracing::info!(
                    device = %advert.poi.device_id, instance = %advert::instance_name(advert.poi.device_id), port = advert.poi.port,
                    addrs = ?advert.addrs, "mDNS discovery started"
                );
                Ok(Discovery { daemon, published, worker: Some(worker) })
            }
            Err(e) => {
                // The daemon thread lives until told to exit, even with every handle dropped.
                let _ = daemon.shutdown();
                Err(e)
            }
        }
    }

    fn run(
        daemon: &ServiceDaemon,
        advert: &Advert,
        sightings: UnboundedSender<Sighting>,
        announce_every: Duration,
    ) -> Result<(Arc<Mutex<Published>>, Worker), DiscoveryError> {
        // The daemon runs its commands in order, so nothing below is sent before this applies.
        if advert.addrs.is_empty() {
            // An API bound to the unspecified address listens on IPv4 only.
            daemon.disable_interface(IfKind::IPv6)?;
        } else {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(advert.addrs.iter().map(|a| IfKind::Addr(*a)).collect::<Vec<_>>())?;
        }
        let monitor = daemon.monitor().ok();

        // A random start keeps a restarted node's first announcement from repeating, byte for
        // byte, the one peers still cache from before, which they would not report.
        let published = Published { advert: advert.clone(), seq: rand::random() };
        let mut first = service_info(&published.advert, published.seq)?;
        // Probing catches another host already using our host name (same last four digits).
        first.set_requires_probe(true);
        daemon.register(first)?;
        let events = daemon.browse(SERVICE_TYPE)?;
        let published = Arc::new(Mutex::new(published));

        let (commands, command_rx) = std_mpsc::channel();
        let (done_tx, done) = std_mpsc::channel();
        let context = WorkerContext {
            daemon: daemon.clone(),
            published: published.clone(),
            own: advert.poi.device_id,
            commands: command_rx,
            monitor,
            sightings,
            announce_every,
            _done: done_tx,
        };
        let handle = std::thread::Builder::new()
            .name("povpoi-discovery".into())
            .spawn(move || context.run(events))
            .map_err(|e| DiscoveryError(format!("cannot start the discovery thread: {e}")))?;
        Ok((published, Worker { commands, done, handle }))
    }

    /// Re-advertises with changed TXT data (name, group, digest) — other nodes must see the new values.
    pub fn update(&self, advert: &Advert) -> Result<(), DiscoveryError> {
        let mut published = lock(&self.published);
        let before = &published.advert;
        if advert.poi.device_id != before.poi.device_id
            || advert.poi.port != before.poi.port
            || advert.addrs != before.addrs
        {
            // The interfaces were chosen from these at start; changing them needs a new Discovery.
            return Err(DiscoveryError("only the name, group, protocol and digest of an advert can change".into()));
        }
        check_advert(advert)?;
        if *advert == published.advert {
            // Every change is multicast to every poi; an unchanged advert is not one.
            return Ok(());
        }
        let previous = std::mem::replace(&mut published.advert, advert.clone());
        if let Err(e) = announce(&self.daemon, &mut published) {
            published.advert = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Browses again from scratch now (backs POST /api/sync/discover), so peers already known are resolved and reported again.
    pub fn refresh(&self) -> Result<(), DiscoveryError> {
        let worker = self.worker.as_ref().ok_or_else(|| DiscoveryError("discovery has stopped".into()))?;
        // A new browse replaces the old one in the daemon, reports every peer still in its cache
        // at once and queries the network again.
        let events = self.daemon.browse(SERVICE_TYPE)?;
        worker.commands.send(Command::Browse(events)).map_err(|_| DiscoveryError("discovery has stopped".into()))
    }

    /// Unregisters (sends goodbye) and stops the daemon; waits a bounded time (≤ 1 s).
    pub fn shutdown(mut self) {
        self.stop(true);
    }

    fn stop(&mut self, wait: bool) {
        let Some(Worker { commands, done, handle }) = self.worker.take() else { return };
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        // The worker stops first so that no re-announcement follows the goodbye.
        drop(commands);
        if wait {
            let _ = done.recv_timeout(TICK * 4);
        }
        // Exiting, the daemon unregisters every service: the goodbye packets.
        match self.daemon.shutdown() {
            Ok(status) if wait => {
                if status.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
                    tracing::debug!("the mDNS daemon did not confirm its shutdown in time");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot stop the mDNS daemon"),
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
        tracing::debug!("mDNS discovery stopped");
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        // Dropping may happen on an async thread: signal, never wait.
        self.stop(false);
    }
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery").field("advert", &lock(&self.published).advert).finish_non_exhaustive()
    }
}

struct WorkerContext {
    daemon: ServiceDaemon,
    published: Arc<Mutex<Published>>,
    own: DeviceId,
    commands: std_mpsc::Receiver<Command>,
    monitor: Option<Receiver<DaemonEvent>>,
    sightings: UnboundedSender<Sighting>,
    announce_every: Duration,
    /// Dropped when the worker ends, which is what [`Discovery::stop`] waits for.
    _done: std_mpsc::Sender<()>,
}

impl WorkerContext {
    fn run(self, mut events: Receiver<ServiceEvent>) {
        let mut next_announce = Instant::now() + self.announce_every;
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Browse(newer)) => events = newer,
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            }
            match events.recv_timeout(TICK) {
                Ok(event) => {
                    self.handle(event);
                    while let Ok(event) = events.try_recv() {
                        self.handle(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Replaced by a refresh whose receiver is about to arrive, or the daemon is gone.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
            if let Some(monitor) = &self.monitor {
                while let Ok(event) = monitor.try_recv() {
                    log_daemon_event(event);
                }
            }
            if Instant::now() >= next_announce {
                next_announce = Instant::now() + self.announce_every;
                if let Err(e) = announce(&self.daemon, &mut lock(&self.published)) {
                    tracing::debug!(error = %e, "cannot re-announce on mDNS");
                }
            }
        }
    }

    fn handle(&self, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(service) => match sighting_from(&service) {
                Ok(seen) if seen.device_id == self.own => {}
                Ok(seen) => {
                    tracing::trace!(peer = %seen.device_id, addr = %seen.addr, "mDNS sighting");
                    // A caller that stopped listening still wants to be found: keep advertising.
                    let _ = self.sightings.send(seen);
                }
                Err(why) => tracing::debug!(service = %service.fullname, why, "ignoring an mDNS service"),
            },
            ServiceEvent::ServiceRemoved(_, fullname) => {
                tracing::debug!(service = %fullname, "mDNS service said goodbye or expired");
            }
            _ => {}
        }
    }
}

fn log_daemon_event(event: DaemonEvent) {
    match event {
        DaemonEvent::Error(e) => tracing::warn!(error = %e, "mDNS daemon error"),
        DaemonEvent::NameChange(change) => {
            tracing::info!(from = %change.original, to = %change.new_name, "mDNS name taken, renamed")
        }
        other => tracing::trace!(event = ?other, "mDNS daemon event"),
    }
}

/// Sends the current advert again with the next `seq`.
fn announce(daemon: &ServiceDaemon, published: &mut Published) -> Result<(), DiscoveryError> {
    published.seq = published.seq.wrapping_add(1);
    let mut info = service_info(&published.advert, published.seq)?;
    // Our names were probed when first registered; probing again would only delay each
    // announcement by ~750 ms and make the daemon remember every old TXT record.
    info.set_requires_probe(false);
    daemon.register(info)?;
    Ok(())
}

fn service_info(advert: &Advert, seq: u32) -> Result<ServiceInfo, DiscoveryError> {
    let properties = advert::txt_records(&advert.poi.announcement(), seq);
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &advert::instance_name(advert.poi.device_id),
        &format!("{}.local.", advert::host_label(advert.poi.device_id)),
        &advert.addrs[..],
        advert.poi.port,
        &properties[..],
    )?;
    Ok(if advert.addrs.is_empty() { info.enable_addr_auto() } else { info })
}

fn check_advert(advert: &Advert) -> Result<(), DiscoveryError> {
    if let Some(bad) = advert.addrs.iter().find(|a| a.is_unspecified() || a.is_multicast()) {
        return Err(DiscoveryError(format!(
            "cannot advertise {bad}: list the addresses to advertise, or none for every interface"
        )));
    }
    Ok(())
}

fn check_addrs_are_local(addrs: &[IpAddr]) -> Result<(), DiscoveryError> {
    if addrs.is_empty() {
        return Ok(());
    }
    let interfaces =
        if_addrs::get_if_addrs().map_err(|e| DiscoveryError(format!("cannot list network interfaces: {e}")))?;
    match addrs.iter().find(|a| !interfaces.iter().any(|i| i.ip() == **a)) {
        Some(missing) => Err(DiscoveryError(format!("no network interface of this machine has the address {missing}"))),
        None => Ok(()),
    }
}

/// Reads a peer from its resolved service; the reason when it is not a usable povpoi node.
fn sighting_from(service: &ResolvedService) -> Result<Sighting, &'static str> {
    let heard = advert::read_txt(|key| service.get_property_val_str(key))?;
    let ip = best_addr(service.get_addresses()).ok_or("no address")?;
    let addr = match ip {
        ScopedAddr::V4(ip) => SocketAddr::new(IpAddr::V4(ip), service.get_port()),
        ScopedAddr::V6(ip, scope) => SocketAddr::V6(SocketAddrV6::new(ip, service.get_port(), 0, scope)),
    };
    Ok(Sighting::heard(heard, addr))
}

enum ScopedAddr {
    V4(std::net::Ipv4Addr),
    V6(std::net::Ipv6Addr, u32),
}

/// IPv4 before IPv6 (the existing system and an API bound to `0.0.0.0` speak only IPv4), and
/// within each, a routable address before loopback, then the lowest so the choice is stable.
fn best_addr(addrs: &std::collections::HashSet<ScopedIp>) -> Option<ScopedAddr> {
    let v4 = addrs.iter().filter_map(|a| match a.to_ip_addr() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    });
    if let Some(ip) = v4.min_by_key(|ip| (ip.is_loopback(), *ip)) {
        return Some(ScopedAddr::V4(ip));
    }
    addrs
        .iter()
        .filter_map(|a| match a {
            // A link-local address means nothing without the interface it was seen on.
            ScopedIp::V6(v6) => {
                let link_local = (v6.addr().segments()[0] & 0xffc0) == 0xfe80;
                Some((*v6.addr(), if link_local { v6.scope_id().index } else { 0 }))
            }
            _ => None,
        })
        .min_by_key(|(ip, _)| (ip.is_loopback(), *ip))
        .map(|(ip, scope)| ScopedAddr::V6(ip, scope))
}

fn lock(published: &Mutex<Published>) -> MutexGuard<'_, Published> {
    published.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command as Process, Stdio};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    fn id(text: &str) -> DeviceId {
        text.parse().unwrap()
    }

    fn advert(device: &str, name: &str, port: u16, addrs: &[&str]) -> Advert {
        Advert {
            poi: advert::Advert {
                device_id: id(device),
                device_name: name.into(),
                sync_group: "troupe".into(),
                protocol: povpoi_core::sync::PROTOCOL_VERSION,
                digest: "0123abcd".into(),
                port,
            },
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_sighting_reads_back_what_was_advertised() {
        let ours = advert("A1:B2:C3:D4:E5:F6", "Left \"poi\" ü", 8080, &["fe80::1", "127.0.0.1", "192.168.4.2"]);
        let resolved = service_info(&ours, 7).unwrap().as_resolved_service();
        assert_eq!(resolved.get_property_val_str("seq"), Some("7"));
        let seen = sighting_from(&resolved).unwrap();
        assert_eq!(
            seen,
            Sighting {
                device_id: ours.poi.device_id,
                device_name: ours.poi.device_name.clone(),
                sync_group: ours.poi.sync_group.clone(),
                protocol: ours.poi.protocol,
                digest: ours.poi.digest.clone(),
                addr: "192.168.4.2:8080".parse().unwrap(),
            }
        );
        let only_v6 = advert("A1:B2:C3:D4:E5:F6", "x", 80, &["fd00::7"]);
        let seen = sighting_from(&service_info(&only_v6, 0).unwrap().as_resolved_service()).unwrap();
        assert_eq!(seen.addr, "[fd00::7]:80".parse().unwrap());
    }

    fn resolved_with(properties: &[(&str, &str)]) -> ResolvedService {
        ServiceInfo::new(SERVICE_TYPE, "povpoi-0000-x", "povpoi-0000.local.", "10.0.0.2", 80, properties)
            .unwrap()
            .as_resolved_service()
    }

    #[test]
    fn services_without_a_valid_id_or_protocol_are_ignored() {
        assert_eq!(sighting_from(&resolved_with(&[("protocol", "1")])), Err("no deviceId"));
        assert!(sighting_from(&resolved_with(&[("deviceId", "A1:B2"), ("protocol", "1")])).is_err());
        assert_eq!(sighting_from(&resolved_with(&[("deviceId", "A1:B2:C3:D4:E5:F6")])), Err("no protocol"));
        assert!(sighting_from(&resolved_with(&[("deviceId", "A1:B2:C3:D4:E5:F6"), ("protocol", "x")])).is_err());
        // The existing system's two keys alone are enough once a protocol is given.
        let seen = sighting_from(&resolved_with(&[("deviceId", "A1:B2:C3:D4:E5:F6"), ("protocol", "1")])).unwrap();
        assert_eq!(seen.device_name, "POV Poi E5:F6");
        assert_eq!(seen.sync_group, "");
        assert_eq!(seen.addr, "10.0.0.2:80".parse().unwrap());
    }

    #[test]
    fn unusable_addresses_are_refused_before_any_daemon_starts() {
        assert!(check_advert(&advert("A1:B2:C3:D4:E5:F6", "x", 80, &["0.0.0.0"])).is_err());
        assert!(check_advert(&advert("A1:B2:C3:D4:E5:F6", "x", 80, &["224.0.0.251"])).is_err());
        assert!(check_advert(&advert("A1:B2:C3:D4:E5:F6", "x", 80, &["127.0.0.1"])).is_ok());
        assert!(check_addrs_are_local(&["127.0.0.1".parse().unwrap()]).is_ok());
        // TEST-NET-3: on no machine's interface.
        assert!(check_addrs_are_local(&["203.0.113.77".parse().unwrap()]).is_err());
    }

    /// Set (to the namespace's name) only for the test binary run inside the namespace.
    const IN_NETNS: &str = "POVPOI_DISCOVERY_TEST_NETNS";
    const INNER_TEST: &str = "real_mdns_between_nodes_inside_the_namespace";

    /// A network namespace that is deleted when dropped, whatever happened meanwhile.
    struct Netns(String);

    impl Netns {
        fn create(name: &str) -> Result<Netns, String> {
            // A test process killed outright never ran its Drop: remove what it left.
            if let Ok(list) = Process::new("ip").args(["netns", "list"]).output() {
                for line in String::from_utf8_lossy(&list.stdout).lines() {
                    let stale = line.split_whitespace().next().unwrap_or_default();
                    let pid = stale.strip_prefix("povpoi-disc-").and_then(|p| p.parse::<u32>().ok());
                    if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                        let _ = Process::new("ip").args(["netns", "delete", stale]).status();
                    }
                }
            }
            let out = Process::new("ip").args(["netns", "add", name]).output().map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            Ok(Netns(name.to_string()))
        }

        fn run(&self, command: &[&str]) {
            let out = Process::new("ip").args(["netns", "exec", &self.0]).args(command).output().unwrap();
            assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Process::new("ip").args(["netns", "delete", &self.0]).status();
        }
    }

    /// Real mDNS between real daemons, in a namespace with nothing but loopback, so no packet
    /// can reach a real network.
    #[test]
    fn nodes_find_each_other_in_a_private_network_namespace() {
        let ns = match Netns::create(&format!("povpoi-disc-{}", std::process::id())) {
            Ok(ns) => ns,
            // A machine without namespaces may skip this only when told to; CI must not.
            Err(why) if std::env::var_os("POVPOI_SKIP_NETNS").is_some() => {
                println!("SKIPPED (POVPOI_SKIP_NETNS): cannot create network namespaces: {why}");
                return;
            }
            Err(why) => panic!(
                "cannot create network namespaces: {why}; run as root with iproute2, or set POVPOI_SKIP_NETNS=1 to skip"
            ),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns.run(&["ip", "link", "set", "lo", "multicast", "on"]);
        ns.run(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]);

        let module = module_path!().split_once("::").unwrap().1;
        let mut child = Process::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::{INNER_TEST}"), "--ignored", "--nocapture", "--test-threads=1"])
            .env(IN_NETNS, &ns.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        println!("--- inside the namespace ---\n{stdout}{stderr}");
        let status = status.expect("the test inside the namespace did not finish within 120 s");
        assert!(status.success(), "the test inside the namespace failed: {status}");
        // A wrong test name would run nothing and still succeed.
        assert!(stdout.contains("1 passed"), "the test inside the namespace did not run");
    }

    /// Waits (bounded) for a sighting matching `want`, checking that a node never reports itself.
    fn wait_for(
        rx: &mut UnboundedReceiver<Sighting>,
        me: DeviceId,
        within: Duration,
        want: impl Fn(&Sighting) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            match rx.try_recv() {
                Ok(seen) => {
                    assert_ne!(seen.device_id, me, "a node reported itself");
                    if want(&seen) {
                        return Some(start.elapsed());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        None
    }

    fn drain(rx: &mut UnboundedReceiver<Sighting>) {
        while rx.try_recv().is_ok() {}
    }

    #[test]
    #[ignore = "sends real multicast: run only by nodes_find_each_other_in_a_private_network_namespace"]
    fn real_mdns_between_nodes_inside_the_namespace() {
        let Ok(ns) = std::env::var(IN_NETNS) else {
            panic!(
                "refusing to run: {IN_NETNS} is not set. This test sends real mDNS multicast and runs only inside \
                 the network namespace that nodes_find_each_other_in_a_private_network_namespace creates."
            )
        };
        let interfaces = if_addrs::get_if_addrs().unwrap();
        let foreign: Vec<_> = interfaces.iter().filter(|i| !i.is_loopback()).map(|i| i.name.as_str()).collect();
        assert!(foreign.is_empty(), "refusing to run: interfaces other than loopback are present: {foreign:?}");
        println!(
            "inside network namespace {ns}; interfaces: {:?}",
            interfaces.iter().map(|i| &i.name).collect::<Vec<_>>()
        );

        let limit = Duration::from_secs(10);
        let quiet = Duration::from_secs(600);
        let a_ad = advert("A1:B2:C3:D4:E5:F6", "Left", 18001, &["127.0.0.1"]);
        let b_ad = advert("11:22:33:44:55:66", "Right", 18002, &["127.0.0.1"]);
        let (a_tx, mut a_rx) = unbounded_channel();
        let (b_tx, mut b_rx) = unbounded_channel();
        // Re-announcements out of the way so that each sighting below has one cause.
        let started = Instant::now();
        let a = Discovery::start_with(&a_ad, a_tx, quiet).unwrap();
        let b = Discovery::start_with(&b_ad, b_tx, quiet).unwrap();

        let expect_b = Sighting {
            device_id: b_ad.poi.device_id,
            device_name: "Right".into(),
            sync_group: "troupe".into(),
            protocol: b_ad.poi.protocol,
            digest: "0123abcd".into(),
            addr: "127.0.0.1:18002".parse().unwrap(),
        };
        wait_for(&mut a_rx, a_ad.poi.device_id, limit, |s| *s == expect_b).expect("A never saw B");
        println!("A saw B (all TXT fields intact) {:?} after start", started.elapsed());
        wait_for(&mut b_rx, b_ad.poi.device_id, limit, |s| {
            s.device_id == a_ad.poi.device_id && s.device_name == "Left" && s.addr == "127.0.0.1:18001".parse().unwrap()
        })
        .expect("B never saw A");
        println!("B saw A {:?} after start", started.elapsed());

        // An update reaches the other node.
        drain(&mut a_rx);
        let mut renamed = b_ad.clone();
        (renamed.poi.device_name, renamed.poi.digest) = ("Right (renamed)".into(), "feedbeef".into());
        b.update(&renamed).unwrap();
        let t = wait_for(&mut a_rx, a_ad.poi.device_id, limit, |s| {
            s.device_id == b_ad.poi.device_id && s.device_name == "Right (renamed)" && s.digest == "feedbeef"
        })
        .expect("A never saw B's new name");
        println!("A saw B's update after {t:?}");
        let mut moved = renamed.clone();
        moved.poi.port = 1;
        assert!(b.update(&moved).is_err(), "the port cannot change");

        // A refresh reports known peers again, with nothing new on the wire from them.
        std::thread::sleep(Duration::from_millis(1500));
        drain(&mut a_rx);
        a.refresh().unwrap();
        let t = wait_for(&mut a_rx, a_ad.poi.device_id, limit, |s| {
            s.device_id == b_ad.poi.device_id && s.digest == "feedbeef"
        })
        .expect("a refresh did not report B again");
        println!("A re-reported B {t:?} after refresh()");

        // Re-announcements report a live node again, unchanged; C also shares A's last four digits.
        let c_ad = advert("AA:BB:CC:DD:E5:F6", "Third", 18003, &["127.0.0.1"]);
        let (c_tx, mut c_rx) = unbounded_channel();
        let c = Discovery::start_with(&c_ad, c_tx, Duration::from_secs(1)).unwrap();
        let t = wait_for(&mut a_rx, a_ad.poi.device_id, limit, |s| s.device_id == c_ad.poi.device_id)
            .expect("A never saw C");
        println!("A saw C (same host name suffix as A) after {t:?}");
        wait_for(&mut c_rx, c_ad.poi.device_id, limit, |s| s.device_id == a_ad.poi.device_id).expect("C never saw A");
        wait_for(&mut c_rx, c_ad.poi.device_id, limit, |s| s.device_id == b_ad.poi.device_id).expect("C never saw B");
        drain(&mut a_rx);
        let t = wait_for(&mut a_rx, a_ad.poi.device_id, limit, |s| {
            s.device_id == c_ad.poi.device_id && s.device_name == "Third"
        })
        .expect("C's re-announcement was not reported");
        println!("A saw C's re-announcement after {t:?} (interval 1 s)");

        // A goodbye: watched with a plain mdns-sd browser, as the API has no removal event.
        let observer = ServiceDaemon::new().unwrap();
        let events = observer.browse(SERVICE_TYPE).unwrap();
        let b_fullname = format!("{}.{SERVICE_TYPE}", advert::instance_name(b_ad.poi.device_id));
        let deadline = Instant::now() + limit;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(remaining).expect("the observer never resolved B") {
                ServiceEvent::ServiceResolved(s) if s.fullname == b_fullname => {
                    let addrs: Vec<IpAddr> = s.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
                    assert_eq!(addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()], "only the listed address");
                    assert_eq!(s.host, "povpoi-5566.local.");
                    break;
                }
                _ => {}
            }
        }
        let stopping = Instant::now();
        b.shutdown();
        let took = stopping.elapsed();
        println!("B's shutdown() took {took:?}");
        assert!(took <= Duration::from_millis(1200), "shutdown took {took:?}");
        let deadline = Instant::now() + limit;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(remaining).expect("the observer never saw B leave") {
                ServiceEvent::ServiceRemoved(_, name) if name == b_fullname => break,
                _ => {}
            }
        }
        println!("the observer saw B removed {:?} after shutdown() began", stopping.elapsed());

        let _ = observer.shutdown().map(|s| s.recv_timeout(Duration::from_secs(1)));
        a.shutdown();
        // C stops on drop, without waiting.
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
    }
}
