//! Companies: the customers of an installation and the subscription facts their eligibility
//! rests on (SPEC §2). Their cloud-token counters belong to the ledger ([`crate::ResourceStore`]).

use crate::{AuditEvent, StoreResult};
use async_trait::async_trait;
use genai_core::{CompanyId, Instant};

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

/// The companies port.
#[async_trait]
pub trait CompanyStore: Send + Sync {
    /// Whether any company exists (for `--demo` on an empty database).
    async fn has_companies(&self) -> StoreResult<bool>;
    /// Creates a company, with its audit event.
    async fn create_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()>;
    /// Replaces a company's name and subscription facts, with the audit event; `NotFound` when
    /// there is no such company.
    async fn update_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()>;
    /// A company.
    async fn company(&self, id: &CompanyId) -> StoreResult<Option<Company>>;
    /// All companies, in id (creation) order.
    async fn companies(&self) -> StoreResult<Vec<Company>>;
}
