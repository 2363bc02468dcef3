//! Meters: one per resource and bundle month, holding part of the quota in memory.
//!
//! The database's invariant (`genai-store::usage`): `used + Σ held ≤ quota`. A meter's
//! **local** balance is what this instance holds by lease and has not reserved; reservations
//! in flight hold the rest of the lease. So:
//!
//! - [`reserve`]: if the local balance covers the call, subtract it (no database). Otherwise,
//!   one call at a time per meter (single flight), lease `need = what is missing` with
//!   `want = max(need, quota / lease_fraction)`; refused → 429 naming the quota, what remains
//!   (free in the pool plus the local balance) and the refill instant.
//! - [`settle`]: the unused part of the reservation returns to the local balance; the usage and
//!   the lease change (`held −= used`) go to the writer in one job, committed together.
//! - A [`Reservation`] dropped without settling (the client went away, the upstream failed)
//!   gives everything back: nothing is charged.
//! - [`housekeeping`] (every tick): a meter idle for `idle_return` gives its local balance back
//!   to the pool, so other instances can lease it; meters of past months are dropped.
//! - A lease about to expire (not renewed: the database was unreachable) is treated as gone:
//!   the local balance is dropped and leased again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use genai_core::calendar::format_instant;
use genai_core::quota::{self, Tokens};
use genai_core::{Instant, ResourceId};
use genai_store::{LeaseOutcome, LeaseRequest};
use tokio::sync::oneshot;

use crate::writer::Job;
use crate::{quota_in_force, wall_ms, Caller, Inner, RuntimeError, LEASE_MS};

/// A lease this close to its expiry is not used any more (it may expire before the call ends).
const EXPIRY_MARGIN_MS: i64 = 5_000;

/// What a call needs, before it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Upper bound of the prompt's tokens.
    pub input: i64,
    /// The client's explicit output limit, all choices together (`max_tokens × n`), if any.
    pub max_output: Option<i64>,
    /// Whether the call produces output (false: embeddings).
    pub produces_output: bool,
}

#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) resource_id: ResourceId,
    pub(crate) month_start: Instant,
    month_end: Instant,
    state: Mutex<State>,
    flight: tokio::sync::Mutex<()>,
    /// The quota the local balance was leased under.
    quota_input: AtomicI64,
    quota_output: AtomicI64,
}

#[derive(Debug, Default)]
struct State {
    local: Tokens,
    in_flight: i64,
    /// Free in the pool (any holder) at the last lease: the estimate of what remains besides
    /// the local balance, for the default output reservation.
    free_hint: Option<Tokens>,
    lease_expires_ms: i64,
    last_activity_ms: i64,
}

/// What a call holds of the quota until it settles. Dropped without [`settle`]: given back.
#[derive(Debug)]
pub struct Reservation {
    meter: Arc<Meter>,
    amount: Tokens,
    caller: Caller,
    day: String,
    done: bool,
}

impl Reservation {
    /// What is reserved (input bound, output reservation).
    pub fn amount(&self) -> Tokens {
        self.amount
    }

    /// The output reserved per choice, for a request that named no limit: what the upstream is
    /// told as `max_tokens`, so that it cannot go beyond the reservation.
    pub fn output_per_choice(&self, choices: i64) -> i64 {
        (self.amount.output / choices.max(1)).max(1)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            if let Ok(mut st) = self.meter.state.lock() {
                st.local = st.local.checked_add(self.amount).unwrap_or(st.local);
                st.in_flight -= 1;
                st.last_activity_ms = wall_ms();
            }
        }
    }
}

impl Meter {
    fn new(resource_id: ResourceId, month_start: Instant, month_end: Instant, quota: Tokens) -> Meter {
        Meter {
            resource_id,
            month_start,
            month_end,
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
            quota_input: AtomicI64::new(quota.input),
            quota_output: AtomicI64::new(quota.output),
        }
    }

