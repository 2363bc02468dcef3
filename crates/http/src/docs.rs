//! The OpenAPI document, generated from the handlers' annotations (utoipa), and the API browser
//! at `/api/docs`, a Swagger UI served from assets vendored into this crate (no CDN).
//!
//! Each handler documents the answers of its own rules; [`StandardErrors`] adds the ones every
//! `/api/v1` operation can give (a malformed request, missing credentials, a body over the limit
//! or not JSON, the request timeout), so that every answer the server can send is in the
//! document. The API fuzzer (`scripts/fuzz-api`) holds the server to that.

use crate::error::{ErrorBody, ErrorDetail};
use crate::{api, portal};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

/// Adds the error answers every `/api/v1` operation can give to each one that does not list
/// them already.
struct StandardErrors;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build().into()
}

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (false, item.delete.as_mut()),
            ];
            for (takes_body, op) in operations {
                let Some(op) = op else { continue };
                let secured = op.security.is_some();
                let takes_body = takes_body || op.request_body.is_some();
                let has_query = op.parameters.iter().flatten().any(|p| p.parameter_in == ParameterIn::Query);
                let mut add = |status: &str, description: &str| {
                    op.responses.responses.entry(status.into()).or_insert_with(|| error_response(description));
                };
                add("400", "invalid_request: malformed JSON, a wrong type, an unknown value, a path that is not UTF-8");
                if secured {
                    add("401", "unauthenticated: missing or unknown token");
                    add("403", "forbidden: the role does not allow this");
                }
                add("404", "not_found: unknown id, or another company's");
                if takes_body || has_query {
                    add("422", "validation_failed: details.fields names every invalid field");
                }
                if takes_body {
                    add("413", "payload_too_large: the body is over the limit (details.limit_bytes)");
                    add("415", "unsupported_media_type: a body that is not sent as application/json");
                }
                add("503", "request_timeout: the request did not complete within the server's request timeout");
            }
        }
    }
}

/// The OpenAPI description of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "GenAI Resources API", description = "Control Center, Portal and Operator APIs of GenAI Resources."),
    paths(
        api::get_health,
        api::create_company, api::list_companies, api::get_company, api::update_company, api::create_token_grant,
        api::create_user, api::update_user, api::create_api_token, api::list_user_api_tokens, api::revoke_api_token,
        api::get_clock, api::set_clock,
        api::list_my_api_tokens, api::create_my_api_token, api::revoke_my_api_token,
        api::get_eligibility, api::get_tokens, api::list_transactions, api::get_catalog, api::list_resources,
        api::preview_resource, api::provision_resource, api::get_resource, api::change_plan, api::cancel_downgrade,
        api::deprovision_resource, api::cancel_deprovision, api::list_audit_events,
        portal::list_portal_resources, portal::get_portal_resource, portal::list_members, portal::add_member,
        portal::remove_member, portal::create_key, portal::list_keys, portal::revoke_key, portal::get_consumption,
        portal::get_consumption_csv,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &StandardErrors),
    tags((name = "Control Center", description = "For company admins"), (name = "Me", description = "The caller's own API tokens (any role)"),
         (name = "Operator", description = "For whoever runs the installation"),
         (name = "Portal", description = "For a resource's team (and the company's admins): members, runtime keys, consumption"))
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
