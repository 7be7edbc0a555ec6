//! A `.pov` file, headered or the Teensy's (see `media_checks::pov_file`).
#![no_main]

#[global_allocator]
static ALLOC: povpoi_fuzz::media_checks::CountingAlloc = povpoi_fuzz::media_checks::CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::media_checks::pov_file(data));
