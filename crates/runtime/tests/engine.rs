//! The metering engine on a real SQLite store: keys, reservations, leases, group commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use genai_app::auth::Actor;
use genai_app::{App, Clock, CompanyInput, ResourceAction, Role, Store, UserInput};
use genai_core::calendar::parse_instant;
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::quota::Tokens;
use genai_core::resource::Resource;
use genai_core::validation::ProvisionForm;
use genai_core::Catalog;
use genai_runtime::{Config, Demand, KeyCache, Runtime, RuntimeError};
use genai_store::LeaseRequest;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    app: Arc<App>,
    store: Arc<dyn Store>,
    admin: Actor,
    runtime: Runtime,
    resource: Resource,
    secret: String,
    key_id: String,
    _dir: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("genai-runtime-engine-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(genai_store_sqlite::open(&format!("sqlite://{}/rt.db", dir.display())).await.unwrap());
    let keys = KeyCache::new();
    let start = parse_instant("2026-01-05T09:00:00Z").unwrap();
    let app = Arc::new(
        App::new(store.clone(), Catalog::builtin(), Clock::manual(start), Some("op")).with_runtime_events(keys.clone()),
    );
    let op = Actor::Operator;
    let company =
        app.create_company(&op, CompanyInput { name: Some("Acme".into()), ..CompanyInput::default() }).await.unwrap();
    app.grant_tokens(&op, &company.id, Some(1000), None, None).await.unwrap();
    let input = UserInput {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        role: Some(Role::CompanyAdmin),
        password: None,
    };
    let admin = Actor::User(app.create_user(&op, &company.id, input).await.unwrap());
    let form = ProvisionForm {
        resource_type: Some(ResourceType::TextGeneration),
        display_name: Some("Bot".into()),
        environment: Some(genai_core::resource::Environment::Production),
        region: Some("eu-central-1".into()),
        cross_region_inference: Some(true),
        model: Some("claude-sonnet-4.6".into()),
        plan: Some(PlanSize::Small),
        embeddings_resource_id: None,
        user_name: Some("Ada".into()),
        user_email: Some("ada@example.com".into()),
    };
    let resource = app.provision(&admin, &form, None).await.unwrap();
    let key = app.create_key(&admin, &resource.id, Some("test")).await.unwrap();
    let runtime = Runtime::start(app.clone(), store.clone(), genai_providers::Router::new(), keys, Config::default());
    Fixture {
        app,
        store,
        admin,
        runtime,
        resource,
        secret: key.secret.expose().to_string(),
        key_id: key.key.id,
        _dir: dir,
    }
}

impl Fixture {
    fn quota(&self) -> Tokens {
        self.app.quota_of(&self.resource)
    }

    async fn month_used(&self) -> (i64, i64, i64) {
        let month = self.resource.bundle_month(self.app.now()).unwrap();
        let u = self.store.month_usage(&[(self.resource.id.clone(), month.start)]).await.unwrap();
        (u[0].input_tokens, u[0].output_tokens, u[0].api_calls)
    }

    /// Whether another holder can lease `need` right now (what this engine holds is not free).
    async fn free_for_others(&self, need: Tokens) -> bool {
        let month = self.resource.bundle_month(self.app.now()).unwrap();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let request = LeaseRequest {
            resource_id: self.resource.id.clone(),
            month_start: month.start,
            holder: "someone-else".into(),
            quota: self.quota(),
            need,
            want: need,
            expires_at_ms: now_ms + 1,
            now_ms,
        };
        matches!(self.store.acquire_lease(&request).await.unwrap(), genai_store::LeaseOutcome::Granted { .. })
    }
}

