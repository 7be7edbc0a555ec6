//! Puts `memory.x` where the linker finds it, and works out on the host the digests of the
//! rendering cases (`src/cases.rs`) that the firmware compares its own with.

extern crate alloc;

use std::fmt::Write;
use std::path::PathBuf;

// Shared with the firmware, which uses all of it.
#[allow(dead_code)]
#[path = "src/cases.rs"]
mod cases;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=src/cases.rs");

    let mut golden = String::from("/// (case, LEDs, raw digest, finished digest), worked out on the host.\n");
    golden.push_str("pub const GOLDEN: &[(usize, u16, u64, u64)] = &[\n");
    for case in 0..cases::CASES {
        for leds in cases::LEDS {
            let raw = cases::digest(case, leds, cases::Mode::Raw);
            let finished = cases::digest(case, leds, cases::Mode::Apply);
            writeln!(golden, "    ({case}, {leds}, {raw:#018x}, {finished:#018x}),").unwrap();
        }
    }
    golden.push_str("];\n");
    std::fs::write(out.join("golden.rs"), golden).unwrap();
}
