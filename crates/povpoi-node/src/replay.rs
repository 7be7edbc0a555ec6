//! The replay window kept on disk: the nonces of accepted peer requests (see
//! [`povpoi_peer::replay`]) survive a restart, so it does not reopen the window for a
//! captured request.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use povpoi_peer::auth::{AuthError, RequestAuth, Signed, is_nonce};
use povpoi_peer::key::GroupKey;
use povpoi_peer::replay::{NonceWindow, window_start};

use crate::storage::write_atomically;

/// Most nonces remembered; beyond this requests are refused until old ones expire.
const MAX_REMEMBERED_NONCES: usize = 100_000;

/// Refuses replayed and stale requests; remembers each accepted nonce for the skew window,
/// in memory and (when opened on a file) on disk, so a restarted poi still knows them.
#[derive(Debug)]
pub struct ReplayGuard {
    window: NonceWindow,
    log: Option<Arc<Mutex<NonceLog>>>,
    /// Lines in the file (as far as this guard has asked for them): it is rewritten
    /// without the expired ones once they are most of it.
    logged: usize,
}

/// The accepted nonces on disk: one `time nonce` line each, appended as they come.
#[derive(Debug)]
struct NonceLog {
    path: PathBuf,
    file: File,
}

impl NonceLog {
    fn append_to(path: PathBuf) -> io::Result<NonceLog> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(NonceLog { path, file })
    }
}

/// A nonce taken in memory that still has to reach the disk: [`PendingNonce::persist`]
/// does the (blocking) write, off the async runtime's threads and outside the guard's lock.
#[derive(Debug)]
#[must_use = "a nonce not persisted could be replayed after a restart"]
pub struct PendingNonce {
    log: Arc<Mutex<NonceLog>>,
    line: String,
    /// The whole file anew (the live nonces) instead of one more line.
    rewrite: Option<String>,
}

impl PendingNonce {
    /// Writes the nonce to the card and flushes it before the request is served: a poi is
    /// switched off by cutting its power, and a nonce lost that way could be replayed after.
    pub fn persist(self) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let result = match self.rewrite {
            Some(all) => write_atomically(&log.path, all.as_bytes())
                .and_then(|()| NonceLog::append_to(log.path.clone()))
                .map(|fresh| *log = fresh),
            None => log.file.write_all(self.line.as_bytes()).and_then(|()| log.file.sync_data()),
        };
        // The request itself is sound; only its protection across a restart is weaker.
        if let Err(e) = result {
            tracing::warn!(path = %log.path.display(), error = %e, "cannot record a request nonce on disk");
        }
    }
}

impl Default for ReplayGuard {
    /// A guard in memory only.
    fn default() -> ReplayGuard {
        ReplayGuard { window: NonceWindow::new(MAX_REMEMBERED_NONCES), log: None, logged: 0 }
    }
}

fn nonce_lines<'a>(seen: impl Iterator<Item = (&'a str, u64)>) -> String {
    seen.map(|(nonce, time)| format!("{time} {nonce}\n")).collect()
}

impl ReplayGuard {
    /// A guard that keeps its nonces in `path`: the ones still inside the window at `now_ms`
    /// are loaded (a line torn by a crash is skipped), the rest dropped from the file.
    pub fn open(path: &Path, now_ms: u64) -> io::Result<ReplayGuard> {
        let mut seen = NonceWindow::new(MAX_REMEMBERED_NONCES);
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // Line by line as bytes: a line torn by a crash or garbled on the card is skipped,
        // not a reason to refuse to start.
        // Whether the file holds exactly the live nonces, one `time nonce` line each.
        let mut as_written = bytes.is_empty() || bytes.ends_with(b"\n");
        let lines = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        for line in lines.split(|b| *b == b'\n').filter(|_| !bytes.is_empty()) {
            let parsed = std::str::from_utf8(line).ok().and_then(|line| {
                let (time, nonce) = line.split_once(' ')?;
                Some((time.parse::<u64>().ok()?, nonce, line))
            });
            match parsed {
                Some((time, nonce, line)) if is_nonce(nonce) && time >= window_start(now_ms) => {
                    let fresh = seen.remember(nonce, time);
                    as_written &= fresh && line == format!("{time} {nonce}");
                }
                _ => as_written = false,
            }
        }
        // Rewritten only when something expired or is not as this poi writes it: start-up
        // must not need free space.
        if !as_written {
            write_atomically(path, nonce_lines(seen.iter()).as_bytes())?;
        }
        let log = NonceLog::append_to(path.to_owned())?;
        let logged = seen.len();
        Ok(ReplayGuard { window: seen, log: Some(Arc::new(Mutex::new(log))), logged })
    }

    /// What can be checked before the body has arrived (see [`NonceWindow::precheck`]).
    pub fn precheck(&self, auth: Option<&RequestAuth>, now_ms: u64) -> Result<(), AuthError> {
        self.window.precheck(auth, now_ms)
    }

