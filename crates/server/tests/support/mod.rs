//! Test support: starts the real `genai` binary on port 0 with a fresh database and talks to it
//! over HTTP, like any client would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("genai-{tag}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// One running server.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The operator token it was started with.
    pub operator: String,
    /// Its database URL.
    pub database: String,
    /// Scratch directory.
    pub dir: PathBuf,
    client: reqwest::Client,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestServer {
    /// A server on a fresh SQLite database.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = temp_dir("srv");
        let database = format!("sqlite://{}/genai.db", dir.display());
        Self::start_on(&database, dir, extra)
    }

    /// A server on the given database.
    pub fn start_on(database: &str, dir: PathBuf, extra: &[&str]) -> TestServer {
        // At least 32 characters: the server refuses shorter operator tokens.
        let operator =
            format!("op-{:032}", u64::from(COUNTER.fetch_add(1, Ordering::SeqCst)) + u64::from(std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_genai"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("GENAI_OPERATOR_TOKEN", &operator)
            .env("GENAI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn genai serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("GenAI Resources listening on ") {
                        break addr.trim().to_string();
                    }
                }
                _ => panic!("genai serve exited before listening: {:?}", child.wait()),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        TestServer { child, base, operator, database: database.to_string(), dir, client: reqwest::Client::new() }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (as a crash would: SIGKILL).
    pub fn kill(mut self) -> (String, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.database.clone(), self.dir.clone())
    }

    /// Sends a request; answers (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
        self.call_with(method, path, body, token, &[]).await
    }

    /// Sends a request with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends raw bytes as the body.
    pub async fn call_raw(&self, method: &str, path: &str, body: &str, token: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null))
    }

    /// As the operator.
    pub async fn op(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.operator.clone();
        self.call(method, path, body, Some(&token)).await
    }

    /// Moves the manual clock.
    pub async fn set_clock(&self, now: &str) -> Value {
        let (s, b) = self.op("POST", "/api/v1/operator/clock", Some(json!({"now": now}))).await;
        assert_eq!(s, 200, "moving the clock to {now}: {b}");
        b
    }

    /// A company with `tokens` granted and one company admin; answers (company id, admin token).
    pub async fn company(&self, tokens: i64) -> (String, String) {
        let (s, c) = self
            .op(
                "POST",
                "/api/v1/operator/companies",
                Some(json!({"name": "Company", "price_list": "FY21", "accounts": 1, "enterprise_subscriptions": 1})),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        let id = c["id"].as_str().expect("company id").to_string();
        if tokens > 0 {
            let (s, g) = self
                .op("POST", &format!("/api/v1/operator/companies/{id}/token-grants"), Some(json!({"tokens": tokens})))
                .await;
            assert_eq!(s, 201, "{g}");
        }
        let token = self.user(&id, "company_admin").await;
        (id, token)
    }

    /// A user of a company with an API token; answers the token.
    pub async fn user(&self, company: &str, role: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let email = format!("user{n}-{}@example.com", std::process::id());
        let (s, u) = self
            .op(
                "POST",
                &format!("/api/v1/operator/companies/{company}/users"),
                Some(json!({"name": "Test User", "email": email, "role": role})),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        let (s, t) = self
            .op("POST", &format!("/api/v1/operator/users/{}/api-tokens", u["id"].as_str().expect("id")), None)
            .await;
        assert_eq!(s, 201, "{t}");
        t["token"].as_str().expect("token").to_string()
    }

    /// The balance, checked against SPEC §3's invariants as seen from outside.
    pub async fn ledger(&self, token: &str) -> Value {
        let (s, t) = self.call("GET", "/api/v1/tokens", None, Some(token)).await;
        assert_eq!(s, 200, "{t}");
        let (total, allocated, available) =
            (t["total"].as_i64().unwrap(), t["allocated"].as_i64().unwrap(), t["available"].as_i64().unwrap());
        assert!(available >= 0, "negative balance {t}");
        assert_eq!(total, available + allocated, "{t}");
        let (_, list) = self.call("GET", "/api/v1/resources?include_deprovisioned=true", None, Some(token)).await;
        let held: i64 = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] != "deprovisioned")
            .map(|r| r["cloud_tokens"].as_i64().unwrap())
            .sum();
        assert_eq!(held, allocated, "allocated must equal the live resources' plans: {t}");
        t
    }
}

/// A valid text-generation provisioning body.
pub fn text(name: &str, plan: &str) -> Value {
    json!({"type": "text_generation", "display_name": name, "environment": "test", "region": "eu-central-1",
           "cross_region_inference": true, "model": "claude-sonnet-4.6", "plan": plan,
           "user": {"name": "Ada Lovelace", "email": "ada@example.com"}})
}

/// A valid embeddings provisioning body.
pub fn embeddings(name: &str, plan: &str) -> Value {
    json!({"type": "embeddings_generation", "display_name": name, "environment": "test", "region": "eu-central-1",
           "cross_region_inference": false, "model": "cohere-embed-english-v3", "plan": plan,
           "user": {"name": "Grace Hopper", "email": "grace@example.com"}})
}

/// A valid knowledge-base provisioning body.
pub fn knowledge_base(name: &str, embeddings_id: &str) -> Value {
    json!({"type": "knowledge_base", "display_name": name, "environment": "production", "region": "eu-central-1",
           "cross_region_inference": false, "plan": "standard", "embeddings_resource_id": embeddings_id,
           "user": {"name": "Alan Turing", "email": "alan@example.com"}})
}
