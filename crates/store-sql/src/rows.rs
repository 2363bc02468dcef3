//! How domain values become columns and rows become domain values, once for both databases.
//!
//! Instants are stored as integer milliseconds since the Unix epoch (UTC), cloud tokens as
//! `BIGINT`, enums by their wire names. Reading is strict: a value that does not parse is
//! [`StoreError::Corrupt`], never a default.

use crate::conn::RowRead;
use chrono::DateTime;
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::ledger::TransactionKind;
use genai_core::resource::{Environment, Person, Resource, Scheduled, Status};
use genai_core::validation::{DisplayName, Email, PersonName};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId, UserId};
use genai_store::{ApiToken, AuditEvent, Company, LedgerTransaction, Role, StoreError, StoreResult, User};

/// Milliseconds since the Unix epoch: how instants are stored.
pub fn millis(t: Instant) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond count.
pub fn instant(ms: i64) -> StoreResult<Instant> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::corrupt("instant", ms))
}

fn opt_instant(ms: Option<i64>) -> StoreResult<Option<Instant>> {
    ms.map(instant).transpose()
}

/// The column list of a resource row, in [`ResourceRow`]'s order, as a literal so statements
/// can be composed with `concat!` at compile time.
#[macro_export]
macro_rules! resource_columns {
    () => {
        "id, company_id, resource_type, display_name, name_key, environment, region, cross_region_inference, \
         model, plan, cloud_tokens, created_for_name, created_for_email, status, created_at, scheduled_kind, \
         scheduled_plan, scheduled_cloud_tokens, scheduled_at, pending_release, deprovisioned_at, \
         embeddings_resource_id, version"
    };
}

/// The columns of a resource row, as stored: one field per column, named like it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub id: String,
    pub company_id: String,
    pub resource_type: String,
    pub display_name: String,
    pub name_key: String,
    pub environment: String,
    pub region: String,
    pub cross_region_inference: bool,
    pub model: Option<String>,
    pub plan: String,
    pub cloud_tokens: i64,
    pub created_for_name: String,
    pub created_for_email: String,
    pub status: String,
    pub created_at: i64,
    pub scheduled_kind: Option<String>,
    pub scheduled_plan: Option<String>,
    pub scheduled_cloud_tokens: Option<i64>,
    pub scheduled_at: Option<i64>,
    pub pending_release: i64,
    pub deprovisioned_at: Option<i64>,
    pub embeddings_resource_id: Option<String>,
    pub version: i64,
}

impl ResourceRow {
    /// Encodes a resource (`Corrupt` when its pending release cannot be computed exactly).
    pub fn from_resource(r: &Resource) -> StoreResult<ResourceRow> {
        let (kind, plan, tokens, at) = match r.scheduled {
            None => (None, None, None, None),
            Some(Scheduled::Downgrade { plan, cloud_tokens, effective_at }) => (
                Some("downgrade".to_string()),
                Some(plan.as_str().to_string()),
                Some(cloud_tokens.get()),
                Some(millis(effective_at)),
            ),
            Some(Scheduled::Deprovision { effective_at }) => {
                (Some("deprovision".to_string()), None, None, Some(millis(effective_at)))
            }
        };
        let pending_release = r.pending_release().ok_or_else(|| StoreError::corrupt("pending release of", &r.id))?;
        Ok(ResourceRow {
            id: r.id.0.clone(),
            company_id: r.company_id.0.clone(),
            resource_type: r.resource_type.as_str().into(),
            display_name: r.display_name.to_string(),
            name_key: r.display_name.unique_key(),
            environment: r.environment.as_str().into(),
            region: r.region.clone(),
            cross_region_inference: r.cross_region_inference,
            model: r.model.clone(),
            plan: r.plan.as_str().into(),
            cloud_tokens: r.cloud_tokens.get(),
            created_for_name: r.created_for.name.to_string(),
            created_for_email: r.created_for.email.to_string(),
            status: r.status.as_str().into(),
            created_at: millis(r.created_at),
            scheduled_kind: kind,
            scheduled_plan: plan,
            scheduled_cloud_tokens: tokens,
            scheduled_at: at,
            pending_release: pending_release.get(),
            deprovisioned_at: r.deprovisioned_at.map(millis),
            embeddings_resource_id: r.embeddings_resource_id.as_ref().map(|e| e.0.clone()),
            version: r.version,
        })
    }

