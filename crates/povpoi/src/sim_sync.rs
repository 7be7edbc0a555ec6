//! `povpoi sim-sync`: replicas in memory, edited apart, then synced until they agree.

use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::model::{Pattern, PatternKind, Rgb};
use povpoi_core::show::Cue;
use povpoi_core::sync::{Identity, Replica, SyncOptions};
use povpoi_sim::scenario;
use povpoi_sim::storage::SimStorage;
use povpoi_sim::transport;

/// Options of `povpoi sim-sync`.
#[derive(clap::Args)]
pub struct Args {
    /// How many poi (2-8).
    #[arg(long, default_value_t = 3)]
    devices: usize,
    /// Instead of the scripted story, run the fault-injecting simulation for this seed
    /// (lost, duplicated and replayed messages, crashes, partitions, clock skew).
    #[arg(long)]
    seed: Option<u64>,
    /// Random steps of the simulation (with --seed).
    #[arg(long, default_value_t = 150)]
    steps: usize,
    /// Print every step of the simulation (with --seed).
    #[arg(long)]
    trace: bool,
}

type Poi = Replica<SimStorage>;

const T0: u64 = 1_764_000_000_000;

pub fn run(args: &Args) -> Result<(), String> {
    if !(2..=8).contains(&args.devices) {
        return Err(format!("--devices must be 2 to 8, not {}", args.devices));
    }
    match args.seed {
        Some(seed) => simulate(seed, args.steps, args.trace),
        None => story(args.devices),
    }
}

fn simulate(seed: u64, steps: usize, trace: bool) -> Result<(), String> {
    let mut log = String::new();
    let result = if trace { scenario::run_traced(seed, steps, &mut log) } else { scenario::run(seed, steps) };
    print!("{log}");
    let stats = result.map_err(|f| f.to_string())?;
    println!(
        "seed {seed}: {} poi, {} edits, {} sessions ({} finished), {} messages lost, {} duplicated, {} replayed late, \
         {} crashes, {} partitions",
        stats.replicas,
        stats.edits,
        stats.sessions,
        stats.sessions_completed,
        stats.lost,
        stats.duplicated,
        stats.replayed,
        stats.crashes,
        stats.partitions
    );
    let c = stats.converged;
    println!(
        "after healing and one round: all replicas agree; {} items live, {} deleted everywhere, {} with concurrent \
         versions kept, {} image versions with verified pixels",
        c.live_items, c.deleted_items, c.multi_version_items, c.images_checked
    );
    Ok(())
}

fn open(n: usize) -> Poi {
    let identity = Identity {
        replica: ReplicaId(0x1000 + n as u64),
        device: DeviceId([0xA4, 0xCF, 0x12, 0x00, 0x00, n as u8 + 1]),
        group: "troupe".into(),
    };
    Replica::open(SimStorage::default(), identity).expect("an empty store opens")
}

fn name(i: usize) -> char {
    (b'A' + i as u8) as char
}

fn gradient(width: u32) -> Vec<u8> {
    (0..32u32).flat_map(|y| (0..width).flat_map(move |x| [(x * 255 / width) as u8, (y * 8) as u8, 128])).collect()
}

fn story(devices: usize) -> Result<(), String> {
    let mut poi: Vec<Poi> = (0..devices).map(open).collect();
    let fail = |e: povpoi_core::sync::Error| e.to_string();
    println!("{devices} poi in sync group \"troupe\", each with its own copy of the library.\n");

    println!("Apart from each other:");
    let logo = poi[0].add_image("logo", 64, 32, &gradient(64), T0).map_err(fail)?;
    println!("  A uploads image \"logo\" (64x32)");
    let fire =
        Pattern::new(PatternKind::Fire, Rgb::new(255, 80, 0), Rgb::new(255, 0, 0), 120).map_err(|e| e.to_string())?;
    poi[1].set_pattern(0, fire, T0 + 10, Cue::NOW).map_err(fail)?;
    poi[1].set_brightness(80, T0 + 20, Cue::NOW).map_err(fail)?;
    println!("  B puts Fire in pattern slot 0 and sets brightness 80");
    if devices > 2 {
        poi[2].add_image("stars", 120, 32, &gradient(120), T0 + 30).map_err(fail)?;
        poi[2].set_brightness(200, T0 + 40, Cue::NOW).map_err(fail)?;
        println!("  C uploads image \"stars\" (120x32) and sets brightness 200, later than B");
    }

    println!("\nThey meet:");
    round(&mut poi)?;

    println!("\nApart again, A and B rename \"logo\" differently:");
    poi[0].rename_image(logo, "logo (A's cut)", T0 + 1_000).map_err(fail)?;
    poi[1].rename_image(logo, "logo (B's cut)", T0 + 2_000).map_err(fail)?;
    println!("\nThey meet:");
    round(&mut poi)?;

    println!("\nWhat every poi now holds:");
    for (i, p) in poi.iter().enumerate() {
        let images: Vec<String> =
            p.images().map(|(_, m)| format!("{} {}x{}", m.name(), m.width(), m.height())).collect();
        let conflicts: Vec<String> = p
            .conflicts()
            .map(|c| {
                let copies: Vec<String> = c
                    .copies
                    .iter()
                    .map(|r| match &r.value {
                        povpoi_core::sync::Value::Image(m) => format!("\"{}\"", m.name()),
                        other => format!("{other:?}"),
                    })
                    .collect();
                format!("{} keeps {}", c.key, copies.join(", "))
            })
            .collect();
        println!(
            "  {}: images [{}], pattern 0 {:?}, brightness {}, conflict copies: {}",
            name(i),
            images.join(", "),
            p.pattern(0).map(|p| p.kind().name()),
            p.settings().brightness,
            if conflicts.is_empty() { "none".into() } else { conflicts.join("; ") }
        );
    }
    let same = poi.windows(2).all(|w| w[0].records().eq(w[1].records()) && w[0].knowledge() == w[1].knowledge());
    println!("\nAll {devices} replicas identical: {}", if same { "yes" } else { "NO" });
    if same { Ok(()) } else { Err("replicas did not converge".into()) }
}

/// Everyone syncs with A, twice over: enough for all to agree.
fn round(poi: &mut [Poi]) -> Result<(), String> {
    for _pass in 0..2 {
        for i in 1..poi.len() {
            let (hub, rest) = poi.split_at_mut(i);
            let (report, traffic) = transport::sync(&mut rest[0], &mut hub[0], SyncOptions::default(), T0 + 10_000)
                .map_err(|e| e.to_string())?;
            if traffic.messages > 2 || report.records_sent > 0 || report.pulled.records_merged > 0 {
                println!(
                    "  {} <-> A: {} messages, {} bytes; {} got {} records, {} blobs; sent {} records, {} blobs",
                    name(i),
                    traffic.messages,
                    traffic.bytes,
                    name(i),
                    report.pulled.records_merged,
                    report.blobs_received,
                    report.records_sent,
                    report.blobs_sent
                );
            } else {
                println!("  {} <-> A: already in sync ({} bytes)", name(i), traffic.bytes);
            }
        }
    }
    Ok(())
}
