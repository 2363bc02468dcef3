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
use genai_store_sql::{bind, Arg, Attempt, Backend, Conn, Decoder, Fail, RowRead, SqlStore, Transaction};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlitePool};
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
    // Migrations run on a sqlx connection (they are multi-statement scripts); then the writer is
    // a rusqlite connection on the same file (see `writer` for why).
    let mut migrator = options.connect().await.map_err(StoreError::database)?;
    migrate::run(&mut migrator).await?;
    migrator.close().await.map_err(StoreError::database)?;
    let writer = Writer::start(open_writer(options.get_filename())?);
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await
        .map_err(StoreError::database)?;
    Ok(SqlStore::new(SqliteBackend { writer, reader }))
}

/// How the writer flushes: `FULL` unless `GENAI_SQLITE_SYNCHRONOUS=normal` says otherwise.
///
/// `FULL` (the default): a commit returns once the write-ahead log is flushed to the disk, so an
/// answered write survives a power loss; every answer waits for its group's flush (about 4 ms on
/// the project's virtual disk). `NORMAL`: the log is written but flushed only at checkpoints; an
/// answered write survives a crash of the process (`kill -9`) but not of the machine. Any other
/// value is refused at start-up.
pub const SYNCHRONOUS_VARIABLE: &str = "GENAI_SQLITE_SYNCHRONOUS";

fn synchronous() -> StoreResult<&'static str> {
    match std::env::var(SYNCHRONOUS_VARIABLE).ok().as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("full") => Ok("FULL"),
        Some("normal") => Ok("NORMAL"),
        Some(other) => {
            Err(StoreError::database(format!("{SYNCHRONOUS_VARIABLE} must be `full` or `normal`, not `{other}`")))
        }
    }
}

/// The writer connection: WAL, `synchronous = FULL` (see [`SYNCHRONOUS_VARIABLE`]), foreign
/// keys, a busy timeout for other processes on the same file, and a cache of prepared
/// statements.
fn open_writer(path: &std::path::Path) -> StoreResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path).map_err(StoreError::database)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(StoreError::database)?;
    let pragmas =
        format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;", synchronous()?);
    conn.execute_batch(&pragmas).map_err(StoreError::database)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// The field a SQLite uniqueness violation is about, by the columns SQLite names.
fn duplicate_field(message: &str) -> Option<&'static str> {
    match message {
        "UNIQUE constraint failed: users.email" => Some("email"),
        "UNIQUE constraint failed: resources.company_id, resources.name_key" => Some("display_name"),
        _ => None,
    }
}

/// What a writer error means, as [`classify`] does for sqlx's.
fn classify_write(e: rusqlite::Error) -> Fail {
    use rusqlite::ffi;
    if let rusqlite::Error::SqliteFailure(f, message) = &e {
        match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                if let Some(field) = message.as_deref().and_then(duplicate_field) {
                    return Fail::Store(StoreError::Duplicate(field));
                }
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Fail::Store(StoreError::NotFound),
            _ => {}
        }
    }
    Fail::Store(StoreError::database(e))
}

/// Prepares (from the cache) and binds a statement. Placeholders are `$N`, and SQLite numbers
/// named parameters in order of first appearance, so each is bound by its name's number, as
/// sqlx does.
fn prepare<'c>(conn: &'c rusqlite::Connection, sql: &str, args: &[Arg<'_>]) -> Attempt<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql).map_err(classify_write)?;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => name.trim_start_matches(['$', '?', ':', '@']).parse::<usize>().unwrap_or(0),
            None => i,
        };
        let arg = n.checked_sub(1).and_then(|k| args.get(k)).ok_or_else(|| {
            Fail::Store(StoreError::database(format!("statement parameter {i} has no argument: {sql}")))
        })?;
        let bound = match *arg {
            Arg::Text(v) => stmt.raw_bind_parameter(i, v),
            Arg::Int(v) => stmt.raw_bind_parameter(i, v),
            Arg::Bool(v) => stmt.raw_bind_parameter(i, v),
            Arg::Bytes(v) => stmt.raw_bind_parameter(i, v),
        };
        bound.map_err(classify_write)?;
    }
    Ok(stmt)
}

/// A row of the writer connection, read by column name like sqlx's rows.
struct WriterRow<'a, 'r>(&'a rusqlite::Row<'r>);

impl WriterRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &'static str) -> StoreResult<T> {
        self.0.get(column).map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::corrupt(column, e),
            other => StoreError::database(other),
        })
    }
}

impl RowRead for WriterRow<'_, '_> {
    fn text(&self, column: &'static str) -> StoreResult<String> {
        self.get(column)
    }

    fn opt_text(&self, column: &'static str) -> StoreResult<Option<String>> {
        self.get(column)
    }

    fn int(&self, column: &'static str) -> StoreResult<i64> {
        self.get(column)
    }

    fn opt_int(&self, column: &'static str) -> StoreResult<Option<i64>> {
        self.get(column)
    }

    fn boolean(&self, column: &'static str) -> StoreResult<bool> {
        self.get(column)
    }

    fn bytes(&self, column: &'static str) -> StoreResult<Vec<u8>> {
        self.get(column)
    }
}

/// What a driver error means; SQLite has no transient conflicts inside one writer.
fn classify(e: sqlx::Error) -> Fail {
    let duplicate = match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => duplicate_field(d.message()),
        _ => None,
    };
    Fail::from_driver(e, duplicate)
}

/// A write transaction: one logical write of the writer's current group.
pub struct SqliteTx(LogicalWrite);

impl SqliteTx {
    fn conn(&mut self) -> Attempt<&rusqlite::Connection> {
        self.0.conn().ok_or_else(|| Fail::Store(StoreError::database("the write was already finished")))
    }
}

/// The read-only pool.
pub struct SqliteReader(SqlitePool);

#[async_trait]
impl Conn for SqliteTx {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64> {
        let conn = self.conn()?;
        let mut stmt = prepare(conn, sql, args)?;
        let mut rows = stmt.raw_query();
        while rows.next().map_err(classify_write)?.is_some() {}
        drop(rows);
        Ok(conn.changes())
    }

    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>> {
        let mut stmt = prepare(self.conn()?, sql, args)?;
        let mut rows = stmt.raw_query();
        let mut found = Vec::new();
        while let Some(row) = rows.next().map_err(classify_write)? {
            found.push(decode(&WriterRow(row))?);
        }
        Ok(found)
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
        Ok(SqliteTx(self.writer.begin().await.map_err(classify_write)?))
    }

    fn reader(&self) -> SqliteReader {
        SqliteReader(self.reader.clone())
    }
}
