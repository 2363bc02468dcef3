//! OpenAI's wire format: chat completions (plain and streamed), embeddings, the models list and
//! the error object.
//!
//! This is the **canonical** shape of the gateway: most traffic arrives in it and leaves in it
//! unchanged, and the product family's format is translated into it (`crate::translate`).
//! Requests therefore keep every field they do not name in `extra` and write it back when
//! forwarded: a client may use a parameter this crate has never heard of (`seed`,
//! `response_format`, `logprobs`, …) and the upstream still receives it.
//!
//! Answers (`ChatResponse`, `ChatChunk`, `EmbeddingsResponse`) are *read* here, never rewritten:
//! the provider layer forwards the upstream's bytes as they came, so these types name only what
//! the gateway needs (usage, choices, tool calls) and ignore the rest.

use std::fmt;

use serde::de::{self, value::SeqAccessDeserializer, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::extra::deserialize_with_extra;

/// Fields a request carries that this crate does not name; forwarded as they came.
pub type Extra = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// Chat completions: the request

deserialize_with_extra!(ChatRequest, "a chat completion request" {
    required: [model = "model", messages = "messages"],
    optional: [
        max_tokens = "max_tokens",
        max_completion_tokens = "max_completion_tokens",
        n = "n",
        temperature = "temperature",
        top_p = "top_p",
        stop = "stop",
        stream = "stream",
        stream_options = "stream_options",
        tools = "tools",
        tool_choice = "tool_choice",
    ],
});
deserialize_with_extra!(StreamOptions, "stream options" { required: [], optional: [include_usage = "include_usage"] });
deserialize_with_extra!(Message, "a message" {
    required: [role = "role"],
    optional: [content = "content", name = "name", tool_calls = "tool_calls", tool_call_id = "tool_call_id"],
});
deserialize_with_extra!(ContentPart, "a content part" { required: [kind = "type"], optional: [text = "text"] });
deserialize_with_extra!(Tool, "a tool" { required: [kind = "type", function = "function"], optional: [] });
deserialize_with_extra!(FunctionDef, "a function" {
    required: [name = "name"],
    optional: [description = "description", parameters = "parameters"],
});
deserialize_with_extra!(EmbeddingsRequest, "an embeddings request" {
    required: [model = "model", input = "input"],
    optional: [encoding_format = "encoding_format", dimensions = "dimensions"],
});

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The model the client asked for (a catalog id); the provider substitutes the upstream's.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Output limit (older name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Output limit (newer name); wins over `max_tokens` when both are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// Number of choices; every one of them produces output, so it multiplies the reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Whether the answer is a stream of chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Functions the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which function the model must call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Everything else, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// The explicit output limit per choice, if any (`max_completion_tokens` wins).
    pub fn max_output_tokens(&self) -> Option<i64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Checks what the gateway relies on (the upstream checks the rest), naming the field.
    pub fn validate(&self) -> Result<(), crate::WireError> {
        use crate::WireError;
        if self.model.is_empty() {
            return Err(WireError::validation("model", "must name a model"));
        }
        if self.messages.is_empty() {
            return Err(WireError::validation("messages", "must hold at least one message"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == Role::Tool && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
                return Err(WireError::validation(
                    format!("messages[{i}].tool_call_id"),
                    "a tool message must name the tool call it answers",
                ));
            }
        }
        for (field, value) in [("max_tokens", self.max_tokens), ("max_completion_tokens", self.max_completion_tokens)] {
            if let Some(v) = value {
                if v < 1 {
                    return Err(WireError::validation(field, format!("must be at least 1, got {v}")));
                }
            }
        }
        if let Some(n) = self.n {
            if !(1..=128).contains(&n) {
                return Err(WireError::validation("n", format!("must be between 1 and 128, got {n}")));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(WireError::validation("temperature", format!("must be between 0 and 2, got {t}")));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(WireError::validation("top_p", format!("must be between 0 and 1, got {p}")));
            }
        }
        if let (Some(ToolChoice::Function(name)), Some(tools)) = (&self.tool_choice, &self.tools) {
            if !tools.iter().any(|t| &t.function.name == name) {
                return Err(WireError::validation(
                    "tool_choice.function.name",
                    format!("names `{name}`, which is not one of `tools`"),
                ));
            }
        }
        if matches!(self.tool_choice, Some(ToolChoice::Required | ToolChoice::Function(_)))
            && self.tools.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(WireError::validation("tool_choice", "asks for a tool call but `tools` is empty"));
        }
        Ok(())
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage of the whole call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Everything else, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions (older name).
    System,
    /// Instructions (newer name).
    Developer,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
    /// The result of a function call (legacy).
    Function,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What they say; `null` for an assistant message that only calls tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// A participant name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tool calls of an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Everything else, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Message {
    /// A message with text content and nothing else.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }
}

/// A message's content: a string, or a list of typed parts (text, images, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

// Written by hand rather than `#[serde(untagged)]`: untagged enums buffer the whole value before
// trying each variant, and content is the bulk of every request.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Vec::<ContentPart>::deserialize(SeqAccessDeserializer::new(seq)).map(Content::Parts)
            }
        }
        d.deserialize_any(V)
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentPart {
    /// `text`, `image_url`, `input_audio`, `file`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload of other parts (`image_url`, …), forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContentPart {
    /// A `text` part.
    pub fn text(text: impl Into<String>) -> ContentPart {
        ContentPart { kind: "text".into(), text: Some(text.into()), extra: Extra::new() }
    }
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn sequences(&self) -> &[String] {
        match self {
            Stop::One(s) => std::slice::from_ref(s),
            Stop::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Stop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Stop, E> {
                Ok(Stop::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Stop, A::Error> {
                Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(Stop::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
    /// Everything else, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function's name, description and JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDef {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Everything else (`strict`, …), forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// `"none"`: no tool call.
    None,
    /// `"auto"`: the model decides.
    Auto,
    /// `"required"`: at least one tool call.
    Required,
    /// `{"type": "function", "function": {"name"}}`: this function.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Function(name) => {
                serde_json::json!({"type": "function", "function": {"name": name}}).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => match s.as_str() {
                "none" => Ok(ToolChoice::None),
                "auto" => Ok(ToolChoice::Auto),
                "required" => Ok(ToolChoice::Required),
                other => Err(de::Error::custom(format!(
                    "unknown tool choice `{other}`, expected `none`, `auto`, `required` or a function"
                ))),
            },
            Value::Object(o) => match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                Some(name) => Ok(ToolChoice::Function(name.to_owned())),
                None => Err(de::Error::custom("a tool choice object must name `function.name`")),
            },
            _ => Err(de::Error::custom("expected a string or an object")),
        }
    }
}

/// A tool call of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, answered by a tool message's `tool_call_id`.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Which function, with which arguments.
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".to_owned()
}

/// A function call: its name and its arguments as a JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments object, as JSON text (not parsed: that is how OpenAI sends it).
    #[serde(default)]
    pub arguments: String,
}

// ---------------------------------------------------------------------------------------------
// Chat completions: the answer

/// Token counts as the upstream reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: i64,
    /// Output tokens (absent for embeddings).
    #[serde(default)]
    pub completion_tokens: i64,
    /// Their sum, as reported.
    #[serde(default)]
    pub total_tokens: i64,
}

