//! Runtime keys: what applications call a resource's Runtime API with (RUNTIME.md §2, §3).
//!
//! A key is not a user API token: it authenticates Runtime API calls of its one resource and
//! nothing else. Its secret (`gr_<public id>_<secret>`) is never stored; the row holds the public
//! id (which finds it) and the SHA-256 of the whole secret (compared in constant time by the
//! caller). A knowledge base's key comes with a **companion** key on its linked embeddings
//! resource, created in the same transaction and revoked with it.

use crate::{AuditEvent, StoreResult};
use async_trait::async_trait;
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId, UserId};

/// A runtime key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeKey {
    /// Id (`key_…`), shown in lists.
    pub id: String,
    /// The resource it calls.
    pub resource_id: ResourceId,
    /// The public part of the secret, unique: finds the row.
    pub public_id: String,
    /// Hex SHA-256 of the whole secret.
    pub secret_hash: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: Instant,
    /// Who created it.
    pub created_by: UserId,
    /// When it last authenticated a call (may lag by up to a minute).
    pub last_used_at: Option<Instant>,
    /// When it was revoked (by a person, with its knowledge-base key, or by deprovisioning).
    pub revoked_at: Option<Instant>,
    /// For a companion key: the knowledge base it was made for (`companion_of` in the API).
    pub companion_of: Option<ResourceId>,
    /// For a companion key: the knowledge-base key it belongs to (revoked together).
    pub parent_key_id: Option<String>,
}

/// The runtime keys port.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores new keys (one, or a knowledge-base key and its companion) with the audit event,
    /// all or nothing. `StoreError::NotFound` when a key's resource is deprovisioned (the
    /// condition is in the statement, so a key cannot be created after deprovisioning won).
    async fn create_keys(&self, keys: &[RuntimeKey], audit: &AuditEvent) -> StoreResult<()>;
    /// A resource's keys, revoked ones included, newest first.
    async fn keys(&self, resource: &ResourceId) -> StoreResult<Vec<RuntimeKey>>;
    /// One key of a resource.
    async fn key(&self, resource: &ResourceId, key_id: &str) -> StoreResult<Option<RuntimeKey>>;
    /// Revokes a key and the companion keys whose parent it is, at `at`, with the audit event.
    /// Answers the ids revoked now (empty: it was revoked already, nothing written).
    async fn revoke_key(
        &self,
        resource: &ResourceId,
        key_id: &str,
        at: Instant,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<String>>;
    /// The key with this public id and its resource (any company): the runtime's lookup, also
    /// for revoked keys and deprovisioned resources (the caller refuses them).
    async fn runtime_key(&self, public_id: &str) -> StoreResult<Option<(RuntimeKey, Resource)>>;
    /// The keys with these public ids and their resources, those that exist, in no particular
    /// order: the runtime's batched refresh of what it caches (revoked keys included).
    async fn runtime_keys(&self, public_ids: &[String]) -> StoreResult<Vec<(RuntimeKey, Resource)>>;
    /// A resource by id, whatever its company (the runtime's refresh of what it caches).
    async fn runtime_resource(&self, id: &ResourceId) -> StoreResult<Option<Resource>>;
}