    fn quota(&self) -> Tokens {
        Tokens::new(self.quota_input.load(Ordering::Relaxed), self.quota_output.load(Ordering::Relaxed))
    }

    /// Gives the local balance back to the pool (a lease change with no usage).
    fn give_back(&self, inner: &Inner, st: &mut State) {
        if !st.local.is_zero() {
            let delta = Tokens::new(-st.local.input, -st.local.output);
            st.local = Tokens::ZERO;
            let _ = inner.jobs.send(Job::Lease {
                resource_id: self.resource_id.clone(),
                month_start: self.month_start,
                delta,
            });
        }
    }

    /// At shutdown: the whole lease back (held set to 0; the store never goes below 0).
    pub(crate) fn give_back_all(&self, inner: &Inner) {
        if let Ok(mut st) = self.state.lock() {
            st.local = Tokens::ZERO;
            st.lease_expires_ms = 0;
        }
        let all = Tokens::new(-(i64::MAX / 4), -(i64::MAX / 4));
        let _ = inner.jobs.send(Job::Lease {
            resource_id: self.resource_id.clone(),
            month_start: self.month_start,
            delta: all,
        });
    }

    /// After a commit that renewed this holder's leases until `until_ms` (those still live).
    pub(crate) fn renewed(&self, now_ms: i64, until_ms: i64) {
        if let Ok(mut st) = self.state.lock() {
            if st.lease_expires_ms > now_ms {
                st.lease_expires_ms = until_ms;
            }
        }
    }

    pub(crate) fn holds_lease(&self) -> bool {
        self.state.lock().is_ok_and(|st| !st.local.is_zero() || st.in_flight > 0)
    }
}

impl Inner {
    /// The meter of a resource's current bundle month (a new month replaces the old meter,
    /// whose balance goes back).
    fn meter(&self, caller: &Caller, now: Instant) -> Result<Arc<Meter>, RuntimeError> {
        let resource = caller.resource();
        let month = resource
            .bundle_month(now)
            .ok_or_else(|| RuntimeError::Unavailable(format!("no bundle month for {}", resource.id)))?;
        if let Some(m) = self.meters.read().ok().and_then(|m| m.get(&resource.id).cloned()) {
            if m.month_start == month.start {
                return Ok(m);
            }
        }
        let mut map = self.meters.write().map_err(|_| RuntimeError::Unavailable("meter map poisoned".into()))?;
        if let Some(m) = map.get(&resource.id) {
            if m.month_start == month.start {
                return Ok(Arc::clone(m));
            }
            if let Ok(mut st) = m.state.lock() {
                m.give_back(self, &mut st);
            }
        }
        let quota = quota_in_force(&self.app, resource, now);
        let m = Arc::new(Meter::new(resource.id.clone(), month.start, month.end, quota));
        map.insert(resource.id.clone(), Arc::clone(&m));
        Ok(m)
    }

    /// After a refresh of `resource`: a quota that changed (plan change) makes the meter give
    /// its local balance back, so the next lease is taken under the new quota.
    pub(crate) fn meter_quota_check(&self, resource: &genai_core::resource::Resource) {
        let Some(m) = self.meters.read().ok().and_then(|m| m.get(&resource.id).cloned()) else { return };
        let quota = quota_in_force(&self.app, resource, self.app.now());
        if quota != m.quota() {
            m.quota_input.store(quota.input, Ordering::Relaxed);
            m.quota_output.store(quota.output, Ordering::Relaxed);
            if let Ok(mut st) = m.state.lock() {
                m.give_back(self, &mut st);
                st.free_hint = None;
            }
        }
    }
}

fn refused(inner: &Inner, meter: &Meter, e: quota::QuotaExceeded) -> RuntimeError {
    inner.metrics.quota_refused();
    let now = inner.app.now();
    let secs = (meter.month_end - now).num_seconds().max(1);
    RuntimeError::Quota {
        exceeded: e,
        refills_at: format_instant(meter.month_end),
        retry_after_secs: u64::try_from(secs).unwrap_or(1),
    }
}

