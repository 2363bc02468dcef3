//! The metering engine of the Runtime API (RUNTIME.md §3–5): who is calling, how much of the
//! quota a call may use, and making its usage durable before it is answered. No HTTP here: the
//! gateway handlers (`genai-http`'s `gateway` module) parse and translate with `genai-wire`,
//! call a provider route, and use this crate for everything that is counted.
//!
//! Parts (design and reasons in `docs/runtime.md`, "The metering engine"):
//!
//! - [`keys`]: the key cache. A runtime key is a caller of its own ([`Caller`]); the cache maps
//!   a key's public id to its row and resource, verifies the secret's SHA-256 in constant time,
//!   re-reads what it holds every second (so a revocation or deprovisioning made on another
//!   instance is refused within 2 s), hears this instance's changes at once through
//!   [`genai_app::RuntimeEvents`], and remembers unknown public ids briefly.
//! - [`meter`]: one meter per resource and bundle month. It holds part of the quota in memory,
//!   leased from the database in chunks; a call that its local balance covers reserves without
//!   a database round trip.
//! - [`writer`]: the group-commit writer. Settled calls are queued with a oneshot; one task
//!   writes everything queued in one transaction (usage per day and month, lease changes, lease
//!   renewal, keys' `last_used_at`) and then answers them all.
//! - [`metrics`]: counters and a latency histogram in Prometheus's text format.

pub mod keys;
pub mod meter;
pub mod metrics;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use genai_app::App;
use genai_core::catalog::ResourceType;
use genai_core::quota::{self, QuotaExceeded, Tokens};
use genai_core::resource::{Resource, Scheduled};
use genai_core::{Instant, ResourceId};
use genai_providers::{ModelNotServed, ProviderError, Route, Router};
use genai_store::Store;
use tokio::sync::{mpsc, oneshot};

pub use keys::{Caller, KeyCache};
pub use meter::{Demand, Reservation};
pub use metrics::Metrics;

/// How long a lease lives after its last renewal (wall clock). An instance that dies stops
/// renewing; what it held returns to the pool this long after.
pub const LEASE_MS: i64 = 30_000;
/// How often the background task re-reads cached keys and resources, returns idle balances and
/// renews leases.
pub const TICK: Duration = Duration::from_millis(1000);

/// What a call is refused with, or why it failed. Each has its HTTP status and stable code; the
/// gateway writes it in the caller's wire format.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No key, a malformed, unknown or revoked key, or a deprovisioned resource's key (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The key belongs to another resource (403 `wrong_resource`).
    #[error("this key belongs to another resource; use a key of resource {0}")]
    WrongResource(ResourceId),
    /// The route does not serve this resource's type (400 `wrong_resource_type`).
    #[error("this route serves {expected} resources; the key's resource is a {actual} resource")]
    WrongResourceType {
        /// What the route serves.
        expected: &'static str,
        /// What the key's resource is.
        actual: ResourceType,
    },
    /// The request names another model than the resource's (404 `model_not_found`).
    #[error("model `{asked}` is not served with this key; its resource serves `{served}`")]
    ModelNotFound {
        /// The model asked for.
        asked: String,
        /// The resource's model.
        served: String,
    },
    /// No provider serves the resource's model (503 `model_not_served`).
    #[error(transparent)]
    NotServed(#[from] ModelNotServed),
    /// Over the quota (429 `quota_exceeded`).
    #[error("{exceeded}; the quota refills at {refills_at}")]
    Quota {
        /// What was refused and what remains.
        exceeded: QuotaExceeded,
        /// The bundle month's end, RFC 3339.
        refills_at: String,
        /// Seconds until then (at least 1).
        retry_after_secs: u64,
    },
    /// The upstream failed, timed out, or refused the request.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The database could not be reached to check a key, lease quota or record usage (503
    /// `unavailable`). The cause is logged, never shown.
    #[error("the service cannot reach its database right now; please retry")]
    Unavailable(String),
}

impl RuntimeError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            RuntimeError::Unauthenticated(_) => 401,
            RuntimeError::WrongResource(_) => 403,
            RuntimeError::WrongResourceType { .. } => 400,
            RuntimeError::ModelNotFound { .. } => 404,
            RuntimeError::NotServed(e) => e.status(),
            RuntimeError::Quota { .. } => 429,
            RuntimeError::Provider(e) => e.status(),
            RuntimeError::Unavailable(_) => 503,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::Unauthenticated(_) => "unauthenticated",
            RuntimeError::WrongResource(_) => "wrong_resource",
            RuntimeError::WrongResourceType { .. } => "wrong_resource_type",
            RuntimeError::ModelNotFound { .. } => "model_not_found",
            RuntimeError::NotServed(e) => e.code(),
            RuntimeError::Quota { .. } => "quota_exceeded",
            RuntimeError::Provider(e) => e.code(),
            RuntimeError::Unavailable(_) => "unavailable",
        }
    }

    /// `Retry-After` seconds, for a quota refusal.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RuntimeError::Quota { retry_after_secs, .. } => Some(*retry_after_secs),
            RuntimeError::Unavailable(_) => Some(1),
            _ => None,
        }
    }
}

