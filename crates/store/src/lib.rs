//! The storage port: what the application needs from a database, as atomic use-case operations.
//!
//! Each write method is one database transaction. The port is split by concern, one trait each,
//! so that a new capability (the runtime's usage metering, its keys, knowledge content) adds a
//! port of its own instead of growing one long trait:
//!
//! | trait | concern |
//! |---|---|
//! | [`CompanyStore`] | companies and their subscription facts |
//! | [`ResourceStore`] | resources, the cloud-token ledger they draw on, scheduled changes, idempotency keys |
//! | [`AccessStore`] | users, web sessions and API tokens |
//! | [`AuditStore`] | reading the audit log (every write above records its own event) |
//! | [`TeamStore`] | a resource's team (who may use its Portal) |
//! | [`KeyStore`] | runtime keys of the Runtime API |
//! | [`UsageStore`] | metering: usage counters and quota leases |
//! | [`KnowledgeStore`] | knowledge-base collections, chunks and their storage counter |
//!
//! [`Store`] is all of them together: adapters implement the concern traits and get `Store` for
//! free, and the application holds one `Arc<dyn Store>`. The adapters (`genai-store-sqlite`,
//! `genai-store-postgres`, sharing their SQL through `genai-store-sql`) implement these traits
//! and nothing else; the application layer never sees SQL.
//!
//! Two mechanisms carry the product's invariants across concurrent requests, retries and several
//! server instances:
//!
//! * **Conditional writes.** A resource change is written only if the resource is still at the
//!   version the decision was computed from ([`StoreError::Stale`] otherwise, and the caller
//!   decides again). An allocation is written only if the company has the tokens
//!   (`UPDATE … WHERE total - allocated >= n`), so no interleaving can overspend.
//! * **Idempotency keys** are recorded in the same transaction as the effect they protect, so a
//!   retried request finds the first one's result instead of doing it twice.

mod access;
mod audit;
mod company;
mod keys;
mod knowledge;
mod resource;
mod team;
mod usage;

pub use access::{AccessStore, ApiToken, Role, Session, User};
pub use audit::{AuditEvent, AuditStore};
pub use company::{Company, CompanyStore};
pub use keys::{KeyStore, RuntimeKey};
pub use knowledge::{
    vector_from_bytes, vector_to_bytes, ActivityRow, ChunkInsert, CollectionRow, Deleted, DocumentRow, IndexRow,
    InsertOutcome, KbUsage, KnowledgeStore, StoredChunk, MAX_INSERT_CHUNKS,
};
pub use resource::{
    due_retry_delay, DecideDue, DueBatch, Grant, Guard, IdempotencyKey, Idempotent, LedgerTransaction, NewResource,
    ResourceQuery, ResourceStore, ResourceWrite, SetAside,
};
pub use team::{Member, NewMember, Removal, TeamStore};
pub use usage::{
    DayUsage, LeaseDelta, LeaseOutcome, LeaseRequest, MonthUsage, Tokens, UsageBatch, UsageDelta, UsageStore,
};

use genai_core::{CloudTokens, Instant};

/// The error of a database driver or of the connection, kept as the source of
/// [`StoreError::Database`] so that logs can show the whole chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a store operation. In every case, a write wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (or a guarded one) changed since it was read; read again and decide again.
    #[error("the resource changed concurrently")]
    Stale,
    /// The company does not have the tokens an allocation needs.
    #[error("insufficient tokens: {available} available")]
    InsufficientTokens {
        /// Tokens available when the allocation was attempted.
        available: CloudTokens,
    },
    /// A grant would take the company's total past what can be stored exactly (`i64::MAX`).
    #[error("the company's total cannot grow by that much; at most {headroom} more can be granted")]
    TotalTooLarge {
        /// How many tokens could still be granted.
        headroom: CloudTokens,
    },
    /// A uniqueness rule was violated; the payload names the field (`display_name`, `email`).
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    /// The company, user or token a write refers to does not exist.
    #[error("not found")]
    NotFound,
    /// A stored value cannot be read back (a row written by hand, or a bug): the row is broken.
    #[error("stored {what} `{value}` cannot be read")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was stored.
        value: String,
    },
    /// Stored values that each read fine do not add up (a resource releasing more than its
    /// company has allocated, say): a bug or a hand edit, never a request's fault.
    #[error("the stored data does not add up: {0}")]
    Inconsistent(String),
    /// The database failed (connection, I/O, a constraint a bug broke, …). Logged with its
    /// source chain, never shown to clients.
    #[error("the database failed")]
    Database(#[source] BoxError),
}

impl StoreError {
    /// Wraps a driver error.
    pub fn database(e: impl Into<BoxError>) -> StoreError {
        StoreError::Database(e.into())
    }

    /// A broken stored value.
    pub fn corrupt(what: &'static str, value: impl ToString) -> StoreError {
        StoreError::Corrupt { what, value: value.to_string() }
    }
}

/// An error with its chain of sources, one `: `-separated line, for logs and messages that
/// must say what really happened (e.g. "the database failed: error returned from database:
/// canceling statement due to statement timeout").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a newest-first history (the ledger, the audit log): the entries strictly older
/// than `before`, at most `limit` of them. Ordered by instant, then id, both descending, so a
/// page boundary between two entries of the same millisecond is still exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// Continue after this entry (the last one of the previous page); `None`: from the newest.
    pub before: Option<(Instant, String)>,
    /// At most this many; `None`: all of them.
    pub limit: Option<i64>,
}

impl HistoryPage {
    /// The newest `limit` entries.
    pub fn newest(limit: i64) -> HistoryPage {
        HistoryPage { before: None, limit: Some(limit) }
    }

    /// Every entry.
    pub fn all() -> HistoryPage {
        HistoryPage::default()
    }
}

/// The whole storage port, as the application holds it (`Arc<dyn Store>`). Implemented for
/// every type that implements the concern traits.
pub trait Store:
    CompanyStore
    + ResourceStore
    + AccessStore
    + AuditStore
    + TeamStore
    + KeyStore
    + UsageStore
    + KnowledgeStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: CompanyStore
        + ResourceStore
        + AccessStore
        + AuditStore
        + TeamStore
        + KeyStore
        + UsageStore
        + KnowledgeStore
        + Send
        + Sync
        + 'static
{
}
