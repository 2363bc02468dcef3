//! Resources and the cloud-token ledger they draw on: one port, because every resource write
//! that moves tokens must write the resource, the company's counters and the ledger row in one
//! transaction.

use crate::{AuditEvent, HistoryPage, NewMember, StoreError, StoreResult};
use async_trait::async_trait;
use genai_core::ledger::{Balance, TransactionKind};
use genai_core::resource::{Change, Resource};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId};

/// One ledger transaction (double entry: `tokens` move from `debit_account` to `credit_account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTransaction {
    /// Id.
    pub id: String,
    /// Company.
    pub company_id: CompanyId,
    /// When it happened (for releases: the effective instant of the scheduled change).
    pub at: Instant,
    /// Grant, allocate or release.
    pub kind: TransactionKind,
    /// Tokens moved (positive).
    pub tokens: CloudTokens,
    /// Where the tokens come from.
    pub debit_account: String,
    /// Where they go.
    pub credit_account: String,
    /// The resource, for allocations and releases.
    pub resource_id: Option<ResourceId>,
    /// The company's available tokens right after this transaction.
    pub available_after: CloudTokens,
    /// Free text (grants).
    pub note: Option<String>,
}

/// An idempotency key as recorded: unique per `scope` (the caller) and `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is (a user id, or `operator`).
    pub scope: String,
    /// The client's `Idempotency-Key` header.
    pub key: String,
    /// A hash of the request it was first used with.
    pub fingerprint: String,
}

/// What a write protected by an idempotency key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// The write happened now.
    Done(T),
    /// The key was seen before with the same request: this is the id of the first result.
    Replayed(String),
}

/// A token grant to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Transaction id.
    pub transaction_id: String,
    /// Company.
    pub company_id: CompanyId,
    /// Tokens (positive).
    pub tokens: CloudTokens,
    /// Note.
    pub note: Option<String>,
    /// When.
    pub at: Instant,
}

/// Another resource a write depends on: its version must be unchanged, and it is bumped, so
/// that two decisions that each read the other resource cannot both be written (e.g. a
/// knowledge base linked to an embeddings resource while that one is being deprovisioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The resource.
    pub resource_id: ResourceId,
    /// The version it was read at.
    pub version: i64,
}

/// A new resource to write with its allocation.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// The resource (version 0).
    pub resource: Resource,
    /// The allocate transaction's id.
    pub transaction_id: String,
    /// The first member of the resource's team, the person it is created for: an existing user
    /// of the company, or a new one (role `member`) created in the same transaction
    /// (`Duplicate("email")` when that email was registered meanwhile); `None` when the email
    /// belongs to another company's user (the team then starts empty).
    pub member: Option<NewMember>,
    /// The audit event.
    pub audit: AuditEvent,
}

/// A resource change to write.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    /// The decision, computed from the resource at `change.next.version`.
    pub change: Change,
    /// The ledger transaction's id (used when the change moves tokens).
    pub transaction_id: String,
    /// A linked resource that must not have changed.
    pub guard: Option<Guard>,
    /// The audit event.
    pub audit: AuditEvent,
}

/// Which resources to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceQuery {
    /// Company.
    pub company_id: CompanyId,
    /// Only this type.
    pub resource_type: Option<genai_core::catalog::ResourceType>,
    /// Include deprovisioned ones.
    pub include_deprovisioned: bool,
    /// Only ids greater than this (pagination cursor).
    pub after_id: Option<ResourceId>,
    /// At most this many.
    pub limit: Option<i64>,
}

/// Turns a due resource into the write that applies its scheduled change (`None`: not due).
pub type DecideDue<'a> = dyn Fn(&Resource) -> Option<ResourceWrite> + Send + Sync + 'a;

/// A due change that could not be applied and was set aside until `retry_at`, so that one
/// broken row never holds up the others.
#[derive(Debug)]
pub struct SetAside {
    /// The resource.
    pub resource_id: ResourceId,
    /// How many times in a row applying it has failed.
    pub attempts: i64,
    /// When the scheduler tries it again.
    pub retry_at: Instant,
    /// Why it failed this time.
    pub error: StoreError,
}

