//! Domain errors with stable, machine-readable codes (shared by the API, the UI and the CLI).
//!
//! The HTTP layer maps each variant to the status of `API.md`; the code strings here are the
//! contract and never change.

use crate::eligibility::Check;
use crate::tokens::CloudTokens;
use std::collections::BTreeMap;

/// Field name → what is wrong with it. Field names are the wire names (`user.email`, …).
pub type FieldErrors = BTreeMap<String, String>;

/// A rule of the product said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// One or more fields are invalid; nothing was changed.
    #[error("some fields are not valid")]
    Validation(FieldErrors),
    /// An eligibility check of SPEC §2 fails.
    #[error("the company is not eligible: {}", failing(.0))]
    NotEligible(Vec<Check>),
    /// The request costs more cloud tokens than are available.
    #[error("this needs {required} cloud tokens but only {available} are available")]
    InsufficientTokens {
        /// Tokens the request needs.
        required: CloudTokens,
        /// Tokens available now.
        available: CloudTokens,
    },
    /// The resource's deprovisioning is scheduled; only cancelling it is allowed.
    #[error("the resource's deprovisioning is scheduled{0}; cancel it first")]
    DeprovisioningScheduled(String),
    /// Cancel-downgrade on a resource without a scheduled downgrade.
    #[error("the resource has no scheduled plan downgrade")]
    NoDowngradeScheduled,
    /// Cancel-deprovision on a resource without a scheduled deprovisioning.
    #[error("the resource has no scheduled deprovisioning")]
    NoDeprovisioningScheduled,
    /// Any change to a deprovisioned resource.
    #[error("the resource is already deprovisioned")]
    AlreadyDeprovisioned,
    /// Deprovisioning an embeddings resource that live knowledge bases still use.
    #[error("the embeddings resource is used by knowledge bases that are not scheduled for deprovisioning: {}", names(.0))]
    EmbeddingsInUse(Vec<(String, String)>),
    /// A plan change to the plan already in force.
    #[error("the resource is already on the {0} plan")]
    PlanUnchanged(String),
    /// The resource's scheduled change is due but not yet written; apply it, then decide again.
    /// (The application layer does that itself, so clients should never see this.)
    #[error("the resource's scheduled change has just taken effect; please try again")]
    ScheduledChangeDue,
    /// Knowledge bases have a single plan.
    #[error("knowledge bases have a single plan (standard); their plan cannot be changed")]
    PlanChangeNotSupported,
    /// Removing the only member of a resource's team (a team is never left empty).
    #[error("{0} is the only member of this resource's team; add someone else before removing them")]
    LastMember(String),
}

fn failing(checks: &[Check]) -> String {
    checks.iter().filter(|c| !c.ok).map(|c| c.message.as_str()).collect::<Vec<_>>().join(" ")
}

fn names(kbs: &[(String, String)]) -> String {
    kbs.iter().map(|(id, name)| format!("\"{name}\" ({id})")).collect::<Vec<_>>().join(", ")
}

impl DomainError {
    /// The stable code of `API.md`.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Validation(_) => "validation_failed",
            DomainError::NotEligible(_) => "not_eligible",
            DomainError::InsufficientTokens { .. } => "insufficient_tokens",
            DomainError::DeprovisioningScheduled(_) => "deprovisioning_scheduled",
            DomainError::NoDowngradeScheduled => "no_downgrade_scheduled",
            DomainError::NoDeprovisioningScheduled => "no_deprovisioning_scheduled",
            DomainError::AlreadyDeprovisioned => "already_deprovisioned",
            DomainError::EmbeddingsInUse(_) => "embeddings_in_use",
            DomainError::PlanUnchanged(_) => "plan_unchanged",
            DomainError::PlanChangeNotSupported => "plan_change_not_supported",
            DomainError::ScheduledChangeDue => "scheduled_change_due",
            DomainError::LastMember(_) => "last_member",
        }
    }

    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> DomainError {
        DomainError::Validation(BTreeMap::from([(name.to_string(), message.into())]))
    }
}
