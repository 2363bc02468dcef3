//! Translation between the product family's format and OpenAI's, which is what every provider
//! speaks: Converse requests become chat requests, chat answers become Converse answers, chat
//! chunks become ConverseStream events, Cohere Embed bodies become embeddings requests and back.
//!
//! # Rules chosen where the formats differ
//!
//! - `system` blocks become one system message, their texts joined by a blank line.
//! - A user message's `toolResult` blocks become `tool` messages (OpenAI wants them right after
//!   the assistant's tool calls), in block order, followed by a user message with the remaining
//!   blocks. A result's `text` and `json` pieces are joined by line breaks (JSON written
//!   compactly); a result whose `status` is `error` is prefixed `Error: `, as OpenAI has no
//!   status field. Images and documents of a result move into that following user message,
//!   since a tool message holds text only.
//! - Images become `image_url` parts with a `data:` URL (`jpg` is written `jpeg`); documents
//!   become `file` parts with a `data:` URL and the document's name.
//! - An assistant message's text blocks are joined by line breaks; `toolUse` blocks become tool
//!   calls whose `arguments` are the compact JSON of `input`.
//! - `toolChoice` `auto` → `"auto"`, `any` → `"required"`, `tool` → that function.
//! - `additionalModelRequestFields` become top-level fields of the chat request (`top_k`, …),
//!   except the fields the translation itself sets, which it keeps.
//! - Finish reasons: `stop` → `end_turn` (or `stop_sequence` when the upstream says which stop
//!   sequence matched, as vLLM does, or `tool_use` when the message calls tools), `length` →
//!   `max_tokens`, `tool_calls`/`function_call` → `tool_use`, `content_filter` →
//!   `content_filtered`, anything else → `end_turn`.
//! - Tool-call arguments are parsed into `input`; empty arguments become `{}` (the product
//!   family's client does the same) and arguments that are not JSON are kept as a JSON string
//!   rather than lost.
//! - Streams: text is always block 0 and has no start event; tool uses are blocks 1, 2, … in
//!   the order they begin, each with a start event. The product family's client relies on both
//!   (it files the tool use of block *k* at position *k − 1*). A block stops when the next one
//!   starts or the message stops.

use serde_json::{Map, Value};

use crate::cohere::{EmbedRequest, EmbedResponse};
use crate::converse::{
    self, BlockDelta, BlockStart, ContentBlock, ContentBlockDelta, ContentBlockStart, ContentBlockStop,
    ConverseRequest, ConverseResponse, Message as CMessage, MessageStart, MessageStop, Metadata, Metrics, Output,
    StopReason, StreamEvent, SystemBlock, TokenUsage, ToolChoice as CToolChoice, ToolResultContent, ToolResultStatus,
    ToolUseBlock, ToolUseDelta, ToolUseStart,
};
use crate::error::BadAnswer;
use crate::openai::{
    ChatChunk, ChatRequest, ChatResponse, Content, ContentPart, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse,
    EncodingFormat, Extra, FunctionCall, FunctionDef, Message, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
    Usage, Vector,
};

/// Fields of a chat request the translation sets itself; `additionalModelRequestFields` cannot
/// override them.
const CHAT_FIELDS: [&str; 12] = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
];

