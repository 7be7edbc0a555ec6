//! povpoi-core on the RISC-V instruction set (RV32IMC, the ESP32-C3's), under QEMU's virt
//! machine: a sync session between two replicas, the show clock, and the renderer's
//! output against digests the host worked out; then the instructions a rendered column
//! costs, counted by `minstret` (QEMU counts instructions with `-icount shift=0`). Prints
//! to the virt UART and ends QEMU through its test device: exit 0 only if every check
//! passed. `./run` builds and runs it.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::fmt::Write;

use embedded_alloc::LlffHeap as Heap;
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::render::{ColumnCache, Finish, Renderer};
use povpoi_core::show::{Cue, ShowClock};
use povpoi_core::sync::{Identity, MemoryStorage, Replica, Session, Storage, StorageError, SyncOptions};
use povpoi_core::wire;
use riscv_rt::entry;

mod board;
// Shared with build.rs, which uses other parts of it.
#[allow(dead_code)]
mod cases;
mod golden {
    include!(concat!(env!("OUT_DIR"), "/golden.rs"));
}

#[global_allocator]
static HEAP: Counted = Counted { heap: Heap::empty(), peak: PeakCell(Cell::new(0)) };

/// The heap, remembering the most it held: what opening a library needs at once.
struct Counted {
    heap: Heap,
    peak: PeakCell,
}

/// The most the heap held since [`Counted::reset_peak`].
struct PeakCell(Cell<usize>);

// SAFETY: one hart, no interrupt handlers allocate: nothing runs beside the allocation that
// touches the cell.
unsafe impl Sync for PeakCell {}

impl Counted {
    fn used(&self) -> usize {
        self.heap.used()
    }

    fn peak(&self) -> usize {
        self.peak.0.get()
    }

    fn reset_peak(&self) {
        self.peak.0.set(self.heap.used());
    }
}

impl board::Meter for Counted {
    fn used(&self) -> usize {
        Counted::used(self)
    }

    fn start_peak(&self) -> usize {
        self.reset_peak();
        Counted::used(self)
    }

    fn peak(&self) -> usize {
        Counted::peak(self)
    }
}

unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let block = unsafe { self.heap.alloc(layout) };
        self.peak.0.set(self.peak.0.get().max(self.heap.used()));
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { self.heap.dealloc(block, layout) }
    }
}

/// The virt machine's 16550 UART: a byte written here is printed.
const UART: *mut u8 = 0x1000_0000 as *mut u8;
/// The virt machine's test device: 0x5555 ends QEMU with status 0, `code << 16 | 0x3333`
/// with status `code`.
const TEST_DEVICE: *mut u32 = 0x10_0000 as *mut u32;

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            // SAFETY: the UART's transmit register on the virt machine.
            unsafe { UART.write_volatile(byte) };
        }
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => { let _ = writeln!(Uart, $($arg)*); };
}

fn exit(code: u32) -> ! {
    let word = if code == 0 { 0x5555 } else { (code << 16) | 0x3333 };
    // SAFETY: the test device's register on the virt machine; QEMU stops on the write.
    unsafe { TEST_DEVICE.write_volatile(word) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("PANIC: {info}");
    exit(101)
}

/// Instructions retired so far (QEMU: instructions executed, with `-icount shift=0`).
#[inline(always)]
fn instret() -> u64 {
    riscv::register::minstret::read64()
}

/// Retires exactly `1 + 2 * n` instructions (`n` >= 1): a counted loop of two.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: registers only.
    unsafe {
        core::arch::asm!(
            "mv t0, {n}",
            "2:",
            "addi t0, t0, -1",
            "bnez t0, 2b",
            n = in(reg) n,
            out("t0") _,
        );
    }
}

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
            say!("ok   {name}");
        } else {
            self.failed += 1;
            say!("FAIL {name}: {}", detail());
        }
    }
}

fn identity(n: u8) -> Identity {
    Identity { replica: ReplicaId(n.into()), device: DeviceId([0xA0, 0, 0, 0, 0, n]), group: "troupe".into() }
}

