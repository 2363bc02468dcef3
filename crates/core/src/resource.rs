//! A GenAI resource and its lifecycle (SPEC §5).
//!
//! Every action is a pure function from the current [`Resource`] (and `now`) to a [`Change`]: the
//! next state of the resource, the ledger movement it causes, and the audit action to record.
//! The store writes a change atomically and only if the resource is still at the version the
//! change was computed from, so a decision is never applied to a state it was not made for.

use crate::calendar::{self, BundleMonth, Instant};
use crate::catalog::{Catalog, PlanSize, ResourceType};
use crate::error::DomainError;
use crate::ids::{CompanyId, ResourceId};
use crate::ledger::TransactionKind;
use crate::tokens::CloudTokens;
use serde::{Deserialize, Serialize};

/// Where a resource is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Serving, no change scheduled.
    Active,
    /// Serving; a smaller plan takes effect at the next bundle-month boundary.
    PlanDowngradeScheduled,
    /// Serving until the end of the bundle month, then deprovisioned.
    DeprovisioningScheduled,
    /// Terminal; kept for history.
    Deprovisioned,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::PlanDowngradeScheduled => "plan_downgrade_scheduled",
            Status::DeprovisioningScheduled => "deprovisioning_scheduled",
            Status::Deprovisioned => "deprovisioned",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Active, Status::PlanDowngradeScheduled, Status::DeprovisioningScheduled, Status::Deprovisioned]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The environment label of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Test.
    Test,
    /// Acceptance.
    Acceptance,
    /// Production.
    Production,
}

impl Environment {
    /// All environments.
    pub const ALL: [Environment; 3] = [Environment::Test, Environment::Acceptance, Environment::Production];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Acceptance => "acceptance",
            Environment::Production => "production",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Environment> {
        Environment::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The person a resource was created for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
}

/// A change that takes effect later, at a bundle-month boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Switch to a smaller plan.
    Downgrade {
        /// The smaller plan.
        plan: PlanSize,
        /// Its cost, fixed when it was scheduled.
        cloud_tokens: CloudTokens,
        /// When it takes effect.
        effective_at: Instant,
    },
    /// Deprovision the resource.
    Deprovision {
        /// When it takes effect.
        effective_at: Instant,
    },
}

impl Scheduled {
    /// When the change takes effect.
    pub fn effective_at(self) -> Instant {
        match self {
            Scheduled::Downgrade { effective_at, .. } | Scheduled::Deprovision { effective_at } => effective_at,
        }
    }
}

/// A GenAI resource as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Id.
    pub id: ResourceId,
    /// Owning company.
    pub company_id: CompanyId,
    /// Type.
    pub resource_type: ResourceType,
    /// Display name (trimmed).
    pub display_name: String,
    /// Environment label.
    pub environment: Environment,
    /// Region id.
    pub region: String,
    /// Cross-region inference.
    pub cross_region_inference: bool,
    /// Model id (text and embeddings only).
    pub model: Option<String>,
    /// Plan in force.
    pub plan: PlanSize,
    /// Cloud tokens held for the plan in force: exactly what was allocated, so that exactly
    /// this is released even if the catalog's prices change later.
    pub cloud_tokens: CloudTokens,
    /// The person it was created for.
    pub created_for: Person,
    /// Lifecycle status (derived from `scheduled` and `deprovisioned_at`; stored for queries).
    pub status: Status,
    /// Provisioning instant: the anchor of its bundle months.
    pub created_at: Instant,
    /// A scheduled downgrade or deprovisioning.
    pub scheduled: Option<Scheduled>,
    /// When it was deprovisioned.
    pub deprovisioned_at: Option<Instant>,
    /// The embeddings resource a knowledge base embeds through.
    pub embeddings_resource_id: Option<ResourceId>,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: i64,
}

/// A ledger movement caused by a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    /// Allocate or release.
    pub kind: TransactionKind,
    /// How many tokens (positive).
    pub tokens: CloudTokens,
    /// The instant it is recorded at (the effective instant for scheduled changes).
    pub at: Instant,
}

/// The outcome of an action: the next state and what else must be written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The resource after the action (same `version`; the store bumps it).
    pub next: Resource,
    /// The ledger movement, if tokens move.
    pub movement: Option<Movement>,
    /// The audit action name, e.g. `resource.upgraded`.
    pub action: &'static str,
    /// When the change happened (the effective instant for scheduled changes).
    pub at: Instant,
}

impl Change {
    /// The tokens this change takes from the company's available pool, if any: an upgrade's
    /// (or a provisioning's) allocation. What must be affordable, and what needs an eligible
    /// company.
    pub fn allocation(&self) -> Option<CloudTokens> {
        self.movement.filter(|m| m.kind == TransactionKind::Allocate).map(|m| m.tokens)
    }
}

