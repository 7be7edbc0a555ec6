//! The HTTP server: takes connections within limits, drops clients that are too slow or
//! silent, and stops at once when told to.
//!
//! A poi shares its Wi-Fi with strangers: a connection that sends its headers slowly,
//! sends nothing, sits idle between requests or stops half way through a body is closed
//! after [`HEADER_TIMEOUT`] or [`BODY_IDLE_TIMEOUT`]; no client address holds more than
//! [`MAX_CONNECTIONS_PER_CLIENT`] connections and all together at most [`MAX_CONNECTIONS`],
//! which leaves file descriptors for the node's own files and peers.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tower::ServiceBuilder;

/// Longest a client may take to send a request's headers, counted from the connection's
/// start or from the end of its previous answer (so it is also the keep-alive idle limit).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a request body may pause between two chunks.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Most connections open at once, all clients together.
pub const MAX_CONNECTIONS: usize = 512;
/// Most connections open at once from one client address: a browser opens six, a peer two.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Longest a stopping node waits for requests still being answered.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Largest buffer a connection reads headers into (hyper's default is ~400 KiB).
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// Most connections closed to make room whose sockets are not closed yet: an aborted
/// task lets go of its socket only when the runtime next reaches it, so under a flood the
/// node stops accepting until they are gone rather than hold more sockets than its cap.
const MAX_CLOSING: usize = 8;
/// Longest the accept loop waits for them before it takes connections again.
const CLOSING_WAIT: Duration = Duration::from_secs(1);

/// Connections open now, in all and per client address (oldest first).
#[derive(Debug, Default)]
struct Open {
    /// Connections counted against [`MAX_CONNECTIONS`].
    total: usize,
    /// Connections closed for a newcomer whose tasks have not ended yet.
    closing: usize,
    per_client: HashMap<IpAddr, VecDeque<Entry>>,
    next_id: u64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// Set once its task runs; `None` for a moment after it is admitted.
    task: Option<AbortHandle>,
}

impl Open {
    fn remove(&mut self, client: IpAddr, id: u64) -> Option<Entry> {
        let mine = self.per_client.get_mut(&client)?;
        let entry = mine.remove(mine.iter().position(|e| e.id == id)?)?;
        if mine.is_empty() {
            self.per_client.remove(&client);
        }
        self.total -= 1;
        Some(entry)
    }
}

/// One counted connection; uncounted when dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    /// Told when an evicted connection's task ends.
    closed: Arc<tokio::sync::Notify>,
    client: IpAddr,
    id: u64,
}

impl Slot {
    /// Lets the connection be closed to make room for another client.
    fn set_task(&self, task: AbortHandle) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = open.per_client.get_mut(&self.client).and_then(|m| m.iter_mut().find(|e| e.id == self.id))
        {
            entry.task = Some(task);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.remove(self.client, self.id).is_none() {
            // Evicted earlier: its socket is closed only now.
            open.closing -= 1;
            self.closed.notify_one();
        }
    }
}

/// Counts a new connection from `client`, or says no. With every place taken, the oldest
/// connection of the client holding the most is closed for it, so a newcomer always gets
/// in unless it is the one holding the most.
fn admit(open: &Arc<Mutex<Open>>, closed: &Arc<tokio::sync::Notify>, client: IpAddr) -> Option<Slot> {
    let mut counts = open.lock().unwrap_or_else(|p| p.into_inner());
    let mut evicted = None;
    let mine = counts.per_client.get(&client).map_or(0, VecDeque::len);
    if mine >= MAX_CONNECTIONS_PER_CLIENT {
        return None;
    }
    if counts.total >= MAX_CONNECTIONS {
        let (&heaviest, theirs) = counts.per_client.iter().max_by_key(|(_, c)| c.len())?;
        if theirs.len() <= mine + 1 {
            return None;
        }
        let oldest = theirs.front().map(|e| e.id)?;
        evicted = counts.remove(heaviest, oldest).and_then(|e| e.task);
        counts.closing += 1;
        tracing::trace!(%heaviest, %client, "closed the oldest connection of the busiest client for a newcomer");
    }
    counts.total += 1;
    counts.next_id += 1;
    let id = counts.next_id;
    counts.per_client.entry(client).or_default().push_back(Entry { id, task: None });
    drop(counts);
    // Outside the lock: the evicted task's Slot takes it when it is dropped.
    if let Some(task) = evicted {
        task.abort();
    }
    Some(Slot { open: open.clone(), closed: closed.clone(), client, id })
}

/// Connections the system queues for the node before it accepts them: a burst of
/// connections from strangers must not fill a short queue ahead of a person's.
const LISTEN_BACKLOG: u32 = 4096;

