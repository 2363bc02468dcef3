//! `genai kb collections | upload | search` against the real binary, with the Rust fake upstream
//! behind the embeddings model (`genai-fake-upstream`: one 8-float vector per input computed from
//! its words, prompt tokens = words): uploads of the TXT and PDF fixtures with metadata, their
//! chunks listed, a search by text finding the right document (also filtered by metadata), the
//! embedding calls metered on the embeddings resource, and the refusals a person meets (a PDF
//! without text, a search without a key, a stranger's token, a bad `--meta`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genai_fake_upstream::FakeUpstream;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use support::{embeddings, knowledge_base, TestServer};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/knowledge").join(name).display().to_string()
}

fn cli(s: &TestServer, token: &str, envs: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genai"))
        .args(args)
        .env("GENAI_SERVER", &s.base)
        .env("GENAI_TOKEN", token)
        .env_remove("GENAI_OPERATOR_TOKEN")
        .env_remove("GENAI_KB_KEY")
        .envs(envs.iter().copied())
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

#[track_caller]
fn fails(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).expect("json")
}

/// The embeddings resource's input tokens this month, once `until` holds (the group commit
/// writes usage a moment after the call).
async fn used_until(s: &TestServer, admin: &str, emb: &str, until: impl Fn(i64) -> bool) -> i64 {
    let mut used = 0;
    for _ in 0..100 {
        let (_, r) = s.call("GET", &format!("/api/v1/resources/{emb}"), None, Some(admin)).await;
        used = r["usage"]["input_tokens"].as_i64().unwrap_or(0);
        if until(used) {
            return used;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the embeddings resource's usage stayed at {used}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kb_cli_uploads_lists_and_searches_through_the_apis() {
    let up = FakeUpstream::spawn().await.unwrap();
    let dir = support::temp_dir("kbcli");
    let providers = dir.join("providers.toml");
    std::fs::write(
        &providers,
        format!(
            "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\ntimeout_seconds = 5\n\n\
             [models.\"cohere-embed-english-v3\"]\nprovider = \"fake\"\nupstream_model = \"fake-embed\"\n",
            up.base_url()
        ),
    )
    .unwrap();
    let s = TestServer::start(&["--providers", providers.to_str().unwrap()]);
    let (company, admin) = s.company(500).await;
    let (st, e) = s.call("POST", "/api/v1/resources", Some(embeddings("Embed", "small")), Some(&admin)).await;
    assert_eq!(st, 201, "{e}");
    let emb = e["id"].as_str().unwrap().to_string();
    let (st, k) = s.call("POST", "/api/v1/resources", Some(knowledge_base("Docs", &emb)), Some(&admin)).await;
    assert_eq!(st, 201, "{k}");
    let kb = k["id"].as_str().unwrap().to_string();

    // Empty at first.
    let out = ok(&cli(&s, &admin, &[], &["kb", "collections", &kb]));
    assert!(out.contains("No collections.") && out.contains("Storage used: 0 bytes in 0 chunks."), "{out}");

    // Uploads: the TXT into the default collection with metadata, the PDF into "handbook".
    let txt = json_of(&cli(
        &s,
        &admin,
        &[],
        &["--json", "kb", "upload", &kb, &fixture("notes.txt"), "--meta", "team=office"],
    ));
    assert_eq!(txt["collection"], "default");
    let txt_chunks = txt["chunks"].as_i64().unwrap();
    assert!(txt_chunks >= 1, "{txt}");
    let out = ok(&cli(
        &s,
        &admin,
        &[],
        &["kb", "upload", &kb, &fixture("handbook.pdf"), "--collection", "handbook", "--meta", "team=travel"],
    ));
    assert!(out.starts_with("Uploaded handbook.pdf into handbook: "), "{out}");
    // Into the same collection as the TXT too, to search among several documents.
    ok(&cli(&s, &admin, &[], &["kb", "upload", &kb, &fixture("handbook.pdf"), "--meta", "team=travel"]));

    let list = json_of(&cli(&s, &admin, &[], &["--json", "kb", "collections", &kb]));
    let names: Vec<&str> =
        list["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "handbook"]);
    let total: i64 = list["collections"].as_array().unwrap().iter().map(|c| c["chunks"].as_i64().unwrap()).sum();
    assert_eq!(list["chunks"].as_i64().unwrap(), total);
    let bytes: i64 = list["collections"].as_array().unwrap().iter().map(|c| c["bytes"].as_i64().unwrap()).sum();
    assert_eq!(list["storage_bytes"].as_i64().unwrap(), bytes);
    let table = ok(&cli(&s, &admin, &[], &["kb", "collections", &kb]));
    assert!(table.contains("COLLECTION") && table.contains("handbook") && table.contains('8'), "{table}");

    // Every upload was embedded by the upstream, and metered on the embeddings resource.
    assert_eq!(up.stats().embeddings, 3, "one embedding call per small document");
    let after_uploads = used_until(&s, &admin, &emb, |u| u > 0).await;

    // A PDF without text is refused, naming why; nothing is stored.
    let err = fails(&cli(&s, &admin, &[], &["kb", "upload", &kb, &fixture("scanned.pdf")]));
    assert!(err.contains("no text"), "{err}");
    let after = json_of(&cli(&s, &admin, &[], &["--json", "kb", "collections", &kb]));
    assert_eq!(after["chunks"], list["chunks"]);

    // Search needs a key of the knowledge base.
    let err = fails(&cli(&s, &admin, &[], &["kb", "search", &kb, "hotel rooms"]));
    assert!(err.contains("--key") && err.contains("GENAI_KB_KEY"), "{err}");
    let (st, key) = s
        .call("POST", &format!("/api/v1/resources/{kb}/keys"), Some(json!({"description": "cli"})), Some(&admin))
        .await;
    assert_eq!(st, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_string();
    let hits = json_of(&cli(
        &s,
        "",
        &[("GENAI_KB_KEY", &secret)],
        &["--json", "kb", "search", &kb, "Hotel rooms are paid by the company up to 120 euros a night", "-k", "2"],
    ));
    let hits = hits["chunks"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits[0]["chunk"]["key"].as_str().unwrap().contains("Hotel rooms"), "{hits:?}");
    assert!(hits[0]["similarity"].as_f64().unwrap() >= hits[1]["similarity"].as_f64().unwrap());
    // Filtered by metadata: only the office notes.
    let filtered = json_of(&cli(
        &s,
        "",
        &[("GENAI_KB_KEY", &secret)],
        &["--json", "kb", "search", &kb, "hotel rooms", "--meta", "team=office", "-k", "5"],
    ));
    let filtered = filtered["chunks"].as_array().unwrap();
    assert_eq!(filtered.len() as i64, txt_chunks, "{filtered:?}");
    assert!(filtered.iter().all(|h| h["chunk"]["metadata"][0]["value"] == "office"), "{filtered:?}");
    let table = ok(&cli(
        &s,
        "",
        &[("GENAI_KB_KEY", &secret)],
        &["kb", "search", &kb, "coffee kitchen", "-k", "1", "--meta", "team=office"],
    ));
    assert!(table.contains("SIMILARITY") && table.contains("notes.txt #1"), "{table}");

    // The searches' embeddings are metered on the embeddings resource too.
    assert_eq!(up.stats().embeddings, 6);
    used_until(&s, &admin, &emb, |u| u > after_uploads).await;

    // Deleting a collection: gone from the list, its bytes freed; a second time is a 404.
    let out = ok(&cli(&s, &admin, &[], &["kb", "delete", &kb, "handbook"]));
    assert_eq!(out, "Deleted the collection handbook.\n");
    let left = json_of(&cli(&s, &admin, &[], &["--json", "kb", "collections", &kb]));
    let names: Vec<&str> =
        left["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default"]);
    assert_eq!(left["storage_bytes"], left["collections"][0]["bytes"]);
    let err = fails(&cli(&s, &admin, &[], &["kb", "delete", &kb, "handbook"]));
    assert!(err.contains("not_found"), "{err}");

    // Bad input is named; a stranger's token sees no such resource.
    let err = fails(&cli(&s, &admin, &[], &["kb", "upload", &kb, &fixture("notes.txt"), "--meta", "oops"]));
    assert!(err.contains("--meta \"oops\""), "{err}");
    let (_, stranger) = s.company(100).await;
    let err = fails(&cli(&s, &stranger, &[], &["kb", "collections", &kb]));
    assert!(err.contains("not_found"), "{err}");
    let _ = company;

    // A knowledge base whose embeddings model no provider serves: the upload says so.
    let mut body = embeddings("Unrouted", "small");
    body["model"] = json!("cohere-embed-multilingual-v3");
    let (st, e2) = s.call("POST", "/api/v1/resources", Some(body), Some(&admin)).await;
    assert_eq!(st, 201, "{e2}");
    let (st, kb2) = s
        .call("POST", "/api/v1/resources", Some(knowledge_base("Docs 2", e2["id"].as_str().unwrap())), Some(&admin))
        .await;
    assert_eq!(st, 201, "{kb2}");
    let err = fails(&cli(&s, &admin, &[], &["kb", "upload", kb2["id"].as_str().unwrap(), &fixture("notes.txt")]));
    assert!(err.contains("cohere-embed-multilingual-v3") && err.contains("not served"), "{err}");
    let empty = json_of(&cli(&s, &admin, &[], &["--json", "kb", "collections", kb2["id"].as_str().unwrap()]));
    assert_eq!(empty["chunks"], 0, "nothing stored");
}
