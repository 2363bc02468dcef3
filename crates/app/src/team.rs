//! A resource's team (RUNTIME.md §1): who may use its Portal.
//!
//! Rules (also in the README's "Rules we chose"):
//! - Every member is a user of the resource's company. A person named by email who is not a
//!   user yet becomes one, role `member`, without a password (the operator or a future invite
//!   flow gives them one); the name given (else the email's local part) becomes their name.
//! - At provisioning, the person the resource is created for joins the team the same way. If
//!   their email is the login of another company's user, the resource is still provisioned (a
//!   person's address can be known to two companies; refusing would let one company block
//!   another's provisioning), but they do not join: a user belongs to one company, and the team
//!   starts empty. Company admins act on every resource anyway and can add members.
//! - Adding that address as a member later is refused (422 on `email`).
//! - Team members and company admins may add and remove members; a member may remove
//!   themselves. The last member cannot be removed (409 `last_member`), even by two concurrent
//!   removals (the store serializes team changes of a resource).
//! - A deprovisioned resource's team is kept for history and cannot change (409
//!   `already_deprovisioned`).

use crate::auth::Actor;
use crate::{App, AppError};
use genai_core::validation::{Email, PersonName};
use genai_core::{CompanyId, DomainError, Instant, ResourceId, UserId};
use genai_store::{Member, NewMember, Removal, Role, StoreError, User};
use serde_json::json;

/// How often adding a member re-reads after the person was registered concurrently.
const MAX_ATTEMPTS: usize = 5;

/// The name a new user gets when none is given: the email's local part (which is never empty
/// and has no spaces), else the whole address.
fn name_from_email(email: &Email) -> PersonName {
    let local = email.as_str().split('@').next().unwrap_or_default();
    PersonName::parse(local)
        .or_else(|_| PersonName::parse(email.as_str()))
        .unwrap_or_else(|_| PersonName::stored(email.as_str().to_string()))
}

impl App {
    /// The team member a new resource starts with: the person it is created for, as an existing
    /// user of `company`, as a new user (role `member`), or nobody when their email is another
    /// company's login.
    pub(crate) async fn first_member(
        &self,
        company: &CompanyId,
        name: &PersonName,
        email: &Email,
        now: Instant,
    ) -> Result<Option<NewMember>, AppError> {
        Ok(match self.store.user_by_email(email.as_str()).await? {
            Some(u) if &u.company_id == company => Some(NewMember::Existing(u.id)),
            Some(_) => None,
            None => Some(NewMember::Create(self.new_member_user(company, name, email, now))),
        })
    }

    fn new_member_user(&self, company: &CompanyId, name: &PersonName, email: &Email, now: Instant) -> User {
        User {
            id: UserId(self.ids.next("usr")),
            company_id: company.clone(),
            name: name.as_str().to_string(),
            email: email.as_str().to_string(),
            role: Role::Member,
            password_hash: None,
            created_at: now,
            disabled_at: None,
        }
    }

    /// The members of a resource's team, in the order they joined.
    pub async fn members(&self, actor: &Actor, id: &ResourceId) -> Result<Vec<Member>, AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        Ok(self.store.members(&resource.id).await?)
    }

    /// Adds someone to a resource's team by email (`name` is used when the email is new).
    /// Answers the member and whether they were added now (`false`: already a member).
    pub async fn add_member(
        &self,
        actor: &Actor,
        id: &ResourceId,
        email: Option<&str>,
        name: Option<&str>,
    ) -> Result<(Member, bool), AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        let mut errors = genai_core::error::FieldErrors::new();
        let email = match email.map(Email::parse) {
            None => {
                errors.insert("email".into(), "is required".into());
                None
            }
            Some(Err(e)) => {
                errors.insert("email".into(), e);
                None
            }
            Some(Ok(e)) => Some(e),
        };
        let name = match name.map(PersonName::parse) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                errors.insert("name".into(), e);
                None
            }
        };
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(DomainError::Validation(errors).into());
        };
        if !resource.is_live() {
            return Err(DomainError::AlreadyDeprovisioned.into());
        }
        let company = &resource.company_id;
        for _ in 0..MAX_ATTEMPTS {
            let now = self.now();
            let new = match self.store.user_by_email(email.as_str()).await? {
                Some(u) if &u.company_id == company => NewMember::Existing(u.id),
                Some(_) => {
                    return Err(AppError::field(
                        "email",
                        format!(
                            "{email} is registered with another company; a person belongs to one company, so they \
                             cannot join this team"
                        ),
                    ))
                }
                None => {
                    let name = name.clone().unwrap_or_else(|| name_from_email(&email));
                    NewMember::Create(self.new_member_user(company, &name, &email, now))
                }
            };
            let mut audit = self.audit(actor, Some(company), now, "team.member_added");
            audit.resource_id = Some(resource.id.clone());
            let (user_id, created) = match &new {
                NewMember::Existing(u) => (u.clone(), false),
                NewMember::Create(u) => (u.id.clone(), true),
            };
            audit.details = json!({"user_id": user_id, "email": email.as_str(), "user_created": created});
            match self.store.add_member(&resource.id, &new, now, &audit).await {
                Ok(done) => return Ok(done),
                // Registered between the lookup and the write: they exist now; decide again.
                Err(StoreError::Duplicate("email")) => continue,
                // Deprovisioned meanwhile.
                Err(StoreError::NotFound) => return Err(DomainError::AlreadyDeprovisioned.into()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Internal("too many concurrent changes; try again".into()))
    }

    /// Removes a member from a resource's team, unless they are the last one.
    pub async fn remove_member(&self, actor: &Actor, id: &ResourceId, user: &UserId) -> Result<(), AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        let members = self.store.members(&resource.id).await?;
        let Some(member) = members.iter().find(|m| &m.user_id == user) else {
            return Err(AppError::NotFound("team member".into()));
        };
        if !resource.is_live() {
            return Err(DomainError::AlreadyDeprovisioned.into());
        }
        let mut audit = self.audit(actor, Some(&resource.company_id), self.now(), "team.member_removed");
        audit.resource_id = Some(resource.id.clone());
        audit.details = json!({"user_id": member.user_id, "email": member.email});
        match self.store.remove_member(&resource.id, user, &audit).await {
            Ok(Removal::Removed) => Ok(()),
            Ok(Removal::NotAMember) => Err(AppError::NotFound("team member".into())),
            Ok(Removal::LastMember) => Err(DomainError::LastMember(member.email.clone()).into()),
            Err(StoreError::NotFound) => Err(DomainError::AlreadyDeprovisioned.into()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_member_is_named_after_their_address() {
        let email = |s: &str| Email::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name_from_email(&email("Ada.Lovelace@Example.com")).as_str(), "ada.lovelace");
    }
}
