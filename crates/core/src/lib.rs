//! The pure domain of GenAI Resources.
//!
//! Everything here is deterministic and free of I/O: no database, no clock, no network. Rules
//! that depend on the time take `now` as an argument, so they can be tested over any instant and
//! the scheduler, the API and the UI all agree on the same answer. The layers above
//! (`genai-store`, `genai-app`, `genai-http`) only move data in and out of these types.

pub mod calendar;
pub mod catalog;
pub mod eligibility;
pub mod error;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod quota;
pub mod resource;
pub mod tokens;
pub mod validation;

pub use calendar::{BundleMonth, Instant};
pub use catalog::Catalog;
pub use error::DomainError;
pub use ids::{CompanyId, ResourceId, UserId};
pub use quota::Tokens;
pub use tokens::CloudTokens;
