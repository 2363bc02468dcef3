//! The `builtin` provider kind on the real models: chat (deterministic at temperature 0, stop
//! sequences, max_tokens, streaming equal to non-streaming, usage equal to the model's own
//! token counts), embeddings (equal to sentence-transformers' fixtures, base64, truncation,
//! concurrent requests), and `model_not_installed` on an empty models directory.
//!
//! Needs the two models installed (`scripts/install-models`; the directory is
//! `GENAI_MODELS_DIR`, default `~/.cache/genai/models`). These tests never skip: without the
//! models they fail, naming the command to run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use genai_models::install::{self, MODELS};
use genai_models::{ChatMessage, Embedder, GenerationParams, Generator, Models, ModelsConfig, Truncate};
use genai_providers::{BuiltinProvider, Provider, ProviderError, Router, BUILTIN_MODELS};
use genai_wire::openai::{ChatRequest, ChatResponse, EmbeddingsRequest, Vector};
use serde_json::{json, Value};

const CHAT: &str = "smollm2-135m-instruct";
const EMBED: &str = "all-minilm-l6-v2";

fn models_dir() -> PathBuf {
    let dir = install::default_dir();
    for model in MODELS {
        if let Err(problem) = install::verify(&dir, &model) {
            panic!(
                "the built-in model {} is not installed in {} ({problem}): run `scripts/install-models` \
                 (or `genai models install --dir DIR` with GENAI_MODELS_DIR=DIR); these tests never skip",
                model.model,
                dir.display()
            );
        }
    }
    dir
}

/// One provider for the whole test binary: the models load once. Each `#[tokio::test]` has its
/// own runtime, which is fine: the service's threads are not tied to a runtime.
fn provider() -> &'static BuiltinProvider {
    static P: OnceLock<BuiltinProvider> = OnceLock::new();
    P.get_or_init(|| BuiltinProvider::new(Models::start(ModelsConfig::new(models_dir())).unwrap()))
}

fn generator() -> &'static Generator {
    static G: OnceLock<Generator> = OnceLock::new();
    G.get_or_init(|| Generator::load(&models_dir()).unwrap())
}

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| Embedder::load(&models_dir()).unwrap())
}

fn chat_request(body: Value) -> ChatRequest {
    let mut body = body;
    body["model"] = json!(CHAT);
    serde_json::from_value(body).unwrap()
}

fn question(extra: Value) -> ChatRequest {
    let mut body = json!({"messages": [
        {"role": "system", "content": "You answer in one short paragraph."},
        {"role": "user", "content": "What is the capital of France, and what river flows through it?"}
    ], "temperature": 0, "max_tokens": 48});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    chat_request(body)
}

fn text(r: &ChatResponse) -> &str {
    r.choices[0].message.content.as_deref().unwrap()
}

fn messages(req: &ChatRequest) -> Vec<ChatMessage> {
    req.messages
        .iter()
        .map(|m| {
            let role = serde_json::to_value(m.role).unwrap().as_str().unwrap().to_owned();
            let content = match &m.content {
                Some(genai_wire::openai::Content::Text(t)) => t.clone(),
                _ => unreachable!(),
            };
            ChatMessage::new(role, content)
        })
        .collect()
}

