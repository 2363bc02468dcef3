//! Use cases of GenAI Resources: the only thing the HTTP handlers, the UI and the scheduler call.
//!
//! Each use case checks who is calling, parses what was sent into domain values, asks the domain
//! for a decision and hands the decision to the store as one atomic write. Ids and timestamps
//! are made here, never in the database. When a write finds the resource changed under it
//! ([`StoreError::Stale`]) the use case reads again and decides again, so every decision is
//! applied to the state it was made for, however many requests or server instances race.

pub mod access;
pub mod auth;
pub mod clock;
pub mod error;
pub mod events;
pub mod ids;
pub mod keys;
pub mod knowledge;
pub mod paging;
pub mod portal;
pub mod scheduler;
pub mod team;
pub mod throttle;
pub mod web;

use auth::Actor;
pub use clock::Clock;
pub use error::AppError;
pub use events::{NoRuntimeEvents, RuntimeEvents};
use genai_core::catalog::{Plan, PlanSize, ResourceType};
use genai_core::eligibility::{self, Check, CompanyFacts};
use genai_core::error::FieldErrors;
use genai_core::ledger::{self, Balance};
use genai_core::resource::{Change, Resource, Scheduled};
use genai_core::validation::{self, Email, PersonName, ProvisionForm};
use genai_core::{calendar, BundleMonth, Catalog, CloudTokens, CompanyId, DomainError, Instant, ResourceId, UserId};
pub use genai_store::{
    ApiToken, AuditEvent, Company, DayUsage, Grant, Guard, HistoryPage, IdempotencyKey, Idempotent, LedgerTransaction,
    Member, MonthUsage, NewMember, NewResource, ResourceQuery, ResourceWrite, Role, RuntimeKey, Store, StoreError,
    User,
};
use ids::IdGen;
use paging::Page;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How often a use case re-reads and re-decides after a concurrent change before giving up.
const MAX_ATTEMPTS: usize = 50;

/// The application: store, catalog, clock and id generator.
pub struct App {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    clock: Clock,
    ids: IdGen,
    operator_token_hash: Option<String>,
    throttle: throttle::LoginThrottle,
    token_cache: auth::TokenCache,
    scheduler: scheduler::Counters,
    events: Arc<dyn RuntimeEvents>,
    public_url: String,
    /// Knowledge bases' in-memory indexes and embedder.
    kb: knowledge::KbIndexes,
}

/// The public URL an [`App`] assumes until [`App::with_public_url`] says otherwise: the
/// server's default listen address.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// A new company's facts, as the operator sends them.
#[derive(Debug, Clone, Default)]
pub struct CompanyInput {
    /// Name (required when creating).
    pub name: Option<String>,
    /// Price list such as `FY21`.
    pub price_list: Option<String>,
    /// Accounts owned.
    pub accounts: Option<i64>,
    /// Active enterprise platform subscriptions.
    pub enterprise_subscriptions: Option<i64>,
}

/// A new user, as the operator sends it.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    /// Name.
    pub name: Option<String>,
    /// Email (the login).
    pub email: Option<String>,
    /// Role.
    pub role: Option<Role>,
    /// Password, optional.
    pub password: Option<String>,
}

/// The plan change, cancellation or deprovisioning an admin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceAction {
    /// Upgrade (now) or downgrade (at the next boundary).
    ChangePlan(PlanSize),
    /// Drop a scheduled downgrade.
    CancelDowngrade,
    /// Schedule deprovisioning.
    Deprovision,
    /// Drop a scheduled deprovisioning.
    CancelDeprovision,
}

/// A preview of a provisioning: nothing is stored.
#[derive(Debug, Clone)]
pub struct Specification {
    /// Type.
    pub resource_type: ResourceType,
    /// The plan with its cost and quota.
    pub plan: Plan,
    /// Available tokens now.
    pub available_before: CloudTokens,
    /// Available after provisioning (negative when short).
    pub available_after: CloudTokens,
    /// The ledger's verdict on paying for the plan now ([`ledger::afford`]): what is left, or
    /// the `insufficient_tokens` refusal (also listed in `problems`).
    pub afford: Result<CloudTokens, DomainError>,
    /// The first bundle month if provisioned now.
    pub first_bundle_month: BundleMonth,
    /// Why it could not be provisioned now (empty when it can).
    pub problems: Vec<Problem>,
}

/// One reason a provisioning would be refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The error code it would answer with.
    pub code: &'static str,
    /// The field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For people.
    pub message: String,
}

