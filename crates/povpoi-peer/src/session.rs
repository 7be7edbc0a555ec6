//! The initiator's side of a sync session, over any link: the core's [`Session`] driven
//! message by message until it ends, with the checks every platform must make (the peer is
//! the poi it claims to be, the session ends within a bounded number of round trips).

use alloc::string::String;
use core::fmt;
use core::future::Future;

use povpoi_core::device::DeviceId;
use povpoi_core::sync::{self, Request, Response, Session, SessionReport, SyncOptions};

/// Most request/answer round trips in one session (blobs move 128 KiB per trip).
pub const MAX_ROUND_TRIPS: u32 = 2_000;

/// Carries one message to the peer and brings back its answer.
pub trait Link {
    /// Why a message did not get its answer (unreachable, refused, timed out...).
    type Error;
    /// Sends `request`; returns the answer and the bytes it took on the wire both ways.
    fn exchange(&mut self, request: &Request) -> impl Future<Output = Result<(Response, u64), Self::Error>>;
}

/// This poi's replica as a session needs it: read to start, written to merge each answer.
pub trait Replicas {
    /// Starts a session: its state and first message.
    fn start(&mut self, options: SyncOptions) -> impl Future<Output = (Session, Request)>;
    /// Merges an answer into the replica (saving it); returns the session and its next
    /// message, `None` once the session is over.
    fn merge(
        &mut self,
        session: Session,
        response: Response,
    ) -> impl Future<Output = (Session, Result<Option<Request>, sync::Error>)>;
}

/// What a session did so far, for the platform's history.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Messages sent and answered.
    pub round_trips: u32,
    /// Bytes on the wire, both ways.
    pub bytes: u64,
    /// What the core counted: records and blobs each way.
    pub report: SessionReport,
}

/// How a session this poi started ended, as auto-sync tells endings apart to decide when it
/// asks that peer again (`povpoi_app::peers::Peers::session_ended`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Done: both hold what both had.
    Synced,
    /// The peer would not let this poi in (401 or 403: another pairing key, or none).
    Refused,
    /// No answer in time: the peer took the message but did not answer it.
    Stalled,
    /// Nothing took the connection, before any message was answered.
    Unreachable,
    /// Broken off otherwise: an error answer, or one that could not be read or merged.
    Failed,
}

impl Ended {
    /// How an error answer with HTTP `status` ends a session: a refusal for 401 and 403.
    pub fn of_status(status: u16) -> Ended {
        if matches!(status, 401 | 403) { Ended::Refused } else { Ended::Failed }
    }
}

/// A link's error, told apart as auto-sync needs it.
pub trait Failure {
    /// Which way the message failed: [`Ended::Refused`], [`Ended::Stalled`],
    /// [`Ended::Unreachable`] (no connection) or [`Ended::Failed`].
    fn ended(&self) -> Ended;
}

/// A link's error as a platform's HTTP client reports it: which kind it is, and what
/// happened in words for the log and the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFailure {
    /// Its kind.
    pub ended: Ended,
    /// What happened.
    pub message: String,
}

impl LinkFailure {
    /// A failure of this kind.
    pub fn new(ended: Ended, message: impl Into<String>) -> LinkFailure {
        LinkFailure { ended, message: message.into() }
    }
}

impl fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for LinkFailure {}

impl Failure for LinkFailure {
    fn ended(&self) -> Ended {
        self.ended
    }
}

/// How a session [`drive`] ran ended, `progress` as it left it: a connection refused once
/// messages were answered is a session broken off ([`Ended::Failed`]), not a peer gone;
/// another poi answering at the peer's address is the peer gone from there.
pub fn ended<E: Failure>(outcome: &Result<(), DriveError<E>>, progress: &Progress) -> Ended {
    match outcome {
        Ok(()) => Ended::Synced,
        Err(DriveError::WrongPeer { .. }) => Ended::Unreachable,
        Err(DriveError::Link(e)) => match e.ended() {
            Ended::Unreachable if progress.round_trips > 0 => Ended::Failed,
            // A link reports failures only: one saying otherwise is taken as one.
            Ended::Synced => Ended::Failed,
            kind => kind,
        },
        Err(_) => Ended::Failed,
    }
}

/// Why a session stopped before its end.
#[derive(Debug)]
pub enum DriveError<E> {
    /// A message went unanswered: the link's reason.
    Link(E),
    /// The poi that answered is not the one the session was for.
    WrongPeer {
        /// The poi that answered.
        answered: DeviceId,
    },
    /// [`MAX_ROUND_TRIPS`] messages and still not done.
    TooManyRoundTrips,
    /// The core refused an answer (a protocol or storage error).
    Sync(sync::Error),
}

