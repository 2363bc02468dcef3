//! The storage contract suite: every case runs against every adapter of `genai_store::Store`.
//!
//! The application is written against the trait alone, so the SQLite and PostgreSQL adapters
//! must be indistinguishable to it: the same answers, the same errors, and the same invariants
//! under concurrency (SPEC §3: no overspending, `total = available + allocated`, each
//! transaction exactly once; SPEC §5: a due change takes effect exactly once). Each case is
//! written once, as an `async fn` over `Arc<dyn Store>` in [`cases`], and the
//! `contract_suite!` macro turns it into one test per backend:
//!
//! * `sqlite::<case>` always runs, on a fresh database file per test;
//! * `postgres::<case>` runs on a fresh database per test (`CREATE DATABASE
//!   genai_contract_<random>`, dropped afterwards) when `GENAI_TEST_POSTGRES_URL` names a
//!   server, e.g. `postgres://postgres@127.0.0.1:5432/test`. Without it the PostgreSQL half
//!   says once on stderr that it is skipped and its tests pass vacuously, unless
//!   `GENAI_REQUIRE_POSTGRES=1` (meant for CI), which makes a missing or unreachable server fail.
//!
//! `postgres_only::*` covers what only the server-backed adapter must get right: instances
//! that start at once migrate once, and the per-connection statement timeout is in force.
//!
//! Cases run inside a spawned task so that a failing assertion still lets the harness drop
//! the per-test database before the panic is re-raised.

#![expect(clippy::expect_used, reason = "a test stops at the first broken expectation, loudly")]

use genai_store::Store;
use genai_store_postgres::PgOptions;
use sqlx::Connection;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Names the PostgreSQL server to run the suite against.
const PG_URL_VAR: &str = "GENAI_TEST_POSTGRES_URL";
/// `1` when a missing or unreachable PostgreSQL must fail the suite instead of skipping it.
const PG_REQUIRED_VAR: &str = "GENAI_REQUIRE_POSTGRES";

/// A name no other test (in this or a concurrent run) uses: a per-process random hash of a
/// counter, the process id and the time.
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:016x}", h.finish())
}

/// Re-raises a case's panic (after the harness has cleaned up).
fn finish(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("the test case was cancelled: {e}");
    }
}

/// Runs a case against a fresh SQLite database file.
async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = std::env::temp_dir().join(format!("genai-contract-{}.db", unique_suffix()));
    run_sqlite_at(path, case).await;
}

/// Runs a case against a fresh SQLite database at `path`, removed afterwards.
async fn run_sqlite_at<F, Fut>(path: std::path::PathBuf, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store =
        genai_store_sqlite::open(&format!("sqlite://{}", path.display())).await.expect("a fresh SQLite store opens");
    let outcome = tokio::spawn(case(Arc::new(store))).await;
    for suffix in ["", "-wal", "-shm"] {
        // Best effort: a leftover file in the temp dir harms nothing.
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    finish(outcome);
}

/// The PostgreSQL URL to test against, or `None` (after saying so once) when there is none.
fn postgres_url() -> Option<String> {
    static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
    let required = std::env::var(PG_REQUIRED_VAR).is_ok_and(|v| v.trim() == "1");
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !required,
                "{PG_REQUIRED_VAR}=1 but {PG_URL_VAR} is not set: the storage contract must run on PostgreSQL"
            );
            SKIP_NOTICE.call_once(|| {
                // Straight to the process's stderr: libtest would swallow `eprintln!` of a
                // passing test, and a silent skip is what this line exists to prevent.
                let _ = writeln!(
                    std::io::stderr(),
                    "storage contract: PostgreSQL half SKIPPED for lack of {PG_URL_VAR} \
                     (e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test); the postgres::* and postgres_only::* tests pass without running"
                );
            });
            None
        }
    }
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Runs `test` with the URL of a fresh, empty PostgreSQL database, and drops the database
/// afterwards (also when `test` panics); does nothing when no server is configured.
async fn with_scratch_postgres<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = postgres_url() else { return };
    // The error never contains the password; the URL is deliberately not printed.
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{PG_URL_VAR} is set but PostgreSQL cannot be reached: {e}"));
    // The name is generated here (hex digits), never taken from input.
    let database = format!("genai_contract_{}", unique_suffix());
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("the test user may create databases");
    let outcome = tokio::spawn(test(with_database(&url, &database))).await;
    // FORCE ends the connections a panicking test left open.
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&mut admin).await;
    if let Err(e) = dropped {
        let _ = writeln!(std::io::stderr(), "storage contract: could not drop {database}: {e}");
    }
    let _ = admin.close().await;
    finish(outcome);
}

/// Runs a case against a fresh PostgreSQL database, when a server is configured.
async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_scratch_postgres(|url| async move {
        let store = Arc::new(
            genai_store_postgres::open(&url, PgOptions::default())
                .await
                .expect("a fresh PostgreSQL store opens and migrates"),
        );
        case(store.clone()).await;
        store.backend().close().await;
    })
    .await;
}

/// One `#[tokio::test]` per case and backend: `sqlite::<case>` and `postgres::<case>`.
macro_rules! contract_suite {
    ($($case:ident),+ $(,)?) => {
        /// The contract on SQLite.
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_sqlite(super::cases::$case).await;
                }
            )+
        }

        /// The contract on PostgreSQL.
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_postgres(super::cases::$case).await;
                }
            )+
        }
    };
}

contract_suite!(
    company_create_get_update,
    grants_with_and_without_idempotency_key,
    users_have_unique_emails,
    api_tokens_work_until_revoked_or_expired,
    disabled_users_are_refused_at_once,
    expired_sessions_and_old_keys_are_purged,
    grants_stop_short_of_overflow,
    insert_resource_allocates,
    insufficient_tokens_write_nothing,
    insert_resource_is_idempotent,
    live_display_names_are_unique,
    stale_change_writes_nothing,
    plan_changes_allocate_and_release,
    pending_release_counts_scheduled_changes,
    resources_filter_and_paginate,
    linked_knowledge_bases_are_live_ones,
    due_changes_apply_earliest_first,
    audit_events_newest_first,
    guard_bump_makes_racing_writer_stale,
    concurrent_allocations_never_overspend,
    concurrent_changes_apply_once,
    concurrent_idempotent_grants_apply_once,
    concurrent_duplicate_names_one_wins,
    concurrent_schedulers_apply_each_due_change_once,
    provisioning_makes_the_named_person_a_member,
    members_join_and_leave_but_never_the_last,
    concurrent_removals_never_empty_a_team,
    a_deprovisioned_team_cannot_change,
    keys_are_created_listed_found_and_revoked,
    deprovisioning_revokes_every_key_at_once,
    leases_grant_between_need_and_what_is_free,
    expired_leases_stop_counting,
    commits_move_held_to_used_exactly,
    month_usage_is_read_in_batches_in_the_order_asked,
    concurrent_leases_never_exceed_the_quota,
    concurrent_acquisitions_never_grant_past_the_quota,
    kb_chunks_are_stored_listed_and_deleted,
    kb_inserts_over_the_quota_or_of_another_dimension_store_nothing,
    kb_concurrent_inserts_never_exceed_the_quota,
    kb_deprovisioning_deletes_the_content,
);

/// Plain SQL on the database under a store, to break rows the way a bug or a hand edit would:
/// what the port itself never lets anyone write.
#[derive(Clone)]
pub enum Raw {
    /// A SQLite URL.
    Sqlite(String),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Raw {
    /// Runs one statement with one text argument (`$1`).
    async fn execute(&self, sql: &str, arg: &str) {
        match self {
            Raw::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
                sqlx::query(sql).bind(arg).execute(&mut c).await.expect("raw statement");
                let _ = c.close().await;
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::query(sql).bind(arg).execute(&mut c).await.expect("raw statement");
                let _ = c.close().await;
            }
        }
    }

    /// Runs a script of several statements.
    async fn script(&self, sql: &str) {
        use sqlx::Executor;
        match self {
            Raw::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
                c.execute(sqlx::raw_sql(sql)).await.expect("raw script");
                let _ = c.close().await;
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
                c.execute(sqlx::raw_sql(sql)).await.expect("raw script");
                let _ = c.close().await;
            }
        }
    }

    /// One `BIGINT` of one row (`$1` the id).
    async fn int(&self, sql: &str, arg: &str) -> Option<i64> {
        match self {
            Raw::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
                sqlx::query_scalar(sql).bind(arg).fetch_one(&mut c).await.expect("raw query")
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::query_scalar(sql).bind(arg).fetch_one(&mut c).await.expect("raw query")
            }
        }
    }
}

/// Cases that break rows with [`Raw`] SQL, on both backends.
mod broken_rows {
    use super::{run_postgres_raw, run_sqlite_raw};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_sets_broken_due_changes_aside() {
        run_sqlite_raw(super::cases::broken_due_changes_are_set_aside).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_sets_broken_due_changes_aside() {
        run_postgres_raw(super::cases::broken_due_changes_are_set_aside).await;
    }
}

/// Migration 0004 turns the old `resource_members` rows (a name and an email, a user only
/// sometimes) into team members who are users of the resource's company, on both backends: a
/// database at version 3 with such rows is opened by this build.
mod team_migration {
    use super::{unique_suffix, with_scratch_postgres, Raw};
    use genai_core::{ResourceId, UserId};
    use genai_store::{Role, Store};
    use std::sync::Arc;

    /// The migration bookkeeping of a database at version 3 (`schema_migrations` as the
    /// adapter creates it); the schema itself comes from the adapter's own migrations.
    fn version_3_with_members(schema_migrations: &str) -> String {
        let mut sql = format!("{schema_migrations};\n");
        for (version, name, _) in genai_store_sqlite::migrations().iter().filter(|m| m.0 <= 3) {
            sql.push_str(&format!("INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}');\n"));
        }
        sql
    }

