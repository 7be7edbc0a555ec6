//! The ESP32-C3/C6 firmware's HTTP service (`firmware/src/http/service.rs`: no embassy in it),
//! compiled here on the host and served by picoserve on tokio over 127.0.0.1, with the
//! shared application behind it as on a board. A real HTTP client (reqwest) reads what it
//! sends: whole answers, a list sent an image per chunk, a list cut off because the
//! library changed while it went out, and uploads read into a flash store as they arrive.

extern crate alloc;

mod common;

#[path = "../../../firmware/src/http/service.rs"]
mod service;

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{board_config, now};
use povpoi_app::App;
use povpoi_app::api::{Request, Response};
use povpoi_app::clock::ClockService;
use povpoi_app::content::{Listing, ListingCut};
use povpoi_app::upload::Upload;
use povpoi_core::device::{DeviceId, ReplicaId};
use povpoi_core::hash::BlobHash;
use povpoi_core::model::ImageId;
use povpoi_core::sync::{Identity, MemoryStorage, Replica, Storage};
use povpoi_flash::FlashStore;
use povpoi_flash::ram::{RamFlash, SECTOR};
use serde_json::{Value, json};
use service::{Application, Service};

/// The application behind a lock, as a board's tasks share it; `delete_at` deletes an image
/// once that many list items went out (a peer's edit arriving mid-list).
struct Board {
    app: Mutex<App<MemoryStorage>>,
    items: AtomicUsize,
    delete_at: Option<(usize, ImageId)>,
}

impl Application for Board {
    async fn handle(&self, request: Request<'_>) -> Response {
        self.app.lock().unwrap().handle(&request, now(1_000_000), &mut rand::rng())
    }

    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        let mut app = self.app.lock().unwrap();
        let sent = self.items.fetch_add(1, Ordering::SeqCst);
        if let Some((at, id)) = self.delete_at
            && sent == at
        {
            let path = format!("/api/images/{id}");
            let from = "10.0.0.2:9".parse().unwrap();
            let delete = Request { method: "DELETE", path: &path, query: None, headers: &[], body: b"", from };
            assert_eq!(app.handle(&delete, now(2_000_000), &mut rand::rng()).status, 200);
        }
        app.list_next(listing, out)
    }

    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        self.app.lock().unwrap().begin_upload(request)
    }

    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        self.app.lock().unwrap().upload_step(upload, input, eof)
    }

    fn finish_upload(&self, upload: Upload<'_>) -> Response {
        self.app.lock().unwrap().finish_upload(upload, now(2_000_000))
    }

    fn abandon_upload(&self) {
        self.app.lock().unwrap().abandon_upload()
    }
}

type Store = FlashStore<RamFlash>;

/// A board over a flash store, as the firmware keeps its library, counting the pieces an
/// upload's body came in.
struct FlashBoard {
    app: Mutex<App<&'static Store>>,
    pieces: AtomicUsize,
}

impl Application for FlashBoard {
    async fn handle(&self, request: Request<'_>) -> Response {
        self.app.lock().unwrap().handle(&request, now(1_000_000), &mut rand::rng())
    }

    fn list_next(&self, listing: &mut Listing, out: &mut Vec<u8>) -> Result<bool, ListingCut> {
        self.app.lock().unwrap().list_next(listing, out)
    }

    fn begin_upload<'b>(&self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        self.app.lock().unwrap().begin_upload(request)
    }

    fn upload_step(&self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        self.pieces.fetch_add(1, Ordering::SeqCst);
        self.app.lock().unwrap().upload_step(upload, input, eof)
    }

    fn finish_upload(&self, upload: Upload<'_>) -> Response {
        self.app.lock().unwrap().finish_upload(upload, now(2_000_000))
    }

    fn abandon_upload(&self) {
        self.app.lock().unwrap().abandon_upload()
    }
}

/// An empty board over a flash store of 40 sectors, served by the firmware's service.
fn serve_flash() -> (SocketAddr, &'static FlashBoard, &'static Store) {
    let store: &'static Store =
        Box::leak(Box::new(FlashStore::open(RamFlash::new(40), 0..40 * SECTOR as u32).unwrap()));
    let device = DeviceId([2, 0, 0, 0, 0, 2]);
    let identity = Identity { replica: ReplicaId(2), device, group: "default".into() };
    let replica = Replica::open(store, identity).unwrap();
    let config = povpoi_app::Config {
        max_uploaded_image_bytes: povpoi_app::sessions::MAX_FETCHED_BLOB_BYTES,
        wifi_setup: false,
        ..board_config(device)
    };
    let app = App::new(config, replica, ClockService::new(device, 1, 2, 0));
    let board: &'static FlashBoard =
        Box::leak(Box::new(FlashBoard { app: Mutex::new(app), pieces: AtomicUsize::new(0) }));
    (serve_here(board), board, store)
}

