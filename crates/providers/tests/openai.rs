//! The `openai` kind against real HTTP upstreams: the Rust fake (the Python fake's behaviour)
//! for answers, usage, tools, embeddings, modes and timeouts, and a scripted raw TCP server for
//! what the fake cannot do: bytes arriving in arbitrary pieces, stalls mid-stream, odd answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use genai_fake_upstream::{FakeUpstream, Mode};
use genai_providers::openai::{OpenAiProvider, OpenAiSettings};
use genai_providers::{ChatStream, Failure, Provider, ProviderError, StreamChunk};
use genai_wire::openai::{ChatRequest, EmbeddingsRequest, Usage, Vector};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn provider(base_url: &str, key: Option<&str>, timeout: Duration) -> OpenAiProvider {
    OpenAiProvider::new("test", OpenAiSettings::new(base_url, key, timeout).unwrap())
}

fn chat_request(v: Value) -> ChatRequest {
    let mut v = v;
    v["model"] = json!("claude-sonnet-4.6");
    serde_json::from_value(v).unwrap()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

async fn drain(stream: &mut ChatStream) -> (Vec<StreamChunk>, Option<ProviderError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

fn text_of(chunks: &[StreamChunk]) -> String {
    chunks.iter().flat_map(|c| &c.chunk.choices).filter_map(|c| c.delta.content.as_deref()).collect()
}

#[tokio::test]
async fn plain_chat_substitutes_the_model_sends_the_key_and_keeps_connections() {
    let up = FakeUpstream::spawn().await.unwrap();
    let p = provider(up.base_url(), Some("sk-test"), Duration::from_secs(10));
    let answer = p
        .chat("fake-chat", chat_request(json!({"max_tokens": 3, "messages": user("one two three four five")})))
        .await
        .unwrap();
    assert_eq!(answer.usage(), Some(Usage { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }));
    assert_eq!(answer.response.choices[0].message.content.as_deref(), Some("w1 w2 w3"));
    // The raw body is the upstream's, byte for byte: it parses to the same answer.
    let reparsed: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(reparsed["usage"]["prompt_tokens"], json!(5));
    for _ in 0..20 {
        p.chat("fake-chat", chat_request(json!({"messages": user("again")}))).await.unwrap();
    }
    let stats = up.stats();
    assert_eq!(stats.chat, 21);
    assert_eq!(stats.models, vec![json!("fake-chat")], "the client's model name must not reach the upstream");
    assert_eq!(stats.authorization, vec!["Bearer sk-test".to_string()]);
    assert_eq!(up.connections(), 1, "sequential calls must reuse one kept-alive connection");

    let anonymous = provider(up.base_url(), None, Duration::from_secs(10));
    anonymous.chat("fake-chat", chat_request(json!({"messages": user("x")}))).await.unwrap();
    assert_eq!(up.stats().authorization.len(), 1, "no key, no Authorization header");
}

#[tokio::test]
async fn streams_pass_chunks_through_and_strip_the_usage_chunk_the_client_did_not_ask_for() {
    let up = FakeUpstream::spawn().await.unwrap();
    let p = provider(up.base_url(), None, Duration::from_secs(10));

    let asked = chat_request(json!({"max_tokens": 2, "stream": true, "stream_options": {"include_usage": true},
                                    "messages": user("six seven")}));
    let mut s = p.chat_stream("fake-chat", asked).await.unwrap();
    let (chunks, err) = drain(&mut s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&chunks), "w1 w2 ");
    let last = chunks.last().unwrap();
    assert!(last.chunk.is_usage_only() && last.forward);
    assert_eq!(s.usage(), Some(Usage { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 }));
    assert_eq!(s.output_bytes(), 6);
    // Each chunk's raw data is its JSON, as the upstream wrote it.
    for c in &chunks {
        let v: Value = serde_json::from_slice(&c.data).unwrap();
        assert_eq!(v["object"], json!("chat.completion.chunk"));
    }

    // The client did not ask: the upstream is still asked (the fake only sends usage when asked),
    // and the usage chunk is marked not to be forwarded.
    let not_asked = chat_request(json!({"max_tokens": 2, "stream": true, "messages": user("six seven")}));
    let mut s = p.chat_stream("fake-chat", not_asked).await.unwrap();
    let (chunks, err) = drain(&mut s).await;
    assert!(err.is_none());
    let (usage, rest): (Vec<_>, Vec<_>) = chunks.iter().partition(|c| c.chunk.is_usage_only());
    assert_eq!(usage.len(), 1);
    assert!(!usage[0].forward && rest.iter().all(|c| c.forward));
    assert_eq!(s.usage().map(|u| u.completion_tokens), Some(2));

    // Streams read to their end leave their connection to the next call.
    let before = up.connections();
    for _ in 0..5 {
        let mut s =
            p.chat_stream("fake-chat", chat_request(json!({"stream": true, "messages": user("x")}))).await.unwrap();
        assert!(drain(&mut s).await.1.is_none());
    }
    assert_eq!(up.connections(), before, "a finished stream must give its connection back");
}

#[tokio::test]
async fn tool_calls_plain_and_streamed() {
    let up = FakeUpstream::spawn().await.unwrap();
    let p = provider(up.base_url(), None, Duration::from_secs(10));
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let a = p
        .chat("fake-chat", chat_request(json!({"tools": tools, "tool_choice": "required", "messages": user("q")})))
        .await
        .unwrap();
    let choice = &a.response.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!((call.function.name.as_str(), call.function.arguments.as_str()), ("lookup", "{\"q\": \"w1\"}"));

    let req = chat_request(json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "lookup"}},
                                  "stream": true, "messages": user("q")}));
    let mut s = p.chat_stream("fake-chat", req).await.unwrap();
    let (chunks, err) = drain(&mut s).await;
    assert!(err.is_none());
    let args: String = chunks
        .iter()
        .flat_map(|c| &c.chunk.choices)
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .filter_map(|t| t.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{\"q\": \"w1\"}");
    assert_eq!(s.output_bytes(), i64::try_from("lookup".len() + args.len()).unwrap());
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let up = FakeUpstream::spawn().await.unwrap();
    let p = provider(up.base_url(), None, Duration::from_secs(10));
    let req = |format: Option<&str>| -> EmbeddingsRequest {
        let mut v = json!({"model": "cohere-embed-english-v3", "input": ["a b", "c"]});
        if let Some(f) = format {
            v["encoding_format"] = json!(f);
        }
        serde_json::from_value(v).unwrap()
    };
    let a = p.embed("fake-embed", req(None)).await.unwrap();
    assert_eq!(a.input_tokens(), Some(3));
    assert!(
        matches!(&a.response.data[1].embedding, Vector::Floats(v) if v.len() == 8 && (v[0] - 0.882353).abs() < 1e-9)
    );
    let b = p.embed("fake-embed", req(Some("base64"))).await.unwrap();
    // 8 float32 = 32 bytes = 44 base64 characters, forwarded untouched.
    assert!(matches!(&b.response.data[0].embedding, Vector::Base64(s) if s.len() == 44));
    assert_eq!(up.stats().models, vec![json!("fake-embed")]);
}