/// Wall-clock milliseconds since the epoch (lease expiry is on the instances' wall clocks).
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Tuning of the engine (defaults are what `genai serve` runs with; tests shorten them).
#[derive(Debug, Clone)]
pub struct Config {
    /// A lease asks for at least `quota / lease_fraction` per kind (more saves round trips; less
    /// leaves more to other instances).
    pub lease_fraction: i64,
    /// A meter idle this long gives its unreserved balance back to the pool.
    pub idle_return: Duration,
    /// Cached keys not used for this long are dropped from the cache.
    pub key_idle: Duration,
    /// How long an unknown public id is remembered as unknown.
    pub negative_ttl: Duration,
    /// How often `last_used_at` of a key is written at most.
    pub key_touch: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_fraction: 8,
            idle_return: Duration::from_secs(2),
            key_idle: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(1),
            key_touch: Duration::from_secs(60),
        }
    }
}

/// The engine. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) app: Arc<App>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) router: Router,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) meters: RwLock<HashMap<ResourceId, Arc<meter::Meter>>>,
    pub(crate) holder: String,
    pub(crate) config: Config,
    pub(crate) jobs: mpsc::UnboundedSender<writer::Job>,
    pub(crate) metrics: Metrics,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("holder", &self.inner.holder).finish_non_exhaustive()
    }
}

/// The plan in force at `now`: a scheduled downgrade whose instant has passed counts as done even
/// if the scheduler has not written it yet (with the manual clock it never runs by itself).
pub fn quota_in_force(app: &App, r: &Resource, now: Instant) -> Tokens {
    let plan = match r.scheduled {
        Some(Scheduled::Downgrade { plan, effective_at, .. }) if effective_at <= now => plan,
        _ => r.plan,
    };
    app.catalog().plan(r.resource_type, plan).and_then(quota::plan_quota).unwrap_or_default()
}

/// Whether a resource serves calls at `now`: not deprovisioned, and no deprovisioning whose
/// instant has passed.
pub fn serves_at(r: &Resource, now: Instant) -> bool {
    r.deprovisioned_at.is_none()
        && !matches!(r.scheduled, Some(Scheduled::Deprovision { effective_at }) if effective_at <= now)
}

impl Runtime {
    /// Starts the engine: the writer task and the background tick. `keys` is the cache the
    /// application's [`genai_app::RuntimeEvents`] were wired to (see [`KeyCache::new`]): build
    /// it first, give it to `App::with_runtime_events`, then start the runtime with the app.
    /// Needs a Tokio runtime.
    pub fn start(app: Arc<App>, store: Arc<dyn Store>, router: Router, keys: Arc<KeyCache>, config: Config) -> Runtime {
        let (tx, rx) = mpsc::unbounded_channel();
        let random: [u8; 8] = {
            let mut b = [0u8; 8];
            // Only uniqueness matters here; should the OS fail, the time still separates holders.
            if getrandom::fill(&mut b).is_err() {
                b = wall_ms().to_le_bytes();
            }
            b
        };
        let inner = Arc::new(Inner {
            app,
            store,
            router,
            keys,
            meters: RwLock::new(HashMap::new()),
            holder: format!("rt_{}", hex::encode(random)),
            config,
            jobs: tx,
            metrics: Metrics::default(),
        });
        tokio::spawn(writer::run(Arc::downgrade(&inner), rx));
        tokio::spawn(tick(Arc::downgrade(&inner)));
        Runtime { inner }
    }

    /// This instance's lease holder id.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The application (clock, catalog).
    pub fn app(&self) -> &Arc<App> {
        &self.inner.app
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The route of a catalog model.
    pub fn route(&self, model: &str) -> Result<&Route, ModelNotServed> {
        self.inner.router.route(model)
    }

    /// Authenticates a presented secret (the `x-api-key` header or the bearer token).
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Caller, RuntimeError> {
        self.inner.keys.authenticate(&self.inner, presented).await
    }

    /// Reserves what a call may use (RUNTIME.md §5); refused with 429 when it does not fit.
    pub async fn reserve(&self, caller: &Caller, demand: Demand) -> Result<Reservation, RuntimeError> {
        meter::reserve(&self.inner, caller, demand).await
    }

    /// Settles a call with what it used: the usage is committed (group commit) before this
    /// answers. Usage beyond the reservation is recorded anyway.
    pub async fn settle(&self, reservation: Reservation, used: Tokens) -> Result<(), RuntimeError> {
        let rx = meter::settle(&self.inner, reservation, used);
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RuntimeError::Unavailable(e)),
            Err(_) => Err(RuntimeError::Unavailable("the usage writer stopped".into())),
        }
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.jobs.send(writer::Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// At shutdown (after the HTTP server has drained): gives every lease back (held set to 0)
    /// and waits for the commit.
    pub async fn shutdown(&self) {
        let meters: Vec<Arc<meter::Meter>> =
            self.inner.meters.read().map(|m| m.values().cloned().collect()).unwrap_or_default();
        for m in meters {
            m.give_back_all(&self.inner);
        }
        self.flush().await;
    }
}

/// The background tick: refresh cached keys, give idle balances back, renew leases.
async fn tick(inner: std::sync::Weak<Inner>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.keys.refresh(&inner).await;
        meter::housekeeping(&inner);
    }
}
