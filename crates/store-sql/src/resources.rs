//! [`ResourceStore`] in SQL: resources, the cloud-token ledger, idempotency keys and the
//! scheduler's claim of due changes.
//!
//! Every write that touches the company row (the hot spot every allocation and release of a
//! company shares) does so last and in one statement, so on PostgreSQL its row lock is held only
//! until the commit.

use crate::audit::{page_args, LEDGER_PAGE};
use crate::conn::{with_retries, Attempt, Backend, Conn, Fail, RowRead, Transaction};
use crate::{args, insert_audit, knowledge, millis, resource_columns, rows, ResourceRow, SqlStore};
use async_trait::async_trait;
use genai_core::catalog::ResourceType;
use genai_core::ledger::{Balance, TransactionKind};
use genai_core::resource::{Movement, Resource};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId};
use genai_store::{
    due_retry_delay, AuditEvent, DecideDue, DueBatch, Grant, Guard, HistoryPage, IdempotencyKey, Idempotent,
    LedgerTransaction, NewResource, ResourceQuery, ResourceStore, ResourceWrite, SetAside, StoreError, StoreResult,
};

// ---- ledger -----------------------------------------------------------------------------

const BALANCE: &str = "SELECT tokens_total, tokens_allocated, tokens_pending_release FROM companies WHERE id = $1";
/// Capped in the statement: the total never passes `$3` (`i64::MAX`), which `$3 - $1` expresses
/// without overflowing (`$1` is positive).
const GRANT: &str = "UPDATE companies SET tokens_total = tokens_total + $1 \
     WHERE id = $2 AND tokens_total <= $3 - $1 RETURNING tokens_total - tokens_allocated AS n";
const TOTAL: &str = "SELECT tokens_total AS n FROM companies WHERE id = $1";
/// The invariant `available ≥ 0` under any concurrency: the check and the update are one
/// statement, and on PostgreSQL the row lock makes a concurrent allocation re-check against the
/// committed result.
const ALLOCATE: &str = "UPDATE companies SET tokens_allocated = tokens_allocated + $1, \
     tokens_pending_release = tokens_pending_release + $3 \
     WHERE id = $2 AND tokens_total - tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated AS n";
const RELEASE: &str = "UPDATE companies SET tokens_allocated = tokens_allocated - $1, \
     tokens_pending_release = tokens_pending_release + $3 \
     WHERE id = $2 AND tokens_allocated >= $1 RETURNING tokens_total - tokens_allocated AS n";
const PENDING: &str = "UPDATE companies SET tokens_pending_release = tokens_pending_release + $1 WHERE id = $2";
const AVAILABLE: &str = "SELECT tokens_total - tokens_allocated AS n FROM companies WHERE id = $1";
const INSERT_TRANSACTION: &str = "INSERT INTO ledger_transactions \
     (id, company_id, at, kind, tokens, debit_account, credit_account, resource_id, available_after, note) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

// ---- idempotency keys -------------------------------------------------------------------

const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (scope, idempotency_key, fingerprint, result_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, idempotency_key) DO NOTHING";
const KEY: &str = "SELECT fingerprint, result_id FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2";
const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

// ---- resources --------------------------------------------------------------------------

const INSERT_RESOURCE: &str = concat!(
    "INSERT INTO resources (",
    resource_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
);
/// When a deprovisioning takes effect, every key of the resource is revoked in the same
/// transaction, and so are the companion keys made for it (a knowledge base's keys on its
/// embeddings resource) (SPEC §5).
const REVOKE_ALL_KEYS: &str = "UPDATE runtime_keys SET revoked_at = $2 \
     WHERE (resource_id = $1 OR companion_of = $1) AND revoked_at IS NULL";
const BUMP_GUARD: &str = "UPDATE resources SET version = version + 1 WHERE id = $1 AND version = $2";
/// Completed with the backend's row lock.
const PENDING_AT_VERSION: &str = "SELECT pending_release AS n FROM resources WHERE id = $1 AND version = $2";
/// The arbiter of every race on a resource (two requests, two schedulers): of all the writes
/// decided on one version, exactly one matches a row here. Any successful write also lifts a
/// scheduler's hold on the row (`due_attempts`, `due_retry_at`).
const UPDATE_RESOURCE: &str = "UPDATE resources SET plan = $3, cloud_tokens = $4, status = $5, scheduled_kind = $6, \
     scheduled_plan = $7, scheduled_cloud_tokens = $8, scheduled_at = $9, pending_release = $10, \
     deprovisioned_at = $11, display_name = $12, name_key = $13, version = version + 1, \
     due_attempts = 0, due_retry_at = NULL \
     WHERE id = $1 AND version = $2";
