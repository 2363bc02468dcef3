//! The knowledge-content port on every adapter (included by `contract.rs`): collections,
//! chunk inserts that are all or nothing against the storage quota (also when many tasks race
//! for it: on PostgreSQL, many connections, as several instances would be), listings, deletions
//! and the deprovisioning that deletes everything.

use super::fixtures::*;
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId};
use genai_knowledge::wire::NameValue;
use genai_knowledge::{CollectionName, NewChunk};
use genai_store::{ActivityRow, ChunkInsert, Deleted, DocumentRow, InsertOutcome, KbUsage, Store, StoreError};
use std::sync::Arc;

/// A provisioned knowledge base (with its embeddings resource).
async fn knowledge_base(s: &dyn Store) -> Resource {
    let c = funded_company(s, 1000).await;
    let t = at("2025-01-10T09:00:00Z");
    let e = resource(&c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed", t);
    insert(s, &e).await.expect("insert embeddings");
    let mut kb = resource(&c, ResourceType::KnowledgeBase, PlanSize::Standard, "KB", t);
    kb.embeddings_resource_id = Some(e.id.clone());
    insert(s, &kb).await.expect("insert knowledge base");
    kb
}

fn name(n: &str) -> CollectionName {
    CollectionName::parse(n).expect("a valid collection name")
}

fn chunk(id: &str, object: &str, vector: Vec<f32>, text: &str) -> NewChunk {
    NewChunk {
        chunk_id: id.into(),
        human_readable_id: format!("readable {id}"),
        chunk_type: "Knowledge".into(),
        key: text.into(),
        value: String::new(),
        mx_object_id: object.into(),
        mx_entity: "Test.Doc".into(),
        metadata: vec![NameValue::new("kind", "note"), NameValue::new("n", id)],
        labels: vec![NameValue::new("label", "x")],
        vector,
    }
}

fn insert_of<'a>(kb: &'a ResourceId, c: &'a CollectionName, chunks: &'a [NewChunk], quota: i64) -> ChunkInsert<'a> {
    ChunkInsert {
        kb,
        collection: c,
        chunks,
        quota_bytes: quota,
        document: None,
        activity: None,
        now: at("2025-01-11T09:00:00Z"),
    }
}

fn activity(action: &str, collection: &str, when: Instant) -> ActivityRow {
    ActivityRow {
        at: when,
        actor: "usr_test".into(),
        action: action.into(),
        collection_name: collection.into(),
        detail: format!("{action} on {collection}"),
    }
}

fn bytes(chunks: &[NewChunk]) -> i64 {
    chunks.iter().map(NewChunk::stored_bytes).sum()
}

