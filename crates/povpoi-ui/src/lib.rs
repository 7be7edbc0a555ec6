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

/// The app's files, each named once: its path, its file in `assets/` and its type. Gives
/// [`ASSETS`] and, apart, their plain bytes in the same order.
macro_rules! files {
    ($(($path:literal, $file:literal, $type:literal)),* $(,)?) => {
        /// Every file of the app.
        pub static ASSETS: [Asset; [$($path),*].len()] = [$(Asset {
            path: $path,
            content_type: $type,
            gzipped: include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")),
        }),*];

        /// [`ASSETS`]' plain bytes: a static of their own, so that an image that never calls
        /// [`plain`] (a board's) does not hold them.
        static PLAIN: [&[u8]; [$($path),*].len()] = [$(include_bytes!(concat!("../assets/", $file))),*];
    };
}

files![
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "app.css", "text/css; charset=utf-8"),
    ("/manifest.webmanifest", "manifest.webmanifest", "application/manifest+json"),
    ("/icon.svg", "icon.svg", "image/svg+xml"),
    ("/icon-192.png", "icon-192.png", "image/png"),
    ("/icon-512.png", "icon-512.png", "image/png"),
];

/// The file served at `path`, if the app has one. The page is at `/index.html` too: a
/// board on its own access point keeps `/` for its Wi-Fi setup page, which links there.
pub fn asset(path: &str) -> Option<&'static Asset> {
    index(path).map(|n| &ASSETS[n])
}

/// The plain bytes of the file at `path`, for a client that does not take gzip.
pub fn plain(path: &str) -> Option<&'static [u8]> {
    index(path).map(|n| PLAIN[n])
}

fn index(path: &str) -> Option<usize> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().position(|a| a.path == path)
}
