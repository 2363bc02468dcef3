//! The OpenAPI document is generated from the handlers; this snapshot makes every change to the
//! public contract visible in review. After an intended change, regenerate it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p genai-http --test openapi_snapshot` and commit
//! `docs/openapi.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn openapi_document_matches_the_snapshot() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = genai_http::docs::openapi_document() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "docs/openapi.json is out of date with the code; if the change is intended, run \
         UPDATE_SNAPSHOTS=1 cargo test -p genai-http --test openapi_snapshot"
    );
    // Every path of API.md and RUNTIME.md §2 is documented.
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for p in [
        "/api/v1/operator/companies",
        "/api/v1/operator/companies/{id}",
        "/api/v1/operator/companies/{id}/token-grants",
        "/api/v1/operator/companies/{id}/users",
        "/api/v1/operator/users/{id}",
        "/api/v1/operator/users/{id}/api-tokens",
        "/api/v1/operator/api-tokens/{id}",
        "/api/v1/me/api-tokens",
        "/api/v1/me/api-tokens/{id}",
        "/api/v1/operator/clock",
        "/api/v1/eligibility",
        "/api/v1/tokens",
        "/api/v1/tokens/transactions",
        "/api/v1/catalog",
        "/api/v1/resources",
        "/api/v1/resources/specification",
        "/api/v1/resources/{id}",
        "/api/v1/resources/{id}/plan",
        "/api/v1/resources/{id}/cancel-downgrade",
        "/api/v1/resources/{id}/deprovision",
        "/api/v1/resources/{id}/cancel-deprovision",
        "/api/v1/audit-events",
        // RUNTIME.md §2, the Portal API.
        "/api/v1/portal/resources",
        "/api/v1/resources/{id}/members",
        "/api/v1/resources/{id}/members/{user_id}",
        "/api/v1/resources/{id}/keys",
        "/api/v1/resources/{id}/keys/{key_id}",
        "/api/v1/resources/{id}/consumption",
        "/api/v1/resources/{id}/consumption.csv",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is not documented");
    }
}
