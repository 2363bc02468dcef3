//! Several `genai serve` instances on one PostgreSQL database (issue: scale-out). Needs
//! `GENAI_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); each test makes a
//! fresh database with `psql`. Without the variable the tests say so and pass, unless
//! `GENAI_REQUIRE_POSTGRES=1` (as `.ci/run` sets), which turns the skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use support::{text, TestServer};

/// A scratch database, dropped when the test ends (after its servers, which are declared
/// later and so dropped first).
struct ScratchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([self.admin_url.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// A fresh database, or `None` (skip) when no PostgreSQL is configured.
fn fresh_postgres() -> Option<ScratchDb> {
    let Some(url) = std::env::var("GENAI_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        if std::env::var("GENAI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("GENAI_REQUIRE_POSTGRES=1 but GENAI_TEST_POSTGRES_URL is not set");
        }
        eprintln!("multi-instance tests SKIPPED for lack of GENAI_TEST_POSTGRES_URL");
        return None;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    let name = format!("genai_multi_{}_{nanos}", std::process::id());
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql must be installed to run the PostgreSQL tests");
    assert!(out.status.success(), "creating a database: {}", String::from_utf8_lossy(&out.stderr));
    let db_url = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    Some(ScratchDb { admin_url: url, name, url: db_url })
}

fn three(db: &str, clock: &str) -> Vec<Arc<TestServer>> {
    (0..3).map(|_| Arc::new(TestServer::start_on(db, support::temp_dir("multi"), &["--manual-clock", clock]))).collect()
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn due_changes_are_applied_exactly_once_by_three_instances() {
    let Some(db) = fresh_postgres() else { return };
    let srv = three(&db.url, "2026-02-01T00:00:00Z");
    let (_, admin) = srv[0].company(100_000).await;
    let mut ids = Vec::new();
    for i in 0..90 {
        let (s, r) =
            srv[i % 3].call("POST", "/api/v1/resources", Some(text(&format!("R{i}"), "large")), Some(&admin)).await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    for (i, id) in ids.iter().enumerate() {
        let (path, body) = if i % 2 == 0 {
            (format!("/api/v1/resources/{id}/deprovision"), None)
        } else {
            (format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "small"})))
        };
        let (s, b) = srv[(i + 1) % 3].call("POST", &path, body, Some(&admin)).await;
        assert_eq!(s, 200, "{b}");
    }
    let before = srv[2].ledger(&admin).await;
    assert_eq!(before["pending_release"], 45 * 120 + 45 * 90);
    // All three clocks pass the boundary at the same time.
    let moves: Vec<_> = srv
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.set_clock("2026-03-01T00:00:00Z").await })
        })
        .collect();
    let mut applied = 0;
    for m in moves {
        applied += m.await.unwrap()["applied"].as_i64().unwrap();
    }
    assert_eq!(applied, 90, "every due change applied once across the instances");
    let (_, txs) = srv[1].call("GET", "/api/v1/tokens/transactions", None, Some(&admin)).await;
    let releases: Vec<&Value> =
        txs["transactions"].as_array().unwrap().iter().filter(|t| t["kind"] == "release").collect();
    assert_eq!(releases.len(), 90);
    assert_eq!(releases.iter().map(|t| t["tokens"].as_i64().unwrap()).sum::<i64>(), 45 * 120 + 45 * 90);
    let after = srv[0].ledger(&admin).await;
    assert_eq!((after["allocated"].as_i64(), after["pending_release"].as_i64()), (Some(45 * 30), Some(0)));
    let (_, events) = srv[0].call("GET", "/api/v1/audit-events", None, Some(&admin)).await;
    let by_scheduler = events["events"].as_array().unwrap().iter().filter(|e| e["actor"] == "scheduler").count();
    assert_eq!(by_scheduler, 90);
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_upgrades_through_different_instances_never_overspend() {
    let Some(db) = fresh_postgres() else { return };
    let srv = three(&db.url, "2026-02-01T00:00:00Z");
    // 12 small resources (360) and 190 more: exactly two small→large upgrades (90 each) fit.
    let (company, admin) = srv[0].company(12 * 30 + 190).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let (_, r) =
            srv[i % 3].call("POST", "/api/v1/resources", Some(text(&format!("U{i}"), "small")), Some(&admin)).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (s, admin, id) = (srv[i % 3].clone(), admin.clone(), id.clone());
            tokio::spawn(async move {
                s.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "large"})), Some(&admin))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            200 => ok += 1,
            409 => assert_eq!(code(&b), "insufficient_tokens"),
            other => panic!("{other} {b}"),
        }
    }
    assert_eq!(ok, 2);
    let t = srv[1].ledger(&admin).await;
    assert_eq!(t["available"], 10);

    // The same idempotency key through three instances at once: one resource, one allocation.
    srv[0].op("POST", &format!("/api/v1/operator/companies/{company}/token-grants"), Some(json!({"tokens": 30}))).await;
    let body = text("Retried", "small");
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (s, admin, body) = (srv[i].clone(), admin.clone(), body.clone());
            tokio::spawn(async move {
                s.call_with("POST", "/api/v1/resources", Some(body), Some(&admin), &[("Idempotency-Key", "same-key")])
                    .await
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for t in tasks {
        let (s, r) = t.await.unwrap();
        assert_eq!(s, 201, "{r}");
        seen.push(r["id"].as_str().unwrap().to_string());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let t = srv[2].ledger(&admin).await;
    assert_eq!(t["available"], 10);
}
