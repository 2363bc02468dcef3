//! [`KnowledgeStore`] in SQL: collections, chunks, the storage counter, documents and the
//! activity log (`kb_*` tables, migration 0005; design in `docs/knowledge.md`).
//!
//! Every write of a collection first locks the collection's row ([`Backend::FOR_UPDATE`] on
//! PostgreSQL; SQLite's single writer serialises anyway) and bumps its `version`, so the writes
//! of one collection commit in version order and an in-memory index at version `v` is brought
//! up to date by the rows whose `added_version` is above `v` (unless a deletion moved
//! `reset_version` past `v`: then it reloads).
//!
//! The storage quota is decided last, by one conditional statement on the knowledge base's
//! `kb_stores` row (`… WHERE bytes_used + n <= quota`): zero rows changed means the transaction
//! is dropped (rolled back) with everything it wrote, the collection it may have created
//! included. Locks are always taken collection first, counter last (insert, delete, drop and the
//! deprovisioning in `resources.rs` alike), so these writes cannot deadlock one another.

use crate::conn::{with_retries, Arg, Attempt, Backend, Conn, RowRead, Transaction};
use crate::rows::{count, instant};
use crate::{args, millis, SqlStore};
use async_trait::async_trait;
use genai_core::{Instant, ResourceId};
use genai_knowledge::wire::NameValue;
use genai_knowledge::{CollectionName, NewChunk};
use genai_store::{
    vector_from_bytes, vector_to_bytes, ActivityRow, ChunkInsert, CollectionRow, Deleted, IndexRow, InsertOutcome,
    KbUsage, KnowledgeStore, StoreError, StoreResult, StoredChunk, MAX_INSERT_CHUNKS,
};

/// Rows of one multi-row `INSERT INTO kb_chunks` (× 14 parameters: far below both databases'
/// limits of 32,766 and 65,535).
const ROWS_PER_STATEMENT: usize = 100;

const ENSURE_STORE: &str = "INSERT INTO kb_stores (resource_id) VALUES ($1) ON CONFLICT (resource_id) DO NOTHING";
const ENSURE_COLLECTION: &str = "INSERT INTO kb_collections (resource_id, name, created_at) VALUES ($1, $2, $3) \
     ON CONFLICT (resource_id, name) DO NOTHING";
macro_rules! collection_columns {
    () => {
        "id, name, dimension, chunk_count, bytes, version, reset_version, created_at"
    };
}
/// Completed with the backend's row lock in writes.
const COLLECTION: &str =
    concat!("SELECT ", collection_columns!(), " FROM kb_collections WHERE resource_id = $1 AND name = $2");
const COLLECTIONS: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM kb_collections WHERE resource_id = $1 ORDER BY name LIMIT $2 OFFSET $3"
);
const COUNT_COLLECTIONS: &str = "SELECT COUNT(*) AS n FROM kb_collections WHERE resource_id = $1";
/// The quota's one decision: zero rows when the insert would go over it (or the knowledge base
/// is deprovisioned). An insert of nothing is never refused for a quota already exceeded (a
/// downgrade can lower the quota below what is stored).
const CHARGE: &str = "UPDATE kb_stores SET bytes_used = bytes_used + $2, chunk_count = chunk_count + $3 \
     WHERE resource_id = $1 AND NOT deprovisioned AND ($2 = 0 OR bytes_used + $2 <= $4)";
const STORE: &str = "SELECT bytes_used, chunk_count, deprovisioned FROM kb_stores WHERE resource_id = $1";
const GROW_COLLECTION: &str = "UPDATE kb_collections SET dimension = COALESCE(dimension, $2), \
     chunk_count = chunk_count + $3, bytes = bytes + $4, version = version + 1 WHERE id = $1";
const SHRINK_COLLECTION: &str = "UPDATE kb_collections SET chunk_count = chunk_count - $2, bytes = bytes - $3, \
     version = version + 1, reset_version = version + 1 WHERE id = $1";
const RELEASE: &str = "UPDATE kb_stores SET bytes_used = bytes_used - $2, chunk_count = chunk_count - $3 \
     WHERE resource_id = $1";
