//! The key cache: public id → (key, resource), so that authenticating a call costs a hash and
//! a map lookup, not a database round trip.
//!
//! - A presented secret must have the key format (`gr_<public id>_<secret>`); its SHA-256 is
//!   compared with the stored one in constant time.
//! - A public id not cached is read from the database once; an unknown one is remembered as
//!   unknown for [`Config::negative_ttl`](crate::Config) (at most [`NEGATIVE_MAX`] of them), so
//!   garbage keys do not cost a query each.
//! - Every tick (1 s) the entries used in the last [`Config::key_idle`](crate::Config) are
//!   re-read from the database in one batched read (`KeyStore::runtime_keys`), so a
//!   revocation, plan change or deprovisioning made on another instance is seen within about
//!   2 s; entries idle longer are dropped.
//! - This instance's changes arrive at once through [`RuntimeEvents`]: a revoked key is refused
//!   from that moment, a changed resource is re-read by the next call that uses it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use genai_app::RuntimeEvents;
use genai_core::keys::KeySecret;
use genai_core::resource::Resource;
use genai_core::ResourceId;
use genai_store::RuntimeKey;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{serves_at, wall_ms, Inner, RuntimeError};

/// At most this many unknown public ids are remembered.
pub const NEGATIVE_MAX: usize = 10_000;

/// A cached key with its resource.
#[derive(Debug)]
pub struct KeyEntry {
    key_id: String,
    public_id: String,
    hash: [u8; 32],
    resource: Arc<Resource>,
    revoked: AtomicBool,
    /// An event said the resource changed: re-read before the next use.
    stale: AtomicBool,
    /// Last use (wall ms), for eviction.
    last_used_ms: AtomicI64,
    /// Last `last_used_at` written (wall ms), shared by the entry's successors.
    touched_ms: Arc<AtomicI64>,
}

impl KeyEntry {
    fn new(key: RuntimeKey, resource: Resource, touched_ms: Arc<AtomicI64>) -> Option<KeyEntry> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&key.secret_hash, &mut hash).ok()?;
        Some(KeyEntry {
            revoked: AtomicBool::new(key.revoked_at.is_some()),
            key_id: key.id,
            public_id: key.public_id,
            hash,
            resource: Arc::new(resource),
            stale: AtomicBool::new(false),
            last_used_ms: AtomicI64::new(wall_ms()),
            touched_ms,
        })
    }
}

/// An authenticated runtime key: a caller of its own, accepted by no Control Center use case.
#[derive(Debug, Clone)]
pub struct Caller {
    entry: Arc<KeyEntry>,
}

impl Caller {
    /// A caller for calls the server makes itself on behalf of `resource` (a knowledge base
    /// embedding its uploads through its linked embeddings resource): metered like any other
    /// call of that resource, through no key (no `last_used_at` is written). The caller must
    /// have checked that the resource may be used.
    pub fn internal(resource: Resource) -> Caller {
        let entry = KeyEntry {
            key_id: String::new(),
            public_id: String::new(),
            hash: [0; 32],
            resource: Arc::new(resource),
            revoked: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            last_used_ms: AtomicI64::new(0),
            touched_ms: Arc::new(AtomicI64::new(i64::MAX)),
        };
        Caller { entry: Arc::new(entry) }
    }

    /// The key's id (`key_…`; empty for [`Caller::internal`]).
    pub fn key_id(&self) -> &str {
        &self.entry.key_id
    }

    /// The key's resource, as cached.
    pub fn resource(&self) -> &Resource {
        &self.entry.resource
    }

