//! Credentials: who is calling.
//!
//! API tokens are 32 random bytes shown once and stored only as their SHA-256 (a token has full
//! entropy, so a fast hash is safe and keeps authentication off the request path's critical
//! cost). Passwords are people-chosen, so they get Argon2id. The operator token comes from the
//! environment and is compared by hash in constant time.
//!
//! Argon2 is deliberately slow (tens of milliseconds of one core). Run on the async workers it
//! would stall every other request while it hashes — a handful of clients sending wrong
//! passwords took `/healthz` from under a millisecond to a quarter of a second. So every hash and
//! verification runs on tokio's blocking pool, and at most one per core at a time
//! ([`password_work_permits`]): a flood of logins queues for those permits (bounded by the server's
//! request timeout and connection limit) instead of taking the cores from everything else.

use crate::error::AppError;
use crate::ids::random_bytes;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};
use genai_core::Instant;
use genai_store::{ApiToken, Role, User};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Lowercase hex of some bytes (the `hex` crate's encoder).
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The installation's operator.
    Operator,
    /// A user of a company.
    User(User),
}

impl Actor {
    /// How the audit log names this actor.
    pub fn label(&self) -> String {
        match self {
            Actor::Operator => "operator".into(),
            Actor::User(u) => u.email.clone(),
        }
    }

    /// The idempotency-key scope of this actor.
    pub fn scope(&self) -> String {
        match self {
            Actor::Operator => "operator".into(),
            Actor::User(u) => u.id.to_string(),
        }
    }

    /// Whether this is a company admin.
    pub fn is_company_admin(&self) -> bool {
        matches!(self, Actor::User(u) if u.role == Role::CompanyAdmin)
    }
}

/// SHA-256 of a secret, in hex: how tokens are stored and looked up.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new API token secret.
pub fn new_token_secret() -> String {
    format!("genai_{}", hex(&random_bytes::<32>()))
}

/// Equality of two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The permits for password work: one per core, shared by the whole process.
fn password_work() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(password_work_permits()))
}

/// How many Argon2 computations may run at once: the number of cores.
pub fn password_work_permits() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// Runs one piece of password work on the blocking pool once a permit is free.
async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let _permit = password_work()
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the password-hashing permits were closed".into()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::Internal(format!("password hashing task: {e}")))
}

fn hash_now(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| AppError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing: {e}")))
}

fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when there is nothing to verify (unknown email, or a user without a
/// password), so that every failed login costs one Argon2 verification: the answer's timing
/// tells nothing about which accounts exist or have a password. Made with the same parameters
/// as real hashes, on first use (on the blocking pool).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_now("decoy password for accounts without one").unwrap_or_default())
}

/// Hashes a password with Argon2id and a random salt (PHC string), off the async workers.
pub async fn hash_password(password: &str) -> Result<String, AppError> {
    let password = password.to_string();
    off_the_workers(move || hash_now(&password)).await?
}

/// Whether a password matches a stored PHC hash, off the async workers. With no hash (no such
/// user, or a user without a password) the same work is done against a decoy and the answer is
/// `false`.
pub async fn verify_password(password: &str, phc: Option<&str>) -> Result<bool, AppError> {
    let password = password.to_string();
    let phc = phc.map(str::to_string);
    off_the_workers(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let _ = verify_now(&password, decoy_hash());
            false
        }
    })
    .await
}

/// How long a resolved API token is trusted without asking the database again. A revocation or
/// a disabling made on this instance empties the cache at once ([`TokenCache::invalidate`]);
/// one made on another instance is seen here within this time (the contract allows 2 s).
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many tokens are remembered; beyond it the cache starts again empty.
const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// API tokens recently resolved to their user, by token hash.
///
/// Authenticating a user's token was one database read per request (the token, joined with
/// its user, checked usable now). Under load that read is a good part of a cheap request's
/// cost, and every request repeats it for the same few tokens; so a resolution is remembered
/// for [`TOKEN_CACHE_TTL`]. Invalidation is immediate on this instance: the use cases that
/// revoke a token or disable a user call [`TokenCache::invalidate`] right after their commit,
/// and a generation counter keeps a lookup that raced with that commit from putting back what
/// it read before. An expiry is checked on every hit against the application's clock. Only
/// successful resolutions are kept: an unknown token always asks the database.
#[derive(Default)]
pub struct TokenCache {
    inner: std::sync::Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    generation: u64,
    entries: std::collections::HashMap<String, Cached>,
}

