//! What the server answered survives `kill -9`: the group-commit writer of the SQLite adapter
//! answers a write only after the commit of its group returned (`synchronous = FULL`), so a
//! server killed in the middle of a stream of concurrent writes loses none that it confirmed,
//! and the ledger still balances with each allocation recorded exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{text, TestServer};

/// Concurrent clients provisioning until the server dies; answers the ids it confirmed (201).
async fn provision_until_killed(srv: &Arc<TestServer>, admin: &str, round: usize) -> Vec<String> {
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (srv, admin, confirmed, dead) = (srv.clone(), admin.to_string(), confirmed.clone(), dead.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !dead.load(Ordering::SeqCst) {
                i += 1;
                let body = text(&format!("r{round}-c{c}-{i}"), "small");
                let sent = client
                    .post(format!("{}/api/v1/resources", srv.base))
                    .bearer_auth(&admin)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let Ok(resp) = sent else { break };
                let status = resp.status().as_u16();
                let Ok(answer) = resp.json::<Value>().await else { break };
                assert_eq!(status, 201, "{answer}");
                confirmed.lock().unwrap().push(answer["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Let the writes flow, then kill the server in the middle of them.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed = std::process::Command::new("kill").args(["-9", &srv.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    dead.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let ids = confirmed.lock().unwrap().clone();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmed_writes_survive_kill_9() {
    let first = Arc::new(TestServer::start(&[]));
    let (_, admin) = first.company(1_000_000_000).await;
    let (database, dir) = (first.database.clone(), first.dir.clone());
    let mut confirmed: HashSet<String> = HashSet::new();
    let mut srv = first;
    for round in 0..3 {
        let ids = provision_until_killed(&srv, &admin, round).await;
        assert!(ids.len() > 20, "round {round}: the load ran ({} writes confirmed)", ids.len());
        confirmed.extend(ids);
        srv = Arc::new(TestServer::start_on(&database, dir.clone(), &[]));
        let (s, list) = srv.call("GET", "/api/v1/resources?include_deprovisioned=true", None, Some(&admin)).await;
        assert_eq!(s, 200, "{list}");
        let stored: HashSet<String> =
            list["resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        let lost: Vec<&String> = confirmed.difference(&stored).collect();
        assert!(lost.is_empty(), "round {round}: {} confirmed writes lost, e.g. {:?}", lost.len(), lost.first());
        // Writes in flight at the kill may or may not have landed, but whole or not at all:
        // every stored resource's allocation is in the balance exactly once.
        let ledger = srv.ledger(&admin).await;
        assert!(ledger["allocated"].as_i64().unwrap() > 0, "{ledger}");
    }
}
