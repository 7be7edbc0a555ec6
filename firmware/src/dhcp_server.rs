//! The DHCP server of the poi's own access point (edge-dhcp), so a phone that joins gets an
//! address in 192.168.4.0/24 and can open the app at 192.168.4.1.

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use edge_dhcp::io::{DEFAULT_SERVER_PORT, server::run};
use edge_dhcp::server::{Server, ServerOptions};
use edge_nal::UdpBind;
use edge_nal_embassy::{Udp, UdpBuffers};
use embassy_net::Stack;
use embassy_time::{Duration, Timer};
use static_cell::StaticCell;

use crate::wifi::{ACCESS_POINT_ADDRESS, ACCESS_POINT_CLIENTS};

/// Leases the server remembers: one per client the access point admits.
const LEASES: usize = ACCESS_POINT_CLIENTS as usize;

/// Serves addresses .50-.200 of the access point's /24 for as long as the poi runs.
pub async fn serve(stack: Stack<'static>) -> ! {
    static BUFFERS: StaticCell<UdpBuffers<1, 576, 576, 2>> = StaticCell::new();
    let udp = Udp::new(stack, BUFFERS.init(UdpBuffers::new()));
    let mut server = Server::<_, LEASES>::new_with_et(ACCESS_POINT_ADDRESS);
    let mut gateway = [Ipv4Addr::UNSPECIFIED; 1];
    // The poi as gateway, without DNS: phones keep their mobile data for the internet and still
    // reach the poi, and none of them is told this network leads anywhere else.
    let options = ServerOptions::new(ACCESS_POINT_ADDRESS, Some(&mut gateway));
    // A DHCP message is at most 576 bytes unless the client says otherwise (RFC 2131).
    let mut buf = [0u8; 576];
    loop {
        let bound = udp.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_SERVER_PORT))).await;
        match bound {
            Ok(mut socket) => {
                if let Err(e) = run(&mut server, &options, &mut socket, &mut buf).await {
                    log::warn!("DHCP server stopped: {e:?}; restarting");
                }
            }
            Err(e) => log::warn!("DHCP server cannot bind: {e:?}"),
        }
        Timer::after(Duration::from_secs(1)).await;
    }
}
