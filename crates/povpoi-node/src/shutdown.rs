//! The node's stop signal: every task it spawns watches one flag and ends once it is set.

use tokio::sync::watch;

/// Resolves once the node is told to stop.
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}
