//! The product family's wire format (RUNTIME.md §3), under `R = /runtime/v1/resources/{id}`
//! with `x-api-key: <key>`: `GET R`, `POST R/converse`, `POST R/converse-stream` (Bedrock
//! Converse, translated to and from OpenAI's shape by `genai-wire`) and `POST R/invoke` (Cohere
//! Embed). Errors use the API's envelope; requests it cannot accept answer 400, never 422.

use super::openai::{answer_output_bytes, pump, reserve_chat, Emit};
use super::stream::event_stream;
use super::{api_key, authorize, model_of, read_body, settle, upstream_error, Gateway, GwError, Serves, Shape};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use genai_core::catalog::ResourceType;
use genai_core::quota::Tokens;
use genai_runtime::{Demand, Runtime, RuntimeError};
use genai_wire::cohere::EmbedRequest;
use genai_wire::converse::{ConverseRequest, TokenUsage};
use genai_wire::estimate;
use genai_wire::translate::{self, ConverseStreamTranslator};
use serde_json::json;

const TEXT: &str = "text_generation";
const EMBEDDINGS: &str = "embeddings_generation";

/// The product family's name of a resource type.
fn type_name(t: ResourceType) -> &'static str {
    match t {
        ResourceType::TextGeneration => "TEXT_GENERATION",
        ResourceType::EmbeddingsGeneration => "EMBEDDINGS_GENERATION",
        ResourceType::KnowledgeBase => "KNOWLEDGE_BASE",
    }
}

/// `GET R`: `{"id", "name", "type", "model", "modelName"}`.
pub async fn get_resource(State(gw): State<Gateway>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let rt = &gw.runtime;
    let caller = match authorize(rt, api_key(&headers), Some(&id), Serves::Any).await {
        Ok(c) => c,
        Err(e) => return e.render(Shape::Envelope, None),
    };
    let r = caller.resource();
    let model_name = r.model.as_deref().and_then(|m| rt.app().catalog().model(m)).map(|m| m.name.clone());
    let body = json!({
        "id": r.id.as_str(),
        "name": r.display_name.to_string(),
        "type": type_name(r.resource_type),
        "model": r.model,
        "modelName": model_name,
    });
    super::json_answer(StatusCode::OK, Bytes::from(body.to_string()), r.resource_type.as_str())
}

/// `POST R/converse`.
pub async fn converse(State(gw): State<Gateway>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    match converse_call(&gw.runtime, &id, &headers, body, false).await {
        Ok(res) => res,
        Err(e) => e.render(Shape::Envelope, Some(TEXT)),
    }
}

/// `POST R/converse-stream`.
pub async fn converse_stream(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match converse_call(&gw.runtime, &id, &headers, body, true).await {
        Ok(res) => res,
        Err(e) => e.render(Shape::Envelope, Some(TEXT)),
    }
}

async fn converse_call(
    rt: &Runtime,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    stream: bool,
) -> Result<Response, GwError> {
    let started = std::time::Instant::now();
    let caller = authorize(rt, api_key(headers), Some(id), Serves::Text).await?;
    let bytes = read_body(body).await?;
    let request = ConverseRequest::parse(&bytes)?;
    let stops = request.stop_sequences().to_vec();
    let model = model_of(&caller)?;
    let route = rt.route(&model).map_err(RuntimeError::from)?.clone();
    let mut chat = translate::converse_to_chat(request, model, stream);
    let reserved = reserve_chat(rt, &caller, &mut chat).await?;
    if stream {
        let upstream = route.chat_stream(chat).await.map_err(|e| upstream_error(rt, e))?;
        let (tx, res) = event_stream(TEXT);
        let emit = Emit::Converse { translator: ConverseStreamTranslator::new(stops), started };
        tokio::spawn(pump(rt.clone(), upstream, reserved, tx, emit));
        return Ok(res);
    }
    let answer = route.chat(chat).await.map_err(|e| upstream_error(rt, e))?;
    let used = match answer.usage() {
        Some(u) => Tokens::new(u.prompt_tokens, u.completion_tokens),
        None => Tokens::new(reserved.input_bound, answer_output_bytes(&answer.response)),
    };
    settle(rt, reserved.reservation, used).await?;
    let usage = TokenUsage {
        input_tokens: used.input,
        output_tokens: used.output,
        total_tokens: used.input.saturating_add(used.output),
    };
    let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let out = translate::chat_to_converse(&answer.response, usage, latency, &stops);
    let body = serde_json::to_vec(&out).map(Bytes::from).unwrap_or_default();
    Ok(super::json_answer(StatusCode::OK, body, TEXT))
}

/// `POST R/invoke`: Cohere Embed; token counts also in `x-amzn-bedrock-*-token-count`.
pub async fn invoke(State(gw): State<Gateway>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    match invoke_call(&gw.runtime, &id, &headers, body).await {
        Ok(res) => res,
        Err(e) => e.render(Shape::Envelope, Some(EMBEDDINGS)),
    }
}

/// A model's refusal names the text by its place in the translated request (`input[3]`); the
/// client sent Cohere's body, where the same text is `texts[3]`.
fn texts_not_input(e: genai_providers::ProviderError) -> genai_providers::ProviderError {
    match e {
        genai_providers::ProviderError::Refused { provider, status, message } if message.starts_with("input[") => {
            genai_providers::ProviderError::Refused {
                provider,
                status,
                message: format!("texts{}", &message["input".len()..]),
            }
        }
        other => other,
    }
}

async fn invoke_call(rt: &Runtime, id: &str, headers: &HeaderMap, body: Body) -> Result<Response, GwError> {
    let caller = authorize(rt, api_key(headers), Some(id), Serves::Embeddings).await?;
    let bytes = read_body(body).await?;
    let request = EmbedRequest::parse(&bytes)?;
    let model = model_of(&caller)?;
    let route = rt.route(&model).map_err(RuntimeError::from)?.clone();
    let upstream_request = translate::cohere_to_embeddings(&request, model);
    let bound = estimate::embeddings(&upstream_request);
    let reservation = rt.reserve(&caller, Demand { input: bound, max_output: None, produces_output: false }).await?;
    let answer = route.embed(upstream_request).await.map_err(|e| upstream_error(rt, texts_not_input(e)))?;
    let input_tokens = answer.input_tokens().unwrap_or(bound);
    let out = translate::embeddings_to_cohere(answer.response, super::random_id(), request.texts).map_err(|e| {
        upstream_error(
            rt,
            genai_providers::ProviderError::failed(route.provider.name(), genai_providers::Failure::BadAnswer, e.0),
        )
    })?;
    settle(rt, reservation, Tokens::new(input_tokens, 0)).await?;
    let body = serde_json::to_vec(&out).map(Bytes::from).unwrap_or_default();
    let mut res = super::json_answer(StatusCode::OK, body, EMBEDDINGS);
    if let Ok(v) = HeaderValue::from_str(&input_tokens.to_string()) {
        res.headers_mut().insert("x-amzn-bedrock-input-token-count", v);
    }
    res.headers_mut().insert("x-amzn-bedrock-output-token-count", HeaderValue::from_static("0"));
    Ok(res)
}
