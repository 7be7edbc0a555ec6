#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// One file of the app, as served.
#[derive(Debug)]
pub struct Asset {
    /// Its URL path (`/` for the page).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, gzipped: sent with `Content-Encoding: gzip`.
    pub gzipped: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:literal) => {
        Asset { path: $path, content_type: $type, gzipped: include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")) }
    };
}

/// Every file of the app.
pub static ASSETS: [Asset; 7] = [
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/app.js", "app.js", "text/javascript; charset=utf-8"),
    asset!("/app.css", "app.css", "text/css; charset=utf-8"),
    asset!("/manifest.webmanifest", "manifest.webmanifest", "application/manifest+json"),
    asset!("/icon.svg", "icon.svg", "image/svg+xml"),
    asset!("/icon-192.png", "icon-192.png", "image/png"),
    asset!("/icon-512.png", "icon-512.png", "image/png"),
];

/// The file served at `path`, if the app has one. The page is at `/index.html` too: a
/// board on its own access point keeps `/` for its Wi-Fi setup page, which links there.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = page_alias(path);
    ASSETS.iter().find(|a| a.path == path)
}

fn page_alias(path: &str) -> &str {
    if path == "/index.html" { "/" } else { path }
}

/// The plain bytes of the file at `path`, for a client that does not take gzip. Kept apart
/// from [`ASSETS`] so that an image that never calls this (a board's) does not hold them.
pub fn plain(path: &str) -> Option<&'static [u8]> {
    static PLAIN: [(&str, &[u8]); 7] = [
        ("/", include_bytes!("../assets/index.html")),
        ("/app.js", include_bytes!("../assets/app.js")),
        ("/app.css", include_bytes!("../assets/app.css")),
        ("/manifest.webmanifest", include_bytes!("../assets/manifest.webmanifest")),
        ("/icon.svg", include_bytes!("../assets/icon.svg")),
        ("/icon-192.png", include_bytes!("../assets/icon-192.png")),
        ("/icon-512.png", include_bytes!("../assets/icon-512.png")),
    ];
    let path = page_alias(path);
    PLAIN.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}
