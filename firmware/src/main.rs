//! The firmware image: starts the platform pieces of `povpoi_firmware` and runs them as tasks.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_net::{Runner, Stack};
use embassy_time::{Duration, Instant, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::spi::Mode;
use esp_hal::spi::master::{Config as SpiConfig, Spi};
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::uart::{Config as UartConfig, Uart, UartRx};
use esp_hal::{Async, dma_rx_buffer, dma_tx_buffer};
use esp_radio::wifi::{Interface, WifiController};
use povpoi_app::clock::ClockService;
use povpoi_app::peers::{Sighting, Source};
use povpoi_app::sessions::AppLock;
use povpoi_app::{App, Config};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::Rgb;
use povpoi_core::render::{ColorOrder, DEFAULT_LEDS};
use povpoi_core::sync::Storage;
use povpoi_firmware::apa102::{self, Apa102};
use povpoi_firmware::column;
use povpoi_firmware::http;
use povpoi_firmware::mdns::Responder;
use povpoi_firmware::net::{self, HTTP_CONNECTIONS};
use povpoi_firmware::poi::{self, Http, Served, Shared};
use povpoi_firmware::settings::{self, BuildWifiSettings, FlashWifiSettings, WifiSettings};
use povpoi_firmware::setup::{self, OnAir};
use povpoi_firmware::storage::{self, Library};
use povpoi_firmware::sync_client;
use povpoi_firmware::teensy::{self, TeensyLink};
use povpoi_firmware::wifi::{self, Link};
use povpoi_firmware::{dhcp_server, heap};
use povpoi_peer::advert::Advert;
use static_cell::StaticCell;

esp_bootloader_esp_idf::esp_app_desc!();

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    heap::init();
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);
    log::info!("povpoi firmware {} starting", env!("CARGO_PKG_VERSION"));

    // LEDs first: the strip goes dark at once rather than showing what it held at power-up.
    // SPI2 on GPIO6 (clock) and GPIO7 (data) on both chips: their IO MUX pins for SPI2.
    let spi = Spi::new(
        peripherals.SPI2,
        SpiConfig::default().with_frequency(Rate::from_hz(apa102::CLOCK_HZ)).with_mode(Mode::_0),
    )
    .expect("SPI2 takes the APA102 clock")
    .with_sck(peripherals.GPIO6)
    .with_mosi(peripherals.GPIO7)
    .with_dma(peripherals.DMA_CH0)
    .with_buffers(
        dma_rx_buffer!(4).expect("a 4-byte DMA buffer"),
        dma_tx_buffer!(apa102::MAX_FRAME_BYTES).expect("a DMA buffer for the largest frame"),
    )
    .into_async();
    let mut strip = Apa102::new(spi);
    strip.show(&[Rgb::default(); DEFAULT_LEDS as usize], ColorOrder::default()).await;

    #[cfg(feature = "esp32c3")]
    let (teensy_tx, teensy_rx) = (peripherals.GPIO4, peripherals.GPIO5);
    #[cfg(feature = "esp32c6")]
    let (teensy_tx, teensy_rx) = (peripherals.GPIO18, peripherals.GPIO19);
    let uart = Uart::new(peripherals.UART1, UartConfig::default().with_baudrate(teensy::BAUD))
        .expect("UART1 takes 115200 baud")
        .with_tx(teensy_tx)
        .with_rx(teensy_rx)
        .into_async();
    let (rx, tx) = uart.split();
    spawner.spawn(teensy_replies(rx).expect("one reply reader"));
    let mut teensy = TeensyLink::new(tx);
    // Before Wi-Fi: the log shows at once whether a Teensy answers on the link.
    teensy::ask(&mut teensy).await;

    // Wi-Fi: the station interface's MAC is the device id, as on the existing system.
    let mut controller =
        WifiController::new(peripherals.WIFI, wifi::controller_config()).expect("the Wi-Fi driver starts");
    let station = Interface::station();
    let mac = station.mac_address();
    let device_id = DeviceId(mac);
    log::info!("device id {device_id}");
    // The hardware RNG gives true random numbers once Wi-Fi is enabled (esp-hal's rng docs):
    // made after the controller, before the replica id and the network stack's seed.
    let rng = Rng::new();

    // Settings and library from the flash, before Wi-Fi needs the network to join.
    let build = BuildWifiSettings::from_build();
    let store = match storage::open(peripherals.FLASH) {
        Ok(opened) => {
            let usage = opened.store.usage();
            log::info!(
                "storage: partition {:?} at {:#x}..{:#x}, {} of {} sectors free",
                storage::PARTITION_LABEL,
                opened.partition.start,
                opened.partition.end,
                usage.free_sectors,
                usage.sectors
            );
            if opened.store.settings_damaged() {
                log::warn!("storage: the settings were damaged and read as empty");
            }
            Some(opened.store)
        }
        Err(why) => {
            log::error!("storage: none ({why}); running on the build's settings, nothing set is kept");
            None
        }
    };
    let flash_settings = store.map(FlashWifiSettings::new);
    if let Some(flash_settings) = &flash_settings {
        match flash_settings.apply_build(&build) {
            Ok(true) => log::info!("storage: the network given at build time is now the one to join"),
            Ok(false) => {}
            Err(e) => log::warn!("storage: cannot keep the network given at build time: {e}"),
        }
    }
    // Boxed so that the main task's static future holds a pointer, not the library.
    let library: Option<Box<Library>> = store.and_then(|store| open_library(store, device_id, &rng));
    let group_key = store.and_then(settings::pairing_key);
    log::info!("pairing key: {}", if group_key.is_some() { "set" } else { "none (open)" });

    let settings: &dyn WifiSettings = match &flash_settings {
        Some(flash_settings) => flash_settings,
        None => &build,
    };
    let link = wifi::start(&mut controller, settings, mac).await;
    let interface = match link {
        Link::Station { .. } => station,
        Link::AccessPoint { .. } => {
            drop(station);
            Interface::access_point()
        }
    };

    let hostname = povpoi_peer::advert::host_label(device_id);
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let (stack, runner) = net::stack(interface, net::config(&link, &hostname), seed);
    spawner.spawn(network(runner).expect("one network runner"));
    match link {
        Link::Station { .. } => spawner.spawn(station_keeper(controller).expect("one station keeper")),
        Link::AccessPoint { .. } => {
            spawner.spawn(access_point_keeper(controller).expect("one access point keeper"));
            spawner.spawn(dhcp(stack).expect("one DHCP server"));
        }
    }
    let ip = net::wait_for_address(stack).await;
    log::info!("HTTP API at http://{} and http://{hostname}.local", net::api_address(ip));

    // The shared application, from here on what the HTTP API, the show clock, the advert and
    // the LEDs go through.
    let served = match library {
        Some(library) => {
            // A library implies a store: what `POST /api/device/config` kept.
            let kept = store.map(setup::kept).unwrap_or_default();
            let config = Config {
                device_id,
                device_name: kept.device_name.unwrap_or_else(|| device_id.default_name()),
                group_key,
                independent: false,
                // Push-on-change and catching up with peers (crate::sync_client).
                auto_sync: kept.auto_sync.unwrap_or(true),
                sync_interval: kept.sync_interval.unwrap_or(povpoi_app::DEFAULT_SYNC_INTERVAL_MS),
                peer_timeout_s: 120,
                port: net::HTTP_PORT,
                real_time: false,
                replay_capacity: 128,
                // Fetched: set again before each round from the free heap
                // (`sync_client::fetch_limit`). Pushed: what a request body carries, less room
                // for the message around the pixels (a postcard header, a seal, a signature).
                max_fetched_blob_bytes: sync_client::MIN_FETCHED_BLOB_BYTES,
                max_pushed_blob_bytes: http::MAX_BODY_BYTES - 1024,
                max_push_part_bytes: sync_client::MAX_PUSH_PART_BYTES,
                // A peer lacking many of its records gets them from its own sessions.
                max_answered_delta_bytes: sync_client::MAX_PUSH_PART_BYTES,
                // Uploads are written to the flash as they arrive, never held; an image its
                // own sessions could not fetch again is not taken either.
                max_uploaded_image_bytes: povpoi_app::sessions::MAX_FETCHED_BLOB_BYTES,
                wifi_setup: true,
            };
            let clock = ClockService::new(device_id, rng.random(), rng.random(), Instant::now().as_micros());
            let app = App::new(config, *library, clock);
            Served::Poi(Box::leak(Box::new(Shared::new(app))))
        }
        None => Served::NoStorage,
    };
    spawner.spawn(column_clock(served, strip).expect("one column clock"));

    // What a node needs to see the board now; the application keeps it up to date.
    static RESPONDER: StaticCell<Responder> = StaticCell::new();
    let responder = RESPONDER.init(Responder::new(
        Advert {
            device_id,
            device_name: device_id.default_name(),
            sync_group: String::new(),
            protocol: povpoi_core::sync::PROTOCOL_VERSION,
            digest: String::new(),
            port: net::HTTP_PORT,
        },
        rng.random(),
    ));
    spawner.spawn(mdns_responder(responder, stack, ip, served).expect("one mDNS responder"));

    let on_air = match &link {
        Link::Station { ssid } => OnAir { station: true, ssid: setup::text(ssid).into() },
        Link::AccessPoint { ssid } => OnAir { station: false, ssid: ssid.as_str().into() },
    };
    let http: &'static Http = Box::leak(Box::new(Http { served, store, on_air }));
    for id in 0..HTTP_CONNECTIONS {
        spawner.spawn(http_connection(id, stack, http).expect("HTTP_CONNECTIONS connection tasks"));
    }
    match served {
        Served::Poi(shared) => {
            spawner.spawn(show_clock(shared, net::show_clock_socket(stack)).expect("one show clock socket"));
            spawner.spawn(advert(shared, responder).expect("one advert keeper"));
        }
        Served::NoStorage => spawner.spawn(no_show_clock(net::show_clock_socket(stack)).expect("one socket")),
    }
    if let Served::Poi(shared) = served {
        spawner.spawn(sync_sessions(shared, net::sync_client(stack)).expect("one sync client"));
        spawner.spawn(teensy_mirror(shared, teensy).expect("one Teensy mirror"));
    }

    loop {
        let (app, radio) = heap::used();
        log::info!(
            "heap in use: application {app} of {} B, radio {radio} of {} B",
            heap::APP_HEAP_BYTES,
            heap::RADIO_HEAP_BYTES
        );
        // A Wi-Fi setting changed: restart a second later, once its answer has gone out.
        if let Either::First(()) = select(poi::RESTART.wait(), Timer::after(Duration::from_secs(60))).await {
            log::info!("Wi-Fi settings changed: restarting in 1 s");
            Timer::after(Duration::from_secs(1)).await;
            esp_hal::system::software_reset()
        }
    }
}