const RESOURCE: &str = concat!("SELECT ", resource_columns!(), " FROM resources WHERE id = $1 AND company_id = $2");
/// Optional filters are passed as NULLs (and "no limit" as `i64::MAX`) so that the statement
/// text, and its prepared plan, stays constant.
const RESOURCES: &str = concat!(
    "SELECT ",
    resource_columns!(),
    " FROM resources WHERE company_id = $1 AND (CAST($2 AS TEXT) IS NULL OR resource_type = $2) \
     AND ($3 OR status <> 'deprovisioned') AND (CAST($4 AS TEXT) IS NULL OR id > $4) ORDER BY id LIMIT $5"
);
const LINKED: &str = concat!(
    "SELECT ",
    resource_columns!(),
    " FROM resources WHERE embeddings_resource_id = $1 AND status <> 'deprovisioned' ORDER BY id"
);
/// Completed with the backend's `SKIP LOCKED`. Served by the partial `resources_due` index.
const CLAIM_DUE: &str = concat!(
    "SELECT ",
    resource_columns!(),
    ", due_attempts FROM resources WHERE scheduled_at IS NOT NULL AND scheduled_at <= $1 \
     AND status <> 'deprovisioned' AND (due_retry_at IS NULL OR due_retry_at <= $1) \
     ORDER BY scheduled_at, id LIMIT $2"
);
const SET_ASIDE: &str = "UPDATE resources SET due_attempts = $2, due_retry_at = $3 WHERE id = $1";

/// Whether an idempotency key was used before: `Some(Replayed)` with the same request,
/// `IdempotencyConflict` with another.
fn replay(row: Option<(String, Option<String>)>, key: &IdempotencyKey) -> StoreResult<Option<Idempotent<()>>> {
    match row {
        None => Ok(None),
        Some((fingerprint, _)) if fingerprint != key.fingerprint => Err(StoreError::IdempotencyConflict),
        Some((_, result)) => Ok(Some(Idempotent::Replayed(result.unwrap_or_default()))),
    }
}

fn key_row(row: &dyn RowRead) -> StoreResult<(String, Option<String>)> {
    Ok((row.text("fingerprint")?, row.opt_text("result_id")?))
}

/// Claims an idempotency key for the current transaction, recording `result_id` as what it
/// produces; `Some` when the key was already used (a replay, or `IdempotencyConflict`).
///
/// The row is inserted *before* the effect it protects, not after: a concurrent transaction
/// with the same key then waits on the primary-key index for this one to finish instead of
/// also doing the effect, and the rollback of a failed effect takes the claim with it. The
/// result id is known up front (the caller generated it), so there is nothing to fill in later.
async fn claim_key(
    tx: &mut impl Conn,
    key: &IdempotencyKey,
    result_id: &str,
    at: Instant,
) -> Attempt<Option<Idempotent<()>>> {
    let args = args![&key.scope, &key.key, &key.fingerprint, result_id, millis(at)];
    if tx.execute(CLAIM_KEY, args).await? == 1 {
        return Ok(None);
    }
    // On PostgreSQL (READ COMMITTED) this statement's snapshot includes the row that made the
    // insert yield.
    let row = tx.fetch_optional(KEY, args![&key.scope, &key.key], key_row).await?;
    Ok(replay(row, key)?)
}

/// Appends a ledger transaction.
#[expect(clippy::too_many_arguments, reason = "one argument per column")]
async fn insert_transaction(
    tx: &mut impl Conn,
    id: &str,
    company: &CompanyId,
    at: Instant,
    kind: TransactionKind,
    tokens: CloudTokens,
    resource: Option<&ResourceId>,
    available_after: i64,
    note: Option<&str>,
) -> Attempt<()> {
    let (debit, credit) = kind.accounts(resource.map(ResourceId::as_str));
    let args = args![
        id,
        company.as_str(),
        millis(at),
        kind.as_str(),
        tokens.get(),
        &debit,
        &credit,
        resource.map(ResourceId::as_str),
        available_after,
        note,
    ];
    tx.execute(INSERT_TRANSACTION, args).await?;
    Ok(())
}

