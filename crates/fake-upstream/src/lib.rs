//! A fake OpenAI-compatible upstream for tests and benchmarks: the Rust twin of
//! `acceptance/runtime/fake_openai_upstream.py`, with the same answers, usage, modes and
//! control endpoints (see [`behaviour`] for the rules).
//!
//! In a test: `let up = FakeUpstream::spawn().await?;` then point a provider at
//! [`FakeUpstream::base_url`] (`http://127.0.0.1:<port>/v1`), read [`FakeUpstream::stats`], switch
//! modes with [`FakeUpstream::set_mode`]. As a program: `genai-fake-upstream --port N`, or with
//! `--static` a fixed answer served as fast as the machine allows, for benchmarks.
//!
//! It is written on hyper directly (not axum) because the modes need what a framework hides:
//! dropping a connection without any answer, and cutting a chunked body midway.

pub mod behaviour;
pub mod body;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::behaviour::Answer;
use crate::body::{Cut, PieceBody};

/// How the fake behaves: the Python fake's rules, or one fixed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The rules of the Python fake: exact usage, modes, `/_stats`, `/_mode`.
    Faithful,
    /// A fixed chat completion (or stream, or embeddings answer) for any request, nothing
    /// counted: the upstream of benchmarks.
    Static,
}

/// The current mode, as set by `POST /_mode`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    /// `ok`, `fail`, `slow` or `cut` (anything else behaves as `ok`, as in the Python fake).
    pub mode: String,
    /// Seconds `slow` waits.
    pub delay: f64,
}

impl Mode {
    /// Normal answers.
    pub fn ok() -> Mode {
        Mode { mode: "ok".into(), delay: 0.0 }
    }

    /// This mode with this delay.
    pub fn new(mode: &str, delay: f64) -> Mode {
        Mode { mode: mode.into(), delay }
    }

    fn to_json(&self) -> Value {
        json!({"mode": self.mode, "delay": self.delay})
    }
}

/// What `GET /_stats` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Chat calls received.
    pub chat: u64,
    /// Embeddings calls received.
    pub embeddings: u64,
    /// Distinct `model` values seen (`null` when a call had none).
    pub models: Vec<Value>,
    /// Distinct `Authorization` headers seen.
    pub authorization: Vec<String>,
}

impl Stats {
    fn to_json(&self) -> Value {
        json!({"chat": self.chat, "embeddings": self.embeddings, "models": self.models,
               "authorization": self.authorization})
    }
}

#[derive(Debug)]
struct State {
    behaviour: Behaviour,
    connections: AtomicU64,
    stats: Mutex<Stats>,
    mode: Mutex<Mode>,
    static_chat: Bytes,
    static_stream: Bytes,
    static_embeddings: Bytes,
}

/// A running fake. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    base_url: String,
    state: Arc<State>,
    _stop: watch::Sender<bool>,
}

impl FakeUpstream {
    /// The faithful fake on a free port of 127.0.0.1, served by the current tokio runtime.
    pub async fn spawn() -> io::Result<FakeUpstream> {
        FakeUpstream::bind("127.0.0.1:0".parse().map_err(io::Error::other)?, Behaviour::Faithful).await
    }

    /// The static fake on a free port of 127.0.0.1.
    pub async fn spawn_static() -> io::Result<FakeUpstream> {
        FakeUpstream::bind("127.0.0.1:0".parse().map_err(io::Error::other)?, Behaviour::Static).await
    }

    /// The fake on this address.
    pub async fn bind(addr: SocketAddr, behaviour: Behaviour) -> io::Result<FakeUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            behaviour,
            connections: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            mode: Mutex::new(Mode::ok()),
            static_chat: behaviour::static_chat(),
            static_stream: behaviour::static_stream(),
            static_embeddings: behaviour::static_embeddings(),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        Ok(FakeUpstream { addr, base_url: format!("http://{addr}/v1"), state, _stop: stop })
    }

    /// `http://127.0.0.1:<port>/v1`: what a provider's `base_url` should be.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.state.stats.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// TCP connections accepted so far (not in `/_stats`, which stays the Python fake's): how
    /// tests see that a client keeps its connections alive.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Switches the mode (as `POST /_mode` does).
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Serves until the process ends (the binary's main loop).
    pub async fn run_forever(self) {
        std::future::pending::<()>().await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                // Out of descriptors or a reset before accept: keep serving the others.
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            // A connection ending in an error is what the "cut" mode is for; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The service's error: the connection is dropped without an answer.
type Dropped = Cut;

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<PieceBody>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Cut),
    };
    if state.behaviour == Behaviour::Static {
        return Ok(static_answer(&state, parts.uri.path(), &body));
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    match parts.method {
        Method::GET if path == "/_stats" => {
            let stats = state.stats.lock().unwrap_or_else(PoisonError::into_inner).to_json();
            Ok(json_response(200, &stats))
        }
        Method::GET => Ok(not_found()),
        Method::POST => post(&state, &path, parts.headers.get(header::AUTHORIZATION), &body).await,
        _ => Ok(json_response(
            501,
            &json!({"error": {"message": "unsupported method", "type": "invalid_request_error"}}),
        )),
    }
}

