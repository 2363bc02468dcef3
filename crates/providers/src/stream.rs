//! [`ChatStream`]: the chunks of a streamed chat answer, as they arrive.
//!
//! Two sources feed it. An HTTP upstream's body is read frame by frame and cut into events by
//! the incremental SSE parser, with no buffering beyond the event being assembled: a chunk is
//! handed to the engine the moment its last byte arrives. An in-process model (the built-in
//! kind) sends chunks through a channel ([`ChatStream::channel`]).
//!
//! Either way the stream keeps the two numbers a cut-off stream is charged by: the usage the
//! upstream reported (if a usage chunk came) and the bytes of output produced so far.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use genai_wire::openai::{ChatChunk, Usage};
use genai_wire::sse::{SseParser, DONE};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Failure, ProviderError, StreamChunk};

/// The chunks of a streamed chat answer. Call [`next`](Self::next) until it answers `None` (the
/// stream is complete) or an error (it is not, and never will be).
#[derive(Debug)]
pub struct ChatStream {
    source: Source,
    output_bytes: i64,
    usage: Option<Usage>,
    ended: bool,
}

#[derive(Debug)]
enum Source {
    Http(HttpSource),
    Channel { rx: mpsc::Receiver<Message>, provider: String },
}

impl ChatStream {
    pub(crate) fn http(source: HttpSource) -> ChatStream {
        ChatStream { source: Source::Http(source), output_bytes: 0, usage: None, ended: false }
    }

    /// A stream fed in-process: the producer (a model on a thread pool) sends chunks through
    /// the [`ChunkSender`], then calls [`ChunkSender::end`]. A sender dropped without `end` makes
    /// the stream fail, as a cut connection does. `client_wants_usage` decides whether the
    /// usage-only chunk is forwarded to the client.
    pub fn channel(capacity: usize, provider: &str, client_wants_usage: bool) -> (ChunkSender, ChatStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stream = ChatStream {
            source: Source::Channel { rx, provider: provider.to_owned() },
            output_bytes: 0,
            usage: None,
            ended: false,
        };
        (ChunkSender { tx, client_wants_usage }, stream)
    }

    /// The next chunk; `None` once the stream is complete.
    pub async fn next(&mut self) -> Option<Result<StreamChunk, ProviderError>> {
        if self.ended {
            return None;
        }
        let item = match &mut self.source {
            Source::Http(h) => h.next().await,
            Source::Channel { rx, provider } => match rx.recv().await {
                Some(Message::Chunk(c)) => Some(Ok(c)),
                Some(Message::End) => None,
                Some(Message::Fail(e)) => Some(Err(e)),
                None => Some(Err(ProviderError::failed(provider, Failure::Cut, "the model stopped before finishing"))),
            },
        };
        match &item {
            Some(Ok(c)) => {
                self.output_bytes = self.output_bytes.saturating_add(c.chunk.output_bytes());
                if c.chunk.usage.is_some() {
                    self.usage = c.chunk.usage;
                }
            }
            Some(Err(_)) | None => self.ended = true,
        }
        item
    }

    /// UTF-8 bytes of the output (text and tool-call pieces) received so far: an upper bound of
    /// its tokens, which is what a stream cut off before its usage chunk is charged.
    pub fn output_bytes(&self) -> i64 {
        self.output_bytes
    }

    /// The usage the upstream reported, once its usage chunk has arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[derive(Debug)]
enum Message {
    Chunk(StreamChunk),
    End,
    Fail(ProviderError),
}

/// The producing end of [`ChatStream::channel`].
#[derive(Debug)]
pub struct ChunkSender {
    tx: mpsc::Sender<Message>,
    client_wants_usage: bool,
}

/// The stream's consumer is gone (the client disconnected): stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream's reader is gone")]
pub struct Closed;

impl ChunkSender {
    fn wrap(&self, chunk: ChatChunk) -> Message {
        let data = Bytes::from(serde_json::to_vec(&chunk).unwrap_or_default());
        let forward = self.client_wants_usage || !chunk.is_usage_only();
        Message::Chunk(StreamChunk { data, chunk, forward })
    }

