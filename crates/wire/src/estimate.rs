//! What a call reserves before it reaches the model (RUNTIME.md §5): an **upper bound** of its
//! prompt tokens, and its output limit.
//!
//! # The prompt bound and why it is one
//!
//! The bound is the UTF-8 byte count of every text that reaches the model (message texts, tool
//! call names and arguments, tool results, tool definitions), plus fixed allowances for what the
//! serving side adds around them. For the tokenizers of today's chat models this is an upper
//! bound of the tokens of that text:
//!
//! - *Byte-level BPE* (GPT-2/GPT-4 style, Llama 3, Qwen, Mistral's tekken): every token stands
//!   for a non-empty sequence of the text's bytes and the tokens of a text partition it, so a
//!   text of *n* bytes has at most *n* tokens.
//! - *SentencePiece with byte fallback* (Llama 2, Gemma) and *WordPiece* (BERT embedders): every
//!   token covers at least one character, i.e. at least one byte; the only token that covers
//!   none is a leading "▁"/`[CLS]`-style marker, counted in the per-message or per-input
//!   allowance below.
//!
//! What the text alone does not show is the chat template: role markers and separators
//! (ChatML and Llama 3 spend 5 tokens per message), a beginning-of-text token, the opening of
//! the answer, and default system text that some templates insert when the client sends none
//! (Qwen 2.5 and Llama 3.1 add 20–30 tokens). Hence [`MESSAGE_ALLOWANCE`] per message and
//! [`REQUEST_ALLOWANCE`] per call. Tool definitions are rendered by templates as JSON, some of
//! them indented; they are counted at twice their compact JSON size plus [`TOOL_ALLOWANCE`]
//! each, and [`TOOLS_ALLOWANCE`] covers the instructions templates put around the tool list.
//!
//! Images are the exception: their token count depends on the model's vision encoder, not on
//! the bytes of the (possibly remote) image. Each counts [`IMAGE_ALLOWANCE`], which covers the
//! largest image of OpenAI's and Anthropic's models; a vision model that spends more on an image
//! is still charged what it reports (usage is never under-counted), only its reservation was
//! smaller.
//!
//! The bound is only a reservation: the call settles with the usage the upstream reports, and
//! the difference returns to the quota.

use std::io;

use serde::Serialize;

use crate::openai::{ChatRequest, Content, EmbeddingInput, EmbeddingsRequest, Message};

/// Per call: a beginning-of-text token, the opening of the answer, default system text.
pub const REQUEST_ALLOWANCE: i64 = 64;
/// Per message: role markers and separators of the chat template.
pub const MESSAGE_ALLOWANCE: i64 = 8;
/// Per call with tools: the instructions templates wrap around the tool list.
pub const TOOLS_ALLOWANCE: i64 = 256;
/// Per tool, on top of twice its compact JSON size.
pub const TOOL_ALLOWANCE: i64 = 16;
/// Per image part.
pub const IMAGE_ALLOWANCE: i64 = 4096;
/// Per embeddings input: start and end markers (`[CLS]`, `[SEP]`, BOS, EOS).
pub const EMBEDDING_INPUT_ALLOWANCE: i64 = 8;

/// What a chat call reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatEstimate {
    /// Upper bound of the prompt's tokens.
    pub prompt_tokens: i64,
    /// The client's explicit output limit per choice (`max_completion_tokens`, else `max_tokens`).
    pub max_output_tokens: Option<i64>,
    /// How many choices will be produced (`n`, default 1); each produces up to the limit.
    pub choices: i64,
}

impl ChatEstimate {
    /// The output to reserve: the explicit limit, else `default_per_choice` (which the metering
    /// engine derives from what remains of the quota), times the number of choices.
    pub fn output_reservation(&self, default_per_choice: i64) -> i64 {
        self.max_output_tokens.unwrap_or(default_per_choice).saturating_mul(self.choices)
    }
}

/// Estimates a chat call (in OpenAI's shape; the product family's is translated first).
pub fn chat(request: &ChatRequest) -> ChatEstimate {
    let mut bound = REQUEST_ALLOWANCE;
    for m in &request.messages {
        bound = bound.saturating_add(message_bound(m));
    }
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) {
        bound = bound.saturating_add(TOOLS_ALLOWANCE);
        for t in tools {
            bound = bound.saturating_add(json_len(t).saturating_mul(2)).saturating_add(TOOL_ALLOWANCE);
        }
    }
    ChatEstimate {
        prompt_tokens: bound,
        max_output_tokens: request.max_output_tokens(),
        choices: request.n.unwrap_or(1).max(1),
    }
}