/// A whole session from `a` to `b`, every message through the wire encoding; the number of
/// messages, or the error.
fn sync(
    a: &mut Replica<MemoryStorage>,
    b: &mut Replica<MemoryStorage>,
    now: u64,
) -> Result<(povpoi_core::sync::SessionReport, u32), String> {
    let (mut session, mut request) = Session::start(a, SyncOptions::default());
    for messages in 1..100 {
        let response =
            b.respond(wire::from_bytes(&wire::to_bytes(&request)).map_err(|e| alloc::format!("{e:?}"))?, now);
        let response = wire::from_bytes(&wire::to_bytes(&response)).map_err(|e| alloc::format!("{e:?}"))?;
        match session.on_response(a, response, now).map_err(|e| alloc::format!("{e:?}"))? {
            Some(next) => request = next,
            None => return Ok((*session.report(), messages)),
        }
    }
    Err("no end after 100 messages".into())
}

fn check_sync(checks: &mut Checks) {
    let mut a = Replica::open(MemoryStorage::default(), identity(1)).unwrap();
    let mut b = Replica::open(MemoryStorage::default(), identity(2)).unwrap();
    let pixels: Vec<u8> = (0..400 * 32 * 3).map(|i| (i as u8).wrapping_mul(31).wrapping_add(9)).collect();
    let id = a.add_image("logo", 400, 32, &pixels, 1_000).unwrap();
    let fire = Pattern::new(PatternKind::Fire, Rgb::new(255, 60, 0), Rgb::new(255, 255, 0), 70).unwrap();
    a.set_pattern(4, fire, 1_100, Cue::NOW).unwrap();
    a.set_brightness(90, 1_200, Cue::NOW).unwrap();
    b.set_framerate(40, 1_300, Cue::NOW).unwrap();

    // b pulls from a, then a from b: both ways, both end with everything.
    let pulled = sync(&mut b, &mut a, 2_000);
    let ok = matches!(pulled, Ok((report, _)) if report.pulled.images_added == 1 && report.blobs_received == 1);
    checks.check("sync: the image and its blob reach the peer", ok, || alloc::format!("{pulled:?}"));
    let meta = b.image(id).cloned();
    let same_pixels = meta.as_ref().and_then(|m| b.image_pixels(&m.pixels()).ok().flatten()) == Some(pixels.clone());
    checks.check("sync: identical pixels on the peer", same_pixels, || alloc::format!("{meta:?}"));
    let back = sync(&mut a, &mut b, 2_100);
    checks.check("sync: the way back runs", back.is_ok(), || alloc::format!("{back:?}"));
    let view =
        |p: &Replica<MemoryStorage>| (p.records().cloned().collect::<Vec<_>>(), alloc::format!("{:?}", p.settings()));
    checks.check("sync: both replicas hold the same records and settings", view(&a) == view(&b), || {
        alloc::format!("{:?} vs {:?}", a.settings(), b.settings())
    });
    checks.check(
        "sync: the pattern and both edits arrived",
        b.pattern(4) == Some(&fire) && a.settings().brightness == 90 && a.settings().framerate == 40,
        || alloc::format!("{:?}", a.settings()),
    );
    let again = sync(&mut b, &mut a, 3_000);
    checks.check(
        "sync: in step, a session moves nothing in two messages",
        matches!(again, Ok((report, 1)) if report.pulled.images_added == 0 && report.blobs_received == 0 && report.records_sent == 0),
        || alloc::format!("{again:?}"),
    );
}

