//! The Runtime API over HTTP (RUNTIME.md §3–5): thin handlers over the metering engine
//! (`genai-runtime`), the wire formats (`genai-wire`) and the provider routes
//! (`genai-providers`).
//!
//! - [`openai`]: `POST /v1/chat/completions` (also streamed), `POST /v1/embeddings`,
//!   `GET /v1/models`, authenticated by `Authorization: Bearer <key>`, errors in OpenAI's error
//!   object so that OpenAI's SDKs raise their usual exceptions.
//! - [`bedrock`]: `/runtime/v1/resources/{id}` (`GET`), `/converse`, `/converse-stream`,
//!   `/invoke`, authenticated by `x-api-key: <key>`, errors in the API's envelope
//!   (`{"error": {"code", "message", "details"}}`, plus a top-level `message` as Bedrock's
//!   clients read it).
//!
//! Every call goes: authenticate (401) → the key's resource is the path's (403
//! `wrong_resource`) and of the route's type (400 `wrong_resource_type`) → parse and validate
//! (400 naming the field) → the resource's model (404 `model_not_found` on `/v1`) and its route
//! (503 `model_not_served`) → reserve (429 `quota_exceeded` with `Retry-After`) → upstream
//! (502/504; the reservation is released, nothing charged) → settle (the usage is committed
//! before the answer is sent; for streams before the final usage event and `[DONE]`).
//! Refused calls are not counted. Runtime bodies may be up to [`RUNTIME_BODY_LIMIT`].
//!
//! `GET /metrics` answers the engine's counters in Prometheus's text format.

pub mod bedrock;
pub mod openai;
mod stream;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use genai_core::catalog::ResourceType;
use genai_core::quota::Tokens;
use genai_providers::{Failure, ProviderError};
use genai_runtime::{Caller, Runtime, RuntimeError};
use genai_wire::WireError;
use serde_json::{json, Value};
use std::time::Instant;

/// The largest Runtime API request body (images and documents travel inline).
pub const RUNTIME_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// State of the gateway's handlers.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// The metering engine.
    pub runtime: Runtime,
}

/// Whether a path belongs to the Runtime API (no request timeout: the provider's own timeout
/// bounds an upstream call, and streams may run long).
pub fn is_runtime_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/runtime/v1/")
}

/// The routes of the Runtime API and `/metrics`.
pub fn routes<S: Clone + Send + Sync + 'static>(runtime: Runtime) -> Router<S> {
    let gw = Gateway { runtime };
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/runtime/v1/resources/{id}", get(bedrock::get_resource))
        .route("/runtime/v1/resources/{id}/converse", post(bedrock::converse))
        .route("/runtime/v1/resources/{id}/converse-stream", post(bedrock::converse_stream))
        .route("/runtime/v1/resources/{id}/invoke", post(bedrock::invoke))
        .route_layer(middleware::from_fn_with_state(gw.clone(), measure))
        .route("/metrics", get(metrics))
        .with_state(gw)
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    let mut res = gw.runtime.metrics().render().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    res
}

/// The resource type a handler served, for the metrics (set as a response extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served(pub &'static str);

/// Records every Runtime API answer in the metrics (time to the answer's headers).
async fn measure(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.uri().path();
    let format = if path.starts_with("/v1/") {
        "openai"
    } else if path.ends_with("/converse") {
        "converse"
    } else if path.ends_with("/converse-stream") {
        "converse_stream"
    } else if path.ends_with("/invoke") {
        "invoke"
    } else {
        "resource"
    };
    let res = next.run(req).await;
    let rtype = res.extensions().get::<Served>().map_or("unknown", |s| s.0);
    gw.runtime.metrics().request(rtype, format, res.status().as_u16(), started.elapsed());
    res
}

/// Which error shape a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// OpenAI's `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// The API's envelope.
    Envelope,
}

/// A refusal or failure of a Runtime API call.
#[derive(Debug)]
pub(crate) struct GwError {
    status: u16,
    code: &'static str,
    message: String,
    param: Option<String>,
    details: Value,
    retry_after: Option<u64>,
}

impl GwError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> GwError {
        GwError { status, code, message: message.into(), param: None, details: json!({}), retry_after: None }
    }

    pub(crate) fn render(self, shape: Shape, served: Option<&'static str>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match shape {
            Shape::OpenAi => serde_json::to_value(genai_wire::openai::ErrorResponse::new(
                self.status,
                self.code,
                self.message.clone(),
                self.param.clone(),
            ))
            .unwrap_or_else(|_| json!({})),
            Shape::Envelope => {
                let mut details = self.details;
                if let (Some(p), Some(d)) = (&self.param, details.as_object_mut()) {
                    d.insert("field".into(), json!(p));
                }
                json!({"message": self.message, "error": {"code": self.code, "message": self.message, "details": details}})
            }
        };
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(s) = served {
            res.extensions_mut().insert(Served(s));
        }
        res
    }
}

