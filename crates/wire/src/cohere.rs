//! The product family's embeddings format: a Cohere Embed body sent to `POST R/invoke` (Bedrock's
//! InvokeModel), answered with Cohere's `embeddings_floats` shape (RUNTIME.md §3,
//! reference/mendix-genai.md §8.6).
//!
//! The limits are the product family's: at most 96 texts per call and, when `truncate` is
//! `NONE` (Bedrock's default), at most 2,048 characters per text.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{parse_request, WireError};

/// Texts per call, at most.
pub const MAX_TEXTS: usize = 96;
/// Characters per text, at most, when `truncate` is `NONE`.
pub const MAX_TEXT_CHARS: usize = 2048;

/// The body of `POST R/invoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// What to embed.
    pub texts: Vec<String>,
    /// `search_document`, `search_query`, `classification` or `clustering`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<InputType>,
    /// What to do with an over-long text; `NONE` (refuse it) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<Truncate>,
    /// `float` (as a string or a one-element list): the only type served.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "embedding_types")]
    pub embedding_types: Option<Vec<String>>,
}

/// `input_type`. Cohere uses it to prefix the text for the model; an OpenAI-compatible upstream
/// has no such parameter, so it is checked and not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// Texts to be stored and searched.
    SearchDocument,
    /// A query searching them.
    SearchQuery,
    /// Texts to classify.
    Classification,
    /// Texts to cluster.
    Clustering,
}

/// `truncate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Truncate {
    /// Refuse a text over the limit.
    #[default]
    None,
    /// Keep the end of an over-long text.
    Start,
    /// Keep the start of an over-long text.
    End,
}

fn embedding_types<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s])),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(de::Error::custom("expected a string or an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(de::Error::custom("expected a string or an array of strings")),
    }
}

impl EmbedRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<EmbedRequest, WireError> {
        let request: EmbedRequest = parse_request(body)?;
        request.validate()?;
        Ok(request)
    }

    /// The truncation rule in force.
    pub fn truncation(&self) -> Truncate {
        self.truncate.unwrap_or_default()
    }

    /// Checks the product family's limits, naming the field.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.texts.is_empty() {
            return Err(WireError::validation("texts", "must hold at least one text"));
        }
        if self.texts.len() > MAX_TEXTS {
            return Err(WireError::validation(
                "texts",
                format!("at most {MAX_TEXTS} texts per call, got {}", self.texts.len()),
            ));
        }
        if self.truncation() == Truncate::None {
            for (i, t) in self.texts.iter().enumerate() {
                // Cheap first: a text of at most 2,048 bytes has at most 2,048 characters.
                if t.len() > MAX_TEXT_CHARS {
                    let chars = t.chars().count();
                    if chars > MAX_TEXT_CHARS {
                        return Err(WireError::validation(
                            format!("texts[{i}]"),
                            format!(
                                "has {chars} characters; the maximum with truncate NONE is {MAX_TEXT_CHARS} \
                                 (split the text, or use truncate START or END)"
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(types) = &self.embedding_types {
            if let Some(other) = types.iter().find(|t| t.as_str() != "float") {
                return Err(WireError::validation(
                    "embedding_types",
                    format!("`{other}` is not served; only float embeddings are"),
                ));
            }
        }
        Ok(())
    }

    /// The texts as they reach the model: with `START` or `END`, a text over 2,048 characters
    /// keeps its last or first 2,048 characters.
    pub fn model_texts(&self) -> Vec<String> {
        let truncate = self.truncation();
        self.texts
            .iter()
            .map(|t| {
                if t.len() <= MAX_TEXT_CHARS {
                    return t.clone();
                }
                let chars = t.chars().count();
                match truncate {
                    Truncate::None => t.clone(),
                    _ if chars <= MAX_TEXT_CHARS => t.clone(),
                    Truncate::End => t.chars().take(MAX_TEXT_CHARS).collect(),
                    Truncate::Start => t.chars().skip(chars - MAX_TEXT_CHARS).collect(),
                }
            })
            .collect()
    }
}

/// The answer of `invoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The call's id.
    pub id: String,
    /// Always `embeddings_floats`.
    pub response_type: String,
    /// The texts, as sent.
    pub texts: Vec<String>,
    /// One vector per text, in order.
    pub embeddings: Vec<Vec<f64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(texts: Vec<String>, truncate: Option<&str>) -> Vec<u8> {
        let mut b = json!({"texts": texts, "input_type": "search_document", "embedding_types": "float"});
        if let Some(t) = truncate {
            b["truncate"] = json!(t);
        }
        b.to_string().into_bytes()
    }

    #[test]
    fn limits_of_the_product_family() {
        let many = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        assert!(EmbedRequest::parse(&body(many(96), None)).is_ok());
        let e = EmbedRequest::parse(&body(many(97), None)).unwrap_err();
        assert_eq!((e.code(), e.field.as_deref()), ("validation_failed", Some("texts")));
        assert!(e.message.contains("96"), "{e}");
        let e = EmbedRequest::parse(&body(vec![], None)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("texts"));

        // 2,048 characters (of two bytes each) pass, 2,049 do not, with NONE and by default.
        let ok = "é".repeat(2048);
        let long = "é".repeat(2049);
        for truncate in [None, Some("NONE")] {
            assert!(EmbedRequest::parse(&body(vec![ok.clone()], truncate)).is_ok());
            let e = EmbedRequest::parse(&body(vec!["a".into(), long.clone()], truncate)).unwrap_err();
            assert_eq!((e.code(), e.field.as_deref()), ("validation_failed", Some("texts[1]")));
        }
        for truncate in ["START", "END"] {
            assert!(EmbedRequest::parse(&body(vec![long.clone()], Some(truncate))).is_ok());
        }
    }

    #[test]
    fn truncation_keeps_the_side_asked_for() {
        let text = format!("{}{}", "a".repeat(2048), "b".repeat(10));
        let mut req = EmbedRequest::parse(&body(vec![text.clone(), "short".into()], Some("END"))).unwrap();
        assert_eq!(req.model_texts(), vec!["a".repeat(2048), "short".into()]);
        req.truncate = Some(Truncate::Start);
        assert_eq!(req.model_texts()[0], format!("{}{}", "a".repeat(2038), "b".repeat(10)));
    }

    #[test]
    fn field_errors() {
        let cases = [
            (json!({"texts": "one"}), "texts", "invalid_request"),
            (json!({"texts": ["a"], "input_type": "poetry"}), "input_type", "invalid_request"),
            (json!({"texts": ["a"], "truncate": "MIDDLE"}), "truncate", "invalid_request"),
            (json!({"texts": ["a"], "embedding_types": ["int8"]}), "embedding_types", "validation_failed"),
            (json!({"texts": ["a"], "embedding_types": 3}), "embedding_types", "invalid_request"),
        ];
        for (b, field, code) in cases {
            let e = EmbedRequest::parse(b.to_string().as_bytes()).unwrap_err();
            assert_eq!((e.field.as_deref(), e.code()), (Some(field), code), "{b}: {e}");
        }
        let ok = EmbedRequest::parse(br#"{"texts": ["a"], "embedding_types": ["float"]}"#).unwrap();
        assert_eq!(ok.embedding_types, Some(vec!["float".to_string()]));
    }
}