    /// Sends a chunk, waiting while the reader is behind.
    pub async fn send(&self, chunk: ChatChunk) -> Result<(), Closed> {
        self.tx.send(self.wrap(chunk)).await.map_err(|_| Closed)
    }

    /// Sends a chunk from a thread outside the async runtime (a model's worker thread).
    pub fn send_blocking(&self, chunk: ChatChunk) -> Result<(), Closed> {
        self.tx.blocking_send(self.wrap(chunk)).map_err(|_| Closed)
    }

    /// Whether the reader is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Marks the stream complete.
    pub async fn end(self) {
        let _ = self.tx.send(Message::End).await;
    }

    /// Marks the stream complete, from a thread outside the async runtime.
    pub fn end_blocking(self) {
        let _ = self.tx.blocking_send(Message::End);
    }

    /// Ends the stream with an error.
    pub async fn fail(self, error: ProviderError) {
        let _ = self.tx.send(Message::Fail(error)).await;
    }
}

/// An HTTP upstream's event stream.
#[derive(Debug)]
pub(crate) struct HttpSource {
    pub(crate) body: Incoming,
    pub(crate) parser: SseParser,
    pub(crate) provider: Arc<str>,
    /// Until the first chunk: the call's deadline (`timeout_seconds` from its start).
    pub(crate) first_deadline: Option<Instant>,
    /// After it: how long the stream may stay silent.
    pub(crate) idle: Duration,
    pub(crate) client_wants_usage: bool,
    pub(crate) saw_finish: bool,
}

impl HttpSource {
    fn fail(&self, failure: Failure, detail: impl Into<String>) -> ProviderError {
        ProviderError::failed(&self.provider, failure, detail)
    }

    /// Reads the body's end if it has already arrived (without waiting), so that hyper can give
    /// the connection back to the pool: a body dropped before its end closes its connection.
    async fn finish_body(&mut self) {
        for _ in 0..4 {
            // A zero timeout polls the read once: it never waits for the upstream.
            match tokio::time::timeout(Duration::ZERO, self.body.frame()).await {
                Ok(Some(Ok(_))) => continue,
                _ => return,
            }
        }
    }

    async fn next(&mut self) -> Option<Result<StreamChunk, ProviderError>> {
        loop {
            match self.parser.next_event() {
                Err(e) => return Some(Err(self.fail(Failure::BadAnswer, e.to_string()))),
                Ok(Some(event)) => {
                    if event.data.as_ref() == DONE {
                        self.finish_body().await;
                        return None;
                    }
                    let chunk: ChatChunk = match serde_json::from_slice(&event.data) {
                        Ok(c) => c,
                        Err(e) => {
                            return Some(Err(
                                self.fail(Failure::BadAnswer, format!("a chunk is not a chat completion chunk ({e})"))
                            ))
                        }
                    };
                    if let Some(error) = &chunk.error {
                        let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("no message");
                        return Some(Err(self.fail(Failure::InStream, message.to_owned())));
                    }
                    self.saw_finish |= chunk.choices.iter().any(|c| c.finish_reason.is_some());
                    self.first_deadline = None;
                    let forward = self.client_wants_usage || !chunk.is_usage_only();
                    return Some(Ok(StreamChunk { data: event.data, chunk, forward }));
                }
                Ok(None) => {}
            }
            let frame = match self.first_deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.body.frame()).await,
                None => tokio::time::timeout(self.idle, self.body.frame()).await,
            };
            match frame {
                Err(_) => {
                    return Some(Err(ProviderError::Timeout {
                        provider: self.provider.to_string(),
                        seconds: self.idle.as_secs(),
                    }))
                }
                // The body ended without `[DONE]`: complete if the last chunk came (some servers
                // omit the marker), cut off otherwise.
                Ok(None) if self.saw_finish && !self.parser.has_partial_event() => return None,
                Ok(None) => return Some(Err(self.fail(Failure::Cut, "the stream ended before its last chunk"))),
                Ok(Some(Err(e))) => return Some(Err(self.fail(Failure::Cut, format!("the stream broke off ({e})")))),
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.parser.push(data);
                    }
                }
            }
        }
    }
}
