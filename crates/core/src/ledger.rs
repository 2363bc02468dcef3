//! The cloud-token ledger's rules (SPEC §3).
//!
//! Every change of a company's tokens is a double-entry transaction that moves tokens from one
//! account to another: `operator → available` (grant), `available → resource` (allocate) and
//! `resource → available` (release). The store appends them and keeps the company's `total` and
//! `allocated` counters in the same database transaction, so the invariants below hold at every
//! instant: `available = total − allocated ≥ 0`, and `allocated` is the sum of the plan costs of
//! the company's live resources.

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
    /// Builds a balance from the two stored counters and the pending releases; `None` when
    /// `total − allocated` cannot be computed exactly (counters no valid ledger can produce).
    pub fn new(total: CloudTokens, allocated: CloudTokens, pending_release: CloudTokens) -> Option<Balance> {
        Some(Balance { total, allocated, available: total.checked_sub(allocated)?, pending_release })
    }
}
