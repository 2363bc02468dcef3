//! Load generator for the control-plane benchmark.
//!
//! Mutating workload: `--clients` concurrent clients, each repeating the life of a resource —
//! provision, upgrade (small → medium), schedule a downgrade, deprovision — for `--seconds`, with
//! a unique display name per resource. Every answer is checked (a 4xx/5xx counts as an error,
//! not as throughput). Then the listing workload: the company is filled to `--list-resources`
//! live resources and the first page (`limit=100`) and the whole list are timed. Prints
//! operations/s and latency percentiles. Used by `bench/control-plane.sh`; not a test.

use clap::Parser;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL(s) of the server(s); clients are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    server: Vec<String>,
    /// The operator token the server was started with.
    #[arg(long, env = "GENAI_OPERATOR_TOKEN")]
    operator: String,
    /// Concurrent clients of the mutating workload.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Offered load of the mutating workload in calls/s across all clients (0 = as fast as the
    /// server answers, a saturated closed loop). Paced latencies are measured from each call's
    /// scheduled start, so time spent queueing behind a slow call counts (no coordinated omission).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Companies the mutating workload's clients are spread over (1: every write shares one
    /// company's balance row, the worst case for row-lock contention).
    #[arg(long, default_value_t = 1)]
    companies: usize,
    /// Duration of the mutating workload.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Live resources to fill the listing company with (0 skips the listing workload).
    #[arg(long, default_value_t = 10_000)]
    list_resources: usize,
    /// Resources of the company whose web overview is timed (0 skips it).
    #[arg(long, default_value_t = 1_000)]
    ui_resources: usize,
    /// Skip the mutating workload.
    #[arg(long)]
    skip_mutating: bool,
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}

async fn company(api: &Api, operator: &str, tokens: i64) -> Result<String, String> {
    Ok(company_with_login(api, operator, tokens).await?.0)
}

/// A company with an admin who has an API token and a password; answers (token, email).
async fn company_with_login(api: &Api, operator: &str, tokens: i64) -> Result<(String, String), String> {
    let c = api
        .call(reqwest::Method::POST, "/api/v1/operator/companies", operator, Some(json!({"name": "Bench Co"})))
        .await?;
    let id = c["id"].as_str().ok_or("no company id")?.to_string();
    api.call(
        reqwest::Method::POST,
        &format!("/api/v1/operator/companies/{id}/token-grants"),
        operator,
        Some(json!({"tokens": tokens})),
    )
    .await?;
    let email = format!("bench-{id}@example.com").to_lowercase();
    let u = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/operator/companies/{id}/users"),
            operator,
            Some(json!({"name": "Bench Admin", "email": email, "role": "company_admin", "password": PASSWORD})),
        )
        .await?;
    let t = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/operator/users/{}/api-tokens", u["id"].as_str().unwrap_or_default()),
            operator,
            None,
        )
        .await?;
    Ok((t["token"].as_str().ok_or("no token")?.to_string(), email))
}

const PASSWORD: &str = "bench password 123";

