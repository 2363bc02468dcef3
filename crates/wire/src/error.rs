//! What the wire layer reports: a request it cannot accept ([`WireError`], always a 400 in both
//! wire formats, naming the field) and an upstream answer it cannot use ([`BadAnswer`], which the
//! provider layer turns into a 502).
//!
//! Fields are named as JSON paths in the client's own format, `messages[2].content[0].toolUse.input`,
//! so that the person reading the error can find the spot in what they sent.

use std::fmt;

/// Which of the two 400 codes of RUNTIME.md §3 a refusal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireErrorKind {
    /// The body is not what the format describes: not JSON, a field of the wrong type, an unknown
    /// content block. Code `invalid_request`.
    InvalidRequest,
    /// The body is well formed but breaks a rule: too many texts, a tool result without its tool
    /// use, a limit out of range. Code `validation_failed`.
    ValidationFailed,
}

impl WireErrorKind {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            WireErrorKind::InvalidRequest => "invalid_request",
            WireErrorKind::ValidationFailed => "validation_failed",
        }
    }
}

/// A request the Runtime API refuses with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// `invalid_request` or `validation_failed`.
    pub kind: WireErrorKind,
    /// The JSON path of the offending field, when there is one.
    pub field: Option<String>,
    /// For a person; does not repeat the field.
    pub message: String,
}

impl WireError {
    /// An `invalid_request` refusal.
    pub fn invalid(field: impl Into<Option<String>>, message: impl Into<String>) -> WireError {
        WireError { kind: WireErrorKind::InvalidRequest, field: field.into(), message: message.into() }
    }

    /// A `validation_failed` refusal.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> WireError {
        WireError { kind: WireErrorKind::ValidationFailed, field: Some(field.into()), message: message.into() }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The HTTP status: 400 in both wire formats (RUNTIME.md §3), never 422.
    pub fn status(&self) -> u16 {
        400
    }

    /// The same refusal as OpenAI's error object, with `param` naming the field.
    pub fn to_openai(&self) -> crate::openai::ErrorResponse {
        crate::openai::ErrorResponse::new(400, self.code(), self.to_string(), self.field.clone())
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for WireError {}

/// An upstream answer that does not fit the format it claims (no choices, embeddings of the wrong
/// count, a chunk that is not JSON). The provider layer answers it with 502 `upstream_failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAnswer(pub String);

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the upstream's answer is unusable: {}", self.0)
    }
}

impl std::error::Error for BadAnswer {}

/// Parses a request body into `T`, naming the field of the first type error.
///
/// Syntax errors (not JSON at all, truncated) name no field; everything serde rejects after that
/// (wrong type, unknown enum variant, missing field) is an `invalid_request` naming the path.
pub fn parse_request<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> Result<T, WireError> {
    // Fast path: most requests are fine, and tracking the path costs time on every value.
    // Only a refused body is read a second time, to name the field.
    if let Ok(parsed) = serde_json::from_slice(body) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            WireError::invalid(None, format!("the body is not valid JSON ({inner})"))
        } else if path == "." {
            WireError::invalid(None, strip_position(&inner))
        } else {
            WireError::invalid(Some(path), strip_position(&inner))
        }
    })?;
    de.end().map_err(|e| WireError::invalid(None, format!("the body is not valid JSON ({e})")))?;
    Ok(parsed)
}

/// serde_json's message without " at line 1 column 57": the field path says where.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: i64,
    }

    #[test]
    fn type_errors_name_the_path_and_syntax_errors_do_not() {
        let e = parse_request::<Outer>(br#"{"items": [{"n": 1}, {"n": "x"}]}"#).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::InvalidRequest);
        assert_eq!(e.field.as_deref(), Some("items[1].n"));
        assert!(e.message.contains("invalid type"), "{e}");
        assert!(!e.message.contains("line 1"), "{e}");

        let e = parse_request::<Outer>(br#"{"items": [{"n": 1}"#).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.starts_with("the body is not valid JSON"), "{e}");

        let e = parse_request::<Outer>(br#"{"items": []} trailing"#).unwrap_err();
        assert_eq!(e.field, None);

        let e = parse_request::<Outer>(br#"{}"#).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.message.contains("missing field `items`"), "{e}");
    }

    #[test]
    fn display_and_openai_form_name_the_field() {
        let e = WireError::validation("texts", "at most 96 texts per call, got 97");
        assert_eq!(e.to_string(), "texts: at most 96 texts per call, got 97");
        assert_eq!(e.code(), "validation_failed");
        let o = e.to_openai();
        assert_eq!(o.error.param.as_deref(), Some("texts"));
        assert_eq!(o.error.code.as_deref(), Some("validation_failed"));
        assert_eq!(o.error.kind, "invalid_request_error");
    }
}
