//! Thousands of seeded troupes of show clocks under the network: every run must keep
//! show time monotonic, jump only by announced steps, never go back to a timeline it left (but by a step within measuring error),
//! and keep every settled group within a few ms; the percentiles over all runs are checked
//! against the targets.
//!
//! - `POVPOI_CLOCK_SEEDS=N` runs N seeds (default 5,000) from `POVPOI_CLOCK_FIRST_SEED` (0).
//! - `POVPOI_CLOCK_SEED=S` runs one seed and prints its scenario and report.

use povpoi_sim::clock::{self, Conditions, Histogram, Scenario};

fn env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

#[test]
fn every_seed_keeps_the_troupe_in_step() {
    let conditions = Conditions::default();
    if let Ok(seed) = std::env::var("POVPOI_CLOCK_SEED") {
        let seed = seed.parse().expect("POVPOI_CLOCK_SEED is a whole number");
        let scenario = Scenario::random(seed, &conditions);
        println!("{scenario:#?}");
        match clock::run(seed, &scenario, &conditions) {
            Ok(report) => println!("{report:#?}\np95 {} µs", report.spread.percentile(0.95)),
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    let first = env("POVPOI_CLOCK_FIRST_SEED", 0);
    let seeds = env("POVPOI_CLOCK_SEEDS", 5_000);
    let mut spread = Histogram::default();
    let mut converge = Histogram::default();
    let (mut steps, mut datagrams, mut lost, mut happenings, mut keyed, mut tie_returns) = (0, 0, 0, 0, 0, 0);
    let (mut never_converged, mut biggest) = (0, 0);
    for seed in first..first + seeds {
        let scenario = Scenario::random(seed, &conditions);
        keyed += u64::from(scenario.keyed);
        let report = clock::run(seed, &scenario, &conditions).unwrap_or_else(|f| panic!("{f}"));
        spread.merge(&report.spread);
        match report.converged_after_us {
            Some(us) => converge.add(us),
            None => never_converged += 1,
        }
        steps += report.steps;
        tie_returns += report.tie_returns;
        datagrams += report.datagrams;
        lost += report.lost;
        happenings += report.happenings as u64;
        biggest = biggest.max(report.nodes);
    }
    let p = |h: &Histogram, q: f64| h.percentile(q) as f64 / 1000.0;
    println!(
        "{seeds} seeds (up to {biggest} poi, {keyed} keyed, {happenings} leaves/restarts/partitions), {datagrams} datagrams ({lost} lost), {steps} steps ({tie_returns} back between near-tied timelines)"
    );
    println!(
        "settled spread ms: p50 {:.3} p95 {:.3} p99 {:.3} max {:.3} over {} samples",
        p(&spread, 0.5),
        p(&spread, 0.95),
        p(&spread, 0.99),
        spread.max() as f64 / 1000.0,
        spread.count()
    );
    println!(
        "converged after ms: p50 {:.0} p95 {:.0} max {:.0} ({never_converged} runs had a happening first)",
        p(&converge, 0.5),
        p(&converge, 0.95),
        converge.max() as f64 / 1000.0
    );
    assert!(spread.count() > seeds * 100, "too few settled samples: {}", spread.count());
    assert!(spread.percentile(0.95) <= 1_000, "p95 spread over 1 ms");
    assert!(spread.percentile(0.99) <= 3_000, "p99 spread over 3 ms");
    assert!(converge.percentile(0.95) <= 3_000_000, "p95 convergence over 3 s");
    assert!(tie_returns * 1_000 <= steps, "near-tie swaps are not rare: {tie_returns} of {steps} steps");
    assert!(lost > datagrams / 6 && happenings > seeds && keyed > seeds / 3, "the faults were not exercised");
}
