//! The scheduler: applies due downgrades and deprovisionings at their effective instant.
//!
//! On the system clock a background task looks for due changes every [`POLL_INTERVAL`], so a
//! change is applied within a fraction of a second of its instant (the due-change query is an
//! index range scan, cheap enough to run this often). On start-up it first catches up on
//! whatever fell due while the server was down; those changes are recorded at the instant they
//! were due, not at start-up. With a manual clock nothing becomes due between clock moves, and
//! `POST /api/v1/operator/clock` applies what a move makes due before it answers. Exactly-once
//! comes from the store's version-checked writes, so any number of instances can run this loop.

use crate::App;
use std::sync::Arc;
use std::time::Duration;

/// How often the background task looks for due changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the scheduler until the process ends.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match app.apply_due_changes().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(applied = n, "applied scheduled changes"),
                Err(e) => tracing::error!(error = %e, "applying scheduled changes failed; retrying"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}
