//! Gzips every file of `assets/` into `OUT_DIR`, so the library includes only compressed
//! bytes (a board's flash holds those alone).

use std::io::Write;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let assets = Path::new("assets");
    println!("cargo:rerun-if-changed=assets");
    for entry in std::fs::read_dir(assets).expect("read assets/") {
        let path = entry.expect("list assets/").path();
        let bytes = std::fs::read(&path).expect("read an asset");
        // No time stamp or file name in the header: the same files give the same bytes.
        let mut z = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
        z.write_all(&bytes).expect("gzip into memory");
        let gzipped = z.finish().expect("gzip into memory");
        let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
        std::fs::write(Path::new(&out).join(name + ".gz"), gzipped).expect("write to OUT_DIR");
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
