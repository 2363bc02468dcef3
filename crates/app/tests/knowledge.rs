//! Knowledge-base use cases against a real SQLite store: inserts, exact top-k with filters,
//! indexes that see every write on the next request (also a write made by another instance on
//! the same database), searches by text and uploads through an embedder, and the Portal's rule
//! of who may see a knowledge base.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use genai_app::auth::Actor;
use genai_app::knowledge::{EmbedError, Embedder, KbError, Upload};
use genai_app::{App, Clock, CompanyInput, Role, UserInput};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::Resource;
use genai_core::validation::ProvisionForm;
use genai_core::{Catalog, Instant};
use genai_knowledge::validate::PageRequest;
use genai_knowledge::wire::{InsertChunksRequest, NameValue, SearchRequest, SimilarityRequest};
use genai_store::Store;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn at(s: &str) -> Instant {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Bag-of-words vectors over 8 buckets (deterministic, non-negative); counts its calls.
#[derive(Default)]
struct Words {
    calls: AtomicUsize,
    texts: AtomicUsize,
}

fn words_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 8];
    for w in text.split_whitespace() {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        let h = w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        v[(h % 8) as usize] += 1.0;
    }
    v[7] += 0.01;
    v
}

#[async_trait]
impl Embedder for Words {
    async fn embed(&self, embeddings: &Resource, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        assert_eq!(embeddings.resource_type, ResourceType::EmbeddingsGeneration);
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        if texts.iter().any(|t| t.contains("EXHAUSTED")) {
            return Err(EmbedError {
                status: 429,
                code: "quota_exceeded".into(),
                message: "the embeddings resource's input quota is spent".into(),
                retry_after_secs: Some(60),
            });
        }
        Ok(texts.iter().map(|t| words_vector(t)).collect())
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    app: App,
    store: Arc<dyn Store>,
    admin: Actor,
    kb: Resource,
    words: Arc<Words>,
    url: String,
    _dir: TempDir,
}

fn form(t: ResourceType, name: &str, embeddings: Option<&str>) -> ProvisionForm {
    let (model, plan) = match t {
        ResourceType::EmbeddingsGeneration => (Some("cohere-embed-english-v3"), PlanSize::Small),
        _ => (None, PlanSize::Standard),
    };
    ProvisionForm {
        resource_type: Some(t),
        display_name: Some(name.into()),
        environment: Some(genai_core::resource::Environment::Production),
        region: Some("eu-central-1".into()),
        cross_region_inference: Some(false),
        model: model.map(Into::into),
        plan: Some(plan),
        embeddings_resource_id: embeddings.map(Into::into),
        user_name: Some("Ada Lovelace".into()),
        user_email: Some("ada@example.com".into()),
    }
}

async fn fixture() -> Fixture {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("genai-app-kb-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/app.db", dir.display());
    let store: Arc<dyn Store> = Arc::new(genai_store_sqlite::open(&url).await.unwrap());
    let app = App::new(store.clone(), Catalog::builtin(), Clock::manual(at("2026-01-05T09:00:00Z")), Some("op"));
    let words = Arc::new(Words::default());
    app.set_kb_embedder(words.clone());
    let op = Actor::Operator;
    let company =
        app.create_company(&op, CompanyInput { name: Some("Acme".into()), ..CompanyInput::default() }).await.unwrap();
    app.grant_tokens(&op, &company.id, Some(1000), None, None).await.unwrap();
    let input = UserInput {
        name: Some("Admin".into()),
        email: Some("admin@example.com".into()),
        role: Some(Role::CompanyAdmin),
        password: None,
    };
    let admin = Actor::User(app.create_user(&op, &company.id, input).await.unwrap());
    let emb = app.provision(&admin, &form(ResourceType::EmbeddingsGeneration, "Embed", None), None).await.unwrap();
    let kb =
        app.provision(&admin, &form(ResourceType::KnowledgeBase, "KB", Some(emb.id.as_str())), None).await.unwrap();
    Fixture { app, store, admin, kb, words, url, _dir: TempDir(dir) }
}

fn upload(name: &str, content_type: Option<&str>, bytes: &[u8], metadata: Vec<NameValue>) -> Upload {
    Upload { file_name: name.into(), content_type: content_type.map(Into::into), bytes: bytes.to_vec(), metadata }
}

fn vec_text(v: &[f32]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// (chunkId, vector, metadata, mxObjectId).
type Row<'a> = (&'a str, &'a [f32], &'a [(&'a str, &'a str)], &'a str);

fn insert_request(chunks: &[Row<'_>]) -> InsertChunksRequest {
    let chunks: Vec<_> = chunks
        .iter()
        .map(|(id, v, meta, object)| {
            json!({"chunkId": id, "vector": vec_text(v), "key": format!("text of {id}"), "mxObjectId": object,
                   "metadata": meta.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()})
        })
        .collect();
    serde_json::from_value(json!({ "chunks": chunks })).unwrap()
}

fn similarity(v: &[f32], k: i64, meta: &[(&str, &str)]) -> SimilarityRequest {
    serde_json::from_value(json!({"k": k, "targetVector": vec_text(v),
        "metadataFilters": meta.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()}))
    .unwrap()
}

fn ids(answer: &genai_knowledge::wire::SimilarityAnswer) -> Vec<String> {
    answer.chunks.iter().map(|c| c.chunk.chunk_id.clone()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[tokio::test(flavor = "multi_thread")]
async fn similarity_is_exact_top_k_with_filters_and_sees_every_write_at_once() {
    let f = fixture().await;
    let (app, kb) = (&f.app, &f.kb);
    let data: [Row<'_>; 5] = [
        ("north", &[1.0, 0.0, 0.0], &[("kind", "dir"), ("lang", "en")], "o1"),
        ("east", &[0.0, 1.0, 0.0], &[("kind", "dir"), ("lang", "nl")], "o1"),
        ("ne", &[1.0, 1.0, 0.0], &[("kind", "dir"), ("lang", "en")], "o2"),
        ("south", &[-1.0, 0.0, 0.0], &[("kind", "dir"), ("lang", "en")], "o2"),
        ("up", &[0.0, 0.0, 1.0], &[("kind", "axis"), ("lang", "en")], "o3"),
    ];
    assert_eq!(app.kb_insert(kb, "compass", insert_request(&data)).await.unwrap(), 5);
    let target = [1.0f32, 0.2, 0.0];
    let answer = app.kb_similarity(kb, "compass", &similarity(&target, 3, &[])).await.unwrap();
    assert_eq!(ids(&answer), ["north", "ne", "east"]);
    for c in &answer.chunks {
        let v = data.iter().find(|d| d.0 == c.chunk.chunk_id).unwrap().1;
        assert!((c.similarity - cosine(&target, v)).abs() < 1e-6, "{} vs {}", c.similarity, cosine(&target, v));
    }
    let filtered = app.kb_similarity(kb, "compass", &similarity(&target, 10, &[("lang", "en"), ("kind", "dir")])).await;
    assert_eq!(ids(&filtered.unwrap()), ["north", "ne", "south"], "every pair must match, filters before ranking");

    // An insert is seen by the very next search (the index catches up with the rows added).
    let closer = [("closest", &[1.0f32, 0.2, 0.0][..], &[("kind", "dir")][..], "o4")];
    app.kb_insert(kb, "compass", insert_request(&closer)).await.unwrap();
    let answer = app.kb_similarity(kb, "compass", &similarity(&target, 2, &[])).await.unwrap();
    assert_eq!(ids(&answer), ["closest", "north"]);
    assert!((answer.chunks[0].similarity - 1.0).abs() < 1e-6);

    // A second instance on the same database sees the same, and each sees the other's writes.
    let other_store: Arc<dyn Store> = Arc::new(genai_store_sqlite::open(&f.url).await.unwrap());
    let other = App::new(other_store, Catalog::builtin(), Clock::manual(at("2026-01-05T09:00:00Z")), Some("op"));
    assert_eq!(
        ids(&other.kb_similarity(kb, "compass", &similarity(&target, 2, &[])).await.unwrap()),
        ["closest", "north"]
    );
    let deleted = other.kb_delete_object(kb, "compass", "o4").await.unwrap();
    assert_eq!(deleted.chunks, 1);
    assert_eq!(
        ids(&app.kb_similarity(kb, "compass", &similarity(&target, 2, &[])).await.unwrap()),
        ["north", "ne"],
        "a deletion made by another instance is seen by the next search here"
    );
    let page = app.kb_chunks(kb, "compass", Some("o2"), PageRequest { number: 0, size: 10 }).await.unwrap();
    assert_eq!(page.content.iter().map(|c| c.chunk_id.as_str()).collect::<Vec<_>>(), ["ne", "south"]);
    assert_eq!((page.total_elements, page.first, page.last), (2, true, true));

    // Wrong dimension, unknown collection, bad name.
    let err = app.kb_similarity(kb, "compass", &similarity(&[1.0, 0.0], 3, &[])).await.unwrap_err();
    assert!(matches!(err, KbError::Validation(_)), "{err:?}");
    let bad = [("flat", &[1.0f32, 0.0][..], &[][..], "o5")];
    let KbError::Validation(e) = app.kb_insert(kb, "compass", insert_request(&bad)).await.unwrap_err() else {
        panic!("a 2-dimensional chunk in a 3-dimensional collection")
    };
    assert!(e.fields().keys().any(|k| k == "chunks[0].vector"), "{e:?}");
    assert!(matches!(
        app.kb_similarity(kb, "nowhere", &similarity(&target, 3, &[])).await,
        Err(KbError::CollectionNotFound(_))
    ));
    assert!(matches!(app.kb_insert(kb, "my notes", insert_request(&bad)).await, Err(KbError::Validation(_))));

    // Dropping: gone for both instances.
    other.kb_drop_collection(kb, "compass", "test").await.unwrap();
    assert!(matches!(
        app.kb_similarity(kb, "compass", &similarity(&target, 3, &[])).await,
        Err(KbError::CollectionNotFound(_))
    ));
    assert_eq!(f.store.storage(&kb.id).await.unwrap().bytes_used, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_chunked_embedded_and_found_by_search() {
    let f = fixture().await;
    let (app, kb) = (&f.app, &f.kb);
    let text = "The lighthouse keeper on Zanzibar counts forty-two gulls every morning.\n\n\
                Tea plantations in the hills need rain in spring and sun in summer.";
    let meta = vec![NameValue::new("source", "handbook")];
    let up = app
        .portal_kb_upload(&f.admin, &kb.id, "handbook", upload("notes.txt", Some("text/plain"), text.as_bytes(), meta))
        .await
        .unwrap();
    assert_eq!((up.chunks, up.collection.as_str()), (1, "handbook"), "a short text is one chunk");
    assert_eq!(f.words.texts.load(Ordering::SeqCst), 1);
    let usage = f.store.storage(&kb.id).await.unwrap();
    assert_eq!((usage.bytes_used, usage.chunk_count), (up.bytes, 1));

    // A long document: many chunks, embedded in batches of 96, stored together.
    let long: String = (0..300)
        .map(|i| format!("Paragraph {i} tells about gulls number {i} and more words.\n\n"))
        .collect::<String>()
        .repeat(12);
    let calls = f.words.calls.load(Ordering::SeqCst);
    let up2 = app
        .portal_kb_upload(&f.admin, &kb.id, "handbook", upload("long.txt", None, long.as_bytes(), vec![]))
        .await
        .unwrap();
    assert!(up2.chunks > 96, "{} chunks", up2.chunks);
    let batches = f.words.calls.load(Ordering::SeqCst) - calls;
    assert_eq!(batches as i64, (up2.chunks + 95) / 96, "one embedding call per 96 chunks");

    let search: SearchRequest =
        serde_json::from_value(json!({"query": "How many gulls does the lighthouse keeper on Zanzibar count?", "k": 2, "metadataFilters": [{"name": "source", "value": "handbook"}]})).unwrap();
    let answer = app.kb_search(kb, "handbook", &search).await.unwrap();
    assert_eq!(answer.chunks.len(), 1, "only the first upload has the metadata");
    assert!(answer.chunks[0].chunk.key.contains("Zanzibar"));
    assert_eq!(answer.chunks[0].chunk.metadata, vec![NameValue::new("source", "handbook")]);

    // Refusals: a file that is neither TXT nor PDF; an embeddings resource whose quota is spent
    // (its refusal is passed on; nothing stored).
    let before = f.store.storage(&kb.id).await.unwrap();
    let err =
        app.portal_kb_upload(&f.admin, &kb.id, "handbook", upload("x.docx", None, b"PK..", vec![])).await.unwrap_err();
    assert_eq!(err.to_string(), "Only TXT and PDF files are supported.");
    let err = app
        .portal_kb_upload(&f.admin, &kb.id, "other", upload("e.txt", None, b"EXHAUSTED quota", vec![]))
        .await
        .unwrap_err();
    assert!(matches!(&err, KbError::Embeddings(e) if e.status == 429), "{err:?}");
    assert_eq!(f.store.storage(&kb.id).await.unwrap(), before);
    let names: Vec<String> =
        app.portal_kb_collections(&f.admin, &kb.id).await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["handbook"], "a failed upload creates no collection");
    let log = app.portal_kb_activity(&f.admin, &kb.id).await.unwrap();
    assert_eq!(log.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["upload", "upload"]);
    assert!(log[1].detail.starts_with("notes.txt: 1 chunks"), "{}", log[1].detail);

    // A user outside the team does not see the knowledge base at all.
    let company = match &f.admin {
        Actor::User(u) => u.company_id.clone(),
        _ => unreachable!(),
    };
    let input = UserInput {
        name: Some("M".into()),
        email: Some("m@example.com".into()),
        role: Some(Role::Member),
        password: None,
    };
    let member = Actor::User(app.create_user(&Actor::Operator, &company, input).await.unwrap());
    assert!(matches!(
        app.portal_kb_collections(&member, &kb.id).await,
        Err(KbError::App(genai_app::AppError::NotFound(_)))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_live_key_of_the_knowledge_base_itself_opens_its_routes() {
    let f = fixture().await;
    let (app, kb) = (&f.app, &f.kb);
    let key = app.create_key(&f.admin, &kb.id, Some("app")).await.unwrap();
    let secret = key.secret.expose().to_string();
    assert_eq!(app.kb_caller(Some(&secret), kb.id.as_str()).await.unwrap().id, kb.id);

    // Another resource's path: 403; a key of a resource that is not a knowledge base: 400.
    let emb_id = kb.embeddings_resource_id.clone().unwrap();
    assert!(matches!(app.kb_caller(Some(&secret), emb_id.as_str()).await, Err(KbError::WrongResource(_))));
    let emb_key = app.create_key(&f.admin, &emb_id, Some("embed")).await.unwrap();
    let emb_secret = emb_key.secret.expose().to_string();
    assert!(matches!(app.kb_caller(Some(&emb_secret), emb_id.as_str()).await, Err(KbError::WrongResourceType(_))));

    // Missing, malformed, tampered: 401, saying nothing about which.
    assert!(matches!(app.kb_caller(None, kb.id.as_str()).await, Err(KbError::Unauthenticated(_))));
    assert!(matches!(app.kb_caller(Some("nonsense"), kb.id.as_str()).await, Err(KbError::Unauthenticated(_))));
    let mut tampered = secret.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    assert!(matches!(app.kb_caller(Some(&tampered), kb.id.as_str()).await, Err(KbError::Unauthenticated(_))));

    // Revoked: refused at once.
    app.revoke_key(&f.admin, &kb.id, &key.key.id).await.unwrap();
    assert!(matches!(app.kb_caller(Some(&secret), kb.id.as_str()).await, Err(KbError::Unauthenticated(_))));
}
