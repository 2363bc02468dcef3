//! [`UsageStore`] in SQL: usage counters (`usage_days`, `usage_months`) and quota leases
//! (`quota_leases`). The design is in `docs/runtime.md` ("Metering storage").
//!
//! **Acquiring a lease** is one transaction that first makes sure the month's `usage_months` row
//! exists (`ON CONFLICT DO NOTHING`) and then reads it with the backend's row lock
//! ([`Backend::FOR_UPDATE`]). Every acquisition for that resource and month, from any instance,
//! therefore runs one after the other on PostgreSQL (SQLite's single writer serializes them
//! anyway), and each counts the pool — `quota − used − Σ held of live leases` — as the previous
//! one left it. Usage only grows under the same row's lock (the group commit's `UPDATE`), and
//! the other writes to leases only shrink them or extend a live one, so the count a grant is
//! decided on can only be too small, never too large: `used + Σ held ≤ quota` holds at every
//! commit.
//!
//! **A group commit** is one transaction of upserts that add to the counters
//! (`ON CONFLICT … DO UPDATE SET x = x + excluded.x`). It writes the `usage_months` rows first,
//! in key order, then the days, then the leases, so two instances' commits (and an acquisition,
//! which locks the month row before its lease row) always take their locks in the same order.

use crate::conn::{with_retries, Arg, Attempt, Backend, Conn, RowRead, Transaction};
use crate::{args, millis, SqlStore};
use async_trait::async_trait;
use genai_core::quota::Tokens;
use genai_core::{Instant, ResourceId};
use genai_store::{DayUsage, LeaseOutcome, LeaseRequest, MonthUsage, StoreError, StoreResult, UsageBatch, UsageStore};
use std::collections::BTreeMap;

const ENSURE_MONTH: &str = "INSERT INTO usage_months (resource_id, month_start, input_used, output_used, api_calls) \
     VALUES ($1, $2, 0, 0, 0) ON CONFLICT (resource_id, month_start) DO NOTHING";
/// Completed with the backend's row lock: the lock every acquisition of this month waits on.
const LOCK_MONTH: &str = "SELECT input_used, output_used FROM usage_months WHERE resource_id = $1 AND month_start = $2";
/// PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`: cast back.
const OTHERS_HELD: &str = "SELECT CAST(COALESCE(SUM(input_held), 0) AS BIGINT) AS input_held, \
     CAST(COALESCE(SUM(output_held), 0) AS BIGINT) AS output_held FROM quota_leases \
     WHERE resource_id = $1 AND month_start = $2 AND holder <> $3 AND expires_at > $4";
const OWN_LEASE: &str = "SELECT input_held, output_held, expires_at FROM quota_leases \
     WHERE resource_id = $1 AND month_start = $2 AND holder = $3";
/// Adds the grant to the holder's lease; a lease that has expired counts as empty.
const GRANT_LEASE: &str = "INSERT INTO quota_leases (resource_id, month_start, holder, input_held, output_held, \
     expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (resource_id, month_start, holder) DO UPDATE SET \
     input_held = CASE WHEN quota_leases.expires_at > $7 THEN quota_leases.input_held ELSE 0 END + excluded.input_held, \
     output_held = CASE WHEN quota_leases.expires_at > $7 THEN quota_leases.output_held ELSE 0 END + excluded.output_held, \
     expires_at = excluded.expires_at";

const ADD_MONTH: &str = "INSERT INTO usage_months (resource_id, month_start, input_used, output_used, api_calls) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_id, month_start) DO UPDATE SET \
     input_used = usage_months.input_used + excluded.input_used, \
     output_used = usage_months.output_used + excluded.output_used, \
     api_calls = usage_months.api_calls + excluded.api_calls";
const ADD_DAY: &str = "INSERT INTO usage_days (resource_id, day, input_tokens, output_tokens, api_calls) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_id, day) DO UPDATE SET \
     input_tokens = usage_days.input_tokens + excluded.input_tokens, \
     output_tokens = usage_days.output_tokens + excluded.output_tokens, \
     api_calls = usage_days.api_calls + excluded.api_calls";
/// Never below zero (a `CHECK` guards it too).
const CHANGE_LEASE: &str = "UPDATE quota_leases SET \
     input_held = CASE WHEN input_held + $4 < 0 THEN 0 ELSE input_held + $4 END, \
     output_held = CASE WHEN output_held + $5 < 0 THEN 0 ELSE output_held + $5 END \
     WHERE resource_id = $1 AND month_start = $2 AND holder = $3";
