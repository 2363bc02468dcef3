//! HTTP tests of the Control Center and Operator APIs against the real binary (`API.md`):
//! access rules, tenant isolation, validation, idempotency, pagination, the knowledge-base /
//! embeddings rules, and the ledger under concurrent requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{embeddings, knowledge_base, text, TestServer};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_tokens_are_enforced_on_every_path() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-05T00:00:00Z"]);
    let (company, admin) = srv.company(100).await;
    let member = srv.user(&company, "member").await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("A", "small")), Some(&admin)).await;
    let rid = r["id"].as_str().unwrap();

    let company_paths = [
        ("GET", "/api/v1/eligibility".to_string()),
        ("GET", "/api/v1/tokens".to_string()),
        ("GET", "/api/v1/tokens/transactions".to_string()),
        ("GET", "/api/v1/resources".to_string()),
        ("GET", format!("/api/v1/resources/{rid}")),
        ("POST", "/api/v1/resources".to_string()),
        ("POST", "/api/v1/resources/specification".to_string()),
        ("POST", format!("/api/v1/resources/{rid}/deprovision")),
        ("GET", "/api/v1/audit-events".to_string()),
    ];
    for (method, path) in &company_paths {
        let body = (*method == "POST").then(|| text("B", "small"));
        let (s, b) = srv.call(method, path, body.clone(), None).await;
        assert_eq!((s, code(&b)), (401, "unauthenticated"), "{method} {path} without a token");
        let (s, b) = srv.call(method, path, body.clone(), Some("genai_wrong")).await;
        assert_eq!((s, code(&b)), (401, "unauthenticated"), "{method} {path} with an unknown token");
        let (s, b) = srv.call(method, path, body.clone(), Some(&member)).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{method} {path} as a member");
        let (s, b) = srv.op(method, path, body).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{method} {path} as the operator");
    }
    let operator_paths = [
        ("POST", "/api/v1/operator/companies".to_string()),
        ("PATCH", format!("/api/v1/operator/companies/{company}")),
        ("POST", format!("/api/v1/operator/companies/{company}/token-grants")),
        ("POST", format!("/api/v1/operator/companies/{company}/users")),
        ("GET", "/api/v1/operator/clock".to_string()),
        ("POST", "/api/v1/operator/clock".to_string()),
        ("PATCH", "/api/v1/operator/users/usr_x".to_string()),
        ("GET", "/api/v1/operator/users/usr_x/api-tokens".to_string()),
        ("POST", "/api/v1/operator/users/usr_x/api-tokens".to_string()),
        ("DELETE", "/api/v1/operator/api-tokens/tok_x".to_string()),
    ];
    for (method, path) in &operator_paths {
        let (s, b) = srv.call(method, path, Some(json!({})), Some(&admin)).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{method} {path} as a company admin");
    }
    // Nothing changed through the refused calls.
    let t = srv.ledger(&admin).await;
    assert_eq!((t["total"].as_i64(), t["allocated"].as_i64()), (Some(100), Some(30)));
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_never_see_each_other() {
    let srv = TestServer::start(&[]);
    let (_, a) = srv.company(100).await;
    let (_, b) = srv.company(100).await;
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(text("Shared name", "small")), Some(&a)).await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/api/v1/resources/{id}")),
        ("POST", format!("/api/v1/resources/{id}/deprovision")),
        ("POST", format!("/api/v1/resources/{id}/cancel-downgrade")),
    ] {
        let (s, body) = srv.call(method, &path, None, Some(&b)).await;
        assert_eq!((s, code(&body)), (404, "not_found"), "{path}");
    }
    let (s, body) =
        srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "large"})), Some(&b)).await;
    assert_eq!((s, code(&body)), (404, "not_found"));
    let (_, list) = srv.call("GET", "/api/v1/resources", None, Some(&b)).await;
    assert_eq!(list["resources"].as_array().unwrap().len(), 0);
    // Names are unique per company only.
    let (s, _) = srv.call("POST", "/api/v1/resources", Some(text("Shared name", "small")), Some(&b)).await;
    assert_eq!(s, 201);
    let (_, events) = srv.call("GET", "/api/v1/audit-events", None, Some(&b)).await;
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["resource_id"] != id), "{events}");
    let (_, txs) = srv.call("GET", "/api/v1/tokens/transactions", None, Some(&b)).await;
    assert!(txs["transactions"].as_array().unwrap().iter().all(|t| t["resource_id"] != id));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_the_field_named_and_nothing_changes() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(100).await;
    // Every invalid field at once.
    let body = json!({"type": "text_generation", "display_name": "   ", "environment": "test", "region": "mars-1",
        "cross_region_inference": true, "model": "gpt-9", "plan": "small", "user": {"name": "", "email": "nope"}});
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(body), Some(&admin)).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"), "{b}");
    let fields = b["error"]["details"]["fields"].as_object().unwrap();
    for f in ["display_name", "region", "model", "user.name", "user.email"] {
        assert!(fields.contains_key(f), "{f} missing in {b}");
    }
    // The model/region/inference rule names the model, the region and what would work.
    let mut body = text("Bad mode", "small");
    body["cross_region_inference"] = json!(false);
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(body), Some(&admin)).await;
    assert_eq!(s, 422);
    let msg = b["error"]["details"]["fields"]["cross_region_inference"].as_str().unwrap();
    assert!(msg.contains("claude-sonnet-4.6") && msg.contains("eu-central-1") && msg.contains("cross-region"), "{msg}");
    // Missing fields are validation errors; wrong JSON types and unknown enum values are 400.
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(json!({"type": "text_generation"})), Some(&admin)).await;
    assert_eq!(s, 422);
    assert!(b["error"]["details"]["fields"].as_object().unwrap().contains_key("plan"));
    for (body, field) in [
        (json!({"type": "spaceship"}), "type"),
        (json!({"type": "text_generation", "environment": "staging"}), "environment"),
        (json!({"type": "text_generation", "plan": "huge"}), "plan"),
        (json!({"type": "text_generation", "display_name": 7}), "display_name"),
        (json!({"type": "text_generation", "cross_region_inference": "yes"}), "cross_region_inference"),
        (json!({"type": "text_generation", "user": {"email": ["x"]}}), "user.email"),
    ] {
        let (s, b) = srv.call("POST", "/api/v1/resources", Some(body.clone()), Some(&admin)).await;
        assert_eq!((s, code(&b)), (400, "invalid_request"), "{body}");
        assert_eq!(b["error"]["details"]["field"], field, "{b}");
    }
    let (s, b) = srv.call_raw("POST", "/api/v1/resources", "{\"type\": ", &admin).await;
    assert_eq!((s, code(&b)), (400, "invalid_request"));
    let (s, b) = srv.call_raw("POST", "/api/v1/resources", "[1, 2]", &admin).await;
    assert_eq!((s, code(&b)), (400, "invalid_request"));
    // A display name that is too long, or has control characters.
    for name in ["x".repeat(65), "tab\tname".to_string()] {
        let (s, b) = srv.call("POST", "/api/v1/resources", Some(text(&name, "small")), Some(&admin)).await;
        assert_eq!(s, 422, "{b}");
        assert!(b["error"]["details"]["fields"]["display_name"].is_string());
    }
    // 64 characters after trimming is fine; uniqueness is case-insensitive among live resources.
    let name = format!("  {}  ", "n".repeat(64));
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(text(&name, "small")), Some(&admin)).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["display_name"], "n".repeat(64));
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(text(&"N".repeat(64), "small")), Some(&admin)).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"), "{b}");
    assert!(b["error"]["details"]["fields"]["display_name"].as_str().unwrap().contains("already"));
    // Bad plan-change bodies.
    let id = r["id"].as_str().unwrap();
    let (s, b) = srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({})), Some(&admin)).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
    let (s, b) =
        srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "tiny"})), Some(&admin)).await;
    assert_eq!((s, code(&b)), (400, "invalid_request"));
    let (s, b) =
        srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "small"})), Some(&admin)).await;
    assert_eq!((s, code(&b)), (422, "plan_unchanged"));
    // Only the one valid resource was created.
    let t = srv.ledger(&admin).await;
    assert_eq!(t["allocated"], 30);
    // Unknown routes and methods answer in the error shape too.
    let (s, b) = srv.call("GET", "/api/v1/nothing-here", None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (s, b) = srv.call("DELETE", "/api/v1/resources", None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (405, "method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn eligibility_gates_provisioning_and_upgrades() {
    let srv = TestServer::start(&[]);
    let (company, admin) = srv.company(0).await;
    let (_, e) = srv.call("GET", "/api/v1/eligibility", None, Some(&admin)).await;
    assert_eq!(e["eligible"], false);
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(text("A", "small")), Some(&admin)).await;
    assert_eq!((s, code(&b)), (403, "not_eligible"), "{b}");
    let failing: Vec<&str> = b["error"]["details"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["token_entitlements"]);

    srv.op("POST", &format!("/api/v1/operator/companies/{company}/token-grants"), Some(json!({"tokens": 40}))).await;
    let (s, r) = srv.call("POST", "/api/v1/resources", Some(text("A", "small")), Some(&admin)).await;
    assert_eq!(s, 201);
    // 10 available, medium needs 30 more.
    let (s, b) = srv
        .call(
            "POST",
            &format!("/api/v1/resources/{}/plan", r["id"].as_str().unwrap()),
            Some(json!({"plan": "medium"})),
            Some(&admin),
        )
        .await;
    assert_eq!((s, code(&b)), (409, "insufficient_tokens"));
    assert_eq!(b["error"]["details"], json!({"required": 30, "available": 10}));

    // No enterprise subscription: the verbatim platform-account warning, and no upgrade either.
    let (s, _) = srv
        .op(
            "PATCH",
            &format!("/api/v1/operator/companies/{company}"),
            Some(json!({"enterprise_subscriptions": 0, "price_list": "FY20"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, e) = srv.call("GET", "/api/v1/eligibility", None, Some(&admin)).await;
    let checks = e["checks"].as_array().unwrap();
    let warn = checks.iter().find(|c| c["name"] == "enterprise_subscription").unwrap();
    assert_eq!(warn["message"], "We couldn't retrieve your correct platform account, which is required to access available tokens and create resources. Please contact Mendix Support for assistance.");
    assert_eq!(checks.iter().find(|c| c["name"] == "subscription_plan").unwrap()["ok"], false);
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(text("B", "small")), Some(&admin)).await;
    assert_eq!((s, code(&b)), (403, "not_eligible"));
    // Downgrades and deprovisioning need no eligibility.
    let id = r["id"].as_str().unwrap();
    let (s, _) = srv.call("POST", &format!("/api/v1/resources/{id}/deprovision"), None, Some(&admin)).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_make_retries_safe() {
    let srv = TestServer::start(&[]);
    let (company, admin) = srv.company(100).await;
    let body = text("Once", "small");
    let (s1, r1) = srv
        .call_with("POST", "/api/v1/resources", Some(body.clone()), Some(&admin), &[("Idempotency-Key", "k-1")])
        .await;
    let (s2, r2) = srv
        .call_with("POST", "/api/v1/resources", Some(body.clone()), Some(&admin), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(r1["id"], r2["id"]);
    let (s, b) = srv
        .call_with(
            "POST",
            "/api/v1/resources",
            Some(text("Other", "small")),
            Some(&admin),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!((s, code(&b)), (409, "idempotency_conflict"));
    let t = srv.ledger(&admin).await;
    assert_eq!(t["allocated"], 30);
    // A replay is answered even after the balance ran out.
    srv.call("POST", "/api/v1/resources", Some(text("Rest", "medium")), Some(&admin)).await;
    let (s, r3) =
        srv.call_with("POST", "/api/v1/resources", Some(body), Some(&admin), &[("Idempotency-Key", "k-1")]).await;
    assert_eq!((s, &r3["id"]), (201, &r1["id"]));

    // Grants, too.
    let path = format!("/api/v1/operator/companies/{company}/token-grants");
    let op = srv.operator.clone();
    let g = json!({"tokens": 50, "note": "top-up"});
    let (_, a) = srv.call_with("POST", &path, Some(g.clone()), Some(&op), &[("Idempotency-Key", "g-1")]).await;
    let (_, b) = srv.call_with("POST", &path, Some(g), Some(&op), &[("Idempotency-Key", "g-1")]).await;
    assert_eq!(a["transaction_id"], b["transaction_id"]);
    let t = srv.ledger(&admin).await;
    assert_eq!(t["total"], 150);
    let (s, b) =
        srv.call_with("POST", &path, Some(json!({"tokens": 51})), Some(&op), &[("Idempotency-Key", "g-1")]).await;
    assert_eq!((s, code(&b)), (409, "idempotency_conflict"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_walks_every_resource_once() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(1000).await;
    let mut created = Vec::new();
    for i in 0..23 {
        let body = if i % 3 == 0 { embeddings(&format!("E{i}"), "small") } else { text(&format!("T{i}"), "small") };
        let (s, r) = srv.call("POST", "/api/v1/resources", Some(body), Some(&admin)).await;
        assert_eq!(s, 201, "{r}");
        created.push(r["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/resources?limit=10".to_string(),
            Some(c) => format!("/api/v1/resources?limit=10&cursor={c}"),
        };
        let (s, page) = srv.call("GET", &path, None, Some(&admin)).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        seen.extend(page["resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((pages, &seen), (3, &created), "creation order, every resource once");
    let (_, all) = srv.call("GET", "/api/v1/resources", None, Some(&admin)).await;
    assert_eq!(all["resources"].as_array().unwrap().len(), 23);
    assert!(all["next_cursor"].is_null());
    let (_, emb) = srv.call("GET", "/api/v1/resources?type=embeddings_generation", None, Some(&admin)).await;
    assert_eq!(emb["resources"].as_array().unwrap().len(), 8);
    for bad in ["?limit=0", "?limit=abc", "?type=robots", "?cursor=zzz", "?include_deprovisioned=maybe"] {
        let (s, _) = srv.call("GET", &format!("/api/v1/resources{bad}"), None, Some(&admin)).await;
        assert!(s == 400 || s == 422, "{bad} answered {s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn knowledge_bases_never_outlive_their_embeddings() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-10T12:00:00Z"]);
    let (_, admin) = srv.company(500).await;
    let (_, e) = srv.call("POST", "/api/v1/resources", Some(embeddings("Emb", "small")), Some(&admin)).await;
    let eid = e["id"].as_str().unwrap().to_string();
    // Wrong links are refused.
    let (_, t) = srv.call("POST", "/api/v1/resources", Some(text("Txt", "small")), Some(&admin)).await;
    let (s, b) = srv
        .call("POST", "/api/v1/resources", Some(knowledge_base("KB0", t["id"].as_str().unwrap())), Some(&admin))
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b["error"]["details"]["fields"]["embeddings_resource_id"].is_string());
    let (s, b) = srv.call("POST", "/api/v1/resources", Some(knowledge_base("KB0", "res_nope")), Some(&admin)).await;
    assert_eq!(s, 422, "{b}");

    srv.set_clock("2026-01-20T12:00:00Z").await;
    let (s, kb) = srv.call("POST", "/api/v1/resources", Some(knowledge_base("KB", &eid)), Some(&admin)).await;
    assert_eq!(s, 201, "{kb}");
    assert_eq!((kb["model"].clone(), kb["cloud_tokens"].clone()), (Value::Null, json!(48)));
    assert_eq!(kb["usage"]["storage_quota_bytes"], 10_000_000_000i64);
    let kid = kb["id"].as_str().unwrap().to_string();
    let (s, b) =
        srv.call("POST", &format!("/api/v1/resources/{kid}/plan"), Some(json!({"plan": "small"})), Some(&admin)).await;
    assert_eq!((s, code(&b)), (422, "plan_change_not_supported"));

    let (s, b) = srv.call("POST", &format!("/api/v1/resources/{eid}/deprovision"), None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (409, "embeddings_in_use"), "{b}");
    assert_eq!(b["error"]["details"]["knowledge_bases"][0]["id"], kid);

    // The KB goes at the end of its own bundle month (20 Feb); the embeddings resource's own month
    // ends 10 Feb, so it waits for the KB.
    let (_, k) = srv.call("POST", &format!("/api/v1/resources/{kid}/deprovision"), None, Some(&admin)).await;
    assert_eq!(k["deprovisioning_at"], "2026-02-20T12:00:00Z");
    let (s, e2) = srv.call("POST", &format!("/api/v1/resources/{eid}/deprovision"), None, Some(&admin)).await;
    assert_eq!(s, 200, "{e2}");
    assert_eq!(e2["deprovisioning_at"], "2026-02-20T12:00:00Z");
    assert!(e2["status_label"].as_str().unwrap().starts_with("DEPROVISIONING SCHEDULED · 20 Feb 2026"));
    // The KB cannot come back while its embeddings resource is leaving.
    let (s, b) = srv.call("POST", &format!("/api/v1/resources/{kid}/cancel-deprovision"), None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (409, "deprovisioning_scheduled"), "{b}");
    let t = srv.ledger(&admin).await;
    assert_eq!(t["pending_release"], 54);

    let moved = srv.set_clock("2026-02-21T00:00:00Z").await;
    assert_eq!(moved["applied"], 2);
    let t = srv.ledger(&admin).await;
    assert_eq!((t["allocated"].as_i64(), t["pending_release"].as_i64()), (Some(30), Some(0)));
    let (_, gone) = srv.call("GET", &format!("/api/v1/resources/{eid}"), None, Some(&admin)).await;
    assert_eq!(
        (gone["status"].as_str(), gone["deprovisioned_at"].as_str()),
        (Some("deprovisioned"), Some("2026-02-20T12:00:00Z"))
    );
    let (s, b) = srv.call("POST", &format!("/api/v1/resources/{eid}/cancel-deprovision"), None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (409, "already_deprovisioned"));
    // The releases are in the ledger at the effective instant, newest first, exactly once.
    let (_, txs) = srv.call("GET", "/api/v1/tokens/transactions", None, Some(&admin)).await;
    let releases: Vec<&Value> =
        txs["transactions"].as_array().unwrap().iter().filter(|t| t["kind"] == "release").collect();
    assert_eq!(releases.len(), 2);
    assert!(releases.iter().all(|t| t["at"] == "2026-02-20T12:00:00Z"));
}

#[tokio::test(flavor = "multi_thread")]
async fn state_conflicts_answer_their_codes() {
    let srv = TestServer::start(&["--manual-clock", "2026-03-01T00:00:00Z"]);
    let (_, admin) = srv.company(500).await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("R", "medium")), Some(&admin)).await;
    let id = r["id"].as_str().unwrap();
    let p = |a: &str| format!("/api/v1/resources/{id}/{a}");
    let (s, b) = srv.call("POST", &p("cancel-downgrade"), None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (409, "no_downgrade_scheduled"));
    let (s, b) = srv.call("POST", &p("cancel-deprovision"), None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (409, "no_deprovisioning_scheduled"));
    // A downgrade, replaced by another, then dropped by an upgrade.
    let (_, d) = srv.call("POST", &p("plan"), Some(json!({"plan": "small"})), Some(&admin)).await;
    assert_eq!(d["scheduled_downgrade"]["plan"], "small");
    let (_, u) = srv.call("POST", &p("plan"), Some(json!({"plan": "large"})), Some(&admin)).await;
    assert_eq!(
        (u["plan"].as_str(), u["status"].as_str(), &u["scheduled_downgrade"]),
        (Some("large"), Some("active"), &Value::Null)
    );
    assert_eq!(u["usage"]["input_quota"], 10_000_000);
    // Deprovisioning drops a scheduled downgrade; then only cancelling it is allowed.
    srv.call("POST", &p("plan"), Some(json!({"plan": "medium"})), Some(&admin)).await;
    let (_, dep) = srv.call("POST", &p("deprovision"), None, Some(&admin)).await;
    assert_eq!((dep["status"].as_str(), &dep["scheduled_downgrade"]), (Some("deprovisioning_scheduled"), &Value::Null));
    for (action, body) in [("plan", Some(json!({"plan": "small"}))), ("cancel-downgrade", None), ("deprovision", None)]
    {
        let (s, b) = srv.call("POST", &p(action), body, Some(&admin)).await;
        assert_eq!((s, code(&b)), (409, "deprovisioning_scheduled"), "{action}");
    }
    let t = srv.ledger(&admin).await;
    assert_eq!(t["pending_release"], 120);
    let (_, back) = srv.call("POST", &p("cancel-deprovision"), None, Some(&admin)).await;
    assert_eq!((back["status"].as_str(), &back["deprovisioning_at"]), (Some("active"), &Value::Null));
    // Every change is in the audit log with before and after.
    let (_, events) = srv.call("GET", "/api/v1/audit-events", None, Some(&admin)).await;
    let actions: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions[..6],
        [
            "resource.deprovision_cancelled",
            "resource.deprovision_scheduled",
            "resource.downgrade_scheduled",
            "resource.upgraded",
            "resource.downgrade_scheduled",
            "resource.provisioned"
        ]
    );
    let upgraded = &events["events"][3];
    assert_eq!(
        (upgraded["details"]["before"]["plan"].as_str(), upgraded["details"]["after"]["plan"].as_str()),
        (Some("medium"), Some("large"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn specification_previews_without_storing() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-31T10:00:00Z"]);
    let (_, admin) = srv.company(100).await;
    let (s, spec) =
        srv.call("POST", "/api/v1/resources/specification", Some(text("Preview", "large")), Some(&admin)).await;
    assert_eq!(s, 200, "{spec}");
    assert_eq!(spec["cloud_tokens"], 120);
    assert_eq!((spec["available_before"].as_i64(), spec["available_after"].as_i64()), (Some(100), Some(-20)));
    assert_eq!(spec["first_bundle_month"], json!({"start": "2026-01-31T10:00:00Z", "end": "2026-02-28T10:00:00Z"}));
    assert_eq!(spec["quota"], json!({"input_tokens": 10_000_000, "output_tokens": 5_000_000}));
    assert!(spec["problems"].as_array().unwrap().iter().any(|p| p["code"] == "insufficient_tokens"), "{spec}");
    let (_, ok) =
        srv.call("POST", "/api/v1/resources/specification", Some(text("Preview", "small")), Some(&admin)).await;
    assert_eq!((ok["available_after"].as_i64(), ok["problems"].as_array().map(Vec::len)), (Some(70), Some(0)));
    let t = srv.ledger(&admin).await;
    assert_eq!(t["allocated"], 0);
}

/// SPEC §3: no interleaving of requests can spend more than is available.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_provisionings_and_upgrades_never_overspend() {
    let srv = std::sync::Arc::new(TestServer::start(&[]));
    let (_, admin) = srv.company(300).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (srv, admin) = (srv.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            srv.call("POST", "/api/v1/resources", Some(text(&format!("C{i}"), "small")), Some(&admin)).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            201 => created += 1,
            409 => assert_eq!(code(&b), "insufficient_tokens"),
            403 => assert_eq!(code(&b), "not_eligible"), // once the balance is exactly 0
            other => panic!("unexpected {other} {b}"),
        }
    }
    assert_eq!(created, 10);
    let t = srv.ledger(&admin).await;
    assert_eq!((t["available"].as_i64(), t["allocated"].as_i64()), (Some(0), Some(300)));

    // Upgrades racing for the same tokens: 100 available, each small→large costs 90 more.
    let srv2 = std::sync::Arc::new(TestServer::start(&[]));
    let (_, admin2) = srv2.company(250).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, r) = srv2.call("POST", "/api/v1/resources", Some(text(&format!("U{i}"), "small")), Some(&admin2)).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for id in ids {
        let (srv, admin) = (srv2.clone(), admin2.clone());
        tasks.push(tokio::spawn(async move {
            srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "large"})), Some(&admin))
                .await
                .0
        }));
    }
    let mut upgraded = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            upgraded += 1;
        }
    }
    assert_eq!(upgraded, 1);
    let t = srv2.ledger(&admin2).await;
    assert_eq!(t["available"], 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_is_served_and_can_be_replaced() {
    let srv = TestServer::start(&[]);
    let (_, admin) = srv.company(10).await;
    let (s, c) = srv.call("GET", "/api/v1/catalog", None, Some(&admin)).await;
    assert_eq!(s, 200);
    assert_eq!(c["regions"].as_array().unwrap().len(), 2);
    assert_eq!(c["models"].as_array().unwrap().len(), 10);
    let smol = c["models"].as_array().unwrap().iter().find(|m| m["id"] == "smollm2-135m-instruct").unwrap();
    assert_eq!(smol["regions"], json!({"eu-central-1": "both", "ca-central-1": "both"}));
    let minilm = c["models"].as_array().unwrap().iter().find(|m| m["id"] == "all-minilm-l6-v2").unwrap();
    assert_eq!(minilm["type"], "embeddings_generation");
    assert_eq!(c["environments"], json!(["test", "acceptance", "production"]));
    let sonnet3 = c["models"].as_array().unwrap().iter().find(|m| m["id"] == "claude-sonnet-3").unwrap();
    assert_eq!(sonnet3["regions"], json!({"ca-central-1": "in_region_only"}));

    let dir = support::temp_dir("catalog");
    let custom = dir.join("catalog.toml");
    std::fs::write(
        &custom,
        "[[regions]]\nid = \"us-east-1\"\nname = \"US East\"\n\n[[models]]\nid = \"m1\"\nname = \"Model One\"\ntype = \"text_generation\"\nregions = { \"us-east-1\" = \"both\" }\n\n[[plans]]\ntype = \"text_generation\"\nsize = \"small\"\ncloud_tokens = 5\ninput_tokens = 10\noutput_tokens = 5\n",
    )
    .unwrap();
    let srv2 = TestServer::start(&["--catalog", custom.to_str().unwrap()]);
    let (_, admin2) = srv2.company(10).await;
    let (_, c2) = srv2.call("GET", "/api/v1/catalog", None, Some(&admin2)).await;
    assert_eq!(c2["models"][0]["id"], "m1");
    let body = json!({"type": "text_generation", "display_name": "X", "environment": "test", "region": "us-east-1",
        "cross_region_inference": false, "model": "m1", "plan": "small", "user": {"name": "A", "email": "a@b.co"}});
    let (s, r) = srv2.call("POST", "/api/v1/resources", Some(body), Some(&admin2)).await;
    assert_eq!((s, r["cloud_tokens"].as_i64()), (201, Some(5)), "{r}");

    // An invalid file is refused at start-up with the line and the reason.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[regions]]\nid = \"r\"\nname = \"R\"\n\n[[plans]]\ntype = \"text_generation\"\nsize = \"huge\"\ncloud_tokens = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_genai"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &format!("sqlite://{}/x.db", dir.display()),
            "--catalog",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 7") && err.contains("huge"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_and_api_browser_are_served() {
    let srv = TestServer::start(&[]);
    let (s, doc) = srv.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/resources/{id}/plan"]["post"].is_object());
    let html = reqwest::get(format!("{}/api/docs", srv.base)).await.unwrap().text().await.unwrap();
    assert!(html.contains("/api/docs/swagger-ui-bundle.js") && !html.contains("https://"), "{html}");
    let js = reqwest::get(format!("{}/api/docs/swagger-ui-bundle.js", srv.base)).await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}

/// A user of a company with one API token (made by the operator); answers (user id, token).
async fn new_user(srv: &TestServer, company: &str, role: &str, email: &str) -> (String, String) {
    let (s, u) = srv
        .op(
            "POST",
            &format!("/api/v1/operator/companies/{company}/users"),
            Some(json!({"name": "Token User", "email": email, "role": role})),
        )
        .await;
    assert_eq!(s, 201, "{u}");
    let id = u["id"].as_str().unwrap().to_string();
    let (s, t) = srv.op("POST", &format!("/api/v1/operator/users/{id}/api-tokens"), None).await;
    assert_eq!(s, 201, "{t}");
    (id, t["token"].as_str().unwrap().to_string())
}

/// A request whose answer headers matter: answers (status, Cache-Control, JSON body).
async fn with_headers(
    srv: &TestServer,
    method: &str,
    path: &str,
    body: Value,
    token: &str,
) -> (u16, Option<String>, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", srv.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_string());
    (status, cache, resp.json().await.unwrap_or(Value::Null))
}

async fn works(srv: &TestServer, token: &str) -> bool {
    match srv.call("GET", "/api/v1/me/api-tokens", None, Some(token)).await {
        (200, _) => true,
        (401, b) => {
            assert_eq!(code(&b), "unauthenticated");
            false
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn own_api_tokens_are_listed_created_expired_and_revoked() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-05T09:00:00Z"]);
    let (company, _) = srv.company(100).await;
    let (_, admin) = new_user(&srv, &company, "company_admin", "own@example.com").await;

    let (s, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&admin)).await;
    assert_eq!(s, 200, "{list}");
    let first = &list["tokens"][0];
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(first["last_used_at"], "2026-01-05T09:00:00Z", "this very call used it");
    assert!(first["revoked_at"].is_null() && first["expires_at"].is_null() && first["created_at"].is_string());
    assert!(first.get("token").is_none() && first.get("token_hash").is_none(), "never the secret: {first}");

    let request = json!({"description": "CI deploys", "expires_at": "2026-01-06T09:00:00Z"});
    let (s, cache, created) = with_headers(&srv, "POST", "/api/v1/me/api-tokens", request, &admin).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(cache.as_deref(), Some("no-store"), "a secret shown once is never cached");
    let (ci_id, ci) = (created["id"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    assert!(ci.starts_with("genai_"), "{created}");
    assert_eq!(created["expires_at"], "2026-01-06T09:00:00Z");
    assert!(works(&srv, &ci).await);
    let (_, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&ci)).await;
    assert_eq!(list["tokens"][0]["id"], ci_id.as_str(), "newest first");
    assert_eq!(list["tokens"][0]["description"], "CI deploys");

    for (body, field) in [
        (json!({"expires_at": "2026-01-05T08:00:00Z"}), "expires_at"),
        (json!({"expires_at": "2026-01-05T09:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"description": "x".repeat(201)}), "description"),
    ] {
        let (s, b) = srv.call("POST", "/api/v1/me/api-tokens", Some(body.clone()), Some(&admin)).await;
        assert_eq!((s, code(&b)), (422, "validation_failed"), "{body}");
        assert!(b["error"]["details"]["fields"][field].is_string(), "{b}");
    }
    let (s, b) = srv.call("POST", "/api/v1/me/api-tokens", Some(json!({"expires_at": 5})), Some(&admin)).await;
    assert_eq!((s, code(&b)), (400, "invalid_request"));

    // Refused from its expiry on, on the server's clock.
    srv.set_clock("2026-01-06T08:59:59Z").await;
    assert!(works(&srv, &ci).await);
    srv.set_clock("2026-01-06T09:00:00Z").await;
    assert!(!works(&srv, &ci).await, "expired");

    // Revoked: refused at once; revoking again is fine; unknown ids are not found.
    let (_, extra) = srv.call("POST", "/api/v1/me/api-tokens", Some(json!({})), Some(&admin)).await;
    let (extra_id, extra) = (extra["id"].as_str().unwrap(), extra["token"].as_str().unwrap());
    let (s, b) = srv.call("DELETE", &format!("/api/v1/me/api-tokens/{extra_id}"), None, Some(&admin)).await;
    assert_eq!((s, b), (204, Value::Null));
    assert!(!works(&srv, extra).await, "revoked");
    let (s, _) = srv.call("DELETE", &format!("/api/v1/me/api-tokens/{extra_id}"), None, Some(&admin)).await;
    assert_eq!(s, 204, "revoking twice");
    let (s, b) = srv.call("DELETE", "/api/v1/me/api-tokens/tok_nope", None, Some(&admin)).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (_, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&admin)).await;
    let revoked = list["tokens"].as_array().unwrap().iter().find(|t| t["id"] == extra_id).unwrap().clone();
    assert_eq!(revoked["revoked_at"], "2026-01-06T09:00:00Z", "{revoked}");

    // Audited in the company's log.
    let (_, events) = srv.call("GET", "/api/v1/audit-events", None, Some(&admin)).await;
    let actions: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "api_token.revoked").count(), 1, "once: {actions:?}");
    // The two made here, and the operator's for this user and for the company's first admin.
    assert_eq!(actions.iter().filter(|a| **a == "api_token.created").count(), 4, "{actions:?}");
    assert_eq!(events["events"][0]["actor"], "own@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_belong_to_their_user_only() {
    let srv = TestServer::start(&[]);
    let (a, _) = srv.company(100).await;
    let (b, _) = srv.company(100).await;
    let (_, admin_a) = new_user(&srv, &a, "company_admin", "admin-a@example.com").await;
    let (_, member_a) = new_user(&srv, &a, "member", "member-a@example.com").await;
    let (_, admin_b) = new_user(&srv, &b, "company_admin", "admin-b@example.com").await;

    // Any role manages its own tokens.
    let (s, mine) =
        srv.call("POST", "/api/v1/me/api-tokens", Some(json!({"description": "mine"})), Some(&member_a)).await;
    assert_eq!(s, 201, "{mine}");
    let member_token_id = mine["id"].as_str().unwrap();
    let (s, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(&member_a)).await;
    assert_eq!((s, list["tokens"].as_array().unwrap().len()), (200, 2));

    // Another user's token, in the same company or another: not found, and untouched.
    for other in [&admin_a, &admin_b] {
        let (s, b) = srv.call("DELETE", &format!("/api/v1/me/api-tokens/{member_token_id}"), None, Some(other)).await;
        assert_eq!((s, code(&b)), (404, "not_found"));
        let (_, list) = srv.call("GET", "/api/v1/me/api-tokens", None, Some(other)).await;
        assert!(list["tokens"].as_array().unwrap().iter().all(|t| t["id"] != member_token_id), "{list}");
    }
    assert!(works(&srv, mine["token"].as_str().unwrap()).await);

    // The operator has no tokens of its own; users have no operator paths.
    for (method, path) in [("GET", "/api/v1/me/api-tokens"), ("POST", "/api/v1/me/api-tokens")] {
        let (s, b) = srv.op(method, path, None).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{method} {path}");
    }
    let (s, b) = srv.op("DELETE", &format!("/api/v1/me/api-tokens/{member_token_id}"), None).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    for path in ["/api/v1/me/api-tokens", &format!("/api/v1/me/api-tokens/{member_token_id}")] {
        let (s, b) = srv.call("GET", path, None, None).await;
        assert!(s == 401 || s == 405, "{path} without a token: {s} {b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_lists_and_revokes_tokens_and_disables_users() {
    let srv = TestServer::start(&["--manual-clock", "2026-02-01T00:00:00Z"]);
    let (company, admin) = srv.company(100).await;
    let (user, first) = new_user(&srv, &company, "company_admin", "ops-target@example.com").await;
    let op = srv.operator.clone();

    let path = format!("/api/v1/operator/users/{user}/api-tokens");
    let request = json!({"description": "nightly", "expires_at": "2026-03-01T00:00:00Z"});
    let (s, cache, created) = with_headers(&srv, "POST", &path, request, &op).await;
    assert_eq!((s, cache.as_deref()), (201, Some("no-store")), "{created}");
    assert_eq!(
        (created["user_id"].as_str(), created["expires_at"].as_str()),
        (Some(user.as_str()), Some("2026-03-01T00:00:00Z"))
    );
    let second = created["token"].as_str().unwrap().to_string();
    let (s, list) = srv.op("GET", &path, None).await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], created["id"].as_str().unwrap(), "newest first");
    for (method, bad) in
        [("GET", "/api/v1/operator/users/usr_nope/api-tokens"), ("DELETE", "/api/v1/operator/api-tokens/tok_nope")]
    {
        let (s, b) = srv.op(method, bad, None).await;
        assert_eq!((s, code(&b)), (404, "not_found"), "{method} {bad}");
    }

    let (s, _) = srv.op("DELETE", &format!("/api/v1/operator/api-tokens/{}", ids[0]), None).await;
    assert_eq!(s, 204);
    assert!(!works(&srv, &second).await, "revoked by the operator");
    assert!(works(&srv, &first).await, "the other token is untouched");

    // Disabled: every token refused at once; enabled: they work again.
    let user_path = format!("/api/v1/operator/users/{user}");
    let (s, u) = srv.op("PATCH", &user_path, Some(json!({"disabled": true}))).await;
    assert_eq!((s, &u["disabled"], &u["disabled_at"]), (200, &json!(true), &json!("2026-02-01T00:00:00Z")), "{u}");
    assert!(!works(&srv, &first).await, "a disabled user's token");
    let (s, u) = srv.op("PATCH", &user_path, Some(json!({"disabled": true}))).await;
    assert_eq!((s, &u["disabled_at"]), (200, &json!("2026-02-01T00:00:00Z")), "disabling again changes nothing");
    for (body, status, want) in
        [(json!({}), 422, "validation_failed"), (json!({"disabled": "yes"}), 400, "invalid_request")]
    {
        let (s, b) = srv.op("PATCH", &user_path, Some(body)).await;
        assert_eq!((s, code(&b)), (status, want));
    }
    let (s, b) = srv.op("PATCH", "/api/v1/operator/users/usr_nope", Some(json!({"disabled": true}))).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (s, u) = srv.op("PATCH", &user_path, Some(json!({"disabled": false}))).await;
    assert_eq!((s, &u["disabled"], &u["disabled_at"]), (200, &json!(false), &Value::Null));
    assert!(works(&srv, &first).await, "enabled again");
    assert!(!works(&srv, &second).await, "a revoked token stays revoked");

    let (_, events) = srv.call("GET", "/api/v1/audit-events", None, Some(&admin)).await;
    let actions: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .take(4)
        .collect();
    assert_eq!(
        actions,
        [
            ("user.enabled", "operator"),
            ("user.disabled", "operator"),
            ("api_token.revoked", "operator"),
            ("api_token.created", "operator")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_and_the_audit_log_page_without_gaps() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-05T00:00:00Z"]);
    let (company, admin) = srv.company(0).await;
    for i in 0..24 {
        let (s, g) = srv
            .op("POST", &format!("/api/v1/operator/companies/{company}/token-grants"), Some(json!({"tokens": i + 1})))
            .await;
        assert_eq!(s, 201, "{g}");
    }
    for (path, key) in [("/api/v1/tokens/transactions", "transactions"), ("/api/v1/audit-events", "events")] {
        let (s, all) = srv.call("GET", path, None, Some(&admin)).await;
        assert_eq!(s, 200, "{all}");
        let all: Vec<Value> = all[key].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
        assert!(all.len() >= 24, "{path}: without a limit, everything");
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let url = match &cursor {
                None => format!("{path}?limit=10"),
                Some(c) => format!("{path}?limit=10&cursor={c}"),
            };
            let (s, page) = srv.call("GET", &url, None, Some(&admin)).await;
            assert_eq!(s, 200, "{page}");
            pages += 1;
            seen.extend(page[key].as_array().unwrap().iter().map(|e| e["id"].clone()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, all, "{path}: the pages are the whole list, newest first, each entry once");
        assert_eq!(pages, all.len().div_ceil(10), "{path}: no empty last page");
        for (bad, status) in [("?limit=0", 422), ("?limit=1001", 422), ("?limit=ten", 400), ("?cursor=zzz", 400)] {
            let (s, b) = srv.call("GET", &format!("{path}{bad}"), None, Some(&admin)).await;
            assert_eq!(s, status, "{path}{bad}: {b}");
        }
    }
    // A grant while paging shows up on the first page, not in the middle of the walk.
    let (_, first) = srv.call("GET", "/api/v1/tokens/transactions?limit=5", None, Some(&admin)).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    srv.op("POST", &format!("/api/v1/operator/companies/{company}/token-grants"), Some(json!({"tokens": 99}))).await;
    let (_, second) =
        srv.call("GET", &format!("/api/v1/tokens/transactions?limit=5&cursor={cursor}"), None, Some(&admin)).await;
    assert_eq!(second["transactions"][0]["tokens"], 19, "continues where the first page ended");
}
