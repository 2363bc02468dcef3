//! What the web UI needs beyond the REST use cases: logging in (with a slowdown after failed
//! attempts, see [`crate::throttle`]), sessions, CSRF tokens, and previews of plan changes and
//! deprovisioning so the UI can show the Resource Specification before anything is changed. The
//! previews run the same domain functions as the real actions, so what the page promises is what
//! the action does.

use crate::auth::{self, Actor};
use crate::{App, AppError};
use genai_core::catalog::{Plan, PlanSize};
use genai_core::eligibility;
use genai_core::ledger;
use genai_core::resource::{Resource, Scheduled};
use genai_core::validation::EMAIL_MAX;
use genai_core::{CloudTokens, DomainError, Instant, ResourceId};
use genai_store::Session;
use std::collections::HashMap;
use std::net::IpAddr;

/// How long a web session lasts.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// A plan change as the Adjust Plan Size page shows it.
#[derive(Debug, Clone)]
pub struct PlanPreview {
    /// The resource now.
    pub resource: Resource,
    /// The plan asked for.
    pub target: PlanSize,
    /// The catalog's current and new plan.
    pub current_plan: Option<Plan>,
    /// The new plan.
    pub new_plan: Option<Plan>,
    /// `upgrade` (now) or `downgrade` (at `effective_at`), or why it cannot be done.
    pub outcome: Result<PlanChangeKind, DomainError>,
    /// New cost minus current cost (negative for downgrades).
    pub cost_difference: i64,
    /// Available tokens now.
    pub available_before: CloudTokens,
    /// Available right after the change (a downgrade releases only at `effective_at`);
    /// negative when an upgrade is short.
    pub available_after: CloudTokens,
    /// For an upgrade, the ledger's verdict on paying the difference now
    /// ([`ledger::afford`]), whatever else refuses it; `None` for other changes.
    pub afford: Option<Result<CloudTokens, DomainError>>,
    /// When the change takes effect.
    pub effective_at: Instant,
}

/// Which way a plan changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChangeKind {
    /// Larger plan, now.
    Upgrade,
    /// Smaller plan, at the next boundary.
    Downgrade,
}

impl App {
    /// Checks email and password, slowing down repeated failures from `client` (the caller's
    /// network address), and starts a session. Returns the user and the session secret for the
    /// cookie.
    ///
    /// An over-long email is refused before anything else (no lookup, no hashing, no
    /// bookkeeping). Every other failure costs exactly one Argon2 verification, whether the
    /// email is unknown, the user has no password, or the password is wrong.
    pub async fn log_in(
        &self,
        client: IpAddr,
        email: &str,
        password: &str,
    ) -> Result<(genai_store::User, String), AppError> {
        let email = email.trim().to_lowercase();
        if email.len() > EMAIL_MAX {
            return Err(AppError::field("email", format!("must be at most {EMAIL_MAX} characters")));
        }
        if let Some(wait) = self.throttle.locked_for(client, &email, std::time::Instant::now()) {
            return Err(AppError::TooManyAttempts { retry_after_secs: wait.as_secs().max(1) });
        }
        let user = self.store.user_by_email(&email).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let ok = auth::verify_password(password, stored).await?;
        // A disabled user's right password opens nothing either.
        let Some(user) = user.filter(|u| ok && u.disabled_at.is_none()) else {
            self.throttle.failed(client, &email, std::time::Instant::now());
            return Err(AppError::Unauthenticated);
        };
        self.throttle.succeeded(client, &email);
        let secret = auth::new_token_secret();
        let now = self.now();
        // Sessions expire by the wall clock even under a manual clock: they are about people.
        let wall = chrono::Utc::now();
        self.store
            .create_session(&Session {
                id_hash: auth::token_hash(&secret),
                user_id: user.id.clone(),
                created_at: now,
                expires_at: wall + SESSION_LIFETIME,
            })
            .await?;
        Ok((user, secret))
    }

    /// The actor of a session cookie.
    pub async fn session_actor(&self, secret: &str) -> Result<Actor, AppError> {
        match self.store.session_user(&auth::token_hash(secret), chrono::Utc::now()).await? {
            Some(u) => Ok(Actor::User(u)),
            None => Err(AppError::Unauthenticated),
        }
    }

    /// Ends a session.
    pub async fn log_out(&self, secret: &str) -> Result<(), AppError> {
        Ok(self.store.delete_session(&auth::token_hash(secret)).await?)
    }

