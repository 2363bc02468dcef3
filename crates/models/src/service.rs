//! [`Models`]: the async handle to the built-in models, for a provider adapter to wrap.
//!
//! Each model has one dedicated OS thread (`genai-embed`, `genai-generate`) that owns it; the
//! async side talks to it through channels (`tokio::sync::oneshot` for answers, an unbounded
//! `tokio::sync::mpsc` for streamed text), so no tokio worker ever runs a forward pass and the
//! Control Center stays responsive while a model computes. The heavy matrix products inside a
//! forward pass use candle's own pool of one thread per core, shared by the two model threads.
//!
//! - **Bounded.** Each model's queue holds at most `max_waiting` requests; one more is refused
//!   at once with [`ModelError::Busy`] rather than queued without limit.
//! - **Lazy, once.** A model is loaded (and its hashes checked) by its thread on its first
//!   request. If it is not installed, that request and every later one get
//!   [`ModelError::NotInstalled`] until it is: installing it makes the next request load it,
//!   without a restart.
//! - **Embeddings are batched.** The thread takes every request that is waiting when it
//!   becomes free (and, with `embed_batch_window > 0`, waits that long for more), then runs all
//!   their inputs through the model together, in sub-batches of `embed_max_batch` sorted by
//!   length; each request gets its own vectors and token counts back.
//! - **Generations are interleaved.** Up to `max_active_generations` sessions advance one
//!   forward pass each in turn (a long prompt in pieces), so a second request starts
//!   streaming while the first is still answering. A session whose stream was dropped (the
//!   client went away) is stopped at its next turn, freeing its memory.
//! - **A panic stays contained**: it fails the requests in hand with
//!   [`ModelError::Internal`], and the thread goes on serving.

use crate::embed::{Embedder, Embeddings, Truncate};
use crate::error::ModelError;
use crate::generate::{ChatMessage, FinishReason, Generation, GenerationParams, Generator, Session};
use crate::{EMBEDDING_MODEL, GENERATION_MODEL};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// How the service runs the models.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    /// The cache directory the models were installed into.
    pub dir: PathBuf,
    /// Inputs run through the embedding model together at most.
    pub embed_max_batch: usize,
    /// Inputs collected from waiting requests for one round at most.
    pub embed_max_round: usize,
    /// How long the embeddings thread waits for more requests before a round (0: take what
    /// is waiting, which already batches under load without delaying a lone request).
    pub embed_batch_window: Duration,
    /// Requests that may wait per model before more are refused as busy.
    pub max_waiting: usize,
    /// Generations advanced in turn at most; more wait in the queue.
    pub max_active_generations: usize,
    /// Context window for generation (prompt + answer); `None`: the model's (8,192).
    pub context: Option<usize>,
}

impl ModelsConfig {
    /// Defaults for a cache directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            embed_max_batch: 32,
            embed_max_round: 256,
            embed_batch_window: Duration::ZERO,
            max_waiting: 64,
            max_active_generations: 4,
            context: None,
        }
    }
}

/// What a generation stream yields.
#[derive(Debug, Clone)]
pub enum GenerationEvent {
    /// The next piece of final text.
    Text(String),
    /// The generation ended; nothing follows.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Tokens of the templated prompt.
        prompt_tokens: usize,
        /// Tokens sampled.
        completion_tokens: usize,
    },
    /// The generation failed midway; nothing follows. Tokens sampled until then are in
    /// `completion_tokens`, for metering.
    Failed {
        /// What failed.
        error: ModelError,
        /// Tokens sampled before the failure.
        completion_tokens: usize,
    },
}

/// A generation that has started: its prompt size, then its events.
#[derive(Debug)]
pub struct GenerationStream {
    /// Tokens of the templated prompt.
    pub prompt_tokens: usize,
    events: tmpsc::UnboundedReceiver<GenerationEvent>,
}

impl GenerationStream {
    /// The next event; `None` after `Done`/`Failed` (or if the model thread died, which is
    /// reported as a `Failed` first).
    pub async fn next(&mut self) -> Option<GenerationEvent> {
        self.events.recv().await
    }

    /// Waits for the whole answer.
    pub async fn collect(mut self) -> Result<Generation, ModelError> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            match event {
                GenerationEvent::Text(piece) => text.push_str(&piece),
                GenerationEvent::Done { finish_reason, prompt_tokens, completion_tokens } => {
                    return Ok(Generation { text, finish_reason, prompt_tokens, completion_tokens, tokens: Vec::new() })
                }
                GenerationEvent::Failed { error, .. } => return Err(error),
            }
        }
        Err(ModelError::Stopped { model: GENERATION_MODEL })
    }
}

