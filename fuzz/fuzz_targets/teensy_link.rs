//! Bytes on the Teensy serial link, in any split (see `core_checks::teensy_link`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::core_checks::teensy_link(data));
