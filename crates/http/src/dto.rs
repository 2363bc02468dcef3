//! The JSON shapes of `API.md`, built from domain values. Also the schemas of the OpenAPI
//! document (request shapes are documented here and read field by field in [`crate::body`]).

use genai_app::{ApiToken, AuditEvent, Company, LedgerTransaction, MonthUsage, Specification, User};
use genai_core::calendar::format_instant;
use genai_core::catalog::{Catalog, ResourceType};
use genai_core::eligibility::Check;
use genai_core::ledger::Balance;
use genai_core::resource::{Resource, Scheduled};
use genai_core::{BundleMonth, Instant};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `[start, end)` of a bundle month.
#[derive(Debug, Serialize, ToSchema)]
pub struct BundleMonthDto {
    /// First instant (RFC 3339, UTC).
    pub start: String,
    /// First instant of the next bundle month.
    pub end: String,
}

impl From<BundleMonth> for BundleMonthDto {
    fn from(m: BundleMonth) -> Self {
        BundleMonthDto { start: format_instant(m.start), end: format_instant(m.end) }
    }
}

/// The person a resource was created for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonDto {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// A scheduled downgrade.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledDowngradeDto {
    /// The smaller plan.
    pub plan: String,
    /// When it takes effect.
    pub effective_at: String,
}

/// Usage in the current bundle month against the plan's quota. Text resources have input and
/// output tokens, embeddings input tokens, knowledge bases stored bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDto {
    /// Input tokens used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Output tokens used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Input-token quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_quota: Option<i64>,
    /// Output-token quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_quota: Option<i64>,
    /// Stored bytes (knowledge bases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<i64>,
    /// Storage quota in bytes (knowledge bases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<i64>,
}

/// A resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceDto {
    /// Id.
    pub id: String,
    /// `text_generation`, `embeddings_generation` or `knowledge_base`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Display name.
    pub display_name: String,
    /// `test`, `acceptance` or `production`.
    pub environment: String,
    /// Region id.
    pub region: String,
    /// Cross-region inference.
    pub cross_region_inference: bool,
    /// Model id (null for knowledge bases).
    pub model: Option<String>,
    /// The model's display name.
    pub model_name: Option<String>,
    /// Plan in force.
    pub plan: String,
    /// Cloud tokens the plan in force holds.
    pub cloud_tokens: i64,
    /// Who it was created for.
    pub created_for: PersonDto,
    /// `active`, `plan_downgrade_scheduled`, `deprovisioning_scheduled` or `deprovisioned`.
    pub status: String,
    /// The label for people.
    pub status_label: String,
    /// Provisioning instant (the bundle-month anchor).
    pub created_at: String,
    /// The current bundle month (the last one for deprovisioned resources).
    pub bundle_month: Option<BundleMonthDto>,
    /// The scheduled downgrade.
    pub scheduled_downgrade: Option<ScheduledDowngradeDto>,
    /// When the scheduled deprovisioning takes effect.
    pub deprovisioning_at: Option<String>,
    /// When it was deprovisioned.
    pub deprovisioned_at: Option<String>,
    /// The linked embeddings resource (knowledge bases).
    pub embeddings_resource_id: Option<String>,
    /// Usage against quota.
    pub usage: UsageDto,
    /// Its Portal page.
    pub portal_url: String,
}

