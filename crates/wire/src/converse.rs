//! The product family's chat format: Amazon Bedrock's Converse request and response, and the
//! ConverseStream events that `converse-stream` sends as SSE (RUNTIME.md §3,
//! reference/mendix-genai.md §8.4–8.5).
//!
//! Content blocks are Bedrock's *externally tagged* unions (`{"text": …}`, `{"toolUse": {…}}`),
//! which is exactly serde's default enum representation, so the types below mirror the JSON
//! one to one. Validation follows Bedrock's own rules where the product family's client depends
//! on them (a conversation starts with the person; a tool result answers a tool use of the
//! message before it; tool names are identifiers, defined once) and names the field at fault.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{parse_request, WireError};

/// `POST R/converse` and `POST R/converse-stream`.
///
/// Fields Bedrock defines that the gateway has no use for (`guardrailConfig`, `requestMetadata`,
/// `promptVariables`, …) are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation, starting with the person.
    pub messages: Vec<Message>,
    /// Instructions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    /// Output limit and sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Model-specific parameters, passed to the upstream as top-level request fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Map<String, Value>>,
}

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One message: a role and content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What they say.
    pub content: Vec<ContentBlock>,
}

/// A content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    /// Text.
    Text(String),
    /// An image (base64 bytes).
    Image(ImageBlock),
    /// A document (base64 bytes).
    Document(DocumentBlock),
    /// A tool call of the model (assistant messages).
    ToolUse(ToolUseBlock),
    /// A tool's result (user messages).
    ToolResult(ToolResultBlock),
    /// A prompt-caching hint; ignored.
    CachePoint(Value),
}

/// `{"format", "source": {"bytes"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif`, `webp` (the client may also send `jpg`).
    pub format: String,
    /// The image.
    pub source: Source,
}

/// `{"format", "name", "source": {"bytes"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    /// `pdf`, `csv`, `doc`, `docx`, `xls`, `xlsx`, `html`, `txt`, `md`.
    pub format: String,
    /// A file name for the model.
    pub name: String,
    /// The document.
    pub source: Source,
}

/// Inline bytes, base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Base64 of the file.
    pub bytes: String,
}

/// `toolUse`: the model calls a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    /// The call's id, answered by a `toolResult` with the same id.
    pub tool_use_id: String,
    /// The tool.
    pub name: String,
    /// The arguments: a JSON object.
    pub input: Value,
}

/// `toolResult`: what a tool answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    /// The call it answers.
    pub tool_use_id: String,
    /// The result.
    #[serde(default)]
    pub content: Vec<ToolResultContent>,
    /// `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolResultStatus>,
}

/// One piece of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    /// Text.
    Text(String),
    /// Any JSON value.
    Json(Value),
    /// An image.
    Image(ImageBlock),
    /// A document.
    Document(DocumentBlock),
}

/// Whether the tool succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolResultStatus {
    /// It did.
    Success,
    /// It failed; the content says why.
    Error,
}

/// A block of `system`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock {
    /// Instructions.
    Text(String),
    /// A prompt-caching hint; ignored.
    CachePoint(Value),
}

/// `inferenceConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    /// Output limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sequences that end the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

/// `toolConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The tools.
    pub tools: Vec<ToolEntry>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// An entry of `toolConfig.tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolEntry {
    /// A tool.
    ToolSpec(ToolSpec),
    /// A prompt-caching hint; ignored.
    CachePoint(Value),
}

/// A tool: name, description and the JSON Schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `{"json": <JSON Schema>}`.
    pub input_schema: InputSchema,
}

/// `inputSchema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSchema {
    /// The JSON Schema of the input object.
    pub json: Value,
}

/// `toolChoice`: `{"auto": {}}`, `{"any": {}}` or `{"tool": {"name"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    /// The model decides.
    Auto(Empty),
    /// The model must call some tool.
    Any(Empty),
    /// The model must call this tool.
    Tool(NamedTool),
}

/// `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `{"name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedTool {
    /// The tool's name.
    pub name: String,
}

