//! The `genai` CLI against a real server, both as subprocesses.
//!
//! The server is the real binary (`genai serve` on a free port, a fresh SQLite database in a
//! temporary directory, a manual clock starting 2026-01-05T00:00:00Z, a random operator token);
//! the CLI is the same binary run once per command, exactly as a person or a script would. The
//! lifecycle test walks one company through everything the CLI offers — operator setup, the
//! Resource Specification, provisioning (with an idempotent retry), listing, plan changes,
//! deprovisioning and its cancellation, balances and transactions, the manual clock applying a
//! due deprovisioning — and checks the error paths: field-level validation messages, eligibility
//! checks, a wrong token, unknown ids, conflicts. A second test covers API tokens (a user's own
//! and the operator's view), disabling users and the paged histories. A third needs no server:
//! the built-in catalog, an unreachable server, a missing token and clap's usage errors.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_genai");
const START: &str = "2026-01-05T00:00:00Z";

/// A random-enough hex string for directory names and tokens (no extra crates: the std hasher
/// is randomly seeded per process, mixed with the time and the process id).
fn random_hex() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u8 {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(i);
        h.write_u32(std::process::id());
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("genai-cli-test-{}", random_hex()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}")).port()
}

/// A running `genai serve`, killed on drop (its log is printed if the test failed).
struct Server {
    child: Child,
    url: String,
    operator_token: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new();
        let port = free_port();
        let operator_token = format!("op-{}", random_hex());
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("create log: {e}"));
        let log_err = log_file.try_clone().unwrap_or_else(|e| panic!("clone log: {e}"));
        let database = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["serve", "--listen", &listen, "--database", &database, "--manual-clock", START])
            .env("GENAI_OPERATOR_TOKEN", &operator_token)
            .env_remove("GENAI_TOKEN")
            .env_remove("GENAI_SERVER")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN} serve: {e}"));
        let mut server = Server { child, url: format!("http://{listen}"), operator_token, log, _dir: dir };
        server.wait_until_healthy(&listen);
        server
    }

    fn wait_until_healthy(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if healthz_status(addr) == Some(200) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status} before it was ready:\n{}", self.log_text());
            }
            if Instant::now() > deadline {
                panic!("the server did not answer GET /healthz with 200 within 60 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the CLI against this server with the given token (none: no token at all).
    fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        cli(&self.url, token, args)
    }

    /// Runs an operator command; it must succeed.
    fn operator(&self, args: &[&str]) -> String {
        let mut full = vec!["operator"];
        full.extend_from_slice(args);
        ok(&self.cli(Some(&self.operator_token), &full))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log_text());
        }
    }
}

