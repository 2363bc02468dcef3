//! The Runtime API against the real binary (RUNTIME.md §3–5), with the Rust fake upstream
//! (`genai-fake-upstream`: prompt tokens = words, completion tokens = min(max_tokens, 16)):
//! both wire formats through HTTP, refusals, quota under concurrency, usage surviving SIGKILL,
//! and several instances on one PostgreSQL sharing a quota and seeing revocations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genai_fake_upstream::{FakeUpstream, Mode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{embeddings, text, TestServer};

const MODEL: &str = "claude-sonnet-4.6";
const EMBED: &str = "cohere-embed-english-v3";

/// A catalog whose small text plan allows 100 output tokens a month (so a test runs it dry).
const CATALOG: &str = r#"
[[regions]]
id = "eu-central-1"
name = "EU (Frankfurt)"

[[models]]
id = "claude-sonnet-4.6"
name = "Anthropic Claude Sonnet 4.6"
type = "text_generation"
regions = { "eu-central-1" = "cri_only" }

[[models]]
id = "cohere-embed-english-v3"
name = "Cohere Embed v3 English"
type = "embeddings_generation"
regions = { "eu-central-1" = "in_region_only" }

[[plans]]
type = "text_generation"
size = "small"
cloud_tokens = 30
input_tokens = 1000000
output_tokens = 100

[[plans]]
type = "text_generation"
size = "medium"
cloud_tokens = 60
input_tokens = 2000000
output_tokens = 4000

[[plans]]
type = "text_generation"
size = "large"
cloud_tokens = 120
input_tokens = 4000000
output_tokens = 1000000

[[plans]]
type = "embeddings_generation"
size = "small"
cloud_tokens = 6
input_tokens = 100000

[[plans]]
type = "embeddings_generation"
size = "medium"
cloud_tokens = 12
input_tokens = 200000

[[plans]]
type = "embeddings_generation"
size = "large"
cloud_tokens = 24
input_tokens = 400000

[[plans]]
type = "knowledge_base"
size = "standard"
cloud_tokens = 48
storage_bytes = 10485760
"#;

/// `--catalog` and `--providers` files routing both models to `up`.
fn serve_files(up: &FakeUpstream, dir: &Path) -> Vec<String> {
    serve_files_with_timeout(up, dir, 5)
}

fn serve_files_with_timeout(up: &FakeUpstream, dir: &Path, timeout_seconds: u64) -> Vec<String> {
    let catalog = dir.join("catalog.toml");
    let providers = dir.join("providers.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    std::fs::write(
        &providers,
        format!(
            "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\ntimeout_seconds = {timeout_seconds}\n\n\
             [models.\"{MODEL}\"]\nprovider = \"fake\"\nupstream_model = \"fake-chat\"\n\n\
             [models.\"{EMBED}\"]\nprovider = \"fake\"\nupstream_model = \"fake-embed\"\n",
            up.base_url()
        ),
    )
    .unwrap();
    vec!["--catalog".into(), catalog.display().to_string(), "--providers".into(), providers.display().to_string()]
}

fn start(up: &FakeUpstream, database: Option<&str>) -> TestServer {
    let dir = support::temp_dir("rt");
    let args = serve_files(up, &dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match database {
        Some(db) => TestServer::start_on(db, dir, &args),
        None => {
            let db = format!("sqlite://{}/genai.db", dir.display());
            TestServer::start_on(&db, dir, &args)
        }
    }
}

async fn provision(srv: &TestServer, admin: &str, body: Value) -> String {
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(body), Some(admin)).await;
    assert_eq!(s, 201, "{r}");
    r["id"].as_str().unwrap().to_string()
}

async fn new_key(srv: &TestServer, admin: &str, rid: &str) -> (String, String) {
    let (s, k) = srv
        .call("POST", &format!("/api/v1/resources/{rid}/keys"), Some(json!({"description": "test"})), Some(admin))
        .await;
    assert_eq!(s, 201, "{k}");
    (k["id"].as_str().unwrap().to_string(), k["secret"].as_str().unwrap().to_string())
}

async fn used(srv: &TestServer, admin: &str, rid: &str) -> (i64, i64, i64) {
    let (s, c) = srv.call("GET", &format!("/api/v1/resources/{rid}/consumption"), None, Some(admin)).await;
    assert_eq!(s, 200, "{c}");
    let u = &c["used"];
    (u["input_tokens"].as_i64().unwrap(), u["output_tokens"].as_i64().unwrap(), u["api_calls"].as_i64().unwrap())
}

