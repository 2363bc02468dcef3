//! The scheduler against the real binary: changes take effect at their instant, exactly once,
//! on the system clock (within a second), on the manual clock, and on start-up for whatever fell
//! due while the server was down (recorded at the instant it was due).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{Duration, Months, SubsecRound, Utc};
use genai_core::calendar::{boundary, format_instant};
use serde_json::json;
use support::{text, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn changes_that_fell_due_while_down_are_applied_at_start_up_at_their_instant() {
    let srv = TestServer::start(&["--manual-clock", "2026-05-10T09:00:00Z"]);
    let (_, admin) = srv.company(300).await;
    let (_, a) = srv.call("POST", "/api/v1/resources", Some(text("A", "large")), Some(&admin)).await;
    let (_, b) = srv.call("POST", "/api/v1/resources", Some(text("B", "medium")), Some(&admin)).await;
    let (a, b) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    srv.call("POST", &format!("/api/v1/resources/{a}/plan"), Some(json!({"plan": "small"})), Some(&admin)).await;
    srv.call("POST", &format!("/api/v1/resources/{b}/deprovision"), None, Some(&admin)).await;
    // The server dies (kill -9) before 10 June and comes back in July.
    let (db, dir) = srv.kill();
    let srv = TestServer::start_on(&db, dir, &["--manual-clock", "2026-07-01T00:00:00Z"]);
    // Same database: the admin's token still works after the restart.
    let (_, ra) = srv.call("GET", &format!("/api/v1/resources/{a}"), None, Some(&admin)).await;
    assert_eq!((ra["plan"].as_str(), ra["status"].as_str()), (Some("small"), Some("active")), "{ra}");
    let (_, rb) = srv.call("GET", &format!("/api/v1/resources/{b}"), None, Some(&admin)).await;
    assert_eq!(rb["deprovisioned_at"], "2026-06-10T09:00:00Z");
    let (_, txs) = srv.call("GET", "/api/v1/tokens/transactions", None, Some(&admin)).await;
    let releases: Vec<(i64, String)> = txs["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "release")
        .map(|t| (t["tokens"].as_i64().unwrap(), t["at"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(
        releases.contains(&(90, "2026-06-10T09:00:00Z".into()))
            && releases.contains(&(60, "2026-06-10T09:00:00Z".into()))
    );
    // Applying again (a clock move, another restart) releases nothing more.
    let moved = srv.set_clock("2026-08-01T00:00:00Z").await;
    assert_eq!(moved["applied"], 0);
    let t = srv.ledger(&admin).await;
    assert_eq!((t["available"].as_i64(), t["pending_release"].as_i64()), (Some(270), Some(0)));
    let (s, b) = srv.op("POST", "/api/v1/operator/clock", Some(json!({"now": "2026-07-31T00:00:00Z"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("validation_failed")), "the clock never moves back");
}

/// On the system clock the background scheduler applies a change within a second of its
/// instant. The resource is made with a manual clock set a month back, so that its bundle month
/// ends a few seconds after the real server starts.
#[tokio::test(flavor = "multi_thread")]
async fn on_the_system_clock_a_change_applies_within_a_second_of_its_instant() {
    let due = Utc::now().trunc_subsecs(0) + Duration::seconds(4);
    // An anchor k months back whose k-th boundary is exactly `due` (day clamping may rule out k=1).
    let (anchor, k) = (1..=12u32)
        .find_map(|k| {
            let a = due.checked_sub_months(Months::new(k))?;
            (boundary(a, k) == Some(due)).then_some((a, k))
        })
        .unwrap();
    let srv = TestServer::start(&["--manual-clock", &format_instant(anchor)]);
    let (_, admin) = srv.company(100).await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("Soon gone", "small")), Some(&admin)).await;
    let id = r["id"].as_str().unwrap().to_string();
    srv.set_clock(&format_instant(boundary(anchor, k - 1).unwrap() + Duration::seconds(1))).await;
    let (_, d) = srv.call("POST", &format!("/api/v1/resources/{id}/deprovision"), None, Some(&admin)).await;
    assert_eq!(d["deprovisioning_at"], format_instant(due), "{d}");
    let (db, dir) = srv.kill();

    let srv = TestServer::start_on(&db, dir, &[]);
    let (_, clock) = srv.op("GET", "/api/v1/operator/clock", None).await;
    assert_eq!(clock["mode"], "system");
    let (s, _) = srv.op("POST", "/api/v1/operator/clock", Some(json!({"now": "2030-01-01T00:00:00Z"}))).await;
    assert_eq!(s, 404, "the system clock cannot be moved");
    let mut seen_at = None;
    for _ in 0..150 {
        let (_, r) = srv.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin)).await;
        if r["status"] == "deprovisioned" {
            seen_at = Some(Utc::now());
            assert_eq!(r["deprovisioned_at"], format_instant(due));
            break;
        }
        assert!(Utc::now() < due + Duration::seconds(1), "not applied by 1 s after its instant: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen_at = seen_at.expect("applied");
    assert!(seen_at >= due, "applied before its instant");
    assert!(seen_at - due < Duration::seconds(1), "applied {} ms late", (seen_at - due).num_milliseconds());
    let t = srv.ledger(&admin).await;
    assert_eq!(t["available"], 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boundary_on_the_31st_comes_back_to_the_31st() {
    let srv = TestServer::start(&["--manual-clock", "2026-01-31T10:00:00Z"]);
    let (_, admin) = srv.company(200).await;
    let (_, r) = srv.call("POST", "/api/v1/resources", Some(text("Monthly", "medium")), Some(&admin)).await;
    let id = r["id"].as_str().unwrap();
    let expected = [
        ("2026-02-28T09:59:59Z", "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"),
        ("2026-02-28T10:00:00Z", "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"),
        ("2026-04-15T00:00:00Z", "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"),
        ("2026-05-31T10:00:00Z", "2026-05-31T10:00:00Z", "2026-06-30T10:00:00Z"),
    ];
    for (now, start, end) in expected {
        srv.set_clock(now).await;
        let (_, r) = srv.call("GET", &format!("/api/v1/resources/{id}"), None, Some(&admin)).await;
        assert_eq!(r["bundle_month"], json!({"start": start, "end": end}), "at {now}");
    }
    // A downgrade asked on 20 June takes effect at the end of that bundle month: 30 June.
    srv.set_clock("2026-06-20T00:00:00Z").await;
    let (_, d) =
        srv.call("POST", &format!("/api/v1/resources/{id}/plan"), Some(json!({"plan": "small"})), Some(&admin)).await;
    assert_eq!(d["scheduled_downgrade"]["effective_at"], "2026-06-30T10:00:00Z");
}

/// A due change whose row is broken (here: the resource claims more tokens than its company
/// has allocated, so the release cannot be written) is set aside; the server still starts,
/// catches up on the others, and keeps applying later changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_due_change_does_not_stop_the_server_or_the_others() {
    use sqlx::Connection;
    let srv = TestServer::start(&["--manual-clock", "2026-05-10T09:00:00Z"]);
    let (_, admin) = srv.company(300).await;
    let mut ids = Vec::new();
    for name in ["Broken", "Sound"] {
        let (_, r) = srv.call("POST", "/api/v1/resources", Some(text(name, "small")), Some(&admin)).await;
        let id = r["id"].as_str().unwrap().to_string();
        srv.call("POST", &format!("/api/v1/resources/{id}/deprovision"), None, Some(&admin)).await;
        ids.push(id);
    }
    srv.set_clock("2026-05-20T00:00:00Z").await;
    let (_, later) = srv.call("POST", "/api/v1/resources", Some(text("Later", "small")), Some(&admin)).await;
    let later = later["id"].as_str().unwrap().to_string();
    srv.call("POST", &format!("/api/v1/resources/{later}/deprovision"), None, Some(&admin)).await;
    let (db, dir) = srv.kill();
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("UPDATE resources SET cloud_tokens = 9999 WHERE id = $1")
        .bind(&ids[0])
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // Both fell due while the server was down: it starts anyway and applies the sound one.
    let srv = TestServer::start_on(&db, dir, &["--manual-clock", "2026-06-11T00:00:00Z"]);
    let (s, _) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    let (_, sound) = srv.call("GET", &format!("/api/v1/resources/{}", ids[1]), None, Some(&admin)).await;
    assert_eq!(sound["deprovisioned_at"], "2026-06-10T09:00:00Z", "{sound}");
    let (_, broken) = srv.call("GET", &format!("/api/v1/resources/{}", ids[0]), None, Some(&admin)).await;
    assert_eq!(broken["status"], "deprovisioning_scheduled", "set aside, not half-written: {broken}");
    // Later changes still take effect.
    let moved = srv.set_clock("2026-06-20T09:00:00Z").await;
    assert_eq!(moved["applied"], 1, "{moved}");
    let (_, done) = srv.call("GET", &format!("/api/v1/resources/{later}"), None, Some(&admin)).await;
    assert_eq!(done["deprovisioned_at"], "2026-06-20T00:00:00Z", "{done}");
    // Acting on the broken one is answered, not retried forever.
    let (s, b) =
        srv.call("POST", &format!("/api/v1/resources/{}/cancel-deprovision", ids[0]), None, Some(&admin)).await;
    assert_eq!(s, 500, "{b}");
}
