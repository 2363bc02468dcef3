//! What the fake answers, as pure functions of the request (so the rules can be read and tested
//! without a socket). The rules are those of `acceptance/runtime/fake_openai_upstream.py`, the
//! Python fake the public suite uses, down to its use of Python's truthiness:
//!
//! - chat: prompt tokens = whitespace-separated words of all message contents (string contents,
//!   and the `text` of list parts); completion tokens = min(`max_tokens` or
//!   `max_completion_tokens` or 16, 16); the reply is "w1 w2 … wN"; `finish_reason` is `length`
//!   when an explicit limit of 16 or less stopped it, else `stop`. With `tools` and a
//!   `tool_choice` that is `required` or names a function, one tool call (`{"q": "w1"}`,
//!   `finish_reason` `tool_calls`) instead of text. Streams: one chunk per word, a finish chunk,
//!   the usage chunk when `stream_options.include_usage` is set, `[DONE]`.
//! - embeddings: prompt tokens = words of all inputs; one 8-float vector per input computed from
//!   its bytes; `encoding_format: "base64"` answers little-endian float32 in base64.
//! - modes: `fail` answers 500, `slow` waits `delay` seconds first, `cut` drops the connection
//!   (streams: after three words; other calls: before any answer).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::body::Piece;

/// What to answer.
#[derive(Debug)]
pub enum Answer {
    /// A JSON body with this status.
    Json(u16, Value),
    /// A chat stream (`text/event-stream`, chunked).
    Stream(Vec<Piece>),
}

/// Python's truthiness of a JSON value.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Python's `str(value)` for what JSON can hold (what the fake counts words and bytes of).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("'{k}': {}", py_repr(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

fn words(s: &str) -> i64 {
    i64::try_from(s.split_whitespace().count()).unwrap_or(i64::MAX)
}

fn words_of(content: Option<&Value>) -> i64 {
    match content {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(Value::as_object)
            .map(|p| p.get("text").and_then(Value::as_str).map_or(0, words))
            .sum(),
        _ => 0,
    }
}

/// Prompt tokens of a chat request: words of every message's content.
pub fn prompt_words(body: &Map<String, Value>) -> i64 {
    match body.get("messages") {
        Some(Value::Array(messages)) => {
            messages.iter().filter_map(Value::as_object).map(|m| words_of(m.get("content"))).sum()
        }
        _ => 0,
    }
}

/// The function the fake calls, if the request makes it call one.
pub fn tool_choice_name(body: &Map<String, Value>) -> Option<Value> {
    let tools = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty())?;
    let first_name = || tools[0].get("function").and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null);
    match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "none" || s == "auto" => None,
        Some(Value::Object(o)) => {
            let named = o.get("function").and_then(|f| f.get("name")).filter(|n| truthy(Some(n)));
            Some(named.cloned().unwrap_or_else(first_name))
        }
        Some(_) => Some(first_name()),
    }
}

/// The 8-float vector of an input: from its bytes, rounded to 6 decimals.
pub fn vector(text: &str) -> [f64; 8] {
    let bytes = text.as_bytes();
    let seed: u64 = bytes.iter().map(|b| u64::from(*b)).sum::<u64>() + bytes.len() as u64;
    let mut v = [0.0; 8];
    for (j, x) in v.iter_mut().enumerate() {
        let k = (seed + 31 * j as u64) % 17;
        *x = ((k as f64 / 17.0) * 1e6).round() / 1e6;
    }
    v
}

