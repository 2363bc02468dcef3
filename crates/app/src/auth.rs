//! Credentials: who is calling.
//!
//! API tokens are 32 random bytes shown once and stored only as their SHA-256 (a token has full
//! entropy, so a fast hash is safe and keeps authentication off the request path's critical
//! cost). Passwords are people-chosen, so they get Argon2id. The operator token comes from the
//! environment and is compared by hash in constant time.

use crate::ids::random_bytes;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};
use genai_store::{Role, User};
use sha2::{Digest, Sha256};

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

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// SHA-256 of a secret, in hex: how tokens are stored and looked up.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new API token secret.
pub fn new_token_secret() -> String {
    format!("genai_{}", hex(&random_bytes::<32>()))
}

/// Constant-time equality of two byte strings of equal length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes a password with Argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether a password matches a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
    }

    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"ac"));
    }
}
