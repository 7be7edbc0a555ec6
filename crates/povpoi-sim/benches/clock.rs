//! Show clock benchmarks on the deterministic simulation (the network: 2 ms base
//! delay, asymmetric paths, 100-1,000 ms spikes, 20 % loss, ±100 ppm; troupes of 2-16 with
//! joins, leaves, restarts and partitions), with a quiet network as the baseline measured
//! in the same run. Holdover: two poi at ±50 ppm that converged for two minutes, then 60 s
//! apart, next to the same pair never synced.
//!
//! `cargo bench -p povpoi-sim --bench clock`; `POVPOI_BENCH_SEEDS` (default 20,000).
//! Numbers go to docs/BENCHMARKS.md; nothing here asserts.

use povpoi_sim::clock::{self, Conditions, Happening, Histogram, Scenario};

struct Totals {
    spread: Histogram,
    converge: Histogram,
    converging_bytes: Vec<f64>,
    settled_bytes: Vec<f64>,
}

fn batch(seeds: u64, conditions: &Conditions) -> Totals {
    let mut t = Totals {
        spread: Histogram::default(),
        converge: Histogram::default(),
        converging_bytes: Vec::new(),
        settled_bytes: Vec::new(),
    };
    for seed in 0..seeds {
        let scenario = Scenario::random(seed, conditions);
        let report = clock::run(seed, &scenario, conditions).unwrap_or_else(|f| panic!("{f}"));
        t.spread.merge(&report.spread);
        if let Some(us) = report.converged_after_us {
            t.converge.add(us);
        }
        t.converging_bytes.push(report.converging_bytes_per_peer_s);
        if report.settled_bytes_per_peer_s > 0.0 {
            t.settled_bytes.push(report.settled_bytes_per_peer_s);
        }
    }
    t
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn ms(h: &Histogram, p: f64) -> f64 {
    h.percentile(p) as f64 / 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let seeds: u64 = std::env::var("POVPOI_BENCH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let wifi = Conditions::default();
    let quiet = Conditions { asymmetry_us: 0, jitter_mean_us: 20.0, loss: 0.0, spike_chance: 0.0, ..wifi.clone() };
    println!("show clock simulation, {seeds} seeds each");
    println!(
        "| network | spread p50 | p95 | p99 | max | converged p50 | p95 | max | bytes/peer/s converging | settled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for (name, conditions) in [("quiet (baseline)", &quiet), ("issue's Wi-Fi", &wifi)] {
        let t = batch(seeds, conditions);
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} | {:.0} |",
            ms(&t.spread, 0.5),
            ms(&t.spread, 0.95),
            ms(&t.spread, 0.99),
            t.spread.max() as f64 / 1000.0,
            ms(&t.converge, 0.5),
            ms(&t.converge, 0.95),
            t.converge.max() as f64 / 1000.0,
            mean(&t.converging_bytes),
            mean(&t.settled_bytes),
        );
        results.push(t);
    }
    println!(
        "Wi-Fi / quiet: spread p95 {:.1}x, convergence p95 {:.1}x",
        results[1].spread.percentile(0.95) as f64 / results[0].spread.percentile(0.95).max(1) as f64,
        results[1].converge.percentile(0.95) as f64 / results[0].converge.percentile(0.95).max(1) as f64
    );

    // Holdover: ±50 ppm, 120 s together then 60 s apart; baseline: never together.
    let pair_runs = 200;
    let mut held = Histogram::default();
    let mut free = Histogram::default();
    for seed in 0..pair_runs {
        held.add(clock::holdover(seed, 50.0, 120_000_000, 60_000_000, &wifi).unwrap());
        // The same crystals never synced: how far their show times move apart in 60 s.
        let never = Scenario {
            duration_us: 60_000_000,
            start_at: vec![0, 0],
            origin: vec![1_000_000, 1_000_000],
            ppm: vec![50.0, -50.0],
            happenings: vec![Happening::Partition { at: 0, until: u64::MAX, side: vec![true, false] }],
            keyed: false,
        };
        let start = clock::run(seed, &Scenario { duration_us: 1, ..never.clone() }, &wifi).unwrap();
        let end = clock::run(seed, &never, &wifi).unwrap();
        free.add(end.final_spread_us.unwrap().abs_diff(start.final_spread_us.unwrap()));
    }
    println!(
        "holdover after 60 s apart at ±50 ppm ({pair_runs} pairs): p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms; never synced: drift p50 {:.3} ms ({:.0}x)",
        ms(&held, 0.5),
        ms(&held, 0.95),
        held.max() as f64 / 1000.0,
        ms(&free, 0.5),
        free.percentile(0.5) as f64 / held.percentile(0.5).max(1) as f64
    );
}
