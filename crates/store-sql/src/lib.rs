//! The storage port written once in SQL, for both databases.
//!
//! SQLite and PostgreSQL accept the same statements for everything this product stores: `$1`
//! placeholders (both sqlx drivers take them), `RETURNING`, `ON CONFLICT … DO NOTHING`, row-value
//! comparisons, `CAST(… AS …)`. So the statements, the row types and the transaction logic of
//! every port operation live here, in [`SqlStore`], and an adapter crate keeps only what really
//! differs, behind [`Backend`]:
//!
//! * **how a write transaction begins** — SQLite: `BEGIN IMMEDIATE` on its one writer
//!   connection, so writes are serialized in the process and every check inside a transaction is
//!   trivially race-free; PostgreSQL: a pooled connection at READ COMMITTED, where the statements
//!   below carry the invariants themselves;
//! * **locking** — PostgreSQL reads a resource it is about to change `FOR UPDATE` and claims due
//!   changes `FOR UPDATE SKIP LOCKED` ([`Backend::FOR_UPDATE`], [`Backend::SKIP_LOCKED`]);
//!   SQLite's single writer makes both moot;
//! * **what an error means** — which SQLSTATE is a transient conflict worth retrying, which
//!   unique index a violation hit (PostgreSQL names the constraint, SQLite names the columns).
//!
//! The invariants (see `docs/ARCHITECTURE.md`) are carried by the statements, identically on
//! both: allocations are one conditional `UPDATE … WHERE total - allocated >= n`; resource
//! writes are `UPDATE … WHERE version = v`; idempotency keys are claimed first with
//! `ON CONFLICT DO NOTHING`, in the transaction of the effect they protect; totals are capped
//! in the statement below `i64::MAX` (SQLite would otherwise turn an overflowing sum into a
//! REAL without a word).

mod access;
mod audit;
mod companies;
mod conn;
mod keys;
mod knowledge;
mod resources;
mod rows;
mod team;
mod usage;

pub use conn::{bind, with_retries, Arg, Attempt, Backend, Conn, Decoder, Fail, RowRead, Transaction};
pub use rows::{millis, ResourceRow};

use conn::read;
use genai_store::{AuditEvent, StoreResult};

/// The storage port over one SQL database: implements every concern trait of `genai-store`
/// (and so `Store`) for any adapter's [`Backend`].
pub struct SqlStore<B> {
    backend: B,
}

impl<B: Backend> SqlStore<B> {
    /// A store over an adapter's connections (already migrated).
    pub fn new(backend: B) -> SqlStore<B> {
        SqlStore { backend }
    }

    /// The adapter underneath (to close its pools, for instance).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Runs one read statement on the adapter's reader.
    async fn read_all<T: Send + 'static>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        decode: Decoder<T>,
    ) -> StoreResult<Vec<T>> {
        read(self.backend.reader().fetch(sql, args, decode)).await
    }

    /// Runs one read statement that answers at most one row.
    async fn read_one<T: Send + 'static>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        decode: Decoder<T>,
    ) -> StoreResult<Option<T>> {
        read(self.backend.reader().fetch_optional(sql, args, decode)).await
    }

    /// Runs one write statement in a transaction of its own; answers the rows it changed.
    async fn write_one(&self, operation: &'static str, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        with_retries(operation, || async {
            let mut tx = self.backend.begin().await?;
            let n = tx.execute(sql, args).await?;
            tx.commit().await?;
            Ok(n)
        })
        .await
    }
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events (id, company_id, at, actor, action, resource_id, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Records an audit event in the caller's transaction.
async fn insert_audit(tx: &mut impl Conn, e: &AuditEvent) -> Attempt<()> {
    let details = e.details.to_string();
    tx.execute(
        INSERT_AUDIT,
        args![
            &e.id,
            e.company_id.as_ref().map(|c| c.as_str()),
            millis(e.at),
            &e.actor,
            &e.action,
            e.resource_id.as_ref().map(|r| r.as_str()),
            &details,
        ],
    )
    .await?;
    Ok(())
}
