//! A board's column: `povpoi_app::App::draw_column` over the flash store (on a RAM flash
//! with the ESP32's geometry), as the firmware's column clock calls it, drawing an image
//! whose pixels stay in the flash, a window of 16 columns at a time. And a board's heap
//! through its own sync session, after a restart with a library in its flash.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use povpoi_app::clock::ClockService;
use povpoi_app::columns::ImageWindow;
use povpoi_app::stage::column_start;

use povpoi_app::api::Request;
use povpoi_app::{App, Config, Now};
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Mode, Rgb, Selection};
use povpoi_core::render::{ImageView, Program, Renderer};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, MemoryStorage, Replica, SyncOptions};
use povpoi_core::wire;
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use povpoi_peer::auth::HEADER_SIGNATURE;
use povpoi_peer::exchange::SYNC_PATH;
use povpoi_peer::key::GroupKey;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

/// What drawing `columns` columns of a 400x32 image in turn at 250 fps cost.
pub struct Drawn {
    /// Instructions per column, the window's refills from the RAM flash included.
    pub per_column: u64,
    /// Of these, letting cues take effect (`App::play`, which `draw_column` calls first).
    pub play: u64,
    /// Window refills (32 reads each).
    pub refills: u64,
    /// Columns that differ from the renderer's column of the whole image.
    pub wrong: u32,
}

/// Draws `columns` columns as a board does; `measure` runs one call and returns its count.
pub fn draw_image_columns(columns: u32, pixels: &[u8], mut measure: impl FnMut(&mut dyn FnMut()) -> u64) -> Drawn {
    const SECTORS: usize = 32;
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let store = FlashStore::open(RamFlash::new(SECTORS), 0..(SECTORS * SECTOR) as u32).unwrap();
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let mut replica = Replica::open(&store, identity).unwrap();
    replica.add_image("wide.png", 400, 32, pixels, 1_000).unwrap();
    replica.set_framerate(250, 1_000, Cue::NOW).unwrap();
    replica.set_selection(Selection { mode: Mode::Image, index: 0 }, 1_000, Cue::NOW).unwrap();
    let mut app = App::new(config(device, usize::MAX), replica, ClockService::new(device, 1, 2, 0));
    let renderer = Renderer::new(32).unwrap();
    let whole = Program::Image(ImageView { width: 400, height: 32, pixels });
    let mut window = ImageWindow::new();
    let (mut board, mut node) = ([Rgb::default(); 32], [Rgb::default(); 32]);
    let (mut spent, mut playing, mut wrong) = (0, 0, 0);
    for k in 0..u64::from(columns) {
        let own_us = 10_000_000 + k * 4_000 + 100;
        let now = Now { wall_us: 1_800_000_000_000_000 + own_us, own_us };
        playing += measure(&mut || {
            app.play(now);
        });
        spent += measure(&mut || {
            app.draw_column(now, &renderer, &mut window, &mut board);
        });
        let show_us = app.clock().now(own_us);
        let t_ms = (column_start(show_us, 250) + 2_000) / 1_000;
        renderer.render(&whole, t_ms, 250, 0, &mut node);
        wrong += u32::from(board != node);
    }
    let n = u64::from(columns);
    Drawn { per_column: spent / n, play: playing / n, refills: window.refills(), wrong }
}

/// A board's application settings, fetching blobs of at most `fetched` bytes.
fn config(device: DeviceId, fetched: usize) -> Config {
    Config {
        device_id: device,
        device_name: device.default_name(),
        group_key: None,
        independent: true,
        auto_sync: false,
        sync_interval: 0,
        peer_timeout_s: 120,
        port: 80,
        real_time: true,
        replay_capacity: 16,
        max_fetched_blob_bytes: fetched,
        max_pushed_blob_bytes: 7 * 1024,
        max_push_part_bytes: PUSH_PART_BYTES,
        max_answered_delta_bytes: PUSH_PART_BYTES,
        max_uploaded_image_bytes: povpoi_app::sessions::MAX_FETCHED_BLOB_BYTES,
        wifi_setup: false,
    }
}

/// Bytes of records in one `Push` part of a board's own sessions: firmware/src/sync_client.rs,
/// `MAX_PUSH_PART_BYTES` (a separate crate for another target: the value is copied).
pub const PUSH_PART_BYTES: usize = 2 * 1024;

