//! The embedded SQLite adapter of the storage port: the default backend, no server needed.
//!
//! The statements and the logic of every operation are shared with PostgreSQL in
//! `genai-store-sql`; this crate holds only what is SQLite's own:
//!
//! * **One writer, group commit.** SQLite allows one writer at a time. Rather than let
//!   connections race for the write lock and retry on `SQLITE_BUSY`, every write runs on **one
//!   writer connection**, whose transactions begin `IMMEDIATE` so they hold the write lock from
//!   their first statement (another process on the same file waits on the busy timeout instead
//!   of failing half-way). Writes are therefore serialized in this process, which makes every
//!   conditional check inside them (balance, versions, idempotency keys) trivially race-free,
//!   and row locks (`FOR UPDATE`, `SKIP LOCKED`) are neither needed nor known to SQLite. The
//!   writes of concurrent requests share one transaction and one durable commit, each in its
//!   own savepoint ([`writer`]).
//! * **Durability.** `synchronous = FULL` in WAL mode: a commit returns once the log is flushed
//!   to disk, and no write is answered before its group's commit returned, so whatever was
//!   answered survives a `kill -9` and a power loss.
//! * **Readers** are a separate pool of read-only connections; WAL mode lets them run while the
//!   writer writes, and they see only committed groups.
//! * **Errors.** SQLite reports a unique violation by the columns of the index
//!   (`UNIQUE constraint failed: users.email`), not by the index's name.

mod migrate;
mod writer;

pub use migrate::migrations;

use async_trait::async_trait;
use genai_store::{StoreError, StoreResult};
use genai_store_sql::{bind, Arg, Attempt, Backend, Conn, Decoder, Fail, SqlStore, Transaction};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use writer::{LogicalWrite, Writer};

/// The SQLite store: the shared SQL over [`SqliteBackend`].
pub type SqliteStore = SqlStore<SqliteBackend>;

/// SQLite's connections: one group-committing writer, several readers.
#[derive(Clone)]
pub struct SqliteBackend {
    writer: Arc<Writer>,
    reader: SqlitePool,
}

/// Opens (creating if missing) the database at a `sqlite://PATH` URL and applies migrations.
pub async fn open(url: &str) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(StoreError::database)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = options.connect().await.map_err(StoreError::database)?;
    migrate::run(&mut conn).await?;
    let writer = Writer::start(conn);
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await
        .map_err(StoreError::database)?;
    Ok(SqlStore::new(SqliteBackend { writer, reader }))
}

/// What a driver error means; SQLite has no transient conflicts inside one writer.
fn classify(e: sqlx::Error) -> Fail {
    let duplicate = match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => match d.message() {
            "UNIQUE constraint failed: users.email" => Some("email"),
            "UNIQUE constraint failed: resources.company_id, resources.name_key" => Some("display_name"),
            _ => None,
        },
        _ => None,
    };
    Fail::from_driver(e, duplicate)
}

/// A write transaction: one logical write of the writer's current group.
pub struct SqliteTx(LogicalWrite);

/// The read-only pool.
pub struct SqliteReader(SqlitePool);

#[async_trait]
impl Conn for SqliteTx {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64> {
        let conn = self.0.conn().map_err(classify)?;
        let done = bind(sqlx::query(sql), args).execute(conn).await.map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>> {
        let conn = self.0.conn().map_err(classify)?;
        let rows = bind(sqlx::query(sql), args).fetch_all(conn).await.map_err(classify)?;
        Ok(rows.iter().map(|r| decode(r)).collect::<StoreResult<_>>()?)
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    async fn commit(self) -> Attempt<()> {
        self.0.commit().await.map_err(|why| Fail::Store(StoreError::database(why)))
    }
}

#[async_trait]
impl Conn for SqliteReader {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64> {
        Ok(bind(sqlx::query(sql), args).execute(&self.0).await.map_err(classify)?.rows_affected())
    }

    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>> {
        let found = bind(sqlx::query(sql), args).fetch_all(&self.0).await.map_err(classify)?;
        Ok(found.iter().map(|r| decode(r)).collect::<StoreResult<_>>()?)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    type Tx = SqliteTx;
    type Reader = SqliteReader;
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    async fn begin(&self) -> Attempt<SqliteTx> {
        Ok(SqliteTx(self.writer.begin().await.map_err(classify)?))
    }

    fn reader(&self) -> SqliteReader {
        SqliteReader(self.reader.clone())
    }
}