const DELETE_OBJECT: &str = "DELETE FROM kb_chunks WHERE collection_id = $1 AND mx_object_id = $2 RETURNING bytes";
const DELETE_CHUNKS: &str = "DELETE FROM kb_chunks WHERE collection_id = $1";
const DELETE_COLLECTION: &str = "DELETE FROM kb_collections WHERE id = $1";
macro_rules! chunk_columns {
    () => {
        "id, chunk_id, human_readable_id, chunk_type, key_text, value_text, mx_object_id, mx_entity, metadata, labels, vector"
    };
}
const CHUNKS: &str = concat!(
    "SELECT ",
    chunk_columns!(),
    " FROM kb_chunks WHERE collection_id = $1 AND (CAST($2 AS TEXT) IS NULL OR mx_object_id = $2) \
     ORDER BY id LIMIT $3 OFFSET $4"
);
const COUNT_CHUNKS: &str = "SELECT COUNT(*) AS n FROM kb_chunks WHERE collection_id = $1 \
     AND (CAST($2 AS TEXT) IS NULL OR mx_object_id = $2)";
const INDEX_ROWS: &str = "SELECT id, vector, mx_object_id, metadata, labels FROM kb_chunks \
     WHERE collection_id = $1 AND added_version > $2 ORDER BY id";
const INSERT_ACTIVITY: &str = "INSERT INTO kb_activity (resource_id, at, actor, action, collection_name, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const ACTIVITY: &str = "SELECT at, actor, action, collection_name, detail FROM kb_activity \
     WHERE resource_id = $1 ORDER BY id DESC LIMIT $2";
const INSERT_DOCUMENT: &str = "INSERT INTO kb_documents (id, resource_id, collection_name, file_name, kind, chunks, \
     bytes, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The deprovisioning of a knowledge base (called by `resources.rs` in the transaction that
/// applies it): its content is deleted, its counter zeroed and closed to further inserts.
pub(crate) const DEPROVISION_CHUNKS: &str =
    "DELETE FROM kb_chunks WHERE collection_id IN (SELECT id FROM kb_collections WHERE resource_id = $1)";
pub(crate) const DEPROVISION_COLLECTIONS: &str = "DELETE FROM kb_collections WHERE resource_id = $1";
pub(crate) const DEPROVISION_STORE: &str = "INSERT INTO kb_stores (resource_id, bytes_used, chunk_count, deprovisioned) \
     VALUES ($1, 0, 0, TRUE) ON CONFLICT (resource_id) DO UPDATE SET bytes_used = 0, chunk_count = 0, deprovisioned = TRUE";

fn collection_row(row: &dyn RowRead) -> StoreResult<CollectionRow> {
    let dimension = row
        .opt_int("dimension")?
        .map(|d| usize::try_from(d).map_err(|_| StoreError::corrupt("kb_collections.dimension", d)))
        .transpose()?;
    Ok(CollectionRow {
        id: row.int("id")?,
        name: row.text("name")?,
        dimension,
        chunk_count: row.int("chunk_count")?,
        bytes: row.int("bytes")?,
        version: row.int("version")?,
        reset_version: row.int("reset_version")?,
        created_at: instant(row.int("created_at")?)?,
    })
}

fn pairs(row: &dyn RowRead, column: &'static str) -> StoreResult<Vec<NameValue>> {
    let text = row.text(column)?;
    serde_json::from_str(&text).map_err(|_| StoreError::corrupt(column, text))
}

fn vector(row: &dyn RowRead) -> StoreResult<Vec<f32>> {
    let bytes = row.bytes("vector")?;
    vector_from_bytes(&bytes).ok_or_else(|| StoreError::corrupt("kb_chunks.vector", format!("{} bytes", bytes.len())))
}

fn stored_chunk(row: &dyn RowRead) -> StoreResult<StoredChunk> {
    Ok(StoredChunk {
        row_id: row.int("id")?,
        chunk: NewChunk {
            chunk_id: row.text("chunk_id")?,
            human_readable_id: row.text("human_readable_id")?,
            chunk_type: row.text("chunk_type")?,
            key: row.text("key_text")?,
            value: row.text("value_text")?,
            mx_object_id: row.text("mx_object_id")?,
            mx_entity: row.text("mx_entity")?,
            metadata: pairs(row, "metadata")?,
            labels: pairs(row, "labels")?,
            vector: vector(row)?,
        },
    })
}