/// See the module documentation.
pub(crate) async fn reserve(inner: &Inner, caller: &Caller, demand: Demand) -> Result<Reservation, RuntimeError> {
    let now = inner.app.now();
    let meter = inner.meter(caller, now)?;
    // The quota follows the cached resource (refreshed every tick, at once on this instance's
    // own changes).
    let quota = quota_in_force(&inner.app, caller.resource(), now);
    if quota != meter.quota() {
        inner.meter_quota_check(caller.resource());
    }
    let day = quota::format_day(quota::day_of(now));
    let take = |st: &mut State, want: Tokens| -> bool {
        if want.fits_in(st.local) {
            st.local = st.local.checked_sub(want).unwrap_or(Tokens::ZERO);
            st.in_flight += 1;
            st.last_activity_ms = wall_ms();
            true
        } else {
            false
        }
    };
    let make = |amount| Reservation {
        meter: Arc::clone(&meter),
        amount,
        caller: caller.clone(),
        day: day.clone(),
        done: false,
    };
    // What the call asks for, given an estimate of what remains.
    let wanted =
        |remaining: Tokens| quota::reserve(quota, remaining, demand.input, demand.max_output, demand.produces_output);
    let estimate = |st: &mut State| {
        if wall_ms() >= st.lease_expires_ms - EXPIRY_MARGIN_MS {
            st.local = Tokens::ZERO;
        }
        st.local.checked_add(st.free_hint.unwrap_or(quota)).unwrap_or(quota)
    };

    // Fast path: the local balance covers it.
    {
        let mut st = meter.state.lock().map_err(|_| RuntimeError::Unavailable("meter poisoned".into()))?;
        let remaining = estimate(&mut st);
        if let Ok(want) = wanted(remaining) {
            // A default output reservation cut down by the estimate of what remains may rest on
            // a stale view of the pool (another instance may have given its balance back):
            // such a call asks the database instead of being capped for nothing.
            let capped = demand.produces_output
                && demand.max_output.is_none()
                && want.output < quota::DEFAULT_OUTPUT_RESERVATION.min(quota.output);
            if !capped && take(&mut st, want) {
                return Ok(make(want));
            }
        }
    }

    // Slow path: lease more, one call at a time per meter.
    let _flight = meter.flight.lock().await;
    for attempt in 0..4 {
        let (want, need) = {
            let mut st = meter.state.lock().map_err(|_| RuntimeError::Unavailable("meter poisoned".into()))?;
            let estimated = estimate(&mut st);
            // First ask as if the whole pool were free (the database has the truth); after a
            // refusal, with what it said is free.
            let remaining = if attempt == 0 { st.local.checked_add(quota).unwrap_or(quota) } else { estimated };
            let want = match wanted(remaining) {
                Ok(w) => w,
                // Even the optimistic estimate is short: ask the database what is free.
                Err(short) => match wanted(quota) {
                    Ok(w) => w,
                    // More than the whole quota: refused without asking. What remains is told
                    // from this instance's view, never more than the quota itself.
                    Err(_) => {
                        let view = Tokens::new(estimated.input.min(quota.input), estimated.output.min(quota.output));
                        return Err(refused(inner, &meter, wanted(view).err().unwrap_or(short)));
                    }
                },
            };
            if take(&mut st, want) {
                return Ok(make(want));
            }
            (want, want.checked_sub(st.local).unwrap_or(want).max(Tokens::ZERO))
        };
        let fraction = inner.config.lease_fraction.max(1);
        let chunk = Tokens::new(quota.input / fraction, quota.output / fraction);
        let now_ms = wall_ms();
        let request = LeaseRequest {
            resource_id: meter.resource_id.clone(),
            month_start: meter.month_start,
            holder: inner.holder.clone(),
            quota,
            need,
            want: need.max(chunk),
            expires_at_ms: now_ms + LEASE_MS,
            now_ms,
        };
        inner.metrics.lease_acquired();
        let outcome = inner.store.acquire_lease(&request).await.map_err(|e| {
            tracing::warn!(error = %genai_store::error_chain(&e), "leasing quota failed");
            RuntimeError::Unavailable(e.to_string())
        })?;
        let mut st = meter.state.lock().map_err(|_| RuntimeError::Unavailable("meter poisoned".into()))?;
        match outcome {
            LeaseOutcome::Granted { granted, free } => {
                if st.lease_expires_ms <= now_ms {
                    // The database replaced an expired lease of ours: nothing else is held.
                    st.local = Tokens::ZERO;
                }
                st.local = st.local.checked_add(granted).unwrap_or(st.local);
                st.lease_expires_ms = now_ms + LEASE_MS;
                st.free_hint = Some(free);
                if take(&mut st, want) {
                    return Ok(make(want));
                }
            }
            LeaseOutcome::Refused { free, .. } => {
                st.free_hint = Some(free);
                if st.lease_expires_ms <= now_ms {
                    st.local = Tokens::ZERO;
                }
                let remaining = st.local.checked_add(free).unwrap_or(free);
                // Refused unless a smaller default output reservation now fits; then try again.
                let smaller = wanted(remaining).map_err(|e| refused(inner, &meter, e))?;
                if take(&mut st, smaller) {
                    return Ok(make(smaller));
                }
            }
        }
    }
    Err(RuntimeError::Unavailable("the quota is contended; please retry".into()))
}

