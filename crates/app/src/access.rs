//! API tokens and disabled users: who can still call.
//!
//! Rules (also in the README's "Rules we chose"):
//! - A token is created by the operator for any user, or by users for themselves (any role).
//!   Its secret is shown once; only its SHA-256 is stored.
//! - A token may carry an expiry (`expires_at`, which must lie in the future); from that
//!   instant on it is refused. All token instants are on the server's clock (the manual clock
//!   when the server runs with `--manual-clock`).
//! - Revoking sets `revoked_at` and refuses the token from the next request on; it cannot be
//!   undone, and revoking again changes nothing. Users revoke their own tokens, the operator
//!   anyone's; another user's token is "not found" to a user.
//! - Disabling a user refuses their tokens and ends their web sessions at once; enabling them
//!   again brings their (unrevoked, unexpired) tokens back, but not the sessions.
//! - `last_used_at` is recorded to the minute: at most one write per token per minute,
//!   whatever the traffic.
//!
//! Every change is audited (`api_token.created`, `api_token.revoked`, `user.disabled`,
//! `user.enabled`) in the company of the user concerned.

use crate::auth::{self, Actor};
use crate::{App, AppError};
use genai_core::calendar::format_instant;
use genai_core::validation;
use genai_core::{Instant, UserId};
use genai_store::{ApiToken, User};
use serde_json::json;

/// How precisely `last_used_at` is kept: a token is touched at most once per this interval.
pub const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::minutes(1);

impl App {
    /// Records a token's use, at most once per [`LAST_USED_RESOLUTION`]. Bookkeeping only: a
    /// failure is logged and the request goes on.
    pub(crate) async fn note_token_use(&self, token: &ApiToken, now: Instant) {
        let since = now - LAST_USED_RESOLUTION;
        if token.last_used_at.is_some_and(|t| t > since) {
            return;
        }
        match self.store.touch_api_token(&token.id, now, since).await {
            Ok(()) => self.token_cache.used(&token.token_hash, now),
            Err(e) => {
                tracing::warn!(token = %token.id, error = %genai_store::error_chain(&e), "recording a token's use failed")
            }
        }
    }

    fn me(actor: &Actor) -> Result<&User, AppError> {
        match actor {
            Actor::User(u) => Ok(u),
            Actor::Operator => Err(AppError::Forbidden(
                "the operator token belongs to no user; manage a user's tokens under /api/v1/operator/users/{id}/api-tokens"
                    .into(),
            )),
        }
    }

    /// Creates an API token for a user (operator); the secret is returned once.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        user: &UserId,
        description: Option<String>,
        expires_at: Option<Instant>,
    ) -> Result<(ApiToken, String), AppError> {
        Self::require_operator(actor)?;
        let user = self.store.user(user).await?.ok_or_else(|| AppError::NotFound("user".into()))?;
        self.issue_token(actor, &user, description, expires_at).await
    }

    /// Creates an API token for the caller (any role); the secret is returned once.
    pub async fn create_my_api_token(
        &self,
        actor: &Actor,
        description: Option<String>,
        expires_at: Option<Instant>,
    ) -> Result<(ApiToken, String), AppError> {
        let me = Self::me(actor)?;
        self.issue_token(actor, me, description, expires_at).await
    }

    pub(crate) async fn issue_token(
        &self,
        actor: &Actor,
        user: &User,
        description: Option<String>,
        expires_at: Option<Instant>,
    ) -> Result<(ApiToken, String), AppError> {
        let description =
            validation::token_description(description.as_deref()).map_err(|e| AppError::field("description", e))?;
        let now = self.now();
        if let Some(e) = expires_at.filter(|e| *e <= now) {
            return Err(AppError::field(
                "expires_at",
                format!("must be in the future; it is {} now, not {}", format_instant(now), format_instant(e)),
            ));
        }
        let secret = auth::new_token_secret();
        let token = ApiToken {
            id: self.ids.next("tok"),
            user_id: user.id.clone(),
            token_hash: auth::token_hash(&secret),
            description,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let mut audit = self.audit(actor, Some(&user.company_id), now, "api_token.created");
        audit.details = json!({"token_id": token.id, "user_id": user.id, "description": token.description,
            "expires_at": token.expires_at.map(format_instant)});
        self.store.create_api_token(&token, &audit).await?;
        Ok((token, secret))
    }

    /// The caller's own API tokens, newest first (revoked and expired ones included).
    pub async fn my_api_tokens(&self, actor: &Actor) -> Result<Vec<ApiToken>, AppError> {
        let me = Self::me(actor)?;
        Ok(self.store.api_tokens(&me.id).await?)
    }

    /// A user's API tokens (operator), newest first.
    pub async fn user_api_tokens(&self, actor: &Actor, user: &UserId) -> Result<Vec<ApiToken>, AppError> {
        Self::require_operator(actor)?;
        self.store.user(user).await?.ok_or_else(|| AppError::NotFound("user".into()))?;
        Ok(self.store.api_tokens(user).await?)
    }

    /// Revokes one of the caller's own tokens; another user's token is not found.
    pub async fn revoke_my_api_token(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        let me = Self::me(actor)?;
        let token = self.store.api_token(id).await?.filter(|t| t.user_id == me.id);
        let token = token.ok_or_else(|| AppError::NotFound("API token".into()))?;
        self.revoke(actor, me, &token).await
    }

    /// Revokes any user's token (operator).
    pub async fn revoke_api_token(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        Self::require_operator(actor)?;
        let token = self.store.api_token(id).await?.ok_or_else(|| AppError::NotFound("API token".into()))?;
        let owner = self.store.user(&token.user_id).await?.ok_or_else(|| AppError::NotFound("API token".into()))?;
        self.revoke(actor, &owner, &token).await
    }

    async fn revoke(&self, actor: &Actor, owner: &User, token: &ApiToken) -> Result<(), AppError> {
        let now = self.now();
        let mut audit = self.audit(actor, Some(&owner.company_id), now, "api_token.revoked");
        audit.details = json!({"token_id": token.id, "user_id": owner.id, "description": token.description});
        // Already revoked: nothing changes, and that is what was asked for.
        let revoked = self.store.revoke_api_token(&token.id, now, &audit).await;
        // After the commit (and even on an error: the write may have happened): this instance
        // refuses the token from the next request on.
        self.token_cache.invalidate();
        revoked?;
        Ok(())
    }

    /// Disables a user (their tokens and sessions are refused at once) or enables them again
    /// (operator); `disabled` is required. Answers the user as it is now.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        id: &UserId,
        disabled: Option<bool>,
    ) -> Result<User, AppError> {
        Self::require_operator(actor)?;
        let disabled = disabled.ok_or_else(|| AppError::field("disabled", "is required (true or false)"))?;
        let user = self.store.user(id).await?.ok_or_else(|| AppError::NotFound("user".into()))?;
        let now = self.now();
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        let mut audit = self.audit(actor, Some(&user.company_id), now, action);
        audit.details = json!({"user_id": user.id, "email": user.email});
        let changed = self.store.set_user_disabled(id, disabled.then_some(now), &audit).await;
        self.token_cache.invalidate();
        changed?;
        self.store.user(id).await?.ok_or_else(|| AppError::NotFound("user".into()))
    }
}