/// A raw call: (status, headers, body text).
async fn raw(
    client: &reqwest::Client,
    url: String,
    auth: (&str, &str),
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = match &body {
        Some(b) => client.post(url).json(b),
        None => client.get(url),
    };
    req = req.header(auth.0, auth.1);
    // A server killed mid-call answers nothing: status 0.
    let Ok(res) = req.send().await else { return (0, reqwest::header::HeaderMap::new(), String::new()) };
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap_or_default())
}

fn bearer(secret: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {secret}"))
}

async fn chat(client: &reqwest::Client, base: &str, secret: &str, body: Value) -> (u16, Value) {
    let auth = bearer(secret);
    let (s, _, t) = raw(client, format!("{base}/v1/chat/completions"), (auth.0, &auth.1), Some(body)).await;
    (s, serde_json::from_str(&t).unwrap_or(Value::Null))
}

fn words(prompt: &str, max_tokens: i64) -> Value {
    json!({"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]})
}

/// SSE events of a body: (name, data).
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn both_wire_formats_are_served_translated_and_metered() {
    let up = FakeUpstream::spawn().await.unwrap();
    let srv = start(&up, None);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Bot", "large")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let c = reqwest::Client::new();
    let base = srv.base.as_str();

    // OpenAI, whole: usage as the upstream reported it, answered under the catalog id.
    let (s, a) = chat(&c, base, &secret, words("one two three four five", 3)).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!((a["usage"]["prompt_tokens"].as_i64(), a["usage"]["completion_tokens"].as_i64()), (Some(5), Some(3)));
    assert_eq!(a["model"], MODEL, "answered under the catalog id, not the upstream's name");
    assert_eq!(a["choices"][0]["message"]["content"], "w1 w2 w3");

    // OpenAI, streamed with usage: chunks, then the usage chunk, then [DONE].
    let mut body = words("six seven", 2);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let auth = bearer(&secret);
    let (s, h, t) = raw(&c, format!("{base}/v1/chat/completions"), (auth.0, &auth.1), Some(body)).await;
    assert_eq!(s, 200, "{t}");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let ev = events(&t);
    assert_eq!(ev.last().unwrap().1, "[DONE]", "{t}");
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2].1).unwrap();
    assert_eq!(
        (usage["usage"]["prompt_tokens"].as_i64(), usage["usage"]["completion_tokens"].as_i64()),
        (Some(2), Some(2))
    );
    let text: String = ev[..ev.len() - 2]
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["w1", "w2"]);

    // Tools through OpenAI's format.
    let tools = json!([{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]);
    let (s, a) = chat(
        &c,
        base,
        &secret,
        json!({"model": MODEL, "max_tokens": 4, "tools": tools, "tool_choice": "required",
               "messages": [{"role": "user", "content": "find it"}]}),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "search");

    // Converse: translated both ways; tools become toolUse blocks.
    let r = format!("{base}/runtime/v1/resources/{rid}");
    let key = ("x-api-key", secret.as_str());
    let conv = json!({"messages": [{"role": "user", "content": [{"text": "alpha beta gamma"}]}],
                      "inferenceConfig": {"maxTokens": 4}});
    let (s, _, t) = raw(&c, format!("{r}/converse"), key, Some(conv.clone())).await;
    assert_eq!(s, 200, "{t}");
    let out: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(out["usage"], json!({"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}));
    assert_eq!(out["output"]["message"]["content"][0]["text"], "w1 w2 w3 w4");
    assert_eq!(out["stopReason"], "max_tokens");
    let with_tools = json!({"messages": [{"role": "user", "content": [{"text": "look up"}]}],
        "inferenceConfig": {"maxTokens": 3},
        "toolConfig": {"tools": [{"toolSpec": {"name": "search", "inputSchema": {"json": {"type": "object"}}}}],
                       "toolChoice": {"any": {}}}});
    let (s, _, t) = raw(&c, format!("{r}/converse"), key, Some(with_tools)).await;
    assert_eq!(s, 200, "{t}");
    let out: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(out["stopReason"], "tool_use", "{out}");
    assert_eq!(out["output"]["message"]["content"][0]["toolUse"]["name"], "search");
    assert_eq!(out["output"]["message"]["content"][0]["toolUse"]["input"], json!({"q": "w1"}));

    // ConverseStream: the six event names, METADATA last with the usage.
    let (s, h, t) = raw(&c, format!("{r}/converse-stream"), key, Some(conv)).await;
    assert_eq!(s, 200, "{t}");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let ev = events(&t);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"MESSAGE_START"), "{t}");
    assert!(names.contains(&"CONTENT_BLOCK_DELTA") && names.contains(&"MESSAGE_STOP"), "{names:?}");
    assert_eq!(names.last(), Some(&"METADATA"), "{names:?}");
    let meta: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    assert_eq!(meta["usage"], json!({"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}));

    // GET R.
    let (s, _, t) = raw(&c, r.clone(), key, None).await;
    assert_eq!(s, 200, "{t}");
    let me: Value = serde_json::from_str(&t).unwrap();
    assert_eq!((me["type"].as_str(), me["model"].as_str()), (Some("TEXT_GENERATION"), Some(MODEL)));
    assert_eq!(me["modelName"], "Anthropic Claude Sonnet 4.6");

    let (_, keys) = srv.call("GET", &format!("/api/v1/resources/{rid}/keys"), None, Some(&admin)).await;
    assert!(keys["keys"][0]["last_used_at"].is_string(), "the key's first use is recorded: {keys}");

    // Every call above, exactly: 5+2+2+3+2+3 input, 3+2+4+4+3+4 output, 6 calls.
    assert_eq!(used(&srv, &admin, &rid).await, (17, 20, 6));

    // Embeddings in both formats.
    let eid = provision(&srv, &admin, embeddings("Vectors", "small")).await;
    let (_, esecret) = new_key(&srv, &admin, &eid).await;
    let eauth = bearer(&esecret);
    let (s, _, t) = raw(
        &c,
        format!("{base}/v1/embeddings"),
        (eauth.0, &eauth.1),
        Some(json!({"model": EMBED, "input": ["a b", "c"]})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let e: Value = serde_json::from_str(&t).unwrap();
    assert_eq!((e["data"].as_array().unwrap().len(), e["usage"]["prompt_tokens"].as_i64()), (2, Some(3)));
    assert_eq!(e["model"], EMBED);
    let er = format!("{base}/runtime/v1/resources/{eid}");
    let ekey = ("x-api-key", esecret.as_str());
    let (s, h, t) =
        raw(&c, format!("{er}/invoke"), ekey, Some(json!({"texts": ["x y z"], "input_type": "search_document"}))).await;
    assert_eq!(s, 200, "{t}");
    let inv: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(inv["response_type"], "embeddings_floats");
    assert_eq!(inv["embeddings"][0].as_array().unwrap().len(), 8);
    assert_eq!(h["x-amzn-bedrock-input-token-count"], "3");
    assert_eq!(h["x-amzn-bedrock-output-token-count"], "0");
    assert_eq!(used(&srv, &admin, &eid).await, (6, 0, 2));

    // Refusals, none of them counted.
    let many: Vec<String> = (0..97).map(|i| format!("t{i}")).collect();
    let (s, _, t) = raw(&c, format!("{er}/invoke"), ekey, Some(json!({"texts": many}))).await;
    assert_eq!(s, 400, "{t}");
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["code"], "validation_failed");
    assert!(v["error"]["message"].as_str().unwrap().contains("texts"), "{v}");
    let (s, _, t) = raw(&c, format!("{er}/converse"), ekey, Some(json!({"messages": []}))).await;
    assert_eq!(
        (s, serde_json::from_str::<Value>(&t).unwrap()["error"]["code"].clone()),
        (400, json!("wrong_resource_type"))
    );
    let (s, _, t) = raw(&c, format!("{r}/converse"), ekey, Some(json!({"messages": []}))).await;
    assert_eq!(
        (s, serde_json::from_str::<Value>(&t).unwrap()["error"]["code"].clone()),
        (403, json!("wrong_resource"))
    );
    let (s, _, _) = raw(&c, format!("{r}/converse"), ("x-api-key", "gr_nonsense"), Some(json!({}))).await;
    assert_eq!(s, 401);
    let (s, a) =
        chat(&c, base, &secret, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!((s, a["error"]["code"].as_str()), (404, Some("model_not_found")), "{a}");
    assert!(a["error"]["message"].as_str().unwrap().contains(MODEL), "names the model it serves: {a}");
    let (s, a) = chat(&c, base, &secret, json!({"model": MODEL, "max_tokens": 0, "messages": []})).await;
    assert_eq!((s, a["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{a}");
    let (s, a) = chat(&c, base, &admin, words("x", 1)).await;
    assert_eq!((s, a["error"]["type"].as_str()), (401, Some("authentication_error")), "a user token is no key: {a}");

    let (s, _, t) = raw(&c, format!("{base}/v1/nothing"), (auth.0, &auth.1), None).await;
    assert_eq!((s, serde_json::from_str::<Value>(&t).unwrap()["error"]["code"].clone()), (404, json!("not_found")));
    let (s, _, t) = raw(&c, format!("{base}/v1/chat/completions"), (auth.0, &auth.1), None).await;
    assert_eq!(
        (s, serde_json::from_str::<Value>(&t).unwrap()["error"]["type"].clone()),
        (405, json!("invalid_request_error"))
    );

    // A failing upstream: 502, nothing charged.
    up.set_mode(Mode::new("fail", 0.0));
    let (s, a) = chat(&c, base, &secret, words("a b", 2)).await;
    assert_eq!((s, a["error"]["code"].as_str()), (502, Some("upstream_failed")), "{a}");
    up.set_mode(Mode::ok());
    assert_eq!(used(&srv, &admin, &rid).await, (17, 20, 6), "refused and failed calls are not counted");
    let (s, _, m) = raw(&c, format!("{base}/metrics"), ("accept", "text/plain"), None).await;
    assert_eq!(s, 200);
    assert!(
        m.contains(
            "genai_runtime_requests_total{resource_type=\"text_generation\",format=\"openai\",status=\"200\"} 3"
        ),
        "{m}"
    );
    assert!(m.contains("genai_runtime_upstream_errors_total{provider=\"fake\",kind=\"status\"} 1"), "{m}");
    assert!(!m.contains(&secret) && !m.contains("alpha"), "no secrets or prompts in metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_midway_is_charged_what_it_produced() {
    let up = FakeUpstream::spawn().await.unwrap();
    let srv = start(&up, None);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Bot", "large")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let c = reqwest::Client::new();
    up.set_mode(Mode::new("cut", 0.0));
    let mut body = words("one two", 16);
    body["stream"] = json!(true);
    let auth = bearer(&secret);
    let (s, _, t) = raw(&c, format!("{}/v1/chat/completions", srv.base), (auth.0, &auth.1), Some(body)).await;
    assert_eq!(s, 200);
    assert!(!t.contains("[DONE]") && t.contains("upstream_failed"), "{t}");
    let (input, output, calls) = used(&srv, &admin, &rid).await;
    // Three words were produced ("w1 ", "w2 ", "w3 " or so): bounded by their bytes; the
    // prompt by its bound (no usage came).
    assert_eq!(calls, 1);
    assert!((3..=12).contains(&output), "output charged {output}");
    assert!(input >= 2, "input charged {input}");
}

/// Writes the small-plan scenario: `n` concurrent calls of 16 output tokens against a quota of
/// 100 spread over `servers`; answers (successes, refusals).
async fn hammer(servers: &[&TestServer], secret: &str, n: usize) -> (i64, i64) {
    let c = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let base = servers[i % servers.len()].base.clone();
        let (c, secret) = (c.clone(), secret.to_string());
        tasks.spawn(async move { chat(&c, &base, &secret, words("tell me more", 16)).await });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (s, body) = r.unwrap();
        match s {
            200 => ok += 1,
            429 => {
                assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_never_exceed_a_small_quota() {
    let up = FakeUpstream::spawn().await.unwrap();
    let srv = start(&up, None);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Small", "small")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let (ok, refused) = hammer(&[&srv], &secret, 64).await;
    eprintln!("one instance, 64 concurrent calls: {ok} answered, {refused} refused");
    assert_eq!(ok + refused, 64);
    // 100 output tokens, 16 a call: exactly 6 fit (one instance strands nothing in leases).
    assert_eq!(ok, 6, "{ok} calls succeeded");
    let (input, output, calls) = used(&srv, &admin, &rid).await;
    assert_eq!((output, calls, input), (16 * ok, ok, 3 * ok), "the sum of the answered usage is what was committed");
    assert_eq!(up.stats().chat, u64::try_from(ok).unwrap(), "refused calls never reach the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_loses_no_answered_usage() {
    let up = FakeUpstream::spawn().await.unwrap();
    let srv = start(&up, None);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Busy", "large")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let base = srv.base.clone();
    let answered = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (base, secret, answered, stop) = (base.clone(), secret.clone(), answered.clone(), stop.clone());
        tasks.spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let res = c
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&secret)
                    .json(&words("a b c", 2))
                    .send()
                    .await;
                // Counted only once the whole answer has arrived.
                match res {
                    Ok(r) if r.status() == 200 => {
                        if r.bytes().await.is_ok() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ => return,
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let figure = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    let (commits, calls) =
        (figure("genai_runtime_usage_commits_total "), figure("genai_runtime_usage_committed_calls_total "));
    assert!(commits >= 1.0 && calls >= commits, "{metrics}");
    eprintln!("group commit: {calls} calls in {commits} commits ({:.1} a commit)", calls / commits);
    let (db, dir) = srv.kill();
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let answered = answered.load(Ordering::SeqCst);
    assert!(answered > 10, "only {answered} calls answered before the kill");
    let args = serve_files(&up, &dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = TestServer::start_on(&db, dir.clone(), &args);
    let (input, output, calls) = used(&again, &admin, &rid).await;
    eprintln!("SIGKILL under load: {answered} calls answered, {calls} committed");
    // Every answered call is there; calls committed whose answer was cut by the kill may be too
    // (at most one per client).
    assert!(calls >= answered && calls <= answered + 16, "{calls} committed, {answered} answered");
    assert_eq!((input, output), (3 * calls, 2 * calls));
}

fn postgres_db(tag: &str) -> Option<(String, String)> {
    let url = std::env::var("GENAI_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    let name = format!("genai_rt_{tag}_{}_{nanos}", std::process::id());
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some((format!("{}/{name}", url.rsplit_once('/').unwrap().0), name))
}

fn drop_db(name: &str) {
    if let Ok(url) = std::env::var("GENAI_TEST_POSTGRES_URL") {
        let _ = std::process::Command::new("psql")
            .args([url.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
            .output();
    }
}

fn require_postgres() -> bool {
    if std::env::var("GENAI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("GENAI_REQUIRE_POSTGRES=1 but GENAI_TEST_POSTGRES_URL is not set");
    }
    eprintln!("multi-instance runtime tests SKIPPED for lack of GENAI_TEST_POSTGRES_URL");
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_one_quota_and_see_revocations_within_two_seconds() {
    let Some((db, name)) = postgres_db("three") else {
        require_postgres();
        return;
    };
    let up = FakeUpstream::spawn().await.unwrap();
    let servers: Vec<TestServer> = (0..3).map(|_| start(&up, Some(&db))).collect();
    let (_, admin) = servers[0].company(500).await;
    let rid = provision(&servers[0], &admin, text("Shared", "small")).await;
    let (_, secret) = new_key(&servers[0], &admin, &rid).await;

    let refs: Vec<&TestServer> = servers.iter().collect();
    let (ok, refused) = hammer(&refs, &secret, 48).await;
    eprintln!("three instances, 48 concurrent calls: {ok} answered, {refused} refused");
    assert_eq!(ok + refused, 48);
    assert!(ok <= 6, "{ok} calls of 16 output tokens succeeded against a quota of 100");
    let (_, output, calls) = used(&servers[0], &admin, &rid).await;
    assert_eq!((output, calls), (16 * ok, ok));
    // After the instances give their idle balances back, what remains can be used anywhere.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let c = reqwest::Client::new();
    let left = 100 - output;
    if left >= 16 {
        let (s, a) = chat(&c, &servers[2].base, &secret, words("more", 16)).await;
        assert_eq!(s, 200, "{left} left, yet refused: {a}");
    }

    // Revocation on instance 0; instances 1 and 2 (which have the key cached) refuse it within 2 s.
    let (_, esecret) = {
        let rid2 = provision(&servers[0], &admin, text("Other", "large")).await;
        let (kid, s) = new_key(&servers[0], &admin, &rid2).await;
        for srv in &servers[1..] {
            assert_eq!(chat(&c, &srv.base, &s, words("x", 1)).await.0, 200);
        }
        let (st, b) =
            servers[0].call("DELETE", &format!("/api/v1/resources/{rid2}/keys/{kid}"), None, Some(&admin)).await;
        assert_eq!(st, 204, "{b}");
        (kid, s)
    };
    assert_eq!(chat(&c, &servers[0].base, &esecret, words("x", 1)).await.0, 401, "refused at once where revoked");
    let revoked_at = Instant::now();
    for srv in &servers[1..] {
        loop {
            let (s, _) = chat(&c, &srv.base, &esecret, words("x", 1)).await;
            if s == 401 {
                eprintln!("revocation seen by another instance after {:?}", revoked_at.elapsed());
                break;
            }
            assert_eq!(s, 200);
            assert!(revoked_at.elapsed() < Duration::from_secs(2), "still accepted after 2 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(servers);
    drop_db(&name);
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_follow_the_plan_the_bundle_month_and_deprovisioning() {
    let up = FakeUpstream::spawn().await.unwrap();
    let dir = support::temp_dir("rt");
    let mut args = serve_files(&up, &dir);
    args.extend(["--manual-clock".to_string(), "2026-01-01T00:00:00Z".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let db = format!("sqlite://{}/genai.db", dir.display());
    let srv = TestServer::start_on(&db, dir.clone(), &args);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Small", "small")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let c = reqwest::Client::new();
    let base = srv.base.as_str();
    for _ in 0..6 {
        assert_eq!(chat(&c, base, &secret, words("go", 16)).await.0, 200);
    }
    let auth = bearer(&secret);
    let (s, h, t) = raw(&c, format!("{base}/v1/chat/completions"), (auth.0, &auth.1), Some(words("go", 16))).await;
    assert_eq!(s, 429, "{t}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 31 * 24 * 3600, "seconds to the bundle month's end");
    let e: Value = serde_json::from_str(&t).unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("100") && message.contains("2026-02-01T00:00:00"), "names quota and refill: {message}");
    // Without max_tokens the call reserves what remains (4) and the upstream is told so; then
    // no output is left at all.
    let bare = json!({"model": MODEL, "messages": [{"role": "user", "content": "go"}]});
    let (s, a) = chat(&c, base, &secret, bare.clone()).await;
    assert_eq!((s, a["usage"]["completion_tokens"].as_i64()), (200, Some(4)), "{a}");
    let (s, a) = chat(&c, base, &secret, bare).await;
    assert_eq!((s, a["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{a}");

    // An upgrade raises the quota at once (4,000 output tokens on medium).
    let (s, b) =
        srv.call("POST", &format!("/api/v1/resources/{rid}/plan"), Some(json!({"plan": "medium"})), Some(&admin)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(chat(&c, base, &secret, words("go", 16)).await.0, 200);
    // Without max_tokens the reservation is min(4096, what remains) and the upstream is told so.
    let (s, a) =
        chat(&c, base, &secret, json!({"model": MODEL, "messages": [{"role": "user", "content": "go"}]})).await;
    assert_eq!((s, a["usage"]["completion_tokens"].as_i64()), (200, Some(16)), "{a}");
    assert_eq!(used(&srv, &admin, &rid).await, (9, 132, 9));

    // A new bundle month starts from zero.
    srv.set_clock("2026-02-01T00:00:01Z").await;
    assert_eq!(used(&srv, &admin, &rid).await, (0, 0, 0));
    assert_eq!(chat(&c, base, &secret, words("go", 16)).await.0, 200);
    assert_eq!(used(&srv, &admin, &rid).await, (1, 16, 1));

    // A scheduled deprovisioning: served until it takes effect, refused from that instant.
    let (s, b) = srv.call("POST", &format!("/api/v1/resources/{rid}/deprovision"), None, Some(&admin)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(chat(&c, base, &secret, words("go", 16)).await.0, 200);
    srv.set_clock("2026-03-01T00:00:01Z").await;
    let (s, a) = chat(&c, base, &secret, words("go", 16)).await;
    assert_eq!((s, a["error"]["type"].as_str()), (401, Some("authentication_error")), "{a}");
}

#[test]
fn a_bad_providers_file_stops_the_start_naming_the_line() {
    let dir = support::temp_dir("rt-bad");
    let providers = dir.join("providers.toml");
    std::fs::write(&providers, "[providers.x]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[models.\"no-such-model\"]\nprovider = \"x\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_genai"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &format!("sqlite://{}/g.db", dir.display())])
        .arg("--providers")
        .arg(&providers)
        .env("GENAI_OPERATOR_TOKEN", "op-0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--providers") && err.contains("line 5") && err.contains("no-such-model"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_before_any_output_is_charged_nothing() {
    let up = FakeUpstream::spawn().await.unwrap();
    let srv = start(&up, None);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Bot", "large")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    up.set_mode(Mode::new("slow", 1.0));
    for stream in [false, true] {
        let mut body = words("one two", 4);
        body["stream"] = json!(stream);
        let c = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        let res = c.post(format!("{}/v1/chat/completions", srv.base)).bearer_auth(&secret).json(&body).send().await;
        assert!(res.is_err() || res.unwrap().bytes().await.is_err(), "the client gave up first");
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(used(&srv, &admin, &rid).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_no_provider_serves_answers_503_naming_it() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Bot", "small")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    let c = reqwest::Client::new();
    let (s, a) = chat(&c, &srv.base, &secret, words("hi", 2)).await;
    assert_eq!((s, a["error"]["code"].as_str()), (503, Some("model_not_served")), "{a}");
    let m = a["error"]["message"].as_str().unwrap();
    assert!(m.contains(MODEL) && m.contains("--providers"), "{m}");
    let conv = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let (s, _, t) =
        raw(&c, format!("{}/runtime/v1/resources/{rid}/converse", srv.base), ("x-api-key", &secret), Some(conv)).await;
    assert_eq!(s, 503, "{t}");
    assert_eq!(used(&srv, &admin, &rid).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_times_out_answers_504_and_is_charged_nothing() {
    let up = FakeUpstream::spawn().await.unwrap();
    let dir = support::temp_dir("rt");
    let args = serve_files_with_timeout(&up, &dir, 1);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = TestServer::start_on(&format!("sqlite://{}/genai.db", dir.display()), dir.clone(), &args);
    let (_, admin) = srv.company(500).await;
    let rid = provision(&srv, &admin, text("Bot", "large")).await;
    let (_, secret) = new_key(&srv, &admin, &rid).await;
    up.set_mode(Mode::new("slow", 2.5));
    let c = reqwest::Client::new();
    let (s, a) = chat(&c, &srv.base, &secret, words("a b", 2)).await;
    assert_eq!(
        (s, a["error"]["code"].as_str(), a["error"]["type"].as_str()),
        (504, Some("upstream_timeout"), Some("server_error")),
        "{a}"
    );
    assert_eq!(used(&srv, &admin, &rid).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_of_an_instance_killed_mid_call_returns_to_the_pool_after_it_expires() {
    let Some((db, name)) = postgres_db("expiry") else {
        require_postgres();
        return;
    };
    let up = FakeUpstream::spawn().await.unwrap();
    let a = start(&up, Some(&db));
    let b = start(&up, Some(&db));
    let (_, admin) = b.company(500).await;
    let rid = provision(&b, &admin, text("Shared", "small")).await;
    let (_, secret) = new_key(&b, &admin, &rid).await;
    // A call on instance A holds 80 of the 100 output tokens while the upstream is slow.
    up.set_mode(Mode::new("slow", 3.0));
    let (base_a, s2) = (a.base.clone(), secret.clone());
    let in_flight = tokio::spawn(async move { chat(&reqwest::Client::new(), &base_a, &s2, words("x", 80)).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(a.kill()); // SIGKILL: no shutdown, the lease stays in the database.
    let (s, _) = in_flight.await.unwrap();
    assert_eq!(s, 0, "the killed instance answered nothing");
    up.set_mode(Mode::ok());
    let c = reqwest::Client::new();
    let (s, e) = chat(&c, &b.base, &secret, words("x", 80)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "the dead instance's lease still counts: {e}"
    );
    let killed_at = Instant::now();
    // The lease expires 30 s after its last renewal; then the quota is whole again.
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (s, _) = chat(&c, &b.base, &secret, words("x", 80)).await;
        if s == 200 {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(40), "the lease never expired");
    }
    eprintln!("a dead instance's lease came back after {:?}", killed_at.elapsed());
    assert_eq!(
        used(&b, &admin, &rid).await,
        (1, 16, 1),
        "the killed call was charged nothing (the fake answers 16 tokens at most)"
    );
    drop(b);
    drop_db(&name);
}
