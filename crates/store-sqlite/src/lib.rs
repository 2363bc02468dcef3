//! The embedded SQLite adapter of the storage port: the default backend, no server needed.
//!
//! SQLite allows one writer at a time. Rather than let connections race for the write lock and
//! retry on `SQLITE_BUSY`, the adapter keeps **one writer connection** (a pool of size 1) for
//! every write transaction and a separate pool of reader connections; WAL mode lets readers run
//! while the writer writes. Write transactions are therefore serialized in this process, which
//! makes every conditional check inside them (balance, versions, idempotency keys) trivially
//! race-free. `synchronous = NORMAL` in WAL mode keeps commits durable across a process crash
//! (`kill -9`); only a power loss can lose the last commits.

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL and applies migrations.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        migrate::run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        Ok(SqliteStore { writer, reader })
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer.begin().await.map_err(backend)
    }
}

fn resource_row(row: &SqliteRow) -> StoreResult<Resource> {
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

fn company_row(row: &SqliteRow) -> StoreResult<Company> {
    Ok(Company {
        id: CompanyId(row.try_get("id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        price_list: row.try_get("price_list").map_err(backend)?,
        accounts: row.try_get("accounts").map_err(backend)?,
        enterprise_subscriptions: row.try_get("enterprise_subscriptions").map_err(backend)?,
        created_at: codec::instant(row.try_get("created_at").map_err(backend)?)?,
    })
}

fn user_row(row: &SqliteRow) -> StoreResult<User> {
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

async fn insert_audit(tx: &mut Transaction<'static, Sqlite>, e: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, company_id, at, actor, action, resource_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&e.id)
    .bind(e.company_id.as_ref().map(|c| c.as_str()))
    .bind(millis(e.at))
    .bind(&e.actor)
    .bind(&e.action)
    .bind(e.resource_id.as_ref().map(|r| r.as_str()))
    .bind(e.details.to_string())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Looks an idempotency key up: `Some(Replayed)` when seen with the same request.
async fn check_idempotency(
    tx: &mut Transaction<'static, Sqlite>,
    key: &IdempotencyKey,
) -> StoreResult<Option<Idempotent<()>>> {
    let row =
        sqlx::query("SELECT fingerprint, result_id FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2")
            .bind(&key.scope)
            .bind(&key.key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    match row {
        None => Ok(None),
        Some(row) => {
            let fingerprint: String = row.try_get("fingerprint").map_err(backend)?;
            if fingerprint != key.fingerprint {
                return Err(StoreError::IdempotencyConflict);
            }
            let result: Option<String> = row.try_get("result_id").map_err(backend)?;
            Ok(Some(Idempotent::Replayed(result.unwrap_or_default())))
        }
    }
}

async fn record_idempotency(
    tx: &mut Transaction<'static, Sqlite>,
    key: &IdempotencyKey,
    result_id: &str,
    at: Instant,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, fingerprint, result_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .bind(result_id)
    .bind(millis(at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Moves tokens between the company's available pool and a resource, checking the balance for
/// allocations in the same statement; records the ledger transaction.
async fn move_tokens(
    tx: &mut Transaction<'static, Sqlite>,
    company: &CompanyId,
    resource: &ResourceId,
    movement: &Movement,
    transaction_id: &str,
) -> StoreResult<()> {
    let tokens = movement.tokens.get();
    let available: Option<i64> = match movement.kind {
        TransactionKind::Allocate => sqlx::query_scalar(
            "UPDATE companies SET tokens_allocated = tokens_allocated + $1 \
             WHERE id = $2 AND tokens_total - tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated",
        ),
        TransactionKind::Release => sqlx::query_scalar(
            "UPDATE companies SET tokens_allocated = tokens_allocated - $1 \
             WHERE id = $2 AND tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated",
        ),
        TransactionKind::Grant => {
            return Err(StoreError::Backend("a grant is not a resource movement".into()));
        }
    }
    .bind(tokens)
    .bind(company.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(available_after) = available else {
        if movement.kind == TransactionKind::Release {
            return Err(StoreError::Backend(format!("release of {tokens} would make {company}'s allocation negative")));
        }
        let available: i64 = sqlx::query_scalar("SELECT tokens_total - tokens_allocated FROM companies WHERE id = $1")
            .bind(company.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?;
        return Err(StoreError::InsufficientTokens { available: CloudTokens(available) });
    };
    let (debit, credit) = movement.kind.accounts(Some(resource.as_str()));
    sqlx::query(
        "INSERT INTO ledger_transactions (id, company_id, at, kind, tokens, debit_account, credit_account, resource_id, available_after, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
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
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn bump_guard(tx: &mut Transaction<'static, Sqlite>, guard: &Guard) -> StoreResult<()> {
    let done = sqlx::query("UPDATE resources SET version = version + 1 WHERE id = $1 AND version = $2")
        .bind(guard.resource_id.as_str())
        .bind(guard.version)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Stale)
    }
}

/// Writes one resource change inside the caller's transaction: guard, pending-release counter,
/// the versioned resource update, the ledger movement and the audit event.
async fn write_change(tx: &mut Transaction<'static, Sqlite>, w: &ResourceWrite) -> StoreResult<()> {
    let next = &w.change.next;
    if let Some(g) = &w.guard {
        bump_guard(tx, g).await?;
    }
    let row = ResourceRow::from_resource(next);
    // Read (and on PostgreSQL lock) the resource at the version the change was decided on; a
    // concurrent writer that got there first makes this find nothing: the change is stale.
    let old_pending: Option<i64> =
        sqlx::query_scalar("SELECT pending_release FROM resources WHERE id = $1 AND version = $2")
            .bind(&row.id)
            .bind(row.version)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    let Some(old_pending) = old_pending else {
        return Err(StoreError::Stale);
    };
    // Keep the company's pending-release counter in step with the resource's.
    if row.pending_release != old_pending {
        sqlx::query("UPDATE companies SET tokens_pending_release = tokens_pending_release + $1 WHERE id = $2")
            .bind(row.pending_release - old_pending)
            .bind(&row.company_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
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
    .execute(&mut **tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { StoreError::Duplicate("display_name") } else { backend(e) })?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Stale);
    }
    if let Some(m) = &w.change.movement {
        move_tokens(tx, &next.company_id, &next.id, m, &w.transaction_id).await?;
    }
    insert_audit(tx, &w.audit).await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn has_companies(&self) -> StoreResult<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM companies").fetch_one(&self.reader).await.map_err(backend)?;
        Ok(n > 0)
    }

    async fn create_company(&self, c: &Company, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO companies (id, name, price_list, accounts, enterprise_subscriptions, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.price_list)
        .bind(c.accounts)
        .bind(c.enterprise_subscriptions)
        .bind(millis(c.created_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_company(&self, c: &Company, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
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
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn company(&self, id: &CompanyId) -> StoreResult<Option<Company>> {
        let row = sqlx::query("SELECT * FROM companies WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(company_row).transpose()
    }

    async fn companies(&self) -> StoreResult<Vec<Company>> {
        let rows = sqlx::query("SELECT * FROM companies ORDER BY id").fetch_all(&self.reader).await.map_err(backend)?;
        rows.iter().map(company_row).collect()
    }

    async fn balance(&self, id: &CompanyId) -> StoreResult<Balance> {
        let row = sqlx::query(
            "SELECT tokens_total, tokens_allocated, tokens_pending_release AS pending FROM companies WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
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
        g: &Grant,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> StoreResult<Idempotent<()>> {
        let mut tx = self.begin().await?;
        if let Some(key) = idempotency {
            if let Some(done) = check_idempotency(&mut tx, key).await? {
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
        .map_err(backend)?;
        let available = available.ok_or(StoreError::NotFound)?;
        let (debit, credit) = TransactionKind::Grant.accounts(None);
        sqlx::query(
            "INSERT INTO ledger_transactions (id, company_id, at, kind, tokens, debit_account, credit_account, resource_id, available_after, note) \
             VALUES ($1, $2, $3, 'grant', $4, $5, $6, NULL, $7, $8)",
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
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        if let Some(key) = idempotency {
            record_idempotency(&mut tx, key, &g.transaction_id, g.at).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Idempotent::Done(()))
    }

    async fn transactions(&self, company: &CompanyId, limit: i64) -> StoreResult<Vec<LedgerTransaction>> {
        let rows =
            sqlx::query("SELECT * FROM ledger_transactions WHERE company_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
                .bind(company.as_str())
                .bind(limit)
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        rows.iter()
            .map(|row| {
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
            })
            .collect()
    }

    async fn create_user(&self, u: &User, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, company_id, name, email, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        .map_err(|e| if is_unique_violation(&e) { StoreError::Duplicate("email") } else { backend(e) })?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn create_api_token(&self, t: &ApiToken, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
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
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
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
            .execute(&self.writer)
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
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.writer)
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
        .fetch_optional(&self.reader)
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
        let r = &new.resource;
        let mut tx = self.begin().await?;
        if let Some(key) = idempotency {
            if let Some(done) = check_idempotency(&mut tx, key).await? {
                return Ok(done);
            }
        }
        if let Some(g) = guard {
            bump_guard(&mut tx, g).await?;
        }
        let row = ResourceRow::from_resource(r);
        sqlx::query(&format!(
            "INSERT INTO resources ({RESOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
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
        .map_err(|e| if is_unique_violation(&e) { StoreError::Duplicate("display_name") } else { backend(e) })?;
        let allocation = Movement { kind: TransactionKind::Allocate, tokens: r.cloud_tokens, at: r.created_at };
        move_tokens(&mut tx, &r.company_id, &r.id, &allocation, &new.transaction_id).await?;
        sqlx::query(
            "INSERT INTO resource_members (resource_id, email, name, user_id, invited, added_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id.as_str())
        .bind(&r.created_for.email)
        .bind(&r.created_for.name)
        .bind(new.member_user_id.as_ref().map(|u| u.as_str()))
        .bind(new.member_user_id.is_none())
        .bind(millis(r.created_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, &new.audit).await?;
        if let Some(key) = idempotency {
            record_idempotency(&mut tx, key, r.id.as_str(), r.created_at).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Idempotent::Done(()))
    }

    async fn apply_change(&self, w: &ResourceWrite) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        write_change(&mut tx, w).await?;
        tx.commit().await.map_err(backend)
    }

    async fn apply_due(&self, now: Instant, limit: i64, decide: &DecideDue<'_>) -> StoreResult<usize> {
        // The single writer connection serializes this with every other write.
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE scheduled_at IS NOT NULL AND scheduled_at <= $1 \
             AND status <> 'deprovisioned' ORDER BY scheduled_at, id LIMIT $2"
        ))
        .bind(millis(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut applied = 0;
        for row in &rows {
            if let Some(w) = decide(&resource_row(row)?) {
                write_change(&mut tx, &w).await?;
                applied += 1;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(applied)
    }

    async fn resource(&self, company: &CompanyId, id: &ResourceId) -> StoreResult<Option<Resource>> {
        let row = sqlx::query(&format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1 AND company_id = $2"))
            .bind(id.as_str())
            .bind(company.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(resource_row).transpose()
    }

    async fn resources(&self, q: &ResourceQuery) -> StoreResult<Vec<Resource>> {
        // Optional filters are passed as NULLs so the statement text stays constant.
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE company_id = $1 \
             AND ($2 IS NULL OR resource_type = $2) \
             AND ($3 OR status <> 'deprovisioned') \
             AND ($4 IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        ))
        .bind(q.company_id.as_str())
        .bind(q.resource_type.map(|t| t.as_str()))
        .bind(q.include_deprovisioned)
        .bind(q.after_id.as_ref().map(|r| r.as_str()))
        .bind(q.limit.unwrap_or(-1))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn linked_knowledge_bases(&self, embeddings: &ResourceId) -> StoreResult<Vec<Resource>> {
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE embeddings_resource_id = $1 AND status <> 'deprovisioned' ORDER BY id"
        ))
        .bind(embeddings.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn due_resources(&self, now: Instant, limit: i64) -> StoreResult<Vec<Resource>> {
        let rows = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE scheduled_at IS NOT NULL AND scheduled_at <= $1 \
             AND status <> 'deprovisioned' ORDER BY scheduled_at, id LIMIT $2"
        ))
        .bind(millis(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(resource_row).collect()
    }

    async fn audit_events(&self, company: &CompanyId, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE company_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
            .bind(company.as_str())
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let details: String = row.try_get("details").map_err(backend)?;
                Ok(AuditEvent {
                    id: row.try_get("id").map_err(backend)?,
                    company_id: row.try_get::<Option<String>, _>("company_id").map_err(backend)?.map(CompanyId),
                    at: codec::instant(row.try_get("at").map_err(backend)?)?,
                    actor: row.try_get("actor").map_err(backend)?,
                    action: row.try_get("action").map_err(backend)?,
                    resource_id: row.try_get::<Option<String>, _>("resource_id").map_err(backend)?.map(ResourceId),
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
                })
            })
            .collect()
    }
}