const IMAGE_FORMATS: [&str; 5] = ["png", "jpeg", "jpg", "gif", "webp"];
const DOCUMENT_FORMATS: [&str; 9] = ["pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"];

impl ConverseRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<ConverseRequest, WireError> {
        let request: ConverseRequest = parse_request(body)?;
        request.validate()?;
        Ok(request)
    }

    /// The tools, without caching hints.
    pub fn tool_specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tool_config.iter().flat_map(|c| &c.tools).filter_map(|t| match t {
            ToolEntry::ToolSpec(s) => Some(s),
            ToolEntry::CachePoint(_) => None,
        })
    }

    /// The stop sequences, if any.
    pub fn stop_sequences(&self) -> &[String] {
        self.inference_config.as_ref().and_then(|c| c.stop_sequences.as_deref()).unwrap_or(&[])
    }

    /// Checks the rules of the format, naming the field that breaks one.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.messages.is_empty() {
            return Err(WireError::validation("messages", "must hold at least one message"));
        }
        if self.messages[0].role != Role::User {
            return Err(WireError::validation("messages[0].role", "a conversation must start with a user message"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| &self.messages[p]);
            validate_message(i, m, previous)?;
        }
        if let Some(c) = &self.inference_config {
            validate_inference(c)?;
        }
        if let Some(c) = &self.tool_config {
            validate_tools(c)?;
        }
        Ok(())
    }
}

fn validate_message(i: usize, m: &Message, previous: Option<&Message>) -> Result<(), WireError> {
    if m.content.is_empty() {
        return Err(WireError::validation(format!("messages[{i}].content"), "must hold at least one content block"));
    }
    for (j, block) in m.content.iter().enumerate() {
        let at = |rest: &str| format!("messages[{i}].content[{j}]{rest}");
        match block {
            ContentBlock::ToolUse(t) => {
                if m.role != Role::Assistant {
                    return Err(WireError::validation(at(".toolUse"), "only an assistant message can hold a tool use"));
                }
                if t.tool_use_id.is_empty() {
                    return Err(WireError::validation(at(".toolUse.toolUseId"), "must not be empty"));
                }
                if t.name.is_empty() {
                    return Err(WireError::validation(at(".toolUse.name"), "must not be empty"));
                }
                if !t.input.is_object() {
                    return Err(WireError::validation(at(".toolUse.input"), "must be a JSON object"));
                }
            }
            ContentBlock::ToolResult(r) => {
                if m.role != Role::User {
                    return Err(WireError::validation(at(".toolResult"), "only a user message can hold a tool result"));
                }
                let answered = previous.is_some_and(|p| {
                    p.role == Role::Assistant
                        && p.content
                            .iter()
                            .any(|b| matches!(b, ContentBlock::ToolUse(u) if u.tool_use_id == r.tool_use_id))
                });
                if !answered {
                    return Err(WireError::validation(
                        at(".toolResult.toolUseId"),
                        format!("`{}` does not answer a tool use of the message before", r.tool_use_id),
                    ));
                }
                for (k, c) in r.content.iter().enumerate() {
                    match c {
                        ToolResultContent::Image(img) => {
                            validate_image(img, &at(&format!(".toolResult.content[{k}].image.format")))?
                        }
                        ToolResultContent::Document(d) => {
                            validate_document(d, &at(&format!(".toolResult.content[{k}].document")))?
                        }
                        ToolResultContent::Text(_) | ToolResultContent::Json(_) => {}
                    }
                }
            }
            ContentBlock::Image(_) | ContentBlock::Document(_) if m.role != Role::User => {
                return Err(WireError::validation(at(""), "only a user message can hold an image or a document"));
            }
            ContentBlock::Image(img) => validate_image(img, &at(".image.format"))?,
            ContentBlock::Document(d) => validate_document(d, &at(".document"))?,
            ContentBlock::Text(_) | ContentBlock::CachePoint(_) => {}
        }
    }
    Ok(())
}

