//! The performer's app in a real browser: `tests/browser/app.py` starts two real `povpoi
//! node` processes on 127.0.0.1 and drives Chromium (the Debian package) with Playwright at
//! phone size: upload with progress, the thumbnail on the other poi's page, play from the
//! other poi, a pattern and a sequence, a conflict settled, a pairing key, an earlier image
//! deleted while a later one plays, no console errors and no overflow at 360 px. And the
//! same app served by `povpoi board` beside a node.
//!
//! Needs `python3` with `playwright` (pip) and `/usr/bin/chromium` (`POVPOI_PYTHON`,
//! `POVPOI_CHROMIUM` to use others); fails without them, unless `POVPOI_SKIP_BROWSER` is set.
//! Screenshots of every step are left in `target/tmp/browser-screenshots/`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the whole browser run may take before it is stopped.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn python() -> String {
    std::env::var("POVPOI_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn chromium() -> String {
    std::env::var("POVPOI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// What is missing to run a browser here, if anything.
fn missing() -> Option<String> {
    if !Path::new(&chromium()).exists() {
        return Some(format!("no Chromium at {} (apt-get install chromium)", chromium()));
    }
    match Command::new(python()).args(["-c", "import playwright"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some(format!("{} has no playwright module (pip install playwright)", python())),
        Err(e) => Some(format!("cannot run {}: {e}", python())),
    }
}

#[test]
fn performers_app_in_chromium() {
    run_in_chromium("test", "browser-screenshots", 20);
}

/// The same app served by `povpoi board` (the board firmware's application) beside a node:
/// only what a board does is shown, pictures are converted in the browser (a board takes
/// raw RGB) as the converter makes them, thumbnails are drawn from the pixels, changes are
/// polled for, uploads, plays and settings reach the board and the node, and a pairing key
/// turned down is not asked for again by the polling.
#[test]
fn performers_app_on_a_board_in_chromium() {
    run_in_chromium("board", "browser-board-screenshots", 8);
}

/// Runs `app.py WHAT`, one browser run at a time (two Chromiums on a 2-core machine would
/// slow each other past the script's waits), and checks it left `shots` screenshots.
fn run_in_chromium(what: &str, folder: &str, shots: usize) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(why) = missing() {
        if std::env::var_os("POVPOI_SKIP_BROWSER").is_some() {
            println!("SKIPPED (POVPOI_SKIP_BROWSER): {why}");
            return;
        }
        panic!("cannot run the browser tests: {why}; set POVPOI_SKIP_BROWSER=1 to skip them on this machine");
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(folder);
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/app.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(what)
        .args(["--povpoi", env!("CARGO_BIN_EXE_povpoi"), "--chromium", &chromium()])
        .arg("--out")
        .arg(&out)
        // Its own process group, so a run stopped for taking too long takes its poi and
        // its browser with it.
        .process_group(0)
        .spawn()
        .expect("start the browser script");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the browser script") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("the browser run took longer than {RUN_LIMIT:?}; screenshots so far in {}", out.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "the browser checks failed ({status}); screenshots in {}", out.display());
    let found = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert!(found >= shots, "expected a screenshot of every step, found {found} in {}", out.display());
}
