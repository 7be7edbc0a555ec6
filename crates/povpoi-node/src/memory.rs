//! How much memory requests may make the node hold, and giving it back afterwards. The
//! API's middleware counts each body with `counted` and answers `503` for one over the
//! budget.
//!
//! Every request body counts against one budget while its request is being served, and
//! one client address may use at most half of it: a burst of large or held-open bodies
//! gets `503` instead of taking the poi's memory. Once the bodies are gone the allocator
//! is asked to hand the freed pages back to the system (glibc keeps them otherwise).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use http_body::{Frame, SizeHint};

/// Most bytes of request bodies held at once, all clients together: two of the largest
/// uploads (16 MiB) with room to spare, or five of the largest peer messages (8 MiB).
pub const BODY_BUDGET: usize = 40 * 1024 * 1024;
/// Most of the budget one client address may hold: one largest upload and a bit, so a
/// too-large upload still hears 413, not 503.
pub const BODY_BUDGET_PER_CLIENT: usize = BODY_BUDGET / 2;
/// After this many bytes of bodies, the freed memory is handed back once bodies are all
/// gone (at most once per so many bytes: a trim walks the heaps).
const TRIM_AFTER: usize = 4 * 1024 * 1024;

/// The bytes of request bodies held now, in all and per client address.
#[derive(Debug, Default)]
pub struct BodyBudget(Mutex<Usage>);

#[derive(Debug, Default)]
struct Usage {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// Bytes taken since memory was last handed back.
    since_trim: usize,
}

impl BodyBudget {
    /// Bytes of request bodies held now.
    pub fn in_use(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    fn take(&self, client: IpAddr, bytes: usize) -> bool {
        let mut usage = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mine = usage.per_client.get(&client).copied().unwrap_or(0);
        if usage.total + bytes > BODY_BUDGET || mine + bytes > BODY_BUDGET_PER_CLIENT {
            return false;
        }
        usage.total += bytes;
        usage.since_trim += bytes;
        *usage.per_client.entry(client).or_default() += bytes;
        true
    }

    fn give_back(&self, client: IpAddr, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut usage = self.0.lock().unwrap_or_else(|p| p.into_inner());
        usage.total -= bytes;
        if let Some(mine) = usage.per_client.get_mut(&client) {
            *mine -= bytes;
            if *mine == 0 {
                usage.per_client.remove(&client);
            }
        }
        if usage.total == 0 && usage.since_trim >= TRIM_AFTER {
            usage.since_trim = 0;
            // Off the runtime's threads: trimming walks the heaps.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(return_freed_memory)),
                Err(_) => return_freed_memory(),
            }
        }
    }
}

/// What one request's body has taken from the budget; given back when the request is
/// done (the body and whatever the handler made of it dropped).
struct Held {
    budget: Arc<BodyBudget>,
    client: IpAddr,
    bytes: AtomicUsize,
    over: AtomicBool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.client, *self.bytes.get_mut());
    }
}

/// A request body that takes budget for every chunk as it arrives.
struct Counted {
    inner: Body,
    held: Arc<Held>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let held = &self.held;
            if !held.budget.take(held.client, data.len()) {
                held.over.store(true, Ordering::SeqCst);
                return Poll::Ready(Some(Err(axum::Error::new("request bodies over the memory budget"))));
            }
            held.bytes.fetch_add(data.len(), Ordering::SeqCst);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What one request's body took from the budget, counted as it arrives.
pub(crate) struct BodyCount(Option<Arc<Held>>);

impl BodyCount {
    /// Whether the body would have gone over the budget (and was cut off there).
    pub(crate) fn went_over(&self) -> bool {
        self.0.as_ref().is_some_and(|held| held.over.load(Ordering::SeqCst))
    }
}

/// Counts `request`'s body against `budget` (its [`BODY_BUDGET`], and half of it per
/// client address) while the request is served: every chunk takes its bytes as it arrives,
/// and a chunk over the budget ends the body with an error; all is given back once the
/// request is done.
pub(crate) fn counted(budget: &Arc<BodyBudget>, request: Request) -> (Request, BodyCount) {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return (request, BodyCount(None));
    }
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
    let held =
        Arc::new(Held { budget: budget.clone(), client, bytes: AtomicUsize::new(0), over: AtomicBool::new(false) });
    let request = request.map(|inner| Body::new(Counted { inner, held: held.clone() }));
    (request, BodyCount(Some(held)))
}

/// Sets up the allocator for a long-running node: few arenas, and large buffers mapped
/// on their own, so memory freed after a burst can go back to the system.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc malloc's tunables; it is called before the
    // node's threads start allocating heavily and takes no pointers.
    unsafe {
        // One arena per thread (glibc's default, up to 8 per core) keeps each thread's
        // freed bodies in its own heap; two are plenty for a poi's few threads.
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // A fixed threshold turns off glibc's sliding one, under which a freed 8 MiB
        // body raises the threshold and later bodies stay in the heap for good.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Hands memory freed in the heaps back to the system.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_gets_at_most_half_and_everything_comes_back() {
        let budget = BodyBudget::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert!(budget.take(a, BODY_BUDGET_PER_CLIENT));
        assert!(!budget.take(a, 1), "one client over its half");
        assert!(budget.take(b, BODY_BUDGET - BODY_BUDGET_PER_CLIENT));
        assert!(!budget.take(IpAddr::from([10, 0, 0, 3]), 1), "the whole budget in use");
        budget.give_back(a, BODY_BUDGET_PER_CLIENT);
        assert!(budget.take(a, 1));
        budget.give_back(a, 1);
        budget.give_back(b, BODY_BUDGET - BODY_BUDGET_PER_CLIENT);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.0.lock().unwrap().per_client.is_empty(), "no entry kept per client gone");
    }
}