impl Resource {
    /// The status derived from the scheduled change and deprovisioning.
    pub fn derive_status(&self) -> Status {
        match (self.deprovisioned_at, self.scheduled) {
            (Some(_), _) => Status::Deprovisioned,
            (None, Some(Scheduled::Downgrade { .. })) => Status::PlanDowngradeScheduled,
            (None, Some(Scheduled::Deprovision { .. })) => Status::DeprovisioningScheduled,
            (None, None) => Status::Active,
        }
    }

    /// The label shown to people (SPEC §5).
    pub fn status_label(&self) -> String {
        match (self.status, self.scheduled) {
            (Status::DeprovisioningScheduled, Some(s)) => {
                format!("DEPROVISIONING SCHEDULED · {}", calendar::format_day(s.effective_at()))
            }
            (Status::Active, _) => "ACTIVE".into(),
            (Status::PlanDowngradeScheduled, _) => "PLAN DOWNGRADE SCHEDULED".into(),
            (Status::DeprovisioningScheduled, None) => "DEPROVISIONING SCHEDULED".into(),
            (Status::Deprovisioned, _) => "DEPROVISIONED".into(),
        }
    }

    /// Whether the resource still exists (holds tokens, serves traffic).
    pub fn is_live(&self) -> bool {
        self.status != Status::Deprovisioned
    }

    /// Whether a knowledge base may embed its content through this resource: it must be an
    /// embeddings resource that is live and not scheduled for deprovisioning (a knowledge base
    /// never outlives its embeddings), and, when the knowledge base's region is known, in that
    /// same region. `Err` says why not, naming the resource. The one rule for the provisioning
    /// use case and for the choices the provision form offers (which pass `None` and show each
    /// choice's region).
    pub fn linkable_embeddings(&self, kb_region: Option<&str>) -> Result<(), String> {
        if self.resource_type != ResourceType::EmbeddingsGeneration {
            return Err(format!(
                "\"{}\" is a {} resource, not an embeddings resource",
                self.display_name, self.resource_type
            ));
        }
        if !self.is_live() || matches!(self.scheduled, Some(Scheduled::Deprovision { .. })) {
            return Err(format!("\"{}\" is deprovisioned or scheduled for deprovisioning", self.display_name));
        }
        match kb_region {
            Some(region) if region != self.region => Err(format!(
                "\"{}\" is in {}; a knowledge base must be in the same region as its embeddings resource",
                self.display_name, self.region
            )),
            _ => Ok(()),
        }
    }

    /// The bundle month containing `now`; for a deprovisioned resource, its last one.
    pub fn bundle_month(&self, now: Instant) -> Option<BundleMonth> {
        let t = match self.deprovisioned_at {
            Some(d) => d - chrono::Duration::milliseconds(1),
            None => now,
        };
        calendar::bundle_month_at(self.created_at, t.max(self.created_at))
    }

    /// Tokens the scheduled change will release when it takes effect.
    pub fn pending_release(&self) -> CloudTokens {
        match self.scheduled {
            Some(Scheduled::Downgrade { cloud_tokens, .. }) => {
                CloudTokens(self.cloud_tokens.get() - cloud_tokens.get())
            }
            Some(Scheduled::Deprovision { .. }) => self.cloud_tokens,
            None => CloudTokens::ZERO,
        }
    }

    fn end_of_bundle_month(&self, now: Instant) -> Result<Instant, DomainError> {
        calendar::next_boundary(self.created_at, now.max(self.created_at))
            .ok_or_else(|| DomainError::field("created_at", "the bundle month cannot be computed"))
    }

    /// Refuses to decide on a resource whose scheduled change is already due: that change has
    /// taken effect (SPEC §5) even if the scheduler has not written it yet, so the caller must
    /// apply it first and decide on the result.
    fn must_be_settled(&self, now: Instant) -> Result<(), DomainError> {
        match self.scheduled {
            Some(s) if self.is_live() && s.effective_at() <= now => Err(DomainError::ScheduledChangeDue),
            _ => Ok(()),
        }
    }

    fn must_be_changeable(&self, now: Instant) -> Result<(), DomainError> {
        self.must_be_settled(now)?;
        match (self.status, self.scheduled) {
            (Status::Deprovisioned, _) => Err(DomainError::AlreadyDeprovisioned),
            (Status::DeprovisioningScheduled, s) => Err(DomainError::DeprovisioningScheduled(
                s.map(|s| format!(" for {}", calendar::format_instant(s.effective_at()))).unwrap_or_default(),
            )),
            _ => Ok(()),
        }
    }

    fn with(&self, scheduled: Option<Scheduled>) -> Resource {
        let mut next = self.clone();
        next.scheduled = scheduled;
        next.status = next.derive_status();
        next
    }

