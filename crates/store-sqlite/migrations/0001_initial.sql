-- GenAI Resources, initial schema (SQLite). Kept in step with store-postgres/migrations/0001;
-- a test compares the two. Instants are BIGINT milliseconds since the Unix epoch (UTC);
-- cloud tokens are BIGINT. Never edit an applied migration: add a new one.

CREATE TABLE companies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_list TEXT NOT NULL,
    accounts BIGINT NOT NULL,
    enterprise_subscriptions BIGINT NOT NULL,
    tokens_total BIGINT NOT NULL DEFAULT 0 CHECK (tokens_total >= 0),
    tokens_allocated BIGINT NOT NULL DEFAULT 0 CHECK (tokens_allocated >= 0 AND tokens_allocated <= tokens_total),
    -- What scheduled downgrades/deprovisionings will release: the sum of the live resources'
    -- pending_release, kept here so reading a balance never scans the company's resources.
    tokens_pending_release BIGINT NOT NULL DEFAULT 0 CHECK (tokens_pending_release >= 0 AND tokens_pending_release <= tokens_allocated),
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies (id),
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE resources (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies (id),
    resource_type TEXT NOT NULL,
    display_name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    environment TEXT NOT NULL,
    region TEXT NOT NULL,
    cross_region_inference BOOLEAN NOT NULL,
    model TEXT,
    plan TEXT NOT NULL,
    cloud_tokens BIGINT NOT NULL CHECK (cloud_tokens > 0),
    created_for_name TEXT NOT NULL,
    created_for_email TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    scheduled_kind TEXT,
    scheduled_plan TEXT,
    scheduled_cloud_tokens BIGINT,
    scheduled_at BIGINT,
    pending_release BIGINT NOT NULL DEFAULT 0,
    deprovisioned_at BIGINT,
    embeddings_resource_id TEXT REFERENCES resources (id),
    version BIGINT NOT NULL
);

-- Display names are unique (case-insensitively, via name_key) among live resources only.
CREATE UNIQUE INDEX resources_live_name ON resources (company_id, name_key) WHERE status <> 'deprovisioned';
CREATE INDEX resources_company_type ON resources (company_id, resource_type, id);
CREATE INDEX resources_due ON resources (scheduled_at) WHERE scheduled_at IS NOT NULL;
CREATE INDEX resources_embeddings ON resources (embeddings_resource_id) WHERE embeddings_resource_id IS NOT NULL;

CREATE TABLE resource_members (
    resource_id TEXT NOT NULL REFERENCES resources (id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id TEXT REFERENCES users (id),
    invited BOOLEAN NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (resource_id, email)
);

-- Double entry: each row moves `tokens` from debit_account to credit_account. Append-only.
CREATE TABLE ledger_transactions (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    tokens BIGINT NOT NULL CHECK (tokens > 0),
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    resource_id TEXT REFERENCES resources (id),
    available_after BIGINT NOT NULL,
    note TEXT
);
CREATE INDEX ledger_company_at ON ledger_transactions (company_id, at, id);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    company_id TEXT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_company_at ON audit_events (company_id, at, id);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
