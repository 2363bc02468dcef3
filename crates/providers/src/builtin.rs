//! The `builtin` provider kind: the two local models of `genai-models` behind the provider port.
//!
//! [`BuiltinProvider`] turns OpenAI-shaped requests into calls of the async [`Models`] service
//! (whose model threads do the computing: no forward pass ever runs on a tokio worker) and its
//! results back into OpenAI-shaped answers, built in-process with [`ChatAnswer::from_response`],
//! [`EmbedAnswer::from_response`] and [`ChatStream::channel`]. Which models it serves:
//! [`BUILTIN_MODELS`] (catalog id = local model name); [`Router::serve_builtin`] routes them here
//! unless the providers file maps them elsewhere.
//!
//! Rules we chose (also in `docs/runtime.md`, "The built-in kind"):
//!
//! - **Chat** (`smollm2-135m-instruct`). Messages are `system`/`developer` (both rendered as
//!   `system`), `user` and `assistant`, with string content or `text` parts; the model calls no
//!   tools and reads no images, so `tools`, tool messages, assistant `tool_calls` and non-text
//!   parts are refused (400 naming the field), as is `n` > 1. `max_completion_tokens`, else
//!   `max_tokens`, bounds the answer; without either the answer may use the rest of the
//!   context window (8,192 tokens). `temperature` (default 1, 0 = greedy and deterministic),
//!   `top_p` (default 1), `stop` (up to 4 sequences), and `seed` (default: a fresh random seed
//!   per request, so two requests at temperature > 0 differ unless they name a seed) apply.
//!   `finish_reason` is `stop` (end of turn or stop sequence) or `length`.
//! - **Usage** is the model's own count: the templated prompt's tokens, and every token
//!   sampled (the end-of-turn token included). A stream always ends with a usage chunk, which is
//!   forwarded only when the client asked (`stream_options.include_usage`).
//! - **Embeddings** (`all-minilm-l6-v2`): text inputs only (token ids are another model's
//!   vocabulary: refused); `dimensions` may only be 384; `encoding_format` `float` or `base64`
//!   (little-endian f32, what OpenAI's Python SDK asks for by default). An input longer than the
//!   model's window of 256 word pieces is cut as the request's `truncate` says: Cohere's values
//!   `NONE` (refuse, 400 naming `input[i]`), `START`, `END`; the default, also for OpenAI's
//!   format (which has no such field, and whose real models refuse over-long input), is `END`,
//!   sentence-transformers' own behaviour, because a 256-piece window is far shorter than
//!   clients of OpenAI-sized models expect.
//! - **Errors.** Weights not installed → [`ProviderError::ModelNotInstalled`] (503
//!   `model_not_installed`, the message names `genai models install`); a request the model
//!   cannot take (prompt longer than the window, bad parameter) → [`ProviderError::Refused`]
//!   (400); a full queue → [`ProviderError::Busy`] (503 `model_busy`); a model that failed
//!   inside → [`ProviderError::Failed`] (502).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use genai_models::{ChatMessage, FinishReason, GenerationEvent, GenerationParams, ModelError, Models, Truncate};
use genai_wire::openai::{
    AnswerMessage, ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Content, Delta, Embedding,
    EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, EncodingFormat, Role, Usage, Vector,
};

use crate::{ChatAnswer, ChatStream, EmbedAnswer, Failure, Provider, ProviderError};

/// The provider's name, in errors, logs and metrics.
pub const NAME: &str = "builtin";

/// The models the built-in kind serves: `(catalog id, local model)`, for
/// [`Router::serve_builtin`](crate::Router::serve_builtin).
pub const BUILTIN_MODELS: [(&str, &str); 2] = [
    (genai_models::EMBEDDING_MODEL, genai_models::EMBEDDING_MODEL),
    (genai_models::GENERATION_MODEL, genai_models::GENERATION_MODEL),
];

/// Dimensions of the embedding model's vectors.
const DIMENSIONS: i64 = 384;

