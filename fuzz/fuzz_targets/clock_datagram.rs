//! A show clock datagram, unkeyed and keyed (see `core_checks::clock_datagram`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::core_checks::clock_datagram(data));
