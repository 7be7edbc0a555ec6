//! `cargo build --release` in `firmware/` builds the image of every chip.
//!
//! esp-hal takes exactly one chip feature, and stable Cargo unifies features across all the
//! targets of one invocation, so two `--target`s in one build would give both chips both
//! features (docs/FIRMWARE.md, Building). Instead, a build with no chip feature (the crate
//! is then empty) runs one cargo invocation per chip from here, each with its own
//! `--target` and chip feature, into `target/images/` (a target directory of their own:
//! this build holds the lock on its own). With a chip feature this script does nothing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Each chip: its feature, its target, and its name in messages.
const CHIPS: [(&str, &str, &str); 2] =
    [("esp32c3", "riscv32imc-unknown-none-elf", "ESP32-C3"), ("esp32c6", "riscv32imac-unknown-none-elf", "ESP32-C6")];

/// What the images are built from, besides this package's own files.
const SHARED_CRATES: [&str; 4] = ["povpoi-core", "povpoi-peer", "povpoi-app", "povpoi-flash"];

/// Build-time settings the firmware reads with `option_env!` (docs/FIRMWARE.md),
/// and the per-target flags that turn frame pointers on for debugging (docs/FIRMWARE.md).
const BUILD_ENV: [&str; 6] = [
    "POVPOI_WIFI_SSID",
    "POVPOI_WIFI_PASSWORD",
    "POVPOI_GROUP_KEY",
    "ESP_LOG",
    "CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_RUSTFLAGS",
    "CARGO_TARGET_RISCV32IMAC_UNKNOWN_NONE_ELF_RUSTFLAGS",
];

fn main() {
    if env::var_os("CARGO_FEATURE_CHIP").is_some() {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    watch_sources(&manifest);

    let cargo = env::var_os("CARGO").expect("cargo sets CARGO");
    let images = target_dir().join("images");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    for (feature, target, name) in CHIPS {
        let mut build = Command::new(&cargo);
        build.current_dir(&manifest).args(["build", "--target", target, "--features", feature, "--target-dir"]);
        build.arg(&images);
        if release {
            build.arg("--release");
        }
        // This build's flags were computed for its own target; the nested build reads the
        // config itself. Its stdout goes to stderr: a build script's stdout is read by cargo
        // as instructions.
        build
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .stdout(Stdio::from(std::io::stderr()));
        match build.status() {
            Ok(status) if status.success() => {}
            Ok(_) => fail(&format!(
                "building the {name} image failed (its errors are above); `cargo {feature}` builds that chip alone, and `rustup target add {target}` adds a missing target"
            )),
            Err(e) => fail(&format!("could not run cargo to build the {name} image: {e}")),
        }
        let profile = if release { "release" } else { "debug" };
        let image = images.join(target).join(profile).join("povpoi-firmware");
        println!("cargo:warning={name} image: {}", image.display());
    }
}

/// Stops the build with `message` (a panic would add a backtrace of this script).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// The target directory of this build: `OUT_DIR` is `<target dir>/<target>/<profile>/build/
/// <package>-<hash>/out` (the config always names a target).
fn target_dir() -> PathBuf {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    out.ancestors()
        .nth(5)
        .map(Path::to_path_buf)
        .expect("OUT_DIR is <target dir>/<target>/<profile>/build/<package>/out")
}

/// Runs this script again when anything the images are built from changes; the nested
/// builds themselves then rebuild only what changed.
fn watch_sources(manifest: &Path) {
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
}