/// Moves tokens between the company's available pool and a resource (checking the balance for
/// allocations in the same statement), adjusts its pending releases by `pending_delta`, and
/// records the ledger transaction.
async fn move_tokens(
    tx: &mut impl Conn,
    company: &CompanyId,
    resource: &ResourceId,
    movement: &Movement,
    pending_delta: i64,
    transaction_id: &str,
) -> Attempt<()> {
    let statement = match movement.kind {
        TransactionKind::Allocate => ALLOCATE,
        TransactionKind::Release => RELEASE,
        TransactionKind::Grant => return Err(StoreError::corrupt("resource movement", "grant").into()),
    };
    let tokens = movement.tokens.get();
    let args = args![tokens, company.as_str(), pending_delta];
    let Some(available_after) = tx.fetch_optional(statement, args, rows::count).await? else {
        let available = tx.fetch_optional(AVAILABLE, args![company.as_str()], rows::count).await?;
        return Err(match (movement.kind, available) {
            (_, None) => StoreError::NotFound,
            (TransactionKind::Allocate, Some(a)) => StoreError::InsufficientTokens { available: CloudTokens(a) },
            (_, Some(_)) => StoreError::Inconsistent(format!(
                "resource {resource} releases {tokens} tokens, more than company {company} has allocated"
            )),
        }
        .into());
    };
    let at = movement.at;
    insert_transaction(
        tx,
        transaction_id,
        company,
        at,
        movement.kind,
        movement.tokens,
        Some(resource),
        available_after,
        None,
    )
    .await
}

/// Checks that a guarded resource is still at the version the decision read, and bumps it so
/// that a concurrent decision that read it fails in turn.
async fn bump_guard(tx: &mut impl Conn, guard: &Guard) -> Attempt<()> {
    if tx.execute(BUMP_GUARD, args![guard.resource_id.as_str(), guard.version]).await? == 1 {
        Ok(())
    } else {
        Err(StoreError::Stale.into())
    }
}

/// Writes one resource change inside the caller's transaction: guard, the versioned resource
/// update, the audit event, and last the company row (ledger movement, pending releases).
async fn write_change<B: Backend>(tx: &mut B::Tx, w: &ResourceWrite) -> Attempt<()> {
    let next = &w.change.next;
    if let Some(g) = &w.guard {
        bump_guard(tx, g).await?;
    }
    let row = ResourceRow::from_resource(next)?;
    // Read (and where rows lock, lock) the resource at the version the change was decided on;
    // a concurrent writer that got there first makes this find nothing: the change is stale.
    let read_pending = format!("{PENDING_AT_VERSION}{}", B::FOR_UPDATE);
    let Some(old_pending) = tx.fetch_optional(&read_pending, args![&row.id, row.version], rows::count).await? else {
        return Err(StoreError::Stale.into());
    };
    let args = args![
        &row.id,
        row.version,
        &row.plan,
        row.cloud_tokens,
        &row.status,
        row.scheduled_kind.as_deref(),
        row.scheduled_plan.as_deref(),
        row.scheduled_cloud_tokens,
        row.scheduled_at,
        row.pending_release,
        row.deprovisioned_at,
        &row.display_name,
        &row.name_key,
    ];
    if tx.execute(UPDATE_RESOURCE, args).await? != 1 {
        return Err(StoreError::Stale.into());
    }
    insert_audit(tx, &w.audit).await?;
    if let Some(at) = next.deprovisioned_at.filter(|_| !next.is_live()) {
        tx.execute(REVOKE_ALL_KEYS, args![&row.id, millis(at)]).await?;
        if next.resource_type == ResourceType::KnowledgeBase {
            // RUNTIME.md §8: its content is deleted when the deprovisioning takes effect, and
            // the counter closed so that no insert racing this transaction can store more.
            tx.execute(knowledge::DEPROVISION_CHUNKS, args![&row.id]).await?;
            tx.execute(knowledge::DEPROVISION_COLLECTIONS, args![&row.id]).await?;
            tx.execute(knowledge::DEPROVISION_STORE, args![&row.id]).await?;
        }
    }
    let pending_delta = row.pending_release.checked_sub(old_pending).ok_or_else(|| {
        StoreError::Inconsistent(format!("the pending release of resource {} cannot be computed", row.id))
    })?;
    match &w.change.movement {
        Some(m) => move_tokens(tx, &next.company_id, &next.id, m, pending_delta, &w.transaction_id).await?,
        None if pending_delta != 0 => {
            tx.execute(PENDING, args![pending_delta, &row.company_id]).await?;
        }
        None => {}
    }
    Ok(())
}

/// A claimed due row: the bookkeeping columns read on their own, so that a row whose other
/// columns cannot be decoded can still be set aside.
struct Due {
    id: String,
    attempts: i64,
    resource: StoreResult<Resource>,
}