/// The heap allocator's counters.
pub trait Meter {
    /// Bytes held now.
    fn used(&self) -> usize;
    /// Starts counting the peak from now; returns the bytes held now.
    fn start_peak(&self) -> usize;
    /// The most held since [`Meter::start_peak`].
    fn peak(&self) -> usize;
}

/// A board's heap through its own session, in bytes.
pub struct SessionHeap {
    /// Store index, replica and application after a restart.
    pub at_rest: usize,
    /// The most they held while opening (the snapshot read and decoded).
    pub opening: usize,
    /// The most one step of the session added: from an answer's bytes arriving to the next
    /// request's bytes leaving.
    pub worst_step: usize,
    /// The first step's: taking the peer's summary, pushing the first part of its records.
    pub first_step: usize,
    /// The last step's: taking the image.
    pub last_step: usize,
    /// Push parts sent.
    pub parts: usize,
    /// Steps (round trips) of the session.
    pub steps: usize,
    /// The longest answer, bytes.
    pub largest_answer: usize,
    /// The peer's images whose records came in its answer.
    pub pulled: u32,
}

/// The shipped partition table's `povpoi` partition (firmware/partitions.csv), bytes.
const PARTITION: u32 = 2_496 * 1024;

/// The measured board's device id and replica identity.
fn board_identity() -> (DeviceId, Identity) {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    (device, Identity { replica: ReplicaId(1), device, group: "default".into() })
}

/// Sets the library's order by hand: its images, last first.
fn reverse_order<S: povpoi_core::sync::Storage>(replica: &mut Replica<S>) {
    let mut order: alloc::vec::Vec<_> = replica.images().map(|(id, _)| id).collect();
    order.reverse();
    replica.set_image_order(order, 9_000).unwrap();
}

/// A flash of the shipped partition's size holding a library of `images` 8x8 images (an
/// image's sync state does not depend on its size), as a board finds it after a restart;
/// `ordered`: in an order set by hand (its record is kept beside them, 16 bytes an image).
fn library_flash(images: u32, ordered: bool, identity: &Identity) -> RamFlash {
    let store = FlashStore::open(RamFlash::new(PARTITION as usize / SECTOR), 0..PARTITION).unwrap();
    let mut replica = Replica::open(&store, identity.clone()).unwrap();
    for i in 0..images {
        let pixels: alloc::vec::Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u32 * 7 + i) as u8).collect();
        replica.add_image(&alloc::format!("image {i:03}.png"), 8, 8, &pixels, 1_000 + u64::from(i)).unwrap();
    }
    if ordered {
        reverse_order(&mut replica);
    }
    drop(replica);
    store.into_flash()
}