fn check_show_clock(checks: &mut Checks) {
    const A: DeviceId = DeviceId([2, 0, 0, 0, 0, 1]);
    const B: DeviceId = DeviceId([2, 0, 0, 0, 0, 2]);
    // A's own clock reads 7 s more than B's; a 1 ms link, 0.5 ms each way.
    let origins = [7_000_000u64, 0];
    let own = |side: usize, t: u64| origins[side] + t;
    let mut clocks = [ShowClock::new(A, 1, 100, own(0, 0)), ShowClock::new(B, 2, 200, own(1, 0))];
    clocks[0].set_peers(&[B], own(0, 0));
    clocks[1].set_peers(&[A], own(1, 0));
    let mut nonce = 1u32;
    let mut t = 0;
    let mut back_in_time = false;
    let mut last = [0u64; 2];
    while t < 3_000_000 {
        t += 1_000;
        for side in [0, 1] {
            nonce = nonce.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let (sent, there, back) = (own(side, t), own(1 - side, t + 500), own(side, t + 1_000));
            let [first, second] = &mut clocks;
            let (p, q) = if side == 0 { (first, second) } else { (second, first) };
            p.poll(sent);
            if let Some((_, probe)) = p.probe(sent, nonce)
                && let Some(answer) = q.answer(&probe, there, there)
            {
                let _ = p.take_answer(&answer, back, back);
            }
        }
        for side in [0, 1] {
            let now = clocks[side].now(own(side, t));
            back_in_time |= now < last[side];
            last[side] = now;
        }
    }
    let spread = clocks[1].now(own(1, t)) as i64 - clocks[0].now(own(0, t)) as i64;
    checks.check("show clock: two poi agree within 100 us after 3 s", spread.abs() <= 100, || {
        alloc::format!("spread {spread} us")
    });
    checks.check("show clock: B joins A's (older) timeline", clocks[1].timeline() == 100, || {
        alloc::format!("timeline {}", clocks[1].timeline())
    });
    let steps = clocks[1].steps();
    checks.check(
        "show clock: one forward step of about 7 s on B, none on A",
        clocks[0].steps().is_empty() && steps.len() == 1 && (steps[0].by - 7_000_000).abs() < 2_000,
        || alloc::format!("{steps:?}"),
    );
    checks.check("show clock: show time never went back", !back_in_time, String::new);
}

fn check_render(checks: &mut Checks) {
    let mut wrong = Vec::new();
    for &(case, leds, raw, finished) in golden::GOLDEN {
        use cases::Mode;
        let got = [Mode::Raw, Mode::Apply, Mode::Finished, Mode::Cached].map(|mode| cases::digest(case, leds, mode));
        let want = [raw, finished, finished, finished];
        if got != want {
            wrong.push(alloc::format!("case {case} at {leds} LEDs: {got:x?} vs host {want:x?}"));
        }
    }
    let cases = golden::GOLDEN.len();
    checks.check(
        &alloc::format!("render: {cases} digests x 4 ways (raw, apply, finished, cached) equal the host's"),
        wrong.is_empty(),
        || wrong.join("; "),
    );
}

/// Instructions per column at 32 LEDs for `case`, rendered as the x86 bench does (400
/// columns, 0.2 ms apart, brightness 200 and gamma), `cached` through a `ColumnCache` or
/// else through `render` then `Finish::apply`.
fn per_column(case: usize, cached: bool, overhead: u64) -> u64 {
    const N: u32 = 400;
    let leds = 32;
    let pixels = cases::pixels(leds);
    let program = cases::program(case, leds, &pixels);
    let renderer = Renderer::new(leds).unwrap();
    let mut column = [Rgb::default(); 32];
    let finish = Finish { brightness: 200, gamma: true };
    let mut cache = ColumnCache::new(finish);
    let start_ms = 1_764_000_000_000u64;
    let before = instret();
    for k in 0..N {
        // The bench's show times, without its 64-bit division (a library call here, which
        // would be counted as the renderer's).
        let t = start_ms + u64::from(k / 5);
        let program = core::hint::black_box(&program);
        if cached {
            renderer.render_cached(program, t, 250, (k % 256) as u8, &mut cache, &mut column);
        } else {
            renderer.render(program, t, 250, (k % 256) as u8, &mut column);
            finish.apply(&mut column);
        }
        core::hint::black_box(&column);
    }
    (instret() - before - overhead) / u64::from(N)
}

/// Keeps nothing: what a replica holds in RAM, without its storage's copies.
struct Discard;

impl Storage for Discard {
    fn load_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn save_state(&mut self, _: &[u8]) -> Result<(), StorageError> {
        Ok(())
    }
    fn load_blob(&self, _: &BlobHash) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn save_blob(&mut self, _: &BlobHash, _: &[u8]) -> Result<(), StorageError> {
        Ok(())
    }
    fn remove_blob(&mut self, _: &BlobHash) -> Result<(), StorageError> {
        Ok(())
    }
    fn blob_hashes(&self) -> Result<Vec<BlobHash>, StorageError> {
        Ok(Vec::new())
    }
    /// Every blob given is taken as kept, as a store with room would keep it.
    fn has_blob(&self, _: &BlobHash) -> Result<bool, StorageError> {
        Ok(true)
    }
}

