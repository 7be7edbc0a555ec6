//! Every file is served gzipped and plain, and the two are the same file.

use std::io::Read;

#[test]
fn gzipped_bytes_are_the_plain_files() {
    for asset in &povpoi_ui::ASSETS {
        let plain = povpoi_ui::plain(asset.path).unwrap_or_else(|| panic!("{} has no plain bytes", asset.path));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(asset.gzipped).read_to_end(&mut unzipped).expect("valid gzip");
        assert_eq!(unzipped, plain, "{}", asset.path);
        assert!(asset.gzipped.len() < plain.len() || asset.path.ends_with(".png"), "{} did not shrink", asset.path);
    }
    assert_eq!(povpoi_ui::asset("/app.js").map(|a| a.content_type), Some("text/javascript; charset=utf-8"));
    assert_eq!(povpoi_ui::asset("/index.html").map(|a| a.path), Some("/"));
    assert!(povpoi_ui::asset("/api/status").is_none() && povpoi_ui::plain("/api/status").is_none());
}