impl ResourceDto {
    /// Builds the view of a resource at `now`, with `usage`, what metering counted in its
    /// current bundle month (`App::month_usage`).
    pub fn new(r: &Resource, catalog: &Catalog, now: Instant, usage: MonthUsage) -> ResourceDto {
        let plan = catalog.plan(r.resource_type, r.plan);
        let used = usage;
        let usage = match r.resource_type {
            ResourceType::TextGeneration => UsageDto {
                input_tokens: Some(used.input_tokens),
                output_tokens: Some(used.output_tokens),
                input_quota: Some(plan.and_then(|p| p.input_tokens).unwrap_or(0)),
                output_quota: Some(plan.and_then(|p| p.output_tokens).unwrap_or(0)),
                storage_bytes: None,
                storage_quota_bytes: None,
            },
            ResourceType::EmbeddingsGeneration => UsageDto {
                input_tokens: Some(used.input_tokens),
                output_tokens: None,
                input_quota: Some(plan.and_then(|p| p.input_tokens).unwrap_or(0)),
                output_quota: None,
                storage_bytes: None,
                storage_quota_bytes: None,
            },
            ResourceType::KnowledgeBase => UsageDto {
                input_tokens: None,
                output_tokens: None,
                input_quota: None,
                output_quota: None,
                storage_bytes: Some(0),
                storage_quota_bytes: Some(plan.and_then(|p| p.storage_bytes).unwrap_or(0)),
            },
        };
        ResourceDto {
            id: r.id.to_string(),
            resource_type: r.resource_type.as_str().into(),
            display_name: r.display_name.to_string(),
            environment: r.environment.as_str().into(),
            region: r.region.clone(),
            cross_region_inference: r.cross_region_inference,
            model: r.model.clone(),
            model_name: r.model.as_deref().map(|m| catalog.model_name(m).to_string()),
            plan: r.plan.as_str().into(),
            cloud_tokens: r.cloud_tokens.get(),
            created_for: PersonDto { name: r.created_for.name.to_string(), email: r.created_for.email.to_string() },
            status: r.status.as_str().into(),
            status_label: r.status_label(),
            created_at: format_instant(r.created_at),
            bundle_month: r.bundle_month(now).map(Into::into),
            scheduled_downgrade: match r.scheduled {
                Some(Scheduled::Downgrade { plan, effective_at, .. }) => Some(ScheduledDowngradeDto {
                    plan: plan.as_str().into(),
                    effective_at: format_instant(effective_at),
                }),
                _ => None,
            },
            deprovisioning_at: match r.scheduled {
                Some(Scheduled::Deprovision { effective_at }) => Some(format_instant(effective_at)),
                _ => None,
            },
            deprovisioned_at: r.deprovisioned_at.map(format_instant),
            embeddings_resource_id: r.embeddings_resource_id.as_ref().map(|e| e.to_string()),
            usage,
            portal_url: format!("/portal/resources/{}", r.id),
        }
    }
}

/// A page of resources.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceListDto {
    /// The resources, in creation order.
    pub resources: Vec<ResourceDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A cloud-token balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceDto {
    /// Everything granted.
    pub total: i64,
    /// Held by live resources.
    pub allocated: i64,
    /// `total − allocated`.
    pub available: i64,
    /// To be released by scheduled downgrades and deprovisionings.
    pub pending_release: i64,
}

impl From<Balance> for BalanceDto {
    fn from(b: Balance) -> Self {
        BalanceDto {
            total: b.total.get(),
            allocated: b.allocated.get(),
            available: b.available.get(),
            pending_release: b.pending_release.get(),
        }
    }
}

/// One ledger transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionDto {
    /// Id.
    pub id: String,
    /// When.
    pub at: String,
    /// `grant`, `allocate` or `release`.
    pub kind: String,
    /// Tokens moved.
    pub tokens: i64,
    /// The resource (allocations and releases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Available tokens right after it.
    pub available_after: i64,
    /// Where the tokens came from (double entry).
    pub from_account: String,
    /// Where they went.
    pub to_account: String,
    /// Note (grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&LedgerTransaction> for TransactionDto {
    fn from(t: &LedgerTransaction) -> Self {
        TransactionDto {
            id: t.id.clone(),
            at: format_instant(t.at),
            kind: t.kind.as_str().into(),
            tokens: t.tokens.get(),
            resource_id: t.resource_id.as_ref().map(|r| r.to_string()),
            available_after: t.available_after.get(),
            from_account: t.debit_account.clone(),
            to_account: t.credit_account.clone(),
            note: t.note.clone(),
        }
    }
}

