//! The poi's flash storage: the `povpoi` data partition of the partition table
//! (`firmware/partitions.csv`), holding one [`FlashStore`] with the replica's snapshot, the
//! image blobs and the poi's settings (`crate::settings`).
//!
//! Everything here lives on the application heap, not in static RAM: the store, the
//! partition window and the flash driver are leaked boxes made once at start (tens of bytes
//! beside the store's own index), and the library is boxed, so that the main task's future,
//! which is static, only holds pointers.

use alloc::boxed::Box;
use core::fmt;
use core::ops::Range;

use esp_bootloader_esp_idf::partitions::{self, NorFlashRegion, PARTITION_TABLE_MAX_LEN, PartitionEntry};
use esp_hal::peripherals::FLASH;
use esp_storage::FlashStorage;
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::sync::{Identity, Replica, StorageError};
use povpoi_flash::FlashStore;

/// Label of the data partition the store keeps (`firmware/partitions.csv`).
pub const PARTITION_LABEL: &str = "povpoi";

/// Raw partition types of the partition table (ESP-IDF's `app` and `data`).
const APP: u8 = 0;
const DATA: u8 = 1;

/// The flash the store works on: the partition alone, addressed from 0.
/// esp-bootloader-esp-idf's window refuses every access outside it, so no bug in the store
/// can reach the app image or the bootloader.
pub type Partition = NorFlashRegion<'static, 'static, 'static>;

/// The poi's store, for the rest of the program.
pub type Store = FlashStore<Partition>;

/// The replica over the store: the library the shared application serves.
pub type Library = Replica<&'static Store>;

/// Why the poi runs without storage.
#[derive(Debug)]
pub enum Unavailable {
    /// The partition table could not be read or is damaged.
    Table(partitions::Error),
    /// No data partition labelled [`PARTITION_LABEL`]: the board was flashed with another
    /// partition table (espflash's default has none).
    NoPartition,
    /// The partition overlaps an app partition: a save could overwrite the firmware.
    OverlapsApp(Range<u32>),
    /// The partition cannot be written as plain flash (it is encrypted).
    NotPlain(partitions::Error),
    /// The store could not be opened on it (a flash error).
    Open(StorageError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Table(e) => write!(f, "cannot read the partition table: {e}"),
            Unavailable::NoPartition => write!(
                f,
                "no data partition labelled {PARTITION_LABEL:?}: flash with firmware/partitions.csv (docs/FIRMWARE.md)"
            ),
            Unavailable::OverlapsApp(app) => {
                write!(
                    f,
                    "partition {PARTITION_LABEL:?} overlaps the app partition at {:#x}..{:#x}",
                    app.start, app.end
                )
            }
            Unavailable::NotPlain(e) => write!(f, "partition {PARTITION_LABEL:?} is not plain flash: {e}"),
            Unavailable::Open(e) => write!(f, "cannot open the store: {e}"),
        }
    }
}

/// The store and where it is.
#[derive(Clone)]
pub struct Opened {
    /// The store, for the rest of the program.
    pub store: &'static Store,
    /// The partition's first and past-the-end flash addresses.
    pub partition: Range<u32>,
}

/// Finds the `povpoi` partition in the partition table the bootloader used and opens the
/// store on it. Call once: it takes the flash peripheral.
pub fn open(flash: FLASH<'static>) -> Result<Opened, Unavailable> {
    let flash: &'static mut FlashStorage<'static> = Box::leak(Box::new(FlashStorage::new(flash)));
    let entry = find_partition(flash)?;
    let partition = entry.offset()..entry.offset() + entry.len();
    let region = Box::leak(Box::new(entry.as_flash_region(flash)));
    let window = region.as_nor_flash().map_err(Unavailable::NotPlain)?;
    let store = FlashStore::open(window, 0..entry.len()).map_err(Unavailable::Open)?;
    Ok(Opened { store: Box::leak(Box::new(store)), partition })
}

/// The data partition labelled [`PARTITION_LABEL`], checked not to overlap any app.
fn find_partition(flash: &mut FlashStorage<'static>) -> Result<PartitionEntry, Unavailable> {
    // On the stack only while looking: 3 KiB the heap need not hold.
    let mut table = [0; PARTITION_TABLE_MAX_LEN];
    let table = partitions::read_partition_table(flash, &mut table).map_err(Unavailable::Table)?;
    // Raw types and labels only: the crate's typed `partition_type()` panics on a subtype it
    // does not know, which a hand-made table may hold.
    let ours = table
        .iter()
        .find(|e| e.raw_type() == DATA && e.label_as_str() == PARTITION_LABEL)
        .ok_or(Unavailable::NoPartition)?;
    let range = ours.offset()..ours.offset() + ours.len();
    let overlap = table
        .iter()
        .filter(|e| e.raw_type() == APP)
        .map(|e| e.offset()..e.offset() + e.len())
        .find(|app| app.start < range.end && range.start < app.end);
    match overlap {
        Some(app) => Err(Unavailable::OverlapsApp(app)),
        None => Ok(ours),
    }
}

/// Opens the library kept in `store`, or makes a new one as `device` in `group` with a fresh
/// random replica id when the store holds none (first start, or after an erase).
pub fn open_library(
    store: &'static Store,
    device: DeviceId,
    group: &str,
    replica: ReplicaId,
) -> Result<Box<Library>, povpoi_core::sync::Error> {
    let identity = Identity { replica, device, group: group.into() };
    let mut library = Replica::open(store, identity)?;
    if library.group() != group {
        // The group kept in the settings is the one asked for: a change whose library save
        // failed (App::change_config) is finished here.
        log::warn!("library: group {:?} is not the settings' {group:?}; moving it", library.group());
        library.set_group(group)?;
    }
    Ok(Box::new(library))
}
