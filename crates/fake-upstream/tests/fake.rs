//! The fake over real HTTP: its answers, modes and counters, and a side-by-side comparison with
//! the Python fake of the acceptance suite on the same requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use genai_fake_upstream::{FakeUpstream, Mode};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    client().post(url).header("Authorization", "Bearer k1").json(&body).send().await.unwrap()
}

/// The SSE data lines of a complete stream, and whether the body ended cleanly.
async fn stream_data(mut r: reqwest::Response) -> (Vec<String>, bool) {
    let mut raw = Vec::new();
    let clean = loop {
        match r.chunk().await {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8(raw).unwrap();
    let data = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect();
    (data, clean)
}

#[tokio::test]
async fn chat_embeddings_stats_and_modes() {
    let up = FakeUpstream::spawn().await.unwrap();
    let chat = format!("{}/chat/completions", up.base_url());
    let r = post(&chat, json!({"model": "fake-chat", "max_tokens": 3, "messages": [{"role": "user", "content": "one two three four five"}]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], json!("w1 w2 w3"));
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}));

    let r = post(
        &chat,
        json!({"model": "fake-chat", "max_tokens": 2, "stream": true, "stream_options": {"include_usage": true},
                               "messages": [{"role": "user", "content": "six seven"}]}),
    )
    .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (data, clean) = stream_data(r).await;
    assert!(clean);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], json!(2));

    let emb = format!("{}/embeddings", up.base_url());
    let v: Value = post(&emb, json!({"model": "fake-embed", "input": ["a b", "c"]})).await.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);

    let stats: Value = client().get(format!("http://{}/_stats", up.addr())).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        stats,
        json!({"chat": 2, "embeddings": 1, "models": ["fake-chat", "fake-embed"], "authorization": ["Bearer k1"]})
    );
    assert_eq!(up.stats().chat, 2);

    // fail: 500 with an error object.
    let r = post(&format!("http://{}/_mode", up.addr()), json!({"mode": "fail"})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"mode": "fail", "delay": 0.0}));
    let r = post(&chat, json!({"messages": []})).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["message"], json!("upstream exploded"));

    // cut: no answer at all for a plain call; three words, then a dropped connection, for a stream.
    up.set_mode(Mode::new("cut", 0.0));
    assert!(client().post(&chat).json(&json!({"messages": []})).send().await.is_err());
    let r = post(&chat, json!({"stream": true, "stream_options": {"include_usage": true}, "messages": []})).await;
    assert_eq!(r.status(), 200);
    let (data, clean) = stream_data(r).await;
    assert!(!clean, "a cut stream must end in an error, not a clean end");
    let words: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(words, "w1 w2 w3 ");
    assert!(!data.iter().any(|d| d == "[DONE]"));

    // slow: the answer waits.
    up.set_mode(Mode::new("slow", 0.3));
    let started = Instant::now();
    assert_eq!(post(&chat, json!({"messages": []})).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Unknown paths and bad JSON, as the Python fake answers them.
    up.set_mode(Mode::ok());
    assert_eq!(post(&format!("{}/completions", up.base_url()), json!({})).await.status(), 404);
    let r = client().post(&chat).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn static_mode_answers_anything_fast_and_counts_nothing() {
    let up = FakeUpstream::spawn_static().await.unwrap();
    let chat = format!("{}/chat/completions", up.base_url());
    let v: Value = post(&chat, json!({"model": "x", "messages": []})).await.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], json!(16));
    let (data, clean) = stream_data(post(&chat, json!({"stream": true})).await).await;
    assert!(clean && data.len() == 20, "{data:?}");
    let v: Value = post(&format!("{}/embeddings", up.base_url()), json!({"input": "x"})).await.json().await.unwrap();
    assert_eq!(v["object"], json!("list"));
    assert_eq!(up.stats().chat, 0);
}

// ---------------------------------------------------------------------------------------------
// Side by side with the Python fake

fn python_fake() -> PathBuf {
    let shared = std::env::var_os("GENAI_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = shared.join("acceptance/runtime/fake_openai_upstream.py");
    assert!(
        path.exists(),
        "the Python fake is missing at {} (set GENAI_SHARED_DIR to the shared docs directory)",
        path.display()
    );
    path
}

struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_python() -> (Python, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .arg(python_fake())
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 must be installed to compare the fakes");
    let guard = Python(child);
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if client().get(format!("{base}/_stats")).send().await.is_ok() {
            return (guard, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Python fake did not start");
}

/// A response reduced to what must match: status, content type and body (`created` dropped,
/// since it is the clock; SSE bodies compared event by event as JSON).
async fn observe(r: reqwest::Response) -> Value {
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let stream = ct.as_deref() == Some("text/event-stream");
    let (data, clean) = if stream { stream_data(r).await } else { (vec![r.text().await.unwrap()], true) };
    let mut body: Vec<Value> =
        data.iter().map(|d| serde_json::from_str::<Value>(d).unwrap_or_else(|_| Value::String(d.clone()))).collect();
    for v in &mut body {
        if let Some(o) = v.as_object_mut() {
            o.remove("created");
        }
    }
    json!({"status": status, "content_type": ct, "body": body, "clean": clean})
}

#[tokio::test]
async fn answers_match_the_python_fake() {
    let (_python, py) = start_python().await;
    let up = FakeUpstream::spawn().await.unwrap();
    let rs = format!("http://{}", up.addr());
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let requests: Vec<(&str, Value)> = vec![
        ("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "a b c"}]})),
        (
            "/v1/chat/completions",
            json!({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "text", "text": "x  y"}]}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"max_completion_tokens": 20, "messages": [{"role": "system", "content": "s"}, "junk", {"role": "user"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "tools": tools, "tool_choice": "required", "messages": [{"role": "user", "content": "q"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "tools": tools, "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "tools": tools, "tool_choice": "auto", "max_tokens": 1, "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "max_tokens": 3, "messages": [{"role": "user", "content": "p q"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "p"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "tools": tools, "tool_choice": "required", "messages": []}),
        ),
        ("/v1/embeddings", json!({"model": "e", "input": "hello world"})),
        ("/v1/embeddings", json!({"model": "e", "input": ["a", "bb b", "ü"], "encoding_format": "base64"})),
        ("/v1/embeddings", json!({"input": [[1, 2], [3]]})),
        ("/v1/unknown", json!({})),
        ("/_mode", json!({"mode": "fail"})),
        ("/v1/chat/completions", json!({"messages": []})),
        ("/_mode", json!({"mode": "cut", "delay": 0})),
        ("/v1/chat/completions", json!({"stream": true, "stream_options": {"include_usage": true}, "messages": []})),
        ("/_mode", json!({"mode": "slow", "delay": "0.1"})),
        ("/v1/embeddings", json!({"input": "x"})),
        ("/_mode", json!({})),
    ];
    for (path, body) in &requests {
        let a = observe(post(&format!("{py}{path}"), body.clone()).await).await;
        let b = observe(post(&format!("{rs}{path}"), body.clone()).await).await;
        assert_eq!(b, a, "{path} {body}");
    }
    let stats = |base: String| async move {
        client().get(format!("{base}/_stats")).send().await.unwrap().json::<Value>().await.unwrap()
    };
    assert_eq!(stats(rs.clone()).await, stats(py.clone()).await);
    // A plain call in "cut" mode gets no answer from either.
    for base in [&py, &rs] {
        post(&format!("{base}/_mode"), json!({"mode": "cut"})).await;
        assert!(client().post(format!("{base}/v1/embeddings")).json(&json!({"input": "x"})).send().await.is_err());
    }
}
