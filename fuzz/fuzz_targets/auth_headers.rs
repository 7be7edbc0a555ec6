//! The pairing key's request headers and sealed bodies (see `node_checks::auth_headers`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::node_checks::auth_headers(data));
