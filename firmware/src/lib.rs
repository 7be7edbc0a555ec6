//! povpoi on ESP32-C3 and ESP32-C6: the platform layer around the shared application.
//!
//! [`poi`] holds `povpoi_app::App` (what a poi does, the same crate a node's rules come
//! from) and connects it to the thin adapters: Wi-Fi ([`wifi`], credentials from
//! [`settings`]), the network stack and its socket budget ([`net`]), the access point's DHCP
//! server ([`dhcp_server`]), mDNS ([`mdns`]), HTTP ([`http`]), the LED outputs ([`apa102`],
//! [`teensy`]) and the column clock ([`column`]), the two heaps ([`heap`]), and the flash
//! store holding the library and the settings ([`storage`]). `src/main.rs` wires them
//! together; docs/FIRMWARE.md says how to build, flash and wire a board, and what the board
//! does and does not do yet.

#![no_std]
#![warn(missing_docs)]

// Without a chip feature the crate is empty: that build only runs build.rs, which builds
// each chip's image in a cargo invocation of its own (docs/FIRMWARE.md, Building).
#[cfg(feature = "chip")]
extern crate alloc;

#[cfg(all(feature = "esp32c3", feature = "esp32c6"))]
compile_error!("build one chip at a time: `cargo esp32c3` or `cargo esp32c6` (docs/FIRMWARE.md)");
#[cfg(all(feature = "chip", not(any(feature = "esp32c3", feature = "esp32c6"))))]
compile_error!(
    "pick a chip: `cargo esp32c3` or `cargo esp32c6`, or `cargo build --release` for both (docs/FIRMWARE.md)"
);

#[cfg(feature = "chip")]
pub mod apa102;
#[cfg(feature = "chip")]
pub mod column;
#[cfg(feature = "chip")]
pub mod dhcp_server;
#[cfg(feature = "chip")]
pub mod heap;
#[cfg(feature = "chip")]
pub mod http;
#[cfg(feature = "chip")]
pub mod mdns;
#[cfg(feature = "chip")]
pub mod net;
#[cfg(feature = "chip")]
pub mod poi;
#[cfg(feature = "chip")]
pub mod settings;
#[cfg(feature = "chip")]
pub mod setup;
#[cfg(feature = "chip")]
pub mod storage;
#[cfg(feature = "chip")]
pub mod sync_client;
#[cfg(feature = "chip")]
pub mod teensy;
#[cfg(feature = "chip")]
pub mod wifi;
