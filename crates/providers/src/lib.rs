//! The provider port: how the Runtime API reaches a model.
//!
//! The metering engine calls a [`Provider`] with a request in OpenAI's shape (the canonical one:
//! most traffic arrives in it, and the product family's format is translated into it by
//! `genai-wire`) and the upstream model name the route gives. A provider answers
//!
//! - [`ChatAnswer`] / [`EmbedAnswer`]: the upstream's JSON bytes as they came (the OpenAI path
//!   forwards them without re-serialising) plus the parsed answer (usage, choices);
//! - [`ChatStream`]: chunks as they arrive, each with its raw data and its parse, and whether the
//!   client asked to see it (the provider always asks the upstream for the usage chunk, and
//!   marks it not to be forwarded when the client did not ask);
//! - [`ProviderError`]: typed failures with their HTTP status and code (timeout → 504, upstream
//!   failure → 502, a request the upstream refuses → 400, a local model not installed → 503).
//!
//! Kinds: [`openai::OpenAiProvider`] (any OpenAI-compatible server) and
//! [`builtin::BuiltinProvider`] (the built-in local models of `genai-models`, issue 9), which
//! implements the same trait in-process: its answers are built with
//! [`ChatAnswer::from_response`] / [`EmbedAnswer::from_response`], its streams fed through
//! [`ChatStream::channel`], and a model whose weights are missing answers
//! [`ProviderError::ModelNotInstalled`]. [`router::Router`] maps catalog models to routes and has
//! a slot for those built-in routes.

pub mod builtin;
pub mod config;
pub mod openai;
pub mod router;
mod stream;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use genai_wire::openai::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Usage};

pub use builtin::{BuiltinProvider, BUILTIN_MODELS};
pub use config::{ConfigError, ProvidersConfig};
pub use router::{ModelNotServed, Route, Router};
pub use stream::{ChatStream, ChunkSender};

/// Something that serves models in OpenAI's shape.
///
/// `model` is the upstream's name for the model (the route's `upstream_model`); the provider puts
/// it in the request it sends, whatever the client's request said.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's name (its table in the providers file, `builtin` for local models): for
    /// errors, logs and metrics.
    fn name(&self) -> &str;

    /// A chat completion, whole. `request.stream` is ignored.
    async fn chat(&self, model: &str, request: ChatRequest) -> Result<ChatAnswer, ProviderError>;

    /// A chat completion as a stream of chunks. The answer arrives once the upstream has
    /// accepted the call (for HTTP: its status and headers); chunks follow as they come.
    async fn chat_stream(&self, model: &str, request: ChatRequest) -> Result<ChatStream, ProviderError>;

    /// Embeddings.
    async fn embed(&self, model: &str, request: EmbeddingsRequest) -> Result<EmbedAnswer, ProviderError>;
}

/// A whole chat answer.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    /// The answer's JSON, as the upstream sent it.
    pub body: Bytes,
    /// The same, parsed.
    pub response: ChatResponse,
}

impl ChatAnswer {
    /// An answer made in-process (the built-in kind): the body is the response serialised.
    pub fn from_response(response: ChatResponse) -> ChatAnswer {
        let body = Bytes::from(serde_json::to_vec(&response).unwrap_or_default());
        ChatAnswer { body, response }
    }

    /// The usage the upstream reported, if it did.
    pub fn usage(&self) -> Option<Usage> {
        self.response.usage
    }
}

/// A whole embeddings answer.
#[derive(Debug, Clone)]
pub struct EmbedAnswer {
    /// The answer's JSON, as the upstream sent it.
    pub body: Bytes,
    /// The same, parsed.
    pub response: EmbeddingsResponse,
}

impl EmbedAnswer {
    /// An answer made in-process (the built-in kind).
    pub fn from_response(response: EmbeddingsResponse) -> EmbedAnswer {
        let body = Bytes::from(serde_json::to_vec(&response).unwrap_or_default());
        EmbedAnswer { body, response }
    }

    /// The input tokens the upstream reported, if it did.
    pub fn input_tokens(&self) -> Option<i64> {
        self.response.usage.map(|u| u.prompt_tokens)
    }
}

/// One chunk of a chat stream.
#[derive(Debug, Clone)]
pub struct StreamChunk {
    /// The SSE event's data (the chunk's JSON) as the upstream sent it: the OpenAI path writes
    /// `data: <this>\n\n` to its client.
    pub data: Bytes,
    /// The same, parsed.
    pub chunk: ChatChunk,
    /// Whether the client asked for this chunk. `false` only for the usage chunk the provider
    /// asked for on the engine's behalf when the client's request did not.
    pub forward: bool,
}

/// Why an upstream call failed, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable, DNS).
    Connect,
    /// The upstream answered with this error status.
    Status(u16),
    /// The connection broke before the answer was complete.
    Cut,
    /// The upstream reported an error in the middle of a stream.
    InStream,
    /// The answer was not what the format promises.
    BadAnswer,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect"),
            Failure::Status(s) => write!(f, "status {s}"),
            Failure::Cut => f.write_str("cut"),
            Failure::InStream => f.write_str("error in stream"),
            Failure::BadAnswer => f.write_str("bad answer"),
        }
    }
}

/// A call a provider could not complete. Messages name the provider, never its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer (or, for a stream, no next chunk) within `timeout_seconds`.
    #[error("the upstream of provider `{provider}` did not answer within {seconds} s")]
    Timeout {
        /// The provider.
        provider: String,
        /// The limit that passed.
        seconds: u64,
    },
    /// The upstream failed: refused the connection, answered an error status, cut the
    /// connection, or answered something unusable.
    #[error("the upstream of provider `{provider}` failed ({failure}): {detail}")]
    Failed {
        /// The provider.
        provider: String,
        /// What kind of failure.
        failure: Failure,
        /// What happened, for a person.
        detail: String,
    },
    /// The upstream refused the request itself (status 400, 413 or 422: a prompt longer than
    /// the model's context, a parameter it does not support). The client's fault, reported
    /// with the upstream's message.
    #[error("the model refused the request: {message}")]
    Refused {
        /// The provider.
        provider: String,
        /// The upstream's status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// A local model's queue is full (the built-in kind): retry later.
    #[error("provider `{provider}` is busy: {detail}")]
    Busy {
        /// The provider.
        provider: String,
        /// What is full.
        detail: String,
    },
    /// A local model whose weights are not installed (the built-in kind).
    #[error("model `{model}` is not installed: {hint}")]
    ModelNotInstalled {
        /// The model.
        model: String,
        /// How to install it.
        hint: String,
    },
}

impl ProviderError {
    /// The HTTP status the Runtime API answers.
    pub fn status(&self) -> u16 {
        match self {
            ProviderError::Timeout { .. } => 504,
            ProviderError::Failed { .. } => 502,
            ProviderError::Refused { .. } => 400,
            ProviderError::ModelNotInstalled { .. } | ProviderError::Busy { .. } => 503,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Timeout { .. } => "upstream_timeout",
            ProviderError::Failed { .. } => "upstream_failed",
            ProviderError::Refused { .. } => "invalid_request",
            ProviderError::ModelNotInstalled { .. } => "model_not_installed",
            ProviderError::Busy { .. } => "model_busy",
        }
    }

    /// A failure of this provider.
    pub fn failed(provider: &str, failure: Failure, detail: impl Into<String>) -> ProviderError {
        ProviderError::Failed { provider: provider.to_owned(), failure, detail: detail.into() }
    }
}