/// The answer to a chat request without `stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model that answered, as the upstream names it.
    #[serde(default)]
    pub model: String,
    /// The choices (one unless `n` was given).
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a chat answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Which choice.
    #[serde(default)]
    pub index: i64,
    /// The assistant's message.
    pub message: AnswerMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// vLLM's extension: the stop sequence (or token id) that ended the output, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<Value>,
}

/// The assistant's message in an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerMessage {
    /// `assistant`.
    #[serde(default = "assistant_role")]
    pub role: Role,
    /// The text, if any.
    #[serde(default)]
    pub content: Option<String>,
    /// The tool calls, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

fn assistant_role() -> Role {
    Role::Assistant
}

/// One chunk of a streamed answer (`chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The completion's id (the same in every chunk).
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model that answers, as the upstream names it.
    #[serde(default)]
    pub model: String,
    /// Deltas; empty in the final usage chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Present in the final chunk when `stream_options.include_usage` was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// An error reported mid-stream (vLLM and LiteLLM send `data: {"error": {…}}` when the
    /// generation fails after the answer began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl ChatChunk {
    /// Whether this is the final usage chunk (no choices, usage present).
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }

    /// UTF-8 bytes of the output this chunk carries (text and tool-call pieces): what the
    /// produced-so-far bound of a stream cut off midway counts.
    pub fn output_bytes(&self) -> i64 {
        let mut n: usize = 0;
        for c in &self.choices {
            n += c.delta.content.as_deref().map_or(0, str::len);
            for t in c.delta.tool_calls.iter().flatten() {
                if let Some(f) = &t.function {
                    n += f.name.as_deref().map_or(0, str::len) + f.arguments.as_deref().map_or(0, str::len);
                }
            }
        }
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which choice.
    #[serde(default)]
    pub index: i64,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set in the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// vLLM's extension, as in [`Choice::stop_reason`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<Value>,
}