/// Little-endian float32, base64: OpenAI's `encoding_format: "base64"`.
pub fn base64_vector(v: &[f64]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn model_of(body: &Map<String, Value>) -> Value {
    body.get("model").cloned().unwrap_or_else(|| json!("fake"))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The output limit the fake applies, and whether it was explicit (Python's `or` chain).
fn limit(body: &Map<String, Value>) -> Option<i64> {
    ["max_tokens", "max_completion_tokens"]
        .iter()
        .map(|k| body.get(*k))
        .find(|v| truthy(*v))
        .flatten()
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// The answer to `POST …/chat/completions`.
pub fn chat(body: &Map<String, Value>, cut: bool) -> Answer {
    let prompt = prompt_words(body);
    let limit = limit(body);
    let out = limit.unwrap_or(16).min(16);
    let mut finish = if limit.is_some_and(|l| l <= 16) { "length" } else { "stop" };
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out});
    let tool = tool_choice_name(body);
    if tool.is_some() {
        finish = "tool_calls";
    }
    let call = |name: &Value| json!({"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": "{\"q\": \"w1\"}"}});
    let (id, created, model) = ("chatcmpl-fake", now(), model_of(body));
    if !truthy(body.get("stream")) {
        let message = match &tool {
            Some(name) => json!({"role": "assistant", "content": null, "tool_calls": [call(name)]}),
            None => json!({"role": "assistant", "content": reply(out)}),
        };
        return Answer::Json(
            200,
            json!({"id": id, "created": created, "model": model, "object": "chat.completion", "usage": usage,
                   "choices": [{"index": 0, "message": message, "finish_reason": finish}]}),
        );
    }
    let base = |choices: Value| json!({"id": id, "created": created, "model": model, "object": "chat.completion.chunk", "choices": choices});
    let delta = |d: Value, finish: Option<&str>| base(json!([{"index": 0, "delta": d, "finish_reason": finish}]));
    let mut pieces = Vec::new();
    push_chunk(&mut pieces, &delta(json!({"role": "assistant", "content": ""}), None));
    if let Some(name) = &tool {
        let mut start = call(name);
        start["index"] = json!(0);
        start["function"]["arguments"] = json!("");
        push_chunk(&mut pieces, &delta(json!({"tool_calls": [start]}), None));
        let arguments = json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\": \"w1\"}"}}]});
        push_chunk(&mut pieces, &delta(arguments, None));
    } else {
        for i in 0..out.max(0) {
            if cut && i == 3 {
                pieces.push(Piece::Cut); // no finish, usage or [DONE]: the connection just drops
                return Answer::Stream(pieces);
            }
            push_chunk(&mut pieces, &delta(json!({"content": format!("w{} ", i + 1)}), None));
        }
    }
    push_chunk(&mut pieces, &delta(json!({}), Some(finish)));
    if truthy(body.get("stream_options").and_then(|o| o.get("include_usage"))) {
        let mut last = base(json!([]));
        last["usage"] = usage;
        push_chunk(&mut pieces, &last);
    }
    pieces.push(Piece::Data(sse("[DONE]")));
    Answer::Stream(pieces)
}

/// One SSE chunk, sent in a write of its own (the Python fake flushes after each).
fn push_chunk(pieces: &mut Vec<Piece>, data: &Value) {
    pieces.push(Piece::Data(sse(&data.to_string())));
    pieces.push(Piece::Flush);
}

