//! The PostgreSQL adapter of the storage port: the backend for several server instances.
//!
//! The statements and the logic of every operation are shared with SQLite in
//! `genai-store-sql`; this crate holds only what is PostgreSQL's own:
//!
//! * **Many writers, no lock around them.** Unlike SQLite's single writer, this adapter has
//!   many connections in each of many processes. Every invariant is therefore carried by the
//!   shared statements themselves, inside one transaction per write, at PostgreSQL's default
//!   READ COMMITTED isolation: the conditional allocation's row lock serializes allocations of
//!   one company and a waiting statement re-checks its condition against the committed row; a
//!   resource about to change is read `FOR UPDATE`; the versioned `UPDATE` makes every other
//!   writer of the same version find nothing ([`genai_store::StoreError::Stale`]); an
//!   idempotency key claimed first makes a concurrent request with the same key wait on the
//!   primary-key index and then see the first one's row.
//! * **Scheduled changes** are claimed `FOR UPDATE SKIP LOCKED`, so schedulers on several
//!   instances take different rows instead of waiting for each other.
//! * **Transient conflicts** — a deadlock (40P01, two writes locking the same rows in opposite
//!   orders, e.g. through a guard) or a serialization failure (40001) — are not errors of the
//!   request: the shared code retries the whole transaction a few times.
//! * **Errors** name the violated constraint, which maps to the field a duplicate is about.
//! * A per-connection **statement timeout**, and migrations under an advisory lock so that
//!   instances starting together migrate once (see `migrate`).

mod migrate;

pub use migrate::migrations;

use async_trait::async_trait;
use genai_store::{StoreError, StoreResult};
use genai_store_sql::{bind, Arg, Attempt, Backend, Conn, Decoder, Fail, SqlStore, Transaction};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// How a [`PostgresStore`] uses its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections this process keeps open at most.
    pub max_connections: u32,
    /// Longest a single statement may run before the server cancels it (`None`: no limit).
    pub statement_timeout: Option<Duration>,
}

impl Default for PgOptions {
    /// Ten connections, statements cancelled after 30 seconds.
    fn default() -> Self {
        PgOptions { max_connections: 10, statement_timeout: Some(Duration::from_secs(30)) }
    }
}

/// The PostgreSQL store: the shared SQL over [`PgBackend`].
pub type PostgresStore = SqlStore<PgBackend>;

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub struct PgBackend {
    pool: PgPool,
}

impl PgBackend {
    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connects to a `postgres://` URL and brings the schema up to date. Safe to call from several
/// processes at once (see the `migrate` module).
pub async fn open(url: &str, options: PgOptions) -> StoreResult<PostgresStore> {
    let connect = PgConnectOptions::from_str(url).map_err(StoreError::database)?.application_name("genai");
    // Only where, never who with which password: the URL itself is not logged.
    tracing::info!(
        host = connect.get_host(),
        port = connect.get_port(),
        database = connect.get_database().unwrap_or("(default)"),
        "connecting to PostgreSQL"
    );
    // Milliseconds as text, the unit `set_config` accepts for this setting; 0 = no limit.
    let timeout_ms = options.statement_timeout.map_or(0, |d| d.as_millis()).to_string();
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            let timeout_ms = timeout_ms.clone();
            Box::pin(async move {
                sqlx::query("SELECT set_config('statement_timeout', $1, false)").bind(timeout_ms).execute(conn).await?;
                Ok(())
            })
        })
        .connect_with(connect)
        .await
        .map_err(StoreError::database)?;
    migrate::run(pool.clone()).await?;
    Ok(SqlStore::new(PgBackend { pool }))
}

/// What a driver error means: SQLSTATE 40001 (serialization failure) and 40P01 (deadlock) are
/// worth retrying; a unique violation is a duplicate when its constraint says of what.
fn classify(e: sqlx::Error) -> Fail {
    let sqlstate = match &e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    };
    if matches!(sqlstate.as_deref(), Some("40001" | "40P01")) {
        return Fail::Retry(e);
    }
    let duplicate = match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => match d.constraint() {
            Some("users_email_key") => Some("email"),
            Some("resources_live_name") => Some("display_name"),
            _ => None,
        },
        _ => None,
    };
    Fail::from_driver(e, duplicate)
}

/// A write transaction on a pooled connection.
pub struct PgTx(sqlx::Transaction<'static, Postgres>);

/// Reads on the pool, outside a transaction.
pub struct PgReader(PgPool);

#[async_trait]
impl Conn for PgTx {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64> {
        let query = bind(sqlx::query(sql), args);
        Ok(query.execute(&mut *self.0).await.map_err(classify)?.rows_affected())
    }

    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>> {
        let query = bind(sqlx::query(sql), args);
        let rows = query.fetch_all(&mut *self.0).await.map_err(classify)?;
        rows.iter().map(|row| decode(row).map_err(Fail::Store)).collect()
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn commit(self) -> Attempt<()> {
        self.0.commit().await.map_err(classify)
    }
}

#[async_trait]
impl Conn for PgReader {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64> {
        let query = bind(sqlx::query(sql), args);
        Ok(query.execute(&self.0).await.map_err(classify)?.rows_affected())
    }

    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>> {
        let query = bind(sqlx::query(sql), args);
        let rows = query.fetch_all(&self.0).await.map_err(classify)?;
        rows.iter().map(|row| decode(row).map_err(Fail::Store)).collect()
    }
}

#[async_trait]
impl Backend for PgBackend {
    type Tx = PgTx;
    type Reader = PgReader;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    async fn begin(&self) -> Attempt<PgTx> {
        Ok(PgTx(self.pool.begin().await.map_err(classify)?))
    }

    fn reader(&self) -> PgReader {
        PgReader(self.pool.clone())
    }
}

#[cfg(test)]
mod tests {
    /// Compiles only if `T` is `Send`.
    fn assert_send<T: Send>(_: &T) {}

    /// The store must be usable from spawned tasks: its futures are `Send`. (Only compiled,
    /// never polled: no server is needed.)
    #[test]
    fn futures_are_send() {
        let open = super::open("postgres://nowhere.invalid/db", super::PgOptions::default());
        assert_send(&open);
    }
}
