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
//! - Other poi are heard on the same socket: their announcements (every 15 s, nodes and
//!   boards alike) and the answers to the query for `_povpoi._tcp.local` this poi sends at
//!   start and then with its own announcements at doubling intervals. Each service whose
//!   TXT, SRV and A records arrive in one packet is read with
//!   [`povpoi_peer::advert::read_txt`] and handed to the `heard` callback of
//!   [`Responder::run`] (the application's peer table).

pub mod records;

use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use edge_mdns::buf::VecBufAccess;
use edge_mdns::io::{Mdns, PORT, bind};
use edge_mdns::{
    ChainedHandler, HostAnswers, HostAnswersMdnsHandler, HostQuestions, MdnsError, MdnsHandler, MdnsRequest,
    MdnsResponse,
};
use edge_nal::UdpSplit;
use edge_nal_embassy::{Udp, UdpBuffers};
use embassy_futures::select::{Either, select};
use embassy_net::Stack;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Timer};
use povpoi_app::peers::Sighting;
use povpoi_peer::advert::Advert;
use static_cell::StaticCell;

use self::records::{AdvertAnswers, Browse, TTL_SECS, read_services};

/// How often the poi re-announces itself: the node's interval, well inside the 120 s after
/// which a peer is taken for gone.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);

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

    /// Answers queries and announces on the stack's address `ip` until the poi stops; every
    /// poi heard goes to `heard`.
    pub async fn run(&self, stack: Stack<'static>, ip: Ipv4Addr, heard: &dyn Fn(Sighting)) -> ! {
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
            let handler = ChainedHandler::new(Listener { heard }, answers);
            let reannounce = async {
                let mut cycle: u32 = 0;
                loop {
                    // Peers answer the query at once; their own announcements come later. Asked
                    // at cycles 0, 1, 2, 4, 8, ... (RFC 6762 5.2: intervals at least doubling),
                    // as every poi's announcements keep the table full after that. Id 0 as
                    // RFC 6762 18.1 asks of a multicast query.
                    if (cycle == 0 || cycle.is_power_of_two())
                        && let Err(e) = mdns.query(|buf| Browse.query(0, buf)).await
                    {
                        log::debug!("mDNS query: {e:?}");
                    }
                    cycle = cycle.saturating_add(1);
                    // Either the interval passed or the advert changed: a new seq either way.
                    select(Timer::after(ANNOUNCE_EVERY), self.changed.wait()).await;
                    self.next_seq();
                    announce.signal(());
                }
            };
            match select(mdns.run(handler), reannounce).await {
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
        AdvertAnswers { advert: &advert, seq, ip: self.ip, ttl_secs: TTL_SECS }.visit(f)
    }
}

/// Reads other poi's services from mDNS answers; never answers itself.
struct Listener<'h> {
    heard: &'h dyn Fn(Sighting),
}

impl MdnsHandler for Listener<'_> {
    fn handle<'a>(&mut self, request: MdnsRequest<'_>, _: &'a mut [u8]) -> Result<MdnsResponse<'a>, MdnsError> {
        if let MdnsRequest::Request { data, legacy: false, .. } = request {
            // A packet that is not a well-formed answer tells nothing about peers.
            for seen in read_services(data).unwrap_or_default() {
                (self.heard)(seen);
            }
        }
        Ok(MdnsResponse::None)
    }
}
