//! The seam between the shared SQL and a database driver: what an adapter provides.
//!
//! The shared code runs statement text with [`Arg`]s on a [`Conn`] and reads rows through
//! [`RowRead`]; it never names `Sqlite` or `Postgres`. An adapter implements [`Conn`] for its
//! write transaction and its reader (a few lines each: bind with [`bind`], run, classify errors)
//! and [`Backend`] for what really differs: how a write transaction begins, which rows lock, and
//! which database errors mean what.

use async_trait::async_trait;
use genai_store::{StoreError, StoreResult};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Type};
use std::future::Future;
use std::time::Duration;

/// One argument of a statement, bound to `$1`, `$2`, … in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `TEXT` (or NULL).
    Text(Option<&'a str>),
    /// `BIGINT` (or NULL).
    Int(Option<i64>),
    /// `BOOLEAN`.
    Bool(bool),
    /// `BYTEA` (PostgreSQL) / `BLOB` (SQLite): a knowledge-base vector.
    Bytes(&'a [u8]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// The arguments of a statement: `args![a, b, c]` is `&[Arg::from(a), Arg::from(b), …]`.
#[macro_export]
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::Arg::from($arg)),*]
    };
}

/// Binds `args` to a query of any database whose driver encodes these four types.
pub fn bind<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: &[Arg<'q>],
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    args.iter().fold(query, |q, arg| match *arg {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Bytes(v) => q.bind(v),
    })
}

/// A row being read, by column name. A value of the wrong type (say, a SQLite integer that
/// overflowed into a REAL) is [`StoreError::Corrupt`]: the row is broken, not the database.
pub trait RowRead {
    /// A non-null `TEXT`.
    fn text(&self, column: &'static str) -> StoreResult<String>;
    /// A nullable `TEXT`.
    fn opt_text(&self, column: &'static str) -> StoreResult<Option<String>>;
    /// A non-null `BIGINT`.
    fn int(&self, column: &'static str) -> StoreResult<i64>;
    /// A nullable `BIGINT`.
    fn opt_int(&self, column: &'static str) -> StoreResult<Option<i64>>;
    /// A `BOOLEAN`.
    fn boolean(&self, column: &'static str) -> StoreResult<bool>;
    /// A non-null `BYTEA` / `BLOB`.
    fn bytes(&self, column: &'static str) -> StoreResult<Vec<u8>>;
}

fn get<'r, R, T>(row: &'r R, column: &'static str) -> StoreResult<T>
where
    R: sqlx::Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    row.try_get(column).map_err(|e| match e {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::corrupt(column, source),
        other => StoreError::database(other),
    })
}

impl<R> RowRead for R
where
    R: sqlx::Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    fn text(&self, column: &'static str) -> StoreResult<String> {
        get(self, column)
    }

    fn opt_text(&self, column: &'static str) -> StoreResult<Option<String>> {
        get(self, column)
    }

    fn int(&self, column: &'static str) -> StoreResult<i64> {
        get(self, column)
    }

    fn opt_int(&self, column: &'static str) -> StoreResult<Option<i64>> {
        get(self, column)
    }

    fn boolean(&self, column: &'static str) -> StoreResult<bool> {
        get(self, column)
    }

    fn bytes(&self, column: &'static str) -> StoreResult<Vec<u8>> {
        get(self, column)
    }
}

/// How a row becomes a value.
pub type Decoder<T> = fn(&dyn RowRead) -> StoreResult<T>;

/// Why one attempt at a transaction failed.
#[derive(Debug)]
pub enum Fail {
    /// A transient conflict (PostgreSQL's deadlock or serialization failure): the whole
    /// transaction may simply be tried again.
    Retry(sqlx::Error),
    /// A final answer.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// The final answer of a driver error that is not transient: a violated uniqueness rule
    /// the adapter recognised (`duplicate` names its field) is [`StoreError::Duplicate`], a
    /// reference to a missing row [`StoreError::NotFound`], anything else
    /// [`StoreError::Database`] with the driver error as its source.
    pub fn from_driver(e: sqlx::Error, duplicate: Option<&'static str>) -> Fail {
        if let Some(field) = duplicate {
            return Fail::Store(StoreError::Duplicate(field));
        }
        match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => Fail::Store(StoreError::NotFound),
            _ => Fail::Store(StoreError::database(e)),
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            Fail::Retry(e) => StoreError::database(e),
            Fail::Store(e) => e,
        }
    }
}

/// Result of one statement or attempt.
pub type Attempt<T> = Result<T, Fail>;

/// Where statements run: a write transaction or an adapter's reader.
#[async_trait]
pub trait Conn: Send {
    /// Runs a statement; answers how many rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Attempt<u64>;
    /// Runs a query and decodes every row it answers.
    async fn fetch<T: Send + 'static>(&mut self, sql: &str, args: &[Arg<'_>], decode: Decoder<T>) -> Attempt<Vec<T>>;

    /// Runs a query that answers at most one row (the first is taken).
    async fn fetch_optional<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: Decoder<T>,
    ) -> Attempt<Option<T>> {
        Ok(self.fetch(sql, args, decode).await?.into_iter().next())
    }
}

/// A write transaction: rolled back when dropped without [`Transaction::commit`].
#[async_trait]
pub trait Transaction: Conn + Sized {
    /// Makes every statement of the transaction durable.
    async fn commit(self) -> Attempt<()>;
}

/// What an adapter provides: its connections and the little of its dialect that differs.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A write transaction.
    type Tx: Transaction;
    /// Reads outside a transaction.
    type Reader: Conn;
    /// Appended to the `SELECT` that reads a resource a write is about to change: a row lock
    /// where concurrent writers exist (`" FOR UPDATE"`), nothing where one writer runs at a time.
    const FOR_UPDATE: &'static str;
    /// Appended to the `SELECT` that claims due scheduled changes: `" FOR UPDATE SKIP LOCKED"`
    /// where several instances' schedulers claim at once, nothing where they cannot.
    const SKIP_LOCKED: &'static str;

    /// Begins a write transaction.
    async fn begin(&self) -> Attempt<Self::Tx>;
    /// A reader.
    fn reader(&self) -> Self::Reader;
}

/// How many times a transaction is tried when it loses a deadlock or serialization race.
const MAX_ATTEMPTS: u32 = 5;

/// Runs `attempt` (one whole transaction) until it succeeds, fails for good, or has lost
/// [`MAX_ATTEMPTS`] races.
pub async fn with_retries<T, F, Fut>(operation: &'static str, mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Fail::Store(e)) => return Err(e),
            Err(Fail::Retry(e)) => {
                tries += 1;
                if tries >= MAX_ATTEMPTS {
                    return Err(StoreError::database(e));
                }
                tracing::debug!(operation, tries, error = %e, "transaction lost a race; retrying");
                tokio::time::sleep(backoff(tries)).await;
            }
        }
    }
}

/// Exponential backoff with a little jitter, so that two transactions that deadlocked do not
/// collide again in lockstep.
fn backoff(tries: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos() % 5));
    Duration::from_millis((5u64 << tries.min(6)) + jitter)
}

/// Runs a read and turns its outcome into the port's result.
pub(crate) async fn read<T>(attempt: impl Future<Output = Attempt<T>>) -> StoreResult<T> {
    attempt.await.map_err(Fail::into_store)
}
