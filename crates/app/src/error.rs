//! The application's error: a product rule (with its stable code) or an access problem. The
//! HTTP layer maps it to a status and the `{"error": {code, message, details}}` body.

use genai_core::DomainError;
use genai_store::StoreError;

/// Why a use case did not complete. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule of the product said no.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No credentials, or unknown ones.
    #[error("missing or unknown credentials")]
    Unauthenticated,
    /// Authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown id, or another company's.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed (the HTTP layer's own parsing uses this too).
    #[error("{message}")]
    InvalidRequest {
        /// For people.
        message: String,
        /// Which field, allowed values, ….
        details: serde_json::Value,
    },
    /// Too many failed logins for this account; try again later.
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// An idempotency key reused with another request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    /// Something broke inside; logged, and hidden from clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => AppError::IdempotencyConflict,
            StoreError::NotFound => AppError::NotFound("the record".into()),
            // With its causes: the store's own message only says which kind of failure it was.
            other => AppError::Internal(genai_store::error_chain(&other)),
        }
    }
}

impl AppError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> AppError {
        AppError::Domain(DomainError::field(name, message))
    }
}