fn due_row(row: &dyn RowRead) -> StoreResult<Due> {
    Ok(Due { id: row.text("id")?, attempts: row.int("due_attempts")?, resource: rows::resource(row) })
}

impl<B: Backend> SqlStore<B> {
    async fn grant_once(&self, g: &Grant, key: Option<&IdempotencyKey>, audit: &AuditEvent) -> Attempt<Idempotent<()>> {
        let mut tx = self.backend.begin().await?;
        if let Some(key) = key {
            if let Some(done) = claim_key(&mut tx, key, &g.transaction_id, g.at).await? {
                return Ok(done);
            }
        }
        let company = g.company_id.as_str();
        let args = args![g.tokens.get(), company, i64::MAX];
        let Some(available) = tx.fetch_optional(GRANT, args, rows::count).await? else {
            return Err(match tx.fetch_optional(TOTAL, args![company], rows::count).await? {
                None => StoreError::NotFound,
                // `total` is never negative (a CHECK constraint), so this is exact.
                Some(total) => StoreError::TotalTooLarge { headroom: CloudTokens(i64::MAX.saturating_sub(total)) },
            }
            .into());
        };
        let (id, kind, note) = (&g.transaction_id, TransactionKind::Grant, g.note.as_deref());
        insert_transaction(&mut tx, id, &g.company_id, g.at, kind, g.tokens, None, available, note).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Idempotent::Done(()))
    }

    async fn insert_resource_once(
        &self,
        new: &NewResource,
        guard: Option<&Guard>,
        key: Option<&IdempotencyKey>,
    ) -> Attempt<Idempotent<()>> {
        let r = &new.resource;
        let mut tx = self.backend.begin().await?;
        if let Some(key) = key {
            if let Some(done) = claim_key(&mut tx, key, r.id.as_str(), r.created_at).await? {
                return Ok(done);
            }
        }
        if let Some(g) = guard {
            bump_guard(&mut tx, g).await?;
        }
        let row = ResourceRow::from_resource(r)?;
        let args = args![
            &row.id,
            &row.company_id,
            &row.resource_type,
            &row.display_name,
            &row.name_key,
            &row.environment,
            &row.region,
            row.cross_region_inference,
            row.model.as_deref(),
            &row.plan,
            row.cloud_tokens,
            &row.created_for_name,
            &row.created_for_email,
            &row.status,
            row.created_at,
            row.scheduled_kind.as_deref(),
            row.scheduled_plan.as_deref(),
            row.scheduled_cloud_tokens,
            row.scheduled_at,
            row.pending_release,
            row.deprovisioned_at,
            row.embeddings_resource_id.as_deref(),
            row.version,
        ];
        tx.execute(INSERT_RESOURCE, args).await?;
        if let Some(member) = &new.member {
            crate::team::insert_member(&mut tx, &r.id, member, r.created_at).await?;
        }
        insert_audit(&mut tx, &new.audit).await?;
        let allocation = Movement { kind: TransactionKind::Allocate, tokens: r.cloud_tokens, at: r.created_at };
        move_tokens(&mut tx, &r.company_id, &r.id, &allocation, 0, &new.transaction_id).await?;
        tx.commit().await?;
        Ok(Idempotent::Done(()))
    }

    async fn apply_change_once(&self, w: &ResourceWrite) -> Attempt<()> {
        let mut tx = self.backend.begin().await?;
        write_change::<B>(&mut tx, w).await?;
        tx.commit().await
    }

    /// One batch of due changes, each inside a savepoint of the batch's transaction: a change
    /// that fails is rolled back alone and its row set aside, the others are still written.
    /// Only a transient conflict (retry the batch) or a failure of the connection itself (the
    /// savepoint cannot be rolled back to) fails the whole batch.
    async fn apply_due_once(&self, now: Instant, limit: i64, decide: &DecideDue<'_>) -> Attempt<DueBatch> {
        let mut tx = self.backend.begin().await?;
        let claim = format!("{CLAIM_DUE}{}", B::SKIP_LOCKED);
        let claimed = tx.fetch(&claim, args![millis(now), limit], due_row).await?;
        let mut batch = DueBatch::default();
        for due in claimed {
            tx.execute("SAVEPOINT due_change", args![]).await?;
            let outcome = match &due.resource {
                // The claim found it due, so the domain must make a change of it; when it
                // cannot (amounts that do not subtract), the row is broken.
                Ok(resource) => match decide(resource) {
                    Some(w) => write_change::<B>(&mut tx, &w).await,
                    None => Err(StoreError::Inconsistent(format!(
                        "the due scheduled change of resource {} cannot be computed",
                        due.id
                    ))
                    .into()),
                },
                Err(_) => Ok(()),
            };
            let error = match (outcome, due.resource) {
                (Ok(()), Ok(_)) => {
                    tx.execute("RELEASE SAVEPOINT due_change", args![]).await?;
                    batch.applied += 1;
                    batch.changed.push(ResourceId(due.id));
                    continue;
                }
                (Err(Fail::Retry(e)), _) => return Err(Fail::Retry(e)),
                (Err(Fail::Store(e)), _) | (_, Err(e)) => e,
            };
            tx.execute("ROLLBACK TO SAVEPOINT due_change", args![]).await?;
            if matches!(error, StoreError::Stale) {
                // Someone else wrote it first; it is no longer due or will be claimed again.
                continue;
            }
            let attempts = due.attempts.saturating_add(1);
            let retry_at = now + due_retry_delay(attempts);
            tx.execute(SET_ASIDE, args![&due.id, attempts, millis(retry_at)]).await?;
            batch.set_aside.push(SetAside { resource_id: ResourceId(due.id), attempts, retry_at, error });
        }
        tx.commit().await?;
        Ok(batch)
    }
}