impl<E: fmt::Display> fmt::Display for DriveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::Link(e) => e.fmt(f),
            DriveError::WrongPeer { answered } => write!(f, "the poi that answered is {answered}"),
            DriveError::TooManyRoundTrips => write!(f, "gave up after {MAX_ROUND_TRIPS} round trips"),
            DriveError::Sync(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for DriveError<E> {}

/// Runs a whole session with the poi `receiver` over `link`; `progress` is kept up to date
/// after every answer, so a platform can record how far a failed session got.
pub async fn drive<L: Link, R: Replicas>(
    link: &mut L,
    replicas: &mut R,
    receiver: DeviceId,
    options: SyncOptions,
    progress: &mut Progress,
) -> Result<(), DriveError<L::Error>> {
    let (mut session, mut request) = replicas.start(options).await;
    loop {
        if progress.round_trips >= MAX_ROUND_TRIPS {
            return Err(DriveError::TooManyRoundTrips);
        }
        let (response, bytes) = link.exchange(&request).await.map_err(DriveError::Link)?;
        if let Response::Begun { summary, .. } = &response
            && summary.device != receiver
        {
            return Err(DriveError::WrongPeer { answered: summary.device });
        }
        progress.round_trips += 1;
        progress.bytes += bytes;
        let (back, next) = replicas.merge(session, response).await;
        session = back;
        progress.report = *session.report();
        match next.map_err(DriveError::Sync)? {
            Some(next) => request = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use povpoi_core::device::ReplicaId;
    use povpoi_core::sync::{Identity, MemoryStorage, Replica};

    type Poi = Replica<MemoryStorage>;

    /// Runs a future whose steps are all ready at once (in-memory replicas, a direct link).
    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut future = pin!(future);
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("an in-memory session waited"),
        }
    }

    fn poi(n: u8) -> Poi {
        let who =
            Identity { replica: ReplicaId(n.into()), device: DeviceId([2, 0, 0, 0, 0, n]), group: "troupe".into() };
        Replica::open(MemoryStorage::default(), who).unwrap()
    }

    /// The peer answers in-process; `limit` messages at most, then the link fails.
    struct Direct<'a> {
        peer: &'a mut Poi,
        limit: u32,
    }

    impl Link for Direct<'_> {
        type Error = &'static str;
        async fn exchange(&mut self, request: &Request) -> Result<(Response, u64), &'static str> {
            if self.limit == 0 {
                return Err("link down");
            }
            self.limit -= 1;
            Ok((self.peer.respond(request.clone(), 2_000), 100))
        }
    }

    impl Replicas for Poi {
        async fn start(&mut self, options: SyncOptions) -> (Session, Request) {
            Session::start(self, options)
        }
        async fn merge(
            &mut self,
            mut session: Session,
            response: Response,
        ) -> (Session, Result<Option<Request>, sync::Error>) {
            let next = session.on_response(self, response, 2_000);
            (session, next)
        }
    }

    #[test]
    fn a_session_over_a_link_brings_both_poi_the_same_library() {
        let (mut a, mut b) = (poi(1), poi(2));
        a.add_image("dot", 1, 2, &[255, 0, 0, 0, 0, 255], 1_000).unwrap();
        b.add_image("line", 1, 1, &[0, 255, 0], 1_000).unwrap();
        let mut progress = Progress::default();
        let receiver = DeviceId([2, 0, 0, 0, 0, 2]);
        let mut link = Direct { peer: &mut b, limit: 100 };
        ready(drive(&mut link, &mut a, receiver, SyncOptions::default(), &mut progress)).unwrap();
        assert_eq!((a.image_count(), b.image_count()), (2, 2));
        assert!(progress.round_trips >= 2, "{progress:?}");
        assert_eq!(progress.bytes, u64::from(progress.round_trips) * 100);
        assert_eq!(progress.report.blobs_received, 1);
        assert_eq!(progress.report.blobs_sent, 1);
    }

    #[test]
    fn a_session_with_the_wrong_poi_stops_at_its_first_answer() {
        let (mut a, mut b) = (poi(1), poi(2));
        b.add_image("line", 1, 1, &[0, 255, 0], 1_000).unwrap();
        let mut progress = Progress::default();
        let mut link = Direct { peer: &mut b, limit: 100 };
        let expected = DeviceId([2, 0, 0, 0, 0, 9]);
        let outcome = ready(drive(&mut link, &mut a, expected, SyncOptions::default(), &mut progress));
        assert!(matches!(outcome, Err(DriveError::WrongPeer { answered }) if answered == DeviceId([2, 0, 0, 0, 0, 2])));
        assert_eq!(a.image_count(), 0, "nothing merged from a poi that is not the one asked");
    }

    #[test]
    fn a_link_failure_ends_the_session_with_what_it_got_so_far() {
        let (mut a, mut b) = (poi(1), poi(2));
        b.add_image("line", 1, 1, &[0, 255, 0], 1_000).unwrap();
        let mut progress = Progress::default();
        let receiver = DeviceId([2, 0, 0, 0, 0, 2]);
        let mut link = Direct { peer: &mut b, limit: 1 };
        let outcome = ready(drive(&mut link, &mut a, receiver, SyncOptions::default(), &mut progress));
        assert!(matches!(outcome, Err(DriveError::Link("link down"))));
        assert_eq!(progress.round_trips, 1);
    }

    #[test]
    fn a_session_s_end_is_told_apart_as_auto_sync_needs_it() {
        let failure = |ended| Err(DriveError::Link(LinkFailure::new(ended, "x")));
        let after = |round_trips| Progress { round_trips, ..Progress::default() };
        assert_eq!(ended::<LinkFailure>(&Ok(()), &after(3)), Ended::Synced);
        assert_eq!(ended(&failure(Ended::Unreachable), &after(0)), Ended::Unreachable);
        assert_eq!(ended(&failure(Ended::Unreachable), &after(2)), Ended::Failed, "gone mid-session");
        assert_eq!(ended(&failure(Ended::Refused), &after(1)), Ended::Refused);
        assert_eq!(ended(&failure(Ended::Stalled), &after(4)), Ended::Stalled);
        assert_eq!(ended(&failure(Ended::Synced), &after(0)), Ended::Failed, "a link reports failures only");
        let wrong = Err(DriveError::<LinkFailure>::WrongPeer { answered: DeviceId([2, 0, 0, 0, 0, 9]) });
        assert_eq!(ended(&wrong, &after(0)), Ended::Unreachable, "another poi at its address");
        assert_eq!(ended(&Err(DriveError::<LinkFailure>::TooManyRoundTrips), &after(0)), Ended::Failed);
        let statuses = [401, 403, 409, 500, 503, 507].map(Ended::of_status);
        use Ended::{Failed, Refused};
        assert_eq!(statuses, [Refused, Refused, Failed, Failed, Failed, Failed]);
    }
}
