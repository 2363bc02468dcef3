//! The OpenAPI document, generated from the handlers' annotations (utoipa), and the API browser
//! at `/api/docs`, a Swagger UI served from assets vendored into this crate (no CDN).

use crate::api;
use crate::error::{ErrorBody, ErrorDetail};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

/// The OpenAPI description of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "GenAI Resources API", description = "Control Center and Operator APIs of GenAI Resources."),
    paths(
        api::get_health,
        api::create_company, api::list_companies, api::get_company, api::update_company, api::create_token_grant,
        api::create_user, api::update_user, api::create_api_token, api::list_user_api_tokens, api::revoke_api_token,
        api::get_clock, api::set_clock,
        api::list_my_api_tokens, api::create_my_api_token, api::revoke_my_api_token,
        api::get_eligibility, api::get_tokens, api::list_transactions, api::get_catalog, api::list_resources,
        api::preview_resource, api::provision_resource, api::get_resource, api::change_plan, api::cancel_downgrade,
        api::deprovision_resource, api::cancel_deprovision, api::list_audit_events,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "Control Center", description = "For company admins"), (name = "Me", description = "The caller's own API tokens (any role)"),
         (name = "Operator", description = "For whoever runs the installation"))
)]
pub struct ApiDoc;

/// The document as JSON text (also what the snapshot test compares).
pub fn openapi_document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_document()).into_response()
}

const BROWSER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GenAI Resources API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body></html>"#;

const INIT: &str = "window.ui = SwaggerUIBundle({url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null});\n";

/// `GET /api/docs`: the API browser.
pub async fn api_browser() -> Html<&'static str> {
    Html(BROWSER)
}

/// `GET /api/docs/{asset}`: the vendored Swagger UI files.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (bytes, mime): (&'static [u8], &str) = match name.as_str() {
        "swagger-ui-bundle.js" => (include_bytes!("../vendor/swagger-ui/swagger-ui-bundle.js"), "text/javascript"),
        "swagger-ui.css" => (include_bytes!("../vendor/swagger-ui/swagger-ui.css"), "text/css"),
        "init.js" => (INIT.as_bytes(), "text/javascript"),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=86400")], bytes).into_response()
}