    /// Reads the columns of [`resource_columns!`].
    pub fn read(row: &dyn RowRead) -> StoreResult<ResourceRow> {
        Ok(ResourceRow {
            id: row.text("id")?,
            company_id: row.text("company_id")?,
            resource_type: row.text("resource_type")?,
            display_name: row.text("display_name")?,
            name_key: row.text("name_key")?,
            environment: row.text("environment")?,
            region: row.text("region")?,
            cross_region_inference: row.boolean("cross_region_inference")?,
            model: row.opt_text("model")?,
            plan: row.text("plan")?,
            cloud_tokens: row.int("cloud_tokens")?,
            created_for_name: row.text("created_for_name")?,
            created_for_email: row.text("created_for_email")?,
            status: row.text("status")?,
            created_at: row.int("created_at")?,
            scheduled_kind: row.opt_text("scheduled_kind")?,
            scheduled_plan: row.opt_text("scheduled_plan")?,
            scheduled_cloud_tokens: row.opt_int("scheduled_cloud_tokens")?,
            scheduled_at: row.opt_int("scheduled_at")?,
            pending_release: row.int("pending_release")?,
            deprovisioned_at: row.opt_int("deprovisioned_at")?,
            embeddings_resource_id: row.opt_text("embeddings_resource_id")?,
            version: row.int("version")?,
        })
    }

    /// Decodes a row.
    pub fn into_resource(self) -> StoreResult<Resource> {
        let plan_of = |s: &str| PlanSize::parse(s).ok_or_else(|| StoreError::corrupt("plan", s));
        let scheduled = match (self.scheduled_kind.as_deref(), self.scheduled_at) {
            (None, _) => None,
            (Some("downgrade"), Some(at)) => Some(Scheduled::Downgrade {
                plan: plan_of(self.scheduled_plan.as_deref().unwrap_or_default())?,
                cloud_tokens: CloudTokens(
                    self.scheduled_cloud_tokens.ok_or_else(|| StoreError::corrupt("scheduled cloud tokens", "NULL"))?,
                ),
                effective_at: instant(at)?,
            }),
            (Some("deprovision"), Some(at)) => Some(Scheduled::Deprovision { effective_at: instant(at)? }),
            (Some(other), _) => return Err(StoreError::corrupt("scheduled change", other)),
        };
        Ok(Resource {
            id: ResourceId(self.id),
            company_id: CompanyId(self.company_id),
            resource_type: ResourceType::parse(&self.resource_type)
                .ok_or_else(|| StoreError::corrupt("resource type", &self.resource_type))?,
            display_name: DisplayName::stored(self.display_name),
            environment: Environment::parse(&self.environment)
                .ok_or_else(|| StoreError::corrupt("environment", &self.environment))?,
            region: self.region,
            cross_region_inference: self.cross_region_inference,
            model: self.model,
            plan: plan_of(&self.plan)?,
            cloud_tokens: CloudTokens(self.cloud_tokens),
            created_for: Person {
                name: PersonName::stored(self.created_for_name),
                email: Email::stored(self.created_for_email),
            },
            status: Status::parse(&self.status).ok_or_else(|| StoreError::corrupt("status", &self.status))?,
            created_at: instant(self.created_at)?,
            scheduled,
            deprovisioned_at: opt_instant(self.deprovisioned_at)?,
            embeddings_resource_id: self.embeddings_resource_id.map(ResourceId),
            version: self.version,
        })
    }
}

