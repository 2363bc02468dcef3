//! The audit log: who did what, when. Every write of the other ports records its own event in
//! the same transaction (an audit event is never written without its effect, nor an effect
//! without its event); this port only reads the log back.

use crate::{HistoryPage, StoreResult};
use async_trait::async_trait;
use genai_core::{CompanyId, Instant, ResourceId};

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

/// The audit-log port.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A page of a company's audit events, newest first (by instant, then id).
    async fn audit_events(&self, company: &CompanyId, page: &HistoryPage) -> StoreResult<Vec<AuditEvent>>;
}
