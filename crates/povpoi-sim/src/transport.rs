//! Carrying a sync session's messages between two in-process replicas, encoded with the
//! real wire format, through a link that may lose or duplicate them.

use povpoi_core::sync::{
    Error, MAX_PUSH_RECORD_BYTES, Replica, Request, Response, Session, SessionReport, Storage, SyncOptions,
};
use povpoi_core::wire;

/// What happens to one message on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Arrives once.
    Deliver,
    /// Never arrives; the session stops.
    Lose,
    /// Arrives twice (the receiver handles it twice; the second answer is the one used).
    Duplicate,
    /// The receiver's next save fails as it handles the message (a crash mid-write); the
    /// session stops.
    CrashReceiver,
}

/// Which way a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// Initiator to responder.
    Request,
    /// Responder to initiator.
    Response,
}

/// Decides each message's fate, and sees its bytes (to replay it later, out of order).
pub trait Link {
    /// The fate of the encoded message going along `leg`.
    fn fate(&mut self, leg: Leg, bytes: &[u8]) -> Fate;
}

/// A link that delivers everything once.
pub struct Reliable;

impl Link for Reliable {
    fn fate(&mut self, _: Leg, _: &[u8]) -> Fate {
        Fate::Deliver
    }
}

/// Messages and bytes carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages sent (both ways).
    pub messages: usize,
    /// Encoded bytes sent (both ways).
    pub bytes: usize,
}

/// How a session ended.
#[derive(Debug)]
pub struct Outcome {
    /// What moved, if the session finished.
    pub report: Option<SessionReport>,
    /// What crossed the link.
    pub traffic: Traffic,
    /// Why it stopped early, if it did.
    pub stopped: Option<Stop>,
}

/// Why a session stopped before the end.
#[derive(Debug)]
pub enum Stop {
    /// A message was lost.
    Lost(Leg),
    /// The receiver of a message crashed while handling it.
    Crashed(Leg),
    /// Either side refused or failed.
    Failed(Error),
}

/// Longest session accepted before the transport gives up (a run-away guard).
const MAX_MESSAGES: usize = 10_000;

/// Runs one session from `a` to `b`; `now_a`/`now_b` are each side's wall clock, and `a`
/// pushes its records in parts of at most `push_bytes`.
pub fn run_session<S: Storage>(
    a: &mut Replica<S>,
    b: &mut Replica<S>,
    options: SyncOptions,
    (now_a, now_b): (u64, u64),
    push_bytes: usize,
    link: &mut dyn Link,
    crash_switch: &mut dyn FnMut(Leg),
) -> Outcome {
    let mut traffic = Traffic::default();
    let (session, mut request) = Session::start(a, options);
    let mut session = session.push_parts_of(push_bytes);
    let stop = |stop, traffic| Outcome { report: None, traffic, stopped: Some(stop) };
    while traffic.messages < MAX_MESSAGES {
        let bytes = wire::to_bytes(&request);
        traffic.messages += 1;
        traffic.bytes += bytes.len();
        let fate = link.fate(Leg::Request, &bytes);
        let deliveries = match fate {
            Fate::Lose => return stop(Stop::Lost(Leg::Request), traffic),
            Fate::Duplicate => 2,
            Fate::Deliver | Fate::CrashReceiver => 1,
        };
        if fate == Fate::CrashReceiver {
            crash_switch(Leg::Request);
        }
        let mut response = Response::Refused("never handled".into());
        for _ in 0..deliveries {
            match wire::from_bytes::<Request>(&bytes) {
                Ok(req) => response = b.respond(req, now_b),
                Err(e) => return stop(Stop::Failed(e), traffic),
            }
        }
        if fate == Fate::CrashReceiver {
            return stop(Stop::Crashed(Leg::Request), traffic);
        }

        let bytes = wire::to_bytes(&response);
        traffic.messages += 1;
        traffic.bytes += bytes.len();
        let fate = link.fate(Leg::Response, &bytes);
        if fate == Fate::Lose {
            return stop(Stop::Lost(Leg::Response), traffic);
        }
        if fate == Fate::CrashReceiver {
            crash_switch(Leg::Response);
        }
        let response = match wire::from_bytes::<Response>(&bytes) {
            Ok(r) => r,
            Err(e) => return stop(Stop::Failed(e), traffic),
        };
        let next = session.on_response(a, response, now_a);
        if fate == Fate::CrashReceiver {
            return stop(Stop::Crashed(Leg::Response), traffic);
        }
        match next {
            Ok(Some(next)) => request = next,
            Ok(None) => return Outcome { report: Some(*session.report()), traffic, stopped: None },
            Err(e) => return stop(Stop::Failed(e), traffic),
        }
    }
    stop(Stop::Failed(Error::Protocol("session did not end")), traffic)
}

/// Runs one fault-free session and returns what moved and the traffic.
pub fn sync<S: Storage>(
    a: &mut Replica<S>,
    b: &mut Replica<S>,
    options: SyncOptions,
    now: u64,
) -> Result<(SessionReport, Traffic), Error> {
    let outcome = run_session(a, b, options, (now, now), MAX_PUSH_RECORD_BYTES, &mut Reliable, &mut |_| {});
    match (outcome.report, outcome.stopped) {
        (Some(report), _) => Ok((report, outcome.traffic)),
        (None, Some(Stop::Failed(e))) => Err(e),
        (None, _) => Err(Error::Protocol("reliable session stopped early")),
    }
}
