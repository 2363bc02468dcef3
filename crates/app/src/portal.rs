//! The Portal (RUNTIME.md §1, §2): what a resource's team sees of it — the resources, their
//! consumption — and who may see it.
//!
//! **Authorization**, one rule for every Portal use case ([`App::team_resource`]): a company
//! admin may act on every resource of their company; any other user on the resources whose team
//! they are on; for everyone else the resource does not exist (404, exactly as for another
//! company's id, so that a probe learns nothing). The operator token has no Portal (403, as for
//! the Control Center).
//!
//! **Consumption** is read from the usage counters the runtime's group commit writes: the
//! current bundle month's totals (what the quota is checked against) and per-UTC-day rows. A
//! range of days is chosen with `from`/`to` (`YYYY-MM-DD`, at most
//! [`genai_core::quota::MAX_RANGE_DAYS`] days; default: the current bundle month, every day of
//! it); the JSON answer lists every day of the range, zeros included, the CSV only days with
//! usage.

use crate::auth::Actor;
use crate::{App, AppError};
use genai_core::calendar::BundleMonth;
use genai_core::catalog::ResourceType;
use genai_core::quota::{self, DayRange, DayRangeError, Tokens};
use genai_core::resource::Resource;
use genai_core::ResourceId;
use genai_store::{DayUsage, MonthUsage, ResourceQuery, Role, User};
use serde_json::json;
use std::collections::BTreeMap;

/// A resource's consumption over a range of days.
#[derive(Debug, Clone)]
pub struct Consumption {
    /// The resource.
    pub resource: Resource,
    /// Its current bundle month (the last one for a deprovisioned resource).
    pub bundle_month: BundleMonth,
    /// The monthly quota of the plan in force (zero for knowledge bases, which have none).
    pub quota: Tokens,
    /// Used in the current bundle month.
    pub used: MonthUsage,
    /// The range of days asked for.
    pub range: DayRange,
    /// Every day of the range in order, days without usage as zeros.
    pub days: Vec<DayUsage>,
}

impl Consumption {
    /// The days of the range that have usage, for the CSV export.
    pub fn days_with_usage(&self) -> impl Iterator<Item = &DayUsage> {
        self.days.iter().filter(|d| d.api_calls != 0 || d.input_tokens != 0 || d.output_tokens != 0)
    }

    /// The CSV export: header `date,input_tokens,output_tokens,api_calls`, then one line per
    /// day with usage, in date order.
    pub fn csv(&self) -> String {
        let mut out = String::from("date,input_tokens,output_tokens,api_calls\n");
        for d in self.days_with_usage() {
            out.push_str(&format!("{},{},{},{}\n", d.day, d.input_tokens, d.output_tokens, d.api_calls));
        }
        out
    }
}

impl App {
    /// A resource the caller may use through the Portal, with the caller (see the module docs).
    pub(crate) async fn team_resource(&self, actor: &Actor, id: &ResourceId) -> Result<(User, Resource), AppError> {
        let Actor::User(user) = actor else {
            return Err(AppError::Forbidden(
                "the operator token has no Portal; use the token of a user of the resource's company".into(),
            ));
        };
        let not_found = || AppError::NotFound("resource".into());
        let resource = self.store.resource(&user.company_id, id).await?.ok_or_else(not_found)?;
        if user.role == Role::CompanyAdmin || self.store.is_member(id, &user.id).await? {
            Ok((user.clone(), resource))
        } else {
            Err(not_found())
        }
    }

    /// The resources the caller's Portal lists: a company admin's are all of the company's, a
    /// member's those whose team they are on; live ones only unless `include_deprovisioned`.
    pub async fn portal_resources(
        &self,
        actor: &Actor,
        include_deprovisioned: bool,
    ) -> Result<Vec<Resource>, AppError> {
        let Actor::User(user) = actor else {
            return Err(AppError::Forbidden(
                "the operator token has no Portal; use the token of a user of a company".into(),
            ));
        };
        let all = if user.role == Role::CompanyAdmin {
            self.store
                .resources(&ResourceQuery {
                    company_id: user.company_id.clone(),
                    resource_type: None,
                    include_deprovisioned,
                    after_id: None,
                    limit: None,
                })
                .await?
        } else {
            // A member's teams are in their own company; the filter is a second line of defence.
            self.store
                .member_resources(&user.id)
                .await?
                .into_iter()
                .filter(|r| r.company_id == user.company_id)
                .collect()
        };
        Ok(all.into_iter().filter(|r| include_deprovisioned || r.is_live()).collect())
    }

