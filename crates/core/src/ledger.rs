//! The cloud-token ledger's rules (SPEC §3).
//!
//! Every change of a company's tokens is a double-entry transaction that moves tokens from one
//! account to another: `operator → available` (grant), `available → resource` (allocate) and
//! `resource → available` (release). The store appends them and keeps the company's `total` and
//! `allocated` counters in the same database transaction, so the invariants below hold at every
//! instant: `available = total − allocated ≥ 0`, and `allocated` is the sum of the plan costs of
//! the company's live resources.
//!
//! "Can the company afford this?" has exactly one answer, [`afford`]: the provisioning and
//! plan-change use cases, their previews (the Resource Specification, the Adjust Plan Size
//! panel) and the overview's Provision button all ask it, so what a page promises is what the
//! action does. The store's conditional `UPDATE … WHERE total - allocated >= cost` enforces the
//! same inequality under concurrency; when it refuses, the use case asks [`afford`] again with
//! the balance the store saw, for the error it answers with.

use crate::error::DomainError;
use crate::tokens::CloudTokens;
use serde::Serialize;

/// The kinds of ledger transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Operator → company (available).
    Grant,
    /// Company available → resource.
    Allocate,
    /// Resource → company available.
    Release,
}

impl TransactionKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Grant => "grant",
            TransactionKind::Allocate => "allocate",
            TransactionKind::Release => "release",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<TransactionKind> {
        [TransactionKind::Grant, TransactionKind::Allocate, TransactionKind::Release]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The (debit, credit) accounts of this kind: where the tokens come from and go to.
    pub fn accounts(self, resource: Option<&str>) -> (String, String) {
        let res = format!("resource:{}", resource.unwrap_or("-"));
        match self {
            TransactionKind::Grant => ("operator".into(), "available".into()),
            TransactionKind::Allocate => ("available".into(), res),
            TransactionKind::Release => (res, "available".into()),
        }
    }
}

/// A company's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Balance {
    /// Everything ever granted.
    pub total: CloudTokens,
    /// Held by live resources.
    pub allocated: CloudTokens,
    /// `total − allocated`.
    pub available: CloudTokens,
    /// What scheduled downgrades and deprovisionings will release (still allocated until then).
    pub pending_release: CloudTokens,
}

impl Balance {
    /// Builds a balance from the two stored counters and the pending releases.
    pub fn new(total: CloudTokens, allocated: CloudTokens, pending_release: CloudTokens) -> Balance {
        Balance { total, allocated, available: CloudTokens(total.get() - allocated.get()), pending_release }
    }
}

/// Whether a company with `available` tokens can pay `cost` now: `Ok` with what is left
/// (never negative), or `InsufficientTokens` naming both numbers. A cost of zero is always
/// affordable, even with nothing available.
pub fn afford(available: CloudTokens, cost: CloudTokens) -> Result<CloudTokens, DomainError> {
    match available.checked_sub(cost) {
        Some(left) if left >= CloudTokens::ZERO => Ok(left),
        _ => Err(DomainError::InsufficientTokens { required: cost, available }),
    }
}

/// What would be left of `available` after paying `cost`, negative when short: the number the
/// previews show (in red) next to [`afford`]'s verdict. Saturates instead of overflowing, since
/// it is only ever displayed.
pub fn available_after(available: CloudTokens, cost: CloudTokens) -> CloudTokens {
    CloudTokens(available.get().saturating_sub(cost.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn afford_pays_up_to_the_last_token() {
        assert_eq!(afford(CloudTokens(500), CloudTokens(30)), Ok(CloudTokens(470)));
        assert_eq!(afford(CloudTokens(30), CloudTokens(30)), Ok(CloudTokens::ZERO));
        assert_eq!(afford(CloudTokens::ZERO, CloudTokens::ZERO), Ok(CloudTokens::ZERO));
    }

    #[test]
    fn afford_refuses_a_token_short_naming_both_numbers() {
        let refused = afford(CloudTokens(29), CloudTokens(30));
        assert_eq!(
            refused,
            Err(DomainError::InsufficientTokens { required: CloudTokens(30), available: CloudTokens(29) })
        );
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("30") && message.contains("29"), "{message}");
        assert!(afford(CloudTokens::ZERO, CloudTokens(1)).is_err());
    }

    #[test]
    fn afford_never_overflows() {
        // A balance can never be negative; should one arrive, paying must still refuse cleanly.
        assert!(afford(CloudTokens(i64::MIN), CloudTokens(1)).is_err());
        assert!(afford(CloudTokens(0), CloudTokens(i64::MAX)).is_err());
    }

    #[test]
    fn available_after_goes_negative_when_short_and_agrees_with_afford() {
        assert_eq!(available_after(CloudTokens(40), CloudTokens(60)), CloudTokens(-20));
        assert_eq!(available_after(CloudTokens(i64::MIN), CloudTokens(1)), CloudTokens(i64::MIN));
        for available in 0..70 {
            for cost in [0, 6, 30, 48, 60] {
                let (a, c) = (CloudTokens(available), CloudTokens(cost));
                assert_eq!(afford(a, c).is_ok(), available_after(a, c) >= CloudTokens::ZERO, "{available} − {cost}");
                if let Ok(left) = afford(a, c) {
                    assert_eq!(left, available_after(a, c));
                }
            }
        }
    }
}