fn reply(n: i64) -> String {
    (1..=n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The answer to `POST …/embeddings`.
pub fn embeddings(body: &Map<String, Value>) -> Answer {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(py_str).collect(),
        _ => Vec::new(),
    };
    let tokens: i64 = inputs.iter().map(|t| words(t)).sum();
    let b64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = vector(text);
            let embedding = if b64 { json!(base64_vector(&v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Answer::Json(
        200,
        json!({"object": "list", "data": data, "model": model_of(body),
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// The fixed chat completion of `--static` (a body of about 400 bytes).
pub fn static_chat() -> Bytes {
    Bytes::from(
        json!({"id": "chatcmpl-static", "object": "chat.completion", "created": 1_700_000_000, "model": "fake-static",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": reply(16)}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}})
        .to_string(),
    )
}

/// The fixed stream of `--static`: 16 words, finish, usage, `[DONE]`, in one write.
pub fn static_stream() -> Bytes {
    let base = |choices: Value| {
        json!({"id": "chatcmpl-static", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": "fake-static", "choices": choices})
    };
    let mut out = String::new();
    let mut push = |v: Value| out.push_str(&format!("data: {v}\n\n"));
    push(base(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])));
    for i in 1..=16 {
        push(base(json!([{"index": 0, "delta": {"content": format!("w{i} ")}, "finish_reason": null}])));
    }
    push(base(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])));
    let mut usage = base(json!([]));
    usage["usage"] = json!({"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21});
    push(usage);
    out.push_str("data: [DONE]\n\n");
    Bytes::from(out)
}

/// The fixed embeddings answer of `--static`: one vector.
pub fn static_embeddings() -> Bytes {
    Bytes::from(
        json!({"object": "list", "model": "fake-static",
               "data": [{"object": "embedding", "index": 0, "embedding": vector("static")}],
               "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn json_of(a: Answer) -> Value {
        match a {
            Answer::Json(200, v) => v,
            other => panic!("not a 200 JSON answer: {other:?}"),
        }
    }

    fn stream_data(a: Answer) -> (Vec<Value>, bool, bool) {
        let Answer::Stream(pieces) = a else { panic!("not a stream") };
        let mut out = Vec::new();
        let (mut done, mut cut) = (false, false);
        for p in pieces {
            match p {
                Piece::Data(d) => {
                    let text = String::from_utf8(d.to_vec()).unwrap();
                    let data = text.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
                    if data == "[DONE]" {
                        done = true;
                    } else {
                        out.push(serde_json::from_str(data).unwrap());
                    }
                }
                Piece::Cut => cut = true,
                Piece::Flush => {}
            }
        }
        (out, done, cut)
    }

    #[test]
    fn usage_rules_of_the_python_fake() {
        // (request, prompt tokens, completion tokens, finish reason)
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "one two three four five"}], "max_tokens": 3}),
                5,
                3,
                "length",
            ),
            (json!({"messages": [{"role": "user", "content": "a b"}]}), 2, 16, "stop"),
            (json!({"messages": [{"role": "user", "content": "a"}], "max_tokens": 100}), 1, 16, "stop"),
            (json!({"messages": [{"role": "user", "content": "a"}], "max_tokens": 16}), 1, 16, "length"),
            (
                json!({"messages": [{"role": "user", "content": "a"}], "max_tokens": 0, "max_completion_tokens": 4}),
                1,
                4,
                "length",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x y"}, {"type": "image_url"}]},
                                 {"role": "system", "content": " spaced\tout\n"}, "not a message",
                                 {"role": "assistant", "content": null}]}),
                4,
                16,
                "stop",
            ),
        ];
        for (req, prompt, completion, finish) in cases {
            let v = json_of(chat(&obj(req.clone()), false));
            assert_eq!(
                v["usage"],
                json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}),
                "{req}"
            );
            assert_eq!(v["choices"][0]["finish_reason"], json!(finish), "{req}");
            assert_eq!(v["choices"][0]["message"]["content"], json!(reply(completion)));
        }
    }

    #[test]
    fn tool_calls_when_the_choice_demands_one() {
        let tools = json!([{"type": "function", "function": {"name": "lookup"}}, {"type": "function", "function": {"name": "other"}}]);
        let cases = [
            (json!("required"), Some("lookup")),
            (json!({"type": "function", "function": {"name": "other"}}), Some("other")),
            (json!("auto"), None),
            (json!("none"), None),
            (Value::Null, None),
        ];
        for (choice, want) in cases {
            let req =
                obj(json!({"messages": [{"role": "user", "content": "q"}], "tools": tools, "tool_choice": choice}));
            let v = json_of(chat(&req, false));
            match want {
                Some(name) => {
                    assert_eq!(v["choices"][0]["finish_reason"], json!("tool_calls"));
                    assert_eq!(
                        v["choices"][0]["message"]["tool_calls"],
                        json!([{"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": "{\"q\": \"w1\"}"}}])
                    );
                }
                None => assert_eq!(v["choices"][0]["finish_reason"], json!("stop")),
            }
        }
    }

    #[test]
    fn streams_word_by_word_with_optional_usage() {
        let req = obj(json!({"model": "m", "stream": true, "max_tokens": 2, "stream_options": {"include_usage": true},
                             "messages": [{"role": "user", "content": "six seven"}]}));
        let (chunks, done, cut) = stream_data(chat(&req, false));
        assert!(done && !cut);
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "w1 w2 ");
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], json!("length"));
        assert_eq!(chunks.last().unwrap()["choices"], json!([]));
        assert_eq!(
            chunks.last().unwrap()["usage"],
            json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
        );

        let mut no_usage = req.clone();
        no_usage.remove("stream_options");
        let (chunks, _, _) = stream_data(chat(&no_usage, false));
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn a_cut_stream_stops_after_three_words_without_usage_or_done() {
        let req = obj(json!({"stream": true, "stream_options": {"include_usage": true},
                             "messages": [{"role": "user", "content": "x"}]}));
        let (chunks, done, cut) = stream_data(chat(&req, true));
        assert!(cut && !done);
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "w1 w2 w3 ");
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn embeddings_vectors_and_usage() {
        let v = json_of(embeddings(&obj(json!({"model": "e", "input": ["a b", "c"]}))));
        assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        // Python: seed = sum(b"c") + 1 = 100; [round(((100 + 31 j) % 17) / 17, 6)].
        assert_eq!(
            v["data"][1]["embedding"],
            json!([0.882353, 0.705882, 0.529412, 0.352941, 0.176471, 0.0, 0.823529, 0.647059])
        );
        let b = json_of(embeddings(&obj(json!({"input": "c", "encoding_format": "base64"}))));
        assert_eq!(b["model"], json!("fake"));
        let raw =
            base64::engine::general_purpose::STANDARD.decode(b["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let floats: Vec<f32> = raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(floats[0], 0.882353_f32);
        assert_eq!(floats.len(), 8);
        // Token-id inputs count as Python's str() of them does.
        let t = json_of(embeddings(&obj(json!({"input": [[1, 2], [3]]}))));
        assert_eq!(t["usage"]["prompt_tokens"], json!(3));
    }

    #[test]
    fn static_bodies_are_valid() {
        let v: Value = serde_json::from_slice(&static_chat()).unwrap();
        assert_eq!(v["usage"]["completion_tokens"], json!(16));
        let s = String::from_utf8(static_stream().to_vec()).unwrap();
        assert!(s.ends_with("data: [DONE]\n\n"));
        assert_eq!(s.matches("data: ").count(), 1 + 16 + 1 + 1 + 1);
        let e: Value = serde_json::from_slice(&static_embeddings()).unwrap();
        assert_eq!(e["data"][0]["embedding"].as_array().unwrap().len(), 8);
    }
}
