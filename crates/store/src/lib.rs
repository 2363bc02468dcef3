//! The storage port: what the application needs from a database, as atomic use-case operations.
//!
//! Each method is one database transaction. The adapters (`genai-store-sqlite`,
//! `genai-store-postgres`) implement this trait and nothing else; the application layer never
//! sees SQL. Two mechanisms carry the product's invariants across concurrent requests, retries
//! and several server instances:
//!
//! * **Conditional writes.** A resource change is written only if the resource is still at the
//!   version the decision was computed from ([`StoreError::Stale`] otherwise, and the caller
//!   decides again). An allocation is written only if the company has the tokens
//!   (`UPDATE … WHERE total - allocated >= n`), so no interleaving can overspend.
//! * **Idempotency keys** are recorded in the same transaction as the effect they protect, so a
//!   retried request finds the first one's result instead of doing it twice.

use async_trait::async_trait;
use genai_core::ledger::{Balance, TransactionKind};
use genai_core::resource::{Change, Resource};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId, UserId};

/// What can go wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (or a guarded one) changed since it was read; read again and decide again.
    #[error("the resource changed concurrently")]
    Stale,
    /// The company does not have the tokens an allocation needs; nothing was written.
    #[error("insufficient tokens: {available} available")]
    InsufficientTokens {
        /// Tokens available when the allocation was attempted.
        available: CloudTokens,
    },
    /// A uniqueness rule was violated; the payload names the field (`display_name`, `email`).
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    /// The company or user a write refers to does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed (connection, I/O, a bug in SQL). Logged, never shown to clients.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A customer company and its subscription facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// Id.
    pub id: CompanyId,
    /// Name.
    pub name: String,
    /// Price list, e.g. `FY21`.
    pub price_list: String,
    /// Accounts owned.
    pub accounts: i64,
    /// Active enterprise platform subscriptions.
    pub enterprise_subscriptions: i64,
    /// When it was created.
    pub created_at: Instant,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Uses the Control Center.
    CompanyAdmin,
    /// Uses the Portal of the resources whose team they are on.
    Member,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CompanyAdmin => "company_admin",
            Role::Member => "member",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "company_admin" => Some(Role::CompanyAdmin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Company.
    pub company_id: CompanyId,
    /// Name.
    pub name: String,
    /// Email (lowercased, unique across the installation: it is the login).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Argon2 PHC string, when a password was set.
    pub password_hash: Option<String>,
    /// When it was created.
    pub created_at: Instant,
}

/// An API token, stored only as the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Id.
    pub id: String,
    /// The user it acts as.
    pub user_id: UserId,
    /// Hex SHA-256 of the secret.
    pub token_hash: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: Instant,
}

/// A web UI session: the SHA-256 of the secret in the browser's cookie, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session secret.
    pub id_hash: String,
    /// The user logged in.
    pub user_id: UserId,
    /// When it started.
    pub created_at: Instant,
    /// When it stops being accepted.
    pub expires_at: Instant,
}

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

/// An audit event: who did what, when, to which resource, with before/after in `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Id.
    pub id: String,
    /// The company it concerns (none for installation-wide events).
    pub company_id: Option<CompanyId>,
    /// When.
    pub at: Instant,
    /// Who: a user's email, `operator` or `scheduler`.
    pub actor: String,
    /// What, e.g. `resource.upgraded`.
    pub action: String,
    /// Which resource.
    pub resource_id: Option<ResourceId>,
    /// Before/after and other facts.
    pub details: serde_json::Value,
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
    /// The resource's team member it is created for: an existing user of the company, if any.
    pub member_user_id: Option<UserId>,
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

/// The storage port.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether any company exists (for `--demo` on an empty database).
    async fn has_companies(&self) -> StoreResult<bool>;
    /// Creates a company.
    async fn create_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()>;
    /// Replaces a company's subscription facts.
    async fn update_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()>;
    /// A company.
    async fn company(&self, id: &CompanyId) -> StoreResult<Option<Company>>;
    /// All companies.
    async fn companies(&self) -> StoreResult<Vec<Company>>;
    /// A company's balance.
    async fn balance(&self, id: &CompanyId) -> StoreResult<Balance>;
    /// Grants tokens (a `grant` transaction), honouring the idempotency key.
    async fn grant_tokens(
        &self,
        grant: &Grant,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> StoreResult<Idempotent<()>>;
    /// A company's ledger, newest first.
    async fn transactions(&self, company: &CompanyId, limit: i64) -> StoreResult<Vec<LedgerTransaction>>;

    /// Creates a user ([`StoreError::Duplicate`]`("email")` when the email is taken).
    async fn create_user(&self, user: &User, audit: &AuditEvent) -> StoreResult<()>;
    /// A user by id.
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// A user by (lowercased) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Stores an API token (its hash).
    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()>;
    /// The user an API token hash belongs to, unless revoked.
    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>>;

    /// Stores a new web session.
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// The user of an unexpired session.
    async fn session_user(&self, id_hash: &str, now: Instant) -> StoreResult<Option<User>>;
    /// Ends a session (logout).
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// What an idempotency key produced before: the result id, `None` when the key is new,
    /// `IdempotencyConflict` when it was used with another request.
    async fn idempotent_result(&self, key: &IdempotencyKey) -> StoreResult<Option<String>>;
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
    /// Live resources whose scheduled change is due at `now`, earliest first.
    async fn due_resources(&self, now: Instant, limit: i64) -> StoreResult<Vec<Resource>>;
    /// Claims up to `limit` resources whose scheduled change is due at `now` and writes the
    /// changes `decide` makes of them, all in one transaction. On PostgreSQL the rows are
    /// claimed `FOR UPDATE SKIP LOCKED`, so schedulers on several instances take different rows
    /// instead of waiting for or duplicating each other; the versioned write still guarantees
    /// that each change is applied once. Returns how many changes were written.
    async fn apply_due(&self, now: Instant, limit: i64, decide: &DecideDue<'_>) -> StoreResult<usize>;
    /// A company's audit events, newest first.
    async fn audit_events(&self, company: &CompanyId, limit: i64) -> StoreResult<Vec<AuditEvent>>;
}

pub mod codec;
