//! A peer's sync message: decode, re-encode, answer (see `core_checks::peer_message`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::core_checks::peer_message(data));
