//! The API-token cache (`genai_app::auth::TokenCache`) against the real binary: a revocation
//! applies to the very next request on the instance that made it, even for a token that
//! instance had just cached, and within two seconds on another instance (two servers on one
//! SQLite file), which cached it too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::TestServer;

async fn status(srv: &TestServer, token: &str) -> u16 {
    srv.call("GET", "/api/v1/me/api-tokens", None, Some(token)).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_applies_at_once_here_and_within_two_seconds_elsewhere() {
    let a = TestServer::start(&[]);
    let b = TestServer::start_on(&a.database, support::temp_dir("cache-b"), &[]);
    let (_, admin) = a.company(0).await;
    // Both instances resolve (and cache) the token.
    assert_eq!((status(&a, &admin).await, status(&b, &admin).await), (200, 200));
    let (s, list) = a.call("GET", "/api/v1/me/api-tokens", None, Some(&admin)).await;
    assert_eq!(s, 200, "{list}");
    let id = list["tokens"][0]["id"].as_str().unwrap().to_string();
    // Revoked through instance A (the operator, who uses A's other path and cache).
    let (s, body) = a.call("DELETE", &format!("/api/v1/operator/api-tokens/{id}"), None, Some(&a.operator)).await;
    assert_eq!(s, 204, "{body}");
    let revoked = Instant::now();
    assert_eq!(status(&a, &admin).await, 401, "refused at once by the instance that revoked it");
    // B may still answer from its cache for a moment, never beyond two seconds.
    loop {
        if status(&b, &admin).await == 401 {
            break;
        }
        assert!(revoked.elapsed() < Duration::from_secs(2), "instance B still accepts the token after 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