async fn post(
    state: &State,
    path: &str,
    authorization: Option<&http::HeaderValue>,
    body: &[u8],
) -> Result<Response<PieceBody>, Dropped> {
    let parsed: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(v) => v,
        Err(_) => {
            return Ok(json_response(400, &json!({"error": {"message": "bad JSON", "type": "invalid_request_error"}})))
        }
    };
    // The Python fake fails on a body that is JSON but not an object, and drops the connection.
    let Value::Object(body) = parsed else { return Err(Cut) };
    if path == "/_mode" {
        let mode = Mode {
            mode: body.get("mode").and_then(Value::as_str).unwrap_or("ok").to_owned(),
            delay: body.get("delay").and_then(|d| d.as_f64().or_else(|| d.as_str()?.parse().ok())).unwrap_or(0.0),
        };
        let answer = mode.to_json();
        *state.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
        return Ok(json_response(200, &answer));
    }
    let chat = if path.ends_with("/chat/completions") {
        true
    } else if path.ends_with("/embeddings") {
        false
    } else {
        return Ok(not_found());
    };
    let mode = count(state, chat, &body, authorization);
    match mode.mode.as_str() {
        "slow" => tokio::time::sleep(Duration::from_secs_f64(mode.delay.max(0.0))).await,
        "fail" => {
            return Ok(json_response(500, &json!({"error": {"message": "upstream exploded", "type": "server_error"}})))
        }
        "cut" if !(chat && behaviour::truthy(body.get("stream"))) => return Err(Cut),
        _ => {}
    }
    let answer = if chat { behaviour::chat(&body, mode.mode == "cut") } else { behaviour::embeddings(&body) };
    Ok(match answer {
        Answer::Json(status, v) => json_response(status, &v),
        Answer::Stream(pieces) => stream_response(PieceBody::pieces(pieces)),
    })
}

fn count(state: &State, chat: bool, body: &Map<String, Value>, authorization: Option<&http::HeaderValue>) -> Mode {
    let mut stats = state.stats.lock().unwrap_or_else(PoisonError::into_inner);
    if chat {
        stats.chat += 1;
    } else {
        stats.embeddings += 1;
    }
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    if !stats.models.contains(&model) {
        stats.models.push(model);
    }
    if let Some(auth) = authorization.and_then(|a| a.to_str().ok()) {
        if !stats.authorization.iter().any(|a| a == auth) {
            stats.authorization.push(auth.to_owned());
        }
    }
    drop(stats);
    state.mode.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn static_answer(state: &State, path: &str, body: &[u8]) -> Response<PieceBody> {
    if path.ends_with("/embeddings") {
        return bytes_response(200, "application/json", state.static_embeddings.clone());
    }
    // A byte search rather than a JSON parse: the static fake must cost next to nothing.
    let stream = memfind(body, b"\"stream\":true") || memfind(body, b"\"stream\": true");
    if stream {
        stream_response(PieceBody::full(state.static_stream.clone()))
    } else {
        bytes_response(200, "application/json", state.static_chat.clone())
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn json_response(status: u16, v: &Value) -> Response<PieceBody> {
    bytes_response(status, "application/json", Bytes::from(v.to_string()))
}

fn bytes_response(status: u16, content_type: &'static str, body: Bytes) -> Response<PieceBody> {
    let mut r = Response::new(PieceBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

fn stream_response(body: PieceBody) -> Response<PieceBody> {
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
    r
}

fn not_found() -> Response<PieceBody> {
    json_response(404, &json!({"error": {"message": "not found", "type": "invalid_request_error"}}))
}