    /// The CSRF token of a session: derived from its secret, which only the session's HttpOnly
    /// cookie carries, so a page of another site can neither read nor compute it.
    pub fn csrf_token(secret: &str) -> String {
        auth::token_hash(&format!("csrf:{secret}"))
    }

    /// Whether a submitted CSRF token belongs to the session.
    pub fn csrf_ok(secret: &str, submitted: &str) -> bool {
        auth::constant_time_eq(Self::csrf_token(secret).as_bytes(), submitted.as_bytes())
    }

    /// What changing a resource's plan to `target` would do, without doing it.
    pub async fn preview_plan_change(
        &self,
        actor: &Actor,
        id: &ResourceId,
        target: PlanSize,
    ) -> Result<PlanPreview, AppError> {
        let resource = self.resource(actor, id).await?;
        let (facts, balance) = self.facts(&resource.company_id).await?;
        let now = self.now();
        let current_plan = self.catalog.plan(resource.resource_type, resource.plan).cloned();
        let new_plan = self.catalog.plan(resource.resource_type, target).cloned();
        let new_cost = new_plan.as_ref().map_or(resource.cloud_tokens.get(), |p| p.cloud_tokens.get());
        let cost_difference = new_cost - resource.cloud_tokens.get();
        // The same decisions as `act`, in the same order: the state machine, then eligibility
        // and affordability of an upgrade (core's rules, not re-derived here).
        let mut afford = None;
        let (outcome, available_after, effective_at) = match resource.change_plan(target, &self.catalog, now) {
            Ok(change) => match (change.allocation(), change.next.scheduled) {
                (Some(cost), _) => {
                    let paid = ledger::afford(balance.available, cost);
                    let outcome = eligibility::require_for_upgrade(&facts, &change)
                        .and_then(|()| paid.clone())
                        .map(|_| PlanChangeKind::Upgrade);
                    afford = Some(paid);
                    (outcome, ledger::available_after(balance.available, cost), now)
                }
                (None, Some(Scheduled::Downgrade { effective_at, .. })) => {
                    (Ok(PlanChangeKind::Downgrade), balance.available, effective_at)
                }
                (None, _) => (Ok(PlanChangeKind::Downgrade), balance.available, now),
            },
            Err(e) => (Err(e), balance.available, now),
        };
        Ok(PlanPreview {
            resource,
            target,
            current_plan,
            new_plan,
            outcome,
            cost_difference,
            available_before: balance.available,
            available_after,
            afford,
            effective_at,
        })
    }

    /// When deprovisioning a resource would take effect, or why it cannot be deprovisioned.
    pub async fn preview_deprovision(
        &self,
        actor: &Actor,
        id: &ResourceId,
    ) -> Result<(Resource, Result<Instant, DomainError>), AppError> {
        let resource = self.resource(actor, id).await?;
        let linked = if resource.resource_type == genai_core::catalog::ResourceType::EmbeddingsGeneration {
            self.store.linked_knowledge_bases(&resource.id).await?
        } else {
            Vec::new()
        };
        let when = resource
            .deprovision(&linked, self.now())
            .map(|c| c.next.scheduled.map_or(self.now(), Scheduled::effective_at));
        Ok((resource, when))
    }
}

impl App {
    /// The display names of the caller's company's resources among `ids`, for pages that list
    /// history (ledger, audit log) by name instead of by id. One lookup per distinct id, so a
    /// page of history costs at most a page of lookups; an id of another company (or of none)
    /// is simply left out.
    pub async fn resource_names(
        &self,
        actor: &Actor,
        ids: &[ResourceId],
    ) -> Result<HashMap<ResourceId, String>, AppError> {
        let user = Self::require_admin(actor)?;
        let mut names = HashMap::new();
        for id in ids {
            if names.contains_key(id) {
                continue;
            }
            if let Some(r) = self.store.resource(&user.company_id, id).await? {
                names.insert(id.clone(), r.display_name.to_string());
            }
        }
        Ok(names)
    }
}

impl App {
    /// The caller's own company (any logged-in user), for the page header.
    pub async fn my_company(&self, actor: &Actor) -> Result<genai_store::Company, AppError> {
        let Actor::User(user) = actor else {
            return Err(AppError::Forbidden("the operator belongs to no company".into()));
        };
        self.store.company(&user.company_id).await?.ok_or_else(|| AppError::NotFound("company".into()))
    }
}