/// Settles a reservation: returns the receiver of the commit's outcome.
pub(crate) fn settle(inner: &Inner, mut r: Reservation, used: Tokens) -> oneshot::Receiver<Result<(), String>> {
    r.done = true;
    let used = used.max(Tokens::ZERO);
    let now_ms = wall_ms();
    if let Ok(mut st) = r.meter.state.lock() {
        // The unused part comes back; usage beyond the reservation is taken from the balance
        // as far as it goes (beyond that it is recorded anyway: never under-counted).
        let back = r.amount.checked_sub(used).unwrap_or(Tokens::ZERO);
        st.local = st.local.checked_add(back).unwrap_or(st.local).max(Tokens::ZERO);
        st.in_flight -= 1;
        st.last_activity_ms = now_ms;
    }
    let every = i64::try_from(inner.config.key_touch.as_millis()).unwrap_or(60_000);
    let key_use = r.caller.touch_due(now_ms, every).then(|| (r.caller.key_id().to_owned(), inner.app.now()));
    let (tx, rx) = oneshot::channel();
    let job = Job::Usage {
        resource_id: r.meter.resource_id.clone(),
        month_start: r.meter.month_start,
        day: std::mem::take(&mut r.day),
        used,
        key_use,
        done: tx,
    };
    if let Err(e) = inner.jobs.send(job) {
        if let Job::Usage { done, .. } = e.0 {
            let _ = done.send(Err("the usage writer stopped".into()));
        }
    }
    rx
}

/// Every tick: idle meters give their balance back; meters of ended months go.
pub(crate) fn housekeeping(inner: &Inner) {
    let now_ms = wall_ms();
    let idle = i64::try_from(inner.config.idle_return.as_millis()).unwrap_or(2000);
    let now = inner.app.now();
    let Ok(mut map) = inner.meters.write() else { return };
    if map.values().any(|m| m.holds_lease()) {
        // Keeps the leases alive while the meters are quiet (commits renew them too).
        let _ = inner.jobs.send(Job::Renew);
    }
    map.retain(|_, m| {
        let Ok(mut st) = m.state.lock() else { return true };
        if st.in_flight == 0 && now_ms - st.last_activity_ms >= idle {
            m.give_back(inner, &mut st);
        }
        // A meter of an ended month with nothing in flight is done.
        !(st.in_flight == 0 && st.local.is_zero() && m.month_end <= now)
    });
}
