//! The shared application on the board: [`povpoi_app::App`] over the flash store, behind a
//! lock the board's tasks share, with the board's clocks. The HTTP connections
//! ([`crate::http`]), the show clock's UDP socket ([`serve_show_clock`]), the mDNS advert
//! ([`keep_advert`]) and the column clock (the [`ColumnSource`] impl) all go through it.
//!
//! One executor runs every task on one core, so the lock is a `RefCell` in a no-op mutex:
//! nothing can take it while another task holds it, as no task awaits while holding it.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::SocketAddr;

use embassy_net::udp::UdpSocket;
use embassy_net::{IpAddress, IpEndpoint};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use esp_hal::rng::{Rng, Trng};
use povpoi_app::clock::RECEIVE_BUFFER;
use povpoi_app::columns::ImageWindow;
use povpoi_app::sessions::AppLock;
use povpoi_app::{App, Now};
use povpoi_core::model::Rgb;
use povpoi_core::render::{DEFAULT_LEDS, Finish, Renderer};
use povpoi_peer::advert::Advert;

use crate::column::{ColumnSource, Dark};
use crate::http::{ApiError, Application, Listing, ListingCut, NoStorage, Request, Response, Upload};
use crate::mdns::Responder;
use crate::settings::{BuildWifiSettings, FlashWifiSettings};
use crate::setup::{self, OnAir};
use crate::storage::Store;

/// The application over the flash store.
pub type Poi = App<&'static Store>;

/// The application, shared by the board's tasks.
pub struct Shared {
    app: Mutex<NoopRawMutex, RefCell<Poi>>,
    /// The columns of the image playing, read from the flash, and how many reads failed
    /// (only the column clock uses them).
    window: Mutex<NoopRawMutex, RefCell<(ImageWindow, u32)>>,
}

impl Shared {
    /// The application.
    pub fn new(app: Poi) -> Shared {
        Shared { app: Mutex::new(RefCell::new(app)), window: Mutex::new(RefCell::new((ImageWindow::new(), 0))) }
    }
}

impl AppLock for Shared {
    type Storage = &'static Store;

    /// Runs `f` on the application with the clocks read now. The board has no battery-backed
    /// clock: real time is what the application learned from peers' signed requests
    /// ([`povpoi_app::time::LearnedTime`]), its uptime until then.
    fn with<R>(&self, f: impl FnOnce(&mut Poi, Now) -> R) -> R {
        self.app.lock(|cell| {
            let mut app = cell.borrow_mut();
            let now = app.learned_now(Instant::now().as_micros());
            f(&mut app, now)
        })
    }
}

impl Application for Shared {
    async fn handle(&self, request: Request<'_>) -> Response {
        // Sealed answers need true randomness: the radio, on since start, is its source.
        let Ok(mut rng) = Trng::try_new() else {
            return ApiError::new(503, "no entropy source for sealing answers: the radio is off").response();
        };
        self.with(|app, now| app.handle(&request, now, &mut rng))
    }

    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        self.with(|app, _| app.list_next(listing, out))
    }

    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        self.with(|app, _| app.begin_upload(request))
    }

    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        self.with(|app, _| app.upload_step(upload, input, eof))
    }

    fn finish_upload(&self, upload: Upload<'_>) -> Response {
        self.with(|app, now| app.finish_upload(upload, now))
    }

    fn abandon_upload(&self) {
        self.with(|app, _| app.abandon_upload())
    }
}

/// Set when a Wi-Fi setting changed: the poi restarts once the answer is sent
/// (`main`'s restart task), to join the network set or open its access point.
pub static RESTART: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// What the HTTP server calls: the board's own Wi-Fi setup ([`setup`]), then what it serves.
pub struct Http {
    /// The application, or the 503s of a poi without storage.
    pub served: Served,
    /// Where Wi-Fi settings are kept; `None`: nothing set can be kept.
    pub store: Option<&'static Store>,
    /// The network the poi is on.
    pub on_air: OnAir,
}

impl Application for Http {
    async fn handle(&self, request: Request<'_>) -> Response {
        let authorize = |request: &Request<'_>| match self.served {
            Served::Poi(shared) => shared.with(|app, _| app.authorize(request)),
            Served::NoStorage => Ok(()),
        };
        match setup::route(&request, self.on_air.station, authorize) {
            setup::Route::App => return self.served.handle(request).await,
            setup::Route::Refused(refusal) => return refusal,
            setup::Route::Config => {
                return match (self.served, self.store) {
                    (Served::Poi(shared), Some(store)) => {
                        shared.with(|app, now| app.change_config(&request, now, |c| setup::keep(store, c)))
                    }
                    _ => self.served.handle(request).await,
                };
            }
            setup::Route::Setup => {}
        }
        let answer = match self.store {
            Some(store) => setup::answer(&request, &mut FlashWifiSettings::new(store), &self.on_air),
            None => setup::answer(&request, &mut BuildWifiSettings::from_build(), &self.on_air),
        };
        if answer.restart {
            RESTART.signal(());
        }
        answer.response
    }

    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        self.served.list_next(listing, out)
    }

    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        self.served.begin_upload(request)
    }

    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        self.served.upload_step(upload, input, eof)
    }

    fn finish_upload(&self, upload: Upload<'_>) -> Response {
        self.served.finish_upload(upload)
    }

    fn abandon_upload(&self) {
        self.served.abandon_upload()
    }
}