#[async_trait]
impl<B: Backend> ResourceStore for SqlStore<B> {
    async fn balance(&self, id: &CompanyId) -> StoreResult<Balance> {
        // One statement, one snapshot: the counters agree with each other.
        let counters = |row: &dyn RowRead| {
            Ok((row.int("tokens_total")?, row.int("tokens_allocated")?, row.int("tokens_pending_release")?))
        };
        let (total, allocated, pending) =
            self.read_one(BALANCE, args![id.as_str()], counters).await?.ok_or(StoreError::NotFound)?;
        Balance::new(CloudTokens(total), CloudTokens(allocated), CloudTokens(pending))
            .ok_or_else(|| StoreError::corrupt("balance of company", id))
    }

    async fn grant_tokens(
        &self,
        grant: &Grant,
        key: Option<&IdempotencyKey>,
        audit: &AuditEvent,
    ) -> StoreResult<Idempotent<()>> {
        with_retries("grant_tokens", || self.grant_once(grant, key, audit)).await
    }

    async fn transactions(&self, company: &CompanyId, page: &HistoryPage) -> StoreResult<Vec<LedgerTransaction>> {
        self.read_all(LEDGER_PAGE, &page_args(company, page), rows::transaction).await
    }

    async fn idempotent_result(&self, key: &IdempotencyKey) -> StoreResult<Option<String>> {
        let row = self.read_one(KEY, args![&key.scope, &key.key], key_row).await?;
        Ok(match replay(row, key)? {
            Some(Idempotent::Replayed(id)) => Some(id),
            _ => None,
        })
    }

    async fn purge_idempotency_keys(&self, before: Instant) -> StoreResult<u64> {
        self.write_one("purge_idempotency_keys", PURGE_KEYS, args![millis(before)]).await
    }

    async fn insert_resource(
        &self,
        new: &NewResource,
        guard: Option<&Guard>,
        key: Option<&IdempotencyKey>,
    ) -> StoreResult<Idempotent<()>> {
        with_retries("insert_resource", || self.insert_resource_once(new, guard, key)).await
    }

    async fn apply_change(&self, write: &ResourceWrite) -> StoreResult<()> {
        with_retries("apply_change", || self.apply_change_once(write)).await
    }

    async fn resource(&self, company: &CompanyId, id: &ResourceId) -> StoreResult<Option<Resource>> {
        self.read_one(RESOURCE, args![id.as_str(), company.as_str()], rows::resource).await
    }

    async fn resources(&self, q: &ResourceQuery) -> StoreResult<Vec<Resource>> {
        let args = args![
            q.company_id.as_str(),
            q.resource_type.map(|t| t.as_str()),
            q.include_deprovisioned,
            q.after_id.as_ref().map(|r| r.as_str()),
            q.limit.filter(|n| *n >= 0).unwrap_or(i64::MAX),
        ];
        self.read_all(RESOURCES, args, rows::resource).await
    }

    async fn linked_knowledge_bases(&self, embeddings: &ResourceId) -> StoreResult<Vec<Resource>> {
        self.read_all(LINKED, args![embeddings.as_str()], rows::resource).await
    }

    async fn apply_due(&self, now: Instant, limit: i64, decide: &DecideDue<'_>) -> StoreResult<DueBatch> {
        with_retries("apply_due", || self.apply_due_once(now, limit, decide)).await
    }
}
