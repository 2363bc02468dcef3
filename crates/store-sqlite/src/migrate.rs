//! Applies the embedded migrations in order, each in its own transaction, recording them in
//! `schema_migrations`. The writer connection is the only one that runs them, so two servers
//! on one SQLite file serialize on SQLite's own write lock.

use genai_store::{StoreError, StoreResult};
use sqlx::{Connection, Executor, SqliteConnection};

/// (version, name, SQL), in order. Never edit an applied one: append.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "sessions", include_str!("../migrations/0002_sessions.sql")),
    (3, "access_and_housekeeping", include_str!("../migrations/0003_access_and_housekeeping.sql")),
    (4, "runtime", include_str!("../migrations/0004_runtime.sql")),
    (5, "knowledge", include_str!("../migrations/0005_knowledge.sql")),
];

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::database(e)
}

pub(crate) async fn run(conn: &mut SqliteConnection) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = conn.begin().await.map_err(backend)?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if applied.is_some() {
            continue;
        }
        // Called this way round so the future stays `Send` (usable inside `tokio::spawn`).
        (&mut *tx).execute(sqlx::raw_sql(sql)).await.map_err(backend)?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
    }
    Ok(())
}

/// The migrations, for the schema-comparison test.
pub fn migrations() -> &'static [(i64, &'static str, &'static str)] {
    MIGRATIONS
}