fn demand(input: i64, output: i64) -> Demand {
    Demand { input, max_output: Some(output), produces_output: true }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_checked_and_revocations_are_refused_at_once() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    assert_eq!((caller.key_id(), &caller.resource().id), (f.key_id.as_str(), &f.resource.id));
    // Same public id, another secret: refused without mercy.
    let mut forged = f.secret.clone();
    let last = if forged.ends_with('a') { "b" } else { "a" };
    forged.replace_range(forged.len() - 1.., last);
    assert!(matches!(f.runtime.authenticate(Some(&forged)).await, Err(RuntimeError::Unauthenticated(_))));
    for bad in [None, Some(""), Some("Bearer x"), Some("gr_000000000000_0000")] {
        assert!(matches!(f.runtime.authenticate(bad).await, Err(RuntimeError::Unauthenticated(_))), "{bad:?}");
    }
    f.app.revoke_key(&f.admin, &f.resource.id, &f.key_id).await.unwrap();
    let e = f.runtime.authenticate(Some(&f.secret)).await.unwrap_err();
    assert_eq!((e.status(), e.to_string().as_str()), (401, "this runtime key was revoked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_the_local_balance_covers_do_not_lease_again_and_usage_is_durable_when_settled() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    for _ in 0..100 {
        let r = f.runtime.reserve(&caller, demand(50, 20)).await.unwrap();
        assert_eq!(r.amount(), Tokens::new(50, 20));
        f.runtime.settle(r, Tokens::new(7, 3)).await.unwrap();
    }
    // One lease (an eighth of the quota) covered all of them.
    assert_eq!(f.runtime.metrics().lease_acquisitions(), 1);
    // Settled means committed: no flush needed.
    assert_eq!(f.month_used().await, (700, 300, 100));
    let (commits, calls) = f.runtime.metrics().commits();
    assert_eq!(calls, 100);
    assert!(commits >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reservations_never_exceed_the_quota() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let tenth = f.quota().output / 10;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (rt, caller) = (f.runtime.clone(), caller.clone());
        tasks.spawn(async move {
            match rt.reserve(&caller, demand(10, tenth)).await {
                Ok(r) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    rt.settle(r, Tokens::new(10, tenth)).await.unwrap();
                    true
                }
                Err(RuntimeError::Quota { retry_after_secs, .. }) => {
                    assert!(retry_after_secs > 0);
                    false
                }
                Err(e) => panic!("{e}"),
            }
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += i64::from(r.unwrap());
    }
    assert_eq!(ok, 10, "exactly ten tenths fit");
    assert_eq!(f.month_used().await, (10 * ok, tenth * ok, ok));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_reservations_charge_nothing_and_idle_balances_go_back_to_the_pool() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let q = f.quota();
    let r = f.runtime.reserve(&caller, demand(q.input / 2, q.output / 2)).await.unwrap();
    assert!(!f.free_for_others(q).await, "half the quota is leased to the engine");
    drop(r); // The upstream failed, the client left: nothing is charged.
    f.runtime.flush().await;
    assert_eq!(f.month_used().await, (0, 0, 0));
    // After the idle time (2 s) and a tick, the balance is back in the pool.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    f.runtime.flush().await;
    assert!(f.free_for_others(q).await, "the whole quota is free again");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_engines_on_one_database_share_the_quota_and_an_upgrade_raises_it_at_once() {
    let f = fixture().await;
    let other = Runtime::start(
        f.app.clone(),
        f.store.clone(),
        genai_providers::Router::new(),
        KeyCache::new(),
        Config::default(),
    );
    let a = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let b = other.authenticate(Some(&f.secret)).await.unwrap();
    let q = f.quota();
    let quarter = q.output / 4;
    let mut held = Vec::new();
    for i in 0..4 {
        let (rt, c) = if i % 2 == 0 { (&f.runtime, &a) } else { (&other, &b) };
        held.push((rt.clone(), rt.reserve(c, demand(1, quarter)).await.unwrap()));
    }
    for (rt, c) in [(&f.runtime, &a), (&other, &b)] {
        let e = rt.reserve(c, demand(1, 1)).await.unwrap_err();
        assert_eq!(e.code(), "quota_exceeded", "the quota is all reserved");
        assert!(e.to_string().contains("0 of the monthly"), "{e}");
    }
    for (rt, r) in held {
        rt.settle(r, Tokens::new(1, quarter)).await.unwrap();
    }
    assert_eq!(f.month_used().await, (4, q.output, 4));

    // The upgrade (this app's event) raises the quota at once on this engine.
    f.app.act(&f.admin, &f.resource.id, ResourceAction::ChangePlan(PlanSize::Medium)).await.unwrap();
    let a = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let r = f.runtime.reserve(&a, demand(1, quarter)).await.unwrap();
    f.runtime.settle(r, Tokens::new(1, quarter)).await.unwrap();
    // And within the refresh on the other.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let b = other.authenticate(Some(&f.secret)).await.unwrap();
    let r = other.reserve(&b, demand(1, quarter)).await.unwrap();
    other.settle(r, Tokens::new(1, quarter)).await.unwrap();
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_the_server_makes_itself_are_metered_on_the_resource() {
    let f = fixture().await;
    let caller = genai_runtime::Caller::internal(f.resource.clone());
    let r = f.runtime.reserve(&caller, Demand { input: 40, max_output: None, produces_output: false }).await.unwrap();
    assert_eq!(r.amount(), Tokens::new(40, 0));
    f.runtime.settle(r, Tokens::new(12, 0)).await.unwrap();
    assert_eq!(f.month_used().await, (12, 0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_beyond_the_reservation_is_recorded_anyway() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let r = f.runtime.reserve(&caller, demand(10, 5)).await.unwrap();
    f.runtime.settle(r, Tokens::new(20, 9)).await.unwrap();
    assert_eq!(f.month_used().await, (20, 9, 1), "never under-counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_reservation_is_not_capped_by_a_stale_view_of_the_pool() {
    let f = fixture().await;
    let other = Runtime::start(
        f.app.clone(),
        f.store.clone(),
        genai_providers::Router::new(),
        KeyCache::new(),
        Config::default(),
    );
    let a = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let b = other.authenticate(Some(&f.secret)).await.unwrap();
    let q = f.quota();
    let default = Demand { input: 1, max_output: None, produces_output: true };
    let big = other.reserve(&b, demand(1, q.output - 100)).await.unwrap();
    let small = f.runtime.reserve(&a, default).await.unwrap();
    assert_eq!(small.amount().output, 100, "only 100 output tokens were free");
    f.runtime.settle(small, Tokens::ZERO).await.unwrap();
    drop(big); // The other instance's call failed; its balance goes back to the pool when idle.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = f.runtime.reserve(&a, default).await.unwrap();
    assert_eq!(r.amount().output, 4096, "the default reservation again, not the stale 100");
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_asking_more_than_the_whole_quota_is_told_what_remains_never_more_than_the_quota() {
    let f = fixture().await;
    let caller = f.runtime.authenticate(Some(&f.secret)).await.unwrap();
    let q = f.quota();
    // Some of the quota is used and leased, so the engine holds a local balance.
    let r = f.runtime.reserve(&caller, demand(10, 10)).await.unwrap();
    f.runtime.settle(r, Tokens::new(10, 10)).await.unwrap();
    match f.runtime.reserve(&caller, demand(10, 2 * q.output)).await {
        Err(RuntimeError::Quota { exceeded, .. }) => {
            assert!(exceeded.remaining.output <= q.output, "{exceeded:?} against {q:?}");
            assert!(exceeded.remaining.input <= q.input, "{exceeded:?} against {q:?}");
            assert_eq!(exceeded.quota, q);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a call asking more than the quota was reserved"),
    }
}
