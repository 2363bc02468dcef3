//! OpenAI's wire format (RUNTIME.md §4): `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.
//!
//! The key selects the resource; `model` must be the resource's model id (404
//! `model_not_found` naming the one it serves). Answers are the upstream's bytes with `model`
//! renamed to the catalog id, `usage` exactly as the upstream reported it. A request that names
//! no output limit is sent upstream with `max_tokens` = what was reserved for it (the default
//! reservation, RUNTIME.md §5), so no call can use more output than it reserved.
//!
//! Streams: chunks are forwarded as they arrive; a chunk carrying `usage` is held back, and it
//! and `[DONE]` are written only after the call's usage is committed. A stream the upstream cuts
//! ends with an error event and no `[DONE]`.

use super::stream::{data_event, event_stream};
use super::{authorize, model_of, read_body, settle, upstream_error, Gateway, GwError, Serves, Shape};
use crate::api::bearer_token;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use genai_core::quota::Tokens;
use genai_providers::{ChatStream, ProviderError};
use genai_runtime::{Demand, Reservation, Runtime};
use genai_wire::converse::{StreamEvent, TokenUsage};
use genai_wire::openai::{ChatRequest, ChatResponse, EmbeddingsRequest, ModelList};
use genai_wire::translate::ConverseStreamTranslator;
use genai_wire::{estimate, parse_request};
use tokio::sync::mpsc;

const TEXT: &str = "text_generation";
const EMBEDDINGS: &str = "embeddings_generation";

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    match chat(&gw.runtime, &headers, body).await {
        Ok(res) => res,
        Err(e) => e.render(Shape::OpenAi, Some(TEXT)),
    }
}

/// What a chat call reserved and will be charged with when the upstream reports nothing.
pub(crate) struct Reserved {
    pub(crate) reservation: Reservation,
    pub(crate) input_bound: i64,
}

/// Reserves for a chat request and caps its output at the reservation when it named no limit.
pub(crate) async fn reserve_chat(
    rt: &Runtime,
    caller: &genai_runtime::Caller,
    request: &mut ChatRequest,
) -> Result<Reserved, GwError> {
    let est = estimate::chat(request);
    let demand = Demand {
        input: est.prompt_tokens,
        max_output: est.max_output_tokens.map(|m| m.saturating_mul(est.choices)),
        produces_output: true,
    };
    let reservation = rt.reserve(caller, demand).await?;
    if request.max_output_tokens().is_none() {
        request.max_tokens = Some(reservation.output_per_choice(est.choices));
    }
    Ok(Reserved { reservation, input_bound: est.prompt_tokens })
}

