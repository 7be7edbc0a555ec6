//! The network stack (embassy-net over smoltcp): its addresses, its socket budget, and the
//! sockets the shared application is handed.
//!
//! Every socket is counted here, because smoltcp's socket set is fixed when the stack is made
//! and a socket past it panics:
//!
//! | socket | count | why |
//! |---|---|---|
//! | HTTP server connections | [`HTTP_CONNECTIONS`] | a phone's browser opens several at once for the app's files |
//! | peer sync client | [`SYNC_CLIENT_CONNECTIONS`] | sessions this poi starts with its peers, one per peer at a time |
//! | show clock (UDP, on the HTTP port) | 1 | probes and answers, as the node does |
//! | mDNS (UDP 5353) | 1 | the responder |
//! | DHCP server (UDP 67) | 1 | access-point mode only |
//! | DHCP client | 1 | station mode only (smoltcp's own socket) |

use core::net::{Ipv4Addr, SocketAddr};

use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Config, DhcpConfig, Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use esp_radio::wifi::Interface;
use static_cell::StaticCell;

use crate::wifi::{ACCESS_POINT_ADDRESS, Link};

/// The HTTP API's port; the show clock's UDP socket uses the same number, as on the node.
pub const HTTP_PORT: u16 = 80;

/// HTTP connections served at once. A browser loading the app opens up to six to one host but
/// queues the rest on keep-alive connections; the app then sends a board two requests at a
/// time (it has no event stream), which leaves the third to a peer's session, within the
/// RAM budget (each costs ~4.5 KB of static RAM).
pub const HTTP_CONNECTIONS: usize = 3;

/// Sync sessions this poi runs at once as the client (the rest wait their turn).
pub const SYNC_CLIENT_CONNECTIONS: usize = 2;

/// Every socket the stack can hold: the table in the module doc.
pub const SOCKETS: usize = HTTP_CONNECTIONS + SYNC_CLIENT_CONNECTIONS + 1 + 1 + 1 + 1;

/// Receive and send buffers of each TCP connection. Less than one full segment (1460 bytes): the
/// peer then sends 1 KB segments, ~100 KB/s at a 10 ms Wi-Fi round trip, plenty for a poi's
/// requests and images, and the 256 KB static RAM budget has no room for more.
pub const TCP_BUFFER_BYTES: usize = 1024;

/// Buffers of the show clock's socket. Its datagrams are small (a probe or an answer is well
/// under 200 bytes); four of them queued cover a burst from a troupe of poi.
const SHOW_CLOCK_BUFFER_BYTES: usize = 512;
const SHOW_CLOCK_DATAGRAMS: usize = 4;

/// The sync client's connection pool, for the sessions the board starts
/// ([`crate::sync_client`]).
pub type SyncClient = TcpClient<'static, SYNC_CLIENT_CONNECTIONS, TCP_BUFFER_BYTES, TCP_BUFFER_BYTES>;

/// The stack's address configuration for `link`: DHCP (announcing `hostname`) on a network,
/// the fixed [`ACCESS_POINT_ADDRESS`] on the poi's own access point.
pub fn config(link: &Link, hostname: &str) -> Config {
    match link {
        Link::Station { .. } => {
            let mut dhcp = DhcpConfig::default();
            // Routers that register DHCP names make the poi reachable as povpoi-XXXX there too.
            dhcp.hostname = heapless::String::try_from(hostname).ok();
            Config::dhcpv4(dhcp)
        }
        Link::AccessPoint { .. } => Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(ACCESS_POINT_ADDRESS, 24),
            gateway: None,
            dns_servers: heapless::Vec::new(),
        }),
    }
}

/// Makes the stack over `interface`; the runner must then be run (`Runner::run`) on a task.
pub fn stack(interface: Interface, config: Config, seed: u64) -> (Stack<'static>, Runner<'static, Interface>) {
    static RESOURCES: StaticCell<StackResources<SOCKETS>> = StaticCell::new();
    embassy_net::new(interface, config, RESOURCES.init(StackResources::new()), seed)
}

/// The sync client's pool of [`SYNC_CLIENT_CONNECTIONS`] connections. Call once.
pub fn sync_client(stack: Stack<'static>) -> SyncClient {
    static STATE: StaticCell<TcpClientState<SYNC_CLIENT_CONNECTIONS, TCP_BUFFER_BYTES, TCP_BUFFER_BYTES>> =
        StaticCell::new();
    TcpClient::new(stack, STATE.init(TcpClientState::new()))
}

/// The show clock's UDP socket, bound to [`HTTP_PORT`] on every address. Call once.
pub fn show_clock_socket(stack: Stack<'static>) -> UdpSocket<'static> {
    struct Buffers {
        rx_meta: [PacketMetadata; SHOW_CLOCK_DATAGRAMS],
        rx: [u8; SHOW_CLOCK_BUFFER_BYTES],
        tx_meta: [PacketMetadata; SHOW_CLOCK_DATAGRAMS],
        tx: [u8; SHOW_CLOCK_BUFFER_BYTES],
    }
    static BUFFERS: StaticCell<Buffers> = StaticCell::new();
    let b = BUFFERS.init(Buffers {
        rx_meta: [PacketMetadata::EMPTY; SHOW_CLOCK_DATAGRAMS],
        rx: [0; SHOW_CLOCK_BUFFER_BYTES],
        tx_meta: [PacketMetadata::EMPTY; SHOW_CLOCK_DATAGRAMS],
        tx: [0; SHOW_CLOCK_BUFFER_BYTES],
    });
    let mut socket = UdpSocket::new(stack, &mut b.rx_meta, &mut b.rx, &mut b.tx_meta, &mut b.tx);
    if let Err(e) = socket.bind(HTTP_PORT) {
        // Only a second bind of the same port fails, which start-up never does.
        log::error!("cannot bind the show clock's socket: {e:?}");
    }
    socket
}

/// On a board without storage (no application): reads and drops what arrives, so a peer's
/// probes get no answer.
pub async fn drain_show_clock(socket: UdpSocket<'static>) -> ! {
    let mut buf = [0u8; 256];
    let mut dropped: u32 = 0;
    loop {
        if let Ok((_, meta)) = socket.recv_from(&mut buf).await {
            dropped = dropped.wrapping_add(1);
            // The first one says why nobody answers; the rest would only flood the log.
            if dropped == 1 {
                log::info!("show clock datagram from {} dropped: no storage, no application", meta.endpoint);
            }
        }
    }
}

/// The poi's IPv4 address once the stack has one (at once on the access point).
pub async fn wait_for_address(stack: Stack<'static>) -> Ipv4Addr {
    stack.wait_config_up().await;
    match stack.config_v4() {
        Some(config) => config.address.address(),
        // wait_config_up returned, so there is a config; keep a defined answer anyway.
        None => Ipv4Addr::UNSPECIFIED,
    }
}

/// Where this poi's HTTP API is, for logs.
pub fn api_address(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::new(ip.into(), HTTP_PORT)
}