/// A board that restarted with `images` images in its flash runs its own session with a
/// peer that holds one image of `fetched` bytes, the largest a board fetches, and `pulled`
/// 8x8 ones more (their records come in the peer's `Begun` answer); with `key`,
/// in a keyed group (each request sealed and signed, each answer checked and opened, as
/// firmware/src/sync_client.rs does). The peer, an `App` too, answers in this program; only
/// the board's side of each step is counted, as the host's heap test
/// (crates/povpoi-app/tests/heap.rs, which runs this same function).
pub fn session_heap(
    images: u32,
    ordered: bool,
    fetched: usize,
    pulled: u32,
    key: Option<&str>,
    meter: &dyn Meter,
) -> SessionHeap {
    let (device, identity) = board_identity();
    let flash = library_flash(images, ordered, &identity);
    let group_key = key.map(|k| GroupKey::new(k).unwrap());
    let before = meter.start_peak();
    let store = FlashStore::open(flash, 0..PARTITION).unwrap();
    let replica = Replica::open(&store, identity).unwrap();
    // As firmware/src/main.rs sets it up (its real time learned, here given).
    let settings = Config {
        independent: false,
        auto_sync: true,
        replay_capacity: 128,
        group_key: group_key.clone(),
        ..config(device, fetched)
    };
    let mut app = App::new(settings, replica, ClockService::new(device, 1, 2, 0));
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };
    app.play(now);
    let at_rest = meter.used() - before;
    let opening = meter.peak() - before;

    let peer_device = DeviceId([2, 0, 0, 0, 0, 2]);
    let peer_identity = Identity { replica: ReplicaId(2), device: peer_device, group: "default".into() };
    let mut peer = Replica::open(MemoryStorage::default(), peer_identity).unwrap();
    let (width, height) = (fetched / (32 * 3), 32);
    let pixels: alloc::vec::Vec<u8> = (0..width * height * 3).map(|k| (k * 13) as u8).collect();
    peer.add_image("largest", width as u32, height as u32, &pixels, 5_000).unwrap();
    drop(pixels);
    for i in 0..pulled {
        let pixels: alloc::vec::Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u32 * 11 + i) as u8).collect();
        peer.add_image(&alloc::format!("node image {i:03}.png"), 8, 8, &pixels, 6_000 + u64::from(i)).unwrap();
    }
    // A node's window: every step of the session is a signed request.
    let peer_config = Config {
        group_key,
        max_pushed_blob_bytes: usize::MAX,
        max_push_part_bytes: povpoi_core::sync::MAX_PUSH_RECORD_BYTES,
        max_answered_delta_bytes: usize::MAX,
        max_uploaded_image_bytes: usize::MAX,
        wifi_setup: false,
        replay_capacity: 1_024,
        ..config(peer_device, usize::MAX)
    };
    let mut peer = App::new(peer_config, peer, ClockService::new(peer_device, 3, 4, 0));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);

    let (mut session, request) = app.start_session(SyncOptions::default());
    let bytes = wire::to_bytes(&request);
    drop(request);
    let mut out = app.outgoing(peer_device, SYNC_PATH, &bytes, now, &mut rng);
    drop(bytes);
    let (mut worst, mut first_step, mut parts, mut steps, mut largest_answer) = (0, 0, 0, 0, 0);
    let mut last_step;
    loop {
        let headers: alloc::vec::Vec<(&str, &[u8])> = out.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let asked = Request { method: "POST", path: SYNC_PATH, query: None, headers: &headers, body: &out.body, from };
        let answer = peer.handle(&asked, now, &mut rng);
        drop(headers);
        assert_eq!(answer.status, 200, "{:?}", core::str::from_utf8(&answer.body));
        let signature = answer.headers.iter().find(|(n, _)| *n == HEADER_SIGNATURE).map(|(_, v)| v.clone());
        // An answer built for this request: owned, so this takes it without a copy.
        let body = answer.body.into_owned();
        drop(answer.headers);
        largest_answer = largest_answer.max(body.len());
        // From the answer's bytes arriving, the request's still held, as the sync client
        // holds them until the answer is checked.
        let start = meter.start_peak() - body.capacity() - out.body.capacity();
        let plain = out.check.open_answer(200, signature.as_deref(), body).unwrap();
        drop(signature);
        drop(out);
        // Decoded in its own buffer, as the firmware's sync client does.
        let decoded = wire::response_from_vec(plain).unwrap();
        let next = app.merge(&mut session, decoded, now).unwrap();
        let sealed = next.map(|next| {
            let bytes = wire::to_bytes(&next);
            drop(next);
            if bytes.first() == Some(&1) {
                parts += 1; // Request::Push
            }
            app.outgoing(peer_device, SYNC_PATH, &bytes, now, &mut rng)
        });
        let step = meter.peak() - start;
        if steps == 0 {
            first_step = step;
        }
        last_step = step;
        worst = worst.max(step);
        steps += 1;
        match sealed {
            Some(sealed) => out = sealed,
            None => break,
        }
    }
    // The peer's records all came, or (over the board's part size) none: the peer pushes those.
    let held = app.replica().image_count() as u32;
    assert!(held == images + pulled + 1 || (pulled > 0 && held == images), "{held}");
    assert!(app.replica().missing_blobs().is_empty());
    let pulled = held - images;
    SessionHeap { at_rest, opening, worst_step: worst, first_step, last_step, parts, steps, largest_answer, pulled }
}

/// What a board's heap goes through answering a peer's session.
pub struct ResponderHeap {
    /// Store index, replica and application after a restart.
    pub at_rest: usize,
    /// The most one request added, from its body arriving to its answer's bytes made.
    pub worst_step: usize,
    /// `Push` parts taken.
    pub parts: usize,
}

