//! Eligibility for self-service provisioning (SPEC §2).
//!
//! Four checks, always evaluated together so the overview and the `not_eligible` error can show
//! every failing reason at once, not just the first.
//!
//! Which actions need an eligible company is decided here too, once: provisioning
//! ([`require_for_provisioning`]) and a plan change that allocates tokens, i.e. an upgrade
//! ([`require_for_upgrade`]). Downgrades, cancellations and deprovisioning stay possible for a
//! company that is no longer eligible, so it can always shrink what it holds.

use crate::error::DomainError;
use crate::resource::Change;
use crate::tokens::CloudTokens;
use serde::Serialize;

/// The platform-account warning users of the product family know; kept verbatim.
pub const PLATFORM_ACCOUNT_WARNING: &str = "We couldn't retrieve your correct platform account, which is required to access available tokens and create resources. Please contact Mendix Support for assistance.";

/// The oldest price list that may self-provision.
pub const OLDEST_ELIGIBLE_PRICE_LIST_YEAR: u32 = 2021;

/// What the checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyFacts {
    /// e.g. `FY21`.
    pub price_list: String,
    /// Accounts the company owns.
    pub accounts: i64,
    /// Active enterprise platform subscriptions.
    pub enterprise_subscriptions: i64,
    /// Available cloud tokens now.
    pub available: CloudTokens,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `token_entitlements`, `subscription_plan`, `single_account` or `enterprise_subscription`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// For people, whether it passes or not.
    pub message: String,
}

/// The year a price list stands for: `FY21` → 2021, `FY2021` → 2021. `None` when malformed.
pub fn price_list_year(price_list: &str) -> Option<u32> {
    let digits = price_list.strip_prefix("FY")?;
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match digits.len() {
        2 => digits.parse::<u32>().ok().map(|y| 2000 + y),
        4 => digits.parse().ok(),
        _ => None,
    }
}

/// Evaluates all four checks, in the order of SPEC §2.
pub fn evaluate(facts: &CompanyFacts) -> Vec<Check> {
    let tokens_ok = facts.available.get() > 0;
    let plan_ok = price_list_year(&facts.price_list).is_some_and(|y| y >= OLDEST_ELIGIBLE_PRICE_LIST_YEAR);
    let account_ok = facts.accounts == 1;
    let subscription_ok = facts.enterprise_subscriptions == 1;
    vec![
        Check {
            name: "token_entitlements",
            ok: tokens_ok,
            message: if tokens_ok {
                format!("{} cloud tokens are available.", facts.available)
            } else {
                "No cloud tokens are available. Ask for more cloud tokens before provisioning or upgrading resources."
                    .into()
            },
        },
        Check {
            name: "subscription_plan",
            ok: plan_ok,
            message: if plan_ok {
                format!("The subscription is based on the {} price list.", facts.price_list)
            } else {
                format!(
                    "The subscription is based on the {} price list; self-service provisioning needs the FY21 price list or newer.",
                    facts.price_list
                )
            },
        },
        Check {
            name: "single_account",
            ok: account_ok,
            message: if account_ok {
                "The company owns a single account.".into()
            } else {
                format!(
                    "The company owns {} accounts; self-service provisioning needs exactly one account.",
                    facts.accounts
                )
            },
        },
        Check {
            name: "enterprise_subscription",
            ok: subscription_ok,
            message: if subscription_ok {
                "The company has one active enterprise platform subscription.".into()
            } else if facts.enterprise_subscriptions == 0 {
                PLATFORM_ACCOUNT_WARNING.into()
            } else {
                format!(
                    "The company has {} active enterprise platform subscriptions; self-service provisioning needs exactly one.",
                    facts.enterprise_subscriptions
                )
            },
        },
    ]
}

/// `Ok` when every check passes, else the full list (for `not_eligible`).
pub fn require(facts: &CompanyFacts) -> Result<(), Vec<Check>> {
    let checks = evaluate(facts);
    if checks.iter().all(|c| c.ok) {
        Ok(())
    } else {
        Err(checks)
    }
}

/// Provisioning needs an eligible company: every check passes, else `not_eligible` with all
/// four checks (the failing ones say why).
pub fn require_for_provisioning(facts: &CompanyFacts) -> Result<(), DomainError> {
    require(facts).map_err(DomainError::NotEligible)
}