/// `GET /healthz` over a raw socket (the test needs no HTTP client for one status line).
fn healthz_status(addr: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs `genai <args>` with GENAI_SERVER=`server` and GENAI_TOKEN=`token` (nothing inherited).
fn cli(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("GENAI_SERVER", server)
        .env_remove("GENAI_TOKEN")
        .env_remove("GENAI_OPERATOR_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("GENAI_TOKEN", token);
    }
    command.output().unwrap_or_else(|e| panic!("run genai {args:?}: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command succeeded; its stdout.
#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "expected success, got {}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

/// The command failed with exit code `code`; its stderr.
#[track_caller]
fn fails(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "expected exit {code}\nstdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
    stderr(o)
}

/// The command succeeded and printed JSON; the JSON.
#[track_caller]
fn json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[track_caller]
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

#[track_caller]
fn n(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or_else(|| panic!("no integer `{key}` in {v}"))
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
}

#[test]
fn the_cli_drives_a_company_through_the_resource_lifecycle() {
    let server = Server::start();

    // --- Operator setup: company, tokens, admin user, API token.
    let company = json(
        &server
            .cli(Some(&server.operator_token), &["operator", "companies", "create", "--name", "Acme Corp", "--json"]),
    );
    let company_id = s(&company, "id").to_string();
    let out =
        server.operator(&["grant", &company_id, "500", "--note", "initial order", "--idempotency-key", "grant-1"]);
    assert_contains(&out, "Granted 500 cloud tokens");
    assert_contains(&out, "Available");
    let user = json(&server.cli(
        Some(&server.operator_token),
        &[
            "operator",
            "users",
            "create",
            &company_id,
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.com",
            "--role",
            "company_admin",
            "--json",
        ],
    ));
    let user_id = s(&user, "id").to_string();
    let token_out = server
        .cli(Some(&server.operator_token), &["operator", "tokens", "create", &user_id, "--description", "cli test"]);
    let token = ok(&token_out).trim().to_string();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace), "token line: {token:?}");
    assert_contains(&stderr(&token_out), "shown only once");
    let token = Some(token.as_str());

    // --- Balance and catalog as the admin.
    let out = ok(&server.cli(token, &["tokens"]));
    assert_contains(&out, "Total");
    assert_contains(&out, "500");
    let out = ok(&server.cli(token, &["catalog"]));
    assert_contains(&out, "claude-sonnet-4.6");
    assert_contains(&out, "eu-central-1");
    let catalog = json(&server.cli(token, &["catalog", "--json"]));
    assert!(catalog.get("models").and_then(Value::as_array).is_some_and(|m| !m.is_empty()), "{catalog}");

    // --- The Resource Specification stores nothing.
    let text_args = [
        "resources",
        "provision",
        "--type",
        "text_generation",
        "--name",
        "Support bot",
        "--environment",
        "production",
        "--region",
        "eu-central-1",
        "--model",
        "claude-sonnet-4.6",
        "--plan",
        "medium",
        "--user-name",
        "Ada Lovelace",
        "--user-email",
        "ada@example.com",
    ];
    let mut dry = text_args.to_vec();
    dry.extend(["--dry-run", "--json"]);
    let spec = json(&server.cli(token, &dry));
    assert_eq!(n(&spec, "cloud_tokens"), 60, "{spec}");
    assert_eq!(n(&spec, "available_before"), 500, "{spec}");
    assert_eq!(n(&spec, "available_after"), 440, "{spec}");
    let mut dry_table = text_args.to_vec();
    dry_table.push("--dry-run");
    assert_contains(&ok(&server.cli(token, &dry_table)), "nothing was provisioned");
    assert_eq!(n(&json(&server.cli(token, &["tokens", "--json"])), "available"), 500);

    // --- Provision (cross-region inference taken from the catalog: claude-sonnet-4.6 is cri only
    // in eu-central-1), and an idempotent retry answers the same resource.
    let mut provision = text_args.to_vec();
    provision.extend(["--idempotency-key", "provision-1", "--json"]);
    let resource = json(&server.cli(token, &provision));
    let id = s(&resource, "id").to_string();
    assert_eq!(s(&resource, "status"), "active");
    assert_eq!(resource.get("cross_region_inference"), Some(&Value::Bool(true)));
    let mut retry = text_args.to_vec();
    retry.extend(["--idempotency-key", "provision-1"]);
    let out = ok(&server.cli(token, &retry));
    assert_contains(&out, &format!("Provisioned Support bot ({id})."));
    let balance = json(&server.cli(token, &["tokens", "--json"]));
    assert_eq!((n(&balance, "total"), n(&balance, "allocated"), n(&balance, "available")), (500, 60, 440), "{balance}");

    // --- List and show.
    let out = ok(&server.cli(token, &["resources", "list"]));
    for needle in
        ["ID", "STATUS", "NAME", "CREATED FOR", "Support bot", "ACTIVE", id.as_str(), "Ada Lovelace <ada@example.com>"]
    {
        assert_contains(&out, needle);
    }
    let listed = json(&server.cli(token, &["resources", "list", "--type", "text_generation", "--json"]));
    let ids: Vec<&str> = listed["resources"].as_array().into_iter().flatten().map(|r| s(r, "id")).collect();
    assert_eq!(ids, vec![id.as_str()]);
    let out = ok(&server.cli(token, &["resources", "show", &id]));
    for needle in ["Support bot", "ACTIVE", "claude-sonnet-4.6", "medium", "production", "Bundle month", "Portal"] {
        assert_contains(&out, needle);
    }

    // --- Plan: upgrade now, downgrade at the next boundary, cancel the downgrade.
    let upgraded = json(&server.cli(token, &["resources", "plan", &id, "large", "--json"]));
    assert_eq!((s(&upgraded, "plan"), n(&upgraded, "cloud_tokens")), ("large", 120), "{upgraded}");
    let out = ok(&server.cli(token, &["resources", "plan", &id, "small"]));
    assert_contains(&out, "Downgrade to small scheduled for 2026-02-05T00:00:00Z");
    assert_contains(&out, "PLAN DOWNGRADE SCHEDULED");
    let shown = json(&server.cli(token, &["resources", "show", &id, "--json"]));
    assert_eq!(s(&shown, "status"), "plan_downgrade_scheduled");
    assert_eq!(n(&json(&server.cli(token, &["tokens", "--json"])), "pending_release"), 90);
    let out = ok(&server.cli(token, &["resources", "cancel-downgrade", &id]));
    assert_contains(&out, "Scheduled downgrade cancelled; the plan stays large.");
    let err = fails(&server.cli(token, &["resources", "plan", &id, "large"]), 1);
    assert_contains(&err, "(plan_unchanged)");
    let err = fails(&server.cli(token, &["resources", "cancel-downgrade", &id]), 1);
    assert_contains(&err, "(no_downgrade_scheduled)");

    // --- Deprovision and cancel it.
    let out = ok(&server.cli(token, &["resources", "deprovision", &id]));
    assert_contains(&out, "Deprovisioning scheduled for 2026-02-05T00:00:00Z");
    let err = fails(&server.cli(token, &["resources", "plan", &id, "medium"]), 1);
    assert_contains(&err, "(deprovisioning_scheduled)");
    let back = json(&server.cli(token, &["resources", "cancel-deprovision", &id, "--json"]));
    assert_eq!(s(&back, "status"), "active");
    let balance = json(&server.cli(token, &["tokens", "--json"]));
    assert_eq!((n(&balance, "allocated"), n(&balance, "available"), n(&balance, "pending_release")), (120, 380, 0));

    // --- Transactions.
    let out = ok(&server.cli(token, &["tokens", "transactions"]));
    for needle in ["AT", "KIND", "grant", "allocate", id.as_str()] {
        assert_contains(&out, needle);
    }
    let txs = json(&server.cli(token, &["tokens", "transactions", "--json"]));
    // A grant and at least the allocations at provisioning and upgrade.
    assert!(txs["transactions"].as_array().is_some_and(|t| t.len() >= 3), "{txs}");

    // --- An embeddings resource (in-region only, given explicitly) and a knowledge base on it.
    let embeddings = json(&server.cli(
        token,
        &[
            "resources",
            "provision",
            "--type",
            "embeddings_generation",
            "--name",
            "Vectors",
            "--environment",
            "test",
            "--region",
            "eu-central-1",
            "--no-cri",
            "--model",
            "cohere-embed-english-v3",
            "--plan",
            "small",
            "--user-name",
            "Ada Lovelace",
            "--user-email",
            "ada@example.com",
            "--json",
        ],
    ));
    let embeddings_id = s(&embeddings, "id").to_string();
    let kb = json(&server.cli(
        token,
        &[
            "resources",
            "provision",
            "--type",
            "knowledge_base",
            "--name",
            "Docs",
            "--environment",
            "test",
            "--region",
            "eu-central-1",
            "--plan",
            "standard",
            "--embeddings-resource",
            &embeddings_id,
            "--user-name",
            "Ada Lovelace",
            "--user-email",
            "ada@example.com",
            "--json",
        ],
    ));
    let kb_id = s(&kb, "id").to_string();
    assert_eq!(s(&kb, "embeddings_resource_id"), embeddings_id);
    assert_contains(&ok(&server.cli(token, &["resources", "show", &kb_id])), &embeddings_id);
    let out = ok(&server.cli(token, &["resources", "list"]));
    for needle in ["Support bot", "Vectors", "Docs"] {
        assert_contains(&out, needle);
    }
    let err = fails(&server.cli(token, &["resources", "plan", &kb_id, "large"]), 1);
    assert_contains(&err, "(plan_change_not_supported)");
    let err = fails(&server.cli(token, &["resources", "deprovision", &embeddings_id]), 1);
    assert_contains(&err, "(embeddings_in_use)");

    // --- Error paths: field-level validation, unknown ids, wrong tokens, eligibility.
    let mut bad = text_args.to_vec();
    bad[5] = "Another bot";
    bad[17] = "not-an-email";
    let err = fails(&server.cli(token, &bad), 1);
    assert_contains(&err, "(validation_failed)");
    assert_contains(&err, "user.email");
    let err = fails(&server.cli(token, &["resources", "show", "no-such-resource"]), 1);
    assert_contains(&err, "(not_found)");
    let err = fails(&server.cli(Some("wrong-token"), &["resources", "list"]), 1);
    assert_contains(&err, "(unauthenticated)");
    fails(&server.cli(token, &["operator", "clock"]), 1);
    let err = fails(&server.cli(None, &["tokens"]), 1);
    assert_contains(&err, "no API token");

    server.operator(&["companies", "update", &company_id, "--price-list", "FY20"]);
    let err = fails(&server.cli(token, &bad[..17].iter().copied().chain(["ada@example.com"]).collect::<Vec<_>>()), 1);
    assert_contains(&err, "(not_eligible)");
    assert_contains(&err, "subscription_plan");
    let updated = json(&server.cli(
        Some(&server.operator_token),
        &["operator", "companies", "update", &company_id, "--price-list", "FY22", "--json"],
    ));
    assert_eq!(s(&updated, "price_list"), "FY22", "{updated}");

    // --- The manual clock applies a due deprovisioning.
    let clock = json(&server.cli(Some(&server.operator_token), &["operator", "clock", "--json"]));
    assert_eq!((s(&clock, "now"), s(&clock, "mode")), (START, "manual"), "{clock}");
    ok(&server.cli(token, &["resources", "deprovision", &id]));
    let out = server.operator(&["clock", "--set", "2026-02-05T00:00:00Z"]);
    assert_contains(&out, "Clock moved to 2026-02-05T00:00:00Z; 1 scheduled change applied.");
    let gone = json(&server.cli(token, &["resources", "show", &id, "--json"]));
    assert_eq!(s(&gone, "status"), "deprovisioned", "{gone}");
    let out = ok(&server.cli(token, &["resources", "list"]));
    assert!(!out.contains("Support bot"), "deprovisioned resources are hidden by default:\n{out}");
    assert_contains(&ok(&server.cli(token, &["resources", "list", "--all"])), "Support bot");
    let err = fails(&server.cli(token, &["resources", "deprovision", &id]), 1);
    assert_contains(&err, "(already_deprovisioned)");
    let balance = json(&server.cli(token, &["tokens", "--json"]));
    assert_eq!((n(&balance, "allocated"), n(&balance, "available")), (54, 446), "{balance}");
    // The clock never moves back.
    let err =
        fails(&server.cli(Some(&server.operator_token), &["operator", "clock", "--set", "2026-01-10T00:00:00Z"]), 1);
    assert!(err.starts_with("error: "), "{err}");
}

/// API tokens (the caller's own and the operator's view), disabling users, and the paged
/// histories, all through the CLI.
#[test]
fn the_cli_manages_api_tokens_users_and_paged_histories() {
    let server = Server::start();
    let op = Some(server.operator_token.as_str());
    let company = json(&server.cli(op, &["operator", "companies", "create", "--name", "Token Co", "--json"]));
    let company_id = s(&company, "id").to_string();
    for i in 1..=7 {
        server.operator(&["grant", &company_id, &i.to_string()]);
    }
    let args = ["users", "create", &company_id, "--name", "Tess", "--email", "tess@example.com", "--role", "admin"];
    let mut full = vec!["operator"];
    full.extend(args);
    full.push("--json");
    let user = json(&server.cli(op, &full));
    let user_id = s(&user, "id").to_string();
    let first = ok(&server.cli(op, &["operator", "tokens", "create", &user_id])).trim().to_string();
    let me = Some(first.as_str());

    // The caller's own tokens.
    let out = server.cli(me, &["api-tokens", "create", "--description", "laptop", "--expires-at", "2026-02-01"]);
    let second = ok(&out).trim().to_string();
    assert!(second.starts_with("genai_"), "{second}");
    assert_contains(&stderr(&out), "shown only once");
    let listed = json(&server.cli(Some(&second), &["api-tokens", "list", "--json"]));
    let tokens = listed["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "{listed}");
    assert_eq!((s(&tokens[0], "description"), s(&tokens[0], "expires_at")), ("laptop", "2026-02-01T00:00:00Z"));
    let laptop_id = s(&tokens[0], "id").to_string();
    let table = ok(&server.cli(me, &["api-tokens", "list"]));
    for needle in ["ID", "LAST USED", "laptop", laptop_id.as_str()] {
        assert_contains(&table, needle);
    }
    assert!(!table.contains(&second), "never the secret:\n{table}");
    let err = fails(&server.cli(me, &["api-tokens", "create", "--expires-at", "2025-12-31"]), 1);
    assert_contains(&err, "expires_at");
    assert_contains(&ok(&server.cli(me, &["api-tokens", "revoke", &laptop_id])), "Revoked API token");
    assert_contains(&fails(&server.cli(Some(&second), &["tokens"]), 1), "unauthenticated");
    let err = fails(&server.cli(me, &["api-tokens", "revoke", "tok_nope"]), 1);
    assert_contains(&err, "not_found");

    // The operator's view of the user's tokens, and disabling the user.
    let listed = json(&server.cli(op, &["operator", "tokens", "list", &user_id, "--json"]));
    let revoked = listed["tokens"].as_array().expect("tokens").iter().find(|t| t["id"] == laptop_id.as_str()).cloned();
    assert!(revoked.is_some_and(|t| t["revoked_at"].is_string()), "{listed}");
    assert_contains(&server.operator(&["users", "disable", &user_id]), "refused");
    assert_contains(&fails(&server.cli(me, &["tokens"]), 1), "unauthenticated");
    let enabled = json(&server.cli(op, &["operator", "users", "enable", &user_id, "--json"]));
    assert_eq!(enabled["disabled"], Value::Bool(false), "{enabled}");
    assert_eq!(n(&json(&server.cli(me, &["tokens", "--json"])), "total"), 28, "works again");
    let third = ok(&server.cli(op, &["operator", "tokens", "create", &user_id])).trim().to_string();
    let listed = json(&server.cli(Some(&third), &["api-tokens", "list", "--json"]));
    let third_id = s(&listed["tokens"][0], "id").to_string();
    assert_contains(&server.operator(&["tokens", "revoke", &third_id]), "Revoked");
    fails(&server.cli(Some(&third), &["tokens"]), 1);

    // Paged histories: one page with a cursor for the next, or everything.
    let page = server.cli(me, &["tokens", "transactions", "--limit", "3", "--json"]);
    let page_json = json(&page);
    assert_eq!(page_json["transactions"].as_array().map(Vec::len), Some(3));
    let cursor = s(&page_json, "next_cursor").to_string();
    assert_contains(&stderr(&page), &format!("--cursor {cursor}"));
    let next = json(&server.cli(me, &["tokens", "transactions", "--limit", "3", "--cursor", &cursor, "--json"]));
    assert_eq!(n(&next["transactions"][0], "tokens"), 4, "continues after the third newest grant: {next}");
    let all = json(&server.cli(me, &["tokens", "transactions", "--json"]));
    assert_eq!(all["transactions"].as_array().map(Vec::len), Some(7));
    assert!(all["next_cursor"].is_null());
    let audit = ok(&server.cli(me, &["audit"]));
    for needle in ["ACTION", "api_token.revoked", "user.disabled", "user.enabled", "tokens.granted"] {
        assert_contains(&audit, needle);
    }
    let audit = json(&server.cli(me, &["audit", "--limit", "2", "--json"]));
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(2));
    assert!(audit["next_cursor"].is_string());
    fails(&server.cli(me, &["audit", "--cursor", "x"]), 2);
}

#[test]
fn some_commands_need_no_server_and_failures_are_clear() {
    // Nothing listens on this port.
    let nowhere = format!("http://127.0.0.1:{}", free_port());

    let out = ok(&cli(&nowhere, None, &["catalog", "--default"]));
    assert_contains(&out, "[[regions]]");
    assert_contains(&out, "claude-sonnet-4.6");
    let catalog = json(&cli(&nowhere, None, &["catalog", "--default", "--json"]));
    assert_eq!(catalog["regions"][0]["id"], "eu-central-1");

    let err = fails(&cli(&nowhere, Some("t"), &["tokens"]), 1);
    assert_contains(&err, "cannot reach the server");
    let err = fails(&cli(&nowhere, None, &["resources", "list"]), 1);
    assert_contains(&err, "no API token");
    let err = fails(&cli(&nowhere, None, &["operator", "clock"]), 1);
    assert_contains(&err, "no operator token");
    let err = fails(&cli("https://example.com", Some("t"), &["tokens"]), 1);
    assert_contains(&err, "plain HTTP");

    // Usage errors are clap's: exit code 2, nothing sent.
    fails(&cli(&nowhere, Some("t"), &["resources", "plan", "r1", "huge"]), 2);
    fails(&cli(&nowhere, Some("t"), &["resources", "provision", "--type", "text_generation"]), 2);
    fails(&cli(&nowhere, Some("t"), &["operator", "companies", "update", "c1"]), 2);
    fails(&cli(&nowhere, Some("t"), &["operator", "clock", "--set", "next tuesday"]), 2);
    fails(&cli(&nowhere, Some("t"), &["resources", "provision", "--cri", "--no-cri"]), 2);
}
