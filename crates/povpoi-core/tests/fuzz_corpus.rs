//! Replays the fuzz corpora and the saved crash inputs of the core's decoders
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) with the fuzz targets' own
//! checks, on stable, in the normal test run. See fuzz/README.md.

#[path = "../../../fuzz/src/core_checks.rs"]
mod core_checks;
#[path = "../../../fuzz/src/replay.rs"]
mod replay;

use replay::assert_replays as replay;

#[test]
fn peer_message() {
    replay("peer_message", core_checks::peer_message);
}

#[test]
fn replica_snapshot() {
    replay("replica_snapshot", core_checks::replica_snapshot);
}

#[test]
fn clock_datagram() {
    replay("clock_datagram", core_checks::clock_datagram);
}

#[test]
fn legacy_json() {
    replay("legacy_json", core_checks::legacy_json);
}

#[test]
fn teensy_link() {
    replay("teensy_link", core_checks::teensy_link);
}

/// Writes the seed inputs into the corpora: `cargo test -p povpoi-core --test fuzz_corpus
/// -- --ignored write_seeds`, then minimise (fuzz/README.md).
#[test]
#[ignore = "writes files into fuzz/corpus"]
fn write_seeds() {
    replay::write_seeds(core_checks::seeds());
}