/// Serves `app` on 127.0.0.1 through the firmware's service from a task of this thread (a
/// flash store is not shared between threads); the caller runs in a `LocalSet`.
fn serve_here<A: Application>(app: &'static A) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // One request per connection: the test's raw connection is served in its turn.
    tokio::task::spawn_local(accept(listener, app, false));
    addr
}

/// Serves connections from `listener` one after another, as each of the firmware's
/// connection tasks does. Bounded: a test makes a few requests, then the loop ends with its
/// runtime.
async fn accept<A: Application>(listener: std::net::TcpListener, app: &'static A, keep_alive: bool) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let remote = Cell::new(SocketAddr::from(([0, 0, 0, 0], 0)));
    let router = picoserve::Router::from_service(Service::new(app, &remote));
    let config = picoserve::Config::new(picoserve::Timeouts {
        start_read_request: picoserve::time::Duration::from_secs(5),
        persistent_start_read_request: picoserve::time::Duration::from_secs(1),
        read_request: picoserve::time::Duration::from_secs(5),
        write: picoserve::time::Duration::from_secs(5),
    });
    let config = if keep_alive { config.keep_connection_alive() } else { config };
    let mut head = [0u8; 1280];
    for _ in 0..16 {
        let (stream, from) = listener.accept().await.unwrap();
        remote.set(from);
        let _ = picoserve::Server::new_tokio(&router, &config, &mut head).serve(stream).await;
    }
}

/// The existing system's upload form: one raw RGB file.
fn form(filename: &str, pixels: &[u8]) -> (String, Vec<u8>) {
    let boundary = "firmware-http-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(pixels);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A board holding `images` 2x2 images, served on 127.0.0.1 by the firmware's service; its
/// address. Connections are served one after another, as each of the firmware's
/// connection tasks does.
fn serve(images: u8, delete_at: Option<usize>) -> (SocketAddr, Vec<ImageId>) {
    let device = DeviceId([2, 0, 0, 0, 0, 1]);
    let identity = Identity { replica: ReplicaId(1), device, group: "default".into() };
    let mut replica = Replica::open(MemoryStorage::default(), identity).unwrap();
    let ids: Vec<ImageId> = (0..images)
        .map(|n| replica.add_image(&format!("image {n}"), 2, 2, &[n; 12], 1_000 + u64::from(n)).unwrap())
        .collect();
    let app = App::new(board_config(device), replica, ClockService::new(device, 1, 2, 0));
    let board: &'static Board = Box::leak(Box::new(Board {
        app: Mutex::new(app),
        items: AtomicUsize::new(0),
        delete_at: delete_at.map(|at| (at, ids[ids.len() - 1])),
    }));
    (serve_app(board), ids)
}

/// Serves `app` on 127.0.0.1 through the firmware's service; its address.
fn serve_app<A: Application + Sync>(app: &'static A) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(accept(listener, app, true));
    });
    addr
}

/// An answer's body as JSON.
/// Uploads `pixels` as the file `filename` in the existing system's form.
async fn upload(http: &reqwest::Client, addr: SocketAddr, filename: &str, pixels: &[u8]) -> reqwest::Response {
    let (content_type, body) = form(filename, pixels);
    http.post(format!("http://{addr}/api/image")).header("content-type", &content_type).body(body).send().await.unwrap()
}

async fn json(answer: reqwest::Response) -> Value {
    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().unwrap()
}