/// Output bytes of a whole answer: what it is charged when the upstream reports no usage.
pub(crate) fn answer_output_bytes(r: &ChatResponse) -> i64 {
    let mut n = 0usize;
    for c in &r.choices {
        n += c.message.content.as_deref().map_or(0, str::len);
        for t in c.message.tool_calls.iter().flatten() {
            n += t.function.name.len() + t.function.arguments.len();
        }
    }
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn chat(rt: &Runtime, headers: &HeaderMap, body: Body) -> Result<Response, GwError> {
    let caller = authorize(rt, bearer_token(headers), None, Serves::Text).await?;
    let bytes = read_body(body).await?;
    let mut request: ChatRequest = parse_request(&bytes)?;
    request.validate()?;
    let model = model_of(&caller)?;
    if request.model != model {
        return Err(genai_runtime::RuntimeError::ModelNotFound { asked: request.model, served: model }.into());
    }
    let route = rt.route(&model).map_err(genai_runtime::RuntimeError::from)?.clone();
    let reserved = reserve_chat(rt, &caller, &mut request).await?;
    if request.is_stream() {
        let stream = route.chat_stream(request).await.map_err(|e| upstream_error(rt, e))?;
        let (tx, res) = event_stream(TEXT);
        tokio::spawn(pump(rt.clone(), stream, reserved, tx, Emit::OpenAi { model, held: None }));
        return Ok(res);
    }
    let answer = route.chat(request).await.map_err(|e| upstream_error(rt, e))?;
    let used = match answer.usage() {
        Some(u) => Tokens::new(u.prompt_tokens, u.completion_tokens),
        None => Tokens::new(reserved.input_bound, answer_output_bytes(&answer.response)),
    };
    settle(rt, reserved.reservation, used).await?;
    let body = genai_wire::openai::replace_model(&answer.body, &model).map_or(answer.body, Bytes::from);
    Ok(super::json_answer(StatusCode::OK, body, TEXT))
}

/// How a stream's chunks are written to the client.
pub(crate) enum Emit {
    /// OpenAI's chunks as they came (model renamed); the usage chunk held until settled.
    OpenAi { model: String, held: Option<Bytes> },
    /// ConverseStream events.
    Converse { translator: ConverseStreamTranslator, started: std::time::Instant },
}

impl Emit {
    fn chunk(&mut self, c: &genai_providers::StreamChunk, out: &mut Vec<Bytes>) {
        match self {
            Emit::OpenAi { model, held } => {
                if !c.forward {
                    return;
                }
                let data =
                    genai_wire::openai::replace_model(&c.data, model).map_or_else(|| c.data.clone(), Bytes::from);
                if c.chunk.usage.is_some() {
                    *held = Some(data);
                } else {
                    out.push(data_event(&data));
                }
            }
            Emit::Converse { translator, .. } => {
                let mut events = Vec::new();
                translator.push(&c.chunk, &mut events);
                out.extend(events.iter().map(sse_event));
            }
        }
    }

    fn finish(&mut self, used: Tokens, out: &mut Vec<Bytes>) {
        match self {
            Emit::OpenAi { held, .. } => {
                if let Some(h) = held.take() {
                    out.push(data_event(&h));
                }
                out.push(data_event(b"[DONE]"));
            }
            Emit::Converse { translator, started } => {
                let usage = TokenUsage {
                    input_tokens: used.input,
                    output_tokens: used.output,
                    total_tokens: used.input.saturating_add(used.output),
                };
                let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let mut events = Vec::new();
                translator.finish(usage, latency, &mut events);
                out.extend(events.iter().map(sse_event));
            }
        }
    }

    fn failed(&self, status: u16, code: &str, message: &str) -> Option<Bytes> {
        match self {
            Emit::OpenAi { .. } => {
                let e = genai_wire::openai::ErrorResponse::new(status, code, message, None);
                serde_json::to_vec(&e).ok().map(|d| data_event(&d))
            }
            // The six ConverseStream events have no error event: the stream just ends without
            // MESSAGE_STOP/METADATA, which the product family's client reports as incomplete.
            Emit::Converse { .. } => None,
        }
    }
}

fn sse_event(e: &StreamEvent) -> Bytes {
    let mut out = Vec::new();
    e.write_sse(&mut out);
    Bytes::from(out)
}

/// Reads the upstream's stream to its end, writing to the client, then settles. See the module
/// documentation; what is charged:
/// - complete: the upstream's usage (else the prompt bound and the output's bytes);
/// - cut by the upstream or left by the client after output began: the upstream's usage if it
///   came, else the prompt bound and the output's bytes so far;
/// - nothing produced yet (failure or the client gone): nothing.
pub(crate) async fn pump(
    rt: Runtime,
    mut stream: ChatStream,
    reserved: Reserved,
    tx: mpsc::Sender<Bytes>,
    mut emit: Emit,
) {
    let mut out = Vec::new();
    let mut failure: Option<ProviderError> = None;
    let mut gone = false;
    loop {
        let next = tokio::select! {
            biased;
            () = tx.closed() => { gone = true; break }
            n = stream.next() => n,
        };
        match next {
            Some(Ok(chunk)) => {
                emit.chunk(&chunk, &mut out);
                for frame in out.drain(..) {
                    if tx.send(frame).await.is_err() {
                        gone = true;
                    }
                }
                if gone {
                    break;
                }
            }
            None => break,
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
        }
    }
    let produced = stream.output_bytes() > 0 || stream.usage().is_some();
    let used = match stream.usage() {
        Some(u) => Tokens::new(u.prompt_tokens, u.completion_tokens),
        None => Tokens::new(reserved.input_bound, stream.output_bytes()),
    };
    drop(stream); // A stream left early closes its upstream connection here.
    if let Some(e) = failure {
        let error = upstream_error(&rt, e);
        if produced {
            let _ = rt.settle(reserved.reservation, used).await;
        }
        if let Some(frame) = emit.failed(error.status, error.code, &error.message) {
            let _ = tx.send(frame).await;
        }
        return;
    }
    if gone {
        if produced {
            let _ = rt.settle(reserved.reservation, used).await;
        }
        return;
    }
    match rt.settle(reserved.reservation, used).await {
        Ok(()) => {
            emit.finish(used, &mut out);
            for frame in out.drain(..) {
                if tx.send(frame).await.is_err() {
                    break;
                }
            }
        }
        Err(e) => {
            let e = GwError::from(e);
            if let Some(frame) = emit.failed(e.status, e.code, &e.message) {
                let _ = tx.send(frame).await;
            }
        }
    }
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    match embed(&gw.runtime, &headers, body).await {
        Ok(res) => res,
        Err(e) => e.render(Shape::OpenAi, Some(EMBEDDINGS)),
    }
}

async fn embed(rt: &Runtime, headers: &HeaderMap, body: Body) -> Result<Response, GwError> {
    let caller = authorize(rt, bearer_token(headers), None, Serves::Embeddings).await?;
    let bytes = read_body(body).await?;
    let request: EmbeddingsRequest = parse_request(&bytes)?;
    request.validate()?;
    let model = model_of(&caller)?;
    if request.model != model {
        return Err(genai_runtime::RuntimeError::ModelNotFound { asked: request.model, served: model }.into());
    }
    let route = rt.route(&model).map_err(genai_runtime::RuntimeError::from)?.clone();
    let bound = estimate::embeddings(&request);
    let inputs = request.input.len();
    let demand = Demand { input: bound, max_output: None, produces_output: false };
    let reservation = rt.reserve(&caller, demand).await?;
    let answer = route.embed(request).await.map_err(|e| upstream_error(rt, e))?;
    genai_wire::translate::check_embeddings(&answer.response, inputs).map_err(|e| {
        upstream_error(rt, ProviderError::failed(route.provider.name(), genai_providers::Failure::BadAnswer, e.0))
    })?;
    let used = Tokens::new(answer.input_tokens().unwrap_or(bound), 0);
    settle(rt, reservation, used).await?;
    let body = genai_wire::openai::replace_model(&answer.body, &model).map_or(answer.body, Bytes::from);
    Ok(super::json_answer(StatusCode::OK, body, EMBEDDINGS))
}

/// `GET /v1/models`: the key's resource's model.
pub async fn models(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let rt = &gw.runtime;
    let caller = match authorize(rt, bearer_token(&headers), None, Serves::Any).await {
        Ok(c) => c,
        Err(e) => return e.render(Shape::OpenAi, None),
    };
    let r = caller.resource();
    let list = ModelList::of(r.model.iter().map(|m| (m.clone(), r.created_at.timestamp())), "genai-resources");
    let body = serde_json::to_vec(&list).map(Bytes::from).unwrap_or_default();
    super::json_answer(StatusCode::OK, body, r.resource_type.as_str())
}