struct EmbedJob {
    inputs: Vec<String>,
    truncate: Truncate,
    reply: oneshot::Sender<Result<Embeddings, ModelError>>,
}

struct GenJob {
    messages: Vec<ChatMessage>,
    params: GenerationParams,
    started: oneshot::Sender<Result<usize, ModelError>>,
    events: tmpsc::UnboundedSender<GenerationEvent>,
}

struct Inner {
    embed: SyncSender<EmbedJob>,
    generate: SyncSender<GenJob>,
    config: ModelsConfig,
}

/// The built-in models, running. Cheap to clone; the model threads stop when the last clone
/// is dropped and their queues are empty.
#[derive(Clone)]
pub struct Models {
    inner: Arc<Inner>,
}

impl Models {
    /// Starts the two model threads (the models themselves load on first use).
    pub fn start(config: ModelsConfig) -> Result<Self, ModelError> {
        let (embed, embed_rx) = mpsc::sync_channel(config.max_waiting.max(1));
        let (generate, gen_rx) = mpsc::sync_channel(config.max_waiting.max(1));
        let embed_config = config.clone();
        std::thread::Builder::new()
            .name("genai-embed".to_string())
            .spawn(move || embed_worker(embed_config, embed_rx))
            .map_err(|e| ModelError::internal(EMBEDDING_MODEL, e))?;
        let gen_config = config.clone();
        std::thread::Builder::new()
            .name("genai-generate".to_string())
            .spawn(move || generate_worker(gen_config, gen_rx))
            .map_err(|e| ModelError::internal(GENERATION_MODEL, e))?;
        Ok(Self { inner: Arc::new(Inner { embed, generate, config }) })
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &ModelsConfig {
        &self.inner.config
    }

    /// Embeds `inputs` with all-MiniLM-L6-v2 (see [`crate::embed`] for the rules).
    pub async fn embed(&self, inputs: Vec<String>, truncate: Truncate) -> Result<Embeddings, ModelError> {
        let (reply, answer) = oneshot::channel();
        let job = EmbedJob { inputs, truncate, reply };
        self.inner.embed.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                ModelError::Busy { model: EMBEDDING_MODEL, waiting: self.inner.config.max_waiting }
            }
            TrySendError::Disconnected(_) => ModelError::Stopped { model: EMBEDDING_MODEL },
        })?;
        answer.await.map_err(|_| ModelError::Stopped { model: EMBEDDING_MODEL })?
    }

    /// Starts a chat completion with SmolLM2-135M-Instruct. Returns once the request is
    /// admitted (model loaded, prompt tokenized and within the context window) with the
    /// stream of its text; request errors come back here, before any text.
    pub async fn generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> Result<GenerationStream, ModelError> {
        params.validate()?;
        Generator::chat_prompt(&messages)?;
        let (started, admitted) = oneshot::channel();
        let (events, receiver) = tmpsc::unbounded_channel();
        let job = GenJob { messages, params, started, events };
        self.inner.generate.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                ModelError::Busy { model: GENERATION_MODEL, waiting: self.inner.config.max_waiting }
            }
            TrySendError::Disconnected(_) => ModelError::Stopped { model: GENERATION_MODEL },
        })?;
        let prompt_tokens = admitted.await.map_err(|_| ModelError::Stopped { model: GENERATION_MODEL })??;
        Ok(GenerationStream { prompt_tokens, events: receiver })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("panic in the model thread: {text}")
}

fn embed_worker(config: ModelsConfig, jobs: Receiver<EmbedJob>) {
    let mut model: Option<Embedder> = None;
    while let Ok(first) = jobs.recv() {
        let mut round = vec![first];
        let mut inputs = round[0].inputs.len();
        let deadline = Instant::now() + config.embed_batch_window;
        while inputs < config.embed_max_round {
            // Without a window, take only what is already waiting.
            let next = match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => jobs.recv_timeout(left),
                _ => jobs.try_recv().map_err(|_| RecvTimeoutError::Timeout),
            };
            match next {
                Ok(job) => {
                    inputs += job.inputs.len();
                    round.push(job);
                }
                Err(_) => break,
            }
        }
        round.retain(|job| !job.reply.is_closed());
        if round.is_empty() {
            continue;
        }
        if model.is_none() {
            match Embedder::load(&config.dir) {
                Ok(mut loaded) => {
                    loaded.set_max_batch(config.embed_max_batch);
                    model = Some(loaded);
                }
                Err(error) => {
                    for job in round {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                    continue;
                }
            }
        }
        let Some(embedder) = model.as_ref() else { continue };
        run_embed_round(embedder, round);
    }
}

