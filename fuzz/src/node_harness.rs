//! A node running in-process on a scratch data directory, for the targets that send it
//! HTTP requests through its real router (no sockets: the fuzzer calls the router).

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use povpoi_core::sync::Record;
use povpoi_node::{Node, NodeOptions};
use tower::ServiceExt;

/// The node of one fuzz target process and the runtime it runs on.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    node: &'static Node,
}

/// The process's node, started on first use in a scratch directory named after `target`.
pub fn harness(target: &str) -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let dir = crate::scratch_dir(target);
        let options = NodeOptions { mdns: false, ..NodeOptions::new(dir, "127.0.0.1:0".parse().expect("an address")) };
        // The node runs until the process ends; libFuzzer exits without dropping statics.
        let node: &'static Node = Box::leak(Box::new(runtime.block_on(Node::start(options)).expect("the node starts")));
        let router = node.router();
        Harness { runtime, router, node }
    })
}

impl Harness {
    /// How many images the library holds.
    pub fn images(&self) -> usize {
        self.node.library().read(|poi| poi.images().count())
    }

    /// Every record the library holds, to see whether a request changed it.
    pub fn records(&self) -> Vec<Record> {
        self.node.library().read(|poi| poi.records().cloned().collect())
    }

    /// Sends `request` and answers the status and the whole body.
    pub fn send(&self, request: Request<Body>) -> (u16, Vec<u8>) {
        self.runtime.block_on(async {
            let answer = self.router.clone().oneshot(request).await.expect("the router is infallible");
            let status = answer.status().as_u16();
            let body = axum::body::to_bytes(answer.into_body(), usize::MAX).await.expect("an answer body");
            (status, body.to_vec())
        })
    }
}
