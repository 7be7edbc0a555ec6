//! Replaying the fuzz corpora and regressions on stable: included by path in
//! `crates/*/tests/fuzz_corpus.rs` (not part of the fuzz crate, which has libFuzzer for it).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The fuzz crate's directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.expect("a readable directory").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let data = std::fs::read(&path).expect("a readable input");
            (path, data)
        })
        .collect();
    found.sort();
    found
}

/// Every input of `target`: its corpus, which must not be empty (a corpus lost in a merge
/// would otherwise pass silently), then its regressions, which may be.
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut found = files(&corpus);
    assert!(!found.is_empty(), "no corpus for {target}: {} is empty or missing", corpus.display());
    found.extend(files(&fuzz_dir().join("regressions").join(target)));
    found
}

/// The inputs of `target` on which `check` panics.
pub fn failures(target: &str, mut check: impl FnMut(&[u8])) -> Vec<String> {
    inputs(target)
        .into_iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect()
}

/// Panics, naming them, if `check` panics on any input of `target`.
pub fn assert_replays(target: &str, check: impl FnMut(&[u8])) {
    let failed = failures(target, check);
    assert!(failed.is_empty(), "{target}: failed on {failed:#?}");
}

/// Writes seed inputs as `fuzz/corpus/<target>/seed-<name>` (see fuzz/README.md).
pub fn write_seeds(seeds: Vec<(&'static str, String, Vec<u8>)>) {
    for (target, name, bytes) in seeds {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("a writable fuzz directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("a writable corpus directory");
    }
}
