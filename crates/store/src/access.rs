//! Who may call: users, their web sessions and their API tokens.
//!
//! Secrets are never stored: a session or token is looked up by the SHA-256 of its secret. The
//! lookups ([`AccessStore::token_user`], [`AccessStore::session_user`]) answer only credentials
//! that are usable right now — not revoked, not expired, of a user who is not disabled — so that
//! revoking a token or disabling a user takes effect on the very next request, on every
//! instance, with nothing cached to invalidate.

use crate::{AuditEvent, StoreResult};
use async_trait::async_trait;
use genai_core::{CompanyId, Instant, UserId};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Uses the Control Center.
    CompanyAdmin,
    /// Uses the Portal of the resources whose team they are on.
    Member,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CompanyAdmin => "company_admin",
            Role::Member => "member",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "company_admin" => Some(Role::CompanyAdmin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Company.
    pub company_id: CompanyId,
    /// Name.
    pub name: String,
    /// Email (lowercased, unique across the installation: it is the login).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Argon2 PHC string, when a password was set.
    pub password_hash: Option<String>,
    /// When it was created.
    pub created_at: Instant,
    /// Since when the operator has disabled the user (none of their credentials work).
    pub disabled_at: Option<Instant>,
}

/// An API token, stored only as the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Id (`tok_…`), shown in lists; never the secret.
    pub id: String,
    /// The user it acts as.
    pub user_id: UserId,
    /// Hex SHA-256 of the secret.
    pub token_hash: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: Instant,
    /// From this instant on it is refused (none: it does not expire).
    pub expires_at: Option<Instant>,
    /// When it last authenticated a request, to the minute (see [`AccessStore::touch_api_token`]).
    pub last_used_at: Option<Instant>,
    /// When it was revoked; refused from then on, for good.
    pub revoked_at: Option<Instant>,
}

impl ApiToken {
    /// Whether the token itself (its user aside) is usable at `now`: not revoked, not expired.
    pub fn is_active(&self, now: Instant) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A web UI session: the SHA-256 of the secret in the browser's cookie, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session secret.
    pub id_hash: String,
    /// The user logged in.
    pub user_id: UserId,
    /// When it started.
    pub created_at: Instant,
    /// When it stops being accepted.
    pub expires_at: Instant,
}

/// The users, sessions and API tokens port.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates a user ([`crate::StoreError::Duplicate`]`("email")` when the email is taken,
    /// `NotFound` when the company does not exist), with its audit event.
    async fn create_user(&self, user: &User, audit: &AuditEvent) -> StoreResult<()>;
    /// A user by id (disabled ones included).
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// A user by (lowercased) email (disabled ones included: the login says why it refuses).
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Disables a user (`Some(since)`) or enables them again (`None`). Disabling also ends all
    /// their web sessions. Writes the audit event and answers `true` only when the state
    /// changed; `NotFound` for an unknown user.
    async fn set_user_disabled(
        &self,
        id: &UserId,
        disabled_at: Option<Instant>,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// Stores a new API token (its hash), with its audit event.
    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()>;
    /// A user's API tokens, revoked and expired ones included, newest first.
    async fn api_tokens(&self, user: &UserId) -> StoreResult<Vec<ApiToken>>;
    /// One API token by id.
    async fn api_token(&self, id: &str) -> StoreResult<Option<ApiToken>>;
    /// Revokes a token at `at` and writes the audit event, unless it was already revoked
    /// (then nothing is written and the answer is `false`); `NotFound` for an unknown id.
    async fn revoke_api_token(&self, id: &str, at: Instant, audit: &AuditEvent) -> StoreResult<bool>;
    /// The user an API token authenticates at `now`, with the token: `None` unless the hash is
    /// known, the token neither revoked nor expired, and its user not disabled.
    async fn token_user(&self, token_hash: &str, now: Instant) -> StoreResult<Option<(User, ApiToken)>>;
    /// Records that a token was used at `now`, unless a use since `since` is already recorded:
    /// the condition is in the statement, so a busy token costs one write per interval however
    /// many requests and instances use it.
    async fn touch_api_token(&self, id: &str, now: Instant, since: Instant) -> StoreResult<()>;

    /// Stores a new web session.
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// The user of a session that has not expired at `now`, unless the user is disabled.
    async fn session_user(&self, id_hash: &str, now: Instant) -> StoreResult<Option<User>>;
    /// Ends a session (logout).
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes the sessions that expired before `now`; answers how many.
    async fn purge_sessions(&self, now: Instant) -> StoreResult<u64>;
}