/// A page of the ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionListDto {
    /// Newest first.
    pub transactions: Vec<TransactionDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventDto {
    /// Id.
    pub id: String,
    /// When.
    pub at: String,
    /// Who: a user's email, `operator` or `scheduler`.
    pub actor: String,
    /// What, e.g. `resource.upgraded`.
    pub action: String,
    /// Which resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Before/after and other facts.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<&AuditEvent> for AuditEventDto {
    fn from(e: &AuditEvent) -> Self {
        AuditEventDto {
            id: e.id.clone(),
            at: format_instant(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            resource_id: e.resource_id.as_ref().map(|r| r.to_string()),
            details: e.details.clone(),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventListDto {
    /// Newest first.
    pub events: Vec<AuditEventDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One eligibility check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckDto {
    /// `token_entitlements`, `subscription_plan`, `single_account` or `enterprise_subscription`.
    pub name: String,
    /// Whether it passes.
    pub ok: bool,
    /// For people.
    pub message: String,
}

impl From<&Check> for CheckDto {
    fn from(c: &Check) -> Self {
        CheckDto { name: c.name.into(), ok: c.ok, message: c.message.clone() }
    }
}

/// Eligibility.
#[derive(Debug, Serialize, ToSchema)]
pub struct EligibilityDto {
    /// Whether every check passes.
    pub eligible: bool,
    /// All checks.
    pub checks: Vec<CheckDto>,
}

/// A plan's monthly quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaDto {
    /// Input tokens per bundle month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Output tokens per bundle month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Stored bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<i64>,
}

/// One problem that would refuse a provisioning.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDto {
    /// The error code it would answer with.
    pub code: String,
    /// The field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For people.
    pub message: String,
}

/// The Resource Specification (a preview; nothing stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecificationDto {
    /// Type.
    pub resource_type: String,
    /// Plan size.
    pub plan: String,
    /// The plan's cost.
    pub cloud_tokens: i64,
    /// Available now.
    pub available_before: i64,
    /// Available after provisioning (negative when short).
    pub available_after: i64,
    /// The plan's monthly quota.
    pub quota: QuotaDto,
    /// The first bundle month if provisioned now.
    pub first_bundle_month: BundleMonthDto,
    /// Why it cannot be provisioned now (empty when it can).
    pub problems: Vec<ProblemDto>,
}

impl From<Specification> for SpecificationDto {
    fn from(s: Specification) -> Self {
        SpecificationDto {
            resource_type: s.resource_type.as_str().into(),
            plan: s.plan.size.as_str().into(),
            cloud_tokens: s.plan.cloud_tokens.get(),
            available_before: s.available_before.get(),
            available_after: s.available_after.get(),
            quota: QuotaDto {
                input_tokens: s.plan.input_tokens,
                output_tokens: s.plan.output_tokens,
                storage_bytes: s.plan.storage_bytes,
            },
            first_bundle_month: s.first_bundle_month.into(),
            problems: s
                .problems
                .into_iter()
                .map(|p| ProblemDto { code: p.code.into(), field: p.field, message: p.message })
                .collect(),
        }
    }
}

/// A company (operator view).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyDto {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Price list, e.g. `FY21`.
    pub price_list: String,
    /// Accounts owned.
    pub accounts: i64,
    /// Active enterprise platform subscriptions.
    pub enterprise_subscriptions: i64,
    /// When it was created.
    pub created_at: String,
    /// Its balance, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<BalanceDto>,
}

impl CompanyDto {
    /// Builds the view.
    pub fn new(c: &Company, balance: Option<Balance>) -> CompanyDto {
        CompanyDto {
            id: c.id.to_string(),
            name: c.name.clone(),
            price_list: c.price_list.clone(),
            accounts: c.accounts,
            enterprise_subscriptions: c.enterprise_subscriptions,
            created_at: format_instant(c.created_at),
            balance: balance.map(Into::into),
        }
    }
}

/// Companies.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyListDto {
    /// All companies.
    pub companies: Vec<CompanyDto>,
}

/// A user (never with the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// Company.
    pub company_id: String,
    /// Name.
    pub name: String,
    /// Email (the login).
    pub email: String,
    /// `company_admin` or `member`.
    pub role: String,
    /// Whether a password is set.
    pub has_password: bool,
    /// When it was created.
    pub created_at: String,
    /// Whether the operator has disabled the user (none of their credentials work).
    pub disabled: bool,
    /// Since when.
    pub disabled_at: Option<String>,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        UserDto {
            id: u.id.to_string(),
            company_id: u.company_id.to_string(),
            name: u.name.clone(),
            email: u.email.clone(),
            role: u.role.as_str().into(),
            has_password: u.password_hash.is_some(),
            created_at: format_instant(u.created_at),
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at.map(format_instant),
        }
    }
}

/// A grant's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantDto {
    /// The grant transaction.
    pub transaction_id: String,
    /// The balance after it.
    pub balance: BalanceDto,
}

