//! The `openai` kind: any server that speaks OpenAI's wire format (vLLM, Ollama, llama.cpp,
//! LiteLLM, OpenAI-compatible gateways) over HTTP/1.1.
//!
//! Built on hyper-util's pooled client rather than reqwest: the request path is a serialise, a
//! write on a kept-alive connection, a read and a parse, and reqwest's extra layers (redirects,
//! its own body type, a per-request builder) cost time without use here — the benchmark in
//! `examples/provider_bench.rs` measures the difference. Connections stay open between calls
//! (`TCP_NODELAY` set, idle ones closed after 90 s), so a call is one round trip.
//!
//! Timeouts: `timeout_seconds` bounds a whole call; for a stream it bounds the time to the first
//! chunk and then every silence between two chunks (a stream may run longer than the limit as
//! long as it keeps producing). A call that times out or breaks has its connection dropped, so a
//! late answer can never be read by the next call on it.
//!
//! The bearer key is a sensitive header value: never formatted, never logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use genai_wire::openai::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, StreamOptions};
use genai_wire::sse::SseParser;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::stream::HttpSource;
use crate::{ChatAnswer, ChatStream, EmbedAnswer, Failure, Provider, ProviderError};

/// Largest answer read (a batch of 96 large embeddings is a few MiB).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Largest error answer read.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The settings of one `openai` provider.
#[derive(Clone)]
pub struct OpenAiSettings {
    base_url: String,
    chat_uri: Uri,
    embeddings_uri: Uri,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiSettings {
    /// Checks the base URL (`http://host:port/path`, no credentials, query or fragment) and the
    /// key, and prepares the endpoints. The error says what is wrong, for the config's message.
    pub fn new(base_url: &str, api_key: Option<&str>, timeout: Duration) -> Result<OpenAiSettings, String> {
        let base = base_url.trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|e| format!("`{base_url}` is not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "`{base_url}`: https upstreams are not supported by this build (it has no TLS); \
                     use an http URL, e.g. a local TLS-terminating proxy"
                ))
            }
            _ => return Err(format!("`{base_url}` must start with http://")),
        }
        let authority = uri.authority().ok_or_else(|| format!("`{base_url}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{base_url}` carries credentials; put the key in the variable named by api_key_env"));
        }
        if uri.query().is_some() || base.contains('#') {
            return Err(format!("`{base_url}` must not have a query or a fragment"));
        }
        let endpoint = |path: &str| -> Result<Uri, String> {
            format!("{base}{path}").parse().map_err(|e| format!("`{base_url}{path}` is not a URL ({e})"))
        };
        let authorization = match api_key {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "the API key holds characters a header cannot carry".to_string())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        if timeout.is_zero() {
            return Err("the timeout must be at least one second".into());
        }
        Ok(OpenAiSettings {
            base_url: base.to_owned(),
            chat_uri: endpoint("/chat/completions")?,
            embeddings_uri: endpoint("/embeddings")?,
            authorization,
            timeout,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A provider of the `openai` kind.
#[derive(Debug)]
pub struct OpenAiProvider {
    name: Arc<str>,
    settings: OpenAiSettings,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl OpenAiProvider {
    /// A provider named `name` (its table in the providers file) with these settings. Opens no
    /// connection yet.
    pub fn new(name: &str, settings: OpenAiSettings) -> OpenAiProvider {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout.min(Duration::from_secs(10))));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        OpenAiProvider { name: Arc::from(name), settings, client }
    }

    fn failed(&self, failure: Failure, detail: impl Into<String>) -> ProviderError {
        ProviderError::failed(&self.name, failure, detail)
    }

    fn timed_out(&self) -> ProviderError {
        ProviderError::Timeout { provider: self.name.to_string(), seconds: self.settings.timeout.as_secs() }
    }

    async fn send(&self, uri: &Uri, body: Vec<u8>, stream: bool) -> Result<Response<Incoming>, ProviderError> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        let headers = req.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static(if stream { "text/event-stream" } else { "application/json" }));
        if let Some(auth) = &self.settings.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        self.client.request(req).await.map_err(|e| {
            let detail = chain(&e);
            if e.is_connect() {
                self.failed(Failure::Connect, format!("cannot connect to {} ({detail})", self.settings.base_url))
            } else {
                self.failed(Failure::Cut, format!("the connection broke before the answer ({detail})"))
            }
        })
    }

    async fn read(&self, response: Response<Incoming>, limit: usize) -> Result<Bytes, ProviderError> {
        match Limited::new(response.into_body(), limit).collect().await {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(self.failed(Failure::BadAnswer, format!("the answer is larger than {limit} bytes")))
            }
            Err(e) => Err(self.failed(Failure::Cut, format!("the answer broke off ({e})"))),
        }
    }

    /// The error for a non-2xx answer.
    async fn status_error(&self, response: Response<Incoming>) -> ProviderError {
        let status = response.status();
        let body = self.read(response, MAX_ERROR_BYTES).await.unwrap_or_default();
        let message = error_message(&body);
        match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
                ProviderError::Refused { provider: self.name.to_string(), status: status.as_u16(), message }
            }
            _ => self.failed(Failure::Status(status.as_u16()), format!("status {}: {message}", status.as_u16())),
        }
    }

    async fn call_json(&self, uri: &Uri, body: Vec<u8>) -> Result<Bytes, ProviderError> {
        let response = self.send(uri, body, false).await?;
        if !response.status().is_success() {
            return Err(self.status_error(response).await);
        }
        self.read(response, MAX_ANSWER_BYTES).await
    }
}

