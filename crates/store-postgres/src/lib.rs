//! The PostgreSQL adapter of the storage port: the backend for several server instances.
//!
//! Unlike the SQLite adapter, which serializes every write through one connection, this one
//! has many connections in each of many processes and no lock around them. Every invariant is
//! therefore carried by the database itself, inside one transaction per write, at PostgreSQL's
//! default READ COMMITTED isolation:
//!
//! * **Allocations** are one conditional statement,
//!   `UPDATE companies … WHERE id = $2 AND tokens_total - tokens_allocated >= $1`. The row lock
//!   it takes serializes concurrent allocations of one company, and a waiting statement
//!   re-checks the condition against the row its predecessor committed, so no interleaving can
//!   spend more than is available.
//! * **Resource writes** are `UPDATE resources … WHERE id = $1 AND version = $2`; when another
//!   writer got there first, no row matches and the write fails with [`StoreError::Stale`].
//!   This is also what makes a due scheduled change take effect exactly once when several
//!   schedulers saw it: `due_resources` is a plain read, the versioned write is the arbiter.
//! * **Idempotency keys** are inserted *first* (`ON CONFLICT DO NOTHING`). A concurrent request
//!   with the same key blocks on the primary-key index until the first one commits or rolls
//!   back, and then sees its row: the same request is a replay, another one a conflict.
//!
//! Deadlocks (two writes that lock the same rows in opposite orders, e.g. through a guard) and
//! serialization failures are not errors of the request: the whole transaction is retried a
//! few times before giving up.

mod migrate;

pub use migrate::migrations;