fn index_row(row: &dyn RowRead) -> StoreResult<IndexRow> {
    Ok(IndexRow {
        row_id: row.int("id")?,
        vector: vector(row)?,
        mx_object_id: row.text("mx_object_id")?,
        metadata: pairs(row, "metadata")?,
        labels: pairs(row, "labels")?,
    })
}

fn bytes_of(row: &dyn RowRead) -> StoreResult<i64> {
    row.int("bytes")
}

fn store_row(row: &dyn RowRead) -> StoreResult<(i64, i64, bool)> {
    Ok((row.int("bytes_used")?, row.int("chunk_count")?, row.boolean("deprovisioned")?))
}

fn activity_row(row: &dyn RowRead) -> StoreResult<ActivityRow> {
    Ok(ActivityRow {
        at: instant(row.int("at")?)?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        collection_name: row.text("collection_name")?,
        detail: row.text("detail")?,
    })
}

fn json(pairs: &[NameValue]) -> StoreResult<String> {
    serde_json::to_string(pairs).map_err(StoreError::database)
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn insert_activity(tx: &mut impl Conn, kb: &ResourceId, a: &ActivityRow) -> Attempt<()> {
    tx.execute(INSERT_ACTIVITY, args![kb.as_str(), millis(a.at), &a.actor, &a.action, &a.collection_name, &a.detail])
        .await?;
    Ok(())
}

/// The statement inserting `rows` chunks: `($1, $2, …, $14), ($15, …)`.
fn insert_chunks_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO kb_chunks (collection_id, added_version, chunk_id, human_readable_id, chunk_type, key_text, \
         value_text, mx_object_id, mx_entity, metadata, labels, vector, bytes, document_id) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=14 {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * 14 + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// What a chunk's row needs beyond the chunk's own strings.
struct Encoded {
    metadata: String,
    labels: String,
    vector: Vec<u8>,
    bytes: i64,
}

impl<B: Backend> SqlStore<B> {
    /// Finds or creates the collection and locks it; None when the knowledge base is gone.
    async fn lock_collection(
        tx: &mut B::Tx,
        kb: &ResourceId,
        name: &CollectionName,
        now: Instant,
    ) -> Attempt<(CollectionRow, bool)> {
        tx.execute(ENSURE_STORE, args![kb.as_str()]).await?;
        let created = tx.execute(ENSURE_COLLECTION, args![kb.as_str(), name.as_str(), millis(now)]).await? == 1;
        let lock = format!("{COLLECTION}{}", B::FOR_UPDATE);
        let Some(row) = tx.fetch_optional(&lock, args![kb.as_str(), name.as_str()], collection_row).await? else {
            return Err(StoreError::Inconsistent(format!("collection {name} vanished after its creation")).into());
        };
        Ok((row, created))
    }

    async fn insert_once(&self, ins: &ChunkInsert<'_>, encoded: &[Encoded]) -> Attempt<InsertOutcome> {
        let mut tx = self.backend.begin().await?;
        let (row, _) = Self::lock_collection(&mut tx, ins.kb, ins.collection, ins.now).await?;
        let dimension = ins.chunks.first().map(|c| c.vector.len());
        if let Some(expected) = row.dimension {
            if ins.chunks.iter().any(|c| c.vector.len() != expected) {
                return Ok(InsertOutcome::DimensionMismatch { expected });
            }
        }
        let needed: i64 = encoded.iter().map(|e| e.bytes).sum();
        let version = row.version + 1;
        for (chunks, enc) in ins.chunks.chunks(ROWS_PER_STATEMENT).zip(encoded.chunks(ROWS_PER_STATEMENT)) {
            let sql = insert_chunks_sql(chunks.len());
            let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunks.len() * 14);
            for (c, e) in chunks.iter().zip(enc) {
                args.extend_from_slice(args![
                    row.id,
                    version,
                    &c.chunk_id,
                    &c.human_readable_id,
                    &c.chunk_type,
                    &c.key,
                    &c.value,
                    &c.mx_object_id,
                    &c.mx_entity,
                    &e.metadata,
                    &e.labels,
                    e.vector.as_slice(),
                    e.bytes,
                    ins.document.map(|d| d.id.as_str()),
                ]);
            }
            tx.execute(&sql, &args).await?;
        }
        let n = as_i64(ins.chunks.len());
        tx.execute(GROW_COLLECTION, args![row.id, dimension.map(as_i64), n, needed]).await?;
        if let Some(d) = ins.document {
            tx.execute(
                INSERT_DOCUMENT,
                args![
                    &d.id,
                    ins.kb.as_str(),
                    ins.collection.as_str(),
                    &d.file_name,
                    &d.kind,
                    d.chunks,
                    d.bytes,
                    d.created_by.as_deref(),
                    millis(ins.now)
                ],
            )
            .await?;
        }
        if let Some(a) = ins.activity {
            insert_activity(&mut tx, ins.kb, a).await?;
        }
        // The counter last: the hot row is held for the shortest time.
        if tx.execute(CHARGE, args![ins.kb.as_str(), needed, n, ins.quota_bytes]).await? != 1 {
            let (used, _, deprovisioned) = tx
                .fetch_optional(STORE, args![ins.kb.as_str()], store_row)
                .await?
                .ok_or_else(|| StoreError::Inconsistent(format!("kb_stores row of {} vanished", ins.kb)))?;
            // Dropping the transaction rolls back the chunks and the collection it may have made.
            return Ok(if deprovisioned {
                InsertOutcome::Deprovisioned
            } else {
                InsertOutcome::OverQuota { used, quota: ins.quota_bytes, needed }
            });
        }
        tx.commit().await?;
        Ok(InsertOutcome::Inserted { collection: row.id, version, bytes: needed })
    }

    async fn create_collection_once(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
        now: Instant,
    ) -> Attempt<CollectionRow> {
        let mut tx = self.backend.begin().await?;
        let (row, created) = Self::lock_collection(&mut tx, kb, name, now).await?;
        if created {
            if let Some(a) = activity {
                insert_activity(&mut tx, kb, a).await?;
            }
        }
        if tx.execute(CHARGE, args![kb.as_str(), 0i64, 0i64, 0i64]).await? != 1 {
            return Err(StoreError::NotFound.into());
        }
        tx.commit().await?;
        Ok(row)
    }

    async fn delete_object_once(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        mx_object_id: &str,
        activity: Option<&ActivityRow>,
    ) -> Attempt<Option<Deleted>> {
        let mut tx = self.backend.begin().await?;
        let lock = format!("{COLLECTION}{}", B::FOR_UPDATE);
        let Some(row) = tx.fetch_optional(&lock, args![kb.as_str(), name.as_str()], collection_row).await? else {
            return Ok(None);
        };
        let gone = tx.fetch(DELETE_OBJECT, args![row.id, mx_object_id], bytes_of).await?;
        let deleted = Deleted { chunks: as_i64(gone.len()), bytes: gone.iter().sum() };
        if deleted.chunks > 0 {
            tx.execute(SHRINK_COLLECTION, args![row.id, deleted.chunks, deleted.bytes]).await?;
            if let Some(a) = activity {
                insert_activity(&mut tx, kb, a).await?;
            }
            tx.execute(RELEASE, args![kb.as_str(), deleted.bytes, deleted.chunks]).await?;
        }
        tx.commit().await?;
        Ok(Some(deleted))
    }

    async fn drop_collection_once(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
    ) -> Attempt<Option<Deleted>> {
        let mut tx = self.backend.begin().await?;
        let lock = format!("{COLLECTION}{}", B::FOR_UPDATE);
        let Some(row) = tx.fetch_optional(&lock, args![kb.as_str(), name.as_str()], collection_row).await? else {
            return Ok(None);
        };
        tx.execute(DELETE_CHUNKS, args![row.id]).await?;
        tx.execute(DELETE_COLLECTION, args![row.id]).await?;
        if let Some(a) = activity {
            insert_activity(&mut tx, kb, a).await?;
        }
        tx.execute(RELEASE, args![kb.as_str(), row.bytes, row.chunk_count]).await?;
        tx.commit().await?;
        Ok(Some(Deleted { chunks: row.chunk_count, bytes: row.bytes }))
    }
}

#[async_trait]
impl<B: Backend> KnowledgeStore for SqlStore<B> {
    async fn collections(&self, kb: &ResourceId, offset: i64, limit: i64) -> StoreResult<(Vec<CollectionRow>, u64)> {
        let rows = self.read_all(COLLECTIONS, args![kb.as_str(), limit, offset], collection_row).await?;
        let total = self.read_one(COUNT_COLLECTIONS, args![kb.as_str()], count).await?.unwrap_or(0);
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    async fn collection(&self, kb: &ResourceId, name: &CollectionName) -> StoreResult<Option<CollectionRow>> {
        self.read_one(COLLECTION, args![kb.as_str(), name.as_str()], collection_row).await
    }

    async fn create_collection(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
        now: Instant,
    ) -> StoreResult<CollectionRow> {
        with_retries("create_collection", || self.create_collection_once(kb, name, activity, now)).await
    }

    async fn insert_chunks(&self, insert: &ChunkInsert<'_>) -> StoreResult<InsertOutcome> {
        if insert.chunks.len() > MAX_INSERT_CHUNKS {
            return Err(StoreError::Inconsistent(format!(
                "an insert of {} chunks is over the limit of {MAX_INSERT_CHUNKS}",
                insert.chunks.len()
            )));
        }
        let encoded = insert
            .chunks
            .iter()
            .map(|c| {
                Ok(Encoded {
                    metadata: json(&c.metadata)?,
                    labels: json(&c.labels)?,
                    vector: vector_to_bytes(&c.vector),
                    bytes: c.stored_bytes(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        with_retries("insert_chunks", || self.insert_once(insert, &encoded)).await
    }

    async fn chunks(
        &self,
        collection: i64,
        mx_object_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<StoredChunk>, u64)> {
        let rows = self.read_all(CHUNKS, args![collection, mx_object_id, limit, offset], stored_chunk).await?;
        let total = self.read_one(COUNT_CHUNKS, args![collection, mx_object_id], count).await?.unwrap_or(0);
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    async fn chunks_by_id(&self, collection: i64, ids: &[i64]) -> StoreResult<Vec<StoredChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(ids.len());
        for part in ids.chunks(500) {
            let marks: Vec<String> = (0..part.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT {} FROM kb_chunks WHERE collection_id = $1 AND id IN ({})",
                chunk_columns!(),
                marks.join(", ")
            );
            let mut args: Vec<Arg<'_>> = vec![Arg::from(collection)];
            args.extend(part.iter().map(|&id| Arg::from(id)));
            out.extend(self.read_all(&sql, &args, stored_chunk).await?);
        }
        Ok(out)
    }

    async fn delete_object(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        mx_object_id: &str,
        activity: Option<&ActivityRow>,
    ) -> StoreResult<Option<Deleted>> {
        with_retries("delete_object", || self.delete_object_once(kb, name, mx_object_id, activity)).await
    }

    async fn drop_collection(
        &self,
        kb: &ResourceId,
        name: &CollectionName,
        activity: Option<&ActivityRow>,
    ) -> StoreResult<Option<Deleted>> {
        with_retries("drop_collection", || self.drop_collection_once(kb, name, activity)).await
    }

    async fn index_rows(&self, collection: i64, after_version: i64) -> StoreResult<Vec<IndexRow>> {
        self.read_all(INDEX_ROWS, args![collection, after_version], index_row).await
    }

    async fn storage(&self, kb: &ResourceId) -> StoreResult<KbUsage> {
        Ok(self
            .read_one(STORE, args![kb.as_str()], store_row)
            .await?
            .map(|(bytes_used, chunk_count, _)| KbUsage { bytes_used, chunk_count })
            .unwrap_or_default())
    }

    async fn activity(&self, kb: &ResourceId, limit: i64) -> StoreResult<Vec<ActivityRow>> {
        self.read_all(ACTIVITY, args![kb.as_str(), limit], activity_row).await
    }
}