#[tokio::test]
async fn chat_at_temperature_zero_is_deterministic_and_counts_usage_with_the_model_s_tokenizer() {
    let p = provider();
    let a = p.chat(CHAT, question(json!({}))).await.unwrap();
    let b = p.chat(CHAT, question(json!({}))).await.unwrap();
    assert_eq!(text(&a.response), text(&b.response));
    assert!(!text(&a.response).is_empty());
    assert!(text(&a.response).contains("Paris"), "{}", text(&a.response));
    assert_eq!(a.response.model, CHAT);
    assert_eq!(a.response.object, "chat.completion");
    assert!(a.response.id.starts_with("chatcmpl-") && a.response.id != b.response.id);
    // The body is the response, serialised.
    let parsed: ChatResponse = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(parsed, a.response);

    // Usage: the templated prompt's tokens and every sampled token, as the model itself counts.
    let req = question(json!({}));
    let prompt = generator().chat_tokens(&messages(&req)).unwrap();
    let direct = generator()
        .generate_tokens(
            prompt.clone(),
            GenerationParams { max_tokens: 48, temperature: 0.0, ..Default::default() },
            &mut |_| {},
        )
        .unwrap();
    let usage = a.usage().unwrap();
    assert_eq!(usage.prompt_tokens, prompt.len() as i64);
    assert_eq!(usage.completion_tokens, direct.tokens.len() as i64);
    assert_eq!(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert_eq!(text(&a.response), direct.text);
    let finish = a.response.choices[0].finish_reason.as_deref().unwrap();
    assert_eq!(finish, if direct.tokens.len() == 48 { "length" } else { "stop" });
}

#[tokio::test]
async fn max_tokens_and_max_completion_tokens_bound_the_answer() {
    let p = provider();
    let a = p.chat(CHAT, question(json!({"max_tokens": 5}))).await.unwrap();
    assert_eq!(a.usage().unwrap().completion_tokens, 5);
    assert_eq!(a.response.choices[0].finish_reason.as_deref(), Some("length"));
    let b = p.chat(CHAT, question(json!({"max_tokens": 40, "max_completion_tokens": 3}))).await.unwrap();
    assert_eq!(b.usage().unwrap().completion_tokens, 3);
    let whole = p.chat(CHAT, question(json!({}))).await.unwrap();
    assert!(text(&whole.response).starts_with(text(&a.response)));
    assert!(text(&a.response).starts_with(text(&b.response)));
}

#[tokio::test]
async fn a_stop_sequence_ends_the_answer_before_it() {
    let p = provider();
    let whole = p.chat(CHAT, question(json!({}))).await.unwrap();
    let full = text(&whole.response).to_owned();
    // A word from the middle of the greedy answer.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() >= 6, "{full}");
    let stop = words[words.len() / 2];
    let cut = &full[..full.find(stop).unwrap()];
    let a = p.chat(CHAT, question(json!({"stop": ["NEVER-APPEARS", stop]}))).await.unwrap();
    assert_eq!(text(&a.response), cut);
    assert_eq!(a.response.choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(a.usage().unwrap().completion_tokens < whole.usage().unwrap().completion_tokens);
}

/// What a test reads of a chunk.
struct Summary {
    role: Option<String>,
    content: Option<String>,
    finish_reason: Option<String>,
    usage: Option<genai_wire::openai::Usage>,
    forward: bool,
}

impl Summary {
    fn of(c: &genai_providers::StreamChunk) -> Summary {
        let choice = c.chunk.choices.first();
        Summary {
            role: choice
                .and_then(|x| x.delta.role)
                .map(|r| serde_json::to_value(r).unwrap().as_str().unwrap().to_owned()),
            content: choice.and_then(|x| x.delta.content.clone()),
            finish_reason: choice.and_then(|x| x.finish_reason.clone()),
            usage: c.chunk.usage,
            forward: c.forward,
        }
    }
}

async fn collect_stream(req: ChatRequest) -> (String, Vec<Summary>) {
    let mut stream = provider().chat_stream(CHAT, req).await.unwrap();
    let mut text = String::new();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let parsed: genai_wire::openai::ChatChunk = serde_json::from_slice(&chunk.data).unwrap();
        assert_eq!(parsed, chunk.chunk);
        for c in &chunk.chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
        chunks.push(Summary::of(&chunk));
    }
    (text, chunks)
}

#[tokio::test]
async fn a_stream_at_temperature_zero_equals_the_whole_answer_token_by_token() {
    let p = provider();
    let whole = p.chat(CHAT, question(json!({}))).await.unwrap();
    let (streamed, chunks) = collect_stream(question(json!({"stream": true}))).await;
    assert_eq!(streamed, text(&whole.response));
    // Opening chunk (role), one chunk per released piece, finish chunk, usage chunk.
    assert_eq!(chunks[0].role.as_deref(), Some("assistant"));
    let pieces = chunks.iter().filter(|c| c.content.as_deref().is_some_and(|t| !t.is_empty())).count();
    assert!(pieces as i64 >= whole.usage().unwrap().completion_tokens / 2, "{pieces} pieces: not token by token");
    let finish = chunks.iter().filter_map(|c| c.finish_reason.clone()).collect::<Vec<_>>();
    assert_eq!(finish, [whole.response.choices[0].finish_reason.clone().unwrap()]);
    let last = chunks.last().unwrap();
    assert_eq!(last.usage, whole.usage());
    // The client did not ask for usage: the usage chunk is there for the engine, not forwarded.
    assert!(!last.forward && chunks[..chunks.len() - 1].iter().all(|c| c.forward));
    let (_, chunks) =
        collect_stream(question(json!({"stream": true, "stream_options": {"include_usage": true}}))).await;
    assert!(chunks.iter().all(|c| c.forward));
}

#[tokio::test]
async fn a_dropped_stream_stops_the_model_and_the_next_request_is_served() {
    let p = provider();
    let mut stream = p.chat_stream(CHAT, question(json!({"stream": true, "max_tokens": 2000}))).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.chunk.choices[0].delta.role.is_some());
    drop(stream);
    let started = std::time::Instant::now();
    let a = p.chat(CHAT, question(json!({"max_tokens": 4}))).await.unwrap();
    assert_eq!(a.usage().unwrap().completion_tokens, 4);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test]