    const ROWS: &str = "
        INSERT INTO companies (id, name, price_list, accounts, enterprise_subscriptions, created_at)
        VALUES ('cmp_a', 'A', 'FY21', 1, 1, 0), ('cmp_b', 'B', 'FY21', 1, 1, 0);
        INSERT INTO users (id, company_id, name, email, role, password_hash, created_at)
        VALUES ('usr_known', 'cmp_a', 'Known', 'known@example.com', 'member', NULL, 0),
               ('usr_other', 'cmp_b', 'Other', 'other@example.com', 'company_admin', NULL, 0);
        INSERT INTO resources (id, company_id, resource_type, display_name, name_key, environment, region,
            cross_region_inference, model, plan, cloud_tokens, created_for_name, created_for_email, status,
            created_at, pending_release, version)
        VALUES ('res_01A', 'cmp_a', 'text_generation', 'One', 'one', 'test', 'eu-central-1', TRUE,
                'claude-sonnet-4.6', 'small', 30, 'Known', 'known@example.com', 'active', 1000, 0, 0),
               ('res_01B', 'cmp_a', 'text_generation', 'Two', 'two', 'test', 'eu-central-1', TRUE,
                'claude-sonnet-4.6', 'small', 30, 'New Person', 'new@example.com', 'active', 2000, 0, 0),
               ('res_01C', 'cmp_a', 'text_generation', 'Three', 'three', 'test', 'eu-central-1', TRUE,
                'claude-sonnet-4.6', 'small', 30, 'New Again', 'new@example.com', 'active', 3000, 0, 0),
               ('res_01D', 'cmp_a', 'text_generation', 'Four', 'four', 'test', 'eu-central-1', TRUE,
                'claude-sonnet-4.6', 'small', 30, 'Other', 'other@example.com', 'active', 4000, 0, 0);
        INSERT INTO resource_members (resource_id, email, name, user_id, invited, added_at)
        VALUES ('res_01A', 'known@example.com', 'Known', 'usr_known', FALSE, 1000),
               ('res_01B', 'new@example.com', 'New Person', NULL, TRUE, 2000),
               ('res_01C', 'new@example.com', 'New Again', NULL, TRUE, 3000),
               ('res_01D', 'other@example.com', 'Other', NULL, TRUE, 4000);
    ";

    /// A known user joins; a new email becomes one user (of the first row naming it) on both
    /// teams; another company's login is dropped.
    async fn check(store: Arc<dyn Store>) {
        let team = |id: &str| {
            let store = store.clone();
            let id = ResourceId(id.into());
            async move { store.members(&id).await.expect("members").into_iter().map(|m| m.user_id).collect::<Vec<_>>() }
        };
        assert_eq!(team("res_01A").await, [UserId("usr_known".into())]);
        let created = UserId("usr_01B".into());
        assert_eq!(team("res_01B").await, std::slice::from_ref(&created));
        assert_eq!(team("res_01C").await, std::slice::from_ref(&created), "the same person, one user");
        assert!(team("res_01D").await.is_empty(), "another company's login does not join");
        let user = store.user(&created).await.expect("user").expect("created");
        assert_eq!(
            (user.name.as_str(), user.email.as_str(), user.role, user.company_id.as_str(), user.password_hash),
            ("New Person", "new@example.com", Role::Member, "cmp_a", None)
        );
        assert_eq!(user.created_at.timestamp_millis(), 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_members_become_users() {
        let path = std::env::temp_dir().join(format!("genai-contract-{}.db", unique_suffix()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let raw = Raw::Sqlite(url.clone());
        let mut setup = version_3_with_members(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        );
        for (_, _, sql) in genai_store_sqlite::migrations().iter().filter(|m| m.0 <= 3) {
            setup.push_str(sql);
            setup.push('\n');
        }
        setup.push_str(ROWS);
        raw.script(&setup).await;
        let store = genai_store_sqlite::open(&format!("sqlite://{}", path.display())).await.expect("open migrates");
        let outcome = tokio::spawn(check(Arc::new(store))).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        super::finish(outcome);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_members_become_users() {
        with_scratch_postgres(|url| async move {
            let mut setup = version_3_with_members(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            );
            for (_, _, sql) in genai_store_postgres::migrations().iter().filter(|m| m.0 <= 3) {
                setup.push_str(sql);
                setup.push('\n');
            }
            setup.push_str(ROWS);
            Raw::Postgres(url.clone()).script(&setup).await;
            let store = genai_store_postgres::open(&url, genai_store_postgres::PgOptions::default())
                .await
                .expect("open migrates");
            let store = Arc::new(store);
            check(store.clone()).await;
            store.backend().close().await;
        })
        .await;
    }
}

/// [`run_sqlite`] for a case that also breaks rows.
async fn run_sqlite_raw<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>, Raw) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = std::env::temp_dir().join(format!("genai-contract-{}.db", unique_suffix()));
    let url = format!("sqlite://{}", path.display());
    run_sqlite_at(path, |store| case(store, Raw::Sqlite(url))).await;
}

/// [`run_postgres`] for a case that also breaks rows.
async fn run_postgres_raw<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>, Raw) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_scratch_postgres(|url| async move {
        let store = genai_store_postgres::open(&url, PgOptions::default()).await.expect("open");
        let store = Arc::new(store);
        case(store.clone(), Raw::Postgres(url)).await;
        store.backend().close().await;
    })
    .await;
}

/// What only the PostgreSQL adapter has to get right: several processes on one database, and
/// its connection settings. Skipped like the `postgres` half when no server is configured.
mod postgres_only {
    use super::fixtures::{at, audit, funded_company, grant};
    use super::with_scratch_postgres;
    use genai_store::{error_chain, ResourceStore, StoreError};
    use genai_store_postgres::PgOptions;
    use sqlx::Connection;
    use std::time::Duration;

    /// Instances starting at once against an empty database: one migrates, the others wait
    /// for it on the advisory lock and then find the schema in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_opens_migrate_once() {
        with_scratch_postgres(|url| async move {
            let options = PgOptions { max_connections: 2, ..PgOptions::default() };
            let mut opening = Vec::new();
            for _ in 0..6 {
                let (url, options) = (url.clone(), options.clone());
                opening.push(tokio::spawn(async move { genai_store_postgres::open(&url, options).await }));
            }
            let mut stores = Vec::new();
            for task in opening {
                stores.push(task.await.expect("task").expect("every instance opens"));
            }
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .expect("schema_migrations");
            let known: Vec<i64> = genai_store_postgres::migrations().iter().map(|m| m.0).collect();
            assert_eq!(applied, known, "each migration applied once");
            let c = funded_company(&stores[0], 10).await;
            for store in &stores {
                assert_eq!(store.balance(&c).await.expect("balance").total.get(), 10, "one database");
                store.backend().close().await;
            }
            let _ = conn.close().await;
        })
        .await;
    }

    /// The statement timeout is set on every pooled connection: a write stuck behind another
    /// session's row lock is cancelled by the server instead of hanging, and writes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn statement_timeout_cancels_a_stuck_write() {
        with_scratch_postgres(|url| async move {
            let options = PgOptions { max_connections: 2, statement_timeout: Some(Duration::from_millis(300)) };
            let store = genai_store_postgres::open(&url, options).await.expect("open");
            let c = funded_company(&store, 10).await;
            let mut locker = sqlx::PgConnection::connect(&url).await.expect("connect");
            let mut tx = locker.begin().await.expect("begin");
            sqlx::query("SELECT 1 FROM companies WHERE id = $1 FOR UPDATE")
                .bind(c.as_str())
                .execute(&mut *tx)
                .await
                .expect("lock the company row");
            let when = at("2025-01-02T00:00:00Z");
            let started = std::time::Instant::now();
            let r = store.grant_tokens(&grant(&c, 5, when), None, &audit(Some(&c), "tokens.granted", when)).await;
            let timed_out = match &r {
                Err(e @ StoreError::Database(_)) => error_chain(e).contains("statement timeout"),
                _ => false,
            };
            assert!(timed_out, "{r:?}");
            assert!(started.elapsed() < Duration::from_secs(10), "cancelled, not waited out");
            tx.rollback().await.expect("rollback");
            assert_eq!(store.balance(&c).await.expect("balance").total.get(), 10, "nothing written");
            store.backend().close().await;
            let _ = locker.close().await;
        })
        .await;
    }
}

/// Building blocks of the cases: domain values with sensible defaults, and the invariants
/// every case checks after writing.
mod fixtures {
    use chrono::{DateTime, Utc};
    use genai_core::catalog::{Catalog, PlanSize, ResourceType};
    use genai_core::ledger::TransactionKind;
    use genai_core::resource::{Change, Environment, Person, Resource, Status};
    use genai_core::validation::{DisplayName, Email, PersonName};
    use genai_core::{CloudTokens, CompanyId, Instant};
    use genai_store::{
        AuditEvent, Company, Grant, Guard, HistoryPage, IdempotencyKey, Idempotent, NewResource, ResourceQuery,
        ResourceWrite, Store, StoreResult,
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;

    /// The built-in catalog: resources cost what they would cost in the product.
    pub static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);

    /// A fresh id with a prefix; ids sort in the order they were made, like the app's.
    pub fn next_id(prefix: &str) -> String {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_{:010}", SEQ.fetch_add(1, Ordering::Relaxed))
    }

    /// An RFC 3339 instant.
    pub fn at(s: &str) -> Instant {
        DateTime::parse_from_rfc3339(s).expect("a valid test instant").with_timezone(&Utc)
    }

    /// A company (not yet stored).
    pub fn company(name: &str) -> Company {
        Company {
            id: CompanyId(next_id("cmp")),
            name: name.into(),
            price_list: "FY21".into(),
            accounts: 3,
            enterprise_subscriptions: 1,
            created_at: at("2025-01-01T00:00:00Z"),
        }
    }

    /// An audit event.
    pub fn audit(company: Option<&CompanyId>, action: &str, when: Instant) -> AuditEvent {
        AuditEvent {
            id: next_id("aud"),
            company_id: company.cloned(),
            at: when,
            actor: "operator".into(),
            action: action.into(),
            resource_id: None,
            details: serde_json::json!({ "test": action }),
        }
    }

    /// A grant (not yet written).
    pub fn grant(company: &CompanyId, tokens: i64, when: Instant) -> Grant {
        Grant {
            transaction_id: next_id("txn"),
            company_id: company.clone(),
            tokens: CloudTokens(tokens),
            note: Some(format!("grant of {tokens}")),
            at: when,
        }
    }