fn validate_image(img: &ImageBlock, field: &str) -> Result<(), WireError> {
    if IMAGE_FORMATS.contains(&img.format.as_str()) {
        Ok(())
    } else {
        Err(WireError::validation(field, format!("`{}` is not one of {}", img.format, IMAGE_FORMATS.join(" | "))))
    }
}

fn validate_document(d: &DocumentBlock, field: &str) -> Result<(), WireError> {
    if !DOCUMENT_FORMATS.contains(&d.format.as_str()) {
        return Err(WireError::validation(
            format!("{field}.format"),
            format!("`{}` is not one of {}", d.format, DOCUMENT_FORMATS.join(" | ")),
        ));
    }
    if d.name.is_empty() || d.name.chars().count() > 200 {
        return Err(WireError::validation(format!("{field}.name"), "must have 1 to 200 characters"));
    }
    Ok(())
}

fn validate_inference(c: &InferenceConfig) -> Result<(), WireError> {
    if let Some(n) = c.max_tokens {
        if n < 1 {
            return Err(WireError::validation("inferenceConfig.maxTokens", format!("must be at least 1, got {n}")));
        }
    }
    for (field, value) in [("inferenceConfig.temperature", c.temperature), ("inferenceConfig.topP", c.top_p)] {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v) {
                return Err(WireError::validation(field, format!("must be between 0 and 1, got {v}")));
            }
        }
    }
    for (k, s) in c.stop_sequences.iter().flatten().enumerate() {
        if s.is_empty() {
            return Err(WireError::validation(format!("inferenceConfig.stopSequences[{k}]"), "must not be empty"));
        }
    }
    Ok(())
}

/// Bedrock's tool names: a letter, then letters, digits, `_` or `-`; at most 64.
fn is_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64
}

fn validate_tools(c: &ToolConfig) -> Result<(), WireError> {
    let mut names: Vec<&str> = Vec::new();
    for (i, entry) in c.tools.iter().enumerate() {
        let ToolEntry::ToolSpec(spec) = entry else { continue };
        if !is_tool_name(&spec.name) {
            return Err(WireError::validation(
                format!("toolConfig.tools[{i}].toolSpec.name"),
                format!("`{}` is not a tool name (a letter, then letters, digits, _ or -; at most 64)", spec.name),
            ));
        }
        if let Some(first) = names.iter().position(|n| *n == spec.name) {
            return Err(WireError::validation(
                format!("toolConfig.tools[{i}].toolSpec.name"),
                format!("the tool {} is already defined at toolConfig.tools[{first}]", spec.name),
            ));
        }
        if !spec.input_schema.json.is_object() {
            return Err(WireError::validation(
                format!("toolConfig.tools[{i}].toolSpec.inputSchema.json"),
                "must be a JSON Schema object",
            ));
        }
        names.push(&spec.name);
    }
    if names.is_empty() {
        return Err(WireError::validation("toolConfig.tools", "must hold at least one toolSpec"));
    }
    if let Some(ToolChoice::Tool(t)) = &c.tool_choice {
        if !names.contains(&t.name.as_str()) {
            return Err(WireError::validation(
                "toolConfig.toolChoice.tool.name",
                format!("names `{}`, which is not one of toolConfig.tools", t.name),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The answer

/// The answer of `converse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// `{"message"}`.
    pub output: Output,
    /// Why the output ended.
    pub stop_reason: StopReason,
    /// Token counts.
    pub usage: TokenUsage,
    /// Timing.
    pub metrics: Metrics,
}

/// `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The assistant's message: text first, then tool uses.
    pub message: Message,
}

/// Why the output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished.
    EndTurn,
    /// The model calls tools.
    ToolUse,
    /// The output limit stopped it.
    MaxTokens,
    /// A stop sequence stopped it.
    StopSequence,
    /// A content filter stopped it.
    ContentFiltered,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Their sum.
    pub total_tokens: i64,
}

/// `metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Time from the request to the answer, in milliseconds.
    pub latency_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// ConverseStream

/// One event of `converse-stream`. On the wire each is an SSE event whose name is the
/// upper-snake event name (`CONTENT_BLOCK_DELTA`) and whose data is the event's own object
/// (`{"delta": {"text": "…"}, "contentBlockIndex": 0}`), as the product family's client reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StreamEvent {
    /// `MESSAGE_START`.
    MessageStart(MessageStart),
    /// `CONTENT_BLOCK_START`: a tool use begins (text blocks have no start event).
    ContentBlockStart(ContentBlockStart),
    /// `CONTENT_BLOCK_DELTA`.
    ContentBlockDelta(ContentBlockDelta),
    /// `CONTENT_BLOCK_STOP`.
    ContentBlockStop(ContentBlockStop),
    /// `MESSAGE_STOP`.
    MessageStop(MessageStop),
    /// `METADATA`: usage and timing, last.
    Metadata(Metadata),
}

/// `{"role"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStart {
    /// `assistant`.
    pub role: Role,
}

