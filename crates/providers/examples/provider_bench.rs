//! Per-request cost of the provider layer: how much a call through `OpenAiProvider` costs over
//! the bare HTTP exchange with the same upstream, on one core.
//!
//! ```text
//! cargo run --release -p genai-providers --example provider_bench -- [--calls N] [--runs R]
//!     [--concurrency C] [--upstream http://127.0.0.1:PORT/v1]
//! ```
//!
//! Without `--upstream` the static fake (`genai-fake-upstream --static`) runs in this process on
//! a thread of its own; the client side runs on a single-threaded runtime on the main thread, so
//! its CPU time (read from /proc/thread-self/stat) is the cost of everything the client does per
//! call. Paths compared, each against the same upstream:
//!
//! - `hyper (floor)`: hyper-util's pooled client sending a pre-serialised body and reading the
//!   answer's bytes: the HTTP exchange alone;
//! - `provider.chat`: the full provider path (model substitution, serialisation, the exchange,
//!   parsing the answer and its usage);
//! - `reqwest + serde`: the same work with reqwest instead of hyper-util (why the provider uses
//!   hyper-util);
//! - `provider.chat_stream`: a streamed call (20 SSE events) read to its end.
//!
//! Then the wire layer alone, without a network: parsing a client request, estimating its
//! reservation, serialising it for the upstream, parsing the answer.
//!
//! Every figure is the median of `--runs` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use genai_providers::openai::{OpenAiProvider, OpenAiSettings};
use genai_providers::Provider;
use genai_wire::openai::{ChatRequest, ChatResponse};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser, Debug)]
struct Args {
    /// Calls per run.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Calls in flight for the throughput figures.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// An upstream to use instead of the in-process static fake.
    #[arg(long)]
    upstream: Option<String>,
    /// Only the wire layer's figures (no network).
    #[arg(long)]
    wire_only: bool,
    /// Leave out the streamed path (for an upstream that cannot stream, e.g. nginx `return 200`).
    #[arg(long)]
    no_stream: bool,
}

const REQUEST: &str = r#"{"model":"claude-sonnet-4.6","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":64,"temperature":0.7}"#;

