//! Applies the embedded migrations in order, recording them in `schema_migrations`.
//!
//! Several server instances may start against one database at the same moment (a rolling
//! deploy, a scaled-out service). Each runs this under a transaction-scoped advisory lock, so
//! exactly one of them checks and applies the pending migrations while the others wait for it
//! and then find nothing left to do. PostgreSQL's DDL is transactional: a migration that fails
//! leaves no half-built schema and no `schema_migrations` row behind.

use genai_store::{StoreError, StoreResult};
use sqlx::{Executor, PgPool};

/// (version, name, SQL), in order. Never edit an applied one: append.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "sessions", include_str!("../migrations/0002_sessions.sql")),
    (3, "access_and_housekeeping", include_str!("../migrations/0003_access_and_housekeeping.sql")),
    (4, "runtime", include_str!("../migrations/0004_runtime.sql")),
    (5, "knowledge", include_str!("../migrations/0005_knowledge.sql")),
];

/// The advisory-lock key every instance of this application takes while migrating ("genaimig"
/// in ASCII), so that unrelated users of advisory locks in the same database are not blocked.
const MIGRATION_LOCK: i64 = 0x6765_6e61_696d_6967;

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::database(e)
}

/// Brings the schema up to date; safe to call from many processes at once.
pub(crate) async fn run(pool: PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    // Waiting for another instance's migration, or running a long one, is not a stuck query:
    // lift the per-connection statement timeout for this transaction only.
    sqlx::query("SELECT set_config('statement_timeout', '0', true)").execute(&mut *tx).await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(backend)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(newest) = applied.iter().copied().filter(|v| *v > known).max() {
        // An older binary during a rolling upgrade: the newer schema must stay compatible with
        // it, so this is worth a warning, not a refusal to start.
        tracing::warn!(newest, known, "the database has migrations this build does not know");
    }
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        // Through `Executor::execute` (a boxed `Send` future) rather than `RawSql::execute`,
        // whose generic future rustc cannot prove `Send` over a borrowed transaction; that
        // would keep `open` out of `tokio::spawn`.
        (&mut *tx).execute(sqlx::raw_sql(sql)).await.map_err(backend)?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit().await.map_err(backend)
}

/// The migrations as (version, name, SQL), in order: for the schema-comparison test.
pub fn migrations() -> &'static [(i64, &'static str, &'static str)] {
    MIGRATIONS
}