/// A board that restarted with `images` images answers the session of a peer (a node: its
/// 6 KiB `Push` parts) that has `pushed` images more, in an open group: the request's body
/// is held as the HTTP server holds it while `App::handle` answers.
pub fn responder_heap(images: u32, ordered: bool, pushed: u32, meter: &dyn Meter) -> ResponderHeap {
    let (device, identity) = board_identity();
    let flash = library_flash(images, ordered, &identity);
    let before = meter.used();
    let store = FlashStore::open(flash, 0..PARTITION).unwrap();
    let replica = Replica::open(&store, identity).unwrap();
    let settings = Config { independent: false, auto_sync: true, replay_capacity: 128, ..config(device, 16 * 1024) };
    let mut board = App::new(settings, replica, ClockService::new(device, 1, 2, 0));
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };
    board.play(now);
    let at_rest = meter.used() - before;

    let peer_device = DeviceId([2, 0, 0, 0, 0, 2]);
    let peer_identity = Identity { replica: ReplicaId(2), device: peer_device, group: "default".into() };
    let mut peer = Replica::open(MemoryStorage::default(), peer_identity).unwrap();
    for i in 0..pushed {
        let pixels: alloc::vec::Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u32 * 11 + i) as u8).collect();
        peer.add_image(&alloc::format!("node image {i:03}.png"), 8, 8, &pixels, 2_000 + u64::from(i)).unwrap();
    }
    let peer_config = Config {
        max_pushed_blob_bytes: usize::MAX,
        max_push_part_bytes: povpoi_core::sync::MAX_PUSH_RECORD_BYTES,
        ..config(peer_device, usize::MAX)
    };
    let mut peer = App::new(peer_config, peer, ClockService::new(peer_device, 3, 4, 0));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080);

    let (mut session, request) = peer.start_session(SyncOptions::default());
    let (mut worst, mut parts) = (0, 0);
    let mut next = Some(request);
    while let Some(request) = next.take() {
        let bytes = wire::to_bytes(&request);
        drop(request);
        if bytes.first() == Some(&1) {
            parts += 1; // Request::Push
        }
        let out = peer.outgoing(device, SYNC_PATH, &bytes, now, &mut rng);
        drop(bytes);
        let headers: alloc::vec::Vec<(&str, &[u8])> = out.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        // The body arrives in the server's buffer, then the board answers.
        let body = out.body.clone();
        let start = meter.start_peak() - body.capacity();
        let asked = Request { method: "POST", path: SYNC_PATH, query: None, headers: &headers, body: &body, from };
        let answer = board.handle(&asked, now, &mut rng);
        drop(body);
        worst = worst.max(meter.peak() - start);
        assert_eq!(answer.status, 200, "{:?}", core::str::from_utf8(&answer.body));
        let reply = wire::response_from_vec(answer.body.into_owned()).unwrap();
        next = peer.merge(&mut session, reply, now).unwrap();
    }
    assert_eq!(board.replica().image_count(), (images + pushed) as usize);
    ResponderHeap { at_rest, worst_step: worst, parts }
}

/// What a board's heap goes through mirroring what plays to a Teensy.
pub struct TeensyHeap {
    /// Store index, replica and application after a restart.
    pub at_rest: usize,
    /// The most the mirror added while it sent everything.
    pub peak: usize,
    /// What it holds after (what the Teensy was sent, for the next change's difference).
    pub held: usize,
    /// Commands sent.
    pub commands: u32,
    /// Bytes sent.
    pub bytes: usize,
}

/// The application behind a lock, as the firmware's tasks share it.
struct Locked<'a>(core::cell::RefCell<App<&'a FlashStore<RamFlash>>>);

impl<'a> povpoi_app::sessions::AppLock for Locked<'a> {
    type Storage = &'a FlashStore<RamFlash>;

