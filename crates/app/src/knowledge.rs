//! Knowledge bases (RUNTIME.md §8): the use cases behind the Runtime API's knowledge-base
//! routes and the Portal's Content tab, and the in-memory search indexes.
//!
//! **Who may call.** The Runtime API's handlers authenticate a knowledge-base key and hand the
//! key's resource to the `kb_*` use cases taking a `&Resource` (they check it is a live
//! knowledge base). The Portal's use cases (`portal_kb_*`) take the signed-in actor and apply
//! the Portal's one rule ([`App::team_resource`](crate::App)).
//!
//! **Searches** are exact: the top `k` by cosine similarity among the chunks that carry every
//! metadata and label pair asked for (filters apply before ranking), computed by
//! [`genai_knowledge::VectorIndex`] over the whole collection. The index of a collection is
//! built on its first search and kept in [`KbIndexes`], keyed by the collection's row id,
//! together with the collection `version` it reflects. Every search first reads the
//! collection's row (one primary-key lookup: it also answers 404 and gives the dimension):
//! - same version as the index: search;
//! - newer, and no deletion since the index's version (`reset_version`): load only the rows
//!   inserted since (`added_version` above the index's), then search;
//! - a deletion since: rebuild from all rows.
//!
//! The row is read *before* the chunks it is compared with, so an index is never labelled
//! newer than what it holds; at worst it is labelled older and catches up on the next
//! search. This is what makes an insert "readable by the next request" on every instance of a
//! PostgreSQL deployment, with one extra indexed query only when something changed.
//! Indexes of collections that were dropped here are evicted; the cache holds at most
//! [`MAX_CACHED_INDEXES`] collections and drops the least recently searched beyond that.
//!
//! **Embeddings** for searches by text and for uploads are made by an [`Embedder`] (the
//! runtime's engine: it calls the linked embeddings resource's model and meters the call on
//! that resource, refusing it when that resource's quota is spent). A server without one
//! answers those two operations 503.
//!
//! **Uploads** (TXT, PDF): the text is extracted off the async runtime, cut into chunks of at
//! most 2,048 characters, embedded in batches of 96, and all chunks of the document are stored
//! in **one** transaction, so a document is stored whole or not at all. A document whose text
//! alone would not fit in the remaining storage is refused before anything is embedded, so a
//! doomed upload spends no embedding tokens; the insert's transaction still decides.

use crate::auth::Actor;
use crate::{App, AppError};
use async_trait::async_trait;
use genai_core::catalog::ResourceType;
use genai_core::resource::{Resource, Scheduled};
use genai_core::ResourceId;
use genai_knowledge::chunking::{chunk_text, MAX_CHUNK_CHARS};
use genai_knowledge::extract::{extract_text, DocumentKind, ExtractError};
use genai_knowledge::index::ChunkAttrs;
use genai_knowledge::validate::{
    validate_insert, validate_search, validate_similarity, PageRequest, ValidationErrors, ValidationProblem,
};
use genai_knowledge::wire::{
    CollectionSummary, InsertChunksRequest, NameValue, Page, ScoredChunk, SearchRequest, SimilarityAnswer,
    SimilarityRequest,
};
use genai_knowledge::{CollectionName, Filter, NewChunk, VectorIndex};
use genai_store::{
    ActivityRow, ChunkInsert, CollectionRow, Deleted, DocumentRow, InsertOutcome, KbUsage, StoreError,
    MAX_INSERT_CHUNKS,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::RwLock;

/// Texts per embedding call (the Cohere Embed limit the Runtime API enforces too).
pub const EMBED_BATCH: usize = 96;
/// Most collections whose indexes one server keeps in memory.
pub const MAX_CACHED_INDEXES: usize = 256;
/// Lines of the activity log the Portal shows.
pub const ACTIVITY_LINES: i64 = 50;

/// Why an embedding call for a knowledge base did not give vectors: the status and code the
/// embeddings resource's own call answered (429 `quota_exceeded` when its quota is spent, 502
/// when its model failed, …) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EmbedError {
    /// HTTP status to answer with.
    pub status: u16,
    /// Stable error code.
    pub code: String,
    /// What went wrong, naming the embeddings resource.
    pub message: String,
    /// Seconds until the embeddings resource's quota refills, when that is the reason.
    pub retry_after_secs: Option<u64>,
}