use async_trait::async_trait;
use genai_core::ledger::{Balance, TransactionKind};
use genai_core::resource::{Movement, Resource};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId, UserId};
use genai_store::codec::{self, millis, ResourceRow, RESOURCE_COLUMNS};
use genai_store::{
    ApiToken, AuditEvent, Company, DecideDue, Grant, Guard, IdempotencyKey, Idempotent, LedgerTransaction, NewResource,
    ResourceQuery, ResourceWrite, Session, Store, StoreError, StoreResult, User,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use std::future::Future;
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

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// How many times a transaction is tried when it loses a deadlock or serialization race.
const MAX_ATTEMPTS: u32 = 5;

/// Why one attempt at a transaction failed.
enum Fail {
    /// A transient conflict (SQLSTATE 40001 serialization failure, 40P01 deadlock): try again.
    Retry(sqlx::Error),
    /// A final answer.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Attempt<T> = Result<T, Fail>;

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Classifies an error inside a write transaction. Unique and foreign-key violations are
/// translated by the caller, which knows which constraint means what.
fn db(e: sqlx::Error) -> Fail {
    match sqlstate(&e).as_deref() {
        Some("40001" | "40P01") => Fail::Retry(e),
        _ => Fail::Store(backend(e)),
    }
}

/// Translates the violations a write can meet by the constraint's name: a unique violation of
/// `users.email` or of the live-display-name index is a [`StoreError::Duplicate`], a reference
/// to a company or user that does not exist is [`StoreError::NotFound`].
fn constraint_error(e: sqlx::Error) -> Fail {
    if let sqlx::Error::Database(d) = &e {
        match (d.code().as_deref(), d.constraint()) {
            (Some("23505"), Some("users_email_key")) => return Fail::Store(StoreError::Duplicate("email")),
            (Some("23505"), Some("resources_live_name")) => return Fail::Store(StoreError::Duplicate("display_name")),
            (Some("23503"), Some(c)) if c.ends_with("_company_id_fkey") || c.ends_with("_user_id_fkey") => {
                return Fail::Store(StoreError::NotFound);
            }
            _ => {}
        }
    }
    db(e)
}

/// Runs `attempt` (one whole transaction) until it succeeds, fails for good, or has lost
/// [`MAX_ATTEMPTS`] races.
async fn with_retries<T, F, Fut>(operation: &'static str, mut attempt: F) -> StoreResult<T>
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
                    return Err(backend(e));
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

/// A negative limit means "no limit" (as SQLite treats it); PostgreSQL wants NULL for that.
fn limit(n: i64) -> Option<i64> {
    (n >= 0).then_some(n)
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and brings the schema up to date. Safe to call from
    /// several processes at once (see the `migrate` module).
    pub async fn open(url: &str, options: PgOptions) -> StoreResult<PostgresStore> {
        let connect = PgConnectOptions::from_str(url).map_err(backend)?.application_name("genai");
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
                    sqlx::query("SELECT set_config('statement_timeout', $1, false)")
                        .bind(timeout_ms)
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(backend)?;
        migrate::run(pool.clone()).await?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn resource_row(row: &PgRow) -> StoreResult<Resource> {
    let get = |e: sqlx::Error| backend(e);
    ResourceRow {
        id: row.try_get("id").map_err(get)?,
        company_id: row.try_get("company_id").map_err(get)?,
        resource_type: row.try_get("resource_type").map_err(get)?,
        display_name: row.try_get("display_name").map_err(get)?,
        name_key: row.try_get("name_key").map_err(get)?,
        environment: row.try_get("environment").map_err(get)?,
        region: row.try_get("region").map_err(get)?,
        cross_region_inference: row.try_get("cross_region_inference").map_err(get)?,
        model: row.try_get("model").map_err(get)?,
        plan: row.try_get("plan").map_err(get)?,
        cloud_tokens: row.try_get("cloud_tokens").map_err(get)?,
        created_for_name: row.try_get("created_for_name").map_err(get)?,
        created_for_email: row.try_get("created_for_email").map_err(get)?,
        status: row.try_get("status").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        scheduled_kind: row.try_get("scheduled_kind").map_err(get)?,
        scheduled_plan: row.try_get("scheduled_plan").map_err(get)?,
        scheduled_cloud_tokens: row.try_get("scheduled_cloud_tokens").map_err(get)?,
        scheduled_at: row.try_get("scheduled_at").map_err(get)?,
        pending_release: row.try_get("pending_release").map_err(get)?,
        deprovisioned_at: row.try_get("deprovisioned_at").map_err(get)?,
        embeddings_resource_id: row.try_get("embeddings_resource_id").map_err(get)?,
        version: row.try_get("version").map_err(get)?,
    }
    .into_resource()
}

fn company_row(row: &PgRow) -> StoreResult<Company> {
    Ok(Company {
        id: CompanyId(row.try_get("id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        price_list: row.try_get("price_list").map_err(backend)?,
        accounts: row.try_get("accounts").map_err(backend)?,
        enterprise_subscriptions: row.try_get("enterprise_subscriptions").map_err(backend)?,
        created_at: codec::instant(row.try_get("created_at").map_err(backend)?)?,
    })
}

fn user_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.try_get("id").map_err(backend)?),
        company_id: CompanyId(row.try_get("company_id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        email: row.try_get("email").map_err(backend)?,
        role: codec::role(row.try_get::<&str, _>("role").map_err(backend)?)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        created_at: codec::instant(row.try_get("created_at").map_err(backend)?)?,
    })
}

fn transaction_row(row: &PgRow) -> StoreResult<LedgerTransaction> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(LedgerTransaction {
        id: row.try_get("id").map_err(backend)?,
        company_id: CompanyId(row.try_get("company_id").map_err(backend)?),
        at: codec::instant(row.try_get("at").map_err(backend)?)?,
        kind: TransactionKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown transaction kind {kind}")))?,
        tokens: CloudTokens(row.try_get("tokens").map_err(backend)?),
        debit_account: row.try_get("debit_account").map_err(backend)?,
        credit_account: row.try_get("credit_account").map_err(backend)?,
        resource_id: row.try_get::<Option<String>, _>("resource_id").map_err(backend)?.map(ResourceId),
        available_after: CloudTokens(row.try_get("available_after").map_err(backend)?),
        note: row.try_get("note").map_err(backend)?,
    })
}

fn audit_row(row: &PgRow) -> StoreResult<AuditEvent> {
    let details: String = row.try_get("details").map_err(backend)?;
    Ok(AuditEvent {
        id: row.try_get("id").map_err(backend)?,
        company_id: row.try_get::<Option<String>, _>("company_id").map_err(backend)?.map(CompanyId),
        at: codec::instant(row.try_get("at").map_err(backend)?)?,
        actor: row.try_get("actor").map_err(backend)?,
        action: row.try_get("action").map_err(backend)?,
        resource_id: row.try_get::<Option<String>, _>("resource_id").map_err(backend)?.map(ResourceId),
        // Stored by `insert_audit` as JSON text; anything else is shown as the text it is.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
    })
}

async fn insert_audit(conn: &mut PgConnection, e: &AuditEvent) -> Attempt<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, company_id, at, actor, action, resource_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&e.id)
    .bind(e.company_id.as_ref().map(|c| c.as_str()))
    .bind(millis(e.at))
    .bind(&e.actor)
    .bind(&e.action)
    .bind(e.resource_id.as_ref().map(|r| r.as_str()))
    .bind(e.details.to_string())
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Claims an idempotency key for the current transaction, recording `result_id` as what it
/// produces; `Some` when the key was already used (a replay, or `IdempotencyConflict`).
///
/// The row is inserted *before* the effect it protects, not after: a concurrent transaction
/// with the same key then waits on the primary-key index for this one to finish instead of
/// also doing the effect, and the rollback of a failed effect takes the claim with it. The
/// result id is known up front (the caller generated it), so there is nothing to fill in later.
async fn claim_key(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    result_id: &str,
    at: Instant,
) -> Attempt<Option<Idempotent<()>>> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, fingerprint, result_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, idempotency_key) DO NOTHING",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .bind(result_id)
    .bind(millis(at))
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    // READ COMMITTED: this statement's snapshot includes the row that made the insert yield.
    let row =
        sqlx::query("SELECT fingerprint, result_id FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2")
            .bind(&key.scope)
            .bind(&key.key)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    let fingerprint: String = row.try_get("fingerprint").map_err(db)?;
    if fingerprint != key.fingerprint {
        return Err(StoreError::IdempotencyConflict.into());
    }
    let result: Option<String> = row.try_get("result_id").map_err(db)?;
    Ok(Some(Idempotent::Replayed(result.unwrap_or_default())))
}

/// Moves tokens between the company's available pool and a resource, checking the balance for
/// allocations in the same statement; records the ledger transaction.
async fn move_tokens(
    conn: &mut PgConnection,
    company: &CompanyId,
    resource: &ResourceId,
    movement: &Movement,
    pending_delta: i64,
    transaction_id: &str,
) -> Attempt<()> {
    let tokens = movement.tokens.get();
    // Invariant `available ≥ 0` under concurrency: the check and the update are one statement,
    // and the row lock makes a concurrent allocation re-check against the committed result.
    let available: Option<i64> = match movement.kind {
        TransactionKind::Allocate => sqlx::query_scalar(
            "UPDATE companies SET tokens_allocated = tokens_allocated + $1, \
             tokens_pending_release = tokens_pending_release + $3 \
             WHERE id = $2 AND tokens_total - tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated",
        ),
        TransactionKind::Release => sqlx::query_scalar(
            "UPDATE companies SET tokens_allocated = tokens_allocated - $1, \
             tokens_pending_release = tokens_pending_release + $3 \
             WHERE id = $2 AND tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated",
        ),
        TransactionKind::Grant => {
            return Err(StoreError::Backend("a grant is not a resource movement".into()).into());
        }
    }
    .bind(tokens)
    .bind(company.as_str())
    .bind(pending_delta)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(available_after) = available else {
        if movement.kind == TransactionKind::Release {
            return Err(
                StoreError::Backend(format!("release of {tokens} would make {company}'s allocation negative")).into()
            );
        }
        let available: i64 = sqlx::query_scalar("SELECT tokens_total - tokens_allocated FROM companies WHERE id = $1")
            .bind(company.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)?;
        return Err(StoreError::InsufficientTokens { available: CloudTokens(available) }.into());
    };
    let (debit, credit) = movement.kind.accounts(Some(resource.as_str()));
    sqlx::query(
        "INSERT INTO ledger_transactions (id, company_id, at, kind, tokens, debit_account, credit_account, \
         resource_id, available_after, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
    )
    .bind(transaction_id)
    .bind(company.as_str())
    .bind(millis(movement.at))
    .bind(movement.kind.as_str())
    .bind(tokens)
    .bind(debit)
    .bind(credit)
    .bind(resource.as_str())
    .bind(available_after)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Checks that a guarded resource is still at the version the decision read, and bumps it so
/// that a concurrent decision that read it fails in turn.
async fn bump_guard(conn: &mut PgConnection, guard: &Guard) -> Attempt<()> {
    let done = sqlx::query("UPDATE resources SET version = version + 1 WHERE id = $1 AND version = $2")
        .bind(guard.resource_id.as_str())
        .bind(guard.version)
        .execute(conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Stale.into())
    }
}

impl PostgresStore {
    async fn create_company_once(&self, c: &Company, audit: &AuditEvent) -> Attempt<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO companies (id, name, price_list, accounts, enterprise_subscriptions, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.price_list)
        .bind(c.accounts)
        .bind(c.enterprise_subscriptions)
        .bind(millis(c.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn update_company_once(&self, c: &Company, audit: &AuditEvent) -> Attempt<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE companies SET name = $2, price_list = $3, accounts = $4, enterprise_subscriptions = $5 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.price_list)
        .bind(c.accounts)
        .bind(c.enterprise_subscriptions)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound.into());
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn grant_once(
        &self,
        g: &Grant,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> Attempt<Idempotent<()>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Some(key) = idempotency {
            if let Some(done) = claim_key(&mut tx, key, &g.transaction_id, g.at).await? {
                return Ok(done);
            }
        }
        let available: Option<i64> = sqlx::query_scalar(
            "UPDATE companies SET tokens_total = tokens_total + $1 WHERE id = $2 RETURNING tokens_total - tokens_allocated",
        )
        .bind(g.tokens.get())
        .bind(g.company_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let available = available.ok_or(StoreError::NotFound)?;
        let (debit, credit) = TransactionKind::Grant.accounts(None);
        sqlx::query(
            "INSERT INTO ledger_transactions (id, company_id, at, kind, tokens, debit_account, credit_account, \
             resource_id, available_after, note) VALUES ($1, $2, $3, 'grant', $4, $5, $6, NULL, $7, $8)",
        )
        .bind(&g.transaction_id)
        .bind(g.company_id.as_str())
        .bind(millis(g.at))
        .bind(g.tokens.get())
        .bind(debit)
        .bind(credit)
        .bind(available)
        .bind(g.note.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(Idempotent::Done(()))
    }

    async fn create_user_once(&self, u: &User, audit: &AuditEvent) -> Attempt<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO users (id, company_id, name, email, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.id.as_str())
        .bind(u.company_id.as_str())
        .bind(&u.name)
        .bind(&u.email)
        .bind(u.role.as_str())
        .bind(u.password_hash.as_deref())
        .bind(millis(u.created_at))
        .execute(&mut *tx)
        .await
        .map_err(constraint_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_api_token_once(&self, t: &ApiToken, audit: &AuditEvent) -> Attempt<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(t.user_id.as_str())
        .bind(&t.token_hash)
        .bind(&t.description)
        .bind(millis(t.created_at))
        .execute(&mut *tx)
        .await
        .map_err(constraint_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_resource_once(
        &self,
        new: &NewResource,
        guard: Option<&Guard>,
        idempotency: Option<&IdempotencyKey>,
    ) -> Attempt<Idempotent<()>> {
        let r = &new.resource;
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Some(key) = idempotency {
            if let Some(done) = claim_key(&mut tx, key, r.id.as_str(), r.created_at).await? {
                return Ok(done);
            }
        }
        if let Some(g) = guard {
            bump_guard(&mut tx, g).await?;
        }
        let row = ResourceRow::from_resource(r);
        sqlx::query(&format!(
            "INSERT INTO resources ({RESOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
        ))
        .bind(&row.id)
        .bind(&row.company_id)
        .bind(&row.resource_type)
        .bind(&row.display_name)
        .bind(&row.name_key)
        .bind(&row.environment)
        .bind(&row.region)
        .bind(row.cross_region_inference)
        .bind(&row.model)
        .bind(&row.plan)
        .bind(row.cloud_tokens)
        .bind(&row.created_for_name)
        .bind(&row.created_for_email)
        .bind(&row.status)
        .bind(row.created_at)
        .bind(&row.scheduled_kind)
        .bind(&row.scheduled_plan)
        .bind(row.scheduled_cloud_tokens)
        .bind(row.scheduled_at)
        .bind(row.pending_release)
        .bind(row.deprovisioned_at)
        .bind(&row.embeddings_resource_id)
        .bind(row.version)
        .execute(&mut *tx)
        .await
        .map_err(constraint_error)?;
        let allocation = Movement { kind: TransactionKind::Allocate, tokens: r.cloud_tokens, at: r.created_at };
        sqlx::query(
            "INSERT INTO resource_members (resource_id, email, name, user_id, invited, added_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id.as_str())
        .bind(&r.created_for.email)
        .bind(&r.created_for.name)
        .bind(new.member_user_id.as_ref().map(|u| u.as_str()))
        .bind(new.member_user_id.is_none())
        .bind(millis(r.created_at))
        .execute(&mut *tx)
        .await
        .map_err(constraint_error)?;
        insert_audit(&mut tx, &new.audit).await?;
        // Last before the commit: the company row's lock is held for as short a time as possible.
        move_tokens(&mut tx, &r.company_id, &r.id, &allocation, 0, &new.transaction_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(Idempotent::Done(()))
    }

    async fn apply_change_once(&self, w: &ResourceWrite) -> Attempt<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        write_change(&mut tx, w).await?;
        tx.commit().await.map_err(db)
    }

    async fn apply_due_once(&self, now: Instant, n: i64, decide: &DecideDue<'_>) -> Attempt<usize> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Rows another instance's scheduler holds are skipped, not waited for.
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE scheduled_at IS NOT NULL AND scheduled_at <= $1 \
             AND status <> 'deprovisioned' ORDER BY scheduled_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(millis(now))
        .bind(limit(n))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut applied = 0;
        for row in &rows {
            let resource = resource_row(row)?;
            if let Some(w) = decide(&resource) {
                write_change(&mut tx, &w).await?;
                applied += 1;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(applied)
    }
}

/// Writes one resource change inside the caller's transaction: guard, pending-release counter,
/// the versioned resource update, the ledger movement and the audit event.
async fn write_change(conn: &mut PgConnection, w: &ResourceWrite) -> Attempt<()> {
    let next = &w.change.next;
    if let Some(g) = &w.guard {
        bump_guard(&mut *conn, g).await?;
    }
    let row = ResourceRow::from_resource(next);
    // Read (and on PostgreSQL lock) the resource at the version the change was decided on; a
    // concurrent writer that got there first makes this find nothing: the change is stale.
    let old_pending: Option<i64> =
        sqlx::query_scalar("SELECT pending_release FROM resources WHERE id = $1 AND version = $2 FOR UPDATE")
            .bind(&row.id)
            .bind(row.version)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    let Some(old_pending) = old_pending else {
        return Err(StoreError::Stale.into());
    };
    // The arbiter of every race on a resource (two requests, two schedulers): of all the
    // writes decided on one version, exactly one matches a row here.
    let done = sqlx::query(
        "UPDATE resources SET plan = $3, cloud_tokens = $4, status = $5, scheduled_kind = $6, scheduled_plan = $7, \
         scheduled_cloud_tokens = $8, scheduled_at = $9, pending_release = $10, deprovisioned_at = $11, \
         display_name = $12, name_key = $13, version = version + 1 \
         WHERE id = $1 AND version = $2",
    )
    .bind(&row.id)
    .bind(row.version)
    .bind(&row.plan)
    .bind(row.cloud_tokens)
    .bind(&row.status)
    .bind(&row.scheduled_kind)
    .bind(&row.scheduled_plan)
    .bind(row.scheduled_cloud_tokens)
    .bind(row.scheduled_at)
    .bind(row.pending_release)
    .bind(row.deprovisioned_at)
    .bind(&row.display_name)
    .bind(&row.name_key)
    .execute(&mut *conn)
    .await
    .map_err(constraint_error)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Stale.into());
    }
    insert_audit(&mut *conn, &w.audit).await?;
    // The company row is the one every write of a company shares: touch it last, in one
    // statement, so its lock is held only until the commit.
    let pending_delta = row.pending_release - old_pending;
    match &w.change.movement {
        Some(m) => move_tokens(&mut *conn, &next.company_id, &next.id, m, pending_delta, &w.transaction_id).await?,
        None if pending_delta != 0 => {
            sqlx::query("UPDATE companies SET tokens_pending_release = tokens_pending_release + $1 WHERE id = $2")
                .bind(pending_delta)
                .bind(&row.company_id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        None => {}
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn has_companies(&self) -> StoreResult<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM companies)").fetch_one(&self.pool).await.map_err(backend)
    }

    async fn create_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_company", || self.create_company_once(company, audit)).await
    }

    async fn update_company(&self, company: &Company, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("update_company", || self.update_company_once(company, audit)).await
    }

    async fn company(&self, id: &CompanyId) -> StoreResult<Option<Company>> {
        let row = sqlx::query("SELECT * FROM companies WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(company_row).transpose()
    }

    async fn companies(&self) -> StoreResult<Vec<Company>> {
        let rows = sqlx::query("SELECT * FROM companies ORDER BY id").fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(company_row).collect()
    }

    async fn balance(&self, id: &CompanyId) -> StoreResult<Balance> {
        // One statement, one snapshot: the counters and the pending releases agree.
        // SUM(BIGINT) is NUMERIC in PostgreSQL, hence the cast back.
        let row = sqlx::query(
            "SELECT tokens_total, tokens_allocated, tokens_pending_release AS pending FROM companies WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        Ok(Balance::new(
            CloudTokens(row.try_get("tokens_total").map_err(backend)?),
            CloudTokens(row.try_get("tokens_allocated").map_err(backend)?),
            CloudTokens(row.try_get("pending").map_err(backend)?),
        ))
    }

    async fn grant_tokens(
        &self,
        grant: &Grant,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> StoreResult<Idempotent<()>> {
        with_retries("grant_tokens", || self.grant_once(grant, idempotency, audit)).await
    }

    async fn transactions(&self, company: &CompanyId, n: i64) -> StoreResult<Vec<LedgerTransaction>> {
        let rows =
            sqlx::query("SELECT * FROM ledger_transactions WHERE company_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
                .bind(company.as_str())
                .bind(limit(n))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter().map(transaction_row).collect()
    }

    async fn create_user(&self, user: &User, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_user", || self.create_user_once(user, audit)).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_api_token", || self.create_api_token_once(token, audit)).await
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&session.id_hash)
            .bind(session.user_id.as_str())
            .bind(millis(session.created_at))
            .bind(millis(session.expires_at))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn session_user(&self, id_hash: &str, now: Instant) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn idempotent_result(&self, key: &IdempotencyKey) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT fingerprint, result_id FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
        )
        .bind(&key.scope)
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let fingerprint: String = row.try_get("fingerprint").map_err(backend)?;
                if fingerprint != key.fingerprint {
                    return Err(StoreError::IdempotencyConflict);
                }
                row.try_get("result_id").map_err(backend)
            }
        }
    }

    async fn insert_resource(
        &self,
        new: &NewResource,
        guard: Option<&Guard>,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<Idempotent<()>> {
        with_retries("insert_resource", || self.insert_resource_once(new, guard, idempotency)).await
    }

    async fn apply_change(&self, write: &ResourceWrite) -> StoreResult<()> {
        with_retries("apply_change", || self.apply_change_once(write)).await
    }

    async fn apply_due(&self, now: Instant, n: i64, decide: &DecideDue<'_>) -> StoreResult<usize> {
        with_retries("apply_due", || self.apply_due_once(now, n, decide)).await
    }

    async fn resource(&self, company: &CompanyId, id: &ResourceId) -> StoreResult<Option<Resource>> {
        let row = sqlx::query(&format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1 AND company_id = $2"))
            .bind(id.as_str())
            .bind(company.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(resource_row).transpose()
    }

    async fn resources(&self, q: &ResourceQuery) -> StoreResult<Vec<Resource>> {
        // Optional filters are passed as NULLs so the statement text (and its prepared plan)
        // stays constant.
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE company_id = $1 \
             AND ($2::TEXT IS NULL OR resource_type = $2) \
             AND ($3 OR status <> 'deprovisioned') \
             AND ($4::TEXT IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        ))
        .bind(q.company_id.as_str())
        .bind(q.resource_type.map(|t| t.as_str()))
        .bind(q.include_deprovisioned)
        .bind(q.after_id.as_ref().map(|r| r.as_str()))
        .bind(q.limit.and_then(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn linked_knowledge_bases(&self, embeddings: &ResourceId) -> StoreResult<Vec<Resource>> {
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE embeddings_resource_id = $1 \
             AND status <> 'deprovisioned' ORDER BY id"
        ))
        .bind(embeddings.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn due_resources(&self, now: Instant, n: i64) -> StoreResult<Vec<Resource>> {
        // A plain read through the partial `resources_due` index. Several schedulers may see the
        // same due resource; `apply_change`'s versioned UPDATE lets exactly one of them apply it.
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE scheduled_at IS NOT NULL AND scheduled_at <= $1 \
             AND status <> 'deprovisioned' ORDER BY scheduled_at, id LIMIT $2"
        ))
        .bind(millis(now))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn audit_events(&self, company: &CompanyId, n: i64) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE company_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
            .bind(company.as_str())
            .bind(limit(n))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(audit_row).collect()
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
        let open = super::PostgresStore::open("postgres://nowhere.invalid/db", super::PgOptions::default());
        assert_send(&open);
    }
}
