//! The HTTP surface: the Control Center and Operator REST APIs of `API.md`, the OpenAPI
//! document generated from these handlers, an API browser served from vendored assets, and the
//! server-rendered Control Center web UI ([`web`]).

pub mod api;
pub mod body;
pub mod docs;
pub mod dto;
pub mod error;
pub mod web;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use genai_app::App;
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
}

async fn not_found(req: Request) -> Response {
    error::ApiError::from(genai_app::AppError::NotFound(format!(
        "no route {} {}; the route",
        req.method(),
        req.uri().path()
    )))
    .into_response()
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": "this method is not allowed on this path", "details": {}}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// The router of every HTTP endpoint.
pub fn router(app: Arc<App>) -> Router {
    use api::*;
    let state = AppState { app };
    Router::new()
        .route("/healthz", get(get_health))
        .route("/api/openapi.json", get(docs::openapi_json))
        .route("/api/docs", get(docs::api_browser))
        .route("/api/docs/{asset}", get(docs::asset))
        .route("/api/v1/operator/companies", post(create_company).get(list_companies))
        .route("/api/v1/operator/companies/{id}", get(get_company).patch(update_company))
        .route("/api/v1/operator/companies/{id}/token-grants", post(create_token_grant))
        .route("/api/v1/operator/companies/{id}/users", post(create_user))
        .route("/api/v1/operator/users/{id}", patch(update_user))
        .route("/api/v1/operator/users/{id}/api-tokens", post(create_api_token).get(list_user_api_tokens))
        .route("/api/v1/operator/api-tokens/{id}", delete(revoke_api_token))
        .route("/api/v1/me/api-tokens", get(list_my_api_tokens).post(create_my_api_token))
        .route("/api/v1/me/api-tokens/{id}", delete(revoke_my_api_token))
        .route("/api/v1/operator/clock", get(get_clock).post(set_clock))
        .route("/api/v1/eligibility", get(get_eligibility))
        .route("/api/v1/tokens", get(get_tokens))
        .route("/api/v1/tokens/transactions", get(list_transactions))
        .route("/api/v1/catalog", get(get_catalog))
        .route("/api/v1/resources", get(list_resources).post(provision_resource))
        .route("/api/v1/resources/specification", post(preview_resource))
        .route("/api/v1/resources/{id}", get(get_resource))
        .route("/api/v1/resources/{id}/plan", post(change_plan))
        .route("/api/v1/resources/{id}/cancel-downgrade", post(cancel_downgrade))
        .route("/api/v1/resources/{id}/deprovision", post(deprovision_resource))
        .route("/api/v1/resources/{id}/cancel-deprovision", post(cancel_deprovision))
        .route("/api/v1/audit-events", get(list_audit_events))
        .merge(web::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}
