//! Any picture file a user uploads (see `media_checks::image_decode`).
#![no_main]

#[global_allocator]
static ALLOC: povpoi_fuzz::media_checks::CountingAlloc = povpoi_fuzz::media_checks::CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::media_checks::image_decode(data));