/// A Converse request as a chat request for `model`. With `stream`, the chat request asks for a
/// stream with its usage chunk (the metering needs it).
pub fn converse_to_chat(request: ConverseRequest, model: String, stream: bool) -> ChatRequest {
    let ConverseRequest {
        messages: conversation,
        system,
        inference_config,
        tool_config,
        additional_model_request_fields,
    } = request;
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    let system: Vec<String> = system
        .into_iter()
        .filter_map(|b| match b {
            SystemBlock::Text(t) => Some(t),
            SystemBlock::CachePoint(_) => None,
        })
        .collect();
    if !system.is_empty() {
        messages.push(Message::text(Role::System, system.join("\n\n")));
    }
    for m in conversation {
        match m.role {
            converse::Role::User => user_messages(m.content, &mut messages),
            converse::Role::Assistant => messages.push(assistant_message(m.content)),
        }
    }
    let inference = inference_config.unwrap_or_default();
    let (tools, tool_choice) = match tool_config {
        Some(c) => {
            let tools: Vec<Tool> = c
                .tools
                .into_iter()
                .filter_map(|t| match t {
                    converse::ToolEntry::ToolSpec(s) => Some(Tool {
                        kind: "function".into(),
                        function: FunctionDef {
                            name: s.name,
                            description: s.description,
                            parameters: Some(s.input_schema.json),
                            extra: Extra::new(),
                        },
                        extra: Extra::new(),
                    }),
                    converse::ToolEntry::CachePoint(_) => None,
                })
                .collect();
            let choice = c.tool_choice.map(|c| match c {
                CToolChoice::Auto(_) => ToolChoice::Auto,
                CToolChoice::Any(_) => ToolChoice::Required,
                CToolChoice::Tool(t) => ToolChoice::Function(t.name),
            });
            (Some(tools).filter(|t| !t.is_empty()), choice)
        }
        None => (None, None),
    };
    let mut extra = additional_model_request_fields.unwrap_or_default();
    extra.retain(|k, _| !CHAT_FIELDS.contains(&k.as_str()));
    ChatRequest {
        model,
        messages,
        max_tokens: inference.max_tokens,
        max_completion_tokens: None,
        n: None,
        temperature: inference.temperature,
        top_p: inference.top_p,
        stop: inference.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions { include_usage: Some(true), extra: Extra::new() }),
        tools,
        tool_choice,
        extra,
    }
}

fn user_messages(blocks: Vec<ContentBlock>, out: &mut Vec<Message>) {
    let mut parts: Vec<ContentPart> = Vec::new();
    let mut moved: Vec<ContentPart> = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => parts.push(ContentPart::text(t)),
            ContentBlock::Image(img) => parts.push(image_part(&img)),
            ContentBlock::Document(d) => parts.push(document_part(&d)),
            ContentBlock::ToolResult(r) => {
                let mut texts: Vec<String> = Vec::new();
                for c in r.content {
                    match c {
                        ToolResultContent::Text(t) => texts.push(t),
                        ToolResultContent::Json(v) => texts.push(v.to_string()),
                        ToolResultContent::Image(img) => moved.push(image_part(&img)),
                        ToolResultContent::Document(d) => moved.push(document_part(&d)),
                    }
                }
                let mut text = texts.join("\n");
                if r.status == Some(ToolResultStatus::Error) {
                    text.insert_str(0, "Error: ");
                }
                let mut m = Message::text(Role::Tool, text);
                m.tool_call_id = Some(r.tool_use_id);
                out.push(m);
            }
            // Validation keeps tool uses out of user messages; a caching hint has no equivalent.
            ContentBlock::ToolUse(_) | ContentBlock::CachePoint(_) => {}
        }
    }
    moved.append(&mut parts);
    let parts = moved;
    if parts.is_empty() {
        return;
    }
    let content = if parts.len() == 1 && parts[0].kind == "text" {
        Content::Text(parts.into_iter().next().and_then(|p| p.text).unwrap_or_default())
    } else {
        Content::Parts(parts)
    };
    out.push(Message { content: Some(content), ..Message::text(Role::User, "") });
}

fn assistant_message(blocks: Vec<ContentBlock>) -> Message {
    let mut texts: Vec<String> = Vec::new();
    let mut calls: Vec<ToolCall> = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => texts.push(t),
            ContentBlock::ToolUse(u) => calls.push(ToolCall {
                id: u.tool_use_id,
                kind: "function".into(),
                function: FunctionCall { name: u.name, arguments: u.input.to_string() },
            }),
            // Validation keeps images, documents and tool results out of assistant messages.
            _ => {}
        }
    }
    Message {
        role: Role::Assistant,
        content: (!texts.is_empty()).then(|| Content::Text(texts.join("\n"))),
        name: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
        extra: Extra::new(),
    }
}