pub async fn kb_chunks_are_stored_listed_and_deleted(store: Arc<dyn Store>) {
    let s = &*store;
    let kb = knowledge_base(s).await;
    let notes = name("notes");
    assert_eq!(s.storage(&kb.id).await.expect("storage"), KbUsage::default(), "nothing stored yet");
    assert_eq!(s.collection(&kb.id, &notes).await.expect("collection"), None);

    let first: Vec<NewChunk> =
        (0..3).map(|i| chunk(&format!("a{i}"), "obj-a", vec![1.0, i as f32, -0.5], "alpha")).collect();
    let doc = DocumentRow {
        id: "doc_1".into(),
        file_name: "a.txt".into(),
        kind: "txt".into(),
        chunks: 3,
        bytes: bytes(&first),
        created_by: None,
    };
    let upload = activity("upload", "notes", at("2025-01-11T09:00:00Z"));
    let mut ins = insert_of(&kb.id, &notes, &first, 1_000_000);
    ins.document = Some(&doc);
    ins.activity = Some(&upload);
    let out = s.insert_chunks(&ins).await.expect("insert");
    let InsertOutcome::Inserted { collection, version, bytes: b } = out else { panic!("inserted: {out:?}") };
    assert_eq!((version, b), (1, bytes(&first)));
    let second: Vec<NewChunk> =
        (0..2).map(|i| chunk(&format!("b{i}"), "obj-b", vec![0.0, 1.0, i as f32], "beta")).collect();
    let out = s.insert_chunks(&insert_of(&kb.id, &notes, &second, 1_000_000)).await.expect("insert");
    assert!(matches!(out, InsertOutcome::Inserted { version: 2, .. }), "{out:?}");

    let row = s.collection(&kb.id, &notes).await.expect("collection").expect("exists");
    assert_eq!(
        (row.id, row.dimension, row.chunk_count, row.version, row.reset_version),
        (collection, Some(3), 5, 2, 0)
    );
    assert_eq!(row.bytes, bytes(&first) + bytes(&second));
    assert_eq!(
        s.storage(&kb.id).await.expect("storage"),
        KbUsage { bytes_used: row.bytes, chunk_count: 5 },
        "the knowledge base counts what its collections hold"
    );

    // Pages in row order, of everything or of one object, with totals.
    let (page, total) = s.chunks(collection, None, 0, 2).await.expect("page 0");
    assert_eq!(total, 5);
    assert_eq!(page.iter().map(|c| c.chunk.chunk_id.as_str()).collect::<Vec<_>>(), ["a0", "a1"]);
    assert_eq!(page[1].chunk, first[1], "a chunk reads back exactly as stored, vector bit for bit");
    let (page, _) = s.chunks(collection, None, 4, 2).await.expect("page 2");
    assert_eq!(page.iter().map(|c| c.chunk.chunk_id.as_str()).collect::<Vec<_>>(), ["b1"]);
    let (page, total) = s.chunks(collection, Some("obj-b"), 0, 10).await.expect("object b");
    assert_eq!((total, page.len()), (2, 2));
    let by_id = s.chunks_by_id(collection, &[page[1].row_id, page[0].row_id]).await.expect("by id");
    assert_eq!(by_id.len(), 2);

    // Index rows: everything, or what the versions after 1 added.
    assert_eq!(s.index_rows(collection, 0).await.expect("all rows").len(), 5);
    let delta = s.index_rows(collection, 1).await.expect("delta");
    assert_eq!(delta.len(), 2);
    assert_eq!((delta[0].mx_object_id.as_str(), delta[0].vector.as_slice()), ("obj-b", &[0.0f32, 1.0, 0.0][..]));
    assert_eq!(delta[0].metadata, second[0].metadata);

    // Collections by name, paged.
    s.create_collection(
        &kb.id,
        &name("empty"),
        Some(&activity("create_collection", "empty", at("2025-01-12T00:00:00Z"))),
        at("2025-01-12T00:00:00Z"),
    )
    .await
    .expect("create");
    let again = s.create_collection(&kb.id, &name("empty"), None, at("2025-01-13T00:00:00Z")).await.expect("again");
    assert_eq!((again.chunk_count, again.dimension), (0, None), "creating an existing collection changes nothing");
    let (cols, total) = s.collections(&kb.id, 0, 10).await.expect("collections");
    assert_eq!((cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), total), (vec!["empty", "notes"], 2));
    let (cols, total) = s.collections(&kb.id, 1, 1).await.expect("page 1");
    assert_eq!((cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), total), (vec!["notes"], 2));

    // Delete by object: counts given back, the version moves and makes older indexes reload.
    let gone = s.delete_object(&kb.id, &notes, "obj-a", None).await.expect("delete object");
    assert_eq!(gone, Some(Deleted { chunks: 3, bytes: bytes(&first) }));
    let row = s.collection(&kb.id, &notes).await.expect("collection").expect("exists");
    assert_eq!((row.chunk_count, row.bytes, row.version, row.reset_version), (2, bytes(&second), 3, 3));
    assert_eq!(s.storage(&kb.id).await.expect("storage"), KbUsage { bytes_used: bytes(&second), chunk_count: 2 });
    assert_eq!(s.delete_object(&kb.id, &notes, "nobody", None).await.expect("none"), Some(Deleted::default()));
    assert_eq!(s.delete_object(&kb.id, &name("missing"), "obj-a", None).await.expect("missing"), None);

    // Drop: the collection and its chunks; a dropped or unknown collection is None.
    let dropped = s
        .drop_collection(&kb.id, &notes, Some(&activity("delete_collection", "notes", at("2025-01-14T00:00:00Z"))))
        .await;
    assert_eq!(dropped.expect("drop"), Some(Deleted { chunks: 2, bytes: bytes(&second) }));
    assert_eq!(s.drop_collection(&kb.id, &notes, None).await.expect("again"), None);
    assert_eq!(s.collection(&kb.id, &notes).await.expect("collection"), None);
    assert_eq!(s.storage(&kb.id).await.expect("storage"), KbUsage::default());

    let log = s.activity(&kb.id, 10).await.expect("activity");
    assert_eq!(
        log.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["delete_collection", "create_collection", "upload"],
        "newest first; a creation of an existing collection is not logged"
    );
}