async fn requests_the_model_cannot_serve_are_refused_naming_the_field() {
    let p = provider();
    let refused = |r: Result<genai_providers::ChatAnswer, ProviderError>| match r {
        Err(e @ ProviderError::Refused { .. }) => {
            assert_eq!((e.status(), e.code()), (400, "invalid_request"));
            e.to_string()
        }
        other => panic!("{other:?}"),
    };
    let e = refused(p.chat(CHAT, question(json!({"tools": [{"type": "function", "function": {"name": "f"}}]}))).await);
    assert!(e.contains("tools:"), "{e}");
    // A prompt longer than the context window, with an explicit max_tokens.
    let long = "word ".repeat(9000);
    let e = refused(
        p.chat(CHAT, chat_request(json!({"messages": [{"role": "user", "content": long}], "max_tokens": 10}))).await,
    );
    assert!(e.contains("context window"), "{e}");
    // The embeddings model is not a chat model, and the reverse.
    let e = refused(p.chat(EMBED, question(json!({}))).await);
    assert!(e.contains("embeddings model"), "{e}");
    let emb: EmbeddingsRequest = serde_json::from_value(json!({"model": CHAT, "input": "x"})).unwrap();
    let e = p.embed(CHAT, emb).await.unwrap_err();
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn without_max_tokens_a_long_prompt_gets_the_room_left_in_the_window() {
    // A service with a 512-token window (the model's is 8,192; smaller keeps the test fast): a
    // prompt of ~500 tokens still gets an answer, cut at the window; with an explicit
    // max_tokens that does not fit, it is refused.
    let mut config = ModelsConfig::new(models_dir());
    config.context = Some(512);
    let p = BuiltinProvider::new(Models::start(config).unwrap());
    let long = "one two three four five six seven eight nine ten ".repeat(47);
    let req = chat_request(json!({"messages": [{"role": "user", "content": long}], "temperature": 0}));
    let prompt = generator().chat_tokens(&messages(&req)).unwrap().len();
    assert!(prompt < 512 && prompt > 490, "{prompt}");
    let a = p.chat(CHAT, req.clone()).await.unwrap();
    let u = a.usage().unwrap();
    assert_eq!(u.prompt_tokens as usize, prompt);
    // The answer may end on its own within the room left, else it is cut exactly at the window.
    match a.response.choices[0].finish_reason.as_deref() {
        Some("length") => assert_eq!(u.prompt_tokens + u.completion_tokens, 512),
        other => assert!(other == Some("stop") && u.prompt_tokens + u.completion_tokens <= 512, "{other:?}"),
    }
    let mut explicit = req;
    explicit.max_tokens = Some(100);
    let e = p.chat(CHAT, explicit).await.unwrap_err();
    assert!(e.status() == 400 && e.to_string().contains("context window"), "{e}");
}

fn embeddings_fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/embeddings.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Vector) -> Vec<f32> {
    match v {
        Vector::Floats(f) => f.iter().map(|x| *x as f32).collect(),
        Vector::Base64(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

#[tokio::test]
async fn embeddings_equal_sentence_transformers_and_usage_is_the_word_pieces() {
    let fixture = embeddings_fixture();
    let sentences: Vec<String> =
        fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let expected_tokens: i64 = fixture["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).sum();
    for format in ["float", "base64"] {
        let req: EmbeddingsRequest =
            serde_json::from_value(json!({"model": EMBED, "input": sentences, "encoding_format": format})).unwrap();
        let a = provider().embed(EMBED, req).await.unwrap();
        assert_eq!(a.response.data.len(), sentences.len());
        assert_eq!(a.response.model, EMBED);
        assert_eq!(a.input_tokens(), Some(expected_tokens));
        // The same count as the model's own tokenizer.
        let prepared = embedder().prepare(&sentences, Truncate::End).unwrap();
        assert_eq!(a.input_tokens(), Some(prepared.iter().map(Vec::len).sum::<usize>() as i64));
        let mut worst = 0f32;
        for (i, e) in a.response.data.iter().enumerate() {
            assert_eq!(e.index, i as i64);
            let got = floats(&e.embedding);
            assert_eq!(got.len(), 384);
            let want = fixture["embeddings"][i].as_array().unwrap();
            for (g, w) in got.iter().zip(want) {
                worst = worst.max((g - w.as_f64().unwrap() as f32).abs());
            }
        }
        assert!(worst < 1e-4, "{format}: max abs difference {worst}");
        assert!(matches!(a.response.data[0].embedding, Vector::Base64(_)) == (format == "base64"));
    }
}

#[tokio::test]
async fn truncate_none_refuses_an_input_over_the_window_naming_it() {
    let long = "token ".repeat(400);
    let req = |truncate: Option<&str>| -> EmbeddingsRequest {
        let mut b = json!({"model": EMBED, "input": ["short", long]});
        if let Some(t) = truncate {
            b["truncate"] = json!(t);
        }
        serde_json::from_value(b).unwrap()
    };
    let e = provider().embed(EMBED, req(Some("NONE"))).await.unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("input[1]"), "{e}");
    for t in [None, Some("END"), Some("START")] {
        let a = provider().embed(EMBED, req(t)).await.unwrap();
        assert_eq!(a.input_tokens(), Some(3 + 256), "{t:?}");
    }
    let bad: EmbeddingsRequest = serde_json::from_value(json!({"model": EMBED, "input": [1, 2]})).unwrap();
    assert!(provider().embed(EMBED, bad).await.unwrap_err().to_string().contains("input:"));
    let bad: EmbeddingsRequest =
        serde_json::from_value(json!({"model": EMBED, "input": "x", "dimensions": 256})).unwrap();
    assert!(provider().embed(EMBED, bad).await.unwrap_err().to_string().contains("dimensions:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_embeddings_requests_each_get_their_own_vectors() {
    let fixture = embeddings_fixture();
    let sentences: Vec<String> =
        fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let mut tasks = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let req: EmbeddingsRequest = serde_json::from_value(json!({"model": EMBED, "input": s})).unwrap();
        tasks.push(tokio::spawn(async move { (i, provider().embed(EMBED, req).await.unwrap()) }));
    }
    for t in tasks {
        let (i, a) = t.await.unwrap();
        let got = floats(&a.response.data[0].embedding);
        let want = fixture["embeddings"][i].as_array().unwrap();
        let worst = got.iter().zip(want).map(|(g, w)| (g - w.as_f64().unwrap() as f32).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "sentence {i}: {worst}");
        assert_eq!(a.input_tokens(), fixture["tokens"][i].as_i64());
    }
}

#[tokio::test]
async fn an_empty_models_directory_answers_model_not_installed_naming_the_command() {
    let dir = std::env::temp_dir().join(format!("genai-builtin-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = BuiltinProvider::new(Models::start(ModelsConfig::new(&dir)).unwrap());
    let check = |e: ProviderError| {
        assert_eq!((e.status(), e.code()), (503, "model_not_installed"));
        assert!(e.to_string().contains("genai models install"), "{e}");
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    };
    check(p.chat(CHAT, question(json!({}))).await.unwrap_err());
    check(p.chat_stream(CHAT, question(json!({"stream": true}))).await.unwrap_err());
    let req: EmbeddingsRequest = serde_json::from_value(json!({"model": EMBED, "input": "x"})).unwrap();
    check(p.embed(EMBED, req).await.unwrap_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_router_serves_the_builtin_models_unless_the_file_maps_them() {
    let mut router = Router::new();
    router.serve_builtin(Arc::new(provider().clone()), BUILTIN_MODELS);
    let req: EmbeddingsRequest = serde_json::from_value(json!({"model": EMBED, "input": "hello"})).unwrap();
    let a = router.route(EMBED).unwrap().embed(req).await.unwrap();
    assert_eq!(a.input_tokens(), Some(3));
    assert_eq!(router.route(CHAT).unwrap().provider.name(), "builtin");
}
