//! One povpoi poi as a long-running process: its data directory ([`storage`], [`config`]),
//! the HTTP API of the existing system and more ([`api`]), discovery of peers ([`discovery`],
//! [`peers`]) and the sync sessions it starts ([`sync_client`]), the show clock it plays by
//! ([`show_clock`]), what they share ([`state`]), all started by [`node`].

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod discovery;
pub mod events;
pub mod history;
pub mod library;
pub mod memory;
pub mod node;
pub mod output;
pub mod peers;
pub mod player;
pub mod replay;
pub mod server;
pub mod show_clock;
mod shutdown;
pub mod state;
pub mod storage;
pub mod sync_client;

pub use node::{Node, NodeOptions};
pub use state::NodeState;
