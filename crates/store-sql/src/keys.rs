//! [`KeyStore`] in SQL: runtime keys (`runtime_keys`).
//!
//! Creating keys locks the rows of their resources first ([`Backend::FOR_UPDATE`]) and refuses a
//! deprovisioned one. On PostgreSQL that orders key creation against the deprovisioning that
//! revokes every key of the resource (`resources.rs`): either the key is committed first and the
//! deprovisioning's revocation sees it, or the deprovisioning is committed first and the key is
//! refused. No live key can be left on a deprovisioned resource.

use crate::conn::{with_retries, Arg, Attempt, Backend, Conn, RowRead, Transaction};
use crate::rows::{instant, resource};
use crate::{args, insert_audit, millis, resource_columns, SqlStore};
use async_trait::async_trait;
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId, UserId};
use genai_store::{AuditEvent, KeyStore, RuntimeKey, StoreError, StoreResult};

/// The columns of a key row, as [`key`] reads them.
macro_rules! key_columns {
    () => {
        "k.id AS key_id, k.resource_id AS key_resource_id, k.public_id, k.secret_hash, k.description, \
         k.created_at AS key_created_at, k.created_by, k.last_used_at, k.revoked_at, k.companion_of, k.parent_key_id"
    };
}

const INSERT_KEY: &str = "INSERT INTO runtime_keys (id, resource_id, public_id, secret_hash, description, \
     created_at, created_by, last_used_at, revoked_at, companion_of, parent_key_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9)";
/// Completed with the backend's row lock; `n` is 1 for a live resource, 0 for a deprovisioned one.
const LOCK_RESOURCE: &str =
    "SELECT CAST(CASE WHEN status = 'deprovisioned' THEN 0 ELSE 1 END AS BIGINT) AS n FROM resources WHERE id = $1";
const KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM runtime_keys k WHERE k.resource_id = $1 ORDER BY k.created_at DESC, k.id DESC"
);
const KEY: &str = concat!("SELECT ", key_columns!(), " FROM runtime_keys k WHERE k.resource_id = $1 AND k.id = $2");
/// The key itself (of its resource) and the companions whose parent it is, unless revoked.
const REVOKE: &str = "UPDATE runtime_keys SET revoked_at = $3 WHERE revoked_at IS NULL \
     AND ((id = $1 AND resource_id = $2) OR parent_key_id = $1) RETURNING id";
const RUNTIME_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", ",
    "r.id, r.company_id, r.resource_type, r.display_name, r.name_key, r.environment, r.region, \
     r.cross_region_inference, r.model, r.plan, r.cloud_tokens, r.created_for_name, r.created_for_email, r.status, \
     r.created_at, r.scheduled_kind, r.scheduled_plan, r.scheduled_cloud_tokens, r.scheduled_at, r.pending_release, \
     r.deprovisioned_at, r.embeddings_resource_id, r.version",
    " FROM runtime_keys k JOIN resources r ON r.id = k.resource_id WHERE k.public_id = $1"
);
/// Public ids per statement of the batched lookup.
const KEYS_PER_STATEMENT: usize = 200;

/// [`RUNTIME_KEY`] for `n` public ids at once.
fn runtime_keys_statement(n: usize) -> String {
    let list: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!("{} IN ({})", RUNTIME_KEY.trim_end_matches(" = $1"), list.join(", "))
}

const RUNTIME_RESOURCE: &str = concat!("SELECT ", resource_columns!(), " FROM resources WHERE id = $1");

/// A key from the columns of `key_columns!`.
fn key(row: &dyn RowRead) -> StoreResult<RuntimeKey> {
    Ok(RuntimeKey {
        id: row.text("key_id")?,
        resource_id: ResourceId(row.text("key_resource_id")?),
        public_id: row.text("public_id")?,
        secret_hash: row.text("secret_hash")?,
        description: row.text("description")?,
        created_at: instant(row.int("key_created_at")?)?,
        created_by: UserId(row.text("created_by")?),
        last_used_at: row.opt_int("last_used_at")?.map(instant).transpose()?,
        revoked_at: row.opt_int("revoked_at")?.map(instant).transpose()?,
        companion_of: row.opt_text("companion_of")?.map(ResourceId),
        parent_key_id: row.opt_text("parent_key_id")?,
    })
}