/// Runs the inputs of every job of a round through the model together; each job gets its own
/// result (a job whose input breaks its truncation rule fails alone).
fn run_embed_round(embedder: &Embedder, round: Vec<EmbedJob>) {
    let mut accepted = Vec::with_capacity(round.len());
    let mut sequences = Vec::new();
    for job in round {
        match embedder.prepare(&job.inputs, job.truncate) {
            Ok(prepared) => {
                let range = sequences.len()..sequences.len() + prepared.len();
                let tokens = prepared.iter().map(Vec::len).collect::<Vec<_>>();
                sequences.extend(prepared);
                accepted.push((job, range, tokens));
            }
            Err(error) => {
                let _ = job.reply.send(Err(error));
            }
        }
    }
    let result = catch_unwind(AssertUnwindSafe(|| embedder.embed_prepared(&sequences)))
        .unwrap_or_else(|panic| Err(ModelError::internal(EMBEDDING_MODEL, panic_message(&*panic))));
    match result {
        Ok(mut vectors) => {
            // Hand out the vectors back to front so each job's slice can be split off.
            for (job, range, tokens) in accepted.into_iter().rev() {
                let mine = vectors.split_off(range.start);
                let _ = job.reply.send(Ok(Embeddings { vectors: mine, tokens }));
            }
        }
        Err(error) => {
            for (job, _, _) in accepted {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

struct Active {
    session: Session,
    events: tmpsc::UnboundedSender<GenerationEvent>,
}

fn generate_worker(config: ModelsConfig, jobs: Receiver<GenJob>) {
    let mut model: Option<Generator> = None;
    let mut active: Vec<Active> = Vec::new();
    loop {
        // Admit new requests while there is room; block only when there is nothing to do.
        while active.len() < config.max_active_generations.max(1) {
            let job = if active.is_empty() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            if let Some(admitted) = admit(&config, &mut model, job) {
                active.push(admitted);
            }
        }
        let Some(generator) = model.as_ref() else {
            active.clear();
            continue;
        };
        // One forward pass per session, in turn.
        active.retain_mut(|a| {
            if a.events.is_closed() {
                return false; // the client went away
            }
            let step = catch_unwind(AssertUnwindSafe(|| generator.step(&mut a.session)))
                .unwrap_or_else(|panic| Err(ModelError::internal(GENERATION_MODEL, panic_message(&*panic))));
            match step {
                Ok(text) => {
                    if !text.is_empty() {
                        let _ = a.events.send(GenerationEvent::Text(text));
                    }
                    match a.session.finished() {
                        Some(finish_reason) => {
                            let _ = a.events.send(GenerationEvent::Done {
                                finish_reason,
                                prompt_tokens: a.session.prompt_tokens(),
                                completion_tokens: a.session.completion_tokens(),
                            });
                            false
                        }
                        None => true,
                    }
                }
                Err(error) => {
                    let completion_tokens = a.session.completion_tokens();
                    let _ = a.events.send(GenerationEvent::Failed { error, completion_tokens });
                    false
                }
            }
        });
    }
}

/// Loads the model if needed, tokenizes the request and opens its session; answers the
/// caller's `started` either way. `None` when the request ends here.
fn admit(config: &ModelsConfig, model: &mut Option<Generator>, job: GenJob) -> Option<Active> {
    if job.started.is_closed() {
        return None;
    }
    if model.is_none() {
        match Generator::load(&config.dir) {
            Ok(mut loaded) => {
                if let Some(context) = config.context {
                    loaded.set_context(context);
                }
                *model = Some(loaded);
            }
            Err(error) => {
                let _ = job.started.send(Err(error));
                return None;
            }
        }
    }
    let generator = model.as_ref()?;
    let opened = generator.chat_tokens(&job.messages).and_then(|prompt| generator.start(prompt, job.params));
    match opened {
        Ok(session) => {
            let prompt_tokens = session.prompt_tokens();
            job.started.send(Ok(prompt_tokens)).ok()?;
            Some(Active { session, events: job.events })
        }
        Err(error) => {
            let _ = job.started.send(Err(error));
            None
        }
    }
}
