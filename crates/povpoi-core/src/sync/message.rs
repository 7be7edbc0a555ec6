//! The messages two replicas exchange; see `docs/PROTOCOL.md` for the byte-level encoding.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::record::Record;
use super::version::{Category, Dot, Knowledge};
use crate::device::{DeviceId, ReplicaId};
use crate::hash::BlobHash;

/// Which way content moves in a sync, seen from the side that starts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Both ways.
    #[default]
    Bidirectional,
    /// Only from the initiator to the peer.
    Push,
    /// Only from the peer to the initiator.
    Pull,
}

impl Direction {
    /// Whether the initiator sends its content.
    pub fn pushes(self) -> bool {
        self != Direction::Pull
    }
    /// Whether the initiator receives the peer's content.
    pub fn pulls(self) -> bool {
        self != Direction::Push
    }
}

/// Which categories a sync covers (`syncImages`, `syncPatterns`, `syncSettings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Categories {
    /// Images and their pixels.
    pub images: bool,
    /// Patterns and sequences.
    pub patterns: bool,
    /// Shared settings.
    pub settings: bool,
}

impl Categories {
    /// Everything.
    pub const ALL: Categories = Categories { images: true, patterns: true, settings: true };

    /// Whether `category` is included.
    pub fn contains(&self, category: Category) -> bool {
        match category {
            Category::Images => self.images,
            Category::Patterns => self.patterns,
            Category::Settings => self.settings,
        }
    }

    /// The included categories.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl Default for Categories {
    fn default() -> Self {
        Self::ALL
    }
}

/// How one sync session runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Which way content moves.
    pub direction: Direction,
    /// What content moves.
    pub categories: Categories,
}

/// What a replica says about itself at the start of a session: its size depends on the
/// number of replicas that ever edited, never on the number of items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Protocol version spoken ([`super::PROTOCOL_VERSION`]).
    pub protocol: u16,
    /// Sync group; replicas of different groups never merge.
    pub group: String,
    /// The poi's user-facing id.
    pub device: DeviceId,
    /// The replica's id (the origin of its dots).
    pub replica: ReplicaId,
    /// Everything the replica has seen, per category.
    pub knowledge: Knowledge,
    /// Bytes of records the replica takes in one `Push` part at most: a peer pushing to it
    /// cuts its parts to this (values under [`super::MIN_PART_BYTES`] count as that).
    pub part_bytes: u32,
}

impl Summary {
    /// The `Push` part size this replica takes, as a peer heeds it: [`Summary::part_bytes`],
    /// at least [`super::MIN_PART_BYTES`].
    pub fn parts_taken(&self) -> usize {
        usize::try_from(self.part_bytes).unwrap_or(usize::MAX).max(super::MIN_PART_BYTES)
    }
}

/// Lets a peer that fell behind a compaction drop versions whose tombstones are gone.
///
/// Sent for a category when the receiver's knowledge does not cover the sender's floor
/// there: the receiver then drops every version it holds that the floor covers and that is
/// not listed here, since the sender has seen it and no longer holds it (it was deleted or
/// replaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// The category repaired.
    pub category: Category,
    /// The dots of every record the sender holds that its floor covers, in that category.
    pub live: Vec<Dot>,
}

/// The records a peer lacks, with what the sender has seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Sender's sync group.
    pub group: String,
    /// Sender's replica id.
    pub replica: ReplicaId,
    /// Categories this delta is complete for.
    pub categories: Categories,
    /// The receiver's knowledge the delta was computed against: a receiver that has not
    /// seen at least this much refuses the delta (it was meant for someone else).
    pub base: Knowledge,
    /// Every record the sender holds in those categories whose dot the receiver's
    /// knowledge did not cover.
    pub records: Vec<Record>,
    /// The sender's knowledge; the receiver adopts it for `categories` after merging.
    pub knowledge: Knowledge,
    /// The sender's compaction floor: covers every tombstone compacted by it (or by those
    /// it learned from) and what they deleted. Adopted together with `knowledge`.
    pub floor: Knowledge,
    /// Repairs for categories where the receiver is behind a compaction.
    pub repairs: Vec<Repair>,
    /// The one replica that may take this delta, on the last part of a delta sent in parts
    /// ([`Replica::delta_part`](super::Replica::delta_part)): its knowledge counts records
    /// that went in the earlier parts, which only that receiver took. `None`: any replica
    /// that has seen `base` may.
    pub to: Option<ReplicaId>,
}

/// The pixels of one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// Content address, checked by the receiver before it keeps the bytes.
    pub hash: BlobHash,
    /// Canonical pixel bytes.
    pub bytes: Vec<u8>,
}

/// What the initiator of a session sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Opens a session: here is what I have seen; answer with yours (and, if I pull, the
    /// records I lack).
    Begin {
        /// The initiator's summary.
        summary: Summary,
        /// Direction and categories.
        options: SyncOptions,
    },
    /// Records the responder lacks; the answer lists the blobs it then misses.
    Push(Box<Delta>),
    /// Asks for blobs by hash.
    Fetch(Vec<BlobHash>),
    /// Delivers blobs the responder asked for.
    Store(Vec<Blob>),
}

/// What the responder answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Begin`.
    Begun {
        /// The responder's summary.
        summary: Summary,
        /// The records the initiator lacks, if it pulls and lacks any.
        delta: Option<Box<Delta>>,
        /// Blobs the responder misses (at most [`super::MAX_FETCH_HASHES`]), if the
        /// initiator pushes images: it sends those it holds even when no record moves.
        want: Vec<BlobHash>,
    },
    /// Answer to `Push`: blobs the responder misses now (at most [`super::MAX_FETCH_HASHES`]).
    Want(Vec<BlobHash>),
    /// Answer to `Fetch`.
    Blobs {
        /// As many requested blobs as fit in one message, in request order.
        blobs: Vec<Blob>,
        /// Requested hashes the responder does not have.
        missing: Vec<BlobHash>,
    },
    /// Answer to `Store`: how many blobs were verified and kept.
    Stored(u32),
    /// The request was refused; the text says why.
    Refused(String),
}
