//! The HTTP server (picoserve): every request, whatever its method and path, is collected into
//! a plain [`povpoi_app::api::Request`] and handed to one [`Application::handle`], whose
//! answer is sent back. The application is the shared one (`crate::poi`), the same code a
//! node runs for these endpoints.
//!
//! What the platform does itself: parse HTTP/1.1 (picoserve), keep at most
//! [`crate::net::HTTP_CONNECTIONS`] connections, time out slow clients (picoserve's timeouts
//! below), and refuse a body over [`MAX_BODY_BYTES`] with 413 before reading it. Streaming
//! bodies (uploads bigger than that) and event streams (`/api/events`) are not offered yet;
//! lists the application sends item by item (`GET /api/images`) go out chunked, one item per
//! chunk, each read under the lock on its own.

use core::cell::Cell;
use core::net::SocketAddr;

use embassy_net::tcp::TcpSocket;
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_time::Duration;
use picoserve::Router;
use picoserve::routing::ServicePathRouter;

// The service is host-independent (no embassy here): crates/povpoi-app/tests/firmware_http.rs
// compiles it and serves the shared application through it with picoserve on tokio.
mod service;
pub use povpoi_app::api::{ApiError, Request, Response};
pub use povpoi_app::content::{Listing, ListingCut};
pub use povpoi_app::upload::Upload;
pub use service::{Application, MAX_BODY_BYTES, MAX_HEADERS, NoStorage, Service};

/// Room for the request line and headers, per connection: a phone browser's headers to a poi
/// (no cookies) are ~500 bytes, a peer's signature headers ~300 more; a request whose head does
/// not fit is answered 400 by picoserve.
pub const HEAD_BUFFER_BYTES: usize = 1280;

/// picoserve's routing, with every path going to the application.
type AppRouter<'a, A> = Router<ServicePathRouter<Service<'a, A>>>;

/// Connection timeouts: a phone on a weak link gets seconds, a stuck client is cut off. A
/// request is read whole within [`service::READ_REQUEST_S`]: an upload's 38 KB come through
/// a 1 KiB receive window and erase 10 flash sectors on the way.
pub const CONFIG: picoserve::Config = picoserve::Config::new(picoserve::Timeouts {
    start_read_request: Duration::from_secs(5),
    persistent_start_read_request: Duration::from_secs(2),
    read_request: Duration::from_secs(service::READ_REQUEST_S),
    write: Duration::from_secs(5),
})
.keep_connection_alive();

/// Serves connections one after another on [`crate::net::HTTP_PORT`]; run one per connection
/// wanted at once (`id` names it in the log).
pub async fn serve<A: Application>(id: usize, stack: Stack<'static>, app: &'static A) -> ! {
    let mut head = [0u8; HEAD_BUFFER_BYTES];
    let mut rx = [0u8; crate::net::TCP_BUFFER_BYTES];
    let mut tx = [0u8; crate::net::TCP_BUFFER_BYTES];
    // picoserve does not tell a handler who called: the connection is accepted here, and its
    // remote end kept for the application (a peer calling in is a peer to answer and call).
    let remote = Cell::new(SocketAddr::from(([0, 0, 0, 0], 0)));
    let router: AppRouter<'_, A> = Router::from_service(Service::new(app, &remote));
    loop {
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        if let Err(e) = socket.accept(crate::net::HTTP_PORT).await {
            log::warn!("HTTP {id}: accept: {e:?}");
            continue;
        }
        if let Some(IpEndpoint { addr: IpAddress::Ipv4(ip), port }) = socket.remote_endpoint() {
            remote.set(SocketAddr::from((ip.octets(), port)));
        }
        socket.set_keep_alive(Some(Duration::from_secs(30)));
        socket.set_timeout(Some(Duration::from_secs(45)));
        if let Err(e) = picoserve::Server::new(&router, &CONFIG, &mut head).serve(socket).await {
            log::debug!("HTTP {id}: {e:?}");
        }
    }
}
