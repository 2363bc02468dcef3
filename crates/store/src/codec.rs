//! Conversions between domain values and the plain column values both adapters store, so that
//! the SQLite and PostgreSQL adapters encode everything identically (and only the SQL differs).

use crate::{Role, StoreError, StoreResult};
use chrono::DateTime;
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::{Environment, Person, Resource, Scheduled, Status};
use genai_core::{CloudTokens, CompanyId, Instant, ResourceId};

/// Milliseconds since the Unix epoch: how instants are stored.
pub fn millis(t: Instant) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond count.
pub fn instant(ms: i64) -> StoreResult<Instant> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("instant", &ms.to_string()))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} `{value}` cannot be read"))
}

/// Parses a stored role.
pub fn role(s: &str) -> StoreResult<Role> {
    Role::parse(s).ok_or_else(|| corrupt("role", s))
}

/// The columns of a resource row, as stored (one field per column, named like it).
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

/// The column list matching [`ResourceRow`]'s fields, for SELECTs.
pub const RESOURCE_COLUMNS: &str = "id, company_id, resource_type, display_name, name_key, environment, region, \
     cross_region_inference, model, plan, cloud_tokens, created_for_name, created_for_email, status, created_at, \
     scheduled_kind, scheduled_plan, scheduled_cloud_tokens, scheduled_at, pending_release, deprovisioned_at, \
     embeddings_resource_id, version";

impl ResourceRow {
    /// Encodes a resource.
    pub fn from_resource(r: &Resource) -> ResourceRow {
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
        ResourceRow {
            id: r.id.0.clone(),
            company_id: r.company_id.0.clone(),
            resource_type: r.resource_type.as_str().into(),
            display_name: r.display_name.clone(),
            name_key: r.display_name.to_lowercase(),
            environment: r.environment.as_str().into(),
            region: r.region.clone(),
            cross_region_inference: r.cross_region_inference,
            model: r.model.clone(),
            plan: r.plan.as_str().into(),
            cloud_tokens: r.cloud_tokens.get(),
            created_for_name: r.created_for.name.clone(),
            created_for_email: r.created_for.email.clone(),
            status: r.status.as_str().into(),
            created_at: millis(r.created_at),
            scheduled_kind: kind,
            scheduled_plan: plan,
            scheduled_cloud_tokens: tokens,
            scheduled_at: at,
            pending_release: r.pending_release().get(),
            deprovisioned_at: r.deprovisioned_at.map(millis),
            embeddings_resource_id: r.embeddings_resource_id.as_ref().map(|e| e.0.clone()),
            version: r.version,
        }
    }

    /// Decodes a row.
    pub fn into_resource(self) -> StoreResult<Resource> {
        let plan_of = |s: &str| PlanSize::parse(s).ok_or_else(|| corrupt("plan", s));
        let scheduled = match (self.scheduled_kind.as_deref(), self.scheduled_at) {
            (None, _) => None,
            (Some("downgrade"), Some(at)) => Some(Scheduled::Downgrade {
                plan: plan_of(self.scheduled_plan.as_deref().unwrap_or_default())?,
                cloud_tokens: CloudTokens(self.scheduled_cloud_tokens.unwrap_or_default()),
                effective_at: instant(at)?,
            }),
            (Some("deprovision"), Some(at)) => Some(Scheduled::Deprovision { effective_at: instant(at)? }),
            (Some(other), _) => return Err(corrupt("scheduled change", other)),
        };
        Ok(Resource {
            id: ResourceId(self.id),
            company_id: CompanyId(self.company_id),
            resource_type: ResourceType::parse(&self.resource_type)
                .ok_or_else(|| corrupt("resource type", &self.resource_type))?,
            display_name: self.display_name,
            environment: Environment::parse(&self.environment)
                .ok_or_else(|| corrupt("environment", &self.environment))?,
            region: self.region,
            cross_region_inference: self.cross_region_inference,
            model: self.model,
            plan: plan_of(&self.plan)?,
            cloud_tokens: CloudTokens(self.cloud_tokens),
            created_for: Person { name: self.created_for_name, email: self.created_for_email },
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            created_at: instant(self.created_at)?,
            scheduled,
            deprovisioned_at: self.deprovisioned_at.map(instant).transpose()?,
            embeddings_resource_id: self.embeddings_resource_id.map(ResourceId),
            version: self.version,
        })
    }
}