fn image_part(img: &converse::ImageBlock) -> ContentPart {
    let format = if img.format == "jpg" { "jpeg" } else { img.format.as_str() };
    let mut extra = Extra::new();
    let url = format!("data:image/{format};base64,{}", img.source.bytes);
    extra.insert("image_url".into(), Value::Object(Map::from_iter([("url".to_string(), Value::String(url))])));
    ContentPart { kind: "image_url".into(), text: None, extra }
}

fn document_part(d: &converse::DocumentBlock) -> ContentPart {
    let mime = match d.format.as_str() {
        "pdf" => "application/pdf",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "html" => "text/html",
        "md" => "text/markdown",
        _ => "text/plain",
    };
    let file = Map::from_iter([
        ("filename".to_string(), Value::String(d.name.clone())),
        ("file_data".to_string(), Value::String(format!("data:{mime};base64,{}", d.source.bytes))),
    ]);
    let mut extra = Extra::new();
    extra.insert("file".into(), Value::Object(file));
    ContentPart { kind: "file".into(), text: None, extra }
}

impl From<Usage> for TokenUsage {
    fn from(u: Usage) -> TokenUsage {
        TokenUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
        }
    }
}

/// The stop reason of an OpenAI finish reason (see the module's rules).
pub fn stop_reason(
    finish_reason: Option<&str>,
    upstream_stop: Option<&Value>,
    calls_tools: bool,
    stop_sequences: &[String],
) -> StopReason {
    match finish_reason {
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFiltered,
        _ if calls_tools => StopReason::ToolUse,
        Some("stop") => match upstream_stop.and_then(Value::as_str) {
            Some(s) if stop_sequences.iter().any(|q| q == s) => StopReason::StopSequence,
            _ => StopReason::EndTurn,
        },
        _ => StopReason::EndTurn,
    }
}

/// A tool call's arguments as a Converse `input`.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// A chat answer as a Converse answer. `usage` is what the call settles with (the upstream's, or
/// the engine's bound when it sent none); `stop_sequences` are the request's.
pub fn chat_to_converse(
    response: &ChatResponse,
    usage: TokenUsage,
    latency_ms: u64,
    stop_sequences: &[String],
) -> ConverseResponse {
    let mut content = Vec::new();
    let mut stop = StopReason::EndTurn;
    if let Some(choice) = response.choices.iter().find(|c| c.index == 0).or(response.choices.first()) {
        if let Some(text) = choice.message.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(ContentBlock::Text(text.to_owned()));
        }
        let calls = choice.message.tool_calls.as_deref().unwrap_or_default();
        for call in calls {
            content.push(ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
            }));
        }
        stop = stop_reason(
            choice.finish_reason.as_deref(),
            choice.stop_reason.as_ref(),
            !calls.is_empty(),
            stop_sequences,
        );
    }
    ConverseResponse {
        output: Output { message: CMessage { role: converse::Role::Assistant, content } },
        stop_reason: stop,
        usage,
        metrics: Metrics { latency_ms },
    }
}

/// Turns a stream of chat chunks into ConverseStream events, as they arrive.
///
/// Feed every chunk to [`push`](Self::push); when the stream is over (its usage known and
/// settled) call [`finish`](Self::finish), which closes what is open and adds `METADATA`.
#[derive(Debug)]
pub struct ConverseStreamTranslator {
    stop_sequences: Vec<String>,
    started: bool,
    /// Block 0 has text and has not stopped.
    text_open: bool,
    /// (OpenAI tool-call index, block index) of every tool use begun.
    tools: Vec<(i64, u32)>,
    open_tool: Option<u32>,
    stopped: bool,
}

