//! The nonce file a node reads at start (see `node_checks::nonce_file`).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| povpoi_fuzz::scratch_dir("nonce_file"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| povpoi_fuzz::node_checks::nonce_file(data, dir()));
