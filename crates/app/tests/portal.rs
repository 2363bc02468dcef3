//! The Portal's use cases against a real SQLite store: what the runtime is told
//! ([`RuntimeEvents`]), how keys are stored, a deprovisioning the scheduler has not written yet,
//! teams made at provisioning, and the configuration key's URLs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use genai_app::auth::{token_hash, Actor};
use genai_app::keys::decode_configuration_key;
use genai_app::{App, AppError, Clock, CompanyInput, ResourceAction, Role, RuntimeEvents, UserInput};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::keys::KeySecret;
use genai_core::resource::Status;
use genai_core::validation::ProvisionForm;
use genai_core::{Catalog, DomainError, Instant, ResourceId};
use genai_store::Store;
use std::sync::{Arc, Mutex};

fn at(s: &str) -> Instant {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Records what it hears, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl RuntimeEvents for Recorder {
    fn keys_revoked(&self, resource: &ResourceId, key_ids: &[String]) {
        self.0.lock().unwrap().push(format!("revoked {resource} {}", key_ids.join(",")));
    }
    fn resource_changed(&self, resource: &ResourceId) {
        self.0.lock().unwrap().push(format!("changed {resource}"));
    }
    fn resource_deprovisioned(&self, resource: &ResourceId) {
        self.0.lock().unwrap().push(format!("deprovisioned {resource}"));
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fixture {
    app: App,
    store: Arc<dyn Store>,
    events: Arc<Recorder>,
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

async fn fixture(public_url: &str) -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("genai-app-portal-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(genai_store_sqlite::open(&format!("sqlite://{}/app.db", dir.display())).await.unwrap());
    let events = Arc::new(Recorder::default());
    let app = App::new(store.clone(), Catalog::builtin(), Clock::manual(at("2026-01-05T09:00:00Z")), Some("op"))
        .with_runtime_events(events.clone())
        .with_public_url(public_url);
    let op = Actor::Operator;
    let company =
        app.create_company(&op, CompanyInput { name: Some("Acme".into()), ..CompanyInput::default() }).await.unwrap();
    app.grant_tokens(&op, &company.id, Some(1000), None, None).await.unwrap();
    let admin = user(&app, &company.id, "admin@example.com", Role::CompanyAdmin).await;
    Fixture { app, store, events, admin, company: company.id, _dir: TempDir(dir) }
}

async fn user(app: &App, company: &genai_core::CompanyId, email: &str, role: Role) -> Actor {
    let input = UserInput { name: Some("Someone".into()), email: Some(email.into()), role: Some(role), password: None };
    Actor::User(app.create_user(&Actor::Operator, company, input).await.unwrap())
}

fn form(t: ResourceType, name: &str, email: &str) -> ProvisionForm {
    let (model, cri, plan) = match t {
        ResourceType::TextGeneration => (Some("claude-sonnet-4.6"), true, PlanSize::Small),
        ResourceType::EmbeddingsGeneration => (Some("cohere-embed-english-v3"), false, PlanSize::Small),
        ResourceType::KnowledgeBase => (None, false, PlanSize::Standard),
    };
    ProvisionForm {
        resource_type: Some(t),
        display_name: Some(name.into()),
        environment: Some(genai_core::resource::Environment::Production),
        region: Some("eu-central-1".into()),
        cross_region_inference: Some(cri),
        model: model.map(Into::into),
        plan: Some(plan),
        embeddings_resource_id: None,
        user_name: Some("Ada Lovelace".into()),
        user_email: Some(email.into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_hears_revocations_plan_changes_and_deprovisionings() {
    let f = fixture("http://127.0.0.1:9").await;
    let r =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "Bot", "ada@example.com"), None).await.unwrap();
    assert!(f.events.take().is_empty(), "provisioning needs no invalidation");
    let key = f.app.create_key(&f.admin, &r.id, Some("CI")).await.unwrap();
    f.app.revoke_key(&f.admin, &r.id, &key.key.id).await.unwrap();
    f.app.revoke_key(&f.admin, &r.id, &key.key.id).await.unwrap();
    assert_eq!(f.events.take(), [format!("revoked {} {}", r.id, key.key.id)], "once: the second changed nothing");

    f.app.act(&f.admin, &r.id, ResourceAction::ChangePlan(PlanSize::Large)).await.unwrap();
    f.app.act(&f.admin, &r.id, ResourceAction::ChangePlan(PlanSize::Medium)).await.unwrap();
    assert_eq!(f.events.take(), [format!("changed {}", r.id), format!("changed {}", r.id)]);
    // The downgrade takes effect at the boundary (the scheduler's write), then deprovisioning.
    f.app.set_clock(&Actor::Operator, at("2026-02-05T09:00:00Z")).await.unwrap();
    assert_eq!(f.events.take(), [format!("changed {}", r.id)]);
    f.app.act(&f.admin, &r.id, ResourceAction::Deprovision).await.unwrap();
    f.app.set_clock(&Actor::Operator, at("2026-03-05T09:00:00Z")).await.unwrap();
    assert_eq!(f.events.take(), [format!("changed {}", r.id), format!("deprovisioned {}", r.id)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_stored_as_hashes_found_by_their_public_id() {
    let f = fixture("http://127.0.0.1:9").await;
    let r =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "Bot", "ada@example.com"), None).await.unwrap();
    let created = f.app.create_key(&f.admin, &r.id, Some("CI")).await.unwrap();
    let secret = created.secret.expose().to_string();
    assert_eq!(KeySecret::parse(&secret).map(|k| k.public_id().to_string()), Some(created.key.public_id.clone()));
    let (stored, of) = f.store.runtime_key(&created.key.public_id).await.unwrap().unwrap();
    assert_eq!(of.id, r.id);
    assert_eq!(stored.secret_hash, token_hash(&secret));
    assert!(!format!("{stored:?}").contains(&secret[16..]), "the secret part is stored nowhere");
    // Two keys never share a secret or a public id.
    let other = f.app.create_key(&f.admin, &r.id, Some("CI 2")).await.unwrap();
    assert_ne!(other.key.public_id, created.key.public_id);
    assert_ne!(other.secret.expose(), secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_deprovisioning_refuses_keys_even_before_the_scheduler_wrote_it() {
    let f = fixture("http://127.0.0.1:9").await;
    let r =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "Bot", "ada@example.com"), None).await.unwrap();
    let key = f.app.create_key(&f.admin, &r.id, Some("CI")).await.unwrap();
    f.app.act(&f.admin, &r.id, ResourceAction::Deprovision).await.unwrap();
    // The clock passes the instant; nothing has applied the change yet.
    f.app.clock().set(at("2026-02-05T09:00:01Z")).unwrap();
    let refused = f.app.create_key(&f.admin, &r.id, Some("late")).await;
    assert!(matches!(refused, Err(AppError::Domain(DomainError::AlreadyDeprovisioned))), "{refused:?}");
    let now = f.app.portal_resource(&f.admin, &r.id).await.unwrap();
    assert_eq!((now.status, now.deprovisioned_at), (Status::Deprovisioned, Some(at("2026-02-05T09:00:00Z"))));
    let keys = f.app.keys(&f.admin, &r.id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].id.clone(), keys[0].revoked_at), (key.key.id, Some(at("2026-02-05T09:00:00Z"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_start_with_the_person_named_when_they_can_join() {
    let f = fixture("http://127.0.0.1:9").await;
    // An existing member of the company joins as themselves.
    let Actor::User(grace) = user(&f.app, &f.company, "grace@example.com", Role::Member).await else { unreachable!() };
    let r =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "One", "Grace@Example.com"), None).await.unwrap();
    let team = f.store.members(&r.id).await.unwrap();
    assert_eq!(team.iter().map(|m| m.user_id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&grace.id));
    // A new address becomes a member user without a password.
    let r2 =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "Two", "new@example.com"), None).await.unwrap();
    let created = f.store.members(&r2.id).await.unwrap();
    let new_user = genai_store::AccessStore::user(&*f.store, &created[0].user_id).await.unwrap().unwrap();
    assert_eq!((new_user.role, new_user.password_hash, new_user.company_id), (Role::Member, None, f.company.clone()));
    assert_eq!(new_user.name, "Ada Lovelace");
    // Another company's login: provisioned all the same, with an empty team.
    let other = f
        .app
        .create_company(&Actor::Operator, CompanyInput { name: Some("Other".into()), ..CompanyInput::default() })
        .await
        .unwrap();
    user(&f.app, &other.id, "bob@example.com", Role::CompanyAdmin).await;
    let r3 =
        f.app.provision(&f.admin, &form(ResourceType::TextGeneration, "Three", "bob@example.com"), None).await.unwrap();
    assert!(f.store.members(&r3.id).await.unwrap().is_empty());
    // A member sees only their teams' resources in the Portal.
    let grace = Actor::User(grace);
    let mine: Vec<ResourceId> =
        f.app.portal_resources(&grace, false).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(mine, std::slice::from_ref(&r.id));
    let all = f.app.portal_resources(&f.admin, false).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(matches!(f.app.members(&grace, &r2.id).await, Err(AppError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_keys_point_at_the_public_url() {
    let f = fixture("https://genai.example.com/").await;
    let e = f
        .app
        .provision(&f.admin, &form(ResourceType::EmbeddingsGeneration, "Search", "a@example.com"), None)
        .await
        .unwrap();
    let mut kb_form = form(ResourceType::KnowledgeBase, "Docs", "a@example.com");
    kb_form.embeddings_resource_id = Some(e.id.to_string());
    let kb = f.app.provision(&f.admin, &kb_form, None).await.unwrap();
    let created = f.app.create_key(&f.admin, &kb.id, Some("RAG")).await.unwrap();
    let config = decode_configuration_key(&created.configuration_key).unwrap();
    assert_eq!(config["resourceBaseUrl"], format!("https://genai.example.com/runtime/v1/resources/{}", kb.id));
    assert_eq!(config["deepLinkUrl"], format!("https://genai.example.com/portal/resources/{}", kb.id));
    assert_eq!(config["environment"], "Production");
    assert_eq!(
        config["embeddings"]["resourceBaseUrl"],
        format!("https://genai.example.com/runtime/v1/resources/{}", e.id)
    );
    let companion = created.companion.unwrap();
    assert_eq!((companion.resource_id, companion.companion_of), (e.id.clone(), Some(kb.id.clone())));
    assert_eq!(companion.parent_key_id.as_deref(), Some(created.key.id.as_str()));
    let companion_secret = config["embeddings"]["accessToken"].as_str().unwrap();
    assert_eq!(token_hash(companion_secret), companion.secret_hash);
}