    /// Whether `last_used_at` is due to be written (at most once per `every_ms`); marks it
    /// written when it is.
    pub(crate) fn touch_due(&self, now_ms: i64, every_ms: i64) -> bool {
        let last = self.entry.touched_ms.load(Ordering::Relaxed);
        !self.entry.key_id.is_empty()
            && now_ms.saturating_sub(last) >= every_ms
            && self.entry.touched_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// The cache. It is also the [`RuntimeEvents`] listener of this instance's application.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, Arc<KeyEntry>>>,
    unknown: Mutex<HashMap<String, i64>>,
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl KeyCache {
    /// An empty cache, to hand to `App::with_runtime_events` before the runtime starts.
    pub fn new() -> Arc<KeyCache> {
        Arc::new(KeyCache::default())
    }

    fn cached(&self, public_id: &str) -> Option<Arc<KeyEntry>> {
        self.entries.read().ok()?.get(public_id).cloned()
    }

    /// Reads a key from the database into the cache; `None` when unknown.
    async fn load(&self, inner: &Inner, public_id: &str) -> Result<Option<Arc<KeyEntry>>, RuntimeError> {
        let found = inner.store.runtime_key(public_id).await.map_err(|e| {
            tracing::warn!(error = %genai_store::error_chain(&e), "reading a runtime key failed");
            RuntimeError::Unavailable(e.to_string())
        })?;
        let previous = self.cached(public_id);
        let touched = previous.as_ref().map_or_else(|| Arc::new(AtomicI64::new(0)), |p| Arc::clone(&p.touched_ms));
        // A revocation is final: one heard through an event while this read was under way
        // (the read may predate the revoking commit) must not be undone by it.
        let was_revoked = previous.is_some_and(|p| p.revoked.load(Ordering::Acquire));
        let Some(entry) = found.and_then(|(key, resource)| KeyEntry::new(key, resource, touched)) else {
            if let Ok(mut map) = self.entries.write() {
                map.remove(public_id);
            }
            return Ok(None);
        };
        if was_revoked {
            entry.revoked.store(true, Ordering::Release);
        }
        let entry = Arc::new(entry);
        if let Ok(mut map) = self.entries.write() {
            map.insert(public_id.to_owned(), Arc::clone(&entry));
        }
        Ok(Some(entry))
    }

    fn known_unknown(&self, public_id: &str, now_ms: i64) -> bool {
        self.unknown.lock().is_ok_and(|m| m.get(public_id).is_some_and(|&until| until > now_ms))
    }

    fn remember_unknown(&self, public_id: &str, until_ms: i64, now_ms: i64) {
        if let Ok(mut m) = self.unknown.lock() {
            if m.len() >= NEGATIVE_MAX {
                m.retain(|_, &mut until| until > now_ms);
                if m.len() >= NEGATIVE_MAX {
                    // Still full of live entries: forget them all rather than grow.
                    m.clear();
                }
            }
            m.insert(public_id.to_owned(), until_ms);
        }
    }

    pub(crate) async fn authenticate(&self, inner: &Inner, presented: Option<&str>) -> Result<Caller, RuntimeError> {
        const MISSING: &str = "missing or unknown runtime key: send the key's secret (gr_…) as the x-api-key header \
                               or as Authorization: Bearer";
        let presented =
            presented.map(str::trim).filter(|s| !s.is_empty()).ok_or(RuntimeError::Unauthenticated(MISSING))?;
        let secret = KeySecret::parse(presented).ok_or(RuntimeError::Unauthenticated(MISSING))?;
        let public_id = secret.public_id();
        let now_ms = wall_ms();
        let mut entry = match self.cached(public_id) {
            Some(e) => e,
            None => {
                if self.known_unknown(public_id, now_ms) {
                    return Err(RuntimeError::Unauthenticated(MISSING));
                }
                match self.load(inner, public_id).await? {
                    Some(e) => e,
                    None => {
                        let ttl = i64::try_from(inner.config.negative_ttl.as_millis()).unwrap_or(1000);
                        self.remember_unknown(public_id, now_ms + ttl, now_ms);
                        return Err(RuntimeError::Unauthenticated(MISSING));
                    }
                }
            }
        };
        if !bool::from(sha256(secret.expose()).ct_eq(&entry.hash)) {
            return Err(RuntimeError::Unauthenticated(MISSING));
        }
        if entry.stale.load(Ordering::Acquire) {
            entry = self.load(inner, public_id).await?.ok_or(RuntimeError::Unauthenticated(MISSING))?;
        }
        if entry.revoked.load(Ordering::Acquire) {
            return Err(RuntimeError::Unauthenticated("this runtime key was revoked"));
        }
        if !serves_at(&entry.resource, inner.app.now()) {
            return Err(RuntimeError::Unauthenticated("this key's resource is deprovisioned"));
        }
        entry.last_used_ms.store(now_ms, Ordering::Relaxed);
        Ok(Caller { entry })
    }

    /// Re-reads the entries used recently (their keys and resources, one batched read) and
    /// drops the others.
    pub(crate) async fn refresh(&self, inner: &Inner) {
        let now_ms = wall_ms();
        let idle = i64::try_from(inner.config.key_idle.as_millis()).unwrap_or(i64::MAX);
        let recent: Vec<String> = match self.entries.write() {
            Ok(mut map) => {
                map.retain(|_, e| now_ms - e.last_used_ms.load(Ordering::Relaxed) < idle);
                map.keys().cloned().collect()
            }
            Err(_) => return,
        };
        if !recent.is_empty() {
            let found = match inner.store.runtime_keys(&recent).await {
                Ok(found) => found,
                // The database is unreachable: keep serving from the cache (the leases bound
                // what can be used meanwhile) and try again next tick.
                Err(e) => {
                    tracing::warn!(error = %genai_store::error_chain(&e), "refreshing runtime keys failed");
                    return;
                }
            };
            let mut fresh: HashMap<String, (RuntimeKey, Resource)> =
                found.into_iter().map(|(k, r)| (k.public_id.clone(), (k, r))).collect();
            let mut changed = Vec::new();
            if let Ok(mut map) = self.entries.write() {
                for public_id in &recent {
                    let Some(old) = map.get(public_id).cloned() else { continue };
                    match fresh.remove(public_id) {
                        // Deleted (never happens today): forget it.
                        None => {
                            map.remove(public_id);
                        }
                        Some((key, resource)) => {
                            let Some(entry) = KeyEntry::new(key, resource, Arc::clone(&old.touched_ms)) else {
                                continue;
                            };
                            // A refresh is not a use; a revocation heard meanwhile is final.
                            entry.last_used_ms.store(old.last_used_ms.load(Ordering::Relaxed), Ordering::Relaxed);
                            if old.revoked.load(Ordering::Acquire) {
                                entry.revoked.store(true, Ordering::Release);
                            }
                            // This read may predate the change an event announced: the next
                            // call still re-reads.
                            if old.stale.load(Ordering::Acquire) {
                                entry.stale.store(true, Ordering::Release);
                            }
                            let entry = Arc::new(entry);
                            changed.push(Arc::clone(&entry));
                            map.insert(public_id.clone(), entry);
                        }
                    }
                }
            }
            for e in changed {
                inner.meter_quota_check(&e.resource);
            }
        }
        if let Ok(mut m) = self.unknown.lock() {
            m.retain(|_, &mut until| until > now_ms);
        }
    }

    fn each_of_resource(&self, resource: &ResourceId, f: impl Fn(&KeyEntry)) {
        if let Ok(map) = self.entries.read() {
            map.values().filter(|e| &e.resource.id == resource).for_each(|e| f(e));
        }
    }
}

impl RuntimeEvents for KeyCache {
    fn keys_revoked(&self, _resource: &ResourceId, key_ids: &[String]) {
        if let Ok(map) = self.entries.read() {
            for e in map.values().filter(|e| key_ids.contains(&e.key_id)) {
                e.revoked.store(true, Ordering::Release);
            }
        }
    }

    fn resource_changed(&self, resource: &ResourceId) {
        self.each_of_resource(resource, |e| e.stale.store(true, Ordering::Release));
    }

    fn resource_deprovisioned(&self, resource: &ResourceId) {
        // Its keys were revoked in the same transaction.
        self.each_of_resource(resource, |e| {
            e.revoked.store(true, Ordering::Release);
            e.stale.store(true, Ordering::Release);
        });
    }
}

impl KeyEntry {
    /// The public id (for logs; never the secret).
    pub fn public_id(&self) -> &str {
        &self.public_id
    }
}