    fn with<R>(&self, f: impl FnOnce(&mut App<&'a FlashStore<RamFlash>>, Now) -> R) -> R {
        f(&mut self.0.borrow_mut(), Now { wall_us: 1_800_000_000_000_000, own_us: 2_000_000 })
    }
}

/// A Teensy that acks at once; counts what it was sent.
struct CountingPort(usize);

impl povpoi_app::teensy::Port for CountingPort {
    async fn write(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn forget_acks(&mut self) {}

    async fn ack(&mut self, _code: u8, _timeout_us: u64) -> bool {
        true
    }
}

/// Runs a future that never waits (every await here is ready at once).
fn run_ready<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A board that restarted with `images` 8x8 images in an order set by hand, a 400x32 one
/// playing, all 18 pattern slots and 5 sequences of 10 items set, mirrors it all to a Teensy
/// (`povpoi_app::teensy::send_changes`, as firmware/src/teensy.rs runs it).
pub fn teensy_heap(images: u32, meter: &dyn Meter) -> TeensyHeap {
    use povpoi_core::model::{Pattern, PatternKind, Sequence, SequenceItem, SequenceTarget};
    let (device, identity) = board_identity();
    let flash = library_flash(images, false, &identity);
    let store = FlashStore::open(flash, 0..PARTITION).unwrap();
    {
        let mut replica = Replica::open(&store, identity.clone()).unwrap();
        let pixels: alloc::vec::Vec<u8> = (0..400 * 32 * 3).map(|k| (k * 7) as u8).collect();
        let wide = replica.add_image("wide.png", 400, 32, &pixels, 9_000).unwrap();
        drop(pixels);
        for slot in 0..18 {
            let p = Pattern::new(PatternKind::Comet, Rgb::new(slot, 2, 3), Rgb::new(4, 5, 6), 80).unwrap();
            replica.set_pattern(slot, p, 9_000, Cue::NOW).unwrap();
        }
        for slot in 0..5 {
            let items = (0..10)
                .map(|i| SequenceItem {
                    target: if i == 0 { SequenceTarget::Image(wide) } else { SequenceTarget::Pattern(i) },
                    duration_ms: 500,
                })
                .collect();
            replica.set_sequence(slot, Sequence::new(items, true).unwrap(), 9_000, Cue::NOW).unwrap();
        }
        replica.select_image(wide, 9_000, Cue::NOW).unwrap();
        // An order set by hand: the library's order is then sorted on the heap when read.
        reverse_order(&mut replica);
    }
    let before = meter.used();
    let replica = Replica::open(&store, identity).unwrap();
    let app = App::new(config(device, 16 * 1024), replica, ClockService::new(device, 1, 2, 0));
    let board = Locked(core::cell::RefCell::new(app));
    board.0.borrow_mut().play(Now { wall_us: 1_800_000_000_000_000, own_us: 2_000_000 });
    let at_rest = meter.used() - before;
    let start = meter.start_peak();
    let mut mirror = povpoi_app::teensy::Mirroring::default();
    let mut port = CountingPort(0);
    let sent = run_ready(povpoi_app::teensy::send_changes(&board, &mut mirror, &mut port));
    let peak = meter.peak() - start;
    let held = meter.used() - start;
    assert_eq!(sent.rows_unread, 0);
    drop(mirror);
    TeensyHeap { at_rest, peak, held, commands: sent.commands, bytes: port.0 }
}

/// What a board's heap goes through listing its images (`GET /api/images`).
pub struct ListingHeap {
    /// Store index, replica and application after a restart.
    pub at_rest: usize,
    /// The most the listing added while it was sent, chunk by chunk.
    pub peak: usize,
    /// Bytes of the listing.
    pub bytes: usize,
    /// Images listed (`"id":` fields counted in what was sent).
    pub listed: usize,
    /// What `counter` counted over the `list_next` calls (instructions, on RISC-V).
    pub counted: u64,
}

/// A board that restarted with `images` images (`ordered`: in an order set by hand) answers
/// `GET /api/images` as firmware/src/http.rs sends it: the application's answer, then
/// [`App::list_next`] into one chunk buffer, sent (here: counted) after each call; `counter`
/// is read around each call.
pub fn listing_heap(images: u32, ordered: bool, meter: &dyn Meter, counter: fn() -> u64) -> ListingHeap {
    let (device, identity) = board_identity();
    let flash = library_flash(images, ordered, &identity);
    let before = meter.used();
    let store = FlashStore::open(flash, 0..PARTITION).unwrap();
    let replica = Replica::open(&store, identity).unwrap();
    let board = App::new(config(device, 16 * 1024), replica, ClockService::new(device, 1, 2, 0));
    let at_rest = meter.used() - before;
    let mut board = board;
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080);
    let start = meter.start_peak();
    let asked = Request { method: "GET", path: "/api/images", query: None, headers: &[], body: &[], from };
    let answer = board.handle(&asked, now, &mut ChaCha8Rng::seed_from_u64(3));
    let mut listing = answer.listing.expect("GET /api/images is listed item by item");
    let (mut bytes, mut listed, mut more, mut counted) = (0, 0, true, 0);
    let mut chunk = alloc::vec::Vec::new();
    while more {
        chunk.clear();
        let before = counter();
        more = board.list_next(&mut listing, &mut chunk).expect("nothing changes the library meanwhile");
        counted += counter() - before;
        bytes += chunk.len();
        listed += chunk.windows(5).filter(|w| w == b"\"id\":").count();
    }
    drop(chunk);
    ListingHeap { at_rest, peak: meter.peak() - start, bytes, listed, counted }
}

/// The heap of an image upload taken by a board: [`upload_heap`].
pub struct UploadHeap {
    /// Store index, replica and application after a restart.
    pub at_rest: usize,
    /// The most the upload added while it was read, stored and recorded (the last inside
    /// the application's lock: the record's edit saves the snapshot, as every edit does).
    pub peak: usize,
    /// The most it held between pieces, when the lock is free for the player and the
    /// sync: the boxed upload, the buffer, the store's writer.
    pub held: usize,
    /// Pieces of the body read.
    pub pieces: usize,
    /// Whether the board answered 200 and holds the pixels.
    pub stored: bool,
}

/// A board that restarted with `images` images takes a 400x32 upload (38,400 bytes of
/// pixels) as firmware/src/http/service.rs reads it: the application's [`povpoi_app::upload::Upload`]
/// boxed, a 1 KiB buffer, each piece handed to [`App::upload_step`], then
/// [`App::finish_upload`] (the pixels' headers, the new record, the snapshot saved).
pub fn upload_heap(images: u32, meter: &dyn Meter) -> UploadHeap {
    const BOUNDARY: &str = "qemu-upload-boundary";
    let pixels: alloc::vec::Vec<u8> = (0..400 * 32 * 3).map(|i| (i * 13 % 256) as u8).collect();
    let mut body = alloc::format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image_400x32.rgb\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&pixels);
    body.extend_from_slice(alloc::format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = alloc::format!("multipart/form-data; boundary={BOUNDARY}");
    let (device, identity) = board_identity();
    let flash = library_flash(images, false, &identity);
    let before = meter.used();
    let store = FlashStore::open(flash, 0..PARTITION).unwrap();
    let replica = Replica::open(&store, identity).unwrap();
    let mut board = App::new(config(device, 16 * 1024), replica, ClockService::new(device, 1, 2, 0));
    let at_rest = meter.used() - before;
    let now = Now { wall_us: 1_800_000_000_000_000, own_us: 1_000_000 };
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080);
    let headers = [("content-type", content_type.as_bytes())];
    let asked = Request { method: "POST", path: "/api/image", query: None, headers: &headers, body: &[], from };
    let start = meter.start_peak();
    let refused = |r: povpoi_app::api::Response| -> ! { panic!("{}", alloc::string::String::from_utf8_lossy(&r.body)) };
    let mut upload = alloc::boxed::Box::new(board.begin_upload(&asked).unwrap_or_else(|r| refused(r)));
    let mut buffer = alloc::vec![0u8; 1024];
    let (mut start_at, mut end, mut sent, mut pieces, mut held) = (0, 0, 0, 0, 0);
    let answer = loop {
        let used =
            board.upload_step(&mut upload, &buffer[start_at..end], sent == body.len()).unwrap_or_else(|r| refused(r));
        start_at += used;
        pieces += 1;
        held = held.max(meter.used() - before - at_rest);
        if upload.finished() || sent == body.len() {
            break board.finish_upload(*upload, now);
        }
        buffer.copy_within(start_at..end, 0);
        (start_at, end) = (0, end - start_at);
        let n = (buffer.len() - end).min(body.len() - sent);
        buffer[end..end + n].copy_from_slice(&body[sent..sent + n]);
        (end, sent) = (end + n, sent + n);
    };
    drop(buffer);
    let peak = meter.peak() - start;
    let hash = povpoi_core::hash::BlobHash::of(&pixels);
    let stored = answer.status == 200 && board.replica().images().any(|(_, meta)| meta.pixels() == hash);
    UploadHeap { at_rest, peak, held, pieces, stored }
}