#[tokio::test]
async fn failures_are_typed() {
    let up = FakeUpstream::spawn().await.unwrap();
    let p = provider(up.base_url(), None, Duration::from_secs(1));
    let req = || chat_request(json!({"messages": user("x")}));

    up.set_mode(Mode::new("fail", 0.0));
    let e = p.chat("m", req()).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Failed { failure: Failure::Status(500), detail, .. } if detail.contains("upstream exploded")),
        "{e}"
    );
    assert_eq!((e.status(), e.code()), (502, "upstream_failed"));
    assert!(matches!(
        p.chat_stream("m", req()).await.unwrap_err(),
        ProviderError::Failed { failure: Failure::Status(500), .. }
    ));

    up.set_mode(Mode::new("cut", 0.0));
    let e = p.chat("m", req()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Failed { failure: Failure::Cut, .. }), "{e}");
    let e = p.embed("m", serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Failed { failure: Failure::Cut, .. }), "{e}");
    // A stream cut after three words: the words arrive, then the error; what was produced is known.
    let mut s = p.chat_stream("m", chat_request(json!({"stream": true, "messages": user("x")}))).await.unwrap();
    let (chunks, err) = drain(&mut s).await;
    assert_eq!(text_of(&chunks), "w1 w2 w3 ");
    assert!(matches!(err, Some(ProviderError::Failed { failure: Failure::Cut, .. })), "{err:?}");
    assert_eq!((s.output_bytes(), s.usage()), (9, None));
    assert!(s.next().await.is_none(), "a failed stream stays ended");

    up.set_mode(Mode::new("slow", 3.0));
    let started = Instant::now();
    let e = p.chat("m", req()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Timeout { seconds: 1, .. }), "{e}");
    assert_eq!((e.status(), e.code()), (504, "upstream_timeout"));
    let e = p.chat_stream("m", chat_request(json!({"stream": true, "messages": user("x")}))).await.unwrap_err();
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_millis(2800), "timeouts must not wait for the upstream");

    // After all that, the provider still works (no broken connection was reused).
    up.set_mode(Mode::ok());
    assert!(p.chat("m", req()).await.is_ok());

    // Nothing listens: a connect failure.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let p = provider(&format!("http://{closed}/v1"), None, Duration::from_secs(2));
    let e = p.chat("m", req()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Failed { failure: Failure::Connect, .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// A scripted upstream: reads one request, then plays a script on the raw socket.

#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Sleep(u64),
}

/// Serves every connection with the script `make` returns for the request body.
async fn scripted(make: fn(&[u8]) -> Vec<Step>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let body = read_request(&mut sock).await;
                for step in make(&body) {
                    match step {
                        Step::Write(b) => {
                            if sock.write_all(&b).await.is_err() {
                                return;
                            }
                            let _ = sock.flush().await;
                        }
                        Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    }
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = sock.read(&mut tmp).await.unwrap();
        if n == 0 {
            return Vec::new();
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut tmp).await.unwrap();
                buf.extend_from_slice(&tmp[..n]);
            }
            return buf[end + 4..end + 4 + len].to_vec();
        }
    }
}