/// Makes embeddings for a knowledge base through its linked embeddings resource, metered there.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// One vector per text, in order, made by `embeddings`' model; the call counts against that
    /// resource's quota exactly as a Runtime API call of it would.
    async fn embed(&self, embeddings: &Resource, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Why a knowledge-base use case did not complete. Nothing was stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// No key, or a malformed, unknown or revoked one, or a deprovisioned resource's (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The key belongs to another resource (403 `wrong_resource`).
    #[error("this key belongs to another resource; use a key of resource {0}")]
    WrongResource(ResourceId),
    /// A field of the request is wrong (400 `validation_failed`; `fields()` names each).
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The resource is not a knowledge base (400 `wrong_resource_type`).
    #[error("resource {0} is not a knowledge base")]
    WrongResourceType(ResourceId),
    /// The knowledge base is deprovisioned (403 `resource_deprovisioned`).
    #[error("knowledge base {0} is deprovisioned")]
    Deprovisioned(ResourceId),
    /// No collection of that name (404 `not_found`).
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    /// The insert would go over the plan's storage (413 `storage_quota_exceeded`).
    #[error(
        "storing this needs {needed} bytes but the knowledge base has {} of its {quota} bytes of storage left \
         ({used} used); nothing was stored",
        quota.saturating_sub(*used).max(0)
    )]
    StorageQuotaExceeded {
        /// Bytes used before.
        used: i64,
        /// The plan's `storage_bytes`.
        quota: i64,
        /// Bytes the request needed.
        needed: i64,
    },
    /// An uploaded file gave no text (400, the extraction's code).
    #[error("{0}")]
    Document(ExtractError),
    /// The linked embeddings resource refused or failed.
    #[error("the linked embeddings resource: {0}")]
    Embeddings(EmbedError),
    /// The server has no embedder (503 `embeddings_unavailable`).
    #[error("this server cannot make embeddings for knowledge bases (no runtime engine configured)")]
    NoEmbedder,
    /// Anything the application layer answers (access, storage failures).
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for KbError {
    fn from(e: StoreError) -> Self {
        KbError::App(AppError::from(e))
    }
}

impl From<ValidationErrors> for KbError {
    fn from(e: ValidationErrors) -> Self {
        KbError::Validation(e)
    }
}

/// An index and the collection version it reflects.
struct Loaded {
    version: i64,
    index: Option<VectorIndex>,
}

type Slot = Arc<RwLock<Loaded>>;

/// The in-memory indexes of one server, and its embedder (see the module docs).
#[derive(Default)]
pub struct KbIndexes {
    /// Collection row id → (last use, the index).
    by_collection: Mutex<HashMap<i64, (u64, Slot)>>,
    tick: std::sync::atomic::AtomicU64,
    embedder: OnceLock<Arc<dyn Embedder>>,
}

impl KbIndexes {
    fn entry(&self, collection: i64) -> Arc<RwLock<Loaded>> {
        let tick = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.by_collection.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&collection) && map.len() >= MAX_CACHED_INDEXES {
            if let Some(oldest) = map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        let slot =
            map.entry(collection).or_insert_with(|| (tick, Arc::new(RwLock::new(Loaded { version: -1, index: None }))));
        slot.0 = tick;
        slot.1.clone()
    }

    fn evict(&self, collection: i64) {
        self.by_collection.lock().unwrap_or_else(|p| p.into_inner()).remove(&collection);
    }

    /// How many collections have an index in memory, and their estimated bytes.
    pub fn memory(&self) -> (usize, usize) {
        let map = self.by_collection.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = map
            .values()
            .filter_map(|(_, l)| l.try_read().ok().and_then(|l| l.index.as_ref().map(VectorIndex::memory_bytes)))
            .sum();
        (map.len(), bytes)
    }
}

/// A document to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file's name as sent (its extension decides TXT or PDF).
    pub file_name: String,
    /// The declared content type, if any.
    pub content_type: Option<String>,
    /// The file.
    pub bytes: Vec<u8>,
    /// Metadata attached to every chunk.
    pub metadata: Vec<NameValue>,
}

/// The answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The document's id.
    pub document_id: String,
    /// Chunks stored.
    pub chunks: i64,
    /// Bytes they count against the storage quota.
    pub bytes: i64,
    /// The collection they went into.
    pub collection: String,
}

