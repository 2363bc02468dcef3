//! Metering: usage counters and quota leases (RUNTIME.md §5; design in `docs/runtime.md`).
//!
//! The request path never waits on a database round trip of its own. Each instance holds part
//! of a resource's monthly quota in memory, **leased** from the database in chunks
//! ([`UsageStore::acquire_lease`]), and makes usage durable by **group commit**
//! ([`UsageStore::commit_usage`]: everything settled in the last millisecond or so, in one
//! transaction). The invariant, per resource and bundle month, true at every commit:
//!
//! `used + Σ held (leases not expired) ≤ quota`
//!
//! except that usage an upstream reports beyond what was reserved is recorded anyway (usage is
//! never under-counted). A lease that expires (its instance died or lost the database) simply
//! stops counting: what it had used was committed already, moved from `held` to `used` in the
//! same transaction as the usage itself, so what was left of it returns to the pool.

use crate::StoreResult;
use async_trait::async_trait;
pub use genai_core::quota::Tokens;
use genai_core::{Instant, ResourceId};

/// One resource's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayUsage {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Calls settled (refused calls are not counted).
    pub api_calls: i64,
}

/// One resource's usage in one bundle month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthUsage {
    /// Input tokens used.
    pub input_tokens: i64,
    /// Output tokens used.
    pub output_tokens: i64,
    /// Calls settled.
    pub api_calls: i64,
}

/// A lease request: this holder wants more of a resource's quota for one bundle month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The resource.
    pub resource_id: ResourceId,
    /// The bundle month's start (its key).
    pub month_start: Instant,
    /// The instance asking (a random id per process).
    pub holder: String,
    /// The plan's quota in force (output 0 for embeddings).
    pub quota: Tokens,
    /// The least that must be granted, else nothing is (the call's reservation).
    pub need: Tokens,
    /// What the holder would like (≥ need): more saves later round trips.
    pub want: Tokens,
    /// The lease's new expiry (wall clock, milliseconds since the epoch).
    pub expires_at_ms: i64,
    /// Now (wall clock, ms): leases of other holders that expired before it do not count.
    pub now_ms: i64,
}

/// What a lease request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Granted (between `need` and `want`, per kind); `free` is what remains in the pool after it.
    Granted {
        /// Added to this holder's lease.
        granted: Tokens,
        /// Quota still free for any holder after this grant.
        free: Tokens,
    },
    /// Less than `need` is free: nothing was written.
    Refused {
        /// Quota free for any holder (not counting this holder's own lease).
        free: Tokens,
        /// What this holder already holds.
        held: Tokens,
    },
}

/// Usage settled since the last commit, per resource and day (aggregated by the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The resource.
    pub resource_id: ResourceId,
    /// Its bundle month's start at the time of the calls.
    pub month_start: Instant,
    /// The UTC day of the calls, `YYYY-MM-DD`.
    pub day: String,
    /// Tokens used.
    pub used: Tokens,
    /// Calls settled.
    pub api_calls: i64,
}

/// A change of one holder's lease (negative: moved to `used` or given back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseDelta {
    /// The resource.
    pub resource_id: ResourceId,
    /// The bundle month's start.
    pub month_start: Instant,
    /// Amount to add to `held` (usually negative; never below 0 after the change).
    pub held: Tokens,
}

/// One group commit: everything below in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// The instance writing (its leases are the ones changed and renewed).
    pub holder: String,
    /// Usage to add to the per-day and per-month counters.
    pub usage: Vec<UsageDelta>,
    /// Changes of this holder's leases.
    pub leases: Vec<LeaseDelta>,
    /// Renew every lease of this holder that has not expired at `now_ms` to this expiry (wall
    /// clock ms), if set. A lease that has expired stays expired: its unused part may already
    /// have been granted to another holder, so bringing it back could go over the quota; the
    /// holder must acquire again.
    pub renew_until_ms: Option<i64>,
    /// Now (wall clock ms), for the renewal's condition.
    pub now_ms: i64,
    /// Keys used, with the instant (`last_used_at`; a use older than the one recorded is
    /// ignored). The caller writes each key at most once a minute.
    pub key_uses: Vec<(String, Instant)>,
}

/// The metering port.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Leases more quota to a holder, atomically against every other holder (on PostgreSQL the
    /// month's `usage_months` row is locked while the pool is counted). A lease of this holder
    /// that has expired counts as empty (it is replaced, not added to). The grant per kind is
    /// `max(need, min(want, free))`, and nothing when `need` exceeds what is free of any kind.
    async fn acquire_lease(&self, request: &LeaseRequest) -> StoreResult<LeaseOutcome>;
    /// Writes one group commit (usage, lease changes, renewals, key uses), all or nothing.
    /// Usage is added to the counters unconditionally (never under-counted); a lease's `held`
    /// never goes below zero; a lease or key that no longer exists is skipped.
    async fn commit_usage(&self, batch: &UsageBatch) -> StoreResult<()>;
    /// Usage of resources in the given bundle months (missing ones: zero), in the order asked.
    async fn month_usage(&self, months: &[(ResourceId, Instant)]) -> StoreResult<Vec<MonthUsage>>;
    /// A resource's usage per day from `from` to `to` inclusive (`YYYY-MM-DD`), days with
    /// usage only, in date order.
    async fn day_usage(&self, resource: &ResourceId, from: &str, to: &str) -> StoreResult<Vec<DayUsage>>;
    /// Deletes leases that expired before `now_ms` (housekeeping; they no longer count anyway).
    async fn purge_leases(&self, now_ms: i64) -> StoreResult<u64>;
}