fn serialise<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // The request types hold only strings, numbers and JSON values: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The message of an error answer, in the shapes OpenAI-compatible servers use: OpenAI's
/// `{"error": {"message"}}`, Ollama's `{"error": "…"}`, older vLLM's flat `{"message"}`,
/// FastAPI's `{"detail"}`; otherwise the start of the body.
fn error_message(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return excerpt(body) };
    let found = [&v["error"]["message"], &v["error"], &v["message"], &v["detail"]].into_iter().find_map(|m| m.as_str());
    match found {
        Some(m) => m.to_owned(),
        None => excerpt(body),
    }
}

/// The start of a body that is not an error object, for a message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no message".into();
    }
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, model: &str, mut request: ChatRequest) -> Result<ChatAnswer, ProviderError> {
        model.clone_into(&mut request.model);
        request.stream = None;
        request.stream_options = None;
        let body = serialise(&request);
        let call = async {
            let body = self.call_json(&self.settings.chat_uri, body).await?;
            let response: ChatResponse = serde_json::from_slice(&body)
                .map_err(|e| self.failed(Failure::BadAnswer, format!("not a chat completion ({e})")))?;
            if response.choices.is_empty() {
                return Err(self.failed(Failure::BadAnswer, "a chat completion without choices"));
            }
            Ok(ChatAnswer { body, response })
        };
        tokio::time::timeout(self.settings.timeout, call).await.map_err(|_| self.timed_out())?
    }

    async fn chat_stream(&self, model: &str, mut request: ChatRequest) -> Result<ChatStream, ProviderError> {
        model.clone_into(&mut request.model);
        let client_wants_usage = request.wants_stream_usage();
        request.stream = Some(true);
        // Always ask for the usage chunk: metering settles with it.
        request.stream_options.get_or_insert_with(StreamOptions::default).include_usage = Some(true);
        let body = serialise(&request);
        let deadline = Instant::now() + self.settings.timeout;
        let accepted = async {
            let response = self.send(&self.settings.chat_uri, body, true).await?;
            if !response.status().is_success() {
                return Err(self.status_error(response).await);
            }
            let is_sse = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !is_sse {
                return Err(
                    self.failed(Failure::BadAnswer, "a stream was asked for, but the answer is not text/event-stream")
                );
            }
            Ok(response)
        };
        let response = tokio::time::timeout_at(deadline, accepted).await.map_err(|_| self.timed_out())??;
        Ok(ChatStream::http(HttpSource {
            body: response.into_body(),
            parser: SseParser::default(),
            provider: Arc::clone(&self.name),
            first_deadline: Some(deadline),
            idle: self.settings.timeout,
            client_wants_usage,
            saw_finish: false,
        }))
    }

    async fn embed(&self, model: &str, mut request: EmbeddingsRequest) -> Result<EmbedAnswer, ProviderError> {
        model.clone_into(&mut request.model);
        // `truncate` is the Cohere path's instruction to the built-in model (genai-wire's
        // `cohere_to_embeddings`); OpenAI's API has no such parameter and refuses unknown ones.
        request.extra.remove("truncate");
        let inputs = request.input.len();
        let body = serialise(&request);
        let call = async {
            let body = self.call_json(&self.settings.embeddings_uri, body).await?;
            let response: EmbeddingsResponse = serde_json::from_slice(&body)
                .map_err(|e| self.failed(Failure::BadAnswer, format!("not an embeddings answer ({e})")))?;
            genai_wire::translate::check_embeddings(&response, inputs)
                .map_err(|e| self.failed(Failure::BadAnswer, e.0))?;
            Ok(EmbedAnswer { body, response })
        };
        tokio::time::timeout(self.settings.timeout, call).await.map_err(|_| self.timed_out())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = Duration::from_secs(5);
        let ok = OpenAiSettings::new("http://127.0.0.1:9000/v1/", Some("sk"), t).unwrap();
        assert_eq!(ok.chat_uri.to_string(), "http://127.0.0.1:9000/v1/chat/completions");
        assert_eq!(ok.embeddings_uri.to_string(), "http://127.0.0.1:9000/v1/embeddings");
        assert!(!format!("{ok:?}").contains("sk"), "{ok:?}");
        for (bad, says) in [
            ("127.0.0.1:9000", "must start with http://"),
            ("https://api.openai.com/v1", "https"),
            ("http://user:pw@host/v1", "credentials"),
            ("http://host/v1?x=1", "query"),
            ("http:///v1", "not a URL"),
            ("ftp://host", "must start with http://"),
        ] {
            let e = OpenAiSettings::new(bad, None, t).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(OpenAiSettings::new("http://h/v1", Some("bad\nkey"), t).is_err());
        assert!(OpenAiSettings::new("http://h/v1", None, Duration::ZERO).is_err());
    }

    #[test]
    fn error_messages_of_the_usual_servers() {
        for (body, want) in [
            (r#"{"error": {"message": "openai", "type": "x"}}"#, "openai"),
            (r#"{"error": "ollama"}"#, "ollama"),
            (r#"{"object": "error", "message": "vllm", "code": 400}"#, "vllm"),
            (r#"{"detail": "fastapi"}"#, "fastapi"),
            (r#"{"something": "else"}"#, r#"{"something": "else"}"#),
            ("Bad Gateway", "Bad Gateway"),
        ] {
            assert_eq!(error_message(body.as_bytes()), want);
        }
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt(b"  "), "no message");
        assert_eq!(excerpt("é".repeat(300).as_bytes()).chars().count(), 201);
    }
}