/// A collection as the Portal lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// Chunks.
    pub chunks: i64,
    /// Bytes counted.
    pub bytes: i64,
    /// Vector dimension, once known.
    pub dimension: Option<usize>,
}

fn collection_name(raw: &str) -> Result<CollectionName, KbError> {
    CollectionName::parse(raw).map_err(|e| {
        // The path segment is the field: say so whatever the kernel called it.
        KbError::Validation(ValidationErrors(
            e.0.into_iter().map(|p| ValidationProblem { field: "collection".into(), ..p }).collect(),
        ))
    })
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl App {
    /// Wires the embedder (the runtime's engine) once; later calls are ignored.
    pub fn set_kb_embedder(&self, embedder: Arc<dyn Embedder>) {
        let _ = self.kb.embedder.set(embedder);
    }

    /// The in-memory indexes (for tests and the status page).
    pub fn kb_indexes(&self) -> &KbIndexes {
        &self.kb
    }

    /// The plan's `storage_bytes` of a knowledge base.
    pub fn storage_quota(&self, kb: &Resource) -> i64 {
        self.catalog.plan(kb.resource_type, kb.plan).and_then(|p| p.storage_bytes).unwrap_or(0)
    }

    /// What a knowledge base stores (zeros for other resources).
    pub async fn kb_storage(&self, r: &Resource) -> Result<KbUsage, AppError> {
        if r.resource_type != ResourceType::KnowledgeBase {
            return Ok(KbUsage::default());
        }
        Ok(self.store.storage(&r.id).await?)
    }

    /// Whether a resource serves calls at `now`: not deprovisioned, and no deprovisioning due
    /// (the scheduler may not have written it yet; RUNTIME.md §5: refused from that instant).
    fn serves_at(r: &Resource, now: genai_core::Instant) -> bool {
        r.is_live()
            && r.deprovisioned_at.is_none()
            && !matches!(r.scheduled, Some(Scheduled::Deprovision { effective_at }) if effective_at <= now)
    }

    fn live_kb(&self, kb: &Resource) -> Result<(), KbError> {
        if kb.resource_type != ResourceType::KnowledgeBase {
            return Err(KbError::WrongResourceType(kb.id.clone()));
        }
        if !Self::serves_at(kb, self.now()) {
            return Err(KbError::Deprovisioned(kb.id.clone()));
        }
        Ok(())
    }

    /// Authenticates a Runtime API call of the knowledge-base routes: `secret` (`x-api-key`)
    /// must be a live key of the knowledge base `path_id`. Read from the database on every
    /// call, so a revocation or deprovisioning made on any instance is refused at once.
    pub async fn kb_caller(&self, secret: Option<&str>, path_id: &str) -> Result<Resource, KbError> {
        use subtle::ConstantTimeEq;
        const UNKNOWN: &str = "missing, unknown or revoked key: send a runtime key of this knowledge base in x-api-key";
        let secret = secret.map(str::trim).filter(|s| !s.is_empty()).ok_or(KbError::Unauthenticated(UNKNOWN))?;
        let parsed = genai_core::keys::KeySecret::parse(secret).ok_or(KbError::Unauthenticated(UNKNOWN))?;
        let (key, resource) =
            self.store.runtime_key(parsed.public_id()).await?.ok_or(KbError::Unauthenticated(UNKNOWN))?;
        let presented = crate::auth::token_hash(secret);
        if !bool::from(presented.as_bytes().ct_eq(key.secret_hash.as_bytes())) || key.revoked_at.is_some() {
            return Err(KbError::Unauthenticated(UNKNOWN));
        }
        if !Self::serves_at(&resource, self.now()) {
            return Err(KbError::Unauthenticated("the key's resource is deprovisioned"));
        }
        if resource.id.as_str() != path_id {
            return Err(KbError::WrongResource(resource.id));
        }
        if resource.resource_type != ResourceType::KnowledgeBase {
            return Err(KbError::WrongResourceType(resource.id));
        }
        Ok(resource)
    }

    async fn existing(&self, kb: &Resource, name: &CollectionName) -> Result<CollectionRow, KbError> {
        self.store.collection(&kb.id, name).await?.ok_or_else(|| KbError::CollectionNotFound(name.to_string()))
    }

    /// `GET R/knowledge-bases`: the collections, by name.
    pub async fn kb_collections(&self, kb: &Resource, page: PageRequest) -> Result<Page<CollectionSummary>, KbError> {
        self.live_kb(kb)?;
        let (rows, total) = self.store.collections(&kb.id, as_i64(page.offset()), as_i64(page.size)).await?;
        let content =
            rows.into_iter().map(|c| CollectionSummary { resource_id: kb.id.to_string(), name: c.name }).collect();
        Ok(Page::new(page.number, page.size, total, content))
    }

    /// `POST R/knowledge-bases/{collection}/chunks`: stores every chunk or none (creating the
    /// collection if new); answers how many.
    pub async fn kb_insert(
        &self,
        kb: &Resource,
        collection: &str,
        request: InsertChunksRequest,
    ) -> Result<usize, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let existing = self.store.collection(&kb.id, &name).await?;
        let batch = validate_insert(request, existing.as_ref().and_then(|c| c.dimension))?;
        self.store_chunks(kb, &name, &batch.chunks, None, None).await?;
        Ok(batch.chunks.len())
    }

    /// Runs the insert and turns its outcome into an answer; patches this instance's index.
    async fn store_chunks(
        &self,
        kb: &Resource,
        name: &CollectionName,
        chunks: &[NewChunk],
        document: Option<&DocumentRow>,
        activity: Option<&ActivityRow>,
    ) -> Result<i64, KbError> {
        let insert = ChunkInsert {
            kb: &kb.id,
            collection: name,
            chunks,
            quota_bytes: self.storage_quota(kb),
            document,
            activity,
            now: self.now(),
        };
        match self.store.insert_chunks(&insert).await? {
            InsertOutcome::Inserted { bytes, .. } => Ok(bytes),
            InsertOutcome::OverQuota { used, quota, needed } => {
                Err(KbError::StorageQuotaExceeded { used, quota, needed })
            }
            InsertOutcome::DimensionMismatch { expected } => {
                let problem = match chunks.iter().enumerate().find(|(_, c)| c.vector.len() != expected) {
                    Some((index, chunk)) => ValidationProblem {
                        field: format!("chunks[{index}].vector"),
                        chunk_index: Some(index),
                        chunk_id: Some(chunk.chunk_id.clone()),
                        message: format!(
                            "chunk {index} (chunkId \"{}\"): vector has {} dimensions; the collection's vectors have {expected}",
                            chunk.chunk_id,
                            chunk.vector.len()
                        ),
                    },
                    None => ValidationProblem::field("vector", format!("the collection's vectors have {expected} dimensions")),
                };
                Err(KbError::Validation(ValidationErrors(vec![problem])))
            }
            InsertOutcome::Deprovisioned => Err(KbError::Deprovisioned(kb.id.clone())),
        }
    }

    /// `GET R/knowledge-bases/{collection}/chunks`: a page of chunks in insertion order,
    /// optionally of one object.
    pub async fn kb_chunks(
        &self,
        kb: &Resource,
        collection: &str,
        mx_object_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<genai_knowledge::wire::Chunk>, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let row = self.existing(kb, &name).await?;
        let (chunks, total) = self.store.chunks(row.id, mx_object_id, as_i64(page.offset()), as_i64(page.size)).await?;
        Ok(Page::new(page.number, page.size, total, chunks.iter().map(|c| c.chunk.to_wire()).collect()))
    }

    /// `DELETE R/knowledge-bases/{collection}/chunks?mxObjectId=…`.
    pub async fn kb_delete_object(
        &self,
        kb: &Resource,
        collection: &str,
        mx_object_id: &str,
    ) -> Result<Deleted, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let activity = ActivityRow {
            at: self.now(),
            actor: "runtime".into(),
            action: "delete_object".into(),
            collection_name: name.to_string(),
            detail: format!("object {mx_object_id}"),
        };
        self.store
            .delete_object(&kb.id, &name, mx_object_id, Some(&activity))
            .await?
            .ok_or_else(|| KbError::CollectionNotFound(name.to_string()))
    }

    /// `DELETE R/knowledge-bases/{collection}` (also the Portal's delete, with its actor).
    pub async fn kb_drop_collection(&self, kb: &Resource, collection: &str, actor: &str) -> Result<Deleted, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let row = self.existing(kb, &name).await?;
        let activity = ActivityRow {
            at: self.now(),
            actor: actor.into(),
            action: "delete_collection".into(),
            collection_name: name.to_string(),
            detail: format!("{} chunks, {} bytes", row.chunk_count, row.bytes),
        };
        let deleted = self
            .store
            .drop_collection(&kb.id, &name, Some(&activity))
            .await?
            .ok_or_else(|| KbError::CollectionNotFound(name.to_string()))?;
        self.kb.evict(row.id);
        Ok(deleted)
    }

    /// `POST R/knowledge-bases/{collection}/similarity`.
    pub async fn kb_similarity(
        &self,
        kb: &Resource,
        collection: &str,
        request: &SimilarityRequest,
    ) -> Result<SimilarityAnswer, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let query = validate_similarity(request)?;
        let row = self.existing(kb, &name).await?;
        if let Some(dim) = row.dimension {
            query.check_dimension(dim)?;
        }
        self.search_collection(&row, query.vector, query.k, query.filter).await
    }

    /// `POST R/knowledge-bases/{collection}/search`: embeds the text with the linked embeddings
    /// resource (metered there), then answers like `similarity`.
    pub async fn kb_search(
        &self,
        kb: &Resource,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<SimilarityAnswer, KbError> {
        self.live_kb(kb)?;
        let name = collection_name(collection)?;
        let query = validate_search(request)?;
        let row = self.existing(kb, &name).await?;
        let mut vectors = self.embed(kb, std::slice::from_ref(&query.query)).await?;
        let vector = vectors.pop().unwrap_or_default();
        if let Some(dim) = row.dimension {
            if vector.len() != dim {
                return Err(KbError::Validation(ValidationErrors(vec![ValidationProblem::field(
                    "query",
                    format!(
                        "was embedded by the linked embeddings resource into {} dimensions, but the collection's \
                         vectors have {dim}: the collection was filled with another model's vectors",
                        vector.len()
                    ),
                )])));
            }
        }
        self.search_collection(&row, vector, query.k, query.filter).await
    }

    /// Embeds `texts` with the knowledge base's linked embeddings resource.
    async fn embed(&self, kb: &Resource, texts: &[String]) -> Result<Vec<Vec<f32>>, KbError> {
        let embedder = self.kb.embedder.get().ok_or(KbError::NoEmbedder)?;
        let linked = kb.embeddings_resource_id.as_ref().ok_or_else(|| {
            KbError::App(AppError::Internal(format!("knowledge base {} has no linked embeddings resource", kb.id)))
        })?;
        let embeddings = self.store.runtime_resource(linked).await?.ok_or_else(|| {
            KbError::App(AppError::Internal(format!("the embeddings resource {linked} of {} is missing", kb.id)))
        })?;
        let vectors = embedder.embed(&embeddings, texts).await.map_err(KbError::Embeddings)?;
        if vectors.len() != texts.len() {
            return Err(KbError::Embeddings(EmbedError {
                status: 502,
                code: "upstream_failed".into(),
                message: format!("the embeddings model answered {} vectors for {} texts", vectors.len(), texts.len()),
                retry_after_secs: None,
            }));
        }
        Ok(vectors)
    }

    /// Brings this instance's index of the collection up to the version read in `row`, then
    /// answers the top `k`.
    async fn search_collection(
        &self,
        row: &CollectionRow,
        vector: Vec<f32>,
        k: usize,
        filter: Filter,
    ) -> Result<SimilarityAnswer, KbError> {
        let Some(dimension) = row.dimension else {
            return Ok(SimilarityAnswer { chunks: Vec::new() });
        };
        let slot = self.kb.entry(row.id);
        let current = { slot.read().await.version >= row.version };
        if !current {
            let mut loaded = slot.write().await;
            if loaded.version < row.version {
                let reload = loaded.index.is_none() || loaded.version < row.reset_version;
                let after = if reload { 0 } else { loaded.version };
                let rows = self.store.index_rows(row.id, after).await?;
                let build = move |mut index: VectorIndex| -> Result<VectorIndex, AppError> {
                    index.reserve(rows.len());
                    for r in &rows {
                        let key = u64::try_from(r.row_id).unwrap_or(0);
                        if index.contains(key) {
                            continue; // loaded already by a delta that read a newer commit
                        }
                        let attrs =
                            ChunkAttrs { mx_object_id: &r.mx_object_id, metadata: &r.metadata, labels: &r.labels };
                        index.insert(key, &r.vector, attrs).map_err(|e| {
                            AppError::Internal(format!("chunk row {} cannot be indexed: {e}", r.row_id))
                        })?;
                    }
                    Ok(index)
                };
                let base = match loaded.index.take() {
                    Some(index) if !reload => index,
                    _ => VectorIndex::new(dimension).map_err(|e| AppError::Internal(e.to_string()))?,
                };
                let index = tokio::task::spawn_blocking(move || build(base))
                    .await
                    .map_err(|e| AppError::Internal(format!("index build failed: {e}")))??;
                loaded.index = Some(index);
                loaded.version = row.version;
            }
        }
        let guard = slot.clone().read_owned().await;
        let hits = tokio::task::spawn_blocking(move || match guard.index.as_ref() {
            Some(index) => index.search(&vector, k, &filter).map_err(|e| AppError::Internal(e.to_string())),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(|e| AppError::Internal(format!("search failed: {e}")))??;
        let ids: Vec<i64> = hits.iter().map(|h| i64::try_from(h.key).unwrap_or(i64::MAX)).collect();
        let mut by_id: HashMap<i64, NewChunk> =
            self.store.chunks_by_id(row.id, &ids).await?.into_iter().map(|c| (c.row_id, c.chunk)).collect();
        let chunks = hits
            .iter()
            .zip(&ids)
            // A chunk deleted between the index read and this one is left out.
            .filter_map(|(h, id)| {
                by_id.remove(id).map(|c| ScoredChunk { chunk: c.to_wire(), similarity: f64::from(h.similarity) })
            })
            .collect();
        Ok(SimilarityAnswer { chunks })
    }

    // ---- Portal ------------------------------------------------------------------------

    async fn portal_kb(&self, actor: &Actor, id: &ResourceId) -> Result<(String, Resource), KbError> {
        let (user, r) = self.team_resource(actor, id).await?;
        self.live_kb(&r)?;
        Ok((user.id.to_string(), r))
    }

    /// The Content tab's list: every collection (up to 1,000) with its counts.
    pub async fn portal_kb_collections(&self, actor: &Actor, id: &ResourceId) -> Result<Vec<CollectionInfo>, KbError> {
        let (_, kb) = self.portal_kb(actor, id).await?;
        let (rows, _) = self.store.collections(&kb.id, 0, 1_000).await?;
        Ok(rows
            .into_iter()
            .map(|c| CollectionInfo { name: c.name, chunks: c.chunk_count, bytes: c.bytes, dimension: c.dimension })
            .collect())
    }

    /// Creates an empty collection (the Content tab's "New collection").
    pub async fn portal_kb_create_collection(
        &self,
        actor: &Actor,
        id: &ResourceId,
        collection: &str,
    ) -> Result<CollectionInfo, KbError> {
        let (user, kb) = self.portal_kb(actor, id).await?;
        let name = collection_name(collection)?;
        let now = self.now();
        let activity = ActivityRow {
            at: now,
            actor: user,
            action: "create_collection".into(),
            collection_name: name.to_string(),
            detail: String::new(),
        };
        let c = self.store.create_collection(&kb.id, &name, Some(&activity), now).await?;
        Ok(CollectionInfo { name: c.name, chunks: c.chunk_count, bytes: c.bytes, dimension: c.dimension })
    }

    /// Deletes a collection from the Portal.
    pub async fn portal_kb_drop_collection(
        &self,
        actor: &Actor,
        id: &ResourceId,
        collection: &str,
    ) -> Result<Deleted, KbError> {
        let (user, kb) = self.portal_kb(actor, id).await?;
        self.kb_drop_collection(&kb, collection, &user).await
    }

    /// The activity log, newest first.
    pub async fn portal_kb_activity(&self, actor: &Actor, id: &ResourceId) -> Result<Vec<ActivityRow>, KbError> {
        let (_, kb) = self.portal_kb(actor, id).await?;
        Ok(self.store.activity(&kb.id, ACTIVITY_LINES).await?)
    }

    /// Uploads a TXT or PDF document into a collection (created if new): extract, chunk, embed
    /// through the linked embeddings resource, store all chunks in one transaction.
    /// `metadata` is attached to every chunk.
    pub async fn portal_kb_upload(
        &self,
        actor: &Actor,
        id: &ResourceId,
        collection: &str,
        upload: Upload,
    ) -> Result<Uploaded, KbError> {
        let (user, kb) = self.portal_kb(actor, id).await?;
        let name = collection_name(collection)?;
        let Upload { file_name, content_type, bytes, metadata } = upload;
        let file_name = file_name.rsplit(['/', '\\']).next().unwrap_or(&file_name).to_string();
        let kind = DocumentKind::detect(&file_name, content_type.as_deref(), &bytes).map_err(KbError::Document)?;
        let texts = tokio::task::spawn_blocking(move || {
            extract_text(kind, &bytes).map(|t| chunk_text(&t.text, MAX_CHUNK_CHARS))
        })
        .await
        .map_err(|e| AppError::Internal(format!("text extraction failed: {e}")))?
        .map_err(KbError::Document)?;
        if texts.len() > MAX_INSERT_CHUNKS {
            return Err(KbError::Validation(ValidationErrors(vec![ValidationProblem::field(
                "file",
                format!("makes {} chunks; at most {MAX_INSERT_CHUNKS} can be stored from one document", texts.len()),
            )])));
        }
        let document_id = self.ids.next("doc");
        let body = document_id.strip_prefix("doc_").unwrap_or(&document_id).to_string();
        let existing = self.store.collection(&kb.id, &name).await?;
        let mut chunks: Vec<NewChunk> = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| NewChunk {
                chunk_id: format!("{body}-{}", i + 1),
                human_readable_id: format!("{file_name} #{}", i + 1),
                chunk_type: "Document".into(),
                key: text,
                value: String::new(),
                mx_object_id: document_id.clone(),
                mx_entity: file_name.clone(),
                metadata: metadata.clone(),
                labels: Vec::new(),
                vector: Vec::new(),
            })
            .collect();
        // Refuse before embedding what cannot fit even without its vectors.
        let quota = self.storage_quota(&kb);
        let used = self.store.storage(&kb.id).await?.bytes_used;
        let dimension_guess = existing.as_ref().and_then(|c| c.dimension).unwrap_or(0);
        let lower_bound: i64 =
            chunks.iter().map(|c| c.stored_bytes() + 4 * i64::try_from(dimension_guess).unwrap_or(0)).sum();
        if used.saturating_add(lower_bound) > quota {
            return Err(KbError::StorageQuotaExceeded { used, quota, needed: lower_bound });
        }
        for batch in chunks.chunks_mut(EMBED_BATCH) {
            let texts: Vec<String> = batch.iter().map(|c| c.key.clone()).collect();
            let vectors = self.embed(&kb, &texts).await?;
            for (c, v) in batch.iter_mut().zip(vectors) {
                c.vector = v;
            }
        }
        if let Some(problem) = chunks.iter().position(|c| c.vector.is_empty() || c.vector.iter().all(|x| *x == 0.0)) {
            return Err(KbError::Embeddings(EmbedError {
                status: 502,
                code: "upstream_failed".into(),
                message: format!("the embeddings model answered an empty or zero vector for chunk {}", problem + 1),
                retry_after_secs: None,
            }));
        }
        let total: i64 = chunks.iter().map(NewChunk::stored_bytes).sum();
        let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        let document = DocumentRow {
            id: document_id.clone(),
            file_name: file_name.clone(),
            kind: match kind {
                DocumentKind::Text => "txt".into(),
                DocumentKind::Pdf => "pdf".into(),
            },
            chunks: count,
            bytes: total,
            created_by: Some(user.clone()),
        };
        let activity = ActivityRow {
            at: self.now(),
            actor: user,
            action: "upload".into(),
            collection_name: name.to_string(),
            detail: format!("{file_name}: {count} chunks, {total} bytes"),
        };
        let bytes = self.store_chunks(&kb, &name, &chunks, Some(&document), Some(&activity)).await?;
        Ok(Uploaded { document_id, chunks: count, bytes, collection: name.to_string() })
    }
}
