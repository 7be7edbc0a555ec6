//! Replays the fuzz corpora and the saved crash inputs of the picture decoders
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) with the fuzz targets' own
//! checks, memory peaks included, on stable, in the normal test run. See fuzz/README.md.

#[path = "../../../fuzz/src/media_checks.rs"]
mod media_checks;
#[path = "../../../fuzz/src/replay.rs"]
mod replay;

// Counts heap bytes so the checks can see a decode's peak. One replaying test only: a
// second one running at the same time would add its allocations to the peaks.
#[global_allocator]
static ALLOC: media_checks::CountingAlloc = media_checks::CountingAlloc;

#[test]
fn pov_file_and_image_decode() {
    replay::assert_replays("pov_file", media_checks::pov_file);
    replay::assert_replays("image_decode", media_checks::image_decode);
}

/// Writes the seed inputs into the corpora: `cargo test -p povpoi-media --test fuzz_corpus
/// -- --ignored write_seeds`, then minimise (fuzz/README.md).
#[test]
#[ignore = "writes files into fuzz/corpus"]
fn write_seeds() {
    replay::write_seeds(media_checks::seeds());
}