#[derive(Clone)]
struct Cached {
    user: User,
    token: ApiToken,
    fetched: std::time::Instant,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding this lock cannot leave it inconsistent (plain map operations).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The remembered resolution of a token hash, if fresh and not expired at `now`; with the
    /// generation to pass to [`TokenCache::insert`] after asking the database otherwise.
    pub fn get(&self, hash: &str, now: Instant) -> Result<(User, ApiToken), u64> {
        let mut inner = self.lock();
        match inner.entries.get(hash) {
            Some(c) if c.fetched.elapsed() < TOKEN_CACHE_TTL && c.token.expires_at.is_none_or(|e| e > now) => {
                Ok((c.user.clone(), c.token.clone()))
            }
            Some(_) => {
                inner.entries.remove(hash);
                Err(inner.generation)
            }
            None => Err(inner.generation),
        }
    }

    /// Remembers a resolution read from the database, unless the cache was invalidated since
    /// `generation` was taken (the read may predate a revocation).
    pub fn insert(&self, hash: &str, generation: u64, user: &User, token: &ApiToken) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= TOKEN_CACHE_CAPACITY {
            inner.entries.clear();
        }
        let entry = Cached { user: user.clone(), token: token.clone(), fetched: std::time::Instant::now() };
        inner.entries.insert(hash.to_string(), entry);
    }

    /// Records that a token's use was written, so that hits do not write it again.
    pub fn used(&self, hash: &str, at: Instant) {
        if let Some(c) = self.lock().entries.get_mut(hash) {
            c.token.last_used_at = Some(at);
        }
    }

    /// Forgets everything (a token was revoked or a user disabled on this instance).
    pub fn invalidate(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_round_trip() {
        let h = hash_password("correct horse").await.unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)).await.unwrap_or(false));
        assert!(!verify_password("wrong horse", Some(&h)).await.unwrap_or(true));
        assert!(!verify_password("anything", None).await.unwrap_or(true));
        assert!(decoy_hash().starts_with("$argon2id$"), "the decoy must cost what a real hash costs");
    }

    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"ac"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert_eq!(new_token_secret().len(), "genai_".len() + 64);
    }

    fn resolved(expires_at: Option<Instant>) -> (User, ApiToken) {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z").unwrap().to_utc();
        let user = User {
            id: genai_core::UserId("usr_1".into()),
            company_id: genai_core::CompanyId("cmp_1".into()),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            role: Role::CompanyAdmin,
            password_hash: None,
            created_at: at,
            disabled_at: None,
        };
        let token = ApiToken {
            id: "tok_1".into(),
            user_id: user.id.clone(),
            token_hash: "h".into(),
            description: String::new(),
            created_at: at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        (user, token)
    }

    #[test]
    fn token_cache_hits_until_invalidated_and_refuses_what_raced_an_invalidation() {
        let cache = TokenCache::default();
        let (user, token) = resolved(None);
        let now = token.created_at;
        let generation = cache.get("h", now).map(|_| ()).unwrap_err();
        cache.insert("h", generation, &user, &token);
        assert_eq!(cache.get("h", now).map(|(u, _)| u.email).ok().as_deref(), Some("ada@example.com"));
        cache.used("h", now);
        assert_eq!(cache.get("h", now).map(|(_, t)| t.last_used_at).ok(), Some(Some(now)), "a hit sees its use");
        // A lookup that began before a revocation must not put back what it read.
        let before = cache.get("other", now).map(|_| ()).unwrap_err();
        cache.invalidate();
        assert!(cache.get("h", now).is_err(), "invalidation empties the cache");
        cache.insert("h", before, &user, &token);
        assert!(cache.get("h", now).is_err(), "a read from before the invalidation is not kept");
    }

    #[test]
    fn token_cache_checks_expiry_on_every_hit() {
        let cache = TokenCache::default();
        let (user, token) = resolved(None);
        let expires = token.created_at + chrono::Duration::minutes(1);
        let (_, expiring) = resolved(Some(expires));
        let generation = cache.get("h", token.created_at).map(|_| ()).unwrap_err();
        cache.insert("h", generation, &user, &expiring);
        assert!(cache.get("h", token.created_at).is_ok());
        assert!(cache.get("h", expires).is_err(), "expired while cached");
    }
}