/// The node's listening socket.
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As TcpListener::bind does: a restarted node can take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises this process's open-file limit to its hard limit: the connection cap, the
/// node's files and its peers must all fit under it.
pub fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!(error = %e, soft, hard, "cannot raise the open-file limit");
    }
}

/// Serves `app` on `listener` until `stopping` turns true; then answers what is in
/// flight for at most [`STOP_GRACE`] and closes every connection, idle ones at once.
pub(crate) async fn serve(listener: TcpListener, app: Router, mut stopping: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BUFFER);
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT));
    let open = Arc::new(Mutex::new(Open::default()));
    let closed = Arc::new(tokio::sync::Notify::new());
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    'accept: loop {
        while connections.try_join_next().is_some() {}
        // Waiting connections stay in the system's queue, which holds no socket of ours.
        while open.lock().unwrap_or_else(|p| p.into_inner()).closing >= MAX_CLOSING {
            tokio::select! {
                biased;
                _ = crate::shutdown::stopped(&mut stopping) => break 'accept,
                () = closed.notified() => {}
                // An evicted task the runtime never reaches must not stop the poi taking
                // connections for good: then the cap gives a little instead.
                () = tokio::time::sleep(CLOSING_WAIT) => {
                    tracing::warn!(closing = MAX_CLOSING, "connections closed for newcomers are slow to end");
                    break;
                }
            }
        }
        let (stream, client) = tokio::select! {
            biased;
            _ = crate::shutdown::stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close
                    // rather than spin on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = admit(&open, &closed, client.ip()) else {
            tracing::trace!(%client, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = ServiceBuilder::new()
            .map_request(move |mut request: axum::extract::Request<_>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(client));
                request
            })
            .service(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let slot = Arc::new(slot);
        let held = slot.clone();
        let task = connections.spawn(async move {
            let _slot = held;
            if let Err(e) = connection.await {
                tracing::trace!(%client, error = %e, "connection ended");
            }
        });
        slot.set_task(task);
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!(open = connections.len(), "requests still open after {STOP_GRACE:?} cut at stop");
    }
    connections.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_every_connection() {
        let open = Arc::new(Mutex::new(Open::default()));
        let closed = Arc::new(tokio::sync::Notify::new());
        let stranger = IpAddr::from([10, 0, 0, 66]);
        let slots: Vec<Slot> = (0..MAX_CONNECTIONS_PER_CLIENT).map_while(|_| admit(&open, &closed, stranger)).collect();
        assert_eq!(slots.len(), MAX_CONNECTIONS_PER_CLIENT);
        assert!(admit(&open, &closed, stranger).is_none());
        let friend = admit(&open, &closed, IpAddr::from([10, 0, 0, 2]));
        assert!(friend.is_some(), "another client still gets in");
        drop(slots);
        drop(friend);
        assert_eq!(open.lock().unwrap().total, 0);
        assert!(open.lock().unwrap().per_client.is_empty());
    }

    #[test]
    fn with_every_place_taken_the_busiest_client_makes_room() {
        let open = Arc::new(Mutex::new(Open::default()));
        let closed = Arc::new(tokio::sync::Notify::new());
        let many: Vec<IpAddr> = (0..MAX_CONNECTIONS).map(|i| IpAddr::from([10, 1, (i / 60) as u8, 1])).collect();
        let slots: Vec<Slot> = many.iter().map_while(|ip| admit(&open, &closed, *ip)).collect();
        assert_eq!(open.lock().unwrap().total, MAX_CONNECTIONS);
        let busiest = open.lock().unwrap().per_client.iter().max_by_key(|(_, c)| c.len()).map(|(ip, _)| *ip).unwrap();
        let held = |ip| open.lock().unwrap().per_client.get(&ip).map_or(0, VecDeque::len);
        let before = held(busiest);
        let newcomer = admit(&open, &closed, IpAddr::from([10, 9, 9, 9])).expect("a newcomer gets in");
        assert_eq!(held(busiest), before - 1, "the busiest client lost its oldest connection");
        assert_eq!(open.lock().unwrap().total, MAX_CONNECTIONS);
        assert_eq!(open.lock().unwrap().closing, 1, "the evicted socket is closing until its task ends");
        assert!(admit(&open, &closed, busiest).is_none(), "the busiest client cannot take it back");
        drop(newcomer);
        drop(slots);
        assert_eq!(open.lock().unwrap().total, 0, "an evicted slot is not counted twice");
        assert_eq!(open.lock().unwrap().closing, 0);
    }
}
