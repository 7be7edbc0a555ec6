//! Playing in unison: the show clock a group of poi agree on with nobody in charge, the
//! probes that measure it, and the cues that make a change land on the same column
//! everywhere.
//!
//! - [`ShowClock`]: one poi's show time (its own monotonic clock through a [`ShowMapping`]:
//!   an offset, a rate correction, a slewed correction), its peers' clocks from probe
//!   samples ([`PeerFilter`]), and the rules that merge timelines and keep a group on one.
//! - [`packet`]: the probe and answer datagrams, with the pairing key's tag.
//! - [`Cue`] and [`Staged`]: the show time at which an edit of what plays takes effect,
//!   and a player's field that switches at its cues.
//!
//! Nothing here reads a clock or a socket: the caller passes its own clock in µs and moves
//! the datagrams. `docs/PROTOCOL.md` section 12 specifies the rules and the bytes.

mod clock;
mod cue;
mod filter;
mod mapping;
pub mod packet;

pub use clock::{
    ANSWER_TIMEOUT_US, BURST_ANSWERS, BURST_PERIOD_US, CONVERGING_PERIOD_US, ClockStatus, FOUNDING_SPREAD_US,
    IN_STEP_US, Ignored, PeerStatus, SETTLED_PERIOD_US, STEP_ERROR_US, STEP_NOTICE_US, STEP_THRESHOLD_US, ShowClock,
    Standing, Step, TIE_WINDOW_US,
};
pub use cue::{Cue, MAX_CUE_AHEAD_US, MAX_LEAD_US, MIN_LEAD_US, Staged, lead_us};
pub use filter::{Offset, PeerFilter, Sample, Skew, WINDOW};
pub use mapping::{MAX_RATE_PPB, SLEW_PPM, ShowMapping};
pub use packet::{Announce, ClockKey, Packet, PacketError, Plan};