/// Stop sequences OpenAI accepts at most.
const MAX_STOP: usize = 4;

/// Chunks a stream may hold while its reader is behind; the producer waits beyond that.
const STREAM_BUFFER: usize = 64;

/// The built-in local models as a [`Provider`]. Cheap to clone (the [`Models`] handle is).
#[derive(Clone)]
pub struct BuiltinProvider {
    models: Models,
}

impl std::fmt::Debug for BuiltinProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinProvider").field("dir", &self.models.config().dir).finish()
    }
}

impl BuiltinProvider {
    /// The provider over a running [`Models`] service.
    pub fn new(models: Models) -> BuiltinProvider {
        BuiltinProvider { models }
    }

    /// The service it calls.
    pub fn models(&self) -> &Models {
        &self.models
    }

    fn check_model(&self, model: &str, wanted: &str, other_use: &str) -> Result<(), ProviderError> {
        if model == wanted {
            return Ok(());
        }
        let message = if BUILTIN_MODELS.iter().any(|(_, local)| *local == model) {
            format!("model: `{model}` is an {other_use} model; use it on its own endpoint")
        } else {
            format!("model: the built-in provider has no model `{model}` (it serves {wanted} here)")
        };
        Err(refused(message))
    }
}

#[async_trait]
impl Provider for BuiltinProvider {
    fn name(&self) -> &str {
        NAME
    }

    async fn chat(&self, model: &str, request: ChatRequest) -> Result<ChatAnswer, ProviderError> {
        self.check_model(model, genai_models::GENERATION_MODEL, "embeddings")?;
        let (messages, params) = generation_request(&request)?;
        let mut stream = self.models.generate(messages, params).await.map_err(from_model_error)?;
        let mut text = String::new();
        let (finish_reason, prompt_tokens, completion_tokens) = loop {
            match stream.next().await {
                Some(GenerationEvent::Text(piece)) => text.push_str(&piece),
                Some(GenerationEvent::Done { finish_reason, prompt_tokens, completion_tokens }) => {
                    break (finish_reason, prompt_tokens, completion_tokens)
                }
                Some(GenerationEvent::Failed { error, .. }) => return Err(from_model_error(error)),
                None => return Err(ProviderError::failed(NAME, Failure::Cut, "the model stopped before finishing")),
            }
        };
        let response = ChatResponse {
            id: completion_id(),
            object: "chat.completion".into(),
            created: now_seconds(),
            model: model.to_owned(),
            choices: vec![Choice {
                index: 0,
                message: AnswerMessage { role: Role::Assistant, content: Some(text), tool_calls: None },
                finish_reason: Some(finish_reason_name(finish_reason).into()),
                stop_reason: None,
            }],
            usage: Some(usage(prompt_tokens, completion_tokens)),
        };
        Ok(ChatAnswer::from_response(response))
    }

