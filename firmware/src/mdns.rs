//! The mDNS / DNS-SD responder (edge-mdns): advertises `_povpoi._tcp` with the names and TXT
//! records of [`povpoi_peer::advert`], as the node does, so a Linux node finds the board.
//!
//! - Instance `povpoi-E5F6-A1B2C3D4E5F6` (the last four hex digits, then the whole device id),
//!   host `povpoi-E5F6.local` (the existing system's name).
//! - TXT `deviceId`, `deviceName`, `syncGroup`, `protocol`, `digest`, and `seq`.
//! - Every [`ANNOUNCE_EVERY`], and at once when [`Responder::update`] changes the advert, an
//!   unsolicited announcement with `seq` incremented: the node's mDNS library reports a service
//!   again only when a record changed, and the node times out peers it stops hearing.
//!
//! Browsing for other poi is not done yet (docs/FIRMWARE.md): what a browse finds would go to
//! `povpoi_app::App::peer_seen`; queries can go out through the same socket.

use core::cell::RefCell;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use edge_mdns::buf::VecBufAccess;
use edge_mdns::domain::base::Ttl;
use edge_mdns::host::{Host, Service, ServiceAnswers};
use edge_mdns::io::{Mdns, PORT, bind};
use edge_mdns::{HostAnswers, HostAnswersMdnsHandler, MdnsError};
use edge_nal::UdpSplit;
use edge_nal_embassy::{Udp, UdpBuffers};
use embassy_futures::select::{Either, select};
use embassy_net::Stack;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Timer};
use povpoi_peer::advert::{self, Advert, SERVICE, TRANSPORT};
use static_cell::StaticCell;

/// How often the poi re-announces itself: the node's interval, well inside the 120 s after
/// which a peer is taken for gone.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);

/// How long other hosts may cache the records: the usual DNS-SD 2 minutes.
const TTL_SECS: u32 = 120;

/// One mDNS packet received: the Ethernet MTU's UDP payload (a phone's query with a list of
/// known answers can be that long).
const RECEIVE_BYTES: usize = 1472;

/// One mDNS packet sent: our six records are ~450 bytes with the longest names and TXT values
/// a poi allows.
const SEND_BYTES: usize = 768;

/// The advert and its change signal, shared by the responder task and whoever updates it.
pub struct Responder {
    advert: Mutex<CriticalSectionRawMutex, RefCell<(Advert, u32)>>,
    changed: Signal<CriticalSectionRawMutex, ()>,
}

impl Responder {
    /// A responder that will advertise `advert`, starting from `seq` (random, so a restarted
    /// poi's first announcement differs from the one peers still cache).
    pub fn new(advert: Advert, seq: u32) -> Self {
        Responder { advert: Mutex::new(RefCell::new((advert, seq))), changed: Signal::new() }
    }

    /// Advertises `advert` from now on, announcing it at once if it changed.
    pub fn update(&self, advert: Advert) {
        let changed = self.advert.lock(|cell| {
            let mut current = cell.borrow_mut();
            let changed = current.0 != advert;
            current.0 = advert;
            changed
        });
        if changed {
            self.changed.signal(());
        }
    }

    fn next_seq(&self) {
        self.advert.lock(|cell| {
            let mut current = cell.borrow_mut();
            current.1 = current.1.wrapping_add(1);
        });
    }

    fn snapshot(&self) -> (Advert, u32) {
        self.advert.lock(|cell| cell.borrow().clone())
    }

    /// Answers queries and announces on the stack's address `ip` until the poi stops.
    pub async fn run(&self, stack: Stack<'static>, ip: Ipv4Addr) -> ! {
        static SOCKET_BUFFERS: StaticCell<UdpBuffers<1, SEND_BYTES, RECEIVE_BYTES, 2>> = StaticCell::new();
        static RECV: StaticCell<VecBufAccess<NoopRawMutex, RECEIVE_BYTES>> = StaticCell::new();
        static SEND: StaticCell<VecBufAccess<NoopRawMutex, SEND_BYTES>> = StaticCell::new();
        let udp = Udp::new(stack, SOCKET_BUFFERS.init(UdpBuffers::new()));
        let (recv_buf, send_buf) = (&*RECV.init(VecBufAccess::new()), &*SEND.init(VecBufAccess::new()));
        let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT));
        loop {
            let mut socket = match bind(&udp, any, Some(ip), None).await {
                Ok(socket) => socket,
                Err(e) => {
                    log::warn!("mDNS cannot bind: {e:?}");
                    Timer::after(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let (recv, send) = socket.split();
            let announce = Signal::<NoopRawMutex, ()>::new();
            let mdns = Mdns::<_, _, _, _, _, NoopRawMutex>::new(
                Some(ip),
                None,
                recv,
                send,
                recv_buf,
                send_buf,
                esp_hal::rng::Rng::new(),
                &announce,
            );
            let answers = HostAnswersMdnsHandler::new(Answers { responder: self, ip });
            let reannounce = async {
                loop {
                    // Either the interval passed or the advert changed: a new seq either way.
                    select(Timer::after(ANNOUNCE_EVERY), self.changed.wait()).await;
                    self.next_seq();
                    announce.signal(());
                }
            };
            match select(mdns.run(answers), reannounce).await {
                Either::First(Err(e)) => log::warn!("mDNS responder stopped: {e:?}; restarting"),
                Either::First(Ok(())) | Either::Second(()) => {}
            }
            Timer::after(Duration::from_secs(1)).await;
        }
    }
}

/// The records of the current advert, built afresh for every answer.
struct Answers<'a> {
    responder: &'a Responder,
    ip: Ipv4Addr,
}

impl HostAnswers for Answers<'_> {
    fn visit<F, E>(&self, f: F) -> Result<(), E>
    where
        F: FnMut(edge_mdns::HostAnswer) -> Result<(), E>,
        E: From<MdnsError>,
    {
        // A copy, so the lock is not held while the packet is composed.
        let (advert, seq) = self.responder.snapshot();
        let instance = advert::instance_name(advert.device_id);
        let hostname = advert::host_label(advert.device_id);
        let records = advert::txt_records(&advert.announcement(), seq);
        let txt = records.each_ref().map(|(key, value)| (*key, value.as_str()));
        let host =
            Host { hostname: &hostname, ipv4: self.ip, ipv6: Ipv6Addr::UNSPECIFIED, ttl: Ttl::from_secs(TTL_SECS) };
        let service = Service {
            name: &instance,
            priority: 0,
            weight: 0,
            service: SERVICE,
            protocol: TRANSPORT,
            port: advert.port,
            service_subtypes: &[],
            txt_kvs: &txt,
        };
        ServiceAnswers::new(&host, &service).visit(f)
    }
}
