//! Two heaps: the application's (Rust's global allocator) and the radio's (the C `malloc` the
//! Wi-Fi blobs and esp-rtos call).
//!
//! Why two: with one shared heap, a burst of Wi-Fi buffers during an upload could starve the
//! application, and an application holding an image could starve the Wi-Fi driver, which then
//! drops the connection in ways that are hard to trace. Separate regions make each budget a
//! hard limit that fails where it is exceeded. esp-radio's own Rust side still allocates a few
//! small queues (a few hundred bytes) from the global heap.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr;

use esp_alloc::{EspHeap, HeapRegion, MemoryCapability};

/// The application's heap: what the shared application (library, sync, player, request bodies)
/// may allocate in all.
pub const APP_HEAP_BYTES: usize = 64 * 1024;

/// The radio's heap: the RAM the second-stage bootloader used, free once the application runs
/// (64 KB on the C6, a little more on the C3). What the driver keeps is bounded by
/// [`crate::wifi::controller_config`]: 8 static RX buffers of ~1.6 KB (13 KB), its task's stack
/// and control blocks (~15 KB), and at most 10 dynamic RX and 10 dynamic TX buffers in a burst
/// (32 KB), about 60 KB at worst. A burst past it only drops frames: the driver copes with a
/// failed malloc.
pub const RADIO_HEAP_BYTES: usize = 64 * 1024;

/// The region behind the radio's `malloc`. Separate from [`esp_alloc::HEAP`], the global one.
static RADIO_HEAP: EspHeap = EspHeap::empty();

/// Gives both heaps their memory; call once, first thing after `esp_hal::init`.
pub fn init() {
    #[esp_hal::ram(reclaimed)]
    static mut RADIO: MaybeUninit<[u8; RADIO_HEAP_BYTES]> = MaybeUninit::uninit();
    static mut APP: MaybeUninit<[u8; APP_HEAP_BYTES]> = MaybeUninit::uninit();

    // SAFETY: called once at start-up, so each static region is handed to exactly one heap,
    // for the rest of the program, and nothing else refers to it.
    unsafe {
        esp_alloc::HEAP.add_region(HeapRegion::new(
            (&raw mut APP).cast::<u8>(),
            APP_HEAP_BYTES,
            MemoryCapability::Internal.into(),
        ));
        RADIO_HEAP.add_region(HeapRegion::new(
            (&raw mut RADIO).cast::<u8>(),
            RADIO_HEAP_BYTES,
            MemoryCapability::Internal.into(),
        ));
    }
}

/// Bytes in use in the application's heap and in the radio's, for the serial log.
pub fn used() -> (usize, usize) {
    (esp_alloc::HEAP.used(), RADIO_HEAP.used())
}

// The C allocator the radio blobs and esp-rtos link against, over RADIO_HEAP. A block carries
// its total size in a 4-byte header, as `free` and `realloc` get only the pointer.

const HEADER: usize = core::mem::size_of::<usize>();

fn radio_alloc(size: usize) -> *mut u8 {
    let Some(total) = size.checked_add(HEADER) else { return ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, 4) else { return ptr::null_mut() };
    // SAFETY: `total` is at least HEADER, so the layout is not zero-sized.
    let block = unsafe { RADIO_HEAP.alloc_caps(MemoryCapability::Internal.into(), layout) };
    if block.is_null() {
        return block;
    }
    // SAFETY: the block is at least HEADER bytes long and 4-aligned.
    unsafe {
        block.cast::<usize>().write(total);
        block.add(HEADER)
    }
}

/// The size the caller asked for when `data` (not null) was allocated.
///
/// # Safety
/// `data` came from [`radio_alloc`] and was not freed.
unsafe fn requested_size(data: *mut u8) -> usize {
    unsafe { data.sub(HEADER).cast::<usize>().read() - HEADER }
}

/// # Safety
/// `data` is null or came from [`radio_alloc`] and was not freed.
unsafe fn radio_free(data: *mut u8) {
    if data.is_null() {
        return;
    }
    // SAFETY: per the contract, the header before `data` holds the block's total size.
    unsafe {
        let block = data.sub(HEADER);
        let total = block.cast::<usize>().read();
        RADIO_HEAP.dealloc(block, Layout::from_size_align_unchecked(total, 4));
    }
}

fn radio_calloc(number: u32, size: usize) -> *mut u8 {
    let Some(total) = (number as usize).checked_mul(size) else { return ptr::null_mut() };
    let data = radio_alloc(total);
    if !data.is_null() {
        // SAFETY: `data` has `total` writable bytes.
        unsafe { data.write_bytes(0, total) };
    }
    data
}

/// # Safety
/// `data` is null or came from [`radio_alloc`] and was not freed.
unsafe fn radio_realloc(data: *mut u8, size: usize) -> *mut u8 {
    let moved = radio_alloc(size);
    if !moved.is_null() && !data.is_null() {
        // SAFETY: both blocks are live and distinct; we copy what both can hold.
        unsafe {
            let keep = requested_size(data).min(size);
            moved.copy_from_nonoverlapping(data, keep);
            radio_free(data);
        }
    }
    moved
}

/// C `malloc` for the radio blobs.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    radio_alloc(size)
}

/// C `malloc` of internal RAM (all of our RAM is internal).
#[unsafe(no_mangle)]
pub extern "C" fn malloc_internal(size: usize) -> *mut u8 {
    radio_alloc(size)
}

/// C `free`.
///
/// # Safety
/// `data` is null or came from this module's allocation functions and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(data: *mut u8) {
    unsafe { radio_free(data) }
}

/// C `free` of internal RAM.
///
/// # Safety
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_internal(data: *mut u8) {
    unsafe { radio_free(data) }
}

/// C `calloc`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(number: u32, size: usize) -> *mut u8 {
    radio_calloc(number, size)
}

/// C `calloc` of internal RAM.
#[unsafe(no_mangle)]
pub extern "C" fn calloc_internal(number: u32, size: usize) -> *mut u8 {
    radio_calloc(number, size)
}

/// C `realloc`.
///
/// # Safety
/// As [`free`] for `data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(data: *mut u8, size: usize) -> *mut u8 {
    unsafe { radio_realloc(data, size) }
}

/// C `realloc` of internal RAM.
///
/// # Safety
/// As [`free`] for `data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc_internal(data: *mut u8, size: usize) -> *mut u8 {
    unsafe { radio_realloc(data, size) }
}

/// Free bytes of the radio's heap, which the driver asks before large allocations.
#[unsafe(no_mangle)]
pub extern "C" fn get_free_internal_heap_size() -> usize {
    RADIO_HEAP.free_caps(MemoryCapability::Internal.into())
}
