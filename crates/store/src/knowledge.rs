//! Knowledge-base content: collections, chunks and the storage counter (RUNTIME.md §8; design
//! in `docs/knowledge.md`).
//!
//! The database is the truth; searches run on in-memory indexes the application builds from
//! [`KnowledgeStore::index_rows`] and keeps current with the collection's `version` (every
//! write transaction of a collection bumps it; an insert's rows carry the version that added
//! them, so an index at version `v` catches up by loading the rows added after `v`; a deletion
//! also moves `reset_version`, which makes every older index reload).
//!
//! The storage quota is decided in the insert's own transaction by one conditional statement
//! on the knowledge base's counter row (`UPDATE kb_stores … WHERE bytes_used + n <= quota`), so
//! concurrent inserts on any number of instances never exceed it together, and an insert that
//! would go over it stores nothing (not even the collection it would have created).

use crate::StoreResult;
use async_trait::async_trait;
use genai_core::{Instant, ResourceId};
use genai_knowledge::wire::NameValue;
use genai_knowledge::{CollectionName, NewChunk};

/// Most chunks one insert stores (the Runtime API's limit is 100 a request; an upload of a
/// large document stores all its chunks in one transaction, up to this many).
pub const MAX_INSERT_CHUNKS: usize = 20_000;

/// A collection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRow {
    /// Row id: the key of the in-memory index.
    pub id: i64,
    /// The name, unique within the knowledge base.
    pub name: String,
    /// The dimension of its vectors (`None` until its first chunk).
    pub dimension: Option<usize>,
    /// How many chunks it holds.
    pub chunk_count: i64,
    /// What its chunks count against the storage quota.
    pub bytes: i64,
    /// Bumped by every write transaction of the collection.
    pub version: i64,
    /// The last version that deleted chunks: an index older than it must reload.
    pub reset_version: i64,
    /// When it was created.
    pub created_at: Instant,
}

/// A chunk as stored: its row id (the index key, and the tie-breaker of equal similarities)
/// and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    /// Row id.
    pub row_id: i64,
    /// The chunk as it was sent (vector not normalised).
    pub chunk: NewChunk,
}

/// What an index needs of one chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// Row id.
    pub row_id: i64,
    /// The vector as sent.
    pub vector: Vec<f32>,
    /// Its application object.
    pub mx_object_id: String,
    /// Metadata pairs, in order.
    pub metadata: Vec<NameValue>,
    /// Labels, in order.
    pub labels: Vec<NameValue>,
}

/// A knowledge base's stored content, as the quota counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KbUsage {
    /// Bytes counted against `storage_bytes`.
    pub bytes_used: i64,
    /// Chunks stored.
    pub chunk_count: i64,
}

/// What a deletion removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Chunks removed.
    pub chunks: i64,
    /// Bytes given back to the quota.
    pub bytes: i64,
}

/// One line of a knowledge base's activity log (the Portal's Content tab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    /// When.
    pub at: Instant,
    /// Who: a user id, or `key:<key id>` for a Runtime API call.
    pub actor: String,
    /// `upload`, `create_collection`, `delete_collection`, `delete_object`.
    pub action: String,
    /// The collection concerned.
    pub collection_name: String,
    /// A person-readable detail (file name, chunk count, bytes).
    pub detail: String,
}

/// An uploaded document, recorded with its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// Id (`doc_…`).
    pub id: String,
    /// The file name as uploaded.
    pub file_name: String,
    /// `txt` or `pdf`.
    pub kind: String,
    /// Chunks made of it.
    pub chunks: i64,
    /// Bytes its chunks count.
    pub bytes: i64,
    /// The user who uploaded it.
    pub created_by: Option<String>,
}

