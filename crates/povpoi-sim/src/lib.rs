//! Deterministic simulation of a troupe of povpoi replicas, and of their show clocks
//! ([`clock`]).
//!
//! A [`scenario`] run starts 2 to 8 replicas from a seed, lets them upload, edit, delete and
//! sync at random over a [`transport`] that loses, duplicates and reorders messages, cuts
//! sessions off and crashes replicas mid-save, under partitions and skewed clocks; then heals
//! everything, runs one full round of syncs and checks the result against an [`oracle`] that
//! saw every edit. The same seed always replays the same run.

#![warn(missing_docs)]

pub mod clock;
pub mod oracle;
pub mod scenario;
pub mod storage;
pub mod transport;