    async fn chat_stream(&self, model: &str, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.check_model(model, genai_models::GENERATION_MODEL, "embeddings")?;
        let (messages, params) = generation_request(&request)?;
        // Admission (model loaded, prompt tokenized and within the window) happens here, so a
        // refused request is an error answer, not a stream that fails at once.
        let mut generation = self.models.generate(messages, params).await.map_err(from_model_error)?;
        let (sender, stream) = ChatStream::channel(STREAM_BUFFER, NAME, request.wants_stream_usage());
        let id = completion_id();
        let created = now_seconds();
        let model = model.to_owned();
        let chunk = move |delta: Delta, finish: Option<FinishReason>, usage: Option<Usage>| ChatChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.clone(),
            choices: if usage.is_some() {
                Vec::new()
            } else {
                vec![ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason: finish.map(|f| finish_reason_name(f).to_owned()),
                    stop_reason: None,
                }]
            },
            usage,
            error: None,
        };
        tokio::spawn(async move {
            let opening = Delta { role: Some(Role::Assistant), content: Some(String::new()), tool_calls: None };
            if sender.send(chunk(opening, None, None)).await.is_err() {
                return; // the client left: dropping `generation` stops the model's session
            }
            while let Some(event) = generation.next().await {
                match event {
                    GenerationEvent::Text(piece) => {
                        let delta = Delta { content: Some(piece), ..Delta::default() };
                        if sender.send(chunk(delta, None, None)).await.is_err() {
                            return;
                        }
                    }
                    GenerationEvent::Done { finish_reason, prompt_tokens, completion_tokens } => {
                        if sender.send(chunk(Delta::default(), Some(finish_reason), None)).await.is_err() {
                            return;
                        }
                        let used = Some(usage(prompt_tokens, completion_tokens));
                        if sender.send(chunk(Delta::default(), None, used)).await.is_err() {
                            return;
                        }
                        sender.end().await;
                        return;
                    }
                    GenerationEvent::Failed { error, .. } => {
                        sender.fail(from_model_error(error)).await;
                        return;
                    }
                }
            }
            // The model thread went away without a last event: dropping the sender cuts the
            // stream.
        });
        Ok(stream)
    }

    async fn embed(&self, model: &str, request: EmbeddingsRequest) -> Result<EmbedAnswer, ProviderError> {
        self.check_model(model, genai_models::EMBEDDING_MODEL, "text generation")?;
        let inputs = match request.input {
            EmbeddingInput::Text(t) => vec![t],
            EmbeddingInput::Texts(v) => v,
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenLists(_) => {
                return Err(refused("input: the built-in embedding model takes text, not token ids"))
            }
        };
        if inputs.is_empty() {
            return Err(refused("input: must hold at least one input"));
        }
        if let Some(d) = request.dimensions {
            if d != DIMENSIONS {
                return Err(refused(format!(
                    "dimensions: {} has {DIMENSIONS} dimensions and cannot shorten its vectors (got {d})",
                    genai_models::EMBEDDING_MODEL
                )));
            }
        }
        let truncate = truncation(&request.extra)?;
        let base64 = request.encoding_format == Some(EncodingFormat::Base64);
        let result = self.models.embed(inputs, truncate).await.map_err(from_model_error)?;
        let tokens = i64::try_from(result.total_tokens()).unwrap_or(i64::MAX);
        let data = result
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i64::try_from(i).unwrap_or(i64::MAX),
                embedding: if base64 { Vector::Base64(base64_f32(&v)) } else { Vector::Floats(floats(&v)) },
            })
            .collect();
        let response = EmbeddingsResponse {
            object: "list".into(),
            data,
            model: model.to_owned(),
            usage: Some(EmbeddingsUsage { prompt_tokens: tokens, total_tokens: tokens }),
        };
        Ok(EmbedAnswer::from_response(response))
    }
}

