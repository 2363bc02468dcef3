//! The probes of the security review (issue 7, §3), each against the real binary over HTTP:
//! login floods, `next=` after login, slow and half-sent requests, password hashing under load,
//! errors raised before a handler, protective headers, invisible characters in names, and the
//! operator token. Each test failed on the code the review probed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{text, TestServer};

const PASSWORD: &str = "correct horse battery";

/// A client that does not follow redirects, bound to a local address of its own (any
/// 127.x.y.z reaches the server on Linux), so tests can be "somebody elsewhere".
fn client_from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address(addr.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// Fills in the login form as a browser would (its CSRF cookie and field) and sends it.
async fn log_in(base: &str, client: &reqwest::Client, email: &str, password: &str, next: &str) -> Answer {
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("genai_login_csrf="))
        .unwrap();
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let csrf = html[start..].split('"').next().unwrap().to_string();
    let resp = client
        .post(format!("{base}/login"))
        .header(COOKIE, cookie)
        .form(&[("email", email), ("password", password), ("csrf_token", &csrf), ("next", next)])
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Answer { status, headers, body: resp.text().await.unwrap() }
}

/// A company with a user who can log in; answers the email.
async fn user_with_password(srv: &TestServer, password: Option<&str>) -> String {
    let (company, _) = srv.company(10).await;
    let email = format!("u{}@example.com", rand_suffix());
    let mut body = json!({"name": "Web User", "email": email, "role": "company_admin"});
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let (s, u) = srv.op("POST", &format!("/api/v1/operator/companies/{company}/users"), Some(body)).await;
    assert_eq!(s, 201, "{u}");
    email
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

// ---- 1. login flood -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn over_long_emails_and_login_bodies_are_refused_first() {
    let srv = TestServer::start(&[]);
    let c = client_from("127.0.0.1");
    // Just over the limit of an email: a clear message on the form, no lookup, no bookkeeping.
    let long = format!("{}@example.com", "a".repeat(250));
    let a = log_in(&srv.base, &c, &long, "whatever123", "/resources").await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("Email must be at most 254 characters"), "{}", a.body);
    // A megabyte of email never reaches the application: the login form is limited to 8 KiB.
    // (A raw socket, as in errors_raised_before_a_handler_use_the_envelope.)
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\nemail=aaaa",
        1 << 20
    );
    let answer = exchange(&srv, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("The login form was too large"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guesser_elsewhere_cannot_lock_the_person_out() {
    let srv = TestServer::start(&[]);
    let email = user_with_password(&srv, Some(PASSWORD)).await;
    let attacker = client_from("127.0.0.66");
    for _ in 0..5 {
        assert_eq!(log_in(&srv.base, &attacker, &email, "wrong password", "/resources").await.status, 401);
    }
    let a = log_in(&srv.base, &attacker, &email, PASSWORD, "/resources").await;
    assert_eq!(a.status, 429, "the guesser is slowed down");
    assert!(a.headers.contains_key("retry-after"));
    // The person, from their own address, logs in at once.
    let person = client_from("127.0.0.1");
    let a = log_in(&srv.base, &person, &email, PASSWORD, "/resources").await;
    assert_eq!(a.status, 303, "{}", a.body);
}

// ---- 2. next= after login -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn next_is_followed_only_when_it_is_a_plain_local_path() {
    let srv = TestServer::start(&[]);
    let email = user_with_password(&srv, Some(PASSWORD)).await;
    let c = client_from("127.0.0.1");
    for (next, expected) in [
        ("/resources?type=embeddings_generation", "/resources?type=embeddings_generation"),
        ("/\t/evil.example", "/resources"),
        ("/\nabc", "/resources"),
        ("/\u{7f}", "/resources"),
        ("//evil.example", "/resources"),
        ("/\\evil.example", "/resources"),
        ("https://evil.example/", "/resources"),
        ("/a//evil.example", "/resources"),
        ("/ok path", "/resources"),
        ("/caf\u{e9}", "/resources"),
    ] {
        let a = log_in(&srv.base, &c, &email, PASSWORD, next).await;
        assert_eq!(a.status, 303, "next={next:?}: {}", a.body);
        assert_eq!(a.headers.get(LOCATION).unwrap().to_str().unwrap(), expected, "next={next:?}");
    }
    // The same rule when already logged in: GET /login?next=… with percent-encoded controls.
    for raw in ["/%09/evil.example", "/%0Aabc", "/%7F"] {
        let resp = c.get(format!("{}/login?next={raw}", srv.base)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{raw}");
        let page = resp.text().await.unwrap();
        assert!(page.contains("name=\"next\" value=\"/resources\""), "{raw}: the form carries the overview");
    }
}

// ---- 3. timeouts and the connection limit ----------------------------------------------------

fn connect(srv: &TestServer) -> TcpStream {
    let s = TcpStream::connect(srv.base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes the connection; answers what it sent.
fn read_to_close(s: &mut TcpStream) -> Result<String, std::io::Error> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).map(|_| String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_connection_that_sends_half_its_headers_is_closed() {
    let srv = TestServer::start(&["--header-read-timeout", "1"]);
    let mut s = connect(&srv);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut s);
    assert!(answer.is_ok(), "the server kept the connection open: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!answer.unwrap().contains("200 OK"), "no answer to a request that never arrived");
}

#[test]
fn a_request_whose_body_never_arrives_times_out_in_the_envelope() {
    let srv = TestServer::start(&["--request-timeout", "1"]);
    let mut s = connect(&srv);
    let head = format!(
        "POST /api/v1/resources HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\"",
        srv.operator
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("an answer within the request timeout");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let srv = TestServer::start(&["--max-connections", "2", "--header-read-timeout", "30"]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&srv)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let c = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    let r = c.get(format!("{}/healthz", srv.base)).send().await;
    assert!(r.is_err(), "a third connection was served while two were held: {r:?}");
    drop(held);
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let r = c.get(format!("{}/healthz", srv.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

// ---- 4 and 6. password hashing ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn healthz_stays_fast_while_bad_logins_are_hashed() {
    let srv = TestServer::start(&[]);
    // The time of one failed login with nothing else going on.
    let quiet = client_from("127.0.0.1");
    let mut alone = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(
            log_in(&srv.base, &quiet, &format!("nobody{}@example.com", rand_suffix()), "x", "/").await.status,
            401
        );
        alone.push(t.elapsed());
    }
    let alone = median(alone);
    // Eight clients, each from its own address and with a new email each time (so the
    // throttle never spares the hashing), send wrong passwords for a few seconds.
    let stop = Instant::now() + (alone * 20).max(Duration::from_secs(3));
    let mut flood = Vec::new();
    for i in 0..8u8 {
        let c = client_from(&format!("127.0.1.{}", i + 1));
        let base = srv.base.clone();
        flood.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < stop && n < 40 {
                let a = log_in(&base, &c, &format!("nobody{}@example.com", rand_suffix()), "x", "/").await;
                assert_eq!(a.status, 401);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(alone).await;
    let c = reqwest::Client::new();
    let mut healthz = Vec::new();
    while Instant::now() < stop {
        let t = Instant::now();
        assert_eq!(c.get(format!("{}/healthz", srv.base)).send().await.unwrap().status().as_u16(), 200);
        healthz.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for f in flood {
        f.await.unwrap();
    }
    let healthz = median(healthz);
    assert!(healthz * 4 < alone, "/healthz took {healthz:?} (median) under the flood; one login alone takes {alone:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_a_password_costs_a_login_as_much_as_a_wrong_password() {
    let srv = TestServer::start(&[]);
    let c = client_from("127.0.0.1");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let e = user_with_password(&srv, Some(PASSWORD)).await;
        let t = Instant::now();
        assert_eq!(log_in(&srv.base, &c, &e, "wrong password", "/").await.status, 401);
        with.push(t.elapsed());
        let e = user_with_password(&srv, None).await;
        let t = Instant::now();
        assert_eq!(log_in(&srv.base, &c, &e, "wrong password", "/").await.status, 401);
        without.push(t.elapsed());
    }
    let (with, without) = (median(with), median(without));
    assert!(without * 2 > with, "no password: {without:?}; wrong password: {with:?}");
}

// ---- 7. errors before a handler -----------------------------------------------------------------

fn assert_envelope(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
}

/// Sends raw bytes on a new connection and answers everything the server sent back (until it
/// closed the connection, or went quiet for a second).
fn exchange(srv: &TestServer, request: &[u8]) -> String {
    let mut s = connect(srv);
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) if !out.is_empty() => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", srv.base)).bearer_auth(token).body(body);
    if let Some(t) = content_type {
        req = req.header(CONTENT_TYPE, t);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({"_raw": text})), headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_raised_before_a_handler_use_the_envelope() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(500).await;
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(text("Envelope", "medium")), Some(&admin)).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();

    let (s, b, _) = raw(&srv, "GET", "/api/v1/resources/%FF", &admin, None, vec![]).await;
    assert_envelope(s, &b, 400, "invalid_request");

    // Over the limit, by the declared length (answered before reading) or while streaming.
    // (Raw sockets: the server closes after refusing, and a client still writing a large body
    // could see that before it reads the answer.)
    let plan_path = format!("/api/v1/resources/{id}/plan");
    let declared = format!(
        "POST {plan_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"plan\": ",
        3 << 20
    );
    let chunk = format!("{{\"plan\": \"large\", \"note\": \"{}\"}}", "x".repeat(65_536));
    let streamed = format!(
        "POST {plan_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        chunk.len()
    );
    for request in [declared, streamed] {
        let answer = exchange(&srv, request.as_bytes());
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        let b: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_envelope(413, &b, 413, "payload_too_large");
        assert_eq!(b["error"]["details"]["limit_bytes"], 65536);
    }

    // A text/plain (or untyped) body is refused, never applied, even though it parses as JSON.
    for ct in [Some("text/plain"), None, Some("application/x-www-form-urlencoded")] {
        let body = br#"{"plan": "large"}"#.to_vec();
        let (s, b, _) = raw(&srv, "POST", &format!("/api/v1/resources/{id}/plan"), &admin, ct, body).await;
        assert_envelope(s, &b, 415, "unsupported_media_type");
    }
    let (_, r) = srv.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin)).await;
    assert_eq!(r["plan"], "medium", "the plan was not changed: {r}");

    let (s, b, _) = raw(&srv, "POST", "/api/v1/resources", &admin, Some("application/json"), b"{".to_vec()).await;
    assert_envelope(s, &b, 400, "invalid_request");
    let (s, b, _) = raw(&srv, "GET", "/api/v1/no-such-thing", &admin, None, vec![]).await;
    assert_envelope(s, &b, 404, "not_found");
    let (s, b, h) = raw(&srv, "DELETE", "/api/v1/tokens", &admin, None, vec![]).await;
    assert_envelope(s, &b, 405, "method_not_allowed");
    assert!(h.get("allow").is_some_and(|v| v.to_str().unwrap().contains("GET")), "{h:?}");
    // Empty bodies need no content type (several endpoints take none).
    let (s, b, _) = raw(&srv, "POST", &format!("/api/v1/resources/{id}/deprovision"), &admin, None, vec![]).await;
    assert_eq!(s, 200, "{b}");
    // The web UI answers pages, not JSON, for unknown paths.
    let resp = reqwest::get(format!("{}/no-such-page", srv.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
}

// ---- 8. headers ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_answers_carry_nosniff_and_secrets_are_not_stored() {
    let srv = TestServer::start(&[]);
    for (path, csp_part) in [
        ("/api/v1/tokens", "default-src 'none'"),
        ("/api/openapi.json", "default-src 'none'"),
        ("/api/docs", "script-src 'self'"),
        ("/api/docs/init.js", "script-src 'self'"),
    ] {
        let r = reqwest::get(format!("{}{path}", srv.base)).await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains(csp_part) && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
    let (company, _) = srv.company(0).await;
    let (s, u) = srv
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/users"),
            Some(json!({"name": "Ada", "email": format!("ada{}@example.com", rand_suffix()), "role": "member"})),
        )
        .await;
    assert_eq!(s, 201);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/operator/users/{}/api-tokens", srv.base, u["id"].as_str().unwrap()))
        .bearer_auth(&srv.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

// ---- 11. invisible characters in names -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn names_with_invisible_format_characters_are_refused() {
    let srv = TestServer::start(&[]);
    let (company, admin) = srv.company(500).await;
    let (s, b) =
        srv.call("POST", "/api/v1/resources", Some(text("invoice\u{202E}fdp.exe", "small")), Some(&admin)).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "validation_failed");
    assert!(b["error"]["details"]["fields"]["display_name"].as_str().unwrap().contains("U+202E"), "{b}");
    let mut body = text("Fine name", "small");
    body["user"]["name"] = json!("Ada\u{200B}Lovelace");
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(body), Some(&admin)).await;
    assert_eq!(s, 422, "{b}");
    assert!(b["error"]["details"]["fields"]["user.name"].as_str().unwrap().contains("U+200B"), "{b}");
    let (s, b) = srv
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/users"),
            Some(json!({"name": "Eve\u{2066}", "email": "eve@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
}

// ---- 13. the operator token -----------------------------------------------------------------------

#[test]
fn a_short_operator_token_stops_the_server_naming_the_setting() {
    let dir = support::temp_dir("short-token");
    let out = Command::new(env!("CARGO_BIN_EXE_genai"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &format!("sqlite://{}/g.db", dir.display())])
        .env("GENAI_OPERATOR_TOKEN", "short-but-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GENAI_OPERATOR_TOKEN") && err.contains("at least 24 characters"), "{err}");
    assert!(!err.contains("short-but-secret"), "the token itself is never printed: {err}");
    assert!(!dir.join("g.db").exists(), "nothing was started");
}

#[test]
fn database_passwords_are_redacted_in_errors_also_in_the_query() {
    let out = Command::new(env!("CARGO_BIN_EXE_genai"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", "mysql://app:hunter2@db/genai?password=hunter3"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GENAI_DATABASE") && err.contains("password=***"), "{err}");
    assert!(!err.contains("hunter"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(10).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/tokens", srv.base))
            .header("authorization", format!("{scheme} {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/tokens", srv.base))
        .header("authorization", format!("Basic {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