fn chunked_head(content_type: &str) -> Step {
    Step::Write(
        format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes(),
    )
}

fn http_chunk(data: &[u8]) -> Step {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    Step::Write(out)
}

const END: &[u8] = b"0\r\n\r\n";

/// A stream with multi-byte text, a comment, CRLF line ends and the usage chunk.
fn recorded_stream() -> Vec<u8> {
    let chunk = |content: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up",
               "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    };
    let mut s = String::new();
    s.push_str(": keep-alive comment\n\n");
    for word in ["Grüße ", "aus ", "Köln ", "😀 ", "\"quoted\"\n"] {
        s.push_str(&format!("data: {}\r\n\r\n", chunk(word)));
    }
    s.push_str(&format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    s.push_str(&format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}})
    ));
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

const RECORDED_TEXT: &str = "Grüße aus Köln 😀 \"quoted\"\n";

/// Splits `bytes` into pieces of 1 to 7 bytes, from a seed (deterministic, no rand crate).
fn pieces(bytes: &[u8], seed: u64) -> Vec<Step> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = usize::try_from((state >> 33) % 7 + 1).unwrap().min(bytes.len() - at);
        out.push(http_chunk(&bytes[at..at + n]));
        // Now and then a pause, so that pieces also arrive in reads of their own.
        if state.is_multiple_of(16) {
            out.push(Step::Sleep(1));
        }
        at += n;
    }
    out
}

#[tokio::test]
async fn chunk_boundaries_anywhere_give_the_same_chunks() {
    // The seed travels in the request (max_tokens), so each call gets its own split.
    let base = scripted(|body| {
        let v: Value = serde_json::from_slice(body).unwrap();
        let seed = v["max_tokens"].as_u64().unwrap();
        let mut steps = vec![chunked_head("text/event-stream")];
        steps.extend(pieces(&recorded_stream(), seed));
        steps.push(Step::Write(END.to_vec()));
        steps
    })
    .await;
    let p = provider(&base, None, Duration::from_secs(5));
    for seed in 1..=25 {
        let req = chat_request(json!({"stream": true, "max_tokens": seed, "messages": user("x")}));
        let mut s = p.chat_stream("up", req).await.unwrap();
        let (chunks, err) = drain(&mut s).await;
        assert!(err.is_none(), "seed {seed}: {err:?}");
        assert_eq!(text_of(&chunks), RECORDED_TEXT, "seed {seed}");
        assert_eq!(chunks.len(), 7, "seed {seed}");
        assert_eq!(s.usage(), Some(Usage { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 }));
        assert_eq!(s.output_bytes(), i64::try_from(RECORDED_TEXT.len()).unwrap());
    }
}

