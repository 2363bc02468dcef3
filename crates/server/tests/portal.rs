//! The Portal API of RUNTIME.md §2 against the real binary: teams, keys shown once (with their
//! configuration key and knowledge-base companions), consumption and its CSV, with every role
//! (company admin, team member, another member of the company, another company, the operator),
//! and the CLI's `keys`, `usage` and `members` commands.
//!
//! Usage is written through the storage port from the test, as the runtime's group commit
//! writes it, into the server's own SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genai_store::{UsageBatch, UsageDelta, UsageStore};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};
use support::{embeddings, knowledge_base, text, TestServer};

const START: &str = "2026-03-10T09:00:00Z";

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

/// A user of a company: (id, email, API token).
async fn person(s: &TestServer, company: &str, role: &str, email: &str) -> (String, String, String) {
    let (st, u) = s
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/users"),
            Some(json!({"name": "Some One", "email": email, "role": role})),
        )
        .await;
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_str().unwrap().to_string();
    let (st, t) = s.op("POST", &format!("/api/v1/operator/users/{id}/api-tokens"), None).await;
    assert_eq!(st, 201, "{t}");
    (id, email.to_string(), t["token"].as_str().unwrap().to_string())
}

/// Provisions; answers the resource.
async fn provision(s: &TestServer, token: &str, body: Value) -> Value {
    let (st, r) = s.call("POST", "/api/v1/resources", Some(body), Some(token)).await;
    assert_eq!(st, 201, "{r}");
    r
}

