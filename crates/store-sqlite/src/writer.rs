//! The group-commit writer: many requests' writes, one durable commit.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every `COMMIT` waits for the
//! disk (an `fsync` of the write-ahead log). Committing each request's transaction on its own
//! makes the disk's flush rate the ceiling of the whole Control Center. So this adapter does
//! what TigerBeetle and PostgreSQL do: it batches the writes of concurrent requests into one
//! transaction and commits them together, answering each request only once its batch is on
//! disk.
//!
//! * **One connection, one outer transaction.** The writer connection sits behind a fair
//!   (first come, first served) async mutex. The first logical write of a group begins the outer
//!   transaction (`BEGIN IMMEDIATE`); every logical write (one call of
//!   [`Backend::begin`](genai_store_sql::Backend::begin) … `commit`) runs inside its own
//!   `SAVEPOINT`, so it sees every earlier write of the group and its checks (balance, versions,
//!   idempotency keys) stay exactly as race-free as with one transaction per request.
//! * **A failing write undoes only itself.** A logical write dropped without `commit` (an
//!   error, a refused allocation, an idempotent replay, a cancelled request) is rolled back to
//!   its savepoint; the rest of the group is unaffected, and is committed right then, before
//!   the dropped write's caller goes on (it may have read the group's uncommitted writes and is
//!   about to act on them through the readers; see `Drop for LogicalWrite`).
//! * **Answers wait for the disk.** A logical `commit` releases its savepoint, joins the
//!   group's waiting list and gives up the connection, then waits. The committer task queues for
//!   the connection behind the writes already waiting (the mutex is fair), so by the time it gets
//!   it, every write that was waiting has joined the group; it issues one `COMMIT` (one `fsync`)
//!   and answers the whole group — success, or the commit's error to every member. Under no load
//!   a group is one write, committed at once: batching adds no wait, it only shares the flush.
//! * **If the outer transaction is lost** (SQLite rolls a whole transaction back on some I/O
//!   errors), releasing or rolling back a savepoint fails; the group is then failed as a whole
//!   and none of its members is told it succeeded.
//!
//! kill -9 safety: nothing is answered before its `COMMIT` returned, and `synchronous = FULL`
//! makes that commit durable against a power loss too (the kill -9 test lives in
//! `crates/server/tests/durability.rs`).
//!
//! **Why rusqlite here, and not sqlx.** sqlx runs each SQLite connection on a worker thread of
//! its own and sends it every statement over a channel: two thread switches per statement.
//! A Control Center write is 6–10 statements, and profiling the saturated benchmark showed the
//! server spending about half its CPU time switching between the async workers and sqlx's
//! SQLite thread, not running SQL. The writer connection is therefore a plain
//! `rusqlite::Connection` (the same `libsqlite3-sys` that sqlx links, so no second SQLite)
//! whose statements run inline, in microseconds, on the task that holds it; only the group's
//! `COMMIT`, which waits for the disk, runs on the blocking pool. Readers stay on sqlx's pool
//! (their queries may be long, such as a whole listing, and must not hold an async worker).

use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{oneshot, Mutex, Notify, OwnedMutexGuard};

/// The savepoint of one logical write.
const SAVEPOINT: &str = "SAVEPOINT genai_write";
const RELEASE: &str = "RELEASE SAVEPOINT genai_write";
const UNDO: &str = "ROLLBACK TO SAVEPOINT genai_write; RELEASE SAVEPOINT genai_write";

/// What a member of a group is told: its group's commit succeeded, or why not.
type Answer = Result<(), String>;

/// The writer connection and the group being formed on it.
pub(crate) struct WriterState {
    /// The one writer connection.
    pub(crate) conn: Connection,
    /// Whether the outer transaction is open.
    open: bool,
    /// The last logical write ended without `commit`: roll it back before anything else.
    undo: bool,
    /// The members of the open group waiting for its commit.
    waiting: Vec<oneshot::Sender<Answer>>,
}

impl WriterState {
    /// Rolls back a logical write left behind, if any. On failure the group is failed.
    fn settle(&mut self) -> rusqlite::Result<()> {
        if !self.undo {
            return Ok(());
        }
        self.undo = false;
        let undone = self.conn.execute_batch(UNDO);
        if let Err(e) = &undone {
            self.fail_group(&format!("the write group's transaction was lost: {e}"));
        }
        undone
    }

    /// Rolls the outer transaction back and tells every waiting member why.
    fn fail_group(&mut self, why: &str) {
        if self.open {
            // It may already be gone (that is often why we are here); nothing more to do then.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.open = false;
        }
        for member in self.waiting.drain(..) {
            let _ = member.send(Err(why.to_string()));
        }
    }

