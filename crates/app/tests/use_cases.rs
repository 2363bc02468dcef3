//! The use cases' own paths against a real SQLite store: deciding again after a concurrent
//! change (`Stale`), idempotent retries, grants near the largest total, a broken due change
//! that must not stop the scheduler, and housekeeping.
//!
//! The concurrent change is made deterministic by a [`Backend`] that wraps SQLite's and, once
//! armed, commits a competing write of its own right before the use case's write transaction
//! begins: exactly the interleaving of two requests that read the same version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use genai_app::auth::Actor;
use genai_app::{App, AppError, Clock, CompanyInput, ResourceAction, Role, Store, UserInput};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::Status;
use genai_core::validation::ProvisionForm;
use genai_core::{Catalog, DomainError, Instant};
use genai_store::{AccessStore, AuditStore, HistoryPage, ResourceStore, ResourceWrite};
use genai_store_sql::{Attempt, Backend, SqlStore};
use genai_store_sqlite::{SqliteBackend, SqliteStore};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// SQLite's backend with a one-shot hook run before the next write transaction begins.
struct Interleaving {
    inner: SqliteBackend,
    hook: Arc<Mutex<Option<Hook>>>,
}

#[async_trait]
impl Backend for Interleaving {
    type Tx = <SqliteBackend as Backend>::Tx;
    type Reader = <SqliteBackend as Backend>::Reader;
    const FOR_UPDATE: &'static str = SqliteBackend::FOR_UPDATE;
    const SKIP_LOCKED: &'static str = SqliteBackend::SKIP_LOCKED;

    async fn begin(&self) -> Attempt<Self::Tx> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.begin().await
    }

    fn reader(&self) -> Self::Reader {
        self.inner.reader()
    }
}