    /// An idempotency key.
    pub fn key(scope: &str, key: &str, fingerprint: &str) -> IdempotencyKey {
        IdempotencyKey { scope: scope.into(), key: key.into(), fingerprint: fingerprint.into() }
    }

    /// Stores a company and grants it `tokens` (none when 0).
    pub async fn funded_company(store: &dyn Store, tokens: i64) -> CompanyId {
        let c = company("Acme");
        let when = at("2025-01-01T00:00:00Z");
        store.create_company(&c, &audit(Some(&c.id), "company.created", when)).await.expect("create company");
        if tokens > 0 {
            let done = store
                .grant_tokens(&grant(&c.id, tokens, when), None, &audit(Some(&c.id), "tokens.granted", when))
                .await
                .expect("grant");
            assert_eq!(done, Idempotent::Done(()));
        }
        c.id
    }

    /// A resource of the catalog's price (not yet stored), version 0.
    pub fn resource(
        company: &CompanyId,
        resource_type: ResourceType,
        plan: PlanSize,
        name: &str,
        created_at: Instant,
    ) -> Resource {
        let model = match resource_type {
            ResourceType::TextGeneration => Some("claude-sonnet-4.5".to_string()),
            ResourceType::EmbeddingsGeneration => Some("cohere-embed-v4".to_string()),
            ResourceType::KnowledgeBase => None,
        };
        Resource {
            id: genai_core::ResourceId(next_id("res")),
            company_id: company.clone(),
            resource_type,
            display_name: DisplayName::parse(name).expect("a valid display name"),
            environment: Environment::Production,
            region: "eu-central-1".into(),
            cross_region_inference: resource_type != ResourceType::KnowledgeBase,
            model,
            plan,
            cloud_tokens: CATALOG.plan(resource_type, plan).expect("the catalog has the plan").cloud_tokens,
            created_for: Person {
                name: PersonName::parse("Ada Lovelace").expect("a valid name"),
                email: Email::parse("ada@example.com").expect("a valid email"),
            },
            status: Status::Active,
            created_at,
            scheduled: None,
            deprovisioned_at: None,
            embeddings_resource_id: None,
            version: 0,
        }
    }

    /// A small text-generation resource (30 tokens).
    pub fn text(company: &CompanyId, name: &str, created_at: Instant) -> Resource {
        resource(company, ResourceType::TextGeneration, PlanSize::Small, name, created_at)
    }

    /// The write that provisions `r`.
    pub fn provision(r: &Resource) -> NewResource {
        let mut audit = audit(Some(&r.company_id), "resource.provisioned", r.created_at);
        audit.resource_id = Some(r.id.clone());
        NewResource { resource: r.clone(), transaction_id: next_id("txn"), member: None, audit }
    }

    /// Provisions `r` without guard or idempotency key.
    pub async fn insert(store: &dyn Store, r: &Resource) -> StoreResult<Idempotent<()>> {
        store.insert_resource(&provision(r), None, None).await
    }

    /// The write of a decided change.
    pub fn write(change: Change, guard: Option<Guard>) -> ResourceWrite {
        let mut audit = audit(Some(&change.next.company_id), change.action, change.at);
        audit.resource_id = Some(change.next.id.clone());
        ResourceWrite { change, transaction_id: next_id("txn"), guard, audit }
    }

    /// Writes a decided change without guard.
    pub async fn apply(store: &dyn Store, change: Change) -> StoreResult<()> {
        store.apply_change(&write(change, None)).await
    }

    /// The stored state of `r`.
    pub async fn reload(store: &dyn Store, r: &Resource) -> Resource {
        store.resource(&r.company_id, &r.id).await.expect("read resource").expect("the resource exists")
    }

    /// All resources of a company, deprovisioned ones included.
    pub fn all_of(company: &CompanyId) -> ResourceQuery {
        ResourceQuery {
            company_id: company.clone(),
            resource_type: None,
            include_deprovisioned: true,
            after_id: None,
            limit: None,
        }
    }

    /// SPEC §3's invariants for one company, from what the store reports: `available = total −
    /// allocated ≥ 0`; `allocated` is the sum of the live resources' costs; `pending_release`
    /// is what their scheduled changes will release; the ledger adds up to the counters.
    pub async fn assert_books_balance(store: &dyn Store, company: &CompanyId) {
        let b = store.balance(company).await.expect("balance");
        assert!(b.available.get() >= 0, "available went negative: {b:?}");
        assert_eq!(b.available.get(), b.total.get() - b.allocated.get(), "{b:?}");
        let live: Vec<Resource> =
            store.resources(&all_of(company)).await.expect("resources").into_iter().filter(|r| r.is_live()).collect();
        assert_eq!(b.allocated.get(), live.iter().map(|r| r.cloud_tokens.get()).sum::<i64>(), "allocated");
        assert_eq!(
            b.pending_release.get(),
            live.iter().map(|r| r.pending_release().expect("pending release").get()).sum::<i64>(),
            "pending"
        );
        let ledger = store.transactions(company, &HistoryPage::newest(100_000)).await.expect("transactions");
        let sum = |kind: TransactionKind| ledger.iter().filter(|t| t.kind == kind).map(|t| t.tokens.get()).sum::<i64>();
        assert_eq!(b.total.get(), sum(TransactionKind::Grant), "granted");
        assert_eq!(b.allocated.get(), sum(TransactionKind::Allocate) - sum(TransactionKind::Release), "allocated");
    }
}

/// The runtime's cases (teams, keys, usage, leases), in a file of their own.
#[path = "contract/runtime.rs"]
mod runtime_cases;

/// The knowledge-content cases (collections, chunks, the storage quota), in a file of their own.
#[path = "contract/knowledge.rs"]
mod knowledge_cases;

/// The cases: each gets a store of its own with an empty, migrated database.
mod cases {
    use super::fixtures::*;
    pub use super::knowledge_cases::*;
    pub use super::runtime_cases::*;
    use genai_core::catalog::{PlanSize, ResourceType};
    use genai_core::ledger::{Balance, TransactionKind};
    use genai_core::resource::{Resource, Status};
    use genai_core::Instant;
    use genai_core::{CloudTokens, CompanyId, ResourceId, UserId};
    use genai_store::{
        ApiToken, Guard, HistoryPage, Idempotent, ResourceQuery, Role, Session, Store, StoreError, StoreResult, User,
    };
    use std::sync::Arc;

    fn tokens(n: i64) -> CloudTokens {
        CloudTokens(n)
    }

    fn balance_of(total: CloudTokens, allocated: CloudTokens, pending: CloudTokens) -> Balance {
        Balance::new(total, allocated, pending).expect("a balance no overflow can break")
    }

    pub async fn company_create_get_update(store: Arc<dyn Store>) {
        let s = &*store;
        assert!(!s.has_companies().await.expect("has_companies"));
        let mut c = company("Acme");
        s.create_company(&c, &audit(Some(&c.id), "company.created", at("2025-01-01T00:00:00Z"))).await.expect("create");
        assert!(s.has_companies().await.expect("has_companies"));
        assert_eq!(s.company(&c.id).await.expect("company"), Some(c.clone()));
        assert_eq!(s.company(&CompanyId("cmp_unknown".into())).await.expect("company"), None);

        let other = company("Beta");
        s.create_company(&other, &audit(Some(&other.id), "company.created", at("2025-01-01T00:00:01Z")))
            .await
            .expect("create");
        let ids: Vec<CompanyId> = s.companies().await.expect("companies").into_iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![c.id.clone(), other.id.clone()], "companies in id order");

        c.name = "Acme Corporation".into();
        c.price_list = "FY24".into();
        c.accounts = 12;
        c.enterprise_subscriptions = 0;
        s.update_company(&c, &audit(Some(&c.id), "company.updated", at("2025-01-02T00:00:00Z"))).await.expect("update");
        assert_eq!(s.company(&c.id).await.expect("company"), Some(c.clone()));

        let mut ghost = company("Ghost");
        ghost.id = CompanyId("cmp_unknown".into());
        let r = s.update_company(&ghost, &audit(Some(&ghost.id), "company.updated", at("2025-01-03T00:00:00Z"))).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        assert!(
            s.audit_events(&ghost.id, &HistoryPage::newest(10)).await.expect("audit").is_empty(),
            "a failed write audits nothing"
        );

