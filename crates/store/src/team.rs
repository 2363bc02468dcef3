//! A resource's team: who may use its Portal (RUNTIME.md §1).
//!
//! Every member is a user of the resource's company (role `member` when the team brought them
//! in). Company admins may act on every resource of their company without being members; that
//! rule lives in `genai-app`, not here. The one invariant this port carries itself is that a team
//! is never empty: removing the last member is refused inside the statement, so two concurrent
//! removals cannot both succeed.

use crate::{AuditEvent, StoreResult, User};
use async_trait::async_trait;
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId, UserId};

/// A member of a resource's team, as the Portal lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The resource.
    pub resource_id: ResourceId,
    /// The user.
    pub user_id: UserId,
    /// The user's name.
    pub name: String,
    /// The user's (lowercased) email.
    pub email: String,
    /// When they joined the team.
    pub added_at: Instant,
}

/// Who to add to a team: an existing user of the company, or a new one created in the same
/// transaction (an unknown email becomes a user of the company with role `member`).
#[derive(Debug, Clone)]
pub enum NewMember {
    /// An existing user of the resource's company.
    Existing(UserId),
    /// A user to create first (`StoreError::Duplicate("email")` if the email was taken meanwhile).
    Create(User),
}

/// What removing a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed.
    Removed,
    /// Not a member of this team.
    NotAMember,
    /// The only member: refused (409 `last_member`).
    LastMember,
}

/// The team port.
#[async_trait]
pub trait TeamStore: Send + Sync {
    /// A resource's members, in the order they joined.
    async fn members(&self, resource: &ResourceId) -> StoreResult<Vec<Member>>;
    /// Adds a member (creating the user first when asked) with its audit event. Answers the
    /// member and whether it was added now (`false`: already a member; nothing written).
    /// `NotFound` when the resource is deprovisioned (checked under the resource's row lock).
    async fn add_member(
        &self,
        resource: &ResourceId,
        member: &NewMember,
        at: Instant,
        audit: &AuditEvent,
    ) -> StoreResult<(Member, bool)>;
    /// Removes a member unless they are the last one, with its audit event when removed. Team
    /// changes of one resource are serialized on its row (a lock on PostgreSQL), so the count
    /// that decides "last" is always the committed one.
    async fn remove_member(&self, resource: &ResourceId, user: &UserId, audit: &AuditEvent) -> StoreResult<Removal>;
    /// The resources whose team a user is on (live and deprovisioned), in id order.
    async fn member_resources(&self, user: &UserId) -> StoreResult<Vec<Resource>>;
    /// Whether a user is on a resource's team.
    async fn is_member(&self, resource: &ResourceId, user: &UserId) -> StoreResult<bool>;
}