fn at(s: &str) -> Instant {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Fixture {
    app: App,
    /// The same database without the hook, for the competing writes and raw checks.
    direct: Arc<SqliteStore>,
    hook: Arc<Mutex<Option<Hook>>>,
    url: String,
    admin: Actor,
    company: genai_core::CompanyId,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fixture(tokens: i64) -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("genai-app-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/app.db", dir.display());
    let direct = Arc::new(genai_store_sqlite::open(&url).await.unwrap());
    let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
    let hooked = SqlStore::new(Interleaving { inner: direct.backend().clone(), hook: hook.clone() });
    let store: Arc<dyn Store> = Arc::new(hooked);
    let app = App::new(store, Catalog::builtin(), Clock::manual(at("2026-01-05T09:00:00Z")), Some("operator-secret"));
    let op = Actor::Operator;
    let input = CompanyInput { name: Some("Acme".into()), ..CompanyInput::default() };
    let company = app.create_company(&op, input).await.unwrap();
    if tokens > 0 {
        app.grant_tokens(&op, &company.id, Some(tokens), None, None).await.unwrap();
    }
    let user = UserInput {
        name: Some("Ada".into()),
        email: Some(format!("ada{n}@example.com")),
        role: Some(Role::CompanyAdmin),
        password: None,
    };
    let admin = Actor::User(app.create_user(&op, &company.id, user).await.unwrap());
    Fixture { app, direct, hook, url, admin, company: company.id, _dir: TempDir(dir) }
}

impl Fixture {
    /// Arms the hook: `write` runs (through the unhooked store) right before the next write
    /// transaction of the app begins.
    fn before_next_write<F, Fut>(&self, write: F)
    where
        F: FnOnce(Arc<SqliteStore>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let direct = self.direct.clone();
        *self.hook.lock().unwrap() = Some(Box::new(move || Box::pin(write(direct))));
    }

    async fn raw(&self, sql: &str, id: &str) {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
        sqlx::query(sql).bind(id).execute(&mut c).await.unwrap();
        let _ = c.close().await;
    }
}

fn text_form(name: &str, plan: PlanSize) -> ProvisionForm {
    ProvisionForm {
        resource_type: Some(ResourceType::TextGeneration),
        display_name: Some(name.into()),
        environment: Some(genai_core::resource::Environment::Test),
        region: Some("eu-central-1".into()),
        cross_region_inference: Some(true),
        model: Some("claude-sonnet-4.6".into()),
        plan: Some(plan),
        embeddings_resource_id: None,
        user_name: Some("Ada Lovelace".into()),
        user_email: Some("ada@example.com".into()),
    }
}

/// A write decided on the version the app read loses to a concurrent one: the app reads
/// again, decides again on the new state, and writes that, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_decision_is_made_again_on_the_new_state() {
    let f = fixture(300).await;
    let r = f.app.provision(&f.admin, &text_form("Bot", PlanSize::Small), None).await.unwrap();
    // Another request upgrades the resource between this request's read and its write.
    let competing = r.change_plan(PlanSize::Medium, &Catalog::builtin(), f.app.now()).unwrap();
    let transaction_id = "txn_competing".to_string();
    f.before_next_write(move |direct| async move {
        let audit = genai_store::AuditEvent {
            id: "evt_competing".into(),
            company_id: Some(competing.next.company_id.clone()),
            at: competing.at,
            actor: "someone-else@example.com".into(),
            action: competing.action.into(),
            resource_id: Some(competing.next.id.clone()),
            details: json!({"competing": true}),
        };
        let write = ResourceWrite { change: competing, transaction_id, guard: None, audit };
        direct.apply_change(&write).await.unwrap();
    });
    let large = f.app.act(&f.admin, &r.id, ResourceAction::ChangePlan(PlanSize::Large)).await.unwrap();
    assert_eq!((large.plan, large.cloud_tokens.get(), large.version), (PlanSize::Large, 120, 2));
    let balance = f.app.balance(&f.admin).await.unwrap();
    assert_eq!((balance.allocated.get(), balance.available.get()), (120, 180), "30 + 30 + 60, each once");
    let mut allocations: Vec<i64> = f
        .app
        .transactions(&f.admin)
        .await
        .unwrap()
        .iter()
        .filter(|t| t.kind == genai_core::ledger::TransactionKind::Allocate)
        .map(|t| t.tokens.get())
        .collect();
    allocations.sort_unstable();
    assert_eq!(allocations, [30, 30, 60], "provisioning, the competing upgrade, and the retry's difference");

    // A decision the new state no longer allows is refused with the domain's reason.
    let again = r.clone();
    f.before_next_write(move |direct| async move {
        let current = direct.resource(&again.company_id, &again.id).await.unwrap().unwrap();
        let change = current.deprovision(&[], current.created_at).unwrap();
        let audit = genai_store::AuditEvent {
            id: "evt_competing_2".into(),
            company_id: Some(current.company_id.clone()),
            at: change.at,
            actor: "someone-else@example.com".into(),
            action: change.action.into(),
            resource_id: Some(current.id.clone()),
            details: json!({}),
        };
        let write = ResourceWrite { change, transaction_id: "txn_competing_2".into(), guard: None, audit };
        direct.apply_change(&write).await.unwrap();
    });
    let refused = f.app.act(&f.admin, &r.id, ResourceAction::ChangePlan(PlanSize::Small)).await;
    assert!(matches!(refused, Err(AppError::Domain(DomainError::DeprovisioningScheduled(_)))), "{refused:?}");
}

