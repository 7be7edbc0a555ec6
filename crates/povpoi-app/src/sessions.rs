//! The sync sessions a poi starts, written once for every platform: which are due
//! ([`App::sessions_due`]), each driven by [`povpoi_peer::session::drive`] over the
//! platform's link, and its end told to the application ([`App::session_ended`]). The
//! platform brings its lock around the application ([`AppLock`]) and its HTTP client (a
//! [`Link`] per peer).

use core::net::SocketAddr;

use povpoi_core::device::DeviceId;
use povpoi_core::sync::{self, Request, Response, Session, Storage, SyncOptions};
use povpoi_peer::session::{self, DriveError, Failure, Link, Progress, Replicas};

use crate::app::{App, Now};

/// A platform's lock around its application, with its clocks read under it.
pub trait AppLock {
    /// The application's storage.
    type Storage: Storage;
    /// Runs `f` on the application with the clocks read now.
    fn with<R>(&self, f: impl FnOnce(&mut App<Self::Storage>, Now) -> R) -> R;
}

/// Marks a message of the poi's own session as in flight ([`App::set_exchanging`]) until
/// dropped: on every return of a link's exchange, and when a timeout drops it midway.
pub struct InFlight<'a, L: AppLock>(&'a L);

impl<'a, L: AppLock> InFlight<'a, L> {
    /// Sets the flag; the guard clears it.
    pub fn start(lock: &'a L) -> Self {
        lock.with(|app, _| app.set_exchanging(true));
        InFlight(lock)
    }
}

impl<L: AppLock> Drop for InFlight<'_, L> {
    fn drop(&mut self) {
        self.0.with(|app, _| app.set_exchanging(false));
    }
}

/// Largest image pixels a board's own sessions fetch when its heap has room: a 400x32
/// image, the widest the spec's poi show.
pub const MAX_FETCHED_BLOB_BYTES: usize = 400 * 32 * 3;

/// Image pixels a board's own sessions fetch while its heap has room for them beside what
/// it holds: 16 KiB, a 170x32 image, measured to fit beside 200 images' library
/// (docs/FIRMWARE.md, Budgets).
pub const MIN_FETCHED_BLOB_BYTES: usize = 16 * 1024;

/// Heap a fetch takes beyond the image's bytes: its answer's encoding and the step's own
/// work (575 B measured beside 200 images), with room to spare.
pub const FETCH_STEP_BYTES: usize = 2 * 1024;

/// Heap a board keeps free beside an image it fetches: a request body of its HTTP server
/// (8 KiB, `firmware/src/http/service.rs`, `MAX_BODY_BYTES`) arriving meanwhile, and the
/// step's own work.
pub const BOARD_FETCH_RESERVE_BYTES: usize = 8 * 1024 + FETCH_STEP_BYTES;

/// The largest image pixels a board's next sessions fetch, with `free` bytes of heap free
/// and `reserve` of them kept for what may arrive meanwhile: an answer holds an image once,
/// so a small library takes 400x32 images and a large one 16 KiB ones, or with less than
/// that free (a reordered library of 200 images) what still fits, so that an image too large
/// for the heap is not fetched only to be dropped.
pub fn fetch_limit(free: usize, reserve: usize) -> usize {
    let floor = MIN_FETCHED_BLOB_BYTES.min(free.saturating_sub(FETCH_STEP_BYTES));
    free.saturating_sub(reserve).clamp(floor, MAX_FETCHED_BLOB_BYTES)
}

/// The application's library as a session it starts needs it: locked only to start and to
/// merge each answer, never while a message travels.
struct LockedReplicas<'a, L>(&'a L);

impl<L: AppLock> Replicas for LockedReplicas<'_, L> {
    async fn start(&mut self, options: SyncOptions) -> (Session, Request) {
        self.0.with(|app, _| app.start_session(options))
    }

    async fn merge(
        &mut self,
        mut session: Session,
        answer: Response,
    ) -> (Session, Result<Option<Request>, sync::Error>) {
        let next = self.0.with(|app, now| app.merge(&mut session, answer, now));
        (session, next)
    }
}

/// Runs the sessions due now, one peer after another, each over `link_to(peer, addr)`;
/// `ended` hears each outcome (for the platform's log) once the application took it.
pub async fn run_due<L: AppLock, K: Link<Error: Failure>>(
    lock: &L,
    mut link_to: impl FnMut(DeviceId, SocketAddr) -> K,
    mut ended: impl FnMut(DeviceId, SocketAddr, &Progress, Result<(), DriveError<K::Error>>),
) {
    let due = lock.with(|app, now| app.sessions_due(now));
    for (peer, addr) in due {
        // An upload began meanwhile: the rest wait for it (App::begin_upload).
        if lock.with(|app, _| app.is_uploading()) {
            break;
        }
        let started = lock.with(|_, now| now);
        let mut link = link_to(peer, addr);
        let mut progress = Progress::default();
        let outcome =
            session::drive(&mut link, &mut LockedReplicas(lock), peer, SyncOptions::default(), &mut progress).await;
        let how = session::ended(&outcome, &progress);
        lock.with(|app, now| app.session_ended(peer, addr, started, how, now));
        ended(peer, addr, &progress, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_fetches_what_its_heap_holds() {
        let reserve = 10 * 1024;
        // Beside 60 images: a 400x32 image.
        assert_eq!(fetch_limit(50_872, reserve), MAX_FETCHED_BLOB_BYTES);
        // Beside 200 images (46,568 B at rest): the 16 KiB floor, as measured to fit.
        assert_eq!(fetch_limit(65_536 - 46_568, reserve), MIN_FETCHED_BLOB_BYTES);
        // Beside 200 reordered images (49,944 B): what fits, not 16 KiB.
        assert_eq!(fetch_limit(65_536 - 49_944, reserve), 65_536 - 49_944 - FETCH_STEP_BYTES);
        assert_eq!(fetch_limit(1_000, reserve), 0);
    }
}