fn message_bound(m: &Message) -> i64 {
    let mut bound = MESSAGE_ALLOWANCE;
    match &m.content {
        Some(Content::Text(t)) => bound = bound.saturating_add(len(t)),
        Some(Content::Parts(parts)) => {
            for p in parts {
                let part = match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => len(t),
                    ("image_url", _) => IMAGE_ALLOWANCE,
                    // Audio, files and parts not known yet: all they hold is in their JSON.
                    _ => json_len(p),
                };
                bound = bound.saturating_add(part);
            }
        }
        None => {}
    }
    for t in m.tool_calls.iter().flatten() {
        bound = bound.saturating_add(len(&t.id)).saturating_add(len(&t.function.name));
        bound = bound.saturating_add(len(&t.function.arguments));
    }
    bound = bound.saturating_add(m.name.as_deref().map_or(0, len));
    bound = bound.saturating_add(m.tool_call_id.as_deref().map_or(0, len));
    if !m.extra.is_empty() {
        bound = bound.saturating_add(json_len(&m.extra));
    }
    bound
}

/// Upper bound of an embeddings call's input tokens (token ids count as themselves).
pub fn embeddings(request: &EmbeddingsRequest) -> i64 {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let inputs = count(request.input.len());
    let content = match &request.input {
        EmbeddingInput::Text(t) => len(t),
        EmbeddingInput::Texts(v) => v.iter().fold(0i64, |a, t| a.saturating_add(len(t))),
        EmbeddingInput::Tokens(v) => count(v.len()),
        EmbeddingInput::TokenLists(v) => v.iter().fold(0i64, |a, l| a.saturating_add(count(l.len()))),
    };
    content.saturating_add(inputs.saturating_mul(EMBEDDING_INPUT_ALLOWANCE))
}

/// Upper bound of the output tokens of `text` (a stream cut off midway is charged this for
/// what it produced when the upstream sent no usage).
pub fn text_tokens(text: &str) -> i64 {
    len(text)
}

fn len(s: &str) -> i64 {
    i64::try_from(s.len()).unwrap_or(i64::MAX)
}

/// Compact JSON size, counted without building the text.
fn json_len<T: Serialize>(value: &T) -> i64 {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Values that came from JSON serialise back without error; were one to fail, counting
    // what was written so far would undercount, so the bound gives up instead.
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => i64::try_from(c.0).unwrap_or(i64::MAX),
        Err(_) => i64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatRequest;
    use serde_json::json;

    fn req(v: serde_json::Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_is_counted_in_utf8_bytes_with_allowances() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "héllo wörld"}
        ]}));
        let e = chat(&r);
        assert_eq!(e.prompt_tokens, REQUEST_ALLOWANCE + 2 * MESSAGE_ALLOWANCE + 8 + 13);
        assert_eq!((e.max_output_tokens, e.choices), (None, 1));
        assert_eq!(e.output_reservation(4096), 4096);
    }

    #[test]
    fn parts_tool_calls_and_tools() {
        let tool = json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
        let tool_json_len = i64::try_from(tool.to_string().len()).unwrap();
        let r = req(json!({"model": "m", "max_tokens": 10, "max_completion_tokens": 20, "n": 3,
        "tools": [tool],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "abc"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ]}));
        let e = chat(&r);
        let want = REQUEST_ALLOWANCE
            + 3 * MESSAGE_ALLOWANCE
            + (3 + IMAGE_ALLOWANCE)
            + (2 + 1 + 2)
            + (2 + 2)
            + TOOLS_ALLOWANCE
            + 2 * tool_json_len
            + TOOL_ALLOWANCE;
        assert_eq!(e.prompt_tokens, want);
        assert_eq!(e.max_output_tokens, Some(20));
        assert_eq!(e.output_reservation(4096), 60);
    }

    #[test]
    fn the_bound_is_at_least_the_fake_upstreams_word_count() {
        // Every whitespace-separated word has at least one byte: the fake upstream's prompt
        // count (words) can never exceed the bound.
        for text in ["", "a", "a b c", "  spaced   out  ", "ünïcödé wörds hére"] {
            let r = req(json!({"model": "m", "messages": [{"role": "user", "content": text}]}));
            let words = i64::try_from(text.split_whitespace().count()).unwrap();
            assert!(chat(&r).prompt_tokens >= words);
        }
    }

    #[test]
    fn embeddings_bound() {
        let e = |v| embeddings(&serde_json::from_value(json!({"model": "e", "input": v})).unwrap());
        assert_eq!(e(json!("abc")), 3 + EMBEDDING_INPUT_ALLOWANCE);
        assert_eq!(e(json!(["ab", "ü"])), 4 + 2 * EMBEDDING_INPUT_ALLOWANCE);
        assert_eq!(e(json!([1, 2, 3])), 3 + EMBEDDING_INPUT_ALLOWANCE);
        assert_eq!(e(json!([[1], [2, 3]])), 3 + 2 * EMBEDDING_INPUT_ALLOWANCE);
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let r =
            req(json!({"model": "m", "max_tokens": i64::MAX, "n": 2, "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(chat(&r).output_reservation(1), i64::MAX);
    }
}
