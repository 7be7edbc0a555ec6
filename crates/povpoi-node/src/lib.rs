//! One povpoi poi as a long-running process.
//!
//! Today this crate holds the poi's on-disk [`storage`]; the HTTP API, discovery and peer
//! sync build on it next.

#![warn(missing_docs)]

pub mod storage;