pub async fn kb_inserts_over_the_quota_or_of_another_dimension_store_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    let kb = knowledge_base(s).await;
    let small: Vec<NewChunk> = (0..2).map(|i| chunk(&format!("s{i}"), "o", vec![1.0, 0.0], "small")).collect();
    let quota = bytes(&small) + 10;
    let out = s.insert_chunks(&insert_of(&kb.id, &name("c"), &small, quota)).await.expect("insert");
    assert!(matches!(out, InsertOutcome::Inserted { .. }), "{out:?}");
    let used = bytes(&small);

    // Over the quota, into an existing and into a new collection: nothing stored, not even the
    // new collection.
    let more = vec![chunk("m", "o", vec![0.0, 1.0], "this one does not fit")];
    for col in ["c", "new"] {
        let out = s.insert_chunks(&insert_of(&kb.id, &name(col), &more, quota)).await.expect("refused");
        assert_eq!(out, InsertOutcome::OverQuota { used, quota, needed: bytes(&more) }, "{col}");
    }
    assert_eq!(s.collection(&kb.id, &name("new")).await.expect("collection"), None, "no collection was created");
    assert_eq!(s.storage(&kb.id).await.expect("storage"), KbUsage { bytes_used: used, chunk_count: 2 });
    assert_eq!(
        s.chunks(s.collection(&kb.id, &name("c")).await.expect("c").expect("c").id, None, 0, 10)
            .await
            .expect("chunks")
            .1,
        2
    );

    // Exactly up to the quota fits.
    let exact = vec![NewChunk { key: String::new(), ..chunk("e", "o", vec![0.5, 0.5], "") }];
    let fits = used + bytes(&exact);
    let out = s.insert_chunks(&insert_of(&kb.id, &name("c"), &exact, fits)).await.expect("insert");
    assert!(matches!(out, InsertOutcome::Inserted { .. }), "an insert reaching the quota exactly fits: {out:?}");

    // Another dimension: refused, nothing stored.
    let three = vec![chunk("t", "o", vec![1.0, 2.0, 3.0], "three")];
    let out = s.insert_chunks(&insert_of(&kb.id, &name("c"), &three, i64::MAX / 2)).await.expect("refused");
    assert_eq!(out, InsertOutcome::DimensionMismatch { expected: 2 });
    assert_eq!(s.storage(&kb.id).await.expect("storage").chunk_count, 3);
}

pub async fn kb_concurrent_inserts_never_exceed_the_quota(store: Arc<dyn Store>) {
    let kb = knowledge_base(&*store).await;
    let batch: Vec<NewChunk> =
        (0..10).map(|i| chunk(&format!("c{i}"), "o", vec![1.0, i as f32, 2.0, 0.5], "racing text")).collect();
    let per = bytes(&batch);
    let quota = per * 7 + per / 2;
    let mut tasks = Vec::new();
    for t in 0..20 {
        let (store, kb, batch) = (store.clone(), kb.id.clone(), batch.clone());
        tasks.push(tokio::spawn(async move {
            // Half into one collection, half into collections of their own.
            let col = if t % 2 == 0 { name("shared") } else { name(&format!("own-{t}")) };
            store.insert_chunks(&insert_of(&kb, &col, &batch, quota)).await.expect("insert")
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        match t.await.expect("task") {
            InsertOutcome::Inserted { .. } => inserted += 1,
            InsertOutcome::OverQuota { quota: q, needed, .. } => assert_eq!((q, needed), (quota, per)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(inserted, 7, "exactly as many inserts as fit");
    let usage = store.storage(&kb.id).await.expect("storage");
    assert_eq!(usage, KbUsage { bytes_used: per * 7, chunk_count: 70 });
    let (cols, _) = store.collections(&kb.id, 0, 100).await.expect("collections");
    assert_eq!(cols.iter().map(|c| c.chunk_count).sum::<i64>(), 70, "only the inserts that fit left rows");
    assert_eq!(cols.iter().map(|c| c.bytes).sum::<i64>(), per * 7);
    assert!(cols.iter().all(|c| c.chunk_count > 0), "refused inserts created no collection: {cols:?}");
    let shared = cols.iter().find(|c| c.name == "shared").map(|c| (c.chunk_count / 10, c.version));
    if let Some((n, version)) = shared {
        assert_eq!(version, n, "every insert into one collection took its own version");
    }
}

pub async fn kb_deprovisioning_deletes_the_content(store: Arc<dyn Store>) {
    let s = &*store;
    let kb = knowledge_base(s).await;
    let chunks: Vec<NewChunk> = (0..4).map(|i| chunk(&format!("d{i}"), "o", vec![1.0, i as f32], "doomed")).collect();
    for col in ["one", "two"] {
        let out = s.insert_chunks(&insert_of(&kb.id, &name(col), &chunks, 1_000_000)).await.expect("insert");
        assert!(matches!(out, InsertOutcome::Inserted { .. }), "{out:?}");
    }
    let t = at("2025-01-20T09:00:00Z");
    apply(s, kb.deprovision(&[], t).expect("deprovision")).await.expect("schedule");
    assert_eq!(
        s.storage(&kb.id).await.expect("storage").chunk_count,
        8,
        "a scheduled deprovisioning deletes nothing yet"
    );
    let took = reload(s, &kb).await.take_effect(at("2025-02-10T09:00:00Z")).expect("due");
    apply(s, took).await.expect("deprovisioned");
    assert_eq!(s.storage(&kb.id).await.expect("storage"), KbUsage::default());
    assert_eq!(s.collections(&kb.id, 0, 10).await.expect("collections"), (vec![], 0));
    let out = s.insert_chunks(&insert_of(&kb.id, &name("one"), &chunks, 1_000_000)).await.expect("refused");
    assert_eq!(out, InsertOutcome::Deprovisioned, "nothing can be stored any more");
    assert_eq!(s.collections(&kb.id, 0, 10).await.expect("collections").1, 0);
    assert!(matches!(s.create_collection(&kb.id, &name("late"), None, t).await, Err(StoreError::NotFound)));
}