/// Heap a replica holds with the sync state of `images` images (8x8 pictures: an image's
/// sync state does not depend on its size), on this 32-bit core.
fn sync_state_heap(images: u32) -> usize {
    let before = HEAP.used();
    let mut poi = Replica::open(Discard, identity(3)).unwrap();
    for i in 0..images {
        let pixels: Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u32 * 7 + i) as u8).collect();
        poi.add_image(&alloc::format!("image {i:03}.png"), 8, 8, &pixels, 1_000 + u64::from(i)).unwrap();
    }
    let held = HEAP.used() - before;
    drop(poi);
    held
}

/// Heap a replica of `images` images takes when a board opens it after a restart: at rest,
/// and at the peak of opening (the snapshot read whole, then decoded). The snapshot and
/// the pictures sit in RAM here in place of flash and are not counted; the copy opening
/// reads is.
fn reopened_heap(images: u32) -> (usize, usize) {
    let mut poi = Replica::open(MemoryStorage::default(), identity(4)).unwrap();
    for i in 0..images {
        let pixels: Vec<u8> = (0..8 * 8 * 3).map(|k| (k as u32 * 5 + i) as u8).collect();
        poi.add_image(&alloc::format!("image {i:03}.png"), 8, 8, &pixels, 1_000 + u64::from(i)).unwrap();
    }
    let storage = poi.into_storage();
    let before = HEAP.used();
    HEAP.reset_peak();
    let poi = Replica::open(storage, identity(4)).unwrap();
    let (at_rest, peak) = (HEAP.used() - before, HEAP.peak() - before);
    assert_eq!(poi.image_count(), images as usize);
    (at_rest, peak)
}

