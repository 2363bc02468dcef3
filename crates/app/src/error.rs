//! The application's error: a product rule (with its stable code) or an access problem, and the
//! one list of error codes every surface answers with ([`ErrorCode`]).
//!
//! Each surface maps an [`AppError`] once: the REST API to its `{"error": {code, message,
//! details}}` envelope, the web UI to a message page, the CLI prints the API's code. The codes
//! are an enum rather than string literals so a surface cannot misspell one, and so the
//! list in `API.md` can be checked against this one place.

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
    /// Too many failed logins from this address for this account (or from this address at
    /// all); try again later.
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// An idempotency key reused with another request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    /// The database failed; logged with its whole source chain, hidden from clients.
    #[error("storage failed: {0}")]
    Store(#[source] StoreError),
    /// Something else broke inside; logged, and hidden from clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => AppError::IdempotencyConflict,
            StoreError::NotFound => AppError::NotFound("the record".into()),
            other => AppError::Store(other),
        }
    }
}

impl AppError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> AppError {
        AppError::Domain(DomainError::field(name, message))
    }

    /// The stable code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Domain(d) => ErrorCode::of_domain(d),
            AppError::Unauthenticated => ErrorCode::Unauthenticated,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            AppError::TooManyAttempts { .. } => ErrorCode::TooManyRequests,
            AppError::IdempotencyConflict => ErrorCode::IdempotencyConflict,
            AppError::Store(_) | AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether this is a failure inside the server (to be logged, and hidden from clients).
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }

    /// The error and every error it was caused by, `: `-separated: what the log shows.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            let next = e.to_string();
            // thiserror's `{0}` often repeats the source's message: say each once.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = e.source();
        }
        text
    }
}

/// Every error code the server answers with (`API.md`, "Errors"), on every surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: malformed JSON, wrong types, unknown enum values, a path that is not UTF-8, ….
    InvalidRequest,
    /// 401: missing or unknown credentials.
    Unauthenticated,
    /// 403: the role does not allow it.
    Forbidden,
    /// 403: an eligibility check fails.
    NotEligible,
    /// 404: unknown id or route, or another company's id.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: not enough cloud tokens.
    InsufficientTokens,
    /// 409: the resource's deprovisioning is scheduled.
    DeprovisioningScheduled,
    /// 409: no downgrade to cancel.
    NoDowngradeScheduled,
    /// 409: no deprovisioning to cancel.
    NoDeprovisioningScheduled,
    /// 409: the resource is deprovisioned.
    AlreadyDeprovisioned,
    /// 409: live knowledge bases use this embeddings resource.
    EmbeddingsInUse,
    /// 409: a scheduled change just became due (retried inside; clients should not see it).
    ScheduledChangeDue,
    /// 409: an `Idempotency-Key` reused with a different request.
    IdempotencyConflict,
    /// 409: removing the last member of a resource's team.
    LastMember,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: fields are invalid.
    ValidationFailed,
    /// 422: the plan asked for is the plan in force.
    PlanUnchanged,
    /// 422: knowledge bases have one plan.
    PlanChangeNotSupported,
    /// 429: throttled.
    TooManyRequests,
    /// 500: a failure inside the server.
    Internal,
    /// 503: the request did not complete within the server's request timeout.
    RequestTimeout,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotEligible,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InsufficientTokens,
        ErrorCode::DeprovisioningScheduled,
        ErrorCode::NoDowngradeScheduled,
        ErrorCode::NoDeprovisioningScheduled,
        ErrorCode::AlreadyDeprovisioned,
        ErrorCode::EmbeddingsInUse,
        ErrorCode::ScheduledChangeDue,
        ErrorCode::IdempotencyConflict,
        ErrorCode::LastMember,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationFailed,
        ErrorCode::PlanUnchanged,
        ErrorCode::PlanChangeNotSupported,
        ErrorCode::TooManyRequests,
        ErrorCode::Internal,
        ErrorCode::RequestTimeout,
    ];

    /// The wire form: stable snake_case.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotEligible => "not_eligible",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InsufficientTokens => "insufficient_tokens",
            ErrorCode::DeprovisioningScheduled => "deprovisioning_scheduled",
            ErrorCode::NoDowngradeScheduled => "no_downgrade_scheduled",
            ErrorCode::NoDeprovisioningScheduled => "no_deprovisioning_scheduled",
            ErrorCode::AlreadyDeprovisioned => "already_deprovisioned",
            ErrorCode::EmbeddingsInUse => "embeddings_in_use",
            ErrorCode::ScheduledChangeDue => "scheduled_change_due",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::LastMember => "last_member",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::PlanUnchanged => "plan_unchanged",
            ErrorCode::PlanChangeNotSupported => "plan_change_not_supported",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Internal => "internal",
            ErrorCode::RequestTimeout => "request_timeout",
        }
    }

    /// The code of a domain error (the domain names its own codes; this keeps them in one enum).
    pub fn of_domain(d: &DomainError) -> ErrorCode {
        match d {
            DomainError::Validation(_) => ErrorCode::ValidationFailed,
            DomainError::NotEligible(_) => ErrorCode::NotEligible,
            DomainError::InsufficientTokens { .. } => ErrorCode::InsufficientTokens,
            DomainError::DeprovisioningScheduled(_) => ErrorCode::DeprovisioningScheduled,
            DomainError::NoDowngradeScheduled => ErrorCode::NoDowngradeScheduled,
            DomainError::NoDeprovisioningScheduled => ErrorCode::NoDeprovisioningScheduled,
            DomainError::AlreadyDeprovisioned => ErrorCode::AlreadyDeprovisioned,
            DomainError::EmbeddingsInUse(_) => ErrorCode::EmbeddingsInUse,
            DomainError::PlanUnchanged(_) => ErrorCode::PlanUnchanged,
            DomainError::PlanChangeNotSupported => ErrorCode::PlanChangeNotSupported,
            DomainError::ScheduledChangeDue => ErrorCode::ScheduledChangeDue,
            DomainError::LastMember(_) => ErrorCode::LastMember,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genai_core::CloudTokens;

    #[test]
    fn domain_codes_agree_with_the_domain() {
        let samples = [
            DomainError::field("x", "bad"),
            DomainError::NotEligible(vec![]),
            DomainError::InsufficientTokens { required: CloudTokens(2), available: CloudTokens(1) },
            DomainError::DeprovisioningScheduled(String::new()),
            DomainError::NoDowngradeScheduled,
            DomainError::NoDeprovisioningScheduled,
            DomainError::AlreadyDeprovisioned,
            DomainError::EmbeddingsInUse(vec![]),
            DomainError::PlanUnchanged("small".into()),
            DomainError::PlanChangeNotSupported,
            DomainError::ScheduledChangeDue,
            DomainError::LastMember("ada@example.com".into()),
        ];
        for d in samples {
            assert_eq!(ErrorCode::of_domain(&d).as_str(), d.code());
        }
    }

    #[test]
    fn codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(c.as_str().chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'), "{c}");
        }
    }

    #[test]
    fn store_failures_keep_their_cause() {
        let e = AppError::from(StoreError::Stale);
        assert!(e.is_internal());
        assert!(e.chain().contains("changed concurrently"), "{}", e.chain());
    }
}