/// Where esp-backtrace ends a panic once it has printed it and a dump of the stack (its feature
/// "custom-halt"): a reset instead of its endless loop, so that a poi which hits a bug or
/// runs out of heap mid-show comes back by itself, a few seconds later, with its library from
/// the flash (power-cut safe), rather than staying dark until someone power-cycles it.
#[unsafe(no_mangle)]
fn custom_halt() -> ! {
    esp_hal::system::software_reset()
}

/// Opens the library in the store, logging what it holds; `None` (logged) if it cannot be
/// read, and the poi then runs without one.
fn open_library(store: &'static storage::Store, device: DeviceId, rng: &Rng) -> Option<Box<Library>> {
    let group = settings::sync_group(store);
    let replica = ReplicaId((u64::from(rng.random()) << 32) | u64::from(rng.random()));
    match storage::open_library(store, device, &group, replica) {
        Ok(library) => {
            let blobs = store.blob_hashes().map(|hashes| hashes.len()).unwrap_or(0);
            let (heap, _) = heap::used();
            log::info!(
                "library: {} images ({blobs} pixel blobs held), group {:?}, replica {}; application heap in use {heap} B",
                library.images().count(),
                library.group(),
                library.replica_id()
            );
            if store.snapshot_damaged() {
                log::warn!("library: the snapshot was damaged; started empty, peers will fill it again");
            }
            Some(library)
        }
        Err(e) => {
            log::error!("library: cannot open it: {e}; running without one");
            None
        }
    }
}