impl ConverseStreamTranslator {
    /// A translator for a request with these stop sequences.
    pub fn new(stop_sequences: Vec<String>) -> ConverseStreamTranslator {
        ConverseStreamTranslator {
            stop_sequences,
            started: false,
            text_open: false,
            tools: Vec::new(),
            open_tool: None,
            stopped: false,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::MessageStart(MessageStart { role: converse::Role::Assistant }));
        }
    }

    fn close_open_blocks(&mut self, out: &mut Vec<StreamEvent>) {
        if std::mem::take(&mut self.text_open) {
            out.push(StreamEvent::ContentBlockStop(ContentBlockStop { content_block_index: 0 }));
        }
        if let Some(i) = self.open_tool.take() {
            out.push(StreamEvent::ContentBlockStop(ContentBlockStop { content_block_index: i }));
        }
    }

    /// The events of one chunk.
    pub fn push(&mut self, chunk: &ChatChunk, out: &mut Vec<StreamEvent>) {
        self.start(out);
        // Converse has one message: the first choice is the one translated (the request asks for
        // no more).
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                // Text after a tool use began (no conforming upstream sends it) still goes to
                // block 0 rather than being lost.
                self.text_open = self.open_tool.is_none() || self.text_open;
                out.push(StreamEvent::ContentBlockDelta(ContentBlockDelta {
                    delta: BlockDelta::Text(text.to_owned()),
                    content_block_index: 0,
                }));
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                let block = match self.tools.iter().find(|(i, _)| *i == call.index) {
                    Some((_, b)) => *b,
                    None => {
                        self.close_open_blocks(out);
                        let block = u32::try_from(self.tools.len() + 1).unwrap_or(u32::MAX);
                        self.tools.push((call.index, block));
                        self.open_tool = Some(block);
                        let function = call.function.as_ref();
                        out.push(StreamEvent::ContentBlockStart(ContentBlockStart {
                            start: BlockStart {
                                tool_use: ToolUseStart {
                                    tool_use_id: call.id.clone().unwrap_or_else(|| format!("tooluse_{block}")),
                                    name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                                },
                            },
                            content_block_index: block,
                        }));
                        block
                    }
                };
                if let Some(args) =
                    call.function.as_ref().and_then(|f| f.arguments.as_deref()).filter(|a| !a.is_empty())
                {
                    out.push(StreamEvent::ContentBlockDelta(ContentBlockDelta {
                        delta: BlockDelta::ToolUse(ToolUseDelta { input: args.to_owned() }),
                        content_block_index: block,
                    }));
                }
            }
            if let Some(finish) = choice.finish_reason.as_deref() {
                self.close_open_blocks(out);
                if !self.stopped {
                    self.stopped = true;
                    let reason = stop_reason(
                        Some(finish),
                        choice.stop_reason.as_ref(),
                        !self.tools.is_empty(),
                        &self.stop_sequences,
                    );
                    out.push(StreamEvent::MessageStop(MessageStop { stop_reason: reason }));
                }
            }
        }
    }

    /// The closing events: open blocks stop, `MESSAGE_STOP` if the upstream sent no finish
    /// reason, then `METADATA` with the usage the call settled with.
    pub fn finish(&mut self, usage: TokenUsage, latency_ms: u64, out: &mut Vec<StreamEvent>) {
        self.start(out);
        self.close_open_blocks(out);
        if !self.stopped {
            self.stopped = true;
            let reason = if self.tools.is_empty() { StopReason::EndTurn } else { StopReason::ToolUse };
            out.push(StreamEvent::MessageStop(MessageStop { stop_reason: reason }));
        }
        out.push(StreamEvent::Metadata(Metadata { usage, metrics: Metrics { latency_ms } }));
    }
}

/// A Cohere Embed body as an embeddings request for `model` (floats: the answer is
/// `embeddings_floats`). Over-long texts are cut as `truncate` asks.
///
/// `truncate` itself travels in `extra` (`"truncate": "NONE" | "START" | "END"`) for a model
/// whose window is shorter than 2,048 characters: the built-in embedding model applies it to
/// its own 256 word pieces (refusing with `NONE`). The `openai` kind removes the field before
/// sending (OpenAI's API has no such parameter and refuses unknown ones).
pub fn cohere_to_embeddings(request: &EmbedRequest, model: String) -> EmbeddingsRequest {
    let mut extra = Extra::new();
    let truncate = match request.truncation() {
        crate::cohere::Truncate::None => "NONE",
        crate::cohere::Truncate::Start => "START",
        crate::cohere::Truncate::End => "END",
    };
    extra.insert("truncate".into(), Value::String(truncate.into()));
    EmbeddingsRequest {
        model,
        input: EmbeddingInput::Texts(request.model_texts()),
        encoding_format: Some(EncodingFormat::Float),
        dimensions: None,
        extra,
    }
}