/// `{"start": {"toolUse": {"toolUseId", "name"}}, "contentBlockIndex"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    /// What begins.
    pub start: BlockStart,
    /// The block's index.
    pub content_block_index: u32,
}

/// `{"toolUse": {"toolUseId", "name"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    /// The tool use that begins.
    pub tool_use: ToolUseStart,
}

/// The id and name of a tool use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    /// The call's id.
    pub tool_use_id: String,
    /// The tool.
    pub name: String,
}

/// `{"delta": {"text"} | {"toolUse": {"input"}}, "contentBlockIndex"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    /// What the block gains.
    pub delta: BlockDelta,
    /// The block's index.
    pub content_block_index: u32,
}

/// A piece of text, or a piece of a tool use's input JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlockDelta {
    /// A piece of text.
    Text(String),
    /// A piece of the input.
    ToolUse(ToolUseDelta),
}

/// `{"input"}`: a piece of the input's JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUseDelta {
    /// The piece.
    pub input: String,
}

/// `{"contentBlockIndex"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStop {
    /// The block's index.
    pub content_block_index: u32,
}

/// `{"stopReason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    /// Why the output ended.
    pub stop_reason: StopReason,
}

/// `{"usage", "metrics"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Token counts.
    pub usage: TokenUsage,
    /// Timing.
    pub metrics: Metrics,
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart(_) => "MESSAGE_START",
            StreamEvent::ContentBlockStart(_) => "CONTENT_BLOCK_START",
            StreamEvent::ContentBlockDelta(_) => "CONTENT_BLOCK_DELTA",
            StreamEvent::ContentBlockStop(_) => "CONTENT_BLOCK_STOP",
            StreamEvent::MessageStop(_) => "MESSAGE_STOP",
            StreamEvent::Metadata(_) => "METADATA",
        }
    }

    /// Appends the event as SSE (`event: NAME`, `data: {…}`, blank line).
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        // Serialising these small structs of strings and integers cannot fail.
        let data = serde_json::to_vec(self).unwrap_or_default();
        crate::sse::write_event(out, Some(self.name()), &data);
    }

    /// Reads an event back from its SSE name and data (what a client does).
    pub fn parse(name: &str, data: &[u8]) -> Result<StreamEvent, String> {
        fn de<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, String> {
            serde_json::from_slice(data).map_err(|e| e.to_string())
        }
        Ok(match name {
            "MESSAGE_START" => StreamEvent::MessageStart(de(data)?),
            "CONTENT_BLOCK_START" => StreamEvent::ContentBlockStart(de(data)?),
            "CONTENT_BLOCK_DELTA" => StreamEvent::ContentBlockDelta(de(data)?),
            "CONTENT_BLOCK_STOP" => StreamEvent::ContentBlockStop(de(data)?),
            "MESSAGE_STOP" => StreamEvent::MessageStop(de(data)?),
            "METADATA" => StreamEvent::Metadata(de(data)?),
            other => return Err(format!("unknown event `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_conversation() -> Value {
        json!({
            "system": [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [{"text": "ticket 1?"}]},
                {"role": "assistant", "content": [
                    {"text": "Looking."},
                    {"toolUse": {"toolUseId": "t1", "name": "GetTicket", "input": {"TicketId": "1"}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"result": "open"}}], "status": "success"}}]}
            ],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "GetTicket", "description": "Finds a ticket",
                           "inputSchema": {"json": {"type": "object", "properties": {"TicketId": {"type": "string"}}}}}}],
                "toolChoice": {"auto": {}}
            }
        })
    }

    #[test]
    fn a_request_with_tools_round_trips() {
        let body = tool_conversation();
        let req = ConverseRequest::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(req.tool_specs().count(), 1);
        assert_eq!(req.stop_sequences(), ["END"]);
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn refusals_name_the_field() {
        type Edit = fn(&mut Value);
        let cases: Vec<(Edit, &str, &str)> = vec![
            (|b| b["messages"] = json!([]), "messages", "validation_failed"),
            (|b| b["messages"][0]["role"] = json!("assistant"), "messages[0].role", "validation_failed"),
            (|b| b["messages"][0]["role"] = json!("system"), "messages[0].role", "invalid_request"),
            (|b| b["messages"][1]["content"] = json!([]), "messages[1].content", "validation_failed"),
            (
                |b| b["messages"][1]["content"][1]["toolUse"]["input"] = json!("1"),
                "messages[1].content[1].toolUse.input",
                "validation_failed",
            ),
            (
                |b| b["messages"][1]["content"][1]["toolUse"]["toolUseId"] = json!(""),
                "messages[1].content[1].toolUse.toolUseId",
                "validation_failed",
            ),
            (
                |b| b["messages"][1]["content"][1]["toolUse"]["name"] = json!(7),
                "messages[1].content[1].toolUse.name",
                "invalid_request",
            ),
            (|b| b["messages"][1]["content"][0] = json!({"video": {}}), "messages[1].content[0]", "invalid_request"),
            (
                |b| b["messages"][2]["content"][0]["toolResult"]["toolUseId"] = json!("t9"),
                "messages[2].content[0].toolResult.toolUseId",
                "validation_failed",
            ),
            (
                |b| {
                    b["messages"][0]["content"][0] =
                        json!({"toolUse": {"toolUseId": "x", "name": "GetTicket", "input": {}}})
                },
                "messages[0].content[0].toolUse",
                "validation_failed",
            ),
            (
                |b| b["messages"][0]["content"][0] = json!({"image": {"format": "bmp", "source": {"bytes": "AA=="}}}),
                "messages[0].content[0].image.format",
                "validation_failed",
            ),
            (
                |b| {
                    b["messages"][0]["content"][0] =
                        json!({"document": {"format": "exe", "name": "x", "source": {"bytes": "AA=="}}})
                },
                "messages[0].content[0].document.format",
                "validation_failed",
            ),
            (|b| b["inferenceConfig"]["maxTokens"] = json!(0), "inferenceConfig.maxTokens", "validation_failed"),
            (|b| b["inferenceConfig"]["maxTokens"] = json!("many"), "inferenceConfig.maxTokens", "invalid_request"),
            (|b| b["inferenceConfig"]["temperature"] = json!(1.5), "inferenceConfig.temperature", "validation_failed"),
            (|b| b["inferenceConfig"]["topP"] = json!(-1), "inferenceConfig.topP", "validation_failed"),
            (
                |b| b["inferenceConfig"]["stopSequences"] = json!(["", "x"]),
                "inferenceConfig.stopSequences[0]",
                "validation_failed",
            ),
            (|b| b["toolConfig"]["tools"] = json!([]), "toolConfig.tools", "validation_failed"),
            (
                |b| b["toolConfig"]["tools"][0]["toolSpec"]["name"] = json!("9lives"),
                "toolConfig.tools[0].toolSpec.name",
                "validation_failed",
            ),
            (
                |b| {
                    let t = b["toolConfig"]["tools"][0].clone();
                    b["toolConfig"]["tools"] = json!([t.clone(), t]);
                },
                "toolConfig.tools[1].toolSpec.name",
                "validation_failed",
            ),
            (
                |b| b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] = json!([]),
                "toolConfig.tools[0].toolSpec.inputSchema.json",
                "validation_failed",
            ),
            (
                |b| b["toolConfig"]["toolChoice"] = json!({"tool": {"name": "Other"}}),
                "toolConfig.toolChoice.tool.name",
                "validation_failed",
            ),
            (|b| b["toolConfig"]["toolChoice"] = json!({"sometimes": {}}), "toolConfig.toolChoice", "invalid_request"),
            (
                |b| b["messages"][1]["content"][0] = json!({"image": {"format": "png", "source": {"bytes": "AA=="}}}),
                "messages[1].content[0]",
                "validation_failed",
            ),
        ];
        for (edit, field, code) in cases {
            let mut body = tool_conversation();
            edit(&mut body);
            let e = ConverseRequest::parse(body.to_string().as_bytes()).unwrap_err();
            assert_eq!((e.field.as_deref(), e.code()), (Some(field), code), "{body}: {e}");
        }
    }

    #[test]
    fn the_duplicate_tool_message_says_where_the_first_is() {
        let mut body = tool_conversation();
        let t = body["toolConfig"]["tools"][0].clone();
        body["toolConfig"]["tools"] = json!([t.clone(), t]);
        let e = ConverseRequest::parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.message, "the tool GetTicket is already defined at toolConfig.tools[0]");
    }

    #[test]
    fn stream_events_serialise_as_the_client_reads_them() {
        let cases = [
            (
                StreamEvent::MessageStart(MessageStart { role: Role::Assistant }),
                "MESSAGE_START",
                json!({"role": "assistant"}),
            ),
            (
                StreamEvent::ContentBlockStart(ContentBlockStart {
                    start: BlockStart { tool_use: ToolUseStart { tool_use_id: "t1".into(), name: "f".into() } },
                    content_block_index: 1,
                }),
                "CONTENT_BLOCK_START",
                json!({"start": {"toolUse": {"toolUseId": "t1", "name": "f"}}, "contentBlockIndex": 1}),
            ),
            (
                StreamEvent::ContentBlockDelta(ContentBlockDelta {
                    delta: BlockDelta::Text("hi".into()),
                    content_block_index: 0,
                }),
                "CONTENT_BLOCK_DELTA",
                json!({"delta": {"text": "hi"}, "contentBlockIndex": 0}),
            ),
            (
                StreamEvent::ContentBlockDelta(ContentBlockDelta {
                    delta: BlockDelta::ToolUse(ToolUseDelta { input: "{\"q\"".into() }),
                    content_block_index: 1,
                }),
                "CONTENT_BLOCK_DELTA",
                json!({"delta": {"toolUse": {"input": "{\"q\""}}, "contentBlockIndex": 1}),
            ),
            (
                StreamEvent::ContentBlockStop(ContentBlockStop { content_block_index: 0 }),
                "CONTENT_BLOCK_STOP",
                json!({"contentBlockIndex": 0}),
            ),
            (
                StreamEvent::MessageStop(MessageStop { stop_reason: StopReason::ToolUse }),
                "MESSAGE_STOP",
                json!({"stopReason": "tool_use"}),
            ),
            (
                StreamEvent::Metadata(Metadata {
                    usage: TokenUsage { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
                    metrics: Metrics { latency_ms: 12 },
                }),
                "METADATA",
                json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {"latencyMs": 12}}),
            ),
        ];
        for (event, name, data) in cases {
            let mut out = Vec::new();
            event.write_sse(&mut out);
            let text = String::from_utf8(out).unwrap();
            let json = text.strip_prefix(&format!("event: {name}\ndata: ")).unwrap().strip_suffix("\n\n").unwrap();
            assert_eq!(serde_json::from_str::<Value>(json).unwrap(), data);
            assert_eq!(StreamEvent::parse(name, data.to_string().as_bytes()).unwrap(), event);
        }
    }
}
