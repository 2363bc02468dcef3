//! [`AccessStore`] in SQL: users, web sessions, API tokens.
//!
//! The credential lookups put every condition of "usable now" into the statement (not revoked,
//! not expired, user not disabled), so a revocation or a disabling is seen by the next request
//! on any instance.

use crate::conn::{with_retries, Backend, Conn, Transaction};
use crate::{args, insert_audit, millis, rows, SqlStore};
use async_trait::async_trait;
use genai_core::{Instant, UserId};
use genai_store::{AccessStore, ApiToken, AuditEvent, Session, StoreError, StoreResult, User};

const INSERT_USER: &str =
    "INSERT INTO users (id, company_id, name, email, role, password_hash, created_at, disabled_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const USER: &str = "SELECT * FROM users WHERE id = $1";
const USER_BY_EMAIL: &str = "SELECT * FROM users WHERE email = $1";
const DISABLE: &str = "UPDATE users SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL";
const ENABLE: &str = "UPDATE users SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL";
const END_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
     (id, user_id, token_hash, description, created_at, revoked_at, expires_at, last_used_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL)";
const TOKENS: &str = "SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC";
const TOKEN: &str = "SELECT * FROM api_tokens WHERE id = $1";
const REVOKE: &str = "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
const TOKEN_USER: &str = "SELECT u.*, t.id AS token_id, t.token_hash, t.description, \
     t.created_at AS token_created_at, t.expires_at, t.last_used_at, t.revoked_at \
     FROM api_tokens t JOIN users u ON u.id = t.user_id \
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
     AND u.disabled_at IS NULL";
const TOUCH: &str =
    "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)";

const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
const SESSION_USER: &str = "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL";
const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";
const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";

#[async_trait]
impl<B: Backend> AccessStore for SqlStore<B> {
    async fn create_user(&self, u: &User, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_user", || async {
            let mut tx = self.backend.begin().await?;
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
            insert_audit(&mut tx, audit).await?;
            tx.commit().await
        })
        .await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.read_one(USER, args![id.as_str()], rows::user).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.read_one(USER_BY_EMAIL, args![email], rows::user).await
    }

    async fn set_user_disabled(
        &self,
        id: &UserId,
        disabled_at: Option<Instant>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        with_retries("set_user_disabled", || async {
            let mut tx = self.backend.begin().await?;
            let changed = match disabled_at {
                Some(at) => tx.execute(DISABLE, args![id.as_str(), millis(at)]).await?,
                None => tx.execute(ENABLE, args![id.as_str()]).await?,
            };
            if changed == 0 {
                // Nothing to do, or nobody to do it to.
                return match tx.fetch_optional(USER, args![id.as_str()], rows::user).await? {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound.into()),
                };
            }
            if disabled_at.is_some() {
                tx.execute(END_SESSIONS, args![id.as_str()]).await?;
            }
            insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn create_api_token(&self, t: &ApiToken, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_api_token", || async {
            let mut tx = self.backend.begin().await?;
            let args = args![
                &t.id,
                t.user_id.as_str(),
                &t.token_hash,
                &t.description,
                millis(t.created_at),
                t.expires_at.map(millis),
            ];
            tx.execute(INSERT_TOKEN, args).await?;
            insert_audit(&mut tx, audit).await?;
            tx.commit().await
        })
        .await
    }

    async fn api_tokens(&self, user: &UserId) -> StoreResult<Vec<ApiToken>> {
        self.read_all(TOKENS, args![user.as_str()], rows::api_token).await
    }

    async fn api_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        self.read_one(TOKEN, args![id], rows::api_token).await
    }

    async fn revoke_api_token(&self, id: &str, at: Instant, audit: &AuditEvent) -> StoreResult<bool> {
        with_retries("revoke_api_token", || async {
            let mut tx = self.backend.begin().await?;
            if tx.execute(REVOKE, args![id, millis(at)]).await? == 0 {
                return match tx.fetch_optional(TOKEN, args![id], rows::api_token).await? {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound.into()),
                };
            }
            insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn token_user(&self, token_hash: &str, now: Instant) -> StoreResult<Option<(User, ApiToken)>> {
        self.read_one(TOKEN_USER, args![token_hash, millis(now)], rows::token_user).await
    }

    async fn touch_api_token(&self, id: &str, now: Instant, since: Instant) -> StoreResult<()> {
        self.write_one("touch_api_token", TOUCH, args![id, millis(now), millis(since)]).await?;
        Ok(())
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        let args = args![&s.id_hash, s.user_id.as_str(), millis(s.created_at), millis(s.expires_at)];
        self.write_one("create_session", INSERT_SESSION, args).await?;
        Ok(())
    }

    async fn session_user(&self, id_hash: &str, now: Instant) -> StoreResult<Option<User>> {
        self.read_one(SESSION_USER, args![id_hash, millis(now)], rows::user).await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.write_one("delete_session", DELETE_SESSION, args![id_hash]).await?;
        Ok(())
    }

    async fn purge_sessions(&self, now: Instant) -> StoreResult<u64> {
        self.write_one("purge_sessions", PURGE_SESSIONS, args![millis(now)]).await
    }
}