/// The model's messages and parameters for an OpenAI chat request, or a refusal naming the
/// field the model cannot honour.
fn generation_request(request: &ChatRequest) -> Result<(Vec<ChatMessage>, GenerationParams), ProviderError> {
    if request.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(refused(format!("tools: {} does not call tools", genai_models::GENERATION_MODEL)));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(refused("n: the built-in model answers one choice per request"));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let role = match m.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool | Role::Function => {
                return Err(refused(format!(
                    "messages[{i}].role: {} does not call tools, so there are no tool results to read",
                    genai_models::GENERATION_MODEL
                )))
            }
        };
        if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(refused(format!(
                "messages[{i}].tool_calls: {} does not call tools",
                genai_models::GENERATION_MODEL
            )));
        }
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    match (&*part.kind, &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        _ => {
                            return Err(refused(format!(
                                "messages[{i}].content[{j}]: {} reads text only (got a `{}` part)",
                                genai_models::GENERATION_MODEL,
                                part.kind
                            )))
                        }
                    }
                }
                text
            }
        };
        messages.push(ChatMessage::new(role, content));
    }
    let stop = request.stop.as_ref().map(|s| s.sequences().to_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP {
        return Err(refused(format!("stop: at most {MAX_STOP} sequences (got {})", stop.len())));
    }
    let explicit = request.max_output_tokens();
    let field = if request.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
    let max_tokens = match explicit {
        Some(n) if n < 1 => return Err(refused(format!("{field}: must be at least 1"))),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let seed = match request.extra.get("seed") {
        None | Some(serde_json::Value::Null) => random_u64(),
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(s), _) => s,
            // A negative seed is a seed too (two's complement keeps it distinct).
            (None, Some(s)) => s as u64,
            _ => return Err(refused("seed: must be an integer")),
        },
    };
    let params = GenerationParams {
        max_tokens,
        temperature: request.temperature.unwrap_or(1.0) as f32,
        // OpenAI allows top_p 0 (only the likeliest token); the sampler wants it above 0.
        top_p: (request.top_p.unwrap_or(1.0) as f32).max(f32::MIN_POSITIVE),
        seed,
        stop,
        fit_context: explicit.is_none(),
    };
    Ok((messages, params))
}

/// `truncate` of an embeddings request (Cohere's values, any case); `END` when absent.
fn truncation(extra: &genai_wire::openai::Extra) -> Result<Truncate, ProviderError> {
    match extra.get("truncate") {
        None | Some(serde_json::Value::Null) => Ok(Truncate::End),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("end") => Ok(Truncate::End),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("start") => Ok(Truncate::Start),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("none") => Ok(Truncate::None),
        Some(_) => Err(refused("truncate: must be NONE, START or END")),
    }
}

fn refused(message: impl Into<String>) -> ProviderError {
    ProviderError::Refused { provider: NAME.into(), status: 400, message: message.into() }
}

/// What the Runtime API answers for a model's error.
pub fn from_model_error(error: ModelError) -> ProviderError {
    match error {
        ModelError::NotInstalled { model, ref command, .. } | ModelError::Corrupt { model, ref command, .. } => {
            let hint = match &error {
                ModelError::Corrupt { detail, .. } => {
                    format!("its files do not verify ({detail}); run `{command}` on the server to reinstall it")
                }
                _ => format!("run `{command}` on the server (the next request loads it, no restart needed)"),
            };
            ProviderError::ModelNotInstalled { model: model.to_owned(), hint }
        }
        ModelError::InputTooLong { .. } | ModelError::PromptTooLong { .. } => refused(error.to_string()),
        ModelError::InvalidRequest { field, message } => refused(format!("{field}: {message}")),
        ModelError::Busy { .. } => ProviderError::Busy { provider: NAME.into(), detail: error.to_string() },
        ModelError::Stopped { .. } | ModelError::Internal { .. } => {
            ProviderError::failed(NAME, Failure::Status(500), error.to_string())
        }
    }
}

fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::EndOfSequence | FinishReason::StopSequence => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(prompt: usize, completion: usize) -> Usage {
    let p = i64::try_from(prompt).unwrap_or(i64::MAX);
    let c = i64::try_from(completion).unwrap_or(i64::MAX);
    Usage { prompt_tokens: p, completion_tokens: c, total_tokens: p.saturating_add(c) }
}

/// The vector as JSON numbers: each f32 widened to the f64 of its shortest decimal form, so the
/// answer reads `0.0123` rather than the widened float's 17 digits (same f32 when read back).
fn floats(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| x.to_string().parse::<f64>().unwrap_or(f64::from(*x))).collect()
}

/// Base64 of the vector as little-endian f32, as OpenAI answers `encoding_format: base64`.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// 64 random bits: the standard library's randomly keyed hasher over a counter and the clock
/// (no random-number crate for ids and default seeds).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