/// What a chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Set in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Pieces of tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a tool call: the first piece of a call carries its id and name, later ones pieces
/// of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the message this piece belongs to.
    #[serde(default)]
    pub index: i64,
    /// The call's id (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first piece).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

/// Name (first piece) and a piece of the arguments text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    /// The function's name (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the arguments text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Embeddings

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingsRequest {
    /// The model the client asked for; the provider substitutes the upstream's.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (what OpenAI's Python SDK asks for by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Shorter vectors, where the model supports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<i64>,
    /// Everything else (`user`, …), forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingsRequest {
    /// Checks what the gateway relies on, naming the field.
    pub fn validate(&self) -> Result<(), crate::WireError> {
        use crate::WireError;
        if self.model.is_empty() {
            return Err(WireError::validation("model", "must name a model"));
        }
        if self.input.is_empty() {
            return Err(WireError::validation("input", "must hold at least one input"));
        }
        if let EmbeddingInput::TokenLists(lists) = &self.input {
            if let Some(i) = lists.iter().position(Vec::is_empty) {
                return Err(WireError::validation(format!("input[{i}]"), "must hold at least one token"));
            }
        }
        if let Some(d) = self.dimensions {
            if d < 1 {
                return Err(WireError::validation("dimensions", format!("must be at least 1, got {d}")));
            }
        }
        Ok(())
    }
}

/// `encoding_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    Float,
    /// Base64 of little-endian float32.
    Base64,
}

/// `input`: a text, texts, or (as OpenAI also accepts) token ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One input given as token ids.
    Tokens(Vec<i64>),
    /// Several inputs given as token ids.
    TokenLists(Vec<Vec<i64>>),
}

impl EmbeddingInput {
    /// How many vectors the answer must hold.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(v) => v.len(),
            EmbeddingInput::TokenLists(v) => v.len(),
        }
    }

    /// Whether there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "a string, an array of strings, or token ids";
        match Value::deserialize(d)? {
            Value::String(s) => Ok(EmbeddingInput::Text(s)),
            Value::Array(items) => {
                let Some(first) = items.first() else { return Ok(EmbeddingInput::Texts(Vec::new())) };
                let kind = match first {
                    Value::String(_) => 0,
                    Value::Number(_) => 1,
                    Value::Array(_) => 2,
                    _ => return Err(de::Error::custom(format!("expected {EXPECTED}"))),
                };
                let all = |f: &dyn Fn(&Value) -> bool| items.iter().all(f);
                let mixed = || de::Error::custom(format!("expected {EXPECTED}, not a mixture"));
                match kind {
                    0 if all(&|v| v.is_string()) => Ok(EmbeddingInput::Texts(
                        items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                    )),
                    1 => token_ids(&items).map(EmbeddingInput::Tokens).ok_or_else(mixed),
                    2 => items
                        .iter()
                        .map(|v| v.as_array().and_then(|a| token_ids(a)))
                        .collect::<Option<Vec<_>>>()
                        .map(EmbeddingInput::TokenLists)
                        .ok_or_else(mixed),
                    _ => Err(mixed()),
                }
            }
            _ => Err(de::Error::custom(format!("expected {EXPECTED}"))),
        }
    }
}