/// An embeddings answer as Cohere's, for the call `id` with the client's `texts`.
pub fn embeddings_to_cohere(
    response: EmbeddingsResponse,
    id: String,
    texts: Vec<String>,
) -> Result<EmbedResponse, BadAnswer> {
    check_embeddings(&response, texts.len())?;
    let mut data = response.data;
    data.sort_by_key(|e| e.index);
    let embeddings = data
        .into_iter()
        .map(|e| match e.embedding {
            Vector::Floats(v) => Ok(v),
            Vector::Base64(_) => Err(BadAnswer("base64 embeddings where floats were asked for".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EmbedResponse { id, response_type: "embeddings_floats".into(), texts, embeddings })
}

/// Checks that an embeddings answer holds exactly one vector per input, indices 0..n once each.
pub fn check_embeddings(response: &EmbeddingsResponse, inputs: usize) -> Result<(), BadAnswer> {
    if response.data.len() != inputs {
        return Err(BadAnswer(format!("{} vectors for {inputs} inputs", response.data.len())));
    }
    let mut seen = vec![false; inputs];
    for e in &response.data {
        let slot = usize::try_from(e.index).ok().and_then(|i| seen.get_mut(i));
        match slot {
            Some(s) if !*s => *s = true,
            _ => return Err(BadAnswer(format!("vector index {} is out of range or repeated", e.index))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn converse(v: Value) -> ConverseRequest {
        ConverseRequest::parse(v.to_string().as_bytes()).unwrap()
    }

    fn chat_json(req: ConverseRequest, stream: bool) -> Value {
        serde_json::to_value(converse_to_chat(req, "up".into(), stream)).unwrap()
    }

    #[test]
    fn converse_requests_become_chat_requests() {
        struct Case {
            name: &'static str,
            converse: Value,
            chat: Value,
        }
        let cases = [
            Case {
                name: "text, system, inference config",
                converse: json!({
                    "system": [{"text": "Be terse."}, {"cachePoint": {"type": "default"}}, {"text": "Use English."}],
                    "messages": [{"role": "user", "content": [{"text": "hello"}]}],
                    "inferenceConfig": {"maxTokens": 5, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
                    "additionalModelRequestFields": {"top_k": 40, "max_tokens": 999, "model": "evil"}
                }),
                chat: json!({
                    "model": "up",
                    "messages": [{"role": "system", "content": "Be terse.\n\nUse English."},
                                 {"role": "user", "content": "hello"}],
                    "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "top_k": 40
                }),
            },
            Case {
                name: "tool use and result",
                converse: json!({
                    "messages": [
                        {"role": "user", "content": [{"text": "ticket 1?"}]},
                        {"role": "assistant", "content": [{"text": "Looking."}, {"text": "One moment."},
                            {"toolUse": {"toolUseId": "t1", "name": "GetTicket", "input": {"id": "1"}}},
                            {"toolUse": {"toolUseId": "t2", "name": "GetTicket", "input": {"id": "2"}}}]},
                        {"role": "user", "content": [
                            {"toolResult": {"toolUseId": "t1", "content": [{"json": {"state": "open"}}, {"text": "since May"}]}},
                            {"toolResult": {"toolUseId": "t2", "content": [{"text": "no such ticket"}], "status": "error"}},
                            {"text": "Summarise."}]}
                    ],
                    "toolConfig": {"tools": [{"toolSpec": {"name": "GetTicket", "description": "Finds a ticket",
                                    "inputSchema": {"json": {"type": "object"}}}}],
                                   "toolChoice": {"any": {}}}
                }),
                chat: json!({
                    "model": "up",
                    "messages": [
                        {"role": "user", "content": "ticket 1?"},
                        {"role": "assistant", "content": "Looking.\nOne moment.", "tool_calls": [
                            {"id": "t1", "type": "function", "function": {"name": "GetTicket", "arguments": "{\"id\":\"1\"}"}},
                            {"id": "t2", "type": "function", "function": {"name": "GetTicket", "arguments": "{\"id\":\"2\"}"}}]},
                        {"role": "tool", "tool_call_id": "t1", "content": "{\"state\":\"open\"}\nsince May"},
                        {"role": "tool", "tool_call_id": "t2", "content": "Error: no such ticket"},
                        {"role": "user", "content": "Summarise."}
                    ],
                    "tools": [{"type": "function", "function": {"name": "GetTicket", "description": "Finds a ticket",
                               "parameters": {"type": "object"}}}],
                    "tool_choice": "required"
                }),
            },
            Case {
                name: "images, documents, named tool choice, a result with only a tool result",
                converse: json!({
                    "messages": [
                        {"role": "user", "content": [{"text": "what is this?"},
                            {"image": {"format": "jpg", "source": {"bytes": "AAAA"}}},
                            {"document": {"format": "pdf", "name": "spec", "source": {"bytes": "BBBB"}}}]},
                        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "look", "input": {}}}]},
                        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [
                            {"text": "here"}, {"image": {"format": "png", "source": {"bytes": "CCCC"}}}]}}]}
                    ],
                    "toolConfig": {"tools": [{"toolSpec": {"name": "look", "inputSchema": {"json": {}}}}],
                                   "toolChoice": {"tool": {"name": "look"}}}
                }),
                chat: json!({
                    "model": "up",
                    "messages": [
                        {"role": "user", "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                            {"type": "file", "file": {"filename": "spec", "file_data": "data:application/pdf;base64,BBBB"}}]},
                        {"role": "assistant", "tool_calls": [
                            {"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
                        {"role": "tool", "tool_call_id": "t1", "content": "here"},
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,CCCC"}}]}
                    ],
                    "tools": [{"type": "function", "function": {"name": "look", "parameters": {}}}],
                    "tool_choice": {"type": "function", "function": {"name": "look"}}
                }),
            },
        ];
        for case in cases {
            assert_eq!(chat_json(converse(case.converse), false), case.chat, "{}", case.name);
        }
    }

    #[test]
    fn streamed_converse_asks_for_the_usage_chunk() {
        let req = converse(json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                                  "toolConfig": {"tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}],
                                                 "toolChoice": {"auto": {}}}}));
        let chat = chat_json(req, true);
        assert_eq!(chat["stream"], json!(true));
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        assert_eq!(chat["tool_choice"], json!("auto"));
    }

    #[test]
    fn finish_reasons_become_stop_reasons() {
        let stops = vec!["END".to_string()];
        let cases: [(Option<&str>, Option<Value>, bool, StopReason); 9] = [
            (Some("stop"), None, false, StopReason::EndTurn),
            (Some("stop"), Some(json!("END")), false, StopReason::StopSequence),
            (Some("stop"), Some(json!("OTHER")), false, StopReason::EndTurn),
            (Some("stop"), Some(json!(128001)), false, StopReason::EndTurn),
            (Some("stop"), None, true, StopReason::ToolUse),
            (Some("length"), None, false, StopReason::MaxTokens),
            (Some("tool_calls"), None, true, StopReason::ToolUse),
            (Some("content_filter"), None, false, StopReason::ContentFiltered),
            (None, None, false, StopReason::EndTurn),
        ];
        for (finish, upstream, tools, want) in cases {
            assert_eq!(stop_reason(finish, upstream.as_ref(), tools, &stops), want, "{finish:?} {upstream:?}");
        }
    }

    #[test]
    fn chat_answers_become_converse_answers() {
        let text: ChatResponse = serde_json::from_value(json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "w1 w2"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .unwrap();
        let usage = TokenUsage::from(text.usage.unwrap());
        let out = serde_json::to_value(chat_to_converse(&text, usage, 12, &[])).unwrap();
        assert_eq!(
            out,
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "w1 w2"}]}},
                   "stopReason": "max_tokens",
                   "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                   "metrics": {"latencyMs": 12}})
        );

        let tools: ChatResponse = serde_json::from_value(json!({
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\": \"w1\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
                    {"id": "c3", "type": "function", "function": {"name": "h", "arguments": "not json"}}]}}]
        }))
        .unwrap();
        let out = serde_json::to_value(chat_to_converse(&tools, TokenUsage::default(), 0, &[])).unwrap();
        assert_eq!(out["stopReason"], json!("tool_use"));
        assert_eq!(
            out["output"]["message"]["content"],
            json!([{"toolUse": {"toolUseId": "c1", "name": "f", "input": {"q": "w1"}}},
                   {"toolUse": {"toolUseId": "c2", "name": "g", "input": {}}},
                   {"toolUse": {"toolUseId": "c3", "name": "h", "input": "not json"}}])
        );
    }

    fn chunk(v: Value) -> ChatChunk {
        serde_json::from_value(v).unwrap()
    }

    fn delta(d: Value, finish: Option<&str>) -> ChatChunk {
        chunk(json!({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}))
    }

    fn events(t: &mut ConverseStreamTranslator, chunks: &[ChatChunk], usage: TokenUsage) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for c in chunks {
            t.push(c, &mut out);
        }
        t.finish(usage, 7, &mut out);
        out.iter().map(|e| (e.name().to_string(), serde_json::to_value(e).unwrap())).collect()
    }

    #[test]
    fn a_text_stream_becomes_block_zero_without_a_start_event() {
        let usage = TokenUsage { input_tokens: 2, output_tokens: 2, total_tokens: 4 };
        let chunks = [
            delta(json!({"role": "assistant", "content": ""}), None),
            delta(json!({"content": "w1 "}), None),
            delta(json!({"content": "w2 "}), None),
            delta(json!({}), Some("stop")),
            chunk(json!({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})),
        ];
        let got = events(&mut ConverseStreamTranslator::new(vec![]), &chunks, usage);
        let want = vec![
            ("MESSAGE_START", json!({"role": "assistant"})),
            ("CONTENT_BLOCK_DELTA", json!({"delta": {"text": "w1 "}, "contentBlockIndex": 0})),
            ("CONTENT_BLOCK_DELTA", json!({"delta": {"text": "w2 "}, "contentBlockIndex": 0})),
            ("CONTENT_BLOCK_STOP", json!({"contentBlockIndex": 0})),
            ("MESSAGE_STOP", json!({"stopReason": "end_turn"})),
            (
                "METADATA",
                json!({"usage": {"inputTokens": 2, "outputTokens": 2, "totalTokens": 4}, "metrics": {"latencyMs": 7}}),
            ),
        ];
        assert_eq!(got, want.into_iter().map(|(n, v)| (n.to_string(), v)).collect::<Vec<_>>());
    }

    #[test]
    fn tool_calls_become_blocks_one_two_with_start_events() {
        let chunks = [
            delta(json!({"role": "assistant", "content": "Let me look."}), None),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                None,
            ),
            delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}), None),
            delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), None),
            delta(
                json!({"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
                None,
            ),
            delta(json!({}), Some("tool_calls")),
        ];
        let got = events(&mut ConverseStreamTranslator::new(vec![]), &chunks, TokenUsage::default());
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "MESSAGE_START",
                "CONTENT_BLOCK_DELTA",
                "CONTENT_BLOCK_STOP",
                "CONTENT_BLOCK_START",
                "CONTENT_BLOCK_DELTA",
                "CONTENT_BLOCK_DELTA",
                "CONTENT_BLOCK_STOP",
                "CONTENT_BLOCK_START",
                "CONTENT_BLOCK_DELTA",
                "CONTENT_BLOCK_STOP",
                "MESSAGE_STOP",
                "METADATA"
            ]
        );
        assert_eq!(got[2].1, json!({"contentBlockIndex": 0}));
        assert_eq!(got[3].1, json!({"start": {"toolUse": {"toolUseId": "c1", "name": "f"}}, "contentBlockIndex": 1}));
        assert_eq!(got[4].1, json!({"delta": {"toolUse": {"input": "{\"q\":"}}, "contentBlockIndex": 1}));
        assert_eq!(got[7].1, json!({"start": {"toolUse": {"toolUseId": "c2", "name": "g"}}, "contentBlockIndex": 2}));
        assert_eq!(got[10].1, json!({"stopReason": "tool_use"}));
    }

    #[test]
    fn a_tool_call_without_text_still_starts_at_block_one() {
        let chunks = [
            delta(json!({"role": "assistant", "content": ""}), None),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                None,
            ),
            delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\": \"w1\"}"}}]}), None),
            delta(json!({}), Some("tool_calls")),
        ];
        let got = events(&mut ConverseStreamTranslator::new(vec![]), &chunks, TokenUsage::default());
        assert!(got.iter().all(|(n, v)| n == "MESSAGE_START"
            || n == "MESSAGE_STOP"
            || n == "METADATA"
            || v["contentBlockIndex"] == json!(1)));
        // Reassembled as the product family's client does, the input is the tool's arguments.
        let input: String =
            got.iter().filter_map(|(_, v)| v["delta"]["toolUse"]["input"].as_str().map(str::to_owned)).collect();
        assert_eq!(tool_input(&input), json!({"q": "w1"}));
    }

    #[test]
    fn a_stream_without_finish_reason_is_closed_by_finish() {
        let chunks = [delta(json!({"content": "w1 "}), None)];
        let got = events(&mut ConverseStreamTranslator::new(vec![]), &chunks, TokenUsage::default());
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["MESSAGE_START", "CONTENT_BLOCK_DELTA", "CONTENT_BLOCK_STOP", "MESSAGE_STOP", "METADATA"]);
        // And a stream with nothing at all is still a well-formed message.
        let got = events(&mut ConverseStreamTranslator::new(vec![]), &[], TokenUsage::default());
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["MESSAGE_START", "MESSAGE_STOP", "METADATA"]);
    }

    #[test]
    fn cohere_round_trip() {
        let req = EmbedRequest::parse(br#"{"texts": ["a b", "c"], "input_type": "search_query", "truncate": "END"}"#)
            .unwrap();
        let chat = serde_json::to_value(cohere_to_embeddings(&req, "up".into())).unwrap();
        assert_eq!(chat, json!({"model": "up", "input": ["a b", "c"], "encoding_format": "float", "truncate": "END"}));
        let none = EmbedRequest::parse(br#"{"texts": ["a"]}"#).unwrap();
        assert_eq!(cohere_to_embeddings(&none, "up".into()).extra.get("truncate"), Some(&json!("NONE")));
        let answer: EmbeddingsResponse = serde_json::from_value(json!({
            "object": "list", "model": "up", "usage": {"prompt_tokens": 3, "total_tokens": 3},
            "data": [{"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
                     {"object": "embedding", "index": 0, "embedding": [0.125, 1.0]}]
        }))
        .unwrap();
        let out = embeddings_to_cohere(answer.clone(), "id1".into(), req.texts.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(out).unwrap(),
            json!({"id": "id1", "response_type": "embeddings_floats", "texts": ["a b", "c"],
                   "embeddings": [[0.125, 1.0], [0.5, 0.25]]})
        );
        assert!(embeddings_to_cohere(answer.clone(), "id".into(), vec!["a".into()]).is_err());
        let mut repeated = answer.clone();
        repeated.data[1].index = 1;
        assert!(embeddings_to_cohere(repeated, "id".into(), req.texts.clone()).is_err());
        let mut b64 = answer;
        b64.data[0].embedding = Vector::Base64("AAAA".into());
        assert!(embeddings_to_cohere(b64, "id".into(), req.texts).is_err());
    }
}