/// The demo company's credentials, printed by `genai serve --demo`.
#[derive(Debug, Clone)]
pub struct DemoCredentials {
    /// Company name.
    pub company: String,
    /// (email, password, api token) of the company admin.
    pub admin: (String, String, String),
    /// (email, password) of the member.
    pub member: (String, String),
    /// The resources provisioned on the built-in models, each with a runtime key.
    pub resources: Vec<DemoResource>,
}

/// A demo resource on a built-in model and its runtime key.
#[derive(Debug, Clone)]
pub struct DemoResource {
    /// The resource's id.
    pub id: ResourceId,
    /// Its type.
    pub resource_type: ResourceType,
    /// Its display name.
    pub name: String,
    /// Its catalog model.
    pub model: String,
    /// The key's secret (shown once).
    pub key: String,
}

/// The demo's resources: one text and one embeddings resource on the built-in local models
/// (they answer with no configuration once `genai models install` has run), small plans, in
/// the catalog's first region.
const DEMO_RESOURCES: [(ResourceType, &str, &str); 2] = [
    (ResourceType::TextGeneration, "Demo Chat", "smollm2-135m-instruct"),
    (ResourceType::EmbeddingsGeneration, "Demo Embeddings", "all-minilm-l6-v2"),
];

fn fingerprint(body: &serde_json::Value) -> String {
    // serde_json maps keep keys sorted, so equal bodies give equal fingerprints.
    auth::hex(&Sha256::digest(body.to_string().as_bytes()))
}

fn snapshot(r: &Resource) -> serde_json::Value {
    let scheduled = match r.scheduled {
        None => serde_json::Value::Null,
        Some(Scheduled::Downgrade { plan, cloud_tokens, effective_at }) => json!({
            "kind": "downgrade", "plan": plan, "cloud_tokens": cloud_tokens, "effective_at": calendar::format_instant(effective_at)
        }),
        Some(Scheduled::Deprovision { effective_at }) => {
            json!({"kind": "deprovision", "effective_at": calendar::format_instant(effective_at)})
        }
    };
    json!({"status": r.status.as_str(), "plan": r.plan, "cloud_tokens": r.cloud_tokens, "scheduled": scheduled})
}

fn parse_person_name(field: &str, value: Option<&str>, errors: &mut FieldErrors) -> Option<String> {
    match value.map(PersonName::parse) {
        None => {
            errors.insert(field.into(), "is required".into());
            None
        }
        Some(Err(e)) => {
            errors.insert(field.into(), e);
            None
        }
        Some(Ok(n)) => Some(n.as_str().to_string()),
    }
}

fn validate_company_facts(input: &CompanyInput, errors: &mut FieldErrors) {
    if let Some(p) = &input.price_list {
        if eligibility::price_list_year(p).is_none() {
            errors.insert("price_list".into(), format!("\"{p}\" is not a price list; use the form FY21"));
        }
    }
    for (field, value) in [("accounts", input.accounts), ("enterprise_subscriptions", input.enterprise_subscriptions)] {
        if let Some(Err(e)) = value.map(validation::company_count) {
            errors.insert(field.into(), e);
        }
    }
}