/// A new API token: the secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenDto {
    /// The secret.
    pub token: String,
    /// The token's id.
    pub id: String,
    /// The user it acts as.
    pub user_id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: String,
    /// From when it is refused; null: it does not expire.
    pub expires_at: Option<String>,
}

impl ApiTokenDto {
    /// The answer to creating `token`, whose secret is `secret`.
    pub fn new(token: &ApiToken, secret: String) -> ApiTokenDto {
        ApiTokenDto {
            token: secret,
            id: token.id.clone(),
            user_id: token.user_id.to_string(),
            description: token.description.clone(),
            created_at: format_instant(token.created_at),
            expires_at: token.expires_at.map(format_instant),
        }
    }
}

/// An API token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenInfoDto {
    /// Id.
    pub id: String,
    /// The user it acts as.
    pub user_id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: String,
    /// From when it is refused; null: it does not expire.
    pub expires_at: Option<String>,
    /// When it last authenticated a request (to the minute); null: never.
    pub last_used_at: Option<String>,
    /// When it was revoked; null: not revoked.
    pub revoked_at: Option<String>,
}

impl From<&ApiToken> for ApiTokenInfoDto {
    fn from(t: &ApiToken) -> Self {
        ApiTokenInfoDto {
            id: t.id.clone(),
            user_id: t.user_id.to_string(),
            description: t.description.clone(),
            created_at: format_instant(t.created_at),
            expires_at: t.expires_at.map(format_instant),
            last_used_at: t.last_used_at.map(format_instant),
            revoked_at: t.revoked_at.map(format_instant),
        }
    }
}

/// A user's API tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenListDto {
    /// Newest first, revoked and expired ones included.
    pub tokens: Vec<ApiTokenInfoDto>,
}

/// The server's clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockDto {
    /// The current instant.
    pub now: String,
    /// `system` or `manual`.
    pub mode: String,
}

/// The answer to moving the manual clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockMovedDto {
    /// The new instant.
    pub now: String,
    /// How many scheduled changes this move applied.
    pub applied: usize,
}

// ---- request shapes (documentation) -------------------------------------------------------

/// Provisioning request (also the body of the specification preview).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProvisionRequest {
    /// `text_generation`, `embeddings_generation` or `knowledge_base`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// 1–64 characters after trimming, unique among the company's live resources.
    pub display_name: String,
    /// `test`, `acceptance` or `production`.
    pub environment: String,
    /// A catalog region id.
    pub region: String,
    /// Must match the model's inference mode in the region.
    pub cross_region_inference: bool,
    /// A catalog model id (text and embeddings).
    pub model: Option<String>,
    /// `small`, `medium`, `large` (knowledge bases: `standard`).
    pub plan: String,
    /// An active embeddings resource of the same region (knowledge bases).
    pub embeddings_resource_id: Option<String>,
    /// Who it is for; they join the resource's team.
    pub user: PersonDto,
}

/// Plan change request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanRequest {
    /// `small`, `medium` or `large`.
    pub plan: String,
}

/// New company.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompanyRequest {
    /// Name.
    pub name: String,
    /// Price list (default `FY21`).
    pub price_list: Option<String>,
    /// Accounts owned (default 1).
    pub accounts: Option<i64>,
    /// Active enterprise platform subscriptions (default 1).
    pub enterprise_subscriptions: Option<i64>,
}

/// Token grant.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantRequest {
    /// Positive number of cloud tokens.
    pub tokens: i64,
    /// Why.
    pub note: Option<String>,
}

/// New user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserRequest {
    /// Name.
    pub name: String,
    /// Email (unique; the login).
    pub email: String,
    /// `company_admin` or `member`.
    pub role: String,
    /// Password for the web UI (8+ characters).
    pub password: Option<String>,
}

/// New API token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiTokenRequest {
    /// What it is for (at most 200 characters).
    pub description: Option<String>,
    /// When it stops working (RFC 3339, in the future); omitted: never.
    pub expires_at: Option<String>,
}

/// A change to a user (operator).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatchRequest {
    /// `true` refuses the user's tokens and ends their web sessions at once; `false` lets them
    /// in again.
    pub disabled: bool,
}

/// Moving the manual clock.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClockRequest {
    /// The new instant (RFC 3339); never before the current one.
    pub now: String,
}
