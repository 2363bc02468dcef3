//! The HTTP client of the CLI: one [`Api`] per invocation, holding the base URL and the bearer
//! token, and the [`CliError`] every command returns.
//!
//! Answers are kept as `serde_json::Value` rather than typed structs on purpose: the server may
//! add fields (API.md allows it), `--json` must print exactly what the server sent, and the
//! renderers only read the fields they show, so an older CLI keeps working with a newer server.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// Everything that can make a client command fail. Each variant is printed by
/// [`super::output::print_error`] and ends the process with exit code 1.
#[derive(Debug)]
pub enum CliError {
    /// The command needs a token and none was given.
    NoToken {
        /// Whether the command is an `operator` command (the hint names the operator token).
        operator: bool,
    },
    /// The `--server` value cannot be used.
    BadServerUrl {
        /// What was given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The server could not be reached, or the connection broke before an answer arrived.
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The underlying cause, as specific as the transport tells it.
        reason: String,
    },
    /// The server answered with the API's error body.
    Api {
        /// The stable machine-readable code (`validation_failed`, `not_found`, …).
        code: String,
        /// The message for a person.
        message: String,
        /// `details` of the error body (`fields`, `checks`, `required`/`available`, …).
        details: Value,
    },
    /// The server answered something that is not the API's JSON (wrong URL, a proxy page, …).
    UnexpectedAnswer {
        /// HTTP status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// Something local went wrong (e.g. the built-in catalog could not be rendered).
    Local(String),
}

/// A client of one server's `/api/v1` with one bearer token.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    operator: bool,
}

/// How long to wait for the TCP connection; an unreachable server should fail fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take. Moving the manual clock applies every due change before
/// answering, which may take a while on a large installation, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Api {
    /// Checks the base URL and builds the client. `operator` only changes the hint printed when
    /// no token is given.
    pub fn new(server: &str, token: Option<String>, operator: bool) -> Result<Api, CliError> {
        let base = server.trim().trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| CliError::BadServerUrl { url: server.to_string(), reason: e.to_string() })?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(CliError::BadServerUrl {
                    url: server.to_string(),
                    reason: "this build of the CLI speaks plain HTTP only; use an http:// URL \
                             (e.g. through a local TLS-terminating proxy or an SSH tunnel)"
                        .into(),
                })
            }
            other => {
                return Err(CliError::BadServerUrl {
                    url: server.to_string(),
                    reason: format!("unsupported scheme `{other}`, expected http://host:port"),
                })
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("genai-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("cannot set up the HTTP client: {}", error_chain(&e))))?;
        Ok(Api { http, base, token, operator })
    }

    /// The server's base URL without a trailing slash (to turn relative links into full ones).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.send(Method::GET, path, query, None, None).await
    }

    /// `POST path` with a JSON body (or none) and an optional `Idempotency-Key`.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CliError> {
        self.send(Method::POST, path, &[], body, idempotency_key).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(Method::PATCH, path, &[], Some(body), None).await
    }

    /// `DELETE path` (an empty answer is `Null`).
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, &[], None, None).await
    }

    /// `POST path` with a body of the given content type (a multipart upload).
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value, CliError> {
        let token = self.token.as_deref().ok_or(CliError::NoToken { operator: self.operator })?;
        let request = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.answer(request).await
    }

    /// `POST path` of the Runtime API with a JSON body, authenticated by a runtime key
    /// (`x-api-key`) instead of the user token.
    pub async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> Result<Value, CliError> {
        let request = self.http.post(format!("{}{}", self.base, path)).header("x-api-key", key).json(body);
        self.answer(request).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let unreachable =
            |e: reqwest::Error| CliError::Unreachable { url: self.base.clone(), reason: transport_reason(e) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        interpret(status, &bytes)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CliError> {
        // Every /api/v1 call needs a token; refusing here gives a clearer message than the
        // server's 401 and does not send a request that cannot succeed.
        let token = self.token.as_deref().ok_or(CliError::NoToken { operator: self.operator })?;
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let unreachable =
            |e: reqwest::Error| CliError::Unreachable { url: self.base.clone(), reason: transport_reason(e) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        interpret(status, &bytes)
    }
}

/// Turns a status and body into the JSON answer or the matching [`CliError`].
fn interpret(status: StatusCode, bytes: &[u8]) -> Result<Value, CliError> {
    let parsed: Option<Value> =
        if bytes.iter().all(u8::is_ascii_whitespace) { Some(Value::Null) } else { serde_json::from_slice(bytes).ok() };
    if status.is_success() {
        return parsed.ok_or_else(|| CliError::UnexpectedAnswer { status, body: snippet(bytes) });
    }
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
    match (error, code) {
        (Some(error), Some(code)) => Err(CliError::Api {
            code: code.to_string(),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("request failed").to_string()),
            details: error.get("details").cloned().unwrap_or(Value::Null),
        }),
        _ => Err(CliError::UnexpectedAnswer { status, body: snippet(bytes) }),
    }
}

/// The first few hundred characters of a body, for messages about unexpected answers.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Why a request got no answer, in as few words as the transport allows: the innermost cause of
/// a connection failure ("Connection refused (os error 111)"), else the chain without the URL
/// (the message names the server already).
fn transport_reason(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time (timed out)".into();
    }
    if error.is_connect() {
        let mut innermost: &dyn std::error::Error = &error;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        return innermost.to_string();
    }
    error_chain(&error.without_url())
}

/// An error with its causes, e.g. "error sending request: client error (Connect): tcp connect
/// error: Connection refused (os error 111)" — reqwest's top-level message alone says little.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Percent-encodes one path segment (an id typed by a person may contain anything).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("res_01H-x.y~z"), "res_01H-x.y~z");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let body = br#"{"error": {"code": "not_found", "message": "no such resource", "details": {}}}"#;
        match interpret(StatusCode::NOT_FOUND, body) {
            Err(CliError::Api { code, message, .. }) => {
                assert_eq!(code, "not_found");
                assert_eq!(message, "no such resource");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(interpret(StatusCode::BAD_GATEWAY, b"<html>"), Err(CliError::UnexpectedAnswer { .. })));
        assert!(matches!(interpret(StatusCode::OK, b""), Ok(Value::Null)));
        assert!(matches!(interpret(StatusCode::OK, b"not json"), Err(CliError::UnexpectedAnswer { .. })));
    }

    #[test]
    fn https_is_refused_with_a_reason() {
        assert!(matches!(Api::new("https://example.com", None, false), Err(CliError::BadServerUrl { .. })));
        assert!(Api::new("http://127.0.0.1:8080/", None, false).is_ok());
    }
}