/// What one [`ResourceStore::apply_due`] call did.
#[derive(Debug, Default)]
pub struct DueBatch {
    /// Changes written.
    pub applied: usize,
    /// The resources those changes were written to (deprovisioned ones have had their keys
    /// revoked in the same transaction), for whoever caches them.
    pub changed: Vec<ResourceId>,
    /// Changes that failed and were set aside.
    pub set_aside: Vec<SetAside>,
}

/// How long a due change that failed `attempts` times in a row waits before the next try: a
/// minute, doubling with every failure, at most an hour. Long enough that a broken row costs
/// next to nothing, short enough that a passing cause (a constraint fixed by hand, a full disk)
/// heals on its own.
pub fn due_retry_delay(attempts: i64) -> chrono::Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 6);
    chrono::Duration::minutes((1i64 << doublings).min(60))
}

/// The resources and ledger port.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// A company's balance (`NotFound` for an unknown company).
    async fn balance(&self, id: &CompanyId) -> StoreResult<Balance>;
    /// Grants tokens (a `grant` transaction), honouring the idempotency key; `NotFound` for an
    /// unknown company, [`StoreError::TotalTooLarge`] when the total would pass `i64::MAX`.
    async fn grant_tokens(
        &self,
        grant: &Grant,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> StoreResult<Idempotent<()>>;
    /// A page of a company's ledger, newest first (by instant, then id).
    async fn transactions(&self, company: &CompanyId, page: &HistoryPage) -> StoreResult<Vec<LedgerTransaction>>;

    /// What an idempotency key produced before: the result id, `None` when the key is new,
    /// `IdempotencyConflict` when it was used with another request.
    async fn idempotent_result(&self, key: &IdempotencyKey) -> StoreResult<Option<String>>;
    /// Forgets the idempotency keys first used before `before`; answers how many.
    async fn purge_idempotency_keys(&self, before: Instant) -> StoreResult<u64>;

    /// Writes a new resource with its allocation, team member and audit event, honouring the
    /// idempotency key; fails with `InsufficientTokens`, `Duplicate("display_name")` or `Stale`
    /// (the guarded embeddings resource changed since it was read) and then writes nothing.
    async fn insert_resource(
        &self,
        new: &NewResource,
        guard: Option<&Guard>,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<Idempotent<()>>;
    /// Writes a change if the resource is still at the version it was decided on, with its
    /// ledger movement and audit event; `Stale` or `InsufficientTokens` write nothing.
    async fn apply_change(&self, write: &ResourceWrite) -> StoreResult<()>;
    /// A resource of a company (`None` for another company's).
    async fn resource(&self, company: &CompanyId, id: &ResourceId) -> StoreResult<Option<Resource>>;
    /// Resources in id order (which is creation order).
    async fn resources(&self, query: &ResourceQuery) -> StoreResult<Vec<Resource>>;
    /// Live knowledge bases linked to an embeddings resource.
    async fn linked_knowledge_bases(&self, embeddings: &ResourceId) -> StoreResult<Vec<Resource>>;
    /// Claims up to `limit` resources whose scheduled change is due at `now` (earliest first,
    /// skipping those set aside until later) and writes the changes `decide` makes of them.
    ///
    /// Each change is isolated: one that fails (a broken row, a violated constraint) is rolled
    /// back on its own and set aside for [`due_retry_delay`], and the others are still written.
    /// On PostgreSQL the rows are claimed `FOR UPDATE SKIP LOCKED`, so schedulers on several
    /// instances take different rows instead of waiting for or duplicating each other; the
    /// versioned write still guarantees that each change is applied once. An error means the
    /// database itself failed and nothing of the batch was written.
    async fn apply_due(&self, now: Instant, limit: i64, decide: &DecideDue<'_>) -> StoreResult<DueBatch>;
}

#[cfg(test)]
mod tests {
    use super::due_retry_delay;

    #[test]
    fn the_retry_delay_doubles_from_a_minute_to_an_hour() {
        let minutes: Vec<i64> =
            [0, 1, 2, 3, 6, 7, 8, i64::MAX].iter().map(|n| due_retry_delay(*n).num_minutes()).collect();
        assert_eq!(minutes, [1, 1, 2, 4, 32, 60, 60, 60]);
    }
}