/// CPU seconds this thread has used (user + system), from /proc/thread-self/stat.
fn thread_cpu(ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / ticks_per_second
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One path under test: a call, as a boxed future factory.
type Call = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

struct Figures {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
    cpu_us_per_call: f64,
}

async fn sequential(call: &Call, n: usize) -> (f64, f64) {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    (lat[n / 2], lat[n * 99 / 100])
}

async fn concurrent(call: &Call, n: usize, c: usize, tps: f64) -> (f64, f64) {
    let left = Arc::new(AtomicUsize::new(n));
    let cpu0 = thread_cpu(tps);
    let t = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let call = Arc::clone(call);
            let left = Arc::clone(&left);
            tokio::spawn(async move {
                while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1)).is_ok() {
                    call().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = thread_cpu(tps) - cpu0;
    (n as f64 / wall, cpu / n as f64 * 1e6)
}

async fn measure(call: Call, args: &Args, tps: f64) -> Figures {
    // Warm up: connections open, allocator and caches settled.
    for _ in 0..1000 {
        call().await;
    }
    let (mut p50, mut p99, mut rate, mut cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.runs {
        let (a, b) = sequential(&call, args.calls / 4).await;
        p50.push(a);
        p99.push(b);
        let (r, c) = concurrent(&call, args.calls, args.concurrency, tps).await;
        rate.push(r);
        cpu.push(c);
    }
    Figures { p50_us: median(p50), p99_us: median(p99), calls_per_s: median(rate), cpu_us_per_call: median(cpu) }
}

fn wire_only(runs: usize) -> Vec<(&'static str, f64)> {
    let answer = genai_fake_upstream::behaviour::static_chat();
    let n = 200_000;
    let mut out = Vec::new();
    let mut time = |name: &'static str, f: &mut dyn FnMut()| {
        let mut v = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            v.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        out.push((name, median(v)));
    };
    time("parse client request", &mut || {
        std::hint::black_box(genai_wire::parse_request::<ChatRequest>(REQUEST.as_bytes()).unwrap());
    });
    let req: ChatRequest = genai_wire::parse_request(REQUEST.as_bytes()).unwrap();
    time("validate + estimate", &mut || {
        req.validate().unwrap();
        std::hint::black_box(genai_wire::estimate::chat(&req));
    });
    time("serialise for upstream", &mut || {
        std::hint::black_box(serde_json::to_vec(&req).unwrap());
    });
    time("parse upstream answer", &mut || {
        std::hint::black_box(serde_json::from_slice::<ChatResponse>(&answer).unwrap());
    });
    out
}

fn main() {
    let args = Args::parse();
    if args.wire_only {
        print_wire(args.runs);
        return;
    }
    let tps = clock_ticks();
    let (_fake_thread, base_url) = match &args.upstream {
        Some(url) => (None, url.clone()),
        None => {
            let (tx, rx) = std::sync::mpsc::channel();
            let handle = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    let up = genai_fake_upstream::FakeUpstream::spawn_static().await.unwrap();
                    tx.send(up.base_url().to_owned()).unwrap();
                    up.run_forever().await;
                });
            });
            (Some(handle), rx.recv().unwrap())
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "upstream {base_url}; {} calls x {} runs; concurrency {}; medians",
        args.calls, args.runs, args.concurrency
    );
    println!("{:<24} {:>9} {:>9} {:>11} {:>13}", "path", "p50 us", "p99 us", "calls/s", "client cpu us");
    rt.block_on(async {
        let settings = OpenAiSettings::new(&base_url, Some("sk-bench"), Duration::from_secs(30)).unwrap();
        let provider = Arc::new(OpenAiProvider::new("bench", settings));
        let template: ChatRequest = genai_wire::parse_request(REQUEST.as_bytes()).unwrap();
        let chat_uri: http::Uri = format!("{base_url}/chat/completions").parse().unwrap();

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let raw: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let body = Bytes::from_static(REQUEST.as_bytes());
        let floor: Call = {
            let uri = chat_uri.clone();
            Arc::new(move || {
                let (raw, uri, body) = (raw.clone(), uri.clone(), body.clone());
                Box::pin(async move {
                    let mut req = http::Request::new(Full::new(body));
                    *req.method_mut() = http::Method::POST;
                    *req.uri_mut() = uri;
                    req.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
                    req.headers_mut().insert("authorization", http::HeaderValue::from_static("Bearer sk-bench"));
                    let resp = raw.request(req).await.unwrap();
                    std::hint::black_box(resp.into_body().collect().await.unwrap().to_bytes());
                })
            })
        };
        let chat: Call = {
            let (p, t) = (Arc::clone(&provider), template.clone());
            Arc::new(move || {
                let (p, t) = (Arc::clone(&p), t.clone());
                Box::pin(async move {
                    let a = p.chat("fake-static", t).await.unwrap();
                    assert!(a.usage().is_some());
                })
            })
        };
        let reqwest_client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
        let reqwest_call: Call = {
            let (c, t, url) = (reqwest_client, template.clone(), chat_uri.to_string());
            Arc::new(move || {
                let (c, mut t, url) = (c.clone(), t.clone(), url.clone());
                Box::pin(async move {
                    t.model = "fake-static".into();
                    let body = serde_json::to_vec(&t).unwrap();
                    let r = c
                        .post(&url)
                        .header("content-type", "application/json")
                        .bearer_auth("sk-bench")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let bytes = r.bytes().await.unwrap();
                    let a: ChatResponse = serde_json::from_slice(&bytes).unwrap();
                    assert!(a.usage.is_some());
                })
            })
        };
        let stream: Call = {
            let (p, mut t) = (Arc::clone(&provider), template.clone());
            t.stream = Some(true);
            Arc::new(move || {
                let (p, t) = (Arc::clone(&p), t.clone());
                Box::pin(async move {
                    let mut s = p.chat_stream("fake-static", t).await.unwrap();
                    while let Some(c) = s.next().await {
                        std::hint::black_box(c.unwrap());
                    }
                    assert!(s.usage().is_some());
                })
            })
        };
        let mut paths = vec![("hyper (floor)", floor), ("provider.chat", chat), ("reqwest + serde", reqwest_call)];
        if !args.no_stream {
            paths.push(("provider.chat_stream", stream));
        }
        for (name, call) in paths {
            let f = measure(call, &args, tps).await;
            println!(
                "{name:<24} {:>9.1} {:>9.1} {:>11.0} {:>13.1}",
                f.p50_us, f.p99_us, f.calls_per_s, f.cpu_us_per_call
            );
        }
    });
    println!();
    print_wire(args.runs);
}

fn print_wire(runs: usize) {
    println!("wire layer alone (ns per call, median of {runs} runs)");
    for (name, ns) in wire_only(runs) {
        println!("{name:<24} {ns:>9.0}");
    }
}