#[tokio::test]
async fn a_stream_that_stalls_times_out_between_chunks() {
    let base = scripted(|_| {
        let first = format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": "w1 "}, "finish_reason": null}]})
        );
        vec![chunked_head("text/event-stream"), http_chunk(first.as_bytes()), Step::Sleep(5_000)]
    })
    .await;
    let p = provider(&base, None, Duration::from_secs(1));
    let started = Instant::now();
    let mut s = p.chat_stream("up", chat_request(json!({"stream": true, "messages": user("x")}))).await.unwrap();
    let (chunks, err) = drain(&mut s).await;
    assert_eq!(text_of(&chunks), "w1 ");
    assert!(matches!(err, Some(ProviderError::Timeout { .. })), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn odd_answers_are_bad_answers_or_refusals() {
    let base = scripted(|body| {
        let v: Value = serde_json::from_slice(body).unwrap();
        let case = v["messages"][0]["content"].as_str().unwrap().to_owned();
        let json_head = |status: &str, body: &str| {
            Step::Write(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        };
        match case.as_str() {
            "not json" => vec![json_head("200 OK", "<html>hello</html>")],
            "no choices" => vec![json_head("200 OK", r#"{"choices": []}"#)],
            "too long" => vec![json_head(
                "400 Bad Request",
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#,
            )],
            "wrong key" => vec![json_head("401 Unauthorized", r#"{"error":{"message":"bad key","type":"auth"}}"#)],
            "json for a stream" => vec![json_head("200 OK", r#"{"choices": []}"#)],
            "error in stream" => vec![
                chunked_head("text/event-stream"),
                http_chunk(b"data: {\"error\": {\"message\": \"CUDA out of memory\"}}\n\n"),
                Step::Write(END.to_vec()),
            ],
            "garbage in stream" => vec![chunked_head("text/event-stream"), http_chunk(b"data: {oops\n\n"), Step::Write(END.to_vec())],
            "ends early" => vec![
                chunked_head("text/event-stream"),
                http_chunk(b"data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"w1\"}}]}\n\n"),
                Step::Write(END.to_vec()),
            ],
            _ => vec![],
        }
    })
    .await;
    let p = provider(&base, None, Duration::from_secs(5));
    let chat = |c: &str| chat_request(json!({"messages": user(c)}));
    let stream = |c: &str| chat_request(json!({"stream": true, "messages": user(c)}));

    for case in ["not json", "no choices"] {
        let e = p.chat("up", chat(case)).await.unwrap_err();
        assert!(matches!(e, ProviderError::Failed { failure: Failure::BadAnswer, .. }), "{case}: {e}");
    }
    let e = p.chat("up", chat("too long")).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::Refused {
            provider: "test".into(),
            status: 400,
            message: "This model's maximum context length is 4096 tokens.".into()
        }
    );
    assert_eq!((e.status(), e.code()), (400, "invalid_request"));
    let e = p.chat("up", chat("wrong key")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Failed { failure: Failure::Status(401), detail, .. } if detail.contains("bad key")),
        "{e}"
    );
    let e = p.chat_stream("up", stream("json for a stream")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Failed { failure: Failure::BadAnswer, .. }), "{e}");

    let expectations = [
        ("error in stream", Failure::InStream),
        ("garbage in stream", Failure::BadAnswer),
        ("ends early", Failure::Cut),
    ];
    for (case, failure) in expectations {
        let mut s = p.chat_stream("up", stream(case)).await.unwrap();
        let (_, err) = drain(&mut s).await;
        assert!(matches!(&err, Some(ProviderError::Failed { failure: f, .. }) if *f == failure), "{case}: {err:?}");
    }
}

#[tokio::test]
async fn an_in_process_stream_through_the_channel() {
    let (tx, mut s) = ChatStream::channel(4, "builtin", false);
    let producer = tokio::spawn(async move {
        for w in ["w1 ", "w2 "] {
            let chunk = serde_json::from_value(json!({"choices": [{"index": 0, "delta": {"content": w}}]})).unwrap();
            tx.send(chunk).await.unwrap();
        }
        let usage = serde_json::from_value(
            json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        )
        .unwrap();
        tx.send(usage).await.unwrap();
        tx.end().await;
    });
    let (chunks, err) = drain(&mut s).await;
    producer.await.unwrap();
    assert!(err.is_none());
    assert_eq!(text_of(&chunks), "w1 w2 ");
    assert!(!chunks.last().unwrap().forward, "the client did not ask for usage");
    assert_eq!(s.usage().map(|u| u.total_tokens), Some(3));

    // A producer that dies without `end` is a cut stream.
    let (tx, mut s) = ChatStream::channel(4, "builtin", true);
    drop(tx);
    let (_, err) = drain(&mut s).await;
    assert!(matches!(err, Some(ProviderError::Failed { failure: Failure::Cut, .. })), "{err:?}");
}