    /// Checks a request's signature, time and nonce; on success the nonce is used up in
    /// memory, and what is returned must be persisted before the request is served.
    pub fn admit(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<Option<PendingNonce>, AuthError> {
        let auth = self.window.admit(key, what, auth, now_ms)?;
        let Some(log) = &self.log else { return Ok(None) };
        self.logged += 1;
        let rewrite = (self.logged > 2 * self.window.len() + 1_024).then(|| {
            self.logged = self.window.len();
            nonce_lines(self.window.iter())
        });
        Ok(Some(PendingNonce { log: log.clone(), line: format!("{} {}\n", auth.time_ms, auth.nonce), rewrite }))
    }

    /// [`ReplayGuard::admit`], then the nonce written to disk at once (blocking).
    pub fn verify(
        &mut self,
        key: &GroupKey,
        what: &Signed<'_>,
        auth: Option<&RequestAuth>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        self.admit(key, what, auth, now_ms).map(|pending| pending.map_or((), PendingNonce::persist))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use povpoi_peer::auth::{MAX_CLOCK_SKEW_MS, sign_request};

    const NOW: u64 = 1_764_000_000_000;

    fn key(secret: &str) -> GroupKey {
        GroupKey::new(secret).unwrap()
    }

    fn what(body: &[u8]) -> Signed<'_> {
        Signed {
            method: "POST",
            path: "/api/sync/v1",
            body,
            device: "02:00:00:00:00:01",
            port: "8080",
            receiver: "02:00:00:00:00:02",
            group: "troupe",
        }
    }

    #[test]
    fn a_full_nonce_memory_refuses_rather_than_forgets_live_nonces() {
        let k = key("pairing secret");
        let mut guard = ReplayGuard::default();
        for i in 0..MAX_REMEMBERED_NONCES {
            guard.window.remember(&format!("{i:032x}"), NOW - 1_000);
        }
        let fresh = sign_request(&k, &what(b""), NOW, &mut rand::rng());
        assert_eq!(guard.verify(&k, &what(b""), Some(&fresh), NOW), Err(AuthError::Busy));
        assert_eq!(guard.window.len(), MAX_REMEMBERED_NONCES, "no live nonce was dropped");
        // Once those are past the window they go, and requests pass again.
        let later = NOW + 2 * MAX_CLOCK_SKEW_MS;
        let fresh = sign_request(&k, &what(b""), later, &mut rand::rng());
        assert_eq!(guard.verify(&k, &what(b""), Some(&fresh), later), Ok(()));
        assert_eq!(guard.window.len(), 1);
    }

    #[test]
    fn a_nonce_file_as_written_is_left_alone_and_any_other_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let nonce = "0123456789abcdef0123456789abcdef";
        let opens_to = |text: &str| {
            fs::write(&path, text).unwrap();
            drop(ReplayGuard::open(&path, NOW).unwrap());
            fs::read_to_string(&path).unwrap()
        };
        let canonical = format!("{NOW} {nonce}\n");
        assert_eq!(opens_to(&canonical), canonical);
        // Read the same, written otherwise (found by the nonce_file fuzz target): a `+`
        // the parser takes, no final newline. The file becomes what this poi writes.
        assert_eq!(opens_to(&format!("+{NOW} {nonce}")), canonical);
        assert_eq!(opens_to(&format!("{NOW} {nonce}")), canonical);
        assert_eq!(opens_to(&format!("{NOW} {nonce}\n{NOW} {nonce}\n")), canonical);
        assert_eq!(opens_to(&format!("garbage\n{NOW} {nonce}\n")), canonical);
        assert_eq!(opens_to(""), "");
    }

    #[test]
    fn a_restarted_poi_still_refuses_a_request_it_took_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let k = key("pairing secret");
        let first = sign_request(&k, &what(b"a"), NOW, &mut rand::rng());
        let second = sign_request(&k, &what(b"b"), NOW, &mut rand::rng());
        {
            let mut guard = ReplayGuard::open(&path, NOW).unwrap();
            assert_eq!(guard.verify(&k, &what(b"a"), Some(&first), NOW), Ok(()));
        }
        // A crash cut the last line short, and the card garbled another: both are skipped,
        // the rest still counts.
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\xff\xfe garbled\n17640000").unwrap();
        let mut guard = ReplayGuard::open(&path, NOW + 1_000).unwrap();
        assert_eq!(guard.verify(&k, &what(b"a"), Some(&first), NOW + 1_000), Err(AuthError::Replayed));
        assert_eq!(guard.verify(&k, &what(b"b"), Some(&second), NOW + 1_000), Ok(()));
        // Past the window the file forgets them (time alone refuses such requests).
        let later = NOW + 3 * MAX_CLOCK_SKEW_MS;
        drop(guard);
        let guard = ReplayGuard::open(&path, later).unwrap();
        assert!(guard.window.is_empty());
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn the_nonce_file_is_compacted_once_mostly_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let k = key("pairing secret");
        let mut guard = ReplayGuard::open(&path, NOW).unwrap();
        for i in 0..1_600u64 {
            let at = NOW + i * MAX_CLOCK_SKEW_MS / 100;
            let auth = sign_request(&k, &what(b""), at, &mut rand::rng());
            assert_eq!(guard.verify(&k, &what(b""), Some(&auth), at), Ok(()));
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 1_600, "expired nonces were dropped from the file ({lines} lines)");
        assert!(lines >= guard.window.len(), "every live nonce is still on disk");
    }
}
