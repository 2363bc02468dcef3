-- Knowledge-base content (issue 10, RUNTIME.md §8; design in docs/knowledge.md). Kept in step
-- with the other adapter's 0005 (a test compares them): row ids are identity columns here and
-- INTEGER PRIMARY KEY (the rowid) there, vectors BYTEA here and BLOB there.

-- One row per knowledge base that ever stored something: the storage counter the quota is
-- decided on (one conditional UPDATE), apart from the resource's versioned lifecycle row.
-- `deprovisioned` is set, and the content deleted, by the transaction that deprovisions it.
CREATE TABLE kb_stores (
    resource_id TEXT COLLATE "C" PRIMARY KEY REFERENCES resources (id),
    bytes_used BIGINT NOT NULL DEFAULT 0 CHECK (bytes_used >= 0),
    chunk_count BIGINT NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    deprovisioned BOOLEAN NOT NULL DEFAULT FALSE
);

-- Collections; `version` is bumped by every write transaction of the collection (its row lock
-- orders them), `reset_version` by those that delete chunks (in-memory indexes older than it
-- reload; newer ones only load the rows added since).
CREATE TABLE kb_collections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id TEXT COLLATE "C" NOT NULL REFERENCES kb_stores (resource_id),
    name TEXT COLLATE "C" NOT NULL,
    dimension BIGINT CHECK (dimension BETWEEN 1 AND 8192),
    chunk_count BIGINT NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    version BIGINT NOT NULL DEFAULT 0,
    reset_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (resource_id, name)
);

-- Chunks: text fields as sent (null optional strings stored as ''), metadata and labels as
-- JSON arrays of {"name","value"} (filters run in memory, never in SQL), the vector as
-- little-endian f32 (4 bytes a dimension), and what the chunk counts against the quota.
CREATE TABLE kb_chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES kb_collections (id) ON DELETE CASCADE,
    added_version BIGINT NOT NULL,
    chunk_id TEXT NOT NULL,
    human_readable_id TEXT NOT NULL,
    chunk_type TEXT NOT NULL,
    key_text TEXT NOT NULL,
    value_text TEXT NOT NULL,
    mx_object_id TEXT COLLATE "C" NOT NULL,
    mx_entity TEXT NOT NULL,
    metadata TEXT NOT NULL,
    labels TEXT NOT NULL,
    vector BYTEA NOT NULL,
    bytes BIGINT NOT NULL,
    document_id TEXT COLLATE "C"
);
CREATE INDEX kb_chunks_collection ON kb_chunks (collection_id, id);
CREATE INDEX kb_chunks_added ON kb_chunks (collection_id, added_version);
CREATE INDEX kb_chunks_object ON kb_chunks (collection_id, mx_object_id, id);

-- Uploaded documents (Portal), recorded with their chunks.
CREATE TABLE kb_documents (
    id TEXT COLLATE "C" PRIMARY KEY,
    resource_id TEXT COLLATE "C" NOT NULL REFERENCES kb_stores (resource_id),
    collection_name TEXT COLLATE "C" NOT NULL,
    file_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    chunks BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_by TEXT COLLATE "C",
    created_at BIGINT NOT NULL
);

-- The Content tab's activity log: uploads, creations and deletions.
CREATE TABLE kb_activity (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id TEXT COLLATE "C" NOT NULL REFERENCES kb_stores (resource_id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    collection_name TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX kb_activity_resource ON kb_activity (resource_id, id);