#[entry]
fn main() -> ! {
    // SAFETY: called once, before any allocation; the region is riscv-rt's heap.
    unsafe { HEAP.heap.init(riscv_rt::heap_start() as usize, 4 << 20) };
    say!("povpoi-core on riscv32imc (QEMU virt)");
    let mut checks = Checks { passed: 0, failed: 0 };

    // The counter counts instructions: the difference between two loops of known length.
    let overhead = {
        let a = instret();
        instret() - a
    };
    let count = |n| {
        let a = instret();
        spin(n);
        instret() - a - overhead
    };
    // Both below 2,048, so that loading either takes one instruction (`li` of a 12-bit value).
    let (short, long) = (count(500), count(1_500));
    checks.check(
        "minstret counts instructions: 1,000 more loop turns retire 2,000 more",
        long - short == 2_000,
        || alloc::format!("{short} and {long} (reading it costs {overhead})"),
    );
    say!("     (a loop of 500 turns counts {short}: 1,001 in the loop, the call and return around it)");

    check_sync(&mut checks);
    check_show_clock(&mut checks);
    check_render(&mut checks);

    say!("\nRV32IMC instructions per column at 32 LEDs (400 columns, brightness 200, gamma):");
    say!("| what | render_cached | render + Finish::apply |");
    say!("|---|---:|---:|");
    for case in 0..cases::CASES {
        let name = match case {
            0 => String::from("image 400 wide"),
            k => alloc::format!("pattern {:>2} {}", k - 1, PatternKind::ALL[k - 1].name()),
        };
        say!("| {name} | {} | {} |", per_column(case, true, overhead), per_column(case, false, overhead));
    }

    let drawn = board::draw_image_columns(800, &cases::pixels(32), |call| {
        let before = instret();
        call();
        instret() - before - overhead
    });
    say!(
        "\na board's column (App::draw_column, a 400x32 image read from a RAM flash store 16 columns at a time, 800 columns at 250 fps): {} instructions per column, of which {} letting cues take effect (App::play); {} window refills",
        drawn.per_column,
        drawn.play,
        drawn.refills
    );
    checks.check(
        "a board's columns drawn from flash equal the renderer's of the whole image",
        drawn.wrong == 0,
        || alloc::format!("{} of 800 columns differ", drawn.wrong),
    );

    let held = sync_state_heap(200);
    // The most any session case below needs, for the Teensy mirror's share after them.
    let mut worst_session = 0;
    say!("\nheap held by a replica with the sync state of 200 images: {held} B (budget 65,536 B)");
    checks.check("a replica with 200 images' sync state fits the 64 KiB heap budget", held <= 64 * 1024, || {
        alloc::format!("{held} B")
    });
    // 16 KiB: what a board fetches whatever its library; 38,400 bytes (400x32): what it
    // fetches when its heap has room (firmware/src/sync_client.rs, `fetch_limit`).
    let key = Some("pairing-key-1");
    for (images, fetched, key) in [(60, 16_384, None), (200, 16_384, None), (200, 16_384, key), (60, 38_400, key)] {
        let heap = board::session_heap(images, false, fetched, 0, key, &HEAP);
        let total = heap.at_rest + heap.worst_step;
        worst_session = worst_session.max(total);
        let group = if key.is_some() { "a keyed" } else { "an open" };
        say!(
            "a board restarted with {images} images ({} B at the peak of opening), then its own session in {group} group fetching an image of {fetched} B ({} steps, answers up to {} B): {} B at rest, {} B more at most in a step ({} taking the summary and pushing the first of {} parts, {} taking the image), {total} B in all",
            heap.opening,
            heap.steps,
            heap.largest_answer,
            heap.at_rest,
            heap.worst_step,
            heap.first_step,
            heap.parts,
            heap.last_step
        );
        let what = alloc::format!(
            "a board with {images} images runs its own session in {group} group fetching {fetched} B within 64 KiB"
        );
        checks.check(&what, total <= 64 * 1024, || alloc::format!("{total} B"));
        if key.is_none() && fetched == 16_384 {
            let what = alloc::format!("a board opens its {images}-image library within 64 KiB");
            checks.check(&what, heap.opening <= 64 * 1024, || alloc::format!("{} B", heap.opening));
        }
    }
    // The board's own session with a node that has more images (and the 16 KiB one): their
    // records come in the node's `Begun` answer when they fit the board's 2 KiB part size,
    // else the node pushes them in parts (the answering cases below). A library in an order
    // set by hand holds its record (16 bytes an image) beside it, and a board of 200 such
    // images fetches what its free heap holds (`povpoi_app::sessions::fetch_limit`, keeping
    // a request body's room and 2 KiB as firmware/src/sync_client.rs does), not 16 KiB.
    let probe = board::session_heap(200, true, 1_024, 0, None, &HEAP);
    let fetched =
        povpoi_app::sessions::fetch_limit(64 * 1024 - probe.at_rest, povpoi_app::sessions::BOARD_FETCH_RESERVE_BYTES);
    let cases = [(180, false, 16_384, 20), (140, false, 16_384, 60), (100, false, 16_384, 100)];
    for (images, ordered, fetched, more) in cases.into_iter().chain([(200, true, fetched, 0), (180, true, 16_384, 20)])
    {
        let heap = board::session_heap(images, ordered, fetched, more, None, &HEAP);
        let total = heap.at_rest + heap.worst_step;
        worst_session = worst_session.max(total);
        let kind = if ordered { " reordered" } else { "" };
        say!(
            "a board restarted with {images}{kind} images, its own session with a node holding {} more, fetching up to {fetched} B: {} of their records in the answer, {} B at rest, {} B more at most in a step ({} taking the answer), {total} B in all",
            more + 1,
            heap.pulled,
            heap.at_rest,
            heap.worst_step,
            heap.first_step,
        );
        let what = alloc::format!("a board with {images}{kind} images meets a node with {more} more within 64 KiB");
        checks.check(&what, total <= 64 * 1024, || alloc::format!("{total} B"));
    }
    // Answering a node's session that pushes images' records until the board holds 200
    // images: the node would cut 6 KiB parts, the board's summary asks for 2 KiB.
    for (images, ordered, pushed) in [(199, false, 1), (140, false, 60), (100, false, 100), (199, true, 1)] {
        let answered = board::responder_heap(images, ordered, pushed, &HEAP);
        let total = answered.at_rest + answered.worst_step;
        worst_session = worst_session.max(total);
        let kind = if ordered { " reordered" } else { "" };
        say!(
            "a board restarted with {images}{kind} images answering a node's session that pushes {pushed} more in {} parts: {} B at rest, {} B more at most in a step, {total} B in all",
            answered.parts,
            answered.at_rest,
            answered.worst_step,
        );
        let what = alloc::format!(
            "a board with {images}{kind} images takes {pushed} more from a node's session within 64 KiB"
        );
        checks.check(&what, total <= 64 * 1024, || alloc::format!("{total} B"));
    }
    // The Teensy mirror: everything sent at once, the image a chunk at a time from flash.
    let mirrored = board::teensy_heap(200, &HEAP);
    let total = mirrored.at_rest + mirrored.peak;
    say!(
        "a board restarted with 200 images mirroring to a Teensy 18 patterns, 5 sequences of 10 items and a 400x32 image ({} commands, {} B): {} B at rest, {} B more at most, {} B kept after (what the Teensy was sent), {total} B in all",
        mirrored.commands,
        mirrored.bytes,
        mirrored.at_rest,
        mirrored.peak,
        mirrored.held,
    );
    checks.check("a board with 200 images mirrors to a Teensy within 64 KiB", total <= 64 * 1024, || {
        alloc::format!("{total} B")
    });
    // What the mirror keeps is held while sessions run; its peak is inside the application's
    // lock (no await), so it never meets another task's peak, only what they hold meanwhile.
    // Across its awaits it holds that and one encoded command (at most 37 bytes: a sequence
    // of 10 items), inside this measure's peak.
    let with_teensy = worst_session + mirrored.held;
    say!("the largest session case above with a Teensy mirrored too: {with_teensy} B");
    checks.check("the largest session case fits 64 KiB beside the Teensy mirror", with_teensy <= 64 * 1024, || {
        alloc::format!("{with_teensy} B")
    });
    // Listing the library, as a phone's browser asks for it: item by item, never whole.
    let mut worst_listing = 0;
    for ordered in [false, true] {
        let listing = board::listing_heap(200, ordered, &HEAP, instret);
        worst_listing = worst_listing.max(listing.peak);
        let total = listing.at_rest + listing.peak;
        let kind = if ordered { " reordered" } else { "" };
        say!(
            "a board restarted with 200{kind} images answering GET /api/images ({} images, {} B sent an item a chunk): {} B at rest, {} B more at most, {total} B in all",
            listing.listed,
            listing.bytes,
            listing.at_rest,
            listing.peak,
        );
        let what = alloc::format!("a board lists its 200{kind} images within 64 KiB, every one of them");
        checks.check(&what, total <= 64 * 1024 && listing.listed == 200, || {
            alloc::format!("{total} B, {} listed", listing.listed)
        });
        // A phone's listing may come while the largest session runs and a Teensy is mirrored.
        let beside = with_teensy + listing.peak;
        let what =
            alloc::format!("a board lists its 200{kind} images beside the largest session and the Teensy mirror");
        checks.check(&what, beside <= 64 * 1024, || alloc::format!("{beside} B"));
        say!("  beside the largest session case and the Teensy mirror: {beside} B");
        say!(
            "  {} instructions in App::list_next for the 200 images ({} an image)",
            listing.counted,
            listing.counted / 200
        );
    }
    // An upload from a phone: the pixels go to the flash as they arrive, never held.
    let upload = board::upload_heap(200, &HEAP);
    let total = upload.at_rest + upload.peak;
    say!(
        "a board restarted with 200 images taking a 400x32 upload (38400 B of pixels in {} pieces of 1 KiB or less): {} B at rest, {} B more at most (recording it, under the lock), {} B held between pieces, {total} B in all",
        upload.pieces,
        upload.at_rest,
        upload.peak,
        upload.held,
    );
    checks.check(
        "a board with 200 images stores a 400x32 upload within 64 KiB",
        total <= 64 * 1024 && upload.stored,
        || alloc::format!("{total} B, stored: {}", upload.stored),
    );
    // An upload and the board's own session messages take turns (App::begin_upload), so it
    // meets no session step; a phone's listing and the Teensy mirror may run beside it.
    let beside = total + mirrored.held + worst_listing;
    say!("  beside a listing and the Teensy mirror: {beside} B");
    checks.check("a board takes an upload beside a listing and the Teensy mirror", beside <= 64 * 1024, || {
        alloc::format!("{beside} B")
    });
    let (at_rest, peak) = reopened_heap(200);
    say!("heap of the same reopened after a restart: {at_rest} B at rest, {peak} B at the peak of opening");
    checks.check("a reopened 200-image replica alone peaks under 64 KiB while opening", peak <= 64 * 1024, || {
        alloc::format!("{peak} B")
    });

    say!("\n{} passed, {} failed", checks.passed, checks.failed);
    exit(if checks.failed == 0 { 0 } else { 1 })
}