#[embassy_executor::task]
async fn column_clock(served: Served, mut strip: Apa102) -> ! {
    column::run(&served, &mut strip).await
}

#[embassy_executor::task]
async fn teensy_replies(rx: UartRx<'static, Async>) -> ! {
    teensy::read_replies(rx).await
}

#[embassy_executor::task]
async fn teensy_mirror(shared: &'static Shared, link: TeensyLink) -> ! {
    teensy::mirror(shared, link).await
}

#[embassy_executor::task]
async fn network(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn station_keeper(controller: WifiController<'static>) -> ! {
    wifi::keep_station_joined(controller).await
}

#[embassy_executor::task]
async fn access_point_keeper(controller: WifiController<'static>) -> ! {
    wifi::keep_access_point(controller).await
}

#[embassy_executor::task]
async fn dhcp(stack: Stack<'static>) -> ! {
    dhcp_server::serve(stack).await
}

#[embassy_executor::task]
async fn mdns_responder(
    responder: &'static Responder,
    stack: Stack<'static>,
    ip: core::net::Ipv4Addr,
    served: Served,
) -> ! {
    // Without storage there is no application, so no peer table to fill.
    let heard = |seen: Sighting| {
        if let Served::Poi(shared) = served {
            shared.with(|app, now| app.peer_seen(&seen, Source::Mdns, now));
        }
    };
    responder.run(stack, ip, &heard).await
}

#[embassy_executor::task(pool_size = HTTP_CONNECTIONS)]
async fn http_connection(id: usize, stack: Stack<'static>, http: &'static Http) -> ! {
    http::serve(id, stack, http).await
}

#[embassy_executor::task]
async fn show_clock(shared: &'static Shared, socket: embassy_net::udp::UdpSocket<'static>) -> ! {
    poi::serve_show_clock(shared, socket).await
}

#[embassy_executor::task]
async fn no_show_clock(socket: embassy_net::udp::UdpSocket<'static>) -> ! {
    net::drain_show_clock(socket).await
}

#[embassy_executor::task]
async fn sync_sessions(shared: &'static Shared, client: net::SyncClient) -> ! {
    sync_client::run(shared, client).await
}

#[embassy_executor::task]
async fn advert(shared: &'static Shared, responder: &'static Responder) -> ! {
    poi::keep_advert(shared, responder, net::HTTP_PORT).await
}
