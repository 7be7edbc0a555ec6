//! Thousands of seeded runs of 2-8 replicas under faults must all converge.
//!
//! - `POVPOI_SIM_SEEDS=N` runs N seeds (default 10,000), from `POVPOI_SIM_FIRST_SEED` (default 0).
//! - `POVPOI_SIM_STEPS=N` random steps per run (default 150).
//! - `POVPOI_SIM_SEED=S` replays one seed and prints its step-by-step trace.

use povpoi_sim::scenario::{self, RunStats};

fn env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

#[test]
fn every_seed_converges_with_nothing_lost() {
    let steps = env("POVPOI_SIM_STEPS", 150) as usize;
    if let Ok(seed) = std::env::var("POVPOI_SIM_SEED") {
        let seed = seed.parse().expect("POVPOI_SIM_SEED is a whole number");
        let mut trace = String::new();
        let result = scenario::run_traced(seed, steps, &mut trace);
        println!("{trace}");
        match result {
            Ok(stats) => println!("seed {seed} converged: {stats:?}"),
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    let first = env("POVPOI_SIM_FIRST_SEED", 0);
    let seeds = env("POVPOI_SIM_SEEDS", 10_000);
    let mut total = RunStats::default();
    for seed in first..first + seeds {
        match scenario::run(seed, steps) {
            Ok(stats) => total.add(&stats),
            Err(failure) => panic!("{}", scenario::shrink(failure)),
        }
    }
    println!("{seeds} seeds x {steps} steps converged: {total:?}");
    assert!(total.sessions_completed > 0 && total.lost > 0 && total.duplicated > 0 && total.replayed > 0);
    assert!(total.crashes > 0 && total.partitions > 0 && total.converged.multi_version_items > 0);
}

#[test]
fn a_seed_replays_identically() {
    for seed in [1, 2, 3] {
        let (mut first, mut second) = (String::new(), String::new());
        let a = scenario::run_traced(seed, 120, &mut first).unwrap();
        let b = scenario::run_traced(seed, 120, &mut second).unwrap();
        assert_eq!(a, b);
        assert_eq!(first, second);
        assert!(first.lines().count() > 120);
    }
}
