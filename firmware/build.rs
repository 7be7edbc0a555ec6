//! `cargo build --release` in `firmware/` builds the image of every chip.
//!
//! esp-hal takes exactly one chip feature, and stable Cargo unifies features across all the
//! targets of one invocation, so two `--target`s in one build would give both chips both
//! features (docs/FIRMWARE.md, Building). Instead, a release build with no chip feature (the
//! crate is then empty) runs one cargo invocation per chip from here, each with its own
//! `--target` and chip feature, into `target/images/` (a target directory of their own:
//! this build holds the lock on its own). With a chip feature, or in another profile than
//! release (`cargo check`, an editor's checks), this script does nothing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Each chip: its feature, its target, and its name in messages.
const CHIPS: [(&str, &str, &str); 2] =
    [("esp32c3", "riscv32imc-unknown-none-elf", "ESP32-C3"), ("esp32c6", "riscv32imac-unknown-none-elf", "ESP32-C6")];

/// What the images are built from, besides this package's own files.
const SHARED_CRATES: [&str; 4] = ["povpoi-core", "povpoi-peer", "povpoi-app", "povpoi-flash"];

/// Build-time settings the firmware reads with `option_env!` (docs/FIRMWARE.md), and the
/// compiler flags for every target or for each chip's (frame pointers for debugging).
const BUILD_ENV: [&str; 7] = [
    "POVPOI_WIFI_SSID",
    "POVPOI_WIFI_PASSWORD",
    "POVPOI_GROUP_KEY",
    "ESP_LOG",
    "RUSTFLAGS",
    "CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_RUSTFLAGS",
    "CARGO_TARGET_RISCV32IMAC_UNKNOWN_NONE_ELF_RUSTFLAGS",
];

/// Set by the cargo running this script for its own build: the nested builds are plain
/// ones that read the config themselves (not this target's flags, not `cargo clippy`'s or
/// `cargo fix`'s compiler wrapper).
const OUTER_ENV: [&str; 5] =
    ["CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS", "__CARGO_FIX_PLZ"];

fn main() {
    // Building two images on each `cargo check` would cost minutes for nothing.
    if env::var_os("CARGO_FEATURE_CHIP").is_some() || env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let images = target_dir(&manifest).join("images");
    watch_sources(&manifest, &images);

    let cargo = env::var_os("CARGO").expect("cargo sets CARGO");
    let trimmed_paths = trimmed_paths(&manifest);
    for (feature, target, name) in CHIPS {
        let mut build = Command::new(&cargo);
        build.current_dir(&manifest).args(["build", "--release", "--target", target, "--features", feature]);
        build.arg("--target-dir").arg(&images);
        build.arg("--config").arg(&trimmed_paths);
        for variable in OUTER_ENV {
            build.env_remove(variable);
        }
        // A build script's stdout is read by cargo as instructions.
        build.stdout(Stdio::from(std::io::stderr()));
        match build.status() {
            Ok(status) if status.success() => {}
            Ok(_) => fail(&format!(
                "building the {name} image failed (its errors are above); `cargo {feature}` builds that chip alone, and `rustup target add {target}` adds a missing target"
            )),
            Err(e) => fail(&format!("could not run cargo to build the {name} image: {e}")),
        }
        println!("cargo:warning={name} image: {}", image(&images, target).display());
    }
}

/// Stops the build with `message` (a panic would add a backtrace of this script).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// Where this package's builds go: `CARGO_TARGET_DIR` if set, else `target/` here (where
/// `./size-report` looks).
fn target_dir(manifest: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), |dir| manifest.join(dir))
}

/// The nested builds' `--config`: compiler flags that cut the machine's directories off
/// the source paths the image keeps, so a panic names `esp-hal-1.2.2/src/lib.rs` rather
/// than `/root/.cargo/registry/src/index.crates.io-.../esp-hal-1.2.2/src/lib.rs`. Panic
/// locations keep one path per source file in flash: the prefixes were 10 KB of the C6's
/// image. Joined to the rustflags of `.cargo/config.toml` (Cargo joins arrays of a key set
/// in several places); a `RUSTFLAGS` set in the environment replaces both.
fn trimmed_paths(manifest: &Path) -> String {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    // One directory per registry index (crates.io's is `index.crates.io-<hash>`).
    if let Some(Ok(indexes)) = cargo_home.map(|home| std::fs::read_dir(home.join("registry").join("src"))) {
        prefixes.extend(indexes.filter_map(|entry| Some(entry.ok()?.path())));
    }
    // The standard library's sources, named `/rustc/<commit>/library/...`.
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("-vV").output() {
        let version = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(hash) = version.lines().find_map(|line| line.strip_prefix("commit-hash: ")) {
            prefixes.push(PathBuf::from("/rustc").join(hash.trim()));
        }
    }
    // This checkout: `crates/povpoi-core/src/...`, `firmware/src/...`.
    prefixes.extend(manifest.parent().map(Path::to_path_buf));
    let flags: Vec<String> = prefixes
        .iter()
        .map(|prefix| {
            let flag = format!("--remap-path-prefix={}/=", prefix.display());
            format!("\"{}\"", flag.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    format!("target.'cfg(target_arch = \"riscv32\")'.rustflags=[{}]", flags.join(", "))
}

/// The image a chip's build leaves.
fn image(images: &Path, target: &str) -> PathBuf {
    images.join(target).join("release").join("povpoi-firmware")
}

/// Runs this script again when anything the images are built from changes, or an image is
/// gone; the nested builds themselves then rebuild only what changed.
fn watch_sources(manifest: &Path, images: &Path) {
    for own in ["src", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", manifest.join(own).display());
    }
    // The shared crates take their dependencies' versions from the root workspace.
    println!("cargo:rerun-if-changed={}", manifest.join("../Cargo.toml").display());
    for shared in SHARED_CRATES {
        let dir = manifest.join("..").join("crates").join(shared);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
    }
    for name in BUILD_ENV {
        println!("cargo:rerun-if-env-changed={name}");
    }
    for (_, target, _) in CHIPS {
        println!("cargo:rerun-if-changed={}", image(images, target).display());
    }
}