/// An insert: all of `chunks` into one collection (created if new), or nothing.
#[derive(Debug, Clone, Copy)]
pub struct ChunkInsert<'a> {
    /// The knowledge base.
    pub kb: &'a ResourceId,
    /// The collection.
    pub collection: &'a CollectionName,
    /// The chunks (all of one dimension; at most [`MAX_INSERT_CHUNKS`]).
    pub chunks: &'a [NewChunk],
    /// The plan's `storage_bytes` in force.
    pub quota_bytes: i64,
    /// The upload that made these chunks, recorded in the same transaction.
    pub document: Option<&'a DocumentRow>,
    /// The activity line to record in the same transaction.
    pub activity: Option<&'a ActivityRow>,
    /// Now.
    pub now: Instant,
}

/// How an insert ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored and committed.
    Inserted {
        /// The collection's row id.
        collection: i64,
        /// The collection's version after the insert.
        version: i64,
        /// What the chunks count.
        bytes: i64,
    },
    /// Nothing stored: the knowledge base would go over its quota.
    OverQuota {
        /// Bytes used before.
        used: i64,
        /// The quota.
        quota: i64,
        /// Bytes the insert needed.
        needed: i64,
    },
    /// Nothing stored: the collection's vectors have another dimension (a concurrent first
    /// insert won the race, or the caller validated against an older reading).
    DimensionMismatch {
        /// The collection's dimension.
        expected: usize,
    },
    /// Nothing stored: the knowledge base was deprovisioned.
    Deprovisioned,
}

/// The knowledge-content port.
#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Collections of a knowledge base by name, `limit` from `offset`; with the total count.
    async fn collections(&self, kb: &ResourceId, offset: i64, limit: i64) -> StoreResult<(Vec<CollectionRow>, u64)>;
    /// One collection, or None.
    async fn collection(&self, kb: &ResourceId, name: &CollectionName) -> StoreResult<Option<CollectionRow>>;
    /// Creates an empty collection unless it exists (recording `activity` when it creates);
    /// answers it. `StoreError::NotFound` when the knowledge base was deprovisioned.
    async fn create_collection(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
        now: Instant,
    ) -> StoreResult<CollectionRow>;
    /// Stores chunks, all or nothing; the quota is decided in the transaction.
    async fn insert_chunks(&self, insert: &ChunkInsert<'_>) -> StoreResult<InsertOutcome>;
    /// A page of a collection's chunks in row order, optionally of one object; with the total.
    async fn chunks(
        &self,
        collection: i64,
        mx_object_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<StoredChunk>, u64)>;
    /// The chunks with these row ids (the winners of a search), in any order.
    async fn chunks_by_id(&self, collection: i64, ids: &[i64]) -> StoreResult<Vec<StoredChunk>>;
    /// Deletes every chunk of one object; None when the collection does not exist.
    async fn delete_object(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        mx_object_id: &str,
        activity: Option<&ActivityRow>,
    ) -> StoreResult<Option<Deleted>>;
    /// Deletes a collection and its chunks; None when it does not exist.
    async fn drop_collection(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
    ) -> StoreResult<Option<Deleted>>;
    /// The rows of a collection added after version `after_version`, in row order (all of them
    /// for `after_version` = 0), read in one statement.
    async fn index_rows(&self, collection: i64, after_version: i64) -> StoreResult<Vec<IndexRow>>;
    /// What a knowledge base stores.
    async fn storage(&self, kb: &ResourceId) -> StoreResult<KbUsage>;
    /// The newest `limit` lines of a knowledge base's activity log, newest first.
    async fn activity(&self, kb: &ResourceId, limit: i64) -> StoreResult<Vec<ActivityRow>>;
}

/// A vector as stored: little-endian f32, 4 bytes a dimension.
pub fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vector.len() * 4);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// A stored vector read back; None when the length is not a multiple of 4.
pub fn vector_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_bit_for_bit() {
        let v = [0.1f32, -2.5, f32::MIN_POSITIVE, 1e30, -0.0];
        let bytes = vector_to_bytes(&v);
        assert_eq!(bytes.len(), 20);
        let back = vector_from_bytes(&bytes).unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(vector_from_bytes(&[1, 2, 3]), None);
    }
}
