//! Cloud tokens: the money-like unit every allocation is paid in.
//!
//! Always an integer, never a float, and every arithmetic step is checked: an overflow is a bug
//! surfaced as an error, never a silently wrapped balance.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A whole number of cloud tokens (may be negative only as a *difference*, never as a balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloudTokens(pub i64);

impl CloudTokens {
    /// No tokens.
    pub const ZERO: CloudTokens = CloudTokens(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: CloudTokens) -> Option<CloudTokens> {
        self.0.checked_add(other.0).map(CloudTokens)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: CloudTokens) -> Option<CloudTokens> {
        self.0.checked_sub(other.0).map(CloudTokens)
    }

    /// The raw integer, for storage and the wire.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for CloudTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
