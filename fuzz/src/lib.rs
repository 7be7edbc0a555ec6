//! What the fuzz targets check, one function per target. The modules are shared with the
//! stable regression tests (`crates/*/tests/fuzz_corpus.rs` include them by path), so the
//! corpora and the saved crash inputs are replayed with exactly these checks by
//! `cargo test --workspace`.

pub mod core_checks;
pub mod media_checks;
pub mod node_checks;
pub mod node_harness;

/// A directory for targets that need files, on tmpfs when there is one (the node and the
/// nonce file sync to disk on every write). Named after this process; directories of
/// processes that are gone (a crashed run leaves its own) are removed first, and this one
/// is removed at exit.
pub fn scratch_dir(target: &str) -> std::path::PathBuf {
    let base = std::path::Path::new("/dev/shm");
    let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
    let prefix = format!("povpoi-fuzz-{target}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(&prefix) else { continue };
            if !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create the fuzz scratch directory");
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).push(dir.clone());
    // SAFETY: `atexit` only stores the function; `remove_scratch` takes no arguments and
    // cannot unwind (it ignores every error).
    unsafe { atexit(remove_scratch) };
    dir
}

static SCRATCH: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_scratch() {
    if let Ok(dirs) = SCRATCH.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}