/// The web overview of a company with `n` resources: logs in through the form like a browser
/// and times `GET /resources` (server-side rendering of every row, plus the balance and
/// eligibility it shows).
async fn ui_overview(args: &Args, api: Arc<Api>) -> Result<(), String> {
    let (token, email) = company_with_login(&api, &args.operator, 1_000_000_000_000).await?;
    let token = Arc::new(token);
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (api, token) = (api.clone(), token.clone());
        let n = args.ui_resources / 8 + usize::from(c < args.ui_resources % 8);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                api.call(reqwest::Method::POST, "/api/v1/resources", &token, Some(body(&format!("ui{c}-{i}")))).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(|e| e.to_string())?;
    let login = http.get(format!("{}/login", api.base)).send().await.map_err(|e| e.to_string())?;
    let login_cookie = set_cookie(&login, "genai_login_csrf").ok_or("no login cookie")?;
    let page = login.text().await.map_err(|e| e.to_string())?;
    let csrf = page.split("name=\"csrf_token\" value=\"").nth(1).and_then(|s| s.split('"').next()).ok_or("no csrf")?;
    let resp = http
        .post(format!("{}/login", api.base))
        .header("cookie", format!("genai_login_csrf={login_cookie}"))
        .form(&[("email", email.as_str()), ("password", PASSWORD), ("csrf_token", csrf)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let session = set_cookie(&resp, "genai_session").ok_or("login failed")?;
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut size = 0;
    for _ in 0..100 {
        let t = Instant::now();
        let r = http
            .get(format!("{}/resources?type=text_generation", api.base))
            .header("cookie", format!("genai_session={session}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("overview answered {}", r.status()));
        }
        size = r.bytes().await.map_err(|e| e.to_string())?.len();
        lat.push(t.elapsed());
    }
    println!("web overview: {} resources, {} kB of HTML", args.ui_resources, size / 1000);
    report("GET /resources (web overview)", lat, start.elapsed());
    Ok(())
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_string))
        .filter(|v| !v.is_empty())
}

fn body(name: &str) -> Value {
    json!({"type": "text_generation", "display_name": name, "environment": "test", "region": "eu-central-1",
           "cross_region_inference": true, "model": "claude-sonnet-4.6", "plan": "small",
           "user": {"name": "Bench", "email": "bench@example.com"}})
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(label: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    println!(
        "{label:<28} n={:<7} {:>8.0} ops/s   p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

async fn mutating(args: &Args, apis: &[Arc<Api>]) -> Result<(), String> {
    let mut tokens = Vec::new();
    for _ in 0..args.companies.max(1) {
        tokens.push(Arc::new(company(&apis[0], &args.operator, 1_000_000_000_000).await?));
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Each client issues one call every `interval` (when paced), offset so clients interleave.
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(args.clients as f64 / args.rate as f64));
    for c in 0..args.clients {
        let api = apis[c % apis.len()].clone();
        let token = tokens[c % tokens.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat: [Vec<Duration>; 4] = Default::default();
            let mut errors = Vec::new();
            let mut n = 0u64;
            let mut next = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / 16.0));
            // The instant the next call is due: now when saturating, on the schedule when paced.
            let mut due = move || match interval {
                None => Instant::now(),
                Some(i) => {
                    let t = next;
                    next += i;
                    t
                }
            };
            while Instant::now() < deadline {
                n += 1;
                let t = due();
                tokio::time::sleep_until(t.into()).await;
                let r = match api
                    .call(reqwest::Method::POST, "/api/v1/resources", &token, Some(body(&format!("b{c}-{n}"))))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                lat[0].push(t.elapsed());
                let id = r["id"].as_str().unwrap_or_default().to_string();
                let steps: [(String, Option<Value>); 3] = [
                    (format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "medium"}))),
                    (format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "small"}))),
                    (format!("/api/v1/resources/{id}/deprovision"), None),
                ];
                for (i, (path, b)) in steps.into_iter().enumerate() {
                    let t = due();
                    tokio::time::sleep_until(t.into()).await;
                    match api.call(reqwest::Method::POST, &path, &token, b).await {
                        Ok(_) => lat[i + 1].push(t.elapsed()),
                        Err(e) => errors.push(e),
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all: [Vec<Duration>; 4] = Default::default();
    let mut errors = Vec::new();
    for t in tasks {
        let (lat, errs) = t.await.map_err(|e| e.to_string())?;
        for (a, l) in all.iter_mut().zip(lat) {
            a.extend(l);
        }
        errors.extend(errs);
    }
    let elapsed = start.elapsed();
    let offered = if args.rate > 0 { format!("{} calls/s offered", args.rate) } else { "saturated".into() };
    println!(
        "mutating workload: {} clients, {} companies, {offered}, {:.1} s, {} errors",
        args.clients,
        args.companies.max(1),
        elapsed.as_secs_f64(),
        errors.len()
    );
    if let Some(e) = errors.first() {
        println!("  first error: {e}");
    }
    let names = ["provision", "upgrade", "downgrade (scheduled)", "deprovision (scheduled)"];
    let mut total = Vec::new();
    for (name, lat) in names.iter().zip(all) {
        total.extend(lat.iter().copied());
        report(name, lat, elapsed);
    }
    report("all mutating calls", total, elapsed);
    Ok(())
}

async fn listing(args: &Args, api: Arc<Api>) -> Result<(), String> {
    let token = Arc::new(company(&api, &args.operator, 1_000_000_000_000).await?);
    let fill = Instant::now();
    let per_client = args.list_resources.div_ceil(16);
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (api, token) = (api.clone(), token.clone());
        let n = per_client.min(args.list_resources.saturating_sub(c * per_client));
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                api.call(reqwest::Method::POST, "/api/v1/resources", &token, Some(body(&format!("l{c}-{i}")))).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    println!("listing workload: {} resources created in {:.1} s", args.list_resources, fill.elapsed().as_secs_f64());
    for (label, path, n) in [
        ("first page (limit=100)", "/api/v1/resources?type=text_generation&limit=100", 200),
        ("whole list (no limit)", "/api/v1/resources?type=text_generation", 20),
    ] {
        let mut lat = Vec::new();
        let start = Instant::now();
        let mut count = 0;
        for _ in 0..n {
            let t = Instant::now();
            let page = api.call(reqwest::Method::GET, path, &token, None).await?;
            lat.push(t.elapsed());
            count = page["resources"].as_array().map_or(0, Vec::len);
        }
        report(&format!("{label} ({count} rows)"), lat, start.elapsed());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap_or_default();
    let apis: Vec<Arc<Api>> = args
        .server
        .iter()
        .map(|s| Arc::new(Api { http: http.clone(), base: s.trim_end_matches('/').into() }))
        .collect();
    if !args.skip_mutating {
        if let Err(e) = mutating(&args, &apis).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.list_resources > 0 {
        if let Err(e) = listing(&args, apis[0].clone()).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.ui_resources > 0 {
        if let Err(e) = ui_overview(&args, apis[0].clone()).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
