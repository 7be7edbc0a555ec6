//! A replica's stored snapshot (see `core_checks::replica_snapshot`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::core_checks::replica_snapshot(data));
