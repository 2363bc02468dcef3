//! [`TeamStore`] in SQL: a resource's team (`team_members`).
//!
//! Every team change of one resource first reads the resource's row with the backend's row lock
//! ([`Backend::FOR_UPDATE`]): on PostgreSQL this serializes them (two concurrent removals of the
//! last two members cannot both see "two members left"), and it makes a change that races the
//! resource's deprovisioning see the committed status. SQLite's single writer serializes them
//! anyway.

use crate::conn::{with_retries, Attempt, Backend, Conn, RowRead, Transaction};
use crate::rows::{instant, resource};
use crate::{args, insert_audit, millis, resource_columns, SqlStore};
use async_trait::async_trait;
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId, UserId};
use genai_store::{AuditEvent, Member, NewMember, Removal, StoreError, StoreResult, TeamStore};

const INSERT_USER: &str =
    "INSERT INTO users (id, company_id, name, email, role, password_hash, created_at, disabled_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_MEMBER: &str = "INSERT INTO team_members (resource_id, user_id, added_at) VALUES ($1, $2, $3) \
     ON CONFLICT (resource_id, user_id) DO NOTHING";
/// A member row with the user's name and email.
macro_rules! member_select {
    () => {
        "SELECT m.resource_id, m.user_id, u.name, u.email, m.added_at FROM team_members m JOIN users u ON u.id = m.user_id"
    };
}
const MEMBERS: &str = concat!(member_select!(), " WHERE m.resource_id = $1 ORDER BY m.added_at, m.user_id");
const MEMBER: &str = concat!(member_select!(), " WHERE m.resource_id = $1 AND m.user_id = $2");
const IS_MEMBER: &str = "SELECT COUNT(*) AS n FROM team_members WHERE resource_id = $1 AND user_id = $2";
const TEAM_SIZE: &str = "SELECT COUNT(*) AS n FROM team_members WHERE resource_id = $1";
const REMOVE: &str = "DELETE FROM team_members WHERE resource_id = $1 AND user_id = $2";
/// Completed with the backend's row lock; `n` is 1 for a live resource, 0 for a deprovisioned one.
const LOCK_RESOURCE: &str =
    "SELECT CAST(CASE WHEN status = 'deprovisioned' THEN 0 ELSE 1 END AS BIGINT) AS n FROM resources WHERE id = $1";
const MEMBER_RESOURCES: &str = concat!(
    "SELECT ",
    resource_columns!(),
    " FROM resources WHERE id IN (SELECT resource_id FROM team_members WHERE user_id = $1) ORDER BY id"
);

fn member(row: &dyn RowRead) -> StoreResult<Member> {
    Ok(Member {
        resource_id: ResourceId(row.text("resource_id")?),
        user_id: UserId(row.text("user_id")?),
        name: row.text("name")?,
        email: row.text("email")?,
        added_at: instant(row.int("added_at")?)?,
    })
}

/// Adds a member inside the caller's transaction (creating the user first when asked); answers
/// whether a row was added (`false`: already a member). Shared with provisioning, whose first
/// member is written in the resource's own transaction.
pub(crate) async fn insert_member(
    tx: &mut impl Conn,
    resource: &ResourceId,
    new: &NewMember,
    at: Instant,
) -> Attempt<bool> {
    let user_id = match new {
        NewMember::Existing(id) => id.as_str(),
        NewMember::Create(u) => {
            let args = args![
                u.id.as_str(),
                u.company_id.as_str(),
                &u.name,
                &u.email,
                u.role.as_str(),
                u.password_hash.as_deref(),
                millis(u.created_at),
                u.disabled_at.map(millis),
            ];
            tx.execute(INSERT_USER, args).await?;
            u.id.as_str()
        }
    };
    Ok(tx.execute(INSERT_MEMBER, args![resource.as_str(), user_id, millis(at)]).await? == 1)
}

/// Locks a resource's row for a team change: `NotFound` when it does not exist or is
/// deprovisioned.
async fn lock_live<B: Backend>(tx: &mut B::Tx, resource: &ResourceId) -> Attempt<()> {
    let lock = format!("{LOCK_RESOURCE}{}", B::FOR_UPDATE);
    match tx.fetch_optional(&lock, args![resource.as_str()], crate::rows::count).await? {
        Some(1) => Ok(()),
        _ => Err(StoreError::NotFound.into()),
    }
}

impl<B: Backend> SqlStore<B> {
    async fn add_member_once(
        &self,
        resource: &ResourceId,
        new: &NewMember,
        at: Instant,
        audit: &AuditEvent,
    ) -> Attempt<(Member, bool)> {
        let mut tx = self.backend.begin().await?;
        lock_live::<B>(&mut tx, resource).await?;
        let added = insert_member(&mut tx, resource, new, at).await?;
        let user = match new {
            NewMember::Existing(id) => id,
            NewMember::Create(u) => &u.id,
        };
        let found = tx.fetch_optional(MEMBER, args![resource.as_str(), user.as_str()], member).await?;
        // The user row is gone (or was never there): a reference to nothing.
        let found = found.ok_or(StoreError::NotFound)?;
        if added {
            insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok((found, added))
    }

    async fn remove_member_once(&self, resource: &ResourceId, user: &UserId, audit: &AuditEvent) -> Attempt<Removal> {
        let mut tx = self.backend.begin().await?;
        lock_live::<B>(&mut tx, resource).await?;
        let is_member =
            tx.fetch_optional(IS_MEMBER, args![resource.as_str(), user.as_str()], crate::rows::count).await?;
        if is_member.unwrap_or(0) == 0 {
            return Ok(Removal::NotAMember);
        }
        // Counted after the lock: the committed team, not a snapshot a concurrent removal races.
        let size = tx.fetch_optional(TEAM_SIZE, args![resource.as_str()], crate::rows::count).await?;
        if size.unwrap_or(0) <= 1 {
            return Ok(Removal::LastMember);
        }
        tx.execute(REMOVE, args![resource.as_str(), user.as_str()]).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Removal::Removed)
    }
}

#[async_trait]
impl<B: Backend> TeamStore for SqlStore<B> {
    async fn members(&self, resource: &ResourceId) -> StoreResult<Vec<Member>> {
        self.read_all(MEMBERS, args![resource.as_str()], member).await
    }

    async fn add_member(
        &self,
        resource: &ResourceId,
        new: &NewMember,
        at: Instant,
        audit: &AuditEvent,
    ) -> StoreResult<(Member, bool)> {
        with_retries("add_member", || self.add_member_once(resource, new, at, audit)).await
    }

    async fn remove_member(&self, resource: &ResourceId, user: &UserId, audit: &AuditEvent) -> StoreResult<Removal> {
        with_retries("remove_member", || self.remove_member_once(resource, user, audit)).await
    }

    async fn member_resources(&self, user: &UserId) -> StoreResult<Vec<Resource>> {
        self.read_all(MEMBER_RESOURCES, args![user.as_str()], resource).await
    }

    async fn is_member(&self, resource: &ResourceId, user: &UserId) -> StoreResult<bool> {
        let n = self.read_one(IS_MEMBER, args![resource.as_str(), user.as_str()], crate::rows::count).await?;
        Ok(n.unwrap_or(0) > 0)
    }
}
