//! The API's error answer: `{"error": {"code", "message", "details"}}` with the status of
//! `API.md`, for errors of the use cases and for refusals of the HTTP layer itself (a body over
//! the limit, a body that is not JSON, an unknown route, …). Internal errors are logged here,
//! with their whole cause chain, and reach the client only as a generic message.
//!
//! [`status_of`] is the one table from [`ErrorCode`] to HTTP status; the web UI's error pages
//! use it too, so both surfaces agree on what kind of failure something is.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genai_app::error::ErrorCode;
use genai_app::AppError;
use genai_core::DomainError;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The error body of every 4xx/5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `insufficient_tokens`.
    pub code: String,
    /// For a person.
    pub message: String,
    /// Machine-readable facts: `fields`, `checks`, `required`/`available`, `limit_bytes`, ….
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The HTTP status of each error code (`API.md`, "Errors").
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::NotEligible => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InsufficientTokens
        | ErrorCode::DeprovisioningScheduled
        | ErrorCode::NoDowngradeScheduled
        | ErrorCode::NoDeprovisioningScheduled
        | ErrorCode::AlreadyDeprovisioned
        | ErrorCode::EmbeddingsInUse
        | ErrorCode::ScheduledChangeDue
        | ErrorCode::IdempotencyConflict
        | ErrorCode::LastMember => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::ValidationFailed | ErrorCode::PlanUnchanged | ErrorCode::PlanChangeNotSupported => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Value,
    /// What to log (internal errors only): the error with its causes.
    logged: Option<String>,
    retry_after_secs: Option<u64>,
}

/// The message of a validation error: every field and what is wrong with it.
fn validation_message(fields: &genai_core::error::FieldErrors) -> String {
    let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("Some fields are not valid. {}", list.join("; "))
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let code = e.code();
        let mut out =
            ApiError { code, message: e.to_string(), details: json!({}), logged: None, retry_after_secs: None };
        match &e {
            AppError::Domain(d) => match d {
                DomainError::Validation(fields) => {
                    out.message = validation_message(fields);
                    out.details = json!({ "fields": fields });
                }
                DomainError::NotEligible(checks) => out.details = json!({ "checks": checks }),
                DomainError::InsufficientTokens { required, available } => {
                    out.details = json!({"required": required, "available": available});
                }
                DomainError::EmbeddingsInUse(kbs) => {
                    out.details = json!({"knowledge_bases": kbs.iter().map(|(id, name)| json!({"id": id, "display_name": name})).collect::<Vec<_>>()});
                }
                _ => {}
            },
            AppError::Unauthenticated => {
                out.message = "Missing or unknown token: send Authorization: Bearer <token>.".into();
            }
            AppError::InvalidRequest { details, .. } => out.details = details.clone(),
            AppError::TooManyAttempts { retry_after_secs } => {
                out.details = json!({"retry_after_seconds": retry_after_secs});
                out.retry_after_secs = Some(*retry_after_secs);
            }
            AppError::Store(_) | AppError::Internal(_) => {
                out.logged = Some(e.chain());
                out.message = "Something went wrong on our side; it was logged. Please try again.".into();
            }
            AppError::Forbidden(_) | AppError::NotFound(_) | AppError::IdempotencyConflict => {}
        }
        out
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::from(AppError::Domain(e))
    }
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>, details: Value) -> ApiError {
        ApiError { code, message: message.into(), details, logged: None, retry_after_secs: None }
    }

    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>, details: Value) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message, details)
    }

    /// A 500 whose detail is logged, never sent.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::from(AppError::Internal(detail.into()))
    }

    /// A 413 `payload_too_large` for a body over `limit_bytes`.
    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The body is larger than this endpoint accepts ({limit_bytes} bytes)."),
            json!({ "limit_bytes": limit_bytes }),
        )
    }

    /// A 415 `unsupported_media_type` for a body sent as `found` (or without a type).
    pub fn unsupported_media_type(found: Option<&str>) -> ApiError {
        let message = match found {
            Some(t) => format!("The body must be JSON sent as Content-Type: application/json, not {t}."),
            None => "The body must be JSON sent as Content-Type: application/json; no Content-Type was sent.".into(),
        };
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            message,
            json!({ "expected": "application/json", "content_type": found }),
        )
    }

    /// A 404 for a path no route matches.
    pub fn no_route(method: &str, path: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("There is no route {method} {path}."), json!({}))
    }

    /// A 405 for a route that exists with other methods.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(ErrorCode::MethodNotAllowed, format!("{path} does not accept {method}."), json!({}))
    }

    /// A 503 for a request that did not complete within the server's request timeout.
    pub fn request_timeout(seconds: u64) -> ApiError {
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "The request did not complete within {seconds} s and was abandoned. It may or may not have \
                 taken effect: look, or retry with the same Idempotency-Key."
            ),
            json!({ "timeout_seconds": seconds }),
        )
    }

    /// Another refusal of the HTTP layer, by code, with a message for people.
    pub fn refusal(code: ErrorCode, message: impl Into<String>, details: Value) -> ApiError {
        ApiError::new(code, message, details)
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Status, code, message and details.
    pub fn parts(&self) -> (StatusCode, ErrorCode, String, Value) {
        (status_of(self.code), self.code, self.message.clone(), self.details.clone())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.logged {
            tracing::error!(error = %detail, "internal error");
        }
        let status = status_of(self.code);
        let body = Json(ErrorBody {
            error: ErrorDetail { code: self.code.as_str().into(), message: self.message, details: self.details },
        });
        let mut res = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let s = status_of(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code}: {s}");
        }
        assert_eq!(status_of(ErrorCode::PayloadTooLarge), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status_of(ErrorCode::UnsupportedMediaType), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn internal_details_are_not_sent() {
        let (status, code, message, _) = ApiError::internal("secret connection string").parts();
        assert_eq!((status, code), (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal));
        assert!(!message.contains("secret"));
    }
}
