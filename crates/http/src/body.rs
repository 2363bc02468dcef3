//! Reading JSON bodies field by field, so every mistake names its field; and the guard every
//! `/api/v1` request passes before its handler runs.
//!
//! The guard ([`guard_api_request`]) refuses, in the API's error envelope, what would otherwise
//! reach a handler as framework defaults or, worse, be applied: a path that is not UTF-8 once
//! percent-decoded (400), a body over [`API_BODY_LIMIT`] (413 `payload_too_large` with
//! `details.limit_bytes`, without reading more than the limit), and a non-empty body that is not
//! sent as JSON (415 `unsupported_media_type`: a `text/plain` body must never change a plan just
//! because its bytes happen to parse). An empty body is accepted with any content type, since
//! several endpoints take none.
//!
//! Serde's derive would stop at the first problem and word it for programmers. Here a body is
//! read as a JSON object and each field is taken with the type it must have: malformed JSON, a
//! wrong JSON type or an unknown enum value answers 400 `invalid_request` naming the field (as
//! `API.md` says); a missing or `null` field is `None`, which the use case reports as 422
//! `validation_failed` together with every other invalid field.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

/// The largest request body the Control Center and Operator APIs accept. Their bodies are a few
/// hundred bytes; 64 KiB leaves room for long notes and descriptions and nothing more.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// Whether a `Content-Type` value names JSON (`application/json` or `application/*+json`, with
/// any parameters such as `charset`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body length a request declares (`Content-Length`), if it declares one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Middleware of `/api/v1`: see the module documentation. The body is read here (up to the
/// limit) and handed on in memory, so handlers taking `Bytes` never see more than the limit.
pub async fn guard_api_request(req: Request, next: Next) -> Response {
    if !crate::headers::is_api_path(req.uri().path()) {
        return next.run(req).await;
    }
    if req.method() == axum::http::Method::POST && crate::knowledge::is_upload_path(req.uri().path()) {
        // A document upload: multipart and larger; its handler checks both (`knowledge`).
        return next.run(req).await;
    }
    if percent_decode_str(req.uri().path()).decode_utf8().is_err() {
        return ApiError::invalid(
            "The path is not valid UTF-8 once percent-decoded; ids are plain text.",
            json!({"path": req.uri().path()}),
        )
        .into_response();
    }
    if declared_length(req.headers()).is_some_and(|n| n > API_BODY_LIMIT as u64) {
        return ApiError::payload_too_large(API_BODY_LIMIT).into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, API_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                return ApiError::payload_too_large(API_BODY_LIMIT).into_response();
            }
            return ApiError::invalid(format!("The body could not be read: {e}."), json!({})).into_response();
        }
    };
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let content_type = parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
        if !content_type.is_some_and(is_json_content_type) {
            return ApiError::unsupported_media_type(content_type).into_response();
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// A parsed JSON object body.
#[derive(Debug, Clone)]
pub struct Body {
    value: Value,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        format!("{field} must be {want}, not {}", type_name(got)),
        json!({"field": field, "expected": want}),
    )
}

impl Body {
    /// Parses bytes as a JSON object; an empty body is an empty object.
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body { value: Value::Object(Map::new()) });
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::invalid(
                format!("the body is not valid JSON: {e}"),
                json!({"line": e.line(), "column": e.column()}),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::invalid(
                format!("the body must be a JSON object, not {}", type_name(&value)),
                json!({}),
            ));
        }
        Ok(Body { value })
    }

    /// The whole body (for idempotency fingerprints).
    pub fn value(&self) -> &Value {
        &self.value
    }

    fn get(&self, path: &str) -> Result<Option<&Value>, ApiError> {
        let mut cur = &self.value;
        let mut walked = String::new();
        for part in path.split('.') {
            match cur {
                Value::Object(m) => match m.get(part) {
                    None | Some(Value::Null) => return Ok(None),
                    Some(v) => cur = v,
                },
                other => return Err(wrong_type(&walked, "an object", other)),
            }
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(part);
        }
        Ok(Some(cur))
    }

    /// A string field.
    pub fn string(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.get(field)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(field, "a string", other)),
        }
    }

    /// A boolean field.
    pub fn bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.get(field)? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(field, "a boolean", other)),
        }
    }

    /// A whole-number field.
    pub fn integer(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.get(field)? {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => Err(ApiError::invalid(
                    format!("{field} must be a whole number within ±9223372036854775807"),
                    json!({"field": field, "expected": "an integer"}),
                )),
            },
            Some(other) => Err(wrong_type(field, "a whole number", other)),
        }
    }

    /// An enum field, given its allowed values and a parser.
    pub fn one_of<T>(
        &self,
        field: &str,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.string(field)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                ApiError::invalid(
                    format!("{field} must be one of {}; got \"{s}\"", allowed.join(", ")),
                    json!({"field": field, "allowed": allowed}),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_typed() {
        let b = Body::parse(br#"{"a": "x", "n": 3, "t": true, "u": {"email": 5}, "z": null}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(b.string("a").ok().flatten().as_deref(), Some("x"));
        assert_eq!(b.integer("n").ok().flatten(), Some(3));
        assert_eq!(b.bool("t").ok().flatten(), Some(true));
        assert!(b.string("z").is_ok_and(|v| v.is_none()));
        assert!(b.string("missing").is_ok_and(|v| v.is_none()));
        let e = b.string("u.email").err().map(|e| e.parts().2).unwrap_or_default();
        assert!(e.contains("u.email must be a string"), "{e}");
        assert!(b.integer("a").is_err());
        assert!(Body::parse(b"[1]").is_err());
        assert!(Body::parse(b"{").is_err());
    }

    #[test]
    fn json_content_types() {
        for ok in
            ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
        {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "json"] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }
}
