//! The scheduler: applies due downgrades and deprovisionings at their effective instant, and
//! keeps the tables that would otherwise only grow in check.
//!
//! On the system clock a background task looks for due changes every [`POLL_INTERVAL`], so a
//! change is applied within a fraction of a second of its instant (the due-change query is an
//! index range scan, cheap enough to run this often). On start-up it first catches up on
//! whatever fell due while the server was down; those changes are recorded at the instant they
//! were due, not at start-up. With a manual clock nothing becomes due between clock moves, and
//! `POST /api/v1/operator/clock` applies what a move makes due before it answers. Exactly-once
//! comes from the store's version-checked writes, so any number of instances can run this loop.
//!
//! **One broken change never stops the others.** The store applies each due change on its own
//! (a savepoint per change); one that fails is rolled back alone and set aside for a delay that
//! doubles with every failure, from a minute up to an hour (`genai_store::due_retry_delay`),
//! instead of being retried every poll. Each one is logged with its cause and counted in
//! [`Counters`], for the metrics endpoint to expose.
//!
//! **Housekeeping**, every [`HOUSEKEEPING_INTERVAL`] (and at start-up): web sessions are deleted
//! once expired, idempotency keys [`IDEMPOTENCY_KEY_RETENTION`] after their first use (a retry
//! later than that is a new request). The ledger and the audit log are kept for good: they are
//! the company's books, paged rather than pruned.

use crate::{App, AppError};
use genai_core::calendar::format_instant;
use genai_store::{error_chain, DueBatch};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the background task looks for due changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often expired sessions and old idempotency keys are deleted.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// How long an idempotency key is remembered after its first use (on the server's clock).
pub const IDEMPOTENCY_KEY_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// What the scheduler has done since start-up.
#[derive(Debug, Default)]
pub struct Counters {
    applied: AtomicU64,
    set_aside: AtomicU64,
}

impl Counters {
    /// Scheduled changes applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Failures to apply a due change (each one set the change aside for a while).
    pub fn set_aside(&self) -> u64 {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// Counts a batch and logs each change it set aside.
    pub(crate) fn record(&self, batch: &DueBatch) {
        self.applied.fetch_add(batch.applied as u64, Ordering::Relaxed);
        self.set_aside.fetch_add(batch.set_aside.len() as u64, Ordering::Relaxed);
        for failed in &batch.set_aside {
            tracing::error!(
                resource = %failed.resource_id,
                attempts = failed.attempts,
                retry_at = %format_instant(failed.retry_at),
                error = %error_chain(&failed.error),
                "a due scheduled change could not be applied; set aside until the retry"
            );
        }
    }
}

impl App {
    /// Deletes expired web sessions and idempotency keys past their retention; answers how
    /// many of each. Sessions expire by the wall clock (they are about people), keys by the
    /// server's clock (they were stamped with it).
    pub async fn purge_expired(&self) -> Result<(u64, u64), AppError> {
        let sessions = self.store.purge_sessions(chrono::Utc::now()).await?;
        let keys = self.store.purge_idempotency_keys(self.now() - IDEMPOTENCY_KEY_RETENTION).await?;
        Ok((sessions, keys))
    }
}

/// Runs the scheduler until the process ends.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut housekept: Option<tokio::time::Instant> = None;
        loop {
            match app.apply_due_changes().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(applied = n, "applied scheduled changes"),
                Err(e) => tracing::error!(error = %e, "applying scheduled changes failed; retrying"),
            }
            if housekept.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL) {
                match app.purge_expired().await {
                    Ok((sessions, keys)) => {
                        tracing::info!(sessions, keys, "deleted expired sessions and idempotency keys")
                    }
                    Err(e) => tracing::error!(error = %e, "housekeeping failed; trying again later"),
                }
                housekept = Some(tokio::time::Instant::now());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}
