//! [`AuditStore`] in SQL, and the paging of newest-first histories it shares with the ledger.

use crate::conn::{Arg, Backend};
use crate::{millis, rows, SqlStore};
use async_trait::async_trait;
use genai_core::CompanyId;
use genai_store::{AuditEvent, AuditStore, HistoryPage, StoreResult};

/// A newest-first page of a company's history table: `(at, id)` strictly below the cursor,
/// which the `(company_id, at, id)` index serves as one backwards range scan. The cursor and
/// the limit are NULL / `i64::MAX` when absent, so the statement text never changes.
macro_rules! history_page {
    ($table:literal) => {
        concat!(
            "SELECT * FROM ",
            $table,
            " WHERE company_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR (at, id) < ($2, $3)) \
             ORDER BY at DESC, id DESC LIMIT $4"
        )
    };
}

pub(crate) const LEDGER_PAGE: &str = history_page!("ledger_transactions");
const AUDIT_PAGE: &str = history_page!("audit_events");

/// The arguments `$1`–`$4` of a history page.
pub(crate) fn page_args<'a>(company: &'a CompanyId, page: &'a HistoryPage) -> [Arg<'a>; 4] {
    let (at, id) = match &page.before {
        Some((at, id)) => (Some(millis(*at)), Some(id.as_str())),
        None => (None, None),
    };
    [company.as_str().into(), at.into(), id.into(), page.limit.unwrap_or(i64::MAX).into()]
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn audit_events(&self, company: &CompanyId, page: &HistoryPage) -> StoreResult<Vec<AuditEvent>> {
        self.read_all(AUDIT_PAGE, &page_args(company, page), rows::audit_event).await
    }
}
