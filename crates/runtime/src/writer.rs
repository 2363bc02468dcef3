//! The group-commit writer: one task makes every settled call's usage durable.
//!
//! Callers queue a [`Job`] with a oneshot and wait on it. The writer takes the first job, then
//! everything else already queued (calls that settled while the previous commit was running),
//! aggregates usage per (resource, month, day) and lease changes per (resource, month), and
//! writes them with one `UsageStore::commit_usage`, which also renews every live lease of this
//! holder and records keys' `last_used_at`. Only then is each caller answered: an HTTP answer is
//! completed only after its usage is durable.
//!
//! There is no extra waiting for a batch to fill: while one commit runs (about a millisecond on
//! SQLite, a round trip on PostgreSQL) the next calls queue up and go together in the next one,
//! so batches grow with the load and a lone call pays no delay.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use genai_core::quota::Tokens;
use genai_core::{Instant, ResourceId};
use genai_store::{LeaseDelta, UsageBatch, UsageDelta};
use tokio::sync::{mpsc, oneshot};

use crate::{wall_ms, Inner, LEASE_MS};

/// The most jobs one commit takes.
const MAX_BATCH: usize = 4096;

/// Work for the writer.
#[derive(Debug)]
pub(crate) enum Job {
    /// A settled call: its usage (also taken off this holder's lease).
    Usage {
        resource_id: ResourceId,
        month_start: Instant,
        day: String,
        used: Tokens,
        key_use: Option<(String, Instant)>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// A lease change without usage (a balance given back).
    Lease { resource_id: ResourceId, month_start: Instant, delta: Tokens },
    /// Renew the leases (nothing else to write).
    Renew,
    /// Answer once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

pub(crate) async fn run(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        commit(&inner, &mut jobs).await;
    }
}

async fn commit(inner: &Arc<Inner>, jobs: &mut Vec<Job>) {
    let mut usage: HashMap<(ResourceId, Instant, String), (Tokens, i64)> = HashMap::new();
    let mut leases: HashMap<(ResourceId, Instant), Tokens> = HashMap::new();
    let mut key_uses = Vec::new();
    let mut waiting = Vec::new();
    let mut flushes = Vec::new();
    for job in jobs.drain(..) {
        match job {
            Job::Usage { resource_id, month_start, day, used, key_use, done } => {
                let lease = leases.entry((resource_id.clone(), month_start)).or_default();
                *lease = lease.checked_sub(used).unwrap_or(*lease);
                let u = usage.entry((resource_id, month_start, day)).or_default();
                u.0 = u.0.checked_add(used).unwrap_or(u.0);
                u.1 += 1;
                key_uses.extend(key_use);
                waiting.push(done);
            }
            Job::Lease { resource_id, month_start, delta } => {
                let lease = leases.entry((resource_id, month_start)).or_default();
                *lease = lease.checked_add(delta).unwrap_or(*lease);
            }
            Job::Renew => {}
            Job::Flush(tx) => flushes.push(tx),
        }
    }
    let now_ms = wall_ms();
    let until = now_ms + LEASE_MS;
    let batch = UsageBatch {
        holder: inner.holder.clone(),
        usage: usage
            .into_iter()
            .map(|((resource_id, month_start, day), (used, api_calls))| UsageDelta {
                resource_id,
                month_start,
                day,
                used,
                api_calls,
            })
            .collect(),
        leases: leases
            .into_iter()
            .filter(|(_, held)| !held.is_zero())
            .map(|((resource_id, month_start), held)| LeaseDelta { resource_id, month_start, held })
            .collect(),
        renew_until_ms: Some(until),
        now_ms,
        key_uses,
    };
    let started = std::time::Instant::now();
    let outcome = inner.store.commit_usage(&batch).await;
    inner.metrics.commit(started.elapsed(), waiting.len());
    let answer = match &outcome {
        Ok(()) => {
            if let Ok(meters) = inner.meters.read() {
                meters.values().for_each(|m| m.renewed(now_ms, until));
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %genai_store::error_chain(e), calls = waiting.len(), "committing usage failed");
            Err(e.to_string())
        }
    };
    for done in waiting {
        let _ = done.send(answer.clone());
    }
    for f in flushes {
        let _ = f.send(());
    }
}
