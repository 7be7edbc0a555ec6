//! The performer's app, measured in Chromium: the time from a tap on one poi's page to the
//! change shown on the other poi's page (p50/p95 over 40 taps, two real node processes on
//! 127.0.0.1), and the bytes a phone downloads for the page. Needs what
//! `tests/browser.rs` needs (python3 with playwright, /usr/bin/chromium).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let python = std::env::var("POVPOI_PYTHON").unwrap_or_else(|_| "python3".into());
    let chromium = std::env::var("POVPOI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-bench");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/app.py");
    let rounds = std::env::var("POVPOI_UI_TAPS").unwrap_or_else(|_| "40".into());
    let status = Command::new(python)
        .arg(script)
        .arg("bench")
        .args(["--povpoi", env!("CARGO_BIN_EXE_povpoi"), "--chromium", &chromium, "--rounds", &rounds])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("start the browser script (python3 with playwright)");
    assert!(status.success(), "the UI benchmark failed: {status}");
}