/// A retried provisioning with the same key answers the first resource, even after the
/// company ran short of tokens; another body with the key is a conflict; concurrent retries
/// create one resource.
#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_answer_the_first_result() {
    let f = fixture(100).await;
    let form = text_form("Once", PlanSize::Small);
    let body = json!({"display_name": "Once", "plan": "small"});
    let first = f.app.provision(&f.admin, &form, Some(("key-1", &body))).await.unwrap();
    let again = f.app.provision(&f.admin, &form, Some(("key-1", &body))).await.unwrap();
    assert_eq!(again.id, first.id);
    f.app.provision(&f.admin, &text_form("Rest", PlanSize::Medium), None).await.unwrap();
    let replay = f.app.provision(&f.admin, &form, Some(("key-1", &body))).await.unwrap();
    assert_eq!(replay.id, first.id, "answered although only 10 tokens are left");
    let other = json!({"display_name": "Other", "plan": "small"});
    let conflict = f.app.provision(&f.admin, &text_form("Other", PlanSize::Small), Some(("key-1", &other))).await;
    assert!(matches!(conflict, Err(AppError::IdempotencyConflict)), "{conflict:?}");
    assert_eq!(f.app.balance(&f.admin).await.unwrap().allocated.get(), 90);

    // Ten concurrent requests with one key: one resource.
    let g = Arc::new(fixture(1000).await);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"display_name": "Racer"});
            g.app.provision(&g.admin, &text_form("Racer", PlanSize::Small), Some(("race", &body))).await.unwrap().id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(g.app.balance(&g.admin).await.unwrap().allocated.get(), 30);

    // Grants with a key are granted once.
    let op = Actor::Operator;
    let grant = json!({"tokens": 5});
    let (a, _) = f.app.grant_tokens(&op, &f.company, Some(5), None, Some(("g", &grant))).await.unwrap();
    let (b, balance) = f.app.grant_tokens(&op, &f.company, Some(5), None, Some(("g", &grant))).await.unwrap();
    assert_eq!((a, balance.total.get()), (b, 105));
}

/// Grants stop short of the largest total that can be stored, with the field named.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_past_the_largest_total_is_refused_cleanly() {
    let f = fixture(0).await;
    let near = genai_store::Grant {
        transaction_id: "txn_near".into(),
        company_id: f.company.clone(),
        tokens: genai_core::CloudTokens(i64::MAX - 1_000),
        note: None,
        at: f.app.now(),
    };
    let audit = genai_store::AuditEvent {
        id: "evt_near".into(),
        company_id: Some(f.company.clone()),
        at: f.app.now(),
        actor: "operator".into(),
        action: "tokens.granted".into(),
        resource_id: None,
        details: json!({}),
    };
    f.direct.grant_tokens(&near, None, &audit).await.unwrap();
    let refused = f.app.grant_tokens(&Actor::Operator, &f.company, Some(1_001), None, None).await;
    match refused {
        Err(AppError::Domain(DomainError::Validation(fields))) => {
            assert!(fields["tokens"].contains("at most 1000 more"), "{fields:?}")
        }
        other => panic!("{other:?}"),
    }
    let (_, balance) = f.app.grant_tokens(&Actor::Operator, &f.company, Some(1_000), None, None).await.unwrap();
    assert_eq!((balance.total.get(), balance.available.get()), (i64::MAX, i64::MAX));
    f.app.provision(&f.admin, &text_form("Rich", PlanSize::Large), None).await.unwrap();
    assert_eq!(f.app.balance(&f.admin).await.unwrap().available.get(), i64::MAX - 120);
}