fn token_ids(items: &[Value]) -> Option<Vec<i64>> {
    items.iter().map(|v| v.as_i64().filter(|t| *t >= 0)).collect()
}

/// The answer to an embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// One vector per input, in input order (`index`).
    pub data: Vec<Embedding>,
    /// The model that answered, as the upstream names it.
    #[serde(default)]
    pub model: String,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingsUsage>,
}

/// Embeddings usage: input only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: i64,
    /// The same number, as reported.
    #[serde(default)]
    pub total_tokens: i64,
}

/// One vector of an embeddings answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `embedding`.
    #[serde(default)]
    pub object: String,
    /// Which input.
    #[serde(default)]
    pub index: i64,
    /// The vector.
    pub embedding: Vector,
}

/// A vector: numbers, or base64 of little-endian float32 when `encoding_format` was `base64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Vector {
    /// JSON numbers.
    Floats(Vec<f64>),
    /// Base64 of little-endian float32.
    Base64(String),
}

// ---------------------------------------------------------------------------------------------
// Renaming the model in an upstream's answer

/// `data` (an answer or a chunk, as the upstream wrote it) with its top-level `"model"` string
/// replaced by `model`, everything else byte for byte; `None` when it has no top-level `model`
/// string. One pass over the bytes, no parse: this is how the OpenAI path can answer under the
/// catalog's model id (the one the client asked for) while forwarding the upstream's bytes.
pub fn replace_model(data: &[u8], model: &str) -> Option<Vec<u8>> {
    let (start, end) = top_level_model_span(data)?;
    let name = serde_json::to_string(model).ok()?;
    let mut out = Vec::with_capacity(data.len() - (end - start) + name.len());
    out.extend_from_slice(&data[..start]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&data[end..]);
    Some(out)
}