    /// Asks for another plan: an upgrade is immediate and allocates the difference; a downgrade
    /// is scheduled for the next boundary and releases nothing yet. Tokens are checked by the
    /// store when the allocation is written, not here.
    pub fn change_plan(&self, target: PlanSize, catalog: &Catalog, now: Instant) -> Result<Change, DomainError> {
        self.must_be_changeable(now)?;
        if self.resource_type == ResourceType::KnowledgeBase {
            return Err(DomainError::PlanChangeNotSupported);
        }
        if !PlanSize::allowed_for(self.resource_type).contains(&target) {
            return Err(DomainError::field("plan", format!("must be one of small, medium, large; got {target}")));
        }
        if target == self.plan {
            return Err(DomainError::PlanUnchanged(target.to_string()));
        }
        let plan = catalog.plan(self.resource_type, target).ok_or_else(|| {
            DomainError::field("plan", format!("the catalog offers no {target} plan for {}", self.resource_type))
        })?;
        if plan.cloud_tokens > self.cloud_tokens {
            let extra = CloudTokens(plan.cloud_tokens.get() - self.cloud_tokens.get());
            let mut next = self.with(None);
            next.plan = target;
            next.cloud_tokens = plan.cloud_tokens;
            Ok(Change {
                next,
                movement: Some(Movement { kind: TransactionKind::Allocate, tokens: extra, at: now }),
                action: "resource.upgraded",
                at: now,
            })
        } else {
            let effective_at = self.end_of_bundle_month(now)?;
            let next =
                self.with(Some(Scheduled::Downgrade { plan: target, cloud_tokens: plan.cloud_tokens, effective_at }));
            Ok(Change { next, movement: None, action: "resource.downgrade_scheduled", at: now })
        }
    }

    /// Drops a scheduled downgrade; the plan stays as it is.
    pub fn cancel_downgrade(&self, now: Instant) -> Result<Change, DomainError> {
        self.must_be_changeable(now)?;
        if !matches!(self.scheduled, Some(Scheduled::Downgrade { .. })) {
            return Err(DomainError::NoDowngradeScheduled);
        }
        Ok(Change { next: self.with(None), movement: None, action: "resource.downgrade_cancelled", at: now })
    }

    /// Schedules deprovisioning for the end of the current bundle month. `linked` are the live
    /// knowledge bases that embed through this resource (empty for other types): each must
    /// itself be scheduled for deprovisioning, and this resource then goes no earlier than the
    /// last of them, so a knowledge base never outlives its embeddings.
    pub fn deprovision(&self, linked: &[Resource], now: Instant) -> Result<Change, DomainError> {
        self.must_be_changeable(now)?;
        let in_use: Vec<(String, String)> = linked
            .iter()
            .filter(|kb| kb.is_live() && !matches!(kb.scheduled, Some(Scheduled::Deprovision { .. })))
            .map(|kb| (kb.id.to_string(), kb.display_name.clone()))
            .collect();
        if !in_use.is_empty() {
            return Err(DomainError::EmbeddingsInUse(in_use));
        }
        let own_end = self.end_of_bundle_month(now)?;
        let effective_at = linked
            .iter()
            .filter(|kb| kb.is_live())
            .filter_map(|kb| kb.scheduled.map(Scheduled::effective_at))
            .fold(own_end, Instant::max);
        Ok(Change {
            next: self.with(Some(Scheduled::Deprovision { effective_at })),
            movement: None,
            action: "resource.deprovision_scheduled",
            at: now,
        })
    }

    /// Cancels a scheduled deprovisioning. A knowledge base whose embeddings resource is itself
    /// scheduled for deprovisioning cannot come back (it would outlive its embeddings).
    pub fn cancel_deprovision(&self, embeddings: Option<&Resource>, now: Instant) -> Result<Change, DomainError> {
        if self.status == Status::Deprovisioned {
            return Err(DomainError::AlreadyDeprovisioned);
        }
        self.must_be_settled(now)?;
        if !matches!(self.scheduled, Some(Scheduled::Deprovision { .. })) {
            return Err(DomainError::NoDeprovisioningScheduled);
        }
        if let Some(e) = embeddings {
            if let Some(Scheduled::Deprovision { effective_at }) = e.scheduled {
                return Err(DomainError::DeprovisioningScheduled(format!(
                    " for its embeddings resource \"{}\" ({}) on {}; cancel that one first, since a knowledge base cannot outlive its embeddings",
                    e.display_name,
                    e.id,
                    calendar::format_instant(effective_at)
                )));
            }
        }
        Ok(Change { next: self.with(None), movement: None, action: "resource.deprovision_cancelled", at: now })
    }