/// A resource from a row of [`resource_columns!`].
pub fn resource(row: &dyn RowRead) -> StoreResult<Resource> {
    ResourceRow::read(row)?.into_resource()
}

/// A company from `SELECT * FROM companies`.
pub fn company(row: &dyn RowRead) -> StoreResult<Company> {
    Ok(Company {
        id: CompanyId(row.text("id")?),
        name: row.text("name")?,
        price_list: row.text("price_list")?,
        accounts: row.int("accounts")?,
        enterprise_subscriptions: row.int("enterprise_subscriptions")?,
        created_at: instant(row.int("created_at")?)?,
    })
}

/// A user from `SELECT * FROM users` (or `u.*`).
pub fn user(row: &dyn RowRead) -> StoreResult<User> {
    let role = row.text("role")?;
    Ok(User {
        id: UserId(row.text("id")?),
        company_id: CompanyId(row.text("company_id")?),
        name: row.text("name")?,
        email: row.text("email")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::corrupt("role", &role))?,
        password_hash: row.opt_text("password_hash")?,
        created_at: instant(row.int("created_at")?)?,
        disabled_at: opt_instant(row.opt_int("disabled_at")?)?,
    })
}

/// An API token from `SELECT * FROM api_tokens`.
pub fn api_token(row: &dyn RowRead) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: row.text("id")?,
        user_id: UserId(row.text("user_id")?),
        token_hash: row.text("token_hash")?,
        description: row.text("description")?,
        created_at: instant(row.int("created_at")?)?,
        expires_at: opt_instant(row.opt_int("expires_at")?)?,
        last_used_at: opt_instant(row.opt_int("last_used_at")?)?,
        revoked_at: opt_instant(row.opt_int("revoked_at")?)?,
    })
}

/// A user and one of their tokens, from `SELECT u.*` of the user and the token's columns,
/// renamed where they clash (`token_id`, `token_created_at`).
pub fn token_user(row: &dyn RowRead) -> StoreResult<(User, ApiToken)> {
    let user = user(row)?;
    let token = ApiToken {
        id: row.text("token_id")?,
        user_id: user.id.clone(),
        token_hash: row.text("token_hash")?,
        description: row.text("description")?,
        created_at: instant(row.int("token_created_at")?)?,
        expires_at: opt_instant(row.opt_int("expires_at")?)?,
        last_used_at: opt_instant(row.opt_int("last_used_at")?)?,
        revoked_at: opt_instant(row.opt_int("revoked_at")?)?,
    };
    Ok((user, token))
}

/// A ledger transaction from `SELECT * FROM ledger_transactions`.
pub fn transaction(row: &dyn RowRead) -> StoreResult<LedgerTransaction> {
    let kind = row.text("kind")?;
    Ok(LedgerTransaction {
        id: row.text("id")?,
        company_id: CompanyId(row.text("company_id")?),
        at: instant(row.int("at")?)?,
        kind: TransactionKind::parse(&kind).ok_or_else(|| StoreError::corrupt("transaction kind", &kind))?,
        tokens: CloudTokens(row.int("tokens")?),
        debit_account: row.text("debit_account")?,
        credit_account: row.text("credit_account")?,
        resource_id: row.opt_text("resource_id")?.map(ResourceId),
        available_after: CloudTokens(row.int("available_after")?),
        note: row.opt_text("note")?,
    })
}

/// An audit event from `SELECT * FROM audit_events`.
pub fn audit_event(row: &dyn RowRead) -> StoreResult<AuditEvent> {
    let details = row.text("details")?;
    Ok(AuditEvent {
        id: row.text("id")?,
        company_id: row.opt_text("company_id")?.map(CompanyId),
        at: instant(row.int("at")?)?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        resource_id: row.opt_text("resource_id")?.map(ResourceId),
        // Written as JSON text; anything else (a hand edit) is shown as the text it is.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
    })
}

/// A single `BIGINT` column named `n`.
pub fn count(row: &dyn RowRead) -> StoreResult<i64> {
    row.int("n")
}