/// The byte range (quotes included) of the string value of the top-level key `model`.
fn top_level_model_span(data: &[u8]) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b'"' => {
                let end = string_end(data, i)?;
                if depth == 1 && &data[i..end] == b"\"model\"" {
                    let mut j = end;
                    while data.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    // A key is followed by a colon; `"model"` as a value is not the key.
                    if data.get(j) == Some(&b':') {
                        j += 1;
                        while data.get(j).is_some_and(u8::is_ascii_whitespace) {
                            j += 1;
                        }
                        return match data.get(j) {
                            Some(b'"') => Some((j, string_end(data, j)?)),
                            _ => None,
                        };
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Given the index of an opening quote, the index just past the closing one.
fn string_end(data: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < data.len() {
        match data[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Models and errors

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

impl ModelList {
    /// A list of these model ids.
    pub fn of(ids: impl IntoIterator<Item = (String, i64)>, owned_by: &str) -> ModelList {
        ModelList {
            object: "list".into(),
            data: ids
                .into_iter()
                .map(|(id, created)| Model { id, object: "model".into(), created, owned_by: owned_by.into() })
                .collect(),
        }
    }
}

/// One model of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The id clients put in `model`.
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// Who serves it.
    pub owned_by: String,
}

/// OpenAI's error answer: `{"error": {"message", "type", "param", "code"}}`. OpenAI's SDKs raise
/// their exception by the HTTP status and show `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorObject,
}

/// The inner error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// For a person.
    pub message: String,
    /// OpenAI's error family (`invalid_request_error`, `authentication_error`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The request field at fault; `null` when none (OpenAI always sends the key).
    #[serde(default)]
    pub param: Option<String>,
    /// The stable code (`quota_exceeded`, `model_not_found`, …). Some OpenAI-compatible servers
    /// send a number here; it is read as its decimal text.
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
}

impl ErrorResponse {
    /// An error answer for this status with this code.
    pub fn new(status: u16, code: &str, message: impl Into<String>, param: Option<String>) -> ErrorResponse {
        ErrorResponse {
            error: ErrorObject {
                message: message.into(),
                kind: error_type_for_status(status).into(),
                param,
                code: Some(code.into()),
            },
        }
    }
}

/// OpenAI's `type` for an HTTP status.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::parse_request;
    use serde_json::json;

    #[test]
    fn chat_request_round_trips_and_keeps_unknown_fields() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}],
                 "name": "ann"},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "max_tokens": 5, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9,
            "stop": ["x", "y"], "stream": true, "stream_options": {"include_usage": true, "future": 1},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "seed": 7, "response_format": {"type": "json_object"}
        });
        let req: ChatRequest = parse_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(req.max_output_tokens(), Some(7));
        assert!(req.is_stream() && req.wants_stream_usage());
        assert_eq!(req.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(req.stop.as_ref().unwrap().sequences(), ["x", "y"]);
        assert_eq!(req.extra.get("seed"), Some(&json!(7)));
        req.validate().unwrap();
        // Written back, the request is what the client sent, nothing lost, nothing added, except
        // that a `null` content is left out (OpenAI reads both alike).
        let mut want = body.clone();
        want["messages"][2].as_object_mut().unwrap().remove("content");
        assert_eq!(serde_json::to_value(&req).unwrap(), want);
    }

    #[test]
    fn the_one_pass_reader_refuses_what_serde_would() {
        let cases = [
            (r#"{"messages": []}"#, None, "missing field `model`"),
            (r#"{"model": "m", "model": "n", "messages": []}"#, None, "duplicate field `model`"),
            (r#"{"model": "m", "messages": [{"content": "x"}]}"#, Some("messages[0]"), "missing field `role`"),
            (
                r#"{"model": "m", "messages": [], "tools": [{"function": {"name": "f"}}]}"#,
                Some("tools[0]"),
                "missing field `type`",
            ),
            (r#"{"model": "m", "messages": "hi"}"#, Some("messages"), "invalid type"),
            (r#"["model"]"#, None, "expected a chat completion request"),
        ];
        for (body, field, says) in cases {
            let e = parse_request::<ChatRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(e.field.as_deref(), field, "{body}: {e}");
            assert!(e.message.contains(says), "{body}: {e}");
        }
        // Escaped keys are still recognised, null optional fields read as absent.
        let r: ChatRequest =
            parse_request(br#"{"mod\u0065l": "m", "messages": [], "max_tokens": null, "x\ny": 1}"#).unwrap();
        assert_eq!((r.model.as_str(), r.max_tokens), ("m", None));
        assert_eq!(r.extra.get("x\ny"), Some(&json!(1)));
    }

    #[test]
    fn the_model_is_renamed_at_the_top_level_only() {
        let cases = [
            (
                r#"{"id":"c","model":"fake-chat","choices":[]}"#,
                Some(r#"{"id":"c","model":"claude \"4\"","choices":[]}"#),
            ),
            (r#"{"id": "c", "model" : "fake-chat", "x": 1}"#, Some(r#"{"id": "c", "model" : "claude \"4\"", "x": 1}"#)),
            (
                r#"{"choices":[{"delta":{"content":"\"model\":\"fake-chat\"","model":"inner"}}],"model":"fake\\\"chat"}"#,
                Some(
                    r#"{"choices":[{"delta":{"content":"\"model\":\"fake-chat\"","model":"inner"}}],"model":"claude \"4\""}"#,
                ),
            ),
            (r#"{"object":"model","id":"x"}"#, None),
            (r#"{"model":null}"#, None),
            (r#"{"nested":{"model":"x"}}"#, None),
            (r#"{"model":"unterminated"#, None),
            (r#"not json"#, None),
        ];
        for (input, want) in cases {
            let got = replace_model(input.as_bytes(), "claude \"4\"").map(|v| String::from_utf8(v).unwrap());
            assert_eq!(got.as_deref(), want, "{input}");
            if let Some(w) = want {
                assert_eq!(serde_json::from_str::<Value>(w).unwrap()["model"], json!("claude \"4\""));
            }
        }
    }

    #[test]
    fn content_stop_and_tool_choice_accept_both_shapes() {
        let cases = [
            (json!("auto"), ToolChoice::Auto),
            (json!("none"), ToolChoice::None),
            (json!("required"), ToolChoice::Required),
            (json!({"type": "function", "function": {"name": "g"}}), ToolChoice::Function("g".into())),
        ];
        for (v, want) in cases {
            let got: ToolChoice = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(got, want);
            assert_eq!(serde_json::to_value(&got).unwrap(), v);
        }
        assert!(serde_json::from_value::<ToolChoice>(json!("sometimes")).is_err());
        assert_eq!(serde_json::from_value::<Stop>(json!("END")).unwrap(), Stop::One("END".into()));
        assert_eq!(serde_json::from_value::<Content>(json!("x")).unwrap(), Content::Text("x".into()));
        assert!(serde_json::from_value::<Content>(json!(5)).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let base = || -> ChatRequest {
            serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap()
        };
        type Edit = fn(&mut ChatRequest);
        let cases: Vec<(Edit, &str)> = vec![
            (|r| r.messages.clear(), "messages"),
            (|r| r.model.clear(), "model"),
            (|r| r.max_tokens = Some(0), "max_tokens"),
            (|r| r.max_completion_tokens = Some(-3), "max_completion_tokens"),
            (|r| r.n = Some(0), "n"),
            (|r| r.temperature = Some(2.5), "temperature"),
            (|r| r.top_p = Some(-0.1), "top_p"),
            (|r| r.tool_choice = Some(ToolChoice::Required), "tool_choice"),
            (|r| r.messages.push(Message::text(Role::Tool, "42")), "messages[1].tool_call_id"),
        ];
        for (change, field) in cases {
            let mut r = base();
            change(&mut r);
            let e = r.validate().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert_eq!(e.code(), "validation_failed");
        }
        base().validate().unwrap();
        let e =
            parse_request::<ChatRequest>(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("messages[0].role"));
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn embeddings_input_shapes() {
        let cases = [
            (json!("a b"), EmbeddingInput::Text("a b".into()), 1),
            (json!(["a", "b"]), EmbeddingInput::Texts(vec!["a".into(), "b".into()]), 2),
            (json!([1, 2, 3]), EmbeddingInput::Tokens(vec![1, 2, 3]), 1),
            (json!([[1], [2, 3]]), EmbeddingInput::TokenLists(vec![vec![1], vec![2, 3]]), 2),
        ];
        for (v, want, n) in cases {
            let got: EmbeddingInput = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(got, want);
            assert_eq!(got.len(), n);
            assert_eq!(serde_json::to_value(&got).unwrap(), v);
        }
        for bad in [json!(["a", 1]), json!([1.5]), json!([-1]), json!({}), json!(null), json!([true])] {
            assert!(serde_json::from_value::<EmbeddingInput>(bad.clone()).is_err(), "{bad}");
        }
        let req: EmbeddingsRequest = parse_request(br#"{"model":"e","input":[],"encoding_format":"base64"}"#).unwrap();
        assert_eq!(req.validate().unwrap_err().field.as_deref(), Some("input"));
        let e =
            parse_request::<EmbeddingsRequest>(br#"{"model":"e","input":"x","encoding_format":"hex"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("encoding_format"));
    }

    #[test]
    fn answers_parse_what_upstreams_send() {
        let chunk: ChatChunk = serde_json::from_str(
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
                "usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        )
        .unwrap();
        assert!(chunk.is_usage_only());
        assert_eq!(chunk.usage, Some(Usage { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 }));
        let chunk: ChatChunk = serde_json::from_str(
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"héllo","tool_calls":[{"index":0,"function":{"arguments":"{\"q\""}}]},"finish_reason":null,"logprobs":null}]}"#,
        )
        .unwrap();
        assert!(!chunk.is_usage_only());
        assert_eq!(chunk.output_bytes(), 6 + 4);
        let err: ErrorResponse = serde_json::from_str(
            r#"{"error":{"message":"too long","type":"BadRequestError","param":null,"code":400}}"#,
        )
        .unwrap();
        assert_eq!(err.error.code.as_deref(), Some("400"));
        let e = ErrorResponse::new(429, "quota_exceeded", "no", None);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"error": {"message": "no", "type": "rate_limit_error", "param": null, "code": "quota_exceeded"}})
        );
    }
}
