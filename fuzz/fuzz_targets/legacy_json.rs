//! The existing system's `/api/sync/data` JSON (see `core_checks::legacy_json`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::core_checks::legacy_json(data));