/// Only leases that are still live: an expired one may have been counted as returned already.
const RENEW: &str = "UPDATE quota_leases SET expires_at = $2 WHERE holder = $1 AND expires_at > $3";
const TOUCH_KEY: &str =
    "UPDATE runtime_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

const DAYS: &str = "SELECT day, input_tokens, output_tokens, api_calls FROM usage_days \
     WHERE resource_id = $1 AND day >= $2 AND day <= $3 ORDER BY day";
const PURGE: &str = "DELETE FROM quota_leases WHERE expires_at < $1";

/// How many (resource, month) pairs one `month_usage` statement asks for.
const MONTHS_PER_STATEMENT: usize = 200;

fn tokens(row: &dyn RowRead, input: &'static str, output: &'static str) -> StoreResult<Tokens> {
    Ok(Tokens::new(row.int(input)?, row.int(output)?))
}

fn used(row: &dyn RowRead) -> StoreResult<Tokens> {
    tokens(row, "input_used", "output_used")
}

fn held(row: &dyn RowRead) -> StoreResult<Tokens> {
    tokens(row, "input_held", "output_held")
}

fn own_lease(row: &dyn RowRead) -> StoreResult<(Tokens, i64)> {
    Ok((held(row)?, row.int("expires_at")?))
}

fn month_row(row: &dyn RowRead) -> StoreResult<((String, i64), MonthUsage)> {
    Ok((
        (row.text("resource_id")?, row.int("month_start")?),
        MonthUsage {
            input_tokens: row.int("input_used")?,
            output_tokens: row.int("output_used")?,
            api_calls: row.int("api_calls")?,
        },
    ))
}

fn day_row(row: &dyn RowRead) -> StoreResult<DayUsage> {
    Ok(DayUsage {
        day: row.text("day")?,
        input_tokens: row.int("input_tokens")?,
        output_tokens: row.int("output_tokens")?,
        api_calls: row.int("api_calls")?,
    })
}

/// An amount that does not add up exactly: stored counters near `i64::MAX` (never reached by
/// real traffic; a hand edit or a bug).
fn overflow(what: &str) -> StoreError {
    StoreError::Inconsistent(format!("{what} cannot be computed exactly (beyond i64)"))
}

/// Adds `b` to `a` per counter, or fails as [`overflow`].
fn add(a: (Tokens, i64), b: (Tokens, i64), what: &str) -> StoreResult<(Tokens, i64)> {
    Ok((a.0.checked_add(b.0).ok_or_else(|| overflow(what))?, a.1.checked_add(b.1).ok_or_else(|| overflow(what))?))
}

/// `SELECT … WHERE (resource_id, month_start) IN (VALUES ($1, $2), ($3, $4), …)` for `n` pairs.
/// Only placeholders are generated; every value is bound.
fn months_statement(n: usize) -> String {
    let pairs: Vec<String> = (0..n).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect();
    format!(
        "SELECT resource_id, month_start, input_used, output_used, api_calls FROM usage_months \
         WHERE (resource_id, month_start) IN (VALUES {})",
        pairs.join(", ")
    )
}

impl<B: Backend> SqlStore<B> {
    async fn acquire_once(&self, r: &LeaseRequest) -> Attempt<LeaseOutcome> {
        let (resource, month) = (r.resource_id.as_str(), millis(r.month_start));
        let mut tx = self.backend.begin().await?;
        tx.execute(ENSURE_MONTH, args![resource, month]).await?;
        let lock = format!("{LOCK_MONTH}{}", B::FOR_UPDATE);
        let used = tx.fetch_optional(&lock, args![resource, month], used).await?.unwrap_or_default();
        let others = tx
            .fetch_optional(OTHERS_HELD, args![resource, month, &r.holder, r.now_ms], held)
            .await?
            .unwrap_or_default();
        let own = match tx.fetch_optional(OWN_LEASE, args![resource, month, &r.holder], own_lease).await? {
            Some((held, expires_at)) if expires_at > r.now_ms => held,
            _ => Tokens::ZERO,
        };
        let free = r
            .quota
            .checked_sub(used)
            .and_then(|f| f.checked_sub(others))
            .and_then(|f| f.checked_sub(own))
            .ok_or_else(|| overflow("the free quota"))?
            .max(Tokens::ZERO);
        if !r.need.fits_in(free) {
            // Nothing written: the month row (if just created) goes with the rollback.
            return Ok(LeaseOutcome::Refused { free, held: own });
        }
        let granted = r.want.max(r.need).min(free);
        let after = free.checked_sub(granted).ok_or_else(|| overflow("the free quota"))?;
        let args = args![resource, month, &r.holder, granted.input, granted.output, r.expires_at_ms, r.now_ms,];
        tx.execute(GRANT_LEASE, args).await?;
        tx.commit().await?;
        Ok(LeaseOutcome::Granted { granted, free: after })
    }