    /// Commits the open group and answers its members (blocking: waits for the disk).
    fn commit_group(&mut self) {
        if self.settle().is_err() || !self.open {
            return;
        }
        if self.waiting.is_empty() {
            // Only rolled-back writes: end the transaction so other processes may write.
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "ending an empty write group failed");
            }
            self.open = false;
            return;
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.open = false;
                for member in self.waiting.drain(..) {
                    let _ = member.send(Ok(()));
                }
            }
            Err(e) => self.fail_group(&format!("committing the write group failed: {e}")),
        }
    }
}

/// The writer shared by every clone of the backend and by the logical writes in flight.
pub(crate) struct Writer {
    state: Arc<Mutex<WriterState>>,
    wake: Arc<Wake>,
}

/// How logical writes wake the committer, and how the writer tells it to end.
struct Wake {
    notify: Notify,
    closed: AtomicBool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Nobody can write any more (every logical write holds the writer): the committer ends.
        self.wake.closed.store(true, Ordering::SeqCst);
        self.wake.notify.notify_one();
    }
}

impl Writer {
    /// Wraps the (migrated, configured) writer connection and starts its committer task.
    pub(crate) fn start(conn: Connection) -> Arc<Writer> {
        let state = Arc::new(Mutex::new(WriterState { conn, open: false, undo: false, waiting: Vec::new() }));
        let wake = Arc::new(Wake { notify: Notify::new(), closed: AtomicBool::new(false) });
        tokio::spawn(committer(Arc::downgrade(&state), wake.clone()));
        Arc::new(Writer { state, wake })
    }

    /// Begins a logical write: waits for the connection, joins (or opens) the group's
    /// transaction and sets the write's savepoint.
    pub(crate) async fn begin(self: &Arc<Self>) -> rusqlite::Result<LogicalWrite> {
        let mut guard = self.state.clone().lock_owned().await;
        guard.settle()?;
        if !guard.open {
            // Inline: only another process holding the file's write lock can make this wait
            // (up to the busy timeout).
            guard.conn.execute_batch("BEGIN IMMEDIATE")?;
            guard.open = true;
        }
        if let Err(e) = guard.conn.execute_batch(SAVEPOINT) {
            guard.fail_group(&format!("starting a write failed: {e}"));
            return Err(e);
        }
        Ok(LogicalWrite { guard: Some(guard), writer: self.clone() })
    }
}

/// Commits groups as long as the writer exists: woken by each logical commit (and rollback).
async fn committer(state: Weak<Mutex<WriterState>>, wake: Arc<Wake>) {
    loop {
        wake.notify.notified().await;
        if wake.closed.load(Ordering::SeqCst) {
            return;
        }
        let Some(state) = state.upgrade() else { return };
        // Fair mutex: this queues behind every write already waiting, which join the group.
        let mut guard = state.lock_owned().await;
        // The commit waits for the disk: off the async workers, holding the connection.
        let done = tokio::task::spawn_blocking(move || guard.commit_group()).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "the group commit task failed");
        }
    }
}

/// One logical write in progress: holds the writer connection until `commit` or drop.
pub(crate) struct LogicalWrite {
    guard: Option<OwnedMutexGuard<WriterState>>,
    writer: Arc<Writer>,
}

impl LogicalWrite {
    /// The connection, for the write's statements.
    pub(crate) fn conn(&mut self) -> Option<&Connection> {
        self.guard.as_ref().map(|g| &g.conn)
    }

    /// Makes the write part of the group and waits until the group is on disk.
    pub(crate) async fn commit(mut self) -> Result<(), String> {
        let Some(mut guard) = self.guard.take() else {
            return Err("the write was already finished".into());
        };
        if let Err(e) = guard.conn.execute_batch(RELEASE) {
            let why = format!("the write group's transaction was lost: {e}");
            guard.fail_group(&why);
            return Err(why);
        }
        let (member, answer) = oneshot::channel();
        guard.waiting.push(member);
        drop(guard);
        self.writer.wake.notify.notify_one();
        answer.await.unwrap_or_else(|_| Err("the writer stopped before committing".into()))
    }
}

impl Drop for LogicalWrite {
    /// A write that ends without `commit` (a refusal, an idempotent replay, a version
    /// conflict, a cancelled request) is rolled back to its savepoint, and then the group it
    /// joined is committed at once, here, before its caller goes on: what it read may include
    /// the group's earlier, still uncommitted writes (say, the resource an idempotency key
    /// points at, or the version it lost to), and its caller is about to act on that through
    /// the readers, which see only committed data. A group with no committed member is just
    /// ended. This blocks the current worker for one flush, only on this path.
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.undo = true;
            guard.commit_group();
        }
    }
}