impl App {
    /// Wires the application. `operator_token` is `GENAI_OPERATOR_TOKEN`, if set.
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, clock: Clock, operator_token: Option<&str>) -> App {
        App {
            store,
            catalog: Arc::new(catalog),
            clock,
            ids: IdGen::default(),
            operator_token_hash: operator_token.filter(|t| !t.is_empty()).map(auth::token_hash),
            throttle: throttle::LoginThrottle::default(),
            token_cache: auth::TokenCache::default(),
            scheduler: scheduler::Counters::default(),
            events: Arc::new(NoRuntimeEvents),
            public_url: DEFAULT_PUBLIC_URL.into(),
            kb: knowledge::KbIndexes::default(),
        }
    }

    /// The same application, telling `events` about changes the runtime must see at once.
    pub fn with_runtime_events(mut self, events: Arc<dyn RuntimeEvents>) -> App {
        self.events = events;
        self
    }

    /// The same application, with the URL clients reach this server at (`genai serve
    /// --public-url`): configuration keys point there. A trailing `/` is dropped.
    pub fn with_public_url(mut self, url: &str) -> App {
        self.public_url = url.trim_end_matches('/').to_string();
        self
    }

    /// The URL clients reach this server at, without a trailing `/`.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The catalog in force.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The current instant of the server's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn audit(&self, actor: &Actor, company: Option<&CompanyId>, at: Instant, action: &str) -> AuditEvent {
        AuditEvent {
            id: self.ids.next("evt"),
            company_id: company.cloned(),
            at,
            actor: actor.label(),
            action: action.into(),
            resource_id: None,
            details: json!({}),
        }
    }

    // ---- authentication -------------------------------------------------------------------

    /// Resolves a bearer token to an actor: the operator token, or a user's API token that is
    /// neither revoked nor expired, of a user who is not disabled. A resolution is remembered
    /// for [`auth::TOKEN_CACHE_TTL`] ([`auth::TokenCache`]): a revocation or a disabling applies
    /// at once on this instance and within that time on the others. Records the token's use,
    /// at most once per [`access::LAST_USED_RESOLUTION`].
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Actor, AppError> {
        let token = bearer.map(str::trim).filter(|t| !t.is_empty()).ok_or(AppError::Unauthenticated)?;
        let hash = auth::token_hash(token);
        if let Some(op) = &self.operator_token_hash {
            if auth::constant_time_eq(op.as_bytes(), hash.as_bytes()) {
                return Ok(Actor::Operator);
            }
        }
        let now = self.now();
        let (user, token) = match self.token_cache.get(&hash, now) {
            Ok(found) => found,
            Err(generation) => {
                let Some((user, token)) = self.store.token_user(&hash, now).await? else {
                    return Err(AppError::Unauthenticated);
                };
                self.token_cache.insert(&hash, generation, &user, &token);
                (user, token)
            }
        };
        self.note_token_use(&token, now).await;
        Ok(Actor::User(user))
    }

    fn require_operator(actor: &Actor) -> Result<(), AppError> {
        match actor {
            Actor::Operator => Ok(()),
            Actor::User(_) => Err(AppError::Forbidden("only the operator may use the Operator API".into())),
        }
    }

    fn require_admin(actor: &Actor) -> Result<&User, AppError> {
        match actor {
            Actor::User(u) if u.role == Role::CompanyAdmin => Ok(u),
            Actor::User(_) => Err(AppError::Forbidden("only company admins may use the Control Center".into())),
            Actor::Operator => Err(AppError::Forbidden(
                "the operator token has no access to company endpoints; use a company admin's token".into(),
            )),
        }
    }

    // ---- operator -------------------------------------------------------------------------

    /// Creates a company.
    pub async fn create_company(&self, actor: &Actor, input: CompanyInput) -> Result<Company, AppError> {
        Self::require_operator(actor)?;
        let mut errors = FieldErrors::new();
        let name = parse_person_name("name", input.name.as_deref(), &mut errors);
        validate_company_facts(&input, &mut errors);
        let Some(name) = name.filter(|_| errors.is_empty()) else {
            return Err(DomainError::Validation(errors).into());
        };
        let now = self.now();
        let company = Company {
            id: CompanyId(self.ids.next("cmp")),
            name,
            price_list: input.price_list.unwrap_or_else(|| "FY21".into()),
            accounts: input.accounts.unwrap_or(1),
            enterprise_subscriptions: input.enterprise_subscriptions.unwrap_or(1),
            created_at: now,
        };
        let mut audit = self.audit(actor, Some(&company.id), now, "company.created");
        audit.details = json!({"name": company.name, "price_list": company.price_list,
            "accounts": company.accounts, "enterprise_subscriptions": company.enterprise_subscriptions});
        self.store.create_company(&company, &audit).await?;
        Ok(company)
    }

    /// Changes a company's subscription facts.
    pub async fn update_company(
        &self,
        actor: &Actor,
        id: &CompanyId,
        input: CompanyInput,
    ) -> Result<Company, AppError> {
        Self::require_operator(actor)?;
        let before = self.store.company(id).await?.ok_or_else(|| AppError::NotFound("company".into()))?;
        let mut errors = FieldErrors::new();
        let name = match input.name.as_deref() {
            Some(n) => parse_person_name("name", Some(n), &mut errors),
            None => Some(before.name.clone()),
        };
        validate_company_facts(&input, &mut errors);
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors).into());
        }
        let after = Company {
            name: name.unwrap_or_else(|| before.name.clone()),
            price_list: input.price_list.unwrap_or_else(|| before.price_list.clone()),
            accounts: input.accounts.unwrap_or(before.accounts),
            enterprise_subscriptions: input.enterprise_subscriptions.unwrap_or(before.enterprise_subscriptions),
            ..before.clone()
        };
        let mut audit = self.audit(actor, Some(id), self.now(), "company.updated");
        audit.details = json!({
            "before": {"name": before.name, "price_list": before.price_list, "accounts": before.accounts, "enterprise_subscriptions": before.enterprise_subscriptions},
            "after": {"name": after.name, "price_list": after.price_list, "accounts": after.accounts, "enterprise_subscriptions": after.enterprise_subscriptions},
        });
        self.store.update_company(&after, &audit).await?;
        Ok(after)
    }

    /// A company (operator).
    pub async fn company(&self, actor: &Actor, id: &CompanyId) -> Result<(Company, Balance), AppError> {
        Self::require_operator(actor)?;
        let company = self.store.company(id).await?.ok_or_else(|| AppError::NotFound("company".into()))?;
        let balance = self.store.balance(id).await?;
        Ok((company, balance))
    }

    /// All companies (operator).
    pub async fn companies(&self, actor: &Actor) -> Result<Vec<Company>, AppError> {
        Self::require_operator(actor)?;
        Ok(self.store.companies().await?)
    }

    /// Grants cloud tokens to a company. With an idempotency key, a retry grants nothing more
    /// and answers the first grant's transaction.
    pub async fn grant_tokens(
        &self,
        actor: &Actor,
        company: &CompanyId,
        tokens: Option<i64>,
        note: Option<String>,
        idempotency_key: Option<(&str, &serde_json::Value)>,
    ) -> Result<(String, Balance), AppError> {
        Self::require_operator(actor)?;
        self.store.company(company).await?.ok_or_else(|| AppError::NotFound("company".into()))?;
        let mut errors = FieldErrors::new();
        let tokens = match tokens.map(validation::grant_tokens) {
            None => {
                errors.insert("tokens".into(), "is required".into());
                None
            }
            Some(Err(e)) => {
                errors.insert("tokens".into(), e);
                None
            }
            Some(Ok(t)) => Some(t),
        };
        let note = validation::grant_note(note.as_deref()).map_err(|e| errors.insert("note".into(), e)).ok().flatten();
        let Some(tokens) = tokens.filter(|_| errors.is_empty()) else {
            return Err(DomainError::Validation(errors).into());
        };
        let now = self.now();
        let grant = Grant { transaction_id: self.ids.next("txn"), company_id: company.clone(), tokens, note, at: now };
        let key = idempotency_key.map(|(k, body)| IdempotencyKey {
            scope: format!("{}:grant:{company}", actor.scope()),
            key: k.to_string(),
            fingerprint: fingerprint(body),
        });
        let mut audit = self.audit(actor, Some(company), now, "tokens.granted");
        audit.details = json!({"tokens": grant.tokens, "note": grant.note, "transaction_id": grant.transaction_id});
        let id = match self.store.grant_tokens(&grant, key.as_ref(), &audit).await {
            Ok(Idempotent::Done(())) => grant.transaction_id,
            Ok(Idempotent::Replayed(id)) => id,
            Err(StoreError::TotalTooLarge { headroom }) => {
                return Err(AppError::field(
                    "tokens",
                    format!(
                        "would take the company's total past {} cloud tokens, the most that can be held; \
                         at most {headroom} more can be granted",
                        i64::MAX
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        Ok((id, self.store.balance(company).await?))
    }

    /// Creates a user of a company.
    pub async fn create_user(&self, actor: &Actor, company: &CompanyId, input: UserInput) -> Result<User, AppError> {
        Self::require_operator(actor)?;
        self.store.company(company).await?.ok_or_else(|| AppError::NotFound("company".into()))?;
        let mut errors = FieldErrors::new();
        let name = parse_person_name("name", input.name.as_deref(), &mut errors);
        let email = match input.email.as_deref().map(Email::parse) {
            None => {
                errors.insert("email".into(), "is required".into());
                None
            }
            Some(Err(e)) => {
                errors.insert("email".into(), e);
                None
            }
            Some(Ok(e)) => Some(e),
        };
        if input.role.is_none() {
            errors.insert("role".into(), "is required (company_admin or member)".into());
        }
        if let Some(p) = &input.password {
            if let Err(e) = validation::password(p) {
                errors.insert("password".into(), e);
            }
        }
        let (Some(name), Some(email), Some(role)) = (name, email, input.role) else {
            return Err(DomainError::Validation(errors).into());
        };
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors).into());
        }
        let password_hash = match &input.password {
            Some(p) => Some(auth::hash_password(p).await?),
            None => None,
        };
        let now = self.now();
        let user = User {
            id: UserId(self.ids.next("usr")),
            company_id: company.clone(),
            name,
            email: email.as_str().to_string(),
            role,
            password_hash,
            created_at: now,
            disabled_at: None,
        };
        let mut audit = self.audit(actor, Some(company), now, "user.created");
        audit.details = json!({"user_id": user.id, "email": user.email, "role": role.as_str()});
        match self.store.create_user(&user, &audit).await {
            Ok(()) => Ok(user),
            Err(StoreError::Duplicate(_)) => {
                Err(AppError::field("email", format!("{} is already registered", user.email)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the manual clock forward and applies every scheduled change that became due.
    pub async fn set_clock(&self, actor: &Actor, to: Instant) -> Result<(Instant, usize), AppError> {
        Self::require_operator(actor)?;
        let now = self.clock.set(to).map_err(|e| match e {
            clock::ClockError::NotManual => AppError::NotFound(
                "the clock (the server runs on the system clock; start it with --manual-clock)".into(),
            ),
            clock::ClockError::Backwards => AppError::field(
                "now",
                format!("the clock never moves back; it is at {}", calendar::format_instant(self.now())),
            ),
        })?;
        let applied = self.apply_due_changes().await?;
        Ok((now, applied))
    }

    /// Creates the demo company, its admin and member, and one text and one embeddings resource
    /// on the built-in models with a runtime key each (for `serve --demo` on an empty database).
    pub async fn seed_demo(&self) -> Result<Option<DemoCredentials>, AppError> {
        if self.store.has_companies().await? {
            return Ok(None);
        }
        let op = Actor::Operator;
        let company = self
            .create_company(
                &op,
                CompanyInput {
                    name: Some("Demo Company".into()),
                    price_list: Some("FY24".into()),
                    accounts: Some(1),
                    enterprise_subscriptions: Some(1),
                },
            )
            .await?;
        self.grant_tokens(&op, &company.id, Some(500), Some("demo grant".into()), None).await?;
        let password = || auth::hex(&ids::random_bytes::<9>());
        let (admin_pw, member_pw) = (password(), password());
        let admin = self
            .create_user(
                &op,
                &company.id,
                UserInput {
                    name: Some("Demo Admin".into()),
                    email: Some("admin@demo.example".into()),
                    role: Some(Role::CompanyAdmin),
                    password: Some(admin_pw.clone()),
                },
            )
            .await?;
        let member = self
            .create_user(
                &op,
                &company.id,
                UserInput {
                    name: Some("Demo Member".into()),
                    email: Some("member@demo.example".into()),
                    role: Some(Role::Member),
                    password: Some(member_pw.clone()),
                },
            )
            .await?;
        let (_, token) = self.issue_token(&op, &admin, Some("demo".into()), None).await?;
        // Through the same use cases as the Control Center and the Portal: the plans' tokens
        // are allocated in the ledger, the member joins each team, the keys are stored hashed.
        let as_admin = Actor::User(admin.clone());
        let mut resources = Vec::new();
        for (resource_type, name, model) in DEMO_RESOURCES {
            let Some(region) = self.catalog.model(model).and_then(|m| m.regions.keys().next().cloned()) else {
                continue; // a replaced catalog without the built-in models
            };
            let form = ProvisionForm {
                resource_type: Some(resource_type),
                display_name: Some(name.into()),
                environment: Some(genai_core::resource::Environment::Test),
                cross_region_inference: self
                    .catalog
                    .model(model)
                    .and_then(|m| m.regions.get(&region))
                    .map(|mode| !mode.allows(false)),
                region: Some(region),
                model: Some(model.into()),
                plan: Some(PlanSize::Small),
                embeddings_resource_id: None,
                user_name: Some(member.name.clone()),
                user_email: Some(member.email.clone()),
            };
            let resource = self.provision(&as_admin, &form, None).await?;
            let created = self.create_key(&as_admin, &resource.id, Some("demo")).await?;
            resources.push(DemoResource {
                id: resource.id,
                resource_type,
                name: name.into(),
                model: model.into(),
                key: created.secret.expose().to_string(),
            });
        }
        Ok(Some(DemoCredentials {
            company: company.name,
            admin: (admin.email, admin_pw, token),
            member: (member.email, member_pw),
            resources,
        }))
    }

    // ---- Control Center -------------------------------------------------------------------

    pub(crate) async fn facts(&self, company: &CompanyId) -> Result<(CompanyFacts, Balance), AppError> {
        let c = self.store.company(company).await?.ok_or_else(|| AppError::NotFound("company".into()))?;
        let balance = self.store.balance(company).await?;
        let facts = CompanyFacts {
            price_list: c.price_list,
            accounts: c.accounts,
            enterprise_subscriptions: c.enterprise_subscriptions,
            available: balance.available,
        };
        Ok((facts, balance))
    }

    /// The eligibility checks of the caller's company.
    pub async fn eligibility(&self, actor: &Actor) -> Result<Vec<Check>, AppError> {
        let user = Self::require_admin(actor)?;
        let (facts, _) = self.facts(&user.company_id).await?;
        Ok(eligibility::evaluate(&facts))
    }

    /// The caller's company's balance.
    pub async fn balance(&self, actor: &Actor) -> Result<Balance, AppError> {
        let user = Self::require_admin(actor)?;
        Ok(self.store.balance(&user.company_id).await?)
    }

    /// The caller's company's whole ledger, newest first (pages that show it all; lists that
    /// may grow long use [`App::transactions_page`]).
    pub async fn transactions(&self, actor: &Actor) -> Result<Vec<LedgerTransaction>, AppError> {
        Ok(self.transactions_page(actor, None, None).await?.items)
    }

    /// A page of the caller's company's ledger, newest first: at most `limit` transactions
    /// (none: all) after `cursor` (see [`paging`]).
    pub async fn transactions_page(
        &self,
        actor: &Actor,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<LedgerTransaction>, AppError> {
        let user = Self::require_admin(actor)?;
        let page = paging::history_page(limit, cursor)?;
        let items = self.store.transactions(&user.company_id, &page).await?;
        Ok(paging::into_page(&page, items, |t| (t.at, t.id.as_str())))
    }

    /// The caller's company's whole audit log, newest first (see [`App::audit_events_page`]).
    pub async fn audit_events(&self, actor: &Actor) -> Result<Vec<AuditEvent>, AppError> {
        Ok(self.audit_events_page(actor, None, None).await?.items)
    }

    /// A page of the caller's company's audit log, newest first: at most `limit` events (none:
    /// all) after `cursor` (see [`paging`]).
    pub async fn audit_events_page(
        &self,
        actor: &Actor,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, AppError> {
        let user = Self::require_admin(actor)?;
        let page = paging::history_page(limit, cursor)?;
        let items = self.store.audit_events(&user.company_id, &page).await?;
        Ok(paging::into_page(&page, items, |e| (e.at, e.id.as_str())))
    }

    /// Lists resources; the query's company is replaced by the caller's.
    pub async fn resources(&self, actor: &Actor, mut query: ResourceQuery) -> Result<Vec<Resource>, AppError> {
        let user = Self::require_admin(actor)?;
        query.company_id = user.company_id.clone();
        Ok(self.store.resources(&query).await?)
    }

    /// One resource of the caller's company.
    pub async fn resource(&self, actor: &Actor, id: &ResourceId) -> Result<Resource, AppError> {
        let user = Self::require_admin(actor)?;
        self.store.resource(&user.company_id, id).await?.ok_or_else(|| AppError::NotFound("resource".into()))
    }

    /// Checks a knowledge base's embeddings resource: it must be one of the company's, and
    /// [`Resource::linkable_embeddings`] from the knowledge base's region. Returns it for the
    /// write's guard (so a deprovisioning scheduled meanwhile makes the write stale).
    async fn check_embeddings(
        &self,
        company: &CompanyId,
        form: &ProvisionForm,
        errors: &mut FieldErrors,
    ) -> Result<Option<Resource>, AppError> {
        let Some(id) =
            form.embeddings_resource_id.as_deref().filter(|_| form.resource_type == Some(ResourceType::KnowledgeBase))
        else {
            return Ok(None);
        };
        if id.is_empty() {
            return Ok(None);
        }
        let field = "embeddings_resource_id";
        let e = self.store.resource(company, &ResourceId(id.to_string())).await?;
        let problem = match &e {
            None => Some(format!("no embeddings resource \"{id}\" in your company")),
            Some(e) => e.linkable_embeddings(form.region.as_deref()).err(),
        };
        if let Some(p) = problem {
            errors.entry(field.into()).or_insert(p);
            return Ok(None);
        }
        Ok(e)
    }

    /// Previews a provisioning: the Resource Specification. Nothing is stored.
    pub async fn specification(&self, actor: &Actor, form: &ProvisionForm) -> Result<Specification, AppError> {
        let user = Self::require_admin(actor)?;
        let (facts, balance) = self.facts(&user.company_id).await?;
        let mut problems = Vec::new();
        for c in eligibility::evaluate(&facts).into_iter().filter(|c| !c.ok) {
            problems.push(Problem { code: "not_eligible", field: None, message: c.message });
        }
        let mut errors = form.validate(&self.catalog).err().unwrap_or_default();
        self.check_embeddings(&user.company_id, form, &mut errors).await?;
        let Some(plan) = form.plan(&self.catalog).cloned() else {
            let mut only_plan = FieldErrors::new();
            for f in ["type", "plan"] {
                if let Some(m) = errors.get(f) {
                    only_plan.insert(f.into(), m.clone());
                }
            }
            if only_plan.is_empty() {
                only_plan.insert("plan".into(), "is required".into());
            }
            return Err(DomainError::Validation(only_plan).into());
        };
        for (field, message) in errors {
            problems.push(Problem { code: "validation_failed", field: Some(field), message });
        }
        let afford = ledger::afford(balance.available, plan.cloud_tokens);
        if let Err(e) = &afford {
            problems.push(Problem { code: e.code(), field: None, message: e.to_string() });
        }
        let now = self.now();
        let first_bundle_month = calendar::bundle_month_at(now, now)
            .ok_or_else(|| AppError::Internal("bundle month out of range".into()))?;
        Ok(Specification {
            resource_type: plan.resource_type,
            available_before: balance.available,
            available_after: ledger::available_after(balance.available, plan.cloud_tokens),
            afford,
            plan,
            first_bundle_month,
            problems,
        })
    }

    /// Provisions a resource. With an idempotency key, a retry with the same body answers the
    /// first resource and creates nothing; with another body it is refused.
    pub async fn provision(
        &self,
        actor: &Actor,
        form: &ProvisionForm,
        idempotency_key: Option<(&str, &serde_json::Value)>,
    ) -> Result<Resource, AppError> {
        let user = Self::require_admin(actor)?;
        let company = &user.company_id;
        let key = idempotency_key.map(|(k, body)| IdempotencyKey {
            scope: format!("{}:provision", actor.scope()),
            key: k.to_string(),
            fingerprint: fingerprint(body),
        });
        for _ in 0..MAX_ATTEMPTS {
            // A retry of a request that already succeeded answers the first result, even if the
            // company has meanwhile become ineligible, short of tokens, or the linked resource
            // changed.
            if let Some(key) = &key {
                if let Some(existing) = self.replayed(company, key).await? {
                    return Ok(existing);
                }
            }
            let (facts, _) = self.facts(company).await?;
            let mut errors = FieldErrors::new();
            let valid = form.validate(&self.catalog).map_err(|e| errors = e).ok();
            let embeddings = self.check_embeddings(company, form, &mut errors).await?;
            eligibility::require_for_provisioning(&facts)?;
            let Some(valid) = valid.filter(|_| errors.is_empty()) else {
                return Err(DomainError::Validation(errors).into());
            };
            let cost = valid.plan.cloud_tokens;
            let now = self.now();
            let member = self.first_member(company, &valid.user_name, &valid.user_email, now).await?;
            let resource = valid.into_resource(ResourceId(self.ids.next("res")), company.clone(), now);
            let mut audit = self.audit(actor, Some(company), now, "resource.provisioned");
            audit.resource_id = Some(resource.id.clone());
            audit.details = json!({"before": null, "after": snapshot(&resource), "display_name": resource.display_name,
                "type": resource.resource_type, "model": resource.model, "region": resource.region});
            let new = NewResource { transaction_id: self.ids.next("txn"), member, audit, resource };
            let guard = embeddings.map(|e| Guard { resource_id: e.id, version: e.version });
            match self.store.insert_resource(&new, guard.as_ref(), key.as_ref()).await {
                Ok(Idempotent::Done(())) => return Ok(new.resource),
                Ok(Idempotent::Replayed(id)) => {
                    return self
                        .store
                        .resource(company, &ResourceId(id))
                        .await?
                        .ok_or_else(|| AppError::Internal("an idempotency key points at a missing resource".into()));
                }
                // The store refused on the balance it saw (its conditional UPDATE is the
                // enforcement under concurrency); the ledger rule words the refusal. Had the
                // balance grown back meanwhile, decide again.
                Err(StoreError::InsufficientTokens { available }) => match ledger::afford(available, cost) {
                    Err(e) => return Err(e.into()),
                    Ok(_) => continue,
                },
                // The person's email was registered between the lookup and the write: decide
                // again (they are now an existing user).
                Err(StoreError::Duplicate("email")) => continue,
                Err(StoreError::Duplicate(_)) => {
                    return Err(AppError::field(
                        "display_name",
                        format!(
                            "\"{}\" is already the name of another resource of your company",
                            new.resource.display_name
                        ),
                    ))
                }
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Internal("too many concurrent changes; try again".into()))
    }

    async fn replayed(&self, company: &CompanyId, key: &IdempotencyKey) -> Result<Option<Resource>, AppError> {
        match self.store.idempotent_result(key).await? {
            None => Ok(None),
            Some(id) => Ok(self.store.resource(company, &ResourceId(id)).await?),
        }
    }

    /// Changes a resource's plan, cancels a scheduled change, or schedules deprovisioning.
    pub async fn act(&self, actor: &Actor, id: &ResourceId, action: ResourceAction) -> Result<Resource, AppError> {
        let user = Self::require_admin(actor)?;
        let company = &user.company_id;
        let mut settled = false;
        for _ in 0..MAX_ATTEMPTS {
            let current =
                self.store.resource(company, id).await?.ok_or_else(|| AppError::NotFound("resource".into()))?;
            let now = self.now();
            // A scheduled change that is due has taken effect, written or not: write it first
            // (the scheduler may be a moment behind), then decide on the result. If it is still
            // unwritten after that, the scheduler set it aside as broken (and logged why).
            if current.take_effect(now).is_some() {
                if settled {
                    return Err(AppError::Internal(format!(
                        "the due scheduled change of resource {id} could not be applied; it is retried later"
                    )));
                }
                self.apply_due_changes().await?;
                settled = true;
                continue;
            }
            let mut guard = None;
            let change: Change = match action {
                ResourceAction::ChangePlan(plan) => {
                    let change = current.change_plan(plan, &self.catalog, now)?;
                    let (facts, balance) = self.facts(company).await?;
                    eligibility::require_for_upgrade(&facts, &change)?;
                    if let Some(cost) = change.allocation() {
                        // Refuse early with the same words as the preview; the store's
                        // conditional write still decides under concurrency.
                        ledger::afford(balance.available, cost)?;
                    }
                    change
                }
                ResourceAction::CancelDowngrade => current.cancel_downgrade(now)?,
                ResourceAction::Deprovision => {
                    let linked = if current.resource_type == ResourceType::EmbeddingsGeneration {
                        self.store.linked_knowledge_bases(&current.id).await?
                    } else {
                        Vec::new()
                    };
                    current.deprovision(&linked, now)?
                }
                ResourceAction::CancelDeprovision => {
                    let embeddings = match &current.embeddings_resource_id {
                        Some(e) => self.store.resource(company, e).await?,
                        None => None,
                    };
                    guard = embeddings.as_ref().map(|e| Guard { resource_id: e.id.clone(), version: e.version });
                    current.cancel_deprovision(embeddings.as_ref(), now)?
                }
            };
            let mut audit = self.audit(actor, Some(company), now, change.action);
            audit.resource_id = Some(current.id.clone());
            audit.details = json!({"before": snapshot(&current), "after": snapshot(&change.next)});
            let write = ResourceWrite { transaction_id: self.ids.next("txn"), guard, audit, change };
            match self.store.apply_change(&write).await {
                Ok(()) => {
                    let mut next = write.change.next;
                    next.version += 1;
                    self.events.resource_changed(&next.id);
                    return Ok(next);
                }
                Err(StoreError::InsufficientTokens { available }) => {
                    let required = write.change.allocation().unwrap_or_default();
                    match ledger::afford(available, required) {
                        Err(e) => return Err(e.into()),
                        Ok(_) => continue,
                    }
                }
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Internal("too many concurrent changes; try again".into()))
    }

    /// Applies every scheduled change that is due now, each exactly once: the store claims due
    /// resources in batches (other instances skip what this one holds) and writes each change
    /// only if the resource is still at the version it was decided on. A change that cannot be
    /// applied is set aside by the store, logged here with its cause and counted
    /// ([`App::scheduler_counters`]); the others go on. Returns how many this call applied.
    pub async fn apply_due_changes(&self) -> Result<usize, AppError> {
        let now = self.now();
        // Which decided changes deprovision, for the runtime's listener (only those the store
        // reports as written are announced).
        let deprovisions = std::sync::Mutex::new(std::collections::HashSet::new());
        let decide = |r: &Resource| {
            let change = r.take_effect(now)?;
            if !change.next.is_live() {
                deprovisions.lock().unwrap_or_else(|p| p.into_inner()).insert(r.id.clone());
            }
            let audit = AuditEvent {
                id: self.ids.next("evt"),
                company_id: Some(r.company_id.clone()),
                at: change.at,
                actor: "scheduler".into(),
                action: change.action.into(),
                resource_id: Some(r.id.clone()),
                details: json!({"before": snapshot(r), "after": snapshot(&change.next)}),
            };
            Some(ResourceWrite { transaction_id: self.ids.next("txn"), guard: None, audit, change })
        };
        let mut applied = 0;
        loop {
            let batch = self.store.apply_due(now, 100, &decide).await?;
            self.scheduler.record(&batch);
            let deprovisioned = deprovisions.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for id in &batch.changed {
                if deprovisioned.contains(id) {
                    self.events.resource_deprovisioned(id);
                } else {
                    self.events.resource_changed(id);
                }
            }
            applied += batch.applied;
            if batch.applied == 0 && batch.set_aside.is_empty() {
                return Ok(applied);
            }
        }
    }

    /// How the scheduler has fared since start-up.
    pub fn scheduler_counters(&self) -> &scheduler::Counters {
        &self.scheduler
    }
}
