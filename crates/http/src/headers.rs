//! Response headers that protect the API surfaces, and answers that show a secret once.
//!
//! The web UI sets its own headers (`web::security_headers`). Here:
//! - every answer gets `X-Content-Type-Options: nosniff`, so no browser ever treats an API
//!   answer (which may echo what a client sent) as HTML or script;
//! - `/api/v1` and `/api/openapi.json` answers are data, never documents: their
//!   Content-Security-Policy allows nothing at all;
//! - the API browser at `/api/docs` may load its vendored script and styles from this origin
//!   only (Swagger UI sets inline styles, so `style-src` also allows `'unsafe-inline'`);
//! - API errors that the framework raised before a handler (should any slip past
//!   [`crate::body::guard_api_request`]) are rewritten into the API's error envelope, so a client
//!   of `/api/v1` never has to parse plain text;
//! - [`ShownOnce`] marks an answer that carries a secret shown only once (an API token now,
//!   runtime keys later) with `Cache-Control: no-store`, so no cache or browser history keeps it.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use genai_app::error::ErrorCode;
use serde_json::json;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'self'";

/// Whether a path belongs to the JSON API (as opposed to the web UI or the API browser).
pub fn is_api_path(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/") || path == "/api/openapi.json"
}

fn is_docs_path(path: &str) -> bool {
    path == "/api/docs" || path.starts_with("/api/docs/")
}

/// Middleware of the whole router: the headers above, and the error envelope for `/api/v1`.
pub async fn protect(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let mut res = next.run(req).await;
    if is_api_path(&path) {
        res = envelope_framework_errors(res, method.as_str(), &path).await;
    }
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if is_api_path(&path) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
    } else if is_docs_path(&path) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    res
}

/// An error answer that is not JSON came from the framework, not from our handlers (they always
/// answer the envelope): re-say it in the envelope, keeping its status and its text.
async fn envelope_framework_errors(res: Response, method: &str, path: &str) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::body::is_json_content_type);
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text =
        axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(crate::body::API_BODY_LIMIT),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(None),
        StatusCode::NOT_FOUND => ApiError::no_route(method, path),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(method, path),
        s if s.is_server_error() => ApiError::internal(format!("{s} from the framework: {text}")),
        _ => ApiError::refusal(ErrorCode::InvalidRequest, text, json!({})),
    };
    let mut out = error.into_response();
    // Keep what the framework said about the answer besides its body (e.g. `Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().entry(name.clone()).or_insert(value.clone());
        }
    }
    out
}

/// An answer that shows a secret once: sent with `Cache-Control: no-store`.
#[derive(Debug)]
pub struct ShownOnce<T>(pub T);

impl<T: IntoResponse> IntoResponse for ShownOnce<T> {
    fn into_response(self) -> Response {
        let mut res = self.0.into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert!(is_api_path("/api/v1/resources") && is_api_path("/api/openapi.json") && is_api_path("/api/v1"));
        assert!(!is_api_path("/api/v10") && !is_api_path("/api/docs") && !is_api_path("/resources"));
        assert!(is_docs_path("/api/docs") && is_docs_path("/api/docs/init.js"));
    }

    #[test]
    fn shown_once_is_not_stored() {
        let res = ShownOnce((StatusCode::CREATED, "secret")).into_response();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers().get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    }
}