    async fn commit_once(&self, batch: &UsageBatch) -> Attempt<()> {
        // Aggregated here too (the writer usually has already): one statement per row, in key
        // order, whatever the batch looks like.
        let mut months: BTreeMap<(&str, i64), (Tokens, i64)> = BTreeMap::new();
        let mut days: BTreeMap<(&str, &str), (Tokens, i64)> = BTreeMap::new();
        for u in &batch.usage {
            let month = months.entry((u.resource_id.as_str(), millis(u.month_start))).or_default();
            *month = add(*month, (u.used, u.api_calls), "a month's usage")?;
            let day = days.entry((u.resource_id.as_str(), u.day.as_str())).or_default();
            *day = add(*day, (u.used, u.api_calls), "a day's usage")?;
        }
        let mut leases: BTreeMap<(&str, i64), Tokens> = BTreeMap::new();
        for l in &batch.leases {
            let lease = leases.entry((l.resource_id.as_str(), millis(l.month_start))).or_default();
            *lease = lease.checked_add(l.held).ok_or_else(|| overflow("a lease change"))?;
        }

        let mut tx = self.backend.begin().await?;
        for ((resource, month), (used, calls)) in &months {
            tx.execute(ADD_MONTH, args![*resource, *month, used.input, used.output, *calls]).await?;
        }
        for ((resource, day), (used, calls)) in &days {
            tx.execute(ADD_DAY, args![*resource, *day, used.input, used.output, *calls]).await?;
        }
        for ((resource, month), delta) in &leases {
            if !delta.is_zero() {
                let args = args![*resource, *month, &batch.holder, delta.input, delta.output];
                tx.execute(CHANGE_LEASE, args).await?;
            }
        }
        if let Some(until) = batch.renew_until_ms {
            tx.execute(RENEW, args![&batch.holder, until, batch.now_ms]).await?;
        }
        for (key, at) in &batch.key_uses {
            tx.execute(TOUCH_KEY, args![key.as_str(), millis(*at)]).await?;
        }
        tx.commit().await
    }
}

#[async_trait]
impl<B: Backend> UsageStore for SqlStore<B> {
    async fn acquire_lease(&self, request: &LeaseRequest) -> StoreResult<LeaseOutcome> {
        with_retries("acquire_lease", || self.acquire_once(request)).await
    }

    async fn commit_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
        with_retries("commit_usage", || self.commit_once(batch)).await
    }

    async fn month_usage(&self, months: &[(ResourceId, Instant)]) -> StoreResult<Vec<MonthUsage>> {
        let mut found: BTreeMap<(String, i64), MonthUsage> = BTreeMap::new();
        for chunk in months.chunks(MONTHS_PER_STATEMENT) {
            let starts: Vec<i64> = chunk.iter().map(|(_, m)| millis(*m)).collect();
            let args: Vec<Arg<'_>> =
                chunk.iter().zip(&starts).flat_map(|((r, _), m)| [Arg::from(r.as_str()), Arg::from(*m)]).collect();
            found.extend(self.read_all(&months_statement(chunk.len()), &args, month_row).await?);
        }
        Ok(months.iter().map(|(r, m)| found.get(&(r.to_string(), millis(*m))).copied().unwrap_or_default()).collect())
    }

    async fn day_usage(&self, resource: &ResourceId, from: &str, to: &str) -> StoreResult<Vec<DayUsage>> {
        self.read_all(DAYS, args![resource.as_str(), from, to], day_row).await
    }

    async fn purge_leases(&self, now_ms: i64) -> StoreResult<u64> {
        self.write_one("purge_leases", PURGE, args![now_ms]).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_statements_bind_every_value() {
        let sql = super::months_statement(2);
        assert!(sql.ends_with("IN (VALUES ($1, $2), ($3, $4))"), "{sql}");
    }
}
