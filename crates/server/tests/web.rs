//! The web UI over HTTP against the real binary: sessions and their cookie flags, CSRF on every
//! state-changing form, the login slowdown, members kept out of the Control Center, escaped
//! output and the security headers. (The browser tests in tests/e2e drive the same pages in
//! Chromium.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use support::{text, TestServer};

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(srv: &TestServer) -> Browser {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        Browser { http, base: srv.base.clone(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn remember(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !val.is_empty() {
                self.cookies.push((k.to_string(), val.to_string()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let resp =
            self.http.get(format!("{}{path}", self.base)).header(COOKIE, self.cookie_header()).send().await.unwrap();
        self.remember(&resp);
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, resp.text().await.unwrap(), headers)
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self.http.post(format!("{}{path}", self.base)).header(COOKIE, self.cookie_header()).form(form);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        self.remember(&resp);
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, resp.text().await.unwrap(), headers)
    }

    async fn log_in(
        &mut self,
        email: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap) {
        let (_, page, _) = self.get("/login").await;
        let csrf = hidden(&page, "csrf_token");
        let (s, _, h) = self
            .post(
                "/login",
                &[("email", email), ("password", password), ("csrf_token", &csrf), ("next", "/resources")],
                extra,
            )
            .await;
        (s, h)
    }
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} in {page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

async fn admin_with_password(srv: &TestServer, tokens: i64, role: &str) -> (String, String, String) {
    let (company, admin_token) = srv.company(tokens).await;
    let email = format!("{role}-{}@example.com", company.to_lowercase());
    let (s, u) = srv
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/users"),
            Some(json!({"name": "Web User", "email": email, "role": role, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(s, 201, "{u}");
    (company, admin_token, email)
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_visitors_are_sent_to_the_login_page() {
    let srv = TestServer::start(&[]);
    let mut b = Browser::new(&srv);
    let (s, _, h) = b.get("/").await;
    assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/login"));
    let (s, _, h) = b.get("/resources?type=knowledge_base").await;
    assert_eq!(s, 303);
    assert_eq!(h.get(LOCATION).unwrap().to_str().unwrap(), "/login?next=/resources%3Ftype%3Dknowledge_base");
    let (s, page, h) = b.get("/login").await;
    assert_eq!(s, 200);
    assert!(page.contains("<label for=\"email\">Email</label>") && page.contains("Log in"));
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_is_httponly_lax_and_secure_over_https() {
    let srv = TestServer::start(&[]);
    let (_, _, email) = admin_with_password(&srv, 100, "company_admin").await;
    let mut b = Browser::new(&srv);
    let (s, h) = b.log_in(&email, "correct horse battery", &[]).await;
    assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/resources"));
    let session =
        h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).find(|v| v.starts_with("genai_session=")).unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain HTTP: no Secure flag, or the browser would drop it: {session}");
    let (s, page, _) = b.get("/resources").await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"balance\"") && page.contains("data-available=\"100\""));

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut b2 = Browser::new(&srv);
    let (_, h) = b2.log_in(&email, "correct horse battery", &[("x-forwarded-proto", "https")]).await;
    let session =
        h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).find(|v| v.starts_with("genai_session=")).unwrap();
    assert!(session.contains("; Secure"), "{session}");

    // Logging out ends the session on the server too.
    let (_, page, _) = b.get("/resources").await;
    let csrf = hidden(&page, "csrf_token");
    let stolen = b.cookie_header();
    let (s, _, _) = b.post("/logout", &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(s, 303);
    let resp = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/resources", srv.base))
        .header(COOKIE, stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "the old cookie no longer works");
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let srv = TestServer::start(&[]);
    let (_, admin_token, email) = admin_with_password(&srv, 300, "company_admin").await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("Target", "small")), Some(&admin_token)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let mut b = Browser::new(&srv);
    b.log_in(&email, "correct horse battery", &[]).await;
    let provision = [
        ("type", "text_generation"),
        ("display_name", "Sneaky"),
        ("environment", "test"),
        ("region", "eu-central-1"),
        ("cross_region_inference", "true"),
        ("model", "claude-sonnet-4.6"),
        ("plan", "large"),
        ("user_name", "Eve"),
        ("user_email", "eve@example.com"),
    ];
    for (path, form) in [
        ("/resources/new".to_string(), provision.to_vec()),
        (format!("/resources/{id}/plan"), vec![("plan", "large")]),
        (format!("/resources/{id}/deprovision"), vec![]),
    ] {
        let mut with_bad = form.clone();
        with_bad.push(("csrf_token", "forged"));
        for f in [form, with_bad] {
            let (s, page, _) = b.post(&path, &f, &[]).await;
            assert_eq!(s, 403, "{path}: {page}");
            assert!(page.contains("This form has expired"));
        }
    }
    let t = srv.ledger(&admin_token).await;
    assert_eq!((t["allocated"].as_i64(), t["pending_release"].as_i64()), (Some(30), Some(0)), "nothing changed");
    let (_, list) = srv.call("GET", "/api/v1/resources", None, Some(&admin_token)).await;
    assert_eq!(list["resources"].as_array().unwrap().len(), 1);

    // With the session's token the same form works, and the overview shows the new row.
    let (_, page, _) = b.get("/resources/new?type=text_generation").await;
    let mut ok = provision.to_vec();
    let csrf = hidden(&page, "csrf_token");
    ok.push(("csrf_token", &csrf));
    let (s, _, h) = b.post("/resources/new", &ok, &[]).await;
    assert_eq!(
        (s, h.get(LOCATION).unwrap().to_str().unwrap()),
        (303, "/resources?type=text_generation&done=provisioned")
    );
    let (_, page, _) = b.get("/resources?type=text_generation&done=provisioned").await;
    assert!(page.contains(">Sneaky</a>") && page.contains("role=\"status\""));
    // The login form is protected too (double-submit cookie).
    let mut fresh = Browser::new(&srv);
    let (s, page, _) = fresh
        .post("/login", &[("email", &email), ("password", "correct horse battery"), ("csrf_token", "x")], &[])
        .await;
    assert_eq!(s, 403, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failed_logins_slow_down() {
    let srv = TestServer::start(&[]);
    let (_, _, email) = admin_with_password(&srv, 10, "company_admin").await;
    let mut b = Browser::new(&srv);
    for _ in 0..5 {
        let (s, _) = b.log_in(&email, "wrong password", &[]).await;
        assert_eq!(s, 401);
    }
    // Locked now, even with the right password.
    let (s, _) = b.log_in(&email, "correct horse battery", &[]).await;
    assert_eq!(s, 429);
    let (_, page, _) = b.get("/login").await;
    let csrf = hidden(&page, "csrf_token");
    let (s, page, h) =
        b.post("/login", &[("email", &email), ("password", "correct horse battery"), ("csrf_token", &csrf)], &[]).await;
    assert_eq!(s, 429);
    assert!(page.contains("Too many failed attempts") && h.contains_key("retry-after"));
    // Unknown accounts get the same answer as wrong passwords.
    let (s, _) = b.log_in("nobody@example.com", "whatever123", &[]).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_see_a_clear_refusal_not_the_control_center() {
    let srv = TestServer::start(&[]);
    let (company, admin_token, _) = admin_with_password(&srv, 100, "company_admin").await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("Admins only", "small")), Some(&admin_token)).await;
    let id = r["id"].as_str().unwrap().to_string();
    // A member of the same company.
    let (s, _) = srv
        .op("POST", &format!("/api/v1/operator/companies/{company}/users"), Some(json!({"name": "Mia", "email": "mia@example.com", "role": "member", "password": "correct horse battery"})))
        .await;
    assert_eq!(s, 201);
    let mut b = Browser::new(&srv);
    b.log_in("mia@example.com", "correct horse battery", &[]).await;
    for path in [
        "/resources",
        "/resources/new?type=text_generation",
        "/transactions",
        "/audit",
        &format!("/resources/{id}/plan"),
    ] {
        let (s, page, _) = b.get(path).await;
        assert_eq!(s, 403, "{path}");
        assert!(page.contains("Only company admins"), "{path}: {page}");
        assert!(!page.contains("Admins only") && !page.contains("id=\"balance\""), "{path} leaks data");
    }
    let (_, page, _) = b.get("/resources").await;
    let csrf = hidden(&page, "csrf_token");
    let (s, _, _) = b.post(&format!("/resources/{id}/deprovision"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!(s, 403);
    let (_, r) = srv.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin_token)).await;
    assert_eq!(r["status"], "active");
    // The resource's Portal page is for its team: not this member.
    let (s, _, _) = b.get(&format!("/portal/resources/{id}")).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_shown_as_text_and_pages_render() {
    let srv = TestServer::start(&["--manual-clock", "2026-02-12T08:00:00Z"]);
    let (_, admin_token, email) = admin_with_password(&srv, 500, "company_admin").await;
    let (_, r) = srv
        .call("POST", "/api/v1/resources", Some(text("<script>alert(1)</script>", "medium")), Some(&admin_token))
        .await;
    let id = r["id"].as_str().unwrap().to_string();
    srv.set_clock("2026-02-20T00:00:00Z").await;
    srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "small"})), Some(&admin_token)).await;
    let mut b = Browser::new(&srv);
    b.log_in(&email, "correct horse battery", &[]).await;
    let (_, page, _) = b.get("/resources").await;
    assert!(!page.contains("<script>alert(1)</script>"), "unescaped name");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(page.contains("PLAN DOWNGRADE SCHEDULED") && page.contains("Cancel Plan Downgrade"));
    assert!(!page.contains("Cancel Deprovisioning"), "only allowed actions are offered");
    // The plan page previews a change without making it.
    let (s, page, _) = b.get(&format!("/resources/{id}/plan?plan=large")).await;
    assert_eq!(s, 200);
    assert!(page.contains("data-spec=\"cost_difference\">+60") && page.contains("Adjust Plan"), "{page}");
    // The confirmation dialog shows the date it takes effect: the end of the bundle month.
    let (s, page, _) = b.get(&format!("/resources/{id}/deprovision")).await;
    assert_eq!(s, 200);
    assert!(page.contains("12 Mar 2026, 08:00 UTC") && page.contains("<dialog open"), "{page}");
    for path in ["/transactions", "/audit", &format!("/portal/resources/{id}"), "/resources/new?type=knowledge_base"] {
        let (s, page, _) = b.get(path).await;
        assert_eq!(s, 200, "{path}");
        assert!(!page.contains("<script>alert(1)</script>"), "{path}");
    }
    let t = srv.ledger(&admin_token).await;
    assert_eq!(t["allocated"], 60, "previews changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_name_resources_escape_notes_and_survive_odd_cursors() {
    let srv = TestServer::start(&[]);
    let (company, admin_token, email) = admin_with_password(&srv, 100, "company_admin").await;
    let note = "<img src=x onerror=alert(1)>";
    let (s, _) = srv
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/token-grants"),
            Some(json!({"tokens": 5, "note": note})),
        )
        .await;
    assert_eq!(s, 201);
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("Ledger bot", "small")), Some(&admin_token)).await;
    let id = r["id"].as_str().unwrap().to_string();
    let portal = format!("href=\"/portal/resources/{id}\"");
    let mut b = Browser::new(&srv);
    b.log_in(&email, "correct horse battery", &[]).await;

    let (s, page, _) = b.get("/transactions").await;
    assert_eq!(s, 200);
    assert!(page.contains("Allocated to") && page.contains(&portal) && page.contains(">Ledger bot</a>"), "{page}");
    assert_eq!(page.matches(id.as_str()).count(), 1, "the id only in the link: {page}");
    assert!(
        page.contains("<td class=\"num amount\">−30</td>") && page.contains("<td class=\"num amount\">+5</td>"),
        "{page}"
    );
    assert!(!page.contains("<img src=x") && page.contains("onerror=alert(1)"), "the note is escaped: {page}");

    let (s, page, _) = b.get("/audit").await;
    assert_eq!(s, 200);
    assert!(page.contains(">Provisioned<") && page.contains(&portal) && page.contains(">Ledger bot</a>"), "{page}");
    assert!(page.contains("small plan, 30 cloud tokens"), "details in words: {page}");
    let table = page.split("<table id=\"audit\"").nth(1).and_then(|t| t.split("</table>").next()).unwrap();
    assert!(!table.contains("<img src=x") && !table.contains('{') && !table.contains("&quot;"), "no raw JSON: {table}");

    // Cursors come from links but can be edited: any value answers a page, never an error.
    let long = "x".repeat(4000);
    for path in [
        "/transactions?cursor=",
        "/transactions?cursor=%00%FF",
        "/audit?cursor=../../etc",
        &format!("/audit?cursor={long}"),
    ] {
        let (s, page, _) = b.get(path).await;
        assert_eq!(s, 200, "{path}");
        assert!(page.contains(">Ledger bot</a>"), "{path} starts from the newest lines");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_manage_their_api_tokens_on_a_page_of_their_own() {
    let srv = TestServer::start(&["--manual-clock", "2026-03-01T12:00:00Z"]);
    let (_, _, email) = admin_with_password(&srv, 100, "member").await;
    let mut b = Browser::new(&srv);
    b.log_in(&email, "correct horse battery", &[]).await;
    let (s, page, h) = b.get("/api-tokens").await;
    assert_eq!(s, 200, "members have the page too");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    assert!(page.contains("You have no API tokens.") && page.contains("href=\"/api-tokens\" aria-current=\"page\""));
    let csrf = hidden(&page, "csrf_token");

    // Without this session's CSRF token nothing is created.
    let (s, _, _) = b.post("/api-tokens", &[("description", "forged"), ("csrf_token", "nope")], &[]).await;
    assert_eq!(s, 403);
    let (_, page, _) = b.get("/api-tokens").await;
    assert!(!page.contains("forged"));

    let form = [("description", "deploy <script>"), ("expires_in_days", "30"), ("csrf_token", csrf.as_str())];
    let (s, page, h) = b.post("/api-tokens", &form, &[]).await;
    assert_eq!((s, h.get("cache-control").unwrap().to_str().unwrap()), (201, "no-store"));
    assert!(page.contains("shown only this once"), "{page}");
    let start = page.find("value=\"genai_").unwrap() + "value=\"".len();
    let secret = page[start..].split('"').next().unwrap().to_string();
    let escaped = page.contains("deploy &#60;script&#62;") || page.contains("deploy &lt;script&gt;");
    assert!(escaped && !page.contains("deploy <script>"), "escaped");
    assert!(page.contains("2026-03-31T12:00:00Z"), "expires in 30 days on the server's clock");
    let (s, _) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&secret)).await;
    assert_eq!(s, 200, "the token works");
    let (_, page, _) = b.get("/api-tokens").await;
    assert!(!page.contains(&secret), "shown once only");

    let (_, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&secret)).await;
    let id = list["tokens"][0]["id"].as_str().unwrap().to_string();
    let (s, _, _) = b.post(&format!("/api-tokens/{id}/revoke"), &[("csrf_token", "nope")], &[]).await;
    assert_eq!(s, 403);
    let (s, _, h) = b.post(&format!("/api-tokens/{id}/revoke"), &[("csrf_token", &csrf)], &[]).await;
    assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/api-tokens?done=revoked"));
    let (s, _) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&secret)).await;
    assert_eq!(s, 401, "revoked");
    let (_, page, _) = b.get("/api-tokens?done=revoked").await;
    assert!(page.contains("The token was revoked.") && page.contains("revoked 2026-03-01T12:00:00Z"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_user_is_logged_out_at_once_and_cannot_log_in() {
    let srv = TestServer::start(&[]);
    let (_, _, email) = admin_with_password(&srv, 100, "company_admin").await;
    let mut b = Browser::new(&srv);
    b.log_in(&email, "correct horse battery", &[]).await;
    assert_eq!(b.get("/resources").await.0, 200);
    // A second session of the same user, which also finds out the user's id (through a token).
    let mut other = Browser::new(&srv);
    other.log_in(&email, "correct horse battery", &[]).await;
    let (_, page, _) = other.get("/api-tokens").await;
    let csrf = hidden(&page, "csrf_token");
    let (_, page, _) = other.post("/api-tokens", &[("csrf_token", &csrf)], &[]).await;
    let start = page.find("value=\"genai_").unwrap() + "value=\"".len();
    let secret = page[start..].split('"').next().unwrap().to_string();
    let (_, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&secret)).await;
    let user_id = list["tokens"][0]["user_id"].as_str().unwrap().to_string();

    let (s, _) = srv.op("PATCH", &format!("/api/v1/operator/users/{user_id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(s, 200);
    for browser in [&mut b, &mut other] {
        let (s, _, h) = browser.get("/resources").await;
        assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/login?next=/resources"), "session ended");
    }
    let (s, _) = b.log_in(&email, "correct horse battery", &[]).await;
    assert_eq!(s, 401, "the right password of a disabled user opens nothing");
    srv.op("PATCH", &format!("/api/v1/operator/users/{user_id}"), Some(json!({"disabled": false}))).await;
    let (s, _) = b.log_in(&email, "correct horse battery", &[]).await;
    assert_eq!(s, 303, "enabled again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_pages_follow_the_team_keep_csrf_and_show_a_key_once() {
    let srv = TestServer::start(&["--manual-clock", "2026-03-01T12:00:00Z"]);
    let (company, admin_token, _) = admin_with_password(&srv, 100, "company_admin").await;
    // Mia is a member of the company; the resource is provisioned for her, so she is on its team.
    let mia = json!({"name": "Mia", "email": "mia@example.com", "role": "member", "password": "correct horse battery"});
    let (s, u) = srv.op("POST", &format!("/api/v1/operator/companies/{company}/users"), Some(mia)).await;
    assert_eq!(s, 201, "{u}");
    let mut body = text("Team Bot", "small");
    body["user"] = json!({"name": "Mia", "email": "mia@example.com"});
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(body), Some(&admin_token)).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let (_, other) = srv.call("POST", "/api/v1/resources", Some(text("Other Bot", "small")), Some(&admin_token)).await;
    let other = other["id"].as_str().unwrap().to_string();

    let mut b = Browser::new(&srv);
    let (s, h) = b.log_in("mia@example.com", "correct horse battery", &[]).await;
    assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/portal"), "a member lands on the Portal");
    let (s, page, _) = b.get("/portal").await;
    assert_eq!(s, 200);
    assert!(page.contains("Team Bot") && !page.contains("Other Bot"), "her teams only");
    let (s, _, h) = b.get("/").await;
    assert_eq!((s, h.get(LOCATION).unwrap().to_str().unwrap()), (303, "/portal"));

    // Someone else's resource does not exist for her, on every Portal page.
    for tab in ["", "/consumption", "/consumption.csv", "/team", "/keys", "/keys/new", "/settings"] {
        let (s, page, _) = b.get(&format!("/portal/resources/{other}{tab}")).await;
        assert_eq!(s, 404, "{tab}");
        assert!(!page.contains("Other Bot"), "{tab} leaks the name");
    }

    let (s, page, h) = b.get(&format!("/portal/resources/{id}/keys")).await;
    assert_eq!((s, h.get("cache-control").unwrap().to_str().unwrap()), (200, "no-store"));
    let csrf = hidden(&page, "csrf_token");
    // Forms without this session's CSRF token change nothing.
    let keys = format!("/portal/resources/{id}/keys");
    let (s, _, _) = b.post(&keys, &[("description", "forged"), ("csrf_token", "nope")], &[]).await;
    assert_eq!(s, 403);
    let team = format!("/portal/resources/{id}/team");
    let (s, _, _) = b.post(&team, &[("email", "eve@example.com"), ("csrf_token", "nope")], &[]).await;
    assert_eq!(s, 403);
    let (_, list) = srv.call("GET", &format!("/api/v1/resources/{id}/keys"), None, Some(&admin_token)).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 0);

    // An empty description is refused naming the field; then a key is shown once, escaped.
    let (s, page, _) = b.post(&keys, &[("description", ""), ("csrf_token", &csrf)], &[]).await;
    assert_eq!(s, 422);
    assert!(page.contains("id=\"error-description\""), "{page}");
    let (s, page, h) = b.post(&keys, &[("description", "bot <b>"), ("csrf_token", &csrf)], &[]).await;
    assert_eq!((s, h.get("cache-control").unwrap().to_str().unwrap()), (201, "no-store"));
    assert!(page.contains("Store it securely. The key is shown only once."));
    assert!(!page.contains("bot <b>") && (page.contains("bot &#60;b&#62;") || page.contains("bot &lt;b&gt;")));
    let start = page.find("id=\"key-secret\"").unwrap();
    let value = page[start..].find("value=\"").unwrap() + start + "value=\"".len();
    let secret = page[value..].split('"').next().unwrap().to_string();
    assert!(secret.starts_with("gr_"), "{secret}");
    // With htmx the answer is the dialog alone, with the list out of band.
    let (s, page, h) =
        b.post(&keys, &[("description", "second"), ("csrf_token", &csrf)], &[("hx-request", "true")]).await;
    assert_eq!((s, h.get("cache-control").unwrap().to_str().unwrap()), (200, "no-store"));
    assert!(!page.contains("<html") && page.contains("hx-swap-oob=\"true\"") && page.contains("second"));
    let (_, page, _) = b.get(&keys).await;
    assert!(!page.contains(&secret), "shown once only");
    assert!(page.contains("bot &#60;b&#62;") || page.contains("bot &lt;b&gt;"));

    // Consumption and its CSV (no usage yet).
    let (s, page, _) = b.get(&format!("/portal/resources/{id}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"chart-input\"") && page.contains("data-quota=\"2500000\""), "{page}");
    let (s, csv, h) = b.get(&format!("/portal/resources/{id}/consumption.csv?from=2026-02-01&to=2026-03-01")).await;
    assert_eq!((s, h.get("content-type").unwrap().to_str().unwrap()), (200, "text/csv; charset=utf-8"));
    assert_eq!(csv, "date,input_tokens,output_tokens,api_calls\n");
    let (s, page, _) = b.get(&format!("/portal/resources/{id}/consumption.csv?from=2026-03-02&to=nope")).await;
    assert_eq!(s, 400, "{page}");

    // Mia leaves the team; Noa, who stays, still sees who made the keys.
    let noa = json!({"name": "Noa", "email": "noa@example.com", "role": "member", "password": "correct horse battery"});
    let (s, u) = srv.op("POST", &format!("/api/v1/operator/companies/{company}/users"), Some(noa)).await;
    assert_eq!(s, 201, "{u}");
    let members = format!("/api/v1/resources/{id}/members");
    let (s, m) = srv.call("POST", &members, Some(json!({"email": "noa@example.com"})), Some(&admin_token)).await;
    assert_eq!(s, 201, "{m}");
    let (_, m) = srv.call("GET", &members, None, Some(&admin_token)).await;
    let mia_id = m["members"].as_array().unwrap().iter().find(|x| x["email"] == "mia@example.com").unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, gone) = srv.call("DELETE", &format!("{members}/{mia_id}"), None, Some(&admin_token)).await;
    assert_eq!(s, 204, "{gone}");
    let mut noa = Browser::new(&srv);
    noa.log_in("noa@example.com", "correct horse battery", &[]).await;
    let (s, page, _) = noa.get(&keys).await;
    assert_eq!(s, 200);
    assert!(page.contains("Mia") && page.contains("mia@example.com · no longer on the team"), "{page}");
    assert!(!page.contains(&mia_id), "a name, not an id");
}