fn key_and_resource(row: &dyn RowRead) -> StoreResult<(RuntimeKey, Resource)> {
    Ok((key(row)?, resource(row)?))
}

fn id(row: &dyn RowRead) -> StoreResult<String> {
    row.text("id")
}

impl<B: Backend> SqlStore<B> {
    async fn create_keys_once(&self, keys: &[RuntimeKey], audit: &AuditEvent) -> Attempt<()> {
        let mut tx = self.backend.begin().await?;
        let lock = format!("{LOCK_RESOURCE}{}", B::FOR_UPDATE);
        // Locked in id order, so two creations that lock the same two resources cannot deadlock.
        let mut resources: Vec<&str> = keys.iter().map(|k| k.resource_id.as_str()).collect();
        resources.sort_unstable();
        resources.dedup();
        for r in resources {
            if tx.fetch_optional(&lock, args![r], crate::rows::count).await? != Some(1) {
                return Err(StoreError::NotFound.into());
            }
        }
        for k in keys {
            let args = args![
                &k.id,
                k.resource_id.as_str(),
                &k.public_id,
                &k.secret_hash,
                &k.description,
                millis(k.created_at),
                k.created_by.as_str(),
                k.companion_of.as_ref().map(|c| c.as_str()),
                k.parent_key_id.as_deref(),
            ];
            tx.execute(INSERT_KEY, args).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn revoke_key_once(
        &self,
        resource: &ResourceId,
        key_id: &str,
        at: Instant,
        audit: &AuditEvent,
    ) -> Attempt<Vec<String>> {
        let mut tx = self.backend.begin().await?;
        if tx.fetch_optional(KEY, args![resource.as_str(), key_id], key).await?.is_none() {
            return Err(StoreError::NotFound.into());
        }
        let mut revoked = tx.fetch(REVOKE, args![key_id, resource.as_str(), millis(at)], id).await?;
        if revoked.is_empty() {
            return Ok(revoked);
        }
        revoked.sort();
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(revoked)
    }
}

#[async_trait]
impl<B: Backend> KeyStore for SqlStore<B> {
    async fn create_keys(&self, keys: &[RuntimeKey], audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_keys", || self.create_keys_once(keys, audit)).await
    }

    async fn keys(&self, resource: &ResourceId) -> StoreResult<Vec<RuntimeKey>> {
        self.read_all(KEYS, args![resource.as_str()], key).await
    }

    async fn key(&self, resource: &ResourceId, key_id: &str) -> StoreResult<Option<RuntimeKey>> {
        self.read_one(KEY, args![resource.as_str(), key_id], key).await
    }

    async fn revoke_key(
        &self,
        resource: &ResourceId,
        key_id: &str,
        at: Instant,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<String>> {
        with_retries("revoke_key", || self.revoke_key_once(resource, key_id, at, audit)).await
    }

    async fn runtime_key(&self, public_id: &str) -> StoreResult<Option<(RuntimeKey, Resource)>> {
        self.read_one(RUNTIME_KEY, args![public_id], key_and_resource).await
    }

    async fn runtime_keys(&self, public_ids: &[String]) -> StoreResult<Vec<(RuntimeKey, Resource)>> {
        let mut found = Vec::with_capacity(public_ids.len());
        for chunk in public_ids.chunks(KEYS_PER_STATEMENT) {
            let args: Vec<Arg<'_>> = chunk.iter().map(|p| Arg::from(p.as_str())).collect();
            found.extend(self.read_all(&runtime_keys_statement(chunk.len()), &args, key_and_resource).await?);
        }
        Ok(found)
    }

    async fn runtime_resource(&self, id: &ResourceId) -> StoreResult<Option<Resource>> {
        self.read_one(RUNTIME_RESOURCE, args![id.as_str()], resource).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_batched_lookup_binds_every_id() {
        let sql = super::runtime_keys_statement(3);
        assert!(sql.ends_with("WHERE k.public_id IN ($1, $2, $3)"), "{sql}");
    }
}