fn completion_id() -> String {
    format!("chatcmpl-{:016x}{:08x}", random_u64(), random_u64() as u32)
}

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: serde_json::Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn refusal(r: Result<(Vec<ChatMessage>, GenerationParams), ProviderError>) -> String {
        match r {
            Err(ProviderError::Refused { status: 400, message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_map_to_messages_and_parameters() {
        let req = chat(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Again"}
            ],
            "max_completion_tokens": 7, "max_tokens": 99, "temperature": 0, "top_p": 0.5,
            "stop": "END", "seed": 42
        }));
        let (messages, params) = generation_request(&req).unwrap();
        let roles: Vec<_> = messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
        assert_eq!(roles, [("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello."), ("user", "Again")]);
        assert_eq!((params.max_tokens, params.temperature, params.top_p, params.seed), (7, 0.0, 0.5, 42));
        assert_eq!(params.stop, ["END"]);
        assert!(!params.fit_context);
        let (_, params) = generation_request(&chat(serde_json::json!({"model": "m",
            "messages": [{"role": "user", "content": "x"}]})))
        .unwrap();
        assert!(params.fit_context && params.max_tokens == usize::MAX && params.temperature == 1.0);
    }

    #[test]
    fn what_the_model_cannot_do_is_refused_by_field() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (k, val) in extra.as_object().unwrap() {
                v[k] = val.clone();
            }
            chat(v)
        };
        let tools = serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}}]});
        assert!(refusal(generation_request(&base(tools))).starts_with("tools:"));
        assert!(refusal(generation_request(&base(serde_json::json!({"n": 2})))).starts_with("n:"));
        assert!(refusal(generation_request(&base(serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}))))
            .starts_with("stop:"));
        assert!(refusal(generation_request(&base(serde_json::json!({"max_tokens": 0})))).starts_with("max_tokens:"));
        assert!(refusal(generation_request(&base(serde_json::json!({"seed": "x"})))).starts_with("seed:"));
        let image = chat(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}]}));
        assert!(refusal(generation_request(&image)).starts_with("messages[0].content[1]:"));
        let tool = chat(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "c", "content": "r"}]}));
        assert!(refusal(generation_request(&tool)).starts_with("messages[1].role:"));
    }

    #[test]
    fn truncate_takes_cohere_values_and_defaults_to_end() {
        let extra = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(truncation(&extra(serde_json::json!({}))).unwrap(), Truncate::End);
        assert_eq!(truncation(&extra(serde_json::json!({"truncate": "NONE"}))).unwrap(), Truncate::None);
        assert_eq!(truncation(&extra(serde_json::json!({"truncate": "start"}))).unwrap(), Truncate::Start);
        assert!(truncation(&extra(serde_json::json!({"truncate": "MIDDLE"}))).is_err());
    }

    #[test]
    fn vectors_are_written_short_and_base64_is_little_endian_f32() {
        let v = [0.1f32, -1.5, 3.0e-5];
        let f = floats(&v);
        assert_eq!(serde_json::to_string(&f).unwrap(), "[0.1,-1.5,0.00003]");
        assert!(f.iter().zip(v).all(|(a, b)| *a as f32 == b));
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    #[test]
    fn model_errors_map_to_statuses() {
        let e = from_model_error(ModelError::NotInstalled {
            model: "all-minilm-l6-v2",
            dir: "/x".into(),
            command: "genai models install --dir /x".into(),
        });
        assert_eq!((e.status(), e.code()), (503, "model_not_installed"));
        assert!(e.to_string().contains("genai models install --dir /x"), "{e}");
        let e = from_model_error(ModelError::Busy { model: "m", waiting: 64 });
        assert_eq!((e.status(), e.code()), (503, "model_busy"));
        let e = from_model_error(ModelError::InvalidRequest { field: "temperature".into(), message: "bad".into() });
        assert_eq!((e.status(), e.to_string()), (400, "the model refused the request: temperature: bad".to_owned()));
        let e = from_model_error(ModelError::Internal { model: "m", message: "boom".into() });
        assert_eq!(e.status(), 502);
    }
}