    /// One resource of the caller's Portal (see [`App::portal_resources`] for who sees what).
    pub async fn portal_resource(&self, actor: &Actor, id: &ResourceId) -> Result<Resource, AppError> {
        Ok(self.team_resource(actor, id).await?.1)
    }

    /// The current bundle month's usage of each resource, in order: what the `usage` of a
    /// Resource answer shows. One batched read however many resources.
    pub async fn month_usage(&self, resources: &[Resource]) -> Result<Vec<MonthUsage>, AppError> {
        let now = self.now();
        let months: Vec<(ResourceId, genai_core::Instant)> =
            resources.iter().map(|r| (r.id.clone(), r.bundle_month(now).map_or(r.created_at, |m| m.start))).collect();
        Ok(self.store.month_usage(&months).await?)
    }

    /// The monthly token quota of a resource's plan in force (zero when it has none).
    pub fn quota_of(&self, r: &Resource) -> Tokens {
        self.catalog.plan(r.resource_type, r.plan).and_then(quota::plan_quota).unwrap_or_default()
    }

    /// A resource's consumption: the current bundle month's use against its quota, and the
    /// days of the range `from`–`to` (see the module docs for the defaults and limits).
    pub async fn consumption(
        &self,
        actor: &Actor,
        id: &ResourceId,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Consumption, AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        let now = self.now();
        let bundle_month = resource
            .bundle_month(now)
            .ok_or_else(|| AppError::Internal(format!("the bundle month of {} cannot be computed", resource.id)))?;
        let default = DayRange::of_bundle_month(bundle_month.start, bundle_month.end);
        let range = DayRange::parse(from, to, default, quota::day_of(now)).map_err(|e| match e {
            DayRangeError::Malformed(name, message) => {
                AppError::InvalidRequest { message, details: json!({"field": name}) }
            }
            DayRangeError::Invalid(name, message) => AppError::field(name, message),
        })?;
        let (first, last) = (quota::format_day(range.from), quota::format_day(range.to));
        let stored = self.store.day_usage(&resource.id, &first, &last).await?;
        let mut by_day: BTreeMap<String, DayUsage> = stored.into_iter().map(|d| (d.day.clone(), d)).collect();
        let days = range
            .days()
            .map(|d| {
                let day = quota::format_day(d);
                by_day.remove(&day).unwrap_or(DayUsage { day, input_tokens: 0, output_tokens: 0, api_calls: 0 })
            })
            .collect();
        let used = self.store.month_usage(&[(resource.id.clone(), bundle_month.start)]).await?;
        let quota = match resource.resource_type {
            ResourceType::KnowledgeBase => Tokens::ZERO,
            _ => self.quota_of(&resource),
        };
        Ok(Consumption {
            used: used.into_iter().next().unwrap_or_default(),
            quota,
            bundle_month,
            range,
            days,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genai_core::calendar::parse_instant;

    #[test]
    fn the_csv_lists_days_with_usage_only() {
        let day = |d: &str, i, o, c| DayUsage { day: d.into(), input_tokens: i, output_tokens: o, api_calls: c };
        let at = |s: &str| parse_instant(s).unwrap_or_else(|| panic!("{s}"));
        let catalog = genai_core::Catalog::builtin();
        let form = genai_core::validation::ProvisionForm {
            resource_type: Some(ResourceType::TextGeneration),
            display_name: Some("Bot".into()),
            environment: Some(genai_core::resource::Environment::Test),
            region: Some("eu-central-1".into()),
            cross_region_inference: Some(true),
            model: Some("claude-sonnet-4.6".into()),
            plan: Some(genai_core::catalog::PlanSize::Small),
            embeddings_resource_id: None,
            user_name: Some("Ada".into()),
            user_email: Some("ada@example.com".into()),
        };
        let start = at("2026-01-01T00:00:00Z");
        let resource = form.validate(&catalog).unwrap_or_else(|e| panic!("{e:?}")).into_resource(
            ResourceId("res_1".into()),
            genai_core::CompanyId("c".into()),
            start,
        );
        let c = Consumption {
            bundle_month: resource.bundle_month(start).unwrap_or_else(|| panic!("month")),
            resource,
            quota: Tokens::new(10, 10),
            used: MonthUsage::default(),
            range: DayRange::of_bundle_month(start, at("2026-01-04T00:00:00Z")),
            days: vec![day("2026-01-01", 0, 0, 0), day("2026-01-02", 5, 7, 2), day("2026-01-03", 0, 0, 0)],
        };
        assert_eq!(c.csv(), "date,input_tokens,output_tokens,api_calls\n2026-01-02,5,7,2\n");
    }
}