impl From<RuntimeError> for GwError {
    fn from(e: RuntimeError) -> Self {
        let mut out = GwError::new(e.status(), e.code(), e.to_string());
        out.retry_after = e.retry_after();
        match &e {
            RuntimeError::Quota { exceeded, refills_at, .. } => {
                out.details = json!({
                    "quota": {"input_tokens": exceeded.quota.input, "output_tokens": exceeded.quota.output},
                    "remaining": {"input_tokens": exceeded.remaining.input, "output_tokens": exceeded.remaining.output},
                    "requested": {"input_tokens": exceeded.requested.input, "output_tokens": exceeded.requested.output},
                    "refills_at": refills_at,
                });
                out.message = format!(
                    "Quota exceeded: {}. The monthly quota is {}; {} remain; it refills at {}.",
                    exceeded, exceeded.quota, exceeded.remaining, refills_at
                );
            }
            RuntimeError::Unavailable(cause) => tracing::warn!(cause = %cause, "a runtime call could not be served"),
            RuntimeError::ModelNotFound { served, .. } => out.details = json!({"model": served}),
            _ => {}
        }
        out
    }
}

impl From<WireError> for GwError {
    fn from(e: WireError) -> Self {
        let mut out = GwError::new(400, e.code(), e.to_string());
        out.param = e.field.clone();
        out
    }
}

/// An upstream failure: counted in the metrics, answered with its status.
pub(crate) fn upstream_error(rt: &Runtime, e: ProviderError) -> GwError {
    let (provider, kind) = match &e {
        ProviderError::Timeout { provider, .. } => (provider.as_str(), "timeout"),
        ProviderError::Failed { provider, failure, .. } => (
            provider.as_str(),
            match failure {
                Failure::Connect => "connect",
                Failure::Status(_) => "status",
                Failure::Cut => "cut",
                Failure::InStream => "in_stream",
                Failure::BadAnswer => "bad_answer",
            },
        ),
        ProviderError::Refused { provider, .. } => (provider.as_str(), "refused"),
        ProviderError::ModelNotInstalled { .. } => ("builtin", "not_installed"),
    };
    rt.metrics().upstream_error(provider, kind);
    if e.status() >= 500 {
        tracing::warn!(provider, kind, error = %e, "an upstream call failed");
    }
    GwError::from(RuntimeError::Provider(e))
}

/// An unknown Runtime API route (404) or method (405), in the path's error format.
pub fn no_route(method: &str, path: &str, status: u16) -> Response {
    let (code, message) = match status {
        405 => ("method_not_allowed", format!("{method} is not allowed on {path}")),
        _ => ("not_found", format!("there is no Runtime API route {method} {path}")),
    };
    let shape = if path.starts_with("/v1/") { Shape::OpenAi } else { Shape::Envelope };
    GwError::new(status, code, message).render(shape, None)
}

/// What a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serves {
    Text,
    Embeddings,
    Any,
}

/// Authenticates and checks the key against the path's resource and the route's type.
pub(crate) async fn authorize(
    rt: &Runtime,
    secret: Option<&str>,
    path_resource: Option<&str>,
    serves: Serves,
) -> Result<Caller, GwError> {
    let caller = rt.authenticate(secret).await?;
    let r = caller.resource();
    if let Some(id) = path_resource {
        if r.id.as_str() != id {
            return Err(RuntimeError::WrongResource(r.id.clone()).into());
        }
    }
    let expected = match serves {
        Serves::Text => Some((ResourceType::TextGeneration, "text generation")),
        Serves::Embeddings => Some((ResourceType::EmbeddingsGeneration, "embeddings generation")),
        Serves::Any => None,
    };
    if let Some((t, name)) = expected {
        if r.resource_type != t {
            return Err(RuntimeError::WrongResourceType { expected: name, actual: r.resource_type }.into());
        }
    }
    Ok(caller)
}

/// Reads a request body up to [`RUNTIME_BODY_LIMIT`].
pub(crate) async fn read_body(body: axum::body::Body) -> Result<Bytes, GwError> {
    axum::body::to_bytes(body, RUNTIME_BODY_LIMIT).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            GwError::new(413, "payload_too_large", format!("the body is over {RUNTIME_BODY_LIMIT} bytes"))
        } else {
            GwError::new(400, "invalid_request", format!("the body could not be read: {e}"))
        }
    })
}

/// The resource's model, which a model resource always has.
pub(crate) fn model_of(caller: &Caller) -> Result<String, GwError> {
    caller
        .resource()
        .model
        .clone()
        .ok_or_else(|| GwError::new(400, "wrong_resource_type", "this resource has no model"))
}

/// Settles a call; a commit that failed answers 503 (the usage could not be made durable, so
/// the answer is not given).
pub(crate) async fn settle(rt: &Runtime, r: genai_runtime::Reservation, used: Tokens) -> Result<(), GwError> {
    rt.settle(r, used).await.map_err(GwError::from)
}

/// `x-api-key`.
pub(crate) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// A JSON answer with the resource type for the metrics.
pub(crate) fn json_answer(status: StatusCode, body: Bytes, served: &'static str) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.extensions_mut().insert(Served(served));
    res
}

/// A fresh random id (hex), for answers that carry one.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