/// A raw GET: status, headers, body text.
async fn raw_get(s: &TestServer, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp =
        reqwest::Client::new().get(format!("{}{path}", s.base)).bearer_auth(token).send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn emails(members: &Value) -> Vec<String> {
    members["members"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_string()).collect()
}

fn portal_ids(list: &Value) -> Vec<String> {
    list["resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_decide_who_sees_a_resource() {
    let s = TestServer::start(&[]);
    let (a, admin) = s.company(500).await;
    let (b_company, other_admin) = s.company(500).await;
    let r = provision(&s, &admin, text("Support bot", "small")).await;
    let id = r["id"].as_str().unwrap();
    let members_path = format!("/api/v1/resources/{id}/members");

    // The person it was created for became a user of the company and the team's member.
    let (st, m) = s.call("GET", &members_path, None, Some(&admin)).await;
    assert_eq!((st, emails(&m)), (200, vec!["ada@example.com".to_string()]), "{m}");
    assert_eq!(m["members"][0]["name"], "Ada Lovelace");
    let ada_id = m["members"][0]["user_id"].as_str().unwrap().to_string();

    // Another member of the company sees nothing of it: 404 like another company's id.
    let (grace_id, _, grace) = person(&s, &a, "member", "grace@example.com").await;
    let (st, list) = s.call("GET", "/api/v1/portal/resources", None, Some(&grace)).await;
    assert_eq!((st, portal_ids(&list)), (200, vec![]), "{list}");
    for (method, path) in [
        ("GET", members_path.clone()),
        ("GET", format!("/api/v1/resources/{id}/keys")),
        ("GET", format!("/api/v1/resources/{id}/consumption")),
        ("GET", format!("/api/v1/resources/{id}/consumption.csv")),
        ("GET", format!("/api/v1/portal/resources/{id}")),
    ] {
        let (st, b) = s.call(method, &path, None, Some(&grace)).await;
        assert_eq!((st, code(&b)), (404, "not_found"), "{path}: {b}");
    }
    let (st, b) = s.call("POST", &members_path, Some(json!({"email": "x@example.com"})), Some(&grace)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");

    // The admin adds her (201), again (200, the same member).
    let (st, added) = s.call("POST", &members_path, Some(json!({"email": "Grace@Example.com"})), Some(&admin)).await;
    assert_eq!((st, added["user_id"].as_str()), (201, Some(grace_id.as_str())), "{added}");
    let (st, again) = s.call("POST", &members_path, Some(json!({"email": "grace@example.com"})), Some(&admin)).await;
    assert_eq!((st, &again), (200, &added));

    // Now she sees it in her Portal, but never the Control Center.
    let (_, list) = s.call("GET", "/api/v1/portal/resources", None, Some(&grace)).await;
    assert_eq!(portal_ids(&list), vec![id.to_string()]);
    assert_eq!(list["resources"][0]["usage"]["input_quota"], 2_500_000);
    let (st, one) = s.call("GET", &format!("/api/v1/portal/resources/{id}"), None, Some(&grace)).await;
    assert_eq!((st, one["display_name"].as_str()), (200, Some("Support bot")));
    let (st, b) = s.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&grace)).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");

    // A member adds a new person by email: a user of the company (role member) is created.
    let (st, linus) =
        s.call("POST", &members_path, Some(json!({"email": "linus@example.com", "name": "Linus"})), Some(&grace)).await;
    assert_eq!((st, linus["name"].as_str()), (201, Some("Linus")), "{linus}");
    let (st, b) = s
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{a}/users"),
            Some(json!({"name": "L", "email": "linus@example.com", "role": "member"})),
        )
        .await;
    assert_eq!((st, code(&b)), (422, "validation_failed"), "the email is taken by the new user: {b}");

    // Bad input names the field.
    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"email": "n@example.com", "name": ""}), "name"),
    ] {
        let (st, b) = s.call("POST", &members_path, Some(body), Some(&admin)).await;
        assert_eq!((st, code(&b)), (422, "validation_failed"), "{b}");
        assert!(b["error"]["details"]["fields"][field].is_string(), "{b}");
    }
    let (st, b) = s.call("POST", &members_path, Some(json!({"email": 5})), Some(&admin)).await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");

    // Another company's login cannot join (a person belongs to one company) …
    person(&s, &b_company, "member", "bob@example.com").await;
    let (st, b) = s.call("POST", &members_path, Some(json!({"email": "bob@example.com"})), Some(&admin)).await;
    assert_eq!((st, code(&b)), (422, "validation_failed"), "{b}");
    assert!(b["error"]["details"]["fields"]["email"].as_str().unwrap().contains("another company"), "{b}");
    // … and a resource of that company provisioned for one of ours starts with an empty team.
    let theirs = provision(&s, &other_admin, text("Their bot", "small")).await;
    let (st, m) = s
        .call("GET", &format!("/api/v1/resources/{}/members", theirs["id"].as_str().unwrap()), None, Some(&other_admin))
        .await;
    assert_eq!((st, emails(&m)), (200, Vec::<String>::new()), "{m}");

    // The other company's admin and the operator see nothing of ours.
    let (st, b) = s.call("GET", &members_path, None, Some(&other_admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    let (st, b) = s.call("DELETE", &format!("{members_path}/{ada_id}"), None, Some(&other_admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    let (st, b) = s.op("GET", &members_path, None).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    let (st, b) = s.op("GET", "/api/v1/portal/resources", None).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    let (st, b) = s.call("GET", "/api/v1/portal/resources", None, None).await;
    assert_eq!((st, code(&b)), (401, "unauthenticated"), "{b}");

    // Removing: someone who is not a member is 404; members leave until one is left.
    let (st, b) = s.call("DELETE", &format!("{members_path}/usr_nobody"), None, Some(&admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    let (st, _) = s.call("DELETE", &format!("{members_path}/{ada_id}"), None, Some(&grace)).await;
    assert_eq!(st, 204);
    let linus_id = linus["user_id"].as_str().unwrap();
    let (st, _) = s.call("DELETE", &format!("{members_path}/{linus_id}"), None, Some(&admin)).await;
    assert_eq!(st, 204);
    let (st, b) = s.call("DELETE", &format!("{members_path}/{grace_id}"), None, Some(&grace)).await;
    assert_eq!((st, code(&b)), (409, "last_member"), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("grace@example.com"), "{b}");
    let (_, m) = s.call("GET", &members_path, None, Some(&admin)).await;
    assert_eq!(emails(&m), vec!["grace@example.com".to_string()]);

    // Company admins' Portal lists every resource of the company.
    let second = provision(&s, &admin, embeddings("Search", "small")).await;
    let (_, list) = s.call("GET", "/api/v1/portal/resources", None, Some(&admin)).await;
    assert_eq!(portal_ids(&list), vec![id.to_string(), second["id"].as_str().unwrap().to_string()]);
    let (st, b) = s.call("GET", "/api/v1/portal/resources?include_deprovisioned=maybe", None, Some(&admin)).await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");

    // Every change is in the audit log.
    let (_, events) = s.call("GET", "/api/v1/audit-events", None, Some(&admin)).await;
    let actions: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "team.member_added").count(), 2, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "team.member_removed").count(), 2, "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_knowledge_bases_get_companions() {
    let s = TestServer::start(&["--manual-clock", START]);
    let (_, admin) = s.company(500).await;
    let (_, other_admin) = s.company(500).await;
    let r = provision(&s, &admin, text("Support bot", "small")).await;
    let id = r["id"].as_str().unwrap().to_string();
    let keys_path = format!("/api/v1/resources/{id}/keys");

    // Created: 201, not to be cached, with the secret and the configuration key.
    let resp = reqwest::Client::new()
        .post(format!("{}{keys_path}", s.base))
        .bearer_auth(&admin)
        .json(&json!({"description": "  CI pipeline "}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let key: Value = resp.json().await.unwrap();
    let secret = key["secret"].as_str().unwrap().to_string();
    let parts: Vec<&str> = secret.splitn(3, '_').collect();
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("gr", 12, 52), "{secret}");
    assert_eq!(key["description"], "CI pipeline");
    let config = genai_app::keys::decode_configuration_key(key["configuration_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        config,
        json!({
            "id": id, "name": "Support bot", "type": "TEXT_GENERATION",
            "resourceBaseUrl": format!("{}/runtime/v1/resources/{id}", s.base), "accessToken": secret,
            "architecture": "AWS", "model": "claude-sonnet-4.6", "keyName": "CI pipeline", "keyId": key["id"],
            "environment": "Test", "deepLinkUrl": format!("{}/portal/resources/{id}", s.base), "schemaVersion": 3,
        })
    );

    // Listed without the secret, ever.
    let (st, _, text_body) = raw_get(&s, &keys_path, &admin).await;
    assert_eq!(st, 200);
    assert!(!text_body.contains(&secret) && !text_body.contains(&secret[16..]), "{text_body}");
    let list: Value = serde_json::from_str(&text_body).unwrap();
    let listed = &list["keys"][0];
    assert_eq!((listed["id"].clone(), listed["description"].clone()), (key["id"].clone(), json!("CI pipeline")));
    assert!(listed["created_by"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(
        (listed["last_used_at"].clone(), listed["revoked_at"].clone(), listed["companion_of"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );

    // The description is required, 1–200 characters.
    for body in [json!({}), json!({"description": "   "}), json!({"description": "x".repeat(201)})] {
        let (st, b) = s.call("POST", &keys_path, Some(body), Some(&admin)).await;
        assert_eq!((st, code(&b)), (422, "validation_failed"), "{b}");
        assert!(b["error"]["details"]["fields"]["description"].is_string(), "{b}");
    }
    // A team member may create keys; another company may not even see them.
    // ada@example.com became a user at provisioning; the operator gives her a token.
    let (_, team) = s.call("GET", &format!("/api/v1/resources/{id}/members"), None, Some(&admin)).await;
    let ada_id = team["members"][0]["user_id"].as_str().unwrap();
    let (_, t) = s.op("POST", &format!("/api/v1/operator/users/{ada_id}/api-tokens"), None).await;
    let ada = t["token"].as_str().unwrap().to_string();
    let (st, mine) = s.call("POST", &keys_path, Some(json!({"description": "Ada's notebook"})), Some(&ada)).await;
    assert_eq!(st, 201, "{mine}");
    let (st, b) = s.call("GET", &keys_path, None, Some(&other_admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    let (st, b) =
        s.call("DELETE", &format!("{keys_path}/{}", key["id"].as_str().unwrap()), None, Some(&other_admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    let (_, list) = s.call("GET", &keys_path, None, Some(&ada)).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "newest first: {list}");
    assert_eq!(list["keys"][0]["id"], mine["id"]);

    // Revoked: 204, again 204, and listed with its instant.
    let revoke = format!("{keys_path}/{}", key["id"].as_str().unwrap());
    let (st, _) = s.call("DELETE", &revoke, None, Some(&admin)).await;
    assert_eq!(st, 204);
    let (st, _) = s.call("DELETE", &revoke, None, Some(&admin)).await;
    assert_eq!(st, 204);
    let (_, list) = s.call("GET", &keys_path, None, Some(&admin)).await;
    assert_eq!(list["keys"][1]["revoked_at"], START);
    let (st, b) = s.call("DELETE", &format!("{keys_path}/key_nope"), None, Some(&admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");

    // A knowledge base's key: its configuration carries the embeddings resource, with a
    // companion key listed there with `companion_of`.
    let e = provision(&s, &admin, embeddings("Search", "small")).await;
    let e_id = e["id"].as_str().unwrap().to_string();
    let kb = provision(&s, &admin, knowledge_base("Docs", &e_id)).await;
    let kb_id = kb["id"].as_str().unwrap().to_string();
    let (st, kb_key) = s
        .call("POST", &format!("/api/v1/resources/{kb_id}/keys"), Some(json!({"description": "RAG app"})), Some(&admin))
        .await;
    assert_eq!(st, 201, "{kb_key}");
    let config = genai_app::keys::decode_configuration_key(kb_key["configuration_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        (config["type"].as_str(), config["model"].as_str()),
        (Some("KNOWLEDGE_BASE"), Some("cohere-embed-english-v3"))
    );
    assert_eq!(config["accessToken"], kb_key["secret"]);
    let emb = &config["embeddings"];
    assert_eq!(
        (emb["id"].as_str(), emb["type"].as_str(), emb["name"].as_str()),
        (Some(e_id.as_str()), Some("EMBEDDINGS_GENERATION"), Some("Search"))
    );
    assert_eq!(emb["resourceBaseUrl"], format!("{}/runtime/v1/resources/{e_id}", s.base));
    let companion_secret = emb["accessToken"].as_str().unwrap();
    assert!(companion_secret.starts_with("gr_") && companion_secret != kb_key["secret"].as_str().unwrap());
    let (_, e_keys) = s.call("GET", &format!("/api/v1/resources/{e_id}/keys"), None, Some(&admin)).await;
    let companion = &e_keys["keys"][0];
    assert_eq!(companion["companion_of"].as_str(), Some(kb_id.as_str()), "{e_keys}");
    assert_eq!(emb["keyId"], companion["id"]);
    let (_, kb_keys) = s.call("GET", &format!("/api/v1/resources/{kb_id}/keys"), None, Some(&admin)).await;
    assert_eq!(kb_keys["keys"][0]["companion_of"], Value::Null);
    // Revoking the knowledge-base key revokes its companion.
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/v1/resources/{kb_id}/keys/{}", kb_key["id"].as_str().unwrap()),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(st, 204);
    let (_, e_keys) = s.call("GET", &format!("/api/v1/resources/{e_id}/keys"), None, Some(&admin)).await;
    assert_eq!(e_keys["keys"][0]["revoked_at"], START);

    // Deprovisioning: keys work until it takes effect, then all are revoked and no new one is
    // made (409 already_deprovisioned).
    let (st, sched) = s.call("POST", &format!("/api/v1/resources/{id}/deprovision"), None, Some(&admin)).await;
    assert_eq!(st, 200, "{sched}");
    let (st, late) = s.call("POST", &keys_path, Some(json!({"description": "still fine"})), Some(&admin)).await;
    assert_eq!(st, 201, "a resource whose deprovisioning is scheduled takes keys: {late}");
    s.set_clock("2026-04-10T09:00:00Z").await;
    let (_, list) = s.call("GET", &keys_path, None, Some(&admin)).await;
    for k in list["keys"].as_array().unwrap() {
        assert!(k["revoked_at"].is_string(), "every key revoked: {list}");
    }
    assert_eq!(list["keys"][0]["revoked_at"], "2026-04-10T09:00:00Z", "at the effective instant");
    let (st, b) = s.call("POST", &keys_path, Some(json!({"description": "too late"})), Some(&admin)).await;
    assert_eq!((st, code(&b)), (409, "already_deprovisioned"), "{b}");
    let (st, b) = s
        .call("POST", &format!("/api/v1/resources/{id}/members"), Some(json!({"email": "z@example.com"})), Some(&admin))
        .await;
    assert_eq!((st, code(&b)), (409, "already_deprovisioned"), "{b}");
}

/// Opens the server's SQLite database from the test and commits usage as the runtime would.
async fn commit_usage(database: &str, resource: &str, month_start: &str, days: &[(&str, i64, i64, i64)]) {
    let store = genai_store_sqlite::open(database).await.expect("open the server's database");
    let month_start = genai_core::calendar::parse_instant(month_start).unwrap();
    let usage = days
        .iter()
        .map(|(day, input, output, calls)| UsageDelta {
            resource_id: genai_core::ResourceId(resource.to_string()),
            month_start,
            day: day.to_string(),
            used: genai_core::Tokens::new(*input, *output),
            api_calls: *calls,
        })
        .collect();
    store.commit_usage(&UsageBatch { holder: "test".into(), usage, ..UsageBatch::default() }).await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_shows_every_day_and_the_csv_days_with_usage() {
    let s = TestServer::start(&["--manual-clock", START]);
    let (a, admin) = s.company(500).await;
    let (_, other_admin) = s.company(500).await;
    let r = provision(&s, &admin, text("Support bot", "small")).await;
    let id = r["id"].as_str().unwrap().to_string();
    s.set_clock("2026-03-20T12:00:00Z").await;
    commit_usage(
        &s.database,
        &id,
        START,
        &[("2026-03-10", 1000, 200, 3), ("2026-03-12", 50, 5, 1), ("2026-03-12", 50, 5, 1), ("2026-03-19", 7, 0, 1)],
    )
    .await;

    // The default range: the current bundle month, every day of it.
    let path = format!("/api/v1/resources/{id}/consumption");
    let (st, c) = s.call("GET", &path, None, Some(&admin)).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["bundle_month"], json!({"start": START, "end": "2026-04-10T09:00:00Z"}));
    assert_eq!(c["quota"], json!({"input_tokens": 2_500_000, "output_tokens": 1_250_000}));
    assert_eq!(c["used"], json!({"input_tokens": 1107, "output_tokens": 210, "api_calls": 6}));
    let days = c["days"].as_array().unwrap();
    // 10 Mar 09:00 to 10 Apr 09:00: both partial days are in it.
    assert_eq!(days.len(), 32, "10 Mar to 10 Apr");
    assert_eq!((days[0]["date"].as_str(), days[31]["date"].as_str()), (Some("2026-03-10"), Some("2026-04-10")));
    assert_eq!(days[0], json!({"date": "2026-03-10", "input_tokens": 1000, "output_tokens": 200, "api_calls": 3}));
    assert_eq!(days[1], json!({"date": "2026-03-11", "input_tokens": 0, "output_tokens": 0, "api_calls": 0}));
    assert_eq!(days[2], json!({"date": "2026-03-12", "input_tokens": 100, "output_tokens": 10, "api_calls": 2}));

    // A chosen range; `from` alone runs to today.
    let (_, c) = s.call("GET", &format!("{path}?from=2026-03-11&to=2026-03-12"), None, Some(&admin)).await;
    let dates: Vec<&str> = c["days"].as_array().unwrap().iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2026-03-11", "2026-03-12"]);
    assert_eq!(c["used"]["api_calls"], 6, "`used` is the bundle month's, whatever the range");
    let (_, c) = s.call("GET", &format!("{path}?from=2026-03-18"), None, Some(&admin)).await;
    assert_eq!((c["from"].as_str(), c["to"].as_str()), (Some("2026-03-18"), Some("2026-03-20")));

    // Bad ranges name the parameter.
    for (query, status, expected, field) in [
        ("from=yesterday", 400, "invalid_request", "from"),
        ("from=2026-03-01&to=2026-3-5", 400, "invalid_request", "to"),
        ("from=2026-03-12&to=2026-03-11", 422, "validation_failed", "from"),
        ("to=2026-03-11", 422, "validation_failed", "from"),
        ("from=2025-01-01&to=2026-03-01", 422, "validation_failed", "to"),
    ] {
        let (st, b) = s.call("GET", &format!("{path}?{query}"), None, Some(&admin)).await;
        assert_eq!((st, code(&b)), (status, expected), "{query}: {b}");
        let named = if status == 400 {
            b["error"]["details"]["field"].as_str()
        } else {
            b["error"]["details"]["fields"].as_object().and_then(|f| f.keys().next()).map(String::as_str)
        };
        assert_eq!(named, Some(field), "{query}: {b}");
    }

    // The CSV: days with usage only.
    let (st, headers, csv) = raw_get(&s, &format!("{path}.csv"), &admin).await;
    assert_eq!(st, 200, "{csv}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"consumption-"));
    assert_eq!(
        csv,
        "date,input_tokens,output_tokens,api_calls\n2026-03-10,1000,200,3\n2026-03-12,100,10,2\n2026-03-19,7,0,1\n"
    );
    let (_, _, csv) = raw_get(&s, &format!("{path}.csv?from=2026-03-11&to=2026-03-18"), &admin).await;
    assert_eq!(csv, "date,input_tokens,output_tokens,api_calls\n2026-03-12,100,10,2\n");
    let (st, _, body) = raw_get(&s, &format!("{path}.csv?from=2026-03-12&to=2026-03-11"), &admin).await;
    assert_eq!(st, 422, "{body}");

    // The Resource answers carry the bundle month's usage.
    let (_, one) = s.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin)).await;
    assert_eq!(
        one["usage"],
        json!({"input_tokens": 1107, "output_tokens": 210, "input_quota": 2_500_000, "output_quota": 1_250_000})
    );
    let (_, list) = s.call("GET", "/api/v1/resources", None, Some(&admin)).await;
    assert_eq!(list["resources"][0]["usage"]["input_tokens"], 1107);

    // A member of the team reads it too; another member of the company and another company do not.
    let (_, _, member) = person(&s, &a, "member", "viewer@example.com").await;
    let (st, _) = s.call("GET", &path, None, Some(&member)).await;
    assert_eq!(st, 404);
    s.call(
        "POST",
        &format!("/api/v1/resources/{id}/members"),
        Some(json!({"email": "viewer@example.com"})),
        Some(&admin),
    )
    .await;
    let (st, c) = s.call("GET", &path, None, Some(&member)).await;
    assert_eq!((st, c["used"]["input_tokens"].as_i64()), (200, Some(1107)));
    let (st, b) = s.call("GET", &path, None, Some(&other_admin)).await;
    assert_eq!((st, code(&b)), (404, "not_found"));

    // The next bundle month starts from zero; the days of the last one are still there.
    s.set_clock("2026-04-10T09:00:00Z").await;
    let (_, c) = s.call("GET", &path, None, Some(&admin)).await;
    assert_eq!(c["used"], json!({"input_tokens": 0, "output_tokens": 0, "api_calls": 0}));
    assert_eq!(c["bundle_month"]["start"], "2026-04-10T09:00:00Z");
    let (_, _, csv) = raw_get(&s, &format!("{path}.csv?from=2026-03-01"), &admin).await;
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let (_, one) = s.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin)).await;
    assert_eq!(one["usage"]["input_tokens"], 0);
}

// ---- the CLI -------------------------------------------------------------------------------

fn cli(s: &TestServer, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genai"))
        .args(args)
        .env("GENAI_SERVER", &s.base)
        .env("GENAI_TOKEN", token)
        .env_remove("GENAI_OPERATOR_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run genai")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_keys_members_and_shows_usage() {
    let s = TestServer::start(&["--manual-clock", START]);
    let (_, admin) = s.company(500).await;
    let r = provision(&s, &admin, text("Support bot", "small")).await;
    let id = r["id"].as_str().unwrap().to_string();

    // keys create: the secret alone on stdout, the configuration key and the reminder on stderr.
    let created = cli(&s, &admin, &["keys", "create", &id, "--description", "From the CLI"]);
    let secret = ok(&created).trim().to_string();
    assert!(secret.starts_with("gr_") && secret.len() == 3 + 12 + 1 + 52, "{secret}");
    let err = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(err.contains("shown only once") && err.contains("configuration key: "), "{err}");
    let listed = ok(&cli(&s, &admin, &["keys", "list", &id]));
    assert!(listed.starts_with("ID") && listed.contains("From the CLI") && !listed.contains(&secret), "{listed}");
    let json: Value = serde_json::from_str(&ok(&cli(&s, &admin, &["--json", "keys", "list", &id]))).unwrap();
    let key_id = json["keys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ok(&cli(&s, &admin, &["keys", "revoke", &id, &key_id])), format!("Revoked key {key_id}.\n"));
    let bad = cli(&s, &admin, &["keys", "create", &id, "--description", " "]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("description:"), "{}", String::from_utf8_lossy(&bad.stderr));

    // members add / list / remove.
    let added = ok(&cli(&s, &admin, &["members", "add", &id, "new@example.com", "--name", "New Person"]));
    assert!(added.contains("New Person <new@example.com> is a member"), "{added}");
    let members = ok(&cli(&s, &admin, &["members", "list", &id]));
    assert!(members.contains("ada@example.com") && members.contains("new@example.com"), "{members}");
    let json: Value = serde_json::from_str(&ok(&cli(&s, &admin, &["--json", "members", "list", &id]))).unwrap();
    let new_id = json["members"][1]["user_id"].as_str().unwrap().to_string();
    ok(&cli(&s, &admin, &["members", "remove", &id, &new_id]));
    let ada_id = json["members"][0]["user_id"].as_str().unwrap().to_string();
    let last = cli(&s, &admin, &["members", "remove", &id, &ada_id]);
    assert_eq!(last.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&last.stderr).contains("(last_member)"));

    // usage: a table by default, the server's JSON with --json.
    s.set_clock("2026-03-12T00:00:00Z").await;
    commit_usage(&s.database, &id, START, &[("2026-03-11", 1_250_000, 625_000, 12)]).await;
    let table = ok(&cli(&s, &admin, &["usage", &id, "--from", "2026-03-10", "--to", "2026-03-12"]));
    assert!(table.contains("Input tokens   1,250,000 of 2,500,000 (50.0%)"), "{table}");
    assert!(table.contains("API calls      12"), "{table}");
    assert!(table.contains("DATE        INPUT TOKENS  OUTPUT TOKENS  API CALLS"), "{table}");
    assert!(table.contains("2026-03-11  1,250,000     625,000        12"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("2026-03-1")).count(), 3, "every day of the range: {table}");
    let used_only = ok(&cli(&s, &admin, &["usage", &id, "--from", "2026-03-10", "--to", "2026-03-12", "--used-days"]));
    assert_eq!(used_only.matches("\n2026-03-1").count(), 1, "{used_only}");
    let json: Value = serde_json::from_str(&ok(&cli(&s, &admin, &["--json", "usage", &id]))).unwrap();
    assert_eq!(json["used"]["api_calls"], 12);
    let bad = cli(&s, &admin, &["usage", &id, "--to", "2026-03-12"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("from: is required"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
