//! The HTTP surface: the Control Center and Operator REST APIs of `API.md`, the Portal API of
//! `RUNTIME.md` §2 ([`portal`]), the OpenAPI
//! document generated from these handlers, an API browser served from vendored assets, the
//! server-rendered Control Center web UI ([`web`]), and the loop that serves them with timeouts
//! and a connection limit ([`serve`]).
//!
//! Every request passes, outermost first: [`headers::protect`] (security headers, the error
//! envelope for anything the framework refused under `/api/v1`), the request timeout, and
//! [`body::guard_api_request`] (body limit, JSON content type, UTF-8 paths under `/api/v1`).

pub mod api;
pub mod body;
pub mod docs;
pub mod dto;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod portal;
pub mod serve;
pub mod web;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use genai_app::App;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
}

/// No route matches: the API's envelope under `/api/`, a page elsewhere.
async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    if gateway::is_runtime_path(path) {
        gateway::no_route(req.method().as_str(), path, 404)
    } else if path.starts_with("/api/") {
        error::ApiError::no_route(req.method().as_str(), path).into_response()
    } else {
        web::not_found_page()
    }
}

/// The route exists but not with this method.
async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    if gateway::is_runtime_path(path) {
        gateway::no_route(req.method().as_str(), path, 405)
    } else if path.starts_with("/api/") {
        error::ApiError::method_not_allowed(req.method().as_str(), path).into_response()
    } else {
        web::method_not_allowed_page()
    }
}

/// The router of every HTTP endpoint but the Runtime API; requests that take longer than
/// `request_timeout` are answered 503 (see [`serve`]).
pub fn router(app: Arc<App>, request_timeout: Duration) -> Router {
    router_with_runtime(app, None, request_timeout)
}

/// The router of every HTTP endpoint, with the Runtime API ([`gateway`]) when a runtime is
/// given. Requests that take longer than `request_timeout` are answered 503 (see [`serve`]),
/// except Runtime API calls, which the provider's own timeout bounds.
pub fn router_with_runtime(
    app: Arc<App>,
    runtime: Option<genai_runtime::Runtime>,
    request_timeout: Duration,
) -> Router {
    use api::*;
    let state = AppState { app };
    let gateway = runtime.map(gateway::routes::<AppState>).unwrap_or_default();
    Router::new()
        .merge(gateway)
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
        .route("/api/v1/portal/resources", get(portal::list_portal_resources))
        .route("/api/v1/portal/resources/{id}", get(portal::get_portal_resource))
        .route("/api/v1/resources/{id}/members", get(portal::list_members).post(portal::add_member))
        .route("/api/v1/resources/{id}/members/{user_id}", delete(portal::remove_member))
        .route("/api/v1/resources/{id}/keys", get(portal::list_keys).post(portal::create_key))
        .route("/api/v1/resources/{id}/keys/{key_id}", delete(portal::revoke_key))
        .route("/api/v1/resources/{id}/consumption", get(portal::get_consumption))
        .route("/api/v1/resources/{id}/consumption.csv", get(portal::get_consumption_csv))
        .merge(web::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn(body::guard_api_request))
        .layer(middleware::from_fn(move |req: Request, next: Next| serve::request_timeout(request_timeout, req, next)))
        .layer(middleware::from_fn(headers::protect))
        .with_state(state)
}
