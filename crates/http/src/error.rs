//! The API's error answer: `{"error": {"code", "message", "details"}}` with the status of
//! `API.md`. Internal errors are logged here and reach the client only as a generic message.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
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
    /// Machine-readable facts: `fields`, `checks`, `required`/`available`, ….
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError(AppError::Domain(e))
    }
}

impl ApiError {
    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>, details: Value) -> ApiError {
        ApiError(AppError::InvalidRequest { message: message.into(), details })
    }

    /// Status, code, message and details.
    pub fn parts(&self) -> (StatusCode, &'static str, String, Value) {
        let msg = self.0.to_string();
        match &self.0 {
            AppError::Domain(d) => {
                let (status, details) = match d {
                    DomainError::Validation(fields) => (StatusCode::UNPROCESSABLE_ENTITY, json!({ "fields": fields })),
                    DomainError::NotEligible(checks) => (StatusCode::FORBIDDEN, json!({ "checks": checks })),
                    DomainError::InsufficientTokens { required, available } => {
                        (StatusCode::CONFLICT, json!({"required": required, "available": available}))
                    }
                    DomainError::EmbeddingsInUse(kbs) => (
                        StatusCode::CONFLICT,
                        json!({"knowledge_bases": kbs.iter().map(|(id, name)| json!({"id": id, "display_name": name})).collect::<Vec<_>>()}),
                    ),
                    DomainError::PlanUnchanged(_) | DomainError::PlanChangeNotSupported => {
                        (StatusCode::UNPROCESSABLE_ENTITY, json!({}))
                    }
                    DomainError::DeprovisioningScheduled(_)
                    | DomainError::NoDowngradeScheduled
                    | DomainError::NoDeprovisioningScheduled
                    | DomainError::AlreadyDeprovisioned
                    | DomainError::ScheduledChangeDue => (StatusCode::CONFLICT, json!({})),
                };
                let message = match d {
                    DomainError::Validation(fields) => {
                        let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                        format!("Some fields are not valid. {}", list.join("; "))
                    }
                    _ => msg,
                };
                (status, d.code(), message, details)
            }
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Missing or unknown token: send Authorization: Bearer <token>.".into(),
                json!({}),
            ),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", msg, json!({})),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", msg, json!({})),
            AppError::InvalidRequest { details, .. } => {
                (StatusCode::BAD_REQUEST, "invalid_request", msg, details.clone())
            }
            AppError::TooManyAttempts { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                msg,
                json!({"retry_after_seconds": retry_after_secs}),
            ),
            AppError::IdempotencyConflict => (StatusCode::CONFLICT, "idempotency_conflict", msg, json!({})),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side; it was logged. Please try again.".into(),
                json!({}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self.0 {
            tracing::error!(error = %detail, "internal error");
        }
        let (status, code, message, details) = self.parts();
        let body = Json(json!({"error": {"code": code, "message": message, "details": details}}));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