    /// The scheduled change that is due at `now`, applied: the plan switched or the resource
    /// deprovisioned, with its release recorded at the effective instant (not at `now`, which
    /// may be later when the server was down).
    pub fn take_effect(&self, now: Instant) -> Option<Change> {
        let scheduled = self.scheduled?;
        let at = scheduled.effective_at();
        if at > now || !self.is_live() {
            return None;
        }
        match scheduled {
            Scheduled::Downgrade { plan, cloud_tokens, .. } => {
                let released = CloudTokens(self.cloud_tokens.get() - cloud_tokens.get());
                let mut next = self.with(None);
                next.plan = plan;
                next.cloud_tokens = cloud_tokens;
                Some(Change {
                    next,
                    movement: (released.get() > 0).then_some(Movement {
                        kind: TransactionKind::Release,
                        tokens: released,
                        at,
                    }),
                    action: "resource.downgraded",
                    at,
                })
            }
            Scheduled::Deprovision { .. } => {
                let mut next = self.with(None);
                next.deprovisioned_at = Some(at);
                next.status = Status::Deprovisioned;
                Some(Change {
                    next,
                    movement: Some(Movement { kind: TransactionKind::Release, tokens: self.cloud_tokens, at }),
                    action: "resource.deprovisioned",
                    at,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_instant;
    use crate::validation::ProvisionForm;

    fn at(s: &str) -> Instant {
        parse_instant(s).unwrap_or_else(|| panic!("bad instant {s}"))
    }

    /// A resource made the way the use case makes one (from a valid form), at T0.
    fn resource(resource_type: ResourceType, name: &str, region: &str) -> Resource {
        let (model, cri, plan) = match resource_type {
            ResourceType::TextGeneration => (Some("claude-sonnet-4.6"), true, PlanSize::Small),
            ResourceType::EmbeddingsGeneration => (Some("cohere-embed-multilingual-v3"), false, PlanSize::Small),
            ResourceType::KnowledgeBase => (None, false, PlanSize::Standard),
        };
        let form = ProvisionForm {
            resource_type: Some(resource_type),
            display_name: Some(name.into()),
            environment: Some(Environment::Test),
            region: Some(region.into()),
            cross_region_inference: Some(cri),
            model: model.map(Into::into),
            plan: Some(plan),
            embeddings_resource_id: (resource_type == ResourceType::KnowledgeBase).then(|| "res_e".into()),
            user_name: Some("Ada Lovelace".into()),
            user_email: Some("ada@example.com".into()),
        };
        let valid = form.validate(&Catalog::builtin()).unwrap_or_else(|e| panic!("{e:?}"));
        valid.into_resource(ResourceId(format!("res_{name}")), CompanyId("cmp_1".into()), at("2026-02-12T08:00:00Z"))
    }

    #[test]
    fn a_knowledge_base_links_only_to_a_live_embeddings_resource_of_its_region() {
        let now = at("2026-02-20T00:00:00Z");
        let embeddings = resource(ResourceType::EmbeddingsGeneration, "Search", "eu-central-1");
        assert_eq!(embeddings.linkable_embeddings(Some("eu-central-1")), Ok(()));
        assert_eq!(embeddings.linkable_embeddings(None), Ok(()), "any region when the region is not chosen yet");

        let elsewhere = embeddings.linkable_embeddings(Some("ca-central-1")).err().unwrap_or_default();
        assert!(
            elsewhere.contains("\"Search\" is in eu-central-1") && elsewhere.contains("same region"),
            "{elsewhere}"
        );

        let text = resource(ResourceType::TextGeneration, "Chat", "eu-central-1");
        let not_embeddings = text.linkable_embeddings(None).err().unwrap_or_default();
        assert!(not_embeddings.contains("not an embeddings resource"), "{not_embeddings}");

        // Scheduled for deprovisioning: refused at once, in every region.
        let leaving = embeddings.deprovision(&[], now).unwrap_or_else(|e| panic!("{e}")).next;
        assert!(leaving.linkable_embeddings(None).is_err());
        assert!(leaving.linkable_embeddings(Some("eu-central-1")).err().unwrap_or_default().contains("deprovision"));

        // Deprovisioned: refused.
        let gone = leaving.take_effect(at("2026-03-12T08:00:00Z")).unwrap_or_else(|| panic!("due")).next;
        assert_eq!(gone.status, Status::Deprovisioned);
        assert!(gone.linkable_embeddings(None).is_err());

        // A downgrade does not stop it being linkable.
        let medium = resource(ResourceType::EmbeddingsGeneration, "Bigger", "eu-central-1");
        let medium =
            medium.change_plan(PlanSize::Medium, &Catalog::builtin(), now).unwrap_or_else(|e| panic!("{e}")).next;
        let shrinking =
            medium.change_plan(PlanSize::Small, &Catalog::builtin(), now).unwrap_or_else(|e| panic!("{e}")).next;
        assert_eq!(shrinking.status, Status::PlanDowngradeScheduled);
        assert_eq!(shrinking.linkable_embeddings(Some("eu-central-1")), Ok(()));
    }
}