        assert_eq!(s.balance(&c.id).await.expect("balance"), Balance::default());
        let r = s.balance(&ghost.id).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        let actions: Vec<String> = s
            .audit_events(&c.id, &HistoryPage::newest(10))
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["company.updated", "company.created"]);
    }

    pub async fn grants_with_and_without_idempotency_key(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let t1 = at("2025-01-02T00:00:00Z");
        let first = grant(&c, 100, t1);
        let r = s.grant_tokens(&first, None, &audit(Some(&c), "tokens.granted", t1)).await.expect("grant");
        assert_eq!(r, Idempotent::Done(()));
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(100), tokens(0), tokens(0)));

        let t2 = at("2025-01-03T00:00:00Z");
        let k = key("operator", "grant-2", "fp-a");
        let second = grant(&c, 250, t2);
        let r = s.grant_tokens(&second, Some(&k), &audit(Some(&c), "tokens.granted", t2)).await.expect("grant");
        assert_eq!(r, Idempotent::Done(()));
        // The retry carries a new transaction id (the app generates one per attempt); the key
        // makes it a replay of the first, which it names.
        let retry = grant(&c, 250, at("2025-01-03T00:00:05Z"));
        let r = s.grant_tokens(&retry, Some(&k), &audit(Some(&c), "tokens.granted", retry.at)).await.expect("replay");
        assert_eq!(r, Idempotent::Replayed(second.transaction_id.clone()));
        let conflicting = key("operator", "grant-2", "fp-b");
        let other_body = grant(&c, 999, at("2025-01-03T00:00:06Z"));
        let r =
            s.grant_tokens(&other_body, Some(&conflicting), &audit(Some(&c), "tokens.granted", other_body.at)).await;
        assert!(matches!(r, Err(StoreError::IdempotencyConflict)), "{r:?}");
        assert_eq!(s.balance(&c).await.expect("balance").total, tokens(350), "the replay is counted once");

        assert_eq!(s.idempotent_result(&k).await.expect("lookup"), Some(second.transaction_id.clone()));
        let r = s.idempotent_result(&conflicting).await;
        assert!(matches!(r, Err(StoreError::IdempotencyConflict)), "{r:?}");
        assert_eq!(s.idempotent_result(&key("operator", "never-used", "fp")).await.expect("lookup"), None);

        // Keys are per scope: another caller's identical key is a different request.
        let t3 = at("2025-01-04T00:00:00Z");
        let third = grant(&c, 50, t3);
        let r = s
            .grant_tokens(&third, Some(&key("usr_other", "grant-2", "fp-a")), &audit(Some(&c), "tokens.granted", t3))
            .await
            .expect("grant");
        assert_eq!(r, Idempotent::Done(()));

        let ledger = s.transactions(&c, &HistoryPage::newest(10)).await.expect("transactions");
        let ids: Vec<&str> = ledger.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, [&third.transaction_id, &second.transaction_id, &first.transaction_id], "newest first");
        let after: Vec<i64> = ledger.iter().map(|t| t.available_after.get()).collect();
        assert_eq!(after, [400, 350, 100]);
        let newest = &ledger[0];
        assert_eq!(newest.kind, TransactionKind::Grant);
        assert_eq!(newest.tokens, tokens(50));
        assert_eq!(newest.at, t3);
        assert_eq!(newest.company_id, c);
        assert_eq!((newest.debit_account.as_str(), newest.credit_account.as_str()), ("operator", "available"));
        assert_eq!(newest.resource_id, None);
        assert_eq!(newest.note.as_deref(), Some("grant of 50"));
        assert_eq!(s.transactions(&c, &HistoryPage::newest(2)).await.expect("transactions").len(), 2, "limit");
        let grants_audited = s
            .audit_events(&c, &HistoryPage::newest(100))
            .await
            .expect("audit")
            .iter()
            .filter(|e| e.action == "tokens.granted")
            .count();
        assert_eq!(grants_audited, 3, "replays and conflicts audit nothing");

        let missing = grant(&CompanyId("cmp_unknown".into()), 10, t3);
        let r = s.grant_tokens(&missing, None, &audit(None, "tokens.granted", t3)).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        assert_books_balance(s, &c).await;
    }

    fn user(company: &CompanyId, email: &str, role: Role, password_hash: Option<&str>) -> User {
        User {
            id: UserId(next_id("usr")),
            company_id: company.clone(),
            name: "Grace Hopper".into(),
            email: email.into(),
            role,
            password_hash: password_hash.map(Into::into),
            created_at: at("2025-01-05T10:00:00.123Z"),
            disabled_at: None,
        }
    }

    pub async fn users_have_unique_emails(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let when = at("2025-01-05T10:00:00Z");
        let admin =
            user(&c, "grace@example.com", Role::CompanyAdmin, Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
        s.create_user(&admin, &audit(Some(&c), "user.created", when)).await.expect("create user");
        assert_eq!(s.user(&admin.id).await.expect("user"), Some(admin.clone()));
        assert_eq!(s.user_by_email("grace@example.com").await.expect("user"), Some(admin.clone()));
        assert_eq!(s.user_by_email("nobody@example.com").await.expect("user"), None);

        let twin = user(&c, "grace@example.com", Role::Member, None);
        let r = s.create_user(&twin, &audit(Some(&c), "user.created", when)).await;
        assert!(matches!(r, Err(StoreError::Duplicate("email"))), "{r:?}");
        assert_eq!(s.user(&twin.id).await.expect("user"), None, "nothing written");

        let member = user(&c, "linus@example.com", Role::Member, None);
        s.create_user(&member, &audit(Some(&c), "user.created", when)).await.expect("create user");
        assert_eq!(s.user(&member.id).await.expect("user"), Some(member));
        let created = s
            .audit_events(&c, &HistoryPage::newest(100))
            .await
            .expect("audit")
            .iter()
            .filter(|e| e.action == "user.created")
            .count();
        assert_eq!(created, 2);
    }

    fn token(owner: &User, hash: &str, created_at: Instant, expires_at: Option<Instant>) -> ApiToken {
        ApiToken {
            id: next_id("tok"),
            user_id: owner.id.clone(),
            token_hash: hash.into(),
            description: "CI pipeline".into(),
            created_at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        }
    }

    pub async fn api_tokens_work_until_revoked_or_expired(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let when = at("2025-01-05T10:00:00Z");
        let owner = user(&c, "bot@example.com", Role::CompanyAdmin, None);
        s.create_user(&owner, &audit(Some(&c), "user.created", when)).await.expect("create user");
        let day = chrono::Duration::days(1);
        let expiring = token(&owner, &"a".repeat(64), when, Some(when + day));
        s.create_api_token(&expiring, &audit(Some(&c), "api_token.created", when)).await.expect("create token");
        let later = when + chrono::Duration::seconds(1);
        let lasting = token(&owner, &"b".repeat(64), later, None);
        s.create_api_token(&lasting, &audit(Some(&c), "api_token.created", later)).await.expect("create token");

        assert_eq!(s.token_user(&"a".repeat(64), when).await.expect("lookup"), Some((owner.clone(), expiring.clone())));
        assert_eq!(s.token_user(&"0".repeat(64), when).await.expect("lookup"), None, "unknown hash");
        let just_before = when + day - chrono::Duration::milliseconds(1);
        assert!(s.token_user(&"a".repeat(64), just_before).await.expect("lookup").is_some());
        assert_eq!(s.token_user(&"a".repeat(64), when + day).await.expect("lookup"), None, "refused from expiry on");
        assert!(s.token_user(&"b".repeat(64), when + day * 400).await.expect("lookup").is_some(), "never expires");
        let listed: Vec<String> = s.api_tokens(&owner.id).await.expect("list").into_iter().map(|t| t.id).collect();
        assert_eq!(listed, [lasting.id.clone(), expiring.id.clone()], "newest first");
        let r = s
            .create_api_token(
                &token(&user(&c, "x@example.com", Role::Member, None), "c", when, None),
                &audit(None, "x", when),
            )
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "a token of an unknown user: {r:?}");

        // At most one write per interval, whatever the number of uses.
        let minute = chrono::Duration::minutes(1);
        let id = lasting.id.as_str();
        let used = |t: Instant| async move {
            s.touch_api_token(id, t, t - minute).await.expect("touch");
            s.api_token(id).await.expect("token").expect("exists").last_used_at
        };
        let t1 = when + day;
        assert_eq!(used(t1).await, Some(t1));
        assert_eq!(used(t1 + chrono::Duration::seconds(59)).await, Some(t1), "within the minute: not written");
        assert_eq!(used(t1 + chrono::Duration::seconds(61)).await, Some(t1 + chrono::Duration::seconds(61)));

        // Revoked for good, once.
        let t2 = t1 + day;
        let revoked = audit(Some(&c), "api_token.revoked", t2);
        assert!(s.revoke_api_token(&lasting.id, t2, &revoked).await.expect("revoke"));
        assert!(!s
            .revoke_api_token(&lasting.id, t2 + day, &audit(Some(&c), "api_token.revoked", t2))
            .await
            .expect("again"));
        let r = s.revoke_api_token("tok_unknown", t2, &audit(Some(&c), "api_token.revoked", t2)).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        assert_eq!(s.token_user(&"b".repeat(64), t2).await.expect("lookup"), None, "refused once revoked");
        assert_eq!(
            s.api_token(&lasting.id).await.expect("token").expect("kept").revoked_at,
            Some(t2),
            "first revocation"
        );
        let revocations = s.audit_events(&c, &HistoryPage::all()).await.expect("audit");
        assert_eq!(revocations.iter().filter(|e| e.action == "api_token.revoked").collect::<Vec<_>>(), [&revoked]);
    }

    pub async fn disabled_users_are_refused_at_once(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let when = at("2025-01-05T10:00:00Z");
        let owner = user(&c, "ops@example.com", Role::CompanyAdmin, None);
        s.create_user(&owner, &audit(Some(&c), "user.created", when)).await.expect("create user");
        let t = token(&owner, &"d".repeat(64), when, None);
        s.create_api_token(&t, &audit(Some(&c), "api_token.created", when)).await.expect("create token");
        let hour = chrono::Duration::hours(1);
        let session =
            Session { id_hash: "e".repeat(64), user_id: owner.id.clone(), created_at: when, expires_at: when + hour };
        s.create_session(&session).await.expect("session");
        assert_eq!(s.session_user(&session.id_hash, when).await.expect("session"), Some(owner.clone()));

        let disabled = audit(Some(&c), "user.disabled", when);
        assert!(s.set_user_disabled(&owner.id, Some(when), &disabled).await.expect("disable"));
        assert!(!s
            .set_user_disabled(&owner.id, Some(when + hour), &audit(None, "user.disabled", when))
            .await
            .expect("no-op"));
        assert_eq!(s.user(&owner.id).await.expect("user").expect("kept").disabled_at, Some(when), "first disabling");
        assert_eq!(s.token_user(&t.token_hash, when).await.expect("lookup"), None, "tokens refused");
        assert_eq!(s.session_user(&session.id_hash, when).await.expect("session"), None, "sessions refused");
        let r =
            s.set_user_disabled(&UserId("usr_unknown".into()), Some(when), &audit(None, "user.disabled", when)).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");

        assert!(s.set_user_disabled(&owner.id, None, &audit(Some(&c), "user.enabled", when)).await.expect("enable"));
        assert_eq!(s.user(&owner.id).await.expect("user").expect("kept").disabled_at, None);
        assert_eq!(
            s.token_user(&t.token_hash, when).await.expect("lookup"),
            Some((owner.clone(), t.clone())),
            "tokens work again"
        );
        assert_eq!(
            s.session_user(&session.id_hash, when).await.expect("session"),
            None,
            "sessions were ended, not suspended"
        );
        let actions: Vec<String> =
            s.audit_events(&c, &HistoryPage::all()).await.expect("audit").into_iter().map(|e| e.action).collect();
        assert_eq!(actions[..2], ["user.enabled", "user.disabled"], "changes audited, no-ops not");
    }

    pub async fn expired_sessions_and_old_keys_are_purged(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let when = at("2025-01-05T10:00:00Z");
        let owner = user(&c, "purge@example.com", Role::Member, None);
        s.create_user(&owner, &audit(Some(&c), "user.created", when)).await.expect("create user");
        let hour = chrono::Duration::hours(1);
        for (hash, expires) in [("1", when), ("2", when + hour), ("3", when + hour * 2)] {
            let session =
                Session { id_hash: hash.repeat(64), user_id: owner.id.clone(), created_at: when, expires_at: expires };
            s.create_session(&session).await.expect("session");
        }
        assert_eq!(s.purge_sessions(when + hour).await.expect("purge"), 2, "expired at or before now");
        assert!(s.session_user(&"3".repeat(64), when + hour).await.expect("session").is_some(), "a live one stays");
        assert_eq!(s.purge_sessions(when + hour).await.expect("purge"), 0);

        let (old, new) = (key("operator", "old", "fp"), key("operator", "new", "fp"));
        let day = chrono::Duration::days(1);
        s.grant_tokens(&grant(&c, 1, when), Some(&old), &audit(Some(&c), "tokens.granted", when)).await.expect("grant");
        s.grant_tokens(&grant(&c, 1, when + day), Some(&new), &audit(Some(&c), "tokens.granted", when))
            .await
            .expect("grant");
        assert_eq!(s.purge_idempotency_keys(when + day).await.expect("purge"), 1, "strictly older than the cutoff");
        assert_eq!(s.idempotent_result(&old).await.expect("lookup"), None, "forgotten");
        assert!(s.idempotent_result(&new).await.expect("lookup").is_some(), "kept");
        assert_books_balance(s, &c).await;
    }

    pub async fn grants_stop_short_of_overflow(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 0).await;
        let when = at("2025-01-05T10:00:00Z");
        let near = i64::MAX - 10;
        s.grant_tokens(&grant(&c, near, when), None, &audit(Some(&c), "tokens.granted", when)).await.expect("grant");
        let k = key("operator", "too-much", "fp");
        let r = s.grant_tokens(&grant(&c, 11, when), Some(&k), &audit(Some(&c), "tokens.granted", when)).await;
        assert!(matches!(r, Err(StoreError::TotalTooLarge { headroom }) if headroom == tokens(10)), "{r:?}");
        assert_eq!(s.balance(&c).await.expect("balance").total, tokens(near), "nothing written");
        assert_eq!(s.idempotent_result(&k).await.expect("lookup"), None, "the key is not spent by a refusal");
        s.grant_tokens(&grant(&c, 10, when), None, &audit(Some(&c), "tokens.granted", when))
            .await
            .expect("exactly to the limit");
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(i64::MAX), tokens(0), tokens(0)));
        let r = s.grant_tokens(&grant(&c, 1, when), None, &audit(Some(&c), "tokens.granted", when)).await;
        assert!(matches!(r, Err(StoreError::TotalTooLarge { headroom }) if headroom == tokens(0)), "{r:?}");
        insert(s, &text(&c, "Still works", when)).await.expect("allocations still add up");
        assert_books_balance(s, &c).await;
    }

    pub async fn insert_resource_allocates(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 100).await;
        let r = text(&c, "Support bot", at("2025-02-12T09:30:00.250Z"));
        let new = provision(&r);
        assert_eq!(s.insert_resource(&new, None, None).await.expect("insert"), Idempotent::Done(()));
        assert_eq!(s.resource(&c, &r.id).await.expect("resource"), Some(r.clone()), "round trip");
        let other = funded_company(s, 0).await;
        assert_eq!(s.resource(&other, &r.id).await.expect("resource"), None, "another company's");
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(100), tokens(30), tokens(0)));

        let ledger = s.transactions(&c, &HistoryPage::newest(10)).await.expect("transactions");
        assert_eq!(ledger.len(), 2);
        let alloc = &ledger[0];
        assert_eq!(alloc.id, new.transaction_id);
        assert_eq!(alloc.kind, TransactionKind::Allocate);
        assert_eq!(alloc.tokens, tokens(30));
        assert_eq!(alloc.at, r.created_at);
        assert_eq!(alloc.resource_id.as_ref(), Some(&r.id));
        assert_eq!(alloc.available_after, tokens(70));
        assert_eq!(alloc.debit_account, "available");
        assert_eq!(alloc.credit_account, format!("resource:{}", r.id));
        assert_eq!(alloc.note, None);

        let events = s.audit_events(&c, &HistoryPage::newest(10)).await.expect("audit");
        assert_eq!(events[0], new.audit, "the audit event is stored as given");
        assert_books_balance(s, &c).await;
    }

    pub async fn insufficient_tokens_write_nothing(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 50).await;
        let r = resource(&c, ResourceType::TextGeneration, PlanSize::Medium, "Too big", at("2025-02-01T00:00:00Z"));
        let k = key("usr_1", "provision-1", "fp");
        let r_result = s.insert_resource(&provision(&r), None, Some(&k)).await;
        assert!(
            matches!(r_result, Err(StoreError::InsufficientTokens { available }) if available == tokens(50)),
            "{r_result:?}"
        );
        assert_eq!(s.resource(&c, &r.id).await.expect("resource"), None);
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(50), tokens(0), tokens(0)));
        assert_eq!(
            s.transactions(&c, &HistoryPage::newest(10)).await.expect("transactions").len(),
            1,
            "only the grant"
        );
        assert!(
            s.audit_events(&c, &HistoryPage::newest(10))
                .await
                .expect("audit")
                .iter()
                .all(|e| e.action != "resource.provisioned"),
            "no audit event"
        );
        assert_eq!(s.idempotent_result(&k).await.expect("lookup"), None, "the key is not spent by a failure");
        // The name is not taken either.
        let fits = text(&c, "Too big", at("2025-02-01T00:00:01Z"));
        assert_eq!(insert(s, &fits).await.expect("insert"), Idempotent::Done(()));
        assert_books_balance(s, &c).await;
    }

    pub async fn insert_resource_is_idempotent(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 100).await;
        let k = key("usr_1", "provision-1", "fp-a");
        let r = text(&c, "Bot", at("2025-02-01T00:00:00Z"));
        assert_eq!(s.insert_resource(&provision(&r), None, Some(&k)).await.expect("insert"), Idempotent::Done(()));
        // A retry is decided afresh (new ids) but carries the same key and request.
        let retry = text(&c, "Bot", at("2025-02-01T00:00:03Z"));
        let r2 = s.insert_resource(&provision(&retry), None, Some(&k)).await.expect("replay");
        assert_eq!(r2, Idempotent::Replayed(r.id.0.clone()));
        let other = text(&c, "Another bot", at("2025-02-01T00:00:04Z"));
        let r3 = s.insert_resource(&provision(&other), None, Some(&key("usr_1", "provision-1", "fp-b"))).await;
        assert!(matches!(r3, Err(StoreError::IdempotencyConflict)), "{r3:?}");
        assert_eq!(s.idempotent_result(&k).await.expect("lookup"), Some(r.id.0.clone()));
        let ids: Vec<ResourceId> =
            s.resources(&all_of(&c)).await.expect("resources").into_iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![r.id.clone()]);
        assert_eq!(s.balance(&c).await.expect("balance").allocated, tokens(30), "allocated once");
        assert_books_balance(s, &c).await;
    }

    pub async fn live_display_names_are_unique(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 200).await;
        let first = text(&c, "Chatbot", at("2025-01-10T09:00:00Z"));
        insert(s, &first).await.expect("insert");
        let same = text(&c, "CHATBOT", at("2025-01-10T09:00:01Z"));
        let r = insert(s, &same).await;
        assert!(matches!(r, Err(StoreError::Duplicate("display_name"))), "{r:?}");
        assert_eq!(s.resource(&c, &same.id).await.expect("resource"), None);
        assert_eq!(s.balance(&c).await.expect("balance").allocated, tokens(30), "nothing allocated");

        // Unique per company only.
        let elsewhere = funded_company(s, 100).await;
        insert(s, &text(&elsewhere, "chatbot", at("2025-01-10T09:00:02Z"))).await.expect("another company");

        // Once the first is deprovisioned, its name is free again.
        let scheduled = first.deprovision(&[], at("2025-01-20T00:00:00Z")).expect("deprovision");
        apply(s, scheduled).await.expect("schedule");
        let r = insert(s, &text(&c, "chatbot", at("2025-01-21T00:00:00Z"))).await;
        assert!(matches!(r, Err(StoreError::Duplicate("display_name"))), "scheduled is still live: {r:?}");
        let effective = at("2025-02-10T09:00:00Z");
        let done = reload(s, &first).await.take_effect(effective).expect("due");
        apply(s, done).await.expect("take effect");
        let reuse = text(&c, "chatbot", at("2025-02-11T00:00:00Z"));
        assert_eq!(insert(s, &reuse).await.expect("reuse the name"), Idempotent::Done(()));
        assert_books_balance(s, &c).await;
        assert_books_balance(s, &elsewhere).await;
    }

    pub async fn stale_change_writes_nothing(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 200).await;
        let r = text(&c, "Bot", at("2025-01-10T09:00:00Z"));
        insert(s, &r).await.expect("insert");
        let now = at("2025-01-15T00:00:00Z");
        let upgrade = r.change_plan(PlanSize::Medium, &CATALOG, now).expect("upgrade");
        apply(s, upgrade).await.expect("upgrade applies");
        let current = reload(s, &r).await;
        assert_eq!(current.version, 1, "every write bumps the version");
        assert_eq!((current.plan, current.cloud_tokens), (PlanSize::Medium, tokens(60)));

        let ledger_before = s.transactions(&c, &HistoryPage::newest(100)).await.expect("transactions");
        let audit_before = s.audit_events(&c, &HistoryPage::newest(100)).await.expect("audit");
        // Decided on version 0, which is gone.
        let stale = r.deprovision(&[], now).expect("deprovision");
        let result = apply(s, stale).await;
        assert!(matches!(result, Err(StoreError::Stale)), "{result:?}");
        let stale_upgrade = r.change_plan(PlanSize::Large, &CATALOG, now).expect("upgrade");
        let result = apply(s, stale_upgrade).await;
        assert!(matches!(result, Err(StoreError::Stale)), "{result:?}");
        assert_eq!(reload(s, &r).await, current, "resource unchanged");
        assert_eq!(
            s.transactions(&c, &HistoryPage::newest(100)).await.expect("transactions"),
            ledger_before,
            "no ledger row"
        );
        assert_eq!(s.audit_events(&c, &HistoryPage::newest(100)).await.expect("audit"), audit_before, "no audit event");
        assert_books_balance(s, &c).await;
    }

    pub async fn plan_changes_allocate_and_release(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 150).await;
        let r = text(&c, "Bot", at("2025-01-12T08:00:00Z"));
        insert(s, &r).await.expect("insert");
        // Upgrade small (30) → large (120): allocates 90 at once.
        let now = at("2025-01-20T00:00:00Z");
        let upgrade = r.change_plan(PlanSize::Large, &CATALOG, now).expect("upgrade");
        let w = write(upgrade, None);
        s.apply_change(&w).await.expect("upgrade");
        let ledger = s.transactions(&c, &HistoryPage::newest(1)).await.expect("transactions");
        assert_eq!(ledger[0].id, w.transaction_id);
        assert_eq!(
            (ledger[0].kind, ledger[0].tokens, ledger[0].available_after),
            (TransactionKind::Allocate, tokens(90), tokens(30))
        );
        let large = reload(s, &r).await;
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(150), tokens(120), tokens(0)));

        // An upgrade the company cannot afford writes nothing.
        let mut poor = text(&c, "Other", at("2025-01-12T08:00:01Z"));
        insert(s, &poor).await.expect("insert");
        poor = reload(s, &poor).await;
        let too_big = poor.change_plan(PlanSize::Large, &CATALOG, now).expect("upgrade");
        let result = apply(s, too_big).await;
        assert!(
            matches!(result, Err(StoreError::InsufficientTokens { available }) if available == tokens(0)),
            "{result:?}"
        );
        assert_eq!(reload(s, &poor).await, poor, "nothing written");

        // Downgrade large → small: scheduled for the next boundary, nothing released yet.
        let downgrade = large.change_plan(PlanSize::Small, &CATALOG, now).expect("downgrade");
        let effective = at("2025-02-12T08:00:00Z");
        assert_eq!(downgrade.next.scheduled.map(|s| s.effective_at()), Some(effective));
        apply(s, downgrade).await.expect("schedule downgrade");
        let scheduled = reload(s, &r).await;
        assert_eq!(scheduled.status, Status::PlanDowngradeScheduled);
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(150), tokens(150), tokens(90)));

        // Taking effect releases the difference, recorded at the effective instant.
        let late = at("2025-02-12T08:03:00Z");
        let took = scheduled.take_effect(late).expect("due");
        let w = write(took, None);
        s.apply_change(&w).await.expect("downgrade takes effect");
        let release = &s
            .transactions(&c, &HistoryPage::newest(100))
            .await
            .expect("transactions")
            .into_iter()
            .find(|t| t.id == w.transaction_id)
            .expect("release row");
        assert_eq!((release.kind, release.tokens, release.at), (TransactionKind::Release, tokens(90), effective));
        assert_eq!(release.debit_account, format!("resource:{}", r.id));
        assert_eq!(release.credit_account, "available");
        assert_eq!(release.available_after, tokens(90));
        let small = reload(s, &r).await;
        assert_eq!(
            (small.plan, small.cloud_tokens, small.status, small.scheduled),
            (PlanSize::Small, tokens(30), Status::Active, None)
        );
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(150), tokens(60), tokens(0)));

        // Deprovisioning releases the full cost when it takes effect.
        let deprovision = small.deprovision(&[], at("2025-02-20T00:00:00Z")).expect("deprovision");
        apply(s, deprovision).await.expect("schedule deprovisioning");
        let gone_at = at("2025-03-12T08:00:00Z");
        let took = reload(s, &r).await.take_effect(gone_at).expect("due");
        apply(s, took).await.expect("deprovisioned");
        let gone = reload(s, &r).await;
        assert_eq!((gone.status, gone.deprovisioned_at, gone.scheduled), (Status::Deprovisioned, Some(gone_at), None));
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(150), tokens(30), tokens(0)));
        let releases: Vec<i64> = s
            .transactions(&c, &HistoryPage::newest(100))
            .await
            .expect("transactions")
            .iter()
            .filter(|t| t.kind == TransactionKind::Release && t.resource_id.as_ref() == Some(&r.id))
            .map(|t| t.tokens.get())
            .collect();
        assert_eq!(releases, [30, 90], "newest first");
        assert_books_balance(s, &c).await;
    }

    pub async fn pending_release_counts_scheduled_changes(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 1000).await;
        let created = at("2025-01-12T08:00:00Z");
        let large = resource(&c, ResourceType::TextGeneration, PlanSize::Large, "Large", created);
        let medium = resource(&c, ResourceType::TextGeneration, PlanSize::Medium, "Medium", created);
        let kb_host = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed", created);
        for r in [&large, &medium, &kb_host] {
            insert(s, r).await.expect("insert");
        }
        let now = at("2025-01-20T00:00:00Z");
        apply(s, large.change_plan(PlanSize::Small, &CATALOG, now).expect("downgrade")).await.expect("downgrade");
        apply(s, medium.deprovision(&[], now).expect("deprovision")).await.expect("deprovision");
        let b = s.balance(&c).await.expect("balance");
        assert_eq!(b, balance_of(tokens(1000), tokens(186), tokens(90 + 60)));
        assert_books_balance(s, &c).await;

        let cancel = reload(s, &large).await.cancel_downgrade(now).expect("cancel");
        apply(s, cancel).await.expect("cancel downgrade");
        assert_eq!(s.balance(&c).await.expect("balance").pending_release, tokens(60));
        let took = reload(s, &medium).await.take_effect(at("2025-02-12T08:00:00Z")).expect("due");
        apply(s, took).await.expect("deprovisioned");
        assert_eq!(s.balance(&c).await.expect("balance"), balance_of(tokens(1000), tokens(126), tokens(0)));
        assert_books_balance(s, &c).await;
    }

    fn ids(resources: &[genai_core::resource::Resource]) -> Vec<ResourceId> {
        resources.iter().map(|r| r.id.clone()).collect()
    }

    pub async fn resources_filter_and_paginate(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 1000).await;
        let t = at("2025-01-10T09:00:00Z");
        let a1 = text(&c, "Alpha", t);
        let a2 = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Beta", t);
        let a3 = text(&c, "Gamma", t);
        let mut a4 = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Large, "Delta", t);
        a4.environment = genai_core::resource::Environment::Test;
        a4.cross_region_inference = false;
        let a5 = text(&c, "Epsilon", t);
        let mut kb = resource(&c, ResourceType::KnowledgeBase, PlanSize::Standard, "Zeta", t);
        kb.embeddings_resource_id = Some(a2.id.clone());
        for r in [&a1, &a2, &a3, &a4, &a5, &kb] {
            insert(s, r).await.expect("insert");
        }
        let took = a5.deprovision(&[], t).expect("deprovision");
        apply(s, took).await.expect("schedule");
        let took = reload(s, &a5).await.take_effect(at("2025-02-10T09:00:00Z")).expect("due");
        apply(s, took).await.expect("deprovisioned");
        let b = funded_company(s, 100).await;
        let b1 = text(&b, "Alpha", t);
        insert(s, &b1).await.expect("insert");

        let q = |resource_type, include_deprovisioned, after_id: Option<&ResourceId>, limit| ResourceQuery {
            company_id: c.clone(),
            resource_type,
            include_deprovisioned,
            after_id: after_id.cloned(),
            limit,
        };
        let live = s.resources(&q(None, false, None, None)).await.expect("resources");
        assert_eq!(ids(&live), ids(&[a1.clone(), a2.clone(), a3.clone(), a4.clone(), kb.clone()]), "live, id order");
        assert_eq!(live[3], a4, "round trip of every field");
        assert_eq!(live[4], kb, "round trip of the embeddings link");
        let all = s.resources(&q(None, true, None, None)).await.expect("resources");
        assert_eq!(ids(&all), ids(&[a1.clone(), a2.clone(), a3.clone(), a4.clone(), a5.clone(), kb.clone()]));
        let embeddings =
            s.resources(&q(Some(ResourceType::EmbeddingsGeneration), false, None, None)).await.expect("resources");
        assert_eq!(ids(&embeddings), ids(&[a2.clone(), a4.clone()]));
        let texts = s.resources(&q(Some(ResourceType::TextGeneration), true, None, None)).await.expect("resources");
        assert_eq!(ids(&texts), ids(&[a1.clone(), a3.clone(), a5.clone()]));

        // Pages of two, each starting after the last id of the previous one.
        let mut pages = Vec::new();
        let mut cursor: Option<ResourceId> = None;
        loop {
            let page = s.resources(&q(None, true, cursor.as_ref(), Some(2))).await.expect("resources");
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2, "limit");
            cursor = page.last().map(|r| r.id.clone());
            pages.push(ids(&page));
        }
        assert_eq!(
            pages,
            vec![ids(&[a1.clone(), a2.clone()]), ids(&[a3.clone(), a4.clone()]), ids(&[a5.clone(), kb.clone()])]
        );
        let after = s.resources(&q(None, false, Some(&a4.id), None)).await.expect("resources");
        assert_eq!(ids(&after), ids(&[kb.clone()]), "a cursor skips the deprovisioned one when it is filtered");

        assert_eq!(ids(&s.resources(&all_of(&b)).await.expect("resources")), vec![b1.id.clone()], "per company");
        assert_eq!(s.resource(&c, &b1.id).await.expect("resource"), None);
    }

    pub async fn linked_knowledge_bases_are_live_ones(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 1000).await;
        let t = at("2025-01-10T09:00:00Z");
        let e = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed", t);
        let other_e = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed 2", t);
        insert(s, &e).await.expect("insert");
        insert(s, &other_e).await.expect("insert");
        let mut kbs = Vec::new();
        for (i, host) in [&e, &e, &other_e].into_iter().enumerate() {
            let mut kb = resource(&c, ResourceType::KnowledgeBase, PlanSize::Standard, &format!("KB {i}"), t);
            kb.embeddings_resource_id = Some(host.id.clone());
            insert(s, &kb).await.expect("insert");
            kbs.push(kb);
        }
        assert_eq!(ids(&s.linked_knowledge_bases(&e.id).await.expect("linked")), ids(&kbs[..2]));
        let scheduled = kbs[0].deprovision(&[], t).expect("deprovision");
        apply(s, scheduled).await.expect("schedule");
        assert_eq!(ids(&s.linked_knowledge_bases(&e.id).await.expect("linked")), ids(&kbs[..2]), "still live");
        let took = reload(s, &kbs[0]).await.take_effect(at("2025-02-10T09:00:00Z")).expect("due");
        apply(s, took).await.expect("deprovisioned");
        assert_eq!(ids(&s.linked_knowledge_bases(&e.id).await.expect("linked")), ids(&kbs[1..2]));
        assert_eq!(ids(&s.linked_knowledge_bases(&other_e.id).await.expect("linked")), ids(&kbs[2..]));
    }

    pub async fn due_changes_apply_earliest_first(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 1000).await;
        let d = funded_company(s, 1000).await;
        let now = at("2025-01-20T00:00:00Z");
        // Bundle months end on the anniversaries: 10 Feb, 5 Feb, 15 Feb (other company), 5 Feb.
        let r1 = text(&c, "One", at("2025-01-10T09:00:00Z"));
        let r2 = resource(&c, ResourceType::TextGeneration, PlanSize::Medium, "Two", at("2025-01-05T09:00:00Z"));
        let r3 = text(&d, "Three", at("2025-01-15T09:00:00Z"));
        let r4 = text(&c, "Four", at("2025-01-05T09:00:00Z"));
        let idle = text(&c, "Idle", at("2025-01-01T09:00:00Z"));
        for r in [&r1, &r2, &r3, &r4, &idle] {
            insert(s, r).await.expect("insert");
        }
        apply(s, r1.deprovision(&[], now).expect("deprovision")).await.expect("schedule");
        apply(s, r2.change_plan(PlanSize::Small, &CATALOG, now).expect("downgrade")).await.expect("schedule");
        apply(s, r3.deprovision(&[], now).expect("deprovision")).await.expect("schedule");
        apply(s, r4.deprovision(&[], now).expect("deprovision")).await.expect("schedule");

        // Applies what is due at `now` (at most `limit`), answering the ids in the order claimed.
        let run = |now: &str, limit: i64| {
            let now = at(now);
            async move {
                let seen = std::sync::Mutex::new(Vec::new());
                let decide = |r: &Resource| {
                    seen.lock().expect("lock").push(r.id.clone());
                    r.take_effect(now).map(|ch| write(ch, None))
                };
                let batch = s.apply_due(now, limit, &decide).await.expect("apply_due");
                let seen = seen.into_inner().expect("lock");
                assert!(batch.set_aside.is_empty(), "{batch:?}");
                assert_eq!(batch.applied, seen.len(), "every claimed change applied");
                seen
            }
        };
        assert!(run("2025-02-05T08:59:59.999Z", 100).await.is_empty(), "nothing due before the first boundary");
        assert_eq!(run("2025-02-05T09:00:00Z", 1).await, vec![r2.id.clone()], "due at the instant; ties by id; limit");
        assert_eq!(
            run("2025-03-01T00:00:00Z", 100).await,
            [r4.id.clone(), r1.id.clone(), r3.id.clone()],
            "earliest first, every company"
        );
        assert!(run("2025-03-01T00:00:00Z", 100).await.is_empty(), "applied ones are no longer due");
        assert_eq!(reload(s, &r2).await.plan, PlanSize::Small);
        assert_eq!(reload(s, &r4).await.deprovisioned_at, Some(at("2025-02-05T09:00:00Z")), "at the effective instant");
        assert_eq!(reload(s, &r1).await.deprovisioned_at, Some(at("2025-02-10T09:00:00Z")));
        assert_eq!(reload(s, &r3).await.deprovisioned_at, Some(at("2025-02-15T09:00:00Z")));
        assert_eq!(reload(s, &idle).await, idle, "nothing scheduled, nothing changed");
        assert_eq!(reload(s, &r1).await.scheduled, None);
        assert_books_balance(s, &c).await;
        assert_books_balance(s, &d).await;
    }

    /// Three due changes, two of them on broken rows: one that cannot be read, one whose
    /// release the company's books cannot cover (it fails half-way through its write). The
    /// sound one is written; each broken one is rolled back alone and set aside, retried only
    /// after its delay, with a doubling delay, and applied once repaired.
    pub async fn broken_due_changes_are_set_aside(store: Arc<dyn Store>, raw: super::Raw) {
        let s = &*store;
        let (sound_co, broken_co) = (funded_company(s, 100).await, funded_company(s, 100).await);
        let created = at("2025-01-10T09:00:00Z");
        let sound = text(&sound_co, "Sound", created);
        let unreadable = text(&broken_co, "Unreadable", created);
        let uncovered = text(&broken_co, "Uncovered", created);
        for r in [&sound, &unreadable, &uncovered] {
            insert(s, r).await.expect("insert");
            apply(s, r.deprovision(&[], at("2025-01-20T00:00:00Z")).expect("deprovision")).await.expect("schedule");
        }
        raw.execute("UPDATE resources SET scheduled_kind = 'vanish' WHERE id = $1", unreadable.id.as_str()).await;
        raw.execute("UPDATE resources SET cloud_tokens = 99 WHERE id = $1", uncovered.id.as_str()).await;
        let before = (
            s.transactions(&broken_co, &HistoryPage::all()).await.expect("transactions"),
            s.audit_events(&broken_co, &HistoryPage::all()).await.expect("audit"),
        );

        let decide = |now| move |r: &Resource| r.take_effect(now).map(|ch| write(ch, None));
        let now = at("2025-02-10T09:00:00Z");
        let batch = s.apply_due(now, 100, &decide(now)).await.expect("the batch survives its broken rows");
        assert_eq!(batch.applied, 1, "{batch:?}");
        let mut aside: Vec<_> =
            batch.set_aside.iter().map(|a| (a.resource_id.clone(), a.attempts, a.retry_at)).collect();
        aside.sort();
        let mut expected = vec![
            (unreadable.id.clone(), 1, now + chrono::Duration::minutes(1)),
            (uncovered.id.clone(), 1, now + chrono::Duration::minutes(1)),
        ];
        expected.sort();
        assert_eq!(aside, expected);
        let errors: Vec<_> = batch.set_aside.iter().map(|a| (a.resource_id.clone(), &a.error)).collect();
        for (id, error) in errors {
            match error {
                StoreError::Corrupt { .. } => assert_eq!(id, unreadable.id),
                StoreError::Inconsistent(why) => assert!(id == uncovered.id && why.contains("releases 99"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reload(s, &sound).await.deprovisioned_at, Some(now), "the sound change is written");
        assert_books_balance(s, &sound_co).await;
        let after = (
            s.transactions(&broken_co, &HistoryPage::all()).await.expect("transactions"),
            s.audit_events(&broken_co, &HistoryPage::all()).await.expect("audit"),
        );
        assert_eq!(after, before, "a failed change leaves no half-write behind");
        let version = "SELECT version FROM resources WHERE id = $1";
        assert_eq!(raw.int(version, uncovered.id.as_str()).await, Some(1), "its resource update was rolled back too");

        // Set aside: not claimed again before its delay, then claimed and set aside for longer.
        let quiet = s.apply_due(now + chrono::Duration::seconds(59), 100, &decide(now)).await.expect("apply_due");
        assert_eq!((quiet.applied, quiet.set_aside.len()), (0, 0), "{quiet:?}");
        let later = now + chrono::Duration::minutes(1);
        let again = s.apply_due(later, 100, &decide(later)).await.expect("apply_due");
        assert_eq!(again.set_aside.len(), 2, "{again:?}");
        assert!(again.set_aside.iter().all(|a| a.attempts == 2 && a.retry_at == later + chrono::Duration::minutes(2)));

        // Repaired by hand: applied at the next try, and the hold is lifted.
        raw.execute("UPDATE resources SET cloud_tokens = 30 WHERE id = $1", uncovered.id.as_str()).await;
        let healed = later + chrono::Duration::minutes(2);
        let batch = s.apply_due(healed, 100, &decide(healed)).await.expect("apply_due");
        assert_eq!((batch.applied, batch.set_aside.len()), (1, 1), "{batch:?}");
        assert_eq!(reload(s, &uncovered).await.deprovisioned_at, Some(at("2025-02-10T09:00:00Z")), "at its instant");
        let attempts = "SELECT due_attempts FROM resources WHERE id = $1";
        assert_eq!(raw.int(attempts, uncovered.id.as_str()).await, Some(0));
        assert_eq!(raw.int(attempts, unreadable.id.as_str()).await, Some(3), "the unreadable one stays aside");
    }

    pub async fn audit_events_newest_first(store: Arc<dyn Store>) {
        let s = &*store;
        let mut c = company("Acme");
        let t0 = at("2025-01-01T00:00:00Z");
        let t1 = at("2025-01-01T00:00:01Z");
        let t2 = at("2025-01-01T00:00:02Z");
        let created = audit(Some(&c.id), "company.created", t0);
        s.create_company(&c, &created).await.expect("create");
        c.accounts = 7;
        let mut updated = audit(Some(&c.id), "company.updated", t2);
        updated.actor = "admin@example.com".into();
        updated.details =
            serde_json::json!({ "before": { "accounts": 3 }, "after": { "accounts": 7 }, "note": "ünïcode ✓" });
        s.update_company(&c, &updated).await.expect("update");
        // Written later, happened earlier: ordered by when it happened.
        let granted = audit(Some(&c.id), "tokens.granted", t1);
        s.grant_tokens(&grant(&c.id, 10, t1), None, &granted).await.expect("grant");
        // Installation-wide events and other companies' events are not this company's.
        s.update_company(&c, &audit(None, "operator.something", t2)).await.expect("update");
        let other = company("Other");
        s.create_company(&other, &audit(Some(&other.id), "company.created", t2)).await.expect("create");

        let events = s.audit_events(&c.id, &HistoryPage::newest(10)).await.expect("audit");
        assert_eq!(events, vec![updated.clone(), granted.clone(), created.clone()]);
        assert_eq!(
            s.audit_events(&c.id, &HistoryPage::newest(2)).await.expect("audit"),
            vec![updated, granted],
            "limit"
        );

        // Same instant: the later id first.
        let t3 = at("2025-01-01T00:00:03Z");
        let a = audit(Some(&c.id), "company.updated", t3);
        let b = audit(Some(&c.id), "company.updated", t3);
        s.update_company(&c, &a).await.expect("update");
        s.update_company(&c, &b).await.expect("update");
        let newest: Vec<String> =
            s.audit_events(&c.id, &HistoryPage::newest(2)).await.expect("audit").into_iter().map(|e| e.id).collect();
        assert_eq!(newest, [b.id, a.id]);
    }

    pub async fn guard_bump_makes_racing_writer_stale(store: Arc<dyn Store>) {
        let s = &*store;
        let c = funded_company(s, 1000).await;
        let t = at("2025-01-10T09:00:00Z");
        let e = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed", t);
        insert(s, &e).await.expect("insert");
        let guard_v0 = Guard { resource_id: e.id.clone(), version: 0 };

        // A knowledge base provisioned against the embeddings resource as read at version 0.
        let mut kb1 = resource(&c, ResourceType::KnowledgeBase, PlanSize::Standard, "KB 1", t);
        kb1.embeddings_resource_id = Some(e.id.clone());
        s.insert_resource(&provision(&kb1), Some(&guard_v0), None).await.expect("insert with guard");
        assert_eq!(reload(s, &e).await.version, 1, "the guard is bumped");

        let before = (
            s.balance(&c).await.expect("balance"),
            s.transactions(&c, &HistoryPage::newest(100)).await.expect("transactions"),
            s.audit_events(&c, &HistoryPage::newest(100)).await.expect("audit"),
        );
        // The racing writers all decided on version 0 of the embeddings resource.
        let racing_deprovision = e.deprovision(&[], t).expect("deprovision");
        let r = apply(s, racing_deprovision).await;
        assert!(matches!(r, Err(StoreError::Stale)), "{r:?}");
        let mut kb2 = resource(&c, ResourceType::KnowledgeBase, PlanSize::Standard, "KB 2", t);
        kb2.embeddings_resource_id = Some(e.id.clone());
        let r = s.insert_resource(&provision(&kb2), Some(&guard_v0), None).await;
        assert!(matches!(r, Err(StoreError::Stale)), "{r:?}");
        assert_eq!(s.resource(&c, &kb2.id).await.expect("resource"), None);
        let kb1_change = kb1.deprovision(&[], t).expect("deprovision");
        let r = s.apply_change(&write(kb1_change.clone(), Some(guard_v0.clone()))).await;
        assert!(matches!(r, Err(StoreError::Stale)), "a stale guard fails a write to another resource: {r:?}");
        assert_eq!(reload(s, &kb1).await, kb1, "nothing written");
        let after = (
            s.balance(&c).await.expect("balance"),
            s.transactions(&c, &HistoryPage::newest(100)).await.expect("transactions"),
            s.audit_events(&c, &HistoryPage::newest(100)).await.expect("audit"),
        );
        assert_eq!(after, before, "stale writes leave no trace");
        assert_eq!(reload(s, &e).await.version, 1);

        // With the current version, the same write goes through.
        s.apply_change(&write(kb1_change, Some(Guard { resource_id: e.id.clone(), version: 1 }))).await.expect("fresh");
        assert_eq!(reload(s, &e).await.version, 2);
        assert_books_balance(s, &c).await;
    }

    pub async fn concurrent_allocations_never_overspend(store: Arc<dyn Store>) {
        let c = funded_company(&*store, 300).await;
        let t = at("2025-01-10T09:00:00Z");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let r = text(&c, &format!("Bot {i}"), t);
            tasks.push(tokio::spawn(async move { insert(&*store, &r).await }));
        }
        let mut results: Vec<StoreResult<Idempotent<()>>> = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let ok = results.iter().filter(|r| matches!(r, Ok(Idempotent::Done(())))).count();
        let refused = results.iter().filter(|r| matches!(r, Err(StoreError::InsufficientTokens { .. }))).count();
        assert_eq!((ok, refused), (10, 30), "{results:?}");
        assert_eq!(store.balance(&c).await.expect("balance"), balance_of(tokens(300), tokens(300), tokens(0)));
        let allocations = store
            .transactions(&c, &HistoryPage::newest(100))
            .await
            .expect("transactions")
            .iter()
            .filter(|t| t.kind == TransactionKind::Allocate)
            .count();
        assert_eq!(allocations, 10);
        assert_eq!(store.resources(&all_of(&c)).await.expect("resources").len(), 10);
        assert_books_balance(&*store, &c).await;
    }

    pub async fn concurrent_changes_apply_once(store: Arc<dyn Store>) {
        let c = funded_company(&*store, 300).await;
        let r = text(&c, "Bot", at("2025-01-10T09:00:00Z"));
        insert(&*store, &r).await.expect("insert");
        apply(&*store, r.deprovision(&[], at("2025-01-20T00:00:00Z")).expect("deprovision")).await.expect("schedule");
        let scheduled = reload(&*store, &r).await;
        // Twenty schedulers saw the same due resource at the same version.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let change = scheduled.take_effect(at("2025-02-10T09:00:00Z")).expect("due");
            tasks.push(tokio::spawn(async move { apply(&*store, change).await }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let stale = results.iter().filter(|r| matches!(r, Err(StoreError::Stale))).count();
        assert_eq!((ok, stale), (1, 19), "{results:?}");
        let releases = store
            .transactions(&c, &HistoryPage::newest(100))
            .await
            .expect("transactions")
            .iter()
            .filter(|t| t.kind == TransactionKind::Release)
            .count();
        assert_eq!(releases, 1, "released exactly once");
        let deprovisioned = store
            .audit_events(&c, &HistoryPage::newest(100))
            .await
            .expect("audit")
            .iter()
            .filter(|e| e.action == "resource.deprovisioned")
            .count();
        assert_eq!(deprovisioned, 1, "audited exactly once");
        assert_eq!(store.balance(&c).await.expect("balance"), balance_of(tokens(300), tokens(0), tokens(0)));
        assert_eq!(reload(&*store, &r).await.version, scheduled.version + 1);
        assert_books_balance(&*store, &c).await;
    }

    pub async fn concurrent_schedulers_apply_each_due_change_once(store: Arc<dyn Store>) {
        let c = funded_company(&*store, 10_000).await;
        let mut scheduled = Vec::new();
        for i in 0..30 {
            let r = text(&c, &format!("Bot {i}"), at("2025-01-10T09:00:00Z"));
            insert(&*store, &r).await.expect("insert");
            apply(&*store, r.deprovision(&[], at("2025-01-20T00:00:00Z")).expect("deprovision"))
                .await
                .expect("schedule");
            scheduled.push(r);
        }
        // Not due yet: nothing is claimed.
        let none = store.apply_due(at("2025-02-10T08:59:59Z"), 100, &|r: &Resource| {
            r.take_effect(at("2025-02-10T08:59:59Z")).map(|ch| write(ch, None))
        });
        assert_eq!(none.await.expect("apply_due").applied, 0);
        // Four schedulers claim in small batches at the same time, until nothing is left.
        let now = at("2025-02-10T09:00:00Z");
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let decide = move |r: &Resource| r.take_effect(now).map(|ch| write(ch, None));
                let mut applied = 0;
                loop {
                    match store.apply_due(now, 3, &decide).await {
                        Ok(batch) if batch.applied == 0 => return Ok(applied),
                        Ok(batch) => applied += batch.applied,
                        // A racing claimer on SQLite may find a version moved; try again.
                        Err(StoreError::Stale) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("task").expect("apply_due");
        }
        assert_eq!(total, 30, "every due change applied once in all");
        let releases = store
            .transactions(&c, &HistoryPage::newest(1000))
            .await
            .expect("transactions")
            .iter()
            .filter(|t| t.kind == TransactionKind::Release)
            .count();
        assert_eq!(releases, 30);
        assert_eq!(store.balance(&c).await.expect("balance"), balance_of(tokens(10_000), tokens(0), tokens(0)));
        for r in &scheduled {
            assert_eq!(reload(&*store, r).await.deprovisioned_at, Some(now));
        }
        assert_books_balance(&*store, &c).await;
    }

    pub async fn concurrent_idempotent_grants_apply_once(store: Arc<dyn Store>) {
        let c = funded_company(&*store, 0).await;
        let k = key("operator", "top-up", "fp");
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let store = store.clone();
            let (c, k) = (c.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                let t = at("2025-01-02T00:00:00Z");
                let g = grant(&c, 100, t);
                let r = store.grant_tokens(&g, Some(&k), &audit(Some(&c), "tokens.granted", t)).await;
                (g.transaction_id, r)
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let winners: Vec<&String> =
            results.iter().filter(|(_, r)| matches!(r, Ok(Idempotent::Done(())))).map(|(id, _)| id).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for (_, r) in &results {
            if let Ok(Idempotent::Replayed(id)) = r {
                assert_eq!(id, winners[0], "every replay names the first transaction");
            } else {
                assert!(matches!(r, Ok(Idempotent::Done(()))), "{r:?}");
            }
        }
        assert_eq!(store.balance(&c).await.expect("balance").total, tokens(100), "granted once");
        assert_books_balance(&*store, &c).await;
    }

    pub async fn concurrent_duplicate_names_one_wins(store: Arc<dyn Store>) {
        let c = funded_company(&*store, 1000).await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = store.clone();
            let name = if i % 2 == 0 { "Shared name" } else { "SHARED NAME" };
            let r = text(&c, name, at("2025-01-10T09:00:00Z"));
            tasks.push(tokio::spawn(async move { insert(&*store, &r).await }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let duplicate = results.iter().filter(|r| matches!(r, Err(StoreError::Duplicate("display_name")))).count();
        assert_eq!((ok, duplicate), (1, 9), "{results:?}");
        assert_eq!(store.balance(&c).await.expect("balance").allocated, tokens(30));
        assert_books_balance(&*store, &c).await;
    }
}