/// One broken due change: the others are applied, it is logged, counted and set aside, and a
/// request on its resource gets an answer instead of spinning.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_due_change_does_not_stop_the_others() {
    let f = fixture(300).await;
    let good = f.app.provision(&f.admin, &text_form("Good", PlanSize::Small), None).await.unwrap();
    let bad = f.app.provision(&f.admin, &text_form("Bad", PlanSize::Small), None).await.unwrap();
    for r in [&good, &bad] {
        f.app.act(&f.admin, &r.id, ResourceAction::Deprovision).await.unwrap();
    }
    f.raw("UPDATE resources SET scheduled_kind = 'explode' WHERE id = $1", bad.id.as_str()).await;
    let (_, applied) = f.app.set_clock(&Actor::Operator, at("2026-02-05T09:00:00Z")).await.unwrap();
    assert_eq!(applied, 1);
    let counters = f.app.scheduler_counters();
    assert_eq!((counters.applied(), counters.set_aside()), (1, 1));
    assert_eq!(f.app.resource(&f.admin, &good.id).await.unwrap().status, Status::Deprovisioned);
    // Set aside: the next passes leave it alone until its retry.
    assert_eq!(f.app.apply_due_changes().await.unwrap(), 0);
    assert_eq!(counters.set_aside(), 1, "not retried every poll");
    let read = f.app.resource(&f.admin, &bad.id).await;
    assert!(read.is_err(), "its row cannot be read: {read:?}");

    // Repaired: applied at the next try after the delay, recorded at its instant.
    f.raw("UPDATE resources SET scheduled_kind = 'deprovision' WHERE id = $1", bad.id.as_str()).await;
    f.app.set_clock(&Actor::Operator, at("2026-02-05T09:01:00Z")).await.unwrap();
    let r = f.app.resource(&f.admin, &bad.id).await.unwrap();
    assert_eq!((r.status, r.deprovisioned_at), (Status::Deprovisioned, Some(at("2026-02-05T09:00:00Z"))));
    assert_eq!(f.app.balance(&f.admin).await.unwrap().allocated.get(), 0);
}

/// A request on a resource whose due change is set aside is answered with an error, once.
#[tokio::test(flavor = "multi_thread")]
async fn acting_on_a_resource_with_a_broken_due_change_fails_fast() {
    let f = fixture(300).await;
    let r = f.app.provision(&f.admin, &text_form("Stuck", PlanSize::Medium), None).await.unwrap();
    f.app.act(&f.admin, &r.id, ResourceAction::ChangePlan(PlanSize::Small)).await.unwrap();
    // The company's books no longer cover the release: the downgrade cannot be written.
    f.raw("UPDATE resources SET cloud_tokens = 600 WHERE id = $1", r.id.as_str()).await;
    f.app.set_clock(&Actor::Operator, at("2026-02-05T09:00:00Z")).await.unwrap();
    let started = std::time::Instant::now();
    let refused = f.app.act(&f.admin, &r.id, ResourceAction::CancelDowngrade).await;
    assert!(matches!(refused, Err(AppError::Internal(_))), "{refused:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "no spinning");
    assert_eq!(f.app.scheduler_counters().set_aside(), 1, "the first pass set it aside; the request did not retry it");
}

/// Expired sessions and idempotency keys past their retention are deleted; a key forgotten
/// that way makes a late retry a new request.
#[tokio::test(flavor = "multi_thread")]
async fn housekeeping_forgets_expired_sessions_and_old_keys() {
    let f = fixture(100).await;
    let Actor::User(user) = &f.admin else { unreachable!() };
    let past = Utc::now() - Duration::hours(1);
    let session = genai_store::Session {
        id_hash: "f".repeat(64),
        user_id: user.id.clone(),
        created_at: past - Duration::hours(12),
        expires_at: past,
    };
    f.direct.create_session(&session).await.unwrap();
    let op = Actor::Operator;
    let grant = json!({"tokens": 1});
    f.app.grant_tokens(&op, &f.company, Some(1), None, Some(("late", &grant))).await.unwrap();
    assert_eq!(f.app.purge_expired().await.unwrap(), (1, 0), "the session; the key is young");
    f.app.set_clock(&op, at("2026-01-12T09:00:00Z")).await.unwrap();
    assert_eq!(f.app.purge_expired().await.unwrap(), (0, 0), "exactly seven days: kept");
    f.app.set_clock(&op, at("2026-01-12T09:00:00.001Z")).await.unwrap();
    assert_eq!(f.app.purge_expired().await.unwrap(), (0, 1));
    let (_, balance) = f.app.grant_tokens(&op, &f.company, Some(1), None, Some(("late", &grant))).await.unwrap();
    assert_eq!(balance.total.get(), 102, "a retry after the retention is a new grant");
    let events = f.direct.audit_events(&f.company, &HistoryPage::all()).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "tokens.granted").count(), 3);
}