/// A plan change needs an eligible company when it allocates tokens (an upgrade, SPEC §2), like
/// provisioning; a downgrade allocates nothing and is allowed whatever the company's state.
pub fn require_for_upgrade(facts: &CompanyFacts, change: &Change) -> Result<(), DomainError> {
    match change.allocation() {
        Some(_) => require_for_provisioning(facts),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_instant;
    use crate::catalog::{Catalog, PlanSize, ResourceType};
    use crate::ids::{CompanyId, ResourceId};
    use crate::resource::{Environment, Resource};
    use crate::validation::ProvisionForm;

    /// A medium text resource, made the way the use case makes one (from a valid form).
    fn medium_text_resource() -> Resource {
        let form = ProvisionForm {
            resource_type: Some(ResourceType::TextGeneration),
            display_name: Some("Support bot".into()),
            environment: Some(Environment::Test),
            region: Some("eu-central-1".into()),
            cross_region_inference: Some(true),
            model: Some("claude-sonnet-4.6".into()),
            plan: Some(PlanSize::Medium),
            embeddings_resource_id: None,
            user_name: Some("Ada Lovelace".into()),
            user_email: Some("ada@example.com".into()),
        };
        let valid = form.validate(&Catalog::builtin()).unwrap_or_else(|e| panic!("{e:?}"));
        let now = parse_instant("2026-02-12T08:00:00Z").unwrap_or_default();
        valid.into_resource(ResourceId("res_1".into()), CompanyId("cmp_1".into()), now)
    }

    #[test]
    fn an_upgrade_needs_an_eligible_company_a_downgrade_does_not() {
        let r = medium_text_resource();
        let catalog = Catalog::builtin();
        let now = r.created_at;
        let upgrade = r.change_plan(PlanSize::Large, &catalog, now).unwrap_or_else(|e| panic!("{e}"));
        let downgrade = r.change_plan(PlanSize::Small, &catalog, now).unwrap_or_else(|e| panic!("{e}"));
        let ineligible = CompanyFacts { accounts: 2, ..facts() };

        assert_eq!(require_for_upgrade(&facts(), &upgrade), Ok(()));
        match require_for_upgrade(&ineligible, &upgrade) {
            Err(DomainError::NotEligible(checks)) => {
                assert_eq!(checks.len(), 4, "all four checks are reported");
                assert_eq!(checks.iter().filter(|c| !c.ok).map(|c| c.name).collect::<Vec<_>>(), ["single_account"]);
            }
            other => panic!("an ineligible company's upgrade is refused: {other:?}"),
        }
        assert_eq!(require_for_upgrade(&ineligible, &downgrade), Ok(()));
        assert_eq!(require_for_provisioning(&facts()), Ok(()));
        assert_eq!(require_for_provisioning(&ineligible).map_err(|e| e.code()), Err("not_eligible"));
    }

    fn facts() -> CompanyFacts {
        CompanyFacts { price_list: "FY21".into(), accounts: 1, enterprise_subscriptions: 1, available: CloudTokens(5) }
    }

    #[test]
    fn all_pass() {
        assert!(require(&facts()).is_ok());
    }

    #[test]
    fn each_check_fails_on_its_own() {
        let cases = [
            (CompanyFacts { available: CloudTokens(0), ..facts() }, "token_entitlements"),
            (CompanyFacts { price_list: "FY20".into(), ..facts() }, "subscription_plan"),
            (CompanyFacts { accounts: 2, ..facts() }, "single_account"),
            (CompanyFacts { enterprise_subscriptions: 0, ..facts() }, "enterprise_subscription"),
        ];
        for (f, name) in cases {
            let failing: Vec<_> = evaluate(&f).into_iter().filter(|c| !c.ok).map(|c| c.name).collect();
            assert_eq!(failing, vec![name]);
        }
        let none = evaluate(&CompanyFacts { enterprise_subscriptions: 0, ..facts() });
        assert_eq!(none[3].message, PLATFORM_ACCOUNT_WARNING);
    }

    #[test]
    fn price_lists() {
        assert_eq!(price_list_year("FY21"), Some(2021));
        assert_eq!(price_list_year("FY2019"), Some(2019));
        assert_eq!(price_list_year("FY2"), None);
        assert_eq!(price_list_year("fy21"), None);
    }
}