/// What the board serves: the application, or, without a usable store, 503s and a dark strip.
#[derive(Clone, Copy)]
pub enum Served {
    /// The shared application.
    Poi(&'static Shared),
    /// No store: see [`NoStorage`].
    NoStorage,
}

impl Application for Served {
    async fn handle(&self, request: Request<'_>) -> Response {
        match self {
            Served::Poi(shared) => shared.handle(request).await,
            Served::NoStorage => NoStorage.handle(request).await,
        }
    }

    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        match self {
            Served::Poi(shared) => shared.list_next(listing, out),
            Served::NoStorage => NoStorage.list_next(listing, out),
        }
    }

    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        match self {
            Served::Poi(shared) => shared.begin_upload(request),
            Served::NoStorage => NoStorage.begin_upload(request),
        }
    }

    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        match self {
            Served::Poi(shared) => shared.upload_step(upload, input, eof),
            Served::NoStorage => NoStorage.upload_step(upload, input, eof),
        }
    }

    fn finish_upload(&self, upload: Upload<'_>) -> Response {
        match self {
            Served::Poi(shared) => shared.finish_upload(upload),
            Served::NoStorage => NoStorage.finish_upload(upload),
        }
    }

    fn abandon_upload(&self) {
        match self {
            Served::Poi(shared) => shared.abandon_upload(),
            Served::NoStorage => NoStorage.abandon_upload(),
        }
    }
}

impl ColumnSource for Served {
    fn leds(&self) -> u16 {
        DEFAULT_LEDS
    }

    fn show_time_us(&self, own_us: u64) -> u64 {
        match self {
            Served::Poi(shared) => shared.show_time_us(own_us),
            Served::NoStorage => Dark.show_time_us(own_us),
        }
    }

    fn draw(&self, own_us: u64, renderer: &Renderer, out: &mut [Rgb]) -> (u16, Finish) {
        match self {
            Served::Poi(shared) => shared.draw(own_us, renderer, out),
            Served::NoStorage => Dark.draw(own_us, renderer, out),
        }
    }
}

impl ColumnSource for Shared {
    fn leds(&self) -> u16 {
        DEFAULT_LEDS
    }

    fn show_time_us(&self, own_us: u64) -> u64 {
        self.with(|app, _| app.clock().now(own_us))
    }

    fn draw(&self, own_us: u64, renderer: &Renderer, out: &mut [Rgb]) -> (u16, Finish) {
        self.window.lock(|cell| {
            let (window, failures) = &mut *cell.borrow_mut();
            let drawn = self.with(|app, _| app.draw_column(app.learned_now(own_us), renderer, window, out));
            if let Some(e) = drawn.error {
                // A flash that fails every column would flood the log: the first, then every 1,000th.
                if failures.is_multiple_of(1000) {
                    log::warn!("image pixels ({} failed reads): {e}", *failures + 1);
                }
                *failures = failures.wrapping_add(1);
            }
            (drawn.framerate, drawn.finish)
        })
    }
}

/// Probes the group's online peers and answers their probes on the show clock's socket.
pub async fn serve_show_clock(shared: &'static Shared, socket: UdpSocket<'static>) -> ! {
    let mut buf = [0u8; RECEIVE_BUFFER];
    let rng = Rng::new();
    loop {
        let probes = shared.with(|app, now| app.due_probes(now, || rng.random()));
        for (addr, bytes) in probes {
            if let Some(to) = endpoint(addr)
                && let Err(e) = socket.send_to(&bytes, to).await
            {
                log::debug!("show clock probe to {addr}: {e:?}");
            }
        }
        let wait = shared.with(|app, now| app.next_probe_due(now).map(|due| due.saturating_sub(now.own_us)));
        let wait = Duration::from_micros(wait.unwrap_or(1_000_000).min(1_000_000));
        match embassy_futures::select::select(socket.recv_from(&mut buf), Timer::after(wait)).await {
            embassy_futures::select::Either::First(Ok((n, meta))) => {
                let arrived = Instant::now().as_micros();
                let IpEndpoint { addr: IpAddress::Ipv4(ip), port } = meta.endpoint;
                let from = SocketAddr::from((ip.octets(), port));
                let reply = shared.with(|app, now| app.datagram(&buf[..n], from, arrived, now));
                if let Some(reply) = reply
                    && let Err(e) = socket.send_to(&reply, meta.endpoint).await
                {
                    log::debug!("show clock answer to {from}: {e:?}");
                }
            }
            embassy_futures::select::Either::First(Err(e)) => log::debug!("show clock receive: {e:?}"),
            embassy_futures::select::Either::Second(()) => {}
        }
    }
}

fn endpoint(addr: SocketAddr) -> Option<IpEndpoint> {
    match addr {
        SocketAddr::V4(v4) => Some(IpEndpoint::new(IpAddress::Ipv4(*v4.ip()), v4.port())),
        SocketAddr::V6(_) => None,
    }
}

/// Keeps the mDNS advert's name, group and library digest those of the application, and
/// marks peers unseen for the timeout offline.
pub async fn keep_advert(shared: &'static Shared, responder: &'static Responder, port: u16) -> ! {
    loop {
        let advert = shared.with(|app, now| {
            app.expire_peers(now);
            let config = app.config();
            Advert {
                device_id: config.device_id,
                device_name: config.device_name.clone(),
                sync_group: app.replica().group().into(),
                protocol: povpoi_core::sync::PROTOCOL_VERSION,
                digest: app.digest().into(),
                port,
            }
        });
        responder.update(advert);
        Timer::after(Duration::from_millis(500)).await;
    }
}