#[tokio::test]
async fn the_firmware_sends_whole_answers_and_lists_an_image_per_chunk() {
    let (addr, ids) = serve(7, None);
    let http = client();
    let status = json(http.get(format!("http://{addr}/api/status")).send().await.unwrap()).await;
    assert_eq!(status["count"], json!(7));

    let answer = http.get(format!("http://{addr}/api/images")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["transfer-encoding"], "chunked");
    assert_eq!(answer.headers()["content-type"], "application/json");
    let listed = json(answer).await;
    let listed = listed["images"].as_array().unwrap();
    assert_eq!(listed.len(), 7);
    for (n, (image, id)) in listed.iter().zip(&ids).enumerate() {
        assert_eq!((image["id"].as_str(), image["index"].as_u64()), (Some(id.to_string().as_str()), Some(n as u64)));
        assert_eq!(image["available"], json!(true));
    }
    let files = json(http.get(format!("http://{addr}/api/sd/list")).send().await.unwrap()).await;
    assert_eq!(files["files"].as_array().map(Vec::len), Some(7));

    // Errors come back whole, with the application's status and JSON.
    let refused = http.put(format!("http://{addr}/api/patterns/18")).body(r#"{"type": 1}"#).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let error = json(refused).await;
    assert_eq!(error, json!({"error": "pattern slot \"18\" is not a number 0-17"}));
    // The web app's files go out whole, gzipped as built, with their length.
    for asset in &povpoi_ui::ASSETS {
        let answer = http.get(format!("http://{addr}{}", asset.path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{}", asset.path);
        assert_eq!(answer.headers()["content-encoding"], "gzip");
        assert_eq!(answer.headers()["content-length"], asset.gzipped.len().to_string().as_str());
        assert_eq!(answer.headers()["content-type"], asset.content_type);
        assert_eq!(answer.bytes().await.unwrap(), asset.gzipped, "{}", asset.path);
    }
    // An empty library lists as an empty list.
    let (empty, _) = serve(0, None);
    let listed = json(http.get(format!("http://{empty}/api/images")).send().await.unwrap()).await;
    assert_eq!(listed, json!({"images": []}));
    // A board whose flash holds no store answers everything 503, saying what to do.
    let broken = serve_app(&service::NoStorage);
    let answer = http.get(format!("http://{broken}/api/images")).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    assert!(json(answer).await["error"].as_str().unwrap().contains("partitions.csv"));
}

#[tokio::test]
async fn a_list_the_library_changed_under_ends_with_json_no_client_takes_for_whole() {
    // The fourth item's turn finds an image deleted since the list began.
    let (addr, _) = serve(6, Some(3));
    let answer = client().get(format!("http://{addr}/api/images")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.bytes().await.expect("the chunked answer itself ends normally");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"images":[{"#), "{text}");
    assert_eq!(text.matches(r#""id":"#).count(), 3, "three images went out before the change: {text}");
    assert!(serde_json::from_slice::<Value>(&body).is_err(), "a cut list must not parse: {text}");
}

#[tokio::test]
async fn an_upload_larger_than_any_request_body_is_read_into_the_flash_as_it_arrives() {
    tokio::task::LocalSet::new().run_until(upload_into_flash()).await;
}

async fn upload_into_flash() {
    let (addr, board, store) = serve_flash();
    let http = client();
    let pixels: Vec<u8> = (0..400 * 32 * 3).map(|i| (i % 253) as u8).collect();
    let body_len = form("image_400x32.rgb", &pixels).1.len();
    assert!(body_len > 4 * service::MAX_BODY_BYTES, "far more than a request body the board collects");
    let answer = upload(&http, addr, "image_400x32.rgb", &pixels).await;
    assert_eq!(answer.status(), 200);
    let stored = json(answer).await;
    assert_eq!(
        (&stored["name"], &stored["width"], &stored["size"]),
        (&json!("image_400x32"), &json!(400), &json!(38_400))
    );
    assert!(
        board.pieces.load(Ordering::SeqCst) >= body_len / 1024,
        "read a kilobyte or less at a time: {} pieces",
        board.pieces.load(Ordering::SeqCst)
    );
    assert_eq!(store.load_blob(&BlobHash::of(&pixels)).unwrap(), Some(pixels.clone()));
    let listed = json(http.get(format!("http://{addr}/api/images")).send().await.unwrap()).await;
    assert_eq!(listed["images"][0]["id"], stored["id"]);
    assert_eq!(listed["images"][0]["available"], json!(true));
    // And its pixels come back out of the flash, a part at a time.
    let id = stored["id"].as_str().unwrap();
    let answer = http.get(format!("http://{addr}/api/images/{id}/pixels")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/octet-stream");
    assert_eq!(answer.headers()["transfer-encoding"], "chunked");
    assert!(answer.bytes().await.unwrap() == pixels, "the pixels read back byte for byte");

    // Refused uploads, whole or cut short, leave the store as it was.
    let free = store.usage().free_sectors;
    let answer = upload(&http, addr, "image_400x32.rgb", &pixels[..38_000]).await;
    assert_eq!(answer.status(), 400);
    assert!(json(answer).await["error"].as_str().unwrap().contains("the file holds 38000 bytes"));
    let answer = upload(&http, addr, "image_400x64.rgb", &[0; 400 * 64 * 3]).await;
    assert_eq!(answer.status(), 413);
    // A body that stops half way: the connection closes under the board.
    let (content_type, body) = form("image_400x32.rgb", &pixels);
    let head = format!(
        "POST /api/image HTTP/1.1\r\nHost: poi\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &body[..20_000]).await.unwrap();
    drop(stream);
    // Connections are served one after another: this answer comes once the broken one ended.
    assert_eq!(json(http.get(format!("http://{addr}/api/status")).send().await.unwrap()).await["count"], json!(1));
    assert!(board.pieces.load(Ordering::SeqCst) > 2 * body.len() / 1024, "the broken upload was read");
    assert_eq!(store.usage().free_sectors, free, "nothing of a refused or broken upload is kept");
    // And the next upload goes through: nothing was left waiting.
    let answer = upload(&http, addr, "image_2x2.rgb", &[9; 12]).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(json(http.get(format!("http://{addr}/api/status")).send().await.unwrap()).await["count"], json!(2));
}
